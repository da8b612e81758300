// SPDX-License-Identifier: Apache-2.0
// ProfDAG's model: the operators of one compute graph and the data edges between them, from the
// spans of a trace (operator spans under a graph_compute span) or from a node graph frame pair.

export type OpKind = "matmul" | "norm" | "attention" | "memory" | "elementwise" | "other";

export interface ThreadTime {
  tid: number | null;
  ith: number | null;
  startMs: number;
  endMs: number;
  /** endMs - startMs, computed before the ms of the Unix epoch round it (to about 0.25 us) */
  durationMs: number;
}

export interface DagNodeModel {
  id: string;
  /** the tensor name (a folded node: its name with the layer taken out) */
  label: string;
  /** the op as users type it: "mul_mat", "rms_norm+mul" */
  op: string;
  kind: OpKind;
  layer: number | null;
  /** the backend that computed it ("CPU", "BLAS", "Vulkan0"); null when the trace does not say */
  backend: string | null;
  /** position in the graph's node list (order of execution) */
  order: number;
  /** metric id -> value */
  metrics: Record<string, number>;
  /** tooltip rows */
  details: [string, string][];
  threads: ThreadTime[];
  /** a folded node: the ids of the nodes it stands for, one per layer */
  members?: string[];
}

export interface DagEdgeModel {
  id: string;
  source: string;
  target: string;
  /** an edge from one folded block to the next repetition (residual stream) */
  loop?: boolean;
}

export interface MetricDef {
  id: string;
  label: string;
  unit: "ms" | "ratio" | "count" | "MB" | "GB/s" | "";
}

export interface GraphChoice {
  id: string;
  label: string;
}

export interface DagModel {
  title: string;
  nodes: DagNodeModel[];
  edges: DagEdgeModel[];
  /** the metrics at least one node carries, duration first */
  metrics: MetricDef[];
  /** the backends of its nodes, in order of first appearance; metric "backend" indexes it */
  backends: string[];
  /** graphs the trace holds (empty for a node graph frame) and the one shown */
  graphs: GraphChoice[];
  graphId: string | null;
  /** source names no operator of the graph produced: weights, inputs, the KV cache */
  inputs: number;
  folded: boolean;
}

export const METRIC_DURATION: MetricDef = { id: "duration", label: "duration", unit: "ms" };
export const METRIC_SHARE: MetricDef = { id: "share", label: "share of the graph", unit: "ratio" };

/** a category, not a quantity: the node's backend, an index into DagModel.backends */
export const METRIC_BACKEND: MetricDef = { id: "backend", label: "backend", unit: "" };

export const KNOWN_METRICS: MetricDef[] = [
  METRIC_DURATION,
  METRIC_SHARE,
  METRIC_BACKEND,
  { id: "barrierWait", label: "barrier wait (sum over threads)", unit: "ms" },
  { id: "imbalance", label: "thread imbalance (slowest / mean)", unit: "ratio" },
  { id: "slowestThread", label: "slowest thread", unit: "ms" },
  { id: "memoryTraffic", label: "memory traffic (bytes read and written)", unit: "MB" },
  { id: "bandwidth", label: "bandwidth (memory traffic over duration)", unit: "GB/s" },
  { id: "bandwidthShare", label: "share of the machine's read bandwidth", unit: "ratio" },
  { id: "computeShare", label: "share of the machine's arithmetic peak", unit: "ratio" },
  { id: "ipc", label: "instructions per cycle", unit: "" },
  { id: "backendStallRatio", label: "backend stall ratio", unit: "ratio" },
];

export function opKind(op: string): OpKind {
  const o = op.toLowerCase();
  if (/mul_mat|out_prod/.test(o)) return "matmul";
  if (/norm/.test(o)) return "norm";
  if (/soft_max|flash_attn|rope|attn/.test(o)) return "attention";
  if (/^(cpy|dup|cont|set_rows|get_rows|concat|set|acc)\b/.test(o)) return "memory";
  if (/^(add|sub|mul|div|scale|sqr|sqrt|unary|glu|sum|mean|argsort|top_k|clamp|exp|log)/.test(o))
    return "elementwise";
  return "other";
}

/** Metric definitions for the ids nodes carry, known ones first in catalogue order. */
export function metricDefsOf(nodes: readonly DagNodeModel[], extra: MetricDef[] = []): MetricDef[] {
  const ids = new Set<string>();
  for (const n of nodes) for (const k of Object.keys(n.metrics)) ids.add(k);
  const out: MetricDef[] = [];
  for (const m of [...KNOWN_METRICS, ...extra]) if (ids.delete(m.id)) out.push(m);
  for (const id of [...ids].sort()) {
    const counter = /^counter:(.+)$/.exec(id);
    out.push({ id, label: counter ? `counter ${counter[1]}` : id, unit: "" });
  }
  return out;
}
