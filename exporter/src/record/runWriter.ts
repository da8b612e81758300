// SPDX-License-Identifier: Apache-2.0
// Writing the run: events.pinf and what the live listeners see of it. The header can only be
// written once the libraries tell what the level needs (the layout, the op names), so notes and
// event batches wait until then and go first, in order. With rotation (long attaches), events.pinf
// becomes events-NNNNNN.pinf past a size or an age and a new one starts, repeating the header,
// the sticky notes and the graph descriptions so that each segment reads on its own
// (trace/segments.ts); past --max-disk the oldest segments are removed, and said.
import { readdirSync, renameSync, rmSync, statSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { EventType, LAYOUT } from "../abi/events.js";
import { DescriptionKeeper } from "../trace/descriptions.js";
import { RawFileWriter } from "../trace/rawFile.js";
import type { RunHeader } from "../trace/header.js";
import type { NoteKind, RunNote } from "../trace/notes.js";
import { segmentFileName } from "../trace/segments.js";
import type { RecordListener } from "../sinks/liveSink.js";

/** When events.pinf starts a new segment, and how much the segments may hold in all. */
export interface Rotation {
  /** a segment this big (bytes) is closed; null: no bound */
  maxBytes: number | null;
  /** a segment this old (ms) is closed; null: no bound */
  maxMs: number | null;
  /** the oldest segments are removed past this many bytes in all; null: none is */
  maxDiskBytes: number | null;
}

/** What the segments of a rotated run hold and lost. */
export interface SegmentStats {
  /** segments written (the current one included) */
  segments: number;
  /** bytes of the segments kept */
  keptBytes: number;
  /** segments removed past --max-disk, and their bytes */
  removed: number;
  removedBytes: number;
}

/** Notes a segment repeats: what readers need of the run whatever segment they start with. */
const STICKY: ReadonlySet<NoteKind> = new Set(["model", "attach", "steps", "unprobed"]);

const G = LAYOUT.pi_graph_begin;
const N = LAYOUT.pi_graph_nodes;
const T = LAYOUT.pi_tensor;
const TYPE = LAYOUT.pi_header.type;

/** Tells every listener; one that throws is told nothing more, and the recording goes on. */
class Listeners {
  private readonly active: RecordListener[];

  constructor(
    listeners: readonly RecordListener[],
    private readonly log: (message: string) => void,
  ) {
    this.active = [...listeners];
  }

  tell(call: (listener: RecordListener) => void): void {
    for (const listener of [...this.active]) {
      try {
        call(listener);
      } catch (error) {
        this.active.splice(this.active.indexOf(listener), 1);
        this.log(`live export stopped: ${(error as Error).message}`);
      }
    }
  }
}

export class RunWriter {
  private writer: RawFileWriter | null = null;
  private header: RunHeader | null = null;
  private pendingNotes: RunNote[] = [];
  private pendingBatches: Buffer[] = [];
  private closed = false;
  private readonly listeners: Listeners;
  private readonly sticky: RunNote[] = [];
  /** graph descriptions as their records (u32 length + bytes), for the next segment */
  private readonly descriptions = new DescriptionKeeper<Buffer>();
  private segmentStart = Date.now();
  /** the bytes a segment starts with (header, notes and descriptions it repeats) */
  private preamble = 0;
  /** segments written before the current one; kept ones: index and bytes, oldest first */
  private index = 0;
  private readonly kept: { index: number; bytes: number }[] = [];
  readonly segments: SegmentStats = { segments: 1, keptBytes: 0, removed: 0, removedBytes: 0 };

  constructor(
    readonly path: string,
    listeners: readonly RecordListener[],
    private readonly log: (message: string) => void,
    private readonly rotation: Rotation | null = null,
  ) {
    this.listeners = new Listeners(listeners, log);
    if (rotation) this.findSegments();
  }

  /** Segments an earlier recording into this folder left (attach resumed into one folder). */
  private findSegments(): void {
    for (const name of readdirSync(dirname(this.path)).sort()) {
      const m = /^events-(\d{6})\.pinf$/.exec(name);
      if (!m) continue;
      this.index = Math.max(this.index, Number(m[1]));
      this.kept.push({ index: Number(m[1]), bytes: statSync(join(dirname(this.path), name)).size });
    }
  }

  get opened(): boolean {
    return this.writer !== null;
  }

  /** Writes the header, then what waited for it. */
  open(header: RunHeader): void {
    if (this.writer || this.closed) return;
    this.header = header;
    this.writer = RawFileWriter.create(this.path, header);
    this.segmentStart = Date.now();
    this.listeners.tell((l) => l.header(header));
    for (const note of this.pendingNotes) this.write(note);
    for (const batch of this.pendingBatches) this.append(batch);
    this.pendingNotes = [];
    this.pendingBatches = [];
  }

  events(batch: Buffer): void {
    if (this.closed) return;
    if (this.writer) this.append(batch);
    else this.pendingBatches.push(batch);
  }

  note(note: RunNote): void {
    if (this.closed) return;
    if (this.writer) this.write(note);
    else this.pendingNotes.push(note);
  }

  /** Flushes and closes the file; what comes later is not written. */
  close(): void {
    this.writer?.close();
    this.closed = true;
    if (this.writer) this.segments.keptBytes = this.keptBytes() + this.writer.bytesWritten;
  }

  private append(batch: Buffer): void {
    this.writer!.appendEvents(batch);
    if (this.rotation) this.keepDescriptions(batch);
    this.listeners.tell((l) => l.events(batch));
    if (this.rotation && this.due()) this.rotate();
  }

  private write(note: RunNote): void {
    this.writer!.appendNote(note);
    if (STICKY.has(note.kind)) this.sticky.push(note);
    this.listeners.tell((l) => l.note(note));
  }

  /** The graph descriptions a batch holds, kept as their records. */
  private keepDescriptions(batch: Buffer): void {
    for (let at = 0; at + 4 <= batch.length;) {
      const n = batch.readUInt32LE(at);
      const ev = at + 4;
      const type = batch.readUInt32LE(ev + TYPE);
      if (type === EventType.GRAPH_BEGIN) {
        if (batch.readUInt32LE(ev + G.changed) !== 0)
          this.descriptions.changed(
            batch.readBigUInt64LE(ev + G.cgraph),
            batch.readBigUInt64LE(ev + G.signature),
          );
      } else if (type === EventType.GRAPH_NODES) {
        this.descriptions.nodes(
          batch.readBigUInt64LE(ev + N.cgraph),
          batch.readBigUInt64LE(ev + N.signature),
          Buffer.from(batch.subarray(at, ev + n)),
        );
      } else if (type === EventType.TENSOR) {
        this.descriptions.tensor(
          batch.readBigUInt64LE(ev + T.signature),
          batch.readBigUInt64LE(ev + T.addr),
          Buffer.from(batch.subarray(at, ev + n)),
        );
      }
      at = ev + n;
    }
  }

  private due(): boolean {
    const { maxBytes, maxMs } = this.rotation!;
    return (
      (maxBytes !== null && this.writer!.bytesWritten - this.preamble >= maxBytes) ||
      (maxMs !== null && Date.now() - this.segmentStart >= maxMs)
    );
  }

  private keptBytes(): number {
    return this.kept.reduce((n, k) => n + k.bytes, 0);
  }

  /** Closes the segment under its number and starts the next with what it must repeat. */
  private rotate(): void {
    const writer = this.writer!;
    writer.close();
    this.index++;
    const rotated = join(dirname(this.path), segmentFileName(this.index));
    renameSync(this.path, rotated);
    this.kept.push({ index: this.index, bytes: writer.bytesWritten });
    this.segments.segments++;
    this.bound();
    const carried = this.descriptions.itemsFor();
    this.writer = RawFileWriter.create(this.path, this.header!);
    this.segmentStart = Date.now();
    this.writer.appendNote({
      kind: "segment",
      index: this.index + 1,
      carriedNotes: this.sticky.length,
      carriedEvents: carried.length,
      ...(this.segments.removed > 0
        ? { removed: { segments: this.segments.removed, bytes: this.segments.removedBytes } }
        : {}),
    });
    for (const note of this.sticky) this.writer.appendNote(note);
    if (carried.length > 0) this.writer.appendEvents(Buffer.concat(carried));
    this.preamble = this.writer.bytesWritten;
  }

  /** Removes the oldest segments while all of them hold more than --max-disk. */
  private bound(): void {
    const max = this.rotation!.maxDiskBytes;
    if (max === null) return;
    let total = this.keptBytes();
    while (this.kept.length > 0 && total > max) {
      const oldest = this.kept.shift()!;
      rmSync(join(dirname(this.path), segmentFileName(oldest.index)), { force: true });
      total -= oldest.bytes;
      this.segments.removed++;
      this.segments.removedBytes += oldest.bytes;
      if (this.segments.removed === 1)
        this.log(
          `the events files passed --max-disk: the oldest segments are removed as new ones start (${basename(this.path)} and the newest segments are kept)`,
        );
    }
  }
}
