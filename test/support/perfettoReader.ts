// SPDX-License-Identifier: Apache-2.0
// Reads a Perfetto protobuf trace with protobufjs and Perfetto's documented schema (the subset in
// perfetto/trace.proto), independently of profinfer's encoder, and a trace.json, into the same
// plain slices: per track name, each slice's name, category, start and duration in ns and its
// arguments, so that tests can hold the two timelines side by side.
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import protobuf from "protobufjs";

const schema = protobuf.loadSync(
  join(dirname(fileURLToPath(import.meta.url)), "perfetto", "trace.proto"),
);
const Trace = schema.lookupType("perfetto.protos.Trace");
const TracePacket = schema.lookupType("perfetto.protos.TracePacket");

export interface TimelineSlice {
  track: string;
  name: string;
  cat: string;
  startNs: number;
  durNs: number;
  args: Record<string, unknown>;
}

interface DecodedEvent {
  type?: number;
  trackUuid?: number;
  nameIid?: number;
  name?: string;
  categoryIids?: number[];
  debugAnnotations?: Annotation[];
  doubleCounterValue?: number;
}

interface DecodedPacket {
  timestamp?: number;
  trackEvent?: DecodedEvent;
  internedData?: Record<
    "eventNames" | "eventCategories" | "debugAnnotationNames",
    { iid: number; name: string }[] | undefined
  >;
  trackDescriptor?: {
    uuid: number;
    name?: string;
    process?: { pid: number; processName: string };
    thread?: { tid: number; threadName: string };
  };
}

interface Annotation {
  nameIid?: number;
  name?: string;
  boolValue?: boolean;
  intValue?: number;
  uintValue?: number;
  doubleValue?: number;
  stringValue?: string;
  dictEntries?: Annotation[];
  arrayValues?: Annotation[];
}

function annotationValue(a: Annotation): unknown {
  if (a.dictEntries?.length)
    return Object.fromEntries(a.dictEntries.map((e) => [e.name!, annotationValue(e)]));
  if (a.arrayValues?.length) return a.arrayValues.map(annotationValue);
  return a.boolValue ?? a.intValue ?? a.uintValue ?? a.doubleValue ?? a.stringValue ?? [];
}

/** The slices and counter samples of a protobuf trace; tracks named as their descriptors say. */
export function readPerfettoProto(bytes: Uint8Array): {
  slices: TimelineSlice[];
  counters: { track: string; ts: number; value: number }[];
  process: { pid: number; name: string } | null;
  threads: { tid: number; name: string }[];
} {
  const trace = Trace.toObject(Trace.decode(bytes), { longs: Number, enums: Number }) as {
    packet?: DecodedPacket[];
  };
  const names = new Map<number, string>();
  const cats = new Map<number, string>();
  const keys = new Map<number, string>();
  const tracks = new Map<number, string>();
  const threads: { tid: number; name: string }[] = [];
  let process: { pid: number; name: string } | null = null;
  const events: { ts: number; order: number; track: number; e: DecodedEvent }[] = [];
  (trace.packet ?? []).forEach((p, order) => {
    for (const n of p.internedData?.eventNames ?? []) names.set(n.iid, n.name);
    for (const n of p.internedData?.eventCategories ?? []) cats.set(n.iid, n.name);
    for (const n of p.internedData?.debugAnnotationNames ?? []) keys.set(n.iid, n.name);
    const d = p.trackDescriptor;
    if (d) {
      if (d.process) process = { pid: d.process.pid, name: d.process.processName };
      if (d.thread) threads.push({ tid: d.thread.tid, name: d.thread.threadName });
      tracks.set(d.uuid, d.thread ? d.thread.threadName : (d.name ?? ""));
    }
    if (p.trackEvent)
      events.push({
        ts: p.timestamp ?? 0,
        order,
        track: p.trackEvent.trackUuid ?? 0,
        e: p.trackEvent,
      });
  });
  // the reader sorts by time, as Perfetto's does; one time keeps the file's order
  events.sort((a, b) => a.ts - b.ts || a.order - b.order);
  const open = new Map<
    number,
    { name: string; cat: string; ts: number; args: Record<string, unknown> }[]
  >();
  const slices: TimelineSlice[] = [];
  const counters: { track: string; ts: number; value: number }[] = [];
  for (const { ts, track, e } of events) {
    if (e.type === 4) {
      counters.push({ track: tracks.get(track) ?? "", ts, value: e.doubleCounterValue ?? 0 });
      continue;
    }
    let stack = open.get(track);
    if (!stack) open.set(track, (stack = []));
    if (e.type === 1) {
      const args: Record<string, unknown> = {};
      for (const a of e.debugAnnotations ?? [])
        args[keys.get(a.nameIid!) ?? a.name!] = annotationValue(a);
      stack.push({
        name: names.get(e.nameIid ?? -1) ?? e.name ?? "",
        cat: cats.get(e.categoryIids?.[0] ?? -1) ?? "",
        ts,
        args,
      });
    } else if (e.type === 2) {
      const begun = stack.pop()!;
      slices.push({
        track: tracks.get(track) ?? "",
        name: begun.name,
        cat: begun.cat,
        startNs: begun.ts,
        durNs: ts - begun.ts,
        args: begun.args,
      });
    }
  }
  return { slices, counters, process, threads };
}

/**
 * The slices of a protobuf trace counted per track and category (`<track>|<cat>`), packet by
 * packet: a long run's trace, hundreds of MB, is never decoded whole.
 */
export function countPerfettoSlices(bytes: Uint8Array): Map<string, number> {
  const reader = protobuf.Reader.create(bytes);
  const cats = new Map<number, string>();
  const tracks = new Map<number, string>();
  const counts = new Map<string, number>();
  while (reader.pos < reader.len) {
    const tag = reader.uint32();
    if (tag >>> 3 !== 1 || (tag & 7) !== 2) {
      reader.skipType(tag & 7);
      continue;
    }
    const p = TracePacket.toObject(TracePacket.decode(reader.bytes()), {
      longs: Number,
      enums: Number,
    }) as DecodedPacket;
    for (const n of p.internedData?.eventCategories ?? []) cats.set(n.iid, n.name);
    const d = p.trackDescriptor;
    if (d) tracks.set(d.uuid, d.thread ? d.thread.threadName : (d.name ?? ""));
    const e = p.trackEvent;
    if (e?.type === 1) {
      const key = `${tracks.get(e.trackUuid ?? 0) ?? ""}|${cats.get(e.categoryIids?.[0] ?? -1) ?? ""}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
  }
  return counts;
}

/** The X events of a trace.json as slices, their tracks named by its thread_name metadata. */
export function readPerfettoJson(text: string): TimelineSlice[] {
  const trace = JSON.parse(text) as {
    traceEvents: {
      name: string;
      cat?: string;
      ph: string;
      ts?: number;
      dur?: number;
      tid: number;
      args?: Record<string, unknown>;
    }[];
  };
  const trackNames = new Map<number, string>();
  for (const e of trace.traceEvents)
    if (e.ph === "M" && e.name === "thread_name") trackNames.set(e.tid, e.args!.name as string);
  return trace.traceEvents
    .filter((e) => e.ph === "X")
    .map((e) => ({
      track: trackNames.get(e.tid) ?? "",
      name: e.name,
      cat: e.cat ?? "",
      startNs: Math.round(e.ts! * 1000),
      durNs: Math.round(e.dur! * 1000),
      args: e.args ?? {},
    }));
}

/** Slices in one order, to compare lists. */
export function sortedSlices(slices: readonly TimelineSlice[]): TimelineSlice[] {
  return [...slices].sort(
    (a, b) =>
      (a.track < b.track ? -1 : a.track > b.track ? 1 : 0) ||
      a.startNs - b.startNs ||
      b.durNs - a.durNs ||
      (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
  );
}
