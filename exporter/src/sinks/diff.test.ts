// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Finding } from "@profinfer/contract";
import {
  fixtureHeader,
  serverRecorder,
  syntheticRecorder,
  type ServerCall,
} from "../../../test/support/fixtures.js";
import { buildRun } from "../trace/buildRun.js";
import type { Run } from "../trace/types.js";
import { compareFindings, diffRuns, formatDiff } from "./diff.js";
import { computeStats } from "./stats.js";

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
      assert.ok(
        ["same", "too few calls", "too few requests"].includes(r.verdict),
        `${s.name} ${r.name}`,
      );
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

/** A server on one slot answering `count` requests in turn, each a prompt of 5-7 tokens and 4 decode steps. */
function server(count: number, mulMatNsPerToken: number): Run {
  const calls: ServerCall[] = [];
  for (let i = 0; i < count; i++) {
    const prompt = 5 + (i % 3);
    calls.push({ parts: [[0, prompt, 0, 1]] });
    for (let d = 0; d < 4; d++) calls.push({ parts: [[0, 1, prompt + d, 1]] });
  }
  return buildRun(serverRecorder(calls, 500_000_000n, mulMatNsPerToken).recording());
}

test("requests: TTFT, TPOT and tokens/s per request, judged over the requests", () => {
  const report = diffRuns(
    { dir: "a", run: server(8, 4_000) },
    { dir: "b", run: server(8, 12_000) },
  );
  const requests = report.sections.find((s) => s.name === "requests")!;
  assert.equal(requests.samples, "requests");
  assert.deepEqual(
    requests.rows.map((r) => [r.name, r.unit, r.calls]),
    [
      ["TTFT", "ms per request", [8, 8]],
      ["TPOT", "ms per generated token", [8, 8]],
      ["tokens/s", "generated tokens per second", [8, 8]],
    ],
  );
  assert.equal(report.base.requests, 8);
  assert.equal(rowOf(report, "requests", "TTFT")?.verdict, "slower");
  assert.equal(rowOf(report, "requests", "TPOT")?.verdict, "slower");
  // fewer tokens per second is slower
  const perSecond = rowOf(report, "requests", "tokens/s")!;
  assert.ok(perSecond.change < 0);
  assert.equal(perSecond.verdict, "slower");
  // the figures are each request's own: TPOT is the mean over requests of their time per token
  const run = server(8, 4_000);
  const tpot = run.requests.map(
    (r) => Number(r.endNs - r.firstOutputNs!) / (r.generatedTokens - 1) / 1e6,
  );
  assert.ok(
    Math.abs(rowOf(report, "requests", "TPOT")!.base! - tpot.reduce((a, b) => a + b) / 8) < 1e-9,
  );
  assert.match(
    formatDiff(report),
    /^requests, in ms per request \/ ms per generated token \/ generated tokens per second, over requests$/m,
  );
  // the same server twice: the same
  const same = diffRuns({ dir: "a", run: server(8, 4_000) }, { dir: "b", run: server(8, 4_000) });
  for (const r of same.sections.find((s) => s.name === "requests")!.rows)
    assert.equal(r.verdict, "same", r.name);
});

test("a one-sequence program has one request: its figures are shown, too few for a verdict", () => {
  const report = diffRuns(
    { dir: "a", run: run({ mulMatNs: 20_000 }) },
    { dir: "b", run: run({ mulMatNs: 40_000 }) },
  );
  const requests = report.sections.find((s) => s.name === "requests")!;
  assert.ok(requests.rows.length > 0);
  for (const r of requests.rows) {
    assert.deepEqual(r.calls, [1, 1], r.name);
    assert.equal(r.verdict, "too few requests", r.name);
  }
});

test("threads: compute, barrier wait and preempted time per decode call by place in the pool", () => {
  const two = (mulMatNs: number) => run({ mulMatNs });
  const one = () => {
    const rec = syntheticRecorder(24, 2, 1, { header: fixtureHeader() });
    return buildRun(rec.recording());
  };
  const report = diffRuns({ dir: "a", run: one() }, { dir: "b", run: two(20_000) });
  const threads = report.sections.find((s) => s.name === "threads")!;
  assert.deepEqual(threads.added, [
    "thread 1: barrier wait",
    "thread 1: compute",
    "thread 1: preempted",
  ]);
  assert.ok(threads.rows.some((r) => r.name === "thread 0: compute" && r.calls[0] === 23));
  // the thread's compute per call is the sum of its operator intervals in the call
  const b = two(20_000);
  const call = b.tokens.filter((t) => t.phase === "decode" && t.ret !== null)[0]!;
  const ns = call.graphs
    .flatMap((g) => g.ops)
    .flatMap((o) => o.threads.filter((t) => t.ith === 1))
    .reduce((n, t) => n + Number(t.endNs - t.startNs), 0);
  const row = threads.rows.find((r) => r.name === "thread 1: compute")!;
  assert.ok(row.new! > 0);
  assert.ok(Math.abs(ns / 1e6 - row.new!) / row.new! < 0.05, `${ns / 1e6} against ${row.new}`);
});

describe("findings that appear or disappear, by id", () => {
  const finding = (id: string, where: Finding["where"] = {}, value = 1): Finding => ({
    id: id as Finding["id"],
    severity: "medium",
    title: `${id} ${value}`,
    evidence: { value },
    where,
    action: "try",
  });

  test("one of an id a side pairs, with both sides' evidence; the rest appeared or disappeared", () => {
    const out = compareFindings(
      [finding("barrier.wait", {}, 0.3), finding("profiler.cost")],
      [finding("barrier.wait", {}, 0.5), finding("memory.bound-of-the-future", { op: "mul_mat" })],
    );
    assert.deepEqual(
      out.both.map((b) => [b.id, b.base.evidence.value, b.new.evidence.value]),
      [["barrier.wait", 0.3, 0.5]],
    );
    assert.deepEqual(
      out.disappeared.map((f) => f.id),
      ["profiler.cost"],
    );
    assert.deepEqual(
      out.appeared.map((f) => f.id),
      ["memory.bound-of-the-future"],
    );
  });

  test("several of an id pair by where they are; another process of the same name is the same place", () => {
    const out = compareFindings(
      [
        finding("x.op", { op: "mul_mat" }),
        finding("x.op", { op: "add" }),
        finding("sched.interference", { process: { comm: "stress", tgid: 1 } }),
        finding("sched.interference", { process: { comm: "cc1", tgid: 2 } }),
      ],
      [
        finding("x.op", { op: "add" }),
        finding("x.op", { op: "rope" }),
        finding("sched.interference", { process: { comm: "stress", tgid: 99 } }),
      ],
    );
    assert.deepEqual(
      out.both.map((b) => `${b.id} ${JSON.stringify(b.new.where)}`),
      ['x.op {"op":"add"}', 'sched.interference {"process":{"comm":"stress","tgid":99}}'],
    );
    assert.deepEqual(
      out.disappeared.map((f) => JSON.stringify(f.where)),
      ['{"op":"mul_mat"}', '{"process":{"comm":"cc1","tgid":2}}'],
    );
    assert.deepEqual(
      out.appeared.map((f) => JSON.stringify(f.where)),
      ['{"op":"rope"}'],
    );
  });

  test("the report carries both runs' findings (stats.json's), and the table shows each side's evidence", () => {
    const report = diffRuns(
      { dir: "a", run: run({ mulMatNs: 20_000 }) },
      { dir: "b", run: run({ mulMatNs: 20_000 }) },
    );
    const findings = computeStats(run({ mulMatNs: 20_000 })).findings;
    assert.equal(report.findings.both.length, findings.length);
    assert.deepEqual(report.findings.appeared, []);
    const text = formatDiff({
      ...report,
      findings: compareFindings(
        [finding("barrier.wait", {}, 0.3)],
        [finding("barrier.wait", {}, 0.5)],
      ),
    });
    assert.match(text, /^in both +barrier\.wait\n {2}base: value 0\.3\n {2}new: {2}value 0\.5$/m);
  });
});
