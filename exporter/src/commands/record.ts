// SPDX-License-Identifier: Apache-2.0
// profinfer record | attach | replay
import { Command, InvalidArgumentError, Option } from "commander";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join, resolve } from "node:path";
import { UserError } from "../errors.js";
import { modelArgument } from "../discovery/modelFile.js";
import { loadNativeModule } from "../record/nativeTracer.js";
import { Registry } from "prom-client";
import { resolveCounters } from "../record/counters.js";
import { Recorder, type Level, type OpTiming, type RecordOptions } from "../record/recorder.js";
import { ProfinferMetrics, type SpanExportCounts } from "../sinks/metrics/profinferMetrics.js";
import {
  DEFAULT_METRICS_ADDR,
  parseMetricsAddr,
  startMetricsServer,
  type MetricsServer,
} from "../sinks/metrics/server.js";
import { writeReport } from "../sinks/report.js";
import { writeRunOutputs, type RunOutputs } from "../sinks/runOutputs.js";
import { computeStats } from "../sinks/stats.js";
import { buildRun } from "../trace/buildRun.js";
import { readRawFile } from "../trace/rawFile.js";
import {
  EXPORT_DEFAULTS,
  SpanExport,
  checkEndpoint,
  formatExportStats,
  type EndpointConfig,
} from "../sinks/otel/exporter.js";
import { LiveSpanExport } from "../sinks/otel/live.js";
import { collectHeader, endpointFrom, parseEndpoint } from "../sinks/otel/options.js";
import { resourceAttributes } from "../sinks/otel/resource.js";
import { DEFAULT_OP_SAMPLING, parseOpSampling, type OpSampling } from "../sinks/otel/spans.js";

const VERSION = "0.1.0";

interface OtlpOptions {
  otlpEndpoint?: string;
  otlpHeader?: Record<string, string>;
  serviceName?: string;
  otlpOpSample: OpSampling;
  otlpSpool?: string;
  otlpSpoolMax: number;
  otlpTimeout: number;
  otlpFlushTimeout: number;
}

interface CommonOptions extends OtlpOptions {
  out?: string;
  level: Level;
  ops?: string;
  sampleTokens: number;
  window?: [number, number];
  moe: boolean;
  ringBuffer: number;
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
}

function positiveInt(what: string) {
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
  const m = /^(\d+)([KMG]?)i?B?$/i.exec(value);
  if (!m) throw new InvalidArgumentError("a size such as 64M or 256M.");
  const unit = { "": 1, K: 1 << 10, M: 1 << 20, G: 1 << 30 }[
    m[2]!.toUpperCase() as "" | "K" | "M" | "G"
  ];
  return Number(m[1]) * unit;
}

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
function addOtlpOptions(command: Command): Command {
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
    .option("--service-name <name>", "service.name of the spans (default: the program's name)")
    .option(
      "--otlp-op-sample <spec>",
      "llama_decode calls of each generation that get operator spans: all, none, every:N, first:K",
      opSample,
      DEFAULT_OP_SAMPLING,
    )
    .option(
      "--otlp-spool <dir>",
      "where spans wait while the endpoint is down (default: RUN_DIR/otlp-spool)",
    )
    .option(
      "--otlp-spool-max <size>",
      "the spool's bound; spans beyond it are dropped and counted",
      parseSize,
      EXPORT_DEFAULTS.spoolMaxBytes,
    )
    .option(
      "--otlp-timeout <seconds>",
      "timeout of one export request",
      positiveSeconds("--otlp-timeout"),
      EXPORT_DEFAULTS.timeoutMs / 1000,
    )
    .option(
      "--otlp-flush-timeout <seconds>",
      "at the end, how long to wait for the endpoint to take what is left",
      positiveSeconds("--otlp-flush-timeout"),
      30,
    );
}

function addCommonOptions(command: Command): Command {
  return addOtlpOptions(command)
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
      "perf counters read at every operator boundary: perf event names (cycles,instructions,task-clock,cpu/event=0x3c/,r003c,...) or 'auto'",
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
    .option("--model <name>", "the model label of the metrics (default: the -m file's name)")
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
    .option("--ring-buffer <size>", "BPF ring buffer size", parseSize, 64 << 20)
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
    .option(
      "--probe-all-ops",
      "also probe operator functions whose first instruction the kernel must single-step (about 10x the cost a hit; by default they are timed from the barriers)",
    );
}

function defaultRunDir(name: string): string {
  const stamp = new Date().toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15);
  return resolve("profinfer-runs", `${basename(name)}-${stamp}`);
}

/** Option combinations that cannot work, refused before the target starts. */
function checkOptions(opts: CommonOptions): void {
  if (opts.pmc) {
    if (opts.level === "token" || opts.level === "graph") {
      throw new UserError(
        `--pmc reads counters at operator boundaries, which --level ${opts.level} does not probe: use --level op or --level metrics`,
      );
    }
    resolveCounters(opts.pmc);
  }
}

function recordOptions(
  opts: CommonOptions,
  outDir: string,
  listener?: LiveSpanExport,
): RecordOptions {
  return {
    listener,
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
    probeAllOps: opts.probeAllOps ?? false,
    // counters and per-layer aggregates are read at operator function and barrier boundaries
    opTiming:
      opts.ops || opts.probeAllOps || opts.pmc || opts.metricsLayers ? "functions" : opts.opTiming,
    counters: opts.pmc ? resolveCounters(opts.pmc) : null,
    aggregate: opts.level === "metrics" || opts.metricsAddr !== undefined,
    aggregateLayers: opts.metricsLayers ?? false,
    aggregateMoe: opts.metricsMoe ?? false,
    log: (message) => process.stderr.write(`profinfer: ${message}\n`),
    version: VERSION,
  };
}

function openRecorder(
  pid: number,
  command: string[],
  opts: CommonOptions,
  outDir: string,
  listener?: LiveSpanExport,
): Recorder {
  mkdirSync(outDir, { recursive: true });
  const native = loadNativeModule();
  try {
    return new Recorder(native, pid, command, recordOptions(opts, outDir, listener));
  } catch (error) {
    const message = (error as Error).message;
    if (/Permission denied|Operation not permitted/.test(message)) {
      throw new UserError(
        `${message}. profinfer needs root, or the capabilities CAP_BPF and CAP_PERFMON (CAP_SYS_ADMIN on kernels before 5.8), to load its eBPF programs; run it with sudo. 'profinfer doctor' checks the machine.`,
      );
    }
    throw new UserError(`cannot start the tracer: ${message}`);
  }
}

const log = (message: string) => process.stderr.write(`profinfer: ${message}\n`);

/** The endpoint of the options or the environment, checked; null when export is off. */
function otlpEndpoint(opts: OtlpOptions): EndpointConfig | null {
  const url = endpointFrom(opts.otlpEndpoint);
  if (url === null) return null;
  return {
    url: parseEndpoint(url),
    headers: opts.otlpHeader ?? {},
    timeoutMs: Math.round(opts.otlpTimeout * 1000),
  };
}

function newSpanExport(opts: OtlpOptions, endpoint: EndpointConfig, spoolDir: string): SpanExport {
  return new SpanExport(
    {
      ...endpoint,
      spoolDir,
      spoolMaxBytes: opts.otlpSpoolMax,
      batchSpans: EXPORT_DEFAULTS.batchSpans,
      retryInitialMs: EXPORT_DEFAULTS.retryInitialMs,
      retryMaxMs: EXPORT_DEFAULTS.retryMaxMs,
      version: VERSION,
      log,
    },
    {},
  );
}

/** Live export during record/attach: spans of finished calls leave while the target runs. */
interface LiveOtlp {
  exporter: SpanExport;
  live: LiveSpanExport;
}

async function startLiveOtlp(
  opts: OtlpOptions,
  endpoint: EndpointConfig | null,
  runDir: string,
): Promise<LiveOtlp | null> {
  if (!endpoint) return null;
  const exporter = newSpanExport(
    opts,
    endpoint,
    resolve(opts.otlpSpool ?? join(runDir, "otlp-spool")),
  );
  const problem = await checkEndpoint(endpoint);
  if (problem) {
    log(
      `the OTLP endpoint ${endpoint.url} does not answer: ${problem}. Is it the collector's gRPC port (4317)? ` +
        `Recording goes on; spans wait in ${exporter.spoolDir} and are sent when it answers.`,
    );
    exporter.markDown();
  }
  const live = new LiveSpanExport({
    opSampling: opts.otlpOpSample,
    intervalMs: 1000,
    marginNs: 200_000_000n,
    send: (records) => exporter.add(records),
    runInfo: (header, notes) =>
      exporter.setResource(resourceAttributes(header, notes, opts.serviceName)),
    log,
  });
  return { exporter, live };
}

/** After the run: the last spans, waiting for the endpoint at most --otlp-flush-timeout. */
async function finishLiveOtlp(otlp: LiveOtlp | null, opts: OtlpOptions): Promise<void> {
  if (!otlp) return;
  otlp.live.finish();
  const flushed = await otlp.exporter.flush(opts.otlpFlushTimeout * 1000);
  if (!flushed) log(`the OTLP endpoint did not take every span within ${opts.otlpFlushTimeout} s`);
  await otlp.exporter.close();
  log(formatExportStats(otlp.exporter.stats, otlp.exporter.spoolDir));
}

/** --toggle-op-probes: the step probes off and on again every `ms` ms; returns the stopper. */
function stepProbeToggler(recorder: Recorder, ms: number | undefined): () => void {
  if (!ms) return () => {};
  const timer = setInterval(() => recorder.toggleStepProbes(), ms);
  return () => clearInterval(timer);
}

/** A status line on the terminal while recording: tokens, tokens/s, events/s, drops. */
function statusLine(recorder: Recorder, enabled: boolean): () => void {
  if (!enabled || !process.stderr.isTTY) return () => {};
  // rates over the last 5 s: events arrive in batches twice a second, a 1 s window would jitter
  const window: { at: number; tokens: number; events: number }[] = [
    { at: performance.now(), tokens: 0, events: 0 },
  ];
  const timer = setInterval(() => {
    const now = performance.now();
    const s = recorder.stats;
    window.push({ at: now, tokens: s.tokens, events: s.events });
    while (window.length > 2 && now - window[1]!.at >= 5000) window.shift();
    const first = window[0]!;
    const dt = (now - first.at) / 1000;
    const line =
      `recording pid ${recorder.pid}  tokens ${s.tokens} (${((s.tokens - first.tokens) / dt).toFixed(1)}/s)  ` +
      `events ${s.events} (${Math.round((s.events - first.events) / dt)}/s)  drops ${recorder.liveDrops()}  ${(s.bytes / (1 << 20)).toFixed(1)} MiB`;
    process.stderr.write(`\r\x1b[K${line}`);
  }, 1000);
  return () => {
    clearInterval(timer);
    process.stderr.write("\r\x1b[K");
  };
}

/** The model label: the file name of the command's -m/--model argument, without .gguf. */
export function modelLabel(command: string[]): string {
  const value = modelArgument(command, null);
  return value ? basename(value).replace(/\.gguf$/i, "") : "unknown";
}

/** The metrics endpoint of a recording, started before the target runs. */
interface MetricsEndpoint {
  registry: Registry;
  server: MetricsServer;
  attach(recorder: Recorder, command: string[], spans?: () => SpanExportCounts): void;
  /** after the target exited: serve the final values a while, then stop */
  finish(): Promise<void>;
}

async function openMetrics(opts: CommonOptions): Promise<MetricsEndpoint | null> {
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
  const registry = new Registry();
  const server = await startMetricsServer(
    registry,
    parseMetricsAddr(opts.metricsAddr ?? DEFAULT_METRICS_ADDR),
  );
  process.stderr.write(
    `profinfer: metrics at http://${server.address.host}:${server.address.port}/metrics\n`,
  );
  return {
    registry,
    server,
    attach(recorder, command, spans) {
      const native = loadNativeModule();
      const metrics = new ProfinferMetrics(
        registry,
        {
          aggregates: () => recorder.aggregates(),
          probeCounters: () => recorder.probeCounters(),
          get operatorFunctions() {
            return recorder.operatorFunctions;
          },
          get opNames() {
            return recorder.opNames;
          },
          counters: recorder.counters,
          eventsReceived: () => recorder.stats.events,
        },
        {
          model: opts.model ?? modelLabel(command),
          unprobedKey: native.unprobedKey,
          stepKeyBase: native.stepKeyBase,
          noLayer: native.noLayer,
          boundsNs: native.aggregateBoundsNs,
          layers: opts.metricsLayers ?? false,
          moe: opts.metricsMoe ?? false,
        },
      );
      if (spans) metrics.followSpanExport(spans);
    },
    async finish() {
      if (opts.metricsLinger > 0) {
        process.stderr.write(
          `profinfer: serving the final metrics for ${opts.metricsLinger} s more\n`,
        );
        await new Promise((r) => setTimeout(r, opts.metricsLinger * 1000));
      }
      await server.close();
    },
  };
}

function reportRun(
  outDir: string,
  recorder: Recorder,
  opts: OtlpOptions & { report: boolean },
): void {
  if (recorder.libraries.length === 0) {
    process.stderr.write(
      `profinfer: no llama.cpp library was found in the target: none of the files it mapped defines llama_decode, ` +
        `ggml_backend_sched_graph_compute_async, or ggml_graph_compute with ggml_barrier. Is it a llama.cpp program ` +
        `(llama-cli, llama-server, a node-llama-cpp app)? Nothing was traced.\n`,
    );
  }
  if (recorder.libraries.length > 0) {
    for (const line of recorder.levelReport())
      process.stderr.write(`profinfer: not traced: ${line}\n`);
  }
  const outputs = writeRunOutputs(outDir, {
    report: opts.report,
    opSampling: opts.otlpOpSample,
    serviceName: opts.serviceName,
  });
  process.stdout.write(outputs.summary);
  const self = recorder.profilerCpu;
  if (self && self.wallMs > 0) {
    process.stderr.write(
      `profinfer: used ${self.cpuMs.toFixed(0)} ms of CPU while tracing (${((100 * self.cpuMs) / self.wallMs).toFixed(2)}% of one core over ${(self.wallMs / 1000).toFixed(1)} s from the first llama_decode)\n`,
    );
  }
  reportReportFile(outputs);
  process.stderr.write(`profinfer: run folder ${outDir}\n`);
}

function reportReportFile(outputs: RunOutputs): void {
  if (outputs.report) process.stderr.write(`profinfer: report ${outputs.report}\n`);
  if (outputs.reportError) process.stderr.write(`profinfer: ${outputs.reportError}\n`);
}

function requireRunDir(runDir: string): string {
  const dir = resolve(runDir);
  if (!existsSync(join(dir, "events.pinf"))) {
    throw new UserError(
      `${dir} holds no events.pinf: give a folder written by 'profinfer record' or 'profinfer attach'`,
    );
  }
  return dir;
}

export function registerRecordCommands(program: Command): void {
  addCommonOptions(
    program
      .command("record")
      .description(
        "launch a llama.cpp program and trace it from its first instruction until it exits",
      )
      .argument("<command...>", "the program and its arguments (after --)")
      .usage("[options] -- <command ...>"),
  ).action(async (command: string[], opts: CommonOptions) => {
    const outDir = resolve(opts.out ?? defaultRunDir(command[0]!));
    // bad input (counter names, the metrics address, the OTLP URL) fails before the target starts
    checkOptions(opts);
    const endpoint = otlpEndpoint(opts);
    mkdirSync(outDir, { recursive: true });
    const otlp = await startLiveOtlp(opts, endpoint, outDir);
    let metrics: MetricsEndpoint | null;
    try {
      metrics = await openMetrics(opts);
    } catch (error) {
      await otlp?.exporter.close();
      throw error;
    }
    // The target waits on fd 3 until the probes are in place, then execs the real program, so
    // that nothing runs untraced and the pid the probes filter on is the program's own.
    const child = spawn("/bin/sh", ["-c", 'read _ <&3; exec 3<&-; exec "$0" "$@"', ...command], {
      stdio: ["inherit", "inherit", "inherit", "pipe"],
    });
    const exited = new Promise<{ code: number | null; signal: string | null }>((resolveExit) =>
      child.on("exit", (code, signal) => resolveExit({ code, signal })),
    );
    let recorder: Recorder;
    try {
      recorder = openRecorder(child.pid!, command, opts, outDir, otlp?.live);
      metrics?.attach(recorder, command, otlp ? () => otlp.exporter.stats : undefined);
      recorder.start();
    } catch (error) {
      child.kill("SIGKILL");
      await metrics?.server.close();
      await otlp?.exporter.close();
      throw error;
    }
    const stopStatus = statusLine(recorder, opts.status);
    const stopToggling = stepProbeToggler(recorder, opts.toggleOpProbes);
    // Ctrl-C reaches the target too (same process group): let it end, then finish the run.
    const onSignal = () => {};
    process.on("SIGINT", onSignal);
    const gate = child.stdio[3] as NodeJS.WritableStream;
    gate.end("go\n");
    const exit = await exited;
    process.off("SIGINT", onSignal);
    stopStatus();
    stopToggling();
    await recorder.finish(exit);
    await metrics?.finish();
    if (exit.code === 127)
      process.stderr.write(
        `profinfer: '${command[0]}' could not be started (command not found?)\n`,
      );
    reportRun(outDir, recorder, opts);
    await finishLiveOtlp(otlp, opts);
    process.exitCode = exit.code ?? (exit.signal ? 128 + (signalNumber(exit.signal) ?? 1) : 1);
  });

  addCommonOptions(
    program
      .command("attach")
      .description(
        "trace a running llama.cpp process until Ctrl-C or until it exits; it keeps running",
      )
      .requiredOption("--pid <pid>", "process id", positiveInt("--pid")),
  ).action(async (opts: CommonOptions & { pid: number }) => {
    if (!existsSync(`/proc/${opts.pid}`)) throw new UserError(`no process with pid ${opts.pid}`);
    const comm = readFileSync(`/proc/${opts.pid}/cmdline`, "utf8").split("\0").filter(Boolean);
    const outDir = resolve(opts.out ?? defaultRunDir(comm[0] ?? String(opts.pid)));
    checkOptions(opts);
    const endpoint = otlpEndpoint(opts);
    mkdirSync(outDir, { recursive: true });
    const otlp = await startLiveOtlp(opts, endpoint, outDir);
    let metrics: MetricsEndpoint | null = null;
    let recorder: Recorder;
    try {
      metrics = await openMetrics(opts);
      recorder = openRecorder(opts.pid, comm, opts, outDir, otlp?.live);
    } catch (error) {
      await metrics?.server.close();
      await otlp?.exporter.close();
      throw error;
    }
    metrics?.attach(recorder, comm, otlp ? () => otlp.exporter.stats : undefined);
    recorder.start();
    const stopStatus = statusLine(recorder, opts.status);
    const stopToggling = stepProbeToggler(recorder, opts.toggleOpProbes);
    const reason = await new Promise<string>((resolveStop) => {
      const onSignal = () => resolveStop("interrupted");
      process.once("SIGINT", onSignal);
      process.once("SIGTERM", onSignal);
      const poll = setInterval(() => {
        if (!existsSync(`/proc/${opts.pid}`)) {
          clearInterval(poll);
          resolveStop("exited");
        }
      }, 200);
      poll.unref();
    });
    stopStatus();
    stopToggling();
    await recorder.finish(null);
    await metrics?.finish();
    process.stderr.write(`profinfer: detached from pid ${opts.pid} (${reason})\n`);
    reportRun(outDir, recorder, opts);
    await finishLiveOtlp(otlp, opts);
  });

  addOtlpOptions(
    program
      .command("replay")
      .description(
        "rebuild every output of a run folder from its recorded events (no root needed); with --otlp-endpoint, send its spans",
      )
      .argument("<run-dir>", "a folder written by record or attach")
      .option("--no-report", "do not write report.html"),
  ).action(async (runDir: string, opts: OtlpOptions & { report: boolean }) => {
    const dir = requireRunDir(runDir);
    const endpoint = otlpEndpoint(opts);
    if (endpoint) {
      const problem = await checkEndpoint(endpoint);
      if (problem)
        throw new UserError(
          `the OTLP endpoint ${endpoint.url} does not answer: ${problem}. Is it the collector's gRPC port (4317)? Nothing was sent; run replay again when it is up.`,
        );
    }
    const outputs = writeRunOutputs(dir, {
      report: opts.report,
      opSampling: opts.otlpOpSample,
      serviceName: opts.serviceName,
    });
    process.stdout.write(outputs.summary);
    reportReportFile(outputs);
    if (!endpoint) return;
    // a replay sends the whole run each time: what it could not send is not kept, unless asked
    const spoolDir = opts.otlpSpool
      ? resolve(opts.otlpSpool)
      : mkdtempSync(join(tmpdir(), "profinfer-replay-spool-"));
    const exporter = newSpanExport(opts, endpoint, spoolDir);
    exporter.setResource(outputs.resource);
    exporter.add(outputs.spans);
    const flushed = await exporter.flush(opts.otlpFlushTimeout * 1000);
    await exporter.close();
    if (!opts.otlpSpool) rmSync(spoolDir, { recursive: true, force: true });
    log(formatExportStats(exporter.stats, opts.otlpSpool ? spoolDir : null));
    if (!flushed || exporter.stats.dropped > 0) {
      throw new UserError(
        `not every span reached ${endpoint.url} (${exporter.stats.queued} queued, ${exporter.stats.dropped} dropped); run replay again when it takes them`,
        1,
      );
    }
  });

  program
    .command("report")
    .description(
      "write report.html of a run folder: ProfDAG, expert heatmap, timeline and ProfStat in one offline file",
    )
    .argument("<run-dir>", "a folder written by record or attach")
    .option("--out <file>", "where to write it (default: RUN_DIR/report.html)")
    .action((runDir: string, opts: { out?: string }) => {
      const dir = requireRunDir(runDir);
      const run = buildRun(readRawFile(join(dir, "events.pinf")));
      const out = resolve(opts.out ?? join(dir, "report.html"));
      writeReport(run, computeStats(run), out);
      process.stderr.write(`profinfer: report ${out}\n`);
    });
}

function signalNumber(signal: string): number | undefined {
  const table: Record<string, number> = {
    SIGHUP: 1,
    SIGINT: 2,
    SIGQUIT: 3,
    SIGABRT: 6,
    SIGKILL: 9,
    SIGSEGV: 11,
    SIGPIPE: 13,
    SIGTERM: 15,
  };
  return table[signal];
}
