// SPDX-License-Identifier: Apache-2.0
// Spans encoded straight into the OTLP protobuf request the collector takes
// (opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest: one ResourceSpans, one
// ScopeSpans, the spans), part by part as SpanBuilder writes them: no SpanRecord, ReadableSpan or
// attribute object per span, one reused buffer. Values are encoded as OpenTelemetry JS encodes
// them (a number without a fraction as an int, arrays as ArrayValue; trace flags sampled, the
// parent context local), so that a backend sees the spans the SDK's exporter would send. Field
// numbers: opentelemetry-proto's trace/v1/trace.proto, common/v1/common.proto,
// resource/v1/resource.proto.
import type { AttributeValue, Attributes } from "@opentelemetry/api";
import { SCOPE_NAME } from "@profinfer/contract";
import { I32, I64, LEN, ProtoWriter, VARINT } from "../protoWire.js";
import { modelNameOfRun } from "../../trace/modelName.js";
import { REQUEST_IDLE_NS } from "../../trace/requests.js";
import type { Run } from "../../trace/types.js";
import { recordsInto, type AttributeGroup, type SpanRecord, type SpanSink } from "./spanSink.js";
import { SpanBuilder, SpanIds, type OpSampling } from "./spans.js";

/** One ExportTraceServiceRequest, ready to send or to keep in the spool. */
export interface EncodedBatch {
  bytes: Uint8Array;
  /** the spans it holds */
  spans: number;
}

/** Span fields */
const SPAN = {
  traceId: 1,
  spanId: 2,
  parentSpanId: 4,
  name: 5,
  kind: 6,
  start: 7,
  end: 8,
  attributes: 9,
  events: 11,
  links: 13,
  status: 15,
  flags: 16,
};
const EVENT = { time: 1, name: 2, attributes: 3 };
const LINK = { traceId: 1, spanId: 2, attributes: 4, flags: 6 };
const STATUS = { message: 2, code: 3 };
const STATUS_ERROR = 2;
const SPAN_KIND_INTERNAL = 1;
/** W3C trace flag "sampled", and OTLP's flag that says whether the parent is remote (it is not) */
const SPAN_FLAGS = 0x01 | 0x100;

/** opentelemetry.proto.common.v1.AnyValue, as OpenTelemetry JS writes one */
export function anyValue(w: ProtoWriter, value: AttributeValue | null | undefined): void {
  if (typeof value === "string") w.tag(1, LEN).stringCached(value);
  else if (typeof value === "boolean") w.tag(2, VARINT).bool(value);
  else if (typeof value === "number") {
    if (Number.isInteger(value)) w.tag(3, VARINT).int64(value);
    else w.tag(4, I64).double(value);
  } else if (Array.isArray(value)) {
    const array = w.begin(5);
    for (const item of value) {
      const v = w.begin(1);
      anyValue(w, item);
      w.end(v);
    }
    w.end(array);
  }
}

/** A KeyValue in field `field` of the message being written. */
export function keyValue(
  w: ProtoWriter,
  field: number,
  key: string,
  value: AttributeValue | null | undefined,
): void {
  const kv = w.begin(field);
  w.tag(1, LEN).stringCached(key);
  const v = w.begin(2);
  anyValue(w, value);
  w.end(v);
  w.end(kv);
}

/** The Resource message of `attributes`. */
function resourceBytes(attributes: Attributes): Uint8Array {
  const w = new ProtoWriter(4096);
  for (const [key, value] of Object.entries(attributes))
    if (value !== undefined && value !== null) keyValue(w, 1, key, value);
  return w.finish();
}

/**
 * A SpanSink that writes OTLP protobuf: every `batchSpans` spans (and at flush()) one whole
 * request goes to `onBatch`, under the resource set last.
 */
export class OtlpSpanEncoder implements SpanSink {
  private readonly w = new ProtoWriter(1 << 20);
  private resource: Uint8Array;
  private readonly scope: Uint8Array;
  private span = -1;
  /** the event or link being written, and the field its attributes go to */
  private part = -1;
  private attributesField = SPAN.attributes;
  spans = 0;

  constructor(
    resourceAttributes: Attributes,
    version: string,
    private readonly batchSpans: number,
    private readonly onBatch: (batch: EncodedBatch) => void,
  ) {
    this.resource = resourceBytes(resourceAttributes);
    const scope = new ProtoWriter(256);
    scope.tag(1, LEN).string(SCOPE_NAME).tag(2, LEN).string(version);
    this.scope = scope.finish();
  }

  /** The resource of the spans written from now on (the batch under way is sent first). */
  setResource(attributes: Attributes): void {
    this.flush();
    this.resource = resourceBytes(attributes);
  }

  start(
    traceId: string,
    spanId: string,
    parentSpanId: string | null,
    name: string,
    startNs: bigint,
    endNs: bigint,
  ): void {
    const w = this.w;
    this.span = w.begin(2);
    w.tag(SPAN.traceId, LEN).hex(traceId);
    w.tag(SPAN.spanId, LEN).hex(spanId);
    if (parentSpanId !== null) w.tag(SPAN.parentSpanId, LEN).hex(parentSpanId);
    w.tag(SPAN.name, LEN).stringCached(name);
    w.tag(SPAN.kind, VARINT).varint(SPAN_KIND_INTERNAL);
    w.tag(SPAN.start, I64).fixed64(startNs);
    // an end before the start (a clock step) is sent as the start, as the SDK's ReadableSpan did
    w.tag(SPAN.end, I64).fixed64(endNs >= startNs ? endNs : startNs);
    w.tag(SPAN.flags, I32).fixed32(SPAN_FLAGS);
  }

  attribute(key: string, value: AttributeValue): void {
    keyValue(this.w, this.attributesField, key, value);
  }

  /** a group's KeyValues, encoded once for the span's attributes and for a part's */
  private readonly groups = new WeakMap<AttributeGroup, [field: number, bytes: Uint8Array]>();

  attributes(group: AttributeGroup): void {
    const kept = this.groups.get(group);
    if (kept && kept[0] === this.attributesField) {
      this.w.raw(kept[1]);
      return;
    }
    const start = this.w.pos;
    for (const [key, value] of group.entries) this.attribute(key, value);
    const bytes = Uint8Array.prototype.slice.call(this.w.view(), start);
    this.groups.set(group, [this.attributesField, bytes]);
  }

  private closePart(): void {
    if (this.part < 0) return;
    this.w.end(this.part);
    this.part = -1;
    this.attributesField = SPAN.attributes;
  }

  event(name: string, timeNs: bigint): void {
    this.closePart();
    const w = this.w;
    this.part = w.begin(SPAN.events);
    w.tag(EVENT.time, I64).fixed64(timeNs);
    w.tag(EVENT.name, LEN).stringCached(name);
    this.attributesField = EVENT.attributes;
  }

  link(traceId: string, spanId: string): void {
    this.closePart();
    const w = this.w;
    this.part = w.begin(SPAN.links);
    w.tag(LINK.traceId, LEN).hex(traceId);
    w.tag(LINK.spanId, LEN).hex(spanId);
    w.tag(LINK.flags, I32).fixed32(SPAN_FLAGS);
    this.attributesField = LINK.attributes;
  }

  error(message: string): void {
    this.closePart();
    const w = this.w;
    const status = w.begin(SPAN.status);
    w.tag(STATUS.message, LEN).string(message);
    w.tag(STATUS.code, VARINT).varint(STATUS_ERROR);
    w.end(status);
  }

  end(): void {
    this.closePart();
    this.w.end(this.span);
    this.span = -1;
    if (++this.spans >= this.batchSpans) this.flush();
  }

  /** Hands over the spans written so far as one request (nothing when there are none). */
  flush(): void {
    if (this.spans === 0) return;
    const spans = this.w.view();
    const out = new ProtoWriter(spans.length + this.resource.length + this.scope.length + 64);
    const resourceSpans = out.begin(1);
    out.tag(1, LEN).bytes(this.resource);
    const scopeSpans = out.begin(2);
    out.tag(1, LEN).bytes(this.scope);
    out.raw(spans);
    out.end(scopeSpans);
    out.end(resourceSpans);
    const batch = { bytes: out.finish(), spans: this.spans };
    this.w.reset();
    this.spans = 0;
    this.onBatch(batch);
  }
}

/** Span records as requests of at most `batchSpans` spans under `resource`. */
export function encodeSpanRecords(
  records: readonly SpanRecord[],
  resource: Attributes,
  version: string,
  batchSpans: number,
): EncodedBatch[] {
  const batches: EncodedBatch[] = [];
  const encoder = new OtlpSpanEncoder(resource, version, batchSpans, (b) => batches.push(b));
  recordsInto(encoder, records);
  encoder.flush();
  return batches;
}

/** Every span of a run built whole, straight into requests of 2048 spans (the live export's way). */
export function encodeRunSpans(
  run: Run,
  opSampling: OpSampling,
  resource: Attributes,
  version: string,
): EncodedBatch[] {
  const batches: EncodedBatch[] = [];
  const encoder = new OtlpSpanEncoder(resource, version, 2048, (b) => batches.push(b));
  const builder = new SpanBuilder(SpanIds.forRun(run), run.clock, {
    opSampling,
    model: modelNameOfRun(run.header, run.notes) ?? "unknown",
    requestIdleNs: REQUEST_IDLE_NS,
  });
  builder.addTokens(run, run.tokens, encoder);
  builder.finish(run.stoppedNs, run.exit, encoder);
  encoder.flush();
  return batches;
}
