// SPDX-License-Identifier: Apache-2.0
// Frames for the plugin's tests: trace frames of spans written here, made by the exporter's frame
// builder (the one report.html uses; Tempo's shape), node graph pairs and Prometheus frames.
import { traceFrameOf, type SpanRecord } from "@profinfer/exporter";
import type { TraceFrame } from "@profinfer/contract";
import type { FrameLike } from "../../grafana-plugin/src/data/frames.js";

export interface SpanSpec {
  id: string;
  parent?: string;
  name: string;
  startMs?: number;
  durationMs?: number;
  tags?: Record<string, string | number | boolean | number[] | string[]>;
  logs?: { name: string; timestamp?: number; fields: Record<string, string | number | number[]> }[];
}

const TRACE_ID = "5b8efff798038103d269b633813fc60c";
const msToNs = (ms: number): bigint => BigInt(Math.round(ms * 1e6));

/**
 * The trace frame of `spans`, made by the exporter's own frame builder (the frame report.html
 * embeds, in the shape Grafana's Tempo data source returns), without the `omit` fields.
 */
export function makeTraceFrame(spans: SpanSpec[], omit: string[] = []): TraceFrame {
  const records: SpanRecord[] = spans.map((s, i) => {
    const startNs = msToNs(s.startMs ?? 1_732_870_000_000 + i);
    return {
      traceId: TRACE_ID,
      spanId: s.id,
      parentSpanId: s.parent ?? null,
      name: s.name,
      startNs,
      endNs: startNs + msToNs(s.durationMs ?? 1),
      attributes: { ...s.tags },
      events: (s.logs ?? []).map((l) => ({
        name: l.name,
        timeNs: msToNs(l.timestamp ?? 1_732_870_000_000),
        attributes: { ...l.fields },
      })),
      links: [],
    };
  });
  const frame = traceFrameOf(records, { "service.name": "profinfer" }, "0.1.0");
  frame.fields = frame.fields.filter((f) => !omit.includes(f.name));
  return frame;
}

export interface OpSpec {
  name: string;
  op: string;
  src?: string[];
  /** each source's producer: the index of the op in the list that computed it, -1 for none */
  producers?: number[];
  layer?: number;
  durationMs?: number;
  fused?: string[];
  tags?: Record<string, number | string>;
}

/**
 * The trace of one decode call (llama_decode at its root, as profinfer exports every call) with
 * one graph whose operators are `ops`, in node order.
 */
export function makeOpTrace(ops: OpSpec[], options: { moe?: SpanSpec["logs"] } = {}): SpanSpec[] {
  const spans: SpanSpec[] = [
    {
      id: "0000000000000002",
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
        "ggml.src.nodes": o.producers ?? (o.src ?? []).map(() => -1),
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

/**
 * Two transformer layers as llama.cpp names them, plus embedding and output, with each source's
 * producer as the exporter's exact DAG gives it: "Qcur-0" names both a matmul and its bias add,
 * the fused rms_norm+mul makes attn_norm-0, and the KV cache an attention matmul reads was
 * written by the set_rows into a view of it.
 */
export function twoLayerOps(): OpSpec[] {
  const ops: OpSpec[] = [
    {
      name: "inp_embd",
      op: "get_rows",
      src: ["token_embd.weight", "inp_tokens"],
      producers: [-1, -1],
    },
  ];
  let input = "inp_embd";
  let inputAt = 0;
  for (const l of [0, 1]) {
    const at = ops.length;
    ops.push(
      {
        name: `norm-${l}`,
        op: "rms_norm+mul",
        src: [input, `blk.${l}.attn_norm.weight`],
        producers: [inputAt, -1],
        layer: l,
        fused: [`norm-${l}`, `attn_norm-${l}`],
      },
      {
        name: `Qcur-${l}`,
        op: "mul_mat",
        src: [`blk.${l}.attn_q.weight`, `attn_norm-${l}`],
        producers: [-1, at],
        layer: l,
        durationMs: 0.2,
      },
      {
        name: `Qcur-${l}`,
        op: "add",
        src: [`Qcur-${l}`, `blk.${l}.attn_q.bias`],
        producers: [at + 1, -1],
        layer: l,
      },
      {
        name: `cache_k_l${l} (view)`,
        op: "set_rows",
        src: [`Qcur-${l}`, "k_idxs"],
        producers: [at + 2, -1],
        layer: l,
      },
      {
        name: `kq-${l}`,
        op: "mul_mat",
        src: [`cache_k_l${l}`, `Qcur-${l}`],
        producers: [at + 3, at + 2],
        layer: l,
        durationMs: 0.3,
      },
      {
        name: `ffn_out-${l}`,
        op: "add",
        src: [`kq-${l}`, input],
        producers: [at + 4, inputAt],
        layer: l,
      },
    );
    input = `ffn_out-${l}`;
    inputAt = at + 5;
  }
  ops.push({
    name: "result_output",
    op: "mul_mat",
    src: ["output.weight", input],
    producers: [-1, inputAt],
    durationMs: 0.4,
  });
  return ops;
}

/** A node of a node graph frame pair; a detail becomes a `detail__<name>` column. */
export interface NodeSpec {
  id: string;
  title: string;
  subtitle?: string;
  mainstat?: number;
  details?: Record<string, string>;
}

/** A nodes/edges frame pair as Grafana's node graph panel reads it. */
export function makeNodeGraphFrames(
  nodes: NodeSpec[],
  edges: [string, string][],
  options: { mainstatUnit?: string } = {},
): FrameLike[] {
  const column = (name: string, type: string, values: unknown[], config = {}) => ({
    name,
    type,
    config,
    values,
  });
  const details = [...new Set(nodes.flatMap((n) => Object.keys(n.details ?? {})))];
  return [
    {
      name: "nodes",
      meta: { preferredVisualisationType: "nodeGraph" },
      length: nodes.length,
      fields: [
        column(
          "id",
          "string",
          nodes.map((n) => n.id),
        ),
        column(
          "title",
          "string",
          nodes.map((n) => n.title),
        ),
        ...(nodes.some((n) => n.subtitle !== undefined)
          ? [
              column(
                "subtitle",
                "string",
                nodes.map((n) => n.subtitle ?? ""),
              ),
            ]
          : []),
        column(
          "mainstat",
          "number",
          nodes.map((n) => n.mainstat ?? 1),
          options.mainstatUnit ? { unit: options.mainstatUnit } : {},
        ),
        ...details.map((d) =>
          column(
            `detail__${d}`,
            "string",
            nodes.map((n) => n.details?.[d] ?? ""),
            { displayName: d },
          ),
        ),
      ],
    },
    {
      name: "edges",
      meta: { preferredVisualisationType: "nodeGraph" },
      length: edges.length,
      fields: [
        column(
          "id",
          "string",
          edges.map(([a, b]) => `${a}->${b}`),
        ),
        column(
          "source",
          "string",
          edges.map(([a]) => a),
        ),
        column(
          "target",
          "string",
          edges.map(([, b]) => b),
        ),
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
