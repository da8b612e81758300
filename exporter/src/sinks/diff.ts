// SPDX-License-Identifier: Apache-2.0
// Two runs compared: phases, operator types, barrier waits, layers and tensors, each as a mean per
// llama_decode call (or per prompt token) with the per-call values of both runs behind it. A change
// counts when it is more than the runs' own call-to-call noise: the bootstrap interval of the ratio
// of the means (calls resampled with replacement, a seeded generator, so a diff is reproducible)
// lies wholly beyond ±minRelative. Written here: no maintained npm library does a seeded
// bootstrap of a ratio of means, and it is twenty lines.
import type {
  DiffReport,
  DiffRow,
  DiffRunInfo,
  DiffSection,
  DiffVerdict,
} from "@profinfer/contract";
import { displayOpName } from "../trace/dag.js";
import { modelNameOfRun } from "../trace/modelName.js";
import type { GraphRun, OpRun, Run, Token } from "../trace/types.js";

export interface DiffOptions {
  /** the interval's confidence (default 0.99) */
  confidence?: number;
  /** changes below this share of the base are "same" (default 0.15: two runs of one command drift by up to 10% on shared machines) */
  minRelative?: number;
  /** bootstrap resamples (default 2000) */
  resamples?: number;
  /** fewer calls than this on a side: no verdict (default 5) */
  minCalls?: number;
  /**
   * changes per decode call smaller than this share of the decode call's time are "same"
   * (default 0.01): two runs of one command differ by a few µs in small operators, more than
   * either run's own calls vary
   */
  minShare?: number;
}

const DEFAULTS = {
  confidence: 0.99,
  minRelative: 0.15,
  resamples: 2000,
  minCalls: 5,
  minShare: 0.01,
};

/** Per-call values of one figure: a number per call, in the call order of the run. */
type Samples = Map<string, number[]>;

export function diffRuns(
  base: { dir: string; run: Run },
  next: { dir: string; run: Run },
  options: DiffOptions = {},
): DiffReport {
  const method = { ...DEFAULTS, ...options };
  const notCompared: string[] = [];
  return {
    format: "profinfer-diff",
    version: 1,
    base: info(base.dir, base.run),
    new: info(next.dir, next.run),
    method: { name: METHOD, ...method },
    sections: compareSections(base.run, next.run, method, notCompared),
    notCompared,
  };
}

/** The sections both runs can fill; what they cannot goes to `notCompared`, with why. */
function compareSections(
  base: Run,
  next: Run,
  method: typeof DEFAULTS,
  notCompared: string[],
): DiffSection[] {
  const sections: DiffSection[] = [];
  const perCall = (run: Run) => run.header.level !== "metrics";
  if (!perCall(base) || !perCall(next)) {
    const which = [perCall(base) ? null : "BASE", perCall(next) ? null : "NEW"]
      .filter(Boolean)
      .join(" and ");
    notCompared.push(
      `everything: ${which} ran at --level metrics, which records no event per call (its figures are the kernel's aggregates, in stats.json); record both at --level op, graph or token`,
    );
    return sections;
  }
  const [pa, pb] = [phaseSamples(base), phaseSamples(next)];
  const callMs = Math.max(...[pa, pb].map((p) => mean(p.get("decode call")?.values ?? [])));
  const floor = { unit: UNIT_CALL, ms: method.minShare * callMs };
  sections.push(section("phases", pa, pb, method, floor));
  const opsOf = (run: Run) => (decodeWithOps(run).length > 0 ? operatorSamples(run) : null);
  const [a, b] = [opsOf(base), opsOf(next)];
  if (a && b) {
    sections.push(section("operators", a.ops, b.ops, method, floor));
    sections.push(section("barrier wait", a.barrier, b.barrier, method, floor));
    sections.push(section("layers", a.layers, b.layers, method, floor));
    sections.push(section("tensors", a.tensors, b.tensors, method, floor));
    sections.push(structureSection(base, next));
  } else {
    const which = [a ? null : "BASE", b ? null : "NEW"].filter(Boolean).join(" and ");
    notCompared.push(
      `operators, barrier waits, layers and tensors: ${which} recorded no decode call with operators ` +
        `(level ${[base, next].map((r) => r.header.level).join(" against ")}); record both at --level op`,
    );
  }
  return sections;
}

function info(dir: string, run: Run): DiffRunInfo {
  const complete = run.tokens.filter((t) => t.ret !== null);
  return {
    dir,
    command: run.header.target.command,
    level: run.header.level,
    model: modelNameOfRun(run.header, run.notes),
    decodeCalls: complete.filter((t) => t.phase === "decode").length,
    prefillCalls: complete.filter((t) => t.phase === "prefill").length,
  };
}

const METHOD = "bootstrap interval of the ratio of means";
const MS = 1e6;
const UNIT_CALL = "ms per decode call";

/** The calls' own figures: decode call time, prefill time per prompt token, per call. */
function phaseSamples(run: Run): Map<string, { unit: string; values: number[] }> {
  const complete = run.tokens.filter((t) => t.ret !== null);
  const ns = (t: Token) => Number(t.endNs - t.startNs);
  const out = new Map<string, { unit: string; values: number[] }>();
  const decode = complete.filter((t) => t.phase === "decode");
  if (decode.length)
    out.set("decode call", { unit: UNIT_CALL, values: decode.map((t) => ns(t) / MS) });
  const prefill = complete.filter((t) => t.phase === "prefill" && t.nTokens > 0);
  if (prefill.length) {
    out.set("prefill", {
      unit: "ms per prompt token",
      values: prefill.map((t) => ns(t) / t.nTokens / MS),
    });
  }
  return out;
}

/** The complete decode calls whose graphs carry operators, with those graphs. */
function decodeWithOps(run: Run): { token: Token; graphs: GraphRun[] }[] {
  return run.tokens
    .filter((t) => t.ret !== null && t.phase === "decode")
    .map((token) => ({ token, graphs: token.graphs.filter((g) => g.ops.length > 0) }))
    .filter((c) => c.graphs.length > 0);
}

/** Per decode call: each op type's, layer's and tensor's time, and each op type's barrier wait. */
function operatorSamples(run: Run) {
  const calls = decodeWithOps(run);
  const ops: Samples = new Map();
  const barrier: Samples = new Map();
  const layers: Samples = new Map();
  const tensors: Samples = new Map();
  const add = (to: Samples, key: string, call: number, value: number) => {
    let values = to.get(key);
    if (!values) to.set(key, (values = new Array<number>(calls.length).fill(0)));
    values[call]! += value;
  };
  calls.forEach(({ graphs }, i) => {
    for (const g of graphs) {
      for (const op of g.ops) {
        const name = displayOpName(op.label);
        add(ops, name, i, op.durationNs / MS);
        add(barrier, name, i, barrierNs(op) / MS);
        const layer = op.tensor.layer === null ? "(no layer)" : `layer ${op.tensor.layer}`;
        add(layers, layer, i, op.durationNs / MS);
        add(tensors, tensorKey(op, name, layer), i, op.durationNs / MS);
      }
    }
  });
  const unit = (s: Samples) =>
    new Map([...s].map(([k, values]) => [k, { unit: UNIT_CALL, values }] as const));
  return { ops: unit(ops), barrier: unit(barrier), layers: unit(layers), tensors: unit(tensors) };
}

/**
 * The nodes ggml computes over every graph of the run that was described (prompt and decode
 * graphs alike): named ones as `name (op)`, and per op how many unnamed ones a graph has at most
 * (ggml names them node_<index>, which shifts with every node before them, so the names of two
 * models' graphs are not comparable). Nodes, not operator runs: a fused step (rms_norm+mul) is the
 * nodes it fuses, as llama.cpp's graph has them.
 */
export function graphNodes(run: Run): { named: Set<string>; unnamed: Map<string, number> } {
  const named = new Set<string>();
  const unnamed = new Map<string, number>();
  const seen = new Set<object>();
  for (const g of run.graphRuns) {
    const dag = g.snapshot?.dag;
    if (!dag || seen.has(dag)) continue;
    seen.add(dag);
    const counts = new Map<string, number>();
    for (const i of dag.computed) {
      const t = dag.nodes[i]!.tensor;
      const op = displayOpName(t.opLabel);
      if (UNNAMED.test(t.name)) counts.set(op, (counts.get(op) ?? 0) + 1);
      else named.add(`${t.name} (${op})`);
    }
    for (const [op, n] of counts) unnamed.set(op, Math.max(n, unnamed.get(op) ?? 0));
  }
  return { named, unnamed };
}

/** ggml's name for a node its builder left unnamed */
export const UNNAMED = /^(node_\d+)?$/;

function structureSection(base: Run, next: Run): DiffSection {
  const [a, b] = [graphNodes(base), graphNodes(next)];
  const more = (x: typeof a, y: typeof a) => [
    ...[...x.named].filter((k) => !y.named.has(k)),
    ...[...x.unnamed]
      .filter(([op, n]) => n > (y.unnamed.get(op) ?? 0))
      .map(([op, n]) => `${n - (y.unnamed.get(op) ?? 0)} unnamed (${op})`),
  ];
  return { name: "graph nodes", rows: [], added: more(b, a).sort(), removed: more(a, b).sort() };
}

/** A tensor's row: `name (op)`, or for a node ggml left unnamed its op and layer (its name, node_<index>, shifts with every node before it). */
function tensorKey(op: OpRun, name: string, layer: string): string {
  return UNNAMED.test(op.tensor.name)
    ? `unnamed (${name}) in ${layer}`
    : `${op.tensor.name} (${name})`;
}

function barrierNs(op: OpRun): number {
  return op.threads.reduce((n, t) => n + t.barrierWaitNs, 0);
}

function section(
  name: string,
  base: Map<string, { unit: string; values: number[] }>,
  next: Map<string, { unit: string; values: number[] }>,
  method: typeof DEFAULTS,
  floor: { unit: string; ms: number },
): DiffSection {
  const rows: DiffRow[] = [];
  for (const key of new Set([...base.keys(), ...next.keys()])) {
    const a = base.get(key);
    const b = next.get(key);
    const unit = (a ?? b)!.unit;
    const least = unit === floor.unit ? floor.ms : 0;
    rows.push(compare(key, unit, a?.values ?? [], b?.values ?? [], method, least));
  }
  rows.sort((x, y) => Math.abs(y.change) - Math.abs(x.change) || (x.name < y.name ? -1 : 1));
  return {
    name,
    rows,
    added: [...next.keys()].filter((k) => !base.has(k)).sort(),
    removed: [...base.keys()].filter((k) => !next.has(k)).sort(),
  };
}

const mean = (v: readonly number[]) => (v.length ? v.reduce((a, b) => a + b, 0) / v.length : 0);

function compare(
  name: string,
  unit: string,
  a: number[],
  b: number[],
  method: typeof DEFAULTS,
  least: number,
): DiffRow {
  const base = a.length ? mean(a) : null;
  const next = b.length ? mean(b) : null;
  const change = (next ?? 0) - (base ?? 0);
  const relative = base ? (next ?? 0) / base - 1 : null;
  let interval: [number, number] | null = null;
  let verdict: DiffVerdict;
  if (a.length === 0 || b.length === 0) {
    // a figure only one run has (an op of another build, another architecture's block)
    verdict = a.length === 0 ? "added" : "removed";
  } else if (a.length < method.minCalls || b.length < method.minCalls) {
    verdict = "too few calls";
  } else {
    interval = bootstrapRatio(a, b, method.resamples, method.confidence);
    verdict =
      Math.abs(change) < least
        ? "same"
        : interval[0] > method.minRelative
          ? "slower"
          : interval[1] < -method.minRelative
            ? "faster"
            : "same";
  }
  return {
    name,
    unit,
    base,
    new: next,
    change,
    relative,
    interval,
    verdict,
    calls: [a.length, b.length],
  };
}

/**
 * The `confidence` interval of mean(b) / mean(a) - 1 over `resamples` bootstrap resamples of each
 * side's calls. A base whose resampled mean is 0 makes the ratio infinite (a figure from nothing).
 */
function bootstrapRatio(
  a: readonly number[],
  b: readonly number[],
  resamples: number,
  confidence: number,
): [number, number] {
  const random = mulberry32(0x5eed);
  const resampledMean = (v: readonly number[]) => {
    let sum = 0;
    for (let i = 0; i < v.length; i++) sum += v[Math.floor(random() * v.length)]!;
    return sum / v.length;
  };
  const ratios: number[] = [];
  for (let r = 0; r < resamples; r++) {
    const ma = resampledMean(a);
    const mb = resampledMean(b);
    ratios.push(ma > 0 ? mb / ma - 1 : mb > 0 ? Infinity : 0);
  }
  ratios.sort((x, y) => x - y);
  const tail = (1 - confidence) / 2;
  const at = (q: number) =>
    ratios[Math.min(ratios.length - 1, Math.max(0, Math.floor(q * ratios.length)))]!;
  return [at(tail), at(1 - tail)];
}

/** A small seeded generator (mulberry32): the same diff gives the same intervals. */
function mulberry32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The terminal table: per section, every row that changed and the largest others. */
export function formatDiff(report: DiffReport, options: { all?: boolean } = {}): string {
  const lines: string[] = [];
  const runLine = (label: string, r: DiffRunInfo) =>
    `${label} ${r.dir}: ${r.command.join(" ")} (level ${r.level}, ${r.decodeCalls} decode calls, ` +
    `${r.prefillCalls} prefill calls)`;
  const m = report.method;
  lines.push(
    runLine("base", report.base),
    runLine("new ", report.new),
    `a change counts when the ${m.confidence * 100}% bootstrap interval of new/base - 1 lies beyond ` +
      `±${m.minRelative * 100}% (each run's calls resampled ${m.resamples} times) and, per decode ` +
      `call, it is at least ${m.minShare * 100}% of the call's time`,
  );
  const num = (v: number | null) => (v === null ? "-" : v.toFixed(3));
  const signed = (v: number) => `${v >= 0 ? "+" : ""}${v.toFixed(3)}`;
  const pct = (v: number | null) =>
    v === null || !Number.isFinite(v) ? "-" : `${v >= 0 ? "+" : ""}${(v * 100).toFixed(1)}%`;
  for (const s of report.sections) {
    const changed = (r: DiffRow) => r.verdict === "slower" || r.verdict === "faster";
    const shown = options.all ? s.rows : s.rows.filter((r, i) => i < 8 || changed(r));
    if (shown.length === 0) {
      if (s.added.length || s.removed.length) lines.push("", `${s.name}`);
      if (s.added.length) lines.push(`only in new: ${s.added.join(", ")}`);
      if (s.removed.length) lines.push(`only in base: ${s.removed.join(", ")}`);
      continue;
    }
    const width = Math.max(12, ...shown.map((r) => r.name.length));
    lines.push(
      "",
      `${s.name}, in ${[...new Set(shown.map((r) => r.unit))].join(" / ")}, by the size of the change`,
      [
        "".padEnd(width),
        "base".padStart(9),
        "new".padStart(9),
        "change".padStart(9),
        "rel".padStart(8),
        "interval".padStart(17),
        "  verdict",
      ].join(" "),
    );
    for (const r of shown) {
      const interval = r.interval ? `${pct(r.interval[0])}..${pct(r.interval[1])}` : "-";
      lines.push(
        [
          r.name.padEnd(width),
          num(r.base).padStart(9),
          num(r.new).padStart(9),
          signed(r.change).padStart(9),
          pct(r.relative).padStart(8),
          interval.padStart(17),
          `  ${r.verdict}`,
        ].join(" "),
      );
    }
    if (s.rows.length > shown.length) {
      lines.push(
        `(${s.rows.length - shown.length} more, none changed beyond the noise; --all shows them)`,
      );
    }
    if (s.added.length) lines.push(`only in new: ${s.added.join(", ")}`);
    if (s.removed.length) lines.push(`only in base: ${s.removed.join(", ")}`);
  }
  for (const n of report.notCompared) lines.push("", `not compared: ${n}`);
  return `${lines.join("\n")}\n`;
}
