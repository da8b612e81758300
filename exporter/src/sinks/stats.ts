// SPDX-License-Identifier: Apache-2.0
// ProfStat: statistics of a run per token, phase, operator type, layer, tensor, thread, scheduler
// interference and MoE expert, as stats.json (deterministic: fixed key order, sorted arrays);
// statsSummary.ts prints them for the terminal.
import { BackendStatsAccumulator } from "./backendStats.js";
import { FindingsAccumulator, computeFindings } from "./findings.js";
import { DurationSeries } from "./durations.js";
import { RooflineAcc } from "./roofline.js";
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
  ProfStats,
  RequestStat,
  RequestsStat,
  TensorStat,
  ThreadStat,
  TokenStat,
} from "@profinfer/contract";
import type { MachineProfile } from "@profinfer/contract";
import type { RunHeader } from "../trace/header.js";
import type { NoteRecord } from "../trace/notes.js";
import { chunkOfRun, totalsOfRun, type RunChunk, type RunTotals } from "../trace/runStream.js";
import type { OffCpuInterval, OpRun, Request, Run } from "../trace/types.js";

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

/** A request's figures; its times counted from `base`, the run's first event. */
function requestStat(r: Request, base: bigint): RequestStat {
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
}

/** Per-request figures; the latencies over the requests that ran whole. */
function requestsStat(list: RequestStat[]): RequestsStat {
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

/** Summed counter deltas, and the summed thread time they cover. */
interface CounterAcc {
  counters: Record<string, number>;
  threadNs: number;
}

interface OpAcc extends CounterAcc {
  durations: DurationSeries;
  roofline: Map<Phase, RooflineAcc>;
  inferred: number;
  barrierNs: number;
  imbalanceSum: number;
  imbalanceN: number;
  threadRuns: number;
}

interface TensorAcc extends CounterAcc {
  op: string;
  layer: number | null;
  count: number;
  totalNs: number;
  roofline: RooflineAcc;
}

/** Exact operator durations kept in all, over every op type, before the longest become sketches. */
const EXACT_DURATIONS = 4_000_000;

/**
 * ProfStat of a run added up chunk by chunk (trace/runStream.ts; a whole run is one chunk), so
 * that its memory is the per-call series (a few numbers a llama_decode call and a request) and the
 * operator durations the percentiles need, not the model.
 */
export class StatsAccumulator {
  private readonly tokens: TokenStat[] = [];
  private readonly durations: Record<Phase, number[]> = { prefill: [], decode: [], mixed: [] };
  private readonly phaseTokens: Record<Phase, number> = { prefill: 0, decode: 0, mixed: 0 };
  private firstPrefillNs: number | null = null;
  private readonly requests: RequestStat[] = [];
  private readonly opAcc = new Map<string, OpAcc>();
  private readonly layerAcc = new Map<number | null, CounterAcc & { ops: number; ns: number }>();
  /** per tensor, over the decode calls, and over every call (for a run without decode calls) */
  private readonly tensorDecode = new Map<string, TensorAcc>();
  private readonly tensorAll = new Map<string, TensorAcc>();
  private opGraphNs = 0;
  private graphRuns = 0;
  private withOps = 0;
  private incomplete = 0;
  private withWork = false;
  private readonly threadAcc = new Map<number, { compute: number; barrier: number }>();
  private readonly offCpuAcc = new Map<
    number,
    { off: number; pre: number; intervals: number; preemptions: number }
  >();
  private readonly preemptors = new Map<
    string,
    { comm: string; tgid: number; count: number; ns: number }
  >();
  private readonly expertAcc = new Map<
    number,
    { k: number; rows: number; counts: Map<number, number> }
  >();
  private readonly findings = new FindingsAccumulator();
  private readonly backends = new BackendStatsAccumulator();
  private readonly recorded: boolean;
  private readonly machine: MachineProfile | null;

  /** `base`: the run's first event time, which the series' times count from */
  constructor(
    private readonly header: RunHeader,
    private readonly base: bigint,
    private readonly options: StatsOptions = {},
  ) {
    this.recorded = (header.counters?.length ?? 0) > 0;
    this.machine = header.machine ?? null;
  }

  add(chunk: RunChunk): void {
    const run = chunk.run;
    const base = this.base;
    for (const t of run.tokens) {
      this.tokens.push({
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
      });
      if (t.ret === null) continue;
      const ns = Number(t.endNs - t.startNs);
      this.durations[t.phase].push(ns);
      this.phaseTokens[t.phase] += t.nTokens;
      if (t.phase === "prefill" && this.firstPrefillNs === null) this.firstPrefillNs = ns;
    }
    for (const r of chunk.requestsEnded) this.requests.push(requestStat(r, base));
    this.addOperators(run);
    for (const g of run.graphRuns) {
      this.graphRuns++;
      if (!g.complete) this.incomplete++;
      for (const gt of g.threads) {
        const a = this.threadAcc.get(gt.tid) ?? { compute: 0, barrier: 0 };
        a.compute += gt.computeNs;
        a.barrier += gt.barrierWaitNs;
        this.threadAcc.set(gt.tid, a);
      }
    }
    for (const iv of chunk.offCpuClosed) this.addOffCpu(iv);
    for (const t of run.tokens) {
      for (const [layer, rows] of t.experts ?? []) {
        const e = this.expertAcc.get(layer) ?? { k: 0, rows: 0, counts: new Map<number, number>() };
        for (const row of rows) {
          e.k = Math.max(e.k, row.length);
          e.rows++;
          for (const id of row) e.counts.set(id, (e.counts.get(id) ?? 0) + 1);
        }
        this.expertAcc.set(layer, e);
      }
    }
    this.backends.add(run.graphRuns);
    this.findings.add(chunk);
    this.boundDurations();
  }

  private addOffCpu(iv: OffCpuInterval): void {
    const d = Number(iv.endNs - iv.startNs);
    const a = this.offCpuAcc.get(iv.tid) ?? { off: 0, pre: 0, intervals: 0, preemptions: 0 };
    a.off += d;
    a.intervals++;
    if (iv.preempted) {
      a.pre += d;
      a.preemptions++;
      if (iv.by) {
        const key = `${iv.by.comm}\u0000${iv.by.tgid}`;
        const p = this.preemptors.get(key) ?? {
          comm: iv.by.comm,
          tgid: iv.by.tgid,
          count: 0,
          ns: 0,
        };
        p.count++;
        p.ns += d;
        this.preemptors.set(key, p);
      }
    }
    this.offCpuAcc.set(iv.tid, a);
  }

  private addCounters(acc: CounterAcc, op: OpRun): void {
    if (!this.recorded) return;
    for (const t of op.threads) {
      if (!t.counters) continue;
      addCounters(acc.counters, t.counters);
      acc.threadNs += Number(t.endNs - t.startNs);
    }
  }

  /** Operators: every op run of every graph that carries them. */
  private addOperators(run: Run): void {
    const machine = this.machine;
    const phaseOfSeq = new Map(run.tokens.map((t) => [`${t.tgid}:${t.seq}`, t.phase]));
    for (const g of run.graphRuns) {
      if (g.ops.length === 0) continue;
      this.withOps++;
      this.opGraphNs += Number(g.endNs - g.startNs);
      const phase = g.tokenSeq === null ? null : phaseOfSeq.get(`${g.tgid}:${g.tokenSeq}`);
      for (const op of g.ops) {
        let acc = this.opAcc.get(op.label);
        if (!acc) {
          acc = {
            durations: new DurationSeries(),
            roofline: new Map(),
            inferred: 0,
            barrierNs: 0,
            imbalanceSum: 0,
            imbalanceN: 0,
            threadRuns: 0,
            counters: {},
            threadNs: 0,
          };
          this.opAcc.set(op.label, acc);
        }
        acc.durations.push(op.durationNs);
        if (op.work) this.withWork = true;
        if (phase && op.work) {
          let roof = acc.roofline.get(phase);
          if (!roof) acc.roofline.set(phase, (roof = new RooflineAcc(machine)));
          roof.add(op);
        }
        acc.threadRuns += op.threads.length;
        this.addCounters(acc, op);
        if (!op.visible) acc.inferred++;
        for (const t of op.threads) acc.barrierNs += t.barrierWaitNs;
        const imbalance = imbalanceOf(op);
        if (imbalance !== null) {
          acc.imbalanceSum += imbalance;
          acc.imbalanceN++;
        }
        const layer = op.tensor.layer;
        const l = this.layerAcc.get(layer) ?? { ops: 0, ns: 0, counters: {}, threadNs: 0 };
        l.ops++;
        l.ns += op.durationNs;
        this.addCounters(l, op);
        this.layerAcc.set(layer, l);
        // the slowest tensors are over the decode calls when the run has any, which only its
        // end tells: both are kept
        this.addTensor(this.tensorAll, op);
        if (phase === "decode") this.addTensor(this.tensorDecode, op);
      }
    }
  }

  private addTensor(tensors: Map<string, TensorAcc>, op: OpRun): void {
    const name = op.tensor.name;
    const t = tensors.get(name) ?? {
      op: op.label,
      layer: op.tensor.layer,
      count: 0,
      totalNs: 0,
      counters: {},
      threadNs: 0,
      roofline: new RooflineAcc(this.machine),
    };
    t.count++;
    t.totalNs += op.durationNs;
    t.roofline.add(op);
    this.addCounters(t, op);
    tensors.set(name, t);
  }

  /** Keeps the exact durations within EXACT_DURATIONS values: the longest series become sketches. */
  private boundDurations(): void {
    let total = 0;
    for (const acc of this.opAcc.values()) total += acc.durations.exactCount;
    if (total <= EXACT_DURATIONS) return;
    const longest = [...this.opAcc.values()].sort(
      (a, b) => b.durations.exactCount - a.durations.exactCount,
    );
    for (const acc of longest) {
      if (total <= EXACT_DURATIONS / 2) break;
      total -= acc.durations.exactCount;
      acc.durations.sketch();
    }
  }

  finish(totals: RunTotals): ProfStats {
    const run = totals;
    const decodeStat = phaseStat(this.durations.decode, this.phaseTokens.decode);
    const opGraphNs = this.opGraphNs;
    const stall = run.backendStall ?? null;
    const counterFields = (acc: CounterAcc) =>
      this.recorded
        ? { counters: acc.counters, derived: deriveFigures(acc.counters, acc.threadNs, stall) }
        : {};
    const withWork = this.withWork;
    const ops: OpTypeStat[] = [...this.opAcc]
      .map(([label, acc]) => {
        const d = acc.durations;
        return {
          op: label,
          display: displayOpName(label),
          count: d.count,
          inferred: acc.inferred,
          totalMs: ms(d.total),
          meanMs: ms(d.total / d.count),
          p50Ms: ms(d.percentile(50)),
          p99Ms: ms(d.percentile(99)),
          share: ratio(d.total, opGraphNs),
          barrierWaitMs: ms(acc.barrierNs),
          imbalance: acc.imbalanceN
            ? Math.round((acc.imbalanceSum / acc.imbalanceN) * 1e4) / 1e4
            : 0,
          threadRuns: acc.threadRuns,
          ...counterFields(acc),
          ...(withWork ? { roofline: rooflineByPhase(acc.roofline) } : {}),
        };
      })
      .sort((a, b) => b.totalMs - a.totalMs || (a.op < b.op ? -1 : 1));
    const layers: LayerStat[] = [...this.layerAcc]
      .sort((a, b) => (a[0] ?? Infinity) - (b[0] ?? Infinity))
      .map(([layer, l]) => ({
        layer,
        ops: l.ops,
        totalMs: ms(l.ns),
        share: ratio(l.ns, opGraphNs),
        ...counterFields(l),
      }));
    const decodeCalls = this.durations.decode.length;
    const tensors = decodeCalls > 0 ? this.tensorDecode : this.tensorAll;
    const slowestTensors: TensorStat[] = [...tensors]
      .map(([tensor, t]) => ({
        tensor,
        op: t.op,
        layer: t.layer,
        count: t.count,
        meanMs: ms(t.totalNs / t.count),
        totalMs: ms(t.totalNs),
        ...counterFields(t),
        ...(withWork && t.roofline.figures() ? { roofline: t.roofline.figures()! } : {}),
      }))
      .sort((a, b) => b.meanMs - a.meanMs || (a.tensor < b.tensor ? -1 : 1))
      .slice(0, this.options.slowest ?? 10);

    // Threads and interference.
    let offCpuNs = 0;
    let preemptedNs = 0;
    let preemptions = 0;
    const threads: ThreadStat[] = [...run.threads.values()].map((t) => {
      const o = this.offCpuAcc.get(t.tid) ?? { off: 0, pre: 0, intervals: 0, preemptions: 0 };
      offCpuNs += o.off;
      preemptedNs += o.pre;
      preemptions += o.preemptions;
      const acc = this.threadAcc.get(t.tid);
      return {
        tid: t.tid,
        ith: t.ith,
        name: t.name,
        computeMs: ms(acc?.compute ?? 0),
        barrierWaitMs: ms(acc?.barrier ?? 0),
        offCpuMs: ms(o.off),
        preemptedMs: ms(o.pre),
        offCpuIntervals: o.intervals,
        preemptions: o.preemptions,
      };
    });
    const by = [...this.preemptors.values()]
      .map(({ comm, tgid, count, ns }) => ({ comm, tgid, count, ms: ms(ns) }))
      .sort(
        (a, b) => b.ms - a.ms || (a.comm < b.comm ? -1 : a.comm > b.comm ? 1 : a.tgid - b.tgid),
      );

    const experts: ExpertLayerStat[] = [...this.expertAcc]
      .sort((a, b) => a[0] - b[0])
      .map(([layer, e]) => ({
        layer,
        k: e.k,
        rows: e.rows,
        counts: Object.fromEntries(
          [...e.counts].sort((a, b) => a[0] - b[0]).map(([id, n]) => [String(id), n]),
        ),
      }));

    const uses = [...run.snapshotUses.values()].filter((n) => n > 0);
    const machine = this.machine;
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
      machine,
      counters: run.counters ?? null,
      backendStall: run.backendStall
        ? {
            formula: run.backendStall.id,
            metric: run.backendStall.metric,
            unit: run.backendStall.unit,
            events: run.backendStall.events.map((e) => e.name),
          }
        : null,
      tokens: this.tokens,
      requests: requestsStat([...this.requests].sort((a, b) => a.id - b.id)),
      backends: this.backends.finish(run.backends),
      phases: {
        prefill: phaseStat(this.durations.prefill, this.phaseTokens.prefill),
        decode: decodeStat,
        mixed: phaseStat(this.durations.mixed, this.phaseTokens.mixed),
        ttftMs: this.firstPrefillNs !== null ? ms(this.firstPrefillNs) : null,
        tpotMs: decodeCalls ? decodeStat.meanMs : null,
      },
      graphs: {
        runs: this.graphRuns,
        withOps: this.withOps,
        incomplete: this.incomplete,
        snapshots: uses.length,
        reuses: uses.reduce((n, u) => n + u - 1, 0),
        opGraphMs: ms(opGraphNs),
      },
      ops,
      layers,
      slowestTensors,
      slowestTensorsOver: decodeCalls > 0 ? "decode" : "all",
      threads,
      interference: { offCpuMs: ms(offCpuNs), preemptedMs: ms(preemptedNs), preemptions, by },
      experts,
      drops: run.drops,
      warnings: run.warnings,
    };
    if (run.header.level === "metrics")
      return { ...withKernelAggregates(stats, run.header, run.notes), findings: [] };
    return { ...stats, findings: computeFindings(this.findings.input(), stats) };
  }
}

export function computeStats(run: Run, options: StatsOptions = {}): ProfStats {
  const acc = new StatsAccumulator(run.header, run.firstNs, options);
  acc.add(chunkOfRun(run));
  return acc.finish(totalsOfRun(run));
}

/** Roofline figures per phase, in phase order. */
function rooflineByPhase(accs: Map<Phase, RooflineAcc>): OpTypeStat["roofline"] {
  const out: NonNullable<OpTypeStat["roofline"]> = {};
  for (const phase of ["prefill", "decode", "mixed"] as const) {
    const figures = accs.get(phase)?.figures();
    if (figures) out[phase] = figures;
  }
  return out;
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
  header: RunHeader,
  notes: readonly NoteRecord[],
): Omit<ProfStats, "findings"> {
  const note = notes.map((n) => n.note).find((n) => n.kind === "aggregates");
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
      ...header.opFuncs,
      ...notes.flatMap((n) => (n.note.kind === "attach" ? n.note.opFuncs : [])),
    ].map((f) => ({ index: f.index, op: functionLabel(f.symbol) })),
    opNames: {
      ops: header.opNames,
      unary: header.unaryOpNames,
      glu: header.gluOpNames,
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
