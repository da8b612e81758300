// SPDX-License-Identifier: Apache-2.0
// ProfStat: statistics of a run per token, phase, operator type, layer, tensor, thread, scheduler
// interference and MoE expert, as stats.json (deterministic: fixed key order, sorted arrays) and
// as a plain-text summary for the terminal (tables within 100 columns).
import { writeFileSync } from "node:fs";
import { toWallClockNs } from "../trace/clock.js";
import { displayOpName } from "../trace/dag.js";
import { addCounters, deriveFigures } from "../trace/derived.js";
import type {
  DerivedFigures,
  ExpertLayerStat,
  LayerStat,
  OpTypeStat,
  Phase,
  PhaseStat,
  PreemptorStat,
  ProfStats,
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
  const addOp = (acc: CounterAcc, op: OpRun): void => {
    if (!recorded) return;
    for (const t of op.threads) {
      if (!t.counters) continue;
      addCounters(acc.counters, t.counters);
      acc.threadNs += Number(t.endNs - t.startNs);
    }
  };
  const counterFields = (acc: CounterAcc) =>
    recorded ? { counters: acc.counters, derived: deriveFigures(acc.counters, acc.threadNs) } : {};
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
  return {
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
    tokens,
    phases: {
      prefill: phaseStat(
        durationsOf(prefill),
        prefill.reduce((n, t) => n + t.nTokens, 0),
      ),
      decode: decodeStat,
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
}

/** stats.json's text: two-space indented, a newline at the end. */
export function renderStatsJson(stats: ProfStats): string {
  return `${JSON.stringify(stats, null, 2)}\n`;
}

export function writeStatsJson(stats: ProfStats, path: string): void {
  writeFileSync(path, renderStatsJson(stats));
}

const WIDTH = 100;

function fmtMs(value: number): string {
  return value >= 1000 ? value.toFixed(0) : value >= 10 ? value.toFixed(2) : value.toFixed(3);
}

function pct(share: number): string {
  return `${(share * 100).toFixed(1)}%`;
}

function clip(text: string, width: number): string {
  return text.length <= width ? text : `${text.slice(0, Math.max(0, width - 1))}~`;
}

/** A plain table: first column left-aligned (clipped so the table fits WIDTH), others right. */
function table(headers: string[], rows: string[][]): string[] {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const rest = widths.slice(1).reduce((a, w) => a + w + 2, 0);
  widths[0] = Math.min(widths[0]!, Math.max(8, WIDTH - rest));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i === 0 ? clip(c, widths[0]!).padEnd(widths[0]!) : c.padStart(widths[i]!)))
      .join("  ")
      .trimEnd();
  return [line(headers), ...rows.map(line)];
}

function fmtCount(v: number): string {
  if (v >= 1e9) return `${(v / 1e9).toFixed(2)}G`;
  if (v >= 1e6) return `${(v / 1e6).toFixed(2)}M`;
  if (v >= 1e3) return `${(v / 1e3).toFixed(1)}k`;
  return String(Math.round(v));
}

/** Counter totals and derived figures per operator type, and which counters are hardware. */
function counterSummary(stats: ProfStats, top: OpTypeStat[]): string[] {
  const counters = stats.counters ?? [];
  const kinds = counters
    .map((c) => `${c.name} ${c.hardware ? "hardware" : "SOFTWARE"}${c.scaled ? " (scaled)" : ""}`)
    .join(", ");
  const figures: [keyof DerivedFigures, string, (v: number) => string][] = [
    ["ipc", "IPC", (v) => v.toFixed(2)],
    ["backendStallRatio", "be-stall", pct],
    ["cacheMissRate", "miss", pct],
    ["memoryBandwidth", "GB/s", (v) => (v / 1e9).toFixed(2)],
    ["onCpuRatio", "on-cpu", pct],
  ];
  const shown = figures.filter(([key]) => top.some((o) => o.derived?.[key] !== undefined));
  const names = counters.map((c) => c.name).slice(0, Math.max(1, 5 - shown.length));
  return [
    clip(`counters per operator type (${kinds})`, WIDTH),
    ...table(
      ["op", ...names, ...shown.map(([, label]) => label)],
      top.map((o) => [
        o.display,
        ...names.map((n) => (o.counters?.[n] === undefined ? "-" : fmtCount(o.counters[n]!))),
        ...shown.map(([key, , fmt]) => {
          const v = o.derived?.[key];
          return v === undefined ? "-" : fmt(v);
        }),
      ]),
    ),
    "",
  ];
}

export interface SummaryOptions {
  /** rows of the operator table (default 15) */
  ops?: number;
}

/** The terminal summary: compact tables, at most 100 columns wide. */
export function formatStatsSummary(stats: ProfStats, options: SummaryOptions = {}): string {
  const out: string[] = [];
  const r = stats.run;
  out.push(
    clip(`profinfer: ${r.command.join(" ")}`, WIDTH),
    `pid ${r.pid}, level ${r.level}, ${r.events} events, ${stats.tokens.length} llama_decode ` +
      `calls, ${fmtMs(r.durationMs)} ms${r.truncated ? ", TRUNCATED" : ""}`,
    "",
  );

  const ph = stats.phases;
  out.push(
    ...table(
      ["phase", "calls", "tokens", "total ms", "mean ms", "p50 ms", "p99 ms", "tok/s"],
      (["prefill", "decode"] as const).map((name) => {
        const p = ph[name];
        return [
          name,
          String(p.calls),
          String(p.tokens),
          fmtMs(p.totalMs),
          fmtMs(p.meanMs),
          fmtMs(p.p50Ms),
          fmtMs(p.p99Ms),
          p.tokensPerSecond.toFixed(1),
        ];
      }),
    ),
    `TTFT ${ph.ttftMs === null ? "-" : `${fmtMs(ph.ttftMs)} ms`} (first prefill call)   ` +
      `TPOT ${ph.tpotMs === null ? "-" : `${fmtMs(ph.tpotMs)} ms`} (mean decode call)`,
    "",
  );

  if (stats.ops.length > 0) {
    const top = stats.ops.slice(0, options.ops ?? 15);
    out.push(
      `operators (share of ${fmtMs(stats.graphs.opGraphMs)} ms in ${stats.graphs.withOps} ` +
        `graphs; ${stats.graphs.reuses} graph reuses)`,
      ...table(
        ["op", "count", "total ms", "mean ms", "p50 ms", "p99 ms", "share", "barrier ms", "imbal"],
        top.map((o) => [
          o.inferred === o.count ? `${o.display}*` : o.display,
          String(o.count),
          fmtMs(o.totalMs),
          fmtMs(o.meanMs),
          fmtMs(o.p50Ms),
          fmtMs(o.p99Ms),
          pct(o.share),
          fmtMs(o.barrierWaitMs),
          pct(o.imbalance),
        ]),
      ),
    );
    if (stats.ops.length > top.length) out.push(`(${stats.ops.length - top.length} more op types)`);
    if (top.some((o) => o.inferred === o.count)) {
      out.push("* not probed: timed from the barriers around it");
    }
    out.push("");
    if (stats.counters && stats.counters.length > 0) out.push(...counterSummary(stats, top));

    const layerCells = stats.layers.map(
      (l) => `${l.layer === null ? "other" : `L${l.layer}`} ${pct(l.share)}`,
    );
    const cell = Math.max(...layerCells.map((c) => c.length)) + 2;
    const perLine = Math.max(1, Math.floor(WIDTH / cell));
    out.push("time per layer");
    for (let i = 0; i < layerCells.length; i += perLine) {
      out.push(
        layerCells
          .slice(i, i + perLine)
          .map((c) => c.padEnd(cell))
          .join("")
          .trimEnd(),
      );
    }
    out.push("");

    out.push(
      `slowest tensors (mean per ${stats.slowestTensorsOver === "decode" ? "decode " : ""}call)`,
      ...table(
        ["tensor", "op", "layer", "count", "mean ms"],
        stats.slowestTensors.map((t) => [
          t.tensor,
          displayOpName(t.op),
          t.layer === null ? "-" : String(t.layer),
          String(t.count),
          fmtMs(t.meanMs),
        ]),
      ),
      "",
    );
  }

  if (stats.threads.length > 0) {
    out.push(
      ...table(
        ["thread", "tid", "compute ms", "barrier ms", "off-cpu ms", "preempted ms", "preemptions"],
        stats.threads.map((t) => [
          t.name,
          String(t.tid),
          fmtMs(t.computeMs),
          fmtMs(t.barrierWaitMs),
          fmtMs(t.offCpuMs),
          fmtMs(t.preemptedMs),
          String(t.preemptions),
        ]),
      ),
    );
    const i = stats.interference;
    const who = i.by.map((p) => `${p.comm} (${p.tgid}) ${fmtMs(p.ms)} ms`).join(", ");
    out.push(
      clip(
        `preempted ${i.preemptions} times, ${fmtMs(i.preemptedMs)} ms${who ? ` by ${who}` : ""}`,
        WIDTH,
      ),
      "",
    );
  }

  if (stats.experts.length > 0) {
    out.push("experts chosen per layer (id x count, most used first)");
    for (const e of stats.experts) {
      const ranked = Object.entries(e.counts)
        .sort((a, b) => b[1] - a[1] || Number(a[0]) - Number(b[0]))
        .map(([id, n]) => `${id}x${n}`)
        .join(" ");
      out.push(clip(`L${e.layer} k=${e.k} rows=${e.rows}: ${ranked}`, WIDTH));
    }
    out.push("");
  }

  if (stats.drops) {
    out.push(
      stats.drops.total > 0
        ? clip(
            `DROPPED ${stats.drops.total} events: ${Object.entries(stats.drops.counts)
              .filter(([, n]) => n > 0)
              .map(([k, n]) => `${k} ${n}`)
              .join(", ")}`,
            WIDTH,
          )
        : "no events dropped",
    );
  }
  if (stats.graphs.incomplete > 0) {
    out.push(`${stats.graphs.incomplete} of ${stats.graphs.runs} graphs are incomplete`);
  }
  for (const w of stats.warnings) out.push(clip(`warning: ${w}`, WIDTH));
  return `${out.join("\n").trimEnd()}\n`;
}
