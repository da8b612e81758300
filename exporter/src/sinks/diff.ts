// SPDX-License-Identifier: Apache-2.0
// Two runs compared: phases, requests, operator types, barrier waits, layers, tensors and threads,
// each as a mean per llama_decode call (or per prompt token, or per request) with the per-call (or
// per-request) values of both runs behind it, and the findings that appear or disappear. A change
// counts when it is more than the runs' own sample-to-sample noise: the bootstrap interval of the
// ratio of the means (samples resampled with replacement, a seeded generator, so a diff is
// reproducible) lies wholly beyond ±minRelative. Written here: no maintained npm library does a
// seeded bootstrap of a ratio of means, and it is twenty lines.
import {
  DIFF_DEFAULTS,
  UNNAMED_TENSOR,
  diffTensorKey,
  type DiffFindings,
  type DiffReport,
  type DiffRow,
  type DiffRunInfo,
  type DiffSection,
  type DiffVerdict,
  type Finding,
} from "@profinfer/contract";
import { displayOpName } from "../trace/dag.js";
import { modelNameOfRun } from "../trace/modelName.js";
import { requestTpotNs, requestTtftNs } from "../trace/requests.js";
import type { GraphRun, Run, Token } from "../trace/types.js";
import { computeStats } from "./stats.js";

export interface DiffOptions {
  /** the interval's confidence */
  confidence?: number;
  /** changes below this share of the base are "same" */
  minRelative?: number;
  /** bootstrap resamples */
  resamples?: number;
  /** fewer samples (calls, requests) than this on a side: no verdict */
  minCalls?: number;
  /** changes per decode call smaller than this share of the decode call's time are "same" */
  minShare?: number;
}

type Method = Required<DiffOptions>;

/** One figure's samples (per call or per request), its unit, and which way is better. */
interface Figure {
  unit: string;
  values: number[];
  /** tokens per second: more is faster */
  higherIsBetter?: boolean;
}
type Figures = Map<string, Figure>;

export function diffRuns(
  base: { dir: string; run: Run },
  next: { dir: string; run: Run },
  options: DiffOptions = {},
): DiffReport {
  const method: Method = { ...DIFF_DEFAULTS, ...options };
  const notCompared: string[] = [];
  return {
    format: "profinfer-diff",
    version: 1,
    base: info(base.dir, base.run),
    new: info(next.dir, next.run),
    method: { name: METHOD, ...method },
    sections: compareSections(base.run, next.run, method, notCompared),
    findings: compareFindings(findingsOf(base.run), findingsOf(next.run)),
    notCompared,
  };
}

/** stats.json's findings of a run, as `record` and `replay` write them. */
function findingsOf(run: Run): Finding[] {
  return computeStats(run).findings;
}

/** The sections both runs can fill; what they cannot goes to `notCompared`, with why. */
function compareSections(
  base: Run,
  next: Run,
  method: Method,
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
  const calls = (name: string, a: Figures, b: Figures) =>
    section(name, "calls", a, b, method, floor);
  sections.push(calls("phases", pa, pb));
  sections.push(
    section("requests", "requests", requestSamples(base), requestSamples(next), method, floor),
  );
  const opsOf = (run: Run) => (decodeWithOps(run).length > 0 ? operatorSamples(run) : null);
  const [a, b] = [opsOf(base), opsOf(next)];
  if (a && b) {
    sections.push(calls("operators", a.ops, b.ops));
    sections.push(calls("barrier wait", a.barrier, b.barrier));
    sections.push(calls("layers", a.layers, b.layers));
    sections.push(calls("tensors", a.tensors, b.tensors));
    sections.push(calls("threads", a.threads, b.threads));
    sections.push(structureSection(base, next));
  } else {
    const which = [a ? null : "BASE", b ? null : "NEW"].filter(Boolean).join(" and ");
    notCompared.push(
      `operators, barrier waits, layers, tensors and threads: ${which} recorded no decode call with operators ` +
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
    requests: run.requests.filter((r) => r.incomplete === null).length,
  };
}

const METHOD = "bootstrap interval of the ratio of means";
const MS = 1e6;
const UNIT_CALL = "ms per decode call";

/** The calls' own figures: decode call time, prefill time per prompt token, per call. */
function phaseSamples(run: Run): Figures {
  const complete = run.tokens.filter((t) => t.ret !== null);
  const ns = (t: Token) => Number(t.endNs - t.startNs);
  const out: Figures = new Map();
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

/**
 * Per request that ran whole: its time to first token, time per output token, and generated
 * tokens per second of its whole duration (first call's start to last call's end).
 */
function requestSamples(run: Run): Figures {
  const whole = run.requests.filter((r) => r.incomplete === null);
  const out: Figures = new Map();
  const put = (name: string, unit: string, values: (number | null)[], higherIsBetter = false) => {
    const known = values.filter((v): v is number => v !== null);
    if (known.length)
      out.set(name, { unit, values: known, ...(higherIsBetter ? { higherIsBetter } : {}) });
  };
  put(
    "TTFT",
    "ms per request",
    whole.map((r) => nsToMs(requestTtftNs(r))),
  );
  put(
    "TPOT",
    "ms per generated token",
    whole.map((r) => nsToMs(requestTpotNs(r))),
  );
  put(
    "tokens/s",
    "generated tokens per second",
    whole.map((r) => {
      const seconds = Number(r.endNs - r.startNs) / 1e9;
      return r.generatedTokens > 0 && seconds > 0 ? r.generatedTokens / seconds : null;
    }),
    true,
  );
  return out;
}

const nsToMs = (ns: number | null) => (ns === null ? null : ns / MS);

/** The complete decode calls whose graphs carry operators, with those graphs. */
function decodeWithOps(run: Run): { token: Token; graphs: GraphRun[] }[] {
  return run.tokens
    .filter((t) => t.ret !== null && t.phase === "decode")
    .map((token) => ({ token, graphs: token.graphs.filter((g) => g.ops.length > 0) }))
    .filter((c) => c.graphs.length > 0);
}

/**
 * Per decode call: each op type's, layer's and tensor's time, each op type's barrier wait, and
 * per place in the thread pool (ggml's ith: a program may compute each graph on new threads, so
 * tids do not match between runs) its compute, barrier wait and preempted time.
 */
function operatorSamples(run: Run) {
  const calls = decodeWithOps(run);
  const [ops, barrier, layers, tensors, threads] = [0, 0, 0, 0, 0].map(
    () => new Map<string, number[]>(),
  ) as [Samples, Samples, Samples, Samples, Samples];
  const add = (to: Samples, key: string, call: number, ns: number) => {
    let values = to.get(key);
    if (!values) to.set(key, (values = new Array<number>(calls.length).fill(0)));
    values[call]! += ns / MS;
  };
  calls.forEach(({ graphs }, i) => {
    for (const g of graphs) {
      for (const op of g.ops) {
        const name = displayOpName(op.label);
        add(ops, name, i, op.durationNs);
        add(
          barrier,
          name,
          i,
          op.threads.reduce((n, t) => n + t.barrierWaitNs, 0),
        );
        const layer = op.tensor.layer === null ? "(no layer)" : `layer ${op.tensor.layer}`;
        add(layers, layer, i, op.durationNs);
        add(tensors, diffTensorKey(op.tensor.name, name, op.tensor.layer), i, op.durationNs);
      }
      for (const t of g.threads) {
        const place = `thread ${t.ith ?? "?"}`;
        add(threads, `${place}: compute`, i, t.computeNs);
        add(threads, `${place}: barrier wait`, i, t.barrierWaitNs);
        add(threads, `${place}: preempted`, i, t.preemptedNs);
      }
    }
  });
  const unit = (s: Samples): Figures =>
    new Map([...s].map(([k, values]) => [k, { unit: UNIT_CALL, values }] as const));
  return {
    ops: unit(ops),
    barrier: unit(barrier),
    layers: unit(layers),
    tensors: unit(tensors),
    threads: unit(threads),
  };
}

/** Per-call values of one figure: a number per call, in the call order of the run. */
type Samples = Map<string, number[]>;

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
      if (UNNAMED_TENSOR.test(t.name)) counts.set(op, (counts.get(op) ?? 0) + 1);
      else named.add(`${t.name} (${op})`);
    }
    for (const [op, n] of counts) unnamed.set(op, Math.max(n, unnamed.get(op) ?? 0));
  }
  return { named, unnamed };
}

function structureSection(base: Run, next: Run): DiffSection {
  const [a, b] = [graphNodes(base), graphNodes(next)];
  const more = (x: typeof a, y: typeof a) => [
    ...[...x.named].filter((k) => !y.named.has(k)),
    ...[...x.unnamed]
      .filter(([op, n]) => n > (y.unnamed.get(op) ?? 0))
      .map(([op, n]) => `${n - (y.unnamed.get(op) ?? 0)} unnamed (${op})`),
  ];
  return {
    name: "graph nodes",
    samples: "calls",
    rows: [],
    added: more(b, a).sort(),
    removed: more(a, b).sort(),
  };
}

/**
 * The findings of both runs matched by id (any id, those of contract/src/findings.ts and those
 * added later alike): one of an id on each side pairs; several of one id pair by where they are,
 * and what stays unpaired appeared or disappeared.
 */
export function compareFindings(base: Finding[], next: Finding[]): DiffFindings {
  const out: DiffFindings = { appeared: [], disappeared: [], both: [] };
  const ids = [...new Set([...base, ...next].map((f) => f.id))];
  for (const id of ids) {
    const a = base.filter((f) => f.id === id);
    const b = next.filter((f) => f.id === id);
    if (a.length === 1 && b.length === 1) {
      out.both.push({ id, base: a[0]!, new: b[0]! });
      continue;
    }
    const left = [...b];
    for (const f of a) {
      const at = left.findIndex((g) => placeOf(g) === placeOf(f));
      if (at < 0) out.disappeared.push(f);
      else out.both.push({ id, base: f, new: left.splice(at, 1)[0]! });
    }
    out.appeared.push(...left);
  }
  return out;
}

/** Where a finding is, without the process id (another run's process is another pid). */
function placeOf(f: Finding): string {
  const { process, ...where } = f.where;
  return JSON.stringify({ ...where, comm: process?.comm });
}

function section(
  name: string,
  samples: DiffSection["samples"],
  base: Figures,
  next: Figures,
  method: Method,
  floor: { unit: string; ms: number },
): DiffSection {
  const rows: DiffRow[] = [];
  for (const key of new Set([...base.keys(), ...next.keys()])) {
    const a = base.get(key);
    const b = next.get(key);
    const figure = (a ?? b)!;
    const least = figure.unit === floor.unit ? floor.ms : 0;
    rows.push(
      compare(key, figure, a?.values ?? [], b?.values ?? [], method, {
        least,
        tooFew: samples === "requests" ? "too few requests" : "too few calls",
      }),
    );
  }
  // a request's figures have three units: they keep their order (TTFT, TPOT, tokens/s)
  if (samples === "calls")
    rows.sort((x, y) => Math.abs(y.change) - Math.abs(x.change) || (x.name < y.name ? -1 : 1));
  return {
    name,
    samples,
    rows,
    added: [...next.keys()].filter((k) => !base.has(k)).sort(),
    removed: [...base.keys()].filter((k) => !next.has(k)).sort(),
  };
}

const mean = (v: readonly number[]) => (v.length ? v.reduce((a, b) => a + b, 0) / v.length : 0);

function compare(
  name: string,
  figure: Figure,
  a: number[],
  b: number[],
  method: Method,
  judge: { least: number; tooFew: DiffVerdict },
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
    verdict = judge.tooFew;
  } else {
    interval = bootstrapRatio(a, b, method.resamples, method.confidence);
    const [more, less]: [DiffVerdict, DiffVerdict] = figure.higherIsBetter
      ? ["faster", "slower"]
      : ["slower", "faster"];
    verdict =
      Math.abs(change) < judge.least
        ? "same"
        : interval[0] > method.minRelative
          ? more
          : interval[1] < -method.minRelative
            ? less
            : "same";
  }
  return {
    name,
    unit: figure.unit,
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
    `${r.prefillCalls} prefill calls, ${r.requests} whole requests)`;
  const m = report.method;
  lines.push(
    runLine("base", report.base),
    runLine("new ", report.new),
    `a change counts when the ${m.confidence * 100}% bootstrap interval of new/base - 1 lies beyond ` +
      `±${m.minRelative * 100}% (each run's calls, or requests, resampled ${m.resamples} times; ` +
      `${m.minCalls} or more a side) and, per decode call, it is at least ${m.minShare * 100}% of ` +
      `the call's time`,
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
      `${s.name}, in ${[...new Set(shown.map((r) => r.unit))].join(" / ")}` +
        (s.samples === "calls" ? ", by the size of the change" : `, over ${s.samples}`),
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
  lines.push(...formatFindingChanges(report.findings));
  for (const n of report.notCompared) lines.push("", `not compared: ${n}`);
  return `${lines.join("\n")}\n`;
}

/** The findings that appeared, disappeared, or stayed with each side's evidence. */
function formatFindingChanges(f: DiffFindings): string[] {
  if (f.appeared.length + f.disappeared.length + f.both.length === 0) return [];
  const evidence = (x: Finding) =>
    Object.entries(x.evidence)
      .map(([k, v]) => `${k} ${v}`)
      .join(", ");
  const one = (x: Finding) => `${x.severity} ${x.id}: ${x.title}`;
  return [
    "",
    "findings (stats.json), by id",
    ...f.appeared.map((x) => `appeared     ${one(x)}`),
    ...f.disappeared.map((x) => `disappeared  ${one(x)}`),
    ...f.both.flatMap((x) => [
      `in both      ${x.id}`,
      `  base: ${evidence(x.base)}`,
      `  new:  ${evidence(x.new)}`,
    ]),
  ];
}
