// SPDX-License-Identifier: Apache-2.0
// Operator-time profiles sent while recording (--profiles-endpoint), to a real OpenTelemetry
// Collector with the profiles signal on, which writes what it took to a file: one profile per
// interval and sample type, with the spans' resource, and over all intervals the same operator
// time per op type as the run's stats.json.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { ProfStats } from "@profinfer/contract";
import { readProfiles, type ReadProfile } from "./support/otlpProfiles.js";
import { ProfilesCollector } from "./support/stack.js";
import { completion, profinfer, tinyModels } from "./support/targets.js";

const scratch = mkdtempSync(join(tmpdir(), "profinfer-profiles-"));
let collector: ProfilesCollector;
before(async () => {
  collector = await ProfilesCollector.start(scratch);
});
after(async () => {
  await collector.stop();
  rmSync(scratch, { recursive: true, force: true });
});

test("a recording sends a profile per interval to the collector, whose operator time adds up to stats.json's", async () => {
  const model = tinyModels().find((m) => m.arch === "llama")!.path;
  const dir = join(scratch, "run");
  const ran = await profinfer([
    "record",
    "--no-status",
    "--no-report",
    "--profiles-endpoint",
    collector.grpcEndpoint,
    "--profiles-interval",
    "0.2",
    "--service-name",
    "profiles-test",
    "--out",
    dir,
    "--",
    ...completion(model, 1500, ["-t", "1"]),
  ]);
  assert.equal(ran.code, 0, ran.stderr.slice(-2000));
  const sent = /OTLP profiles: (\d+) of (\d+) intervals sent/.exec(ran.stderr);
  assert.ok(sent, ran.stderr.slice(-2000));
  assert.equal(sent[1], sent[2], "every interval was taken");
  const stats = JSON.parse(readFileSync(join(dir, "stats.json"), "utf8")) as ProfStats;

  // the file exporter writes as it goes: wait for every interval's request
  let profiles: ReadProfile[] = [];
  const intervals = Number(sent[1]);
  for (let i = 0; i < 50; i++) {
    profiles = readProfiles(readFileSync(collector.outFile, "utf8"));
    if (profiles.filter((p) => p.type === "wall").length >= intervals) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  const wall = profiles.filter((p) => p.type === "wall");
  assert.equal(wall.length, intervals, collector.log);
  assert.ok(intervals >= 2, `${intervals} intervals of 0.2 s in a ${stats.run.durationMs} ms run`);
  assert.deepEqual([...new Set(profiles.map((p) => `${p.type}/${p.unit}`))].sort(), [
    "barrier/nanoseconds",
    "runs/count",
    "thread/nanoseconds",
    "wall/nanoseconds",
  ]);
  // the spans' resource: the service and the process
  for (const p of profiles) {
    assert.equal(p.resource.get("service.name"), "profiles-test");
    assert.equal(p.resource.get("process.pid"), String(stats.run.pid));
  }
  // intervals follow each other inside the run
  const runStart = BigInt(stats.run.firstEventRealtimeNs);
  const runEnd = runStart + BigInt(Math.round(stats.run.durationMs * 1e6));
  const starts = wall.map((p) => p.startNs).sort((a, b) => (a < b ? -1 : 1));
  for (const [i, p] of wall.entries()) {
    assert.ok(p.startNs >= runStart && p.startNs + p.durationNs <= runEnd, `interval ${i}`);
  }
  for (let i = 1; i < starts.length; i++) {
    assert.ok(starts[i]! > starts[i - 1]!, `interval starts ${starts.join(", ")}`);
  }

  // every operator run is in one interval: per op type, the intervals' wall time and runs are
  // the run's own
  const perOp = (type: string) => {
    const sums = new Map<string, number>();
    for (const p of profiles.filter((q) => q.type === type)) {
      for (const s of p.samples) {
        const op = s.frames.find((f) => f.kind === "op");
        if (op) sums.set(op.name, (sums.get(op.name) ?? 0) + s.value);
      }
    }
    return sums;
  };
  const wallByOp = perOp("wall");
  const runsByOp = perOp("runs");
  for (const o of stats.ops) {
    assert.ok(
      Math.abs((wallByOp.get(o.display) ?? 0) / 1e6 - o.totalMs) < 1e-3,
      `${o.display}: ${(wallByOp.get(o.display) ?? 0) / 1e6} ms in the profiles, ${o.totalMs} in stats.json`,
    );
    assert.equal(runsByOp.get(o.display), o.count, o.display);
  }
  // threads are attributes of the samples
  assert.ok(wall.some((p) => p.samples.some((s) => s.thread === "main")));
});
