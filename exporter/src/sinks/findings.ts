// SPDX-License-Identifier: Apache-2.0
// Findings: what a run's own figures say is slow, why, where, and what to try. Each rule reads
// the trace model and stats.json's tables, and gives a finding only past a documented threshold
// (docs/findings.md), so a quiet run has none. The rules' order is their order of importance.
import {
  bandwidthAt,
  type Finding,
  type FindingSeverity,
  type ProfStats,
} from "@profinfer/contract";
import { displayOpName } from "../trace/dag.js";
import type { RunChunk } from "../trace/runStream.js";
import type { RunHeader } from "../trace/header.js";
import type { Run, Token } from "../trace/types.js";

/** Thresholds, documented in docs/findings.md. */
export const FINDING_THRESHOLDS = {
  /** time lost to other processes, as a share of the llama_decode calls' time */
  interferenceShare: 0.05,
  interferenceHighShare: 0.1,
  /** ... and at least this much, in ms */
  interferenceMinMs: 1,
  /** profinfer's own preemption of the target, as a share of the calls' time */
  profilerShare: 0.01,
  /** barrier wait over the worker threads' operator and barrier time */
  barrierShare: 0.2,
  barrierHighShare: 0.4,
  /** decode calls needed to fit attention time against the context */
  kvMinCalls: 64,
  /** the fit's coefficient of determination, and the growth over the run it must show */
  kvMinR2: 0.5,
  kvMinGrowth: 0.1,
  /** the first decode call against the median one */
  firstCallRatio: 3,
  /** expert choices per expert a layer needs before its load is judged */
  moeMinChoicesPerExpert: 4,
  /** a layer's Jain fairness index below this is uneven load */
  moeUnevenJain: 0.5,
  /** decode time in memory-bound operators (docs/findings.md "Roofline"), as a share of the calls' */
  memoryBoundShare: 0.5,
  memoryBoundHighShare: 0.8,
  /** the thread count whose bandwidth reaches this share of the most measured "saturates" it */
  bandwidthSaturation: 0.9,
} as const;

/** llama.cpp's default context (common_params.n_ctx) when the command line does not set one. */
const LLAMA_DEFAULT_CONTEXT = 4096;

const complete = (run: Run) => run.tokens.filter((t) => t.ret !== null);
const callNs = (t: Token) => Number(t.endNs - t.startNs);
const round = (v: number, digits = 3) => Math.round(v * 10 ** digits) / 10 ** digits;

/** What the rules read of a run beyond stats.json: small figures, added up chunk by chunk. */
export interface FindingsInput {
  header: RunHeader;
  /** complete llama_decode calls, and their summed time */
  calls: number;
  callsNs: number;
  /** the most threads a graph ran on */
  workers: number;
  /** time the compute threads were preempted inside calls, per preempting process, most first */
  preempted: { comm: string; tgid: number; ms: number }[];
  /** operators with two or more threads, and how often each thread arrived last at their barrier */
  barrierOps: number;
  lastAtBarrier: Map<string, number>;
  /** attention time (ms) of each decode call against the context it attends to */
  attention: { x: number; y: number; seq: number }[];
  /** MoE: the router's width when a graph showed it, and how often the next token reused experts */
  moeExperts: number | null;
  moeReused: number;
  moePairs: number;
  /** the complete decode calls' durations (ns) and the first one's seq */
  decodeNs: number[];
  firstDecodeSeq: number | null;
}

/** FindingsInput of a run, added up chunk by chunk (a whole run is one chunk). */
export class FindingsAccumulator {
  private calls = 0;
  private callsNs = 0;
  private workers = 0;
  private readonly preempted = new Map<string, { comm: string; tgid: number; ns: number }>();
  private barrierOps = 0;
  private readonly lastAtBarrier = new Map<string, number>();
  private readonly attention: { x: number; y: number; seq: number }[] = [];
  /** the tokens of the complete calls so far: the context of a call without positions */
  private before = 0;
  private moeExperts: number | null = null;
  private moeReused = 0;
  private moePairs = 0;
  private lastDecode: Token | null = null;
  private readonly decodeNs: number[] = [];
  private firstDecodeSeq: number | null = null;
  private header: RunHeader | null = null;

  add(chunk: RunChunk): void {
    const run = chunk.run;
    this.header = run.header;
    const calls = complete(run);
    this.calls += calls.length;
    for (const t of calls) this.callsNs += callNs(t);
    // compute threads at once: the most a graph ran on (a program may compute each graph on new
    // threads, node-llama-cpp's do, so the threads of the whole run are not all there at once)
    for (const g of run.graphRuns)
      this.workers = Math.max(this.workers, g.threads.length, g.nThreads);
    for (const p of preemptedDuringCalls(run, calls)) {
      const key = `${p.comm}\u0000${p.tgid}`;
      const acc = this.preempted.get(key) ?? { comm: p.comm, tgid: p.tgid, ns: 0 };
      acc.ns += p.ns;
      this.preempted.set(key, acc);
    }
    this.addBarriers(run);
    this.addAttention(calls);
    this.addMoe(run, calls);
    for (const t of calls) {
      if (t.phase !== "decode") continue;
      this.decodeNs.push(callNs(t));
      this.firstDecodeSeq ??= t.seq;
    }
  }

  /** The thread that arrives last at an operator's barrier is the one the others wait for. */
  private addBarriers(run: Run): void {
    for (const g of run.graphRuns) {
      for (const op of g.ops) {
        if (op.threads.length < 2) continue;
        const slowest = op.threads.reduce((a, b) => (b.endNs > a.endNs ? b : a));
        // by its place in the pool (ith), since a program may compute each graph on new threads
        const name =
          slowest.ith === 0
            ? "main"
            : slowest.ith !== null
              ? `worker ${slowest.ith}`
              : `thread ${slowest.tid}`;
        this.lastAtBarrier.set(name, (this.lastAtBarrier.get(name) ?? 0) + 1);
        this.barrierOps++;
      }
    }
  }

  private addAttention(calls: readonly Token[]): void {
    const attentionNs = (t: Token) =>
      t.graphs.reduce(
        (n, g) =>
          n +
          g.ops.reduce(
            (m, op) => m + (/^(FLASH_ATTN_EXT|SOFT_MAX)/.test(op.label) ? op.durationNs : 0),
            0,
          ),
        0,
      );
    // the context a call attends to: its batch's last position, else (llama_batch_get_one, one
    // sequence) the tokens of the calls before it
    for (const t of calls) {
      const context = this.before;
      this.before += t.nTokens;
      if (t.phase !== "decode") continue;
      const attention = attentionNs(t);
      if (!attention) continue;
      const pos = Math.max(...(t.batch?.seqs.map((s) => s.posMax) ?? [-1]));
      this.attention.push({ x: pos >= 0 ? pos : context, y: attention / 1e6, seq: t.seq });
    }
  }

  private addMoe(run: Run, calls: readonly Token[]): void {
    if (this.moeExperts === null) {
      for (const snapshot of run.snapshots.values()) {
        const router = snapshot.dag.nodes.find((n) => /^ffn_moe_logits-\d+$/.test(n.tensor.name));
        if (router) {
          this.moeExperts = router.tensor.ne[0]!;
          break;
        }
      }
    }
    // reuse: consecutive decode calls of one token each, per layer
    for (const t of calls) {
      if (t.phase !== "decode" || t.nTokens !== 1) continue;
      const previous = this.lastDecode;
      this.lastDecode = t;
      if (!previous) continue;
      for (const [layer, rows] of t.experts ?? []) {
        const before = previous.experts?.get(layer)?.[0];
        const now = rows[0];
        if (!before || !now) continue;
        this.moeReused += now.filter((e) => before.includes(e)).length / now.length;
        this.moePairs++;
      }
    }
    // only its expert rows are needed of the last decode call, not its graphs
    if (this.lastDecode && this.lastDecode.graphs.length > 0)
      this.lastDecode = { ...this.lastDecode, graphs: [] };
  }

  input(): FindingsInput {
    return {
      header: this.header!,
      calls: this.calls,
      callsNs: this.callsNs,
      workers: this.workers,
      preempted: [...this.preempted.values()]
        .map((p) => ({ comm: p.comm, tgid: p.tgid, ms: p.ns / 1e6 }))
        .sort((a, b) => b.ms - a.ms),
      barrierOps: this.barrierOps,
      lastAtBarrier: this.lastAtBarrier,
      attention: this.attention,
      moeExperts: this.moeExperts,
      moeReused: this.moeReused,
      moePairs: this.moePairs,
      decodeNs: this.decodeNs,
      firstDecodeSeq: this.firstDecodeSeq,
    };
  }
}

export function computeFindings(
  input: FindingsInput,
  stats: Omit<ProfStats, "findings">,
): Finding[] {
  const findings: Finding[] = [];
  const callsMs = input.callsNs / 1e6;
  if (input.calls === 0) return findings;
  const header = input.header;
  const pid = header.target.pid;
  const workers = input.workers;
  const memory = memoryBoundFinding(stats, Math.max(1, workers));
  if (memory) findings.push(memory);
  const cpus = header.host?.cpus ?? null;
  const lost = input.preempted;

  // more compute threads than CPUs: they take turns, and each operator waits for the one off CPU
  if (cpus !== null && workers > cpus) {
    const own = lost.find((p) => p.tgid === pid)?.ms ?? 0;
    findings.push({
      id: "threads.oversubscribed",
      severity: "high",
      title: `${workers} compute threads on ${cpus} CPUs: they preempted each other for ${round(own, 1)} ms`,
      evidence: { threads: workers, cpus, preemptedBySelfMs: round(own) },
      where: {},
      action: `run with -t ${cpus} or fewer (llama.cpp's -t/--threads): ggml splits every operator over all its threads, and each operator ends only when the thread that was off its CPU has done its part`,
    });
  }

  // other processes (and profinfer) that took the compute threads' CPUs during the calls
  const profinferPid = header.profinferPid ?? null;
  const threadMs = callsMs * Math.max(1, workers);
  const others = lost.filter((p) => p.tgid !== pid && p.tgid !== profinferPid);
  const lostMs = others.reduce((n, p) => n + p.ms, 0);
  const share = lostMs / threadMs;
  if (
    lostMs >= FINDING_THRESHOLDS.interferenceMinMs &&
    share >= FINDING_THRESHOLDS.interferenceShare
  ) {
    const top = others[0]!;
    const severity: FindingSeverity =
      share >= FINDING_THRESHOLDS.interferenceHighShare ? "high" : "medium";
    findings.push({
      id: "sched.interference",
      severity,
      title: `other processes took the compute threads' CPUs for ${round(lostMs, 1)} ms during llama_decode calls (${round(share * 100, 1)}% of their time), most ${top.comm} (${top.tgid}): ${round(top.ms, 1)} ms`,
      evidence: {
        lostMs: round(lostMs),
        share: round(share, 4),
        threadMs: round(threadMs),
        ...Object.fromEntries(
          others.slice(0, 5).map((p) => [`${p.comm} (${p.tgid}) ms`, round(p.ms)]),
        ),
      },
      where: { process: { comm: top.comm, tgid: top.tgid } },
      action: `keep ${top.comm} off the CPUs llama.cpp computes on (taskset or a cpuset for it, or llama.cpp's --cpu-mask/--cpu-range and --prio for the model), or leave a CPU free for the rest of the machine (-t below the CPU count)`,
    });
  }

  // profinfer itself preempting the target
  const self = profinferPid === null ? undefined : lost.find((p) => p.tgid === profinferPid);
  if (self && self.ms / threadMs >= FINDING_THRESHOLDS.profilerShare) {
    findings.push({
      id: "profiler.cost",
      severity: "low",
      title: `profinfer itself took the compute threads' CPUs for ${round(self.ms, 1)} ms during llama_decode calls (${round((self.ms / threadMs) * 100, 1)}% of their time)`,
      evidence: {
        preemptedMs: round(self.ms),
        share: round(self.ms / threadMs, 4),
        profinferPid: self.tgid,
      },
      where: { process: { comm: self.comm, tgid: self.tgid } },
      action:
        "leave profinfer a CPU (-t below the CPU count), or record at --level graph or token, whose probes fire a few times a call instead of per operator",
    });
  }

  // threads waiting at barriers for the slowest
  const barrier = barrierFinding(input, stats);
  if (barrier) findings.push(barrier);

  const kv = kvGrowthFinding(input);
  if (kv) findings.push(kv);

  const moe = moeLoadFinding(input, stats);
  if (moe) findings.push(moe);

  // the first decode call against the steady state
  const decode = input.decodeNs;
  if (decode.length >= 8) {
    const sorted = [...decode].sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)]!;
    const first = decode[0]!;
    if (first >= FINDING_THRESHOLDS.firstCallRatio * median) {
      findings.push({
        id: "startup.first-call",
        severity: "low",
        title: `the first decode call took ${round(first / median, 1)} times the median one (${round(first / 1e6)} ms against ${round(median / 1e6)} ms)`,
        evidence: { firstMs: round(first / 1e6), medianMs: round(median / 1e6) },
        where: { calls: [input.firstDecodeSeq!, input.firstDecodeSeq!] },
        action:
          "the first calls touch weights and buffers for the first time (page faults of a memory-mapped model, cold caches): keep llama.cpp's warm-up (on by default; --no-warmup turns it off), or --mlock to keep the model resident",
      });
    }
  }
  return findings;
}

/**
 * The time the target's threads were runnable but another task had their CPU, inside the
 * llama_decode calls, per preempting process (a chunk's off-CPU intervals are clipped to it,
 * and every call lies in one chunk, so the chunks' figures add up to the run's).
 */
function preemptedDuringCalls(
  run: Run,
  calls: readonly Token[],
): { comm: string; tgid: number; ns: number }[] {
  // the calls' time as disjoint intervals in order (calls of several contexts may overlap), so
  // that their ends rise too and the first one an interval reaches is found by bisection
  const windows: [bigint, bigint][] = [];
  for (const t of [...calls].sort((a, b) => (a.startNs < b.startNs ? -1 : 1))) {
    const last = windows.at(-1);
    if (last && t.startNs <= last[1]) last[1] = t.endNs > last[1] ? t.endNs : last[1];
    else windows.push([t.startNs, t.endNs]);
  }
  const by = new Map<string, { comm: string; tgid: number; ns: number }>();
  for (const intervals of run.offCpu.values()) {
    for (const iv of intervals) {
      if (!iv.preempted || !iv.by) continue;
      let ns = 0;
      // the first window ending after the interval starts
      let lo = 0;
      let hi = windows.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (windows[mid]![1] <= iv.startNs) lo = mid + 1;
        else hi = mid;
      }
      for (let w = lo; w < windows.length; w++) {
        const [start, end] = windows[w]!;
        if (start >= iv.endNs) break;
        const from = start > iv.startNs ? start : iv.startNs;
        const to = end < iv.endNs ? end : iv.endNs;
        ns += Number(to - from);
      }
      if (ns === 0) continue;
      const key = `${iv.by.comm}\u0000${iv.by.tgid}`;
      const p = by.get(key) ?? { comm: iv.by.comm, tgid: iv.by.tgid, ns: 0 };
      p.ns += ns;
      by.set(key, p);
    }
  }
  return [...by.values()];
}

/**
 * Decode bound by memory bandwidth: the share of the decode calls' time spent in operator types
 * whose decode runs move bytes near the machine's read bandwidth for their threads (roofline class
 * "memory"), with the bytes a call moves and what the machine can reach.
 */
function memoryBoundFinding(stats: Omit<ProfStats, "findings">, threads: number): Finding | null {
  const machine = stats.machine;
  const decodeMs = stats.phases.decode.totalMs;
  if (!machine || decodeMs <= 0) return null;
  const decodeOps = stats.ops.flatMap((o) =>
    o.roofline?.decode ? [{ o, r: o.roofline.decode }] : [],
  );
  const bound = decodeOps.filter((x) => x.r.class === "memory");
  const boundMs = bound.reduce((n, x) => n + x.r.totalMs, 0);
  const share = boundMs / decodeMs;
  if (share < FINDING_THRESHOLDS.memoryBoundShare) return null;
  const calls = stats.phases.decode.calls;
  const bytesPerCall = decodeOps.reduce((n, x) => n + x.r.bytes * x.r.runs, 0) / calls;
  const top = bound.reduce((a, b) => (b.r.totalMs > a.r.totalMs ? b : a));
  const peak = bandwidthAt(machine, threads);
  const most = Math.max(...machine.bandwidth.points.map((p) => p.bytesPerSecond));
  const saturating =
    machine.bandwidth.points.find(
      (p) => p.bytesPerSecond >= FINDING_THRESHOLDS.bandwidthSaturation * most,
    )?.threads ?? threads;
  const gb = (bytes: number) => round(bytes / 1e9, 2);
  const tokensPerSecond = stats.phases.decode.tokensPerSecond;
  const tokensPerCall = stats.phases.decode.tokens / calls;
  return {
    id: "decode.memory-bound",
    severity: share >= FINDING_THRESHOLDS.memoryBoundHighShare ? "high" : "medium",
    title:
      `decode is bound by memory bandwidth: ${round(share * 100, 1)}% of its time is in operators ` +
      `near the machine's read bandwidth; ${top.o.display} reads ${gb(top.r.bandwidth)} GB/s, ` +
      `${round((top.r.bandwidthShare ?? 0) * 100, 0)}% of the ${gb(peak)} GB/s ${threads} threads reach`,
    evidence: {
      memoryBoundShare: round(share, 4),
      [`${top.o.display} GB/s`]: gb(top.r.bandwidth),
      [`${top.o.display} bandwidthShare`]: top.r.bandwidthShare ?? 0,
      machineGBps: gb(peak),
      threads,
      bytesPerDecodeCall: Math.round(bytesPerCall),
      decodeTokensPerSecond: tokensPerSecond,
      // the estimate people make by hand: a token reads every weight once
      bytesTimesTokensGBps: gb((bytesPerCall / tokensPerCall) * tokensPerSecond),
      saturatingThreads: saturating,
    },
    where: { op: top.o.display },
    action:
      `each generated token reads about ${gb(bytesPerCall / tokensPerCall)} GB: fewer bytes per weight ` +
      `(a smaller quantisation, e.g. Q4_K_M against Q8_0) or more tokens per read (batching ` +
      `sequences: llama-server -np with continuous batching; speculative decoding, -md) make decode ` +
      `faster; ${saturating} threads already reach ${round(FINDING_THRESHOLDS.bandwidthSaturation * 100, 0)}% ` +
      `of this machine's bandwidth, so -t beyond ${saturating} adds little`,
  };
}

/** Barrier wait over the worker threads' operator time and waits; the op types that wait most. */
function barrierFinding(input: FindingsInput, stats: Omit<ProfStats, "findings">): Finding | null {
  const workers = stats.threads.filter((t) => t.ith !== null);
  const barrierMs = workers.reduce((n, t) => n + t.barrierWaitMs, 0);
  const busyMs = workers.reduce((n, t) => n + t.computeMs + t.barrierWaitMs, 0);
  if (workers.length < 2 || busyMs === 0) return null;
  const share = barrierMs / busyMs;
  if (share < FINDING_THRESHOLDS.barrierShare) return null;
  const ops = input.barrierOps;
  const [lastName, lastCount] = [...input.lastAtBarrier].reduce(
    (a, b) => (b[1] > a[1] ? b : a),
    ["-", 0],
  );
  const top = [...stats.ops].sort((a, b) => b.barrierWaitMs - a.barrierWaitMs).slice(0, 3);
  return {
    id: "barrier.wait",
    severity: share >= FINDING_THRESHOLDS.barrierHighShare ? "high" : "medium",
    title: `threads waited at barriers for ${round(share * 100, 1)}% of their operator time; ${lastName} arrived last at ${round((lastCount / Math.max(1, ops)) * 100, 0)}% of the operators`,
    evidence: {
      barrierWaitMs: round(barrierMs),
      share: round(share, 4),
      lastThread: lastName,
      lastShare: round(lastCount / Math.max(1, ops), 4),
      ...Object.fromEntries(
        top.map((o) => [`${displayOpName(o.op)} barrier ms`, round(o.barrierWaitMs)]),
      ),
    },
    where: { op: displayOpName(top[0]?.op ?? ""), thread: lastName },
    action: `the others wait for ${lastName}: when it was preempted (see sched.interference), keep its CPU free; when it is slower at the same work, an operator's split is uneven or the threads outnumber what the memory bandwidth serves: try fewer threads (-t)`,
  };
}

/**
 * Attention time per decode call against the context it attends to: a least-squares line over
 * the decode calls, its slope (ms per 1000 tokens of context) and where it leads at the context
 * size (-c/--ctx-size, else llama.cpp's default 4096).
 */
function kvGrowthFinding(input: FindingsInput): Finding | null {
  const points = input.attention;
  if (points.length < FINDING_THRESHOLDS.kvMinCalls) return null;
  const n = points.length;
  const mx = points.reduce((a, p) => a + p.x, 0) / n;
  const my = points.reduce((a, p) => a + p.y, 0) / n;
  let sxx = 0;
  let sxy = 0;
  let syy = 0;
  for (const p of points) {
    sxx += (p.x - mx) ** 2;
    sxy += (p.x - mx) * (p.y - my);
    syy += (p.y - my) ** 2;
  }
  if (sxx === 0 || syy === 0) return null;
  const slope = sxy / sxx;
  const intercept = my - slope * mx;
  const r2 = (sxy * sxy) / (sxx * syy);
  const first = points[0]!;
  const lastPoint = points.at(-1)!;
  const growth = (slope * (lastPoint.x - first.x)) / Math.max(1e-9, intercept + slope * first.x);
  if (slope <= 0 || r2 < FINDING_THRESHOLDS.kvMinR2 || growth < FINDING_THRESHOLDS.kvMinGrowth)
    return null;
  const context = contextSize(input.header.target.command);
  const projected = intercept + slope * context;
  return {
    id: "kv.growth",
    severity: "low",
    title: `attention time grows with the context: +${round(slope * 1000, 3)} ms per 1000 tokens (R² ${round(r2, 2)}), ${round(projected, 2)} ms per call at the context size ${context}`,
    evidence: {
      slopeMsPer1000Tokens: round(slope * 1000, 4),
      interceptMs: round(intercept, 4),
      r2: round(r2, 3),
      calls: n,
      fromPosition: first.x,
      toPosition: lastPoint.x,
      contextSize: context,
      projectedMs: round(projected, 4),
    },
    where: { op: "flash_attn_ext", calls: [first.seq, lastPoint.seq] },
    action: `each generated token reads the whole KV cache: at the context size a call spends ${round(projected, 2)} ms in attention; a smaller -c, a quantised KV cache (-ctk/-ctv q8_0) or flash attention (-fa on) lower it`,
  };
}

/**
 * Jain's fairness index of per-expert choice counts over all `experts` experts (those never
 * chosen count as 0): 1 when every expert is chosen as often, 1/experts when one takes all.
 */
export function jainIndex(counts: readonly number[], experts: number): number {
  const sum = counts.reduce((a, b) => a + b, 0);
  const squares = counts.reduce((a, b) => a + b * b, 0);
  return squares === 0 ? 0 : (sum * sum) / (experts * squares);
}

/** The experts of a MoE model: the router's output width (ffn_moe_logits), else the ids seen. */
function expertCount(input: FindingsInput, stats: Omit<ProfStats, "findings">): number {
  if (input.moeExperts !== null) return input.moeExperts;
  return Math.max(...stats.experts.flatMap((l) => Object.keys(l.counts).map(Number))) + 1;
}

/**
 * MoE routing per layer: how evenly the experts are loaded (Jain's index), the hottest expert,
 * and how many of a decode token's experts the next token chose again (reuse, which decides what
 * a cache of experts or an offload saves).
 */
function moeLoadFinding(input: FindingsInput, stats: Omit<ProfStats, "findings">): Finding | null {
  if (stats.experts.length === 0) return null;
  const experts = expertCount(input, stats);
  const layers = stats.experts.map((l) => {
    const counts = Object.values(l.counts);
    const [hot, hotCount] = Object.entries(l.counts).reduce((a, b) => (b[1] > a[1] ? b : a));
    const choices = counts.reduce((a, b) => a + b, 0);
    return {
      layer: l.layer,
      jain: jainIndex(counts, experts),
      hot,
      hotShare: hotCount / choices,
      choices,
    };
  });
  const judged = layers.filter(
    (l) => l.choices >= FINDING_THRESHOLDS.moeMinChoicesPerExpert * experts,
  );
  if (judged.length === 0) return null;
  const { moeReused: reused, moePairs: pairs } = input;
  const worst = judged.reduce((a, b) => (b.jain < a.jain ? b : a));
  const uneven = worst.jain < FINDING_THRESHOLDS.moeUnevenJain;
  const reuse = pairs > 0 ? reused / pairs : null;
  return {
    id: "moe.load",
    severity: uneven ? "medium" : "low",
    title:
      `expert load ${uneven ? "uneven" : "even"}: Jain's index ${round(worst.jain, 3)} at its lowest ` +
      `(layer ${worst.layer}, ${experts} experts), expert ${worst.hot} took ` +
      `${round(worst.hotShare * 100, 1)}% of that layer's choices` +
      (reuse === null
        ? ""
        : `; the next token chose ${round(reuse * 100, 1)}% of a token's experts again`),
    evidence: {
      experts,
      ...Object.fromEntries(judged.map((l) => [`layer ${l.layer} jain`, round(l.jain, 4)])),
      ...(reuse === null ? {} : { reuse: round(reuse, 4) }),
    },
    where: { layer: worst.layer },
    action: uneven
      ? "a few experts take most tokens: keeping those resident (and the rest offloaded, -ot/--override-tensor) costs least"
      : "the routing spreads tokens over the experts: every expert's weights are read, so the whole expert set has to stay in fast memory",
  };
}

/**
 * -c / --ctx-size of the command line (the last one, as llama.cpp's parser keeps), else
 * llama.cpp's default; 0 (the model's own context) is not known here and gives the default too.
 */
function contextSize(command: readonly string[]): number {
  let size = LLAMA_DEFAULT_CONTEXT;
  for (let i = 0; i < command.length - 1; i++) {
    if (command[i] === "-c" || command[i] === "--ctx-size") {
      const n = Number(command[i + 1]);
      size = Number.isInteger(n) && n > 0 ? n : LLAMA_DEFAULT_CONTEXT;
    }
  }
  return size;
}
