// SPDX-License-Identifier: Apache-2.0
// A run as the data frame Grafana's Tempo data source returns for a trace (one row per span:
// traceID, spanID, parentSpanID, operationName, serviceName, ..., startTime and duration in ms,
// tags and logs as lists of {key, value}; array attributes as their JSON text, the way Tempo's
// pcommon.Value.AsString writes them). The rows are the spans of the OTLP export
// (sinks/otel/spans.ts), so the report, a Tempo query and traces.otlp.jsonl carry the same spans;
// the report feeds the frame to the plugin's own frame readers, so report.html and the Grafana
// panel go through the same data -> model code.
import { basename } from "node:path";
import type { AttributeValue, Attributes } from "@opentelemetry/api";
import {
  mainGraphIndex,
  type FrameField,
  type FrameKeyValue,
  type TraceFrame,
} from "@profinfer/contract";
import { modelNameOfRun } from "../trace/modelName.js";
import type { GraphRun, Run } from "../trace/types.js";
import { resourceAttributes } from "./otel/resource.js";
import { buildRunSpans, graphSignature, type SpanRecord } from "./otel/spans.js";

/** The model name users know a run by: the GGUF file it ran (or its -m argument), else the program. */
export function runModelName(run: {
  header: Run["header"];
  notes: readonly Run["notes"][number][];
}): string {
  return (
    modelNameOfRun(run.header, run.notes) ?? basename(run.header.target.command[0] ?? "llama.cpp")
  );
}

/** The graph a report shows first: the one rule of @profinfer/contract's mainGraphIndex. */
export function mainDecodeGraph(run: Run): GraphRun | null {
  const phaseOf = new Map(run.tokens.map((t) => [t.seq, t.phase]));
  const index = mainGraphIndex(
    run.graphRuns.map((g) => ({
      decode: g.tokenSeq !== null && phaseOf.get(g.tokenSeq) === "decode",
      withOps: g.opsRecorded && g.ops.length > 0,
      complete: g.complete,
      description: graphSignature(g),
    })),
  );
  return index < 0 ? null : run.graphRuns[index]!;
}

/** The first graph with operators of a call with prompt tokens, beside the decode graph. */
export function firstPrefillGraph(run: Run): GraphRun | null {
  const phaseOf = new Map(run.tokens.map((t) => [t.seq, t.phase]));
  return (
    run.graphRuns.find(
      (g) =>
        g.opsRecorded &&
        g.ops.length > 0 &&
        g.tokenSeq !== null &&
        phaseOf.get(g.tokenSeq) !== undefined &&
        phaseOf.get(g.tokenSeq) !== "decode",
    ) ?? null
  );
}

export interface TraceFrameOptions {
  /** graphs whose operators become spans (all graph and token spans are always there) */
  opGraphs: GraphRun[];
}

/** An attribute as Tempo hands it to Grafana: arrays as their JSON text. */
function tagValue(value: AttributeValue | undefined): string | number | boolean {
  if (Array.isArray(value)) return JSON.stringify(value);
  return value ?? "";
}

function keyValues(attributes: Record<string, AttributeValue | undefined>): FrameKeyValue[] {
  return Object.entries(attributes).map(([key, value]) => ({ key, value: tagValue(value) }));
}

/** A run's spans as the trace frame: every token and graph span, operators of `opGraphs`. */
export function traceFrame(run: Run, options: TraceFrameOptions): TraceFrame {
  const spans = buildRunSpans(run, { kind: "none" }, { opGraphs: new Set(options.opGraphs) });
  const resource = resourceAttributes(
    run.header,
    run.notes.map((n) => n.note),
  );
  return traceFrameOf(spans, resource, run.header.profinfer);
}

/** Spans of `resource` as the trace frame Tempo would return for them. */
export function traceFrameOf(
  spans: readonly SpanRecord[],
  resource: Attributes,
  version: string,
): TraceFrame {
  const serviceName = String(resource["service.name"] ?? "profinfer");
  const serviceTags = keyValues(resource);
  const ms = (ns: bigint) => Number(ns) / 1e6;
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
    length: spans.length,
    fields: [
      column(
        "traceID",
        "string",
        spans.map((s) => s.traceId),
      ),
      column(
        "spanID",
        "string",
        spans.map((s) => s.spanId),
      ),
      column(
        "parentSpanID",
        "string",
        spans.map((s) => s.parentSpanId ?? ""),
      ),
      column(
        "operationName",
        "string",
        spans.map((s) => s.name),
      ),
      column(
        "serviceName",
        "string",
        spans.map(() => serviceName),
      ),
      column(
        "kind",
        "string",
        spans.map(() => "internal"),
      ),
      column(
        "statusCode",
        "number",
        spans.map((s) => (s.error ? 2 : 0)),
      ),
      column(
        "statusMessage",
        "string",
        spans.map((s) => s.error ?? ""),
      ),
      column(
        "instrumentationLibraryName",
        "string",
        spans.map(() => "profinfer"),
      ),
      column(
        "instrumentationLibraryVersion",
        "string",
        spans.map(() => version),
      ),
      column(
        "traceState",
        "string",
        spans.map(() => ""),
      ),
      column(
        "serviceTags",
        "other",
        spans.map(() => serviceTags),
      ),
      column(
        "startTime",
        "number",
        spans.map((s) => ms(s.startNs)),
      ),
      column(
        "duration",
        "number",
        spans.map((s) => Number(s.endNs - s.startNs) / 1e6),
      ),
      column(
        "logs",
        "other",
        spans.map((s) =>
          s.events.map((e) => ({
            timestamp: ms(e.timeNs),
            name: e.name,
            fields: keyValues(e.attributes),
          })),
        ),
      ),
      column(
        "references",
        "other",
        spans.map((s) =>
          s.links.map((l) => ({
            traceID: l.traceId,
            spanID: l.spanId,
            tags: keyValues(l.attributes),
          })),
        ),
      ),
      column(
        "tags",
        "other",
        spans.map((s) => keyValues(s.attributes)),
      ),
    ],
  };
}
