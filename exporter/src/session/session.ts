// SPDX-License-Identifier: Apache-2.0
// One recording session, the same for record and attach: the live sinks open first (so that
// nothing the target does is missed), then the recorder on the target; the target runs until it
// ends; then the recorder finishes, the run's outputs are written, and the sinks send or serve
// what is left.
import { mkdirSync } from "node:fs";
import type { MachineProfile } from "@profinfer/contract";
import { UserError } from "../errors.js";
import { cachedMachineProfile, machineProfile } from "../host/machineProfile.js";
import { loadNativeModule, type NativeModule } from "../record/nativeTracer.js";
import type { RecordOptions } from "../record/options.js";
import { Recorder } from "../record/recorder.js";
import type { LiveSink } from "../sinks/liveSink.js";
import {
  MetricsEndpointSink,
  type MetricsEndpointConfig,
} from "../sinks/metrics/metricsEndpoint.js";
import { LiveOtlpSink, type OtlpExportConfig } from "../sinks/otel/liveOtlp.js";
import { LiveProfilesSink, type ProfilesExportConfig } from "../sinks/profiles/liveProfiles.js";
import type { RunOutputOptions } from "../sinks/runOutputs.js";
import { reportRun } from "./runReport.js";
import { statusLine } from "./statusLine.js";
import type { SessionTarget, TargetEnd } from "./targets.js";

export interface SessionConfig {
  /** what and how to record; the live sinks are the session's */
  record: Omit<RecordOptions, "listeners">;
  /** the live OTLP export, when an endpoint is given */
  otlp: OtlpExportConfig | null;
  /** the Prometheus endpoint, when asked for (its histogram bounds are the tracer's) */
  metrics: Omit<MetricsEndpointConfig, "boundsNs"> | null;
  /** the live OTLP profiles export, when an endpoint is given */
  profiles: ProfilesExportConfig | null;
  /** the live status line on a terminal */
  status: boolean;
  /** record --toggle-op-probes: the step probes off and on again every this many ms */
  toggleOpProbesMs: number | null;
  /** what the run's outputs hold */
  outputs: RunOutputOptions;
  /**
   * the machine profile: "measure" it when this host has none cached (before the target starts),
   * or take the "cached" one only (a running target would slow it and be slowed by it)
   */
  machineProfile: "measure" | "cached";
  /** a window of the host agent: the session ends once this many llama_decode calls returned */
  stopAfterCalls?: number;
  /** print the run's summary on stdout (record and attach); the host agent's windows do not */
  printSummary?: boolean;
}

/** Resolves once the recorder has seen `calls` llama_decode calls return. */
function afterCalls(
  recorder: Recorder,
  calls: number,
): { ended: Promise<TargetEnd>; cancel(): void } {
  let timer: NodeJS.Timeout | undefined;
  const ended = new Promise<TargetEnd>((resolveEnd) => {
    timer = setInterval(() => {
      if (recorder.stats.tokens < calls) return;
      clearInterval(timer);
      resolveEnd({ exit: null, message: `${calls} llama_decode calls recorded` });
    }, 100);
  });
  return { ended, cancel: () => clearInterval(timer) };
}

/** Records `openTarget()` (called once the sinks are up) until it ends; says how it ended. */
export async function runSession(
  config: SessionConfig,
  openTarget: () => SessionTarget,
): Promise<TargetEnd> {
  const { outDir, log } = config.record;
  mkdirSync(outDir, { recursive: true });
  const native = loadNativeModule();
  const machine = hostProfile(config.machineProfile, log);
  const sinks: LiveSink[] = [];
  let otlp: LiveOtlpSink | null = null;
  let metrics: MetricsEndpointSink | null = null;
  let target: SessionTarget | null = null;
  let recorder: Recorder;
  try {
    if (config.otlp) sinks.push((otlp = await LiveOtlpSink.start(config.otlp)));
    if (config.profiles) sinks.push(LiveProfilesSink.start(config.profiles));
    if (config.metrics) {
      const boundsNs = native.aggregateBoundsNs;
      sinks.push((metrics = await MetricsEndpointSink.open({ ...config.metrics, boundsNs })));
    }
    target = openTarget();
    recorder = openRecorder(native, target, {
      ...config.record,
      machine,
      listeners: sinks.flatMap((s) => (s.listener ? [s.listener] : [])),
    });
    if (metrics && otlp) metrics.followSpanExport(() => otlp!.stats);
    for (const sink of sinks) sink.start?.(recorder);
    recorder.start();
    // the probes on what the process has mapped are in place (libraries it loads later get theirs
    // as they load): scripts wait for this line
    log(`tracing pid ${target.pid}`);
  } catch (error) {
    target?.abandon();
    await Promise.all(sinks.map((s) => s.close()));
    throw error;
  }
  const stopStatus = statusLine(recorder, config.status);
  const toggler = config.toggleOpProbesMs
    ? setInterval(() => recorder.toggleStepProbes(), config.toggleOpProbesMs)
    : null;
  target.release();
  const enough = config.stopAfterCalls ? afterCalls(recorder, config.stopAfterCalls) : null;
  const end = await (enough ? Promise.race([target.ended(), enough.ended]) : target.ended());
  enough?.cancel();
  stopStatus();
  if (toggler) clearInterval(toggler);
  await recorder.finish(end.exit);
  if (end.message) log(end.message);
  reportRun(outDir, recorder, config.outputs, log, config.printSummary ?? true);
  await Promise.all(sinks.map((s) => s.finish()));
  return end;
}

/** This host's machine profile for the run header; null (and said) when there is none. */
function hostProfile(
  how: "measure" | "cached",
  log: (line: string) => void,
): MachineProfile | null {
  try {
    const profile = how === "measure" ? machineProfile({ log }) : cachedMachineProfile();
    if (!profile) {
      log(
        "no machine profile for this host: the roofline and decode.memory-bound need one; run 'profinfer machine' while the host is quiet, then 'profinfer replay' this run",
      );
    }
    return profile;
  } catch (error) {
    log(`no machine profile: ${(error as Error).message}`);
    return null;
  }
}

function openRecorder(
  native: NativeModule,
  target: SessionTarget,
  options: RecordOptions,
): Recorder {
  try {
    return new Recorder(native, target.pid, target.command, options);
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
