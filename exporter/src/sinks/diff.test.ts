// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { test } from "node:test";
import { fixtureHeader, syntheticRecorder } from "../../../test/support/fixtures.js";
import { buildRun } from "../trace/buildRun.js";
import type { Run } from "../trace/types.js";
import { diffRuns, formatDiff } from "./diff.js";

/** `tokens` calls over a 2-layer dense graph on 2 threads; mul_mat takes `mulMatNs` (+ jitter). */
function run(options: { mulMatNs: number; abi?: number; tokens?: number }): Run {
  const header = fixtureHeader(options.abi === undefined ? {} : { eventAbi: options.abi });
  const rec = syntheticRecorder(options.tokens ?? 24, 2, 2, {
    header,
    duration: (n, ith, seq) =>
      (n.op === "MUL_MAT" ? options.mulMatNs : 3_000) + ith * 500 + (seq % 7) * 40,
  });
  return buildRun(rec.recording());
}

const rowOf = (report: ReturnType<typeof diffRuns>, section: string, name: string) =>
  report.sections.find((s) => s.name === section)?.rows.find((r) => r.name === name);

test("identical runs: every change 0, nothing counted; the same diff twice is the same", () => {
  const a = { dir: "a", run: run({ mulMatNs: 20_000 }) };
  const b = { dir: "b", run: run({ mulMatNs: 20_000 }) };
  const report = diffRuns(a, b);
  for (const s of report.sections) {
    for (const r of s.rows) {
      assert.equal(r.change, 0, `${s.name} ${r.name}`);
      assert.ok(r.verdict === "same" || r.verdict === "too few calls", `${s.name} ${r.name}`);
    }
    assert.deepEqual([s.added, s.removed], [[], []]);
  }
  assert.deepEqual(diffRuns(a, b), report, "the bootstrap is seeded");
});

test("matrix multiplies twice as slow: slower, by the right amount, first in its section", () => {
  const report = diffRuns(
    { dir: "a", run: run({ mulMatNs: 20_000 }) },
    { dir: "b", run: run({ mulMatNs: 40_000 }) },
  );
  const ops = report.sections.find((s) => s.name === "operators")!;
  assert.equal(ops.rows[0]!.name, "mul_mat");
  assert.equal(ops.rows[0]!.verdict, "slower");
  assert.ok(Math.abs(ops.rows[0]!.relative! - 1) < 0.05, `${ops.rows[0]!.relative}`);
  assert.equal(rowOf(report, "phases", "decode call")?.verdict, "slower");
  assert.equal(rowOf(report, "operators", "rms_norm+mul")?.verdict, "same");
  assert.match(formatDiff(report), /^mul_mat .* slower$/m);
});

test("a run of an older event format (ABI 3, no batch summaries) compares like any other", () => {
  const report = diffRuns(
    { dir: "old", run: run({ mulMatNs: 20_000, abi: 3 }) },
    { dir: "new", run: run({ mulMatNs: 20_000 }) },
  );
  assert.equal(report.base.decodeCalls, 23);
  assert.equal(rowOf(report, "operators", "mul_mat")?.verdict, "same");
  assert.deepEqual(report.notCompared, []);
});

test("a side with few calls gets no verdict; a figure only one run has is added or removed", () => {
  const report = diffRuns(
    { dir: "a", run: run({ mulMatNs: 20_000, tokens: 4 }) },
    { dir: "b", run: run({ mulMatNs: 40_000 }) },
  );
  assert.equal(rowOf(report, "operators", "mul_mat")?.verdict, "too few calls");
  const bare = run({ mulMatNs: 20_000 });
  // the same run without its ADD operators (a build that fuses them away)
  const fewer = run({ mulMatNs: 20_000 });
  for (const g of fewer.graphRuns) g.ops = g.ops.filter((o) => o.label !== "ADD");
  const removed = diffRuns({ dir: "a", run: bare }, { dir: "b", run: fewer });
  assert.equal(rowOf(removed, "operators", "add")?.verdict, "removed");
  assert.deepEqual(removed.sections.find((s) => s.name === "operators")!.removed, ["add"]);
});
