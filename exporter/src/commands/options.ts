// SPDX-License-Identifier: Apache-2.0
// The options of record, attach and replay (docs/cli.md), their parsers, and the one config
// object a session is run from. Bad input fails here, before any target starts.
import { Command, InvalidArgumentError, Option } from "commander";
import { existsSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { MAX_BATCH_TOKENS } from "../abi/constants.js";
import { parseSize as sizeInBytes } from "../agent/config.js";
import { UserError } from "../errors.js";
import { log } from "./log.js";
import { resolveCounters } from "../record/counters.js";
import type { OpTiming } from "../record/options.js";
import type { SessionConfig } from "../session/session.js";
import { DEFAULT_METRICS_ADDR, parseMetricsAddr } from "../sinks/metrics/server.js";
import { EXPORT_DEFAULTS, type EndpointConfig } from "../sinks/otel/exporter.js";
import { DEFAULT_OTLP_CPU_PERCENT, type OtlpExportConfig } from "../sinks/otel/liveOtlp.js";
import { collectHeader, endpointConfig, endpointFrom, timeoutFrom } from "../sinks/otel/options.js";
import { resourceIdentity } from "../sinks/otel/resource.js";
import {
  DEFAULT_OP_SAMPLING,
  formatOpSampling,
  parseOpSampling,
  type OpSampling,
} from "../sinks/otel/spans.js";
import { buildRun } from "../trace/buildRun.js";
import type { RecordLevel, RunHeader } from "../trace/header.js";
import { RawFileReader, readRawFile } from "../trace/rawFile.js";
import {
  JSON_TIMELINE_MAX_RAW_BYTES,
  TIMELINE_FORMATS,
  type TimelineFormat,
} from "../sinks/runOutputs.js";
import type { Run } from "../trace/types.js";
import { modelName } from "../trace/modelName.js";
import { modelsOfCommand, modelsOfProcess } from "../discovery/modelFile.js";
import { REQUEST_IDLE_NS } from "../trace/requests.js";
import { VERSION } from "../version.js";
import type { ProfilesExportConfig } from "../sinks/profiles/liveProfiles.js";

export interface OtlpOptions {
  otlpEndpoint?: string;
  otlpHeader?: Record<string, string>;
  serviceName?: string;
  otlpOpSample: OpSampling;
  /** seconds */
  requestIdle: number;
  otlpSpool?: string;
  otlpSpoolMax: number;
  otlpTimeout?: number;
  otlpFlushTimeout: number;
}

export interface CommonOptions extends OtlpOptions {
  /** percent of one core */
  otlpCpu: number;
  /** bytes */
  rotateSize?: number;
  /** seconds */
  rotateTime?: number;
  /** bytes */
  maxDisk?: number;
  out?: string;
  level: RecordLevel;
  ops?: string;
  sampleTokens: number;
  window?: [number, number];
  moe: boolean;
  ringBuffer: number;
  batchTokens: number;
  status: boolean;
  toggleOpProbes?: number;
  probeAllOps?: boolean;
  opTiming: OpTiming;
  pmc?: string;
  metricsAddr?: string;
  metricsLinger: number;
  model?: string;
  metricsLayers?: boolean;
  metricsMoe?: boolean;
  report: boolean;
  timeline: TimelineFormat;
  profilesEndpoint?: string;
  /** seconds */
  profilesInterval: number;
}

/** profinfer's own messages on stderr (log.ts). */
export { log };

export function positiveInt(what: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || n < 1)
      throw new InvalidArgumentError(`${what} is a positive integer.`);
    return n;
  };
}

function nonNegativeNumber(what: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+(\.\d+)?$/.test(value))
      throw new InvalidArgumentError(`${what} is a number of seconds.`);
    return n;
  };
}

function parseWindow(value: string): [number, number] {
  const m = /^(\d+)(?:-(\d+))?$/.exec(value);
  if (!m)
    throw new InvalidArgumentError(
      "a window is FIRST-LAST (llama_decode calls, from 1), e.g. 10-20.",
    );
  const first = Number(m[1]);
  const last = m[2] ? Number(m[2]) : first;
  if (first < 1 || last < first)
    throw new InvalidArgumentError("a window is FIRST-LAST with 1 <= FIRST <= LAST.");
  return [first, last];
}

function parseSize(value: string): number {
  const bytes = sizeInBytes(value);
  if (bytes === null) throw new InvalidArgumentError("a size such as 64M or 256M.");
  return bytes;
}

/** A size as parseSize reads it back, in the largest unit that divides it. */
function formatSize(bytes: number): string {
  for (const [unit, n] of [
    ["G", 1 << 30],
    ["M", 1 << 20],
    ["K", 1 << 10],
  ] as const)
    if (bytes >= n && bytes % n === 0) return `${bytes / n}${unit}`;
  return String(bytes);
}

const RING_BUFFER_BYTES = 64 << 20;

function positiveSeconds(what: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+(\.\d+)?$/.test(value) || n <= 0)
      throw new InvalidArgumentError(`${what} is a number of seconds above 0.`);
    return n;
  };
}

function opSample(value: string): OpSampling {
  try {
    return parseOpSampling(value);
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
}

function header(value: string, previous?: Record<string, string>): Record<string, string> {
  try {
    return collectHeader(value, previous);
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
}

/** The OTLP options, shared by record, attach and replay (docs/cli.md "OpenTelemetry export"). */
export function addOtlpOptions(command: Command): Command {
  return command
    .option(
      "--otlp-endpoint <url>",
      "send spans over OTLP gRPC to this endpoint, http://HOST:PORT or https://HOST:PORT (TLS); default: $OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, $OTEL_EXPORTER_OTLP_ENDPOINT",
    )
    .option(
      "--otlp-header <key=value>",
      "gRPC metadata sent with every export (repeatable)",
      header,
    )
    .option(
      "--service-name <name>",
      "service.name of the spans (default: $OTEL_SERVICE_NAME, service.name in $OTEL_RESOURCE_ATTRIBUTES, else the program's name)",
    )
    .addOption(
      new Option(
        "--otlp-op-sample <spec>",
        "llama_decode calls that get operator spans: all, none, every:N (seq a multiple of N, and those with prompt tokens), first:K (among a request's first K steps)",
      )
        .argParser(opSample)
        .default(DEFAULT_OP_SAMPLING, formatOpSampling(DEFAULT_OP_SAMPLING)),
    )
    .option(
      "--request-idle <seconds>",
      "a request whose sequence had no llama_decode call for this long has ended: its root span is sent, the per-request metrics observe it",
      positiveSeconds("--request-idle"),
      Number(REQUEST_IDLE_NS) / 1e9,
    )
    .option(
      "--otlp-spool <dir>",
      "where spans wait while the endpoint is down (default: RUN_DIR/otlp-spool)",
    )
    .addOption(
      new Option(
        "--otlp-spool-max <size>",
        "the spool's bound; spans beyond it are dropped and counted",
      )
        .argParser(parseSize)
        .default(EXPORT_DEFAULTS.spoolMaxBytes, formatSize(EXPORT_DEFAULTS.spoolMaxBytes)),
    )
    .option(
      "--otlp-timeout <seconds>",
      `timeout of one export request (default: $OTEL_EXPORTER_OTLP_TRACES_TIMEOUT, $OTEL_EXPORTER_OTLP_TIMEOUT in ms, else ${EXPORT_DEFAULTS.timeoutMs / 1000})`,
      positiveSeconds("--otlp-timeout"),
    )
    .option(
      "--otlp-flush-timeout <seconds>",
      "at the end, how long to wait for the endpoint to take what is left",
      positiveSeconds("--otlp-flush-timeout"),
      30,
    );
}

export function addCommonOptions(command: Command): Command {
  return addOtlpOptions(command)
    .option(
      "--otlp-cpu <percent>",
      "the most of one core profinfer may use while the live OTLP export runs; above it, or when the export falls behind, fewer calls get operator spans (each llama_decode span says which sampling applied); 0: no bound",
      nonNegativeNumber("--otlp-cpu"),
      DEFAULT_OTLP_CPU_PERCENT,
    )
    .option(
      "--profiles-endpoint <url>",
      "send operator-time profiles over OTLP gRPC (profiles signal) to this endpoint every --profiles-interval, http://HOST:PORT or https://HOST:PORT; default: $OTEL_EXPORTER_OTLP_PROFILES_ENDPOINT",
    )
    .option(
      "--profiles-interval <seconds>",
      "the span of each profile sent to --profiles-endpoint",
      positiveSeconds("--profiles-interval"),
      10,
    )
    .option("--out <dir>", "run folder (default: ./profinfer-runs/<name>-<time>)")
    .addOption(
      new Option(
        "--level <level>",
        "what to record (metrics: operator-level aggregates in the kernel, served to Prometheus, no event stream)",
      )
        .choices(["token", "graph", "op", "metrics"])
        .default("op"),
    )
    .option(
      "--pmc <list>",
      "perf counters read at every operator boundary: perf event names (cycles,instructions,task-clock,cpu/event=0x3c/,r003c,...), 'backend-stall' (this CPU's backend-stall events) or 'auto'",
    )
    .option(
      "--metrics-addr <host:port>",
      `serve Prometheus metrics at http://HOST:PORT/metrics while recording (default ${DEFAULT_METRICS_ADDR} at --level metrics)`,
    )
    .option(
      "--metrics-linger <seconds>",
      "keep serving the final metrics this long after the target exits, for a last scrape",
      nonNegativeNumber("--metrics-linger"),
      0,
    )
    .option(
      "--model <name>",
      "the model's name in the metrics' model label and the spans (default: the GGUF's general.name, else its file name)",
    )
    .option("--metrics-layers", "also operator time per layer (profinfer_layer_op_seconds_total)")
    .option(
      "--metrics-moe",
      "also MoE expert selections per layer and expert (profinfer_moe_expert_selections_total; not at --level metrics)",
    )
    .option(
      "--ops <list>",
      "only these operators, comma-separated ggml op names (mul_mat,rms_norm,...)",
    )
    .option(
      "--sample-tokens <n>",
      "operator events for 1 in N llama_decode calls",
      positiveInt("--sample-tokens"),
      1,
    )
    .option(
      "--window <first-last>",
      "operator events only for llama_decode calls FIRST..LAST",
      parseWindow,
    )
    .option("--no-moe", "do not read MoE expert ids")
    .addOption(
      new Option(
        "--rotate-size <size>",
        "start a new events file once events.pinf holds this much: the full one becomes events-NNNNNN.pinf, and each reads on its own",
      ).argParser(parseSize),
    )
    .option(
      "--rotate-time <seconds>",
      "start a new events file once events.pinf is this old",
      positiveSeconds("--rotate-time"),
    )
    .addOption(
      new Option(
        "--max-disk <size>",
        "remove the oldest events files once the rotated ones hold more than this (with --rotate-size or --rotate-time)",
      ).argParser(parseSize),
    )
    .addOption(
      new Option("--ring-buffer <size>", "BPF ring buffer size")
        .argParser(parseSize)
        .default(RING_BUFFER_BYTES, formatSize(RING_BUFFER_BYTES)),
    )
    .option(
      "--batch-tokens <n>",
      `tokens of each llama_decode batch read for the requests, at most ${MAX_BATCH_TOKENS} (a call with more counts the rest as batch_truncated drops and marks its requests incomplete)`,
      (value: string) => {
        const n = positiveInt("--batch-tokens")(value);
        if (n > MAX_BATCH_TOKENS)
          throw new InvalidArgumentError(`--batch-tokens is at most ${MAX_BATCH_TOKENS}`);
        return n;
      },
      MAX_BATCH_TOKENS,
    )
    .option("--no-status", "no live status line")
    .option(
      "--toggle-op-probes <ms>",
      "for overhead measurements: take the step probes off and put them back every MS ms, noting each switch, so that decode calls with and without them alternate in one run (npm run bench)",
      positiveInt("--toggle-op-probes"),
    )
    .addOption(
      new Option(
        "--op-timing <how>",
        "how operators are timed: steps (a probe on the compute loop's barrier call: one hit per operator and thread) or functions (entry and return of each operator function, and ggml_barrier); --ops and --probe-all-ops imply functions",
      )
        .choices(["steps", "functions"])
        .default("steps"),
    )
    .option("--no-report", "do not write report.html")
    .addOption(timelineOption())
    .option(
      "--probe-all-ops",
      "also probe operator functions whose first instruction the kernel must single-step (about 10x the cost a hit; by default they are timed from the barriers)",
    );
}

/** --timeline: which timeline files the run folder gets. */
export function timelineOption(): Option {
  return new Option(
    "--timeline <format>",
    `the timeline files: protobuf (trace.pftrace, Perfetto's format for traces of any size), json (trace.json), both, or auto (protobuf, and json for runs whose events.pinf is at most ${JSON_TIMELINE_MAX_RAW_BYTES >> 20} MiB)`,
  )
    .choices(TIMELINE_FORMATS)
    .default("auto");
}

export function defaultRunDir(name: string): string {
  const stamp = new Date().toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15);
  return resolve("profinfer-runs", `${basename(name)}-${stamp}`);
}

/** A run folder given on the command line, which must hold a recording. */
export function requireRunDir(runDir: string): string {
  const dir = resolve(runDir);
  if (!existsSync(join(dir, "events.pinf"))) {
    throw new UserError(
      `${dir} holds no events.pinf: give a folder written by 'profinfer record' or 'profinfer attach'`,
    );
  }
  return dir;
}

/** A run folder's run header (requireRunDir's checks first). */
export function readRunHeader(dir: string): RunHeader {
  const reader = RawFileReader.open(join(dir, "events.pinf"));
  reader.close();
  return reader.header;
}

/** A run folder's trace model, read from its events.pinf (requireRunDir's checks first). */
export function readRunDir(runDir: string): { dir: string; run: Run } {
  const dir = requireRunDir(runDir);
  return { dir, run: buildRun(readRawFile(join(dir, "events.pinf"))) };
}

/** Option combinations that cannot work, refused before the target starts. */
export function checkOptions(opts: CommonOptions): void {
  if (
    opts.maxDisk !== undefined &&
    opts.rotateSize === undefined &&
    opts.rotateTime === undefined
  ) {
    throw new UserError(
      "--max-disk removes the oldest events files of a rotated run: give --rotate-size (or --rotate-time) too, e.g. --rotate-size 256M --max-disk 2G",
    );
  }
  if (
    opts.maxDisk !== undefined &&
    opts.rotateSize !== undefined &&
    opts.maxDisk < 2 * opts.rotateSize
  ) {
    throw new UserError(
      `--max-disk ${formatSize(opts.maxDisk)} keeps less than two segments of --rotate-size ${formatSize(opts.rotateSize)}: make it at least ${formatSize(2 * opts.rotateSize)}`,
    );
  }
  if (opts.pmc) {
    if (opts.level === "token" || opts.level === "graph") {
      throw new UserError(
        `--pmc reads counters at operator boundaries, which --level ${opts.level} does not probe: use --level op or --level metrics`,
      );
    }
    resolveCounters(opts.pmc);
  }
}

/** The endpoint of the options or the environment, checked; null when export is off. */
export function otlpEndpoint(opts: OtlpOptions): EndpointConfig | null {
  const url = endpointFrom(opts.otlpEndpoint);
  if (url === null) return null;
  return endpointConfig(
    url,
    opts.otlpHeader ?? {},
    timeoutFrom(opts.otlpTimeout, EXPORT_DEFAULTS.timeoutMs),
  );
}

/** The profiles export of the options or the environment; null when it is off. */
function profilesConfig(opts: CommonOptions): ProfilesExportConfig | null {
  const url = opts.profilesEndpoint ?? process.env.OTEL_EXPORTER_OTLP_PROFILES_ENDPOINT;
  if (url === undefined || url.trim() === "") return null;
  return {
    endpoint: endpointConfig(
      url.trim(),
      opts.otlpHeader ?? {},
      timeoutFrom(opts.otlpTimeout, EXPORT_DEFAULTS.timeoutMs),
    ),
    intervalMs: Math.round(opts.profilesInterval * 1000),
    ...(opts.serviceName !== undefined ? { serviceName: opts.serviceName } : {}),
    version: VERSION,
    log,
  };
}

/** --request-idle in ns. */
export function requestIdleNs(opts: OtlpOptions): bigint {
  return BigInt(Math.round(opts.requestIdle * 1e9));
}

/** The span export of `endpoint`, its spool in `spoolDir`. */
export function otlpExportConfig(
  opts: OtlpOptions,
  endpoint: EndpointConfig,
  spoolDir: string,
): OtlpExportConfig {
  return {
    endpoint,
    spoolDir,
    spoolMaxBytes: opts.otlpSpoolMax,
    flushTimeoutMs: opts.otlpFlushTimeout * 1000,
    opSampling: opts.otlpOpSample,
    requestIdleNs: requestIdleNs(opts),
    ...(opts.serviceName !== undefined ? { serviceName: opts.serviceName } : {}),
    version: VERSION,
    log,
  };
}

/** The metrics endpoint a recording serves, or null when none was asked for. */
function metricsConfig(
  opts: CommonOptions,
  command: readonly string[],
  pid: number | null,
): SessionConfig["metrics"] {
  if (opts.level !== "metrics" && opts.metricsAddr === undefined) {
    if (opts.metricsLayers || opts.metricsMoe)
      throw new UserError(
        "--metrics-layers and --metrics-moe add to the metrics: give --metrics-addr HOST:PORT or --level metrics",
      );
    return null;
  }
  if (opts.metricsMoe && opts.level === "metrics")
    throw new UserError(
      "--metrics-moe needs the expert ids, which are read at --level op: use --level op --metrics-addr HOST:PORT",
    );
  return {
    addr: parseMetricsAddr(opts.metricsAddr ?? DEFAULT_METRICS_ADDR),
    // the model is noted at the first llama_decode; the label is needed before, so it is read
    // from the same file by the same rule (the GGUF's general.name): spans and metrics agree
    model:
      opts.model ??
      modelName(pid !== null ? modelsOfProcess(pid, command) : modelsOfCommand(command), command) ??
      "unknown",
    layers: opts.metricsLayers ?? false,
    moe: opts.metricsMoe ?? false,
    requestIdleNs: requestIdleNs(opts),
    lingerMs: opts.metricsLinger * 1000,
    log,
  };
}

/** The session of record or attach: what to record into `outDir`, from `command`. */
export function sessionConfig(
  opts: CommonOptions,
  outDir: string,
  command: readonly string[],
  pid: number | null = null,
): SessionConfig {
  // bad input (counter names, the metrics address, the OTLP URL) fails before the target starts
  checkOptions(opts);
  const endpoint = otlpEndpoint(opts);
  const metrics = metricsConfig(opts, command, pid);
  return {
    record: {
      outDir,
      level: opts.level,
      ops: opts.ops
        ? opts.ops
            .split(",")
            .map((s) => s.trim().toLowerCase())
            .filter(Boolean)
        : null,
      sampleEvery: opts.sampleTokens,
      window: opts.window ?? null,
      moe: opts.moe,
      ringBufferBytes: opts.ringBuffer,
      batchTokens: opts.batchTokens,
      probeAllOps: opts.probeAllOps ?? false,
      // counters and per-layer aggregates are read at operator function and barrier boundaries
      opTiming:
        opts.ops || opts.probeAllOps || opts.pmc || opts.metricsLayers
          ? "functions"
          : opts.opTiming,
      counters: opts.pmc ? resolveCounters(opts.pmc) : null,
      aggregate: metrics !== null,
      aggregateLayers: opts.metricsLayers ?? false,
      aggregateMoe: opts.metricsMoe ?? false,
      rotation:
        opts.rotateSize !== undefined || opts.rotateTime !== undefined
          ? {
              maxBytes: opts.rotateSize ?? null,
              maxMs: opts.rotateTime !== undefined ? opts.rotateTime * 1000 : null,
              maxDiskBytes: opts.maxDisk ?? null,
            }
          : null,
      resource: resourceIdentity(opts.serviceName, opts.model),
      log,
      version: VERSION,
    },
    otlp: endpoint
      ? {
          ...otlpExportConfig(
            opts,
            endpoint,
            resolve(opts.otlpSpool ?? join(outDir, "otlp-spool")),
          ),
          cpuShare: opts.otlpCpu / 100,
        }
      : null,
    metrics,
    profiles: profilesConfig(opts),
    status: opts.status,
    toggleOpProbesMs: opts.toggleOpProbes ?? null,
    machineProfile: pid === null ? "measure" : "cached",
    outputs: {
      report: opts.report,
      timeline: opts.timeline,
      opSampling: opts.otlpOpSample,
      requestIdleNs: requestIdleNs(opts),
      ...(opts.serviceName !== undefined ? { serviceName: opts.serviceName } : {}),
    },
  };
}
