// SPDX-License-Identifier: Apache-2.0
// Where each recorded thing belongs in time: graph computations in the llama_decode call that
// contains their start, and operator, barrier and step events in the innermost graph of their
// process that contains them.
import {
  EventType,
  opsOfBatch,
  stepsOfBatch,
  type BarrierEvent,
  type OpBatchEvent,
  type OpEvent,
  type StepBatchEvent,
  type StepEvent,
} from "../abi/events.js";
import { pushTo } from "./multimap.js";
import type { StepItem } from "./steps.js";
import { pairThreadEvents, type ThreadItem } from "./threadItems.js";
import type { GraphRun, Token } from "./types.js";

/** The llama_decode call of process `tgid` running at `ts`, if any. */
export type CallAt = (tgid: number, ts: bigint) => Token | null;

/** Finds calls by time in `tokens` (in start order). */
export function callsByTime(tokens: readonly Token[]): CallAt {
  const tokensByTgid = new Map<number, Token[]>();
  for (const t of tokens) pushTo(tokensByTgid, t.tgid, t);
  return (tgid, ts) => {
    const list = tokensByTgid.get(tgid);
    if (!list) return null;
    let lo = 0;
    let hi = list.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (list[mid]!.startNs <= ts) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    for (let i = found; i >= 0 && i >= found - 4; i--) {
      const t = list[i]!;
      if (t.startNs <= ts && ts <= t.endNs) return t;
    }
    return null;
  };
}

/** Gives each graph run to the call it started in; returns how many ran outside any call. */
export function placeGraphsInCalls(graphRuns: readonly GraphRun[], callAt: CallAt): number {
  let outside = 0;
  for (const g of graphRuns) {
    const token = callAt(g.tgid, g.startNs);
    if (token) {
      token.graphs.push(g);
      g.tokenSeq = token.seq;
    } else outside++;
  }
  return outside;
}

/** The graph that starts last at or before `ts` and still contains it (walking up the parents). */
export class GraphIndex {
  private readonly starts: bigint[];
  private cache = -1;
  constructor(private readonly graphs: GraphRun[]) {
    this.starts = graphs.map((g) => g.startNs);
  }

  innermostAt(ts: bigint): GraphRun | null {
    const starts = this.starts;
    let i = this.cache;
    if (!(i >= 0 && starts[i]! <= ts && (i + 1 === starts.length || starts[i + 1]! > ts))) {
      let lo = 0;
      let hi = starts.length - 1;
      i = -1;
      while (lo <= hi) {
        const mid = (lo + hi) >> 1;
        if (starts[mid]! <= ts) {
          i = mid;
          lo = mid + 1;
        } else hi = mid - 1;
      }
      this.cache = i;
    }
    let g: GraphRun | null = i >= 0 ? this.graphs[i]! : null;
    while (g !== null && g.endNs < ts) g = g.parent;
    return g;
  }
}

/** A GraphIndex per process, over its graph runs (in start order). */
export function graphIndexes(graphRuns: readonly GraphRun[]): Map<number, GraphIndex> {
  const graphsByTgid = new Map<number, GraphRun[]>();
  for (const g of graphRuns) pushTo(graphsByTgid, g.tgid, g);
  const indexes = new Map<number, GraphIndex>();
  for (const [tgid, list] of graphsByTgid) indexes.set(tgid, new GraphIndex(list));
  return indexes;
}

export interface PlacedItems {
  /** each graph's top-level operator and barrier intervals, per thread */
  itemsByGraph: Map<GraphRun, Map<number, ThreadItem[]>>;
  /** each graph's steps, per thread */
  stepsByGraph: Map<GraphRun, Map<number, StepItem[]>>;
  /** each graph's batches of steps still as bytes, per thread (stepsOf decodes them) */
  stepBatchesByGraph: Map<GraphRun, Map<number, StepBatchEvent[]>>;
  /** each graph's runs of OP events still as records, per thread (itemsOf decodes them) */
  opBatchesByGraph: Map<GraphRun, Map<number, OpBatchEvent[]>>;
  /** ggml worker index of each thread, from its OP events */
  ithByTid: Map<number, number>;
  /** intervals and steps that fell outside any graph */
  lost: number;
  /** intervals that lost their begin or end event */
  broken: number;
}

/**
 * Operator and barrier events paired per thread, each top-level interval given to the innermost
 * graph of its process that contains its start; steps likewise.
 */
export function placeThreadEvents(
  threadEvents: ReadonlyMap<number, readonly (OpEvent | BarrierEvent)[]>,
  stepEvents: ReadonlyMap<number, readonly StepEvent[]>,
  indexes: ReadonlyMap<number, GraphIndex>,
  stepBatches: ReadonlyMap<number, readonly StepBatchEvent[]> = new Map(),
  opBatches: ReadonlyMap<number, readonly OpBatchEvent[]> = new Map(),
): PlacedItems {
  const out: PlacedItems = {
    itemsByGraph: new Map(),
    stepsByGraph: new Map(),
    stepBatchesByGraph: new Map(),
    opBatchesByGraph: new Map(),
    ithByTid: new Map(),
    lost: 0,
    broken: 0,
  };
  // a run of OP events kept as records that lies in one graph stays so (its first event gives the
  // thread's ith); the others, and every run of a thread whose barrier events came decoded (its
  // OP and barrier events pair together), join the thread's decoded events in time order
  let decoded = threadEvents;
  if (opBatches.size > 0) {
    const joined = new Map(threadEvents);
    for (const [tid, runs] of opBatches) {
      const index = indexes.get(runs[0]!.tgid);
      const own = threadEvents.get(tid) ?? [];
      const barriers = own.some(
        (e) => e.type === EventType.BARRIER_BEGIN || e.type === EventType.BARRIER_END,
      );
      const join: OpEvent[] = [];
      for (const run of runs) {
        const g = barriers ? null : (index?.innermostAt(run.firstNs) ?? null);
        if (g && index!.innermostAt(run.ts) === g) {
          let perThread = out.opBatchesByGraph.get(g);
          if (!perThread) out.opBatchesByGraph.set(g, (perThread = new Map()));
          pushTo(perThread, tid, run);
          if (run.ith >= 0) out.ithByTid.set(tid, run.ith);
        } else join.push(...opsOfBatch(run));
      }
      if (join.length > 0)
        joined.set(
          tid,
          [...own, ...join].sort((a, b) => (a.ts < b.ts ? -1 : a.ts > b.ts ? 1 : 0)),
        );
    }
    decoded = joined;
  }
  for (const [tid, list] of [...decoded].sort((a, b) => a[0] - b[0])) {
    const index = indexes.get(list[0]!.tgid);
    for (const item of pairThreadEvents(list)) {
      if (item.broken) out.broken++;
      if (item.op && item.ith >= 0) out.ithByTid.set(tid, item.ith);
      const g = index?.innermostAt(item.beginNs) ?? null;
      if (!g) {
        out.lost++;
        continue;
      }
      let perThread = out.itemsByGraph.get(g);
      if (!perThread) out.itemsByGraph.set(g, (perThread = new Map()));
      pushTo(perThread, tid, item);
    }
  }
  const placeSteps = (tid: number, index: GraphIndex | undefined, list: readonly StepEvent[]) => {
    for (const ev of list) {
      const g = index?.innermostAt(ev.ts) ?? null;
      if (!g) {
        out.lost++;
        continue;
      }
      let perThread = out.stepsByGraph.get(g);
      if (!perThread) out.stepsByGraph.set(g, (perThread = new Map()));
      pushTo(perThread, tid, { ts: ev.ts, next: ev.next });
    }
  };
  for (const [tid, list] of stepEvents) placeSteps(tid, indexes.get(list[0]!.tgid), list);
  // a batch is sent when its graph ends on that thread (or when it is full): its first and last
  // step in one graph place it whole, else its steps are placed one by one
  for (const [tid, list] of stepBatches) {
    const index = indexes.get(list[0]!.tgid);
    for (const batch of list) {
      const g = index?.innermostAt(batch.firstNs) ?? null;
      if (g && index?.innermostAt(batch.ts) === g) {
        let perThread = out.stepBatchesByGraph.get(g);
        if (!perThread) out.stepBatchesByGraph.set(g, (perThread = new Map()));
        pushTo(perThread, tid, batch);
      } else placeSteps(tid, index, stepsOfBatch(batch));
    }
  }
  return out;
}

/**
 * A graph's operator and barrier intervals per thread, in each thread's order: those placed from
 * decoded events and those paired from its runs of OP events kept as records (whose broken
 * intervals are counted in `placed.broken` then); null when it has none.
 */
export function itemsOf(g: GraphRun, placed: PlacedItems): Map<number, ThreadItem[]> | null {
  const items = placed.itemsByGraph.get(g);
  const runs = placed.opBatchesByGraph.get(g);
  if (!runs) return items ?? null;
  const out = new Map(items ?? []);
  for (const [tid, list] of runs) {
    const paired = pairThreadEvents(list.flatMap(opsOfBatch));
    for (const item of paired) if (item.broken) placed.broken++;
    const have = out.get(tid);
    out.set(
      tid,
      have
        ? [...have, ...paired].sort((a, b) =>
            a.beginNs < b.beginNs ? -1 : a.beginNs > b.beginNs ? 1 : 0,
          )
        : paired,
    );
  }
  return out;
}

/**
 * A graph's steps per thread, in each thread's order: those placed one by one and those of its
 * batches kept as bytes; null when it has none.
 */
export function stepsOf(g: GraphRun, placed: PlacedItems): Map<number, StepItem[]> | null {
  const single = placed.stepsByGraph.get(g);
  const batches = placed.stepBatchesByGraph.get(g);
  if (!batches) return single ?? null;
  const out = new Map<number, StepItem[]>();
  for (const [tid, list] of batches) {
    const items: StepItem[] = [];
    for (const batch of list)
      for (const ev of stepsOfBatch(batch)) items.push({ ts: ev.ts, next: ev.next });
    out.set(tid, items);
  }
  for (const [tid, items] of single ?? []) {
    const have = out.get(tid);
    if (!have) out.set(tid, items);
    else {
      have.push(...items);
      have.sort((a, b) => (a.ts < b.ts ? -1 : a.ts > b.ts ? 1 : 0));
    }
  }
  return out;
}
