// SPDX-License-Identifier: Apache-2.0
// events.pinf, the raw event stream of a recorded run (docs/raw-events.md): a streaming reader
// that keeps everything before a cut-short tail and names the byte offset of any corruption,
// and the writer the recorder appends ring-buffer batches and notes to.
import { closeSync, fstatSync, openSync, readSync, writeSync } from "node:fs";
import {
  EventLayoutError,
  HEADER_SIZE,
  VALID_EVENT_SIZES,
  decodeRecord,
  eventSizes,
  type RawEvent,
} from "../abi/events.js";
import { checkHeader, type RunHeader } from "./header.js";
import { checkNote, type NoteRecord, type RunNote } from "./notes.js";

export const RAW_MAGIC = "PINFRAW1";
const MAGIC_BYTES = Buffer.from(RAW_MAGIC, "latin1");
/** Record length that marks a note instead of an event. */
export const NOTE_MARKER = 0xffffffff;
/** Largest run header or note accepted: far above any real one, far below memory trouble. */
const MAX_JSON = 64 << 20;
const WINDOW = 4 << 20;

export type RawRecord = RawEvent | NoteRecord;

/** One record of a file as RawFileReader.frames() walks it. */
export interface RawFrame {
  /** byte offset of the record in the file */
  offset: number;
  /** an event's bytes: `length` bytes at `at` of `buffer` (0 for a note) */
  buffer: Buffer;
  at: number;
  length: number;
  /** the note, when the record is one (null: an event) */
  note: RunNote | null;
}

/** Everything a file holds, read at once. */
export interface RawRecording {
  path: string;
  header: RunHeader;
  events: RawEvent[];
  notes: NoteRecord[];
  /** byte offset of the first record that did not fit in the file; null when the file is whole */
  truncatedAt: number | null;
  fileSize: number;
}

export class RawFormatError extends Error {
  override name = "RawFormatError";
  constructor(
    readonly file: string,
    readonly offset: number,
    readonly reason: string,
  ) {
    super(
      `${file}: not a valid profinfer event file at byte offset ${offset}: ${reason}. ` +
        "The file is damaged or was not written by profinfer; record the run again.",
    );
  }
}

/**
 * Sequential reader of an events.pinf file. `open` reads and checks the magic and the run header;
 * iterating yields each event (decoded) and each note, in file order, reading through a window
 * so that files of any size stream. When the file ends inside a record, iteration stops there
 * and `truncatedAt` is set to that record's offset; corruption throws RawFormatError.
 */
export class RawFileReader implements Iterable<RawRecord> {
  /** byte offset of the first record */
  readonly recordsStart: number;
  truncatedAt: number | null = null;
  private buffer = Buffer.alloc(0);
  private bufferStart = 0;
  private bufferValid = 0;
  private closed = false;

  private constructor(
    private readonly fd: number,
    readonly path: string,
    readonly fileSize: number,
    readonly header: RunHeader,
    headerEnd: number,
  ) {
    this.recordsStart = headerEnd;
  }

  static open(path: string): RawFileReader {
    const fd = openSync(path, "r");
    try {
      const size = fstatSync(fd).size;
      const fail = (offset: number, reason: string): never => {
        throw new RawFormatError(path, offset, reason);
      };
      const head = Buffer.alloc(12);
      const got = readSync(fd, head, 0, 12, 0);
      if (got < 8 || !head.subarray(0, 8).equals(MAGIC_BYTES)) {
        fail(0, `it does not start with the magic "${RAW_MAGIC}"`);
      }
      if (got < 12) fail(8, "the file ends before the run header length");
      const length = head.readUInt32LE(8);
      if (length > MAX_JSON) fail(8, `run header length ${length} is implausible`);
      if (12 + length > size) {
        fail(12, `the file (${size} bytes) ends inside the run header of ${length} bytes`);
      }
      const json = Buffer.alloc(length);
      readFully(fd, json, 12);
      const header = parseHeader(json, (reason) => fail(12, reason));
      return new RawFileReader(fd, path, size, header, 12 + length);
    } catch (error) {
      closeSync(fd);
      throw error;
    }
  }

  close(): void {
    if (!this.closed) {
      this.closed = true;
      closeSync(this.fd);
    }
  }

  /** Make bytes [pos, pos+n) available in the window; the caller checked they are in the file. */
  private window(pos: number, n: number): number {
    const rel = pos - this.bufferStart;
    if (rel >= 0 && rel + n <= this.bufferValid) return rel;
    const length = Math.min(Math.max(WINDOW, n), this.fileSize - pos);
    if (this.buffer.length < length) this.buffer = Buffer.allocUnsafe(Math.max(length, WINDOW));
    readFully(this.fd, this.buffer.subarray(0, length), pos);
    this.bufferStart = pos;
    this.bufferValid = length;
    return 0;
  }

  /**
   * Walks the records in file order without decoding events: each event's bytes are at
   * `frame.at` of `frame.buffer` (valid until the next step), each note is parsed. One object is
   * reused for every frame. Sets `truncatedAt` at the end, as iteration does.
   */
  *frames(): Generator<RawFrame, void, undefined> {
    const size = this.fileSize;
    let pos = this.recordsStart;
    const frame: RawFrame = { offset: 0, buffer: this.buffer, at: 0, length: 0, note: null };
    while (pos < size) {
      if (pos + 4 > size) break;
      let rel = this.window(pos, 4);
      const n = this.buffer.readUInt32LE(rel);
      if (n === NOTE_MARKER) {
        if (pos + 8 > size) break;
        rel = this.window(pos, 8);
        const m = this.buffer.readUInt32LE(rel + 4);
        if (m > MAX_JSON) this.fail(pos + 4, `note length ${m} is implausible`);
        if (pos + 8 + m > size) break;
        rel = this.window(pos, 8 + m);
        const note = parseNote(this.buffer.subarray(rel + 8, rel + 8 + m), (reason) =>
          this.fail(pos + 8, reason),
        );
        if (note) {
          frame.offset = pos;
          frame.note = note;
          frame.length = 0;
          yield frame;
        }
        pos += 8 + m;
        continue;
      }
      if (!VALID_EVENT_SIZES.has(n)) {
        this.fail(pos, `record length ${n} is the size of no event struct`);
      }
      if (pos + 4 + n > size) break;
      rel = this.window(pos, 4 + n);
      frame.offset = pos;
      frame.buffer = this.buffer;
      frame.at = rel + 4;
      frame.length = n;
      frame.note = null;
      yield frame;
      pos += 4 + n;
    }
    this.truncatedAt = pos < size ? pos : null;
  }

  *[Symbol.iterator](): Generator<RawRecord, void, undefined> {
    yield* recordsOf(this.path, this.frames());
  }

  private fail(offset: number, reason: string): never {
    throw new RawFormatError(this.path, offset, reason);
  }
}

/**
 * The records of `frames` in order: each note, and each event decoded (a batch of steps holds
 * several). An event that does not decode is a RawFormatError at its frame's offset in `path`.
 */
export function* recordsOf(
  path: string,
  frames: Iterable<RawFrame>,
): Generator<RawRecord, void, undefined> {
  let events = 0;
  // one record's events, reused from record to record
  const decoded: RawEvent[] = [];
  for (const frame of frames) {
    if (frame.note) {
      yield { type: "note", offset: frame.offset, afterEvents: events, note: frame.note };
      continue;
    }
    decoded.length = 0;
    try {
      decodeRecord(frame.buffer, frame.at, frame.length, decoded);
    } catch (error) {
      if (error instanceof EventLayoutError)
        throw new RawFormatError(path, frame.offset, error.message);
      throw error;
    }
    for (const event of decoded) {
      events++;
      yield event;
    }
  }
}

function readFully(fd: number, into: Buffer, position: number): void {
  let got = 0;
  while (got < into.length) {
    const r = readSync(fd, into, got, into.length - got, position + got);
    if (r === 0) throw new Error(`read returned no data at offset ${position + got}`);
    got += r;
  }
}

function parseJsonObject(bytes: Buffer, what: string, fail: (reason: string) => never): object {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString("utf8"));
  } catch (error) {
    fail(`the ${what} is not JSON (${(error as Error).message})`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    fail(`the ${what} is not a JSON object`);
  }
  return value;
}

function parseHeader(bytes: Buffer, fail: (reason: string) => never): RunHeader {
  return checkHeader(parseJsonObject(bytes, "run header", fail) as Partial<RunHeader>, fail);
}

/** The note of a record, or null for a kind this profinfer does not know. */
function parseNote(bytes: Buffer, fail: (reason: string) => never): RunNote | null {
  return checkNote(parseJsonObject(bytes, "note", fail) as { kind?: unknown }, fail);
}

/** Read a whole file: header, every event and note, and where it was cut short if it was. */
export function readRawFile(path: string): RawRecording {
  const reader = RawFileReader.open(path);
  try {
    const events: RawEvent[] = [];
    const notes: NoteRecord[] = [];
    for (const record of reader) {
      if (record.type === "note") notes.push(record);
      else events.push(record);
    }
    return {
      path,
      header: reader.header,
      events,
      notes,
      truncatedAt: reader.truncatedAt,
      fileSize: reader.fileSize,
    };
  } finally {
    reader.close();
  }
}

const FLUSH_AT = 1 << 20;

/**
 * Writes events.pinf. `create` writes the magic and the run header at once; `appendEvents` takes
 * what the ring buffer delivered (one Buffer of concatenated `u32 length + event` records, or an
 * array of single-event Buffers), checks every length against its event type (a TypeError names
 * the byte at fault) and copies it, so the caller may reuse its buffers. Events are buffered up to
 * 1 MiB; a note is written through at once, so a killed recorder loses at most the last batches.
 * `close` flushes and is idempotent.
 */
export class RawFileWriter {
  private pending = Buffer.allocUnsafe(FLUSH_AT);
  private used = 0;
  private fd: number | null;
  /** events accepted so far */
  eventsWritten = 0;
  /** bytes written to the file, including what is still buffered */
  bytesWritten = 0;

  private constructor(
    readonly path: string,
    fd: number,
  ) {
    this.fd = fd;
  }

  static create(path: string, header: RunHeader): RawFileWriter {
    const json = Buffer.from(JSON.stringify(header), "utf8");
    const head = Buffer.alloc(12);
    MAGIC_BYTES.copy(head, 0);
    head.writeUInt32LE(json.length, 8);
    const fd = openSync(path, "w");
    const writer = new RawFileWriter(path, fd);
    writer.put(head);
    writer.put(json);
    writer.flush();
    return writer;
  }

  appendEvents(records: Uint8Array | readonly Uint8Array[]): void {
    if (isByteArray(records)) {
      const buf = asBuffer(records);
      let pos = 0;
      let count = 0;
      while (pos < buf.length) {
        if (pos + 4 > buf.length) {
          throw new TypeError(`records: a record length is cut at byte ${pos} of ${buf.length}`);
        }
        const n = buf.readUInt32LE(pos);
        if (pos + 4 + n > buf.length) {
          throw new TypeError(`records: the record at byte ${pos} (${n} bytes) runs past the end`);
        }
        checkEvent(buf, pos + 4, n, pos);
        pos += 4 + n;
        count++;
      }
      this.put(buf);
      this.eventsWritten += count;
      return;
    }
    const length = Buffer.alloc(4);
    records.forEach((record, i) => {
      const buf = asBuffer(record);
      checkEvent(buf, 0, buf.length, `records[${i}]`);
      length.writeUInt32LE(buf.length, 0);
      this.put(length);
      this.put(buf);
    });
    this.eventsWritten += records.length;
  }

  appendNote(note: RunNote): void {
    if (typeof note?.kind !== "string") throw new TypeError("note: needs a string `kind`");
    const json = Buffer.from(JSON.stringify(note), "utf8");
    const head = Buffer.alloc(8);
    head.writeUInt32LE(NOTE_MARKER, 0);
    head.writeUInt32LE(json.length, 4);
    this.put(head);
    this.put(json);
    this.flush();
  }

  flush(): void {
    if (this.fd === null) throw new Error(`${this.path}: the raw event file is closed`);
    let done = 0;
    while (done < this.used) done += writeSync(this.fd, this.pending, done, this.used - done);
    this.used = 0;
  }

  close(): void {
    if (this.fd === null) return;
    this.flush();
    closeSync(this.fd);
    this.fd = null;
  }

  private put(bytes: Buffer): void {
    if (this.fd === null) throw new Error(`${this.path}: the raw event file is closed`);
    this.bytesWritten += bytes.length;
    if (this.used + bytes.length > this.pending.length) {
      this.flush();
      if (bytes.length > this.pending.length) {
        let done = 0;
        while (done < bytes.length) done += writeSync(this.fd, bytes, done, bytes.length - done);
        return;
      }
    }
    bytes.copy(this.pending, this.used);
    this.used += bytes.length;
  }
}

function isByteArray(value: Uint8Array | readonly Uint8Array[]): value is Uint8Array {
  return value instanceof Uint8Array;
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
}

/** `what` names the record in an error: a byte position is turned into words only then. */
function checkEvent(buf: Buffer, offset: number, length: number, what: string | number): void {
  if (typeof what === "number") {
    const type = length >= HEADER_SIZE ? buf.readUInt32LE(offset) : -1;
    if (length >= HEADER_SIZE && eventSizes(type).includes(length)) return;
    what = `records: the record at byte ${what}`;
  }
  if (length < HEADER_SIZE) {
    throw new TypeError(`${what} is ${length} bytes, shorter than pi_header (${HEADER_SIZE})`);
  }
  const type = buf.readUInt32LE(offset);
  const sizes = eventSizes(type);
  if (sizes.length === 0) throw new TypeError(`${what} has unknown event type ${type}`);
  if (!sizes.includes(length)) {
    throw new TypeError(`${what} is ${length} bytes, event type ${type} is ${sizes.join(" or ")}`);
  }
}
