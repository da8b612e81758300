// SPDX-License-Identifier: Apache-2.0
// Writing the run: events.pinf and what the live listeners see of it. The header can only be
// written once the libraries tell what the level needs (the layout, the op names), so notes and
// event batches wait until then and go first, in order.
import { RawFileWriter } from "../trace/rawFile.js";
import type { RunHeader } from "../trace/header.js";
import type { RunNote } from "../trace/notes.js";
import type { RecordListener } from "../sinks/liveSink.js";

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
  private pendingNotes: RunNote[] = [];
  private pendingBatches: Buffer[] = [];
  private closed = false;
  private readonly listeners: Listeners;

  constructor(
    readonly path: string,
    listeners: readonly RecordListener[],
    log: (message: string) => void,
  ) {
    this.listeners = new Listeners(listeners, log);
  }

  get opened(): boolean {
    return this.writer !== null;
  }

  /** Writes the header, then what waited for it. */
  open(header: RunHeader): void {
    if (this.writer || this.closed) return;
    this.writer = RawFileWriter.create(this.path, header);
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
  }

  private append(batch: Buffer): void {
    this.writer!.appendEvents(batch);
    this.listeners.tell((l) => l.events(batch));
  }

  private write(note: RunNote): void {
    this.writer!.appendNote(note);
    this.listeners.tell((l) => l.note(note));
  }
}
