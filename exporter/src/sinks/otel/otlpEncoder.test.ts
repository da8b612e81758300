// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { test } from "node:test";
import type { AttributeValue, Attributes } from "@opentelemetry/api";
import {
  moeRunFixture,
  serverRunFixture,
  syntheticRecorder,
} from "../../../../test/support/fixtures.js";
import {
  OtlpCollector,
  type AttributeValue as Received,
} from "../../../../test/support/otlpCollector.js";
import { buildRun } from "../../trace/buildRun.js";
import { clockFrom } from "../../trace/clock.js";
import { modelNameOfRun } from "../../trace/modelName.js";
import { REQUEST_IDLE_NS } from "../../trace/requests.js";
import type { Run } from "../../trace/types.js";
import { OtlpSpanEncoder, encodeSpanRecords, type EncodedBatch } from "./otlpEncoder.js";
import { SpanBuilder, SpanIds, buildRunSpans, type SpanRecord } from "./spans.js";

const runs: [string, Run][] = [
  ["a server's batched requests", buildRun(serverRunFixture().recording())],
  ["MoE routing and off-CPU time", buildRun(moeRunFixture().rec.recording())],
  ["one sequence", buildRun(syntheticRecorder(6, 2, 2).recording())],
];
const resource: Attributes = { "service.name": "llama-simple", "process.pid": 1000 };

/** A record's value as the receiver reads it: whole numbers as ints, as OpenTelemetry JS sends them. */
function expected(value: AttributeValue | undefined): Received["value"] {
  if (Array.isArray(value)) return value.map((v) => expected(v as AttributeValue));
  if (typeof value === "number" && Number.isInteger(value)) return BigInt(value);
  return value;
}
const values = (attributes: Attributes) =>
  Object.fromEntries(Object.entries(attributes).map(([k, v]) => [k, expected(v)]));
const received = (attributes: Record<string, Received>) =>
  Object.fromEntries(Object.entries(attributes).map(([k, v]) => [k, v.value]));

test("encoded requests, read with the official OTLP protos, hold every span of the records", () => {
  for (const [what, run] of runs) {
    const records = buildRunSpans(run, { kind: "all" });
    const batches = encodeSpanRecords(records, resource, "9.9.9", 7);
    assert.equal(
      batches.reduce((n, b) => n + b.spans, 0),
      records.length,
      `${what}: batches of 7 hold every span`,
    );
    const spans = batches.flatMap((b) => OtlpCollector.decode(b.bytes));
    assert.equal(spans.length, records.length);
    spans.forEach((s, i) => {
      const r: SpanRecord = records[i]!;
      assert.deepEqual(
        {
          ids: [s.traceId, s.spanId, s.parentSpanId],
          name: s.name,
          times: [s.startNs, s.endNs],
          attributes: received(s.attributes),
          events: s.events.map((e) => [e.name, e.timeNs, received(e.attributes)]),
          links: s.links.map((l) => [l.traceId, l.spanId, received(l.attributes)]),
          status: s.status,
          scope: s.scope,
          resource: received(s.resource),
        },
        {
          ids: [r.traceId, r.spanId, r.parentSpanId ?? ""],
          name: r.name,
          times: [r.startNs, r.endNs],
          attributes: values(r.attributes),
          events: r.events.map((e) => [e.name, e.timeNs, values(e.attributes)]),
          links: r.links.map((l) => [l.traceId, l.spanId, values(l.attributes)]),
          status: r.error ? { code: 2, message: r.error } : { code: 0, message: "" },
          scope: "profinfer",
          resource: values(resource),
        },
        `${what}: span ${i} (${r.name})`,
      );
    });
  }
});

test("spans written straight from the model are the bytes of the records encoded", () => {
  for (const [what, run] of runs) {
    const direct: EncodedBatch[] = [];
    const encoder = new OtlpSpanEncoder(resource, "9.9.9", 2048, (b) => direct.push(b));
    const builder = new SpanBuilder(SpanIds.forRun(run), clockFrom(run.header), {
      opSampling: { kind: "every", n: 2 },
      model: modelNameOfRun(run.header, run.notes) ?? "unknown",
      requestIdleNs: REQUEST_IDLE_NS,
    });
    builder.addTokens(run, run.tokens, encoder);
    builder.finish(run.stoppedNs, run.exit, encoder);
    encoder.flush();
    const fromRecords = encodeSpanRecords(
      buildRunSpans(run, { kind: "every", n: 2 }),
      resource,
      "9.9.9",
      2048,
    );
    assert.deepEqual(
      direct.map((b) => Buffer.from(b.bytes).toString("hex")),
      fromRecords.map((b) => Buffer.from(b.bytes).toString("hex")),
      what,
    );
  }
});
