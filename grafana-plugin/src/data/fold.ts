// SPDX-License-Identifier: Apache-2.0
// Folding repeated transformer blocks: every layer's operators are matched to the same
// operators of the other layers (tensor name without its layer suffix, op, and the how-many-th
// such operator of its layer), and each match becomes one node carrying an aggregate of its
// members' metrics. Unfolding is the original model: folding never changes it.
import { METRIC_BACKEND, type DagEdgeModel, type DagModel, type DagNodeModel } from "./dagModel.js";

export type Aggregate = "mean" | "sum" | "max" | "min";
export const AGGREGATES: Aggregate[] = ["mean", "sum", "max", "min"];

function aggregate(values: number[], how: Aggregate): number {
  if (values.length === 0) return 0;
  switch (how) {
    case "sum":
      return values.reduce((a, b) => a + b, 0);
    case "max":
      return Math.max(...values);
    case "min":
      return Math.min(...values);
    case "mean":
      return values.reduce((a, b) => a + b, 0) / values.length;
  }
}

/** "attn_norm-3" -> "attn_norm", "cache_k_l3 (view)" -> "cache_k (view)", "blk.3.x" -> "blk.x" */
export function blockName(label: string, layer: number): string {
  if (ANONYMOUS.test(label)) return "node";
  return label
    .replace(new RegExp(`-${layer}(?=$| \\()`), "")
    .replace(new RegExp(`_l${layer}(?=$| \\()`), "")
    .replace(new RegExp(`^blk\\.${layer}\\.`), "blk.");
}

const ANONYMOUS = /^node_\d+$/;

/**
 * The layer of each node for folding: its own, or for a tensor llama.cpp left unnamed
 * ("node_140", such as flash_attn_ext's output) the layer of all its producers when they agree.
 */
export function effectiveLayers(model: DagModel): Map<string, number | null> {
  const producers = new Map<string, string[]>();
  for (const e of model.edges)
    producers.set(e.target, [...(producers.get(e.target) ?? []), e.source]);
  const layer = new Map<string, number | null>();
  for (const n of [...model.nodes].sort((a, b) => a.order - b.order)) {
    let l = n.layer;
    if (l === null && ANONYMOUS.test(n.label)) {
      const from = new Set((producers.get(n.id) ?? []).map((p) => layer.get(p) ?? null));
      if (from.size === 1) l = [...from][0] ?? null;
    }
    layer.set(n.id, l);
  }
  return layer;
}

/** The layers that repeat: at least two layers with operators. */
export function foldableLayers(model: DagModel): number[] {
  const layers = new Set<number>();
  for (const n of model.nodes) if (n.layer !== null) layers.add(n.layer);
  return layers.size >= 2 ? [...layers].sort((a, b) => a - b) : [];
}

export function foldLayers(model: DagModel, how: Aggregate): DagModel {
  const layers = foldableLayers(model);
  if (layers.length === 0) return model;
  const first = layers[0]!;
  const last = layers[layers.length - 1]!;
  const groupOf = new Map<string, string>();
  const groups = new Map<string, DagNodeModel[]>();
  const seen = new Map<string, number>();
  const layerOf = effectiveLayers(model);
  for (const n of model.nodes) {
    const layer = layerOf.get(n.id) ?? null;
    if (layer === null) {
      groupOf.set(n.id, n.id);
      continue;
    }
    const base = `${blockName(n.label, layer)}|${n.op}`;
    const k = `${layer}|${base}`;
    const occurrence = seen.get(k) ?? 0;
    seen.set(k, occurrence + 1);
    const key = `block:${base}#${occurrence}`;
    groupOf.set(n.id, key);
    const list = groups.get(key);
    if (list) list.push(n);
    else groups.set(key, [n]);
  }
  const nodes: DagNodeModel[] = [];
  const emitted = new Set<string>();
  for (const n of model.nodes) {
    const key = groupOf.get(n.id)!;
    if (emitted.has(key)) continue;
    emitted.add(key);
    if (key === n.id) {
      nodes.push(n);
      continue;
    }
    const members = groups.get(key)!;
    const metricIds = new Set(members.flatMap((m) => Object.keys(m.metrics)));
    const metrics: Record<string, number> = {};
    for (const id of metricIds)
      metrics[id] = aggregate(
        members.flatMap((m) => (m.metrics[id] === undefined ? [] : [m.metrics[id]!])),
        how,
      );
    // a category is not aggregated: a block keeps its backend where its layers agree
    const backends = new Set(members.map((m) => m.backend));
    if (backends.size > 1) delete metrics[METRIC_BACKEND.id];
    else if (n.metrics[METRIC_BACKEND.id] !== undefined)
      metrics[METRIC_BACKEND.id] = n.metrics[METRIC_BACKEND.id]!;
    const label = blockName(n.label, layerOf.get(n.id)!);
    nodes.push({
      id: key,
      label,
      op: n.op,
      kind: n.kind,
      layer: null,
      backend: backends.size === 1 ? n.backend : null,
      order: n.order,
      metrics,
      details: [
        ["block", label],
        ["op", n.op],
        ["layers", members.map((m) => layerOf.get(m.id)).join(", ")],
        ["aggregate", `${how} over ${members.length} layers`],
        ...n.details.filter(([k]) => k === "shape" || k === "type"),
      ],
      threads: [],
      members: members.map((m) => m.id),
    });
  }
  const edges: DagEdgeModel[] = [];
  const ids = new Set<string>();
  for (const e of model.edges) {
    const source = groupOf.get(e.source);
    const target = groupOf.get(e.target);
    if (source === undefined || target === undefined || source === target) continue;
    const ls = layerOf.get(e.source);
    const lt = layerOf.get(e.target);
    const loop = ls !== null && lt !== null && ls !== undefined && lt !== undefined && ls !== lt;
    // the input of layer 0 and the output of the last layer stay; the hand-over between two
    // repetitions becomes one dashed loop edge inside the block
    const id = `${source}->${target}`;
    if (ids.has(id)) continue;
    ids.add(id);
    edges.push(loop ? { id, source, target, loop } : { id, source, target });
  }
  return {
    ...model,
    title: `${model.title} (layers ${first}-${last} folded, ${how})`,
    nodes,
    edges,
    folded: true,
  };
}
