// SPDX-License-Identifier: Apache-2.0
// Live span export while record/attach runs: the finished llama_decode calls of each chunk
// (liveChunks.ts cuts them from the stream about once a second) become spans, which go to the
// exporter's queue. A long llama-server run thus exports its tokens as they finish, not at its
// end. Requests are followed across chunks (SpanBuilder keeps them), so the spans are the ones
// the whole run gives (docs/spans.md says where they can differ); a request's root span leaves
// once its sequence has been idle for the bound, on the events' clock (the chunks' seenUpTo), so
// that an idle server's last request leaves too. The spans go to a sink as they are made: the live
// OTLP export's encodes them straight into the request it sends (otlpEncoder.ts).
import { clockFrom } from "../../trace/clock.js";
import type { RunNote } from "../../trace/notes.js";
import type { RunHeader } from "../../trace/header.js";
import type { Run } from "../../trace/types.js";
import type { RecordListener } from "../liveSink.js";
import { LiveChunks } from "../liveChunks.js";
import { modelNameOfRun } from "../../trace/modelName.js";
import { SamplingGovernor } from "./governor.js";
import type { SpanSink } from "./spanSink.js";
import { SpanBuilder, SpanIds, sampled, stepIndices, type OpSampling } from "./spans.js";

export interface LiveExportOptions {
  opSampling: OpSampling;
  /**
   * the most of one core profinfer may use while the export runs (0: no bound), and the spans
   * waiting to be sent: past either bound the operator-span sampling is lowered (governor.ts)
   */
  cpuShare?: number;
  backlog?: () => number;
  /** a request whose sequence had no call for this long (ns) has ended */
  requestIdleNs: bigint;
  /** how often finished calls are turned into spans */
  intervalMs: number;
  /** events newer than the newest one less this may still be on their way */
  marginNs: bigint;
  /** receives the spans; flushed after each chunk (the encoder hands its batch over then) */
  sink: SpanSink & { flush?(): void };
  /** told the header and notes when they change what the resource says (model, build) */
  runInfo?: (header: RunHeader, notes: RunNote[]) => void;
  log: (message: string) => void;
  /** CLOCK_MONOTONIC now, the events' clock (default process.hrtime) */
  nowNs?: () => bigint;
}

export class LiveSpanExport implements RecordListener {
  private runHeader: RunHeader | null = null;
  private builder: SpanBuilder | null = null;
  private notes: RunNote[] = [];
  private readonly chunks: LiveChunks;
  private readonly governor: SamplingGovernor;
  /** the sampling of the chunk being built (the governor's, after the last chunk) */
  private sampling: OpSampling;
  /** the calls and chunks handed to the sink so far */
  readonly counts = { calls: 0, chunks: 0 };

  constructor(private readonly options: LiveExportOptions) {
    this.sampling = options.opSampling;
    this.governor = new SamplingGovernor({
      asked: options.opSampling,
      maxShare: options.cpuShare ?? 0,
      windowMs: 2 * options.intervalMs,
      maxBacklogSpans: 8 * 2048,
      log: options.log,
    });
    this.chunks = new LiveChunks(
      {
        intervalMs: options.intervalMs,
        marginNs: options.marginNs,
        log: options.log,
        what: "live OTLP export",
        fallback: "traces.otlp.jsonl is still written at the end",
        ...(options.nowNs ? { nowNs: options.nowNs } : {}),
        // only the calls whose operator spans leave need their operators rebuilt
        operators: (token) => sampled(this.sampling, token, stepIndices(token)),
      },
      {
        header: (header) => this.start(header),
        note: (note) => this.noted(note),
        chunk: (run, seenUpTo) => this.take(run, seenUpTo),
        finish: (stoppedNs, exit) => this.end(stoppedNs, exit),
      },
    );
  }

  header(header: RunHeader): void {
    this.chunks.header(header);
  }

  events(batch: Buffer): void {
    this.chunks.events(batch);
  }

  note(note: RunNote): void {
    this.chunks.note(note);
  }

  /** Turns the calls finished by now into spans (a timer calls it every intervalMs). */
  exportFinished(): void {
    this.chunks.cutFinished();
  }

  /** Turns everything left into spans and ends every request. Call after the recorder's finish. */
  finish(): void {
    this.chunks.finish();
  }

  private start(header: RunHeader): void {
    this.runHeader = header;
    this.governor.start();
    this.builder = new SpanBuilder(SpanIds.forHeader(header), clockFrom(header), {
      opSampling: this.sampling,
      model: modelNameOfRun(header, []) ?? "unknown",
      requestIdleNs: this.options.requestIdleNs,
    });
    this.options.runInfo?.(header, this.notes);
  }

  private noted(note: RunNote): void {
    if (note.kind !== "model" || !this.builder) return;
    this.notes.push(note);
    if (this.runHeader) this.options.runInfo?.(this.runHeader, this.notes);
    const name = this.runHeader ? modelNameOfRun(this.runHeader, this.notes) : null;
    if (name) this.builder.setModel(name);
  }

  private take(run: Run | null, seenUpTo: bigint | null): void {
    if (!this.builder) return;
    const sink = this.options.sink;
    if (run) {
      this.builder.addTokens(run, run.tokens, sink);
      this.counts.calls += run.tokens.length;
      this.counts.chunks++;
    }
    if (seenUpTo !== null) this.builder.endIdle(seenUpTo, sink);
    sink.flush?.();
    // the next chunk's sampling: lowered while profinfer is past its CPU bound or behind
    this.sampling = this.governor.observe(this.options.backlog?.() ?? 0);
    this.builder.setOpSampling(this.sampling);
  }

  /** How often the governor lowered the sampling, and the lowest it went. */
  get governed(): { lowered: number; lowest: string } {
    return this.governor.stats;
  }

  private end(stoppedNs: bigint | null, exit: { signal: string | null } | null): void {
    if (!this.builder) return;
    this.builder.finish(stoppedNs, exit, this.options.sink);
    this.options.sink.flush?.();
  }
}
