// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import {
  EVENT_SIZES,
  EventType,
  LAYOUT,
  PI_STEPS_PER_BATCH,
  STEPS_RECORD,
  decodeEvent,
} from "../abi/events.js";
import { encodeEvent } from "../../../test/support/encodeEvent.js";
import { FixtureRecorder, fixtureHeader, moeLayerGraph } from "../../../test/support/fixtures.js";
import { RawFileReader, RawFileWriter, RawFormatError, readRawFile } from "./rawFile.js";

const dir = mkdtempSync(join(tmpdir(), "profinfer-raw-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A recorder with one graph of every kind of event, MoE ids and sched switches included. */
function sampleRecorder(): FixtureRecorder {
  const rec = new FixtureRecorder();
  rec.token(1, 2, 1001, () => {
    const r = rec.compute({
      cgraph: 0xa000n,
      signature: 0x1n,
      graph: moeLayerGraph(0),
      changed: true,
      threads: [1001, 1002],
      duration: () => 1000,
      onStep: (step, nodes) => {
        if (nodes[0]!.name === "ffn_moe_gate-0") {
          rec.moeIds(1001, step.releaseNs, "ffn_moe_topk-0", "ffn_moe_gate-0", [
            [1, 3],
            [0, 2],
          ]);
        }
      },
    });
    rec.preempt(1002, r.startNs + 2000n, r.startNs + 2500n, { comm: "stress", tgid: 7, tid: 8 });
  });
  // a decode timed by step probes, with its batch summary
  rec.token(
    2,
    1,
    1001,
    () => {
      rec.compute({
        cgraph: 0xa000n,
        signature: 0x1n,
        graph: moeLayerGraph(0),
        changed: false,
        threads: [1001, 1002],
        duration: () => 1000,
        steps: true,
      });
    },
    true,
    {
      flags: 7,
      seqs: [{ seqId: 0, nTokens: 1, posMin: 9, posMax: 9, nOutputs: 1 }],
    },
  );
  rec.emit({
    type: EventType.SCHED_WAKEUP,
    cpu: 1,
    tgid: 1000,
    tid: 1002,
    ts: rec.now,
    wakerTid: 1001,
    targetCpu: 1,
  });
  // a split handed to a backend, the copy of its input, the host's wait, a backend's own call
  const at = rec.now;
  const h = { cpu: 0, tgid: 1000, tid: 1001 };
  rec.emit({
    ...h,
    type: EventType.SPLIT,
    ts: at,
    cgraph: 0xb000n,
    backend: 0xb1n,
    device: 0xd1n,
    deviceGetName: 0x71n,
    schedGraph: 0xa000n,
    firstNode: 3,
    nNodes: 4,
  });
  rec.emit({
    ...h,
    type: EventType.COPY_BEGIN,
    ts: at + 1n,
    src: 0x1n,
    dst: 0x2n,
    backendSrc: 0n,
    backendDst: 0n,
    ne: [8, 2, 1, 1],
    nb: [4, 32, 64, 64],
    typeIndex: 0,
    via: 1,
    srcName: "inp_embd",
    dstName: "Vulkan0#inp_embd#0",
  });
  rec.emit({ ...h, type: EventType.COPY_END, ts: at + 2n, via: 1, ret: 1 });
  rec.emit({ ...h, type: EventType.SYNC_BEGIN, ts: at + 3n, backend: 0xb1n });
  rec.emit({ ...h, type: EventType.SYNC_END, ts: at + 4n, backend: 0n });
  rec.emit({ ...h, type: EventType.BACKEND_CALL_BEGIN, ts: at + 5n, call: 0, args: [1n, 2n, 3n] });
  rec.emit({ ...h, type: EventType.BACKEND_CALL_END, ts: at + 6n, call: 0, args: [1n, 0n, 0n] });
  rec.note({ kind: "drops", counts: { ringbuf_full: 0, read_failed: 0 } });
  rec.note({ kind: "exit", code: 0, signal: null });
  return rec;
}

test("every event decodes back to what was encoded", () => {
  const events = sampleRecorder().sortedEvents();
  const types = new Set(events.map((e) => e.type));
  for (const type of Object.values(EventType))
    assert.ok(types.has(type), `sample has type ${type}`);
  for (const ev of events) {
    const bytes = encodeEvent(ev);
    assert.equal(bytes.length, EVENT_SIZES[ev.type]);
    assert.deepEqual(decodeEvent(bytes, 0, bytes.length), ev);
  }
});

test("a written file reads back to the same header, events and notes", () => {
  const rec = sampleRecorder();
  const path = join(dir, "roundtrip.pinf");
  rec.writeTo(path);
  const read = readRawFile(path);
  assert.deepEqual(read.header, rec.header);
  assert.deepEqual(read.events, rec.sortedEvents());
  assert.deepEqual(
    read.notes.map((n) => n.note),
    [
      { kind: "drops", counts: { ringbuf_full: 0, read_failed: 0 } },
      { kind: "exit", code: 0, signal: null },
    ],
  );
  assert.equal(read.notes[0]!.afterEvents, read.events.length);
  assert.equal(read.truncatedAt, null);
});

test("the writer takes one buffer of length-prefixed records as the ring buffer hands them", () => {
  const events = sampleRecorder().sortedEvents().slice(0, 50);
  const batch = Buffer.concat(
    events.flatMap((ev) => {
      const bytes = encodeEvent(ev);
      const len = Buffer.alloc(4);
      len.writeUInt32LE(bytes.length);
      return [len, bytes];
    }),
  );
  const path = join(dir, "batch.pinf");
  const writer = RawFileWriter.create(path, fixtureHeader());
  writer.appendEvents(batch.subarray(0, batch.length));
  writer.appendNote({ kind: "end" });
  writer.close();
  writer.close();
  assert.equal(writer.eventsWritten, 50);
  assert.equal(writer.bytesWritten, statSync(path).size);
  const read = readRawFile(path);
  assert.deepEqual(read.events, events);
  assert.deepEqual(
    read.notes.map((n) => n.note.kind),
    ["end"],
  );
});

/** A pi_steps record (with its length prefix) of `entries` [ts, next, cpu] for thread 7 of 5. */
function stepsRecord(entries: [bigint, number, number][], count = entries.length): Buffer {
  const L = LAYOUT.pi_steps;
  const E = LAYOUT.pi_step_entry;
  const b = Buffer.alloc(4 + L.size);
  b.writeUInt32LE(L.size, 0);
  b.writeUInt32LE(STEPS_RECORD, 4 + LAYOUT.pi_header.type);
  b.writeUInt32LE(1, 4 + LAYOUT.pi_header.cpu);
  b.writeUInt32LE(5, 4 + LAYOUT.pi_header.tgid);
  b.writeUInt32LE(7, 4 + LAYOUT.pi_header.tid);
  b.writeBigUInt64LE(999n, 4 + LAYOUT.pi_header.ts);
  b.writeUInt32LE(count, 4 + L.count);
  entries.forEach(([ts, next, cpu], i) => {
    const at = 4 + L.steps + i * E.size;
    b.writeBigUInt64LE(ts, at + E.ts);
    b.writeInt32LE(next, at + E.next);
    b.writeUInt32LE(cpu, at + E.cpu);
  });
  return b;
}

test("a batch of steps (ABI 3) reads back as one STEP event per entry, on the batch's thread", () => {
  const path = join(dir, "steps.pinf");
  const writer = RawFileWriter.create(path, fixtureHeader());
  const single = encodeEvent({ type: EventType.STEP, cpu: 0, tgid: 5, tid: 8, ts: 50n, next: 3 });
  const len = Buffer.alloc(4);
  len.writeUInt32LE(single.length);
  writer.appendEvents(
    Buffer.concat([
      stepsRecord([
        [100n, 2, 0],
        [200n, 5, 1],
        [300n, -1, 1],
      ]),
      len,
      single,
    ]),
  );
  writer.close();
  assert.deepEqual(readRawFile(path).events, [
    { type: EventType.STEP, cpu: 0, tgid: 5, tid: 7, ts: 100n, next: 2 },
    { type: EventType.STEP, cpu: 1, tgid: 5, tid: 7, ts: 200n, next: 5 },
    { type: EventType.STEP, cpu: 1, tgid: 5, tid: 7, ts: 300n, next: -1 },
    { type: EventType.STEP, cpu: 0, tgid: 5, tid: 8, ts: 50n, next: 3 },
  ]);
  // a batch that claims more entries than it holds is corrupt
  const bad = join(dir, "steps-bad.pinf");
  const badWriter = RawFileWriter.create(bad, fixtureHeader());
  badWriter.appendEvents(stepsRecord([[1n, 1, 0]], PI_STEPS_PER_BATCH + 1));
  badWriter.close();
  assert.throws(
    () => readRawFile(bad),
    (e: unknown) => e instanceof RawFormatError && /counts 33, at most 32/.test(e.message),
  );
  assert.throws(() => decodeEvent(stepsRecord([]), 4, LAYOUT.pi_steps.size), /several events/);
});

test("the writer refuses a record whose length does not match its type, naming the byte", () => {
  const writer = RawFileWriter.create(join(dir, "refuse.pinf"), fixtureHeader());
  const bytes = encodeEvent({ type: EventType.BARRIER_BEGIN, cpu: 0, tgid: 1, tid: 1, ts: 1n });
  const bad = Buffer.alloc(8 + bytes.length + 4);
  bad.writeUInt32LE(4, 0); // an empty 4-byte record is no event
  bad.writeUInt32LE(bytes.length, 8);
  assert.throws(() => writer.appendEvents(bad), /records: the record at byte 0 is 4 bytes/);
  assert.throws(
    () => writer.appendEvents([Buffer.concat([bytes, Buffer.alloc(8)])]),
    /records\[0\] is 32 bytes, event type 9 is 24/,
  );
  writer.close();
});

test("a file cut inside a record keeps every record before it and reports the offset", () => {
  const rec = sampleRecorder();
  const path = join(dir, "cut.pinf");
  rec.writeTo(path);
  const whole = readRawFile(path);
  const size = statSync(path).size;
  // The last two records are notes; find where the last event's record starts.
  const reader = RawFileReader.open(path);
  const offsets: number[] = [];
  let pos = reader.recordsStart;
  for (const record of reader) {
    offsets.push(pos);
    pos +=
      record.type === "note"
        ? 8 + Buffer.byteLength(JSON.stringify(record.note))
        : 4 + EVENT_SIZES[record.type];
  }
  reader.close();
  const lastEventAt = offsets[whole.events.length - 1]!;
  for (const cutAt of [lastEventAt + 2, lastEventAt + 4, lastEventAt + 10]) {
    const copy = join(dir, `cut-${cutAt}.pinf`);
    writeFileSync(copy, readFileSync(path));
    truncateSync(copy, cutAt);
    const read = readRawFile(copy);
    assert.equal(read.truncatedAt, lastEventAt, `cut at ${cutAt}`);
    assert.deepEqual(read.events, whole.events.slice(0, -1));
    assert.equal(read.notes.length, 0);
  }
  // Cut inside the last note: all events and the first note survive.
  const lastNoteAt = offsets[offsets.length - 1]!;
  const copy = join(dir, "cut-note.pinf");
  writeFileSync(copy, readFileSync(path).subarray(0, size - 3));
  const read = readRawFile(copy);
  assert.equal(read.truncatedAt, lastNoteAt);
  assert.equal(read.events.length, whole.events.length);
  assert.equal(read.notes.length, 1);
});

function corrupt(name: string, edit: (bytes: Buffer, recordsStart: number) => void) {
  const path = join(dir, name);
  sampleRecorder().writeTo(path);
  const reader = RawFileReader.open(path);
  const start = reader.recordsStart;
  reader.close();
  const bytes = readFileSync(path);
  edit(bytes, start);
  writeFileSync(path, bytes);
  return { path, start };
}

function assertFormatError(path: string, offset: number, reason: RegExp): void {
  assert.throws(
    () => readRawFile(path),
    (error: unknown) => {
      assert.ok(error instanceof RawFormatError, String(error));
      assert.equal(error.file, path);
      assert.equal(error.offset, offset);
      assert.match(error.reason, reason);
      assert.match(error.message, new RegExp(`at byte offset ${offset}: `));
      return true;
    },
  );
}

test("a bad magic is refused at offset 0", () => {
  const { path } = corrupt("magic.pinf", (b) => b.write("XINFRAW1", 0, "latin1"));
  assertFormatError(path, 0, /magic "PINFRAW1"/);
});

test("a run header that is not JSON is refused at offset 12", () => {
  const { path } = corrupt("header.pinf", (b) => b.write("]", 12, "latin1"));
  assertFormatError(path, 12, /run header is not JSON/);
});

test("a run header of another event ABI is refused with what to do", () => {
  const path = join(dir, "abi.pinf");
  RawFileWriter.create(path, { ...fixtureHeader(), eventAbi: 9 }).close();
  assertFormatError(path, 12, /ABI 9, this profinfer decodes ABI 1 and 2/);
});

test("an event whose length does not match its type is refused at its record", () => {
  // The first record is a TOKEN_BEGIN (48 bytes); call it a TOKEN_END (32 bytes).
  const { path, start } = corrupt("length.pinf", (b, at) => {
    assert.equal(b.readUInt32LE(at + 4), EventType.TOKEN_BEGIN);
    b.writeUInt32LE(EventType.TOKEN_END, at + 4);
  });
  assertFormatError(path, start, /event type 2 must be 32 bytes, the record holds 48/);
});

test("an unknown event type is refused at its record", () => {
  const { path, start } = corrupt("type.pinf", (b, at) => b.writeUInt32LE(99, at + 4));
  assertFormatError(path, start, /unknown event type 99/);
});

test("a record length that is no event size is refused, not taken for a cut-short tail", () => {
  const { path, start } = corrupt("size.pinf", (b, at) => b.writeUInt32LE(1 << 30, at));
  assertFormatError(path, start, /record length 1073741824 is the size of no event struct/);
});

test("a note that is not JSON is refused at its text", () => {
  const path = join(dir, "note.pinf");
  const writer = RawFileWriter.create(path, fixtureHeader());
  writer.appendNote({ kind: "warning", message: "x" });
  writer.close();
  const bytes = readFileSync(path);
  const at = bytes.length - Buffer.byteLength(JSON.stringify({ kind: "warning", message: "x" }));
  bytes.write("]", at, "latin1");
  writeFileSync(path, bytes);
  assertFormatError(path, at, /note is not JSON/);
});
