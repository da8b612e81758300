// SPDX-License-Identifier: Apache-2.0
// The first pass of buildRun: one walk over the events that pairs llama_decode and graph compute
// begins with their ends per thread and sorts everything else by what it feeds (graph
// descriptions, per-thread operator, barrier and step events, scheduler switches, MoE ids).
import {
  EventType,
  GraphFn,
  OPS_RECORD,
  STEPS_RECORD,
  firstNsOf,
  type BarrierEvent,
  type BackendCallEvent,
  type BatchEvent,
  type CopyBeginEvent,
  type CopyEndEvent,
  type SplitEvent,
  type SyncEvent,
  type GraphNodesEvent,
  type MoeIdsEvent,
  type OpEvent,
  type ChunkEvent,
  type SchedSwitchEvent,
  type StepBatchEvent,
  type OpBatchEvent,
  type StepEvent,
  type TensorEvent,
  type TokenBeginEvent,
} from "../abi/events.js";
import { snapshotKey } from "./dag.js";
import { pushTo } from "./multimap.js";
import type { GraphRun, Token } from "./types.js";

export interface SortedEvents {
  /** earliest and latest event timestamp (0n when there are no events) */
  firstNs: bigint;
  lastNs: bigint;
  /** llama_decode calls, in start order */
  tokens: Token[];
  /** graph computations, in start order, with their ids */
  graphRuns: GraphRun[];
  /** node list chunks by snapshotKey, from the latest GRAPH_BEGIN that said the graph changed */
  nodeChunks: Map<string, GraphNodesEvent[]>;
  /** tensor descriptions by snapshot signature, then address */
  tensorsBySignature: Map<bigint, Map<bigint, TensorEvent>>;
  /** OP and BARRIER events per thread, in the thread's own order */
  threadEvents: Map<number, (OpEvent | BarrierEvent)[]>;
  stepEvents: Map<number, StepEvent[]>;
  /** batches of steps kept as bytes (the live exports), per thread in its order */
  stepBatches: Map<number, StepBatchEvent[]>;
  /** runs of OP events kept as records (the live exports), per thread in its order */
  opBatches: Map<number, OpBatchEvent[]>;
  switches: SchedSwitchEvent[];
  moeEvents: MoeIdsEvent[];
  /** the target's processes: the recorded pid and every process that decoded or computed */
  targetTgids: Set<number>;
  /** thread names seen in sched_switch events */
  comms: Map<number, string>;
  /** token or graph end events without their begin */
  unpaired: number;
  /** the backends' events (ABI 5): each split's backend by its graph run, and per thread in order */
  splitEvents: Map<GraphRun, SplitEvent>;
  backendEvents: Map<number, (CopyBeginEvent | CopyEndEvent | SyncEvent | BackendCallEvent)[]>;
}

function graphFnName(code: number): GraphRun["fn"] {
  return code === GraphFn.SCHED ? "sched" : code === GraphFn.SPLIT ? "split" : "cpu";
}

function byStart<T extends { startNs: bigint }>(a: T, b: T): number {
  return a.startNs < b.startNs ? -1 : a.startNs > b.startNs ? 1 : 0;
}

function eventSpan(events: readonly ChunkEvent[]): { firstNs: bigint; lastNs: bigint } {
  let firstNs = -1n;
  let lastNs = 0n;
  for (const ev of events) {
    const first = firstNsOf(ev);
    if (firstNs < 0n || first < firstNs) firstNs = first;
    if (ev.ts > lastNs) lastNs = ev.ts;
  }
  return { firstNs: firstNs < 0n ? 0n : firstNs, lastNs };
}

function newToken(b: TokenBeginEvent, endNs: bigint, ret: number | null): Token {
  return {
    seq: b.seq,
    tgid: b.tgid,
    tid: b.tid,
    ctx: b.ctx,
    phase: b.nTokens > 1 ? "prefill" : "decode",
    nTokens: b.nTokens,
    startNs: b.ts,
    endNs,
    ret,
    opsSampled: b.opsSampled,
    graphs: [],
  };
}

function newGraphRun(ev: Extract<ChunkEvent, { type: typeof EventType.GRAPH_BEGIN }>): GraphRun {
  return {
    id: -1,
    fn: graphFnName(ev.fn),
    cgraph: ev.cgraph,
    signature: ev.signature,
    tgid: ev.tgid,
    tid: ev.tid,
    nNodes: ev.nNodes,
    nThreads: ev.nThreads,
    startNs: ev.ts,
    endNs: -1n,
    ret: null,
    parent: null,
    tokenSeq: null,
    snapshot: null,
    opsRecorded: false,
    ops: [],
    threads: [],
    complete: true,
    problems: [],
    eventProblems: 0,
  };
}

/** Pairs and sorts the events of a recording of process `targetPid`. */
export function sortEvents(events: readonly ChunkEvent[], targetPid: number): SortedEvents {
  const { firstNs, lastNs } = eventSpan(events);
  const tokens: Token[] = [];
  const openTokens = new Map<number, TokenBeginEvent>();
  const graphRuns: GraphRun[] = [];
  const graphStacks = new Map<number, GraphRun[]>();
  const batches = new Map<string, BatchEvent>();
  const out: SortedEvents = {
    firstNs,
    lastNs,
    tokens,
    graphRuns,
    nodeChunks: new Map(),
    tensorsBySignature: new Map(),
    threadEvents: new Map(),
    stepEvents: new Map(),
    stepBatches: new Map(),
    opBatches: new Map(),
    switches: [],
    moeEvents: [],
    targetTgids: new Set([targetPid]),
    comms: new Map(),
    unpaired: 0,
    splitEvents: new Map(),
    backendEvents: new Map(),
  };

  for (const ev of events) {
    switch (ev.type) {
      case EventType.OP_BEGIN:
      case EventType.OP_END:
      case EventType.BARRIER_BEGIN:
      case EventType.BARRIER_END:
        pushTo(out.threadEvents, ev.tid, ev);
        break;
      case EventType.STEP:
        pushTo(out.stepEvents, ev.tid, ev);
        break;
      case STEPS_RECORD:
        pushTo(out.stepBatches, ev.tid, ev);
        break;
      case OPS_RECORD:
        pushTo(out.opBatches, ev.tid, ev);
        break;
      case EventType.TOKEN_BEGIN: {
        out.targetTgids.add(ev.tgid);
        const open = openTokens.get(ev.tid);
        if (open) {
          tokens.push(newToken(open, ev.ts, null));
          out.unpaired++;
        }
        openTokens.set(ev.tid, ev);
        break;
      }
      case EventType.TOKEN_END: {
        const open = openTokens.get(ev.tid);
        if (open && open.seq === ev.seq) {
          tokens.push(newToken(open, ev.ts, ev.ret));
          openTokens.delete(ev.tid);
        } else out.unpaired++;
        break;
      }
      case EventType.GRAPH_BEGIN: {
        out.targetTgids.add(ev.tgid);
        let stack = graphStacks.get(ev.tid);
        if (!stack) graphStacks.set(ev.tid, (stack = []));
        if (ev.changed) out.nodeChunks.set(snapshotKey(ev.cgraph, ev.signature), []);
        const run = newGraphRun(ev);
        run.parent = stack[stack.length - 1] ?? null;
        stack.push(run);
        graphRuns.push(run);
        break;
      }
      case EventType.GRAPH_END: {
        const stack = graphStacks.get(ev.tid);
        const fn = graphFnName(ev.fn);
        let at = stack ? stack.length - 1 : -1;
        while (at >= 0 && !(stack![at]!.cgraph === ev.cgraph && stack![at]!.fn === fn)) at--;
        if (at < 0) {
          out.unpaired++;
          break;
        }
        const run = stack![at]!;
        run.endNs = ev.ts;
        run.ret = ev.ret;
        // Graphs above it on the stack lost their end: they end here.
        for (const lost of stack!.splice(at)) {
          if (lost !== run) {
            lost.endNs = ev.ts;
            lost.complete = false;
            lost.problems.push("its end event is missing");
          }
        }
        break;
      }
      case EventType.GRAPH_NODES:
        pushTo(out.nodeChunks, snapshotKey(ev.cgraph, ev.signature), ev);
        break;
      case EventType.TENSOR: {
        let pool = out.tensorsBySignature.get(ev.signature);
        if (!pool) out.tensorsBySignature.set(ev.signature, (pool = new Map()));
        pool.set(ev.addr, ev);
        break;
      }
      case EventType.SCHED_SWITCH:
        out.switches.push(ev);
        if (ev.prevTid === ev.tid && ev.prevComm) out.comms.set(ev.tid, ev.prevComm);
        else if (ev.nextTid === ev.tid && ev.nextComm) out.comms.set(ev.tid, ev.nextComm);
        break;
      case EventType.SCHED_WAKEUP:
        break;
      case EventType.MOE_IDS:
        out.moeEvents.push(ev);
        break;
      case EventType.BATCH:
        batches.set(`${ev.tgid}:${ev.seq}`, ev);
        break;
      case EventType.SPLIT: {
        // right after its GRAPH_BEGIN on the same thread
        const top = graphStacks.get(ev.tid)?.at(-1);
        if (top && top.fn === "split" && top.cgraph === ev.cgraph) out.splitEvents.set(top, ev);
        break;
      }
      case EventType.COPY_BEGIN:
      case EventType.COPY_END:
      case EventType.SYNC_BEGIN:
      case EventType.SYNC_END:
      case EventType.BACKEND_CALL_BEGIN:
      case EventType.BACKEND_CALL_END:
        pushTo(out.backendEvents, ev.tid, ev);
        break;
    }
  }
  // what was still open when the recording ended ends with it
  for (const open of openTokens.values()) tokens.push(newToken(open, lastNs, null));
  for (const stack of graphStacks.values()) {
    for (const lost of stack) {
      lost.endNs = lastNs;
      lost.complete = false;
      lost.problems.push("the recording ended before the graph did");
    }
  }
  for (const t of tokens) {
    const b = batches.get(`${t.tgid}:${t.seq}`);
    if (b) {
      t.batch = {
        flags: b.flags,
        tokensRead: b.tokensRead,
        tokensLost: b.tokensLost,
        seqs: b.seqs,
      };
    }
  }
  tokens.sort((a, b) => byStart(a, b) || a.seq - b.seq);
  graphRuns.sort(byStart);
  graphRuns.forEach((g, i) => (g.id = i));
  return out;
}
