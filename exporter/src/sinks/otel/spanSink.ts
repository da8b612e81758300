// SPDX-License-Identifier: Apache-2.0
// Where SpanBuilder (spans.ts) writes the spans it makes, part by part, in one order: a span's
// start, its attributes, events (each followed by its attributes) and links (likewise), its
// status, its end. Two sinks read it: RecordSink makes SpanRecord objects (traces.otlp.jsonl, the
// report, tests), the OTLP encoder writes the protobuf request the collector takes directly
// (otlpEncoder.ts), without an object per span or attribute: the live export's cost per span is
// the encoding alone. One builder, so both hold the very same spans.
import type { AttributeValue, Attributes } from "@opentelemetry/api";

export interface SpanEventRecord {
  name: string;
  /** wall-clock ns since the Unix epoch */
  timeNs: bigint;
  attributes: Attributes;
}

/** A span link: the span it points to, in its own trace, and what the link says. */
export interface SpanLinkRecord {
  traceId: string;
  spanId: string;
  attributes: Attributes;
}

export interface SpanRecord {
  traceId: string;
  spanId: string;
  parentSpanId: string | null;
  name: string;
  /** wall-clock ns since the Unix epoch, from the BPF clock (exact) */
  startNs: bigint;
  endNs: bigint;
  attributes: Attributes;
  events: SpanEventRecord[];
  links: SpanLinkRecord[];
  /** set when the span records a failure (status ERROR with this message) */
  error?: string;
}

export interface SpanSink {
  /** a span: hex ids, its parent's (null: a root), wall-clock ns since the epoch */
  start(
    traceId: string,
    spanId: string,
    parentSpanId: string | null,
    name: string,
    startNs: bigint,
    endNs: bigint,
  ): void;
  attribute(key: string, value: AttributeValue): void;
  /**
   * attributes of the span that come together, the same each time the same group is given (an
   * operator's tensor, shape and sources: a graph's node's): a sink may keep what it made of them
   */
  attributes(group: AttributeGroup): void;
  /** an event of the span; the attributes that follow are the event's, until the next part */
  event(name: string, timeNs: bigint): void;
  /** a link of the span; the attributes that follow are the link's, until the next part */
  link(traceId: string, spanId: string): void;
  /** the span records a failure (status ERROR with this message) */
  error(message: string): void;
  end(): void;
}

/**
 * Attributes a builder gives again and again in one piece: the object is the group's identity,
 * its entries do not change once made.
 */
export interface AttributeGroup {
  readonly entries: readonly (readonly [string, AttributeValue])[];
}

/** Writes the attributes of an object into a sink, in its key order. */
export function attributesInto(sink: SpanSink, attributes: Attributes): void {
  for (const key in attributes) {
    const value = attributes[key];
    if (value !== undefined) sink.attribute(key, value);
  }
}

/** Spans as SpanRecord objects, in the order they end. */
export class RecordSink implements SpanSink {
  readonly records: SpanRecord[] = [];
  private span: SpanRecord | null = null;
  private target: Attributes | null = null;

  start(
    traceId: string,
    spanId: string,
    parentSpanId: string | null,
    name: string,
    startNs: bigint,
    endNs: bigint,
  ): void {
    this.span = {
      traceId,
      spanId,
      parentSpanId,
      name,
      startNs,
      endNs,
      attributes: {},
      events: [],
      links: [],
    };
    this.target = this.span.attributes;
  }

  attributes(group: AttributeGroup): void {
    for (const [key, value] of group.entries) this.attribute(key, value);
  }

  attribute(key: string, value: AttributeValue): void {
    this.target![key] = value;
  }

  event(name: string, timeNs: bigint): void {
    const event: SpanEventRecord = { name, timeNs, attributes: {} };
    this.span!.events.push(event);
    this.target = event.attributes;
  }

  link(traceId: string, spanId: string): void {
    const link = { traceId, spanId, attributes: {} };
    this.span!.links.push(link);
    this.target = link.attributes;
  }

  error(message: string): void {
    this.span!.error = message;
  }

  end(): void {
    this.records.push(this.span!);
    this.span = null;
    this.target = null;
  }

  /** The records made so far, handed over and forgotten. */
  take(): SpanRecord[] {
    return this.records.splice(0);
  }
}

/** Replays span records into a sink (the spool of an older profinfer, replay's records). */
export function recordsInto(sink: SpanSink, records: readonly SpanRecord[]): void {
  for (const r of records) {
    sink.start(r.traceId, r.spanId, r.parentSpanId, r.name, r.startNs, r.endNs);
    attributesInto(sink, r.attributes);
    for (const e of r.events) {
      sink.event(e.name, e.timeNs);
      attributesInto(sink, e.attributes);
    }
    for (const l of r.links) {
      sink.link(l.traceId, l.spanId);
      attributesInto(sink, l.attributes);
    }
    if (r.error !== undefined) sink.error(r.error);
    sink.end();
  }
}
