// SPDX-License-Identifier: Apache-2.0
// Counter readings in OP and BARRIER events, through the raw file and into the model: each
// operator interval of each thread gets the difference of its thread's readings.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { addCounters, deriveFigures } from "./derived.js";
import { EventType, decodeEvent, type RawEvent } from "../abi/events.js";
import { encodeEvent } from "../../../test/support/encodeEvent.js";
import { fixtureHeader, syntheticRecorder } from "../../../test/support/fixtures.js";
import { buildRun } from "./buildRun.js";
import { RawFileWriter, readRawFile } from "./rawFile.js";

const dir = mkdtempSync(join(tmpdir(), "profinfer-counters-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const BOUNDARIES: ReadonlySet<number> = new Set([
  EventType.OP_BEGIN,
  EventType.OP_END,
  EventType.BARRIER_BEGIN,
  EventType.BARRIER_END,
]);

/**
 * A recording whose OP/BARRIER events carry two counters per thread: a clock that advances with
 * the timestamp ("task-clock") and one that advances 3 per ns ("cycles"), scaled on thread 2001.
 */
function writeCountedRecording(path: string): void {
  const recording = syntheticRecorder(3, 2, 2).recording();
  const header = fixtureHeader({
    counters: [
      { name: "task-clock", hardware: false },
      { name: "cycles", hardware: true },
    ],
  });
  const origin = recording.events[0]!.ts;
  const events = recording.events.map((e): RawEvent => {
    if (!BOUNDARIES.has(e.type)) return e;
    const ns = Number(e.ts - origin);
    return {
      ...(e as RawEvent & { type: 7 }),
      counters: { values: [ns, ns * 3], scaled: e.tid === 2001 ? 0b10 : 0 },
    } as RawEvent;
  });
  const writer = RawFileWriter.create(path, header);
  writer.appendEvents(
    Buffer.concat(
      events.flatMap((e) => {
        const bytes = encodeEvent(e);
        const length = Buffer.alloc(4);
        length.writeUInt32LE(bytes.length);
        return [length, bytes];
      }),
    ),
  );
  for (const n of recording.notes) writer.appendNote(n.note);
  writer.close();
}

test("an event with counter readings encodes to pi_*_counted and decodes back", () => {
  const op: RawEvent = {
    type: EventType.OP_END,
    cpu: 1,
    tgid: 10,
    tid: 11,
    ts: 99n,
    dst: 0n,
    func: 3,
    ith: -1,
    nth: -1,
    counters: { values: [1, 2 ** 40, 3], scaled: 0b100 },
  };
  const bytes = encodeEvent(op);
  assert.equal(bytes.length, 120);
  assert.deepEqual(decodeEvent(bytes, 0, bytes.length), op);
  const barrier: RawEvent = {
    type: EventType.BARRIER_BEGIN,
    cpu: 0,
    tgid: 10,
    tid: 11,
    ts: 5n,
    counters: { values: [7], scaled: 0 },
  };
  const b = encodeEvent(barrier);
  assert.equal(b.length, 96);
  assert.deepEqual(decodeEvent(b, 0, b.length), barrier);
  assert.throws(
    () => decodeEvent(Buffer.concat([b, Buffer.alloc(8)]), 0, 104),
    /must be 24 or 96 bytes/,
  );
});

test("every operator interval of every thread gets its thread's deltas, through the raw file", () => {
  const path = join(dir, "counted.pinf");
  writeCountedRecording(path);
  const run = buildRun(readRawFile(path));
  assert.deepEqual(run.counters, [
    { name: "task-clock", hardware: false, scaled: false },
    { name: "cycles", hardware: true, scaled: true },
  ]);
  let intervals = 0;
  for (const g of run.graphRuns.filter((x) => x.opsRecorded)) {
    for (const op of g.ops) {
      for (const t of op.threads) {
        if (t.startInferred) {
          assert.equal(t.counters, undefined);
          continue;
        }
        intervals++;
        const ns = Number(t.endNs - t.startNs);
        assert.deepEqual(
          t.counters,
          { "task-clock": ns, cycles: 3 * ns },
          `${op.label} on ${t.tid}`,
        );
      }
    }
  }
  assert.ok(intervals > 50, `${intervals} intervals`);
});

test("derived figures appear only when their events were recorded", () => {
  assert.deepEqual(deriveFigures({ "task-clock": 900 }, 1000), { onCpuRatio: 0.9 });
  const all = deriveFigures(
    {
      cycles: 1000,
      instructions: 2500,
      "stalled-cycles-backend": 850,
      "stalled-cycles-frontend": 50,
      "cache-references": 200,
      "cache-misses": 50,
    },
    1e6,
  );
  assert.deepEqual(all, {
    ipc: 2.5,
    cacheMissRate: 0.25,
    backendStallRatio: 0.85,
    frontendStallRatio: 0.05,
    memoryBytes: 3200,
    memoryBandwidth: 3_200_000,
  });
  const sum = { cycles: 1 };
  addCounters(sum, { cycles: 2, instructions: 5 });
  assert.deepEqual(sum, { cycles: 3, instructions: 5 });
});
