// SPDX-License-Identifier: Apache-2.0
// profinfer's spans through the real stack: the OpenTelemetry Collector with the provisioning's
// own configuration, in front of Jaeger v2 (a trace store with a query API), both built by
// set-up from the Go modules pinned in test/stack/. What Jaeger holds is compared with the run's
// traces.otlp.jsonl (the same spans the live export sends), span for span and exactly once, for
// the live export, the spool after an outage and replay; Jaeger's search finds them by the
// attributes the TraceQL cookbook of docs/spans.md uses, and a llama-server's slow request by its
// time to first token; the collector reads traces.otlp.jsonl back unchanged.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import * as C from "@profinfer/contract";
import {
  Collector,
  Jaeger,
  otlpJsonSpans,
  provisionedCollectorConfig,
  type JaegerTrace,
  type OtlpJsonSpan,
} from "./support/stack.js";
import { recordServer, runInTurn, type LoadRequest } from "./support/llamaServerLoad.js";
import {
  cli,
  completion,
  freePort,
  repoRoot,
  runProgram,
  stack,
  tinyModels,
  type Ran,
} from "./support/targets.js";

const scratch = mkdtempSync(join(tmpdir(), "profinfer-stack-"));
after(() => rmSync(scratch, { recursive: true, force: true }));
let llamaModel = "";
before(() => {
  llamaModel = tinyModels().find((m) => m.arch === "llama")!.path;
});
let counter = 0;
const fresh = (what: string) => join(scratch, `${what}-${++counter}`);

/** The CLI to its end (at most 5 minutes), with `env` added to the environment. */
function run(args: string[], env: Record<string, string> = {}): Promise<Ran> {
  return runProgram(cli, args, { timeoutMs: 300_000, env: { ...process.env, ...env } });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Every span Jaeger holds for a service, once it holds `count` of them (the batch waits 2 s). */
async function spansInJaeger(jaeger: Jaeger, service: string, count: number, waitMs = 60_000) {
  const until = Date.now() + waitMs;
  for (;;) {
    const spans = (await jaeger.findTraces({ service })).flatMap((t) => t.spans);
    if (spans.length >= count || Date.now() > until) return spans;
    await sleep(250);
  }
}

/** Each span id once, and the same ids as the run's traces.otlp.jsonl. */
function assertSameSpansOnce(held: JaegerTrace["spans"], expected: OtlpJsonSpan[]): void {
  const byId = new Map<string, JaegerTrace["spans"][number]>();
  for (const s of held) {
    assert.ok(!byId.has(s.spanID), `span ${s.operationName} ${s.spanID} is in Jaeger twice`);
    byId.set(s.spanID, s);
  }
  const missing = expected.filter((e) => !byId.has(e.spanId));
  assert.equal(missing.length, 0, `${missing.length} of ${expected.length} spans never arrived`);
  assert.equal(byId.size, expected.length, "Jaeger holds no span the run does not have");
  for (const e of expected) {
    const s = byId.get(e.spanId)!;
    assert.equal(s.operationName, e.name);
    assert.equal(s.traceID, e.traceId);
    const parent = s.references.find((r) => r.refType === "CHILD_OF");
    assert.equal(parent?.spanID, e.parentSpanId || undefined, `${e.name}'s parent`);
  }
}

/**
 * A span or resource in protobuf's terms: fields at their default value (0, "", empty) are the
 * same as absent, and an int64 is the same value whether JSON wrote it as a number or a string.
 */
function protoValue(value: unknown): unknown {
  if (Array.isArray(value)) return value.length === 0 ? undefined : value.map(protoValue);
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      const normal = k === "intValue" ? String(v) : protoValue(v);
      if (normal !== undefined) out[k] = normal;
    }
    return Object.keys(out).length === 0 ? undefined : out;
  }
  if (value === 0 || value === "" || value === false || value === null || value === "0")
    return undefined;
  return value;
}

function jsonlSpans(dir: string) {
  return otlpJsonSpans(readFileSync(join(dir, "traces.otlp.jsonl"), "utf8"));
}

const attr = (span: OtlpJsonSpan, key: string) =>
  span.attributes?.find((a) => a.key === key)?.value;

test("the provisioning's collector configuration passes the collector's own validate", () => {
  const path = join(repoRoot, "provisioning", "otel-collector", "config.yaml");
  const r = spawnSync(stack("otelcol"), ["validate", `--config=file:${path}`], {
    encoding: "utf8",
  });
  assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
  // and the tests below run that very pipeline: receivers, processors and exporters
  const { service } = provisionedCollectorConfig();
  assert.deepEqual(service.pipelines.traces.receivers, ["otlp"]);
  assert.ok(service.pipelines.traces.exporters.some((e: string) => e.startsWith("otlp")));
});

describe("a live run through the collector into Jaeger", () => {
  let jaeger: Jaeger;
  let collector: Collector;
  let dir = "";
  let spans: ReturnType<typeof jsonlSpans> = [];
  const service = "stack-live";
  before(async () => {
    const stackDir = fresh("stack");
    jaeger = await Jaeger.start(stackDir);
    collector = await Collector.start(stackDir, jaeger.otlpEndpoint);
  });
  after(async () => {
    await collector?.stop();
    await jaeger?.stop();
  });

  test("every span arrives in Jaeger exactly once, and the collector passes it on unchanged", async () => {
    dir = fresh("run");
    const ran = await run(
      [
        "record",
        "--no-status",
        "--out",
        dir,
        "--otlp-endpoint",
        collector.grpcEndpoint,
        "--otlp-op-sample",
        "every:8",
        "--",
        ...completion(llamaModel, 24),
      ],
      {
        OTEL_SERVICE_NAME: service,
        OTEL_RESOURCE_ATTRIBUTES: "deployment.environment.name=staging,k8s.namespace.name=llm",
      },
    );
    assert.equal(ran.code, 0, ran.stderr.slice(-3000));
    spans = jsonlSpans(dir);
    assert.ok(spans.length > 50, `${spans.length} spans`);
    const held = await spansInJaeger(jaeger, service, spans.length);
    assertSameSpansOnce(
      held,
      spans.map((s) => s.span),
    );
    // what the collector exported is what profinfer wrote to its file, field for field
    const passed = new Map(
      otlpJsonSpans(readFileSync(collector.outFile, "utf8")).map((s) => [s.span.spanId, s]),
    );
    for (const { span, resource } of spans) {
      const out = passed.get(span.spanId);
      assert.ok(out, `${span.name} ${span.spanId} passed the collector`);
      assert.deepEqual(protoValue(out.span), protoValue(span), `${span.name} unchanged`);
      assert.deepEqual(protoValue(out.resource), protoValue(resource));
    }
  });

  test("Jaeger's search finds them by the cookbook's attributes: service, model, environment, op, phase and duration", async () => {
    assert.ok(spans.length > 0, "the live run test ran");
    const all = new Set(spans.map((s) => s.span.traceId));
    const traceIds = (traces: JaegerTrace[]) => new Set(traces.map((t) => t.traceID));
    assert.ok((await jaeger.services()).includes(service), "OTEL_SERVICE_NAME is the service");
    const resourceModel = spans[0]!.resource.find((a) => a.key === C.ATTR_GEN_AI_REQUEST_MODEL)
      ?.value.stringValue as string;
    assert.ok(resourceModel, "the resource names the model");
    assert.deepEqual(
      traceIds(
        await jaeger.findTraces({
          service,
          tags: { [C.ATTR_GEN_AI_REQUEST_MODEL]: resourceModel },
        }),
      ),
      all,
    );
    assert.equal(
      (await jaeger.findTraces({ service, tags: { [C.ATTR_GEN_AI_REQUEST_MODEL]: "other" } }))
        .length,
      0,
    );
    assert.deepEqual(
      traceIds(
        await jaeger.findTraces({ service, tags: { "deployment.environment.name": "staging" } }),
      ),
      all,
    );
    // { span.ggml.op = "mul_mat" }: the calls whose operators were exported (every:8)
    const withMulMat = new Set(
      spans
        .filter((s) => attr(s.span, C.ATTR_OP)?.stringValue === "mul_mat")
        .map((s) => s.span.traceId),
    );
    assert.ok(withMulMat.size >= 2 && withMulMat.size < all.size, `${withMulMat.size} calls`);
    assert.deepEqual(
      traceIds(await jaeger.findTraces({ service, tags: { [C.ATTR_OP]: "mul_mat" } })),
      withMulMat,
    );
    // { name = "llama_decode" && span.profinfer.token.phase = "decode" && duration > X }, X
    // between two of the calls' durations
    const decodeCalls = spans
      .map((s) => s.span)
      .filter(
        (s) => s.name === C.SPAN_TOKEN && attr(s, C.ATTR_TOKEN_PHASE)?.stringValue === "decode",
      )
      .map((s) => ({
        traceId: s.traceId,
        us: Number(BigInt(s.endTimeUnixNano) - BigInt(s.startTimeUnixNano)) / 1000,
      }))
      .sort((a, b) => a.us - b.us);
    assert.ok(decodeCalls.length >= 20, `${decodeCalls.length} decode calls`);
    let k = Math.floor(decodeCalls.length / 2);
    while (k + 1 < decodeCalls.length && decodeCalls[k + 1]!.us - decodeCalls[k]!.us < 4) k++;
    assert.ok(k + 1 < decodeCalls.length, "two decode calls apart by 4 µs or more");
    const threshold = Math.round((decodeCalls[k]!.us + decodeCalls[k + 1]!.us) / 2);
    const slow = new Set(decodeCalls.filter((c) => c.us > threshold).map((c) => c.traceId));
    assert.deepEqual(
      traceIds(
        await jaeger.findTraces({
          service,
          operation: C.SPAN_TOKEN,
          tags: { [C.ATTR_TOKEN_PHASE]: "decode" },
          minDuration: `${threshold}us`,
        }),
      ),
      slow,
    );
  });

  test("the collector reads traces.otlp.jsonl back (OTLP/HTTP JSON) and passes every span on unchanged", async () => {
    assert.ok(spans.length > 0, "the live run test ran");
    const stackDir = fresh("readback");
    const store = await Jaeger.start(stackDir);
    const reader = await Collector.start(stackDir, store.otlpEndpoint);
    try {
      for (const line of readFileSync(join(dir, "traces.otlp.jsonl"), "utf8").split("\n")) {
        if (line.trim()) await reader.postJson(line);
      }
      const held = await spansInJaeger(store, service, spans.length);
      assertSameSpansOnce(
        held,
        spans.map((s) => s.span),
      );
      const passed = new Map(
        otlpJsonSpans(readFileSync(reader.outFile, "utf8")).map((s) => [s.span.spanId, s]),
      );
      for (const { span, resource } of spans) {
        assert.deepEqual(protoValue(passed.get(span.spanId)?.span), protoValue(span), span.name);
        assert.deepEqual(protoValue(passed.get(span.spanId)?.resource), protoValue(resource));
      }
    } finally {
      await reader.stop();
      await store.stop();
    }
  });

  test("replay through the collector puts the same spans into a fresh Jaeger, once", async () => {
    assert.ok(spans.length > 0, "the live run test ran");
    const stackDir = fresh("replay");
    const store = await Jaeger.start(stackDir);
    const forward = await Collector.start(stackDir, store.otlpEndpoint);
    try {
      const ran = await run([
        "replay",
        dir,
        "--otlp-endpoint",
        forward.grpcEndpoint,
        "--otlp-op-sample",
        "every:8",
      ]);
      assert.equal(ran.code, 0, ran.stderr);
      const held = await spansInJaeger(store, service, spans.length);
      assertSameSpansOnce(
        held,
        spans.map((s) => s.span),
      );
    } finally {
      await forward.stop();
      await store.stop();
    }
  });
});

test("collector absent at start, up mid-run: the spool delivers every span into Jaeger once", async (t) => {
  const stackDir = fresh("outage");
  const store = await Jaeger.start(stackDir);
  const port = await freePort();
  const dir = fresh("run");
  let collector: Collector | null = null;
  try {
    const done = run(
      [
        "record",
        "--no-status",
        "--out",
        dir,
        "--otlp-endpoint",
        `http://127.0.0.1:${port}`,
        "--otlp-op-sample",
        "every:4",
        "--",
        ...completion(llamaModel, 300),
      ],
      { OTEL_SERVICE_NAME: "stack-outage" },
    );
    const spool = join(dir, "otlp-spool");
    const until = Date.now() + 120_000;
    while (!(existsSync(spool) && readdirSync(spool).length > 0)) {
      assert.ok(Date.now() < until, "spans waited in the spool");
      await sleep(50);
    }
    collector = await Collector.start(stackDir, store.otlpEndpoint, { grpc: port });
    const ran = await done;
    assert.equal(ran.code, 0, ran.stderr.slice(-3000));
    assert.match(ran.stderr, /does not answer/);
    assert.match(ran.stderr, /[1-9]\d* re-sent from the spool, 0 queued, 0 dropped/);
    const expected = jsonlSpans(dir).map((s) => s.span);
    // the collector retries what Jaeger did not take with a backoff of up to 30 s: room for two
    const held = await spansInJaeger(store, "stack-outage", expected.length, 150_000);
    if (held.length < expected.length) {
      const ids = new Set(expected.map((e) => e.spanId));
      t.diagnostic(
        `Jaeger holds ${held.length} spans, ${held.filter((h) => !ids.has(h.spanID)).length} not the run's\n` +
          `${ran.stderr.slice(-2000)}\ncollector:\n${collector.log.slice(-6000)}\n` +
          `jaeger:\n${store.log.slice(-4000)}`,
      );
    }
    assertSameSpansOnce(held, expected);
  } finally {
    await collector?.stop();
    await store.stop();
  }
});

test("a llama-server's slow request is found in Jaeger by its time to first token", async () => {
  const stackDir = fresh("ttft");
  const store = await Jaeger.start(stackDir);
  const collector = await Collector.start(stackDir, store.otlpEndpoint);
  const dir = fresh("server");
  try {
    const server = await recordServer(
      dir,
      llamaModel,
      ["-c", "2048", "-np", "1"],
      ["--otlp-endpoint", collector.grpcEndpoint, "--otlp-op-sample", "none"],
    );
    // one long prompt among short ones, one after the other: the long one's first token waits
    // for its whole prompt
    const story =
      "The farm lies at the end of a long road past the river, the mill and the old stone " +
      "bridge, where the fox, the dog and the hens have lived side by side for many years. ";
    const load: LoadRequest[] = [
      { prompt: "Who lives on the farm?", nPredict: 4 },
      { prompt: "Name the bridge.", nPredict: 4 },
      { prompt: `${story.repeat(40)}Who lives there?`, nPredict: 4 },
      { prompt: "Is the mill still working?", nPredict: 4 },
    ];
    let responses;
    try {
      responses = await runInTurn(server.base, load);
    } finally {
      const ended = await server.stop();
      assert.equal(ended.code, 0, ended.stderr.slice(-3000));
      // the warm-up's batch wants no output: tensors with a zero dimension are not garbage
      assert.doesNotMatch(ended.stderr, /does not read back/);
    }
    // the server's own figures say which request waited longest for its first token
    const slowest = responses.reduce((a, b) => (b.timings.prompt_ms > a.timings.prompt_ms ? b : a));
    assert.equal(slowest.index, 2, "the long prompt is the server's slowest to its first token");
    const spans = jsonlSpans(dir);
    const ttft = (s: OtlpJsonSpan) =>
      attr(s, C.ATTR_GEN_AI_SERVER_TIME_TO_FIRST_TOKEN)?.doubleValue as number | undefined;
    // the request spans with an output: the server's warm-up before it serves is one without
    const roots = spans
      .map((s) => s.span)
      .filter((s) => attr(s, C.ATTR_REQUEST_PROMPT_TOKENS) !== undefined && ttft(s) !== undefined);
    assert.equal(roots.length, load.length, "a root span per request served");
    const byTtft = [...roots].sort((a, b) => ttft(b)! - ttft(a)!);
    const slow = byTtft[0]!;
    assert.equal(
      Number(attr(slow, C.ATTR_REQUEST_PROMPT_TOKENS)?.intValue),
      slowest.timings.prompt_n,
      "profinfer's slowest request by TTFT is the server's",
    );
    // Jaeger compares tags for equality only, so docs/spans.md finds slow requests by their
    // prompt's step: a prefill span (in the request's trace) longer than the bound. A prompt of
    // one call: that step is the request's TTFT.
    const us = (s: OtlpJsonSpan) =>
      Number(BigInt(s.endTimeUnixNano) - BigInt(s.startTimeUnixNano)) / 1000;
    const prefills = spans.map((s) => s.span).filter((s) => s.name === C.SPAN_STEP_PREFILL);
    const slowPrefill = prefills.filter((s) => s.traceId === slow.traceId);
    assert.equal(slowPrefill.length, 1, "the long prompt took one call");
    assert.ok(Math.abs(us(slowPrefill[0]!) - ttft(slow)! * 1e6) < 2, "its step lasts its TTFT");
    // the bound: between it and every other prompt step (the other requests', the warm-up's)
    const others = Math.max(...prefills.filter((s) => s.traceId !== slow.traceId).map(us));
    assert.ok(others < us(slowPrefill[0]!), "no other prompt step is as slow");
    const boundUs = Math.round((others + us(slowPrefill[0]!)) / 2);
    const service = spans[0]!.resource.find((a) => a.key === "service.name")?.value
      .stringValue as string;
    await spansInJaeger(store, service, spans.length);
    const found = await store.findTraces({
      service,
      operation: C.SPAN_STEP_PREFILL,
      minDuration: `${boundUs}us`,
    });
    assert.deepEqual(
      found.map((t) => t.traceID),
      [slow.traceId],
      `the traces with a prefill step over ${boundUs} µs`,
    );
    // and the trace Jaeger shows holds the request's span with its TTFT
    const root = found[0]!.spans.find((s) => s.spanID === slow.spanId);
    assert.equal(
      root?.tags.find((t) => t.key === C.ATTR_GEN_AI_SERVER_TIME_TO_FIRST_TOKEN)?.value,
      ttft(slow),
    );
  } finally {
    await collector.stop();
    await store.stop();
  }
});
