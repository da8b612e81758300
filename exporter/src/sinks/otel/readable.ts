// SPDX-License-Identifier: Apache-2.0
// Span records as the SDK's ReadableSpan, the type OpenTelemetry's exporters and serializers take.
// The spans are built from recorded events, after the fact, with ids and times of their own: a
// Tracer would draw random ids and read the clock, so the records are handed over as finished
// ReadableSpans instead. Times are HrTime tuples computed from BigInt ns: exact.
import { SpanKind, SpanStatusCode, TraceFlags, type HrTime } from "@opentelemetry/api";
import type { Resource } from "@opentelemetry/resources";
import type { ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { JsonTraceSerializer } from "@opentelemetry/otlp-transformer";
import { closeSync, openSync, writeSync } from "node:fs";
import { SCOPE_NAME } from "@profinfer/contract";
import type { SpanRecord } from "./spans.js";

const NS_PER_S = 1_000_000_000n;

/** [seconds, nanoseconds] of a BigInt ns count, without passing through a JS number of ms. */
export function hrTimeOf(ns: bigint): HrTime {
  return [Number(ns / NS_PER_S), Number(ns % NS_PER_S)];
}

export function toReadableSpans(
  records: readonly SpanRecord[],
  resource: Resource,
  version: string,
): ReadableSpan[] {
  const scope = { name: SCOPE_NAME, version };
  return records.map((r) => {
    const context = { traceId: r.traceId, spanId: r.spanId, traceFlags: TraceFlags.SAMPLED };
    const end = r.endNs >= r.startNs ? r.endNs : r.startNs;
    return {
      name: r.name,
      kind: SpanKind.INTERNAL,
      spanContext: () => context,
      parentSpanContext: r.parentSpanId
        ? { traceId: r.traceId, spanId: r.parentSpanId, traceFlags: TraceFlags.SAMPLED }
        : undefined,
      startTime: hrTimeOf(r.startNs),
      endTime: hrTimeOf(end),
      duration: hrTimeOf(end - r.startNs),
      status: r.error
        ? { code: SpanStatusCode.ERROR, message: r.error }
        : { code: SpanStatusCode.UNSET },
      attributes: r.attributes,
      links: r.links.map((l) => ({
        context: { traceId: l.traceId, spanId: l.spanId, traceFlags: TraceFlags.SAMPLED },
        attributes: l.attributes,
        droppedAttributesCount: 0,
      })),
      events: r.events.map((e) => ({
        name: e.name,
        time: hrTimeOf(e.timeNs),
        attributes: e.attributes,
      })),
      ended: true,
      resource,
      instrumentationScope: scope,
      droppedAttributesCount: 0,
      droppedEventsCount: 0,
      droppedLinksCount: 0,
    };
  });
}

/** Spans per line of traces.otlp.jsonl (one ExportTraceServiceRequest each). */
export const SPANS_PER_REQUEST = 1000;

/**
 * Writes traces.otlp.jsonl as spans come: the OTLP JSON encoding (hex ids, ns times as strings),
 * one ExportTraceServiceRequest of SPANS_PER_REQUEST spans per line (the last may hold fewer), as
 * the OpenTelemetry Collector's file exporter writes it. Holds at most one line's spans.
 */
export class OtlpJsonLinesWriter {
  private readonly fd: number;
  private pending: SpanRecord[] = [];
  lines = 0;
  spans = 0;

  constructor(
    path: string,
    private readonly resource: Resource,
    private readonly version: string,
  ) {
    this.fd = openSync(path, "w");
  }

  add(records: readonly SpanRecord[]): void {
    for (const r of records) {
      this.pending.push(r);
      if (this.pending.length === SPANS_PER_REQUEST) this.writeLine();
    }
  }

  private writeLine(): void {
    const spans = toReadableSpans(this.pending, this.resource, this.version);
    writeSync(this.fd, JsonTraceSerializer.serializeRequest(spans)!);
    writeSync(this.fd, "\n");
    this.lines++;
    this.spans += this.pending.length;
    this.pending = [];
  }

  /** Writes what is left and closes the file; the lines written. */
  close(): number {
    try {
      if (this.pending.length > 0) this.writeLine();
    } finally {
      closeSync(this.fd);
    }
    return this.lines;
  }
}

/** Writes traces.otlp.jsonl of spans in memory. */
export function writeOtlpJsonLines(
  path: string,
  records: readonly SpanRecord[],
  resource: Resource,
  version: string,
): number {
  const writer = new OtlpJsonLinesWriter(path, resource, version);
  writer.add(records);
  return writer.close();
}
