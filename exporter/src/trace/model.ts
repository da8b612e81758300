// SPDX-License-Identifier: Apache-2.0
// The trace model: Token > GraphRun > OpRun (per thread), rebuilt from a recorded event stream.
// Timestamps are BigInt CLOCK_MONOTONIC ns (exact); durations are plain numbers of ns.
// docs/trace-model.md describes the rules; buildRun() applies them.
import type { Drops, Phase } from "@profinfer/contract";
import { clockFrom, type RunClock } from "./clock.js";
import {
  buildDag,
  opNamingFrom,
  parseLayer,
  snapshotKey,
  type Dag,
  type DagSource,
  type GraphSnapshot,
  type TensorInfo,
} from "./dag.js";
import {
  EventType,
  GraphFn,
  type BarrierEvent,
  type GraphNodesEvent,
  type MoeIdsEvent,
  type OpEvent,
  type RawEvent,
  type SchedSwitchEvent,
  type StepEvent,
  type TensorEvent,
  type TokenBeginEvent,
} from "./events.js";
import type { NoteRecord, RawNote, RawRecording, RunHeader } from "./rawFile.js";
import { chargeOffCpu, offCpuIntervals, type OffCpuInterval, type OffCpuTarget } from "./sched.js";
import {
  innerBarrierExpectations,
  pairThreadEvents,
  reconstructFromSteps,
  reconstructGraph,
  type StepItem,
  type ThreadItem,
} from "./timeline.js";

export interface Run {
  /** the file it was read from, when it was */
  source: string | null;
  header: RunHeader;
  pid: number;
  command: string[];
  level: RunHeader["level"];
  clock: RunClock;
  /** earliest and latest event timestamp (0n when there are no events) */
  firstNs: bigint;
  lastNs: bigint;
  eventCount: number;
  /** llama_decode calls, in start order */
  tokens: Token[];
  /** every graph computation, in start order (nested CPU graphs after their sched graph) */
  graphRuns: GraphRun[];
  /** graph descriptions by snapshotKey(cgraph, signature) */
  snapshots: Map<string, GraphSnapshot>;
  /** the target's threads: decode callers first, then workers by ith */
  threads: Map<number, ThreadInfo>;
  /** off-CPU intervals per target thread (sched_switch), by tid */
  offCpu: Map<number, OffCpuInterval[]>;
  /** the last "drops" note: cumulative per-reason counts; null when none was written */
  drops: Drops | null;
  /** the "exit" note, when the target's exit was seen */
  exit: RawNote | null;
  notes: NoteRecord[];
  /** the file was cut short: the events after `truncatedAt` are lost */
  truncated: boolean;
  truncatedAt: number | null;
  warnings: string[];
  /**
   * The perf counters recorded (the run header's), in order: `hardware` says whether it counts
   * real hardware events (false: a software event of the kernel), `scaled` whether any reading
   * was multiplexed and so scaled by enabled/running time. Absent when no counter was recorded.
   */
  counters?: { name: string; hardware: boolean; scaled: boolean }[];
}

export interface ThreadInfo {
  tid: number;
  tgid: number;
  /** ggml worker index; null when it never ran an operator */
  ith: number | null;
  /** it called llama_decode */
  decodeCaller: boolean;
  /** "main", "worker 2", "thread 1234" */
  name: string;
  /** its comm, when a sched_switch named it */
  comm: string | null;
}

/** One llama_decode call. */
export interface Token {
  seq: number;
  tgid: number;
  tid: number;
  ctx: bigint;
  /** n_tokens > 1: prefill (prompt processing); 1: a decode step */
  phase: Phase;
  nTokens: number;
  startNs: bigint;
  endNs: bigint;
  /** llama_decode's return value; null when its end was not recorded */
  ret: number | null;
  /** begin and end were both recorded */
  complete: boolean;
  opsSampled: boolean;
  /** graph computations inside the call, in start order (sched graphs and their CPU graphs) */
  graphs: GraphRun[];
  /** MoE routing: layer -> one row of k expert ids per token of the batch */
  experts?: Map<number, number[][]>;
}

export interface GraphRun {
  /** index in Run.graphRuns */
  id: number;
  fn: "sched" | "cpu";
  cgraph: bigint;
  signature: bigint;
  tgid: number;
  /** the thread that called the graph compute */
  tid: number;
  nNodes: number;
  /** cplan threads (CPU graphs); 0 when the event does not say */
  nThreads: number;
  startNs: bigint;
  endNs: bigint;
  ret: number | null;
  /** the graph this one runs inside (a CPU split inside the scheduler's compute) */
  parent: GraphRun | null;
  /** seq of the token it belongs to; null when no llama_decode contains it */
  tokenSeq: number | null;
  /** the DAG description it refers to (shared by every run of the same cgraph + signature) */
  snapshot: GraphSnapshot | null;
  /** operators were reconstructed for it (the innermost graph of a token whose ops were sampled) */
  opsRecorded: boolean;
  /** one per computed node (or fused group), in execution order */
  ops: OpRun[];
  /** per participating thread, its totals in this graph, by ith */
  threads: GraphThread[];
  /** no event was missing: every op has every thread, nothing had to be guessed beyond the rules */
  complete: boolean;
  /** why it is not complete, for people */
  problems: string[];
}

export interface GraphThread {
  tid: number;
  ith: number | null;
  /** time inside operator intervals */
  computeNs: number;
  /** time in the barriers after operators */
  barrierWaitNs: number;
  offCpuNs: number;
  preemptedNs: number;
}

/** One computed node (or fused group of nodes) of one graph run. */
export interface OpRun {
  nodeIndex: number;
  tensor: TensorInfo;
  /** tensor.opLabel, or the fused group's labels joined with "+": "RMS_NORM+MUL" */
  label: string;
  /** the other nodes ggml computed in the same step (fusion), by node index */
  fusedWith?: number[];
  sources: DagSource[];
  /** its per-operator function was probed (an OP event names it) on at least one thread */
  visible: boolean;
  /** per thread, by ith */
  threads: OpThreadRun[];
  /** graph threads with no interval for this op (events lost) */
  missingTids: number[];
  /** earliest start and latest end over its threads; null when no thread has it */
  startNs: bigint | null;
  endNs: bigint | null;
  /** endNs - startNs, 0 when unknown */
  durationNs: number;
}

export interface OpThreadRun extends OffCpuTarget {
  tid: number;
  ith: number | null;
  startNs: bigint;
  endNs: bigint;
  /** timed by the op's own OP events (false: by the barriers around it) */
  visible: boolean;
  /** the start is the graph's start: an unprobed first op whose thread start was not seen */
  startInferred: boolean;
  /** the ggml_barrier that follows the op on this thread */
  barrierStartNs: bigint | null;
  barrierEndNs: bigint | null;
  barrierWaitNs: number;
  /** barriers the op's own code passed (mul_mat's, mul_mat_id's) */
  innerBarrierWaitNs: number;
  offCpuNs: number;
  preemptedNs: number;
  /**
   * Counter deltas of this thread over this interval (event name -> scaled count), when the run
   * recorded counters and both readings were seen (a thread's first step of a graph that started
   * before any of its events was read: none).
   */
  counters?: Record<string, number>;
}

export interface RawInput {
  header: RunHeader;
  events: readonly RawEvent[];
  notes?: readonly NoteRecord[];
  truncatedAt?: number | null;
  path?: string | null;
}

/** The graph that starts last at or before `ts` and still contains it (walking up the parents). */
class GraphIndex {
  private readonly starts: bigint[];
  private cache = -1;
  constructor(private readonly graphs: GraphRun[]) {
    this.starts = graphs.map((g) => g.startNs);
  }

  innermostAt(ts: bigint): GraphRun | null {
    const starts = this.starts;
    let i = this.cache;
    if (!(i >= 0 && starts[i]! <= ts && (i + 1 === starts.length || starts[i + 1]! > ts))) {
      let lo = 0;
      let hi = starts.length - 1;
      i = -1;
      while (lo <= hi) {
        const mid = (lo + hi) >> 1;
        if (starts[mid]! <= ts) {
          i = mid;
          lo = mid + 1;
        } else hi = mid - 1;
      }
      this.cache = i;
    }
    let g: GraphRun | null = i >= 0 ? this.graphs[i]! : null;
    while (g !== null && g.endNs < ts) g = g.parent;
    return g;
  }
}

function graphFnName(code: number): GraphRun["fn"] {
  return code === GraphFn.SCHED ? "sched" : "cpu";
}

function byStart<T extends { startNs: bigint }>(a: T, b: T): number {
  return a.startNs < b.startNs ? -1 : a.startNs > b.startNs ? 1 : 0;
}

function pushTo<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

/** Rebuild the trace model from a recording (readRawFile's result, or events in memory). */
export function buildRun(input: RawInput | RawRecording): Run {
  const header = input.header;
  const naming = opNamingFrom(header);
  const warnings: string[] = [];
  const notes = input.notes ?? [];
  const truncatedAt = input.truncatedAt ?? null;
  const events = input.events;

  let firstNs = -1n;
  let lastNs = 0n;
  for (const ev of events) {
    if (firstNs < 0n || ev.ts < firstNs) firstNs = ev.ts;
    if (ev.ts > lastNs) lastNs = ev.ts;
  }
  if (firstNs < 0n) firstNs = 0n;

  // Pass 1: pair begin/end per thread, collect descriptions, sort the rest into buckets.
  const tokens: Token[] = [];
  const openTokens = new Map<number, TokenBeginEvent>();
  const graphRuns: GraphRun[] = [];
  const graphStacks = new Map<number, GraphRun[]>();
  const nodeChunks = new Map<string, GraphNodesEvent[]>();
  const tensorsBySignature = new Map<bigint, Map<bigint, TensorEvent>>();
  const threadEvents = new Map<number, (OpEvent | BarrierEvent)[]>();
  const stepEvents = new Map<number, StepEvent[]>();
  const switches: SchedSwitchEvent[] = [];
  const moeEvents: MoeIdsEvent[] = [];
  const targetTgids = new Set<number>([header.target.pid]);
  const comms = new Map<number, string>();
  let unpaired = 0;

  const newToken = (b: TokenBeginEvent, endNs: bigint, ret: number | null): Token => ({
    seq: b.seq,
    tgid: b.tgid,
    tid: b.tid,
    ctx: b.ctx,
    phase: b.nTokens > 1 ? "prefill" : "decode",
    nTokens: b.nTokens,
    startNs: b.ts,
    endNs,
    ret,
    complete: ret !== null,
    opsSampled: b.opsSampled,
    graphs: [],
  });

  for (const ev of events) {
    switch (ev.type) {
      case EventType.OP_BEGIN:
      case EventType.OP_END:
      case EventType.BARRIER_BEGIN:
      case EventType.BARRIER_END:
        pushTo(threadEvents, ev.tid, ev);
        break;
      case EventType.STEP:
        pushTo(stepEvents, ev.tid, ev);
        break;
      case EventType.TOKEN_BEGIN: {
        targetTgids.add(ev.tgid);
        const open = openTokens.get(ev.tid);
        if (open) {
          tokens.push(newToken(open, ev.ts, null));
          unpaired++;
        }
        openTokens.set(ev.tid, ev);
        break;
      }
      case EventType.TOKEN_END: {
        const open = openTokens.get(ev.tid);
        if (open && open.seq === ev.seq) {
          tokens.push(newToken(open, ev.ts, ev.ret));
          openTokens.delete(ev.tid);
        } else unpaired++;
        break;
      }
      case EventType.GRAPH_BEGIN: {
        targetTgids.add(ev.tgid);
        let stack = graphStacks.get(ev.tid);
        if (!stack) graphStacks.set(ev.tid, (stack = []));
        const key = snapshotKey(ev.cgraph, ev.signature);
        if (ev.changed) nodeChunks.set(key, []);
        const run: GraphRun = {
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
          parent: stack[stack.length - 1] ?? null,
          tokenSeq: null,
          snapshot: null,
          opsRecorded: false,
          ops: [],
          threads: [],
          complete: true,
          problems: [],
        };
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
          unpaired++;
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
      case EventType.GRAPH_NODES: {
        const key = snapshotKey(ev.cgraph, ev.signature);
        pushTo(nodeChunks, key, ev);
        break;
      }
      case EventType.TENSOR: {
        let pool = tensorsBySignature.get(ev.signature);
        if (!pool) tensorsBySignature.set(ev.signature, (pool = new Map()));
        pool.set(ev.addr, ev);
        break;
      }
      case EventType.SCHED_SWITCH:
        switches.push(ev);
        if (ev.prevTid === ev.tid && ev.prevComm) comms.set(ev.tid, ev.prevComm);
        else if (ev.nextTid === ev.tid && ev.nextComm) comms.set(ev.tid, ev.nextComm);
        break;
      case EventType.SCHED_WAKEUP:
        break;
      case EventType.MOE_IDS:
        moeEvents.push(ev);
        break;
    }
  }
  for (const open of openTokens.values()) {
    tokens.push(newToken(open, lastNs, null));
  }
  for (const stack of graphStacks.values()) {
    for (const lost of stack) {
      lost.endNs = lastNs;
      lost.complete = false;
      lost.problems.push("the recording ended before the graph did");
    }
  }
  if (unpaired > 0) {
    warnings.push(`${unpaired} token or graph end events had no matching begin (events lost)`);
  }

  tokens.sort((a, b) => byStart(a, b) || a.seq - b.seq);
  graphRuns.sort(byStart);
  graphRuns.forEach((g, i) => (g.id = i));

  // Graphs into tokens: same process, start inside [begin, end] of the call.
  const tokensByTgid = new Map<number, Token[]>();
  for (const t of tokens) pushTo(tokensByTgid, t.tgid, t);
  const tokenAt = (tgid: number, ts: bigint): Token | null => {
    const list = tokensByTgid.get(tgid);
    if (!list) return null;
    let lo = 0;
    let hi = list.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (list[mid]!.startNs <= ts) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    for (let i = found; i >= 0 && i >= found - 4; i--) {
      const t = list[i]!;
      if (t.startNs <= ts && ts <= t.endNs) return t;
    }
    return null;
  };
  let outsideTokens = 0;
  for (const g of graphRuns) {
    const token = tokenAt(g.tgid, g.startNs);
    if (token) {
      token.graphs.push(g);
      g.tokenSeq = token.seq;
    } else outsideTokens++;
  }
  if (outsideTokens > 0) {
    warnings.push(`${outsideTokens} graph computations ran outside any recorded llama_decode call`);
  }

  // Snapshots: one per (cgraph, signature), shared by every run that refers to it.
  const snapshots = new Map<string, GraphSnapshot>();
  const nodeCounts = new Map<string, number>();
  for (const g of graphRuns) {
    nodeCounts.set(snapshotKey(g.cgraph, g.signature), g.nNodes);
  }
  for (const [key, chunks] of nodeChunks) {
    const first = chunks[0];
    if (!first) continue;
    const covered = chunks.reduce((n, c) => Math.max(n, c.first + c.nodes.length), 0);
    const nNodes = nodeCounts.get(key) ?? covered;
    const addrs = new Array<bigint>(nNodes).fill(0n);
    let filled = 0;
    for (const c of [...chunks].sort((a, b) => a.first - b.first)) {
      c.nodes.forEach((addr, i) => {
        const at = c.first + i;
        if (at < nNodes && addrs[at] === 0n) {
          addrs[at] = addr;
          filled++;
        }
      });
    }
    const dag = buildDag(addrs, tensorsBySignature.get(first.signature) ?? new Map(), naming);
    snapshots.set(key, {
      key,
      cgraph: first.cgraph,
      signature: first.signature,
      nNodes,
      dag,
      uses: 0,
      complete: filled === nNodes && dag.undescribedNodes === 0,
    });
  }
  for (const g of graphRuns) {
    const snapshot = snapshots.get(snapshotKey(g.cgraph, g.signature)) ?? null;
    g.snapshot = snapshot;
    if (snapshot) snapshot.uses++;
  }

  // Operator and barrier events: paired per thread, each top-level item given to the innermost
  // graph of its process that contains its start.
  const graphsByTgid = new Map<number, GraphRun[]>();
  for (const g of graphRuns) pushTo(graphsByTgid, g.tgid, g);
  const indexes = new Map<number, GraphIndex>();
  for (const [tgid, list] of graphsByTgid) indexes.set(tgid, new GraphIndex(list));
  const itemsByGraph = new Map<GraphRun, Map<number, ThreadItem[]>>();
  const ithByTid = new Map<number, number>();
  let lostItems = 0;
  let brokenItems = 0;
  for (const [tid, list] of [...threadEvents].sort((a, b) => a[0] - b[0])) {
    const items = pairThreadEvents(list);
    const index = indexes.get(list[0]!.tgid);
    for (const item of items) {
      if (item.broken) brokenItems++;
      if (item.op && item.ith >= 0) ithByTid.set(tid, item.ith);
      const g = index?.innermostAt(item.beginNs) ?? null;
      if (!g) {
        lostItems++;
        continue;
      }
      let perThread = itemsByGraph.get(g);
      if (!perThread) itemsByGraph.set(g, (perThread = new Map()));
      pushTo(perThread, tid, item);
    }
  }
  const stepsByGraph = new Map<GraphRun, Map<number, StepItem[]>>();
  for (const [tid, list] of stepEvents) {
    const index = indexes.get(list[0]!.tgid);
    for (const ev of list) {
      const g = index?.innermostAt(ev.ts) ?? null;
      if (!g) {
        lostItems++;
        continue;
      }
      let perThread = stepsByGraph.get(g);
      if (!perThread) stepsByGraph.set(g, (perThread = new Map()));
      pushTo(perThread, tid, { ts: ev.ts, next: ev.next });
    }
  }
  if (lostItems > 0) {
    warnings.push(`${lostItems} operator/barrier intervals fell outside any graph`);
  }
  if (brokenItems > 0) {
    warnings.push(`${brokenItems} operator/barrier intervals lost their begin or end event`);
  }

  const hasChild = new Set<GraphRun>();
  for (const g of graphRuns) if (g.parent) hasChild.add(g.parent);
  const tokenBySeq = new Map<string, Token>();
  for (const t of tokens) tokenBySeq.set(`${t.tgid}:${t.seq}`, t);
  const expectInner = innerBarrierExpectations(itemsByGraph);
  let drops: Drops | null = null;
  let exit: RawNote | null = null;
  for (const { note } of notes) {
    if (note.kind === "drops") drops = dropsFrom(note);
    else if (note.kind === "exit") exit = note;
    else if (note.kind === "warning" && typeof note.message === "string") {
      warnings.push(note.message);
    }
  }
  const lossPossible = truncatedAt !== null || (drops?.total ?? 0) > 0 || brokenItems > 0;
  const counterNames = (header.counters ?? []).map((c) => c.name);
  let scaledBits = 0;
  if (counterNames.length > 0) {
    for (const list of threadEvents.values())
      for (const ev of list) if (ev.counters) scaledBits |= ev.counters.scaled;
  }
  const targetsByTid = new Map<number, OffCpuTarget[]>();

  for (const g of graphRuns) {
    const items = itemsByGraph.get(g);
    const token = g.tokenSeq === null ? null : tokenBySeq.get(`${g.tgid}:${g.tokenSeq}`);
    const expectOps =
      header.level === "op" && !hasChild.has(g) && g.fn === "cpu" && (token?.opsSampled ?? false);
    const steps = stepsByGraph.get(g);
    if (steps) reconstructFromSteps(g, steps, ithByTid);
    else if (items || expectOps)
      reconstructGraph(g, items ?? new Map(), {
        expectInner,
        ithByTid,
        lossPossible,
        counterNames,
      });
    else continue;
    for (const op of g.ops) for (const t of op.threads) pushTo(targetsByTid, t.tid, t);
  }

  // Scheduler: off-CPU intervals, charged to the operator intervals and graph threads.
  const ranAt = new Map<number, bigint[]>();
  for (const [tid, list] of threadEvents)
    ranAt.set(
      tid,
      list.map((e) => e.ts),
    );
  const offCpu = offCpuIntervals(switches, targetTgids, lastNs, ranAt);
  for (const [tid, targets] of targetsByTid) {
    const intervals = offCpu.get(tid);
    if (intervals) chargeOffCpu(targets, intervals);
  }
  for (const g of graphRuns) {
    for (const gt of g.threads) {
      const intervals = offCpu.get(gt.tid);
      if (!intervals) continue;
      const span: OffCpuTarget = {
        startNs: g.startNs,
        endNs: g.endNs,
        offCpuNs: 0,
        preemptedNs: 0,
      };
      chargeOffCpu([span], intervals);
      gt.offCpuNs = span.offCpuNs;
      gt.preemptedNs = span.preemptedNs;
    }
  }

  attachExperts(moeEvents, tokenAt, indexes, snapshots, warnings);

  // Threads: decode callers, then workers by ith.
  const callers = new Set(tokens.map((t) => t.tid));
  const tids = new Map<number, number>();
  for (const t of tokens) tids.set(t.tid, t.tgid);
  for (const g of graphRuns) {
    tids.set(g.tid, g.tgid);
    for (const gt of g.threads) tids.set(gt.tid, g.tgid);
  }
  for (const tid of offCpu.keys()) if (!tids.has(tid)) tids.set(tid, header.target.pid);
  const ordered = [...tids].sort((a, b) => {
    const ca = callers.has(a[0]) ? 0 : 1;
    const cb = callers.has(b[0]) ? 0 : 1;
    const ia = ithByTid.get(a[0]) ?? Number.MAX_SAFE_INTEGER;
    const ib = ithByTid.get(b[0]) ?? Number.MAX_SAFE_INTEGER;
    return ca - cb || ia - ib || a[0] - b[0];
  });
  const threads = new Map<number, ThreadInfo>();
  for (const [tid, tgid] of ordered) {
    const caller = callers.has(tid);
    const ith = ithByTid.get(tid) ?? null;
    const name = caller
      ? callers.size === 1
        ? "main"
        : `main ${tid}`
      : ith !== null
        ? `worker ${ith}`
        : `thread ${tid}`;
    threads.set(tid, { tid, tgid, ith, decodeCaller: caller, name, comm: comms.get(tid) ?? null });
  }

  if (truncatedAt !== null) {
    warnings.push(`the event file was cut short at byte ${truncatedAt}; later events are lost`);
  }
  if (drops && drops.total > 0) {
    warnings.push(
      `${drops.total} events were dropped while recording (${Object.entries(drops.counts)
        .filter(([, n]) => n > 0)
        .map(([k, n]) => `${k}: ${n}`)
        .join(", ")}); graphs with missing events are marked incomplete`,
    );
  }

  return {
    source: input.path ?? null,
    header,
    pid: header.target.pid,
    command: header.target.command ?? [],
    level: header.level,
    clock: clockFrom(header),
    firstNs,
    lastNs,
    eventCount: events.length,
    tokens,
    graphRuns,
    snapshots,
    threads,
    offCpu,
    drops,
    exit,
    notes: [...notes],
    truncated: truncatedAt !== null,
    truncatedAt,
    warnings,
    ...(header.counters && header.counters.length > 0
      ? {
          counters: header.counters.map((c, i) => ({
            name: c.name,
            hardware: c.hardware,
            scaled: (scaledBits & (1 << i)) !== 0,
          })),
        }
      : {}),
  };
}

/** Drop counts of a "drops" note: its `counts` object, or else its numeric fields. */
function dropsFrom(note: RawNote): Drops {
  const source =
    typeof note.counts === "object" && note.counts !== null
      ? (note.counts as Record<string, unknown>)
      : note;
  const counts: Record<string, number> = {};
  for (const key of Object.keys(source).sort()) {
    const value = source[key];
    if (key !== "kind" && typeof value === "number" && Number.isFinite(value)) counts[key] = value;
  }
  return { counts, total: Object.values(counts).reduce((a, b) => a + b, 0) };
}

function attachExperts(
  moeEvents: readonly MoeIdsEvent[],
  tokenAt: (tgid: number, ts: bigint) => Token | null,
  indexes: Map<number, GraphIndex>,
  snapshots: Map<string, GraphSnapshot>,
  warnings: string[],
): void {
  let unplaced = 0;
  const names = new Map<Dag, Map<bigint, string>>();
  const nameIn = (dag: Dag, addr: bigint): string | null => {
    let byAddr = names.get(dag);
    if (!byAddr) {
      byAddr = new Map();
      for (const leaf of dag.leaves) byAddr.set(leaf.tensor.addr, leaf.tensor.name);
      for (const node of dag.nodes) byAddr.set(node.tensor.addr, node.tensor.name);
      names.set(dag, byAddr);
    }
    return byAddr.get(addr) ?? null;
  };
  for (const ev of moeEvents) {
    const token = tokenAt(ev.tgid, ev.ts);
    let name: string | null = null;
    const g = indexes.get(ev.tgid)?.innermostAt(ev.ts) ?? null;
    for (let at: GraphRun | null = g; at && name === null; at = at.parent) {
      if (at.snapshot) name = nameIn(at.snapshot.dag, ev.tensor);
    }
    for (const s of snapshots.values()) {
      if (name !== null) break;
      name = nameIn(s.dag, ev.tensor);
    }
    const layer = name === null ? null : parseLayer(name);
    if (!token || layer === null || ev.k <= 0) {
      unplaced++;
      continue;
    }
    const rows: number[][] = [];
    for (let r = 0; (r + 1) * ev.k <= ev.ids.length && r < ev.nTokens; r++) {
      rows.push(Array.from(ev.ids.subarray(r * ev.k, (r + 1) * ev.k)));
    }
    token.experts ??= new Map();
    const have = token.experts.get(layer) ?? [];
    // rows go to their batch positions: a large prefill arrives in several events
    rows.forEach((row, r) => (have[ev.firstToken + r] = row));
    token.experts.set(layer, have);
  }
  if (unplaced > 0) {
    warnings.push(
      `${unplaced} MoE expert-id events could not be placed (no token, or the routing tensor's ` +
        "layer is unknown)",
    );
  }
  for (const t of new Set(moeEvents.map((e) => tokenAt(e.tgid, e.ts)))) {
    if (t?.experts) t.experts = new Map([...t.experts].sort((a, b) => a[0] - b[0]));
  }
}
