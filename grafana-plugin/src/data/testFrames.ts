// SPDX-License-Identifier: Apache-2.0
// Frame builders for the tests: trace frames in the exact shape Grafana's Tempo data source
// returns (pkg/tsdb/tempo TraceToFrame: tags/logs as lists of {key, value}, OTLP arrays as their
// JSON text, parentSpanID all zeros on the root), node graph pairs and Prometheus frames.
import type { FrameLike } from "./frames.js";

export interface SpanSpec {
  id: string;
  parent?: string;
  name: string;
  startMs?: number;
  durationMs?: number;
  tags?: Record<string, string | number | boolean | number[] | string[]>;
  logs?: { name: string; timestamp?: number; fields: Record<string, string | number | number[]> }[];
}

const otlpValue = (v: unknown) => (Array.isArray(v) ? JSON.stringify(v) : v);
const keyValues = (o: Record<string, unknown>) =>
  Object.entries(o).map(([key, value]) => ({ key, value: otlpValue(value) }));

export function makeTraceFrame(spans: SpanSpec[], omit: string[] = []): FrameLike {
  const column = (name: string, type: string, values: unknown[]) => ({
    name,
    type,
    config: {},
    values,
  });
  const fields = [
    column(
      "traceID",
      "string",
      spans.map(() => "5b8efff798038103d269b633813fc60c"),
    ),
    column(
      "spanID",
      "string",
      spans.map((s) => s.id),
    ),
    column(
      "parentSpanID",
      "string",
      spans.map((s) => s.parent ?? "0000000000000000"),
    ),
    column(
      "operationName",
      "string",
      spans.map((s) => s.name),
    ),
    column(
      "serviceName",
      "string",
      spans.map(() => "profinfer"),
    ),
    column(
      "kind",
      "string",
      spans.map(() => "internal"),
    ),
    column(
      "statusCode",
      "number",
      spans.map(() => 0),
    ),
    column(
      "statusMessage",
      "string",
      spans.map(() => ""),
    ),
    column(
      "instrumentationLibraryName",
      "string",
      spans.map(() => "profinfer"),
    ),
    column(
      "instrumentationLibraryVersion",
      "string",
      spans.map(() => "0.1.0"),
    ),
    column(
      "traceState",
      "string",
      spans.map(() => ""),
    ),
    column(
      "serviceTags",
      "other",
      spans.map(() => [{ key: "service.name", value: "profinfer" }]),
    ),
    column(
      "startTime",
      "number",
      spans.map((s, i) => s.startMs ?? 1_732_870_000_000 + i),
    ),
    column(
      "duration",
      "number",
      spans.map((s) => s.durationMs ?? 1),
    ),
    column(
      "logs",
      "other",
      spans.map((s) =>
        (s.logs ?? []).map((l) => ({
          timestamp: l.timestamp ?? 1_732_870_000_000,
          name: l.name,
          fields: keyValues(l.fields),
        })),
      ),
    ),
    column(
      "references",
      "other",
      spans.map(() => []),
    ),
    column(
      "tags",
      "other",
      spans.map((s) => keyValues(s.tags ?? {})),
    ),
  ].filter((f) => !omit.includes(f.name));
  return {
    name: "Trace",
    refId: "A",
    meta: { preferredVisualisationType: "trace" },
    length: spans.length,
    fields: fields as FrameLike["fields"],
  };
}

export interface OpSpec {
  name: string;
  op: string;
  src?: string[];
  layer?: number;
  durationMs?: number;
  fused?: string[];
  tags?: Record<string, number | string>;
}

/** A trace of one decode token with one graph whose operators are `ops`, in node order. */
export function makeOpTrace(ops: OpSpec[], options: { moe?: SpanSpec["logs"] } = {}): SpanSpec[] {
  const spans: SpanSpec[] = [
    { id: "0000000000000001", name: "generation", durationMs: 10 },
    {
      id: "0000000000000002",
      parent: "0000000000000001",
      name: "llama_decode",
      durationMs: 9,
      tags: {
        "profinfer.token.seq": 2,
        "profinfer.token.phase": "decode",
        "profinfer.token.n_tokens": 1,
      },
      logs: options.moe ?? [],
    },
    {
      id: "0000000000000003",
      parent: "0000000000000002",
      name: "graph_compute",
      durationMs: 8,
      tags: {
        "ggml.backend": "CPU",
        "ggml.graph.fn": "cpu",
        "ggml.graph.nodes": ops.length,
        "ggml.graph.threads": 2,
      },
    },
  ];
  ops.forEach((o, i) => {
    spans.push({
      id: `00000000000001${i.toString(16).padStart(2, "0")}`,
      parent: "0000000000000003",
      name: o.op,
      startMs: 1_732_870_000_000 + i * 0.1,
      durationMs: o.durationMs ?? 0.05,
      tags: {
        "ggml.op": o.op,
        "ggml.tensor.name": o.name,
        "ggml.tensor.shape": [64, 1, 1, 1],
        "ggml.tensor.type": "f32",
        ...(o.layer === undefined ? {} : { "ggml.layer": o.layer }),
        "ggml.node.index": i,
        "ggml.src.names": o.src ?? [],
        "ggml.src.ops": (o.src ?? []).map(() => "none"),
        ...(o.fused ? { "ggml.fused.names": o.fused } : {}),
        ...(o.tags ?? {}),
      },
      logs: [
        {
          name: "thread",
          fields: { "thread.id": 100, "ggml.thread.ith": 0, start: 0, end: 40_000 },
        },
        {
          name: "thread",
          fields: { "thread.id": 101, "ggml.thread.ith": 1, start: 1_000, end: 50_000 },
        },
      ],
    });
  });
  return spans;
}

/** Two transformer layers as llama.cpp names them, plus embedding and output. */
export function twoLayerOps(): OpSpec[] {
  const ops: OpSpec[] = [
    { name: "inp_embd", op: "get_rows", src: ["token_embd.weight", "inp_tokens"] },
  ];
  let input = "inp_embd";
  for (const l of [0, 1]) {
    ops.push(
      {
        name: `norm-${l}`,
        op: "rms_norm+mul",
        src: [input, `blk.${l}.attn_norm.weight`],
        layer: l,
        fused: [`norm-${l}`, `attn_norm-${l}`],
      },
      {
        name: `Qcur-${l}`,
        op: "mul_mat",
        src: [`blk.${l}.attn_q.weight`, `attn_norm-${l}`],
        layer: l,
        durationMs: 0.2,
      },
      { name: `Qcur-${l}`, op: "add", src: [`Qcur-${l}`, `blk.${l}.attn_q.bias`], layer: l },
      { name: `cache_k_l${l} (view)`, op: "set_rows", src: [`Qcur-${l}`, "k_idxs"], layer: l },
      {
        name: `kq-${l}`,
        op: "mul_mat",
        src: [`cache_k_l${l}`, `Qcur-${l}`],
        layer: l,
        durationMs: 0.3,
      },
      { name: `ffn_out-${l}`, op: "add", src: [`kq-${l}`, input], layer: l },
    );
    input = `ffn_out-${l}`;
  }
  ops.push({
    name: "result_output",
    op: "mul_mat",
    src: ["output.weight", input],
    durationMs: 0.4,
  });
  return ops;
}

export function makeNodeGraphFrames(
  nodes: { id: string; title: string; mainstat?: number }[],
  edges: [string, string][],
): FrameLike[] {
  return [
    {
      name: "nodes",
      meta: { preferredVisualisationType: "nodeGraph" },
      length: nodes.length,
      fields: [
        { name: "id", type: "string", config: {}, values: nodes.map((n) => n.id) },
        { name: "title", type: "string", config: {}, values: nodes.map((n) => n.title) },
        { name: "mainstat", type: "number", config: {}, values: nodes.map((n) => n.mainstat ?? 1) },
        {
          name: "detail__shape",
          type: "string",
          config: { displayName: "shape" },
          values: nodes.map(() => "[64, 1]"),
        },
      ],
    },
    {
      name: "edges",
      meta: { preferredVisualisationType: "nodeGraph" },
      length: edges.length,
      fields: [
        { name: "id", type: "string", config: {}, values: edges.map(([a, b]) => `${a}-${b}`) },
        { name: "source", type: "string", config: {}, values: edges.map(([a]) => a) },
        { name: "target", type: "string", config: {}, values: edges.map(([, b]) => b) },
      ],
    },
  ] as FrameLike[];
}

/** Prometheus range query frames: one per series, labels on the value field. */
export function makePrometheusSeries(
  series: { layer: number; expert: number; values: number[] }[],
): FrameLike[] {
  return series.map((s) => ({
    refId: "A",
    length: s.values.length,
    fields: [
      {
        name: "Time",
        type: "time",
        config: {},
        values: s.values.map((_, i) => 1_732_870_000_000 + i * 15_000),
      },
      {
        name: "Value",
        type: "number",
        config: {},
        labels: {
          __name__: "profinfer_moe_expert_selections_total",
          model: "tiny-qwen2moe",
          layer: String(s.layer),
          expert: String(s.expert),
        },
        values: s.values,
      },
    ],
  })) as FrameLike[];
}
