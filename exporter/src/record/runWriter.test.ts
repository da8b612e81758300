// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { batchOf } from "../../../test/support/encodeEvent.js";
import { syntheticRecorder } from "../../../test/support/fixtures.js";
import { StatsAccumulator, renderStatsJson } from "../sinks/stats.js";
import { buildRun } from "../trace/buildRun.js";
import { readRawFile } from "../trace/rawFile.js";
import { scanRunFacts } from "../trace/runFacts.js";
import { streamRunFile } from "../trace/runStream.js";
import { runEventFiles } from "../trace/segments.js";
import { RunWriter, type Rotation } from "./runWriter.js";

const dir = mkdtempSync(join(tmpdir(), "profinfer-rotate-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const recording = syntheticRecorder(120, 2, 2).recording();

/** The recording written as the recorder writes it, in batches, into a fresh folder. */
function write(name: string, rotation: Rotation | null): string {
  const out = join(dir, name);
  mkdirSync(out);
  const logged: string[] = [];
  const writer = new RunWriter(join(out, "events.pinf"), [], (m) => logged.push(m), rotation);
  writer.open(recording.header);
  for (let at = 0; at < recording.events.length; at += 40)
    writer.events(batchOf(recording.events.slice(at, at + 40)));
  for (const { note } of recording.notes) writer.note(note);
  writer.close();
  return out;
}

function statsOf(files: string[]): string {
  const facts = scanRunFacts(files);
  const stats = new StatsAccumulator(facts.header, facts.firstNs);
  return renderStatsJson(stats.finish(streamRunFile(files, (c) => stats.add(c), { facts })!));
}

test("a rotated events file reads as the one it replaces, and each segment reads on its own", () => {
  const whole = write("whole", null);
  const rotated = write("rotated", { maxBytes: 64 << 10, maxMs: null, maxDiskBytes: null });
  const files = runEventFiles(rotated);
  assert.ok(files.length > 3, `segments: ${files.length}`);
  assert.equal(files.at(-1), join(rotated, "events.pinf"), "the segment being written is last");
  assert.equal(statsOf(files), statsOf(runEventFiles(whole)), "the same statistics");
  // a later segment alone: its graphs keep their operators (the descriptions were repeated)
  const alone = buildRun(readRawFile(files[2]!));
  assert.ok(alone.graphRuns.some((g) => g.ops.length > 0 && g.snapshot !== null));
});

test("past --max-disk the oldest segments go, and the outputs say so", () => {
  const out = write("bounded", { maxBytes: 64 << 10, maxMs: null, maxDiskBytes: 192 << 10 });
  const names = readdirSync(out).filter((n) => n.endsWith(".pinf"));
  assert.ok(!existsSync(join(out, "events-000001.pinf")), "the first segment was removed");
  assert.ok(
    names.length <= 5,
    `at most three rotated segments and the current: ${names.join(" ")}`,
  );
  const stats = JSON.parse(statsOf(runEventFiles(out))) as { warnings: string[] };
  assert.ok(
    stats.warnings.some((w) =>
      /segments of the events file .* were removed to stay within --max-disk/.test(w),
    ),
    stats.warnings.join("\n"),
  );
});
