// SPDX-License-Identifier: Apache-2.0
// The enums and constants of bpf/profinfer.h that user space reads besides the event structs
// (abi/events.ts): levels, control events, probe cookies, aggregate keys, the indices of the drop
// and hit counters. abi.test.ts compiles the header and fails when a value here differs.

/** enum pi_level: how deep the BPF programs trace (rodata `level`). */
export const PiLevel = { TOKEN: 1, GRAPH: 2, OP: 3 } as const;

/** PI_EV_LIBRARY: the dynamic linker's hook stopped the process; a control event, never recorded. */
export const EV_LIBRARY = 14;

/**
 * PI_EV_PROCESS_EXEC, PI_EV_PROCESS_EXIT: the host agent's control events (a bare header, the
 * process's tgid): a process called exec; the last thread of a followed process exited.
 */
export const EV_PROCESS_EXEC = 18;
export const EV_PROCESS_EXIT = 19;

/** PI_MAX_TARGETS: processes the host agent's tracer follows at once. */
export const MAX_TARGETS = 1024;

/** enum pi_batch_flags: which of a llama_decode batch's arrays the caller gave. */
export const BatchFlag = { POS: 1, SEQ_ID: 2, OUTPUTS: 4, EMBD: 8 } as const;

/** PI_MAX_BATCH_TOKENS, PI_MAX_TOKEN_SEQS: what the kernel reads of a batch at most. */
export const MAX_BATCH_TOKENS = 16384;
export const MAX_TOKEN_SEQS = 8;

/** PI_STEP_FINAL: the attach cookie of the compute loop's final barrier call. */
export const STEP_FINAL = 255;

/**
 * enum pi_step_reg: the attach cookie of a loop step site names the register holding node_n + 1
 * (PI_STEP_RAX = 0, ...), by iced-x86's register names. Caller-saved registers are allowed: the
 * value is read at the call, before it.
 */
export const STEP_REGISTERS = [
  "RAX",
  "RBX",
  "RCX",
  "RDX",
  "RSI",
  "RDI",
  "RBP",
  "R8",
  "R9",
  "R10",
  "R11",
  "R12",
  "R13",
  "R14",
  "R15",
] as const;
export type StepRegister = (typeof STEP_REGISTERS)[number];

/** PI_OP_NO_AGGREGATE: attach cookie bit of an operator function probe kept out of the aggregates. */
export const OP_NO_AGGREGATE = 0x40000000;

/**
 * PI_OP_BY_TENSOR: attach cookie bit of a function that computes several ops (an extra buffer
 * type's compute_forward): its aggregates are keyed by the tensor's op, as a step's are.
 */
export const OP_BY_TENSOR = 0x20000000;

/** PI_AGG_UNPROBED: the aggregate key of operators timed from the barriers (no probe of their own). */
export const AGG_UNPROBED = 0xffffffff;

/**
 * PI_AGG_STEP: aggregate keys at or above it are a step probe's ops: PI_AGG_STEP | op |
 * (second op + 1) << 8 | (unary or glu kind + 1) << 16, in this build's enums.
 */
export const AGG_STEP = 0x80000000;

/** PI_NO_LAYER: the layer of the aggregates' tensors whose name has none. */
export const NO_LAYER = 0xffffffff;

/** PI_AGG_BUCKETS: buckets of the aggregate duration histograms (their bounds, and +Inf). */
export const AGG_BUCKETS = 23;

/** enum pi_phase: the index of each llama_decode phase in the token aggregates. */
export const AggPhase = { PREFILL: 0, DECODE: 1, MIXED: 2 } as const;

/**
 * PI_BATCH_TOKEN_BUCKETS, PI_BATCH_SEQ_BUCKETS: the token aggregates' histograms of tokens and
 * sequences per call, with upper bounds 2^0, 2^1, ... (then +Inf).
 */
export const BATCH_TOKEN_BUCKETS = 16;
export const BATCH_SEQ_BUCKETS = 7;

/** enum pi_request_flags: why a kernel request's figures may fall short. */
export const RequestFlag = { TRUNCATED: 1, JOINED: 2 } as const;

/** A step probe's aggregate key, taken apart; null for a key that is not a step's. */
export function stepKeyParts(
  key: number,
): { op: number; second: number | null; kind: number | null } | null {
  if (key === AGG_UNPROBED || key < AGG_STEP) return null;
  const k = key - AGG_STEP;
  const second = ((k >> 8) & 0xff) - 1;
  const kind = ((k >> 16) & 0xff) - 1;
  return { op: k & 0xff, second: second >= 0 ? second : null, kind: kind >= 0 ? kind : null };
}

/**
 * enum pi_drop_reason, in order (the index of each drop counter): its C name and its field in the
 * run's drops note. The `reason` label of the metrics is @profinfer/contract's DROP_REASONS.
 */
export const DROP_COUNTERS = [
  { c: "PI_DROP_RINGBUF_FULL", note: "ringBufferFull" },
  { c: "PI_DROP_READ_FAILED", note: "readFailed" },
  { c: "PI_DROP_MAP_FULL", note: "mapFull" },
  { c: "PI_DROP_NODES_TRUNCATED", note: "nodesTruncated" },
  { c: "PI_DROP_COUNTER_READ", note: "counterReadFailed" },
  { c: "PI_DROP_BATCH_TRUNCATED", note: "batchTruncated" },
] as const;

/** enum pi_hit_kind, in order (the index of each probe hit counter), and its hits-note field. */
export const HIT_COUNTERS = [
  { c: "PI_HIT_TOKEN", note: "token" },
  { c: "PI_HIT_GRAPH", note: "graph" },
  { c: "PI_HIT_OP", note: "op" },
  { c: "PI_HIT_BARRIER", note: "barrier" },
  { c: "PI_HIT_SCHED", note: "sched" },
  { c: "PI_HIT_SNAPSHOT_NODE", note: "snapshotTensors" },
  { c: "PI_HIT_STEP", note: "step" },
] as const;

/** PI_DROP_REASONS, PI_HIT_KINDS: how many counters of each the maps hold. */
export const DROP_REASON_COUNT = DROP_COUNTERS.length;
export const HIT_KIND_COUNT = HIT_COUNTERS.length;
