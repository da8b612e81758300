// SPDX-License-Identifier: Apache-2.0
// Spans that could not be sent, kept on disk until the endpoint takes them: one file per batch,
// named in order, removed once the batch is delivered. Bounded in bytes: a batch that does not
// fit is refused (the caller counts it as dropped). A file is one line of JSON (its span count,
// whether it waited for a failed endpoint) and the encoded request as it is sent, resource
// included, so a spool left behind by an earlier run is re-sent as that run; files of an older
// profinfer (a resource line, then one JSON span record a line) are read too.
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
import { encodeSpanRecords, type EncodedBatch } from "./otlpEncoder.js";
import type { SpanRecord } from "./spans.js";

export interface SpooledBatch {
  file: string;
  batch: EncodedBatch;
  /** it waited for an endpoint that failed (true), or only for a slow one to catch up */
  failed: boolean;
}

/** The first line of a spool file. */
interface SpoolHeader {
  format?: "otlp-protobuf";
  spans?: number;
  failed?: boolean;
  /** older files: the resource of the records that follow */
  resource?: Attributes;
}

const FORMAT = "otlp-protobuf";

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
    /** the scope version of records spooled by an older profinfer */
    private readonly version = "",
  ) {
    mkdirSync(dir, { recursive: true });
    for (const name of readdirSync(dir).sort()) {
      const m = FILE.exec(name);
      if (!m) continue;
      const path = join(dir, name);
      const bytes = statSync(path).size;
      this.files.push({ name, bytes, spans: spansOf(readFileSync(path)) });
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
  write(batch: EncodedBatch, failed = true): boolean {
    const header: SpoolHeader = { format: FORMAT, spans: batch.spans, failed };
    const data = Buffer.concat([Buffer.from(`${JSON.stringify(header)}\n`), batch.bytes]);
    const bytes = data.length;
    if (this.bytes + bytes > this.maxBytes) return false;
    const name = `${String(this.next++).padStart(12, "0")}.spool`;
    // written under a temporary name and renamed: a crash never leaves half a batch to re-send
    const tmp = join(this.dir, `${name}.tmp`);
    writeFileSync(tmp, data);
    renameSync(tmp, join(this.dir, name));
    this.files.push({ name, bytes, spans: batch.spans });
    this.bytes += bytes;
    return true;
  }

  /** The oldest batch, or null. A file that cannot be read is removed and reported by throwing. */
  oldest(): SpooledBatch | null {
    const head = this.files[0];
    if (!head) return null;
    const path = join(this.dir, head.name);
    try {
      const data = readFileSync(path);
      const { header, body } = split(data);
      if (header.format === FORMAT)
        return {
          file: head.name,
          batch: { bytes: body, spans: header.spans ?? 0 },
          failed: header.failed ?? true,
        };
      const records = body.toString("utf8").split("\n").filter(Boolean).map(fromLine);
      const [batch] = encodeSpanRecords(records, header.resource ?? {}, this.version, Infinity);
      return {
        file: head.name,
        batch: batch ?? { bytes: new Uint8Array(0), spans: 0 },
        failed: header.failed ?? true,
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

/** A spool file's first line and what follows it. */
function split(data: Buffer): { header: SpoolHeader; body: Buffer } {
  const newline = data.indexOf(10);
  const end = newline < 0 ? data.length : newline;
  return {
    header: JSON.parse(data.toString("utf8", 0, end) || "{}") as SpoolHeader,
    body: data.subarray(Math.min(end + 1, data.length)),
  };
}

/** The spans a spool file holds (an older one's: its lines less the resource line). */
function spansOf(data: Buffer): number {
  try {
    const { header, body } = split(data);
    if (header.format === FORMAT) return header.spans ?? 0;
    return body.toString("utf8").split("\n").filter(Boolean).length;
  } catch {
    // unreadable: found out, and counted as dropped, when it is sent
    return 0;
  }
}
