// SPDX-License-Identifier: Apache-2.0
// One thread's OP and BARRIER events (operator function and ggml_barrier probes) paired into its
// top-level intervals, the input of the alignment of function-probe runs (alignment.ts).
import { EventType, type BarrierEvent, type OpEvent } from "../abi/events.js";

/** A top-level OP or BARRIER interval of one thread (nested ones are folded into it). */
export interface ThreadItem {
  op: boolean;
  beginNs: bigint;
  /** null when the end event was lost */
  endNs: bigint | null;
  /** OP: the destination tensor */
  dst: bigint;
  ith: number;
  /** barriers passed inside an OP interval, and the time spent in them */
  innerBarriers: number;
  innerBarrierNs: number;
  /** a begin or end event of it was lost */
  broken: boolean;
  /** the thread's counter readings at its begin and end (runs that record counters) */
  beginCounters: number[] | null;
  endCounters: number[] | null;
}

/**
 * Pair one thread's OP and BARRIER events (in the thread's own order, which is the file order)
 * into top-level intervals. A nested OP with the same dst (cpy calling dup) folds into its outer
 * one; a barrier inside an OP interval is the op's own.
 */
export function pairThreadEvents(events: readonly (OpEvent | BarrierEvent)[]): ThreadItem[] {
  const items: ThreadItem[] = [];
  let openOp: ThreadItem | null = null;
  let depth = 0;
  let openBarrier: ThreadItem | null = null;
  let innerStart: bigint | null = null;
  const item = (
    op: boolean,
    ts: bigint,
    dst: bigint,
    ith: number,
    counters: number[] | null,
  ): ThreadItem => ({
    op,
    beginNs: ts,
    endNs: null,
    dst,
    ith,
    innerBarriers: 0,
    innerBarrierNs: 0,
    broken: false,
    beginCounters: counters,
    endCounters: null,
  });
  for (const ev of events) {
    const readings = ev.counters?.values ?? null;
    switch (ev.type) {
      case EventType.OP_BEGIN:
        if (openBarrier) {
          openBarrier.broken = true;
          openBarrier = null;
        }
        if (openOp && openOp.dst === ev.dst) {
          depth++;
          break;
        }
        if (openOp) openOp.broken = true; // its end was lost: a new node started
        openOp = item(true, ev.ts, ev.dst, ev.ith, readings);
        depth = 1;
        innerStart = null;
        items.push(openOp);
        break;
      case EventType.OP_END:
        if (!openOp) {
          const lost = item(true, ev.ts, ev.dst, ev.ith, null);
          lost.endNs = ev.ts;
          lost.broken = true;
          items.push(lost);
          break;
        }
        if (--depth === 0) {
          openOp.endNs = ev.ts;
          openOp.endCounters = readings;
          // OP_END carries no dst (a return probe has no arguments): 0 there is no mismatch
          if (ev.dst !== 0n && ev.dst !== openOp.dst) openOp.broken = true;
          openOp = null;
        }
        break;
      case EventType.BARRIER_BEGIN:
        if (openOp) {
          if (innerStart !== null) openOp.broken = true;
          innerStart = ev.ts;
        } else {
          if (openBarrier) openBarrier.broken = true;
          openBarrier = item(false, ev.ts, 0n, -1, readings);
          items.push(openBarrier);
        }
        break;
      case EventType.BARRIER_END:
        if (openOp && innerStart !== null) {
          openOp.innerBarriers++;
          openOp.innerBarrierNs += Number(ev.ts - innerStart);
          innerStart = null;
        } else if (openBarrier) {
          openBarrier.endNs = ev.ts;
          openBarrier.endCounters = readings;
          openBarrier = null;
        } else {
          const lost = item(false, ev.ts, 0n, -1, null);
          lost.endNs = ev.ts;
          lost.broken = true;
          items.push(lost);
        }
        break;
    }
  }
  if (openOp) openOp.broken = true;
  if (openBarrier) openBarrier.broken = true;
  return items;
}
