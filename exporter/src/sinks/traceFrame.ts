// SPDX-License-Identifier: Apache-2.0
// A run as the data frame Grafana's Tempo data source returns for a trace (one row per span:
// traceID, spanID, parentSpanID, operationName, serviceName, ..., startTime and duration in ms,
// tags and logs as lists of {key, value}; array attributes as their JSON text, the way Tempo's
// pcommon.Value.AsString writes them), with the span names and attributes of the OTLP export.
// The report feeds it to the plugin's own frame readers, so report.html and the Grafana panel
// go through the same data -> model code.
import { basename } from "node:path";
import { toWallClockNs } from "../trace/clock.js";
import { displayOpName, type Dag, type TensorRef } from "../trace/dag.js";
import type { GraphRun, OpRun, Run, Token } from "../trace/model.js";

export interface FrameField {
  name: string;
  type: "string" | "number" | "other";
  config: Record<string, never>;
  values: unknown[];
}

export interface TraceFrame {
  name: "Trace";
  refId: string;
  meta: { preferredVisualisationType: "trace" };
  fields: FrameField[];
  length: number;
}

interface KeyValue {
  key: string;
  value: string | number | boolean;
}

interface SpanEventRow {
  atNs: bigint;
  name: string;
  fields: KeyValue[];
}

interface SpanRow {
  spanID: string;
  parentSpanID: string;
  operationName: string;
  startNs: bigint;
  durationNs: number;
  tags: KeyValue[];
  logs: SpanEventRow[];
}

/** The model name users know a run by: the GGUF file after -m / --model, else the program. */
export function runModelName(run: Run): string {
  const args = run.command;
  for (let i = 0; i < args.length - 1; i++)
    if (args[i] === "-m" || args[i] === "--model")
      return basename(args[i + 1]!).replace(/\.gguf$/, "");
  return basename(args[0] ?? "llama.cpp");
}

/**
 * The graph a report shows first: among the decode calls' graphs that carry operators, a run of
 * the graph description most of them share (the steady-state decode graph), the first complete
 * one; else the first graph with operators.
 */
export function mainDecodeGraph(run: Run): GraphRun | null {
  const withOps = run.graphRuns.filter((g) => g.opsRecorded && g.ops.length > 0);
  const phaseOf = new Map(run.tokens.map((t) => [t.seq, t.phase]));
  const decode = withOps.filter((g) => g.tokenSeq !== null && phaseOf.get(g.tokenSeq) === "decode");
  if (decode.length === 0) return withOps[0] ?? null;
  const bySnapshot = new Map<string, GraphRun[]>();
  for (const g of decode) {
    const key = g.snapshot?.key ?? `run:${g.id}`;
    bySnapshot.set(key, [...(bySnapshot.get(key) ?? []), g]);
  }
  const runs = [...bySnapshot.values()].sort((a, b) => b.length - a.length)[0]!;
  return runs.find((g) => g.complete) ?? runs[0]!;
}

/** The first prefill graph with operators, for comparison beside the decode graph. */
export function firstPrefillGraph(run: Run): GraphRun | null {
  const phaseOf = new Map(run.tokens.map((t) => [t.seq, t.phase]));
  return (
    run.graphRuns.find(
      (g) =>
        g.opsRecorded &&
        g.ops.length > 0 &&
        g.tokenSeq !== null &&
        phaseOf.get(g.tokenSeq) === "prefill",
    ) ?? null
  );
}

const hex = (n: number, width: number) => n.toString(16).padStart(width, "0");

/** The source tensors of an operator (all nodes of a fused group; what the group makes itself is not a source). */
function opSources(op: OpRun, dag: Dag): TensorRef[] {
  const members = [op.nodeIndex, ...(op.fusedWith ?? [])];
  const inside = new Set(members);
  const out: TensorRef[] = [];
  for (const m of members)
    for (const s of dag.nodes[m]?.sources ?? [])
      if (!(s.producer.kind === "node" && inside.has(s.producer.index))) out.push(s.producer);
  return out;
}

function refName(dag: Dag, ref: TensorRef): string {
  return ref.kind === "node"
    ? dag.nodes[ref.index]!.tensor.name
    : dag.leaves[ref.index]!.tensor.name;
}

function refOp(dag: Dag, ref: TensorRef): string {
  if (ref.kind === "leaf") return "none";
  const node = dag.nodes[ref.index]!;
  return node.computed ? displayOpName(node.tensor.opLabel) : "none";
}

function opRow(op: OpRun, spanID: string, parent: string, dag: Dag): SpanRow | null {
  if (op.startNs === null || op.endNs === null) return null;
  const t = op.tensor;
  const name = displayOpName(op.label);
  const sources = opSources(op, dag);
  const durations = op.threads.map((th) => Number(th.endNs - th.startNs));
  const slowest = durations.length ? Math.max(...durations) : 0;
  const fastest = durations.length ? Math.min(...durations) : 0;
  const mean = durations.length ? durations.reduce((a, b) => a + b, 0) / durations.length : 0;
  const tags: KeyValue[] = [
    { key: "ggml.op", value: name },
    { key: "ggml.tensor.name", value: t.name },
    { key: "ggml.tensor.shape", value: JSON.stringify(t.ne) },
    { key: "ggml.tensor.type", value: t.typeName },
    ...(t.layer === null ? [] : [{ key: "ggml.layer", value: t.layer }]),
    { key: "ggml.node.index", value: op.nodeIndex },
    { key: "ggml.src.names", value: JSON.stringify(sources.map((s) => refName(dag, s))) },
    { key: "ggml.src.ops", value: JSON.stringify(sources.map((s) => refOp(dag, s))) },
    { key: "ggml.threads", value: op.threads.length },
    { key: "ggml.thread.slowest_ns", value: slowest },
    { key: "ggml.thread.fastest_ns", value: fastest },
    { key: "ggml.thread.imbalance", value: mean > 0 ? slowest / mean : 1 },
    { key: "ggml.barrier_wait_ns", value: op.threads.reduce((a, th) => a + th.barrierWaitNs, 0) },
  ];
  if (op.fusedWith?.length)
    tags.push({
      key: "ggml.fused.names",
      value: JSON.stringify([op.nodeIndex, ...op.fusedWith].map((i) => dag.nodes[i]!.tensor.name)),
    });
  return {
    spanID,
    parentSpanID: parent,
    operationName: name,
    startNs: op.startNs,
    durationNs: Number(op.endNs - op.startNs),
    tags,
    logs: op.threads.map((th) => ({
      atNs: th.startNs,
      name: "thread",
      fields: [
        { key: "thread.id", value: th.tid },
        { key: "ggml.thread.ith", value: th.ith ?? -1 },
        { key: "start", value: Number(th.startNs - op.startNs!) },
        { key: "end", value: Number(th.endNs - op.startNs!) },
      ],
    })),
  };
}

export interface TraceFrameOptions {
  /** graphs whose operators become spans (all graph and token spans are always there) */
  opGraphs: GraphRun[];
}

export function traceFrame(run: Run, options: TraceFrameOptions): TraceFrame {
  const wallMs = (ns: bigint) => Number(toWallClockNs(run.clock, ns)) / 1e6;
  let nextId = 1;
  const newId = () => hex(nextId++, 16);
  const traceID = hex(run.pid, 16) + hex(Number(run.clock.realtimeNs % 0xffffffffffffn), 16);
  const rows: SpanRow[] = [];
  const rootId = newId();
  const complete = run.tokens.filter((t) => t.complete);
  const first = run.tokens[0];
  const last = run.tokens[run.tokens.length - 1];
  const model = runModelName(run);
  rows.push({
    spanID: rootId,
    parentSpanID: "0000000000000000",
    operationName: "generation",
    startNs: first?.startNs ?? run.firstNs,
    durationNs: Number((last?.endNs ?? run.lastNs) - (first?.startNs ?? run.firstNs)),
    tags: [
      { key: "gen_ai.operation.name", value: "text_completion" },
      { key: "gen_ai.provider.name", value: "llama.cpp" },
      { key: "gen_ai.request.model", value: model },
      {
        key: "gen_ai.usage.input_tokens",
        value: complete.filter((t) => t.phase === "prefill").reduce((a, t) => a + t.nTokens, 0),
      },
      {
        key: "gen_ai.usage.output_tokens",
        value: complete.filter((t) => t.phase === "decode").length,
      },
    ],
    logs: [],
  });
  const opGraphs = new Set(options.opGraphs);
  const graphIds = new Map<GraphRun, string>();
  const tokenIds = new Map<number, string>();
  for (const token of run.tokens) {
    const id = newId();
    tokenIds.set(token.seq, id);
    rows.push(tokenRow(token, id, rootId));
  }
  for (const g of run.graphRuns) {
    const id = newId();
    graphIds.set(g, id);
    const parent = g.parent
      ? graphIds.get(g.parent)
      : g.tokenSeq !== null
        ? tokenIds.get(g.tokenSeq)
        : rootId;
    rows.push({
      spanID: id,
      parentSpanID: parent ?? rootId,
      operationName: "graph_compute",
      startNs: g.startNs,
      durationNs: Number(g.endNs - g.startNs),
      tags: [
        { key: "ggml.backend", value: "CPU" },
        { key: "ggml.graph.nodes", value: g.nNodes },
        { key: "ggml.graph.fn", value: g.fn },
        { key: "ggml.graph.threads", value: g.nThreads },
      ],
      logs: [],
    });
    if (!opGraphs.has(g) || !g.snapshot) continue;
    for (const op of g.ops) {
      const row = opRow(op, newId(), id, g.snapshot.dag);
      if (row) rows.push(row);
    }
  }
  const column = (name: string, type: FrameField["type"], values: unknown[]): FrameField => ({
    name,
    type,
    config: {},
    values,
  });
  return {
    name: "Trace",
    refId: "A",
    meta: { preferredVisualisationType: "trace" },
    length: rows.length,
    fields: [
      column(
        "traceID",
        "string",
        rows.map(() => traceID),
      ),
      column(
        "spanID",
        "string",
        rows.map((r) => r.spanID),
      ),
      column(
        "parentSpanID",
        "string",
        rows.map((r) => r.parentSpanID),
      ),
      column(
        "operationName",
        "string",
        rows.map((r) => r.operationName),
      ),
      column(
        "serviceName",
        "string",
        rows.map(() => "profinfer"),
      ),
      column(
        "kind",
        "string",
        rows.map(() => "internal"),
      ),
      column(
        "statusCode",
        "number",
        rows.map(() => 0),
      ),
      column(
        "statusMessage",
        "string",
        rows.map(() => ""),
      ),
      column(
        "instrumentationLibraryName",
        "string",
        rows.map(() => "profinfer"),
      ),
      column(
        "instrumentationLibraryVersion",
        "string",
        rows.map(() => run.header.profinfer),
      ),
      column(
        "traceState",
        "string",
        rows.map(() => ""),
      ),
      column(
        "serviceTags",
        "other",
        rows.map(() => [
          { key: "service.name", value: "profinfer" },
          { key: "process.pid", value: run.pid },
          { key: "process.command_line", value: run.command.join(" ") },
        ]),
      ),
      column(
        "startTime",
        "number",
        rows.map((r) => wallMs(r.startNs)),
      ),
      column(
        "duration",
        "number",
        rows.map((r) => r.durationNs / 1e6),
      ),
      column(
        "logs",
        "other",
        rows.map((r) =>
          r.logs.map((l) => ({ timestamp: wallMs(l.atNs), name: l.name, fields: l.fields })),
        ),
      ),
      column(
        "references",
        "other",
        rows.map(() => []),
      ),
      column(
        "tags",
        "other",
        rows.map((r) => r.tags),
      ),
    ],
  };
}

function tokenRow(token: Token, id: string, parent: string): SpanRow {
  const logs: SpanRow["logs"] = [];
  for (const [layer, rows] of token.experts ?? []) {
    logs.push({
      atNs: token.endNs,
      name: "moe.route",
      fields: [
        { key: "ggml.layer", value: layer },
        { key: "ggml.moe.k", value: rows[0]?.length ?? 0 },
        { key: "ggml.moe.experts", value: JSON.stringify(rows.flat()) },
      ],
    });
  }
  return {
    spanID: id,
    parentSpanID: parent,
    operationName: "llama_decode",
    startNs: token.startNs,
    durationNs: Number(token.endNs - token.startNs),
    tags: [
      { key: "profinfer.token.seq", value: token.seq },
      { key: "profinfer.token.phase", value: token.phase },
      { key: "profinfer.token.n_tokens", value: token.nTokens },
      ...(token.ret === null ? [] : [{ key: "profinfer.token.ret", value: token.ret }]),
    ],
    logs,
  };
}
