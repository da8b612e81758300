// SPDX-License-Identifier: Apache-2.0
// The span model, live chunking, the spool and the option parsers, on fixture runs (no root).
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { EventType } from "../../abi/events.js";
import { encodeEvent } from "../../../../test/support/encodeEvent.js";
import { moeRunFixture, syntheticRecorder } from "../../../../test/support/fixtures.js";
import { buildRun } from "../../trace/buildRun.js";
import * as C from "@profinfer/contract";
import { LiveSpanExport } from "./live.js";
import { collectHeader, endpointFrom, parseEndpoint } from "./options.js";
import { hrTimeOf } from "./readable.js";
import { buildRunSpans, parseOpSampling, type SpanRecord } from "./spans.js";
import { Spool } from "./spool.js";

test("HrTime from BigInt ns is exact where a double would round", () => {
  const ns = 1_732_870_000_123_456_789n;
  assert.deepEqual(hrTimeOf(ns), [1_732_870_000, 123_456_789]);
  assert.notEqual(BigInt(Number(ns)), ns, "a double cannot hold it");
});

test("a run's spans: one generation, a span per call, graph and sampled operator, unique deterministic ids", () => {
  const run = buildRun(syntheticRecorder(40, 2, 2).recording());
  const spans = buildRunSpans(run, { kind: "every", n: 16 });
  const named = (n: string) => spans.filter((s) => s.name === n);
  assert.equal(named(C.SPAN_GENERATION).length, 1, "a prefill and its decodes are one generation");
  assert.equal(named(C.SPAN_TOKEN).length, 40);
  assert.equal(
    named(C.SPAN_GRAPH).length,
    run.tokens.reduce((n, t) => n + t.graphs.length, 0),
  );
  const withOps = named(C.SPAN_TOKEN).filter((s) => s.attributes[C.ATTR_TOKEN_OPS_EXPORTED]);
  assert.deepEqual(
    withOps.map((s) => s.attributes[C.ATTR_TOKEN_INDEX]),
    [0, 16, 32],
    "every:16 gives the prefill and every 16th call operator spans",
  );
  const opSpans = spans.filter((s) => s.attributes[C.ATTR_OP] !== undefined);
  const opsPerCall = run.tokens[0]!.graphs.find((g) => g.opsRecorded)!.ops.length;
  assert.equal(opSpans.length, 3 * opsPerCall);
  assert.equal(new Set(spans.map((s) => s.spanId)).size, spans.length, "span ids are unique");
  assert.deepEqual(buildRunSpans(run, { kind: "every", n: 16 }), spans, "and the same every time");
  const gen = named(C.SPAN_GENERATION)[0]!;
  assert.equal(gen.attributes[C.ATTR_GEN_AI_USAGE_INPUT_TOKENS], 8);
  assert.equal(gen.attributes[C.ATTR_GEN_AI_USAGE_OUTPUT_TOKENS], 39);
  for (const s of spans.filter((x) => x.parentSpanId)) {
    const parent = spans.find((p) => p.spanId === s.parentSpanId)!;
    assert.ok(s.startNs >= parent.startNs && s.endNs <= parent.endNs, `${s.name} nests`);
  }
  const first = buildRunSpans(run, { kind: "first", k: 2 });
  assert.equal(
    first.filter((s) => s.name === C.SPAN_TOKEN && s.attributes[C.ATTR_TOKEN_OPS_EXPORTED]).length,
    2,
  );
  assert.equal(
    buildRunSpans(run, { kind: "none" }).filter((s) => s.attributes[C.ATTR_OP]).length,
    0,
  );
});

test("MoE routing: a moe.route event per layer with the expert ids row-major", () => {
  const { rec } = moeRunFixture();
  const run = buildRun(rec.recording());
  const spans = buildRunSpans(run, { kind: "all" });
  const token = run.tokens.find((t) => t.experts)!;
  const span = spans.find(
    (s) => s.name === C.SPAN_TOKEN && s.attributes[C.ATTR_TOKEN_SEQ] === token.seq,
  )!;
  const routes = span.events.filter((e) => e.name === C.EVENT_MOE_ROUTE);
  assert.equal(routes.length, token.experts!.size);
  for (const e of routes) {
    const rows = token.experts!.get(e.attributes[C.ATTR_LAYER] as number)!;
    assert.deepEqual(e.attributes[C.ATTR_MOE_EXPERTS], rows.flat());
    assert.equal(e.attributes[C.ATTR_MOE_K], rows[0]!.length);
  }
});

/** Feeds a recording to the live exporter in `slices` batches, exporting after each. */
function liveSpans(
  recording: ReturnType<ReturnType<typeof syntheticRecorder>["recording"]>,
  slices: number,
) {
  const out: SpanRecord[] = [];
  const live = new LiveSpanExport({
    opSampling: { kind: "every", n: 4 },
    intervalMs: 3_600_000,
    marginNs: 0n,
    send: (records) => out.push(...records),
    log: (m) => assert.fail(m),
  });
  live.header(recording.header);
  const per = Math.ceil(recording.events.length / slices);
  for (let at = 0; at < recording.events.length; at += per) {
    const parts: Buffer[] = [];
    for (const ev of recording.events.slice(at, at + per)) {
      const body = encodeEvent(ev);
      const length = Buffer.alloc(4);
      length.writeUInt32LE(body.length);
      parts.push(length, body);
    }
    live.events(Buffer.concat(parts));
    live.exportFinished();
  }
  live.finish();
  return { out, chunks: live.counts.chunks };
}

test("live export chunk by chunk gives the spans of the whole run", () => {
  const recording = syntheticRecorder(30, 2, 2).recording();
  const whole = buildRunSpans(buildRun(recording), { kind: "every", n: 4 });
  const byId = (list: SpanRecord[]) => new Map(list.map((s) => [s.spanId, s]));
  for (const slices of [1, 7, 23]) {
    const { out, chunks } = liveSpans(recording, slices);
    assert.ok(slices === 1 || chunks > 1, `${slices} slices: exported in several chunks`);
    assert.equal(out.length, whole.length);
    assert.deepEqual(byId(out), byId(whole), `${slices} slices: the same spans`);
  }
  const lastTokenEnd = recording.events.filter((e) => e.type === EventType.TOKEN_END).length;
  assert.equal(lastTokenEnd, 30);
});

test("the spool keeps batches exactly (BigInt times), refuses past its bound, and is found again", () => {
  const dir = mkdtempSync(join(tmpdir(), "profinfer-spool-"));
  try {
    const run = buildRun(syntheticRecorder(3, 1, 2).recording());
    const spans = buildRunSpans(run, { kind: "all" });
    const spool = new Spool(join(dir, "s"), 64 << 10);
    assert.ok(spool.write({ "service.name": "x" }, spans.slice(0, 5)));
    const big = Array.from({ length: 400 }, () => spans).flat();
    assert.equal(spool.write({}, big), false, "a batch over the bound is refused");
    const again = new Spool(join(dir, "s"), 64 << 10);
    assert.equal(again.spans, 5);
    const batch = again.oldest()!;
    assert.deepEqual(batch.records, spans.slice(0, 5));
    assert.deepEqual(batch.resource, { "service.name": "x" });
    again.remove(batch.file);
    assert.ok(again.empty);
    writeFileSync(join(dir, "s", "000000000009.spool"), "not json\n{");
    const broken = new Spool(join(dir, "s"), 64 << 10);
    assert.throws(() => broken.oldest(), /unreadable/);
    assert.ok(broken.empty, "an unreadable file is taken out");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("option parsers: endpoint URL, headers, sampling spec, environment fallback", () => {
  assert.equal(parseEndpoint("http://localhost:4317"), "http://localhost:4317");
  assert.equal(parseEndpoint("https://tempo.example:443/"), "https://tempo.example");
  assert.throws(() => parseEndpoint("localhost:4317"), /must start with http:\/\//);
  assert.throws(() => parseEndpoint("not a url"), /not a URL/);
  assert.throws(() => parseEndpoint("http://h:4317/v1/traces"), /has no path/);
  assert.deepEqual(collectHeader("Authorization=Bearer a=b", { x: "1" }), {
    x: "1",
    authorization: "Bearer a=b",
  });
  assert.throws(() => collectHeader("authorization"), /has no '='/);
  assert.deepEqual(parseOpSampling("every:8"), { kind: "every", n: 8 });
  assert.deepEqual(parseOpSampling("first:3"), { kind: "first", k: 3 });
  assert.throws(() => parseOpSampling("every:0"), /every:N/);
  assert.equal(
    endpointFrom(undefined, { OTEL_EXPORTER_OTLP_ENDPOINT: "http://a:1" }),
    "http://a:1",
  );
  assert.equal(
    endpointFrom(undefined, {
      OTEL_EXPORTER_OTLP_ENDPOINT: "http://a:1",
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://b:2",
    }),
    "http://b:2",
  );
  assert.equal(
    endpointFrom("http://c:3", { OTEL_EXPORTER_OTLP_ENDPOINT: "http://a:1" }),
    "http://c:3",
  );
  assert.equal(endpointFrom(undefined, {}), null);
});
