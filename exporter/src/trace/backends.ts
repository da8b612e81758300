// SPDX-License-Identifier: Apache-2.0
// The backends pass of buildRun (ABI 5; docs/trace-model.md "Backends"): each split's backend
// and its name, its place in its scheduler graph, the copies of its inputs, when the host saw it
// complete, and what its backend's own functions show (a BLAS node's time, Vulkan's command
// buffers). Any backend gets the graph level from ggml's own backend API; the rest needs a
// backend profinfer knows.
import {
  EventType,
  type BackendCallEvent,
  type CopyBeginEvent,
  type CopyEndEvent,
  type SplitEvent,
  type SyncEvent,
} from "../abi/events.js";
import { backendMeasures, KNOWN_BACKENDS } from "../discovery/backends.js";
import type { BackendCall } from "./header.js";
import { pushTo } from "./multimap.js";
import type { BackendsNote, NoteRecord } from "./notes.js";
import { finishGraph, newOpRun, problemsOf, startReconstruction } from "./opRuns.js";
import type { Backend, BackendInterval, GraphRun, OpRun, SplitInfo, TensorCopy } from "./types.js";
import type { TypeSizes } from "./work.js";

type ThreadBackendEvent = CopyBeginEvent | CopyEndEvent | SyncEvent | BackendCallEvent;

/** The scheduler's name of a split's input copy: "<backend>#<tensor>#<copy>". */
const COPY_NAME = /^(.+)#(.+)#(\d+)$/;

/** What is never seen of a backend from the host, by what profinfer knows of it. */
function unseenOf(b: Backend): string[] {
  if (b.registry === "CPU" || b.registry === "BLAS") return [];
  if (b.known) {
    return [
      "the device time of each node: the host sees nodes recorded, command buffers submitted and fences waited for, not when the device ran them",
    ];
  }
  return [
    "its operators: profinfer knows no function of this backend, so each split is seen whole, from its submission to the host's next wait for the backend",
    "its device time: host-side timing overstates it by the submission and the wait",
  ];
}

/** ggml_nbytes of a tensor of `type` with shape `ne` and strides `nb`. */
export function tensorBytes(
  sizes: TypeSizes | null,
  type: number,
  ne: readonly number[],
  nb: readonly number[],
): number | null {
  const typeSize = sizes?.typeSizes[type];
  const block = sizes?.blockSizes[type];
  if (!typeSize || !block) return null;
  if (ne.some((n) => n <= 0)) return 0;
  let bytes = block === 1 ? typeSize : (ne[0]! * nb[0]!) / block;
  for (let i = block === 1 ? 0 : 1; i < 4; i++) bytes += (ne[i]! - 1) * nb[i]!;
  return bytes;
}

interface Paired<B, E> {
  begin: B;
  end: E | null;
}

/** Begin/end pairs of one thread's events of two types, in its order (a lost end stays null). */
function pairOnThread<B extends { type: number }, E extends { type: number }>(
  list: readonly (B | E)[],
  beginType: number,
  endType: number,
  key: (ev: B | E) => string = () => "",
): Paired<B, E>[] {
  const out: Paired<B, E>[] = [];
  const open = new Map<string, Paired<B, E>[]>();
  for (const ev of list) {
    if (ev.type === beginType) {
      const p: Paired<B, E> = { begin: ev as B, end: null };
      out.push(p);
      pushTo(open, key(ev), p);
    } else if (ev.type === endType) {
      const p = open.get(key(ev))?.pop();
      if (p) p.end = ev as E;
    }
  }
  return out;
}

export interface BackendsInput {
  graphRuns: readonly GraphRun[];
  splitEvents: ReadonlyMap<GraphRun, SplitEvent>;
  backendEvents: ReadonlyMap<number, readonly ThreadBackendEvent[]>;
  notes: readonly NoteRecord[];
  backendCalls: readonly BackendCall[];
  sizes: TypeSizes | null;
  lastNs: bigint;
}

/**
 * The backends of a run, kept across the chunks it is built in (trace/runStream.ts), so that a
 * backend keeps its id, name and addresses from one chunk to the next.
 */
export class BackendKeeper {
  readonly backends: Backend[] = [];
  readonly byKey = new Map<string, Backend>();
  /** the last backends note seen: a chunk's notes may not repeat it */
  registry: BackendsNote | null = null;
}

/**
 * Gives every split run its SplitInfo and every known backend's nodes their runs; returns the
 * backends, in order of first use (the keeper's: every backend of the run so far).
 */
export function attachBackends(
  input: BackendsInput,
  keeper: BackendKeeper = new BackendKeeper(),
): Backend[] {
  keeper.registry = lastBackendsNote(input.notes) ?? keeper.registry;
  const backends = identifyBackends(input.graphRuns, input.splitEvents, keeper);
  const splits = input.graphRuns.filter((g) => g.split);
  placeSplits(input.graphRuns);
  const threadEvents = [...input.backendEvents].sort((a, b) => a[0] - b[0]);
  attachCopies(splits, threadEvents, input.sizes, backends);
  nameBackends(backends, splits, input.graphRuns);
  const byAddress = new Map<bigint, Backend>();
  for (const b of backends) for (const a of b.addresses) byAddress.set(a, b);
  completeSplits(splits, threadEvents, byAddress);
  attachBackendCalls(splits, threadEvents, input.backendCalls);
  return backends;
}

function lastBackendsNote(notes: readonly NoteRecord[]): BackendsNote | null {
  let last: BackendsNote | null = null;
  for (const { note } of notes) if (note.kind === "backends") last = note;
  return last;
}

/** The library whose load address is the highest at or below `address`. */
function libraryOf(note: BackendsNote | null, address: bigint): string | null {
  let best: { path: string; base: bigint } | null = null;
  for (const l of note?.libraries ?? []) {
    const base = BigInt(l.base);
    if (base <= address && (!best || base > best.base)) best = { path: l.path, base };
  }
  return best?.path ?? null;
}

/** One Backend per device (or backend object, when the device was not read), named by the registry. */
function identifyBackends(
  graphRuns: readonly GraphRun[],
  splitEvents: ReadonlyMap<GraphRun, SplitEvent>,
  keeper: BackendKeeper,
): Backend[] {
  const { backends, byKey, registry: note } = keeper;
  for (const g of graphRuns) {
    const ev = splitEvents.get(g);
    if (g.fn !== "split" || !ev) continue;
    const key = ev.device !== 0n ? `d${ev.device}` : `b${ev.backend}`;
    let b = byKey.get(key);
    if (!b) {
      const devices = (note?.devices ?? []).filter(
        (d) =>
          d.getName !== null && ev.deviceGetName !== 0n && BigInt(d.getName) === ev.deviceGetName,
      );
      const registry = devices[0]?.registry ?? null;
      b = {
        id: backends.length,
        name: devices.length === 1 ? devices[0]!.name : `backend ${backends.length}`,
        registry,
        namedBy: devices.length === 1 ? "registry" : "none",
        known: registry !== null && registry in KNOWN_BACKENDS,
        measures: backendMeasures(registry),
        unseen: [],
        addresses: [],
        device: ev.device,
        deviceGetName: ev.deviceGetName,
        library: ev.deviceGetName !== 0n ? libraryOf(note, ev.deviceGetName) : null,
      };
      byKey.set(key, b);
      backends.push(b);
    }
    if (!b.addresses.includes(ev.backend)) b.addresses.push(ev.backend);
    g.split = {
      backend: b,
      sched: null,
      index: 0,
      firstNode: ev.firstNode,
      nNodes: ev.nNodes,
      copies: [],
      completeNs: g.endNs,
      completion: "returned",
      waits: [],
      calls: [],
    };
  }
  return backends;
}

/** Each split's scheduler graph and position among its splits. */
function placeSplits(graphRuns: readonly GraphRun[]): void {
  const counts = new Map<GraphRun, number>();
  for (const g of graphRuns) {
    if (!g.split) continue;
    let sched = g.parent;
    while (sched && sched.fn !== "sched") sched = sched.parent;
    g.split.sched = sched;
    const n = sched ? (counts.get(sched) ?? 0) : 0;
    if (sched) counts.set(sched, n + 1);
    g.split.index = n;
  }
}

/**
 * The copies of a thread, each given to the first split the thread starts after it, inside the
 * same scheduler graph (the copies of a split's inputs come right before it). An async copy that
 * was not possible is left out: the copy that did it follows.
 */
function attachCopies(
  splits: readonly GraphRun[],
  threadEvents: readonly [number, readonly ThreadBackendEvent[]][],
  sizes: TypeSizes | null,
  backends: readonly Backend[],
): void {
  const splitsByTid = new Map<number, GraphRun[]>();
  for (const g of splits) pushTo(splitsByTid, g.tid, g);
  const byAddress = new Map<bigint, Backend>();
  for (const b of backends) for (const a of b.addresses) byAddress.set(a, b);
  for (const [tid, list] of threadEvents) {
    const mine = splitsByTid.get(tid) ?? [];
    const copies = pairOnThread<CopyBeginEvent, CopyEndEvent>(
      list.filter(
        (e): e is CopyBeginEvent | CopyEndEvent =>
          e.type === EventType.COPY_BEGIN || e.type === EventType.COPY_END,
      ),
      EventType.COPY_BEGIN,
      EventType.COPY_END,
    );
    let at = 0;
    for (const { begin, end } of copies) {
      if (begin.via === 2 && end !== null && end.ret === 0) continue;
      const endNs = end?.ts ?? begin.ts;
      while (at < mine.length && mine[at]!.startNs < endNs) at++;
      const split = mine[at];
      const sched = split?.split?.sched;
      if (!split || !sched || begin.ts < sched.startNs) continue;
      const copy: TensorCopy = {
        src: begin.src,
        dst: begin.dst,
        srcName: begin.srcName,
        dstName: begin.dstName,
        bytes: tensorBytes(sizes, begin.typeIndex, begin.ne, begin.nb),
        startNs: begin.ts,
        endNs,
        tid,
        via: begin.via === 2 ? "async" : "sync",
        to: (begin.via === 2 ? byAddress.get(begin.backendDst) : null) ?? split.split!.backend,
      };
      split.split!.copies.push(copy);
    }
  }
}

/** Names of the backends the registry could not name: the scheduler's copy names, the CPU graph. */
function nameBackends(
  backends: readonly Backend[],
  splits: readonly GraphRun[],
  graphRuns: readonly GraphRun[],
): void {
  for (const g of splits) {
    const b = g.split!.backend;
    if (b.namedBy !== "none") continue;
    const named = g.split!.copies.map((c) => COPY_NAME.exec(c.dstName)?.[1]).find(Boolean);
    if (named) {
      b.name = named;
      b.namedBy = "copies";
    }
  }
  for (const g of graphRuns) {
    if (g.fn !== "cpu" || !g.parent?.split) continue;
    const b = g.parent.split.backend;
    if (b.namedBy === "none") {
      b.name = "CPU";
      b.namedBy = "cpu";
    }
    if (b.registry === null) {
      b.registry = "CPU";
      b.known = true;
      b.measures = backendMeasures("CPU");
    }
  }
  for (const b of backends) b.unseen = unseenOf(b);
}

/** Whether a backend computes a split before returning it: one profinfer knows to (CPU, BLAS). */
function computesBeforeReturn(b: Backend): boolean {
  return b.registry === "CPU" || b.registry === "BLAS";
}

/**
 * When the host saw each split complete: at its return for a backend that computes before
 * returning; else at the end of the first wait for its backend that starts after it and before
 * the backend is given another split.
 */
function completeSplits(
  splits: readonly GraphRun[],
  threadEvents: readonly [number, readonly ThreadBackendEvent[]][],
  byAddress: ReadonlyMap<bigint, Backend>,
): void {
  const waitsByBackend = new Map<Backend, BackendInterval[]>();
  for (const [tid, list] of threadEvents) {
    const syncs = pairOnThread<SyncEvent, SyncEvent>(
      list.filter(
        (e): e is SyncEvent => e.type === EventType.SYNC_BEGIN || e.type === EventType.SYNC_END,
      ),
      EventType.SYNC_BEGIN,
      EventType.SYNC_END,
    );
    for (const { begin, end } of syncs) {
      const b = byAddress.get(begin.backend);
      if (!b || !end) continue;
      pushTo(waitsByBackend, b, { kind: "wait", tid, startNs: begin.ts, endNs: end.ts, node: -1 });
    }
  }
  for (const list of waitsByBackend.values()) list.sort((a, b) => (a.startNs < b.startNs ? -1 : 1));
  const splitsByBackend = new Map<Backend, GraphRun[]>();
  for (const g of splits) pushTo(splitsByBackend, g.split!.backend, g);
  for (const [b, list] of splitsByBackend) {
    const waits = waitsByBackend.get(b) ?? [];
    list.forEach((g, i) => {
      const s = g.split!;
      if (computesBeforeReturn(b)) return;
      const nextStart = list[i + 1]?.startNs ?? null;
      const first = waits.find(
        (w) => w.startNs >= g.startNs && (nextStart === null || w.startNs < nextStart),
      );
      if (!first) {
        s.completion = "unobserved";
        return;
      }
      s.completion = "synchronized";
      s.completeNs = first.endNs > g.endNs ? first.endNs : g.endNs;
      s.waits = waits.filter((w) => w.startNs >= g.startNs && w.endNs <= s.completeNs);
    });
  }
}

const ROLE_KIND: Record<BackendCall["role"], BackendInterval["kind"]> = {
  op: "op",
  submit: "submit",
  wait: "fence",
  record: "record",
};

/**
 * A known backend's own functions: each call goes to the split of the same process whose host
 * side contains it (a BLAS node or a recorded Vulkan node inside the split's submission, a fence
 * wait inside the host's wait for it). BLAS nodes become the split's operator runs.
 */
function attachBackendCalls(
  splits: readonly GraphRun[],
  threadEvents: readonly [number, readonly ThreadBackendEvent[]][],
  table: readonly BackendCall[],
): void {
  if (table.length === 0) return;
  const ordered = [...splits].sort((a, b) => (a.startNs < b.startNs ? -1 : 1));
  const opCalls = new Map<
    GraphRun,
    { dst: bigint; tid: number; startNs: bigint; endNs: bigint }[]
  >();
  for (const [tid, list] of threadEvents) {
    const calls = pairOnThread<BackendCallEvent, BackendCallEvent>(
      list.filter(
        (e): e is BackendCallEvent =>
          e.type === EventType.BACKEND_CALL_BEGIN || e.type === EventType.BACKEND_CALL_END,
      ),
      EventType.BACKEND_CALL_BEGIN,
      EventType.BACKEND_CALL_END,
      (e) => String((e as BackendCallEvent).call),
    );
    for (const { begin, end } of calls) {
      const entry = table[begin.call];
      if (!entry || !end) continue;
      const split = splitHolding(ordered, begin, entry.backend);
      if (!split) continue;
      const kind = ROLE_KIND[entry.role];
      const node = kind === "record" ? Number(BigInt.asIntN(32, begin.args[2])) : -1;
      split.split!.calls.push({ kind, tid, startNs: begin.ts, endNs: end.ts, node });
      if (kind === "op")
        pushTo(opCalls, split, { dst: begin.args[1], tid, startNs: begin.ts, endNs: end.ts });
    }
  }
  for (const [g, calls] of opCalls) opRunsFromCalls(g, calls);
}

/** The split of the call's process and backend whose host side (submission to completion) holds it. */
function splitHolding(
  ordered: readonly GraphRun[],
  call: BackendCallEvent,
  registry: string,
): GraphRun | null {
  let found: GraphRun | null = null;
  for (const g of ordered) {
    if (g.startNs > call.ts) break;
    if (g.tgid !== call.tgid || g.split!.backend.registry !== registry) continue;
    if (call.ts <= g.split!.completeNs || (g.tid === call.tid && call.ts <= g.endNs)) found = g;
  }
  return found;
}

/**
 * The calls a node of a BLAS split makes: one cblas_sgemm per matrix of a MUL_MAT (its ne[2] x
 * ne[3]), one for an OUT_PROD (ggml-blas's loops).
 */
function callsOfNode(ne: readonly number[], opName: string): number {
  return opName === "MUL_MAT" ? Math.max(1, ne[2]!) * Math.max(1, ne[3]!) : 1;
}

/**
 * A split whose backend computes one node after the other on its thread (BLAS): its nodes take
 * the calls in order; each ends with its last call and starts where the node before it ended
 * (the split's start for the first), so dequantising its weights counts as its time.
 */
function opRunsFromCalls(
  g: GraphRun,
  calls: readonly { dst: bigint; tid: number; startNs: bigint; endNs: bigint }[],
): void {
  const fail = problemsOf(g);
  const dag = startReconstruction(g, fail);
  if (!dag) return;
  const ordered = [...calls].sort((a, b) => (a.startNs < b.startNs ? -1 : 1));
  const ops: OpRun[] = [];
  let at = 0;
  let from = g.startNs;
  for (const i of dag.computed) {
    const op = newOpRun(dag, [i]);
    const t = dag.nodes[i]!.tensor;
    const mine = ordered.slice(at, at + callsOfNode(t.ne, t.opName));
    at += mine.length;
    const last = mine.at(-1);
    if (last) {
      op.threads.push({
        tid: last.tid,
        ith: 0,
        startNs: from,
        endNs: last.endNs,
        visible: true,
        startInferred: true,
        barrierStartNs: null,
        barrierEndNs: null,
        barrierWaitNs: 0,
        innerBarrierWaitNs: 0,
        offCpuNs: 0,
        preemptedNs: 0,
      });
      from = last.endNs;
    }
    ops.push(op);
  }
  if (at < ordered.length) fail(`${ordered.length - at} BLAS calls were left over by its nodes`);
  finishGraph(g, ops, [{ tid: g.tid, ith: 0 }], fail);
}

/** The splits of a scheduler graph run, in order. */
export function splitsOf(sched: GraphRun, graphRuns: readonly GraphRun[]): GraphRun[] {
  return graphRuns.filter((g) => g.split?.sched === sched);
}

export type { SplitInfo };
