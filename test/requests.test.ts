// SPDX-License-Identifier: Apache-2.0
// Requests (docs/trace-model.md "Requests") against the programs' own figures, traced with real
// eBPF (root): llama-server's per-response timings and /metrics counters with 1, 2, 4 (its
// default) and 8 slots, recorded from launch and attached, and a prompt it restores from its
// prompt cache; node-llama-cpp with several sequences of one context; llama-batched and
// llama-parallel (whose shared system prompt never produces output). Then a request cut off by a
// detach.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test, type TestContext } from "node:test";
import type { ProfStats, RequestStat } from "@profinfer/contract";
import { buildRun, readRawFile, type Run, type Token } from "@profinfer/exporter";
import { attach } from "./support/attach.js";
import {
  batchedCommand,
  parallelCommand,
  parseBatched,
  parseParallel,
} from "./support/llamaExamples.js";
import {
  completeStreaming,
  complete,
  http,
  mixedLoad,
  pairBySlot,
  recordServer,
  runInTurn,
  runLoad,
  serverMetrics,
  startServer,
  type LoadRequest,
  type LoadResponse,
} from "./support/llamaServerLoad.js";
import {
  freePort,
  nodeLlamaCppParallelWorkload,
  profinfer,
  prompt,
  tinyModels,
} from "./support/targets.js";

const scratch = mkdtempSync(join(tmpdir(), "profinfer-requests-"));
after(() => rmSync(scratch, { recursive: true, force: true }));
let model = "";
before(() => {
  model = tinyModels().find((m) => m.arch === "llama")!.path;
});
let runCounter = 0;
const runDir = (name: string) => join(scratch, `${++runCounter}-${name}`);

// Every server runs with a context large enough for the load on each of its slots.
const CONTEXT = ["-c", "2048"];

/** stats.json as a user reads it, and the model it was written from (for call boundaries). */
function readRecording(dir: string): { stats: ProfStats; run: Run } {
  const stats = JSON.parse(readFileSync(join(dir, "stats.json"), "utf8")) as ProfStats;
  const run = buildRun(readRawFile(join(dir, "events.pinf")));
  return { stats, run };
}

/** Requests that produced output, per sequence id, in start order (the list's order). */
function bySequence(list: RequestStat[]): Map<number, RequestStat[]> {
  const out = new Map<number, RequestStat[]>();
  for (const r of list) {
    if (r.generatedTokens === 0) continue;
    out.set(r.seqId, [...(out.get(r.seqId) ?? []), r]);
  }
  return out;
}

/** Each of the server's two timestamps of a figure is truncated to its µs clock (ggml_time_us). */
const CLOCK_MS = 0.002;

interface Pair {
  response: LoadResponse;
  request: RequestStat;
}

/** Each response with its request (pairBySlot), every slot's count checked first. */
function pairResponses(stats: ProfStats, responses: LoadResponse[]): Pair[] {
  const {
    pairs,
    requestsBySlot: requests,
    responsesBySlot: bySlot,
  } = pairBySlot(stats.requests.list, responses);
  const shape = (m: Map<number, unknown[]>) =>
    [...m].map(([k, v]) => [k, v.length]).sort((a, b) => a[0]! - b[0]!);
  const show = () =>
    [...bySlot]
      .sort((a, b) => a[0] - b[0])
      .map(([slot, list]) => {
        const own = list.map(
          (r) => `p${r.timings.prompt_n}+c${r.timings.cache_n} g${r.timings.predicted_n}`,
        );
        const ours = (requests.get(slot) ?? []).map(
          (r) => `p${r.promptTokens}+c${r.cachedTokens} g${r.generatedTokens}`,
        );
        return `slot ${slot}: server ${own.join(", ")}; profinfer ${ours.join(", ")}`;
      })
      .join("\n");
  assert.deepEqual(
    shape(requests),
    shape(bySlot),
    `requests with output per sequence id = responses per slot\n${show()}`,
  );
  return pairs.map(({ response, request }) => ({ response, request: request! }));
}

/** The time llama-server spends outside llama_decode before and after a call: to its neighbours. */
function gaps(run: Run): (token: Token) => { beforeMs: number; afterMs: number } {
  const index = new Map(run.tokens.map((t, i) => [t, i]));
  return (token) => {
    const i = index.get(token)!;
    const previous = run.tokens[i - 1];
    const next = run.tokens[i + 1];
    return {
      beforeMs: previous ? Number(token.startNs - previous.endNs) / 1e6 : Infinity,
      afterMs: next ? Number(next.startNs - token.endNs) / 1e6 : Infinity,
    };
  };
}

/**
 * For every response: profinfer's token counts are the server's, exactly; its latencies are the
 * server's within the time the server spends outside llama_decode around the calls concerned.
 *
 * The server's prompt_ms runs from the slot starting its prompt (while it fills the batch of the
 * request's first call, after the previous call returned) to the first token sampled (after the
 * call that produced it returned, before the next call); profinfer's TTFT runs from that first
 * call's entry to the producing call's exit. So prompt_ms - TTFT is >= 0 and at most the gap
 * before the first call plus the gap after the producing call. Likewise predicted_ms runs from
 * the first token sampled to the last token sampled (after the request's last call), profinfer's
 * generation time (duration - TTFT) from the producing call's exit to the last call's exit: their
 * difference lies between minus the gap after the producing call and plus the gap after the last
 * call. These bounds are the server's own work between calls (sampling, filling the next batch),
 * measured in the same recording, so a preempted server widens them rather than failing the
 * test, while a latency off by one llama_decode call (a few ms here, typically several times the
 * gaps around it) fails it.
 */
function checkAgainstServer(t: TestContext, run: Run, pairs: Pair[]): void {
  const gapsOf = gaps(run);
  const rows: string[] = [];
  for (const { response, request } of pairs) {
    const what = `slot ${response.slot}, request ${response.index} (profinfer's ${request.id})`;
    const timings = response.timings;
    assert.equal(request.promptTokens, timings.prompt_n, `${what}: prompt tokens`);
    assert.equal(request.generatedTokens, timings.predicted_n, `${what}: generated tokens`);
    assert.equal(request.cachedTokens, timings.cache_n, `${what}: cached tokens`);
    assert.equal(request.incomplete, null, `${what}: ran whole`);
    const model = run.requests[request.id]!;
    assert.equal(model.seqId, request.seqId);
    const first = model.steps[0]!.token;
    const producing = model.steps.find((s) => s.token.endNs === model.firstOutputNs)!.token;
    const last = model.steps.at(-1)!.token;
    const ttft = request.ttftMs!;
    const extraPrompt = timings.prompt_ms - ttft;
    const boundPrompt = gapsOf(first).beforeMs + gapsOf(producing).afterMs;
    assert.ok(
      extraPrompt >= -CLOCK_MS && extraPrompt <= boundPrompt + CLOCK_MS,
      `${what}: server prompt_ms ${timings.prompt_ms} vs profinfer TTFT ${ttft}: ` +
        `${extraPrompt.toFixed(3)} ms apart, outside [0, ${boundPrompt.toFixed(3)}]`,
    );
    const generation = request.durationMs - ttft;
    const extraGen = timings.predicted_ms - generation;
    const low = -gapsOf(producing).afterMs;
    const high = gapsOf(last).afterMs;
    assert.ok(
      extraGen >= low - CLOCK_MS && extraGen <= high + CLOCK_MS,
      `${what}: server predicted_ms ${timings.predicted_ms} vs profinfer ${generation.toFixed(3)}: ` +
        `${extraGen.toFixed(3)} ms apart, outside [${low.toFixed(3)}, ${high.toFixed(3)}]`,
    );
    const signed = (ms: number) => `${ms >= 0 ? "+" : ""}${ms.toFixed(3)}`;
    rows.push(
      `slot ${response.slot} p${timings.prompt_n}+c${timings.cache_n} g${timings.predicted_n}: ` +
        `prompt_ms ${timings.prompt_ms.toFixed(3)} ttft ${ttft.toFixed(3)} (${signed(extraPrompt)}); ` +
        `predicted_ms ${timings.predicted_ms.toFixed(3)} gen ${generation.toFixed(3)} (${signed(extraGen)})`,
    );
  }
  t.diagnostic(rows.join("\n"));
}

/** The server's counters over the whole load equal the sums over profinfer's requests. */
function checkTotals(stats: ProfStats, metrics: Map<string, number>, warmUpCalls: number): void {
  const served = stats.requests.list.filter((r) => r.generatedTokens > 0);
  const sum = (pick: (r: RequestStat) => number) => served.reduce((n, r) => n + pick(r), 0);
  assert.equal(
    sum((r) => r.promptTokens),
    metrics.get("prompt_tokens_total"),
    "prompt tokens",
  );
  assert.equal(
    sum((r) => r.generatedTokens),
    metrics.get("tokens_predicted_total"),
    "generated tokens",
  );
  assert.equal(
    sum((r) => r.cachedTokens ?? 0),
    metrics.get("prompt_tokens_cached_total"),
    "cached tokens",
  );
  // n_decode_total counts the server's own llama_decode calls, not the warm-up's
  assert.equal(stats.tokens.length - warmUpCalls, metrics.get("n_decode_total"), "calls");
}

/**
 * llama-server's warm-up, before it serves anything: one request on sequence 0 of prompt chunks
 * only (batches of llama_batch_get_one); its calls.
 */
function warmUpCalls(stats: ProfStats): number {
  const silent = stats.requests.list.filter((r) => r.generatedTokens === 0);
  assert.equal(silent.length, 1, "one request without output: the warm-up");
  const warmUp = silent[0]!;
  assert.equal(warmUp.id, 0, "the warm-up comes first");
  assert.equal(warmUp.seqId, 0);
  assert.equal(warmUp.ttftMs, null);
  assert.equal(warmUp.calls.decode + warmUp.calls.speculative, 0);
  return warmUp.calls.prompt;
}

/** The load with one request more than twice the slots, and one asking for no token at all. */
function loadFor(slots: number): LoadRequest[] {
  // n_predict 0 still samples one token from the prompt's logits (the server says predicted_n 1)
  return [...mixedLoad(Math.max(2 * slots + 1, 6)), { prompt: `${prompt} again`, nPredict: 0 }];
}

/**
 * Records llama-server from its launch while `send` puts a load on it; checks the recording
 * against the server's figures.
 */
async function recordedServerRun(
  t: TestContext,
  name: string,
  extra: string[],
  send: (base: string) => Promise<LoadResponse[]>,
): Promise<{ responses: LoadResponse[]; stats: ProfStats }> {
  const dir = runDir(name);
  const server = await recordServer(dir, model, [...CONTEXT, ...extra], ["--level", "token"]);
  let responses: LoadResponse[];
  let metrics: Map<string, number>;
  try {
    responses = await send(server.base);
    metrics = await serverMetrics(server.base);
  } finally {
    const stopped = await server.stop();
    assert.equal(
      stopped.code,
      0,
      `profinfer record ends with the server's status\n${stopped.stderr}`,
    );
  }
  const { stats, run } = readRecording(dir);
  checkAgainstServer(t, run, pairResponses(stats, responses));
  checkTotals(stats, metrics, warmUpCalls(stats));
  return { responses, stats };
}

/** The load all at once (loadFor) on llama-server with `extra` arguments, recorded from launch. */
async function concurrentLoad(t: TestContext, name: string, extra: string[]): Promise<void> {
  let slots = 0;
  const { responses, stats } = await recordedServerRun(t, name, extra, async (base) => {
    slots = (JSON.parse((await http("GET", `${base}/props`)).text) as { total_slots: number })
      .total_slots;
    return runLoad(base, loadFor(slots));
  });
  assert.equal(slots, slotsOf(extra), "the server's slots (/props)");
  assert.ok(
    responses.some((r) => r.timings.cache_n > 0),
    "the load reuses a slot's cache (a shared prefix)",
  );
  if (slotsOf(extra) > 1)
    assert.ok(
      stats.tokens.some((c) => c.sequences > 1),
      "some llama_decode call holds several sequences",
    );
}

/** The -np value of a server's extra arguments; llama-server's own default (auto) is 4 slots. */
function slotsOf(extra: string[]): number {
  const i = extra.indexOf("-np");
  return i >= 0 ? Number(extra[i + 1]) : 4;
}

describe("llama-server's requests against its own timings and /metrics", () => {
  test("its default 4 slots, recorded from launch", async (t) => {
    await concurrentLoad(t, "server-default", []);
  });

  test("its default 4 slots, attached while it runs and detached with Ctrl-C", async (t) => {
    const server = await startServer(model, CONTEXT);
    try {
      const dir = runDir("server-attach");
      const tracer = await attach(server.process.pid!, dir, ["--level", "token"]);
      const started = performance.now();
      const responses = await runLoad(server.base, loadFor(4));
      const metrics = await serverMetrics(server.base);
      // A request whose last call ended less than two of its step intervals before a detach
      // counts as cut off: profinfer sees calls, not responses. No request's step interval is
      // longer than the whole load, so after twice the load's time every one has ended for it.
      await new Promise((r) => setTimeout(r, 2 * (performance.now() - started)));
      const detached = await tracer.detach();
      assert.equal(detached.code, 0, detached.stderr);
      assert.equal(server.process.exitCode, null, "the server keeps running");
      const { stats, run } = readRecording(dir);
      checkAgainstServer(t, run, pairResponses(stats, responses));
      // attached after its warm-up and before the load: every call is one of the load's
      assert.equal(stats.requests.list.filter((r) => r.generatedTokens === 0).length, 0);
      checkTotals(stats, metrics, 0);
    } finally {
      server.process.kill("SIGKILL");
    }
  });

  for (const slots of [1, 2, 8]) {
    test(`-np ${slots}, recorded from launch`, async (t) => {
      await concurrentLoad(t, `server-np${slots}`, ["-np", String(slots)]);
    });
  }

  test("a retried prompt restored from the prompt cache onto another slot is a request of its own", async (t) => {
    // Slot 0 serves A, then B (the server keeps A's state in its prompt cache in memory); slot 1
    // serves a short C, then A again: the server loads A's state into slot 1 and evaluates A's
    // last token alone, far past C's last position: one token with its output.
    const [a, , , , , c, , b] = mixedLoad(8);
    const { responses } = await recordedServerRun(t, "server-restore", ["-np", "2"], (base) =>
      runInTurn(base, [
        { ...a!, slot: 0 },
        { ...c!, slot: 1 },
        { ...b!, slot: 0 },
        { ...a!, nPredict: a!.nPredict + 1, slot: 1 },
      ]),
    );
    const retried = responses[3]!.timings;
    assert.equal(retried.prompt_n, 1, "the server evaluated the retried prompt's last token only");
    assert.equal(retried.cache_n, responses[0]!.timings.prompt_n - 1, "from A's cached state");
  });
});

describe("several sequences per llama_decode call, against each program's own figures", () => {
  test("node-llama-cpp: one context, 3 sequences generating at once", async () => {
    const dir = runDir("node-llama-cpp");
    const ran = await profinfer([
      "record",
      "--no-status",
      "--level",
      "token",
      "--out",
      dir,
      "--",
      ...nodeLlamaCppParallelWorkload("--model", model, "--sequences", "3", "--tokens", "6"),
    ]);
    assert.equal(ran.code, 0, ran.stderr.slice(-3000));
    const own = JSON.parse(ran.stdout.split("\n").find((l) => l.startsWith("{"))!) as {
      sequences: { promptTokens: number; generatedTokens: number }[];
    };
    const { stats } = readRecording(dir);
    assert.ok(
      stats.tokens.some((c) => c.sequences === 3),
      `a call holds all 3 sequences: ${stats.tokens.map((c) => c.sequences).join(",")}`,
    );
    // node-llama-cpp hands out sequence ids 0, 1, 2 in getSequence() order
    assert.deepEqual(
      stats.requests.list.map((r) => [r.seqId, r.promptTokens, r.generatedTokens, r.incomplete]),
      own.sequences.map((s, i) => [i, s.promptTokens, s.generatedTokens, null]),
    );
  });

  test("llama-batched -np 4: one prompt shared by 4 streams", async () => {
    const dir = runDir("batched");
    const ran = await profinfer([
      "record",
      "--no-status",
      "--level",
      "token",
      "--out",
      dir,
      "--",
      ...batchedCommand(model, { parallel: 4, predict: 24, prompt }),
    ]);
    assert.equal(ran.code, 0, ran.stderr.slice(-3000));
    const own = parseBatched(ran.stdout);
    assert.equal(own.streams.length, 4, "every stream finished");
    const { stats } = readRecording(dir);
    // the streams are sequences 0..3; every prompt token belongs to all of them
    assert.deepEqual(
      stats.requests.list.map((r) => [r.seqId, r.promptTokens, r.generatedTokens, r.incomplete]),
      own.streams
        .sort((a, b) => a.stream - b.stream)
        .map((s) => [s.stream, own.promptTokens, s.generatedTokens, null]),
    );
    assert.equal(
      stats.requests.list.reduce((n, r) => n + r.generatedTokens - 1, 0),
      own.decoded,
      "'decoded N tokens': every sampled token but each stream's last",
    );
    assert.equal(stats.tokens[0]!.sequences, 4, "the prompt's call holds all 4 streams");
  });

  test("llama-parallel -np 3 -ns 6 with its shared system prompt", async () => {
    const dir = runDir("parallel");
    const ran = await profinfer([
      "record",
      "--no-status",
      "--level",
      "token",
      "--out",
      dir,
      "--",
      ...parallelCommand(model, {
        clients: 3,
        sequences: 6,
        predict: 12,
        sharedSystemPrompt: true,
      }),
    ]);
    assert.equal(ran.code, 0, ran.stderr.slice(-3000));
    const own = parseParallel(ran.stdout);
    assert.equal(own.requests.length, 6, "every request was served");
    const { stats } = readRecording(dir);
    // client c decodes on sequence c + 1, its requests one after the other; it reports R tokens
    // decoded after the first, which was sampled from its prompt's logits
    const served = bySequence(stats.requests.list);
    for (let client = 0; client < 3; client++) {
      const mine = own.requests.filter((r) => r.client === client);
      assert.deepEqual(
        served.get(client + 1)!.map((r) => [r.promptTokens, r.generatedTokens - 1, r.cachedTokens]),
        mine.map((r) => [r.promptTokens, r.response, own.systemTokens]),
        `client ${client}`,
      );
    }
    assert.equal(served.size, 3, "no other sequence produced output");
    const all = [...served.values()].flat();
    assert.equal(
      all.reduce((n, r) => n + r.promptTokens, 0),
      own.totalPromptTokens,
    );
    assert.equal(
      all.reduce((n, r) => n + r.generatedTokens - 1, 0),
      own.totalGenTokens,
    );
    assert.ok(all.every((r) => r.incomplete === null));
    // the system prompt: evaluated once on sequence 0, never sampled from (after the warm-up
    // call of llama.cpp's common init, also on sequence 0, also without output)
    const silent = stats.requests.list.filter((r) => r.generatedTokens === 0);
    const system = silent.find((r) => r.promptTokens === own.systemTokens);
    assert.ok(
      system,
      `a request of the ${own.systemTokens} system tokens: ${JSON.stringify(silent)}`,
    );
    assert.equal(system.seqId, 0);
    assert.equal(system.ttftMs, null);
    assert.equal(system.tpotMs, null);
    assert.equal(system.incomplete, null, "no output is not a fault of the recording");
    assert.ok(silent.every((r) => r.seqId === 0));
  });
});

describe("bad input: requests the recording cut off", () => {
  test("a batch beyond --batch-tokens: the excess counted as dropped, its request incomplete, in the trace and the kernel's metrics", async () => {
    const dir = runDir("batch-bound");
    const metricsPort = await freePort();
    const bound = 32;
    const server = await recordServer(dir, model, CONTEXT, [
      "--level",
      "token",
      "--batch-tokens",
      String(bound),
      "--metrics-addr",
      `127.0.0.1:${metricsPort}`,
      "--request-idle",
      "1",
    ]);
    let responses: LoadResponse[] = [];
    let metrics = "";
    try {
      // one after the other: the long prompt's call holds it alone, the short one's fits the bound
      const [long, short] = mixedLoad(2);
      responses = await runInTurn(server.base, [long!, { ...short!, prompt: "Name the bridge." }]);
      assert.ok(
        responses[0]!.timings.prompt_n > bound,
        "the long prompt is one call beyond the bound",
      );
      assert.ok(responses[1]!.timings.prompt_n < bound);
      // both ended (idle for the bound) in the kernel's requests
      for (let i = 0; ; i++) {
        metrics = (await http("GET", `http://127.0.0.1:${metricsPort}/metrics`)).text;
        const ended = (outcome: string) =>
          new RegExp(`profinfer_requests_total\\{[^}]*outcome="${outcome}"\\} 1\\b`).test(metrics);
        if (ended("incomplete") && ended("complete")) break;
        assert.ok(i < 60, `the kernel's requests:\n${metrics}`);
        await new Promise((r) => setTimeout(r, 250));
      }
    } finally {
      const stopped = await server.stop();
      assert.equal(stopped.code, 0, stopped.stderr.slice(-3000));
    }
    const excess = responses[0]!.timings.prompt_n - bound;
    assert.match(metrics, new RegExp(`profinfer_requests_total\\{[^}]*outcome="complete"\\} 1\\b`));
    assert.match(
      metrics,
      new RegExp(`profinfer_events_dropped_total\\{[^}]*reason="batch_truncated"\\} ${excess}\\b`),
    );
    const { stats } = readRecording(dir);
    assert.equal(stats.drops?.counts.batchTruncated, excess, "the tokens not read, counted");
    const served = stats.requests.list.filter((r) => r.generatedTokens > 0);
    assert.equal(served.length, 2);
    assert.match(
      served[0]!.incomplete ?? "",
      new RegExp(`beyond the per-call bound \\(${excess} tokens`),
    );
    assert.equal(served[0]!.generatedTokens, responses[0]!.timings.predicted_n);
    assert.equal(served[1]!.incomplete, null);
    assert.equal(served[1]!.promptTokens, responses[1]!.timings.prompt_n);
    assert.equal(served[1]!.generatedTokens, responses[1]!.timings.predicted_n);
    assert.equal(
      stats.requests.complete,
      served.length - 1 + (stats.requests.count - served.length),
    );
  });

  test("a detach during a long generation marks that request incomplete and no other", async () => {
    // room on each of the 4 slots for a generation that outlasts the test
    const server = await startServer(model, ["-c", "32768"]);
    try {
      const dir = runDir("detach");
      const tracer = await attach(server.process.pid!, dir, ["--level", "token"]);
      const long = completeStreaming(server.base, {
        prompt: `${prompt} and on and on`,
        nPredict: 8000,
      });
      long.done.catch(() => {}); // cancelled below
      const started = performance.now();
      const shortDone = await Promise.all(mixedLoad(2).map((r) => complete(server.base, r)));
      // The short requests must not count as cut off: their last calls have to end more than two
      // of their step intervals before the detach, and none of their intervals is longer than
      // they took in all.
      await new Promise((r) => setTimeout(r, 2 * (performance.now() - started)));
      const receivedAtDetach = long.received();
      const detached = await tracer.detach();
      assert.equal(detached.code, 0, detached.stderr);
      const longTimings = long.timings();
      assert.ok(longTimings, "the long request streamed");
      assert.ok(
        longTimings.predicted_n < 8000,
        `the long request still runs after the detach (${longTimings.predicted_n} tokens)`,
      );
      long.cancel();
      const after = await complete(server.base, { prompt, nPredict: 4 });
      assert.equal(after.timings.predicted_n, 4, "the server serves on after the detach");

      const { stats } = readRecording(dir);
      const cut = stats.requests.list.filter((r) => r.incomplete !== null);
      assert.equal(cut.length, 1, JSON.stringify(stats.requests.list, null, 1));
      // the detach came between its calls, or during one (whose end then was not recorded)
      assert.match(
        cut[0]!.incomplete!,
        /^(the recording ended during it|a llama_decode call of it was not recorded to its end)$/,
      );
      assert.equal(cut[0]!.promptTokens, longTimings.prompt_n);
      assert.ok(
        cut[0]!.generatedTokens >= receivedAtDetach &&
          cut[0]!.generatedTokens <= longTimings.predicted_n,
        `${cut[0]!.generatedTokens} tokens recorded; ${receivedAtDetach} streamed before the ` +
          `detach, ${longTimings.predicted_n} by the server a moment after`,
      );
      const whole = stats.requests.list.filter((r) => r.incomplete === null);
      assert.deepEqual(
        whole.map((r) => [r.promptTokens, r.generatedTokens]).sort(),
        shortDone.map((r) => [r.timings.prompt_n, r.timings.predicted_n]).sort(),
      );
      assert.equal(stats.requests.complete, 2, "the latencies are the whole requests'");
    } finally {
      server.process.kill("SIGKILL");
    }
  });
});
