// SPDX-License-Identifier: Apache-2.0
// Live span export while record/attach runs: the recorder hands every batch it writes to
// events.pinf to this listener; about once a second the events up to a cut are turned into a
// trace model of their own and their llama_decode calls into spans, which go to the exporter's
// queue. A long llama-server run thus exports its tokens as they finish, not at its end.
//
// The cut: a time before which every event has arrived (the newest event's time less a margin:
// the ring buffer hands events over within one poll; all of them when no batch came since the
// last tick) and no llama_decode call is open, so every call before it is whole. Graph
// descriptions are sent by the tracer only when a graph changes; they are kept (per graph, the
// newest 64) and given again to every chunk that runs that graph. Requests are followed across
// chunks (SpanBuilder keeps them), so the spans are the ones the whole run gives (docs/spans.md
// says where they can differ); a request's root span leaves once its sequence has been idle for
// the bound, on the events' clock: by the cut, or, while nothing arrives, by the clock itself
// (CLOCK_MONOTONIC, less a safety margin), so that an idle server's last request leaves too.
import { clockFrom } from "../../trace/clock.js";
import { snapshotKey } from "../../trace/dag.js";
import {
  EventType,
  decodeRecord,
  type GraphNodesEvent,
  type RawEvent,
  type TensorEvent,
} from "../../abi/events.js";
import { buildRun } from "../../trace/buildRun.js";
import { stoppedNsOf, type RunNote } from "../../trace/notes.js";
import type { RunHeader } from "../../trace/header.js";
import type { RecordListener } from "../liveSink.js";
import { modelNameOfRun } from "../../trace/modelName.js";
import { SpanBuilder, SpanIds, type OpSampling, type SpanRecord } from "./spans.js";

const KEPT_DESCRIPTIONS = 64;

export interface LiveExportOptions {
  opSampling: OpSampling;
  /** a request whose sequence had no call for this long (ns) has ended */
  requestIdleNs: bigint;
  /** how often finished calls are turned into spans */
  intervalMs: number;
  /** events newer than the newest one less this may still be on their way */
  marginNs: bigint;
  /** receives each chunk's spans (SpanExport.add); must not block */
  send: (records: SpanRecord[]) => void;
  /** told the header and notes when they change what the resource says (model, build) */
  runInfo?: (header: RunHeader, notes: RunNote[]) => void;
  log: (message: string) => void;
  /** CLOCK_MONOTONIC now, the events' clock (default process.hrtime) */
  nowNs?: () => bigint;
}

interface Description {
  nodes: GraphNodesEvent[];
  signature: bigint;
}

export class LiveSpanExport implements RecordListener {
  private runHeader: RunHeader | null = null;
  private builder: SpanBuilder | null = null;
  private readonly options: LiveExportOptions;
  private incoming: Buffer[] = [];
  private pending: RawEvent[] = [];
  private newestNs = 0n;
  /** open llama_decode calls: tid -> begin time */
  private openCalls = new Map<number, bigint>();
  /** calls that ended after the last cut: [begin, end] */
  private endedCalls: [bigint, bigint][] = [];
  private descriptions = new Map<string, Description>();
  private tensors = new Map<bigint, Map<bigint, TensorEvent>>();
  private timer: NodeJS.Timeout | null = null;
  private failed = false;
  private notes: RunNote[] = [];
  /** when tracing stopped (the end note), once known */
  private stoppedNs: bigint | null = null;
  /** the target's exit note, once it came (none: tracing stopped while it ran) */
  private exit: { signal: string | null } | null = null;
  /** spans handed to the exporter so far, and the calls they came from */
  readonly counts = { spans: 0, calls: 0, chunks: 0 };

  constructor(options: LiveExportOptions) {
    this.options = options;
  }

  header(header: RunHeader): void {
    this.runHeader = header;
    const ids = new SpanIds(
      `${header.target.pid}:${BigInt(header.clock.realtimeNs)}:${BigInt(header.clock.monotonicNs)}`,
    );
    this.builder = new SpanBuilder(ids, clockFrom(header), {
      opSampling: this.options.opSampling,
      model: modelNameOfRun(header, []) ?? "unknown",
      requestIdleNs: this.options.requestIdleNs,
    });
    this.options.runInfo?.(header, this.notes);
    this.timer = setInterval(() => this.exportFinished(), this.options.intervalMs);
    this.timer.unref();
  }

  events(batch: Buffer): void {
    this.incoming.push(batch);
  }

  note(note: RunNote): void {
    if (note.kind === "end") this.stoppedNs = stoppedNsOf(note) ?? this.stoppedNs;
    if (note.kind === "exit") this.exit = note;
    if (note.kind !== "model" || !this.builder) return;
    this.notes.push(note);
    if (this.runHeader) this.options.runInfo?.(this.runHeader, this.notes);
    const name = this.runHeader ? modelNameOfRun(this.runHeader, this.notes) : null;
    if (name) this.builder.setModel(name);
  }

  /**
   * Turns everything left into spans and ends every request (at the end note's time). Call after
   * the recorder's finish.
   */
  finish(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.tick(true);
    if (this.builder && !this.failed) {
      const out: SpanRecord[] = [];
      this.builder.finish(this.stoppedNs, this.exit, out);
      this.handOver(out);
    }
  }

  private handOver(records: SpanRecord[]): void {
    if (records.length === 0) return;
    this.counts.spans += records.length;
    this.options.send(records);
  }

  private decodeIncoming(): void {
    const decoded: RawEvent[] = [];
    for (const batch of this.incoming) {
      for (let at = 0; at + 4 <= batch.length;) {
        const length = batch.readUInt32LE(at);
        decoded.length = 0;
        decodeRecord(batch, at + 4, length, decoded);
        at += 4 + length;
        for (const ev of decoded) this.take(ev);
      }
    }
    this.incoming = [];
  }

  private take(ev: RawEvent): void {
    if (ev.ts > this.newestNs) this.newestNs = ev.ts;
    switch (ev.type) {
      case EventType.TOKEN_BEGIN:
        this.openCalls.set(ev.tid, ev.ts);
        break;
      case EventType.TOKEN_END: {
        const begin = this.openCalls.get(ev.tid);
        this.openCalls.delete(ev.tid);
        if (begin !== undefined) this.endedCalls.push([begin, ev.ts]);
        break;
      }
      case EventType.GRAPH_BEGIN:
        if (ev.changed) {
          const key = snapshotKey(ev.cgraph, ev.signature);
          this.descriptions.delete(key);
          this.descriptions.set(key, { nodes: [], signature: ev.signature });
          if (this.descriptions.size > KEPT_DESCRIPTIONS) {
            const oldest = this.descriptions.keys().next().value!;
            const signature = this.descriptions.get(oldest)!.signature;
            this.descriptions.delete(oldest);
            if (![...this.descriptions.values()].some((d) => d.signature === signature))
              this.tensors.delete(signature);
          }
        }
        break;
      case EventType.GRAPH_NODES:
        this.descriptions.get(snapshotKey(ev.cgraph, ev.signature))?.nodes.push(ev);
        break;
      case EventType.TENSOR: {
        let pool = this.tensors.get(ev.signature);
        if (!pool) this.tensors.set(ev.signature, (pool = new Map()));
        pool.set(ev.addr, ev);
        break;
      }
    }
    this.pending.push(ev);
  }

  /**
   * The time before which every event has arrived and every llama_decode call is whole. When no
   * batch came since the last tick the ring buffer was empty all along (it is polled every 500 ms
   * on this same loop): everything up to the newest event is in, so an idle server's last call
   * leaves now rather than with the next request.
   */
  private cutNs(quiet: boolean): bigint {
    let cut = quiet ? this.newestNs + 1n : this.newestNs - this.options.marginNs;
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

  /** Turns the calls finished by now into spans (the timer calls it every intervalMs). */
  exportFinished(): void {
    this.tick(false);
  }

  private tick(all: boolean): void {
    if (!this.runHeader || !this.builder || this.failed) return;
    try {
      const quiet = this.incoming.length === 0;
      this.decodeIncoming();
      const cut = all ? null : this.cutNs(quiet);
      let chunk: RawEvent[];
      if (cut === null) {
        chunk = this.pending;
        this.pending = [];
      } else {
        chunk = [];
        const rest: RawEvent[] = [];
        for (const ev of this.pending) (ev.ts < cut ? chunk : rest).push(ev);
        this.pending = rest;
        this.endedCalls = this.endedCalls.filter(([, end]) => end >= cut);
      }
      if (cut === null) this.endedCalls = [];
      const out: SpanRecord[] = [];
      if (chunk.some((ev) => ev.type === EventType.TOKEN_BEGIN)) {
        const run = buildRun({
          header: this.runHeader,
          events: [...this.descriptionsFor(chunk), ...chunk],
        });
        this.builder.addTokens(run, run.tokens, out);
        this.counts.calls += run.tokens.length;
        this.counts.chunks++;
      }
      if (cut !== null) this.builder.endIdle(this.seenUpTo(cut, quiet), out);
      this.handOver(out);
    } catch (error) {
      // never let span building break the recording: stop exporting live, say why
      this.failed = true;
      this.options.log(
        `live OTLP export stopped: ${(error as Error).message}; traces.otlp.jsonl is still written at the end`,
      );
    }
  }

  /**
   * A time before which every llama_decode call has been given to the builder: the cut, or, when
   * nothing arrived since the last tick (the ring buffer was read empty meanwhile), the clock
   * itself less two intervals and the margin, before any call still open and the end of tracing.
   */
  private seenUpTo(cut: bigint, quiet: boolean): bigint {
    if (!quiet) return cut;
    const now = this.options.nowNs ? this.options.nowNs() : process.hrtime.bigint();
    let seen = now - BigInt(2 * this.options.intervalMs) * 1_000_000n - this.options.marginNs;
    for (const begin of this.openCalls.values()) if (begin < seen) seen = begin;
    if (this.stoppedNs !== null && this.stoppedNs < seen) seen = this.stoppedNs;
    return seen > cut ? seen : cut;
  }

  /** The kept descriptions of the graphs a chunk runs (they come before its own events). */
  private descriptionsFor(chunk: readonly RawEvent[]): RawEvent[] {
    const keys = new Set<string>();
    for (const ev of chunk)
      if (ev.type === EventType.GRAPH_BEGIN) keys.add(snapshotKey(ev.cgraph, ev.signature));
    const out: RawEvent[] = [];
    const signatures = new Set<bigint>();
    for (const key of keys) {
      const d = this.descriptions.get(key);
      if (!d) continue;
      out.push(...d.nodes);
      signatures.add(d.signature);
    }
    for (const signature of signatures) out.push(...(this.tensors.get(signature)?.values() ?? []));
    return out;
  }
}
