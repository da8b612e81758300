// SPDX-License-Identifier: Apache-2.0
// Sending spans over OTLP gRPC without losing any: OpenTelemetry's gRPC export (the transport of
// its OTLPTraceExporter) does one attempt per export and drops the batch when it fails.
// SpanExport sends one batch at a time; a batch that fails goes to the disk spool, and while the
// endpoint is down every new batch goes there too; the spool is re-sent, oldest first, with
// backoff, and a batch leaves the spool only once the endpoint has accepted it. Nothing here
// blocks the caller: add() only queues. Batches come encoded (otlpEncoder.ts: the live export
// writes them straight from the trace model), so OpenTelemetry's transport is given the request's
// bytes as they are.
import type { Attributes } from "@opentelemetry/api";
import { Metadata } from "@grpc/grpc-js";
import { ExportResultCode } from "@opentelemetry/core";
import { OTLPExporterBase } from "@opentelemetry/otlp-exporter-base";
import {
  convertLegacyOtlpGrpcOptions,
  createOtlpGrpcExportDelegate,
} from "@opentelemetry/otlp-grpc-exporter-base";
import {
  ProtobufTraceSerializer,
  type IExportTraceServiceResponse,
  type ISerializer,
} from "@opentelemetry/otlp-transformer";
import { encodeSpanRecords, type EncodedBatch } from "./otlpEncoder.js";
import type { SpanRecord } from "./spans.js";
import { Spool, SpoolReadError } from "./spool.js";

/** What happened to the spans of a run; read by the end-of-run report (and by metrics). */
export interface ExportStats {
  /** spans delivered on their first attempt */
  sent: number;
  /** spans delivered from the spool after an outage (a failed attempt, or held while it lasted) */
  resent: number;
  /** spans waiting in the spool now */
  queued: number;
  /** spans written to the spool so far */
  spooled: number;
  /** spans lost: the spool was full (or a spool file was unreadable) */
  dropped: number;
  /** export attempts that failed */
  failedAttempts: number;
  /** the last attempt succeeded (true before the first) */
  connected: boolean;
}

export interface EndpointConfig {
  /** http://host:port (plain) or https://host:port (TLS) */
  url: string;
  /** gRPC metadata sent with every export (authentication) */
  headers: Record<string, string>;
  /** per export attempt */
  timeoutMs: number;
}

export interface SpanExportOptions extends EndpointConfig {
  spoolDir: string;
  spoolMaxBytes: number;
  /** spans per export request */
  batchSpans: number;
  /** first retry delay after a failure; doubles up to retryMaxMs */
  retryInitialMs: number;
  retryMaxMs: number;
  version: string;
  log: (message: string) => void;
}

export { EXPORT_DEFAULTS } from "./defaults.js";

function metadataOf(headers: Record<string, string>): Metadata {
  const metadata = new Metadata();
  for (const [key, value] of Object.entries(headers)) metadata.set(key, value);
  return metadata;
}

/** The request is already encoded: its bytes go as they are; the answer is read as OTLP's. */
const encodedSerializer: ISerializer<EncodedBatch, IExportTraceServiceResponse> = {
  serializeRequest: (batch) => batch.bytes,
  deserializeResponse: (data) => ProtobufTraceSerializer.deserializeResponse(data),
};

type TraceExporter = OTLPExporterBase<EncodedBatch>;

/** OpenTelemetry's OTLP gRPC trace export (its transport, timeouts, retries within an export). */
function newExporter(config: EndpointConfig): TraceExporter {
  return new OTLPExporterBase(
    createOtlpGrpcExportDelegate(
      convertLegacyOtlpGrpcOptions(
        {
          url: config.url,
          metadata: metadataOf(config.headers),
          timeoutMillis: config.timeoutMs,
        },
        "TRACES",
      ),
      encodedSerializer,
      // the component type and item count of OpenTelemetry's own exporter metrics
      "otlp_grpc_span_exporter",
      { name: "span", countItems: (batch) => batch.spans },
      undefined,
      "TraceExportService",
      "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    ),
  );
}

function exportOnce(exporter: TraceExporter, batch: EncodedBatch): Promise<Error | null> {
  return new Promise((resolve) => {
    exporter.export(batch, (result) =>
      resolve(
        result.code === ExportResultCode.SUCCESS
          ? null
          : (result.error ?? new Error("export failed")),
      ),
    );
  });
}

/** Why an export failed, in a user's words. */
export function describeExportError(error: Error): string {
  const code = (error as { code?: number }).code;
  const message = error.message.replace(/^\d+ [A-Z_]+: /, "");
  if (code === 14) return `unavailable (${message})`;
  if (code === 4) return "no answer before the timeout";
  if (code === 16) return `the endpoint refused the credentials (${message})`;
  if (code === 12) return `not an OTLP trace endpoint (${message})`;
  return message;
}

/**
 * Sends an empty export request: the endpoint answers (null) or the reason it does not. A wrong
 * port, a host that does not resolve, an HTTP (not gRPC) port, a TLS mismatch are told apart.
 */
export async function checkEndpoint(config: EndpointConfig): Promise<string | null> {
  const exporter = newExporter(config);
  try {
    const error = await exportOnce(exporter, { bytes: new Uint8Array(0), spans: 0 });
    return error ? describeExportError(error) : null;
  } finally {
    await exporter.shutdown();
  }
}

export class SpanExport {
  readonly stats: ExportStats = {
    sent: 0,
    resent: 0,
    queued: 0,
    spooled: 0,
    dropped: 0,
    failedAttempts: 0,
    connected: true,
  };
  private exporter: TraceExporter;
  private readonly spool: Spool;
  private memory: EncodedBatch[] = [];
  private memorySpans = 0;
  private pumping = false;
  private retryAt = 0;
  private backoffMs: number;
  private timer: NodeJS.Timeout | null = null;
  private idle: (() => void)[] = [];
  private warnedFull = false;
  /** spool files whose sending failed at least once (they count as re-sent when delivered) */
  private readonly failedFiles = new Set<string>();
  private closed = false;

  constructor(
    private readonly options: SpanExportOptions,
    private resourceAttributes: Attributes,
  ) {
    this.exporter = newExporter(options);
    this.spool = new Spool(options.spoolDir, options.spoolMaxBytes, options.version);
    this.backoffMs = options.retryInitialMs;
    this.stats.queued = this.spool.spans;
    if (!this.spool.empty) {
      options.log(
        `${this.stats.queued} spans left in the spool ${options.spoolDir} by an earlier run will be re-sent`,
      );
      this.schedule(0);
    }
  }

  /** The endpoint did not answer at start: spool from the first span, retry with backoff. */
  markDown(): void {
    this.stats.connected = false;
    this.retryAt = Date.now() + this.backoffMs;
  }

  /** The resource of span records added from now on (add(); encoded batches carry their own). */
  setResource(attributes: Attributes): void {
    this.resourceAttributes = attributes;
  }

  get spoolDir(): string {
    return this.options.spoolDir;
  }

  /** Queues span records for export, under the resource set last; returns at once. */
  add(records: readonly SpanRecord[]): void {
    if (records.length === 0) return;
    const { version, batchSpans } = this.options;
    for (const batch of encodeSpanRecords(records, this.resourceAttributes, version, batchSpans))
      this.addEncoded(batch);
  }

  /** Queues an encoded request for export; returns at once. */
  addEncoded(batch: EncodedBatch): void {
    if (batch.spans === 0) return;
    this.memory.push(batch);
    this.memorySpans += batch.spans;
    // while the endpoint is down, or when sending falls behind, batches wait on disk, not in memory
    if (!this.stats.connected || this.memorySpans > 8 * this.options.batchSpans) this.spoolMemory();
    this.schedule(0);
  }

  /** Spans queued in memory, not yet sent (the live export's back-pressure signal). */
  get queuedInMemory(): number {
    return this.memorySpans;
  }

  private spoolMemory(): void {
    for (const part of this.memory) this.toSpool(part);
    this.memory = [];
    this.memorySpans = 0;
  }

  private toSpool(batch: EncodedBatch): void {
    // held while the endpoint is down: they count as re-sent; held behind a slow one: as sent
    if (this.spool.write(batch, !this.stats.connected)) {
      this.stats.spooled += batch.spans;
      this.stats.queued += batch.spans;
      return;
    }
    this.stats.dropped += batch.spans;
    if (!this.warnedFull) {
      this.warnedFull = true;
      this.options.log(
        `the OTLP spool ${this.options.spoolDir} is full (${this.options.spoolMaxBytes} bytes): spans beyond it are dropped and counted; raise --otlp-spool-max`,
      );
    }
  }

  private schedule(delayMs: number): void {
    if (this.closed || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.pump();
    }, delayMs);
    // the export must not keep profinfer alive on its own; flush() waits when it matters
    this.timer.unref();
  }

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (!this.closed) {
        const wait = this.retryAt - Date.now();
        if (!this.stats.connected && wait > 0) {
          this.schedule(wait);
          return;
        }
        let spooled;
        try {
          spooled = this.spool.oldest();
        } catch (error) {
          if (error instanceof SpoolReadError) {
            this.stats.dropped += error.spans;
            this.stats.queued -= error.spans;
            this.options.log(error.message);
            continue;
          }
          throw error;
        }
        let batch: EncodedBatch;
        if (spooled) batch = spooled.batch;
        else {
          // taken out of the queue while in flight: add() may move the queue to the spool meanwhile
          const next = this.memory.shift();
          if (!next) break;
          batch = next;
          this.memorySpans -= batch.spans;
        }
        const error = await exportOnce(this.exporter, batch);
        if (!error) {
          if (spooled) {
            this.spool.remove(spooled.file);
            if (spooled.failed || this.failedFiles.delete(spooled.file))
              this.stats.resent += batch.spans;
            else this.stats.sent += batch.spans;
            this.stats.queued -= batch.spans;
          } else this.stats.sent += batch.spans;
          if (!this.stats.connected) {
            this.options.log(
              `OTLP endpoint ${this.options.url} is back: re-sending ${this.stats.queued + batch.spans} spooled spans`,
            );
          }
          this.stats.connected = true;
          this.backoffMs = this.options.retryInitialMs;
          continue;
        }
        this.stats.failedAttempts++;
        if (this.stats.connected) {
          this.options.log(
            `OTLP export to ${this.options.url} failed: ${describeExportError(error)}; spans are kept in ${this.options.spoolDir} and re-sent when it answers`,
          );
        }
        this.stats.connected = false;
        if (spooled) this.failedFiles.add(spooled.file);
        else this.toSpool(batch);
        this.spoolMemory();
        this.retryAt = Date.now() + this.backoffMs;
        this.backoffMs = Math.min(this.backoffMs * 2, this.options.retryMaxMs);
        // a fresh channel: gRPC's own reconnect backoff grows to minutes and would delay recovery
        const old = this.exporter;
        this.exporter = newExporter(this.options);
        void old.shutdown();
      }
    } finally {
      this.pumping = false;
      if (this.memory.length === 0 && this.spool.empty) {
        for (const done of this.idle.splice(0)) done();
      }
    }
  }

  /** Nothing is waiting: every span queued so far was delivered (or dropped). */
  get drained(): boolean {
    return this.memory.length === 0 && this.spool.empty && !this.pumping;
  }

  /**
   * Waits until everything queued is delivered, at most `timeoutMs`; true when it was. What is
   * left stays in the spool folder (re-sent by the next run that uses it).
   */
  async flush(timeoutMs: number): Promise<boolean> {
    if (this.drained) return true;
    const done = new Promise<boolean>((resolve) => this.idle.push(() => resolve(true)));
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    // retry at once rather than after the current backoff
    this.retryAt = 0;
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    void this.pump();
    const flushed = await Promise.race([done, timeout]);
    clearTimeout(timer);
    return flushed;
  }

  /** Stops sending; spans not delivered by now stay in the spool. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.spoolMemory();
    await this.exporter.shutdown();
    this.spool.tidy();
  }
}

/** One line for the end of a run. */
export function formatExportStats(stats: ExportStats, spoolDir: string | null): string {
  const parts = [
    `${stats.sent} spans sent`,
    `${stats.resent} re-sent from the spool`,
    `${stats.queued} queued`,
    `${stats.dropped} dropped`,
  ];
  let line = `OTLP export: ${parts.join(", ")}`;
  if (stats.queued > 0 && spoolDir)
    line += ` (kept in ${spoolDir}: a later run with the same --otlp-spool re-sends them, or 'profinfer replay RUN_DIR --otlp-endpoint URL' sends the whole run)`;
  return line;
}
