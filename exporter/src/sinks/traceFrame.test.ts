// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { moeRunFixture } from "../../../test/support/fixtures.js";
import { buildRun } from "../trace/buildRun.js";
import { renderReportHtml, reportData } from "./report.js";
import { computeStats } from "./stats.js";
import { mainDecodeGraph, traceFrame } from "./traceFrame.js";

type Row = Record<string, unknown>;

function rows(frame: ReturnType<typeof traceFrame>): Row[] {
  return Array.from({ length: frame.length }, (_, i) =>
    Object.fromEntries(frame.fields.map((f) => [f.name, f.values[i]])),
  );
}
const tags = (r: Row) =>
  new Map((r.tags as { key: string; value: unknown }[]).map((t) => [t.key, t.value]));

describe("a run as a Tempo trace frame", () => {
  const run = buildRun(moeRunFixture().rec.recording());
  const main = mainDecodeGraph(run)!;
  const frame = traceFrame(run, { opGraphs: [main] });
  const spans = rows(frame);

  test("has the columns of Grafana's Tempo data source, in its order", () => {
    assert.deepEqual(
      frame.fields.map((f) => f.name),
      [
        "traceID",
        "spanID",
        "parentSpanID",
        "operationName",
        "serviceName",
        "kind",
        "statusCode",
        "statusMessage",
        "instrumentationLibraryName",
        "instrumentationLibraryVersion",
        "traceState",
        "serviceTags",
        "startTime",
        "duration",
        "logs",
        "references",
        "tags",
      ],
    );
    assert.equal(frame.meta.preferredVisualisationType, "trace");
    assert.ok(frame.fields.every((f) => f.values.length === frame.length));
  });

  test("a trace per call (llama_decode > graph_compute > operators) and per request, linked, with the attributes of the span contract", () => {
    const byId = new Map(spans.map((s) => [s.spanID as string, s]));
    const roots = spans.filter((s) => s.parentSpanID === "");
    assert.deepEqual(roots.map((s) => s.operationName).sort(), [
      "llama_decode",
      "llama_decode",
      "llama_decode",
      "text_completion tiny",
    ]);
    assert.equal(new Set(spans.map((s) => s.traceID)).size, 4, "one trace per root");
    const request = roots.find((s) => s.operationName !== "llama_decode")!;
    assert.equal(tags(request).get("gen_ai.usage.input_tokens"), 3);
    assert.equal(tags(request).get("gen_ai.usage.output_tokens"), 3);
    const steps = spans.filter((s) => s.parentSpanID === request.spanID);
    assert.deepEqual(
      steps.map((s) => s.operationName),
      ["prefill", "decode", "decode"],
    );
    const tokens = spans.filter((s) => s.operationName === "llama_decode");
    assert.deepEqual(
      tokens.map((s) => tags(s).get("profinfer.token.phase")),
      ["prefill", "decode", "decode"],
    );
    // links as Tempo hands them to Grafana: references, both ways
    type Reference = { traceID: string; spanID: string; tags: { key: string }[] };
    tokens.forEach((t, i) => {
      const refs = t.references as Reference[];
      assert.deepEqual(
        refs.map((r) => [r.traceID, r.spanID]),
        [[steps[i]!.traceID, steps[i]!.spanID]],
      );
      assert.deepEqual(
        (steps[i]!.references as Reference[]).map((r) => [r.traceID, r.spanID]),
        [[t.traceID, t.spanID]],
      );
      assert.ok(refs[0]!.tags.some((kv) => kv.key === "profinfer.step.kind"));
    });
    const ops = spans.filter((s) => tags(s).has("ggml.op"));
    assert.equal(ops.length, main.ops.length, "operators of the chosen graph only");
    for (const op of ops) {
      const t = tags(op);
      for (const key of [
        "ggml.tensor.name",
        "ggml.tensor.shape",
        "ggml.tensor.type",
        "ggml.node.index",
        "ggml.src.names",
        "ggml.src.ops",
        "ggml.threads",
        "ggml.thread.slowest_ns",
        "ggml.thread.fastest_ns",
        "ggml.thread.imbalance",
        "ggml.barrier_wait_ns",
      ])
        assert.ok(t.has(key), `${String(t.get("ggml.tensor.name"))}: ${key}`);
      assert.equal(op.operationName, t.get("ggml.op"));
      // arrays as Tempo hands them over: their JSON text
      assert.ok(Array.isArray(JSON.parse(t.get("ggml.src.names") as string)));
      const graph = byId.get(op.parentSpanID as string)!;
      assert.equal(graph.operationName, "graph_compute");
      let up = graph;
      while (up.operationName === "graph_compute") up = byId.get(up.parentSpanID as string)!;
      assert.equal(up.operationName, "llama_decode");
      const threads = (
        op.logs as { name: string; fields: { key: string; value: number }[] }[]
      ).filter((l) => l.name === "thread");
      assert.equal(threads.length, 3, "one thread event per worker");
    }
    const fused = ops.find((s) => tags(s).get("ggml.op") === "rms_norm+mul")!;
    assert.equal(JSON.parse(tags(fused).get("ggml.fused.names") as string).length, 2);
    // the KV cache read comes from the set_rows that wrote it
    const kq = ops.find((s) => tags(s).get("ggml.tensor.name") === "kq-0")!;
    const writer = ops.find((s) => tags(s).get("ggml.op") === "set_rows")!;
    assert.ok(
      JSON.parse(tags(kq).get("ggml.src.names") as string).includes(
        tags(writer).get("ggml.tensor.name"),
      ),
    );
  });

  test("MoE routing as moe.route events: per layer, n_tokens x k expert ids", () => {
    const fixture = moeRunFixture();
    const tokens = spans.filter((s) => s.operationName === "llama_decode");
    tokens.forEach((s, i) => {
      const routes = (
        s.logs as { name: string; fields: { key: string; value: unknown }[] }[]
      ).filter((l) => l.name === "moe.route");
      assert.equal(routes.length, 1);
      const f = new Map(routes[0]!.fields.map((x) => [x.key, x.value]));
      assert.equal(f.get("ggml.layer"), 0);
      assert.equal(f.get("ggml.moe.k"), 2);
      assert.deepEqual(
        JSON.parse(f.get("ggml.moe.experts") as string),
        fixture.tokens[i]!.experts.flat(),
      );
    });
  });

  test("report.html: the data cannot close its script element, no resource outside the file", () => {
    const data = reportData(run, computeStats(run));
    data.title = "a </script><script>alert(1)</script> title";
    const html = renderReportHtml(data, "window.bundled = '</script>';");
    assert.equal(html.match(/<script/g)!.length, 2);
    assert.equal(html.match(/<\/script>/g)!.length, 2);
    assert.match(html, /Content-Security-Policy" content="default-src 'none'/);
    assert.doesNotMatch(html, /<(link|img|iframe)\b|src=/);
    const embedded =
      /<script type="application\/json" id="profinfer-report-data">(.*?)<\/script>/s.exec(
        html,
      )![1]!;
    assert.equal(JSON.parse(embedded).title, data.title);
    // the main graph is a decode call's, and it carries operators
    const all = rows(data.frames[0]!);
    const byId = new Map(all.map((r) => [r.spanID as string, r]));
    let up = byId.get(data.mainGraphSpanId!)!;
    assert.ok(all.some((r) => r.parentSpanID === up.spanID && tags(r).has("ggml.op")));
    while (up.operationName === "graph_compute") up = byId.get(up.parentSpanID as string)!;
    assert.equal(tags(up).get("profinfer.token.phase"), "decode");
  });
});
