// SPDX-License-Identifier: Apache-2.0
// What live sinks (the OTLP span export, the Prometheus endpoint) see of a recording while the
// target runs, and the one interface record and attach drive them through, as a TracerProvider
// drives its span processors.
import type { BackendStallFormula } from "../trace/backendStall.js";
import type { RunHeader } from "../trace/header.js";
import type { KernelRequests } from "../record/nativeTracer.js";
import type { Aggregates, RunNote } from "../trace/notes.js";

/**
 * The event stream as events.pinf gets it: the header, then every batch of events and every note
 * in file order. Called on the recorder's own turn of the event loop: take what is needed and
 * return (a batch's buffer may be reused after the call). What it throws stops it, not the
 * recording.
 */
export interface RecordListener {
  header(header: RunHeader): void;
  events(batch: Buffer): void;
  note(note: RunNote): void;
}

/** What a sink may read of a recording at any time (the metrics, at each scrape). */
export interface LiveRecording {
  /** cumulative in-kernel aggregates */
  aggregates(): Aggregates;
  /**
   * the requests the kernel follows (`finished` ones handed out once); `stoppedNs`: when tracing
   * stopped, null while it runs; `targetExited`: the target had exited by then
   */
  requests(): KernelRequests & { stoppedNs: bigint | null; targetExited: boolean };
  /** cumulative probe hits and drops by reason, indexed as bpf/profinfer.h's counters */
  probeCounters(): { drops: number[]; hits: number[] };
  /** the probed operator functions: an aggregate key that is an index names its op */
  readonly operatorFunctions: readonly { index: number; op: string }[];
  /** the counters recorded, in the order of the aggregates' counter arrays */
  readonly counters: readonly { name: string; hardware: boolean }[];
  /** the formula of the backend-stall figure, when its events are all among `counters` */
  readonly backendStall?: BackendStallFormula | null;
  /** events user space received so far (0 at level metrics) */
  eventsReceived(): number;
  /**
   * the name llama.cpp gives the backend device whose get_name function is at `deviceGetName`
   * (the build's registry lists them); "unknown" for one it does not list
   */
  backendName?(deviceGetName: bigint): string;
  /** the build's op, unary and glu names by enum value (step aggregate keys hold enum values) */
  readonly opNames?: { ops: readonly string[]; unary: readonly string[]; glu: readonly string[] };
}

export interface LiveSink {
  /** sees the event stream, for a sink that exports from it */
  readonly listener?: RecordListener;
  /** the recording is open: what the sink reads of it from now on */
  start?(recording: LiveRecording): void;
  /** the recording ended and the run's outputs are written: send or serve what is left, close */
  finish(): Promise<void>;
  /** the recording could not start: release what the sink holds */
  close(): Promise<void>;
}
