// SPDX-License-Identifier: Apache-2.0
// What both ways of reconstructing a graph's operators share (from step probes, steps.ts; from
// operator function and barrier probes, alignment.ts): starting on a described graph, making an
// OpRun for a computed node or fused group, and the per-op and per-thread totals at the end.
import type { Dag, GraphRun, GraphThread, OpRun } from "./types.js";

/** Marks the graph incomplete with a reason people can read. */
export type GraphProblem = (problem: string) => void;

export function problemsOf(g: GraphRun): GraphProblem {
  return (problem) => {
    g.complete = false;
    g.problems.push(problem);
  };
}

/**
 * The graph's DAG, once it is known to carry operators; null (and the problem noted) when its
 * description never arrived, so nothing can be reconstructed.
 */
export function startReconstruction(g: GraphRun, fail: GraphProblem): Dag | null {
  g.opsRecorded = true;
  const dag = g.snapshot?.dag;
  if (!dag) {
    g.opsRecorded = false;
    fail("its graph was never described (no GRAPH_NODES/TENSOR events for its signature)");
    return null;
  }
  if (!g.snapshot!.complete) fail("its graph description is incomplete (events lost)");
  return dag;
}

/** An operator run of the computed `nodes` (one, or a fused group in order), no thread yet. */
export function newOpRun(dag: Dag, nodes: readonly number[]): OpRun {
  const node = dag.nodes[nodes[0]!]!;
  const op: OpRun = {
    nodeIndex: node.index,
    tensor: node.tensor,
    label: nodes.map((i) => dag.nodes[i]!.tensor.opLabel).join("+"),
    sources: node.sources,
    visible: false,
    threads: [],
    missingTids: [],
    startNs: null,
    endNs: null,
    durationNs: 0,
  };
  if (nodes.length > 1) op.fusedWith = nodes.slice(1);
  return op;
}

type ThreadKey = { ith: number | null; tid: number };

/** Worker threads by ggml index, threads without one last, then by tid. */
export const byIth = (a: ThreadKey, b: ThreadKey): number =>
  (a.ith ?? Number.MAX_SAFE_INTEGER) - (b.ith ?? Number.MAX_SAFE_INTEGER) || a.tid - b.tid;

/** Per-op thread lists, op extents and per-thread totals of a reconstructed graph. */
export function finishGraph(
  g: GraphRun,
  ops: OpRun[],
  participants: readonly ThreadKey[],
  fail: GraphProblem,
): void {
  const tids = participants.map((a) => a.tid);
  let missing = 0;
  for (const op of ops) {
    op.threads.sort(byIth);
    const present = new Set(op.threads.map((t) => t.tid));
    op.missingTids = tids.filter((t) => !present.has(t));
    missing += op.missingTids.length;
    if (op.threads.length === 0) missing++;
    for (const t of op.threads) {
      op.visible ||= t.visible;
      if (op.startNs === null || t.startNs < op.startNs) op.startNs = t.startNs;
      if (op.endNs === null || t.endNs > op.endNs) op.endNs = t.endNs;
    }
    op.durationNs = op.startNs === null ? 0 : Number(op.endNs! - op.startNs);
  }
  if (tids.length === 0 && ops.length > 0) fail("no operator events were recorded for it");
  else if (missing > 0) fail(`${missing} operator intervals are missing on some thread`);
  if (g.nThreads > 0 && tids.length > 0 && tids.length < g.nThreads) {
    fail(`${g.nThreads} threads computed it, events of only ${tids.length} were recorded`);
  }
  g.ops = ops;

  const threads = new Map<number, GraphThread>();
  for (const a of participants) {
    threads.set(a.tid, {
      tid: a.tid,
      ith: a.ith,
      computeNs: 0,
      barrierWaitNs: 0,
      offCpuNs: 0,
      preemptedNs: 0,
    });
  }
  for (const op of ops) {
    for (const t of op.threads) {
      const gt = threads.get(t.tid)!;
      gt.computeNs += Number(t.endNs - t.startNs);
      gt.barrierWaitNs += t.barrierWaitNs;
    }
  }
  g.threads = [...threads.values()];
}
