// SPDX-License-Identifier: Apache-2.0
// The timeline overview of the report: llama_decode calls and graph computations over the whole
// trace, and one graph's operators on each worker thread (from the operator spans' thread
// events), as tracks of intervals.
import {
  ATTR_GRAPH_FN,
  ATTR_GRAPH_NODES,
  ATTR_GRAPH_THREADS,
  ATTR_TOKEN_N_TOKENS,
  ATTR_TOKEN_PHASE,
  ATTR_TOKEN_SEQ,
  SPAN_GRAPH,
  SPAN_TOKEN,
} from "@profinfer/contract";
import { opKind, type OpKind } from "./dagModel.js";
import { toNumber } from "./frames.js";
import { dagFromTrace } from "./dagFromTrace.js";
import type { Trace } from "./trace.js";

export interface TimelineItem {
  startMs: number;
  endMs: number;
  label: string;
  kind: OpKind | "prefill" | "decode" | "graph";
}

export interface TimelineTrack {
  name: string;
  items: TimelineItem[];
}

export interface TimelineModel {
  overview: { startMs: number; endMs: number; tracks: TimelineTrack[] };
  /** the operators of one graph per thread; null when the trace has no operator spans */
  graph: { title: string; startMs: number; endMs: number; tracks: TimelineTrack[] } | null;
}

export function timelineFromTrace(trace: Trace, graphId: string | null = null): TimelineModel {
  const tokens: TimelineItem[] = [];
  const graphs: TimelineItem[] = [];
  let start = Infinity;
  let end = -Infinity;
  for (const s of trace.spans) {
    if (s.name !== SPAN_TOKEN && s.name !== SPAN_GRAPH) continue;
    const item: TimelineItem = {
      startMs: s.startMs,
      endMs: s.startMs + s.durationMs,
      label:
        s.name === SPAN_TOKEN
          ? `${String(s.attrs.get(ATTR_TOKEN_PHASE) ?? "token")} #${String(s.attrs.get(ATTR_TOKEN_SEQ) ?? "?")} (${String(s.attrs.get(ATTR_TOKEN_N_TOKENS) ?? "?")} tokens)`
          : `${String(s.attrs.get(ATTR_GRAPH_FN) ?? "")} graph, ${String(s.attrs.get(ATTR_GRAPH_NODES) ?? "?")} nodes`,
      kind:
        s.name === SPAN_GRAPH
          ? "graph"
          : s.attrs.get(ATTR_TOKEN_PHASE) === "prefill"
            ? "prefill"
            : "decode",
    };
    (s.name === SPAN_TOKEN ? tokens : graphs).push(item);
    start = Math.min(start, item.startMs);
    end = Math.max(end, item.endMs);
  }
  const overview = {
    startMs: Number.isFinite(start) ? start : 0,
    endMs: Number.isFinite(end) ? end : 1,
    tracks: [
      { name: "llama_decode", items: tokens },
      { name: "graphs", items: graphs },
    ],
  };
  let graph: TimelineModel["graph"] = null;
  try {
    const dag = dagFromTrace(trace, { graphId });
    const graphSpan = trace.byId.get(dag.graphId!)!;
    const lanes = new Map<string, TimelineItem[]>();
    for (const n of dag.nodes) {
      const add = (lane: string, startMs: number, endMs: number) => {
        const list = lanes.get(lane) ?? [];
        list.push({ startMs, endMs, label: `${n.label} (${n.op})`, kind: opKind(n.op) });
        lanes.set(lane, list);
      };
      if (n.threads.length === 0) {
        const span = trace.byId.get(n.id)!;
        add("operators", span.startMs, span.startMs + span.durationMs);
      }
      for (const t of n.threads)
        add(`thread ${t.ith ?? "?"}${t.tid !== null ? ` (tid ${t.tid})` : ""}`, t.startMs, t.endMs);
    }
    const threads = toNumber(graphSpan.attrs.get(ATTR_GRAPH_THREADS));
    graph = {
      title: `${dag.title}${threads ? `, ${threads} threads` : ""}`,
      startMs: graphSpan.startMs,
      endMs: graphSpan.startMs + graphSpan.durationMs,
      tracks: [...lanes]
        .sort(([a], [b]) => a.localeCompare(b, undefined, { numeric: true }))
        .map(([name, items]) => ({ name, items })),
    };
  } catch {
    graph = null;
  }
  return { overview, graph };
}
