// SPDX-License-Identifier: Apache-2.0
// The requests section: what reading each llama_decode call's batch costs, and what following
// requests costs a serving llama-server.
// - Batch read: decode_enter's own run time per call (bpf_stats) at --level token, reading the
//   whole batch (--batch-tokens 16384) and only its first token (--batch-tokens 1), for a
//   BENCH_REQUESTS_PROMPT-token prompt call (default 2048, one llama_decode) and for single-token
//   decode calls of the bench model, beside the calls' own median duration.
// - Serving: llama-server with the bench model and 4 slots, BENCH_REQUESTS_CLIENTS concurrent
//   clients (default 4) of BENCH_REQUESTS_TOKENS tokens each (default 32): generated tokens per
//   second over each round's wall time, alone, with `profinfer attach --level token
//   --metrics-addr` (the requests and call metrics alone) and with `--level metrics` (operator
//   aggregates too), taking turns for BENCH_REQUESTS_ROUNDS rounds each (default 5) on one server.
import { spawn } from "node:child_process";
import { rmSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { bpftool, pollProgramRuns, withBpfStats } from "./bpfStats.mjs";
import { cli } from "./harness.mjs";
import { table } from "./output.mjs";
import { durationNs, takeRecording } from "./recording.mjs";
import { median } from "./stats.mjs";

const { buildRun, llamaBinary, requireManifest } = await import("@profinfer/exporter");
// Node's fetch (the lint's globals for scripts predate it)
const { fetch } = globalThis;

/** decode_enter's ns per hit and the calls' median duration, for one llama-bench run */
async function batchReadRun(bench, { prompt, generate, batchTokens }) {
  const out = join(bench.scratch, `batch-${prompt}-${generate}-${batchTokens}`);
  const args = ["-p", String(prompt), "-n", String(generate), "--no-warmup"];
  const [command, cmdArgs] = bench.record(
    ["--no-report", "--level", "token", "--batch-tokens", String(batchTokens)],
    out,
    0,
    args,
  );
  const child = spawn(command, cmdArgs, { stdio: "ignore" });
  const exited = new Promise((r) => child.on("exit", r));
  const runs = await pollProgramRuns(child.pid, exited, ["decode_enter"]);
  const run = buildRun(takeRecording(out));
  const calls = run.tokens.filter((t) => (prompt > 0 ? t.nTokens === prompt : t.nTokens === 1));
  const enter = runs.decode_enter;
  return {
    nsPerCall: enter ? enter.ns / enter.runs : null,
    callMs: median(calls.map(durationNs)) / 1e6,
    calls: calls.length,
  };
}

export async function freePort() {
  return new Promise((resolvePort) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolvePort(port));
    });
  });
}

export async function waitHealthy(url) {
  for (let i = 0; i < 600; i++) {
    try {
      if ((await fetch(`${url}/health`)).ok) return;
    } catch {
      // not listening yet
    }
    await sleep(200);
  }
  throw new Error("llama-server did not become healthy");
}

/** generated tokens per second of `clients` concurrent requests of `tokens` tokens each */
export async function serveRound(url, clients, tokens, round) {
  const started = performance.now();
  const responses = await Promise.all(
    Array.from({ length: clients }, async (_, i) => {
      const body = {
        prompt: `Round ${round}, client ${i}: the quick brown fox jumps over the lazy dog`,
        n_predict: tokens,
        ignore_eos: true,
        temperature: 0,
        cache_prompt: false,
      };
      const r = await fetch(`${url}/completion`, { method: "POST", body: JSON.stringify(body) });
      return (await r.json()).timings;
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const generated = responses.reduce((n, t) => n + t.predicted_n, 0);
  return generated / seconds;
}

/**
 * The serving configurations: llama-server alone, or under `profinfer attach` with these options
 * (--level metrics: operator aggregates by step probes and the requests; --level token with a
 * metrics endpoint: the requests and call metrics alone, no operator probe).
 */
const SERVING = {
  alone: null,
  "attach --level token --metrics-addr": ["--level", "token", "--metrics-addr", "127.0.0.1:0"],
  "attach --level metrics": ["--level", "metrics", "--metrics-addr", "127.0.0.1:0"],
};

/** `profinfer attach ...options` on `pid`, resolved once it traces; stop() detaches */
async function attachTo(pid, out, options) {
  const child = spawn(
    cli,
    ["attach", "--no-status", "--no-report", ...options, "--pid", String(pid), "--out", out],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let stderr = "";
  await new Promise((resolveAttach, reject) => {
    child.stderr.on("data", (d) => {
      stderr += d.toString();
      if (/tracing pid \d+/.test(stderr)) resolveAttach();
    });
    child.on("exit", (code) =>
      reject(new Error(`attach exited (${code}): ${stderr.slice(-1000)}`)),
    );
  });
  return {
    async stop() {
      const exited = new Promise((r) => child.on("exit", r));
      child.kill("SIGINT");
      await exited;
      rmSync(out, { recursive: true, force: true });
    },
  };
}

/** the serving rounds: tokens/s of each configuration, taking turns round by round */
async function measureServing(bench, { clients, tokens, rounds }) {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const server = spawn(
    llamaBinary(requireManifest(), "llama-server"),
    ["-m", bench.model, "-t", "2", "--port", String(port), "-np", "4", "-c", "4096"],
    { stdio: "ignore" },
  );
  try {
    await waitHealthy(url);
    // a first round of the same shape: the server's first calls of each batch size are slower
    await serveRound(url, clients, tokens, -1);
    const names = Object.keys(SERVING);
    const results = Object.fromEntries(names.map((n) => [n, []]));
    for (let round = 0; round < rounds * names.length; round++) {
      const name = names[round % names.length];
      const options = SERVING[name];
      const tracer = options
        ? await attachTo(server.pid, join(bench.scratch, `serve-${round}`), options)
        : null;
      try {
        results[name].push(await serveRound(url, clients, tokens, round));
      } finally {
        await tracer?.stop();
      }
    }
    return results;
  } finally {
    server.kill("SIGTERM");
  }
}

/** { batchRead, serving }; a failure is printed, not thrown: what was measured is kept */
export async function measureRequests(bench, env = process.env) {
  const measured = { batchRead: null, serving: null };
  const prompt = Number(env.BENCH_REQUESTS_PROMPT ?? 2048);
  try {
    if (bpftool) {
      await withBpfStats(async () => {
        measured.batchRead = {};
        for (const [kind, shape] of [
          ["prompt", { prompt, generate: 0 }],
          ["decode", { prompt: 0, generate: 32 }],
        ]) {
          measured.batchRead[kind] = {
            tokens: shape.prompt || 1,
            whole: await batchReadRun(bench, { ...shape, batchTokens: 16384 }),
            first: await batchReadRun(bench, { ...shape, batchTokens: 1 }),
          };
        }
      });
    }
    measured.serving = await measureServing(bench, {
      clients: Number(env.BENCH_REQUESTS_CLIENTS ?? 4),
      tokens: Number(env.BENCH_REQUESTS_TOKENS ?? 32),
      rounds: Number(env.BENCH_REQUESTS_ROUNDS ?? 5),
    });
  } catch (error) {
    process.stdout.write(`requests not measured: ${error.message}\n`);
  }
  return measured;
}

export function requestsLines({ batchRead, serving }) {
  const lines = [];
  if (batchRead) {
    lines.push(
      "",
      "Reading each llama_decode call's batch (decode_enter's own run time per call, bpf_stats, at --level token; --batch-tokens 1 reads one token):",
      "",
      ...table(
        [
          "call",
          "decode_enter, whole batch",
          "decode_enter, 1 token",
          "batch read",
          "call (median)",
          "share of the call",
        ],
        Object.entries(batchRead).map(([kind, { whole, first, tokens }]) => {
          const read = whole.nsPerCall - first.nsPerCall;
          return [
            `${kind}: ${tokens} token${tokens === 1 ? "" : "s"} a call (${whole.calls} calls)`,
            `${(whole.nsPerCall / 1000).toFixed(1)} us`,
            `${(first.nsPerCall / 1000).toFixed(1)} us`,
            `${(read / 1000).toFixed(1)} us`,
            `${whole.callMs.toFixed(2)} ms`,
            `${((100 * whole.nsPerCall) / (whole.callMs * 1e6)).toFixed(4)}%`,
          ];
        }),
      ),
    );
  }
  if (serving && serving.alone?.length > 0) {
    lines.push(
      ...servingLines(
        "llama-server (bench model, 4 slots), concurrent clients, generated tokens/s over each round's wall time, the configurations taking turns round by round on one server:",
        serving,
      ),
    );
  }
  return lines;
}

/**
 * A titled table of llama-server's generated tokens/s per configuration (`serving`: name -> one
 * figure per round, "alone" among them): the median, its change against alone, every round.
 */
export function servingLines(title, serving) {
  const alone = median(serving.alone);
  return [
    "",
    title,
    "",
    ...table(
      ["", "rounds", "tok/s (median)", "vs alone", "each round"],
      Object.entries(serving).map(([name, values]) => {
        const m = median(values);
        return [
          name,
          String(values.length),
          m.toFixed(2),
          name === "alone" ? "-" : `${(100 * (m / alone - 1)).toFixed(2)}%`,
          values.map((v) => v.toFixed(2)).join(" "),
        ];
      }),
    ),
  ];
}
