// SPDX-License-Identifier: Apache-2.0
// Backends beyond the CPU, for real (root, real eBPF): ggml's BLAS backend over OpenBLAS, its
// Vulkan backend on Mesa's lavapipe, and its RPC backend (a backend profinfer has no probes for)
// served by rpc-server on localhost. The splits and their backends against llama.cpp's own
// report of them (GGML_SCHED_DEBUG, printed by the traced process itself), the copies between
// backends, the token counts against llama.cpp's timings, the timeline's backend tracks.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import {
  backendsBinary,
  buildRun,
  readRawFile,
  type GraphRun,
  type Run,
} from "@profinfer/exporter";
import { assignmentKey, schedAssignments } from "./support/schedDebug.js";
import {
  benchModel,
  cli,
  freePort,
  manifest,
  runProgram,
  tinyModels,
  type Ran,
} from "./support/targets.js";

const scratch = mkdtempSync(join(tmpdir(), "profinfer-backends-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** Long enough that the prompt's matrix products reach BLAS's minimum batch (32 rows). */
const LONG_PROMPT =
  "The quick brown fox jumps over the lazy dog while the patient cat watches from the warm " +
  "windowsill, counting every leaf that falls in the quiet autumn garden behind the old house.";

const binary = (name: string) => backendsBinary(manifest(), name);

/** llama-completion of the backends build, printing its scheduler's splits (GGML_SCHED_DEBUG). */
function completion(modelPath: string, tokens: number, devices: string[]): string[] {
  return [
    binary("llama-completion"),
    "-m",
    modelPath,
    "-p",
    LONG_PROMPT,
    "-n",
    String(tokens),
    "--ignore-eos",
    "-no-cnv",
    "--temp",
    "0",
    "-t",
    "2",
    "-c",
    "256",
    "--no-warmup",
    // the scheduler's report is a debug message
    "-v",
    ...devices,
  ];
}

/** Whether something accepts TCP connections on the loopback port. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolveIt) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolveIt(true);
    });
    socket.once("error", () => resolveIt(false));
  });
}

let runCounter = 0;
async function record(
  command: string[],
  args: string[] = [],
): Promise<{ ran: Ran; run: Run; dir: string }> {
  const dir = join(scratch, `run-${++runCounter}`);
  const ran = await runProgram(
    cli,
    ["record", "--no-status", "--no-report", "--out", dir, ...args, "--", ...command],
    // lavapipe is a CPU device, which ggml-vulkan takes only when it is named
    {
      env: { ...process.env, GGML_SCHED_DEBUG: "2", GGML_VK_VISIBLE_DEVICES: "0" },
      timeoutMs: 600_000,
    },
  );
  assert.equal(ran.code, 0, ran.stderr.slice(-3000));
  return { ran, run: buildRun(readRawFile(join(dir, "events.pinf"))), dir };
}

const schedGraphs = (run: Run) => run.graphRuns.filter((g) => g.fn === "sched");
const splitsOf = (run: Run, sched: GraphRun) =>
  run.graphRuns.filter((g) => g.split?.sched === sched);

/** llama.cpp's own token counts: the prompt's tokens and the eval runs after it. */
function llamaCounts(text: string): { prompt: number; evals: number } {
  const promptEval = /prompt eval time =\s+[\d.]+ ms \/\s+(\d+) tokens/.exec(text);
  const evals = /\beval time =\s+[\d.]+ ms \/\s+(\d+) runs/.exec(text);
  assert.ok(promptEval && evals, "llama-completion printed its timings");
  return { prompt: Number(promptEval[1]), evals: Number(evals[1]) };
}

/**
 * The splits of every computed scheduler graph equal one of the assignments llama.cpp printed:
 * the backend of each split and the inputs copied to it; each split's first node is where
 * llama.cpp printed its nodes. Returns the backends seen.
 */
function checkSplits(run: Run, output: string): Set<string> {
  const printed = schedAssignments(output);
  assert.ok(printed.length > 0, "GGML_SCHED_DEBUG printed the scheduler's splits");
  const keys = new Map(printed.map((a) => [assignmentKey(a), a]));
  const seen = new Set<string>();
  const graphs = schedGraphs(run);
  assert.ok(graphs.length > 0);
  for (const sched of graphs) {
    const splits = splitsOf(run, sched);
    assert.ok(splits.length > 0, `graph ${sched.id} has its splits`);
    const ours = splits.map((g) => ({
      backend: g.split!.backend.name,
      inputs: g.split!.copies.map((c) => c.srcName),
    }));
    const match = keys.get(assignmentKey(ours));
    assert.ok(
      match,
      `graph ${sched.id}: ${assignmentKey(ours)} is not among llama.cpp's ${[...keys.keys()].join(" || ")}`,
    );
    splits.forEach((g, i) => {
      const s = g.split!;
      seen.add(s.backend.name);
      assert.equal(s.index, i);
      // the first node is where llama.cpp's listing of the split starts (it skips views)
      const first = match[i]!.nodes[0];
      if (first !== undefined) {
        assert.ok(s.firstNode >= 0 && s.firstNode <= first && first < s.firstNode + s.nNodes);
      }
      for (const c of s.copies) {
        assert.ok(
          c.dstName.startsWith(`${s.backend.name}#`),
          `copy ${c.dstName} to ${s.backend.name}`,
        );
        assert.ok(c.bytes !== null && c.bytes > 0 && c.endNs >= c.startNs);
      }
    });
  }
  return seen;
}

/**
 * trace.json has a track per backend; every split slice on it lies inside its graph's slice, and
 * every split was handed over inside its scheduler graph's compute.
 */
function checkTimeline(run: Run, dir: string): void {
  const trace = JSON.parse(readFileSync(join(dir, "trace.json"), "utf8")) as {
    traceEvents: {
      name: string;
      ph: string;
      tid: number;
      ts?: number;
      dur?: number;
      cat?: string;
      args?: Record<string, unknown>;
    }[];
  };
  const tracks = new Map(
    trace.traceEvents
      .filter((e) => e.ph === "M" && e.name === "thread_name")
      .map((e) => [e.tid, String(e.args!["name"])]),
  );
  for (const b of run.backends) {
    assert.ok([...tracks.values()].includes(`backend ${b.name}`), `a track for ${b.name}`);
  }
  const slices = trace.traceEvents.filter((e) => e.ph === "X");
  const graphSlices = slices.filter((e) => e.cat === "backend graph");
  const splitSlices = slices.filter((e) => e.cat === "split");
  assert.equal(splitSlices.length, run.graphRuns.filter((g) => g.split).length);
  const eps = 0.001;
  for (const s of splitSlices) {
    const graph = graphSlices.find((g) => g.tid === s.tid && g.args!["graph"] === s.args!["graph"]);
    assert.ok(graph, `split of graph ${String(s.args!["graph"])} has its graph on its track`);
    assert.ok(s.ts! >= graph.ts! - eps && s.ts! + s.dur! <= graph.ts! + graph.dur! + eps);
  }
  for (const g of run.graphRuns) {
    const sched = g.split?.sched;
    if (!sched) continue;
    assert.ok(g.startNs >= sched.startNs && g.endNs <= sched.endNs, "handed over inside its graph");
    assert.ok(g.split!.completeNs >= g.endNs);
  }
}

describe("BLAS and Vulkan builds, split by split", () => {
  let models: { arch: string; path: string }[] = [];
  before(() => {
    models = [
      ...tinyModels().map((m) => ({ arch: m.arch, path: m.path })),
      { arch: "bench", path: benchModel() },
    ];
  });

  const configurations: { backend: string; devices: string[]; skip?: Record<string, string> }[] = [
    // no GPU device: the scheduler has BLAS (an accelerator) and the CPU; weights left as they
    // are (the CPU backend's repacked Q4_0 weights are in a buffer BLAS cannot read)
    { backend: "BLAS", devices: ["-dev", "none", "--no-repack"] },
    // every layer on the Vulkan device
    {
      backend: "Vulkan0",
      devices: ["-dev", "Vulkan0", "-ngl", "99"],
      skip: {
        qwen2moe:
          "the pinned llama-completion itself dies of SIGSEGV on lavapipe with this model, traced or not",
      },
    },
  ];
  for (const { backend, devices, skip } of configurations) {
    for (const arch of ["llama", "qwen2", "gemma2", "qwen2moe", "bench"]) {
      const why = skip?.[arch];
      test(
        `${backend}, ${arch}: splits and backends as llama.cpp reports them, copies, tokens`,
        why ? { skip: why } : {},
        async () => {
          const model = models.find((m) => m.arch === arch)!.path;
          const { ran, run, dir } = await record(completion(model, 4, devices));
          const output = ran.stdout + ran.stderr;
          const counts = llamaCounts(output);
          const decode = run.tokens.filter((t) => t.phase === "decode");
          const prefill = run.tokens.filter((t) => t.phase === "prefill");
          assert.equal(decode.length, counts.evals, "decode calls = llama.cpp's eval runs");
          assert.equal(
            prefill.reduce((a, t) => a + t.nTokens, 0),
            counts.prompt,
            "prefill tokens = llama.cpp's prompt tokens",
          );
          const seen = checkSplits(run, output);
          assert.ok(seen.has(backend), `${backend} computed splits (saw ${[...seen].join(", ")})`);
          const b = run.backends.find((x) => x.name === backend)!;
          assert.equal(b.namedBy, "registry");
          assert.ok(b.known && b.measures);
          const copies = run.graphRuns.flatMap((g) => g.split?.copies ?? []);
          if (backend === "Vulkan0") {
            assert.ok(copies.length > 0, "inputs copied to the Vulkan device");
            const vk = run.graphRuns.filter((g) => g.split?.backend === b);
            assert.ok(vk.every((g) => g.split!.completion === "synchronized"));
            assert.ok(vk.some((g) => g.split!.calls.some((c) => c.kind === "submit")));
            assert.ok(vk.some((g) => g.split!.calls.some((c) => c.kind === "record")));
          } else {
            const blas = run.graphRuns.filter((g) => g.split?.backend === b);
            const ops = blas.flatMap((g) => g.ops);
            assert.ok(
              ops.length > 0 &&
                ops.every((o) => o.tensor.opName === "MUL_MAT" || o.tensor.opName === "OUT_PROD"),
            );
            assert.ok(
              ops.some((o) => o.threads.length === 1 && o.durationNs > 0),
              "BLAS nodes timed",
            );
          }
          checkTimeline(run, dir);
        },
      );
    }
  }
});

describe("a backend profinfer does not know", () => {
  test("RPC: traced at graph level, named by llama.cpp's own copies, and it says what it could not see", async () => {
    const port = await freePort();
    const server = spawn(
      binary("ggml-rpc-server"),
      ["-H", "127.0.0.1", "-p", String(port), "-t", "1"],
      {
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    after(() => server.kill("SIGKILL"));
    let serverOutput = "";
    server.stdout.on("data", (d: Buffer) => (serverOutput += d.toString()));
    server.stderr.on("data", (d: Buffer) => (serverOutput += d.toString()));
    // it says nothing when it listens (its output is buffered): the port answers
    for (let i = 0; !(await accepts(port)); i++) {
      assert.ok(i < 600, `rpc-server did not listen within 60 s: ${serverOutput}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const model = tinyModels().find((m) => m.arch === "llama")!.path;
    const { ran, run, dir } = await record(
      completion(model, 4, ["--rpc", `127.0.0.1:${port}`, "-ngl", "99", "-dev", "RPC0"]),
    );
    const output = ran.stdout + ran.stderr;
    const seen = checkSplits(run, output);
    const rpc = run.backends.find((b) => b.name.startsWith("RPC"));
    assert.ok(rpc, `an RPC backend among ${[...seen].join(", ")}`);
    assert.equal(rpc.known, false);
    assert.equal(rpc.namedBy, "copies");
    assert.equal(rpc.measures, null);
    assert.ok(rpc.unseen.some((u) => /operators/.test(u)));
    const splits = run.graphRuns.filter((g) => g.split?.backend === rpc);
    assert.ok(splits.length > 0 && splits.every((g) => g.ops.length === 0));
    assert.match(readFileSync(join(dir, "trace.json"), "utf8"), /not_seen/);
    checkTimeline(run, dir);
  });
});
