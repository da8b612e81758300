// SPDX-License-Identifier: Apache-2.0
// OpenTelemetry export against a real gRPC OTLP receiver (test/support/otlpCollector.ts, the
// official TraceService proto) and real profiled llama.cpp runs (root, real eBPF): what arrives
// equals the trace model, span for span and exactly once, also when the collector is missing at
// start or goes away mid-run; replay sends the same spans; bad options fail at start, clearly.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import * as C from "@profinfer/contract";
import {
  buildRun,
  buildRunSpans,
  readRawFile,
  toWallClockNs,
  type Run,
  type SpanRecord,
} from "@profinfer/exporter";
import { attach } from "./support/attach.js";
import { syntheticRecorder } from "./support/fixtures.js";
import { OtlpCollector, type ReceivedSpan } from "./support/otlpCollector.js";
import { assertTraceShape, intOf, isRequestSpan, isStepSpan } from "./support/spanShape.js";
import {
  cli,
  completion,
  profinfer,
  runProgram,
  tinyModels,
  type Ran,
  startLlamaServer,
} from "./support/targets.js";

const scratch = mkdtempSync(join(tmpdir(), "profinfer-otlp-"));
after(() => rmSync(scratch, { recursive: true, force: true }));
let models: ReturnType<typeof tinyModels> = [];
before(() => {
  models = tinyModels();
});
const model = (arch: string) => models.find((m) => m.arch === arch)!.path;
let runCounter = 0;

/**
 * profinfer record, asynchronously (the collector lives in this process), with a stderr hook.
 * Without a CPU bound unless `args` sets one: the spans are compared with the sampling asked for,
 * which the bound may lower on a busy machine.
 */
function recordAsync(
  args: string[],
  command: string[],
  onStderr?: (text: string) => void,
  env: Record<string, string> = {},
): { dir: string; done: Promise<Ran> } {
  const dir = join(scratch, `run-${++runCounter}`);
  const bound = args.includes("--otlp-cpu") ? [] : ["--otlp-cpu", "0"];
  const child = spawn(
    cli,
    ["record", "--no-status", "--out", dir, ...bound, ...args, "--", ...command],
    {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, ...env },
    },
  );
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => {
    stderr += d.toString();
    onStderr?.(stderr);
  });
  const timer = setTimeout(() => child.kill("SIGKILL"), 300_000);
  const done = new Promise<Ran>((resolve) =>
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    }),
  );
  return { dir, done };
}

function runOf(dir: string): Run {
  return buildRun(readRawFile(join(dir, "events.pinf")));
}

/** The "OTLP export: ..." line's counts. */
function exportCounts(stderr: string) {
  const m =
    /OTLP export: (\d+) spans sent, (\d+) re-sent from the spool, (\d+) queued, (\d+) dropped/.exec(
      stderr,
    );
  assert.ok(m, `the run printed its export counts:\n${stderr.slice(-2000)}`);
  return { sent: Number(m[1]), resent: Number(m[2]), queued: Number(m[3]), dropped: Number(m[4]) };
}

/** Every span id once: no span was delivered twice. */
function assertExactlyOnce(spans: readonly ReceivedSpan[]): Map<string, ReceivedSpan> {
  const byId = new Map<string, ReceivedSpan>();
  for (const s of spans) {
    assert.ok(!byId.has(s.spanId), `span ${s.name} ${s.spanId} arrived twice`);
    byId.set(s.spanId, s);
  }
  return byId;
}

function sameIds(received: Map<string, ReceivedSpan>, expected: readonly SpanRecord[]): void {
  const missing = expected.filter((e) => !received.has(e.spanId));
  assert.equal(missing.length, 0, `${missing.length} spans never arrived`);
  assert.equal(received.size, expected.length, "no span arrived that the model does not have");
}

const waitFor = async (what: string, check: () => boolean, timeoutMs = 120_000) => {
  const until = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};

describe("live export of a profiled llama.cpp run", () => {
  let liveSpans: ReceivedSpan[] = [];
  let liveDir = "";

  test("qwen2moe: every span of the model arrives once, linked and nested, with the documented attributes and resource (OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES in it)", async () => {
    const collector = await OtlpCollector.start();
    try {
      const { dir, done } = recordAsync(
        [
          "--otlp-endpoint",
          collector.url,
          "--otlp-op-sample",
          "all",
          "--otlp-header",
          "x-scope-orgid=profinfer-test",
        ],
        completion(model("qwen2moe"), 8),
        undefined,
        {
          OTEL_SERVICE_NAME: "otlp-test",
          OTEL_RESOURCE_ATTRIBUTES: "deployment.environment.name=staging,k8s.pod.name=llm-0",
        },
      );
      const ran = await done;
      assert.equal(ran.code, 0, ran.stderr.slice(-3000));
      const counts = exportCounts(ran.stderr);
      const run = runOf(dir);
      const expected = buildRunSpans(run, { kind: "all" });
      const byId = assertExactlyOnce(collector.spans);
      sameIds(byId, expected);
      assert.deepEqual(counts, { sent: expected.length, resent: 0, queued: 0, dropped: 0 });
      assert.ok(collector.requests.every((r) => r.metadata["x-scope-orgid"] === "profinfer-test"));

      // span counts per level equal the trace model's
      const named = (name: string) => collector.spans.filter((s) => s.name === name);
      assert.equal(named(C.SPAN_TOKEN).length, run.tokens.length, "one span per llama_decode");
      assert.equal(
        named(C.SPAN_GRAPH).length,
        run.tokens.reduce((n, t) => n + t.graphs.length, 0),
        "one span per graph computation",
      );
      const opRuns = run.graphRuns
        .filter((g) => g.opsRecorded && g.tokenSeq !== null)
        .flatMap((g) => g.ops.filter((op) => op.startNs !== null));
      const opSpans = collector.spans.filter((s) => s.attributes[C.ATTR_OP] !== undefined);
      assert.ok(opRuns.length > 0);
      assert.equal(opSpans.length, opRuns.length, "one span per operator run");
      // a trace per call, one for the request: its root and a step per call, linked both ways
      const shape = assertTraceShape(collector.spans);
      assert.equal(shape.requests.length, 1, "llama-completion: one request");
      assert.equal(shape.calls.length, run.tokens.length, "a trace per llama_decode call");
      assert.equal(shape.traces.size, run.tokens.length + 1);
      const request = shape.requests[0]!;
      assert.deepEqual(
        shape.traces
          .get(request.traceId)!
          .filter(isStepSpan)
          .map((s) => s.name),
        ["prefill", ...new Array<string>(run.tokens.length - 1).fill("decode")],
      );

      // nesting of times, parents as the span tree says
      for (const s of collector.spans) {
        if (s.parentSpanId === "") continue;
        const parent = byId.get(s.parentSpanId);
        assert.ok(parent, `${s.name}: its parent arrived`);
        assert.equal(parent.traceId, s.traceId);
        assert.ok(
          s.startNs >= parent.startNs && s.endNs <= parent.endNs,
          `${s.name} nests in ${parent.name}`,
        );
        const expectedParent = isStepSpan(s)
          ? [request.name]
          : ({ [C.SPAN_GRAPH]: [C.SPAN_TOKEN, C.SPAN_GRAPH] }[s.name] ?? [C.SPAN_GRAPH]);
        assert.ok(expectedParent.includes(parent.name), `${s.name} under ${parent.name}`);
      }
      // times are the model's, to the nanosecond
      const first = run.tokens[0]!;
      const firstSpan = named(C.SPAN_TOKEN).find(
        (s) => s.attributes[C.ATTR_TOKEN_SEQ]!.value === BigInt(first.seq),
      )!;
      assert.equal(firstSpan.startNs, toWallClockNs(run.clock, first.startNs));
      assert.equal(firstSpan.endNs, toWallClockNs(run.clock, first.endNs));

      // attribute names and types as docs/spans.md documents them
      const type = (s: ReceivedSpan, key: string) => s.attributes[key]?.type;
      assert.equal(request.name, "text_completion tiny-qwen2moe", "{operation} {model}");
      assert.equal(request.attributes[C.ATTR_GEN_AI_OPERATION_NAME]!.value, "text_completion");
      assert.equal(request.attributes[C.ATTR_GEN_AI_PROVIDER_NAME]!.value, "llama.cpp");
      assert.equal(request.attributes[C.ATTR_GEN_AI_REQUEST_MODEL]!.value, "tiny-qwen2moe");
      const prefillTokens = run.tokens
        .filter((t) => t.phase === "prefill")
        .reduce((n, t) => n + t.nTokens, 0);
      assert.equal(intOf(request, C.ATTR_GEN_AI_USAGE_INPUT_TOKENS), prefillTokens);
      assert.equal(
        intOf(request, C.ATTR_GEN_AI_USAGE_OUTPUT_TOKENS),
        8,
        "llama-completion -n 8: eight tokens generated",
      );
      const modelRequest = run.requests[0]!;
      assert.equal(
        request.attributes[C.ATTR_GEN_AI_SERVER_TIME_TO_FIRST_TOKEN]!.value,
        Number(modelRequest.firstOutputNs! - modelRequest.startNs) / 1e9,
      );
      assert.equal(type(request, C.ATTR_GEN_AI_SERVER_TIME_PER_OUTPUT_TOKEN), "double");
      assert.equal(
        request.status.message,
        modelRequest.incomplete ?? "",
        "status ERROR with the model's reason when its figures may fall short",
      );
      for (const s of named(C.SPAN_TOKEN)) {
        for (const k of [C.ATTR_TOKEN_SEQ, C.ATTR_TOKEN_N_TOKENS, C.ATTR_TOKEN_RET])
          assert.equal(type(s, k), "int", k);
        assert.equal(type(s, C.ATTR_TOKEN_PHASE), "string");
        const routes = s.events.filter((e) => e.name === C.EVENT_MOE_ROUTE);
        const token = run.tokens.find(
          (t) => BigInt(t.seq) === s.attributes[C.ATTR_TOKEN_SEQ]!.value,
        )!;
        assert.ok(routes.length > 0);
        assert.equal(routes.length, token.experts?.size, "one moe.route event per MoE layer");
        for (const e of routes) {
          assert.equal(e.attributes[C.ATTR_LAYER]!.type, "int");
          const k = Number(e.attributes[C.ATTR_MOE_K]!.value);
          const experts = e.attributes[C.ATTR_MOE_EXPERTS]!;
          assert.equal(experts.type, "array");
          assert.ok(experts.elementTypes!.every((t) => t === "int"));
          // one row of k per token the layer routed: all n_tokens, except in a prefill's last
          // layer, which llama.cpp computes only for the tokens whose logits are wanted
          const layer = Number(e.attributes[C.ATTR_LAYER]!.value);
          const rows = token.experts!.get(layer)!;
          assert.equal((experts.value as unknown[]).length, rows.length * k, "rows * k expert ids");
          assert.deepEqual(
            (experts.value as bigint[]).map(Number),
            rows.flat(),
            "the model's expert ids, row-major",
          );
          assert.ok(rows.length <= token.nTokens);
        }
      }
      for (const s of named(C.SPAN_GRAPH)) {
        for (const k of [C.ATTR_GRAPH_NODES]) assert.equal(type(s, k), "int");
        assert.equal(type(s, C.ATTR_GRAPH_FN), "string");
        assert.match(String(s.attributes[C.ATTR_GRAPH_SIGNATURE]!.value), /^0x[0-9a-f]+$/);
        if (s.attributes[C.ATTR_GRAPH_FN]!.value === "cpu") {
          assert.equal(s.attributes[C.ATTR_BACKEND]!.value, "CPU");
          assert.equal(type(s, C.ATTR_GRAPH_THREADS), "int");
        }
      }
      const names = new Set(opSpans.map((s) => s.attributes[C.ATTR_TENSOR_NAME]!.value));
      for (const s of opSpans) {
        assert.equal(s.attributes[C.ATTR_OP]!.value, s.name);
        assert.equal(s.name, s.name.toLowerCase());
        for (const k of [C.ATTR_TENSOR_NAME, C.ATTR_TENSOR_TYPE])
          assert.equal(type(s, k), "string");
        for (const k of [
          C.ATTR_NODE_INDEX,
          C.ATTR_THREADS,
          C.ATTR_THREAD_SLOWEST_NS,
          C.ATTR_THREAD_FASTEST_NS,
          C.ATTR_BARRIER_WAIT_NS,
        ])
          assert.equal(type(s, k), "int", k);
        const shape = s.attributes[C.ATTR_TENSOR_SHAPE]!;
        assert.equal(shape.type, "array");
        assert.equal((shape.value as unknown[]).length, 4);
        const src = s.attributes[C.ATTR_SRC_NAMES]!;
        const srcOps = s.attributes[C.ATTR_SRC_OPS]!;
        assert.ok(src.elementTypes!.every((t) => t === "string"));
        assert.equal((src.value as unknown[]).length, (srcOps.value as unknown[]).length);
        // the DAG can be rebuilt from spans alone: a computed source is another op span's tensor
        (srcOps.value as string[]).forEach((op, i) => {
          if (op !== "none" && !["view", "reshape", "permute", "transpose"].includes(op))
            assert.ok(
              names.has((src.value as string[])[i]!) ||
                opSpans.some((o) =>
                  ((o.attributes[C.ATTR_FUSED_NAMES]?.value as string[]) ?? []).includes(
                    (src.value as string[])[i]!,
                  ),
                ),
              `${s.attributes[C.ATTR_TENSOR_NAME]!.value}: source ${(src.value as string[])[i]} is an operator span`,
            );
        });
        // the exact DAG: each source's producer is an operator span of the same graph that made it
        const producers = s.attributes[C.ATTR_SRC_NODES]!.value as bigint[];
        assert.equal(producers.length, (src.value as unknown[]).length);
        producers.forEach((node, i) => {
          if (node < 0n) return;
          const producer = opSpans.find(
            (o) =>
              o.parentSpanId === s.parentSpanId && o.attributes[C.ATTR_NODE_INDEX]!.value === node,
          );
          assert.ok(
            producer,
            `${s.attributes[C.ATTR_TENSOR_NAME]!.value}: producer ${node} is a span`,
          );
          const made = [
            producer.attributes[C.ATTR_TENSOR_NAME]!.value,
            ...((producer.attributes[C.ATTR_FUSED_NAMES]?.value as string[]) ?? []),
          ];
          assert.ok(
            made.includes((src.value as string[])[i]!),
            `it made ${(src.value as string[])[i]}`,
          );
        });
        const threads = s.events.filter((e) => e.name === C.EVENT_THREAD);
        assert.equal(BigInt(threads.length), s.attributes[C.ATTR_THREADS]!.value);
        for (const t of threads) {
          assert.equal(t.attributes[C.ATTR_THREAD_ID]!.type, "int");
          assert.equal(t.attributes[C.ATTR_THREAD_ITH]!.type, "int");
          const start = t.attributes[C.ATTR_THREAD_START]!.value as bigint;
          const end = t.attributes[C.ATTR_THREAD_END]!.value as bigint;
          assert.ok(start >= 0n && end >= start && s.startNs + end <= s.endNs);
        }
        const imbalance = s.attributes[C.ATTR_THREAD_IMBALANCE]!;
        assert.ok(
          imbalance.type === "double" || imbalance.value === 1n,
          "imbalance is a ratio >= 1",
        );
      }
      assert.ok(
        opSpans.some((s) => s.name === "mul_mat_id"),
        "MoE expert matmuls are spans",
      );
      assert.ok(opSpans.some((s) => type(s, C.ATTR_LAYER) === "int"));

      // the resource
      const resource = collector.spans[0]!.resource;
      const value = (k: string) => resource[k]?.value;
      assert.equal(value("service.name"), "otlp-test");
      assert.equal(value("deployment.environment.name"), "staging");
      assert.equal(value("k8s.pod.name"), "llm-0");
      assert.equal(value("host.name"), run.header.host!.hostname);
      assert.equal(value("process.pid"), BigInt(run.header.target.pid));
      assert.equal(value("process.executable.name"), "llama-completion");
      assert.equal(value("host.cpu.model.name"), run.header.host!.cpuModel);
      assert.equal(value("profinfer.model.architecture"), "qwen2moe");
      assert.equal(value("profinfer.model.file"), model("qwen2moe"));
      assert.equal(value("gen_ai.request.model"), "tiny-qwen2moe");
      assert.match(String(value("ggml.version")), /^\d+\.\d+\.\d+/);
      assert.match(String(value("ggml.commit")), /^[0-9a-f]{7,}/);
      assert.match(String(value("llama_cpp.library")), /libllama/);
      assert.ok(collector.spans.every((s) => s.scope === C.SCOPE_NAME));

      // traces.otlp.jsonl: the OTLP JSON encoding of the same spans, one request per line
      const lines = readFileSync(join(dir, "traces.otlp.jsonl"), "utf8").trim().split("\n");
      const fileIds = lines.flatMap((line) =>
        (
          JSON.parse(line) as {
            resourceSpans: { scopeSpans: { spans: { spanId: string }[] }[] }[];
          }
        ).resourceSpans.flatMap((rs) =>
          rs.scopeSpans.flatMap((ss) => ss.spans.map((s) => s.spanId)),
        ),
      );
      assert.deepEqual(new Set(fileIds), new Set(byId.keys()));
      assert.equal(fileIds.length, byId.size);
      liveSpans = [...collector.spans];
      liveDir = dir;
    } finally {
      await collector.stop();
    }
  });

  test("replay --otlp-endpoint sends the same spans and resource as the live run, the OTEL_* environment of the recording kept in the run", async () => {
    assert.ok(liveDir, "the live run test ran");
    const collector = await OtlpCollector.start();
    const fileBefore = readFileSync(join(liveDir, "traces.otlp.jsonl"));
    try {
      const ran = await profinferAsync([
        "replay",
        liveDir,
        "--otlp-endpoint",
        collector.url,
        "--otlp-op-sample",
        "all",
      ]);
      assert.equal(ran.code, 0, ran.stderr);
      const replayed = assertExactlyOnce(collector.spans);
      assert.equal(replayed.size, liveSpans.length);
      for (const live of liveSpans) {
        const again = replayed.get(live.spanId);
        assert.ok(again, `${live.name} ${live.spanId} replayed`);
        assert.deepEqual(
          { ...again, resource: undefined },
          { ...live, resource: undefined },
          `${live.name} ${live.spanId} is the same span`,
        );
      }
      assert.deepEqual(collector.spans[0]!.resource, liveSpans[0]!.resource);
      assert.ok(
        readFileSync(join(liveDir, "traces.otlp.jsonl")).equals(fileBefore),
        "replay rewrites traces.otlp.jsonl byte for byte",
      );
    } finally {
      await collector.stop();
    }
  });

  test("a long run exports finished calls while the target still runs", async () => {
    const collector = await OtlpCollector.start();
    const arrivals: number[] = [];
    const poll = setInterval(() => arrivals.push(collector.spans.length), 20);
    const firstArrivalMs: { at: number | null } = { at: null };
    const watch = setInterval(() => {
      if (firstArrivalMs.at === null && collector.spans.length > 0) firstArrivalMs.at = Date.now();
    }, 5);
    try {
      const { dir, done } = recordAsync(
        ["--otlp-endpoint", collector.url, "--otlp-op-sample", "every:8"],
        // long enough to outlast the latency of a live span: the ring is read every 0.5 s and
        // spans leave about once a second
        completion(model("llama"), 1500, ["-c", "2048"]),
      );
      const ran = await done;
      assert.equal(ran.code, 0, ran.stderr.slice(-3000));
      const run = runOf(dir);
      const lastEventMs = Number(toWallClockNs(run.clock, run.lastNs) / 1_000_000n);
      assert.ok(firstArrivalMs.at !== null);
      assert.ok(
        firstArrivalMs.at < lastEventMs - 500,
        `spans arrived ${lastEventMs - firstArrivalMs.at} ms before the target's last event`,
      );
      const byId = assertExactlyOnce(collector.spans);
      sameIds(byId, buildRunSpans(run, { kind: "every", n: 8 }));
    } finally {
      clearInterval(poll);
      clearInterval(watch);
      await collector.stop();
    }
  });
});

describe("attach to a running llama-server", () => {
  test("a request's spans arrive while the server runs and profinfer stays attached; all exactly once after detach", async () => {
    const collector = await OtlpCollector.start();
    const llamaServer = await startLlamaServer(model("llama"));
    const server = llamaServer.process;
    try {
      const dir = join(scratch, "attach");
      const tracer = await attach(server.pid!, dir, [
        "--otlp-endpoint",
        collector.url,
        "--otlp-cpu",
        "0",
      ]);
      const request = (i: number) => llamaServer.complete(String(i));
      const tokenSpans = () => collector.spans.filter((s) => s.name === C.SPAN_TOKEN);
      await request(1);
      await waitFor("the first request's call spans", () => tokenSpans().length >= 8, 30_000);
      assert.ok(tracer.running(), "still attached");
      assert.ok(
        tokenSpans().some((s) => s.attributes[C.ATTR_TOKEN_PHASE]!.value === "prefill"),
        "its prompt's call",
      );
      // the server idle for the bound (2 s): the request's root span leaves while attached
      await waitFor(
        "the first request's root span",
        () => collector.spans.some(isRequestSpan),
        30_000,
      );
      await request(2);
      assert.ok(tracer.running(), "still attached");
      const { code, stderr } = await tracer.detach();
      assert.equal(code, 0, stderr);
      assert.equal(server.exitCode, null, "the server keeps running");
      const run = runOf(dir);
      const byId = assertExactlyOnce(collector.spans);
      sameIds(byId, buildRunSpans(run, { kind: "every", n: 16 }));
      const shape = assertTraceShape(collector.spans);
      assert.equal(shape.requests.length, 2, "a trace per request");
      assert.equal(exportCounts(stderr).dropped, 0);
    } finally {
      server.kill("SIGKILL");
      await collector.stop();
    }
  });

  test("4 slots, concurrent requests: each request's spans form one trace and link to every batch it took part in, and every batch links back to each request in it", async () => {
    const collector = await OtlpCollector.start();
    const llamaServer = await startLlamaServer(model("llama"), 4);
    const server = llamaServer.process;
    try {
      const dir = join(scratch, "attach-slots");
      const tracer = await attach(server.pid!, dir, [
        "--otlp-endpoint",
        collector.url,
        "--otlp-cpu",
        "0",
      ]);
      // 8 requests at once, 4 slots: the server batches up to 4 sequences per llama_decode call
      const answers = await Promise.all(
        Array.from({ length: 8 }, (_, i) => llamaServer.complete(`${i} ${"again ".repeat(i)}`, 16)),
      );
      await waitFor(
        "every request's root span, the server idle",
        () => collector.spans.filter(isRequestSpan).length >= 8,
        30_000,
      );
      const { code, stderr } = await tracer.detach();
      assert.equal(code, 0, stderr);
      const run = runOf(dir);
      const byId = assertExactlyOnce(collector.spans);
      sameIds(byId, buildRunSpans(run, { kind: "every", n: 16 }));
      assert.equal(exportCounts(stderr).dropped, 0);

      const shape = assertTraceShape(collector.spans);
      assert.equal(shape.requests.length, 8, "a trace per request");
      // what the server says it did, request by request: prompt tokens evaluated, tokens generated
      const figures = (list: [number, number][]) =>
        list.map((f) => f.join("/")).sort((x, y) => x.localeCompare(y));
      assert.deepEqual(
        figures(
          shape.requests.map((r) => [
            intOf(r, C.ATTR_REQUEST_PROMPT_TOKENS),
            intOf(r, C.ATTR_GEN_AI_USAGE_OUTPUT_TOKENS),
          ]),
        ),
        figures(answers.map((a) => [a.timings.prompt_n, a.tokens_predicted])),
        "each request's figures are the server's",
      );
      const shared = shape.calls.filter((c) => c.links.length > 1);
      assert.ok(shared.length > 0, "calls served several requests at once");
      assert.ok(
        shape.calls.some((c) => c.attributes[C.ATTR_TOKEN_PHASE]!.value === "mixed") ||
          shared.some((c) => c.attributes[C.ATTR_TOKEN_PHASE]!.value === "prefill"),
        "several prompts, or a prompt beside decoding, in one batch",
      );
      // each request trace links to exactly the calls the model says it took part in
      for (const request of run.requests) {
        const root = shape.requests.find(
          (r) =>
            intOf(r, C.ATTR_REQUEST_SEQ_ID) === request.seqId &&
            intOf(r, C.ATTR_REQUEST_FIRST_SEQ) === request.steps[0]!.token.seq,
        );
        assert.ok(root, `request ${request.id} (sequence ${request.seqId}) has a trace`);
        const linked = shape.traces
          .get(root.traceId)!
          .filter(isStepSpan)
          .map((s) => intOf(byId.get(s.links[0]!.spanId)!, C.ATTR_TOKEN_SEQ));
        assert.deepEqual(
          linked,
          request.steps.map((s) => s.token.seq),
          "its steps link to the calls of its batches, in order",
        );
        assert.equal(root.status.code, 0, `request ${request.id} ran whole`);
      }
      // and each call links to every request in its batch
      for (const call of shape.calls) {
        const token = run.tokens.find(
          (t) => BigInt(t.seq) === call.attributes[C.ATTR_TOKEN_SEQ]!.value,
        )!;
        assert.deepEqual(
          call.links.map((l) => Number(l.attributes[C.ATTR_REQUEST_SEQ_ID]!.value)).sort(),
          (token.batch?.seqs ?? []).map((q) => q.seqId).sort(),
          `call ${token.seq} links to each sequence of its batch`,
        );
      }
    } finally {
      server.kill("SIGKILL");
      await collector.stop();
    }
  });
});

function profinferAsync(args: string[]): Promise<Ran> {
  return profinfer(args);
}

/**
 * A 1,500-token run of tiny-llama exporting to `collector` with `args`, through an outage: the
 * collector goes down once the first spans arrived and comes back once the run is over (its "run
 * folder" line, said before the export flushes, or at once when the run ended before the outage
 * began), so the spool holds what it missed. The run must end well, the collector back.
 */
async function recordThroughOutage(
  collector: OtlpCollector,
  args: string[],
): Promise<{ dir: string; ran: Ran }> {
  let said = "";
  let stopped = false;
  let restarted: Promise<void> | null = null;
  const over = () => /run folder/.test(said);
  const { dir, done } = recordAsync(
    ["--otlp-endpoint", collector.url, ...args, "--otlp-flush-timeout", "60"],
    // long enough for several of the governor's 2 s windows, and for the outage to cover calls
    // still to come (a tiny model decodes a few hundred tokens a second on a quiet machine)
    completion(model("llama"), 1500, ["-c", "2048"]),
    (stderr) => {
      said = stderr;
      if (stopped && !restarted && over()) restarted = collector.restart();
    },
  );
  await waitFor("first spans", () => collector.spans.length > 0);
  await collector.stop();
  stopped = true;
  if (!restarted && over()) restarted = collector.restart();
  const ran = await done;
  assert.equal(ran.code, 0, ran.stderr.slice(-3000));
  assert.ok(restarted, "the collector came back");
  await restarted;
  return { dir, ran };
}

describe("the live export within its CPU bound", () => {
  test("past the bound fewer calls get operator spans, each llama_decode span says which sampling applied, and every span still arrives once across an outage", async () => {
    const collector = await OtlpCollector.start();
    try {
      const { dir, ran } = await recordThroughOutage(collector, [
        "--otlp-op-sample",
        "all",
        // a bound no export can stay within: the sampling goes down at every window
        "--otlp-cpu",
        "0.001",
      ]);
      assert.match(ran.stderr, /operator spans were sampled down to \S+ calls/);
      const counts = exportCounts(ran.stderr);
      assert.equal(counts.queued + counts.dropped, 0);
      assert.ok(counts.resent > 0, "spans waited in the spool meanwhile");
      const byId = assertExactlyOnce(collector.spans);
      assert.equal(byId.size, counts.sent + counts.resent);
      const run = runOf(dir);
      // requests, steps, calls and graphs: every one, whatever the sampling
      const withoutOps = buildRunSpans(run, { kind: "none" });
      for (const s of withoutOps) assert.ok(byId.has(s.spanId), `${s.name} ${s.spanId} arrived`);
      // each call says which sampling applied; its operators arrived exactly when that sampling took it
      const opsOfCall = new Map<string, number>();
      for (const s of collector.spans)
        if (s.attributes[C.ATTR_OP] !== undefined)
          opsOfCall.set(s.traceId, (opsOfCall.get(s.traceId) ?? 0) + 1);
      const specs = new Set<string>();
      for (const call of collector.spans.filter((s) => s.name === C.SPAN_TOKEN)) {
        const spec = String(call.attributes[C.ATTR_TOKEN_OP_SAMPLING]?.value);
        specs.add(spec);
        const seq = intOf(call, C.ATTR_TOKEN_SEQ);
        const phase = String(call.attributes[C.ATTR_TOKEN_PHASE]!.value);
        const every = /^every:(\d+)$/.exec(spec);
        const wanted =
          spec === "all" ||
          (every !== null && (seq % Number(every[1]) === 0 || phase !== "decode"));
        assert.ok(spec === "none" || spec === "all" || every, `a sampling spec: ${spec}`);
        assert.equal(
          call.attributes[C.ATTR_TOKEN_OPS_EXPORTED]!.value,
          wanted,
          `call ${seq} (${spec})`,
        );
        const token = run.tokens.find((t) => t.seq === seq)!;
        const ops = token.graphs.reduce(
          (n, g) => n + (g.opsRecorded ? g.ops.filter((op) => op.startNs !== null).length : 0),
          0,
        );
        assert.equal(opsOfCall.get(call.traceId) ?? 0, wanted ? ops : 0, `call ${seq}'s operators`);
      }
      assert.ok(specs.size > 1, `the sampling went down from all: ${[...specs].join(", ")}`);
      assert.ok(!specs.has("all") || specs.size > 1);
    } finally {
      await collector.stop();
    }
  });
});

describe("nothing lost when the collector is away", () => {
  test("absent at start, up mid-run: every span arrives exactly once", async () => {
    // a port nobody listens on yet: bind one, note it, let it go
    const probe = await OtlpCollector.start();
    const port = probe.port;
    await probe.stop();
    let collector: OtlpCollector | null = null;
    const { dir, done } = recordAsync(
      ["--otlp-endpoint", `http://127.0.0.1:${port}`, "--otlp-op-sample", "every:4"],
      completion(model("llama"), 300),
    );
    try {
      const spool = join(dir, "otlp-spool");
      // the collector comes up once spans have waited in the spool
      await waitFor("spans in the spool", () => existsSync(spool) && readdirSync(spool).length > 0);
      collector = await OtlpCollector.start(port);
      const ran = await done;
      assert.equal(ran.code, 0, ran.stderr.slice(-3000));
      assert.match(ran.stderr, /does not answer/);
      const counts = exportCounts(ran.stderr);
      const expected = buildRunSpans(runOf(dir), { kind: "every", n: 4 });
      const byId = assertExactlyOnce(collector.spans);
      sameIds(byId, expected);
      assert.ok(counts.resent > 0, "spooled spans were re-sent");
      assert.equal(counts.sent + counts.resent, expected.length);
      assert.equal(counts.queued + counts.dropped, 0);
      assert.ok(!existsSync(spool), "an empty spool is removed");
    } finally {
      await collector?.stop();
    }
  });

  test("stopped mid-run and restarted: nothing lost within the spool bound, the excess counted as dropped", async () => {
    for (const bound of ["256M", "96K"]) {
      const collector = await OtlpCollector.start();
      try {
        const { dir, ran } = await recordThroughOutage(collector, [
          "--otlp-op-sample",
          "every:2",
          "--otlp-spool-max",
          bound,
        ]);
        const counts = exportCounts(ran.stderr);
        const expected = buildRunSpans(runOf(dir), { kind: "every", n: 2 });
        const byId = assertExactlyOnce(collector.spans);
        assert.equal(counts.queued, 0);
        assert.equal(byId.size, counts.sent + counts.resent, "what arrived is what was counted");
        assert.equal(
          byId.size + counts.dropped,
          expected.length,
          "every span arrived or is counted",
        );
        assert.ok(counts.resent > 0, `the spool was re-sent: ${JSON.stringify(counts)}`);
        if (bound === "256M") {
          assert.equal(counts.dropped, 0);
          sameIds(byId, expected);
        } else {
          assert.ok(counts.dropped > 0, "a 96K spool cannot hold the outage");
          assert.match(ran.stderr, /spool .* is full/);
        }
      } finally {
        await collector.stop();
      }
    }
  });
});

describe("bad input: clear errors at start", () => {
  test("an endpoint that is not a URL, a header without '=', a sample spec that does not parse", async () => {
    const untouched = join(scratch, "bad-url");
    const notUrl = await profinfer([
      "record",
      "--out",
      untouched,
      "--otlp-endpoint",
      "localhost 4317",
      "--",
      "true",
    ]);
    assert.equal(notUrl.code, 2);
    assert.ok(!existsSync(untouched), "nothing was started or written");
    assert.match(notUrl.stderr, /not a URL.*http:\/\/HOST:PORT/);
    const scheme = await profinfer([
      "record",
      "--otlp-endpoint",
      "grpc://localhost:4317",
      "--",
      "true",
    ]);
    assert.equal(scheme.code, 2);
    assert.match(scheme.stderr, /must start with http:\/\/ .* or https:\/\//);
    const header = await profinfer([
      "record",
      "--otlp-endpoint",
      "http://localhost:4317",
      "--otlp-header",
      "authorization",
      "--",
      "true",
    ]);
    assert.notEqual(header.code, 0);
    assert.match(header.stderr, /has no '=': write KEY=VALUE/);
    const sample = await profinfer(["replay", scratch, "--otlp-op-sample", "some"]);
    assert.notEqual(sample.code, 0);
    assert.match(sample.stderr, /every:N/);
    for (const r of [notUrl, scheme, header, sample])
      assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
  });

  test("an endpoint that refuses (wrong port): said at start, the run is recorded, spans spooled; replay refuses", async () => {
    const probe = await OtlpCollector.start();
    const port = probe.port;
    await probe.stop();
    const { dir, done } = recordAsync(
      ["--otlp-endpoint", `http://127.0.0.1:${port}`, "--otlp-flush-timeout", "1"],
      completion(model("gemma2"), 4),
    );
    const ran = await done;
    assert.equal(ran.code, 0, ran.stderr.slice(-3000));
    const first = ran.stderr.split("\n").find((l) => l.startsWith("profinfer:"));
    assert.match(
      first ?? "",
      /OTLP endpoint http:\/\/127\.0\.0\.1:\d+ does not answer: unavailable/,
    );
    assert.match(ran.stderr, /Recording goes on/);
    const run = runOf(dir);
    assert.ok(run.tokens.length > 0, "the run was recorded");
    const counts = exportCounts(ran.stderr);
    assert.equal(counts.sent, 0);
    assert.equal(
      counts.queued,
      buildRunSpans(run, { kind: "every", n: 16 }).length,
      "every span waits in the spool",
    );
    assert.ok(existsSync(join(dir, "traces.otlp.jsonl")));
    assert.doesNotMatch(ran.stderr, /\n\s+at /);

    // the endpoint up again: replay sends the run
    const collector = await OtlpCollector.start(port);
    try {
      const replay = await profinfer([
        "replay",
        dir,
        "--otlp-endpoint",
        `http://127.0.0.1:${port + 0}`,
      ]);
      assert.equal(replay.code, 0, replay.stderr);
      assert.equal(assertExactlyOnce(collector.spans).size, counts.queued);
    } finally {
      await collector.stop();
    }
    const refused = await profinfer(["replay", dir, "--otlp-endpoint", `http://127.0.0.1:${port}`]);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /does not answer: unavailable.*Nothing was sent/);
  });
});

describe("TLS and the standard OTEL_EXPORTER_OTLP_* variables", () => {
  test("https endpoint from OTEL_EXPORTER_OTLP_ENDPOINT, CA from OTEL_EXPORTER_OTLP_CERTIFICATE, headers from OTEL_EXPORTER_OTLP_HEADERS", async () => {
    // a recorded run without root: a fixture written as events.pinf
    const dir = join(scratch, "tls-run");
    mkdirSync(dir, { recursive: true });
    syntheticRecorder(6, 1, 2).writeTo(join(dir, "events.pinf"));
    const expected = buildRunSpans(runOf(dir), { kind: "every", n: 16 });
    const key = join(scratch, "key.pem");
    const cert = join(scratch, "cert.pem");
    const made = spawnSync("openssl", [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      key,
      "-out",
      cert,
      "-days",
      "1",
      "-subj",
      "/CN=127.0.0.1",
      "-addext",
      "subjectAltName=IP:127.0.0.1",
    ]);
    assert.equal(made.status, 0, made.stderr?.toString());
    const collector = await OtlpCollector.start(0, {
      key: readFileSync(key),
      cert: readFileSync(cert),
    });
    const replay = (env: Record<string, string>, extra: string[] = []) =>
      runProgram(cli, ["replay", dir, ...extra], {
        env: { ...process.env, ...env },
      });
    try {
      assert.match(collector.url, /^https:/);
      const ok = await replay({
        OTEL_EXPORTER_OTLP_ENDPOINT: collector.url,
        OTEL_EXPORTER_OTLP_CERTIFICATE: cert,
        OTEL_EXPORTER_OTLP_HEADERS: "x-team=inference",
      });
      assert.equal(ok.code, 0, ok.stderr);
      sameIds(assertExactlyOnce(collector.spans), expected);
      assert.ok(collector.requests.every((r) => r.metadata["x-team"] === "inference"));

      // the server's certificate not trusted: refused at start, nothing sent
      const untrusted = await replay({ OTEL_EXPORTER_OTLP_ENDPOINT: collector.url });
      assert.equal(untrusted.code, 2);
      assert.match(untrusted.stderr, /does not answer/);
      // plain gRPC to a TLS port
      const plain = await replay({}, ["--otlp-endpoint", collector.url.replace("https", "http")]);
      assert.equal(plain.code, 2);
      assert.match(plain.stderr, /does not answer/);
      assert.equal(collector.spans.length, expected.length, "the refused attempts sent nothing");
    } finally {
      await collector.stop();
    }
  });
});
