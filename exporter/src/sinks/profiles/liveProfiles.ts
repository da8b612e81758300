// SPDX-License-Identifier: Apache-2.0
// Profiles of operator time while record/attach runs, one per interval (default 10 s), sent as
// OTLP profiles: the finished llama_decode calls of each chunk (liveChunks.ts) become the stacks
// pprof.ts makes of a whole run (phase > layer > op > tensor, the thread as an attribute), and each
// interval's stacks leave as one request with the spans' resource (service, instance, host,
// process, model). The collector must accept profiles: the OpenTelemetry Collector from 0.112 with
// --feature-gates=service.profilesSupport (docs/profiles.md).
import type { Attributes } from "@opentelemetry/api";
import { Client, Metadata, credentials, type ServiceError } from "@grpc/grpc-js";
import { SCOPE_NAME } from "@profinfer/contract";
import { toWallClockNs } from "../../trace/clock.js";
import { clockFrom } from "../../trace/clock.js";
import type { RunHeader } from "../../trace/header.js";
import type { RunNote } from "../../trace/notes.js";
import type { Run, RunClock } from "../../trace/types.js";
import { LiveChunks } from "../liveChunks.js";
import type { LiveSink } from "../liveSink.js";
import type { EndpointConfig } from "../otel/exporter.js";
import { describeExportError } from "../otel/exporter.js";
import { resourceAttributes } from "../otel/resource.js";
import { SampleSet, collectSamples, profileSampleTypes } from "../pprof.js";
import { PROFILES_EXPORT_METHOD, encodeProfilesRequest } from "./otlpProfiles.js";

/** Requests kept while the endpoint is down; older ones are dropped (and counted) beyond it. */
const MAX_WAITING = 32;

export interface ProfilesExportConfig {
  endpoint: EndpointConfig;
  /** the span of each profile */
  intervalMs: number;
  /** service.name (default: the program's name, as the spans') */
  serviceName?: string;
  version: string;
  log: (message: string) => void;
}

/** What happened to the profiles of a run. */
export interface ProfilesExportStats {
  /** profiles requests the endpoint accepted (one per interval with calls in it) */
  sent: number;
  /** waiting to be re-sent */
  waiting: number;
  /** lost: more intervals waited than are kept */
  dropped: number;
  failedAttempts: number;
}

/** Sends ExportProfilesServiceRequests, one at a time, keeping the last MAX_WAITING that failed. */
class ProfilesSender {
  readonly stats: ProfilesExportStats = { sent: 0, waiting: 0, dropped: 0, failedAttempts: 0 };
  private readonly client: Client;
  private readonly metadata = new Metadata();
  private queue: Uint8Array[] = [];
  private sending: Promise<void> | null = null;
  private lastError: string | null = null;

  constructor(
    private readonly endpoint: EndpointConfig,
    private readonly log: (message: string) => void,
  ) {
    const url = new URL(endpoint.url);
    this.client = new Client(
      url.host,
      url.protocol === "https:" ? credentials.createSsl() : credentials.createInsecure(),
    );
    for (const [key, value] of Object.entries(endpoint.headers)) this.metadata.set(key, value);
  }

  add(request: Uint8Array): void {
    this.queue.push(request);
    if (this.queue.length > MAX_WAITING) {
      this.queue.shift();
      this.stats.dropped++;
    }
    this.stats.waiting = this.queue.length;
    this.sending ??= this.drain().finally(() => (this.sending = null));
  }

  /** Sends what waits, oldest first; stops at the first failure (the next add tries again). */
  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const error = await this.exportOnce(this.queue[0]!);
      if (error) {
        this.stats.failedAttempts++;
        const why = describeExportError(error);
        if (why !== this.lastError) {
          this.log(
            `the OTLP profiles endpoint ${this.endpoint.url} did not take a profile: ${why}; ` +
              `the last ${MAX_WAITING} intervals wait and are sent with the next one`,
          );
          this.lastError = why;
        }
        return;
      }
      this.lastError = null;
      this.queue.shift();
      this.stats.sent++;
      this.stats.waiting = this.queue.length;
    }
  }

  private exportOnce(request: Uint8Array): Promise<ServiceError | null> {
    return new Promise((resolve) => {
      this.client.makeUnaryRequest(
        PROFILES_EXPORT_METHOD,
        (body: Uint8Array) => Buffer.from(body),
        (response: Buffer) => response,
        request,
        this.metadata,
        { deadline: Date.now() + this.endpoint.timeoutMs },
        (error) => resolve(error ?? null),
      );
    });
  }

  /** Sends what waits, for at most `timeoutMs`; whether everything went. */
  async flush(timeoutMs: number): Promise<boolean> {
    const until = Date.now() + timeoutMs;
    while (this.queue.length > 0 && Date.now() < until) {
      await (this.sending ??= this.drain().finally(() => (this.sending = null)));
      if (this.queue.length > 0) await new Promise((r) => setTimeout(r, 250));
    }
    return this.queue.length === 0;
  }

  close(): void {
    this.client.close();
  }
}

/** Cuts the live trace into intervals and hands each interval's profiles request to `send`. */
export class LiveProfileExport {
  readonly chunks: LiveChunks;
  private header: RunHeader | null = null;
  private clock: RunClock | null = null;
  private notes: RunNote[] = [];
  private readonly samples = new SampleSet();
  private sampleTypes: { type: string; unit: string }[] = [];
  /** the interval being filled: CLOCK_MONOTONIC ns from its start, and the latest call end in it */
  private fromNs: bigint | null = null;
  private toNs = 0n;
  /** profiles handed over, one per interval that had calls */
  intervals = 0;

  constructor(
    private readonly config: Omit<ProfilesExportConfig, "endpoint">,
    private readonly send: (request: Uint8Array) => void,
  ) {
    this.chunks = new LiveChunks(
      {
        intervalMs: Math.min(1000, config.intervalMs),
        marginNs: 200_000_000n,
        log: config.log,
        what: "live OTLP profiles export",
        fallback: "profile.pb.gz is still written at the end",
      },
      {
        header: (header) => {
          this.header = header;
          this.clock = clockFrom(header);
        },
        note: (note) => {
          if (note.kind === "model") this.notes.push(note);
        },
        chunk: (run) => this.take(run),
        finish: () => this.flush(),
      },
    );
  }

  private take(run: Run | null): void {
    if (!run || run.tokens.length === 0) return;
    this.sampleTypes = profileSampleTypes(run);
    this.samples.add(collectSamples(run));
    // from the chunk's calls: its firstNs may be older, the kept graph descriptions come with it
    let first = run.tokens[0]!.startNs;
    let last = run.tokens[0]!.endNs;
    for (const t of run.tokens) {
      if (t.startNs < first) first = t.startNs;
      if (t.endNs > last) last = t.endNs;
    }
    this.fromNs ??= first;
    if (last > this.toNs) this.toNs = last;
    if (this.toNs - this.fromNs >= BigInt(this.config.intervalMs) * 1_000_000n) this.flush();
  }

  /** The interval so far as one request. */
  private flush(): void {
    if (!this.header || !this.clock || this.fromNs === null || this.samples.size === 0) return;
    const resource: Attributes = resourceAttributes(
      this.header,
      this.notes,
      this.config.serviceName,
    );
    this.send(
      encodeProfilesRequest({
        resource,
        scope: { name: SCOPE_NAME, version: this.config.version },
        sampleTypes: this.sampleTypes,
        samples: this.samples.list(),
        startNs: toWallClockNs(this.clock, this.fromNs),
        endNs: toWallClockNs(this.clock, this.toNs),
      }),
    );
    this.intervals++;
    this.samples.clear();
    this.fromNs = null;
  }
}

/** The live profiles export as a live sink of record and attach. */
export class LiveProfilesSink implements LiveSink {
  private constructor(
    private readonly sender: ProfilesSender,
    private readonly live: LiveProfileExport,
    private readonly config: ProfilesExportConfig,
  ) {}

  get listener() {
    return this.live.chunks;
  }

  get stats(): ProfilesExportStats {
    return this.sender.stats;
  }

  static start(config: ProfilesExportConfig): LiveProfilesSink {
    const sender = new ProfilesSender(config.endpoint, config.log);
    const live = new LiveProfileExport(config, (request) => sender.add(request));
    return new LiveProfilesSink(sender, live, config);
  }

  async finish(): Promise<void> {
    this.live.chunks.finish();
    const flushed = await this.sender.flush(this.config.endpoint.timeoutMs * 2);
    const s = this.sender.stats;
    this.config.log(
      `OTLP profiles: ${s.sent} of ${this.live.intervals} intervals sent to ${this.config.endpoint.url}` +
        (s.dropped > 0 ? `, ${s.dropped} dropped while it was down` : "") +
        (flushed ? "" : `, ${s.waiting} not taken before the end`),
    );
    this.sender.close();
  }

  async close(): Promise<void> {
    this.sender.close();
  }
}
