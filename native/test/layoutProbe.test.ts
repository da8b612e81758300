// SPDX-License-Identifier: Apache-2.0
// The ggml layout probe against the two real builds on this machine: the RelWithDebInfo llama.cpp
// build, whose DWARF and headers are the ground truth, and node-llama-cpp's stripped prebuilt
// libraries, which must give the same answer. Both come from `npm run setup` (the cache manifest).
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { manifestPath, readManifest, type ProbedLayout } from "@profinfer/exporter";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
/** The probe's sources, as native/binding.gyp builds it */
const probeSources = ["ggml_layout_probe.c", "executable.c"].map((f) =>
  join(repoRoot, "native/layout-probe", f),
);
const nonGgmlLibrary = "/lib/x86_64-linux-gnu/libz.so.1";

const EXIT_LOAD = 1;
const EXIT_SYMBOL = 2;

type ProbeLayout = ProbedLayout;

interface ProbeError {
  error: string;
  missingSymbol?: string;
}

interface ProbeRun {
  status: number | null;
  stdout: string;
  stderr: string;
}

interface DwarfStruct {
  byteSize: number;
  members: Map<string, { offset: number; typeName: string }>;
}

function findOnPath(pattern: RegExp): string | null {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (dir === "" || !existsSync(dir)) continue;
    const hit = readdirSync(dir)
      .filter((name) => pattern.test(name))
      .sort()[0];
    if (hit !== undefined) return join(dir, hit);
  }
  return null;
}

function runProbe(probe: string, args: string[]): ProbeRun {
  const result = spawnSync(probe, args, { encoding: "utf8" });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function parseLayout(run: ProbeRun): ProbeLayout {
  assert.equal(run.status, 0, `probe failed: ${run.stdout}${run.stderr}`);
  return JSON.parse(run.stdout) as ProbeLayout;
}

/** Enumerators of `enum <name>` in a C header, prefix stripped, without the trailing _COUNT. */
function headerEnum(header: string, enumName: string, prefix: string): Map<string, number> {
  const body = new RegExp(`enum ${enumName} \\{([\\s\\S]*?)\\};`).exec(header)?.[1];
  assert.ok(body !== undefined, `enum ${enumName} not found in ggml.h`);
  const values = new Map<string, number>();
  let next = 0;
  for (const rawLine of body.split("\n")) {
    const line = rawLine.replace(/\/\/.*$/, "").trim();
    const match = new RegExp(`^${prefix}(\\w+)\\s*(?:=\\s*(\\d+))?\\s*,?$`).exec(line);
    if (match === null) continue;
    const [, name = "", explicit] = match;
    const value = explicit !== undefined ? Number(explicit) : next;
    values.set(name, value);
    next = value + 1;
  }
  return values;
}

/** The first complete definition of `struct <name>` in a library's DWARF, as llvm-dwarfdump shows it. */
function dwarfStruct(dwarfdump: string, library: string, name: string): DwarfStruct {
  const dumped = spawnSync(
    dwarfdump,
    ["--debug-info", `--name=${name}`, "--show-children", library],
    { encoding: "utf8", maxBuffer: 64 << 20 },
  );
  assert.equal(dumped.status, 0, dumped.stderr);
  const entries = dumped.stdout.split(/\n(?=0x[0-9a-f]+:)/).map((chunk) => ({
    tag: /^0x[0-9a-f]+:\s+(\S+)/.exec(chunk)?.[1] ?? "",
    name: /DW_AT_name\s+\("([^"]*)"\)/.exec(chunk)?.[1],
    byteSize: /DW_AT_byte_size\s+\((0x[0-9a-f]+)\)/.exec(chunk)?.[1],
    offset: /DW_AT_data_member_location\s+\((0x[0-9a-f]+)\)/.exec(chunk)?.[1],
    typeName: /DW_AT_type\s+\(0x[0-9a-f]+ "([^"]*)"\)/.exec(chunk)?.[1] ?? "",
  }));
  const start = entries.findIndex(
    (e) => e.tag === "DW_TAG_structure_type" && e.name === name && e.byteSize !== undefined,
  );
  assert.ok(start >= 0, `no complete DW_TAG_structure_type ${name} in ${library}`);
  const members = new Map<string, { offset: number; typeName: string }>();
  for (const entry of entries.slice(start + 1)) {
    if (entry.tag !== "DW_TAG_member") break;
    assert.ok(entry.name !== undefined && entry.offset !== undefined, `odd member in ${name}`);
    members.set(entry.name, { offset: Number(entry.offset), typeName: entry.typeName });
  }
  return { byteSize: Number(entries[start]?.byteSize), members };
}

function memberOffset(struct: DwarfStruct, member: string): number {
  const found = struct.members.get(member);
  assert.ok(found !== undefined, `DWARF has no member ${member}`);
  return found.offset;
}

function memberArrayLength(struct: DwarfStruct, member: string): number {
  const typeName = struct.members.get(member)?.typeName ?? "";
  const length = /\[(\d+)\]$/.exec(typeName)?.[1];
  assert.ok(length !== undefined, `DWARF member ${member} is not an array: "${typeName}"`);
  return Number(length);
}

/** What must agree between builds of one ggml version: everything but paths and commit ids. */
function versionIndependent(layout: ProbeLayout): ProbeLayout {
  return { ...layout, library: "", cpuLibrary: "", commit: "" };
}

const manifest = readManifest();
const compiler = findOnPath(/^cc$/) ?? findOnPath(/^gcc$/);
const skipReason =
  manifest === null
    ? `no cache manifest at ${manifestPath()}: run \`npm run setup\` (or set PROFINFER_CACHE)`
    : compiler === null
      ? "no C compiler (cc or gcc) on PATH"
      : false;

describe("ggml layout probe", { skip: skipReason }, () => {
  const binDir = manifest?.llamaCpp?.binDir ?? "";
  const srcDir = manifest?.llamaCpp?.srcDir ?? "";
  const prebuiltDir = manifest?.nodeLlamaCpp?.prebuiltDir ?? "";
  const debugBase = join(binDir, "libggml-base.so");
  const debugCpu = join(binDir, "libggml-cpu.so");
  let workDir = "";
  let probe = "";
  let debugLayout: ProbeLayout;

  before(() => {
    workDir = mkdtempSync(join(tmpdir(), "profinfer-layout-probe-"));
    probe = join(workDir, "probe");
    const compiled = spawnSync(
      compiler ?? "cc",
      ["-std=c11", "-O2", "-Wall", "-Wextra", "-o", probe, ...probeSources, "-ldl"],
      { encoding: "utf8" },
    );
    assert.equal(compiled.status, 0, compiled.stderr);
    assert.equal(compiled.stderr, "", `the probe must compile warning-free:\n${compiled.stderr}`);
    debugLayout = parseLayout(runProbe(probe, [debugBase, debugCpu]));
  });

  after(() => {
    if (workDir !== "") rmSync(workDir, { recursive: true, force: true });
  });

  test("RelWithDebInfo build: every offset equals the DWARF data_member_location", (t) => {
    const dwarfdump = findOnPath(/^llvm-dwarfdump(-\d+)?$/);
    if (dwarfdump === null) {
      t.skip("llvm-dwarfdump is not on PATH (Debian package llvm)");
      return;
    }
    const tensor = dwarfStruct(dwarfdump, debugBase, "ggml_tensor");
    const cgraph = dwarfStruct(dwarfdump, debugBase, "ggml_cgraph");
    const cplan = dwarfStruct(dwarfdump, debugCpu, "ggml_cplan");
    const params = dwarfStruct(dwarfdump, debugCpu, "ggml_compute_params");

    assert.deepEqual(debugLayout.tensor, {
      type: memberOffset(tensor, "type"),
      ne: memberOffset(tensor, "ne"),
      nb: memberOffset(tensor, "nb"),
      op: memberOffset(tensor, "op"),
      opParams: memberOffset(tensor, "op_params"),
      flags: memberOffset(tensor, "flags"),
      src: memberOffset(tensor, "src"),
      viewSrc: memberOffset(tensor, "view_src"),
      viewOffs: memberOffset(tensor, "view_offs"),
      data: memberOffset(tensor, "data"),
      name: memberOffset(tensor, "name"),
      maxSrc: memberArrayLength(tensor, "src"),
      maxName: memberArrayLength(tensor, "name"),
      maxOpParams: 4 * memberArrayLength(tensor, "op_params"),
      size: tensor.byteSize,
    });
    assert.deepEqual(debugLayout.cgraph, {
      nNodes: memberOffset(cgraph, "n_nodes"),
      nodes: memberOffset(cgraph, "nodes"),
    });
    assert.deepEqual(debugLayout.cplan, {
      nThreads: memberOffset(cplan, "n_threads"),
      source: "observed",
    });
    assert.deepEqual(debugLayout.computeParams, {
      ith: memberOffset(params, "ith"),
      nth: memberOffset(params, "nth"),
      wsize: memberOffset(params, "wsize"),
      wdata: memberOffset(params, "wdata"),
      source: "abi",
    });
  });

  test("RelWithDebInfo build: name tables equal the enums of ggml.h", () => {
    const header = readFileSync(join(srcDir, "ggml/include/ggml.h"), "utf8");
    const ops = headerEnum(header, "ggml_op", "GGML_OP_");
    const unary = headerEnum(header, "ggml_unary_op", "GGML_UNARY_OP_");
    const glu = headerEnum(header, "ggml_glu_op", "GGML_GLU_OP_");
    const types = headerEnum(header, "ggml_type", "GGML_TYPE_");

    const inOrder = (values: Map<string, number>) =>
      [...values].filter(([name]) => name !== "COUNT").map(([name]) => name);
    assert.deepEqual(debugLayout.opNames, inOrder(ops));
    assert.deepEqual(debugLayout.unaryOpNames, inOrder(unary));
    assert.deepEqual(debugLayout.gluOpNames, inOrder(glu));
    assert.equal(debugLayout.typeNames.length, types.get("COUNT"));
    for (const [name, value] of types) {
      if (name === "COUNT") continue;
      assert.equal(debugLayout.typeNames[value]?.toUpperCase(), name, `ggml_type ${value}`);
    }
  });

  test("node-llama-cpp prebuilt libraries: same layout and names as the debug build", () => {
    const variants = readdirSync(prebuiltDir)
      .filter((name) => /^libggml-cpu-.+\.so$/.test(name))
      .sort();
    assert.ok(variants.includes("libggml-cpu-x64.so"), `no baseline CPU variant in ${prebuiltDir}`);
    const base = join(prebuiltDir, "libggml-base.so");
    let resolved = 0;
    for (const variant of variants) {
      const run = runProbe(probe, [base, join(prebuiltDir, variant)]);
      if (run.status === EXIT_LOAD && variant !== "libggml-cpu-x64.so") {
        // A variant for an ISA this CPU lacks is refused by its own ggml_backend_score.
        assert.match((JSON.parse(run.stdout) as ProbeError).error, /cannot run/, variant);
        continue;
      }
      const layout = parseLayout(run);
      assert.deepEqual(versionIndependent(layout), versionIndependent(debugLayout), variant);
      resolved++;
    }
    assert.ok(resolved >= 1);
  });

  test("without a CPU library the cplan is null and the rest is unchanged", () => {
    const layout = parseLayout(runProbe(probe, [debugBase]));

    assert.equal(layout.cplan, null);
    assert.deepEqual({ ...layout, cplan: debugLayout.cplan, cpuLibrary: debugCpu }, debugLayout);
  });

  test("a library that is not ggml exits 2 and names the missing symbol", () => {
    const run = runProbe(probe, [nonGgmlLibrary]);

    assert.equal(run.status, EXIT_SYMBOL, run.stdout + run.stderr);
    const answer = JSON.parse(run.stdout) as ProbeError;
    assert.equal(answer.missingSymbol, "ggml_init");
    assert.match(answer.error, /does not export ggml_init/);
  });

  test("a path that does not load exits 1 with dlopen's reason", () => {
    const run = runProbe(probe, [join(workDir, "missing.so")]);

    assert.equal(run.status, EXIT_LOAD);
    assert.match((JSON.parse(run.stdout) as ProbeError).error, /cannot load .*No such file/);
  });
});
