// SPDX-License-Identifier: Apache-2.0
// The event stream of a recording cut into whole llama_decode calls while the target runs: the
// recorder hands every batch it writes to events.pinf to this listener; about once a second the
// events up to a cut become a trace model of their own (trace/runStream.ts, the code that builds
// a run's outputs chunk by chunk from events.pinf), handed to a consumer (the live span export,
// the live profiles export).
//
// The cut: a time before which every event has arrived (the newest event's time less a margin:
// the ring buffer hands events over within one poll; all of them when no batch came since the
// last tick) and no llama_decode call is open, so every call before it is whole. Besides the
// chunk, the consumer learns a time before which every call has been given to it: by the cut,
// or, while nothing arrives, by the clock itself (CLOCK_MONOTONIC, less a safety margin), so that
// an idle server's last call is known to be the last.
import { decodeBatchLazy, type ChunkEvent } from "../abi/events.js";
import { stoppedNsOf, type RunNote } from "../trace/notes.js";
import type { RunHeader } from "../trace/header.js";
import { RunStream } from "../trace/runStream.js";
import type { Run, Token } from "../trace/types.js";
import type { RecordListener } from "./liveSink.js";

/** What receives the chunks (its methods run on the recorder's turn of the event loop). */
export interface ChunkConsumer {
  /** the run header, before anything else */
  header(header: RunHeader): void;
  /** a note, as it is written */
  note(note: RunNote): void;
  /**
   * the calls that finished since the last chunk, as one trace model (null: none), and a time
   * before which every call has been handed over (null: at the end, everything has been)
   */
  chunk(run: Run | null, seenUpTo: bigint | null): void;
  /** tracing ended (after the last chunk): when it stopped, and the target's exit if it came */
  finish(stoppedNs: bigint | null, exit: { signal: string | null } | null): void;
}

export interface LiveChunkOptions {
  /** how often finished calls are cut off */
  intervalMs: number;
  /** events newer than the newest one less this may still be on their way */
  marginNs: bigint;
  log: (message: string) => void;
  /** what the consumer is, for the message when it fails ("live OTLP export") */
  what: string;
  /** said when the consumer fails ("traces.otlp.jsonl is still written at the end") */
  fallback: string;
  /** CLOCK_MONOTONIC now, the events' clock (default process.hrtime) */
  nowNs?: () => bigint;
  /** whether a call's operators are wanted (default: every call's) */
  operators?: (token: Token) => boolean;
}

export class LiveChunks implements RecordListener {
  private started = false;
  private stream: RunStream | null = null;
  private incoming: Buffer[] = [];
  private timer: NodeJS.Timeout | null = null;
  private failed = false;
  /** barrier events have come: OP events are decoded as they come (decodeIncoming) */
  private barriersSeen = false;
  /** when tracing stopped (the end note), once known */
  private stoppedNs: bigint | null = null;
  /** the target's exit note, once it came (none: tracing stopped while it ran) */
  private exit: { signal: string | null } | null = null;
  /** the chunks made so far, and the calls in them */
  readonly counts = { calls: 0, chunks: 0 };

  constructor(
    private readonly options: LiveChunkOptions,
    private readonly consumer: ChunkConsumer,
  ) {}

  header(header: RunHeader): void {
    this.stream ??= new RunStream(header, null, this.options.operators);
    this.guard(() => this.consumer.header(header));
    if (this.started) return;
    this.started = true;
    this.timer = setInterval(() => this.cutFinished(), this.options.intervalMs);
    this.timer.unref();
  }

  events(batch: Buffer): void {
    this.incoming.push(batch);
  }

  note(note: RunNote): void {
    if (note.kind === "end") this.stoppedNs = stoppedNsOf(note) ?? this.stoppedNs;
    if (note.kind === "exit") this.exit = note;
    this.stream?.note(note);
    this.guard(() => this.consumer.note(note));
  }

  /** Hands over everything left and says tracing ended. Call after the recorder's finish. */
  finish(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.tick(true);
    this.guard(() => this.consumer.finish(this.stoppedNs, this.exit));
  }

  /** Hands over the calls finished by now (the timer calls it every intervalMs). */
  cutFinished(): void {
    this.tick(false);
  }

  /** Runs a consumer's step; its failure stops the live export, never the recording. */
  private guard(step: () => void): void {
    if (this.failed) return;
    try {
      step();
    } catch (error) {
      this.failed = true;
      this.options.log(
        `${this.options.what} stopped: ${(error as Error).message}; ${this.options.fallback}`,
      );
    }
  }

  /**
   * Batches of steps, and each thread's OP events between two graph boundaries, stay as their
   * records until a graph whose operators are wanted needs them: most of a call's events, and
   * most of the export's cost when they are decoded whatever the sampling. Once barrier events
   * came (operators timed by their functions, the OP events pairing with the barriers'), OP
   * events are decoded as they come.
   */
  private decodeIncoming(): void {
    const stream = this.stream!;
    const decoded: ChunkEvent[] = [];
    for (const batch of this.incoming) {
      decoded.length = 0;
      if (decodeBatchLazy(batch, decoded, !this.barriersSeen)) this.barriersSeen = true;
      for (const ev of decoded) stream.take(ev);
    }
    this.incoming = [];
  }

  /**
   * The time before which every event has arrived and every llama_decode call is whole. When no
   * batch came since the last tick the ring buffer was empty all along (it is polled every 500 ms
   * on this same loop): everything up to the newest event is in, so an idle server's last call
   * leaves now rather than with the next request.
   */
  private cutNs(quiet: boolean): bigint {
    const stream = this.stream!;
    return stream.cutAtOrBefore(
      quiet ? stream.newestNs + 1n : stream.newestNs - this.options.marginNs,
    );
  }

  private tick(all: boolean): void {
    if (!this.stream || this.failed) return;
    this.guard(() => {
      const quiet = this.incoming.length === 0;
      this.decodeIncoming();
      const cut = all ? null : this.cutNs(quiet);
      const chunk = this.stream!.cut(cut);
      let run: Run | null = null;
      if (chunk && chunk.run.tokens.length > 0) {
        run = chunk.run;
        this.counts.calls += run.tokens.length;
        this.counts.chunks++;
      }
      this.consumer.chunk(run, cut === null ? null : this.seenUpTo(cut, quiet));
    });
  }

  /**
   * A time before which every llama_decode call has been handed over: the cut, or, when
   * nothing arrived since the last tick (the ring buffer was read empty meanwhile), the clock
   * itself less two intervals and the margin, before any call still open and the end of tracing.
   */
  private seenUpTo(cut: bigint, quiet: boolean): bigint {
    if (!quiet) return cut;
    const now = this.options.nowNs ? this.options.nowNs() : process.hrtime.bigint();
    let seen = now - BigInt(2 * this.options.intervalMs) * 1_000_000n - this.options.marginNs;
    for (const begin of this.stream!.openCallBegins()) if (begin < seen) seen = begin;
    if (this.stoppedNs !== null && this.stoppedNs < seen) seen = this.stoppedNs;
    return seen > cut ? seen : cut;
  }
}
