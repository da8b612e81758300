// SPDX-License-Identifier: Apache-2.0
// Layered (Sugiyama) layout of a DagModel with dagre: ranks follow the data flow, crossings are
// reduced, edges routed around nodes. Node sizes come from their labels.
import { Graph, layout } from "@dagrejs/dagre";
import type { DagModel } from "../../data/dagModel.js";

export interface NodeBox {
  id: string;
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface EdgePath {
  id: string;
  points: { x: number; y: number }[];
}

export interface DagLayout {
  nodes: Map<string, NodeBox>;
  edges: Map<string, EdgePath>;
  width: number;
  height: number;
}

export const NODE_HEIGHT = 38;
const CHAR_WIDTH = 6.6;

export function nodeWidth(label: string, op: string): number {
  return Math.max(72, Math.ceil(Math.max(label.length, op.length) * CHAR_WIDTH) + 20);
}

export function layoutDag(model: DagModel, rankdir: "TB" | "LR"): DagLayout {
  const g = new Graph({ multigraph: false });
  g.setGraph({ rankdir, nodesep: 18, ranksep: 34, edgesep: 8, marginx: 12, marginy: 12 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const n of model.nodes)
    g.setNode(n.id, { width: nodeWidth(n.label, n.op), height: NODE_HEIGHT });
  for (const e of model.edges) g.setEdge(e.source, e.target, { weight: e.loop ? 0 : 1 });
  layout(g);
  const nodes = new Map<string, NodeBox>();
  for (const n of model.nodes) {
    const v = g.node(n.id);
    nodes.set(n.id, { id: n.id, x: v.x, y: v.y, width: v.width, height: v.height });
  }
  const edges = new Map<string, EdgePath>();
  for (const e of model.edges) {
    const v = g.edge(e.source, e.target);
    edges.set(e.id, {
      id: e.id,
      points: (v?.points ?? []).map((p: { x: number; y: number }) => ({ x: p.x, y: p.y })),
    });
  }
  const graph = g.graph();
  return { nodes, edges, width: graph.width ?? 0, height: graph.height ?? 0 };
}
