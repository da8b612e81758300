// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { DiffRow } from "@profinfer/contract";
import {
  changesBetweenGraphs,
  changesFromDiff,
  comparisonFromFrames,
  foldedChange,
  nodeKey,
  type DagComparison,
} from "./dagChange.js";
import type { DagModel } from "./dagModel.js";
import { NoUsableFrameError } from "./errors.js";
import { foldLayers } from "./fold.js";
import { dagModelFromFrames } from "./panelData.js";
import {
  makeOpTrace,
  makeTraceFrame,
  twoLayerOps,
  type OpSpec,
} from "../../../test/support/frames.js";

const model = (ops: OpSpec[]): DagModel => dagModelFromFrames([makeTraceFrame(makeOpTrace(ops))]);

/** mark per node key (keys that several nodes share: their marks joined) */
function marksByKey(m: DagModel, changes: DagComparison["baseChanges"]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const n of m.nodes) {
    const key = nodeKey(n);
    const mark = changes.get(n.id)!.mark;
    out[key] = out[key] && out[key] !== mark ? `${out[key]}|${mark}` : mark;
  }
  return out;
}

/** twoLayerOps with layer 0's Q matmul twice as slow, layer 1's kq three times as fast, layer 1's bias add gone and an attention output added */
function changedOps(): OpSpec[] {
  const ops = twoLayerOps()
    .filter((o) => !(o.name === "Qcur-1" && o.op === "add"))
    .map((o) => ({ ...o }));
  ops.find((o) => o.name === "Qcur-0" && o.op === "mul_mat")!.durationMs = 0.4;
  ops.find((o) => o.name === "kq-1")!.durationMs = 0.1;
  ops.push({ name: "attn_out-1", op: "mul_mat", src: ["kq-1"], producers: [-1], layer: 1 });
  // producers index into the list: the filter shifted them, and edges do not matter here
  for (const o of ops) o.producers = (o.src ?? []).map(() => -1);
  return ops;
}

describe("comparing two graphs alone (the panel: one trace a side)", () => {
  test("slower, faster, same, added and removed by the tensor's key", () => {
    // arrange
    const base = model(twoLayerOps());
    const next = model(changedOps());
    // act
    const c = changesBetweenGraphs(base, next, { minRelative: 0.15, minShare: 0.01 });
    // assert
    const a = marksByKey(c.base, c.baseChanges);
    const b = marksByKey(c.next, c.nextChanges);
    assert.equal(b["Qcur-0 (mul_mat)"], "slower");
    assert.equal(b["kq-1 (mul_mat)"], "faster");
    assert.equal(b["result_output (mul_mat)"], "same");
    assert.equal(b["attn_out-1 (mul_mat)"], "added");
    assert.equal(a["Qcur-1 (add)"], "removed");
    assert.equal(a["Qcur-0 (mul_mat)"], "slower", "the base's node carries the same change");
    assert.equal(c.nextChanges.get(c.next.nodes[2]!.id)!.relative!.toFixed(3), "1.000");
    // the change is a row of each node's tooltip
    const q = c.next.nodes.find((n) => nodeKey(n) === "Qcur-0 (mul_mat)")!;
    assert.deepEqual(q.details.at(-1), ["change", "slower (+100.0%)"]);
    assert.match(c.method, /no noise estimate.*15%/);
  });

  test("a change within the bounds, or too small a part of the graph, is the same", () => {
    const ops = twoLayerOps().map((o) => ({ ...o }));
    // +10%: within ±15%
    ops.find((o) => o.name === "result_output")!.durationMs = 0.44;
    // +100% of 0.05 ms: beyond 15%, but 0.05 ms is under a tenth of the 1.85 ms graph
    ops.find((o) => o.name === "inp_embd")!.durationMs = 0.1;
    const c = changesBetweenGraphs(model(twoLayerOps()), model(ops), {
      minRelative: 0.15,
      minShare: 0.1,
    });
    const b = marksByKey(c.next, c.nextChanges);
    assert.equal(b["result_output (mul_mat)"], "same");
    assert.equal(b["inp_embd (get_rows)"], "same");
    const loose = changesBetweenGraphs(model(twoLayerOps()), model(ops), {
      minRelative: 0.15,
      minShare: 0.01,
    });
    assert.equal(marksByKey(loose.next, loose.nextChanges)["inp_embd (get_rows)"], "slower");
  });

  test("a folded block takes its layers' change when they agree, else it is mixed", () => {
    const c = changesBetweenGraphs(model(twoLayerOps()), model(changedOps()));
    const folded = foldLayers(c.next, "mean");
    const block = (label: string, op: string) =>
      folded.nodes.find((n) => n.members && n.label === label && n.op === op)!;
    // Qcur-0 slower, Qcur-1 the same
    assert.equal(foldedChange(block("Qcur", "mul_mat"), c.nextChanges)!.mark, "mixed");
    assert.equal(foldedChange(block("ffn_out", "add"), c.nextChanges)!.mark, "same");
    const plain = folded.nodes.find((n) => n.label === "result_output")!;
    assert.equal(foldedChange(plain, c.nextChanges)!.mark, "same");
  });
});

describe("comparing by the diff's verdicts (the diff page)", () => {
  test("each node takes its key's row; an unnamed node is keyed by op and layer; a key without a row is not compared", () => {
    const ops = twoLayerOps().map((o) => ({ ...o }));
    ops.find((o) => o.name === "kq-1")!.name = "node_17";
    const base = model(ops);
    const next = model(ops);
    const row = (name: string, verdict: DiffRow["verdict"], relative: number | null): DiffRow => ({
      name,
      unit: "ms per decode call",
      base: 1,
      new: 1,
      change: 0,
      relative,
      interval: null,
      verdict,
      calls: [20, 20],
    });
    const c = changesFromDiff(base, next, [
      row("Qcur-0 (mul_mat)", "slower", 0.5),
      row("unnamed (mul_mat) in layer 1", "faster", -0.4),
      row("result_output (mul_mat)", "same", 0.01),
    ]);
    const b = marksByKey(c.next, c.nextChanges);
    assert.equal(b["Qcur-0 (mul_mat)"], "slower");
    assert.equal(b["unnamed (mul_mat) in layer 1"], "faster");
    assert.equal(b["result_output (mul_mat)"], "same");
    assert.equal(b["kq-0 (mul_mat)"], "not compared");
    assert.match(c.method, /profinfer diff/);
  });
});

describe("the panel's two queries", () => {
  test("the base is the trace of the base query, whichever comes first", () => {
    const a = { ...makeTraceFrame(makeOpTrace(twoLayerOps())), refId: "A" };
    const b = { ...makeTraceFrame(makeOpTrace(changedOps())), refId: "B" };
    const c = comparisonFromFrames([b, a], { baseRefId: "A", minRelative: 0.15, minShare: 0.01 });
    assert.ok(
      c.next.nodes.some((n) => n.label === "attn_out-1"),
      "B is the new run",
    );
    const swapped = comparisonFromFrames([b, a], {
      baseRefId: "B",
      minRelative: 0.15,
      minShare: 0.01,
    });
    const mark = marksByKey(swapped.next, swapped.nextChanges);
    assert.equal(mark["Qcur-0 (mul_mat)"], "faster", "against B, A's Q matmul is faster");
    assert.equal(mark["Qcur-1 (add)"], "added");
  });

  test("one trace: an error that says a second query is needed", () => {
    const a = { ...makeTraceFrame(makeOpTrace(twoLayerOps())), refId: "A" };
    assert.throws(
      () => comparisonFromFrames([a], { baseRefId: "A", minRelative: 0.15, minShare: 0.01 }),
      (e: unknown) =>
        e instanceof NoUsableFrameError && /two traces.*got 1 trace from A.*second/.test(e.message),
    );
  });
});
