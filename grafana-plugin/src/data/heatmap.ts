// SPDX-License-Identifier: Apache-2.0
// The expert heatmap's model: a matrix of how often each expert was chosen, either layer x
// expert (Prometheus series of profinfer_moe_expert_selections_total, or every moe.route event
// of a trace) or token x expert for one layer (the moe.route events of a trace: which experts
// each token of each llama_decode batch was routed to).
import {
  ATTR_LAYER,
  ATTR_MOE_EXPERTS,
  ATTR_MOE_K,
  ATTR_TENSOR_NAME,
  ATTR_TENSOR_SHAPE,
  ATTR_TOKEN_SEQ,
  EVENT_MOE_ROUTE,
  LABEL_EXPERT,
  LABEL_LAYER,
  MOE_EXPERT_SELECTIONS,
  SPAN_TOKEN,
} from "@profinfer/contract";
import { BadValueError, EmptyModelError, MissingFieldError } from "./errors.js";
import {
  fieldValues,
  findField,
  frameLength,
  toNumber,
  toNumberArray,
  type FrameLike,
} from "./frames.js";
import type { Trace } from "./trace.js";

export type HeatmapMode = "layers" | "tokens";

export interface HeatmapModel {
  mode: HeatmapMode;
  title: string;
  /** row labels: "layer 3" or "#12.0" (llama_decode seq . token in its batch) */
  rows: string[];
  /** expert ids, 0..n-1 */
  experts: number[];
  /** values[row][expert] */
  values: number[][];
  max: number;
  /** the layers the data has; the one shown in tokens mode */
  layers: number[];
  layer: number | null;
}

const PROM = "Prometheus";
const PROM_HINT = `Query sum by (layer, expert) (increase(${MOE_EXPERT_SELECTIONS}[$__range])) as an instant query; profinfer exports it with --metrics-moe.`;

function matrix(rows: number, cols: number): number[][] {
  return Array.from({ length: rows }, () => new Array<number>(cols).fill(0));
}

function finish(
  mode: HeatmapMode,
  title: string,
  rows: string[],
  nExperts: number,
  values: number[][],
  layers: number[],
  layer: number | null,
): HeatmapModel {
  let max = 0;
  for (const r of values) for (const v of r) if (v > max) max = v;
  return {
    mode,
    title,
    rows,
    experts: Array.from({ length: nExperts }, (_, i) => i),
    values,
    max,
    layers,
    layer,
  };
}

/**
 * Prometheus frames: time series (one frame per series, labels layer and expert on the value
 * field; the last value counts, so use an instant query or a range that ends at the panel's end)
 * or a table (columns layer, expert and a value column).
 */
export function heatmapFromPrometheus(frames: readonly FrameLike[]): HeatmapModel {
  const counts = new Map<number, Map<number, number>>();
  let sawNumber = false;
  const add = (layer: number, expert: number, v: number) => {
    const row = counts.get(layer) ?? new Map<number, number>();
    row.set(expert, (row.get(expert) ?? 0) + v);
    counts.set(layer, row);
  };
  for (const frame of frames) {
    const layerCol = findField(frame, LABEL_LAYER);
    const expertCol = findField(frame, LABEL_EXPERT);
    const valueFields = frame.fields.filter(
      (f) =>
        f !== layerCol &&
        f !== expertCol &&
        f.name !== "Time" &&
        (f.type === "number" || fieldValues(f).some((v) => typeof v === "number")),
    );
    if (valueFields.length > 0) sawNumber = true;
    if (layerCol || expertCol) {
      if (!layerCol) throw new MissingFieldError(LABEL_LAYER, PROM, PROM_HINT);
      if (!expertCol) throw new MissingFieldError(LABEL_EXPERT, PROM, PROM_HINT);
      const value = valueFields[0];
      if (!value) throw new MissingFieldError("Value", PROM, PROM_HINT);
      const ls = fieldValues(layerCol);
      const es = fieldValues(expertCol);
      const vs = fieldValues(value);
      for (let i = 0; i < frameLength(frame); i++) {
        const l = toNumber(ls[i]);
        const e = toNumber(es[i]);
        const v = toNumber(vs[i]);
        if (l !== null && e !== null && v !== null) add(l, e, v);
      }
      continue;
    }
    for (const f of valueFields) {
      const labels = f.labels ?? {};
      if (labels[LABEL_LAYER] === undefined)
        throw new MissingFieldError(`${LABEL_LAYER} label`, PROM, PROM_HINT);
      if (labels[LABEL_EXPERT] === undefined)
        throw new MissingFieldError(`${LABEL_EXPERT} label`, PROM, PROM_HINT);
      const l = toNumber(labels[LABEL_LAYER]);
      const e = toNumber(labels[LABEL_EXPERT]);
      const vs = fieldValues(f);
      let last: number | null = null;
      for (let i = vs.length - 1; i >= 0 && last === null; i--) last = toNumber(vs[i]);
      if (l === null || e === null)
        throw new BadValueError(
          `A series has layer="${labels[LABEL_LAYER]}", expert="${labels[LABEL_EXPERT]}": both must be integers.`,
        );
      if (last !== null) add(l, e, last);
    }
  }
  if (!sawNumber) throw new MissingFieldError("Value", PROM, PROM_HINT);
  if (counts.size === 0)
    throw new EmptyModelError(
      `No expert selections in the time range: is the model a Mixture-of-Experts model, and does profinfer export ${MOE_EXPERT_SELECTIONS}?`,
    );
  const layers = [...counts.keys()].sort((a, b) => a - b);
  let nExperts = 0;
  for (const row of counts.values())
    for (const e of row.keys()) nExperts = Math.max(nExperts, e + 1);
  const values = layers.map((l) => {
    const r = new Array<number>(nExperts).fill(0);
    for (const [e, v] of counts.get(l)!) r[e] = v;
    return r;
  });
  return finish(
    "layers",
    `${MOE_EXPERT_SELECTIONS}: layer x expert`,
    layers.map((l) => `layer ${l}`),
    nExperts,
    values,
    layers,
    null,
  );
}

interface Route {
  seq: number;
  layer: number;
  k: number;
  experts: number[];
}

function traceRoutes(trace: Trace): Route[] {
  const routes: Route[] = [];
  for (const span of trace.spans) {
    if (span.name !== SPAN_TOKEN) continue;
    const seq = toNumber(span.attrs.get(ATTR_TOKEN_SEQ)) ?? routes.length;
    for (const ev of span.events) {
      if (ev.name !== EVENT_MOE_ROUTE) continue;
      const layer = toNumber(ev.attrs.get(ATTR_LAYER));
      if (layer === null)
        throw new MissingFieldError(
          ATTR_LAYER,
          `${EVENT_MOE_ROUTE} event`,
          "profinfer writes one moe.route event per layer with ggml.layer, ggml.moe.k and ggml.moe.experts.",
        );
      const k = toNumber(ev.attrs.get(ATTR_MOE_K));
      if (k === null || k < 1)
        throw new MissingFieldError(
          ATTR_MOE_K,
          `${EVENT_MOE_ROUTE} event`,
          "It is the number of experts chosen per token.",
        );
      const experts = toNumberArray(ev.attrs.get(ATTR_MOE_EXPERTS));
      if (!experts)
        throw new MissingFieldError(
          ATTR_MOE_EXPERTS,
          `${EVENT_MOE_ROUTE} event`,
          "It is the int array of expert ids, n_tokens x k.",
        );
      if (experts.length % k !== 0)
        throw new BadValueError(
          `A moe.route event of layer ${layer} has ${experts.length} expert ids, not a multiple of k = ${k}.`,
        );
      routes.push({ seq, layer, k, experts });
    }
  }
  return routes;
}

/** Expert count: the largest id chosen, or the router's logits width when an op span shows it. */
function expertCount(trace: Trace, routes: Route[]): number {
  let n = 0;
  for (const r of routes) for (const e of r.experts) n = Math.max(n, e + 1);
  for (const s of trace.spans) {
    const name = s.attrs.get(ATTR_TENSOR_NAME);
    if (typeof name === "string" && /^ffn_moe_(logits|probs)-\d+$/.test(name)) {
      const shape = toNumberArray(s.attrs.get(ATTR_TENSOR_SHAPE));
      if (shape && shape[0]! > n) n = shape[0]!;
    }
  }
  return n;
}

export interface HeatmapFromTraceOptions {
  mode: HeatmapMode;
  /** the layer of tokens mode; the first layer when absent or unknown */
  layer?: number | null;
}

export function heatmapFromTrace(trace: Trace, options: HeatmapFromTraceOptions): HeatmapModel {
  const routes = traceRoutes(trace);
  if (routes.length === 0)
    throw new EmptyModelError(
      `The trace has no ${EVENT_MOE_ROUTE} events: the model is not a Mixture-of-Experts model, or the run was recorded with --no-moe or below --level op.`,
    );
  const layers = [...new Set(routes.map((r) => r.layer))].sort((a, b) => a - b);
  const nExperts = expertCount(trace, routes);
  if (options.mode === "layers") {
    const values = matrix(layers.length, nExperts);
    for (const r of routes) {
      const row = values[layers.indexOf(r.layer)]!;
      for (const e of r.experts) row[e]! += 1;
    }
    return finish(
      "layers",
      "expert selections: layer x expert",
      layers.map((l) => `layer ${l}`),
      nExperts,
      values,
      layers,
      null,
    );
  }
  const layer =
    options.layer !== undefined && options.layer !== null && layers.includes(options.layer)
      ? options.layer
      : layers[0]!;
  const rows: string[] = [];
  const values: number[][] = [];
  for (const r of routes) {
    if (r.layer !== layer) continue;
    for (let t = 0; t * r.k < r.experts.length; t++) {
      const row = new Array<number>(nExperts).fill(0);
      for (const e of r.experts.slice(t * r.k, (t + 1) * r.k)) row[e]! += 1;
      rows.push(`#${r.seq}.${t}`);
      values.push(row);
    }
  }
  return finish(
    "tokens",
    `experts chosen per token, layer ${layer}`,
    rows,
    nExperts,
    values,
    layers,
    layer,
  );
}
