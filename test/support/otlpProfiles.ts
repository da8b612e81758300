// SPDX-License-Identifier: Apache-2.0
// OTLP profiles as the collector's file exporter writes them (JSON lines of ProfilesData), read
// through their dictionary: each profile's sample type, interval, resource and samples.
import assert from "node:assert/strict";

/** OTLP JSON as the collector's file exporter writes profiles (zero values left out). */
interface JsonValue {
  stringValue?: string;
  stringValueStrindex?: number;
  intValue?: string;
}
interface JsonRequest {
  resourceProfiles: {
    resource: { attributes: { key?: string; keyStrindex?: number; value: JsonValue }[] };
    scopeProfiles: {
      scope: { name: string };
      profiles: {
        sampleType: { typeStrindex?: number; unitStrindex?: number };
        timeUnixNano: string;
        durationNano?: string;
        samples?: { stackIndex?: number; attributeIndices?: number[]; values: string[] }[];
      }[];
    }[];
  }[];
  dictionary: {
    stringTable: string[];
    functionTable: { nameStrindex?: number; filenameStrindex?: number }[];
    locationTable: { lines?: { functionIndex?: number }[] }[];
    stackTable: { locationIndices?: number[] }[];
    attributeTable: { keyStrindex?: number; value?: JsonValue }[];
  };
}

/** A profile of one request, read through its dictionary. */
export interface ReadProfile {
  type: string;
  unit: string;
  startNs: bigint;
  durationNs: bigint;
  resource: Map<string, string>;
  samples: { frames: { kind: string; name: string }[]; value: number; thread: string | null }[];
}

export function readProfiles(text: string): ReadProfile[] {
  const out: ReadProfile[] = [];
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    const request = JSON.parse(line) as JsonRequest;
    const d = request.dictionary;
    const str = (i: number | undefined) => d.stringTable[i ?? 0] ?? "";
    const valueOf = (v: JsonValue | undefined) =>
      v?.stringValue ??
      (v?.stringValueStrindex !== undefined ? str(v.stringValueStrindex) : (v?.intValue ?? ""));
    for (const rp of request.resourceProfiles) {
      const resource = new Map(
        rp.resource.attributes.map((a) => [a.key ?? str(a.keyStrindex), valueOf(a.value)]),
      );
      for (const sp of rp.scopeProfiles) {
        assert.equal(sp.scope.name, "profinfer");
        for (const p of sp.profiles) {
          out.push({
            type: str(p.sampleType.typeStrindex),
            unit: str(p.sampleType.unitStrindex),
            startNs: BigInt(p.timeUnixNano),
            durationNs: BigInt(p.durationNano ?? "0"),
            resource,
            samples: (p.samples ?? []).map((s) => {
              const stack = d.stackTable[s.stackIndex ?? 0]!.locationIndices ?? [];
              // a stack is listed leaf first
              const frames = [...stack].reverse().map((l) => {
                const fn = d.functionTable[d.locationTable[l]!.lines?.[0]?.functionIndex ?? 0]!;
                return { kind: str(fn.filenameStrindex), name: str(fn.nameStrindex) };
              });
              const thread = (s.attributeIndices ?? [])
                .map((i) => d.attributeTable[i]!)
                .find((a) => str(a.keyStrindex) === "thread.name");
              return {
                frames,
                value: Number(s.values[0]),
                thread: thread ? valueOf(thread.value) : null,
              };
            }),
          });
        }
      }
    }
  }
  return out;
}
