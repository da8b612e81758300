// SPDX-License-Identifier: Apache-2.0
// What a recording records and how: the one object record and attach build from their options.
import type { Rotation } from "./runWriter.js";
import type { MachineProfile } from "@profinfer/contract";
import type { RecordListener } from "../sinks/liveSink.js";
import type { RecordLevel, ResourceIdentity } from "../trace/header.js";
import type { CounterSelection } from "./counters.js";

export type OpTiming = "steps" | "functions";

export interface RecordOptions {
  outDir: string;
  level: RecordLevel;
  /** only these ops' functions are probed (names as in ggml_compute_forward_<name>) */
  ops: string[] | null;
  /** operator events for 1 in N llama_decode calls */
  sampleEvery: number;
  /** only for llama_decode calls first..last (1-based); null: all */
  window: [number, number] | null;
  /** nothing at all of the calls after the window (the host agent's windows) */
  windowOnly?: boolean;
  moe: boolean;
  ringBufferBytes: number;
  /** tokens of each llama_decode batch read at most */
  batchTokens: number;
  /** also probe operator functions whose first instruction the kernel must single-step */
  probeAllOps: boolean;
  /**
   * how operators are timed: "steps" probes the compute loop's barrier call (one hit per step and
   * thread; falls back to "functions" where the loop is not found), "functions" probes each
   * operator function's entry and return and ggml_barrier
   */
  opTiming: OpTiming;
  /** perf counters to read at operator boundaries, and the ones this machine lacks */
  counters: CounterSelection | null;
  /** keep the in-kernel aggregates (the metrics exporter reads them); always on at level metrics */
  aggregate: boolean;
  /** ...per layer too, and MoE expert selections (bounded by the BPF maps' sizes) */
  aggregateLayers: boolean;
  aggregateMoe: boolean;
  /** events.pinf rotated by size or age, the segments bounded on disk (null: one file) */
  rotation?: Rotation | null;
  /** the OpenTelemetry resource the user gave, kept in the run header for replay */
  resource?: ResourceIdentity;
  /** this host's machine profile, kept in the run header (the roofline's ceilings) */
  machine?: MachineProfile | null;
  /** called with warnings and progress a user should see */
  log: (message: string) => void;
  version: string;
  /** see what events.pinf receives, as it is written (live sinks: the OTLP export) */
  listeners: readonly RecordListener[];
}
