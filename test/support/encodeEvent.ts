// SPDX-License-Identifier: Apache-2.0
// Events encoded to the exact C layout of bpf/profinfer.h (x86-64 alignment, little-endian), as
// the BPF program writes them: the inverse of the exporter's decodeEvent, for fixtures and tests.
import {
  EVENT_SIZES,
  EventType,
  LAYOUT,
  PI_MAX_BATCH_SEQS,
  PI_MAX_COUNTERS,
  PI_MAX_MOE_IDS,
  PI_MAX_NAME,
  PI_MAX_SRC,
  PI_NODES_PER_CHUNK,
  countedEventSize,
  type CounterReadings,
  type RawEvent,
} from "@profinfer/exporter";

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
const COUNTERS = LAYOUT.pi_counter_values;
const COMM_LEN = LAYOUT.pi_sched_switch.next_comm - LAYOUT.pi_sched_switch.prev_comm;

function encodeCounters(buf: Buffer, at: number, c: CounterReadings): void {
  if (c.values.length > PI_MAX_COUNTERS) {
    throw new RangeError(`an event carries at most ${PI_MAX_COUNTERS} counter readings`);
  }
  buf.writeUInt32LE(c.values.length, at + COUNTERS.n);
  buf.writeUInt32LE(c.scaled, at + COUNTERS.scaled);
  c.values.forEach((v, i) =>
    buf.writeBigUInt64LE(BigInt(Math.round(v)), at + COUNTERS.value + 8 * i),
  );
}

function writeCString(buf: Buffer, offset: number, max: number, value: string): void {
  const bytes = Buffer.from(value, "utf8");
  // Like strncpy into char[max] with a terminating NUL kept.
  bytes.copy(buf, offset, 0, Math.min(bytes.length, max - 1));
}

/**
 * The bytes of `event` exactly as the BPF program writes them (unused fields and padding zero).
 */
export function encodeEvent(event: RawEvent): Buffer {
  const counters = "counters" in event ? event.counters : undefined;
  const buf = Buffer.alloc(counters ? countedEventSize(event.type)! : EVENT_SIZES[event.type]);
  buf.writeUInt32LE(event.type, H.type);
  buf.writeUInt32LE(event.cpu, H.cpu);
  buf.writeUInt32LE(event.tgid, H.tgid);
  buf.writeUInt32LE(event.tid, H.tid);
  buf.writeBigUInt64LE(event.ts, H.ts);
  switch (event.type) {
    case EventType.TOKEN_BEGIN:
      buf.writeBigUInt64LE(event.ctx, TOKEN_BEGIN.ctx);
      buf.writeInt32LE(event.nTokens, TOKEN_BEGIN.n_tokens);
      buf.writeUInt32LE(event.seq, TOKEN_BEGIN.seq);
      buf.writeUInt32LE(event.opsSampled ? 1 : 0, TOKEN_BEGIN.ops_sampled);
      break;
    case EventType.TOKEN_END:
      buf.writeInt32LE(event.ret, TOKEN_END.ret);
      buf.writeUInt32LE(event.seq, TOKEN_END.seq);
      break;
    case EventType.GRAPH_BEGIN:
      buf.writeBigUInt64LE(event.cgraph, GRAPH_BEGIN.cgraph);
      buf.writeUInt32LE(event.fn, GRAPH_BEGIN.fn);
      buf.writeInt32LE(event.nNodes, GRAPH_BEGIN.n_nodes);
      buf.writeInt32LE(event.nThreads, GRAPH_BEGIN.n_threads);
      buf.writeUInt32LE(event.changed ? 1 : 0, GRAPH_BEGIN.changed);
      buf.writeBigUInt64LE(event.signature, GRAPH_BEGIN.signature);
      break;
    case EventType.GRAPH_END:
      buf.writeBigUInt64LE(event.cgraph, GRAPH_END.cgraph);
      buf.writeUInt32LE(event.fn, GRAPH_END.fn);
      buf.writeInt32LE(event.ret, GRAPH_END.ret);
      break;
    case EventType.GRAPH_NODES:
      if (event.nodes.length > PI_NODES_PER_CHUNK) {
        throw new RangeError(`a nodes chunk holds at most ${PI_NODES_PER_CHUNK} nodes`);
      }
      buf.writeBigUInt64LE(event.cgraph, GRAPH_NODES.cgraph);
      buf.writeBigUInt64LE(event.signature, GRAPH_NODES.signature);
      buf.writeUInt32LE(event.first, GRAPH_NODES.first);
      buf.writeUInt32LE(event.nodes.length, GRAPH_NODES.count);
      event.nodes.forEach((n, i) => buf.writeBigUInt64LE(n, GRAPH_NODES.nodes + 8 * i));
      break;
    case EventType.TENSOR:
      buf.writeBigUInt64LE(event.addr, TENSOR.addr);
      buf.writeBigUInt64LE(event.signature, TENSOR.signature);
      for (let i = 0; i < 4; i++) {
        buf.writeBigInt64LE(BigInt(event.ne[i] ?? 1), TENSOR.ne + 8 * i);
        buf.writeBigUInt64LE(BigInt(event.nb[i] ?? 0), TENSOR.nb + 8 * i);
      }
      for (let i = 0; i < PI_MAX_SRC; i++) {
        buf.writeBigUInt64LE(event.src[i] ?? 0n, TENSOR.src + 8 * i);
      }
      buf.writeBigUInt64LE(event.viewSrc, TENSOR.view_src);
      buf.writeBigUInt64LE(event.viewOffs, TENSOR.view_offs);
      buf.writeBigUInt64LE(event.data, TENSOR.data);
      buf.writeInt32LE(event.typeIndex, TENSOR.type);
      buf.writeInt32LE(event.op, TENSOR.op);
      buf.writeInt32LE(event.opParams[0], TENSOR.op_params);
      buf.writeInt32LE(event.opParams[1], TENSOR.op_params + 4);
      buf.writeInt32LE(event.flags, TENSOR.flags);
      writeCString(buf, TENSOR.name, PI_MAX_NAME, event.name);
      break;
    case EventType.OP_BEGIN:
    case EventType.OP_END:
      buf.writeBigUInt64LE(event.dst, OP.dst);
      buf.writeUInt32LE(event.func, OP.func);
      buf.writeInt32LE(event.ith, OP.ith);
      buf.writeInt32LE(event.nth, OP.nth);
      if (event.counters) encodeCounters(buf, LAYOUT.pi_op_counted.c, event.counters);
      break;
    case EventType.BARRIER_BEGIN:
    case EventType.BARRIER_END:
      if (event.counters) encodeCounters(buf, LAYOUT.pi_barrier_counted.c, event.counters);
      break;
    case EventType.STEP:
      buf.writeInt32LE(event.next, LAYOUT.pi_step.next);
      break;
    case EventType.SCHED_SWITCH:
      buf.writeUInt32LE(event.prevTid, SCHED_SWITCH.prev_tid);
      buf.writeUInt32LE(event.nextTid, SCHED_SWITCH.next_tid);
      buf.writeBigInt64LE(BigInt(event.prevState), SCHED_SWITCH.prev_state);
      buf.writeUInt32LE(event.prevTgid, SCHED_SWITCH.prev_tgid);
      buf.writeUInt32LE(event.nextTgid, SCHED_SWITCH.next_tgid);
      writeCString(buf, SCHED_SWITCH.prev_comm, COMM_LEN, event.prevComm);
      writeCString(buf, SCHED_SWITCH.next_comm, COMM_LEN, event.nextComm);
      break;
    case EventType.SCHED_WAKEUP:
      buf.writeUInt32LE(event.wakerTid, SCHED_WAKEUP.waker_tid);
      buf.writeUInt32LE(event.targetCpu, SCHED_WAKEUP.target_cpu);
      break;
    case EventType.MOE_IDS:
      if (event.ids.length > PI_MAX_MOE_IDS) {
        throw new RangeError(`an MoE event holds at most ${PI_MAX_MOE_IDS} ids`);
      }
      buf.writeBigUInt64LE(event.tensor, MOE.tensor);
      buf.writeBigUInt64LE(event.consumer, MOE.consumer);
      buf.writeInt32LE(event.k, MOE.k);
      buf.writeInt32LE(event.nTokens, MOE.n_tokens);
      buf.writeUInt32LE(event.ids.length, MOE.count);
      buf.writeUInt32LE(event.firstToken, MOE.first_token);
      event.ids.forEach((id, i) => buf.writeInt32LE(id, MOE.ids + 4 * i));
      break;
    case EventType.BATCH: {
      const B = LAYOUT.pi_batch;
      const S = LAYOUT.pi_batch_seq;
      if (event.seqs.length > PI_MAX_BATCH_SEQS) {
        throw new RangeError(`a batch event holds at most ${PI_MAX_BATCH_SEQS} sequences`);
      }
      buf.writeUInt32LE(event.seq, B.seq);
      buf.writeInt32LE(event.nTokens, B.n_tokens);
      buf.writeUInt32LE(event.flags, B.flags);
      buf.writeUInt32LE(event.seqs.length, B.n_seqs);
      buf.writeUInt32LE(event.tokensRead, B.tokens_read);
      buf.writeUInt32LE(event.tokensLost, B.tokens_lost);
      event.seqs.forEach((q, i) => {
        const at = B.seqs + i * S.size;
        buf.writeInt32LE(q.seqId, at + S.seq_id);
        buf.writeUInt32LE(q.nTokens, at + S.n_tokens);
        buf.writeInt32LE(q.posMin, at + S.pos_min);
        buf.writeInt32LE(q.posMax, at + S.pos_max);
        buf.writeUInt32LE(q.nOutputs, at + S.n_outputs);
      });
      break;
    }
    case EventType.SPLIT: {
      const S = LAYOUT.pi_split;
      buf.writeBigUInt64LE(event.cgraph, S.cgraph);
      buf.writeBigUInt64LE(event.backend, S.backend);
      buf.writeBigUInt64LE(event.device, S.device);
      buf.writeBigUInt64LE(event.deviceGetName, S.device_get_name);
      buf.writeBigUInt64LE(event.schedGraph, S.sched_graph);
      buf.writeInt32LE(event.firstNode, S.first_node);
      buf.writeInt32LE(event.nNodes, S.n_nodes);
      break;
    }
    case EventType.COPY_BEGIN: {
      const C = LAYOUT.pi_copy;
      buf.writeBigUInt64LE(event.src, C.src);
      buf.writeBigUInt64LE(event.dst, C.dst);
      buf.writeBigUInt64LE(event.backendSrc, C.backend_src);
      buf.writeBigUInt64LE(event.backendDst, C.backend_dst);
      for (let i = 0; i < 4; i++) {
        buf.writeBigInt64LE(BigInt(event.ne[i]!), C.ne + 8 * i);
        buf.writeBigUInt64LE(BigInt(event.nb[i]!), C.nb + 8 * i);
      }
      buf.writeInt32LE(event.typeIndex, C.type);
      buf.writeUInt32LE(event.via, C.via);
      writeCString(buf, C.src_name, PI_MAX_NAME, event.srcName);
      writeCString(buf, C.dst_name, PI_MAX_NAME, event.dstName);
      break;
    }
    case EventType.COPY_END:
      buf.writeUInt32LE(event.via, LAYOUT.pi_copy_end.via);
      buf.writeInt32LE(event.ret, LAYOUT.pi_copy_end.ret);
      break;
    case EventType.SYNC_BEGIN:
    case EventType.SYNC_END:
      buf.writeBigUInt64LE(event.backend, LAYOUT.pi_sync.backend);
      break;
    case EventType.BACKEND_CALL_BEGIN:
    case EventType.BACKEND_CALL_END:
      buf.writeUInt32LE(event.call, LAYOUT.pi_backend_call.call);
      event.args.forEach((a, i) => buf.writeBigUInt64LE(a, LAYOUT.pi_backend_call.args + 8 * i));
      break;
  }
  return buf;
}

/** Events as one ring-buffer batch: each record a u32 length and the struct's bytes. */
export function batchOf(events: readonly RawEvent[]): Buffer {
  const parts: Buffer[] = [];
  for (const ev of events) {
    const body = encodeEvent(ev);
    const length = Buffer.alloc(4);
    length.writeUInt32LE(body.length);
    parts.push(length, body);
  }
  return Buffer.concat(parts);
}
