// SPDX-License-Identifier: Apache-2.0
// The span and metric names the panel reads. They are defined by the exporter in
// exporter/src/sinks/otel/conventions.ts (spans) and exporter/src/sinks/metrics (metrics); the
// plugin cannot import the exporter, so the names it reads are repeated here, once.

export const SPAN_GENERATION = "generation";
export const SPAN_TOKEN = "llama_decode";
export const SPAN_GRAPH = "graph_compute";
export const EVENT_MOE_ROUTE = "moe.route";
export const EVENT_THREAD = "thread";

export const ATTR = {
  requestModel: "gen_ai.request.model",
  tokenSeq: "profinfer.token.seq",
  tokenPhase: "profinfer.token.phase",
  tokenCount: "profinfer.token.n_tokens",
  graphBackend: "ggml.backend",
  graphNodes: "ggml.graph.nodes",
  graphFn: "ggml.graph.fn",
  graphThreads: "ggml.graph.threads",
  op: "ggml.op",
  tensorName: "ggml.tensor.name",
  tensorShape: "ggml.tensor.shape",
  tensorType: "ggml.tensor.type",
  layer: "ggml.layer",
  nodeIndex: "ggml.node.index",
  srcNames: "ggml.src.names",
  srcOps: "ggml.src.ops",
  /**
   * The tensor names of the nodes ggml computed in the same step (a fused group such as
   * rms_norm+mul), first to last. Not in the span contract yet: read when present, so that an
   * edge from the last node of a fused group finds its span.
   */
  fusedNames: "ggml.fused.names",
  threads: "ggml.threads",
  threadSlowestNs: "ggml.thread.slowest_ns",
  threadFastestNs: "ggml.thread.fastest_ns",
  threadImbalance: "ggml.thread.imbalance",
  barrierWaitNs: "ggml.barrier_wait_ns",
  counterPrefix: "ggml.counter.",
  ipc: "ggml.ipc",
  backendStallRatio: "ggml.backend_stall_ratio",
  moeK: "ggml.moe.k",
  moeExperts: "ggml.moe.experts",
  threadId: "thread.id",
  threadIth: "ggml.thread.ith",
  threadStart: "start",
  threadEnd: "end",
} as const;

export const METRIC_EXPERT_SELECTIONS = "profinfer_moe_expert_selections_total";
export const LABEL_LAYER = "layer";
export const LABEL_EXPERT = "expert";
