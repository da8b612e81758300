// SPDX-License-Identifier: Apache-2.0
// A nodes/edges frame pair as Grafana's node graph panel reads it (nodes: id, title, subtitle,
// mainstat, secondarystat, detail__*, arc__*, color; edges: id, source, target, ...) -> DagModel.
import { EmptyModelError } from "./errors.js";
import {
  fieldValues,
  findField,
  frameLength,
  requireField,
  toNumber,
  type FrameLike,
} from "./frames.js";
import {
  metricDefsOf,
  opKind,
  type DagEdgeModel,
  type DagModel,
  type DagNodeModel,
  type MetricDef,
} from "./dagModel.js";

const NODES = "node graph nodes";
const EDGES = "node graph edges";
const NODE_HINT =
  'A nodes frame (meta.preferredVisualisationType "nodeGraph", or named "nodes") needs id; title, mainstat, secondarystat and detail__* fields are read when present.';
const EDGE_HINT = 'An edges frame (named "edges") needs id, source and target.';

/** Which frames of a query are a node graph pair: by name, else by their fields. */
export function findNodeGraphFrames(frames: readonly FrameLike[]): {
  nodes?: FrameLike;
  edges?: FrameLike;
} {
  const edges =
    frames.find((f) => f.name === "edges") ??
    frames.find((f) => !!findField(f, "source") && !!findField(f, "target"));
  const nodes =
    frames.find((f) => f.name === "nodes") ??
    frames.find(
      (f) =>
        f !== edges && (f.meta?.preferredVisualisationType === "nodeGraph" || !!findField(f, "id")),
    );
  return { nodes, edges };
}

const isStatField = (name: string) =>
  name === "mainstat" ||
  name === "secondarystat" ||
  name.startsWith("detail__") ||
  name.startsWith("arc__");

export function dagFromNodeGraph(nodesFrame: FrameLike, edgesFrame: FrameLike): DagModel {
  const ids = fieldValues(requireField(nodesFrame, "id", NODES, NODE_HINT));
  const edgeIdField = requireField(edgesFrame, "id", EDGES, EDGE_HINT);
  const sources = fieldValues(requireField(edgesFrame, "source", EDGES, EDGE_HINT));
  const targets = fieldValues(requireField(edgesFrame, "target", EDGES, EDGE_HINT));
  const titles = findField(nodesFrame, "title");
  const subtitles = findField(nodesFrame, "subtitle");
  const n = frameLength(nodesFrame);
  if (n === 0) throw new EmptyModelError("The node graph nodes frame has no rows.");

  const numeric = nodesFrame.fields.filter(
    (f) => isStatField(f.name) && fieldValues(f).some((v) => toNumber(v) !== null),
  );
  const textual = nodesFrame.fields.filter(
    (f) => f.name.startsWith("detail__") && !numeric.includes(f),
  );
  const extra: MetricDef[] = numeric.map((f) => ({
    id: f.name,
    label: f.config?.displayName ?? f.name.replace(/^detail__|^arc__/, ""),
    unit: (f.config?.unit === "ms" ? "ms" : "") as MetricDef["unit"],
  }));

  const nodes: DagNodeModel[] = [];
  const known = new Set<string>();
  for (let i = 0; i < n; i++) {
    const id = String(ids[i]);
    known.add(id);
    const title = titles ? String(fieldValues(titles)[i] ?? id) : id;
    const subtitle = subtitles ? String(fieldValues(subtitles)[i] ?? "") : "";
    const metrics: Record<string, number> = {};
    for (const f of numeric) {
      const v = toNumber(fieldValues(f)[i]);
      if (v !== null) metrics[f.name] = v;
    }
    const details: [string, string][] = [["id", id]];
    if (subtitle) details.push(["subtitle", subtitle]);
    for (const f of [...numeric, ...textual])
      details.push([
        f.config?.displayName ?? f.name.replace(/^detail__|^arc__/, ""),
        String(fieldValues(f)[i] ?? ""),
      ]);
    const op = subtitle || title;
    const layerMatch = /-(\d+)$/.exec(title);
    nodes.push({
      id,
      label: title,
      backend: null,
      op,
      kind: opKind(op),
      layer: layerMatch ? Number(layerMatch[1]) : null,
      order: i,
      metrics,
      details,
      threads: [],
    });
  }
  const edgeIds = fieldValues(edgeIdField);
  const edges: DagEdgeModel[] = [];
  let dangling = 0;
  for (let i = 0; i < frameLength(edgesFrame); i++) {
    const source = String(sources[i]);
    const target = String(targets[i]);
    if (!known.has(source) || !known.has(target)) {
      dangling++;
      continue;
    }
    edges.push({ id: String(edgeIds[i] ?? `${source}->${target}`), source, target });
  }
  return {
    title: `${nodes.length} nodes, ${edges.length} edges`,
    nodes,
    edges,
    metrics: metricDefsOf(nodes, extra),
    backends: [],
    graphs: [],
    graphId: null,
    inputs: dangling,
    folded: false,
  };
}
