// SPDX-License-Identifier: Apache-2.0
// A graph's operators from its step events (docs/trace-model.md, "Steps"): the compute loop's
// barrier call on each thread names the first node after each step, so which nodes every step
// computed is known exactly, fusion included.
import { byIth, finishGraph, newOpRun, problemsOf, startReconstruction } from "./opRuns.js";
import type { GraphRun, OpRun } from "./types.js";

/** A STEP event of one thread, inside one graph run. */
export interface StepItem {
  ts: bigint;
  /** the first node after the step; -1 at the final barrier */
  next: number;
}

/**
 * Fill `g.ops` and `g.threads` from step events (docs/trace-model.md, "Steps"): each thread's
 * step k covers the computed nodes from the previous step's `next` up to its own; it starts when
 * the previous barrier released (the last thread's arrival there) and ends at its barrier call.
 * Exact about which nodes each step computed, fusion included: no alignment is needed.
 */
export function reconstructFromSteps(
  g: GraphRun,
  stepsByTid: ReadonlyMap<number, readonly StepItem[]>,
  ithByTid: ReadonlyMap<number, number>,
): void {
  const fail = problemsOf(g);
  const dag = startReconstruction(g, fail);
  if (!dag) return;
  const n = dag.nodes.length;
  const computed = dag.computed;
  // computed nodes in [from, to)
  const lowerBound = (x: number): number => {
    let lo = 0;
    let hi = computed.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (computed[mid]! < x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  const nodesIn = (from: number, to: number): number[] =>
    computed.slice(lowerBound(from), lowerBound(to));

  // A barrier releases its threads when the last one arrives.
  const release = new Map<number, bigint>();
  let finals = 0;
  for (const steps of stepsByTid.values()) {
    for (const s of steps) {
      const r = release.get(s.next);
      if (r === undefined || s.ts > r) release.set(s.next, s.ts);
    }
    if (steps.some((s) => s.next < 0)) finals++;
  }
  const noFinalSite = finals === 0;
  if (noFinalSite)
    fail("the loop's final barrier was not probed: last operators end with the graph");

  const opByFirst = new Map<number, OpRun>();
  const newOp = (nodes: number[]): OpRun => {
    const op = newOpRun(dag, nodes);
    opByFirst.set(nodes[0]!, op);
    return op;
  };
  const participants: { tid: number; ith: number | null }[] = [];
  let anomalies = 0;
  let disagreements = 0;
  for (const [tid, steps] of [...stepsByTid].sort((a, b) => a[0] - b[0])) {
    const ith = ithByTid.get(tid) ?? (tid === g.tid ? 0 : null);
    participants.push({ tid, ith });
    let from = 0;
    let startNs = g.startNs;
    let inferred = true;
    const take = (to: number, endNs: bigint, barrierEnd: bigint | null): void => {
      const nodes = nodesIn(from, to);
      if (nodes.length === 0) return;
      const op = opByFirst.get(nodes[0]!) ?? newOp(nodes);
      if (op.label.split("+").length !== nodes.length) disagreements++;
      const end = endNs < startNs ? startNs : endNs;
      op.threads.push({
        tid,
        ith,
        startNs,
        endNs: end,
        visible: true,
        startInferred: inferred,
        barrierStartNs: barrierEnd === null ? null : end,
        barrierEndNs: barrierEnd,
        barrierWaitNs: barrierEnd !== null && barrierEnd > end ? Number(barrierEnd - end) : 0,
        innerBarrierWaitNs: 0,
        offCpuNs: 0,
        preemptedNs: 0,
      });
    };
    let ended = false;
    for (const s of [...steps].sort((a, b) => (a.ts < b.ts ? -1 : a.ts > b.ts ? 1 : 0))) {
      const to = s.next < 0 ? n : s.next;
      if (ended || to <= from || to > n) {
        anomalies++;
        continue;
      }
      const released = release.get(s.next)!;
      take(to, s.ts, released);
      from = to;
      startNs = released;
      inferred = false;
      if (s.next < 0) ended = true;
    }
    if (!ended && noFinalSite && from < n) take(n, g.endNs, null);
  }
  if (anomalies > 0) fail(`${anomalies} step events did not fit the graph's node order`);
  if (disagreements > 0) fail(`threads disagree on ${disagreements} fused steps`);
  const covered = new Set<number>();
  for (const op of opByFirst.values()) {
    covered.add(op.nodeIndex);
    for (const i of op.fusedWith ?? []) covered.add(i);
  }
  for (const node of computed) if (!covered.has(node)) newOp([node]);
  const ops = [...opByFirst.values()].sort((a, b) => a.nodeIndex - b.nodeIndex);
  participants.sort(byIth);
  finishGraph(g, ops, participants, fail);
}
