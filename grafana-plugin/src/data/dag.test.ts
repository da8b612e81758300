// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { criticalPath } from "./criticalPath.js";
import { dagFromTrace } from "./dagFromTrace.js";
import { EmptyModelError, MissingFieldError, NoUsableFrameError } from "./errors.js";
import { foldLayers } from "./fold.js";
import { dagModelFromFrames } from "./panelData.js";
import {
  makeNodeGraphFrames,
  makeOpTrace,
  makeTraceFrame,
  twoLayerOps,
} from "../../../test/support/frames.js";
import { traceFromFrame } from "./trace.js";

const edgesByName = (model: ReturnType<typeof dagFromTrace>) => {
  const name = new Map(model.nodes.map((n) => [n.id, `${n.label}/${n.op}`]));
  return model.edges.map((e) => `${name.get(e.source)} -> ${name.get(e.target)}`).sort();
};

describe("ProfDAG from a Tempo trace frame", () => {
  test("operators become nodes in node order, sources become edges from their last producer", () => {
    // arrange
    const frame = makeTraceFrame(makeOpTrace(twoLayerOps()));
    // act
    const model = dagModelFromFrames([frame]);
    // assert
    assert.equal(model.nodes.length, 14);
    assert.deepEqual(model.nodes.map((n) => n.label).slice(0, 4), [
      "inp_embd",
      "norm-0",
      "Qcur-0",
      "Qcur-0",
    ]);
    const edges = edgesByName(model);
    // the fused rms_norm+mul is found through the name of its last node (attn_norm-0)
    assert.ok(edges.includes("norm-0/rms_norm+mul -> Qcur-0/mul_mat"));
    // "Qcur-0" names two operators: the add reads the matmul, later readers the add
    assert.ok(edges.includes("Qcur-0/mul_mat -> Qcur-0/add"));
    assert.ok(edges.includes("Qcur-0/add -> kq-0/mul_mat"));
    assert.ok(!edges.includes("Qcur-0/mul_mat -> kq-0/mul_mat"));
    // the KV cache read resolves to the set_rows writing a view of it
    assert.ok(edges.includes("cache_k_l0 (view)/set_rows -> kq-0/mul_mat"));
    assert.ok(edges.includes("ffn_out-1/add -> result_output/mul_mat"));
    assert.equal(model.edges.length, 17);
    // weights and inputs are not operators
    assert.equal(model.inputs, 11);
  });

  test("metrics, tooltip details and per-thread times come from the span attributes and thread events", () => {
    const ops = twoLayerOps();
    ops[2]!.tags = {
      "ggml.barrier_wait_ns": 2_000_000,
      "ggml.counter.task-clock": 12345,
      "ggml.backend_stall_ratio": 0.8,
    };
    const model = dagModelFromFrames([makeTraceFrame(makeOpTrace(ops))]);
    const q = model.nodes[2]!;
    assert.equal(q.metrics.duration, 0.2);
    assert.equal(q.metrics.share, 0.2 / 8);
    assert.equal(q.metrics.barrierWait, 2);
    assert.equal(q.metrics["counter:task-clock"], 12345);
    assert.equal(q.metrics.backendStallRatio, 0.8);
    assert.ok(model.metrics.some((m) => m.id === "counter:task-clock"));
    assert.deepEqual(
      q.details.find(([k]) => k === "shape"),
      ["shape", "[64, 1, 1, 1]"],
    );
    assert.equal(q.kind, "matmul");
    assert.deepEqual(
      q.threads.map((t) => [t.ith, t.tid, Math.round(t.durationMs * 1e6)]),
      [
        [0, 100, 40_000],
        [1, 101, 49_000],
      ],
    );
  });

  test("the default graph is the first decode token's; the choice lists every graph with operators", () => {
    const spans = makeOpTrace(twoLayerOps());
    const model = dagModelFromFrames([makeTraceFrame(spans)]);
    assert.equal(model.graphId, "0000000000000003");
    assert.equal(model.graphs.length, 1);
    assert.match(model.title, /decode #2/);
  });

  test("Tempo frames whose tags and logs arrive as JSON text are read the same", () => {
    const frame = makeTraceFrame(makeOpTrace(twoLayerOps()));
    for (const f of frame.fields)
      if (f.name === "tags" || f.name === "logs")
        (f as { values: unknown[] }).values = (f.values as unknown[]).map((v) => JSON.stringify(v));
    const model = dagModelFromFrames([frame]);
    assert.equal(model.nodes.length, 14);
    assert.equal(model.edges.length, 17);
  });

  for (const field of [
    "spanID",
    "parentSpanID",
    "operationName",
    "startTime",
    "duration",
    "tags",
  ]) {
    test(`a trace frame without ${field} is refused naming it`, () => {
      const frame = makeTraceFrame(makeOpTrace(twoLayerOps()), [field]);
      // without spanID and operationName the frame is not recognisable as a trace at all
      frame.meta = { preferredVisualisationType: "trace" };
      assert.throws(
        () => dagModelFromFrames([frame]),
        (e: unknown) =>
          e instanceof MissingFieldError && e.field === field && e.message.includes(`"${field}"`),
      );
    });
  }

  for (const attr of ["ggml.tensor.name", "ggml.node.index", "ggml.src.nodes"]) {
    test(`operator spans without ${attr} are refused naming it`, () => {
      const spans = makeOpTrace(twoLayerOps());
      for (const s of spans) if (s.tags?.["ggml.op"]) delete s.tags[attr];
      assert.throws(
        () => dagModelFromFrames([makeTraceFrame(spans)]),
        (e: unknown) => e instanceof MissingFieldError && e.field === attr,
      );
    });
  }

  test("a trace without operator spans says to record at op level", () => {
    const spans = makeOpTrace([]);
    assert.throws(() => dagModelFromFrames([makeTraceFrame(spans)]), EmptyModelError);
  });

  test("a request's trace says the graphs are in its calls' traces", () => {
    const request = makeTraceFrame([
      {
        id: "00000000000000a1",
        name: "text_completion tiny-llama",
        tags: { "gen_ai.operation.name": "text_completion" },
      },
      { id: "00000000000000a2", parent: "00000000000000a1", name: "prefill" },
    ]);
    assert.throws(
      () => dagModelFromFrames([request]),
      (e: unknown) =>
        e instanceof EmptyModelError && /request's trace.*llama_decode/.test(e.message),
    );
  });

  test("no frames, or frames of another kind, say what ProfDAG reads", () => {
    assert.throws(() => dagModelFromFrames([]), NoUsableFrameError);
    const series = {
      length: 1,
      fields: [
        { name: "Time", values: [1] },
        { name: "Value", values: [2] },
      ],
    };
    assert.throws(() => dagModelFromFrames([series]), /Tempo/);
  });
});

describe("ProfDAG from a node graph frame pair", () => {
  test("nodes and edges as Grafana's node graph reads them", () => {
    const frames = makeNodeGraphFrames(
      [
        { id: "a", title: "attn_norm-0", mainstat: 3, details: { shape: "[64, 1]" } },
        { id: "b", title: "Qcur-0", mainstat: 5, details: { shape: "[64, 1]" } },
        { id: "c", title: "kq-0", mainstat: 1, details: { shape: "[64, 1]" } },
      ],
      [
        ["a", "b"],
        ["b", "c"],
        ["a", "zz"],
      ],
    );
    const model = dagModelFromFrames(frames);
    assert.deepEqual(
      model.nodes.map((n) => n.id),
      ["a", "b", "c"],
    );
    assert.deepEqual(
      model.edges.map((e) => `${e.source}${e.target}`),
      ["ab", "bc"],
    );
    assert.equal(model.inputs, 1, "the edge to an unknown node is counted, not drawn");
    assert.equal(model.nodes[1]!.metrics.mainstat, 5);
    assert.ok(model.metrics.some((m) => m.id === "mainstat"));
    assert.equal(model.nodes[0]!.layer, 0);
  });

  for (const [frame, field] of [
    ["nodes", "id"],
    ["edges", "id"],
    ["edges", "source"],
    ["edges", "target"],
  ] as const) {
    test(`a ${frame} frame without ${field} is refused naming it`, () => {
      const frames = makeNodeGraphFrames(
        [
          { id: "a", title: "x" },
          { id: "b", title: "y" },
        ],
        [["a", "b"]],
      );
      const f = frames.find((x) => x.name === frame)!;
      f.fields = f.fields.filter((x) => x.name !== field);
      assert.throws(
        () => dagModelFromFrames(frames),
        (e: unknown) => e instanceof MissingFieldError && e.field === field,
      );
    });
  }
});

describe("folding repeated layers", () => {
  test("each layer's operators fold onto one block node with the chosen aggregate; unfolding is the model itself", () => {
    const model = dagModelFromFrames([makeTraceFrame(makeOpTrace(twoLayerOps()))]);
    const folded = foldLayers(model, "sum");
    // inp_embd and result_output stay, the 6 operators of each of the 2 layers fold to 6
    assert.equal(folded.nodes.length, 8);
    const kq = folded.nodes.find((n) => n.label === "kq" && n.op === "mul_mat")!;
    assert.equal(kq.members?.length, 2);
    assert.equal(kq.metrics.duration, 0.6);
    assert.equal(
      foldLayers(model, "max").nodes.find((n) => n.label === "kq")!.metrics.duration,
      0.3,
    );
    // the two Qcur-L operators stay apart (matmul and bias add)
    assert.equal(folded.nodes.filter((n) => n.label === "Qcur").length, 2);
    // the hand-over from layer 0 to layer 1 is one loop edge inside the block
    assert.ok(folded.edges.some((e) => e.loop));
    const ids = new Set(folded.nodes.map((n) => n.id));
    assert.ok(
      folded.edges.every((e) => ids.has(e.source) && ids.has(e.target) && e.source !== e.target),
    );
    // the original is untouched
    assert.equal(model.nodes.length, 14);
    assert.equal(model.edges.length, 17);
  });
});

describe("critical path", () => {
  test("the chain with the largest summed duration, following edges", () => {
    const model = dagModelFromFrames([makeTraceFrame(makeOpTrace(twoLayerOps()))]);
    const path = criticalPath(model);
    const labels = model.nodes.filter((n) => path.nodes.has(n.id)).map((n) => `${n.label}/${n.op}`);
    assert.deepEqual(labels, [
      "inp_embd/get_rows",
      "norm-0/rms_norm+mul",
      "Qcur-0/mul_mat",
      "Qcur-0/add",
      "cache_k_l0 (view)/set_rows",
      "kq-0/mul_mat",
      "ffn_out-0/add",
      "norm-1/rms_norm+mul",
      "Qcur-1/mul_mat",
      "Qcur-1/add",
      "cache_k_l1 (view)/set_rows",
      "kq-1/mul_mat",
      "ffn_out-1/add",
      "result_output/mul_mat",
    ]);
    assert.equal(path.edges.size, 13);
    assert.ok(Math.abs(path.total - (0.05 * 9 + 0.2 * 2 + 0.3 * 2 + 0.4)) < 1e-9);
  });
});

describe("trace frame reading", () => {
  test("spans keep their parents; an all-zero parentSpanID is a root", () => {
    const frame = makeTraceFrame(makeOpTrace(twoLayerOps()));
    // Jaeger and older Tempo write the root's parent as zeros, Tempo's frame as ""
    const parents = frame.fields.find((f) => f.name === "parentSpanID")!.values;
    parents.forEach((p, i) => (parents[i] = p === "" ? "0000000000000000" : p));
    const trace = traceFromFrame(frame);
    assert.equal(trace.spans.filter((s) => s.parentSpanId === null).length, 1);
    assert.equal(trace.children.get("0000000000000003")!.length, 14);
  });
});
