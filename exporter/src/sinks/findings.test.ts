// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { test } from "node:test";
import { fixtureHeader, syntheticRecorder } from "../../../test/support/fixtures.js";
import { buildRun } from "../trace/buildRun.js";
import { computeStats } from "./stats.js";

/** `tokens` calls over a 2-layer graph on 2 threads; thread 1 takes `slowBy` times as long. */
function stats(options: { cpus: number; slowBy?: number; tokens?: number; firstCallNs?: number }) {
  const rec = syntheticRecorder(options.tokens ?? 24, 2, 2, {
    header: { ...fixtureHeader(), host: { cpus: options.cpus } },
    duration: (_n, ith, seq) =>
      (seq === 2 && options.firstCallNs ? options.firstCallNs : 10_000) *
      (ith === 1 ? (options.slowBy ?? 1) : 1),
  });
  return computeStats(buildRun(rec.recording()));
}

test("a balanced run on enough CPUs has no finding", () => {
  assert.deepEqual(stats({ cpus: 2 }).findings, []);
});

test("two compute threads on one CPU: oversubscribed, with what to pass to -t", () => {
  const f = stats({ cpus: 1 }).findings.find((x) => x.id === "threads.oversubscribed");
  assert.ok(f);
  assert.equal(f.severity, "high");
  assert.deepEqual([f.evidence.threads, f.evidence.cpus], [2, 1]);
  assert.match(f.action, /-t 1 or fewer/);
});

test("one thread three times as slow: the other waits at barriers, and it is named last", () => {
  const f = stats({ cpus: 2, slowBy: 3 }).findings.find((x) => x.id === "barrier.wait");
  assert.ok(f);
  assert.equal(f.where.thread, "worker 1");
  assert.ok((f.evidence.share as number) >= 0.2, `${f.evidence.share}`);
  assert.equal(f.evidence.lastShare, 1);
});

test("a first decode call far slower than the rest is named; none in a steady run", () => {
  const f = stats({ cpus: 2, firstCallNs: 100_000 }).findings.find(
    (x) => x.id === "startup.first-call",
  );
  assert.ok(f);
  assert.deepEqual(f.where.calls, [2, 2]);
  assert.equal(
    stats({ cpus: 2 }).findings.find((x) => x.id === "startup.first-call"),
    undefined,
  );
});
