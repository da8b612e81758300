// SPDX-License-Identifier: Apache-2.0
// The OTLP export as a live sink of record and attach: spans of finished llama_decode calls leave
// while the target runs (live.ts builds them from the stream, exporter.ts sends and spools them);
// at the end, what is left is sent within the flush timeout.
import type { LiveSink } from "../liveSink.js";
import {
  EXPORT_DEFAULTS,
  SpanExport,
  checkEndpoint,
  formatExportStats,
  type EndpointConfig,
  type ExportStats,
} from "./exporter.js";
import { LiveSpanExport } from "./live.js";
import { OtlpSpanEncoder } from "./otlpEncoder.js";
import { resourceAttributes } from "./resource.js";
import type { OpSampling } from "./spans.js";

/**
 * The default bound on profinfer's CPU while the live export runs, in percent of one core: what
 * operator spans of every call of a fast model would pass, not the default sampling's cost
 * (docs/spans.md "Cost" has both).
 */
export const DEFAULT_OTLP_CPU_PERCENT = 5;

export interface OtlpExportConfig {
  endpoint: EndpointConfig;
  /** where spans wait while the endpoint is down */
  spoolDir: string;
  spoolMaxBytes: number;
  /** at the end, how long to wait for the endpoint to take what is left */
  flushTimeoutMs: number;
  /** which llama_decode calls get operator spans */
  opSampling: OpSampling;
  /** the most of one core profinfer may use while the live export runs (0.01: 1%; 0: no bound) */
  cpuShare?: number;
  /** a request whose sequence had no call for this long (ns) has ended */
  requestIdleNs: bigint;
  /** service.name of the spans (default: the program's name) */
  serviceName?: string;
  version: string;
  log: (message: string) => void;
}

/** The exporter that sends spans of a run to the endpoint (live, or a replay's whole run). */
export function newSpanExport(config: OtlpExportConfig): SpanExport {
  return new SpanExport(
    {
      ...config.endpoint,
      spoolDir: config.spoolDir,
      spoolMaxBytes: config.spoolMaxBytes,
      batchSpans: EXPORT_DEFAULTS.batchSpans,
      retryInitialMs: EXPORT_DEFAULTS.retryInitialMs,
      retryMaxMs: EXPORT_DEFAULTS.retryMaxMs,
      version: config.version,
      log: config.log,
    },
    {},
  );
}

export class LiveOtlpSink implements LiveSink {
  private constructor(
    private readonly config: OtlpExportConfig,
    private readonly exporter: SpanExport,
    readonly listener: LiveSpanExport,
  ) {}

  /** Opens the export; an endpoint that does not answer yet is said, and spans spool meanwhile. */
  static async start(config: OtlpExportConfig): Promise<LiveOtlpSink> {
    const exporter = newSpanExport(config);
    const problem = await checkEndpoint(config.endpoint);
    if (problem) {
      config.log(
        `the OTLP endpoint ${config.endpoint.url} does not answer: ${problem}. Is it the collector's gRPC port (4317)? ` +
          `Recording goes on; spans wait in ${exporter.spoolDir} and are sent when it answers.`,
      );
      exporter.markDown();
    }
    // spans encoded straight into the requests the exporter sends (ready before the target runs)
    const encoder = new OtlpSpanEncoder({}, config.version, EXPORT_DEFAULTS.batchSpans, (batch) =>
      exporter.addEncoded(batch),
    );
    const live = new LiveSpanExport({
      opSampling: config.opSampling,
      requestIdleNs: config.requestIdleNs,
      intervalMs: 1000,
      marginNs: 200_000_000n,
      sink: encoder,
      cpuShare: config.cpuShare ?? 0,
      backlog: () => exporter.queuedInMemory,
      runInfo: (header, notes) =>
        encoder.setResource(resourceAttributes(header, notes, config.serviceName)),
      log: config.log,
    });
    return new LiveOtlpSink(config, exporter, live);
  }

  /** What happened to the spans so far (the metrics serve it). */
  get stats(): ExportStats {
    return this.exporter.stats;
  }

  async finish(): Promise<void> {
    this.listener.finish();
    const { flushTimeoutMs, log } = this.config;
    const flushed = await this.exporter.flush(flushTimeoutMs);
    if (!flushed)
      log(`the OTLP endpoint did not take every span within ${flushTimeoutMs / 1000} s`);
    await this.exporter.close();
    log(formatExportStats(this.exporter.stats, this.exporter.spoolDir));
    const governed = this.listener.governed;
    if (governed.lowered > 0)
      log(
        `OTLP export: operator spans were sampled down to ${governed.lowest} calls at times to keep profinfer within ${((this.config.cpuShare ?? 0) * 100).toFixed(1)}% of a core (profinfer.token.op_sampling on each llama_decode span says which)`,
      );
  }

  async close(): Promise<void> {
    await this.exporter.close();
  }
}
