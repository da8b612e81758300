// SPDX-License-Identifier: Apache-2.0
// A recording of one process. The recorder orchestrates: it opens the tracer, follows the
// libraries the process maps (libraryFollower.ts), attaches what probePlan.ts plans for each
// (probeAttacher.ts), checks the resolved layout (layoutCheck.ts), streams events into the run
// (runWriter.ts) and finishes cleanly; it is in one state at a time.
import { hostname, cpus, release } from "node:os";
import { join } from "node:path";
import { DROP_COUNTERS, EV_LIBRARY, HIT_COUNTERS, PiLevel } from "../abi/constants.js";
import { EventType } from "../abi/events.js";
import { LayoutError, probeLayout, type ProbedLayout } from "../discovery/layout.js";
import { functionLabel, type LibraryRoles } from "../discovery/libraries.js";
import { modelsOfProcess } from "../discovery/modelFile.js";
import { readElf } from "../discovery/elf.js";
import { findStepSites, type StepSite } from "../discovery/stepSites.js";
import { kernelHasUprobeMulti } from "../host/kernel.js";
import type { LiveRecording, RecordListener } from "../sinks/liveSink.js";
import type { OpFunction, RecordLevel, RunHeader } from "../trace/header.js";
import type { Aggregates, RunNote } from "../trace/notes.js";
import type { CounterRequest, CounterSelection } from "./counters.js";
import { LayoutCheck } from "./layoutCheck.js";
import { LibraryFollower } from "./libraryFollower.js";
import { toNativeLayout } from "./nativeLayout.js";
import { layoutProbePath, type NativeModule, type NativeTracer } from "./nativeTracer.js";
import { ProbeAttacher, stepProbeError } from "./probeAttacher.js";
import {
  BARRIER_PROBES,
  LEVELS,
  MOE_CONSUMERS,
  callProbes,
  cpuGraphProbes,
  operatorFunctionSites,
  stepProbeSites,
  type ProbeSite,
} from "./probePlan.js";
import { RunWriter } from "./runWriter.js";

export type OpTiming = "steps" | "functions";

export interface RecordOptions {
  outDir: string;
  level: RecordLevel;
  /** only these ops' functions are probed (names as in ggml_compute_forward_<name>) */
  ops: string[] | null;
  /** operator events for 1 in N llama_decode calls */
  sampleEvery: number;
  /** only for llama_decode calls first..last (1-based); null: all */
  window: [number, number] | null;
  moe: boolean;
  ringBufferBytes: number;
  /** also probe operator functions whose first instruction the kernel must single-step */
  probeAllOps: boolean;
  /**
   * how operators are timed: "steps" probes the compute loop's barrier call (one hit per step and
   * thread; falls back to "functions" where the loop is not found), "functions" probes each
   * operator function's entry and return and ggml_barrier
   */
  opTiming: OpTiming;
  /** perf counters to read at operator boundaries, and the ones this machine lacks */
  counters: CounterSelection | null;
  /** keep the in-kernel aggregates (the metrics exporter reads them); always on at level metrics */
  aggregate: boolean;
  /** ...per layer too, and MoE expert selections (bounded by the BPF maps' sizes) */
  aggregateLayers: boolean;
  aggregateMoe: boolean;
  /** called with warnings and progress a user should see */
  log: (message: string) => void;
  version: string;
  /** see what events.pinf receives, as it is written (live sinks: the OTLP export) */
  listeners: readonly RecordListener[];
}

export interface RecorderStats {
  tokens: number;
  events: number;
  bytes: number;
  drops: number;
}

/**
 * attaching: made, probes going on. tracing: polling the ring buffer. stopping: draining it and
 * writing the closing notes. closed: the run is written, the tracer closed.
 */
export type RecorderState = "attaching" | "tracing" | "stopping" | "closed";

export class Recorder implements LiveRecording {
  private state: RecorderState = "attaching";
  private readonly tracer: NativeTracer;
  private readonly attacher: ProbeAttacher;
  private readonly follower: LibraryFollower;
  private readonly layoutCheck = new LayoutCheck();
  private readonly writer: RunWriter;
  private readonly clock: { monotonicNs: string; realtimeNs: string };
  private layout: ProbedLayout | null = null;
  private readonly opFuncs: OpFunction[] = [];
  /** the probed operator functions' ops, by aggregate key (their index) */
  readonly operatorFunctions: { index: number; op: string }[] = [];
  private readonly stepLibraries: string[] = [];
  private finalReadings: {
    aggregates: Aggregates;
    counters: { drops: number[]; hits: number[] };
  } | null = null;
  private failure: Error | null = null;
  private streamEnded: (() => void) | null = null;
  /** process.cpuUsage() and the time at the first llama_decode (the model is noted then) */
  private firstDecode: { cpu: NodeJS.CpuUsage; wallMs: number } | null = null;
  /** the counters that opened, in the order the events carry their readings */
  readonly counters: CounterRequest[] = [];
  /** profinfer's CPU from the first llama_decode to the end of tracing (all its threads) */
  profilerCpu: { cpuMs: number; wallMs: number } | null = null;
  readonly stats: RecorderStats = { tokens: 0, events: 0, bytes: 0, drops: 0 };

  constructor(
    private readonly native: NativeModule,
    readonly pid: number,
    private readonly command: string[],
    private readonly options: RecordOptions,
  ) {
    const uprobeMulti = kernelHasUprobeMulti(release());
    const [monotonicNs, realtimeNs] = native.clockPair();
    this.clock = { monotonicNs, realtimeNs };
    this.writer = new RunWriter(
      join(options.outDir, "events.pinf"),
      options.listeners,
      options.log,
    );
    this.tracer = new native.Tracer({
      tgid: pid,
      level: LEVELS[options.level],
      sampleEvery: options.sampleEvery,
      windowFirst: options.window?.[0] ?? 0,
      windowLast: options.window?.[1] ?? 0,
      opsWithoutTokens: true,
      moe: options.moe,
      // nothing but the dynamic linker's control events travel at level metrics
      ringBufferBytes: options.level === "metrics" ? 256 << 10 : options.ringBufferBytes,
      uprobeMulti,
      stream: options.level !== "metrics",
      aggregate: options.aggregate || options.level === "metrics",
      aggregateLayers: options.aggregateLayers,
      aggregateMoe: options.aggregateMoe,
      counters: (options.counters?.counters ?? []).map((c) => ({
        name: c.name,
        type: c.type,
        config: c.config,
        config1: c.config1,
        config2: c.config2,
      })),
    });
    this.attacher = new ProbeAttacher(this.tracer, uprobeMulti, (m) => this.warn(m));
    this.follower = new LibraryFollower(pid, (m) => this.warn(m));
    this.openCounters();
  }

  /** The counters that opened on every CPU; the others are said to be missing, and why. */
  private openCounters(): void {
    const selection = this.options.counters;
    for (const missing of selection?.unavailable ?? []) {
      this.warn(`counter ${missing.name} is not recorded: ${missing.reason}`);
    }
    const requested = selection?.counters ?? [];
    for (const status of this.tracer.counterStatus()) {
      const req = requested.find((c) => c.name === status.name);
      if (status.opened && req) this.counters.push(req);
      else this.warn(`counter ${status.name} is not recorded: ${status.error}`);
    }
    if (requested.length > 0 || (selection?.unavailable.length ?? 0) > 0) {
      this.options.log(this.counterSummary());
    }
  }

  /** One line saying which counters are recorded and which of them are real hardware counts. */
  counterSummary(): string {
    if (this.counters.length === 0) return "counters: none recorded";
    const kind = (c: CounterRequest) => (c.hardware ? "hardware" : "software");
    return `counters: ${this.counters.map((c) => `${c.name} (${kind(c)})`).join(", ")}`;
  }

  /** The in-kernel aggregates so far (cumulative), for the metrics exporter. */
  aggregates(): Aggregates {
    return this.finalReadings?.aggregates ?? this.tracer.aggregates();
  }

  /** Probe hits and drops so far (cumulative), for the metrics exporter. */
  probeCounters(): { drops: number[]; hits: number[] } {
    return this.finalReadings?.counters ?? this.tracer.counters();
  }

  /** Events user space received so far. */
  eventsReceived(): number {
    return this.stats.events;
  }

  /** the build's op names by enum value, once its layout is known */
  get opNames(): { ops: string[]; unary: string[]; glu: string[] } | undefined {
    const l = this.layout;
    return l ? { ops: l.opNames, unary: l.unaryOpNames, glu: l.gluOpNames } : undefined;
  }

  /** the llama.cpp / ggml libraries found in the target so far */
  get libraries(): string[] {
    return this.follower.libraries.map((r) => r.path);
  }

  get refusal(): string | null {
    return this.layoutCheck.refusal;
  }

  /** Attaches to what the process has mapped now and to the dynamic linker, and starts polling. */
  start(): void {
    if (LEVELS[this.options.level] >= PiLevel.OP) {
      const error = this.tracer.attachSchedTracepoints();
      if (error) this.warn(`scheduler tracepoints: ${error}; off-CPU time will not be shown`);
    }
    this.followLibraries();
    this.state = "tracing";
    this.tracer.start((batch, counts) => {
      if (batch === null || counts === null) {
        this.streamEnded?.();
        return;
      }
      try {
        this.onBatch(batch, counts);
      } catch (error) {
        // an exception must not escape into the addon's callback: keep it and report it once
        if (!this.failure) {
          this.failure = error as Error;
          this.warn(`events could not be processed: ${(error as Error).message}`);
        }
      }
    });
  }

  /** Attaches probes to every library the process mapped since the last look. */
  private followLibraries(): void {
    const { dynamicLinkers, found } = this.follower.scan();
    for (const linker of dynamicLinkers)
      this.attacher.attachFunction(linker, { handler: "dl_activity", symbol: "_dl_debug_state" });
    for (const roles of found) this.attachLibrary(roles);
  }

  private attachLibrary(roles: LibraryRoles): void {
    const level = LEVELS[this.options.level];
    for (const probe of callProbes(roles, level)) this.attacher.attachFunction(roles, probe);
    if (roles.ggmlBase && level >= PiLevel.GRAPH && !this.layout) this.resolveLayout(roles.path);
    for (const probe of cpuGraphProbes(roles, level)) this.attacher.attachFunction(roles, probe);
    if (!roles.ggmlCpu || level < PiLevel.OP) return;
    if (!this.layout) {
      const base = this.follower.libraries.find((r) => r.ggmlBase);
      if (base) this.resolveLayout(base.path, roles.path);
    }
    if (!this.layout) {
      this.warn(`operator probes on ${roles.path} skipped: the ggml layout is unknown`);
      return;
    }
    if (this.options.opTiming === "steps" && this.attachSteps(roles)) {
      // MoE routing ids are read when their consumer operator starts: probe just those
      if (this.options.moe) this.attachOpFunctions(roles, MOE_CONSUMERS, true);
      return;
    }
    for (const probe of BARRIER_PROBES) this.attacher.attachFunction(roles, probe);
    this.attachOpFunctions(roles, this.options.ops, false);
  }

  /**
   * Step probes: one on the compute loop's own barrier call (and on the final one), which time
   * every step of every thread and name its nodes. False (nothing attached) when the library
   * does not have the loop's pattern; the caller then probes the operator functions.
   */
  private attachSteps(roles: LibraryRoles): boolean {
    let sites: StepSite[] = [];
    try {
      sites = findStepSites(readElf(roles.path), this.layout!.cgraph.nNodes);
    } catch (error) {
      this.warn(`cannot read ${roles.path}: ${(error as Error).message}`);
    }
    const planned = stepProbeSites(sites);
    if (planned.loop.length === 0) {
      this.warn(
        `the compute loop's barrier call was not found in ${roles.path}; operators are timed by probing their functions instead`,
      );
      return false;
    }
    const errors: string[] = [];
    const failed = (p: ProbeSite, error: string) => errors.push(stepProbeError(p, error));
    // loop sites first: when none attaches, nothing is left half done
    const loop = this.attacher.attachStepSites(roles.path, planned.loop, failed);
    if (loop.length === 0) {
      this.warn(`${errors[0]}; operators are timed by probing their functions instead`);
      return false;
    }
    const final = this.attacher.attachStepSites(roles.path, planned.final, failed);
    for (const error of errors) this.warn(`${error}; some steps of that loop will be missing`);
    this.attacher.keepStepProbes(roles.path, [...loop, ...final]);
    this.stepLibraries.push(roles.path);
    this.note({
      kind: "steps",
      library: roles.path,
      sites: [...loop, ...final].map(({ site }) => ({
        fileOffset: site.fileOffset,
        final: site.final,
        register: site.register,
        function: site.function,
      })),
    });
    return true;
  }

  /** Entry and return probes on the per-operator functions of `wanted` ops (null: all). */
  private attachOpFunctions(
    roles: LibraryRoles,
    wanted: readonly string[] | null,
    moeOnly: boolean,
  ): void {
    const plan = operatorFunctionSites(roles, wanted, {
      probeAllOps: this.options.probeAllOps,
      moeOnly,
      firstIndex: this.opFuncs.length,
    });
    if (plan.stepped.length > 0) {
      this.note({
        kind: "unprobed",
        library: roles.path,
        reason: "single-stepped entry instruction",
        ops: plan.stepped,
      });
    }
    const failures: string[] = [];
    const failed = (c: ProbeSite, error: string) =>
      failures.push(`${functionLabel(c.symbol)} (${error})`);
    const attached = [
      ...this.attacher.attachSites(["op_enter", "op_exit"], roles.path, plan.functions, failed),
      ...this.attacher.attachSites(
        ["op_method_enter", "op_exit"],
        roles.path,
        plan.methods,
        failed,
      ),
    ]
      .sort((a, b) => a.index - b.index)
      .map((c) => ({ index: c.index, symbol: c.symbol, library: roles.path }));
    if (failures.length > 0) {
      this.warn(
        `${failures.length} of ${roles.opFunctions.length + roles.extraComputes.length} operator functions in ${roles.path} cannot carry a probe ` +
          `and are timed from the barriers instead: ${failures.join(", ")}`,
      );
    }
    this.opFuncs.push(...attached);
    this.operatorFunctions.push(
      ...attached.map((f) => ({ index: f.index, op: functionLabel(f.symbol) })),
    );
    if (attached.length === 0 && !moeOnly)
      this.warn(`no per-operator function of ${roles.path} could be probed`);
    this.note({ kind: "attach", library: roles.path, opFuncs: attached });
  }

  private resolveLayout(ggmlBase: string, ggmlCpu?: string): void {
    try {
      this.layout = probeLayout(
        layoutProbePath,
        ggmlBase,
        ggmlCpu ?? this.follower.libraries.find((r) => r.ggmlCpu)?.path,
      );
    } catch (error) {
      if (!(error instanceof LayoutError)) throw error;
      this.warn(error.message);
      return;
    }
    const error = this.tracer.setLayout(toNativeLayout(this.layout));
    if (error) {
      this.warn(error);
      this.layout = null;
    }
  }

  private warn(message: string): void {
    this.options.log(message);
    this.note({ kind: "warning", message });
  }

  private note(note: RunNote): void {
    this.writer.note(note);
  }

  private header(): RunHeader {
    const layout = this.layout;
    return {
      format: "profinfer-raw",
      version: 1,
      eventAbi: this.native.eventAbi,
      profinfer: this.options.version,
      level: this.options.level,
      options: {
        sampleTokens: this.options.sampleEvery,
        ops: this.options.ops,
        window: this.options.window,
        moe: this.options.moe,
        pmc: this.options.counters
          ? [
              ...this.options.counters.counters.map((c) => c.name),
              ...this.options.counters.unavailable.map((c) => c.name),
            ]
          : null,
      },
      ...(this.counters.length > 0
        ? { counters: this.counters.map((c) => ({ name: c.name, hardware: c.hardware })) }
        : {}),
      clock: this.clock,
      target: {
        pid: this.pid,
        command: this.command,
        libraries: Object.fromEntries(
          this.follower.libraries.map((r) => [
            r.path,
            { llama: r.llama, ggmlBase: r.ggmlBase, ggmlCpu: r.ggmlCpu, debugInfo: r.hasDebugInfo },
          ]),
        ),
      },
      layout: layout ?? undefined,
      opNames: layout?.opNames ?? [],
      unaryOpNames: layout?.unaryOpNames ?? [],
      gluOpNames: layout?.gluOpNames ?? [],
      typeNames: layout?.typeNames ?? [],
      opFuncs: this.opFuncs,
      host: {
        hostname: hostname(),
        kernel: release(),
        cpuModel: cpus()[0]?.model ?? "unknown",
        cpus: cpus().length,
      },
    };
  }

  /** The header can be written: what the level needs from the libraries is known. */
  private readyToWrite(): boolean {
    const roles = this.follower.libraries;
    if (this.options.level === "token") return roles.some((r) => r.llama);
    if (this.options.level === "metrics") return roles.some((r) => r.ggmlCpu);
    return this.layout !== null;
  }

  /** `counts[type]`: the batch's events of each type (the addon counts them as it copies). */
  private onBatch(batch: Buffer, counts: Uint32Array): void {
    const libraryEvents = counts[EV_LIBRARY] ?? 0;
    const tokenBegins = counts[EventType.TOKEN_BEGIN] ?? 0;
    this.stats.events += counts.reduce((a, b) => a + b, 0) - libraryEvents;
    this.stats.tokens += counts[EventType.TOKEN_END] ?? 0;
    this.layoutCheck.take(batch, counts[EventType.TENSOR] ?? 0);
    this.stats.bytes += batch.length;
    if (libraryEvents > 0) {
      // the process stopped itself at the dynamic linker's hook: attach to what it loaded, resume
      this.followLibraries();
      this.resume();
      batch = withoutType(batch, EV_LIBRARY);
    }
    if (tokenBegins > 0 && !this.firstDecode) {
      // profinfer's own CPU is counted from here (the target's decoding, not its start-up), and
      // the model is loaded by now: note which one it is
      this.firstDecode = { cpu: process.cpuUsage(), wallMs: performance.now() };
      this.note({ kind: "model", models: modelsOfProcess(this.pid, this.command) });
    }
    if (this.layoutCheck.due(false)) this.checkLayout();
    if (this.layoutCheck.refusal) return;
    if (!this.writer.opened && this.readyToWrite()) this.writer.open(this.header());
    this.writer.events(batch);
  }

  private checkLayout(): void {
    const refusal = this.layoutCheck.judge(this.layout);
    if (!refusal) return;
    this.tracer.detach();
    this.resume();
    this.warn(refusal);
  }

  /** SIGCONT after a stop at the dynamic linker's hook (harmless when it is running). */
  private resume(): void {
    try {
      process.kill(this.pid, "SIGCONT");
    } catch {
      // gone
    }
  }

  /**
   * For overhead measurements (record --toggle-op-probes): takes the step probes off, or puts
   * them back, and notes when (CLOCK_MONOTONIC, the events' clock), so that decode calls with
   * and without them can be told apart within one run. False when there are none to toggle.
   */
  toggleStepProbes(): boolean {
    if (this.state !== "tracing") return false;
    const change = this.attacher.toggleStepProbes();
    if (!change) return false;
    this.note({ kind: "stepProbes", ...change });
    return true;
  }

  /** Events dropped so far (the BPF per-CPU counters), for the live status line. */
  liveDrops(): number {
    if (this.state === "closed") return this.stats.drops;
    return this.tracer.counters().drops.reduce((a, b) => a + b, 0);
  }

  /**
   * Which of the asked-for levels could be traced, and why not where not: a library may lack a
   * symbol (a stripped or unusual build), or the layout may not resolve.
   */
  levelReport(): string[] {
    const wanted = LEVELS[this.options.level];
    const roles = this.follower.libraries;
    const missing: string[] = [];
    if (!roles.some((r) => r.llama))
      missing.push("token level: no mapped library defines llama_decode");
    if (wanted >= PiLevel.GRAPH && !roles.some((r) => r.ggmlBase)) {
      missing.push("graph level: no mapped library defines ggml_backend_sched_graph_compute_async");
    }
    if (wanted >= PiLevel.OP) {
      if (!roles.some((r) => r.ggmlCpu))
        missing.push(
          "operator level: no CPU backend (ggml_graph_compute with ggml_barrier) was mapped",
        );
      else if (!this.layout)
        missing.push("operator level: the ggml tensor layout of this build could not be resolved");
      else if (this.opFuncs.length === 0 && this.stepLibraries.length === 0)
        missing.push(
          "operator level: no ggml_compute_forward_<op> function could be probed; operators are timed from the barriers only",
        );
      if (this.refusal) missing.push(`operator level: ${this.refusal}`);
    }
    return missing;
  }

  /** Stops tracing (draining the ring buffer), writes the closing notes; the process is untouched. */
  async finish(exit: { code: number | null; signal: string | null } | null): Promise<void> {
    if (this.state === "stopping" || this.state === "closed") return;
    this.state = "stopping";
    const ended = new Promise<void>((resolveEnd) => (this.streamEnded = resolveEnd));
    this.tracer.stop();
    await ended;
    if (this.firstDecode) {
      const used = process.cpuUsage(this.firstDecode.cpu);
      this.profilerCpu = {
        cpuMs: Math.round((used.user + used.system) / 100) / 10,
        wallMs: Math.round((performance.now() - this.firstDecode.wallMs) * 10) / 10,
      };
    }
    const counters = this.tracer.counters();
    this.finalReadings = { aggregates: this.tracer.aggregates(), counters };
    this.tracer.detach();
    this.resume();
    this.stats.drops = counters.drops.reduce((a, b) => a + b, 0);
    if (this.layoutCheck.due(true)) this.checkLayout();
    if (!this.writer.opened) this.writer.open(this.header());
    this.note({
      kind: "drops",
      ...Object.fromEntries(DROP_COUNTERS.map((d, i) => [d.note, counters.drops[i] ?? 0])),
    });
    if (this.options.level === "metrics") {
      this.note({ kind: "aggregates", ...this.finalReadings.aggregates });
    }
    this.note({
      kind: "hits",
      ...(Object.fromEntries(HIT_COUNTERS.map((h, i) => [h.note, counters.hits[i] ?? 0])) as {
        token: number;
        graph: number;
        op: number;
        barrier: number;
        sched: number;
        snapshotTensors: number;
      }),
      probes: counters.attached,
    });
    if (this.profilerCpu) this.note({ kind: "profiler", ...this.profilerCpu });
    if (exit) this.note({ kind: "exit", code: exit.code, signal: exit.signal });
    this.note({ kind: "end", events: this.stats.events, tokens: this.stats.tokens });
    this.writer.close();
    this.state = "closed";
    this.tracer.close();
  }
}

/** A batch without the records of one event type. */
function withoutType(batch: Buffer, type: number): Buffer {
  const parts: Buffer[] = [];
  for (let at = 0; at + 8 <= batch.length;) {
    const length = batch.readUInt32LE(at);
    if (batch.readUInt32LE(at + 4) !== type) parts.push(batch.subarray(at, at + 4 + length));
    at += 4 + length;
  }
  return Buffer.concat(parts);
}
