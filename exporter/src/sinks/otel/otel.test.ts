// SPDX-License-Identifier: Apache-2.0
// The span model, live chunking, the spool and the option parsers, on fixture runs (no root).
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { batchOf } from "../../../../test/support/encodeEvent.js";
import {
  MOE_FIXTURE_TIDS,
  moeRunFixture,
  serverRecorder,
  serverRunFixture,
  syntheticRecorder,
} from "../../../../test/support/fixtures.js";
import { EventType } from "../../abi/events.js";
import { buildRun } from "../../trace/buildRun.js";
import { toWallClockNs } from "../../trace/clock.js";
import * as C from "@profinfer/contract";
import { OtlpCollector } from "../../../../test/support/otlpCollector.js";
import { LiveSpanExport } from "./live.js";
import { encodeSpanRecords } from "./otlpEncoder.js";
import { RecordSink } from "./spanSink.js";
import { collectHeader, endpointFrom, parseEndpoint } from "./options.js";
import { hrTimeOf } from "./readable.js";
import { REQUEST_IDLE_NS } from "../../trace/requests.js";
import { buildRunSpans, parseOpSampling, type OpSampling, type SpanRecord } from "./spans.js";
import { Spool } from "./spool.js";

test("HrTime from BigInt ns is exact where a double would round", () => {
  const ns = 1_732_870_000_123_456_789n;
  assert.deepEqual(hrTimeOf(ns), [1_732_870_000, 123_456_789]);
  assert.notEqual(BigInt(Number(ns)), ns, "a double cannot hold it");
});

/** The spans of `run`'s traces: trace id -> its spans. */
function traces(spans: readonly SpanRecord[]): Map<string, SpanRecord[]> {
  const out = new Map<string, SpanRecord[]>();
  for (const s of spans) {
    const list = out.get(s.traceId) ?? [];
    list.push(s);
    out.set(s.traceId, list);
  }
  return out;
}

const isRequestRoot = (s: SpanRecord) => s.attributes[C.ATTR_GEN_AI_OPERATION_NAME] !== undefined;
const isStep = (s: SpanRecord) => (C.STEP_SPAN_NAMES as readonly string[]).includes(s.name);

/**
 * What every profinfer span set must be: unique ids; each trace has one root, and its other
 * spans nest in their parents; a request trace is its root and one step per call it took part
 * in; every step links to its call's llama_decode span and that span links back to it.
 */
function assertShape(spans: readonly SpanRecord[]): void {
  assert.equal(new Set(spans.map((s) => s.spanId)).size, spans.length, "span ids are unique");
  const byId = new Map(spans.map((s) => [s.spanId, s]));
  for (const [traceId, list] of traces(spans)) {
    const roots = list.filter((s) => s.parentSpanId === null);
    assert.equal(roots.length, 1, `trace ${traceId} has one root`);
    for (const s of list.filter((x) => x.parentSpanId !== null)) {
      const parent = byId.get(s.parentSpanId!)!;
      assert.equal(parent.traceId, traceId, `${s.name}: its parent is in its trace`);
      assert.ok(s.startNs >= parent.startNs && s.endNs <= parent.endNs, `${s.name} nests`);
    }
    const root = roots[0]!;
    if (isRequestRoot(root)) {
      assert.ok(
        list.every((s) => s === root || (isStep(s) && s.parentSpanId === root.spanId)),
        "a request trace holds its root and its steps only",
      );
      assert.equal(list.length - 1, root.attributes[C.ATTR_REQUEST_STEPS]);
    } else {
      assert.equal(root.name, C.SPAN_TOKEN, "every other trace is a llama_decode call's");
      assert.ok(list.every((s) => !isStep(s) && !isRequestRoot(s)));
    }
  }
  for (const step of spans.filter(isStep)) {
    assert.equal(step.links.length, 1, `${step.name}: one link, to its call`);
    const call = byId.get(step.links[0]!.spanId)!;
    assert.equal(call.name, C.SPAN_TOKEN);
    assert.equal(call.traceId, step.links[0]!.traceId);
    assert.equal(call.attributes[C.ATTR_TOKEN_SEQ], step.attributes[C.ATTR_TOKEN_SEQ]);
    assert.deepEqual([call.startNs, call.endNs], [step.startNs, step.endNs]);
    const back = call.links.filter((l) => l.spanId === step.spanId);
    assert.equal(back.length, 1, "its call links back to it");
    assert.equal(back[0]!.traceId, step.traceId);
    assert.equal(back[0]!.attributes[C.ATTR_STEP_KIND], step.name);
    assert.equal(back[0]!.attributes[C.ATTR_STEP_TOKENS], step.attributes[C.ATTR_STEP_TOKENS]);
  }
  for (const call of spans.filter((s) => s.name === C.SPAN_TOKEN)) {
    assert.equal(call.links.length, call.attributes[C.ATTR_TOKEN_REQUESTS]);
    for (const l of call.links) assert.ok(byId.get(l.spanId) && isStep(byId.get(l.spanId)!));
    const tokens = call.links.reduce((n, l) => n + Number(l.attributes[C.ATTR_STEP_TOKENS]), 0);
    assert.equal(tokens, call.attributes[C.ATTR_TOKEN_N_TOKENS], "its steps hold its tokens");
  }
}

test("one sequence: one request trace with a step per call, one trace per call, sampled operators, deterministic ids", () => {
  const run = buildRun(syntheticRecorder(40, 2, 2).recording());
  const spans = buildRunSpans(run, { kind: "every", n: 16 });
  assertShape(spans);
  const named = (n: string) => spans.filter((s) => s.name === n);
  const roots = spans.filter(isRequestRoot);
  assert.equal(roots.length, 1, "a prompt and its decode steps are one request");
  const root = roots[0]!;
  assert.equal(
    root.name,
    "text_completion tiny",
    "{operation} {model}: the -m file name when no model note says",
  );
  assert.equal(named(C.SPAN_TOKEN).length, 40);
  assert.equal(traces(spans).size, 41, "a trace per call and one for the request");
  assert.deepEqual(
    spans.filter(isStep).map((s) => s.name),
    ["prefill", ...new Array<string>(39).fill("decode")],
  );
  assert.equal(
    named(C.SPAN_GRAPH).length,
    run.tokens.reduce((n, t) => n + t.graphs.length, 0),
  );
  const withOps = named(C.SPAN_TOKEN).filter((s) => s.attributes[C.ATTR_TOKEN_OPS_EXPORTED]);
  assert.deepEqual(
    withOps.map((s) => s.attributes[C.ATTR_TOKEN_SEQ]),
    [1, 16, 32],
    "every:16 gives the prompt's call and the calls whose seq is a multiple of 16 operator spans",
  );
  const opSpans = spans.filter((s) => s.attributes[C.ATTR_OP] !== undefined);
  const opsPerCall = run.tokens[0]!.graphs.find((g) => g.opsRecorded)!.ops.length;
  assert.equal(opSpans.length, 3 * opsPerCall);
  assert.deepEqual(buildRunSpans(run, { kind: "every", n: 16 }), spans, "and the same every time");
  assert.equal(root.attributes[C.ATTR_GEN_AI_USAGE_INPUT_TOKENS], 8);
  assert.equal(root.attributes[C.ATTR_GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS], undefined);
  assert.equal(root.attributes[C.ATTR_GEN_AI_USAGE_OUTPUT_TOKENS], 40, "the prompt's token too");
  const request = run.requests[0]!;
  assert.equal(
    root.attributes[C.ATTR_GEN_AI_SERVER_TIME_TO_FIRST_TOKEN],
    Number(request.firstOutputNs! - request.startNs) / 1e9,
  );
  assert.equal(
    root.attributes[C.ATTR_GEN_AI_SERVER_TIME_PER_OUTPUT_TOKEN],
    Number(request.endNs - request.firstOutputNs!) / 39 / 1e9,
  );
  assert.equal(root.error, undefined);
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

test("server slots: a trace per request with its share of each batch, linked both ways to every call it took part in", () => {
  const run = buildRun(serverRunFixture().recording());
  const spans = buildRunSpans(run, { kind: "every", n: 4 });
  assertShape(spans);
  const roots = spans.filter(isRequestRoot);
  assert.equal(roots.length, 5);
  assert.equal(run.requests.length, 5, "the model finds the same five");
  const stepsOf = (root: SpanRecord) =>
    spans.filter((s) => s.traceId === root.traceId && s !== root);
  for (const request of run.requests) {
    const root = roots.find(
      (r) =>
        r.attributes[C.ATTR_REQUEST_SEQ_ID] === request.seqId &&
        r.attributes[C.ATTR_REQUEST_FIRST_SEQ] === request.steps[0]!.token.seq,
    )!;
    assert.ok(root, `request ${request.id} has a trace`);
    const steps = stepsOf(root);
    assert.deepEqual(
      steps.map((s) => s.attributes[C.ATTR_TOKEN_SEQ]),
      request.steps.map((s) => s.token.seq),
      "a step per call it took part in",
    );
    steps.forEach((s, i) => {
      const step = request.steps[i]!;
      assert.equal(s.attributes[C.ATTR_STEP_INDEX], i);
      assert.equal(s.attributes[C.ATTR_STEP_TOKENS], step.nTokens);
      assert.equal(s.attributes[C.ATTR_STEP_SHARE], step.nTokens / step.token.nTokens);
      assert.equal(s.attributes[C.ATTR_STEP_POS_MIN], step.posMin);
      assert.equal(
        s.name,
        { prompt: "prefill", decode: "decode", speculative: "speculative" }[step.kind],
      );
    });
    const a = root.attributes;
    assert.equal(a[C.ATTR_GEN_AI_USAGE_INPUT_TOKENS], request.promptTokens + request.cachedTokens!);
    assert.equal(a[C.ATTR_GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS], request.cachedTokens);
    assert.equal(a[C.ATTR_REQUEST_PROMPT_TOKENS], request.promptTokens);
    assert.equal(a[C.ATTR_GEN_AI_USAGE_OUTPUT_TOKENS], request.generatedTokens);
    assert.equal(
      a[C.ATTR_GEN_AI_SERVER_TIME_TO_FIRST_TOKEN],
      Number(request.firstOutputNs! - request.startNs) / 1e9,
    );
    assert.equal(root.error, request.incomplete ?? undefined);
    assert.deepEqual(
      [root.startNs, root.endNs],
      [toWallClockNs(run.clock, request.startNs), toWallClockNs(run.clock, request.endNs)],
    );
  }
  const byName = (seqId: number, firstSeq: number) =>
    roots.find(
      (r) =>
        r.attributes[C.ATTR_REQUEST_SEQ_ID] === seqId &&
        r.attributes[C.ATTR_REQUEST_FIRST_SEQ] === firstSeq,
    )!;
  const d = byName(0, 7);
  assert.equal(d.attributes[C.ATTR_GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS], 2, "D reused 2 tokens");
  assert.equal(d.attributes[C.ATTR_GEN_AI_USAGE_INPUT_TOKENS], 7);
  assert.equal(byName(1, 9).error, "the recording ended during it", "E was cut off");
  // the mixed call 2 serves A's decode step and B's prompt: one llama_decode span, two links
  const call2 = spans.find((s) => s.name === C.SPAN_TOKEN && s.attributes[C.ATTR_TOKEN_SEQ] === 2)!;
  assert.equal(call2.attributes[C.ATTR_TOKEN_PHASE], "mixed");
  assert.deepEqual(
    call2.links.map((l) => [l.attributes[C.ATTR_REQUEST_SEQ_ID], l.attributes[C.ATTR_STEP_KIND]]),
    [
      [0, "decode"],
      [1, "prefill"],
    ],
  );
  assert.deepEqual(
    call2.links.map((l) => l.traceId),
    [byName(0, 1).traceId, byName(1, 2).traceId],
  );
  // operator spans per call: every call with prompt tokens, and seq 4 and 8
  assert.deepEqual(
    spans
      .filter((s) => s.name === C.SPAN_TOKEN && s.attributes[C.ATTR_TOKEN_OPS_EXPORTED])
      .map((s) => s.attributes[C.ATTR_TOKEN_SEQ]),
    [1, 2, 3, 4, 7, 8, 9],
  );
});

test("a sequence idle for the bound ends its request: its next calls are a request of their own", () => {
  const rec = serverRecorder([
    { parts: [[0, 4, 0, 1]] },
    { parts: [[0, 1, 4, 1]] },
    { parts: [[0, 1, 5, 1]], gapNs: 1_500_000_000n },
    { parts: [[0, 1, 6, 1]], gapNs: 2_500_000_000n },
    { parts: [[0, 1, 7, 1]] },
  ]);
  const run = buildRun(rec.recording());
  assert.equal(run.requests.length, 1, "the model sees one request");
  const spans = buildRunSpans(run, { kind: "none" });
  assertShape(spans);
  const roots = spans.filter(isRequestRoot);
  assert.deepEqual(
    roots.map((r) => [r.attributes[C.ATTR_REQUEST_FIRST_SEQ], r.attributes[C.ATTR_REQUEST_STEPS]]),
    [
      [1, 3],
      [4, 2],
    ],
    "a pause of 1.5 s keeps the request, one of 2.5 s ends it",
  );
  const longer = buildRunSpans(run, { kind: "none" }, { requestIdleNs: 3_000_000_000n });
  assert.equal(longer.filter(isRequestRoot).length, 1, "with a bound of 3 s it is one");
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

type Recording = ReturnType<ReturnType<typeof syntheticRecorder>["recording"]>;

/** A batch of records as the recorder hands them to its listeners. */
function liveExport(
  out: RecordSink,
  nowNs?: () => bigint,
  opSampling: OpSampling = { kind: "every", n: 4 },
): LiveSpanExport {
  return new LiveSpanExport({
    opSampling,
    requestIdleNs: REQUEST_IDLE_NS,
    intervalMs: 1000,
    marginNs: 0n,
    sink: out,
    log: (m) => assert.fail(m),
    // the clock never runs ahead of the events: only cuts end idle requests
    nowNs: nowNs ?? (() => 0n),
  });
}

/** Feeds a recording to the live exporter in `slices` batches, exporting after each. */
function liveSpans(recording: Recording, slices: number, opSampling?: OpSampling) {
  const sink = new RecordSink();
  const live = liveExport(sink, undefined, opSampling);
  live.header(recording.header);
  const per = Math.ceil(recording.events.length / slices);
  for (let at = 0; at < recording.events.length; at += per) {
    live.events(batchOf(recording.events.slice(at, at + per)));
    live.exportFinished();
  }
  for (const { note } of recording.notes) live.note(note);
  live.finish();
  return { out: sink.records, chunks: live.counts.chunks };
}

test("live export chunk by chunk gives the spans of the whole run", () => {
  const byId = (list: SpanRecord[]) => new Map(list.map((s) => [s.spanId, s]));
  const server = serverRunFixture().recording();
  // the tracer stamps a call's batch just before its TOKEN_BEGIN: a cut must not part them
  const earlyBatches = {
    ...server,
    events: server.events.map((e) => (e.type === EventType.BATCH ? { ...e, ts: e.ts - 90n } : e)),
  };
  const functions = syntheticRecorder(30, 2, 2).recording();
  // the live export keeps each thread's OP events between graph boundaries as records, decoded
  // only for the graphs whose operators it rebuilds: with steps (which time the operators, the OP
  // events giving the threads' ith), and with OP events alone (no barrier probes: the operators
  // are rebuilt from them); with barriers they are decoded as they come
  const withSteps = syntheticRecorder(30, 2, 2, { steps: true, stepsWithOps: true }).recording();
  const opsOnly = {
    ...functions,
    events: functions.events.filter(
      (e) => e.type !== EventType.BARRIER_BEGIN && e.type !== EventType.BARRIER_END,
    ),
  };
  assert.ok(withSteps.events.some((e) => e.type === EventType.OP_BEGIN));
  // a preempted worker whose switch back in was lost: its own OP events say when it ran again
  const moe = moeRunFixture().rec.recording();
  const switchIns = (e: (typeof moe.events)[number]) =>
    e.type === EventType.SCHED_SWITCH && e.nextTid === MOE_FIXTURE_TIDS[1];
  assert.ok(moe.events.some(switchIns));
  const moeOpsOnly = {
    ...moe,
    events: moe.events.filter(
      (e) =>
        e.type !== EventType.BARRIER_BEGIN && e.type !== EventType.BARRIER_END && !switchIns(e),
    ),
  };
  const every4: OpSampling = { kind: "every", n: 4 };
  const cases: [Recording, OpSampling][] = [
    [functions, every4],
    [withSteps, every4],
    [opsOnly, every4],
    // every call's operators, the preempted one's included
    [moeOpsOnly, { kind: "all" }],
    [server, every4],
    [earlyBatches, every4],
  ];
  for (const [recording, sampling] of cases) {
    const whole = buildRunSpans(buildRun(recording), sampling);
    for (const slices of [1, 7, 23]) {
      const { out, chunks } = liveSpans(recording, slices, sampling);
      assert.ok(slices === 1 || chunks > 1, `${slices} slices: exported in several chunks`);
      assert.equal(out.length, whole.length);
      assert.deepEqual(byId(out), byId(whole), `${slices} slices: the same spans`);
    }
  }
});

test("live export: an idle server's requests leave once the clock passes the idle bound, with nothing new arriving", () => {
  const recording = serverRunFixture().recording();
  const pause = recording.events.findIndex(
    (e, i) => i > 0 && e.ts - recording.events[i - 1]!.ts > 2_000_000_000n,
  );
  const before = recording.events.slice(0, pause);
  const lastNs = before.at(-1)!.ts;
  let now = lastNs;
  const sink = new RecordSink();
  const out = sink.records;
  const live = liveExport(sink, () => now);
  live.header(recording.header);
  live.events(batchOf(before));
  live.exportFinished();
  const roots = () =>
    out
      .filter(isRequestRoot)
      .map((r) => Number(r.attributes[C.ATTR_REQUEST_FIRST_SEQ]))
      .sort((a, b) => a - b);
  assert.deepEqual(roots(), [1], "A ended when D took its slot; the others are open");
  now = lastNs + 3_000_000_000n;
  live.exportFinished();
  assert.deepEqual(roots(), [1], "the clock less its margin is not past the bound yet");
  now = lastNs + 5_000_000_000n;
  live.exportFinished();
  assert.deepEqual(roots(), [1, 2, 3, 7], "B, C and D leave while the server is idle");
  live.events(batchOf(recording.events.slice(pause)));
  for (const { note } of recording.notes) live.note(note);
  live.finish();
  assert.deepEqual(
    new Map(out.map((s) => [s.spanId, s])),
    new Map(buildRunSpans(buildRun(recording), { kind: "every", n: 4 }).map((s) => [s.spanId, s])),
    "the same spans as the whole run",
  );
});

test("the spool keeps encoded batches exactly, refuses past its bound, is found again, and reads an older profinfer's", () => {
  const dir = mkdtempSync(join(tmpdir(), "profinfer-spool-"));
  try {
    const run = buildRun(syntheticRecorder(3, 1, 2).recording());
    const spans = buildRunSpans(run, { kind: "all" });
    const [batch] = encodeSpanRecords(spans.slice(0, 5), { "service.name": "x" }, "1", 2048);
    const spool = new Spool(join(dir, "s"), 64 << 10);
    assert.ok(spool.write(batch!));
    const [big] = encodeSpanRecords(
      Array.from({ length: 400 }, () => spans).flat(),
      {},
      "1",
      Infinity,
    );
    assert.equal(spool.write(big!), false, "a batch over the bound is refused");
    const again = new Spool(join(dir, "s"), 64 << 10);
    assert.equal(again.spans, 5);
    const kept = again.oldest()!;
    assert.deepEqual(Buffer.from(kept.batch.bytes), Buffer.from(batch!.bytes));
    assert.equal(kept.batch.spans, 5);
    again.remove(kept.file);
    assert.ok(again.empty);
    // a file of the JSON format profinfer spooled before: the resource, then a record a line
    const line = (r: SpanRecord) =>
      JSON.stringify(r, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v));
    writeFileSync(
      join(dir, "s", "000000000005.spool"),
      `${JSON.stringify({ resource: { "service.name": "x" }, failed: true })}\n${spans.slice(0, 5).map(line).join("\n")}\n`,
    );
    const older = new Spool(join(dir, "s"), 64 << 10, "1");
    assert.equal(older.spans, 5);
    const read = older.oldest()!;
    assert.deepEqual(
      OtlpCollector.decode(read.batch.bytes).map((s) => [s.spanId, s.startNs]),
      spans.slice(0, 5).map((s) => [s.spanId, s.startNs]),
      "re-encoded with its resource, times exact",
    );
    older.remove(read.file);
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
