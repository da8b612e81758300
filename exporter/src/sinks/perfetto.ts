// SPDX-License-Identifier: Apache-2.0
// trace.json: ProfTime (timeline.ts) in the Chrome trace-event "JSON Object Format", which
// Perfetto UI and chrome://tracing open. Timestamps are microseconds from the run's first event,
// computed from BigInt ns (so they keep ns precision); the track names and order come at the end
// of the event list, once every track is known, and the run's own facts (otherData) after it. The
// output depends on the recording only, byte for byte. Written chunk by chunk: a long run's file
// is never held whole (Perfetto itself recommends its protobuf format, perfettoProto.ts, for
// those).
import { closeSync, openSync, writeSync } from "node:fs";
import type { Run } from "../trace/types.js";
import {
  timelineOfRun,
  type TimelineArgs,
  type TimelineEncoder,
  type TimelineEnd,
  type TimelineTrack,
} from "./timeline.js";

export {
  GRAPHS_TRACK_TID,
  REQUESTS_TRACK_BASE,
  SCHED_TRACK_BASE,
  TOKENS_TRACK_TID,
} from "./timeline.js";

interface TraceEvent {
  name: string;
  cat?: string;
  ph: "X" | "M" | "C";
  ts?: number;
  dur?: number;
  pid: number;
  tid: number;
  args?: Record<string, unknown>;
}

const HEAD = `{"displayTimeUnit":"ns","traceEvents":[\n`;
const FLUSH_AT = 1 << 20;

/** The JSON encoder: event texts to `out`, separated as the array wants. */
export class PerfettoJsonEncoder implements TimelineEncoder {
  private buffer = HEAD;
  private first = true;

  /** `base`: the run's first event time, ts 0; `out` receives the text piece by piece */
  constructor(
    private readonly pid: number,
    private readonly base: bigint,
    private readonly out: (text: string) => void,
  ) {}

  private us(ns: bigint): number {
    return Number(ns - this.base) / 1000;
  }

  private push(ev: TraceEvent): void {
    this.buffer += this.first ? JSON.stringify(ev) : `,\n${JSON.stringify(ev)}`;
    this.first = false;
    if (this.buffer.length > FLUSH_AT) {
      this.out(this.buffer);
      this.buffer = "";
    }
  }

  slice(
    track: TimelineTrack,
    name: string,
    cat: string,
    startNs: bigint,
    endNs: bigint,
    args?: TimelineArgs,
  ): void {
    this.push({
      name,
      cat,
      ph: "X",
      ts: this.us(startNs),
      dur: endNs > startNs ? Number(endNs - startNs) / 1000 : 0,
      pid: this.pid,
      tid: track.tid,
      ...(args ? { args } : {}),
    });
  }

  counter(track: TimelineTrack, name: string, ts: bigint, value: number): void {
    this.push({
      name: `${name} tid ${track.tid}`,
      cat: "counter",
      ph: "C",
      ts: this.us(ts),
      pid: this.pid,
      tid: track.tid,
      args: { value },
    });
  }

  finish(end: TimelineEnd): void {
    const meta = (name: string, tid: number, args: Record<string, unknown>) =>
      this.push({ name, ph: "M", pid: end.pid, tid, args });
    meta("process_name", end.pid, { name: end.processName });
    for (const t of end.tracks) {
      meta("thread_name", t.tid, { name: t.name });
      meta("thread_sort_index", t.tid, { sort_index: t.sortIndex });
    }
    this.out(`${this.buffer}\n],"otherData":${JSON.stringify(end.otherData)}}\n`);
    this.buffer = "";
  }
}

/** The whole trace.json text of a run built whole (tests, small runs; runOutputs streams). */
export function renderPerfettoTrace(run: Run): string {
  let text = "";
  const encoder = new PerfettoJsonEncoder(run.header.target.pid, run.firstNs, (t) => (text += t));
  timelineOfRun(run, encoder);
  return text;
}

/** An encoder writing to a file as it goes; close() after finish. */
export function jsonTimelineFile(
  path: string,
  pid: number,
  base: bigint,
): { encoder: PerfettoJsonEncoder; close(): void } {
  const fd = openSync(path, "w");
  return {
    encoder: new PerfettoJsonEncoder(pid, base, (text) => writeSync(fd, text)),
    close: () => closeSync(fd),
  };
}

/** Writes trace.json of a run built whole. */
export function writePerfettoTrace(run: Run, path: string): void {
  const file = jsonTimelineFile(path, run.header.target.pid, run.firstNs);
  try {
    timelineOfRun(run, file.encoder);
  } finally {
    file.close();
  }
}
