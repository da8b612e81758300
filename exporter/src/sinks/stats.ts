// SPDX-License-Identifier: Apache-2.0
// ProfStat: statistics of a run per token, phase, operator type, layer, tensor, thread, scheduler
// interference and MoE expert, as stats.json (deterministic: fixed key order, sorted arrays);
// statsSummary.ts prints them for the terminal.
import { computeFindings } from "./findings.js";
import { writeFileSync } from "node:fs";
import { toWallClockNs } from "../trace/clock.js";
import { displayOpName } from "../trace/dag.js";
import { AggPhase, NO_LAYER } from "../abi/constants.js";
import { functionLabel } from "../discovery/libraries.js";
import { aggregateOpName } from "../trace/aggregateNames.js";
import { addCounters, deriveFigures } from "../trace/derived.js";
import { requestTpotNs, requestTtftNs } from "../trace/requests.js";
import type {
  ExpertLayerStat,
  LatencyStat,
  LayerStat,
  OpTypeStat,
  Phase,
  PhaseStat,
  PreemptorStat,
  ProfStats,
  RequestStat,
  RequestsStat,
  TensorStat,
  ThreadStat,
  TokenStat,
} from "@profinfer/contract";
import type { OpRun, Run } from "../trace/types.js";

export interface StatsOptions {
  /** how many of the slowest tensors to list (default 10) */
  slowest?: number;
}

const ms = (ns: number): number => Math.round(ns) / 1e6;
const ratio = (a: number, b: number): number => (b > 0 ? Math.round((a / b) * 1e4) / 1e4 : 0);

/** Nearest-rank percentile of ascending `sorted`. */
function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1]!;
}

function phaseStat(durations: number[], tokens: number): PhaseStat {
  const sorted = [...durations].sort((a, b) => a - b);
  const total = sorted.reduce((a, b) => a + b, 0);
  return {
    calls: sorted.length,
    tokens,
    totalMs: ms(total),
    meanMs: sorted.length ? ms(total / sorted.length) : 0,
    p50Ms: ms(percentile(sorted, 50)),
    p99Ms: ms(percentile(sorted, 99)),
    tokensPerSecond: total > 0 ? Math.round((tokens / (total / 1e9)) * 100) / 100 : 0,
  };
}

/** Mean and percentiles of values in ms (to the ns, as ms() gives them). */
function latency(valuesMs: number[]): LatencyStat | null {
  if (valuesMs.length === 0) return null;
  const sorted = [...valuesMs].sort((a, b) => a - b);
  const toNs = (v: number) => ms(v * 1e6);
  return {
    mean: toNs(sorted.reduce((a, b) => a + b, 0) / sorted.length),
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
  };
}

/** Per-request figures; the latencies over the requests that ran whole. */
function requestsStat(run: Run): RequestsStat {
  const base = run.firstNs;
  const list: RequestStat[] = run.requests.map((r) => {
    const calls = { prompt: 0, decode: 0, speculative: 0 };
    let mine = 0;
    let all = 0;
    for (const step of r.steps) {
      calls[step.kind] += 1;
      mine += step.nTokens;
      all += step.token.nTokens;
    }
    const ttft = requestTtftNs(r);
    const tpot = requestTpotNs(r);
    return {
      id: r.id,
      pid: r.tgid,
      context: `0x${r.ctx.toString(16)}`,
      seqId: r.seqId,
      startMs: ms(Number(r.startNs - base)),
      durationMs: ms(Number(r.endNs - r.startNs)),
      ttftMs: ttft === null ? null : ms(ttft),
      tpotMs: tpot === null ? null : ms(tpot),
      promptTokens: r.promptTokens,
      cachedTokens: r.cachedTokens,
      generatedTokens: r.generatedTokens,
      calls,
      batchShare: ratio(mine, all),
      incomplete: r.incomplete,
    };
  });
  const whole = list.filter((r) => r.incomplete === null);
  const values = (pick: (r: RequestStat) => number | null) =>
    whole.map(pick).filter((v): v is number => v !== null);
  return {
    count: list.length,
    complete: whole.length,
    ttftMs: latency(values((r) => r.ttftMs)),
    tpotMs: latency(values((r) => r.tpotMs)),
    durationMs: latency(values((r) => r.durationMs)),
    promptTokens: list.reduce((n, r) => n + r.promptTokens, 0),
    generatedTokens: list.reduce((n, r) => n + r.generatedTokens, 0),
    list,
  };
}

function imbalanceOf(op: OpRun): number | null {
  if (op.threads.length < 2) return null;
  let slow = 0;
  let fast = Infinity;
  for (const t of op.threads) {
    const d = Number(t.endNs - t.startNs);
    if (d > slow) slow = d;
    if (d < fast) fast = d;
  }
  return slow > 0 ? (slow - fast) / slow : null;
}

export function computeStats(run: Run, options: StatsOptions = {}): ProfStats {
  const base = run.firstNs;
  const tokens: TokenStat[] = run.tokens.map((t) => ({
    seq: t.seq,
    phase: t.phase,
    nTokens: t.nTokens,
    sequences: t.steps?.length ?? 1,
    startMs: ms(Number(t.startNs - base)),
    durationMs: ms(Number(t.endNs - t.startNs)),
    ret: t.ret,
    complete: t.ret !== null,
    graphs: t.graphs.length,
    opsSampled: t.opsSampled,
  }));
  const byPhase = (phase: Phase) => run.tokens.filter((t) => t.phase === phase && t.ret !== null);
  const prefill = byPhase("prefill");
  const decode = byPhase("decode");
  const mixed = byPhase("mixed");
  const durationsOf = (list: typeof prefill) => list.map((t) => Number(t.endNs - t.startNs));
  const decodeStat = phaseStat(
    durationsOf(decode),
    decode.reduce((n, t) => n + t.nTokens, 0),
  );
  const firstPrefill = prefill[0];

  // Operators: every op run of every graph that carries them.
  const phaseOfSeq = new Map(run.tokens.map((t) => [`${t.tgid}:${t.seq}`, t.phase]));
  interface CounterAcc {
    /** summed counter deltas, and the summed thread time they cover */
    counters: Record<string, number>;
    threadNs: number;
  }
  interface OpAcc extends CounterAcc {
    durations: number[];
    inferred: number;
    barrierNs: number;
    imbalanceSum: number;
    imbalanceN: number;
    threadRuns: number;
  }
  const recorded = (run.counters?.length ?? 0) > 0;
  const stall = run.backendStall ?? null;
  const addOp = (acc: CounterAcc, op: OpRun): void => {
    if (!recorded) return;
    for (const t of op.threads) {
      if (!t.counters) continue;
      addCounters(acc.counters, t.counters);
      acc.threadNs += Number(t.endNs - t.startNs);
    }
  };
  const counterFields = (acc: CounterAcc) =>
    recorded
      ? { counters: acc.counters, derived: deriveFigures(acc.counters, acc.threadNs, stall) }
      : {};
  const opAcc = new Map<string, OpAcc>();
  const layerAcc = new Map<number | null, CounterAcc & { ops: number; ns: number }>();
  const tensorAcc = new Map<
    string,
    CounterAcc & { op: string; layer: number | null; durations: number[] }
  >();
  let opGraphNs = 0;
  let withOps = 0;
  for (const g of run.graphRuns) {
    if (g.ops.length === 0) continue;
    withOps++;
    opGraphNs += Number(g.endNs - g.startNs);
    const phase = g.tokenSeq === null ? null : phaseOfSeq.get(`${g.tgid}:${g.tokenSeq}`);
    for (const op of g.ops) {
      let acc = opAcc.get(op.label);
      if (!acc) {
        acc = {
          durations: [],
          inferred: 0,
          barrierNs: 0,
          imbalanceSum: 0,
          imbalanceN: 0,
          threadRuns: 0,
          counters: {},
          threadNs: 0,
        };
        opAcc.set(op.label, acc);
      }
      acc.durations.push(op.durationNs);
      acc.threadRuns += op.threads.length;
      addOp(acc, op);
      if (!op.visible) acc.inferred++;
      for (const t of op.threads) acc.barrierNs += t.barrierWaitNs;
      const imbalance = imbalanceOf(op);
      if (imbalance !== null) {
        acc.imbalanceSum += imbalance;
        acc.imbalanceN++;
      }
      const layer = op.tensor.layer;
      const l = layerAcc.get(layer) ?? { ops: 0, ns: 0, counters: {}, threadNs: 0 };
      l.ops++;
      l.ns += op.durationNs;
      addOp(l, op);
      layerAcc.set(layer, l);
      if (phase === "decode" || decode.length === 0) {
        const name = op.tensor.name;
        const t = tensorAcc.get(name) ?? {
          op: op.label,
          layer,
          durations: [],
          counters: {},
          threadNs: 0,
        };
        t.durations.push(op.durationNs);
        addOp(t, op);
        tensorAcc.set(name, t);
      }
    }
  }
  const ops: OpTypeStat[] = [...opAcc]
    .map(([label, acc]) => {
      const sorted = [...acc.durations].sort((a, b) => a - b);
      const total = sorted.reduce((a, b) => a + b, 0);
      return {
        op: label,
        display: displayOpName(label),
        count: sorted.length,
        inferred: acc.inferred,
        totalMs: ms(total),
        meanMs: ms(total / sorted.length),
        p50Ms: ms(percentile(sorted, 50)),
        p99Ms: ms(percentile(sorted, 99)),
        share: ratio(total, opGraphNs),
        barrierWaitMs: ms(acc.barrierNs),
        imbalance: acc.imbalanceN ? Math.round((acc.imbalanceSum / acc.imbalanceN) * 1e4) / 1e4 : 0,
        threadRuns: acc.threadRuns,
        ...counterFields(acc),
      };
    })
    .sort((a, b) => b.totalMs - a.totalMs || (a.op < b.op ? -1 : 1));
  const layers: LayerStat[] = [...layerAcc]
    .sort((a, b) => (a[0] ?? Infinity) - (b[0] ?? Infinity))
    .map(([layer, l]) => ({
      layer,
      ops: l.ops,
      totalMs: ms(l.ns),
      share: ratio(l.ns, opGraphNs),
      ...counterFields(l),
    }));
  const slowestTensors: TensorStat[] = [...tensorAcc]
    .map(([tensor, t]) => {
      const total = t.durations.reduce((a, b) => a + b, 0);
      return {
        tensor,
        op: t.op,
        layer: t.layer,
        count: t.durations.length,
        meanMs: ms(total / t.durations.length),
        totalMs: ms(total),
        ...counterFields(t),
      };
    })
    .sort((a, b) => b.meanMs - a.meanMs || (a.tensor < b.tensor ? -1 : 1))
    .slice(0, options.slowest ?? 10);

  // Threads and interference.
  const threadAcc = new Map<number, { compute: number; barrier: number }>();
  for (const g of run.graphRuns) {
    for (const gt of g.threads) {
      const a = threadAcc.get(gt.tid) ?? { compute: 0, barrier: 0 };
      a.compute += gt.computeNs;
      a.barrier += gt.barrierWaitNs;
      threadAcc.set(gt.tid, a);
    }
  }
  const preemptors = new Map<string, PreemptorStat & { ns: number }>();
  let offCpuNs = 0;
  let preemptedNs = 0;
  let preemptions = 0;
  const threads: ThreadStat[] = [...run.threads.values()].map((t) => {
    const intervals = run.offCpu.get(t.tid) ?? [];
    let off = 0;
    let pre = 0;
    let count = 0;
    for (const iv of intervals) {
      const d = Number(iv.endNs - iv.startNs);
      off += d;
      if (iv.preempted) {
        pre += d;
        count++;
        if (iv.by) {
          const key = `${iv.by.comm}\u0000${iv.by.tgid}`;
          const p = preemptors.get(key) ?? {
            comm: iv.by.comm,
            tgid: iv.by.tgid,
            count: 0,
            ms: 0,
            ns: 0,
          };
          p.count++;
          p.ns += d;
          preemptors.set(key, p);
        }
      }
    }
    offCpuNs += off;
    preemptedNs += pre;
    preemptions += count;
    const acc = threadAcc.get(t.tid);
    return {
      tid: t.tid,
      ith: t.ith,
      name: t.name,
      computeMs: ms(acc?.compute ?? 0),
      barrierWaitMs: ms(acc?.barrier ?? 0),
      offCpuMs: ms(off),
      preemptedMs: ms(pre),
      offCpuIntervals: intervals.length,
      preemptions: count,
    };
  });
  const by = [...preemptors.values()]
    .map(({ comm, tgid, count, ns }) => ({ comm, tgid, count, ms: ms(ns) }))
    .sort((a, b) => b.ms - a.ms || (a.comm < b.comm ? -1 : a.comm > b.comm ? 1 : a.tgid - b.tgid));

  // Experts per layer.
  const expertAcc = new Map<number, { k: number; rows: number; counts: Map<number, number> }>();
  for (const t of run.tokens) {
    for (const [layer, rows] of t.experts ?? []) {
      const e = expertAcc.get(layer) ?? { k: 0, rows: 0, counts: new Map<number, number>() };
      for (const row of rows) {
        e.k = Math.max(e.k, row.length);
        e.rows++;
        for (const id of row) e.counts.set(id, (e.counts.get(id) ?? 0) + 1);
      }
      expertAcc.set(layer, e);
    }
  }
  const experts: ExpertLayerStat[] = [...expertAcc]
    .sort((a, b) => a[0] - b[0])
    .map(([layer, e]) => ({
      layer,
      k: e.k,
      rows: e.rows,
      counts: Object.fromEntries(
        [...e.counts].sort((a, b) => a[0] - b[0]).map(([id, n]) => [String(id), n]),
      ),
    }));

  const snapshotsUsed = [...run.snapshots.values()].filter((s) => s.uses > 0);
  const stats: Omit<ProfStats, "findings"> = {
    format: "profinfer-stats",
    version: 1,
    run: {
      command: run.header.target.command,
      pid: run.header.target.pid,
      level: run.header.level,
      events: run.eventCount,
      firstEventRealtimeNs: toWallClockNs(run.clock, run.firstNs).toString(),
      durationMs: ms(Number(run.lastNs - run.firstNs)),
      truncated: run.truncatedAt !== null,
    },
    counters: run.counters ?? null,
    backendStall: run.backendStall
      ? {
          formula: run.backendStall.id,
          metric: run.backendStall.metric,
          unit: run.backendStall.unit,
          events: run.backendStall.events.map((e) => e.name),
        }
      : null,
    tokens,
    requests: requestsStat(run),
    phases: {
      prefill: phaseStat(
        durationsOf(prefill),
        prefill.reduce((n, t) => n + t.nTokens, 0),
      ),
      decode: decodeStat,
      mixed: phaseStat(
        durationsOf(mixed),
        mixed.reduce((n, t) => n + t.nTokens, 0),
      ),
      ttftMs: firstPrefill ? ms(Number(firstPrefill.endNs - firstPrefill.startNs)) : null,
      tpotMs: decode.length ? decodeStat.meanMs : null,
    },
    graphs: {
      runs: run.graphRuns.length,
      withOps,
      incomplete: run.graphRuns.filter((g) => !g.complete).length,
      snapshots: snapshotsUsed.length,
      reuses: snapshotsUsed.reduce((n, s) => n + s.uses - 1, 0),
      opGraphMs: ms(opGraphNs),
    },
    ops,
    layers,
    slowestTensors,
    slowestTensorsOver: decode.length > 0 ? "decode" : "all",
    threads,
    interference: { offCpuMs: ms(offCpuNs), preemptedMs: ms(preemptedNs), preemptions, by },
    experts,
    drops: run.drops,
    warnings: run.warnings,
  };
  if (run.header.level === "metrics") return { ...withKernelAggregates(stats, run), findings: [] };
  return { ...stats, findings: computeFindings(run, stats) };
}

/** Upper bound (ns) of the bucket that holds the p-th percentile of per-bucket `counts`. */
function bucketPercentileNs(counts: readonly number[], boundsNs: readonly number[], p: number) {
  const total = counts.reduce((a, b) => a + b, 0);
  if (total === 0) return 0;
  const rank = Math.max(1, Math.ceil((p / 100) * total));
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    seen += counts[i] ?? 0;
    // past the last bound (+Inf) the largest bound is the best that can be said
    if (seen >= rank) return boundsNs[Math.min(i, boundsNs.length - 1)] ?? 0;
  }
  return boundsNs[boundsNs.length - 1] ?? 0;
}

/**
 * At --level metrics no event reaches user space: the calls, tokens and operator time come from
 * the kernel's aggregates, noted at the end of the run. Percentiles are the upper bounds of the
 * histogram buckets they fall in, and operator counts are per thread, as the kernel counts them.
 */
function withKernelAggregates(
  stats: Omit<ProfStats, "findings">,
  run: Run,
): Omit<ProfStats, "findings"> {
  const note = run.notes.map((n) => n.note).find((n) => n.kind === "aggregates");
  if (!note) return stats;
  const boundsNs = note.boundsNs ?? [];
  const phase = (i: number): PhaseStat => {
    const t = note.tokens[i];
    if (!t || t.calls === 0) return phaseStat([], 0);
    return {
      calls: t.calls,
      tokens: t.tokens,
      totalMs: ms(t.ns),
      meanMs: ms(t.ns / t.calls),
      p50Ms: ms(bucketPercentileNs(t.buckets, boundsNs, 50)),
      p99Ms: ms(bucketPercentileNs(t.buckets, boundsNs, 99)),
      tokensPerSecond: t.ns > 0 ? Math.round((t.tokens / (t.ns / 1e9)) * 100) / 100 : 0,
    };
  };
  const naming = {
    operatorFunctions: [
      ...run.header.opFuncs,
      ...run.notes.flatMap((n) => (n.note.kind === "attach" ? n.note.opFuncs : [])),
    ].map((f) => ({ index: f.index, op: functionLabel(f.symbol) })),
    opNames: {
      ops: run.header.opNames,
      unary: run.header.unaryOpNames,
      glu: run.header.gluOpNames,
    },
  };
  const opAcc = new Map<
    string,
    { count: number; ns: number; barrierNs: number; buckets: number[] }
  >();
  for (const a of note.ops) {
    const name = aggregateOpName(a.func, naming);
    const acc = opAcc.get(name) ?? { count: 0, ns: 0, barrierNs: 0, buckets: [] };
    acc.count += a.count;
    acc.ns += a.ns;
    acc.barrierNs += a.barrierNs;
    a.buckets.forEach((v, i) => (acc.buckets[i] = (acc.buckets[i] ?? 0) + v));
    opAcc.set(name, acc);
  }
  const opNs = [...opAcc.values()].reduce((n, a) => n + a.ns, 0);
  const ops: OpTypeStat[] = [...opAcc]
    .filter(([, a]) => a.count > 0)
    .map(([name, a]) => ({
      op: name.toUpperCase(),
      display: name,
      count: a.count,
      inferred: 0,
      totalMs: ms(a.ns),
      meanMs: ms(a.ns / a.count),
      p50Ms: ms(bucketPercentileNs(a.buckets, boundsNs, 50)),
      p99Ms: ms(bucketPercentileNs(a.buckets, boundsNs, 99)),
      share: ratio(a.ns, opNs),
      barrierWaitMs: ms(a.barrierNs),
      imbalance: 0,
      threadRuns: a.count,
    }))
    .sort((a, b) => b.totalMs - a.totalMs || (a.op < b.op ? -1 : 1));
  const layerAcc = new Map<number, { ops: number; ns: number }>();
  for (const l of note.layers) {
    const acc = layerAcc.get(l.layer) ?? { ops: 0, ns: 0 };
    acc.ops += l.count;
    acc.ns += l.ns;
    layerAcc.set(l.layer, acc);
  }
  const decode = phase(AggPhase.DECODE);
  return {
    ...stats,
    phases: {
      prefill: phase(AggPhase.PREFILL),
      decode,
      mixed: phase(AggPhase.MIXED),
      ttftMs: null,
      tpotMs: decode.calls > 0 ? decode.meanMs : null,
    },
    graphs: { ...stats.graphs, opGraphMs: ms(opNs) },
    ops,
    layers: [...layerAcc]
      .sort((a, b) => a[0] - b[0])
      .map(([layer, l]) => ({
        layer: layer === NO_LAYER ? null : layer,
        ops: l.ops,
        totalMs: ms(l.ns),
        share: ratio(l.ns, opNs),
      })),
    warnings: [
      ...stats.warnings,
      "level metrics: kernel aggregates; p50/p99 are bucket bounds, operator counts are per thread",
    ],
  };
}

/** stats.json's text: two-space indented, a newline at the end. */
export function renderStatsJson(stats: ProfStats): string {
  return `${JSON.stringify(stats, null, 2)}\n`;
}

export function writeStatsJson(stats: ProfStats, path: string): void {
  writeFileSync(path, renderStatsJson(stats));
}
