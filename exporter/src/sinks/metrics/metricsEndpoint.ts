// SPDX-License-Identifier: Apache-2.0
// The Prometheus endpoint as a live sink of record and attach: it serves from before the target
// runs until after it is gone (for a last scrape, --metrics-linger), every value read at scrape
// time from the recording (profinferMetrics.ts).
import { registerBackendMetrics } from "./backendMetrics.js";
import { Registry } from "prom-client";
import type { LiveRecording, LiveSink } from "../liveSink.js";
import { ProfinferMetrics, type SpanExportCounts } from "./profinferMetrics.js";
import { startMetricsServer, type MetricsAddress, type MetricsServer } from "./server.js";

export interface MetricsEndpointConfig {
  addr: MetricsAddress;
  /** the `model` label */
  model: string;
  /** also operator time per layer, and MoE expert selections */
  layers: boolean;
  moe: boolean;
  /** a request whose sequence had no call for this long has ended (--request-idle) */
  requestIdleNs: bigint;
  /** how long to keep serving the final values after the target is gone */
  lingerMs: number;
  /** upper bounds (ns) of the in-kernel histograms' buckets */
  boundsNs: readonly number[];
  log: (message: string) => void;
}

export class MetricsEndpointSink implements LiveSink {
  private readonly registry = new Registry();
  private server: MetricsServer | null = null;
  private metrics: ProfinferMetrics | null = null;
  private spanCounts: (() => SpanExportCounts) | null = null;
  private requestPoll: NodeJS.Timeout | null = null;

  private constructor(private readonly config: MetricsEndpointConfig) {}

  /** Starts serving /metrics; a port in use or a bad host is a UserError. */
  static async open(config: MetricsEndpointConfig): Promise<MetricsEndpointSink> {
    const sink = new MetricsEndpointSink(config);
    sink.server = await startMetricsServer(sink.registry, config.addr);
    const { host, port } = sink.server.address;
    config.log(`metrics at http://${host}:${port}/metrics`);
    return sink;
  }

  /** Serve the OTLP span exporter's counts (sent, re-sent, queued, dropped) too. */
  followSpanExport(counts: () => SpanExportCounts): void {
    this.spanCounts = counts;
    this.metrics?.followSpanExport(counts);
  }

  start(recording: LiveRecording): void {
    this.metrics = new ProfinferMetrics(this.registry, recording, {
      model: this.config.model,
      boundsNs: this.config.boundsNs,
      layers: this.config.layers,
      moe: this.config.moe,
      requestIdleNs: this.config.requestIdleNs,
    });
    registerBackendMetrics(
      this.registry,
      recording,
      this.config.model,
      (a) => recording.backendName?.(BigInt(a.deviceGetName)) ?? "unknown",
    );
    if (this.spanCounts) this.metrics.followSpanExport(this.spanCounts);
    // between scrapes too: the kernel's queue of ended requests is bounded
    const metrics = this.metrics;
    this.requestPoll = setInterval(() => metrics.pollRequests(), 2000);
    this.requestPoll.unref();
  }

  async finish(): Promise<void> {
    this.stopPolling();
    // the requests that ended with the recording, for the scrapes that come now
    this.metrics?.pollRequests();
    if (this.config.lingerMs > 0) {
      this.config.log(`serving the final metrics for ${this.config.lingerMs / 1000} s more`);
      await new Promise((r) => setTimeout(r, this.config.lingerMs));
    }
    await this.close();
  }

  private stopPolling(): void {
    if (this.requestPoll) clearInterval(this.requestPoll);
    this.requestPoll = null;
  }

  async close(): Promise<void> {
    this.stopPolling();
    await this.server?.close();
    this.server = null;
  }
}
