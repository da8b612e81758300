// SPDX-License-Identifier: Apache-2.0
// A trace frame as Grafana's Tempo data source returns it (one row per span: traceID, spanID,
// parentSpanID, operationName, serviceName, startTime in ms, duration in ms, tags, logs, ...)
// turned into spans with their attributes and events.
import { BadValueError, MissingFieldError } from "./errors.js";
import {
  fieldValues,
  findField,
  frameLength,
  parseJsonValue,
  requireField,
  toNumber,
  type FrameLike,
} from "./frames.js";

export interface SpanEvent {
  name: string;
  timestampMs: number;
  attrs: Map<string, unknown>;
}

export interface Span {
  traceId: string;
  spanId: string;
  /** null for a root span */
  parentSpanId: string | null;
  name: string;
  serviceName: string;
  /** Unix time in ms, as the Tempo frame has it */
  startMs: number;
  durationMs: number;
  attrs: Map<string, unknown>;
  events: SpanEvent[];
}

export interface Trace {
  spans: Span[];
  byId: Map<string, Span>;
  /** children of each span, in start order */
  children: Map<string, Span[]>;
}

const TRACE_FRAME = "Tempo trace";
const TRACE_HINT =
  "Query a single trace with the Tempo data source (query type TraceQL, a trace ID) so that the panel gets its spans.";

/** Whether a frame is a trace (Tempo, Jaeger and Zipkin mark it; the fields tell otherwise). */
export function isTraceFrame(frame: FrameLike): boolean {
  if (frame.meta?.preferredVisualisationType === "trace") return true;
  return !!findField(frame, "spanID") && !!findField(frame, "operationName");
}

function keyValues(value: unknown, what: string): Map<string, unknown> {
  const parsed = parseJsonValue(value);
  const out = new Map<string, unknown>();
  if (parsed === null || parsed === undefined) return out;
  if (!Array.isArray(parsed))
    throw new BadValueError(`${what} holds ${typeof parsed}, not a list of {key, value}.`);
  for (const kv of parsed as { key?: unknown; value?: unknown }[]) {
    if (kv && typeof kv.key === "string") out.set(kv.key, kv.value);
  }
  return out;
}

function spanEvents(value: unknown): SpanEvent[] {
  const parsed = parseJsonValue(value);
  if (!Array.isArray(parsed)) return [];
  return (parsed as { name?: unknown; timestamp?: unknown; fields?: unknown }[]).map((log) => ({
    name: typeof log.name === "string" ? log.name : "",
    timestampMs: toNumber(log.timestamp) ?? 0,
    attrs: keyValues(log.fields ?? [], "a span event's fields"),
  }));
}

const isRootParent = (id: unknown): boolean =>
  id === null || id === undefined || id === "" || /^0+$/.test(String(id));

/** The spans of a trace frame; throws MissingFieldError naming the first field it lacks. */
export function traceFromFrame(frame: FrameLike, needEvents = false): Trace {
  const need = (name: string) => fieldValues(requireField(frame, name, TRACE_FRAME, TRACE_HINT));
  const spanIds = need("spanID");
  const parents = need("parentSpanID");
  const names = need("operationName");
  const starts = need("startTime");
  const durations = need("duration");
  const tags = need("tags");
  const logsField = findField(frame, "logs");
  if (!logsField && needEvents)
    throw new MissingFieldError(
      "logs",
      TRACE_FRAME,
      "Span events (moe.route, thread) come in the logs field; query the trace with the Tempo data source.",
    );
  const logs = logsField ? fieldValues(logsField) : [];
  const traceIds = fieldValues(findField(frame, "traceID") ?? { name: "traceID", values: [] });
  const services = fieldValues(
    findField(frame, "serviceName") ?? { name: "serviceName", values: [] },
  );
  const spans: Span[] = [];
  const n = frameLength(frame);
  for (let i = 0; i < n; i++) {
    const spanId = spanIds[i];
    if (spanId === null || spanId === undefined) continue;
    spans.push({
      traceId: String(traceIds[i] ?? ""),
      spanId: String(spanId),
      parentSpanId: isRootParent(parents[i]) ? null : String(parents[i]),
      name: String(names[i] ?? ""),
      serviceName: String(services[i] ?? ""),
      startMs: toNumber(starts[i]) ?? 0,
      durationMs: toNumber(durations[i]) ?? 0,
      attrs: keyValues(tags[i], `the tags of span ${String(spanId)}`),
      events: spanEvents(logs[i]),
    });
  }
  spans.sort((a, b) => a.startMs - b.startMs);
  const byId = new Map(spans.map((s) => [s.spanId, s]));
  const children = new Map<string, Span[]>();
  for (const s of spans) {
    if (s.parentSpanId === null) continue;
    const list = children.get(s.parentSpanId);
    if (list) list.push(s);
    else children.set(s.parentSpanId, [s]);
  }
  return { spans, byId, children };
}

/** The nearest ancestor (or the span itself) with the given name. */
export function ancestorNamed(trace: Trace, span: Span, name: string): Span | null {
  let s: Span | undefined = span;
  for (let guard = 0; s && guard < 64; guard++) {
    if (s.name === name) return s;
    s = s.parentSpanId === null ? undefined : trace.byId.get(s.parentSpanId);
  }
  return null;
}
