// SPDX-License-Identifier: Apache-2.0
// The critical path of a DAG: the chain of data-dependent operators with the largest summed
// metric (duration by default). Nodes are visited in topological order (Kahn), so it also holds
// for node graph frames that come in any order; loop edges of a folded model are ignored.
import type { DagModel } from "./dagModel.js";

export interface CriticalPath {
  nodes: Set<string>;
  edges: Set<string>;
  total: number;
}

export function criticalPath(model: DagModel, metric = "duration"): CriticalPath {
  const indegree = new Map<string, number>();
  const out = new Map<string, { to: string; id: string }[]>();
  for (const n of model.nodes) {
    indegree.set(n.id, 0);
    out.set(n.id, []);
  }
  for (const e of model.edges) {
    if (e.loop || !indegree.has(e.source) || !indegree.has(e.target)) continue;
    indegree.set(e.target, indegree.get(e.target)! + 1);
    out.get(e.source)!.push({ to: e.target, id: e.id });
  }
  const weight = new Map(model.nodes.map((n) => [n.id, Math.max(0, n.metrics[metric] ?? 0)]));
  const best = new Map<string, number>();
  const via = new Map<string, { from: string; edge: string }>();
  const queue = model.nodes.filter((n) => indegree.get(n.id) === 0).map((n) => n.id);
  for (const id of queue) best.set(id, weight.get(id)!);
  for (let i = 0; i < queue.length; i++) {
    const id = queue[i]!;
    for (const { to, id: edge } of out.get(id)!) {
      const candidate = best.get(id)! + weight.get(to)!;
      if (!best.has(to) || candidate > best.get(to)!) {
        best.set(to, candidate);
        via.set(to, { from: id, edge });
      }
      const left = indegree.get(to)! - 1;
      indegree.set(to, left);
      if (left === 0) queue.push(to);
    }
  }
  let end: string | null = null;
  let total = -1;
  for (const [id, v] of best)
    if (v > total) {
      total = v;
      end = id;
    }
  const nodes = new Set<string>();
  const edges = new Set<string>();
  for (let id = end; id !== null;) {
    nodes.add(id);
    const step = via.get(id);
    if (!step) break;
    edges.add(step.edge);
    id = step.from;
  }
  return { nodes, edges, total: Math.max(total, 0) };
}
