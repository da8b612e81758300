// SPDX-License-Identifier: Apache-2.0
// The event structs of bpf/profinfer.h, decoded from their exact C layout (x86-64 alignment,
// little-endian). This file is the one place that knows the byte offsets; the reader, the writer
// and the test fixtures' encoder (test/support/encodeEvent.ts) all go through it.

/** PI_EVENT_ABI of bpf/profinfer.h: the struct layouts below. */
export const EVENT_ABI = 5;
/**
 * ABIs this decoder reads: ABI 2 only added the counter readings OP and BARRIER events may carry
 * (pi_op_counted, pi_barrier_counted), ABI 3 only the batch records of steps (STEPS_RECORD), ABI 4
 * only the batch summaries of llama_decode calls (BATCH), ABI 5 only the backends' events (SPLIT,
 * COPY_*, SYNC_*, BACKEND_CALL_*) and a field of the layout, so ABI 1 to 4 files read unchanged.
 */
export const READABLE_EVENT_ABIS: readonly number[] = [1, 2, 3, 4, 5];

/**
 * PI_EV_STEPS (ABI 3): a record holding a batch of one thread's steps (pi_steps). Not an event of
 * its own: it decodes into one STEP event per entry (decodeRecord).
 */
export const STEPS_RECORD = 16;
export const PI_STEPS_PER_BATCH = 32;
/**
 * A run of one thread's OP events kept as their records (OpBatchEvent): no ABI record type, only
 * what the live exports make of OP records (decodeBatchLazy).
 */
export const OPS_RECORD = -1;

/** enum pi_event_type */
export const EventType = {
  TOKEN_BEGIN: 1,
  TOKEN_END: 2,
  GRAPH_BEGIN: 3,
  GRAPH_END: 4,
  GRAPH_NODES: 5,
  TENSOR: 6,
  OP_BEGIN: 7,
  OP_END: 8,
  BARRIER_BEGIN: 9,
  BARRIER_END: 10,
  SCHED_SWITCH: 11,
  SCHED_WAKEUP: 12,
  MOE_IDS: 13,
  STEP: 15,
  BATCH: 17,
  SPLIT: 20,
  COPY_BEGIN: 21,
  COPY_END: 22,
  SYNC_BEGIN: 23,
  SYNC_END: 24,
  BACKEND_CALL_BEGIN: 25,
  BACKEND_CALL_END: 26,
} as const;
export type EventTypeCode = (typeof EventType)[keyof typeof EventType];

/** enum pi_graph_fn */
export const GraphFn = { SCHED: 1, CPU: 2, SPLIT: 3 } as const;

/** enum pi_copy_via: how a tensor was copied between backends */
export const CopyVia = { SYNC: 1, ASYNC: 2 } as const;

export const PI_MAX_SRC = 10;
export const PI_MAX_NAME = 64;
export const PI_NODES_PER_CHUNK = 256;
export const PI_MAX_MOE_IDS = 2048;
export const PI_MAX_COUNTERS = 8;
export const PI_MAX_BATCH_SEQS = 32;
const COMM_LEN = 16;

/**
 * Size and field offsets of every struct of bpf/profinfer.h, by its C names (x86-64 alignment:
 * each u64 on 8 bytes, each int on 4). The unit test compiles the header and checks each entry.
 */
export const LAYOUT = {
  pi_header: { size: 24, type: 0, cpu: 4, tgid: 8, tid: 12, ts: 16 },
  pi_token_begin: { size: 48, ctx: 24, n_tokens: 32, seq: 36, ops_sampled: 40 },
  pi_token_end: { size: 32, ret: 24, seq: 28 },
  pi_graph_begin: {
    size: 56,
    cgraph: 24,
    fn: 32,
    n_nodes: 36,
    n_threads: 40,
    changed: 44,
    signature: 48,
  },
  pi_graph_end: { size: 40, cgraph: 24, fn: 32, ret: 36 },
  pi_graph_nodes: {
    size: 48 + 8 * PI_NODES_PER_CHUNK,
    cgraph: 24,
    signature: 32,
    first: 40,
    count: 44,
    nodes: 48,
  },
  pi_tensor: {
    size: 232 + PI_MAX_NAME,
    addr: 24,
    signature: 32,
    ne: 40,
    nb: 72,
    src: 104,
    view_src: 184,
    view_offs: 192,
    data: 200,
    type: 208,
    op: 212,
    op_params: 216,
    flags: 224,
    name: 232,
  },
  pi_op: { size: 48, dst: 24, func: 32, ith: 36, nth: 40 },
  pi_barrier: { size: 24 },
  pi_step: { size: 32, next: 24 },
  pi_step_entry: { size: 16, ts: 0, next: 8, cpu: 12 },
  pi_steps: { size: 32 + 16 * PI_STEPS_PER_BATCH, count: 24, steps: 32 },
  pi_counter_values: { size: 8 + 8 * PI_MAX_COUNTERS, n: 0, scaled: 4, value: 8 },
  pi_op_counted: { size: 48 + 8 + 8 * PI_MAX_COUNTERS, op: 0, c: 48 },
  pi_barrier_counted: { size: 24 + 8 + 8 * PI_MAX_COUNTERS, b: 0, c: 24 },
  pi_sched_switch: {
    size: 48 + 2 * COMM_LEN,
    prev_tid: 24,
    next_tid: 28,
    prev_state: 32,
    prev_tgid: 40,
    next_tgid: 44,
    prev_comm: 48,
    next_comm: 64,
  },
  pi_sched_wakeup: { size: 32, waker_tid: 24, target_cpu: 28 },
  pi_batch_seq: { size: 24, seq_id: 0, n_tokens: 4, pos_min: 8, pos_max: 12, n_outputs: 16 },
  pi_batch: {
    size: 48 + 24 * PI_MAX_BATCH_SEQS,
    seq: 24,
    n_tokens: 28,
    flags: 32,
    n_seqs: 36,
    tokens_read: 40,
    tokens_lost: 44,
    seqs: 48,
  },
  pi_split: {
    size: 72,
    cgraph: 24,
    backend: 32,
    device: 40,
    device_get_name: 48,
    sched_graph: 56,
    first_node: 64,
    n_nodes: 68,
  },
  pi_copy: {
    size: 128 + 2 * PI_MAX_NAME,
    src: 24,
    dst: 32,
    backend_src: 40,
    backend_dst: 48,
    ne: 56,
    nb: 88,
    type: 120,
    via: 124,
    src_name: 128,
    dst_name: 128 + PI_MAX_NAME,
  },
  pi_copy_end: { size: 32, via: 24, ret: 28 },
  pi_sync: { size: 32, backend: 24 },
  pi_backend_call: { size: 56, call: 24, args: 32 },
  pi_moe_ids: {
    size: 56 + 4 * PI_MAX_MOE_IDS,
    tensor: 24,
    consumer: 32,
    k: 40,
    n_tokens: 44,
    count: 48,
    first_token: 52,
    ids: 56,
  },
} as const;

/** sizeof(struct pi_header) */
export const HEADER_SIZE = LAYOUT.pi_header.size;

/** The struct each event type is, as docs/raw-events.md tables it. */
export const EVENT_STRUCTS: Readonly<Record<EventTypeCode, keyof typeof LAYOUT>> = {
  [EventType.TOKEN_BEGIN]: "pi_token_begin",
  [EventType.TOKEN_END]: "pi_token_end",
  [EventType.GRAPH_BEGIN]: "pi_graph_begin",
  [EventType.GRAPH_END]: "pi_graph_end",
  [EventType.GRAPH_NODES]: "pi_graph_nodes",
  [EventType.TENSOR]: "pi_tensor",
  [EventType.OP_BEGIN]: "pi_op",
  [EventType.OP_END]: "pi_op",
  [EventType.BARRIER_BEGIN]: "pi_barrier",
  [EventType.BARRIER_END]: "pi_barrier",
  [EventType.SCHED_SWITCH]: "pi_sched_switch",
  [EventType.SCHED_WAKEUP]: "pi_sched_wakeup",
  [EventType.MOE_IDS]: "pi_moe_ids",
  [EventType.STEP]: "pi_step",
  [EventType.BATCH]: "pi_batch",
  [EventType.SPLIT]: "pi_split",
  [EventType.COPY_BEGIN]: "pi_copy",
  [EventType.COPY_END]: "pi_copy_end",
  [EventType.SYNC_BEGIN]: "pi_sync",
  [EventType.SYNC_END]: "pi_sync",
  [EventType.BACKEND_CALL_BEGIN]: "pi_backend_call",
  [EventType.BACKEND_CALL_END]: "pi_backend_call",
};

/** sizeof each struct, by event type. */
export const EVENT_SIZES = Object.fromEntries(
  Object.entries(EVENT_STRUCTS).map(([type, struct]) => [type, LAYOUT[struct].size]),
) as unknown as Readonly<Record<EventTypeCode, number>>;

/** Expected size of an event of `type`, or undefined for a type profinfer.h does not define. */
export function eventSize(type: number): number | undefined {
  return (EVENT_SIZES as Record<number, number>)[type];
}

/** Size of an OP or BARRIER event that carries counter readings (pi_*_counted). */
export function countedEventSize(type: number): number | undefined {
  if (type === EventType.OP_BEGIN || type === EventType.OP_END) return LAYOUT.pi_op_counted.size;
  if (type === EventType.BARRIER_BEGIN || type === EventType.BARRIER_END)
    return LAYOUT.pi_barrier_counted.size;
  return undefined;
}

/** The sizes an event of `type` may have (its struct, and with counter readings where allowed). */
export function eventSizes(type: number): number[] {
  if (type === STEPS_RECORD) return [LAYOUT.pi_steps.size];
  const base = eventSize(type);
  if (base === undefined) return [];
  const counted = countedEventSize(type);
  return counted === undefined ? [base] : [base, counted];
}

/** Every size an event may have: a record of any other length is corrupt whatever its type. */
export const VALID_EVENT_SIZES: ReadonlySet<number> = new Set([
  ...Object.values(EVENT_SIZES),
  LAYOUT.pi_op_counted.size,
  LAYOUT.pi_barrier_counted.size,
  LAYOUT.pi_steps.size,
]);

const H = LAYOUT.pi_header;
const TOKEN_BEGIN = LAYOUT.pi_token_begin;
const TOKEN_END = LAYOUT.pi_token_end;
const GRAPH_BEGIN = LAYOUT.pi_graph_begin;
const GRAPH_END = LAYOUT.pi_graph_end;
const GRAPH_NODES = LAYOUT.pi_graph_nodes;
const TENSOR = LAYOUT.pi_tensor;
const OP = LAYOUT.pi_op;
const SCHED_SWITCH = LAYOUT.pi_sched_switch;
const SCHED_WAKEUP = LAYOUT.pi_sched_wakeup;
const MOE = LAYOUT.pi_moe_ids;

/** struct pi_header, flattened into every event. `ts` is CLOCK_MONOTONIC ns. */
export interface EventHeader {
  type: EventTypeCode;
  cpu: number;
  tgid: number;
  tid: number;
  ts: bigint;
}

export interface TokenBeginEvent extends EventHeader {
  type: typeof EventType.TOKEN_BEGIN;
  ctx: bigint;
  nTokens: number;
  seq: number;
  opsSampled: boolean;
}

export interface TokenEndEvent extends EventHeader {
  type: typeof EventType.TOKEN_END;
  ret: number;
  seq: number;
}

export interface GraphBeginEvent extends EventHeader {
  type: typeof EventType.GRAPH_BEGIN;
  cgraph: bigint;
  fn: number;
  nNodes: number;
  nThreads: number;
  changed: boolean;
  signature: bigint;
}

export interface GraphEndEvent extends EventHeader {
  type: typeof EventType.GRAPH_END;
  cgraph: bigint;
  fn: number;
  ret: number;
}

export interface GraphNodesEvent extends EventHeader {
  type: typeof EventType.GRAPH_NODES;
  cgraph: bigint;
  signature: bigint;
  first: number;
  /** the `count` node pointers of the chunk (the struct's unused tail is not kept) */
  nodes: bigint[];
}

export interface TensorEvent extends EventHeader {
  type: typeof EventType.TENSOR;
  addr: bigint;
  signature: bigint;
  /** int64 ne[4]; shapes fit a double exactly */
  ne: number[];
  nb: number[];
  /** all PI_MAX_SRC slots; 0n where the slot is empty */
  src: bigint[];
  viewSrc: bigint;
  viewOffs: bigint;
  data: bigint;
  typeIndex: number;
  op: number;
  opParams: [number, number];
  flags: number;
  name: string;
}

/**
 * Counter readings an OP or BARRIER event carries when the run records counters: the thread's
 * own cumulative scaled count of each counter of the run header's `counters`, in that order.
 */
export interface CounterReadings {
  values: number[];
  /** bit i: counter i was multiplexed on this thread so far (its values are scaled estimates) */
  scaled: number;
}

export interface OpEvent extends EventHeader {
  type: typeof EventType.OP_BEGIN | typeof EventType.OP_END;
  dst: bigint;
  func: number;
  ith: number;
  nth: number;
  counters?: CounterReadings;
}

export interface BarrierEvent extends EventHeader {
  type: typeof EventType.BARRIER_BEGIN | typeof EventType.BARRIER_END;
  counters?: CounterReadings;
}

/** The compute loop's barrier call on one thread: a step (a node or fused group) ended there. */
export interface StepEvent extends EventHeader {
  type: typeof EventType.STEP;
  /** node_n + 1: the first node after the step; -1 at the loop's final barrier */
  next: number;
}

/**
 * A batch of one thread's steps kept as its bytes (decodeRecordLazy): the live exports decode
 * the steps of the graphs whose operators they want only. `ts` is its last step's time, `firstNs`
 * its first's.
 */
export interface StepBatchEvent extends Omit<EventHeader, "type"> {
  type: typeof STEPS_RECORD;
  firstNs: bigint;
  count: number;
  /** `count` pi_step_entry structs */
  entries: Buffer;
}

/**
 * Consecutive OP events of one thread between two graph boundaries of the stream, kept as their
 * records (decodeBatchLazy): the live exports decode the OP events of the graphs whose operators
 * they rebuild without steps only. `ts` is its last event's time, `firstNs` its first's; `ith`
 * the worker index its first event gives.
 */
export interface OpBatchEvent extends Omit<EventHeader, "type"> {
  type: typeof OPS_RECORD;
  firstNs: bigint;
  count: number;
  ith: number;
  /** the ring buffer's batch they are in, and where each of the `count` events starts in it */
  records: Buffer;
  offsets: number[];
  lengths: number[];
}

/** The OP events of a batch kept as records, as decodeRecord gives them. */
export function opsOfBatch(batch: OpBatchEvent): OpEvent[] {
  const out: OpEvent[] = [];
  for (let i = 0; i < batch.count; i++)
    out.push(decodeEvent(batch.records, batch.offsets[i]!, batch.lengths[i]!) as OpEvent);
  return out;
}

/** The times of the OP events of a batch kept as records, in its order. */
export function opTimesOf(batch: OpBatchEvent): bigint[] {
  const out: bigint[] = [];
  for (let i = 0; i < batch.count; i++)
    out.push(batch.records.readBigUInt64LE(batch.offsets[i]! + H.ts));
  return out;
}

/** The steps of a batch kept as bytes, as decodeRecord gives them. */
export function stepsOfBatch(batch: StepBatchEvent): StepEvent[] {
  const E = LAYOUT.pi_step_entry;
  const out: StepEvent[] = [];
  for (let i = 0; i < batch.count; i++) {
    const at = i * E.size;
    out.push({
      type: EventType.STEP,
      cpu: batch.entries.readUInt32LE(at + E.cpu),
      tgid: batch.tgid,
      tid: batch.tid,
      ts: batch.entries.readBigUInt64LE(at + E.ts),
      next: batch.entries.readInt32LE(at + E.next),
    });
  }
  return out;
}

export interface SchedSwitchEvent extends EventHeader {
  type: typeof EventType.SCHED_SWITCH;
  prevTid: number;
  nextTid: number;
  prevState: number;
  prevTgid: number;
  nextTgid: number;
  prevComm: string;
  nextComm: string;
}

export interface SchedWakeupEvent extends EventHeader {
  type: typeof EventType.SCHED_WAKEUP;
  wakerTid: number;
  targetCpu: number;
}

export interface MoeIdsEvent extends EventHeader {
  type: typeof EventType.MOE_IDS;
  tensor: bigint;
  consumer: bigint;
  k: number;
  nTokens: number;
  /** batch index of the first token whose ids follow (a large prefill takes several events) */
  firstToken: number;
  /** the `count` ids, row by row (k per token) */
  ids: Int32Array;
}

/** One sequence's tokens in a llama_decode call's batch (pi_batch_seq). */
export interface BatchSequence {
  seqId: number;
  nTokens: number;
  /** first and last position; -1 when the batch gave no positions */
  posMin: number;
  posMax: number;
  /** tokens whose output (logits) the caller wanted */
  nOutputs: number;
}

/** What a llama_decode call's batch holds, per sequence (ABI 4). */
export interface BatchEvent extends EventHeader {
  type: typeof EventType.BATCH;
  /** the call (TokenBeginEvent.seq) */
  seq: number;
  nTokens: number;
  /** bpf/profinfer.h enum pi_batch_flags: which arrays the caller gave */
  flags: number;
  /** tokens summed (the rest were beyond the per-call bound) */
  tokensRead: number;
  /** token-sequence pairs of sequences beyond the per-call bound of sequences */
  tokensLost: number;
  seqs: BatchSequence[];
}

/** The backend a split is handed to, right after the split's GRAPH_BEGIN (fn SPLIT), ABI 5. */
export interface SplitEvent extends EventHeader {
  type: typeof EventType.SPLIT;
  cgraph: bigint;
  backend: bigint;
  /** backend->device; 0n when it was not read */
  device: bigint;
  /** the device's get_name function: which backend implementation; 0n when not read */
  deviceGetName: bigint;
  /** the scheduler graph computing on the thread; 0n when none */
  schedGraph: bigint;
  /** the split's first node in that graph; -1 when unknown */
  firstNode: number;
  nNodes: number;
}

/** A tensor copied to another backend's buffer (COPY_BEGIN), ABI 5. */
export interface CopyBeginEvent extends EventHeader {
  type: typeof EventType.COPY_BEGIN;
  src: bigint;
  dst: bigint;
  /** an async copy's backends; 0n for ggml_backend_tensor_copy */
  backendSrc: bigint;
  backendDst: bigint;
  ne: number[];
  nb: number[];
  typeIndex: number;
  /** CopyVia */
  via: number;
  srcName: string;
  dstName: string;
}

export interface CopyEndEvent extends EventHeader {
  type: typeof EventType.COPY_END;
  via: number;
  /** an async copy: 1 queued, 0 not possible (another copy follows) */
  ret: number;
}

/** ggml_backend_synchronize(backend): the host waits for it (SYNC_BEGIN; SYNC_END has 0n). */
export interface SyncEvent extends EventHeader {
  type: typeof EventType.SYNC_BEGIN | typeof EventType.SYNC_END;
  backend: bigint;
}

/**
 * One of a known backend's own functions (the run header's backendCalls, by `call`): BEGIN holds
 * its first three integer arguments, END its return value in args[0].
 */
export interface BackendCallEvent extends EventHeader {
  type: typeof EventType.BACKEND_CALL_BEGIN | typeof EventType.BACKEND_CALL_END;
  call: number;
  args: [bigint, bigint, bigint];
}

export type RawEvent =
  | TokenBeginEvent
  | TokenEndEvent
  | GraphBeginEvent
  | GraphEndEvent
  | GraphNodesEvent
  | TensorEvent
  | OpEvent
  | BarrierEvent
  | StepEvent
  | SchedSwitchEvent
  | SchedWakeupEvent
  | MoeIdsEvent
  | BatchEvent
  | SplitEvent
  | CopyBeginEvent
  | CopyEndEvent
  | SyncEvent
  | BackendCallEvent;

/**
 * What a trace model is built from: the events, and batches of steps and runs of OP events still
 * as bytes (live).
 */
export type ChunkEvent = RawEvent | StepBatchEvent | OpBatchEvent;

/** The time of a chunk event's first event (a batch's first, else its own). */
export function firstNsOf(ev: ChunkEvent): bigint {
  return ev.type === STEPS_RECORD || ev.type === OPS_RECORD ? ev.firstNs : ev.ts;
}

/** The events a chunk event stands for (a batch's count, else 1). */
export function eventsIn(ev: ChunkEvent): number {
  return ev.type === STEPS_RECORD || ev.type === OPS_RECORD ? ev.count : 1;
}

/** Why an event's bytes cannot be decoded; the reader adds the file and offset. */
export class EventLayoutError extends Error {
  override name = "EventLayoutError";
}

function cString(buf: Buffer, start: number, max: number): string {
  let end = start;
  const limit = start + max;
  while (end < limit && buf[end] !== 0) end++;
  return buf.toString("utf8", start, end);
}

/**
 * Decode the record of `length` bytes at `offset` of `buf` into `out`: one event, or for a batch
 * of steps (STEPS_RECORD) one STEP event per entry, with the batch's tgid and tid. Throws
 * EventLayoutError as decodeEvent does.
 */
export function decodeRecord(buf: Buffer, offset: number, length: number, out: RawEvent[]): void {
  if (length >= HEADER_SIZE && buf.readUInt32LE(offset + H.type) === STEPS_RECORD) {
    if (length !== LAYOUT.pi_steps.size) {
      throw new EventLayoutError(
        `a batch of steps is ${length} bytes, pi_steps is ${LAYOUT.pi_steps.size}`,
      );
    }
    const count = buf.readUInt32LE(offset + LAYOUT.pi_steps.count);
    if (count > PI_STEPS_PER_BATCH) {
      throw new EventLayoutError(`a batch of steps counts ${count}, at most ${PI_STEPS_PER_BATCH}`);
    }
    const tgid = buf.readUInt32LE(offset + H.tgid);
    const tid = buf.readUInt32LE(offset + H.tid);
    const E = LAYOUT.pi_step_entry;
    for (let i = 0; i < count; i++) {
      const at = offset + LAYOUT.pi_steps.steps + i * E.size;
      out.push({
        type: EventType.STEP,
        cpu: buf.readUInt32LE(at + E.cpu),
        tgid,
        tid,
        ts: buf.readBigUInt64LE(at + E.ts),
        next: buf.readInt32LE(at + E.next),
      });
    }
    return;
  }
  out.push(decodeEvent(buf, offset, length));
}

/**
 * The records of a batch as the ring buffer gives them (`u32 length` and the event, again and
 * again) decoded into `out`, except what the live exports may never need: a batch of steps stays
 * one StepBatchEvent, and, with `groupOps`, each thread's consecutive OP events between two graph
 * boundaries (GRAPH_BEGIN, GRAPH_END) of the batch stay one OpBatchEvent; both are decoded only
 * when a graph whose operators are wanted needs them (stepsOfBatch, opsOfBatch). They keep views
 * of `batch`, which must not be reused (the addon copies each batch it hands over). Returns
 * whether the batch held barrier events (operators timed by their functions and barriers, whose
 * OP and barrier events pair together: the caller then stops grouping).
 */
export function decodeBatchLazy(batch: Buffer, out: ChunkEvent[], groupOps: boolean): boolean {
  let barriers = false;
  // each thread's open run of OP events; its last event's time is read when it closes
  const open = new Map<number, OpBatchEvent>();
  const close = (): void => {
    for (const run of open.values()) {
      run.ts = batch.readBigUInt64LE(run.offsets[run.count - 1]! + H.ts);
      out.push(run);
    }
    open.clear();
  };
  for (let at = 0; at + 4 <= batch.length;) {
    const length = batch.readUInt32LE(at);
    const offset = at + 4;
    const type = length >= HEADER_SIZE ? batch.readUInt32LE(offset + H.type) : -1;
    if (type === EventType.BARRIER_BEGIN || type === EventType.BARRIER_END) barriers = true;
    if (groupOps && (type === EventType.OP_BEGIN || type === EventType.OP_END)) {
      if (!eventSizes(type).includes(length)) decodeEvent(batch, offset, length); // throws
      const tid = batch.readUInt32LE(offset + H.tid);
      const run = open.get(tid);
      if (run) {
        run.count++;
        run.offsets.push(offset);
        run.lengths.push(length);
      } else {
        const ts = batch.readBigUInt64LE(offset + H.ts);
        open.set(tid, {
          type: OPS_RECORD,
          cpu: batch.readUInt32LE(offset + H.cpu),
          tgid: batch.readUInt32LE(offset + H.tgid),
          tid,
          ts,
          firstNs: ts,
          count: 1,
          ith: batch.readInt32LE(offset + OP.ith),
          records: batch,
          offsets: [offset],
          lengths: [length],
        });
      }
    } else {
      if (type === EventType.GRAPH_BEGIN || type === EventType.GRAPH_END) close();
      decodeRecordLazy(batch, offset, length, out);
    }
    at = offset + length;
  }
  close();
  return barriers;
}

/**
 * decodeRecord, except that a batch of steps stays one StepBatchEvent holding a view of its
 * entries in `buf` (which must not be reused), decoded only when its steps are wanted
 * (stepsOfBatch).
 */
function decodeRecordLazy(buf: Buffer, offset: number, length: number, out: ChunkEvent[]): void {
  if (length < HEADER_SIZE || buf.readUInt32LE(offset + H.type) !== STEPS_RECORD) {
    out.push(decodeEvent(buf, offset, length));
    return;
  }
  if (length !== LAYOUT.pi_steps.size) {
    throw new EventLayoutError(
      `a batch of steps is ${length} bytes, pi_steps is ${LAYOUT.pi_steps.size}`,
    );
  }
  const count = buf.readUInt32LE(offset + LAYOUT.pi_steps.count);
  if (count > PI_STEPS_PER_BATCH) {
    throw new EventLayoutError(`a batch of steps counts ${count}, at most ${PI_STEPS_PER_BATCH}`);
  }
  if (count === 0) return;
  const E = LAYOUT.pi_step_entry;
  const first = offset + LAYOUT.pi_steps.steps;
  out.push({
    type: STEPS_RECORD,
    cpu: buf.readUInt32LE(offset + H.cpu),
    tgid: buf.readUInt32LE(offset + H.tgid),
    tid: buf.readUInt32LE(offset + H.tid),
    ts: buf.readBigUInt64LE(first + (count - 1) * E.size + E.ts),
    firstNs: buf.readBigUInt64LE(first + E.ts),
    count,
    entries: buf.subarray(first, first + count * E.size),
  });
}

/**
 * Decode the event of `length` bytes at `offset` of `buf`. Throws EventLayoutError when the type
 * is unknown or the length is not that type's struct size (a batch of steps: decodeRecord).
 */
export function decodeEvent(buf: Buffer, offset: number, length: number): RawEvent {
  if (length < HEADER_SIZE) {
    throw new EventLayoutError(`event of ${length} bytes is shorter than pi_header (24)`);
  }
  const type = buf.readUInt32LE(offset + H.type);
  if (type === STEPS_RECORD) throw new EventLayoutError("a batch of steps holds several events");
  const sizes = eventSizes(type);
  if (sizes.length === 0) throw new EventLayoutError(`unknown event type ${type}`);
  if (!sizes.includes(length)) {
    throw new EventLayoutError(
      `event type ${type} must be ${sizes.join(" or ")} bytes, the record holds ${length}`,
    );
  }
  const counted = length !== sizes[0];
  const cpu = buf.readUInt32LE(offset + H.cpu);
  const tgid = buf.readUInt32LE(offset + H.tgid);
  const tid = buf.readUInt32LE(offset + H.tid);
  const ts = buf.readBigUInt64LE(offset + H.ts);
  const o = offset;
  switch (type) {
    case EventType.OP_BEGIN:
    case EventType.OP_END:
      return {
        type,
        cpu,
        tgid,
        tid,
        ts,
        dst: buf.readBigUInt64LE(o + OP.dst),
        func: buf.readUInt32LE(o + OP.func),
        ith: buf.readInt32LE(o + OP.ith),
        nth: buf.readInt32LE(o + OP.nth),
        ...(counted ? { counters: decodeCounters(buf, o + LAYOUT.pi_op_counted.c) } : {}),
      };
    case EventType.BARRIER_BEGIN:
    case EventType.BARRIER_END:
      return counted
        ? {
            type,
            cpu,
            tgid,
            tid,
            ts,
            counters: decodeCounters(buf, o + LAYOUT.pi_barrier_counted.c),
          }
        : { type, cpu, tgid, tid, ts };
    case EventType.STEP:
      return { type, cpu, tgid, tid, ts, next: buf.readInt32LE(o + LAYOUT.pi_step.next) };
    case EventType.TOKEN_BEGIN:
      return {
        type,
        cpu,
        tgid,
        tid,
        ts,
        ctx: buf.readBigUInt64LE(o + TOKEN_BEGIN.ctx),
        nTokens: buf.readInt32LE(o + TOKEN_BEGIN.n_tokens),
        seq: buf.readUInt32LE(o + TOKEN_BEGIN.seq),
        opsSampled: buf.readUInt32LE(o + TOKEN_BEGIN.ops_sampled) !== 0,
      };
    case EventType.TOKEN_END:
      return {
        type,
        cpu,
        tgid,
        tid,
        ts,
        ret: buf.readInt32LE(o + TOKEN_END.ret),
        seq: buf.readUInt32LE(o + TOKEN_END.seq),
      };
    case EventType.GRAPH_BEGIN:
      return {
        type,
        cpu,
        tgid,
        tid,
        ts,
        cgraph: buf.readBigUInt64LE(o + GRAPH_BEGIN.cgraph),
        fn: buf.readUInt32LE(o + GRAPH_BEGIN.fn),
        nNodes: buf.readInt32LE(o + GRAPH_BEGIN.n_nodes),
        nThreads: buf.readInt32LE(o + GRAPH_BEGIN.n_threads),
        changed: buf.readUInt32LE(o + GRAPH_BEGIN.changed) !== 0,
        signature: buf.readBigUInt64LE(o + GRAPH_BEGIN.signature),
      };
    case EventType.GRAPH_END:
      return {
        type,
        cpu,
        tgid,
        tid,
        ts,
        cgraph: buf.readBigUInt64LE(o + GRAPH_END.cgraph),
        fn: buf.readUInt32LE(o + GRAPH_END.fn),
        ret: buf.readInt32LE(o + GRAPH_END.ret),
      };
    case EventType.GRAPH_NODES: {
      const count = buf.readUInt32LE(o + GRAPH_NODES.count);
      if (count > PI_NODES_PER_CHUNK) {
        throw new EventLayoutError(
          `graph nodes chunk claims ${count} nodes, at most ${PI_NODES_PER_CHUNK} fit`,
        );
      }
      const nodes = new Array<bigint>(count);
      for (let i = 0; i < count; i++) {
        nodes[i] = buf.readBigUInt64LE(o + GRAPH_NODES.nodes + 8 * i);
      }
      return {
        type,
        cpu,
        tgid,
        tid,
        ts,
        cgraph: buf.readBigUInt64LE(o + GRAPH_NODES.cgraph),
        signature: buf.readBigUInt64LE(o + GRAPH_NODES.signature),
        first: buf.readUInt32LE(o + GRAPH_NODES.first),
        nodes,
      };
    }
    case EventType.TENSOR: {
      const ne: number[] = [];
      const nb: number[] = [];
      for (let i = 0; i < 4; i++) {
        ne.push(Number(buf.readBigInt64LE(o + TENSOR.ne + 8 * i)));
        nb.push(Number(buf.readBigUInt64LE(o + TENSOR.nb + 8 * i)));
      }
      const src: bigint[] = [];
      for (let i = 0; i < PI_MAX_SRC; i++) src.push(buf.readBigUInt64LE(o + TENSOR.src + 8 * i));
      return {
        type,
        cpu,
        tgid,
        tid,
        ts,
        addr: buf.readBigUInt64LE(o + TENSOR.addr),
        signature: buf.readBigUInt64LE(o + TENSOR.signature),
        ne,
        nb,
        src,
        viewSrc: buf.readBigUInt64LE(o + TENSOR.view_src),
        viewOffs: buf.readBigUInt64LE(o + TENSOR.view_offs),
        data: buf.readBigUInt64LE(o + TENSOR.data),
        typeIndex: buf.readInt32LE(o + TENSOR.type),
        op: buf.readInt32LE(o + TENSOR.op),
        opParams: [
          buf.readInt32LE(o + TENSOR.op_params),
          buf.readInt32LE(o + TENSOR.op_params + 4),
        ],
        flags: buf.readInt32LE(o + TENSOR.flags),
        name: cString(buf, o + TENSOR.name, PI_MAX_NAME),
      };
    }
    case EventType.SCHED_SWITCH:
      return {
        type,
        cpu,
        tgid,
        tid,
        ts,
        prevTid: buf.readUInt32LE(o + SCHED_SWITCH.prev_tid),
        nextTid: buf.readUInt32LE(o + SCHED_SWITCH.next_tid),
        prevState: Number(buf.readBigInt64LE(o + SCHED_SWITCH.prev_state)),
        prevTgid: buf.readUInt32LE(o + SCHED_SWITCH.prev_tgid),
        nextTgid: buf.readUInt32LE(o + SCHED_SWITCH.next_tgid),
        prevComm: cString(buf, o + SCHED_SWITCH.prev_comm, COMM_LEN),
        nextComm: cString(buf, o + SCHED_SWITCH.next_comm, COMM_LEN),
      };
    case EventType.SCHED_WAKEUP:
      return {
        type,
        cpu,
        tgid,
        tid,
        ts,
        wakerTid: buf.readUInt32LE(o + SCHED_WAKEUP.waker_tid),
        targetCpu: buf.readUInt32LE(o + SCHED_WAKEUP.target_cpu),
      };
    case EventType.MOE_IDS: {
      const count = buf.readUInt32LE(o + MOE.count);
      if (count > PI_MAX_MOE_IDS) {
        throw new EventLayoutError(`MoE event claims ${count} ids, at most ${PI_MAX_MOE_IDS} fit`);
      }
      const ids = new Int32Array(count);
      for (let i = 0; i < count; i++) ids[i] = buf.readInt32LE(o + MOE.ids + 4 * i);
      return {
        type,
        cpu,
        tgid,
        tid,
        ts,
        tensor: buf.readBigUInt64LE(o + MOE.tensor),
        consumer: buf.readBigUInt64LE(o + MOE.consumer),
        k: buf.readInt32LE(o + MOE.k),
        nTokens: buf.readInt32LE(o + MOE.n_tokens),
        firstToken: buf.readUInt32LE(o + MOE.first_token),
        ids,
      };
    }
    case EventType.BATCH: {
      const B = LAYOUT.pi_batch;
      const S = LAYOUT.pi_batch_seq;
      const n = buf.readUInt32LE(o + B.n_seqs);
      if (n > PI_MAX_BATCH_SEQS) {
        throw new EventLayoutError(
          `a batch claims ${n} sequences, at most ${PI_MAX_BATCH_SEQS} fit`,
        );
      }
      const seqs: BatchSequence[] = [];
      for (let i = 0; i < n; i++) {
        const at = o + B.seqs + i * S.size;
        seqs.push({
          seqId: buf.readInt32LE(at + S.seq_id),
          nTokens: buf.readUInt32LE(at + S.n_tokens),
          posMin: buf.readInt32LE(at + S.pos_min),
          posMax: buf.readInt32LE(at + S.pos_max),
          nOutputs: buf.readUInt32LE(at + S.n_outputs),
        });
      }
      return {
        type,
        cpu,
        tgid,
        tid,
        ts,
        seq: buf.readUInt32LE(o + B.seq),
        nTokens: buf.readInt32LE(o + B.n_tokens),
        flags: buf.readUInt32LE(o + B.flags),
        tokensRead: buf.readUInt32LE(o + B.tokens_read),
        tokensLost: buf.readUInt32LE(o + B.tokens_lost),
        seqs,
      };
    }
    case EventType.SPLIT: {
      const S = LAYOUT.pi_split;
      return {
        type,
        cpu,
        tgid,
        tid,
        ts,
        cgraph: buf.readBigUInt64LE(o + S.cgraph),
        backend: buf.readBigUInt64LE(o + S.backend),
        device: buf.readBigUInt64LE(o + S.device),
        deviceGetName: buf.readBigUInt64LE(o + S.device_get_name),
        schedGraph: buf.readBigUInt64LE(o + S.sched_graph),
        firstNode: buf.readInt32LE(o + S.first_node),
        nNodes: buf.readInt32LE(o + S.n_nodes),
      };
    }
    case EventType.COPY_BEGIN: {
      const C = LAYOUT.pi_copy;
      const ne: number[] = [];
      const nb: number[] = [];
      for (let i = 0; i < 4; i++) {
        ne.push(Number(buf.readBigInt64LE(o + C.ne + 8 * i)));
        nb.push(Number(buf.readBigUInt64LE(o + C.nb + 8 * i)));
      }
      return {
        type,
        cpu,
        tgid,
        tid,
        ts,
        src: buf.readBigUInt64LE(o + C.src),
        dst: buf.readBigUInt64LE(o + C.dst),
        backendSrc: buf.readBigUInt64LE(o + C.backend_src),
        backendDst: buf.readBigUInt64LE(o + C.backend_dst),
        ne,
        nb,
        typeIndex: buf.readInt32LE(o + C.type),
        via: buf.readUInt32LE(o + C.via),
        srcName: cString(buf, o + C.src_name, PI_MAX_NAME),
        dstName: cString(buf, o + C.dst_name, PI_MAX_NAME),
      };
    }
    case EventType.COPY_END:
      return {
        type,
        cpu,
        tgid,
        tid,
        ts,
        via: buf.readUInt32LE(o + LAYOUT.pi_copy_end.via),
        ret: buf.readInt32LE(o + LAYOUT.pi_copy_end.ret),
      };
    case EventType.SYNC_BEGIN:
    case EventType.SYNC_END:
      return { type, cpu, tgid, tid, ts, backend: buf.readBigUInt64LE(o + LAYOUT.pi_sync.backend) };
    case EventType.BACKEND_CALL_BEGIN:
    case EventType.BACKEND_CALL_END: {
      const A = LAYOUT.pi_backend_call;
      return {
        type,
        cpu,
        tgid,
        tid,
        ts,
        call: buf.readUInt32LE(o + A.call),
        args: [
          buf.readBigUInt64LE(o + A.args),
          buf.readBigUInt64LE(o + A.args + 8),
          buf.readBigUInt64LE(o + A.args + 16),
        ],
      };
    }
    default:
      throw new EventLayoutError(`unknown event type ${type}`);
  }
}

const COUNTERS = LAYOUT.pi_counter_values;

function decodeCounters(buf: Buffer, at: number): CounterReadings {
  const n = buf.readUInt32LE(at + COUNTERS.n);
  if (n > PI_MAX_COUNTERS) {
    throw new EventLayoutError(
      `counter readings claim ${n} counters, at most ${PI_MAX_COUNTERS} fit`,
    );
  }
  const values: number[] = [];
  // u64 counts: exact below 2^53 (104 days of nanoseconds, 2^53 cycles)
  for (let i = 0; i < n; i++) values.push(Number(buf.readBigUInt64LE(at + COUNTERS.value + 8 * i)));
  return { values, scaled: buf.readUInt32LE(at + COUNTERS.scaled) };
}
