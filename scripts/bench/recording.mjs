// SPDX-License-Identifier: Apache-2.0
// Reading what a recorded run left: its notes and its decode calls.
import { rmSync } from "node:fs";
import { join } from "node:path";

const { readRawFile } = await import("@profinfer/exporter");

/** the recording (events.pinf) of a run, whose folder goes: each run is read once */
export function takeRecording(out) {
  const recording = readRawFile(join(out, "events.pinf"));
  rmSync(out, { recursive: true, force: true });
  return recording;
}

/** the note of `kind` in a recording, if it has one */
export const noteOf = (recording, kind) => recording.notes.find((n) => n.note.kind === kind)?.note;

/**
 * What profinfer itself used from the target's first llama_decode on, as a percentage of one core
 * (the "profiler" note; null without one).
 */
export function profilerCpuPct(recording) {
  const self = noteOf(recording, "profiler");
  return self && self.wallMs > 0 ? (100 * self.cpuMs) / self.wallMs : null;
}

/** a run model's decode calls that nothing cut short (a probe switch or the end of tracing) */
export const completeDecodeCalls = (run) =>
  run.tokens.filter((t) => t.phase === "decode" && t.complete);

export const durationNs = (call) => Number(call.endNs - call.startNs);
