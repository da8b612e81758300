// SPDX-License-Identifier: Apache-2.0
// The event stream cut into chunks of whole llama_decode calls, so that a run of any length is
// built chunk by chunk (trace/runStream.ts), live while recording and from events.pinf alike.
//
// A cut is a time before which every event has arrived (the newest event's time less a margin:
// the ring buffer hands events over within one poll, and a thread's batch of steps leaves at the
// latest when its graph ends) and no llama_decode call is open, so that every call before it is
// whole. Graph descriptions are sent by the tracer only when a graph changes: they are kept
// (descriptions.ts) and given again to every chunk that runs that graph.
import { EventType, type ChunkEvent } from "../abi/events.js";
import { DescriptionKeeper } from "./descriptions.js";
import { snapshotKey } from "./dag.js";

export class CallChunker {
  private pending: ChunkEvent[] = [];
  /** the newest event time seen */
  newestNs = 0n;
  /** open llama_decode calls: tid -> begin time */
  private readonly openCalls = new Map<number, bigint>();
  /** calls that ended after the last cut: [begin, end] */
  private endedCalls: [bigint, bigint][] = [];
  private readonly descriptions = new DescriptionKeeper<ChunkEvent>();

  /** Events waiting for a cut. */
  get pendingEvents(): number {
    return this.pending.length;
  }

  /** Calls that ended since the last cut. */
  get pendingCalls(): number {
    return this.endedCalls.length;
  }

  /** The begin time of each call still open. */
  openCallBegins(): IterableIterator<bigint> {
    return this.openCalls.values();
  }

  take(ev: ChunkEvent): void {
    if (ev.ts > this.newestNs) this.newestNs = ev.ts;
    switch (ev.type) {
      case EventType.TOKEN_BEGIN:
        this.openCalls.set(ev.tid, ev.ts);
        break;
      case EventType.BATCH: {
        // the call's batch is read, and stamped, just before its TOKEN_BEGIN: the call begins
        // there, so that no cut falls between the two
        const begin = this.openCalls.get(ev.tid);
        if (begin !== undefined && ev.ts < begin) this.openCalls.set(ev.tid, ev.ts);
        break;
      }
      case EventType.TOKEN_END: {
        const begin = this.openCalls.get(ev.tid);
        this.openCalls.delete(ev.tid);
        if (begin !== undefined) this.endedCalls.push([begin, ev.ts]);
        break;
      }
      case EventType.GRAPH_BEGIN:
        if (ev.changed) this.descriptions.changed(ev.cgraph, ev.signature);
        break;
      case EventType.GRAPH_NODES:
        this.descriptions.nodes(ev.cgraph, ev.signature, ev);
        break;
      case EventType.TENSOR:
        this.descriptions.tensor(ev.signature, ev.addr, ev);
        break;
    }
    this.pending.push(ev);
  }

  /**
   * The latest cut at or before `ns` that splits no call: before every call still open and every
   * call that ended after it.
   */
  cutAtOrBefore(ns: bigint): bigint {
    let cut = ns;
    for (const begin of this.openCalls.values()) if (begin < cut) cut = begin;
    // a call that ended after the cut must not be split either; moving the cut back may reach
    // an earlier one, hence the loop
    for (let moved = true; moved;) {
      moved = false;
      for (const [begin, end] of this.endedCalls) {
        if (begin < cut && end >= cut) {
          cut = begin;
          moved = true;
        }
      }
    }
    return cut;
  }

  /**
   * The events before `cut` (every pending event when null), preceded by the kept descriptions of
   * the graphs they run; they leave the chunker.
   */
  split(cut: bigint | null): ChunkEvent[] {
    let chunk: ChunkEvent[];
    if (cut === null) {
      chunk = this.pending;
      this.pending = [];
      this.endedCalls = [];
    } else {
      chunk = [];
      const rest: ChunkEvent[] = [];
      for (const ev of this.pending) (ev.ts < cut ? chunk : rest).push(ev);
      this.pending = rest;
      this.endedCalls = this.endedCalls.filter(([, end]) => end >= cut);
    }
    const descriptions = this.descriptionsFor(chunk);
    return descriptions.length > 0 ? [...descriptions, ...chunk] : chunk;
  }

  /** The kept descriptions of the graphs a chunk runs (they come before its own events). */
  private descriptionsFor(chunk: readonly ChunkEvent[]): ChunkEvent[] {
    const keys = new Set<string>();
    for (const ev of chunk)
      if (ev.type === EventType.GRAPH_BEGIN) keys.add(snapshotKey(ev.cgraph, ev.signature));
    return keys.size > 0 ? this.descriptions.itemsFor(keys) : [];
  }
}
