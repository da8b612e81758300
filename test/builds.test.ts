// SPDX-License-Identifier: Apache-2.0
// Builds other than the pinned shared one (set-up makes each, scripts/setup.mjs): llama.cpp linked
// into one executable, with and without OpenMP, its layout resolved from the executable itself;
// older releases, each against its own llama-eval-callback; a llama-cpp-python program. Each is
// held to what the shared build is held to in tracer.test.ts.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import {
  buildRun,
  otherBuilds,
  readElf,
  readRawFile,
  type LlamaCppBuild,
  type Run,
} from "@profinfer/exporter";
import type { ProfStats } from "@profinfer/contract";
import { evalCallbackCommand } from "./support/evalCallback.js";
import {
  assertGraphStructure,
  assertMatchesEvalCallback,
  assertTokenCounts,
  cpuGraphs,
} from "./support/traceChecks.js";
import {
  completion,
  freePort,
  manifest,
  profinfer,
  repoRoot,
  tinyModels,
  type Ran,
} from "./support/targets.js";

const scratch = mkdtempSync(join(tmpdir(), "profinfer-builds-"));
after(() => rmSync(scratch, { recursive: true, force: true }));
let models: ReturnType<typeof tinyModels> = [];
before(() => {
  models = tinyModels();
});
const model = (arch: string) => models.find((m) => m.arch === arch)!.path;
const builds = otherBuilds(manifest());

let runCounter = 0;
async function record(
  args: string[],
  command: string[],
): Promise<{ dir: string; ran: Ran; run: Run; stepSites: boolean }> {
  const dir = join(scratch, `run-${++runCounter}`);
  const ran = await profinfer(["record", "--no-status", "--out", dir, ...args, "--", ...command]);
  assert.equal(ran.code, 0, ran.stderr.slice(-3000));
  const recording = readRawFile(join(dir, "events.pinf"));
  const stepSites = recording.notes.some((n) => n.note.kind === "steps");
  return { dir, ran, run: buildRun(recording), stepSites };
}

/** The set-up's completion command line (llama-completion) run by another build's program. */
function completionWith(program: string, modelPath: string, tokens: number): string[] {
  return [program, ...completion(modelPath, tokens).slice(1)];
}

describe("llama.cpp linked into one executable (BUILD_SHARED_LIBS=OFF)", () => {
  for (const variant of ["static", "static-openmp"]) {
    test(`${variant}: token counts, nesting, every worker thread, and operators against its llama-eval-callback`, async () => {
      const binDir = builds.static.variants![variant]!.binDir;
      const executable = join(binDir, "llama-completion");
      const { ran, run } = await record([], completionWith(executable, model("llama"), 8));
      // everything is in the executable: no llama.cpp or ggml library is mapped
      assert.deepEqual(Object.keys(run.header.target.libraries ?? {}), [executable]);
      assert.equal(run.header.layout?.library, executable, "the layout is the executable's own");
      assertTokenCounts(run, ran.stderr);
      assertGraphStructure(run);
      const threads = new Set(cpuGraphs(run).flatMap((g) => g.ops[0]!.threads.map((t) => t.tid)));
      assert.equal(threads.size, 2, "both worker threads of -t 2");
      assert.doesNotMatch(ran.stderr, /not traced/);

      const callback = await record(
        [],
        evalCallbackCommand(model("qwen2moe"), join(binDir, "llama-eval-callback")),
      );
      const token = assertMatchesEvalCallback(
        callback.run,
        callback.ran.stdout + callback.ran.stderr,
      );
      assert.equal(token.experts?.size, 4, "MoE expert ids of every layer");
    });
  }

  test("stripped: of debug info, traced whole from the symbol table; of its symbol table, the output says what is missing", async () => {
    const original = join(builds.static.variants!.static!.binDir, "llama-completion");
    const noDebug = join(scratch, "llama-completion-no-debug");
    execFileSync("strip", ["--strip-debug", "-o", noDebug, original]);
    assert.equal(readElf(noDebug).hasDebugInfo, false);
    const traced = await record([], completionWith(noDebug, model("qwen2"), 6));
    assertTokenCounts(traced.run, traced.ran.stderr);
    assertGraphStructure(traced.run);
    assert.doesNotMatch(traced.ran.stderr, /not traced/);

    const bare = join(scratch, "llama-completion-stripped");
    execFileSync("strip", ["--strip-all", "-o", bare, original]);
    const dir = join(scratch, "stripped-run");
    const ran = await profinfer([
      "record",
      "--no-status",
      "--out",
      dir,
      "--",
      ...completionWith(bare, model("qwen2"), 6),
    ]);
    assert.equal(ran.code, 0, "the program still runs to its end");
    assert.match(
      ran.stderr,
      /llama-completion-stripped is stripped \(it has no symbol table\), and it maps no llama\.cpp library[^\n]*Nothing was traced\. Trace a build that is not stripped, or strip it with --strip-debug/,
    );
    assert.match(ran.stderr, /eval time =/, "the program ran");
  });

  test("a layout that cannot be resolved: the clear message, and the token level still works", async () => {
    // a copy whose symbol table lacks one function of ggml's API the layout is asked through
    const original = join(builds.static.variants!.static!.binDir, "llama-completion");
    const broken = join(scratch, "llama-completion-no-ggml-init");
    execFileSync("objcopy", ["--strip-symbol=ggml_init", original, broken]);
    const op = await record([], completionWith(broken, model("llama"), 6));
    assert.match(
      op.ran.stderr,
      /cannot resolve the ggml_tensor layout of [^\n]*llama-completion-no-ggml-init: the symbol table of [^\n]* does not define ggml_init[^\n]*This build of ggml is not one profinfer can read safely; operator tracing needs it \(token level still works: --level token\)/,
    );
    const token = await record(["--level", "token"], completionWith(broken, model("llama"), 6));
    assertTokenCounts(token.run, token.ran.stderr);
  });
});

/** llama-cli of an older release: completion mode, which releases from 2025 on ask for with -no-cnv. */
function releaseCompletion(release: LlamaCppBuild, modelPath: string, tokens: number): string[] {
  const cli = join(release.binDir, "llama-cli");
  const help = execFileSync(cli, ["--help"], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  });
  const args = completion(modelPath, tokens).slice(1);
  return [cli, ...(help.includes("-no-cnv") ? args : args.filter((a) => a !== "-no-cnv"))];
}

describe("older llama.cpp releases, built like the pinned one", () => {
  for (const release of builds.releases) {
    test(`${release.llamaCppRelease} (node-llama-cpp ${release.nodeLlamaCppVersion}): token level against its own timings`, async () => {
      const command = releaseCompletion(release, model("llama"), 8);
      const token = await record(["--level", "token"], command);
      assertTokenCounts(token.run, token.ran.stderr);
      assert.equal(token.run.graphRuns.length, 0, "no graph at the token level");
    });

    test(`${release.llamaCppRelease}: graph, operator and metrics levels, and operators against its own llama-eval-callback`, async () => {
      const command = releaseCompletion(release, model("llama"), 8);
      const graph = await record(["--level", "graph"], command);
      assertTokenCounts(graph.run, graph.ran.stderr);
      const computes = graph.run.graphRuns.filter((g) => g.fn === "cpu");
      assert.ok(computes.length >= graph.run.tokens.length, "a CPU graph per llama_decode");
      assert.ok(
        computes.every((g) => g.ops.length === 0),
        "no operator at the graph level",
      );

      const op = await record([], command);
      assertTokenCounts(op.run, op.ran.stderr);
      assertGraphStructure(op.run);
      // releases whose compute loop calls ggml_barrier after every node have no step site
      if (!op.stepSites)
        assert.match(
          op.ran.stderr,
          /the compute loop's barrier call was not found in [^\n]*; operators are timed by probing their functions instead/,
        );

      const port = await freePort();
      const metrics = await record(
        ["--level", "metrics", "--metrics-addr", `127.0.0.1:${port}`, "--metrics-linger", "0"],
        command,
      );
      const stats = JSON.parse(readFileSync(join(metrics.dir, "stats.json"), "utf8")) as ProfStats;
      const evals = /\beval time =\s+[\d.]+ ms \/\s+(\d+) runs/.exec(metrics.ran.stderr);
      assert.equal(
        stats.phases.decode.calls,
        Number(evals?.[1]),
        "decode calls in the kernel's aggregates",
      );
      assert.ok(stats.ops.some((o) => o.display === "mul_mat" && o.totalMs > 0));

      const callback = await record(
        [],
        evalCallbackCommand(model("llama"), join(release.binDir, "llama-eval-callback")),
      );
      assertMatchesEvalCallback(callback.run, callback.ran.stdout + callback.ran.stderr);
    });
  }
});

describe("llama-cpp-python", () => {
  test("a Python program is traced at every level: its token counts, graphs and operators", async () => {
    const python = builds.llamaCppPython;
    const workload = join(repoRoot, "test", "support", "workloads", "llamaCppPythonGenerate.py");
    const command = [python.python, workload, "--model", model("llama"), "--tokens", "8"];
    const summaryOf = (ran: Ran) =>
      JSON.parse(ran.stdout.split("\n").find((l) => l.startsWith("{"))!) as {
        llamaCppPython: string;
        promptTokens: number;
        generatedTokens: number;
        contextTokens: number;
      };
    for (const level of ["token", "graph", "op", "metrics"]) {
      const port = await freePort();
      const extra =
        level === "metrics" ? ["--metrics-addr", `127.0.0.1:${port}`, "--metrics-linger", "0"] : [];
      const { ran, run, dir } = await record(["--level", level, ...extra], command);
      const summary = summaryOf(ran);
      assert.equal(summary.llamaCppPython, python.version);
      assert.equal(summary.generatedTokens, 8);
      const libraries = Object.keys(run.header.target.libraries ?? {});
      assert.ok(
        libraries.length > 0 && libraries.every((l) => l.startsWith(python.libDir)),
        `the package's own libraries were traced: ${libraries.join(", ")}`,
      );
      if (level === "metrics") {
        const stats = JSON.parse(readFileSync(join(dir, "stats.json"), "utf8")) as ProfStats;
        assert.equal(stats.phases.decode.calls, summary.generatedTokens - 1);
        assert.ok(stats.ops.some((o) => o.display === "mul_mat" && o.totalMs > 0));
        continue;
      }
      const prefill = run.tokens.filter((t) => t.phase === "prefill");
      assert.equal(
        prefill.reduce((a, t) => a + t.nTokens, 0),
        summary.promptTokens,
        "prefill tokens = the prompt the program tokenised",
      );
      // each generated token but the last is evaluated for the next one
      assert.equal(
        run.tokens.filter((t) => t.phase === "decode").length,
        summary.generatedTokens - 1,
      );
      assert.equal(
        run.tokens.reduce((a, t) => a + t.nTokens, 0),
        summary.contextTokens,
        "every token llama.cpp evaluated",
      );
      if (level === "graph") assert.ok(run.graphRuns.some((g) => g.fn === "cpu"));
      if (level === "op") {
        assertGraphStructure(run);
        const ops = new Set(cpuGraphs(run).flatMap((g) => g.ops.map((o) => o.tensor.opName)));
        for (const name of ["MUL_MAT", "RMS_NORM", "ROPE", "GET_ROWS"])
          assert.ok(ops.has(name), `${name} among ${[...ops].join(" ")}`);
      }
    }
  });
});
