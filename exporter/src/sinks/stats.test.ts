// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  FixtureRecorder,
  moeRunFixture,
  type ComputeResult,
  type GraphSpec,
} from "../../../test/support/fixtures.js";
import { buildRun } from "../trace/buildRun.js";
import { computeStats, renderStatsJson } from "./stats.js";
import { formatStatsSummary } from "./statsSummary.js";

/**
 * Three calls (a prefill of 4, two decodes) of a 3-node graph on two threads, every op probed, no
 * inner barriers. Per step, thread ith computes for its duration between OP events that start
 * 100 ns after the release and enters the barrier 100 ns after OP_END; the release is 100 ns after
 * the last arrival. GET_ROWS takes 1000 / 2000 ns (ith 0 / 1), ADD 3000 / 1000, MUL_MAT 30000 in
 * the prefill and 10000 in decodes on both. So a CPU graph lasts 7900 + d ns (d the MUL_MAT time)
 * and a call 11900 + d ns; worker 1 is preempted for 2000 ns inside the last MUL_MAT.
 */
function handChecked() {
  const rec = new FixtureRecorder();
  const graph: GraphSpec = {
    leaves: [
      { name: "token_embd.weight", type: "q4_0" },
      { name: "inp_tokens", type: "i32" },
      { name: "blk.1.w.weight", type: "q4_0" },
    ],
    nodes: [
      { name: "inp_embd", op: "GET_ROWS", src: ["token_embd.weight", "inp_tokens"] },
      { name: "add-0", op: "ADD", src: ["inp_embd", "inp_embd"] },
      { name: "mm-1", op: "MUL_MAT", src: ["blk.1.w.weight", "add-0"] },
    ],
  };
  const calls = [
    { seq: 1, n: 4, sig: 1n, changed: true, mm: 30_000 },
    { seq: 2, n: 1, sig: 2n, changed: true, mm: 10_000 },
    { seq: 3, n: 1, sig: 2n, changed: false, mm: 10_000 },
  ];
  let last: ComputeResult | undefined;
  for (const c of calls) {
    rec.token(c.seq, c.n, 1001, () => {
      last = rec.compute({
        cgraph: 0xa0n,
        signature: c.sig,
        graph,
        changed: c.changed,
        threads: [1001, 1002],
        innerBarriers: () => 0,
        duration: (node, ith) =>
          node.op === "GET_ROWS"
            ? [1000, 2000][ith]!
            : node.op === "ADD"
              ? [3000, 1000][ith]!
              : c.mm,
      });
    });
  }
  const mm = last!.steps[2]!.threads[1]!;
  rec.preempt(1002, mm.opStartNs + 1000n, mm.opStartNs + 3000n, {
    comm: "stress",
    tgid: 77,
    tid: 78,
  });
  rec.note({ kind: "drops", ringBufferFull: 0, readFailed: 0, mapFull: 0, nodesTruncated: 0 });
  return rec;
}

test("stats aggregate tokens, phases, ops, layers, tensors and threads as computed by hand", () => {
  const stats = computeStats(buildRun(handChecked().recording()));
  assert.deepEqual(
    stats.tokens.map((t) => [t.seq, t.phase, t.nTokens, t.durationMs]),
    [
      [1, "prefill", 4, 0.0419],
      [2, "decode", 1, 0.0219],
      [3, "decode", 1, 0.0219],
    ],
  );
  assert.deepEqual(stats.phases, {
    prefill: {
      calls: 1,
      tokens: 4,
      totalMs: 0.0419,
      meanMs: 0.0419,
      p50Ms: 0.0419,
      p99Ms: 0.0419,
      tokensPerSecond: 95465.39,
    },
    decode: {
      calls: 2,
      tokens: 2,
      totalMs: 0.0438,
      meanMs: 0.0219,
      p50Ms: 0.0219,
      p99Ms: 0.0219,
      tokensPerSecond: 45662.1,
    },
    mixed: {
      calls: 0,
      tokens: 0,
      totalMs: 0,
      meanMs: 0,
      p50Ms: 0,
      p99Ms: 0,
      tokensPerSecond: 0,
    },
    ttftMs: 0.0419,
    tpotMs: 0.0219,
  });
  // one sequence without batch summaries: one request, its first token from the prompt call
  const [first, , last] = stats.tokens;
  const endMs = (t: typeof first) => t!.startMs + t!.durationMs;
  assert.equal(stats.requests.count, 1);
  assert.deepEqual(
    (({ promptTokens, cachedTokens, generatedTokens, ttftMs, calls, incomplete }) => ({
      promptTokens,
      cachedTokens,
      generatedTokens,
      ttftMs,
      calls,
      incomplete,
    }))(stats.requests.list[0]!),
    {
      promptTokens: 4,
      cachedTokens: null,
      generatedTokens: 3,
      ttftMs: 0.0419,
      calls: { prompt: 1, decode: 2, speculative: 0 },
      incomplete: null,
    },
  );
  assert.ok(
    Math.abs(stats.requests.list[0]!.tpotMs! - (endMs(last) - endMs(first)) / 2) < 1e-6,
    "time per output token: from the first token to the last, per token after the first",
  );
  assert.deepEqual(stats.requests.ttftMs, { mean: 0.0419, p50: 0.0419, p99: 0.0419 });
  assert.deepEqual(stats.graphs, {
    runs: 6,
    withOps: 3,
    incomplete: 0,
    snapshots: 2,
    reuses: 1,
    opGraphMs: 0.0737,
  });
  assert.deepEqual(stats.ops, [
    {
      op: "MUL_MAT",
      display: "mul_mat",
      count: 3,
      inferred: 0,
      totalMs: 0.05,
      meanMs: 0.016667,
      p50Ms: 0.01,
      p99Ms: 0.03,
      share: 0.6784,
      barrierWaitMs: 0.0006,
      imbalance: 0,
      threadRuns: 6,
    },
    {
      op: "ADD",
      display: "add",
      count: 3,
      inferred: 0,
      totalMs: 0.009,
      meanMs: 0.003,
      p50Ms: 0.003,
      p99Ms: 0.003,
      share: 0.1221,
      barrierWaitMs: 0.0066,
      imbalance: 0.6667,
      threadRuns: 6,
    },
    {
      op: "GET_ROWS",
      display: "get_rows",
      count: 3,
      inferred: 0,
      totalMs: 0.006,
      meanMs: 0.002,
      p50Ms: 0.002,
      p99Ms: 0.002,
      share: 0.0814,
      barrierWaitMs: 0.0036,
      imbalance: 0.5,
      threadRuns: 6,
    },
  ]);
  assert.deepEqual(stats.layers, [
    { layer: 0, ops: 3, totalMs: 0.009, share: 0.1221 },
    { layer: 1, ops: 3, totalMs: 0.05, share: 0.6784 },
    { layer: null, ops: 3, totalMs: 0.006, share: 0.0814 },
  ]);
  assert.deepEqual(stats.slowestTensors, [
    { tensor: "mm-1", op: "MUL_MAT", layer: 1, count: 2, meanMs: 0.01, totalMs: 0.02 },
    { tensor: "add-0", op: "ADD", layer: 0, count: 2, meanMs: 0.003, totalMs: 0.006 },
    { tensor: "inp_embd", op: "GET_ROWS", layer: null, count: 2, meanMs: 0.002, totalMs: 0.004 },
  ]);
  assert.deepEqual(stats.threads, [
    {
      tid: 1001,
      ith: 0,
      name: "main",
      computeMs: 0.062,
      barrierWaitMs: 0.0039,
      offCpuMs: 0,
      preemptedMs: 0,
      offCpuIntervals: 0,
      preemptions: 0,
    },
    {
      tid: 1002,
      ith: 1,
      name: "worker 1",
      computeMs: 0.059,
      barrierWaitMs: 0.0069,
      offCpuMs: 0.002,
      preemptedMs: 0.002,
      offCpuIntervals: 1,
      preemptions: 1,
    },
  ]);
  assert.deepEqual(stats.interference, {
    offCpuMs: 0.002,
    preemptedMs: 0.002,
    preemptions: 1,
    by: [{ comm: "stress", tgid: 77, count: 1, ms: 0.002 }],
  });
  assert.deepEqual(stats.experts, []);
  assert.deepEqual(stats.drops, {
    counts: { mapFull: 0, nodesTruncated: 0, readFailed: 0, ringBufferFull: 0 },
    total: 0,
  });
});

test("expert choices are counted per layer", () => {
  const stats = computeStats(buildRun(moeRunFixture().rec.recording()));
  // Rows: call 1 [1,2] [2,3] [3,0]; call 2 [2,3]; call 3 [3,0].
  assert.deepEqual(stats.experts, [
    { layer: 0, k: 2, rows: 5, counts: { 0: 2, 1: 1, 2: 3, 3: 4 } },
  ]);
  const silu = stats.ops.find((o) => o.op === "UNARY:SILU")!;
  assert.equal(silu.inferred, silu.count);
});

test("stats.json is deterministic", () => {
  const a = renderStatsJson(computeStats(buildRun(moeRunFixture().rec.recording())));
  const b = renderStatsJson(computeStats(buildRun(moeRunFixture().rec.recording())));
  assert.equal(a, b);
  assert.ok(a.endsWith("}\n"));
  assert.deepEqual(JSON.parse(a).format, "profinfer-stats");
});

test("the terminal summary fits 100 columns and names what matters", () => {
  for (const rec of [handChecked(), moeRunFixture().rec]) {
    const summary = formatStatsSummary(computeStats(buildRun(rec.recording())));
    for (const line of summary.split("\n")) assert.ok(line.length <= 100, `too wide: ${line}`);
    assert.match(summary, /TTFT \d/);
    assert.match(summary, /mul_mat/);
  }
  const summary = formatStatsSummary(computeStats(buildRun(moeRunFixture().rec.recording())));
  assert.match(summary, /mul_mat_id\*/);
  assert.match(summary, /L0 k=2 rows=5: 3x4 2x3 0x2 1x1/);
  assert.match(summary, /preempted 1 times, .* by stress-ng \(4242\)/);
  assert.match(summary, /no events dropped/);
});
