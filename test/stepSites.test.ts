// SPDX-License-Identifier: Apache-2.0
// Step sites (exporter/src/discovery/stepSites.ts) in the real libraries of this machine: the
// RelWithDebInfo build, whose line table says what each site is, and every CPU variant of
// node-llama-cpp's prebuilt libraries, which are stripped of everything but .dynsym.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { STEP_REGISTERS, callTargetsOf, findStepSites, readElf } from "@profinfer/exporter";
import { manifest } from "./support/targets.js";

/** offsetof(struct ggml_cgraph, n_nodes) in the pinned build (after `int size`). */
const N_NODES_OFFSET = 4;

describe("step sites", () => {
  test("the source build: the loop's barrier call and the final one, by the line table", () => {
    const lib = join(manifest().llamaCpp.binDir, "libggml-cpu.so");
    const sites = findStepSites(readElf(lib), N_NODES_OFFSET);
    assert.equal(sites.filter((s) => !s.final).length, 1, JSON.stringify(sites));
    assert.equal(sites.filter((s) => s.final).length, 1, JSON.stringify(sites));
    for (const site of sites) {
      assert.match(site.function ?? "", /^ggml_graph_compute_thread/);
      // the line the call belongs to, from DWARF, must be a ggml_barrier call in that loop
      const where = execFileSync("addr2line", ["-e", lib, `0x${site.address.toString(16)}`], {
        encoding: "utf8",
      }).trim();
      const [file, line] = where.split(":");
      const lines = readFileSync(file!, "utf8").split("\n");
      const text = lines[Number(line) - 1] ?? "";
      assert.match(text, /ggml_barrier\(state->threadpool\)/, `${where}: ${text}`);
      // the loop's call is the one guarded by `if (node_n + 1 < cgraph->n_nodes)`, the final one not
      const guard = lines.slice(Number(line) - 3, Number(line) - 1).join("\n");
      assert.equal(/node_n \+ 1 < cgraph->n_nodes/.test(guard), !site.final, `${where}: ${guard}`);
      const objdump = execFileSync(
        "objdump",
        [
          "-d",
          `--start-address=0x${site.address.toString(16)}`,
          `--stop-address=0x${(site.address + 5).toString(16)}`,
          lib,
        ],
        { encoding: "utf8" },
      );
      assert.match(objdump, /call\s+[0-9a-f]+ <ggml_barrier(@plt)?>/);
    }
    const loop = sites.find((s) => !s.final)!;
    assert.ok(STEP_REGISTERS.includes(loop.register!));
  });

  test("every prebuilt CPU variant of node-llama-cpp", () => {
    const dir = manifest().nodeLlamaCpp.prebuiltDir;
    const variants = readdirSync(dir).filter((f) => /^libggml-cpu-.+\.so$/.test(f));
    assert.ok(variants.length >= 5, `prebuilt variants in ${dir}: ${variants.join(", ")}`);
    for (const variant of variants) {
      const elf = readElf(join(dir, variant));
      // ggml_barrier is reached through its PLT stub there
      assert.ok(callTargetsOf(elf, "ggml_barrier").size >= 2, variant);
      const sites = findStepSites(elf, N_NODES_OFFSET);
      assert.equal(sites.filter((s) => !s.final).length, 1, `${variant}: ${JSON.stringify(sites)}`);
      assert.equal(sites.filter((s) => s.final).length, 1, `${variant}: ${JSON.stringify(sites)}`);
    }
  });

  test("a stripped copy: the same sites, found by scanning .text", () => {
    const lib = join(manifest().llamaCpp.binDir, "libggml-cpu.so");
    const dir = mkdtempSync(join(tmpdir(), "profinfer-steps-"));
    try {
      const stripped = join(dir, "libggml-cpu.so");
      execFileSync("strip", ["--strip-all", "-o", stripped, lib]);
      const elf = readElf(stripped);
      assert.equal(elf.hasSymbolTable, false);
      const plain = (sites: ReturnType<typeof findStepSites>) =>
        sites.map((s) => ({ address: s.address, final: s.final, register: s.register }));
      const found = findStepSites(elf, N_NODES_OFFSET);
      assert.ok(found.every((s) => s.function === null));
      assert.deepEqual(plain(found), plain(findStepSites(readElf(lib), N_NODES_OFFSET)));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a library without ggml's compute loop has none", () => {
    const base = join(manifest().llamaCpp.binDir, "libggml-base.so");
    assert.deepEqual(findStepSites(readElf(base), N_NODES_OFFSET), []);
    // the wrong n_nodes offset finds no loop either: the pattern is specific
    const lib = join(manifest().llamaCpp.binDir, "libggml-cpu.so");
    assert.deepEqual(findStepSites(readElf(lib), 8), []);
  });
});
