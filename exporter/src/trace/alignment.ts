// SPDX-License-Identifier: Apache-2.0
// A graph's operators from operator function and barrier probes: per-thread timelines of one
// graph run, mapped onto its computed nodes.
//
// ggml's CPU loop (ggml_graph_compute_thread) walks the nodes, skips empty ops and nodes without
// the COMPUTE flag, computes each remaining node (or a fused group), and calls ggml_barrier after
// it unless it was the last node; after the loop every thread passes one more barrier. Releases
// before it skipped empty ops (October 2024's b3889) passed a barrier after every node, views
// included, and none after the loop: which of the two a graph ran is read from its threads'
// barrier counts, and the barriers of empty nodes are then waits of the step before them. Some op
// implementations pass barriers of their own (mul_mat, mul_mat_id): inside a probed op they nest
// inside its OP events, inside an unprobed op they cut its time into several segments. So, per
// thread, the barriers outside OP events cut the timeline into segments; a segment with an OP event
// is an anchor naming its node; the segments between two anchors belong to the computed nodes
// between them, and a small cost model (docs/trace-model.md) decides which node took several
// segments (inner barriers), which took none (fused into the one before it) and which is missing.
import { consumes } from "./dag.js";
import { byIth, finishGraph, newOpRun, problemsOf, startReconstruction } from "./opRuns.js";
import type { ThreadItem } from "./threadItems.js";
import type { Dag, GraphRun, OpRun, OpThreadRun } from "./types.js";

/**
 * Barriers that op implementations pass inside themselves, in the pinned ggml (mul_mat converts
 * src1 then waits; mul_mat_id groups rows then waits; the repacked-weight paths do the same). Used
 * for ops never seen probed; probed instances in the recording override it.
 */
const KNOWN_INNER_BARRIERS: ReadonlyMap<string, number> = new Map([
  ["MUL_MAT", 1],
  ["MUL_MAT_ID", 1],
]);

/** Consecutive ops ggml's CPU backend fuses into one step (ggml_cpu_try_fuse_ops). */
const FUSION_PATTERNS: readonly (readonly [string, string])[] = [["RMS_NORM", "MUL"]];

/** Inner barriers per op name: the most common count in probed instances, else the known one. */
export type InnerBarrierExpectations = (opName: string) => number;

export function innerBarrierExpectations(
  itemsByGraph: ReadonlyMap<GraphRun, ReadonlyMap<number, readonly ThreadItem[]>>,
): InnerBarrierExpectations {
  const histograms = new Map<string, Map<number, number>>();
  for (const [g, perThread] of itemsByGraph) {
    const dag = g.snapshot?.dag;
    if (!dag) continue;
    for (const items of perThread.values()) {
      for (const it of items) {
        if (!it.op || it.broken) continue;
        const node = dag.nodeByAddr.get(it.dst);
        if (node === undefined) continue;
        const name = dag.nodes[node]!.tensor.opName;
        let h = histograms.get(name);
        if (!h) histograms.set(name, (h = new Map()));
        h.set(it.innerBarriers, (h.get(it.innerBarriers) ?? 0) + 1);
      }
    }
  }
  const learned = new Map<string, number>();
  for (const [name, h] of histograms) {
    let best = 0;
    let bestCount = -1;
    for (const [count, n] of [...h].sort((a, b) => a[0] - b[0])) {
      if (n > bestCount) {
        best = count;
        bestCount = n;
      }
    }
    learned.set(name, best);
  }
  return (opName) => learned.get(opName) ?? KNOWN_INNER_BARRIERS.get(opName) ?? 0;
}

/** The time between two top-level barriers of a thread (or before the first one). */
interface Segment {
  startNs: bigint;
  /** the start is the graph's start: the thread's real start was not seen */
  inferredStart: boolean;
  endNs: bigint;
  ops: ThreadItem[];
  /** the barrier that ends it; null for a last segment without one */
  barrier: ThreadItem | null;
  /** counter readings at its start (the previous barrier's end); null when not read there */
  startCounters: number[] | null;
}

function segmentsOf(items: readonly ThreadItem[], graphStart: bigint): Segment[] {
  const segments: Segment[] = [];
  if (!items.some((it) => !it.op)) {
    // No barrier events (ggml_barrier not probed): each probed op is a segment of its own.
    for (const it of items) {
      const endNs = it.endNs ?? it.beginNs;
      segments.push({
        startNs: it.beginNs,
        inferredStart: false,
        endNs,
        ops: [it],
        barrier: null,
        startCounters: it.beginCounters,
      });
    }
    return segments;
  }
  let cur: Segment = {
    startNs: graphStart,
    inferredStart: true,
    endNs: graphStart,
    ops: [],
    barrier: null,
    startCounters: null,
  };
  for (const it of items) {
    if (it.op) {
      cur.ops.push(it);
      continue;
    }
    cur.endNs = it.beginNs;
    cur.barrier = it;
    segments.push(cur);
    const start = it.endNs ?? it.beginNs;
    cur = {
      startNs: start,
      inferredStart: false,
      endNs: start,
      ops: [],
      barrier: null,
      startCounters: it.endNs === null ? null : it.endCounters,
    };
  }
  // After the loop's final barrier a thread only returns: keep that part only if it computed.
  const last = cur.ops[cur.ops.length - 1];
  if (last) {
    cur.endNs = last.endNs ?? last.beginNs;
    segments.push(cur);
  }
  return segments;
}

function barrierNs(s: Segment): number {
  const b = s.barrier;
  return b && b.endNs !== null && b.endNs > b.beginNs ? Number(b.endNs - b.beginNs) : 0;
}

/**
 * Nodes (by position in the loop's steps: dag.computed, or every node where the loop passed a
 * barrier after each) one thread computed in one step.
 */
interface ThreadGroup {
  positions: number[];
  segments: Segment[];
  /** segments after the last computed step (trailing empty nodes) whose barriers it waited in */
  tail: Segment[];
}

interface ThreadAlignment {
  tid: number;
  ith: number | null;
  groups: ThreadGroup[];
  cost: number;
  anomalies: number;
}

interface GapNode {
  expect: number;
  /** cost of computing it in the previous node's step; Infinity when that cannot be fusion */
  fuseCost: number;
  /**
   * a node; or the pseudo node for what follows the last computed node (trailing empty nodes:
   * "tail"), or for a barrier before the loop's first node ("head": OpenMP's own, at the end of
   * the `omp single` that starts ggml's parallel region, seen where GOMP_barrier is probed)
   */
  kind: "node" | "head" | "tail";
}

const HEAD: GapNode = { expect: 0, fuseCost: Infinity, kind: "head" };
const TAIL: GapNode = { expect: 0, fuseCost: Infinity, kind: "tail" };

const MISSING_COST = 4;
const DP_LIMIT = 2_000_000;

/**
 * Assign `u` segments, in order, to the gap's nodes. Per node: k >= 1 segments of its own (cost
 * |k - 1 - expected inner barriers|), 0 (fused into the previous step, or nothing for the tail
 * pseudo node), or -1 (missing, cost MISSING_COST). The head pseudo node takes none or one, at
 * no cost. Minimum total cost; ties keep the earlier, simpler choice.
 */
function solveGap(
  nodes: readonly GapNode[],
  u: number,
  prevPresent: boolean,
): { take: number[]; cost: number } {
  const g = nodes.length;
  if ((g + 1) * (u + 1) * (u + 1) > DP_LIMIT) return greedyGap(g, u);
  const width = (u + 1) * 2;
  const cost = new Float64Array((g + 1) * width).fill(Infinity);
  const choice = new Int32Array((g + 1) * width);
  const from = new Int32Array((g + 1) * width).fill(-1);
  cost[prevPresent ? 1 : 0] = 0;
  for (let i = 0; i < g; i++) {
    const node = nodes[i]!;
    for (let j = 0; j <= u; j++) {
      for (let p = 0; p < 2; p++) {
        const at = i * width + j * 2 + p;
        const base = cost[at]!;
        if (base === Infinity) continue;
        const relax = (nj: number, np: number, c: number, k: number): void => {
          const to = (i + 1) * width + nj * 2 + np;
          if (c < cost[to]!) {
            cost[to] = c;
            choice[to] = k;
            from[to] = at;
          }
        };
        if (node.kind === "head") {
          relax(j, p, base, 0);
          if (j < u) relax(j + 1, p, base, 1);
          continue;
        }
        for (let k = 1; j + k <= u; k++) {
          const c = node.kind === "tail" ? k - 1 : Math.abs(k - 1 - node.expect);
          relax(j + k, 1, base + c, k);
        }
        if (node.kind === "tail") relax(j, p, base, 0);
        else {
          if (p === 1 && node.fuseCost !== Infinity) relax(j, 1, base + node.fuseCost, 0);
          relax(j, 0, base + MISSING_COST, -1);
        }
      }
    }
  }
  const end0 = g * width + u * 2;
  const end = cost[end0 + 1]! < cost[end0]! ? end0 + 1 : end0;
  if (cost[end] === Infinity) return greedyGap(g, u);
  const take = new Array<number>(g);
  for (let i = g, at = end; i > 0; i--) {
    take[i - 1] = choice[at]!;
    at = from[at]!;
  }
  return { take, cost: cost[end]! };
}

function greedyGap(g: number, u: number): { take: number[]; cost: number } {
  const take = new Array<number>(g).fill(-1);
  for (let i = 0; i < Math.min(g, u); i++) take[i] = 1;
  if (u > g && g > 0) take[g - 1] = 1 + u - g;
  return { take, cost: MISSING_COST * Math.abs(u - g) };
}

function alignThread(
  tid: number,
  ith: number | null,
  segments: Segment[],
  dag: Dag,
  steps: LoopSteps,
  gapNode: (pos: number) => GapNode,
  hasTail: boolean,
): ThreadAlignment {
  const { posOfNode } = steps;
  const m = steps.nodes.length;
  const positionOf = (addr: bigint): number => {
    const node = dag.nodeByAddr.get(addr);
    return node === undefined ? -1 : posOfNode[node]!;
  };
  let anomalies = 0;
  let cost = 0;

  // Anchors: segments whose OP events name their node(s), in increasing node order.
  const anchors: { segment: number; positions: number[] }[] = [];
  let lastPos = -1;
  segments.forEach((s, i) => {
    const first = s.ops[0];
    if (!first) return;
    const p0 = positionOf(first.dst);
    if (p0 <= lastPos) {
      anomalies++;
      return;
    }
    const positions = [p0];
    for (const op of s.ops.slice(1)) {
      const p = positionOf(op.dst);
      const lastOfGroup = positions[positions.length - 1]!;
      if (p === lastOfGroup) continue;
      if (p === lastOfGroup + 1) positions.push(p);
      else anomalies++;
    }
    anchors.push({ segment: i, positions });
    lastPos = positions[positions.length - 1]!;
  });
  anchors.push({ segment: segments.length, positions: [m] });

  const groups: ThreadGroup[] = [];
  let current: ThreadGroup | null = null;
  let prevPos = -1;
  let prevSegment = -1;
  for (const anchor of anchors) {
    const isEnd = anchor.segment === segments.length;
    const gapSegments = segments.slice(prevSegment + 1, anchor.segment);
    const nodes: GapNode[] = prevSegment === -1 ? [HEAD] : [];
    const firstPos = prevPos + 1 - nodes.length;
    for (let p = prevPos + 1; p < anchor.positions[0]!; p++) nodes.push(gapNode(p));
    if (isEnd && hasTail) nodes.push(TAIL);
    if (nodes.length === 0 || (nodes.length === 1 && nodes[0] === HEAD && gapSegments.length > 1)) {
      if (gapSegments.length > 0) {
        // Barriers no node explains: fold them into the step before.
        anomalies++;
        if (current) current.segments.push(...gapSegments);
      }
    } else {
      const { take, cost: c } = solveGap(nodes, gapSegments.length, current !== null);
      cost += c;
      let next = 0;
      for (let i = 0; i < take.length; i++) {
        const k = take[i]!;
        const pos = firstPos + i;
        if (nodes[i]!.kind === "head") {
          // before the loop: no step's
          next += k;
        } else if (nodes[i]!.kind === "tail") {
          if (k > 0 && current) current.tail.push(...gapSegments.slice(next, next + k));
          next += Math.max(k, 0);
        } else if (k > 0) {
          current = { positions: [pos], segments: gapSegments.slice(next, next + k), tail: [] };
          groups.push(current);
          next += k;
        } else if (k === 0 && current) {
          current.positions.push(pos);
        } else {
          current = null;
        }
      }
    }
    if (isEnd) break;
    current = { positions: anchor.positions, segments: [segments[anchor.segment]!], tail: [] };
    groups.push(current);
    prevPos = anchor.positions[anchor.positions.length - 1]!;
    prevSegment = anchor.segment;
  }
  return { tid, ith, groups, cost, anomalies };
}

/** end - start per counter name; undefined when either reading is missing. */
function counterDeltas(
  names: readonly string[],
  start: number[] | null,
  end: number[] | null,
): Record<string, number> | undefined {
  if (names.length === 0 || !start || !end) return undefined;
  const out: Record<string, number> = {};
  names.forEach((name, i) => (out[name] = Math.max(0, (end[i] ?? 0) - (start[i] ?? 0))));
  return out;
}

function threadRunOf(
  group: ThreadGroup,
  tid: number,
  ith: number | null,
  counterNames: readonly string[],
): OpThreadRun {
  const first = group.segments[0]!;
  const last = group.segments[group.segments.length - 1]!;
  const firstOp = first.ops[0];
  const lastOp = last.ops[last.ops.length - 1];
  const startNs = firstOp ? firstOp.beginNs : first.startNs;
  let endNs = lastOp ? (lastOp.endNs ?? last.endNs) : last.endNs;
  if (endNs < startNs) endNs = startNs;
  let inner = 0;
  let visible = false;
  group.segments.forEach((s, i) => {
    for (const op of s.ops) inner += op.innerBarrierNs;
    if (s.ops.length > 0) visible = true;
    if (i < group.segments.length - 1) inner += barrierNs(s);
  });
  const startCounters = firstOp ? firstOp.beginCounters : first.startCounters;
  const endCounters = lastOp ? (lastOp.endCounters ?? null) : (last.barrier?.beginCounters ?? null);
  const counters = counterDeltas(counterNames, startCounters, endCounters);
  let wait = barrierNs(last);
  let barrierEnd = last.barrier?.endNs ?? null;
  for (const t of group.tail) {
    wait += barrierNs(t);
    if (t.barrier?.endNs != null) barrierEnd = t.barrier.endNs;
  }
  return {
    tid,
    ith,
    startNs,
    endNs,
    visible,
    startInferred: !firstOp && first.inferredStart,
    barrierStartNs: last.barrier?.beginNs ?? null,
    barrierEndNs: barrierEnd,
    barrierWaitNs: wait,
    innerBarrierWaitNs: inner,
    offCpuNs: 0,
    preemptedNs: 0,
    ...(counters ? { counters } : {}),
  };
}

function mergeInto(target: OpThreadRun, more: OpThreadRun): void {
  if (target.counters && more.counters) {
    for (const [name, v] of Object.entries(more.counters))
      target.counters[name] = (target.counters[name] ?? 0) + v;
  } else delete target.counters;
  if (more.startNs < target.startNs) {
    target.startNs = more.startNs;
    target.startInferred = more.startInferred;
  }
  if (more.endNs > target.endNs) {
    target.endNs = more.endNs;
    target.barrierStartNs = more.barrierStartNs;
    target.barrierEndNs = more.barrierEndNs;
  }
  target.visible ||= more.visible;
  target.barrierWaitNs += more.barrierWaitNs;
  target.innerBarrierWaitNs += more.innerBarrierWaitNs;
}

/** The nodes the compute loop passed a barrier after, in order, and each node's place among them. */
interface LoopSteps {
  nodes: readonly number[];
  posOfNode: Int32Array;
  /** the loop passed a barrier after every node, empty ones included, and none after the loop */
  everyNode: boolean;
}

/**
 * Whether the threads' top-level barriers are better explained by a barrier after every node
 * (empty ones included) than by one after each computed node: per thread, a computed node
 * passes one barrier, plus the inner barriers of its op where no OP event of it holds them.
 */
function barrierAfterEveryNode(
  dag: Dag,
  itemsByTid: ReadonlyMap<number, readonly ThreadItem[]>,
  expectInner: InnerBarrierExpectations,
): boolean {
  const empty = dag.nodes.length - dag.computed.length;
  if (empty === 0) return false;
  let skippingOff = 0;
  let everyOff = 0;
  for (const items of itemsByTid.values()) {
    const barriers = items.filter((it) => !it.op).length;
    const probed = new Set(items.filter((it) => it.op).map((it) => it.dst));
    let expected = 0;
    for (const node of dag.computed) {
      const tensor = dag.nodes[node]!.tensor;
      expected += 1 + (probed.has(tensor.addr) ? 0 : expectInner(tensor.opName));
    }
    skippingOff += Math.abs(barriers - expected);
    everyOff += Math.abs(barriers - expected - empty);
  }
  return everyOff < skippingOff;
}

function loopSteps(dag: Dag, everyNode: boolean): LoopSteps {
  const nodes = everyNode ? dag.nodes.map((n) => n.index) : dag.computed;
  const posOfNode = new Int32Array(dag.nodes.length).fill(-1);
  nodes.forEach((node, p) => (posOfNode[node] = p));
  return { nodes, posOfNode, everyNode };
}

/**
 * An alignment over every node, as one over the computed nodes: an empty node's barrier is a
 * wait of the step before it (its tail), and it is no operator.
 */
function withoutEmptySteps(a: ThreadAlignment, dag: Dag, steps: LoopSteps): void {
  const computedPos = new Int32Array(dag.nodes.length).fill(-1);
  dag.computed.forEach((node, p) => (computedPos[node] = p));
  const groups: ThreadGroup[] = [];
  for (const group of a.groups) {
    const positions = group.positions
      .map((p) => computedPos[steps.nodes[p]!]!)
      .filter((p) => p >= 0);
    if (positions.length > 0) groups.push({ ...group, positions });
    else groups.at(-1)?.tail.push(...group.segments, ...group.tail);
  }
  a.groups = groups;
}

/** What the reconstruction of one graph knows of the whole run. */
export interface ReconstructContext {
  expectInner: InnerBarrierExpectations;
  /** ggml worker index of each thread, from all its OP events */
  ithByTid: ReadonlyMap<number, number>;
  /** events may be missing (drops, a cut-short file): a node without a segment of its own is
   * then missing, unless it completes a known fusion pattern */
  lossPossible: boolean;
  /** names of the counters the events carry readings of (Run.counters), in order */
  counterNames: readonly string[];
}

/**
 * Fill `g.ops` and `g.threads` from its threads' top-level items: one OpRun per computed node or
 * fused group, every computed node covered exactly once, `g.complete` false when anything had to
 * be given up.
 */
export function reconstructGraph(
  g: GraphRun,
  itemsByTid: ReadonlyMap<number, readonly ThreadItem[]>,
  context: ReconstructContext,
): void {
  const { expectInner, ithByTid } = context;
  const barrierless = [...itemsByTid.values()].some((items) => !items.some((it) => !it.op));
  const lossPossible = context.lossPossible || !g.complete || barrierless;
  const fail = problemsOf(g);
  const dag = startReconstruction(g, fail);
  if (!dag) return;
  if (barrierless && itemsByTid.size > 0) {
    fail("a thread has no barrier events: its unprobed operators cannot be timed");
  }
  const computed = dag.computed;
  const m = computed.length;
  const steps = loopSteps(dag, barrierAfterEveryNode(dag, itemsByTid, expectInner));
  const stepNodes = steps.nodes;
  const hasTail = !steps.everyNode && m > 0 && computed[m - 1]! < dag.nodes.length - 1;
  const gapNodes = new Array<GapNode | undefined>(stepNodes.length);
  const gapNode = (p: number): GapNode => {
    let node = gapNodes[p];
    if (!node) {
      const { tensor, computed: isComputed } = dag.nodes[stepNodes[p]!]!;
      let fuseCost = Infinity;
      const prev = p > 0 ? dag.nodes[stepNodes[p - 1]!]! : null;
      // an empty node passed its own barrier: nothing fuses with it
      if (isComputed && prev?.computed && consumes(dag, stepNodes[p]!, prev.index)) {
        const prevOp = prev.tensor.opName;
        if (FUSION_PATTERNS.some(([a, b]) => a === prevOp && b === tensor.opName)) fuseCost = 0.2;
        else if (!lossPossible) fuseCost = 1.5;
      }
      node = { expect: isComputed ? expectInner(tensor.opName) : 0, fuseCost, kind: "node" };
      gapNodes[p] = node;
    }
    return node;
  };

  const alignments: ThreadAlignment[] = [];
  let broken = 0;
  for (const [tid, items] of [...itemsByTid].sort((a, b) => a[0] - b[0])) {
    const ith =
      items.find((it) => it.op && it.ith >= 0)?.ith ??
      ithByTid.get(tid) ??
      (tid === g.tid ? 0 : null);
    for (const it of items) if (it.broken) broken++;
    const segments = segmentsOf(items, g.startNs);
    const alignment = alignThread(tid, ith, segments, dag, steps, gapNode, hasTail);
    if (steps.everyNode) withoutEmptySteps(alignment, dag, steps);
    alignments.push(alignment);
  }
  if (broken > 0) fail(`${broken} operator/barrier intervals lost a begin or end event`);
  alignments.sort(byIth);

  // The grouping of the thread with the fewest problems is the graph's grouping.
  const reference = [...alignments].sort(
    (a, b) => a.anomalies - b.anomalies || a.cost - b.cost || byIth(a, b),
  )[0];
  const opAt = new Array<OpRun | undefined>(m);
  const newOp = (positions: number[]): OpRun => {
    const op = newOpRun(
      dag,
      positions.map((p) => computed[p]!),
    );
    for (const p of positions) opAt[p] = op;
    return op;
  };
  for (const group of reference?.groups ?? []) newOp(group.positions);
  for (let p = 0; p < m; p++) if (!opAt[p]) newOp([p]);
  const ops = [...new Set(opAt as OpRun[])].sort((a, b) => a.nodeIndex - b.nodeIndex);

  let disagreements = 0;
  let anomalies = 0;
  for (const a of alignments) {
    anomalies += a.anomalies;
    const mine = new Map<OpRun, OpThreadRun>();
    for (const group of a.groups) {
      const op = opAt[group.positions[0]!]!;
      if (group.positions.some((p) => opAt[p] !== op)) disagreements++;
      const run = threadRunOf(group, a.tid, a.ith, context.counterNames);
      const have = mine.get(op);
      if (have) mergeInto(have, run);
      else {
        mine.set(op, run);
        op.threads.push(run);
      }
    }
  }
  if (anomalies > 0) fail(`${anomalies} operator events did not fit the graph's node order`);
  if (disagreements > 0) fail(`threads disagree on ${disagreements} fused steps`);

  finishGraph(g, ops, alignments, fail);
}
