// SPDX-License-Identifier: Apache-2.0
// Spans that could not be sent, kept on disk until the endpoint takes them: one file per batch,
// named in order, removed once the batch is delivered. Bounded in bytes: a batch that does not
// fit is refused (the caller counts it as dropped). A file starts with a line holding the
// resource it was built with, so a spool left behind by an earlier run is re-sent as that run.
// Hand-written: OpenTelemetry JS has no persistent queue for exporters.
import type { Attributes } from "@opentelemetry/api";
import {
  mkdirSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import type { SpanRecord } from "./spans.js";

export interface SpooledBatch {
  file: string;
  resource: Attributes;
  records: SpanRecord[];
  /** it waited for an endpoint that failed (true), or only for a slow one to catch up */
  failed: boolean;
}

/** A spool file that could not be read back: its spans are lost (and counted as dropped). */
export class SpoolReadError extends Error {
  constructor(
    message: string,
    readonly spans: number,
  ) {
    super(message);
  }
}

const FILE = /^(\d{12})\.spool$/;

function toLine(record: SpanRecord): string {
  return JSON.stringify(record, (_key, value: unknown) =>
    typeof value === "bigint" ? value.toString() : value,
  );
}

function fromLine(line: string): SpanRecord {
  const r = JSON.parse(line) as SpanRecord & { startNs: string; endNs: string };
  return {
    ...r,
    startNs: BigInt(r.startNs),
    endNs: BigInt(r.endNs),
    events: r.events.map((e) => ({ ...e, timeNs: BigInt(e.timeNs as unknown as string) })),
    // spooled by a profinfer that wrote no links
    links: r.links ?? [],
  };
}

export class Spool {
  private files: { name: string; bytes: number; spans: number }[] = [];
  private next = 0;
  bytes = 0;

  constructor(
    readonly dir: string,
    readonly maxBytes: number,
  ) {
    mkdirSync(dir, { recursive: true });
    for (const name of readdirSync(dir).sort()) {
      const m = FILE.exec(name);
      if (!m) continue;
      const path = join(dir, name);
      const bytes = statSync(path).size;
      // the span count is the line count less the resource line
      const spans = readFileSync(path, "utf8").split("\n").filter(Boolean).length - 1;
      this.files.push({ name, bytes, spans: Math.max(spans, 0) });
      this.bytes += bytes;
      this.next = Math.max(this.next, Number(m[1]) + 1);
    }
  }

  /** Spans held now. */
  get spans(): number {
    return this.files.reduce((n, f) => n + f.spans, 0);
  }

  get empty(): boolean {
    return this.files.length === 0;
  }

  /** Keeps a batch; false when it does not fit in the bound (nothing is written then). */
  write(resource: Attributes, records: readonly SpanRecord[], failed = true): boolean {
    const text = [JSON.stringify({ resource, failed }), ...records.map(toLine)].join("\n") + "\n";
    const bytes = Buffer.byteLength(text);
    if (this.bytes + bytes > this.maxBytes) return false;
    const name = `${String(this.next++).padStart(12, "0")}.spool`;
    // written under a temporary name and renamed: a crash never leaves half a batch to re-send
    const tmp = join(this.dir, `${name}.tmp`);
    writeFileSync(tmp, text);
    renameSync(tmp, join(this.dir, name));
    this.files.push({ name, bytes, spans: records.length });
    this.bytes += bytes;
    return true;
  }

  /** The oldest batch, or null. A file that cannot be read is removed and reported by throwing. */
  oldest(): SpooledBatch | null {
    const head = this.files[0];
    if (!head) return null;
    const path = join(this.dir, head.name);
    try {
      const lines = readFileSync(path, "utf8").split("\n").filter(Boolean);
      const first = JSON.parse(lines[0] ?? "{}") as { resource?: Attributes; failed?: boolean };
      return {
        file: head.name,
        resource: first.resource ?? {},
        records: lines.slice(1).map(fromLine),
        failed: first.failed ?? true,
      };
    } catch (error) {
      this.remove(head.name);
      throw new SpoolReadError(
        `spool file ${path} is unreadable (${(error as Error).message}); its ${head.spans} spans are lost`,
        head.spans,
      );
    }
  }

  remove(file: string): void {
    const at = this.files.findIndex((f) => f.name === file);
    if (at < 0) return;
    this.bytes -= this.files[at]!.bytes;
    this.files.splice(at, 1);
    rmSync(join(this.dir, file), { force: true });
  }

  /** Removes the folder when nothing is left in it. */
  tidy(): void {
    if (this.files.length > 0) return;
    try {
      if (readdirSync(this.dir).length === 0) rmSync(this.dir, { recursive: true, force: true });
    } catch {
      // already gone
    }
  }
}
