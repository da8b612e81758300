// SPDX-License-Identifier: Apache-2.0
// Findings: what a run's own figures say is slow, why, where, and what to try. Each rule reads
// the trace model and stats.json's tables, and gives a finding only past a documented threshold
// (docs/findings.md), so a quiet run has none. The rules' order is their order of importance.
import type { Finding, FindingSeverity, ProfStats } from "@profinfer/contract";
import { displayOpName } from "../trace/dag.js";
import type { Run, Token } from "../trace/types.js";

/** Thresholds, documented in docs/findings.md. */
export const FINDING_THRESHOLDS = {
  /** time lost to other processes, as a share of the llama_decode calls' time */
  interferenceShare: 0.02,
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
} as const;

/** llama.cpp's default context (common_params.n_ctx) when the command line does not set one. */
const LLAMA_DEFAULT_CONTEXT = 4096;

const complete = (run: Run) => run.tokens.filter((t) => t.ret !== null);
const callNs = (t: Token) => Number(t.endNs - t.startNs);
const round = (v: number, digits = 3) => Math.round(v * 10 ** digits) / 10 ** digits;

export function computeFindings(run: Run, stats: Omit<ProfStats, "findings">): Finding[] {
  const findings: Finding[] = [];
  const calls = complete(run);
  const callsMs = calls.reduce((n, t) => n + callNs(t), 0) / 1e6;
  if (calls.length === 0) return findings;
  const pid = run.header.target.pid;
  // compute threads at once: the most a graph ran on (a program may compute each graph on new
  // threads, node-llama-cpp's do, so the threads of the whole run are not all there at once)
  const workers = Math.max(0, ...run.graphRuns.map((g) => Math.max(g.threads.length, g.nThreads)));
  const cpus = run.header.host?.cpus ?? null;
  const lost = preemptedDuringCalls(run, calls);

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
  const profinferPid = run.header.profinferPid ?? null;
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
  const barrier = barrierFinding(run, stats);
  if (barrier) findings.push(barrier);

  const kv = kvGrowthFinding(run);
  if (kv) findings.push(kv);

  const moe = moeLoadFinding(run, stats);
  if (moe) findings.push(moe);

  // the first decode call against the steady state
  const decode = calls.filter((t) => t.phase === "decode");
  if (decode.length >= 8) {
    const sorted = decode.map(callNs).sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)]!;
    const first = callNs(decode[0]!);
    if (first >= FINDING_THRESHOLDS.firstCallRatio * median) {
      findings.push({
        id: "startup.first-call",
        severity: "low",
        title: `the first decode call took ${round(first / median, 1)} times the median one (${round(first / 1e6)} ms against ${round(median / 1e6)} ms)`,
        evidence: { firstMs: round(first / 1e6), medianMs: round(median / 1e6) },
        where: { calls: [decode[0]!.seq, decode[0]!.seq] },
        action:
          "the first calls touch weights and buffers for the first time (page faults of a memory-mapped model, cold caches): keep llama.cpp's warm-up (on by default; --no-warmup turns it off), or --mlock to keep the model resident",
      });
    }
  }
  return findings;
}

/**
 * The time the target's threads were runnable but another task had their CPU, inside the
 * llama_decode calls, per preempting process, most first.
 */
function preemptedDuringCalls(
  run: Run,
  calls: readonly Token[],
): { comm: string; tgid: number; ms: number }[] {
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
  return [...by.values()]
    .map((p) => ({ comm: p.comm, tgid: p.tgid, ms: p.ns / 1e6 }))
    .sort((a, b) => b.ms - a.ms);
}

/** Barrier wait over the worker threads' operator time and waits; the op types that wait most. */
function barrierFinding(run: Run, stats: Omit<ProfStats, "findings">): Finding | null {
  const workers = stats.threads.filter((t) => t.ith !== null);
  const barrierMs = workers.reduce((n, t) => n + t.barrierWaitMs, 0);
  const busyMs = workers.reduce((n, t) => n + t.computeMs + t.barrierWaitMs, 0);
  if (workers.length < 2 || busyMs === 0) return null;
  const share = barrierMs / busyMs;
  if (share < FINDING_THRESHOLDS.barrierShare) return null;
  // the thread that arrives last at an operator's barrier is the one the others wait for; by its
  // place in the pool (ith), since a program may compute each graph on new threads
  const last = new Map<string, number>();
  let ops = 0;
  for (const g of run.graphRuns) {
    for (const op of g.ops) {
      if (op.threads.length < 2) continue;
      const slowest = op.threads.reduce((a, b) => (b.endNs > a.endNs ? b : a));
      const name =
        slowest.ith === 0
          ? "main"
          : slowest.ith !== null
            ? `worker ${slowest.ith}`
            : `thread ${slowest.tid}`;
      last.set(name, (last.get(name) ?? 0) + 1);
      ops++;
    }
  }
  const [lastName, lastCount] = [...last].reduce((a, b) => (b[1] > a[1] ? b : a), ["-", 0]);
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
function kvGrowthFinding(run: Run): Finding | null {
  const points: { x: number; y: number; seq: number }[] = [];
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
  let before = 0;
  for (const t of complete(run)) {
    const context = before;
    before += t.nTokens;
    if (t.phase !== "decode") continue;
    const attention = attentionNs(t);
    if (!attention) continue;
    const pos = Math.max(...(t.batch?.seqs.map((s) => s.posMax) ?? [-1]));
    points.push({ x: pos >= 0 ? pos : context, y: attention / 1e6, seq: t.seq });
  }
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
  const context = contextSize(run.header.target.command);
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
function expertCount(run: Run, stats: Omit<ProfStats, "findings">): number {
  for (const snapshot of run.snapshots.values()) {
    for (const node of snapshot.dag.nodes) {
      if (/^ffn_moe_logits-\d+$/.test(node.tensor.name)) return node.tensor.ne[0]!;
    }
  }
  return Math.max(...stats.experts.flatMap((l) => Object.keys(l.counts).map(Number))) + 1;
}

/**
 * MoE routing per layer: how evenly the experts are loaded (Jain's index), the hottest expert,
 * and how many of a decode token's experts the next token chose again (reuse, which decides what
 * a cache of experts or an offload saves).
 */
function moeLoadFinding(run: Run, stats: Omit<ProfStats, "findings">): Finding | null {
  if (stats.experts.length === 0) return null;
  const experts = expertCount(run, stats);
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
  // reuse: consecutive decode calls of one token each, per layer
  let reused = 0;
  let pairs = 0;
  const decode = complete(run).filter((t) => t.phase === "decode" && t.nTokens === 1);
  for (let i = 1; i < decode.length; i++) {
    for (const [layer, rows] of decode[i]!.experts ?? []) {
      const before = decode[i - 1]!.experts?.get(layer)?.[0];
      const now = rows[0];
      if (!before || !now) continue;
      reused += now.filter((e) => before.includes(e)).length / now.length;
      pairs++;
    }
  }
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
