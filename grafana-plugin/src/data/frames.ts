// SPDX-License-Identifier: Apache-2.0
// Reading DataFrames without @grafana/data at run time: the same functions run inside Grafana
// (where frames are @grafana/data DataFrames) and in the offline report (where they are the same
// shape, written as JSON by the exporter). Only the types come from @grafana/data.
import type { DataFrame, Field } from "@grafana/data";
import { MissingFieldError } from "./errors.js";

/** The subset of Field the converters read; a @grafana/data Field is one. */
export interface FieldLike {
  name: string;
  values: Field["values"] | unknown[];
  type?: Field["type"] | string;
  labels?: Field["labels"];
  config?: { displayName?: string; unit?: string };
}

/** The subset of DataFrame the converters read; a @grafana/data DataFrame is one. */
export interface FrameLike {
  fields: FieldLike[];
  length?: number;
  name?: string;
  refId?: string;
  meta?: Pick<NonNullable<DataFrame["meta"]>, "preferredVisualisationType">;
}

export function fieldValues(field: FieldLike): unknown[] {
  const v = field.values as unknown;
  if (Array.isArray(v)) return v;
  // Grafana before 10 wrapped values in a Vector
  if (v && typeof (v as { toArray?: () => unknown[] }).toArray === "function")
    return (v as { toArray: () => unknown[] }).toArray();
  return [];
}

export function findField(frame: FrameLike, name: string): FieldLike | undefined {
  return frame.fields.find((f) => f.name === name);
}

export function requireField(
  frame: FrameLike,
  name: string,
  frameKind: string,
  hint: string,
): FieldLike {
  const field = findField(frame, name);
  if (!field) throw new MissingFieldError(name, frameKind, hint);
  return field;
}

export function frameLength(frame: FrameLike): number {
  if (typeof frame.length === "number") return frame.length;
  return frame.fields.reduce((n, f) => Math.max(n, fieldValues(f).length), 0);
}

/** A number from a value that may be a number, a numeric string or a bigint. */
export function toNumber(value: unknown): number | null {
  if (typeof value === "number") return Number.isFinite(value) ? value : null;
  if (typeof value === "bigint") return Number(value);
  if (typeof value === "string" && value.trim() !== "") {
    const n = Number(value);
    return Number.isFinite(n) ? n : null;
  }
  return null;
}

/**
 * An array attribute: Grafana's Tempo data source turns OTLP array values into their JSON text
 * ("[1,2,3]", pcommon.Value.AsString); the exporter's own frames keep arrays. Both are read.
 */
export function toArray(value: unknown): unknown[] | null {
  if (Array.isArray(value)) return value;
  if (typeof value === "string") {
    const s = value.trim();
    if (s.startsWith("[")) {
      try {
        const parsed: unknown = JSON.parse(s);
        return Array.isArray(parsed) ? parsed : null;
      } catch {
        return null;
      }
    }
  }
  return null;
}

export function toNumberArray(value: unknown): number[] | null {
  const a = toArray(value);
  if (!a) return null;
  const out: number[] = [];
  for (const v of a) {
    const n = toNumber(v);
    if (n === null) return null;
    out.push(n);
  }
  return out;
}

export function toStringArray(value: unknown): string[] | null {
  const a = toArray(value);
  return a ? a.map((v) => String(v)) : null;
}

/** A JSON value that may arrive parsed (objects) or as its text (json.RawMessage). */
export function parseJsonValue(value: unknown): unknown {
  if (typeof value === "string") {
    const s = value.trim();
    if (s === "" || s === "null") return null;
    if (s.startsWith("[") || s.startsWith("{")) {
      try {
        return JSON.parse(s) as unknown;
      } catch {
        return null;
      }
    }
  }
  return value;
}
