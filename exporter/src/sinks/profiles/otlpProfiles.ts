// SPDX-License-Identifier: Apache-2.0
// Operator-time profiles as an OTLP ExportProfilesServiceRequest (opentelemetry-proto
// profiles/v1development, the schema the pinned Collector's pdata reads): one Profile per sample
// type (wall, thread, barrier, runs, each counter), their stacks, locations, functions, strings
// and the thread attributes in one shared dictionary whose first entries are the zero values the
// format asks for. Encoded field by field (protoWire.ts): no JavaScript OpenTelemetry
// package has the profiles signal yet, and the schema is still marked development, so the few
// messages are written here against it (field numbers from the proto) rather than compiled.
import type { AttributeValue, Attributes } from "@opentelemetry/api";
import { randomBytes } from "node:crypto";
import type { Frame, Sample } from "../pprof.js";
import { I64, LEN, ProtoWriter, VARINT } from "../protoWire.js";

/** The gRPC method that takes the request (opentelemetry-proto's ProfilesService). */
export const PROFILES_EXPORT_METHOD =
  "/opentelemetry.proto.collector.profiles.v1development.ProfilesService/Export";

/** Thread attributes of a sample, OpenTelemetry's names. */
export const ATTR_PROFILE_THREAD_NAME = "thread.name";
export const ATTR_PROFILE_THREAD_ID = "thread.id";

/** opentelemetry.proto.common.v1.AnyValue */
function anyValue(w: ProtoWriter, value: AttributeValue): void {
  if (typeof value === "string") w.tag(1, LEN).string(value);
  else if (typeof value === "boolean") w.tag(2, VARINT).bool(value);
  else if (typeof value === "number" && Number.isInteger(value)) w.tag(3, VARINT).int64(value);
  else if (typeof value === "number") w.tag(4, I64).double(value);
  else if (Array.isArray(value)) {
    w.message(5, (array) => {
      for (const item of value) {
        if (item !== null && item !== undefined) array.message(1, (v) => anyValue(v, item));
      }
    });
  }
}

/** The dictionary shared by the profiles of one request: each table starts with its zero value. */
class Dictionary {
  readonly strings: string[] = [""];
  private readonly stringIndex = new Map<string, number>([["", 0]]);
  /** [name, filename] string indices */
  readonly functions: [number, number][] = [[0, 0]];
  private readonly functionIndex = new Map<string, number>();
  /** a location is one line of one function */
  readonly locations: number[] = [0];
  readonly stacks: number[][] = [[]];
  private readonly stackIndex = new Map<string, number>();
  readonly attributes: [number, AttributeValue][] = [[0, ""]];
  private readonly attributeIndex = new Map<string, number>();

  string(s: string): number {
    let i = this.stringIndex.get(s);
    if (i === undefined) {
      i = this.strings.push(s) - 1;
      this.stringIndex.set(s, i);
    }
    return i;
  }

  private location(frame: Frame): number {
    const key = `${frame.kind}\u0000${frame.name}`;
    let f = this.functionIndex.get(key);
    if (f === undefined) {
      f = this.functions.push([this.string(frame.name), this.string(frame.kind)]) - 1;
      this.functionIndex.set(key, f);
      this.locations.push(f);
    }
    // one location per function, in the same order
    return f;
  }

  /** The stack of frames listed root first; the format lists a stack leaf first, as pprof. */
  stack(frames: readonly Frame[]): number {
    const locations = frames.map((f) => this.location(f)).reverse();
    const key = locations.join(",");
    let i = this.stackIndex.get(key);
    if (i === undefined) {
      i = this.stacks.push(locations) - 1;
      this.stackIndex.set(key, i);
    }
    return i;
  }

  attribute(key: string, value: AttributeValue): number {
    const id = `${key}\u0000${typeof value}\u0000${String(value)}`;
    let i = this.attributeIndex.get(id);
    if (i === undefined) {
      i = this.attributes.push([this.string(key), value]) - 1;
      this.attributeIndex.set(id, i);
    }
    return i;
  }

  /** opentelemetry.proto.profiles.v1development.ProfilesDictionary */
  write(w: ProtoWriter): void {
    // mapping_table (1) and link_table (4): their zero values only
    w.message(1, () => {});
    for (const fn of this.locations) {
      // the zero location has no line
      w.message(2, (l) => {
        if (fn !== 0) l.message(3, (line) => line.tag(1, VARINT).varint(fn));
      });
    }
    for (const [name, filename] of this.functions) {
      w.message(3, (f) => {
        if (name) f.tag(1, VARINT).varint(name);
        if (name) f.tag(2, VARINT).varint(name);
        if (filename) f.tag(3, VARINT).varint(filename);
      });
    }
    w.message(4, () => {});
    for (const s of this.strings) w.tag(5, LEN).string(s);
    this.attributes.forEach(([key, value], i) =>
      w.message(6, (a) => {
        if (i === 0) return;
        a.tag(1, VARINT).varint(key);
        a.message(2, (v) => anyValue(v, value));
      }),
    );
    for (const stack of this.stacks) w.message(7, (s) => s.packedInt(1, stack));
  }
}

export interface ProfilesRequestInput {
  /** the resource's attributes (the spans' resource: service, host, process, model, build) */
  resource: Attributes;
  scope: { name: string; version: string };
  sampleTypes: readonly { type: string; unit: string }[];
  /** each with one value per sample type */
  samples: readonly Sample[];
  /** the interval the samples fall in, wall clock ns */
  startNs: bigint;
  endNs: bigint;
}

/**
 * One ExportProfilesServiceRequest: a Profile per sample type over the same stacks, samples of
 * one stack and thread summed, zero values left out.
 */
export function encodeProfilesRequest(input: ProfilesRequestInput): Uint8Array {
  const dict = new Dictionary();
  // samples of one stack and thread, summed
  const merged = new Map<string, { stack: number; attributes: number[]; values: number[] }>();
  for (const s of input.samples) {
    const stack = dict.stack(s.frames);
    const attributes = s.thread
      ? [
          dict.attribute(ATTR_PROFILE_THREAD_NAME, s.thread.name),
          dict.attribute(ATTR_PROFILE_THREAD_ID, s.thread.tid),
        ]
      : [];
    const key = `${stack}:${attributes.join(",")}`;
    const m = merged.get(key);
    if (m) s.values.forEach((v, i) => (m.values[i] = (m.values[i] ?? 0) + v));
    else merged.set(key, { stack, attributes, values: [...s.values] });
  }
  const types = input.sampleTypes.map((t) => [dict.string(t.type), dict.string(t.unit)] as const);
  const w = new ProtoWriter();
  w.message(1, (rp) => {
    rp.message(1, (resource) => {
      for (const [key, value] of Object.entries(input.resource)) {
        if (value === undefined || value === null) continue;
        resource.message(1, (kv) => {
          kv.tag(1, LEN).string(key);
          kv.message(2, (v) => anyValue(v, value));
        });
      }
    });
    rp.message(2, (sp) => {
      sp.message(1, (scope) => {
        scope.tag(1, LEN).string(input.scope.name);
        scope.tag(2, LEN).string(input.scope.version);
      });
      types.forEach(([type, unit], t) => {
        sp.message(2, (p) => {
          const valueType = (field: number) =>
            p.message(field, (vt) => {
              vt.tag(1, VARINT).varint(type);
              vt.tag(2, VARINT).varint(unit);
            });
          valueType(1);
          for (const m of merged.values()) {
            const value = m.values[t] ?? 0;
            if (value === 0) continue;
            p.message(2, (sample) => {
              sample.tag(1, VARINT).varint(m.stack);
              sample.packedInt(2, m.attributes);
              sample.packedInt(4, [value]);
            });
          }
          p.tag(3, I64).fixed64(input.startNs);
          p.tag(4, VARINT).uint64Big(input.endNs - input.startNs);
          valueType(5);
          p.tag(6, VARINT).int64(1);
          p.tag(7, LEN).bytes(randomBytes(16));
        });
      });
    });
  });
  w.message(2, (d) => dict.write(d));
  return w.finish();
}
