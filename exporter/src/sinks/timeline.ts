// SPDX-License-Identifier: Apache-2.0
// ProfTime's content, whatever its encoding: one process (the target), a "tokens" and a "graphs"
// track, a "backend <name>" track per backend a split was handed to (perfettoBackends.ts), a
// "seq <id>" track per sequence with its requests (each split at its first token), one track per
// ggml thread with its operators and barrier waits (and counter tracks when counters were
// recorded), one "sched <tid>" track per thread with its off-CPU time. Written chunk by
// chunk (trace/runStream.ts) into an encoder: trace.json's (perfetto.ts) or Perfetto's protobuf
// (perfettoProto.ts), so that both hold the same tracks and slices.
import type { DerivedFigures } from "@profinfer/contract";
import { toWallClockNs } from "../trace/clock.js";
import { displayOpName, snapshotKey } from "../trace/dag.js";
import { deriveFigures } from "../trace/derived.js";
import type { RunHeader } from "../trace/header.js";
import { chunkOfRun, totalsOfRun, type RunChunk, type RunTotals } from "../trace/runStream.js";
import type { BackendStallFormula } from "../trace/backendStall.js";
import { BACKEND_TRACK_BASE, backendSlices } from "./perfettoBackends.js";
import type {
  Backend,
  GraphRun,
  OffCpuInterval,
  OpThreadRun,
  Request,
  Run,
  Token,
} from "../trace/types.js";

/** Synthetic thread ids of the non-thread tracks: above any Linux tid (PID_MAX_LIMIT is 2^22). */
export const TOKENS_TRACK_TID = 2_000_000_001;
export const GRAPHS_TRACK_TID = 2_000_000_002;
/** The "sched <tid>" track of thread tid has this tid plus the thread's. */
export const SCHED_TRACK_BASE = 1_000_000_000;
/** The "seq <id>" track of a sequence's requests has this tid plus its id. */
export const REQUESTS_TRACK_BASE = 1_500_000_000;

export type TimelineArgs = Record<string, unknown>;

/** A track: a real thread of the target (its tid) or one of the synthetic ones. */
export interface TimelineTrack {
  tid: number;
  name: string;
  /** a thread of the target, not a synthetic track */
  thread: boolean;
}

/** Where the timeline's content goes. Slices of one track come in start order. */
export interface TimelineEncoder {
  slice(
    track: TimelineTrack,
    name: string,
    cat: string,
    startNs: bigint,
    endNs: bigint,
    args?: TimelineArgs,
  ): void;
  /** a sample of counter track `name` of thread `track` */
  counter(track: TimelineTrack, name: string, ts: bigint, value: number): void;
  /** the end: the tracks in display order, and what the run says about itself */
  finish(end: TimelineEnd): void;
}

export interface TimelineEnd {
  pid: number;
  processName: string;
  command: readonly string[];
  /** every track, in display order, with its sort index */
  tracks: (TimelineTrack & { sortIndex: number })[];
  otherData: Record<string, unknown>;
}

function hex(value: bigint): string {
  return `0x${value.toString(16)}`;
}

const TOKENS: TimelineTrack = { tid: TOKENS_TRACK_TID, name: "tokens", thread: false };
const GRAPHS: TimelineTrack = { tid: GRAPHS_TRACK_TID, name: "graphs", thread: false };
const seqTrack = (seqId: number): TimelineTrack => ({
  tid: REQUESTS_TRACK_BASE + seqId,
  name: `seq ${seqId}`,
  thread: false,
});
const schedTrack = (tid: number): TimelineTrack => ({
  tid: SCHED_TRACK_BASE + tid,
  name: `sched ${tid}`,
  thread: false,
});

/** A backend's track; its sort index puts it after the graphs track. */
const backendTrack = (b: Backend): TimelineTrack & { sortIndex: number } => ({
  tid: BACKEND_TRACK_BASE + b.id,
  name: `backend ${b.name}`,
  thread: false,
  sortIndex: 1.5 + b.id / 1000,
});

/** Derived figures drawn as counter tracks, with the unit the track shows. */
const DERIVED_TRACKS: [keyof DerivedFigures, string][] = [
  ["ipc", "IPC"],
  ["backendStallRatio", "backend stall ratio"],
  ["cacheMissRate", "cache miss rate"],
  ["onCpuRatio", "on-CPU ratio"],
];

/**
 * Writes a run's timeline, chunk after chunk, into an encoder. `snapshotUses` says how often a
 * graph description was used over the whole run (the first pass knows it before the chunks).
 */
export class TimelineWriter {
  private readonly seqIds = new Set<number>();
  private readonly schedTids = new Set<number>();
  private readonly stall: BackendStallFormula | null;

  constructor(
    private readonly header: RunHeader,
    private readonly encoder: TimelineEncoder,
    private readonly snapshotUses: (key: string) => number,
    stall: BackendStallFormula | null,
  ) {
    this.stall = stall;
  }

  chunk(chunk: RunChunk): void {
    const run = chunk.run;
    for (const token of run.tokens) this.token(token);
    for (const request of chunk.requestsEnded) this.request(request);
    for (const g of run.graphRuns) this.graph(g);
    for (const { backend, slices } of backendSlices(run.graphRuns)) {
      const track = backendTrack(backend);
      for (const s of slices) this.encoder.slice(track, s.name, s.cat, s.startNs, s.endNs, s.args);
    }
    // operators per thread, each thread's in time order
    const perThread = new Map<
      number,
      { g: GraphRun; op: GraphRun["ops"][number]; t: OpThreadRun }[]
    >();
    for (const g of run.graphRuns) {
      for (const op of g.ops) {
        for (const t of op.threads) {
          let list = perThread.get(t.tid);
          if (!list) perThread.set(t.tid, (list = []));
          list.push({ g, op, t });
        }
      }
    }
    for (const [tid, list] of perThread) {
      const track: TimelineTrack = {
        tid,
        name: run.threads.get(tid)?.name ?? `thread ${tid}`,
        thread: true,
      };
      for (const { g, op, t } of list) this.opOnThread(track, g, op, t);
    }
    const closed = [...chunk.offCpuClosed].sort(
      (a, b) => a.tid - b.tid || (a.startNs < b.startNs ? -1 : a.startNs > b.startNs ? 1 : 0),
    );
    for (const iv of closed) this.offCpu(iv);
  }

  private token(token: Token): void {
    const args: TimelineArgs = {
      phase: token.phase,
      n_tokens: token.nTokens,
      sequences: token.steps?.length ?? 1,
      seq: token.seq,
      ret: token.ret,
      ops_sampled: token.opsSampled,
    };
    if (token.ret === null) args.complete = false;
    this.encoder.slice(TOKENS, token.phase, "token", token.startNs, token.endNs, args);
  }

  /** A request's slice on its sequence's track, and inside it its prompt and its generation. */
  private request(r: Request): void {
    this.seqIds.add(r.seqId);
    const track = seqTrack(r.seqId);
    const ms = (ns: bigint) => Number(ns) / 1e6;
    const args: TimelineArgs = {
      id: r.id,
      prompt_tokens: r.promptTokens,
      cached_tokens: r.cachedTokens,
      generated_tokens: r.generatedTokens,
      calls: r.steps.length,
      ttft_ms: r.firstOutputNs === null ? null : ms(r.firstOutputNs - r.startNs),
    };
    if (r.incomplete !== null) args.incomplete = r.incomplete;
    this.encoder.slice(track, `request #${r.id}`, "request", r.startNs, r.endNs, args);
    const first = r.firstOutputNs;
    if (first !== null) {
      this.encoder.slice(track, "prompt", "request", r.startNs, first, {
        tokens: r.promptTokens,
      });
      if (first < r.endNs)
        this.encoder.slice(track, "generation", "request", first, r.endNs, {
          tokens: r.generatedTokens - 1,
        });
    }
  }

  private graph(g: GraphRun): void {
    const args: TimelineArgs = {
      fn: g.fn,
      cgraph: hex(g.cgraph),
      signature: hex(g.signature),
      nodes: g.nNodes,
      threads: g.nThreads,
      token: g.tokenSeq,
      ops: g.ops.length,
      snapshot_uses: g.snapshot ? this.snapshotUses(snapshotKey(g.cgraph, g.signature)) : 0,
      complete: g.complete,
    };
    if (g.problems.length > 0) args.problems = g.problems;
    if (g.split) {
      args.backend = g.split.backend.name;
      args.split = g.split.index;
      args.first_node = g.split.firstNode;
    }
    const name = g.split ? `split ${g.split.backend.name}` : `${g.fn} graph`;
    this.encoder.slice(GRAPHS, name, "graph", g.startNs, g.endNs, args);
  }

  private opOnThread(
    track: TimelineTrack,
    g: GraphRun,
    op: GraphRun["ops"][number],
    t: OpThreadRun,
  ): void {
    const dag = g.snapshot?.dag;
    const t0 = op.tensor;
    const args: TimelineArgs = {
      op: op.label,
      shape: t0.ne,
      type: t0.typeName,
      layer: t0.layer,
      node: op.nodeIndex,
      visible: t.visible,
      graph: g.id,
      token: g.tokenSeq,
    };
    const fused = op.fusedWith?.map((i) => dag?.nodes[i]?.tensor.name ?? String(i));
    if (fused) args.fused = fused;
    if (t.innerBarrierWaitNs > 0) args.inner_barrier_ns = t.innerBarrierWaitNs;
    if (t.offCpuNs > 0) args.off_cpu_ns = t.offCpuNs;
    if (t.preemptedNs > 0) args.preempted_ns = t.preemptedNs;
    if (t.startInferred) args.start_inferred = true;
    let figures: DerivedFigures | null = null;
    if (t.counters) {
      args.counters = t.counters;
      figures = deriveFigures(t.counters, Number(t.endNs - t.startNs), this.stall);
      if (Object.keys(figures).length > 0) args.derived = figures;
    }
    this.encoder.slice(track, t0.name, displayOpName(op.label), t.startNs, t.endNs, args);
    if (figures) this.counterSamples(track, t, figures);
    if (t.barrierStartNs !== null && t.barrierEndNs !== null) {
      this.encoder.slice(track, "barrier", "barrier", t.barrierStartNs, t.barrierEndNs, {
        after: t0.name,
        wait_ns: t.barrierWaitNs,
      });
    }
  }

  /**
   * Counter samples of one operator interval on one thread: each recorded counter as a rate (per
   * microsecond of the interval) and each derived figure, set at its start and back to 0 at its
   * end.
   */
  private counterSamples(track: TimelineTrack, t: OpThreadRun, figures: DerivedFigures): void {
    const durUs = Number(t.endNs - t.startNs) / 1000;
    const sample = (name: string, value: number) => {
      this.encoder.counter(track, name, t.startNs, value);
      this.encoder.counter(track, name, t.endNs, 0);
    };
    for (const [name, delta] of Object.entries(t.counters ?? {}))
      sample(`${name}/us`, durUs > 0 ? Math.round((delta / durUs) * 1000) / 1000 : 0);
    for (const [key, label] of DERIVED_TRACKS) {
      const v = figures[key];
      if (v !== undefined) sample(label, v);
    }
  }

  private offCpu(iv: OffCpuInterval): void {
    this.schedTids.add(iv.tid);
    const args: TimelineArgs = { cpu: iv.cpu, prev_state: iv.prevState };
    if (iv.by) {
      args.by_comm = iv.by.comm;
      args.by_tgid = iv.by.tgid;
      args.by_tid = iv.by.tid;
    }
    if (iv.open) args.open = true;
    this.encoder.slice(
      schedTrack(iv.tid),
      iv.preempted && iv.by ? `preempted by ${iv.by.comm}` : "off-cpu",
      "sched",
      iv.startNs,
      iv.endNs,
      args,
    );
  }

  /** The end of the run: every track in display order, and what the run says about itself. */
  finish(totals: RunTotals): void {
    const pid = this.header.target.pid;
    const tracks: TimelineEnd["tracks"] = [
      { ...TOKENS, sortIndex: 0 },
      { ...GRAPHS, sortIndex: 1 },
      ...totals.backends.map(backendTrack),
    ];
    const seqIds = [...this.seqIds].sort((a, b) => a - b);
    seqIds.forEach((seqId, i) => tracks.push({ ...seqTrack(seqId), sortIndex: 2 + i / 1000 }));
    let sortIndex = 10;
    for (const t of totals.threads.values())
      tracks.push({ tid: t.tid, name: t.name, thread: true, sortIndex: sortIndex++ });
    for (const tid of [...this.schedTids].sort((a, b) => a - b))
      tracks.push({ ...schedTrack(tid), sortIndex: sortIndex++ });
    this.encoder.finish({
      pid,
      processName: this.header.target.command.join(" ") || `pid ${pid}`,
      command: this.header.target.command,
      tracks,
      otherData: {
        profinfer: this.header.profinfer,
        command: this.header.target.command,
        pid,
        level: this.header.level,
        firstEventRealtimeNs: toWallClockNs(totals.clock, totals.firstNs).toString(),
        truncated: totals.truncatedAt !== null,
        warnings: totals.warnings,
      },
    });
  }
}

/** The timeline of a run built whole, as one chunk. */
export function timelineOfRun(run: Run, encoder: TimelineEncoder): void {
  const writer = new TimelineWriter(
    run.header,
    encoder,
    (key) => run.snapshots.get(key)?.uses ?? 0,
    run.backendStall ?? null,
  );
  writer.chunk(chunkOfRun(run));
  writer.finish(totalsOfRun(run));
}
