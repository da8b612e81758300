// SPDX-License-Identifier: Apache-2.0
// ProfStat's shape: stats.json as the exporter writes it and the report's tables read it
// (docs/trace-model.md, "stats.json"). Deterministic: fixed key order, sorted arrays.

/** Events lost while recording: per-reason counts (DROP_REASONS) and their sum. */
import type { Finding } from "./findings.js";
import type { MachineProfile } from "./machine.js";

export interface Drops {
  counts: Record<string, number>;
  total: number;
}

/**
 * What a llama_decode call computed, by content: prompt tokens only (prefill), generated tokens
 * only (decode), or both (mixed: a batching server evaluating one request's prompt beside
 * another's generation).
 */
export type Phase = "prefill" | "decode" | "mixed";

/** Figures derived from counter deltas: each present only when the events it needs were recorded. */
export interface DerivedFigures {
  /** instructions / cycles */
  ipc?: number;
  /** cache-misses / cache-references */
  cacheMissRate?: number;
  /**
   * the share of issue slots (cycles) stalled on the back end, by the run's formula (ProfStats
   * backendStall): waiting on data or execution units (memory-bound above ~0.5)
   */
  backendStallRatio?: number;
  /** stalled-cycles-frontend / cycles */
  frontendStallRatio?: number;
  /** branch-misses / branch-instructions */
  branchMissRate?: number;
  /** cache-misses x 64 B: memory traffic of last-level cache fills, an estimate */
  memoryBytes?: number;
  /** memoryBytes over the operator's time on its threads, bytes per second */
  memoryBandwidth?: number;
  /** task-clock over the summed thread time: the share of the interval the threads were on CPU */
  onCpuRatio?: number;
}

/**
 * Where operators sit on the roofline (docs/findings.md "Roofline"): near the machine's read
 * bandwidth (memory) or arithmetic peak (compute), or near neither, because threads wait at the
 * barrier (sync), the runs are too short for either to matter (overhead), or something else holds
 * them back (latency: dependent loads, scalar code).
 */
export type RooflineClass = "memory" | "compute" | "sync" | "overhead" | "latency";

/** An operator's bytes, operations and their rates over a set of its runs. */
export interface RooflineFigures {
  /** runs it is over, and their summed duration */
  runs: number;
  totalMs: number;
  /** per run, mean: bytes read and written, arithmetic operations */
  bytes: number;
  ops: number;
  /** operations per byte */
  intensity: number;
  /** over the runs' summed duration: bytes per second, operations per second */
  bandwidth: number;
  rate: number;
  /** the arithmetic peak it is measured against: int8 dot products, f32 */
  computeKind: "int8" | "f32";
  /**
   * the share of the machine profile's read bandwidth and arithmetic peak for the threads each
   * run ran on (above 1: served from caches); null without a machine profile
   */
  bandwidthShare: number | null;
  computeShare: number | null;
  /** barrier wait after it over its threads' time in it and that wait */
  barrierShare: number;
  /** null without a machine profile */
  class: RooflineClass | null;
  /** some bytes rest on an assumption (MUL_MAT_ID without its routing's ids) */
  estimated: boolean;
}

/** A latency over requests, ms: nearest-rank percentiles. */
export interface LatencyStat {
  mean: number;
  p50: number;
  p99: number;
}

/** One request: a sequence's work from its prompt to its last generated token. */
export interface RequestStat {
  /** index in start order */
  id: number;
  pid: number;
  /** the llama_context of its calls, in hex */
  context: string;
  seqId: number;
  /** start of its first call, ms after the run's first event */
  startMs: number;
  /** from the start of its first call to the end of its last */
  durationMs: number;
  /** from the start of its first call to the end of the call that produced its first token */
  ttftMs: number | null;
  /** from its first token to its last, per token after the first */
  tpotMs: number | null;
  /** prompt tokens evaluated */
  promptTokens: number;
  /** prompt tokens taken from the cache (its first position), where the batches say */
  cachedTokens: number | null;
  /** tokens generated: one per output sampled */
  generatedTokens: number;
  /** llama_decode calls it took part in, by what it had in them */
  calls: { prompt: number; decode: number; speculative: number };
  /** its tokens over the tokens of the calls it took part in */
  batchShare: number;
  /** why its figures may fall short; null when it ran whole */
  incomplete: string | null;
}

export interface RequestsStat {
  count: number;
  /** those that ran whole: the latencies are theirs */
  complete: number;
  ttftMs: LatencyStat | null;
  tpotMs: LatencyStat | null;
  durationMs: LatencyStat | null;
  promptTokens: number;
  generatedTokens: number;
  /** in start order */
  list: RequestStat[];
}

export interface TokenStat {
  seq: number;
  phase: Phase;
  nTokens: number;
  /** sequences (requests) its batch held */
  sequences: number;
  /** start, ms after the run's first event */
  startMs: number;
  durationMs: number;
  ret: number | null;
  complete: boolean;
  graphs: number;
  opsSampled: boolean;
}

export interface PhaseStat {
  /** llama_decode calls */
  calls: number;
  /** tokens processed (sum of batch sizes) */
  tokens: number;
  totalMs: number;
  meanMs: number;
  p50Ms: number;
  p99Ms: number;
  tokensPerSecond: number;
}

export interface OpTypeStat {
  /** the op label as in the model ("MUL_MAT", "UNARY:SILU", "RMS_NORM+MUL") */
  op: string;
  /** as users type it: "mul_mat" */
  display: string;
  count: number;
  /** how many of them were timed by barriers only (their function is not probed) */
  inferred: number;
  totalMs: number;
  meanMs: number;
  p50Ms: number;
  p99Ms: number;
  /** totalMs over the time of the graphs that carry operators */
  share: number;
  /** barrier wait after these ops, summed over threads */
  barrierWaitMs: number;
  /** mean over op runs of (slowest thread - fastest thread) / slowest thread */
  imbalance: number;
  /** operator intervals on threads (count x threads, when none was lost) */
  threadRuns: number;
  /** counter deltas summed over threads and runs (runs that recorded counters) */
  counters?: Record<string, number>;
  derived?: DerivedFigures;
  /** per phase of the calls its runs were in; absent when the run lacks ggml's type sizes */
  roofline?: Partial<Record<Phase, RooflineFigures>>;
}

export interface LayerStat {
  /** null: tensors without a layer (embeddings, output) */
  layer: number | null;
  ops: number;
  totalMs: number;
  share: number;
  counters?: Record<string, number>;
  derived?: DerivedFigures;
}

export interface TensorStat {
  tensor: string;
  op: string;
  layer: number | null;
  count: number;
  meanMs: number;
  totalMs: number;
  counters?: Record<string, number>;
  derived?: DerivedFigures;
  /** over the same calls as meanMs; absent when the run lacks ggml's type sizes */
  roofline?: RooflineFigures;
}

export interface ThreadStat {
  tid: number;
  ith: number | null;
  name: string;
  computeMs: number;
  barrierWaitMs: number;
  offCpuMs: number;
  preemptedMs: number;
  offCpuIntervals: number;
  preemptions: number;
}

export interface PreemptorStat {
  comm: string;
  tgid: number;
  count: number;
  ms: number;
}

export interface ExpertLayerStat {
  layer: number;
  /** experts chosen per token */
  k: number;
  /** token rows seen (tokens routed through this layer) */
  rows: number;
  /** times each expert id was chosen, by id */
  counts: Record<string, number>;
}

/** One backend a run computed on: its splits and the host's view of them (ABI 5 runs). */
export interface BackendStat {
  /** as llama.cpp names it ("CPU", "BLAS", "Vulkan0") */
  name: string;
  /** its implementation (the registry's name); null when profinfer could not tell */
  registry: string | null;
  /** where the name came from: registry, copies, cpu, none */
  namedBy: string;
  splits: number;
  /** time in the splits' submissions (ggml_backend_graph_compute_async) */
  submitMs: number;
  /** from each split's submission to when the host saw it complete, summed */
  completeMs: number;
  /** the host's waits for it while a split was pending */
  waitMs: number;
  /** inputs copied to it before its splits */
  copies: number;
  copyBytes: number;
  copyMs: number;
  /** its splits' operator runs (measured on the host: CPU, BLAS) */
  ops: number;
  /** what was measured beyond graph level; null: graph level only */
  measured: string | null;
  /** what could not be seen */
  notSeen: string[];
}

export interface ProfStats {
  format: "profinfer-stats";
  version: 1;
  run: {
    command: string[];
    pid: number;
    level: string;
    events: number;
    firstEventRealtimeNs: string;
    durationMs: number;
    truncated: boolean;
  };
  /** the host's machine profile the roofline measures against; null when the run has none */
  machine: MachineProfile | null;
  /** the counters recorded; `hardware` false: a software event, not a hardware count */
  counters: { name: string; hardware: boolean; scaled: boolean }[] | null;
  /** where backendStallRatio comes from: the formula and the counters that fed it; null: none */
  backendStall: {
    /** the formula's id ("intel-topdown", "amd-zen4", "arm-pmuv3", "generic", ...) */
    formula: string;
    /** the perf metric it follows, and perf's table that defines it */
    metric: string;
    /** what both sides count */
    unit: "slots" | "cycles";
    /** the counters it is computed from */
    events: string[];
  } | null;
  tokens: TokenStat[];
  /** llama_decode calls by phase (by content: docs/trace-model.md "Requests") */
  phases: {
    prefill: PhaseStat;
    decode: PhaseStat;
    mixed: PhaseStat;
    /** time to first token: duration of the first prefill llama_decode call */
    ttftMs: number | null;
    /** time per output token: mean duration of the decode llama_decode calls */
    tpotMs: number | null;
  };
  requests: RequestsStat;
  /** the backends the splits were handed to, in order of first use (empty before ABI 5) */
  backends: BackendStat[];
  graphs: {
    runs: number;
    withOps: number;
    incomplete: number;
    snapshots: number;
    /** graph runs that reused an earlier description */
    reuses: number;
    /** total time of the graphs that carry operators: the denominator of shares */
    opGraphMs: number;
  };
  ops: OpTypeStat[];
  layers: LayerStat[];
  slowestTensors: TensorStat[];
  /** the calls slowestTensors averages over: decode calls, or all when there were none */
  slowestTensorsOver: "decode" | "all";
  threads: ThreadStat[];
  interference: {
    offCpuMs: number;
    preemptedMs: number;
    preemptions: number;
    by: PreemptorStat[];
  };
  experts: ExpertLayerStat[];
  drops: Drops | null;
  warnings: string[];
  /** what the figures say is slow, most important first (docs/findings.md) */
  findings: Finding[];
}
