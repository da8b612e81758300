// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { defaultOptions } from "../types.js";
import { BadValueError, EmptyModelError, MissingFieldError } from "./errors.js";
import { heatmapModelFromFrames } from "./panelData.js";
import {
  makeOpTrace,
  makePrometheusSeries,
  makeTraceFrame,
  type SpanSpec,
} from "../../../test/support/frames.js";

const route = (layer: number, k: number, experts: number[]) => ({
  name: "moe.route",
  fields: { "ggml.layer": layer, "ggml.moe.k": k, "ggml.moe.experts": experts },
});

function moeTrace(): SpanSpec[] {
  const spans = makeOpTrace([{ name: "ffn_moe_logits-0", op: "mul_mat", layer: 0, src: [] }], {
    moe: [route(0, 2, [1, 3]), route(1, 2, [0, 1])],
  });
  // a prefill of two tokens before the decode (a call trace of its own, in the same frame)
  spans.push({
    id: "0000000000000009",
    name: "llama_decode",
    startMs: 1_732_869_999_000,
    tags: {
      "profinfer.token.seq": 1,
      "profinfer.token.phase": "prefill",
      "profinfer.token.n_tokens": 2,
    },
    logs: [route(0, 2, [0, 1, 1, 2]), route(1, 2, [3, 0, 0, 2])],
  });
  // the router's width says there are 6 experts, more than were chosen
  spans.find((s) => s.tags?.["ggml.tensor.name"] === "ffn_moe_logits-0")!.tags![
    "ggml.tensor.shape"
  ] = [6, 1, 1, 1];
  return spans;
}

describe("expert heatmap from a trace", () => {
  test("layers mode: selections per layer and expert over every token", () => {
    const model = heatmapModelFromFrames([makeTraceFrame(moeTrace())], {
      ...defaultOptions,
      heatmapMode: "layers",
    });
    assert.deepEqual(model.rows, ["layer 0", "layer 1"]);
    assert.equal(model.experts.length, 6);
    assert.deepEqual(model.values, [
      [1, 3, 1, 1, 0, 0],
      [3, 1, 1, 1, 0, 0],
    ]);
    assert.equal(model.max, 3);
  });

  test("tokens mode: one row per token of each batch, in time order, for the chosen layer", () => {
    const model = heatmapModelFromFrames([makeTraceFrame(moeTrace())], {
      ...defaultOptions,
      heatmapMode: "tokens",
      heatmapLayer: 1,
    });
    assert.deepEqual(model.rows, ["#1.0", "#1.1", "#2.0"]);
    assert.deepEqual(
      model.values.map((r) => r.slice(0, 4)),
      [
        [1, 0, 0, 1],
        [1, 0, 1, 0],
        [1, 1, 0, 0],
      ],
    );
    assert.equal(model.layer, 1);
    assert.deepEqual(model.layers, [0, 1]);
  });

  for (const attr of ["ggml.layer", "ggml.moe.k", "ggml.moe.experts"]) {
    test(`a moe.route event without ${attr} is refused naming it`, () => {
      const spans = moeTrace();
      for (const s of spans) for (const l of s.logs ?? []) delete l.fields[attr];
      assert.throws(
        () =>
          heatmapModelFromFrames([makeTraceFrame(spans)], {
            ...defaultOptions,
            heatmapSource: "trace",
          }),
        (e: unknown) => e instanceof MissingFieldError && e.field === attr,
      );
    });
  }

  test("a trace frame without logs is refused naming the field", () => {
    assert.throws(
      () => heatmapModelFromFrames([makeTraceFrame(moeTrace(), ["logs"])], defaultOptions),
      (e: unknown) => e instanceof MissingFieldError && e.field === "logs",
    );
  });

  test("expert ids that are not n_tokens x k are refused", () => {
    const spans = moeTrace();
    spans.find((s) => s.name === "llama_decode")!.logs = [route(0, 2, [1, 2, 3])];
    assert.throws(
      () => heatmapModelFromFrames([makeTraceFrame(spans)], defaultOptions),
      BadValueError,
    );
  });

  test("a dense model's trace says it has no routing", () => {
    assert.throws(
      () => heatmapModelFromFrames([makeTraceFrame(makeOpTrace([]))], defaultOptions),
      EmptyModelError,
    );
  });
});

describe("expert heatmap from Prometheus", () => {
  test("time series frames: the last value of each (layer, expert) series", () => {
    const frames = makePrometheusSeries([
      { layer: 0, expert: 0, values: [1, 4] },
      { layer: 0, expert: 2, values: [7] },
      { layer: 1, expert: 1, values: [2, 3] },
    ]);
    const model = heatmapModelFromFrames(frames, defaultOptions);
    assert.deepEqual(model.rows, ["layer 0", "layer 1"]);
    assert.deepEqual(model.values, [
      [4, 0, 7],
      [0, 3, 0],
    ]);
  });

  test("a table frame with layer, expert and value columns", () => {
    const table = {
      refId: "A",
      length: 3,
      fields: [
        { name: "Time", type: "time", values: [1, 1, 1] },
        { name: "layer", type: "string", values: ["0", "0", "1"] },
        { name: "expert", type: "string", values: ["1", "3", "0"] },
        { name: "Value #A", type: "number", values: [5, 6, 7] },
      ],
    };
    const model = heatmapModelFromFrames([table as never], defaultOptions);
    assert.deepEqual(model.values, [
      [0, 5, 0, 6],
      [7, 0, 0, 0],
    ]);
  });

  for (const label of ["layer", "expert"]) {
    test(`series without the ${label} label are refused naming it`, () => {
      const frames = makePrometheusSeries([{ layer: 0, expert: 1, values: [1] }]);
      delete (frames[0]!.fields[1]!.labels as Record<string, string>)[label];
      assert.throws(
        () => heatmapModelFromFrames(frames, defaultOptions),
        (e: unknown) => e instanceof MissingFieldError && e.field === `${label} label`,
      );
    });
    test(`a table without the ${label} column is refused naming it`, () => {
      const other = label === "layer" ? "expert" : "layer";
      const table = {
        length: 1,
        fields: [
          { name: other, values: ["1"] },
          { name: "Value", type: "number", values: [1] },
        ],
      };
      assert.throws(
        () => heatmapModelFromFrames([table as never], defaultOptions),
        (e: unknown) => e instanceof MissingFieldError && e.field === label,
      );
    });
  }

  test("frames without any value say what to query", () => {
    const frames = [{ length: 1, fields: [{ name: "Time", type: "time", values: [1] }] }];
    assert.throws(
      () => heatmapModelFromFrames(frames as never, defaultOptions),
      /sum by \(layer, expert\)/,
    );
  });
});
