// SPDX-License-Identifier: Apache-2.0
// The notes of events.pinf (docs/raw-events.md "Notes"): what the recorder learned beside the
// events, one JSON object each, told apart by `kind`. Their fields are checked once, when a file
// is read, so that every reader can take them as typed.

export interface WarningNote {
  kind: "warning";
  message: string;
}

/** Operator functions left without a probe of their own, and why. */
export interface UnprobedNote {
  kind: "unprobed";
  library: string;
  reason: string;
  ops: string[];
}

/** The operator functions probed in a library (OP events name them by index). */
export interface AttachNote {
  kind: "attach";
  library: string;
  opFuncs: { index: number; symbol: string; library: string }[];
}

/** The step probes of a library: the compute loop's barrier calls. */
export interface StepsNote {
  kind: "steps";
  library: string;
  sites: { fileOffset: number; final: boolean; register: string | null; function: string | null }[];
}

/** record --toggle-op-probes took the step probes off or put them back (CLOCK_MONOTONIC ns). */
export interface StepProbesNote {
  kind: "stepProbes";
  on: boolean;
  /** when the switch began (older files: absent) */
  beganNs?: string;
  /** when it was done */
  monotonicNs: string;
}

/** A GGUF model the process ran. */
export interface ModelEntry {
  path: string;
  /** general.name, when the file has one */
  name: string | null;
  /** general.architecture ("llama", "qwen2moe", ...) */
  architecture: string | null;
  sizeBytes: number;
}

export interface ModelNote {
  kind: "model";
  models: ModelEntry[];
}

/** Events the kernel dropped, by reason: flat counts, or (older files) a `counts` object. */
export interface DropsNote {
  kind: "drops";
  counts?: Record<string, number>;
  ringBufferFull?: number;
  readFailed?: number;
  mapFull?: number;
  nodesTruncated?: number;
  counterReadFailed?: number;
  batchTruncated?: number;
}

/** The in-kernel aggregates (the addon's sums over CPUs), cumulative. */
export interface Aggregates {
  /** by phase (enum pi_phase) */
  tokens: {
    calls: number;
    tokens: number;
    ns: number;
    buckets: number[];
    /** the requests' prompt tokens and outputs sampled (absent in older files) */
    promptTokens?: number;
    generatedTokens?: number;
    /** sequences in the calls' batches */
    sequences?: number;
    /** calls by tokens and by sequences in their batch (upper bounds 2^0, 2^1, ..., +Inf) */
    tokenBuckets?: number[];
    seqBuckets?: number[];
  }[];
  /** by aggregate key: a probed operator function's index, a step's ops, or unprobed */
  ops: {
    func: number;
    count: number;
    ns: number;
    barrierNs: number;
    /** operator runs, each once (absent in older files), and the bytes their shapes say they moved */
    runs?: number;
    bytes?: number;
    /** by recorded counter, in order */
    counters: number[];
    buckets: number[];
  }[];
  /** by layer and aggregate key (record --metrics-layers) */
  layers: { layer: number; func: number; count: number; ns: number }[];
  /** selections by layer and expert id (record --metrics-moe) */
  moe: { layer: number; expert: number; count: number }[];
  /**
   * by backend device (bpf/backends.bpf.h; absent in older files): splits handed to it and the
   * time in their submission, the host's waits for it, the copies of the splits' inputs
   */
  backends?: BackendAggregate[];
}

export interface BackendAggregate {
  /** the device's get_name function and the device (BigInt in memory, hex in a note) */
  deviceGetName: bigint | string;
  device: bigint | string;
  splits: number;
  submitNs: number;
  syncs: number;
  syncNs: number;
  copies: number;
  copyBytes: number;
  copyNs: number;
}

/** The in-kernel aggregates at the end of a --level metrics run. */
export interface AggregatesNote extends Aggregates {
  kind: "aggregates";
  /** upper bounds (ns) of the histograms' buckets (absent in older files) */
  boundsNs?: number[];
}

/** Probe hits by kind over the run, and the probes attached. */
export interface HitsNote {
  kind: "hits";
  token: number;
  graph: number;
  op: number;
  barrier: number;
  sched: number;
  snapshotTensors: number;
  step?: number;
  probes?: number;
}

/** profinfer's own CPU from the target's first llama_decode to the end of tracing. */
export interface ProfilerNote {
  kind: "profiler";
  cpuMs: number;
  wallMs: number;
}

export interface ExitNote {
  kind: "exit";
  code: number | null;
  signal: string | null;
}

export interface EndNote {
  kind: "end";
  events?: number;
  tokens?: number;
  /** when tracing stopped, CLOCK_MONOTONIC ns (older files: absent) */
  stoppedNs?: string;
}

/** One device of the build's backend registry, located in the target. */
export interface BackendDeviceEntry {
  /** ggml_backend_dev_name: the name llama.cpp gives a split's backend ("CPU", "Vulkan0") */
  name: string;
  description: string;
  /** the backend implementation: its registry's name ("CPU", "BLAS", "Vulkan") */
  registry: string;
  /** its get_name function's address in the target (hex), which a split's event carries; null
   * when its library was not mapped (yet) */
  getName: string | null;
}

/**
 * The build's backends, as its registry lists them, and the ggml libraries the target mapped
 * (their load addresses, hex), which place a get_name function of a device the registry did not
 * list. A later note supersedes an earlier one (a library loaded later resolves more).
 */
export interface BackendsNote {
  kind: "backends";
  devices: BackendDeviceEntry[];
  libraries: { path: string; base: string }[];
}

/** When tracing stopped, from an end note; null when it does not say (older files). */
export function stoppedNsOf(note: EndNote): bigint | null {
  return note.stoppedNs !== undefined && /^\d+$/.test(note.stoppedNs)
    ? BigInt(note.stoppedNs)
    : null;
}

/**
 * The start of a segment of a rotated events file (--rotate-size, --rotate-time): which one it is,
 * and how many records after this note repeat what the segments before told (the sticky notes and
 * the graph descriptions), so that the segment reads on its own once those are gone.
 */
export interface SegmentNote {
  kind: "segment";
  index: number;
  carriedNotes: number;
  carriedEvents: number;
  /** segments removed so far to stay within --max-disk, and their bytes */
  removed?: { segments: number; bytes: number };
}

export type RunNote =
  | WarningNote
  | SegmentNote
  | UnprobedNote
  | AttachNote
  | StepsNote
  | StepProbesNote
  | ModelNote
  | DropsNote
  | AggregatesNote
  | HitsNote
  | ProfilerNote
  | ExitNote
  | EndNote
  | BackendsNote;

export type NoteKind = RunNote["kind"];

/** A note as met in the stream, with the byte offset of its record. */
export interface NoteRecord {
  type: "note";
  offset: number;
  /** how many events preceded it in the file */
  afterEvents: number;
  note: RunNote;
}

type FieldType = "string" | "number" | "boolean" | "array" | "object";
/** A field's types; a trailing "?" allows it to be absent, "null" allows null. */
type FieldSpec = readonly (FieldType | "null" | "?")[];

/** The fields every version of each note has had, with their JSON types. */
const NOTE_FIELDS: { readonly [K in NoteKind]: Readonly<Record<string, FieldSpec>> } = {
  warning: { message: ["string"] },
  segment: { index: ["number"], carriedNotes: ["number"], carriedEvents: ["number"] },
  unprobed: { library: ["string"], reason: ["string"], ops: ["array"] },
  attach: { library: ["string"], opFuncs: ["array"] },
  steps: { library: ["string"], sites: ["array"] },
  stepProbes: { on: ["boolean"], beganNs: ["string", "?"], monotonicNs: ["string"] },
  model: { models: ["array"] },
  drops: { counts: ["object", "?"] },
  aggregates: { tokens: ["array"], ops: ["array"], layers: ["array"], moe: ["array"] },
  hits: {},
  profiler: { cpuMs: ["number"], wallMs: ["number"] },
  exit: { code: ["number", "null"], signal: ["string", "null"] },
  end: { stoppedNs: ["string", "?"] },
  backends: { devices: ["array"], libraries: ["array"] },
};

function typeOf(value: unknown): FieldType | "null" | "?" {
  if (value === undefined) return "?";
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  return typeof value as FieldType;
}

/**
 * A note of a kind this profinfer knows, checked; null for another kind (written by a newer
 * profinfer: readers pass over it). `fail` is called with what is wrong with a known one.
 */
export function checkNote(
  value: { kind?: unknown; [key: string]: unknown },
  fail: (reason: string) => never,
): RunNote | null {
  if (typeof value.kind !== "string") fail("the note has no string `kind`");
  const fields = (NOTE_FIELDS as Record<string, Record<string, FieldSpec>>)[value.kind];
  if (!fields) return null;
  for (const [name, spec] of Object.entries(fields)) {
    const type = typeOf(value[name]);
    if (!spec.includes(type))
      fail(`the ${value.kind} note's \`${name}\` is ${type === "?" ? "missing" : type}`);
  }
  if (value.kind === "model") {
    for (const model of value.models as unknown[]) {
      const path = (model as { path?: unknown } | null)?.path;
      if (typeof path !== "string") fail("a model of the model note has no string `path`");
    }
  }
  return value as unknown as RunNote;
}
