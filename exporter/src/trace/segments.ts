// SPDX-License-Identifier: Apache-2.0
// A run's events as one stream over the segments of a rotated events file (record and attach
// --rotate-size / --rotate-time): events-000001.pinf, events-000002.pinf, ... (oldest first, the
// oldest removed past --max-disk), then events.pinf, the segment being written. Each segment
// starts with the run header and a segment note, then repeats what the segments before it told
// (the sticky notes, the graph descriptions) so that it reads on its own; read after its
// predecessor, those repeated records are passed over.
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import type { RunHeader } from "./header.js";
import { RawFileReader, recordsOf, type RawFrame, type RawRecord } from "./rawFile.js";

/** The current segment's name, and the rotated ones'. */
export const EVENTS_FILE = "events.pinf";
const ROTATED = /^events-(\d{6})\.pinf$/;

/** The name of rotated segment `index`. */
export function segmentFileName(index: number): string {
  return `events-${String(index).padStart(6, "0")}.pinf`;
}

/** The event files of a run folder in order: its rotated segments, then events.pinf. */
export function runEventFiles(dir: string): string[] {
  const rotated = readdirSync(dir)
    .filter((name) => ROTATED.test(name))
    .sort();
  const files = rotated.map((name) => join(dir, name));
  if (existsSync(join(dir, EVENTS_FILE))) files.push(join(dir, EVENTS_FILE));
  return files;
}

/** The events and notes of a run's segments, read as one file. */
export class SegmentsReader {
  /** where the last segment was cut short; null when it is whole */
  truncatedAt: number | null = null;
  private constructor(
    private readonly paths: readonly string[],
    readonly header: RunHeader,
    readonly fileSize: number,
  ) {}

  static open(paths: string | readonly string[]): SegmentsReader {
    const list = typeof paths === "string" ? [paths] : paths;
    if (list.length === 0) throw new Error("a run needs at least one events file");
    let size = 0;
    let header: RunHeader | null = null;
    for (const path of list) {
      const reader = RawFileReader.open(path);
      reader.close();
      header ??= reader.header;
      size += reader.fileSize;
    }
    return new SegmentsReader(list, header!, size);
  }

  /** The path of the first segment (the run's events.pinf when it was not rotated). */
  get path(): string {
    return this.paths[0]!;
  }

  /** RawFileReader.frames() over every segment, the repeated records passed over. */
  *frames(): Generator<RawFrame, void, undefined> {
    let offset = 0;
    for (const [i, path] of this.paths.entries()) {
      const reader = RawFileReader.open(path);
      try {
        let skipNotes = 0;
        let skipEvents = 0;
        for (const frame of reader.frames()) {
          if (frame.note?.kind === "segment" && i > 0) {
            skipNotes = frame.note.carriedNotes;
            skipEvents = frame.note.carriedEvents;
          } else if (frame.note && skipNotes > 0) {
            skipNotes--;
            continue;
          } else if (!frame.note && skipEvents > 0) {
            skipEvents--;
            continue;
          }
          frame.offset += offset;
          yield frame;
        }
        if (i === this.paths.length - 1 && reader.truncatedAt !== null)
          this.truncatedAt = reader.truncatedAt + offset;
        offset += reader.fileSize;
      } finally {
        reader.close();
      }
    }
  }

  /** Every event (decoded) and note in order, as RawFileReader iterates one file. */
  *[Symbol.iterator](): Generator<RawRecord, void, undefined> {
    yield* recordsOf(this.path, this.frames());
  }
}
