// SPDX-License-Identifier: Apache-2.0
// ProfTime: trace.json in the Chrome trace-event "JSON Object Format", which Perfetto UI and
// chrome://tracing open. One process (the target), a "tokens" and a "graphs" track, a "seq <id>"
// track per sequence with its requests (each split at its first token), one track per ggml thread
// with its operators and barrier waits, one "sched <tid>" track per thread with its off-CPU
// time. Timestamps are microseconds from the run's first event, computed from BigInt ns
// (so they keep ns precision); the output depends on the recording only, byte for byte.
import { closeSync, openSync, writeSync } from "node:fs";
import { toWallClockNs } from "../trace/clock.js";
import { displayOpName } from "../trace/dag.js";
import type { DerivedFigures } from "@profinfer/contract";
import { deriveFigures } from "../trace/derived.js";
import type { GraphRun, OpThreadRun, Request, Run, Token } from "../trace/types.js";

/** Synthetic thread ids of the non-thread tracks: above any Linux tid (PID_MAX_LIMIT is 2^22). */
export const TOKENS_TRACK_TID = 2_000_000_001;
export const GRAPHS_TRACK_TID = 2_000_000_002;
/** The "sched <tid>" track of thread tid has this tid plus the thread's. */
export const SCHED_TRACK_BASE = 1_000_000_000;
/** The "seq <id>" track of a sequence's requests has this tid plus its id. */
export const REQUESTS_TRACK_BASE = 1_500_000_000;

interface TraceEvent {
  name: string;
  cat?: string;
  ph: "X" | "M" | "C";
  ts?: number;
  dur?: number;
  pid: number;
  tid: number;
  args?: Record<string, unknown>;
}

function hex(value: bigint): string {
  return `0x${value.toString(16)}`;
}

/**
 * The trace's events as JSON texts, in a fixed order: metadata, tokens, graphs, each thread's
 * operators and barriers (threads in Run.threads order, events in time order), sched tracks.
 */
export function* perfettoEventTexts(run: Run): Generator<string, void, undefined> {
  const pid = run.header.target.pid;
  const base = run.firstNs;
  const us = (ns: bigint): number => Number(ns - base) / 1000;
  const dur = (from: bigint, to: bigint): number => (to > from ? Number(to - from) / 1000 : 0);
  const text = (ev: TraceEvent): string => JSON.stringify(ev);
  const meta = (name: string, tid: number, args: Record<string, unknown>): string =>
    text({ name, ph: "M", pid, tid, args });

  yield meta("process_name", pid, { name: run.header.target.command.join(" ") || `pid ${pid}` });
  yield meta("thread_name", TOKENS_TRACK_TID, { name: "tokens" });
  yield meta("thread_sort_index", TOKENS_TRACK_TID, { sort_index: 0 });
  yield meta("thread_name", GRAPHS_TRACK_TID, { name: "graphs" });
  yield meta("thread_sort_index", GRAPHS_TRACK_TID, { sort_index: 1 });
  const seqIds = [...new Set(run.requests.map((r) => r.seqId))].sort((a, b) => a - b);
  for (const [i, seqId] of seqIds.entries()) {
    yield meta("thread_name", REQUESTS_TRACK_BASE + seqId, { name: `seq ${seqId}` });
    yield meta("thread_sort_index", REQUESTS_TRACK_BASE + seqId, { sort_index: 2 + i / 1000 });
  }
  let sortIndex = 10;
  for (const t of run.threads.values()) {
    yield meta("thread_name", t.tid, { name: t.name });
    yield meta("thread_sort_index", t.tid, { sort_index: sortIndex++ });
  }
  for (const tid of run.offCpu.keys()) {
    yield meta("thread_name", SCHED_TRACK_BASE + tid, { name: `sched ${tid}` });
    yield meta("thread_sort_index", SCHED_TRACK_BASE + tid, { sort_index: sortIndex++ });
  }

  for (const token of run.tokens) yield text(tokenEvent(token, pid, us, dur));
  for (const request of run.requests) {
    for (const ev of requestEvents(request, pid, us, dur)) yield text(ev);
  }
  for (const g of run.graphRuns) yield text(graphEvent(g, pid, us, dur));

  // Operators per thread: one pass over the graphs, bucketed by thread.
  const perThread = new Map<number, string[]>();
  for (const tid of run.threads.keys()) perThread.set(tid, []);
  for (const g of run.graphRuns) {
    const dag = g.snapshot?.dag;
    for (const op of g.ops) {
      const fused = op.fusedWith?.map((i) => dag?.nodes[i]?.tensor.name ?? String(i));
      const t0 = op.tensor;
      for (const t of op.threads) {
        let list = perThread.get(t.tid);
        if (!list) perThread.set(t.tid, (list = []));
        const args: Record<string, unknown> = {
          op: op.label,
          shape: t0.ne,
          type: t0.typeName,
          layer: t0.layer,
          node: op.nodeIndex,
          visible: t.visible,
          graph: g.id,
          token: g.tokenSeq,
        };
        if (fused) args.fused = fused;
        if (t.innerBarrierWaitNs > 0) args.inner_barrier_ns = t.innerBarrierWaitNs;
        if (t.offCpuNs > 0) args.off_cpu_ns = t.offCpuNs;
        if (t.preemptedNs > 0) args.preempted_ns = t.preemptedNs;
        if (t.startInferred) args.start_inferred = true;
        if (t.counters) {
          args.counters = t.counters;
          const figures = deriveFigures(
            t.counters,
            Number(t.endNs - t.startNs),
            run.backendStall ?? null,
          );
          if (Object.keys(figures).length > 0) args.derived = figures;
          list.push(...counterSamples(t, figures, pid, us));
        }
        list.push(
          text({
            name: t0.name,
            cat: displayOpName(op.label),
            ph: "X",
            ts: us(t.startNs),
            dur: dur(t.startNs, t.endNs),
            pid,
            tid: t.tid,
            args,
          }),
        );
        if (t.barrierStartNs !== null && t.barrierEndNs !== null) {
          list.push(
            text({
              name: "barrier",
              cat: "barrier",
              ph: "X",
              ts: us(t.barrierStartNs),
              dur: dur(t.barrierStartNs, t.barrierEndNs),
              pid,
              tid: t.tid,
              args: { after: t0.name, wait_ns: t.barrierWaitNs },
            }),
          );
        }
      }
    }
  }
  for (const list of perThread.values()) yield* list;

  for (const [tid, intervals] of run.offCpu) {
    for (const iv of intervals) {
      const args: Record<string, unknown> = { cpu: iv.cpu, prev_state: iv.prevState };
      if (iv.by) {
        args.by_comm = iv.by.comm;
        args.by_tgid = iv.by.tgid;
        args.by_tid = iv.by.tid;
      }
      if (iv.open) args.open = true;
      yield text({
        name: iv.preempted && iv.by ? `preempted by ${iv.by.comm}` : "off-cpu",
        cat: "sched",
        ph: "X",
        ts: us(iv.startNs),
        dur: dur(iv.startNs, iv.endNs),
        pid,
        tid: SCHED_TRACK_BASE + tid,
        args,
      });
    }
  }
}

type Us = (ns: bigint) => number;
type Dur = (from: bigint, to: bigint) => number;

/** Derived figures drawn as counter tracks, with the unit the track shows. */
const DERIVED_TRACKS: [keyof DerivedFigures, string][] = [
  ["ipc", "IPC"],
  ["backendStallRatio", "backend stall ratio"],
  ["cacheMissRate", "cache miss rate"],
  ["onCpuRatio", "on-CPU ratio"],
];

/**
 * Counter track samples of one operator interval on one thread: each recorded counter as a rate
 * (per microsecond of the interval) and each derived figure, set at its start and back to 0 at
 * its end, on tracks named after the thread ("cycles/us tid 1234").
 */
function counterSamples(t: OpThreadRun, figures: DerivedFigures, pid: number, us: Us): string[] {
  const out: string[] = [];
  const durUs = Number(t.endNs - t.startNs) / 1000;
  const sample = (name: string, ts: bigint, value: number) =>
    out.push(
      JSON.stringify({
        name: `${name} tid ${t.tid}`,
        cat: "counter",
        ph: "C",
        ts: us(ts),
        pid,
        tid: t.tid,
        args: { value },
      } satisfies TraceEvent),
    );
  for (const [name, delta] of Object.entries(t.counters ?? {})) {
    sample(`${name}/us`, t.startNs, durUs > 0 ? Math.round((delta / durUs) * 1000) / 1000 : 0);
    sample(`${name}/us`, t.endNs, 0);
  }
  for (const [key, label] of DERIVED_TRACKS) {
    const v = figures[key];
    if (v === undefined) continue;
    sample(label, t.startNs, v);
    sample(label, t.endNs, 0);
  }
  return out;
}

/** A request's slice on its sequence's track, and inside it its prompt and its generation. */
function requestEvents(r: Request, pid: number, us: Us, dur: Dur): TraceEvent[] {
  const tid = REQUESTS_TRACK_BASE + r.seqId;
  const ms = (ns: bigint) => Number(ns) / 1e6;
  const args: Record<string, unknown> = {
    id: r.id,
    prompt_tokens: r.promptTokens,
    cached_tokens: r.cachedTokens,
    generated_tokens: r.generatedTokens,
    calls: r.steps.length,
    ttft_ms: r.firstOutputNs === null ? null : ms(r.firstOutputNs - r.startNs),
  };
  if (r.incomplete !== null) args.incomplete = r.incomplete;
  const slice = (name: string, from: bigint, to: bigint, a?: Record<string, unknown>) => ({
    name,
    cat: "request",
    ph: "X" as const,
    ts: us(from),
    dur: dur(from, to),
    pid,
    tid,
    ...(a ? { args: a } : {}),
  });
  const out = [slice(`request #${r.id}`, r.startNs, r.endNs, args)];
  const first = r.firstOutputNs;
  if (first !== null) {
    out.push(slice("prompt", r.startNs, first, { tokens: r.promptTokens }));
    if (first < r.endNs)
      out.push(slice("generation", first, r.endNs, { tokens: r.generatedTokens - 1 }));
  }
  return out;
}

function tokenEvent(token: Token, pid: number, us: Us, dur: Dur): TraceEvent {
  const args: Record<string, unknown> = {
    phase: token.phase,
    n_tokens: token.nTokens,
    sequences: token.steps?.length ?? 1,
    seq: token.seq,
    ret: token.ret,
    ops_sampled: token.opsSampled,
  };
  if (token.ret === null) args.complete = false;
  return {
    name: token.phase,
    cat: "token",
    ph: "X",
    ts: us(token.startNs),
    dur: dur(token.startNs, token.endNs),
    pid,
    tid: TOKENS_TRACK_TID,
    args,
  };
}

function graphEvent(g: GraphRun, pid: number, us: Us, dur: Dur): TraceEvent {
  const args: Record<string, unknown> = {
    fn: g.fn,
    cgraph: hex(g.cgraph),
    signature: hex(g.signature),
    nodes: g.nNodes,
    threads: g.nThreads,
    token: g.tokenSeq,
    ops: g.ops.length,
    snapshot_uses: g.snapshot?.uses ?? 0,
    complete: g.complete,
  };
  if (g.problems.length > 0) args.problems = g.problems;
  return {
    name: `${g.fn} graph`,
    cat: "graph",
    ph: "X",
    ts: us(g.startNs),
    dur: dur(g.startNs, g.endNs),
    pid,
    tid: GRAPHS_TRACK_TID,
    args,
  };
}

function headText(run: Run): string {
  const otherData = {
    profinfer: run.header.profinfer,
    command: run.header.target.command,
    pid: run.header.target.pid,
    level: run.header.level,
    firstEventRealtimeNs: toWallClockNs(run.clock, run.firstNs).toString(),
    truncated: run.truncatedAt !== null,
    warnings: run.warnings,
  };
  return `{"displayTimeUnit":"ns","otherData":${JSON.stringify(otherData)},"traceEvents":[\n`;
}

const TAIL = "\n]}\n";

/** The whole trace.json text (for tests and small runs; writePerfettoTrace streams). */
export function renderPerfettoTrace(run: Run): string {
  return headText(run) + [...perfettoEventTexts(run)].join(",\n") + TAIL;
}

/** Write trace.json, in chunks, so that runs of millions of operators need no giant string. */
export function writePerfettoTrace(run: Run, path: string): void {
  const fd = openSync(path, "w");
  try {
    let chunk = headText(run);
    let first = true;
    for (const ev of perfettoEventTexts(run)) {
      chunk += first ? ev : `,\n${ev}`;
      first = false;
      if (chunk.length > 1 << 20) {
        writeSync(fd, chunk);
        chunk = "";
      }
    }
    writeSync(fd, chunk + TAIL);
  } finally {
    closeSync(fd);
  }
}
