// SPDX-License-Identifier: Apache-2.0
// trace.perfetto-trace: ProfTime (timeline.ts) in Perfetto's own protobuf trace format, which
// Perfetto recommends for large traces: a stream of TracePackets (perfetto.protos.Trace, field 1),
// one track per thread of the target (ThreadDescriptor) and one per synthetic track of the
// process (tokens, graphs, seq <id>, sched <tid>), each slice a TYPE_SLICE_BEGIN / TYPE_SLICE_END
// pair of TrackEvents, its arguments as debug annotations; event names, categories and
// annotation names are interned on the one packet sequence. Timestamps are ns from the run's
// first event, as trace.json's. Written chunk by chunk, so a run of any length streams to disk.
// Field numbers: protos/perfetto/trace/{trace_packet,track_event/*,interned_data/*}.proto.
import { closeSync, openSync, writeSync } from "node:fs";
import type { Run } from "../trace/types.js";
import { I64, LEN, VARINT, ProtoWriter } from "./protoWire.js";
import {
  timelineOfRun,
  type TimelineArgs,
  type TimelineEncoder,
  type TimelineEnd,
  type TimelineTrack,
} from "./timeline.js";

/** TracePacket fields */
const PACKET = {
  timestamp: 8,
  trustedPacketSequenceId: 10,
  trackEvent: 11,
  internedData: 12,
  sequenceFlags: 13,
  trackDescriptor: 60,
  firstPacketOnSequence: 87,
};
const SEQ_INCREMENTAL_STATE_CLEARED = 1;
const SEQ_NEEDS_INCREMENTAL_STATE = 2;
/** TrackEvent fields and types */
const EVENT = {
  categoryIids: 3,
  debugAnnotations: 4,
  type: 9,
  nameIid: 10,
  trackUuid: 11,
  doubleCounterValue: 44,
};
const TYPE_SLICE_BEGIN = 1;
const TYPE_SLICE_END = 2;
const TYPE_COUNTER = 4;
/** InternedData fields: EventCategory, EventName, DebugAnnotationName (each {iid 1, name 2}) */
const INTERNED = { categories: 1, names: 2, annotationNames: 3 };
/** DebugAnnotation fields */
const ANNOTATION = {
  nameIid: 1,
  bool: 2,
  int: 4,
  double: 5,
  string: 6,
  name: 10,
  dictEntries: 11,
  arrayValues: 12,
};
/** TrackDescriptor, ProcessDescriptor, ThreadDescriptor fields */
const TRACK = { uuid: 1, name: 2, process: 3, thread: 4, parentUuid: 5, counter: 8 };
const PROCESS = { pid: 1, cmdline: 2, processName: 6 };
const THREAD = { pid: 1, tid: 2, threadName: 5 };

const SEQUENCE_ID = 1;
/** Track uuids: the kind times 2^40 plus the tid (or a counter track's number): exact doubles. */
const UUID_KIND = 2 ** 40;
const PROCESS_UUID = 1 * UUID_KIND;
const THREAD_UUID = 2 * UUID_KIND;
const SYNTHETIC_UUID = 3 * UUID_KIND;
const COUNTER_UUID = 4 * UUID_KIND;
/** Bytes of packets gathered before they are handed on. */
const FLUSH_AT = 1 << 20;

type Interned = [table: number, iid: number, name: string][];

/** A track's slices still open: their ends, innermost last. */
interface OpenTrack {
  uuid: number;
  ends: bigint[];
}

export class PerfettoProtoEncoder implements TimelineEncoder {
  private readonly w = new ProtoWriter(FLUSH_AT + (FLUSH_AT >> 2));
  private first = true;
  private readonly tables = [new Map<string, number>(), new Map<string, number>(), new Map()];
  private readonly tracks = new Map<number, OpenTrack>();
  private readonly counterTracks = new Map<string, number>();
  private readonly processUuid: number;

  /** `base`: the run's first event time, ts 0; `out` receives the bytes piece by piece */
  constructor(
    private readonly pid: number,
    command: readonly string[],
    private readonly base: bigint,
    private readonly out: (bytes: Uint8Array) => void,
  ) {
    this.processUuid = PROCESS_UUID + pid;
    this.descriptor((d) => {
      d.tag(TRACK.uuid, VARINT).varint(this.processUuid);
      d.message(TRACK.process, (p) => {
        p.tag(PROCESS.pid, VARINT).varint(pid);
        for (const arg of command) p.tag(PROCESS.cmdline, LEN).string(arg);
        p.tag(PROCESS.processName, LEN).string(command.join(" ") || `pid ${pid}`);
      });
    });
  }

  /** The iid of `name` in interned table `table`, noting it in `fresh` when it is new. */
  private iid(table: number, name: string, fresh: Interned): number {
    const map = this.tables[table - 1]!;
    let iid = map.get(name);
    if (iid === undefined) {
      iid = map.size + 1;
      map.set(name, iid);
      fresh.push([table, iid, name]);
    }
    return iid;
  }

  private packet(ts: bigint | null, fresh: Interned, body: (p: ProtoWriter) => void): void {
    const p = this.w;
    const packet = p.begin(1);
    if (ts !== null) p.tag(PACKET.timestamp, VARINT).varint(Number(ts - this.base));
    p.tag(PACKET.trustedPacketSequenceId, VARINT).varint(SEQUENCE_ID);
    if (this.first) {
      p.tag(PACKET.sequenceFlags, VARINT).varint(SEQ_INCREMENTAL_STATE_CLEARED);
      p.tag(PACKET.firstPacketOnSequence, VARINT).bool(true);
      this.first = false;
    } else p.tag(PACKET.sequenceFlags, VARINT).varint(SEQ_NEEDS_INCREMENTAL_STATE);
    if (fresh.length > 0) {
      const interned = p.begin(PACKET.internedData);
      for (const [table, iid, name] of fresh) {
        const entry = p.begin(table);
        p.tag(1, VARINT).varint(iid);
        p.tag(2, LEN).string(name);
        p.end(entry);
      }
      p.end(interned);
    }
    body(p);
    p.end(packet);
    if (p.pos > FLUSH_AT) this.flush();
  }

  private descriptor(body: (d: ProtoWriter) => void): void {
    this.packet(null, [], (p) => p.message(PACKET.trackDescriptor, body));
  }

  private flush(): void {
    if (this.w.pos > 0) this.out(this.w.view());
    this.w.reset();
  }

  /** The track of `track`, described on first use. */
  private open(track: TimelineTrack): OpenTrack {
    let open = this.tracks.get(track.tid);
    if (open) return open;
    const uuid = (track.thread ? THREAD_UUID : SYNTHETIC_UUID) + track.tid;
    open = { uuid, ends: [] };
    this.tracks.set(track.tid, open);
    this.descriptor((d) => {
      d.tag(TRACK.uuid, VARINT).varint(uuid);
      if (track.thread) {
        d.message(TRACK.thread, (t) => {
          t.tag(THREAD.pid, VARINT).varint(this.pid);
          t.tag(THREAD.tid, VARINT).varint(track.tid);
          t.tag(THREAD.threadName, LEN).string(track.name);
        });
      } else {
        d.tag(TRACK.name, LEN).string(track.name);
        d.tag(TRACK.parentUuid, VARINT).varint(this.processUuid);
      }
    });
    return open;
  }

  /** Ends the open slices of a track that end at or before `ns` (all, with null). */
  private closeUntil(open: OpenTrack, ns: bigint | null): void {
    while (open.ends.length > 0) {
      const end = open.ends[open.ends.length - 1]!;
      if (ns !== null && end > ns) return;
      open.ends.pop();
      this.packet(end, [], (p) =>
        p.message(PACKET.trackEvent, (e) => {
          e.tag(EVENT.type, VARINT).varint(TYPE_SLICE_END);
          e.tag(EVENT.trackUuid, VARINT).varint(open.uuid);
        }),
      );
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
    const open = this.open(track);
    this.closeUntil(open, startNs);
    // a slice nests inside the one still open on its track: one that overlaps it without
    // nesting (two contexts' calls at once) is cut at that one's end
    const parentEnd = open.ends[open.ends.length - 1];
    const end = endNs < startNs ? startNs : endNs;
    open.ends.push(parentEnd !== undefined && end > parentEnd ? parentEnd : end);
    const fresh: Interned = [];
    const nameIid = this.iid(INTERNED.names, name, fresh);
    const catIid = this.iid(INTERNED.categories, cat, fresh);
    const annotations: [number, unknown][] = [];
    for (const [key, value] of Object.entries(args ?? {})) {
      if (value === null || value === undefined) continue;
      annotations.push([this.iid(INTERNED.annotationNames, key, fresh), value]);
    }
    this.packet(startNs, fresh, (p) =>
      p.message(PACKET.trackEvent, (e) => {
        e.tag(EVENT.type, VARINT).varint(TYPE_SLICE_BEGIN);
        e.tag(EVENT.trackUuid, VARINT).varint(open.uuid);
        e.tag(EVENT.nameIid, VARINT).varint(nameIid);
        e.tag(EVENT.categoryIids, VARINT).varint(catIid);
        for (const [keyIid, value] of annotations) {
          const a = e.begin(EVENT.debugAnnotations);
          e.tag(ANNOTATION.nameIid, VARINT).varint(keyIid);
          annotationValue(e, value);
          e.end(a);
        }
      }),
    );
  }

  counter(track: TimelineTrack, name: string, ts: bigint, value: number): void {
    const parent = this.open(track).uuid;
    const key = `${track.tid}\u0000${name}`;
    let uuid = this.counterTracks.get(key);
    if (uuid === undefined) {
      const counterUuid = COUNTER_UUID + this.counterTracks.size + 1;
      uuid = counterUuid;
      this.counterTracks.set(key, uuid);
      this.descriptor((d) => {
        d.tag(TRACK.uuid, VARINT).varint(counterUuid);
        d.tag(TRACK.name, LEN).string(`${name} tid ${track.tid}`);
        d.tag(TRACK.parentUuid, VARINT).varint(parent);
        d.message(TRACK.counter, () => {});
      });
    }
    const counterUuid = uuid;
    this.packet(ts, [], (p) =>
      p.message(PACKET.trackEvent, (e) => {
        e.tag(EVENT.type, VARINT).varint(TYPE_COUNTER);
        e.tag(EVENT.trackUuid, VARINT).varint(counterUuid);
        e.tag(EVENT.doubleCounterValue, I64).double(value);
      }),
    );
  }

  finish(_end: TimelineEnd): void {
    for (const open of this.tracks.values()) this.closeUntil(open, null);
    this.flush();
  }
}

/** A DebugAnnotation's value: scalars as such, arrays and objects nested. */
function annotationValue(a: ProtoWriter, value: unknown): void {
  if (typeof value === "boolean") a.tag(ANNOTATION.bool, VARINT).bool(value);
  else if (typeof value === "number") {
    if (Number.isSafeInteger(value)) a.tag(ANNOTATION.int, VARINT).int64(value);
    else a.tag(ANNOTATION.double, I64).double(value);
  } else if (typeof value === "string") a.tag(ANNOTATION.string, LEN).string(value);
  else if (Array.isArray(value)) {
    for (const item of value) {
      if (item === null || item === undefined) continue;
      const x = a.begin(ANNOTATION.arrayValues);
      annotationValue(a, item);
      a.end(x);
    }
  } else if (typeof value === "object" && value !== null) {
    for (const [key, item] of Object.entries(value)) {
      if (item === null || item === undefined) continue;
      const x = a.begin(ANNOTATION.dictEntries);
      a.tag(ANNOTATION.name, LEN).string(key);
      annotationValue(a, item);
      a.end(x);
    }
  } else a.tag(ANNOTATION.string, LEN).string(String(value));
}

/** An encoder writing to a file as it goes; close() after finish. */
export function protoTimelineFile(
  path: string,
  pid: number,
  command: readonly string[],
  base: bigint,
): { encoder: PerfettoProtoEncoder; close(): void } {
  const fd = openSync(path, "w");
  return {
    encoder: new PerfettoProtoEncoder(pid, command, base, (bytes) => writeSync(fd, bytes)),
    close: () => closeSync(fd),
  };
}

/** The protobuf timeline of a run built whole (tests, small runs; runOutputs streams). */
export function renderPerfettoProto(run: Run): Uint8Array {
  const parts: Uint8Array[] = [];
  const encoder = new PerfettoProtoEncoder(
    run.header.target.pid,
    run.header.target.command,
    run.firstNs,
    (bytes) => parts.push(Buffer.from(bytes)),
  );
  timelineOfRun(run, encoder);
  return Buffer.concat(parts);
}
