// SPDX-License-Identifier: Apache-2.0
// The first of the streaming passes over events.pinf (trace/runStream.ts): what only the whole
// file tells, read without decoding a single event into an object: the notes (the last drops
// count, the exit, when tracing stopped), where the file was cut short, how many events and
// llama_decode calls it holds, its first and last event time, and how often each graph
// description was used. The second pass builds the model chunk by chunk with these.
import { EventType, LAYOUT, PI_STEPS_PER_BATCH, STEPS_RECORD } from "../abi/events.js";
import type { Drops } from "@profinfer/contract";
import { readRunNotes } from "./buildRun.js";
import { snapshotKey } from "./dag.js";
import type { RunHeader } from "./header.js";
import type { ExitNote, NoteRecord } from "./notes.js";
import { SegmentsReader } from "./segments.js";

export interface RunFacts {
  path: string;
  header: RunHeader;
  notes: NoteRecord[];
  /** byte offset of the first record that did not fit in the file; null when it is whole */
  truncatedAt: number | null;
  fileSize: number;
  /** events, a batch of steps counting one per step */
  eventCount: number;
  /** earliest and latest event time (0n without events) */
  firstNs: bigint;
  lastNs: bigint;
  /** llama_decode calls begun */
  calls: number;
  /** graph runs per description (snapshotKey): how often each graph ran */
  snapshotUses: Map<string, number>;
  drops: Drops | null;
  exit: ExitNote | null;
  stoppedNs: bigint | null;
}

const H = LAYOUT.pi_header;
const G = LAYOUT.pi_graph_begin;
const S = LAYOUT.pi_steps;
const E = LAYOUT.pi_step_entry;

/**
 * Reads the facts of a run's whole events: its events.pinf, or the segments of a rotated one
 * (trace/segments.ts). RawFormatError when one is not an events file.
 */
export function scanRunFacts(path: string | readonly string[]): RunFacts {
  const reader = SegmentsReader.open(path);
  {
    const notes: NoteRecord[] = [];
    const snapshotUses = new Map<string, number>();
    let eventCount = 0;
    let calls = 0;
    let first = -1n;
    let last = 0n;
    const seen = (ts: bigint) => {
      if (first < 0n || ts < first) first = ts;
      if (ts > last) last = ts;
    };
    for (const frame of reader.frames()) {
      if (frame.note) {
        notes.push({
          type: "note",
          offset: frame.offset,
          afterEvents: eventCount,
          note: frame.note,
        });
        continue;
      }
      const buf = frame.buffer;
      const at = frame.at;
      const type = buf.readUInt32LE(at + H.type);
      if (type === STEPS_RECORD) {
        const count = Math.min(buf.readUInt32LE(at + S.count), PI_STEPS_PER_BATCH);
        for (let i = 0; i < count; i++) seen(buf.readBigUInt64LE(at + S.steps + i * E.size + E.ts));
        eventCount += count;
        continue;
      }
      eventCount++;
      seen(buf.readBigUInt64LE(at + H.ts));
      if (type === EventType.TOKEN_BEGIN) calls++;
      else if (type === EventType.GRAPH_BEGIN) {
        const key = snapshotKey(
          buf.readBigUInt64LE(at + G.cgraph),
          buf.readBigUInt64LE(at + G.signature),
        );
        snapshotUses.set(key, (snapshotUses.get(key) ?? 0) + 1);
      }
    }
    const { drops, exit, stoppedNs } = readRunNotes(notes);
    return {
      path: reader.path,
      header: reader.header,
      notes,
      truncatedAt: reader.truncatedAt,
      fileSize: reader.fileSize,
      eventCount,
      firstNs: first < 0n ? 0n : first,
      lastNs: last,
      calls,
      snapshotUses,
      drops,
      exit,
      stoppedNs,
    };
  }
}
