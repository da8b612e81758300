// SPDX-License-Identifier: Apache-2.0
// Operator spans of one graph_compute span -> DagModel. Edges are the exporter's exact DAG (built
// from tensor addresses, views resolved to the operator that wrote them): each source's producer
// is named by its node index (ggml.src.nodes), the ggml.node.index of another operator span.
import {
  ATTR_BACKEND,
  ATTR_BACKEND_STALL_RATIO,
  ATTR_BARRIER_WAIT_NS,
  ATTR_COUNTER_PREFIX,
  ATTR_GEN_AI_OPERATION_NAME,
  ATTR_GRAPH_COMPLETE,
  ATTR_GRAPH_FN,
  ATTR_GRAPH_SIGNATURE,
  ATTR_IPC,
  ATTR_LAYER,
  ATTR_OP_BYTES,
  ATTR_ROOFLINE_BANDWIDTH_SHARE,
  ATTR_ROOFLINE_CLASS,
  ATTR_ROOFLINE_COMPUTE_SHARE,
  ATTR_NODE_INDEX,
  ATTR_OP,
  ATTR_SRC_NAMES,
  ATTR_SRC_NODES,
  ATTR_TENSOR_NAME,
  ATTR_TENSOR_SHAPE,
  ATTR_TENSOR_TYPE,
  ATTR_THREAD_END,
  ATTR_THREAD_ID,
  ATTR_THREAD_IMBALANCE,
  ATTR_THREAD_ITH,
  ATTR_THREAD_SLOWEST_NS,
  ATTR_THREAD_START,
  ATTR_TOKEN_PHASE,
  ATTR_TOKEN_SEQ,
  EVENT_THREAD,
  SPAN_GRAPH,
  SPAN_TOKEN,
  mainGraphIndex,
} from "@profinfer/contract";
import { EmptyModelError, MissingFieldError } from "./errors.js";
import { toNumber, toNumberArray, toStringArray } from "./frames.js";
import {
  METRIC_DURATION,
  metricDefsOf,
  opKind,
  type DagEdgeModel,
  type DagModel,
  type DagNodeModel,
  type GraphChoice,
  type ThreadTime,
} from "./dagModel.js";
import { ancestorNamed, type Span, type Trace } from "./trace.js";

const opChildren = (trace: Trace, graph: Span) =>
  (trace.children.get(graph.spanId) ?? []).filter((c) => c.attrs.has(ATTR_OP));

/**
 * The graph spans under `graph` (itself first) that hold operator spans, in start order: a
 * scheduler graph's operators are those of its splits, on every backend.
 */
function opOwners(trace: Trace, graph: Span): Span[] {
  const out: Span[] = [];
  const walk = (g: Span) => {
    if (opChildren(trace, g).length > 0) out.push(g);
    for (const c of trace.children.get(g.spanId) ?? []) if (c.name === SPAN_GRAPH) walk(c);
  };
  walk(graph);
  return out;
}

/** The backends of a graph's operator spans (their ggml.backend, else their graph's). */
function backendsUnder(trace: Trace, graph: Span): Set<string> {
  const out = new Set<string>();
  for (const owner of opOwners(trace, graph))
    for (const op of opChildren(trace, owner)) {
      const b = op.attrs.get(ATTR_BACKEND) ?? owner.attrs.get(ATTR_BACKEND);
      if (b !== undefined) out.add(String(b));
    }
  return out;
}

/**
 * The graph_compute spans that have operator spans, in start order, and the scheduler graphs
 * whose splits computed operators on more than one backend (their DAG shows every backend).
 */
export function graphSpans(trace: Trace): Span[] {
  return trace.spans.filter(
    (s) =>
      s.name === SPAN_GRAPH &&
      (opChildren(trace, s).length > 0 ||
        (s.attrs.get(ATTR_GRAPH_FN) === "sched" && backendsUnder(trace, s).size > 1)),
  );
}

function graphLabel(trace: Trace, graph: Span): string {
  const token = ancestorNamed(trace, graph, SPAN_TOKEN);
  const ops = (trace.children.get(graph.spanId) ?? []).filter((c) => c.attrs.has(ATTR_OP)).length;
  const phase = token?.attrs.get(ATTR_TOKEN_PHASE);
  const seq = token?.attrs.get(ATTR_TOKEN_SEQ);
  const backend = graph.attrs.get(ATTR_BACKEND);
  const who = token ? `${String(phase ?? "token")} #${String(seq ?? "?")}` : "graph";
  return `${who}${backend ? ` ${String(backend)}` : ""}: ${ops} ops, ${graph.durationMs.toFixed(3)} ms`;
}

/** The graph ProfDAG shows by default: @profinfer/contract's one rule, over the graph spans. */
export function defaultGraph(trace: Trace, graphs: Span[]): Span | undefined {
  const index = mainGraphIndex(
    graphs.map((g) => ({
      decode: ancestorNamed(trace, g, SPAN_TOKEN)?.attrs.get(ATTR_TOKEN_PHASE) === "decode",
      withOps: true,
      complete: g.attrs.get(ATTR_GRAPH_COMPLETE) !== false,
      description: String(g.attrs.get(ATTR_GRAPH_SIGNATURE) ?? g.spanId),
    })),
  );
  return graphs[index];
}

/**
 * A thread's interval from a `thread` span event. The event's own time is the thread's start;
 * `start`/`end` are ns after the operator span's start, or Unix ns when that large.
 */
function threadTime(span: Span, attrs: Map<string, unknown>, eventMs: number): ThreadTime | null {
  const start = toNumber(attrs.get(ATTR_THREAD_START));
  const end = toNumber(attrs.get(ATTR_THREAD_END));
  if (end === null) return null;
  const toMs = (n: number) => (n > 1e15 ? n / 1e6 : span.startMs + n / 1e6);
  const startMs = start === null ? eventMs : toMs(start);
  const endMs = toMs(end);
  return {
    tid: toNumber(attrs.get(ATTR_THREAD_ID)),
    ith: toNumber(attrs.get(ATTR_THREAD_ITH)),
    startMs,
    endMs,
    durationMs: start === null ? endMs - startMs : (end - start) / 1e6,
  };
}

const OP_HINT = "profinfer writes it on every operator span; was the run recorded with --level op?";
const SRC_NODES_HINT =
  "profinfer writes it on every operator span; a trace sent by an older profinfer lacks it: send the run again with 'profinfer replay RUN_DIR --otlp-endpoint URL'.";

function opNode(span: Span, graph: Span, order: number, owner: Span = graph): DagNodeModel {
  const a = span.attrs;
  const name = a.get(ATTR_TENSOR_NAME);
  if (name === undefined)
    throw new MissingFieldError(ATTR_TENSOR_NAME, `operator span "${span.name}"`, OP_HINT);
  const op = String(a.get(ATTR_OP) ?? span.name);
  const layer = toNumber(a.get(ATTR_LAYER));
  const shape = toNumberArray(a.get(ATTR_TENSOR_SHAPE));
  const metrics: Record<string, number> = {
    duration: span.durationMs,
    share: graph.durationMs > 0 ? span.durationMs / graph.durationMs : 0,
  };
  const num = (key: string, id: string, scale = 1) => {
    const v = toNumber(a.get(key));
    if (v !== null) metrics[id] = v * scale;
  };
  num(ATTR_BARRIER_WAIT_NS, "barrierWait", 1e-6);
  num(ATTR_THREAD_IMBALANCE, "imbalance");
  num(ATTR_THREAD_SLOWEST_NS, "slowestThread", 1e-6);
  num(ATTR_OP_BYTES, "memoryTraffic", 1e-6);
  if (metrics["memoryTraffic"] !== undefined && span.durationMs > 0) {
    // MB per ms is GB per s
    metrics["bandwidth"] = metrics["memoryTraffic"] / span.durationMs;
  }
  num(ATTR_ROOFLINE_BANDWIDTH_SHARE, "bandwidthShare");
  num(ATTR_ROOFLINE_COMPUTE_SHARE, "computeShare");
  num(ATTR_IPC, "ipc");
  num(ATTR_BACKEND_STALL_RATIO, "backendStallRatio");
  for (const [key, value] of a) {
    if (!key.startsWith(ATTR_COUNTER_PREFIX)) continue;
    const v = toNumber(value);
    if (v !== null) metrics[`counter:${key.slice(ATTR_COUNTER_PREFIX.length)}`] = v;
  }
  const threads: ThreadTime[] = [];
  for (const ev of span.events) {
    if (ev.name !== EVENT_THREAD) continue;
    const t = threadTime(span, ev.attrs, ev.timestampMs);
    if (t) threads.push(t);
  }
  threads.sort((x, y) => (x.ith ?? 0) - (y.ith ?? 0));
  const details: [string, string][] = [
    ["tensor", String(name)],
    ["op", op],
    ["shape", shape ? `[${shape.join(", ")}]` : "?"],
    ["type", String(a.get(ATTR_TENSOR_TYPE) ?? "?")],
    ["layer", layer === null ? "-" : String(layer)],
    ["node", String(toNumber(a.get(ATTR_NODE_INDEX)) ?? "?")],
  ];
  const srcNames = toStringArray(a.get(ATTR_SRC_NAMES));
  if (srcNames) details.push(["sources", srcNames.join(", ")]);
  const roofline = a.get(ATTR_ROOFLINE_CLASS);
  if (roofline !== undefined) details.push(["roofline", String(roofline)]);
  const backend = a.get(ATTR_BACKEND) ?? owner.attrs.get(ATTR_BACKEND);
  if (backend !== undefined) details.push(["backend", String(backend)]);
  return {
    id: span.spanId,
    backend: backend === undefined ? null : String(backend),
    label: String(name),
    op,
    kind: opKind(op),
    layer,
    order,
    metrics,
    details,
    threads,
  };
}

export interface DagFromTraceOptions {
  /** a graph_compute span id; the default graph when absent or unknown */
  graphId?: string | null;
}

export function dagFromTrace(trace: Trace, options: DagFromTraceOptions = {}): DagModel {
  const graphs = graphSpans(trace);
  if (graphs.length === 0) {
    const anyGraph = trace.spans.some((s) => s.name === SPAN_GRAPH);
    const request = trace.spans.some((s) => s.attrs.has(ATTR_GEN_AI_OPERATION_NAME));
    throw new EmptyModelError(
      anyGraph
        ? `The trace has ${SPAN_GRAPH} spans but no operator spans under them: record with --level op (the default), and pick a call whose profinfer.token.ops_exported is true (--otlp-op-sample chooses them), to see the operator DAG.`
        : request
          ? `This is a request's trace: its steps link to the traces of the ${SPAN_TOKEN} calls it took part in, which hold the graphs. Choose one of those calls' trace IDs.`
          : `The trace has no ${SPAN_GRAPH} span: it is not a profinfer trace of llama.cpp, or it was recorded with --level token.`,
    );
  }
  const graph =
    (options.graphId ? graphs.find((g) => g.spanId === options.graphId) : undefined) ??
    defaultGraph(trace, graphs)!;
  // a split's node indices are its own: nodes and their sources are keyed by their graph span
  const owned = opOwners(trace, graph).map((owner) => {
    const ops = opChildren(trace, owner);
    for (const s of ops)
      if (!s.attrs.has(ATTR_NODE_INDEX))
        throw new MissingFieldError(ATTR_NODE_INDEX, `operator span "${s.name}"`, OP_HINT);
    ops.sort(
      (x, y) =>
        (toNumber(x.attrs.get(ATTR_NODE_INDEX)) ?? 0) -
        (toNumber(y.attrs.get(ATTR_NODE_INDEX)) ?? 0),
    );
    return { owner, ops };
  });

  const nodes: DagNodeModel[] = [];
  const edges: DagEdgeModel[] = [];
  const edgeIds = new Set<string>();
  const spanOfNode = new Map<string, string>();
  for (const { owner, ops } of owned)
    for (const span of ops)
      spanOfNode.set(`${owner.spanId}:${toNumber(span.attrs.get(ATTR_NODE_INDEX))!}`, span.spanId);
  let inputs = 0;
  let order = 0;
  for (const { owner, ops } of owned) {
    for (const span of ops) {
      const node = opNode(span, graph, order++, owner);
      nodes.push(node);
      const producers = toNumberArray(span.attrs.get(ATTR_SRC_NODES));
      if (!producers)
        throw new MissingFieldError(ATTR_SRC_NODES, `operator span "${span.name}"`, SRC_NODES_HINT);
      for (const producer of producers) {
        const from = producer < 0 ? undefined : spanOfNode.get(`${owner.spanId}:${producer}`);
        if (from === undefined) {
          inputs++;
          continue;
        }
        if (from === node.id) continue;
        const id = `${from}->${node.id}`;
        if (edgeIds.has(id)) continue;
        edgeIds.add(id);
        edges.push({ id, source: from, target: node.id });
      }
    }
  }
  const backends = [...new Set(nodes.flatMap((n) => (n.backend === null ? [] : [n.backend])))];
  for (const n of nodes) if (n.backend !== null) n.metrics["backend"] = backends.indexOf(n.backend);
  return {
    title: graphLabel(trace, graph),
    nodes,
    edges,
    metrics: metricDefsOf(nodes),
    backends,
    graphs: graphs.map((g): GraphChoice => ({ id: g.spanId, label: graphLabel(trace, g) })),
    graphId: graph.spanId,
    inputs,
    folded: false,
  };
}

export { METRIC_DURATION };
