// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, truncateSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { toWallClockNs } from "./clock.js";
import { displayOpName, parseLayer } from "./dag.js";
import { EVENT_SIZES, EventType } from "../abi/events.js";
import {
  DISPATCH_NS,
  FIXTURE_MONOTONIC_NS,
  FIXTURE_REALTIME_NS,
  FixtureRecorder,
  moeLayerGraph,
  moeRunFixture,
  type ComputeOptions,
  type ComputeResult,
} from "../../../test/support/fixtures.js";
import { buildRun } from "./buildRun.js";
import type { GraphRun, Run } from "./types.js";
import { readRawFile } from "./rawFile.js";

const dir = mkdtempSync(join(tmpdir(), "profinfer-model-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const fixture = moeRunFixture();
const run = buildRun(fixture.rec.recording());
const graph = moeLayerGraph(0);
const nodeIndex = (name: string): number => graph.nodes.findIndex((n) => n.name === name);

function cpuGraphs(r: Run): GraphRun[] {
  return r.graphRuns.filter((g) => g.fn === "cpu");
}

function opOf(g: GraphRun, name: string) {
  const op = g.ops.find((o) => o.tensor.name === name);
  assert.ok(op, `op ${name}`);
  return op;
}

/** One llama_decode call of moeLayerGraph(0) on two threads, as `options` change it. */
function oneCall(options: Partial<ComputeOptions> = {}) {
  const rec = new FixtureRecorder();
  let result: ComputeResult | undefined;
  rec.token(1, 1, 1001, () => {
    result = rec.compute({
      cgraph: 0x1n,
      signature: 0x2n,
      graph: moeLayerGraph(0),
      changed: true,
      threads: [1001, 1002],
      duration: () => 1000,
      ...options,
    });
  });
  return { rec, result: result! };
}

test("a clean recording builds without warnings and with the recorder's notes", () => {
  assert.deepEqual(run.warnings, []);
  assert.equal(run.truncatedAt !== null, false);
  assert.deepEqual(run.drops, {
    counts: { mapFull: 0, nodesTruncated: 0, readFailed: 0, ringBufferFull: 0 },
    total: 0,
  });
  assert.deepEqual(run.exit, { kind: "exit", code: 0, signal: null });
  assert.equal(run.eventCount, fixture.rec.sortedEvents().length);
});

test("tokens hold their graphs, CPU graphs nest in the scheduler's, ops lie inside their graph", () => {
  assert.deepEqual(
    run.tokens.map((t) => [t.seq, t.phase, t.nTokens, t.ret, t.ret !== null]),
    [
      [1, "prefill", 3, 0, true],
      [2, "decode", 1, 0, true],
      [3, "decode", 1, 0, true],
    ],
  );
  for (const token of run.tokens) {
    assert.deepEqual(
      token.graphs.map((g) => g.fn),
      ["sched", "cpu"],
    );
    const [sched, cpu] = token.graphs as [GraphRun, GraphRun];
    assert.equal(cpu.parent, sched);
    assert.equal(cpu.tokenSeq, token.seq);
    for (const g of token.graphs) {
      assert.ok(token.startNs <= g.startNs && g.endNs <= token.endNs);
    }
    assert.ok(sched.startNs <= cpu.startNs && cpu.endNs <= sched.endNs);
    assert.equal(sched.ops.length, 0, "ops belong to the innermost graph");
    for (const op of cpu.ops) {
      for (const t of op.threads) {
        assert.ok(cpu.startNs <= t.startNs && t.endNs <= cpu.endNs, op.tensor.name);
      }
    }
  }
});

test("no two operators overlap on one thread", () => {
  const perThread = new Map<number, [bigint, bigint, string][]>();
  for (const g of run.graphRuns) {
    for (const op of g.ops) {
      for (const t of op.threads) {
        const list = perThread.get(t.tid) ?? [];
        list.push([t.startNs, t.endNs, op.tensor.name]);
        perThread.set(t.tid, list);
      }
    }
  }
  assert.deepEqual([...perThread.keys()].sort(), fixture.tids);
  for (const [tid, list] of perThread) {
    list.sort((a, b) => (a[0] < b[0] ? -1 : 1));
    for (let i = 1; i < list.length; i++) {
      assert.ok(
        list[i - 1]![1] <= list[i]![0],
        `${tid}: ${list[i - 1]![2]} overlaps ${list[i]![2]}`,
      );
    }
  }
});

test("every computed node of every graph gets exactly one OpRun, with every thread", () => {
  for (const g of cpuGraphs(run)) {
    assert.equal(g.complete, true, g.problems.join("; "));
    const covered = g.ops.flatMap((op) => [op.nodeIndex, ...(op.fusedWith ?? [])]);
    assert.deepEqual(
      [...covered].sort((a, b) => a - b),
      g.snapshot!.dag.computed,
    );
    for (const op of g.ops) {
      assert.deepEqual(
        op.threads.map((t) => [t.tid, t.ith]),
        fixture.tids.map((tid, ith) => [tid, ith]),
      );
      assert.deepEqual(op.missingTids, []);
    }
  }
  const computedNames = cpuGraphs(run)[0]!.snapshot!.dag.computed.map((i) => graph.nodes[i]!.name);
  assert.ok(!computedNames.includes("k-0"), "views are not computed");
  assert.ok(!computedNames.includes("result_output (reshaped)"));
});

test("probed operators are timed by their OP events, unprobed ones by the barriers around them", () => {
  fixture.tokens.forEach((token, i) => {
    const g = cpuGraphs(run)[i]!;
    for (const step of token.compute.steps) {
      const op = g.ops.find((o) => o.nodeIndex === step.nodes[0])!;
      assert.equal(op.visible, step.probed, op.tensor.name);
      op.threads.forEach((t, ith) => {
        const expected = step.threads[ith]!;
        assert.equal(t.visible, step.probed);
        assert.equal(t.startNs, step.probed ? expected.opStartNs : step.releaseNs, op.tensor.name);
        assert.equal(
          t.endNs,
          step.probed ? expected.opEndNs : expected.opEndNs + BigInt(DISPATCH_NS),
          op.tensor.name,
        );
        assert.equal(t.barrierStartNs, expected.barrierBeginNs);
        assert.equal(
          t.barrierWaitNs >= Number(expected.barrierEndNs - expected.barrierBeginNs),
          true,
        );
      });
    }
  });
  // Unprobed ops of this graph: the two MUL_MAT_IDs (each with an inner barrier) and SILU between.
  const g = cpuGraphs(run)[1]!;
  assert.deepEqual(
    g.ops.filter((o) => !o.visible).map((o) => o.label),
    ["RMS_NORM+MUL", "MUL_MAT_ID", "UNARY:SILU", "MUL_MAT_ID"],
  );
  assert.ok(opOf(g, "ffn_moe_gate-0").threads.every((t) => t.innerBarrierWaitNs > 0));
  assert.ok(opOf(g, "ffn_moe_silu-0").threads.every((t) => t.innerBarrierWaitNs === 0));
  assert.ok(
    opOf(g, "kq-0").threads.every((t) => t.innerBarrierWaitNs > 0),
    "nested in OP events",
  );
});

test("barrier wait is the time each thread waited for the slowest after the op", () => {
  const g = cpuGraphs(run)[1]!;
  const add = opOf(g, "ffn_out-0");
  // Decode: ADD takes 1000 + 300 * ith; the slowest (ith 2) arrives last, release 100 ns later.
  assert.deepEqual(
    add.threads.map((t) => t.barrierWaitNs),
    [700, 400, 100],
  );
  assert.deepEqual(
    add.threads.map((t) => Number(t.endNs - t.startNs)),
    [1000, 1300, 1600],
  );
  assert.equal(add.durationNs, 1600);
  const last = opOf(g, "result_output");
  // The trailing RESHAPE adds the final barrier after the loop's.
  assert.ok(last.threads.every((t) => t.barrierEndNs! > t.barrierStartNs!));
});

test("RMS_NORM + MUL computed in one step become one OpRun fused with the MUL", () => {
  for (const g of cpuGraphs(run)) {
    const norm = opOf(g, "norm-0");
    assert.equal(norm.label, "RMS_NORM+MUL");
    assert.deepEqual(norm.fusedWith, [nodeIndex("attn_norm-0")]);
    assert.equal(norm.visible, false);
    assert.equal(
      g.ops.some((o) => o.nodeIndex === nodeIndex("attn_norm-0")),
      false,
    );
  }
});

test("views are kept as DAG nodes and edges reach the real producer", () => {
  const dag = cpuGraphs(run)[0]!.snapshot!.dag;
  const k = dag.nodes[nodeIndex("k-0")]!;
  assert.equal(k.view, true);
  assert.equal(k.computed, false);
  const cache = dag.leaves[k.viewOf!.index]!;
  assert.equal(k.viewOf!.kind, "leaf");
  assert.equal(cache.tensor.name, "cache_k_l0");
  assert.equal(cache.kind, "cache");
  // kq-0 reads k-0 (a view of the KV cache) which k_store-0 wrote: the edge starts there.
  const kq = dag.nodes[nodeIndex("kq-0")]!;
  assert.deepEqual(kq.sources[0]!.direct, { kind: "node", index: nodeIndex("k-0") });
  assert.deepEqual(kq.sources[0]!.producer, { kind: "node", index: nodeIndex("k_store-0") });
  const edge = dag.edges.find((e) => e.to === kq.index && e.slot === 0)!;
  assert.deepEqual(edge.from, { kind: "node", index: nodeIndex("k_store-0") });
  assert.deepEqual(edge.via, { kind: "node", index: nodeIndex("k-0") });
  assert.deepEqual(kq.sources[1]!.producer, { kind: "node", index: nodeIndex("Qcur-0") });
  // The routing ids: ffn_moe_topk-0 is a view of the argsort, as ggml_argsort_top_k builds it.
  const gate = dag.nodes[nodeIndex("ffn_moe_gate-0")]!;
  assert.deepEqual(gate.sources[2]!.direct, { kind: "node", index: nodeIndex("ffn_moe_topk-0") });
  assert.deepEqual(gate.sources[2]!.producer, {
    kind: "node",
    index: nodeIndex("ffn_moe_argsort-0"),
  });
  assert.deepEqual(dag.nodes[nodeIndex("ffn_moe_topk-0")]!.viewOf, {
    kind: "node",
    index: nodeIndex("ffn_moe_argsort-0"),
  });
  const kinds = Object.fromEntries(dag.leaves.map((l) => [l.tensor.name, l.kind]));
  assert.deepEqual(kinds, {
    "token_embd.weight": "weight",
    inp_tokens: "input",
    "blk.0.attn_norm.weight": "weight",
    "blk.0.attn_q.weight": "weight",
    cache_k_l0: "cache",
    "blk.0.ffn_gate_inp.weight": "weight",
    "blk.0.ffn_gate_exps.weight": "weight",
    "blk.0.ffn_down_exps.weight": "weight",
    "output.weight": "weight",
  });
});

test("op names come from the header's tables, sub-ops from op_params[0]", () => {
  const g = cpuGraphs(run)[0]!;
  const mm = opOf(g, "Qcur-0");
  assert.equal(mm.tensor.op, run.header.opNames.indexOf("MUL_MAT"));
  assert.equal(mm.tensor.opName, "MUL_MAT");
  assert.equal(mm.tensor.typeName, "f32");
  const silu = opOf(g, "ffn_moe_silu-0");
  assert.deepEqual(
    [silu.tensor.opName, silu.tensor.subOp, silu.tensor.opLabel],
    ["UNARY", "SILU", "UNARY:SILU"],
  );
  assert.equal(displayOpName(silu.label), "unary:silu");
  assert.equal(displayOpName("MUL_MAT"), "mul_mat");
  // The same events under another table name other ops: nothing is compiled in.
  const renamed = fixture.rec.recording();
  renamed.header = { ...renamed.header, opNames: renamed.header.opNames.map((n) => `X_${n}`) };
  const other = buildRun(renamed);
  assert.equal(opOf(cpuGraphs(other)[0]!, "ffn_out-0").tensor.opName, "X_ADD");
});

test("layers are parsed from llama.cpp tensor names", () => {
  const cases: [string, number | null][] = [
    ["attn_norm-3", 3],
    ["ffn_moe_topk-12", 12],
    ["k-3 (view)", 3],
    ["Kcur-7 (permuted) (cont)", 7],
    ["blk.7.attn_q.weight", 7],
    ["cache_k_l5", 5],
    ["inp_embd", null],
    ["result_output", null],
    ["norm", null],
  ];
  for (const [name, layer] of cases) assert.equal(parseLayer(name), layer, name);
  const g = cpuGraphs(run)[0]!;
  assert.equal(opOf(g, "ffn_moe_gate-0").tensor.layer, 0);
  assert.equal(opOf(g, "inp_embd").tensor.layer, null);
});

test("MoE expert ids are attached to their token, per layer, one row per token of the batch", () => {
  fixture.tokens.forEach((expected, i) => {
    const token = run.tokens[i]!;
    assert.deepEqual([...token.experts!.keys()], [0]);
    assert.deepEqual(token.experts!.get(0), expected.experts);
  });
  assert.equal(run.tokens[0]!.experts!.get(0)!.length, 3);
});

test("graphs with the same cgraph and signature share one snapshot and DAG", () => {
  const [prefill, decode1, decode2] = cpuGraphs(run) as [GraphRun, GraphRun, GraphRun];
  assert.notEqual(prefill.snapshot, decode1.snapshot);
  assert.equal(decode1.snapshot, decode2.snapshot);
  assert.equal(decode1.snapshot!.dag, decode2.snapshot!.dag);
  assert.equal(decode1.snapshot!.uses, 2);
  assert.equal(prefill.snapshot!.uses, 1);
  assert.equal(decode1.snapshot!.complete, true);
});

test("wall clock is exact BigInt arithmetic on the header's clock pair", () => {
  assert.equal(run.clock.realtimeNs, FIXTURE_REALTIME_NS);
  assert.equal(toWallClockNs(run.clock, FIXTURE_MONOTONIC_NS), FIXTURE_REALTIME_NS);
  assert.equal(toWallClockNs(run.clock, FIXTURE_MONOTONIC_NS + 1n), FIXTURE_REALTIME_NS + 1n);
  const first = run.tokens[0]!.startNs;
  assert.equal(
    toWallClockNs(run.clock, first),
    1_732_870_000_123_456_789n + (first - 5_000_000_000n),
  );
  // A double could not have told these apart.
  assert.equal(Number(FIXTURE_REALTIME_NS + 1n), Number(FIXTURE_REALTIME_NS));
});

test("off-CPU time is charged to the operator intervals it overlaps, with who preempted", () => {
  const p = fixture.preemption;
  const intervals = run.offCpu.get(p.tid)!;
  assert.deepEqual(
    intervals.map((iv) => [iv.startNs, iv.endNs, iv.preempted, iv.by?.comm, iv.by?.tgid]),
    [[p.fromNs, p.toNs, true, "stress-ng", 4242]],
  );
  const kq = opOf(cpuGraphs(run)[2]!, "kq-0");
  const worker = kq.threads.find((t) => t.tid === p.tid)!;
  assert.equal(worker.offCpuNs, 1000);
  assert.equal(worker.preemptedNs, 1000);
  for (const g of run.graphRuns) {
    for (const op of g.ops) {
      for (const t of op.threads) {
        if (op !== kq || t.tid !== p.tid) assert.equal(t.offCpuNs, 0, `${op.tensor.name} ${t.tid}`);
      }
    }
  }
  const sleeps = run.offCpu.get(fixture.tids[0]!)!;
  assert.equal(sleeps.length, 3);
  assert.ok(sleeps.every((iv) => !iv.preempted && iv.by === null && iv.prevState === 1));
  const g3 = cpuGraphs(run)[2]!;
  assert.equal(g3.threads.find((t) => t.tid === p.tid)!.preemptedNs, 1000);
});

test("threads are named main and worker <ith>", () => {
  assert.deepEqual(
    [...run.threads.values()].map((t) => [t.tid, t.name, t.ith, t.decodeCaller, t.comm]),
    [
      [1001, "main", 0, true, "llama-simple"],
      [1002, "worker 1", 1, false, "llama-simple"],
      [1003, "worker 2", 2, false, null],
    ],
  );
});

test("lost events make graphs incomplete, never drop an operator, never throw", () => {
  const lossy = moeRunFixture();
  const qcur = lossy.rec.addr("Qcur-0");
  const g2 = lossy.tokens[1]!.compute;
  const step = g2.steps.find((s) => s.nodes[0] === nodeIndex("Qcur-0"))!;
  const lost = step.threads[2]!;
  const silu = g2.steps.find((s) => s.nodes[0] === nodeIndex("ffn_moe_silu-0"))!.threads[1]!;
  const events = lossy.rec.sortedEvents().filter(
    (ev) =>
      // the barrier after Qcur-0 on worker 2 of the second call
      !(
        ev.tid === lost.tid &&
        (ev.ts === lost.barrierBeginNs || ev.ts === lost.barrierEndNs) &&
        (ev.type === EventType.BARRIER_BEGIN || ev.type === EventType.BARRIER_END)
      ) &&
      // the OP_END of Qcur-0 on worker 1 of the first call
      !(
        ev.type === EventType.OP_END &&
        ev.dst === qcur &&
        ev.tid === 1002 &&
        ev.ts < lossy.tokens[0]!.compute.endNs
      ) &&
      // the barrier begin after SILU on worker 1 of the second call
      !(
        ev.type === EventType.BARRIER_BEGIN &&
        ev.tid === silu.tid &&
        ev.ts === silu.barrierBeginNs
      ),
  );
  const recording = lossy.rec.recording();
  recording.events = events;
  recording.notes = [
    ...recording.notes,
    {
      type: "note",
      offset: 0,
      afterEvents: events.length,
      note: { kind: "drops", ringBufferFull: 4, readFailed: 0, mapFull: 0, nodesTruncated: 0 },
    },
  ];
  const r = buildRun(recording);
  assert.deepEqual(r.drops, {
    counts: { mapFull: 0, nodesTruncated: 0, readFailed: 0, ringBufferFull: 4 },
    total: 4,
  });
  assert.ok(r.warnings.some((w) => /4 events were dropped/.test(w)));
  const [c1, c2, c3] = cpuGraphs(r) as [GraphRun, GraphRun, GraphRun];
  assert.equal(c1.complete, false);
  assert.equal(c2.complete, false);
  assert.ok(c2.problems.length > 0);
  assert.equal(c3.complete, true);
  for (const g of [c1, c2, c3]) {
    const covered = g.ops.flatMap((op) => [op.nodeIndex, ...(op.fusedWith ?? [])]);
    assert.deepEqual(
      [...covered].sort((a, b) => a - b),
      g.snapshot!.dag.computed,
    );
  }
});

test("a run cut short keeps its earlier tokens whole and marks the rest", () => {
  const path = join(dir, "cut.pinf");
  fixture.rec.writeTo(path);
  const whole = readRawFile(path);
  // Cut in the middle of the third call's graph.
  const third = fixture.tokens[2]!.compute;
  const mid = third.steps[6]!.releaseNs;
  const at = whole.events.findIndex((e) => e.ts >= mid);
  let offset = 12 + Buffer.byteLength(JSON.stringify(whole.header));
  for (const ev of whole.events.slice(0, at)) offset += 4 + EVENT_SIZES[ev.type];
  offset += 10;
  truncateSync(path, offset);
  const read = readRawFile(path);
  assert.ok(read.truncatedAt !== null);
  const r = buildRun(read);
  assert.equal(r.truncatedAt !== null, true);
  assert.ok(r.warnings.some((w) => /cut short/.test(w)));
  assert.deepEqual(
    r.tokens.map((t) => [t.seq, t.ret !== null]),
    [
      [1, true],
      [2, true],
      [3, false],
    ],
  );
  const [c1, c2, c3] = cpuGraphs(r) as [GraphRun, GraphRun, GraphRun];
  assert.equal(c1.complete, true);
  assert.equal(c2.complete, true);
  assert.equal(c3.complete, false);
  assert.equal(c3.ops.length, c2.ops.length);
});

test("operator events without a description leave the graph incomplete, not wrong", () => {
  const r = buildRun(oneCall({ changed: false }).rec.recording());
  const g = cpuGraphs(r)[0]!;
  assert.equal(g.snapshot, null);
  assert.equal(g.complete, false);
  assert.deepEqual(g.ops, []);
  assert.match(g.problems.join(), /never described/);
});

test("an unprobed first operator starts at the graph's start, marked as inferred", () => {
  const { rec, result } = oneCall({ probed: (n) => n.op !== "GET_ROWS" });
  const g = cpuGraphs(buildRun(rec.recording()))[0]!;
  const first = g.ops[0]!;
  assert.equal(first.tensor.name, "inp_embd");
  assert.equal(first.visible, false);
  for (const t of first.threads) {
    assert.equal(t.startNs, g.startNs);
    assert.equal(t.startInferred, true);
    assert.equal(t.endNs, result.steps[0]!.threads[t.ith!]!.barrierBeginNs);
  }
  assert.equal(g.complete, true, g.problems.join());
});

test("without barrier events probed operators keep their times and unprobed ones are missing", () => {
  const recording = oneCall().rec.recording();
  recording.events = recording.events.filter(
    (e) => e.type !== EventType.BARRIER_BEGIN && e.type !== EventType.BARRIER_END,
  );
  const g = cpuGraphs(buildRun(recording))[0]!;
  assert.equal(g.complete, false);
  assert.match(g.problems.join(), /no barrier events/);
  assert.equal(opOf(g, "kq-0").threads.length, 2);
  assert.equal(opOf(g, "kq-0").threads[0]!.barrierWaitNs, 0);
  const gate = opOf(g, "ffn_moe_gate-0");
  assert.deepEqual(gate.threads, []);
  assert.deepEqual(gate.fusedWith, undefined);
  // The fused RMS_NORM + MUL step is unprobed too: both nodes are there, without times.
  assert.deepEqual(opOf(g, "norm-0").threads, []);
  assert.deepEqual(opOf(g, "attn_norm-0").threads, []);
  const covered = g.ops.flatMap((op) => [op.nodeIndex, ...(op.fusedWith ?? [])]);
  assert.deepEqual(
    [...covered].sort((a, b) => a - b),
    g.snapshot!.dag.computed,
  );
});

test("the loop of older releases: a barrier after every node, views included, and OpenMP's before it", () => {
  const { rec, result } = oneCall({
    probed: (n) => n.op !== "MUL_MAT_ID" && n.op !== "UNARY",
    duration: (_, ith) => 1000 + 300 * ith,
    olderLoop: true,
  });
  const g = cpuGraphs(buildRun(rec.recording()))[0]!;
  assert.equal(g.complete, true, g.problems.join());
  const dag = g.snapshot!.dag;
  // one operator per computed node, none for a view, none fused (RMS_NORM and MUL apart)
  assert.deepEqual(
    g.ops.map((o) => o.nodeIndex),
    dag.computed,
  );
  const steps = result.steps;
  for (const [s, step] of steps.entries()) {
    const node = step.nodes[0]!;
    const op = g.ops.find((o) => o.nodeIndex === node);
    if (!dag.nodes[node]!.computed) {
      assert.equal(op, undefined, `${dag.nodes[node]!.tensor.name} is no operator`);
      continue;
    }
    // a view's barrier right after it is a wait of this operator
    const waitedUntil = dag.nodes[node + 1]?.computed === false ? steps[s + 1]! : step;
    for (const t of op!.threads) {
      const expected = step.threads[t.ith!]!;
      assert.equal(t.startNs, step.probed ? expected.opStartNs : step.releaseNs);
      assert.equal(t.startInferred, false, "the barrier before the loop starts no operator");
      assert.equal(t.barrierStartNs, expected.barrierBeginNs, op!.tensor.name);
      assert.equal(t.barrierEndNs, waitedUntil.threads[t.ith!]!.barrierEndNs, op!.tensor.name);
    }
  }
  assert.ok(opOf(g, "ffn_moe_gate-0").threads.every((t) => t.innerBarrierWaitNs > 0));
});

test("step probes: the same operators and fused steps as function probes, times from the steps", () => {
  const record = (steps: boolean) => {
    const { rec, result } = oneCall({
      threads: [1001, 1002, 1003],
      duration: (n, ith) => 1000 + 300 * ith + (n.op === "MUL_MAT_ID" ? 5000 : 0),
      steps,
    });
    return { run: buildRun(rec.recording()), result };
  };
  const byFunctions = record(false);
  const bySteps = record(true);
  const [gf] = cpuGraphs(byFunctions.run);
  const [gs] = cpuGraphs(bySteps.run);
  assert.ok(gf && gs);
  assert.deepEqual(gs.problems, []);
  assert.equal(gs.complete, true);
  assert.deepEqual(
    gs.ops.map((o) => [o.nodeIndex, o.label, o.fusedWith ?? []]),
    gf.ops.map((o) => [o.nodeIndex, o.label, o.fusedWith ?? []]),
  );
  assert.ok(
    gs.ops.some((o) => o.fusedWith),
    "the fixture has a fused step",
  );
  // each thread's step ends at its barrier call and waits there for the last thread to arrive
  const steps = bySteps.result.steps;
  assert.equal(steps.length, gs.ops.length);
  steps.forEach((step, k) => {
    const op = gs.ops[k]!;
    assert.equal(op.nodeIndex, step.nodes[0]);
    const arrivals = step.threads.map((t) => t.barrierBeginNs);
    const last = arrivals.reduce((a, b) => (a > b ? a : b));
    for (const t of op.threads) {
      const mine = step.threads.find((x) => x.tid === t.tid)!;
      assert.equal(t.endNs, mine.barrierBeginNs, `${op.label} on ${t.tid}`);
      assert.equal(t.barrierWaitNs, Number(last - mine.barrierBeginNs));
      assert.equal(t.visible, true);
      if (k > 0) {
        const before = steps[k - 1]!.threads.map((x) => x.barrierBeginNs);
        assert.equal(
          t.startNs,
          before.reduce((a, b) => (a > b ? a : b)),
        );
        assert.equal(t.startInferred, false);
      } else assert.equal(t.startInferred, true);
    }
    assert.equal(op.threads.length, 3);
  });
  assert.deepEqual(
    gs.threads.map((t) => t.tid),
    [1001, 1002, 1003],
  );
});

test("step probes: a step that goes backwards is an anomaly, uncovered nodes are missing", () => {
  const rec = new FixtureRecorder();
  let seen = 0;
  rec.drop = (ev) => ev.type === EventType.STEP && ev.tid === 1002 && ++seen === 2;
  rec.token(1, 1, 1001, () => {
    rec.compute({
      cgraph: 0xa000n,
      signature: 0x1n,
      graph: moeLayerGraph(0),
      changed: true,
      threads: [1001, 1002],
      duration: () => 1000,
      steps: true,
    });
  });
  const [g] = cpuGraphs(buildRun(rec.recording()));
  assert.ok(g);
  assert.equal(g.complete, false);
  // thread 1002 lost one step event: its next step covers two steps' nodes, which disagrees
  assert.match(g.problems.join("; "), /disagree|missing/);
});
