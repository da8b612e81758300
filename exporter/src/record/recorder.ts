// SPDX-License-Identifier: Apache-2.0
// A recording of one process. The recorder orchestrates: it opens the tracer, follows the
// libraries the process maps (libraryFollower.ts), probes each (libraryProbes.ts, over
// probePlan.ts and probeAttacher.ts), checks the resolved layout (layoutCheck.ts), streams events
// into the run (runWriter.ts) and finishes cleanly; it is in one state at a time.
import { hostname, cpus, release } from "node:os";
import { join } from "node:path";
import { DROP_COUNTERS, EV_LIBRARY, HIT_COUNTERS, PiLevel } from "../abi/constants.js";
import { EventType, STEPS_RECORD } from "../abi/events.js";
import { modelsOfProcess } from "../discovery/modelFile.js";
import { kernelHasUprobeMulti } from "../host/kernel.js";
import type { LiveRecording } from "../sinks/liveSink.js";
import type { RunHeader } from "../trace/header.js";
import type { Aggregates, BackendsNote, HitsNote, RunNote } from "../trace/notes.js";
import { mappedBases } from "../discovery/libraries.js";
import type { BackendStallFormula } from "../trace/backendStall.js";
import type { CounterRequest } from "./counters.js";
import { LayoutCheck } from "./layoutCheck.js";
import { LibraryFollower } from "./libraryFollower.js";
import { LibraryProbes } from "./libraryProbes.js";
import type { KernelRequests, NativeModule, NativeTracer } from "./nativeTracer.js";
import { ProbeAttacher } from "./probeAttacher.js";
import { LEVELS } from "./probePlan.js";
import type { RecordOptions } from "./options.js";
import { RunWriter, type SegmentStats } from "./runWriter.js";

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
  private readonly probes: LibraryProbes;
  private finalReadings: {
    aggregates: Aggregates;
    counters: { drops: number[]; hits: number[] };
    requests: KernelRequests;
  } | null = null;
  private failure: Error | null = null;
  /** when tracing stopped (CLOCK_MONOTONIC ns), and whether the target had exited */
  private stoppedNs: bigint | null = null;
  private targetExited = false;
  private streamEnded: (() => void) | null = null;
  /** process.cpuUsage() and the time at the first llama_decode (the model is noted then) */
  private firstDecode: { cpu: NodeJS.CpuUsage; wallMs: number } | null = null;
  /** the counters that opened, in the order the events carry their readings */
  readonly counters: CounterRequest[] = [];
  /** the backend-stall formula, when every event it needs opened */
  backendStall: BackendStallFormula | null = null;
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
      options.rotation ?? null,
    );
    this.tracer = new native.Tracer({
      tgid: pid,
      level: LEVELS[options.level],
      sampleEvery: options.sampleEvery,
      windowFirst: options.window?.[0] ?? 0,
      windowLast: options.window?.[1] ?? 0,
      windowOnly: options.windowOnly ?? false,
      opsWithoutTokens: true,
      moe: options.moe,
      // nothing but the dynamic linker's control events travel at level metrics
      ringBufferBytes: options.level === "metrics" ? 256 << 10 : options.ringBufferBytes,
      uprobeMulti,
      stream: options.level !== "metrics",
      aggregate: options.aggregate || options.level === "metrics",
      aggregateLayers: options.aggregateLayers,
      aggregateMoe: options.aggregateMoe,
      batchTokens: options.batchTokens,
      counters: (options.counters?.counters ?? []).map((c) => ({
        name: c.name,
        type: c.type,
        config: c.config,
        config1: c.config1,
        config2: c.config2,
      })),
    });
    this.attacher = new ProbeAttacher(this.tracer, uprobeMulti, (m) => this.warn(m));
    this.probes = new LibraryProbes(
      this.tracer,
      this.attacher,
      options,
      (m) => this.warn(m),
      (n) => this.note(n),
    );
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
    const stall = selection?.backendStall ?? null;
    if (stall && stall.formula.events.every((e) => this.counters.some((c) => c.name === e.name))) {
      this.backendStall = stall.formula;
    } else if (stall) {
      this.warn(
        `the backend-stall figure (${stall.formula.metric}) is not recorded: not all of its events opened`,
      );
    }
    if (stall?.note) this.warn(`backend stalls use the generic events: ${stall.note}`);
    if (requested.length > 0 || (selection?.unavailable.length ?? 0) > 0) {
      this.options.log(this.counterSummary());
    }
  }

  /** One line saying which counters are recorded and which of them are real hardware counts. */
  counterSummary(): string {
    if (this.counters.length === 0) return "counters: none recorded";
    const kind = (c: CounterRequest) => (c.hardware ? "hardware" : "software");
    const stall = this.backendStall ? `; backend stalls: ${this.backendStall.id}` : "";
    return `counters: ${this.counters.map((c) => `${c.name} (${kind(c)})`).join(", ")}${stall}`;
  }

  /** The in-kernel aggregates so far (cumulative), for the metrics exporter. */
  aggregates(): Aggregates {
    return this.finalReadings?.aggregates ?? this.tracer.aggregates();
  }

  /**
   * The requests the kernel follows, for the metrics exporter: each sequence's current one, and
   * those replaced since the last call (each handed out once). After the end of tracing: the
   * last readings, `stoppedNs`, when tracing stopped, and whether the target had exited then (a
   * target that exited ended its requests: none was cut off by the end of tracing).
   */
  requests(): KernelRequests & { stoppedNs: bigint | null; targetExited: boolean } {
    const final = this.finalReadings;
    if (!final) return { ...this.tracer.requests(), stoppedNs: null, targetExited: false };
    const finished = final.requests.finished;
    final.requests = { ...final.requests, finished: [] };
    return {
      ...final.requests,
      finished,
      stoppedNs: this.stoppedNs,
      targetExited: this.targetExited,
    };
  }

  /** Probe hits and drops so far (cumulative), for the metrics exporter. */
  probeCounters(): { drops: number[]; hits: number[] } {
    return this.finalReadings?.counters ?? this.tracer.counters();
  }

  /** Events user space received so far. */
  eventsReceived(): number {
    return this.stats.events;
  }

  /** The probed operator functions' ops, by aggregate key (their index). */
  get operatorFunctions(): readonly { index: number; op: string }[] {
    return this.probes.operatorFunctions;
  }

  /** the build's op names by enum value, once its layout is known */
  get opNames(): { ops: string[]; unary: string[]; glu: string[] } | undefined {
    const l = this.probes.layout;
    return l ? { ops: l.opNames, unary: l.unaryOpNames, glu: l.gluOpNames } : undefined;
  }

  /** the llama.cpp / ggml libraries found in the target so far */
  /** What the events files hold: the segments of a rotated run, what --max-disk removed. */
  get segments(): SegmentStats {
    return this.writer.segments;
  }

  get libraries(): string[] {
    return this.follower.libraries.map((r) => r.path);
  }

  /** the target's executable, when it has no symbol table to find llama.cpp in (stripped) */
  get strippedExecutable(): string | null {
    return this.follower.strippedExecutable;
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
    for (const roles of found) this.probes.attach(roles);
    this.noteBackends();
  }

  /** The text of the last backends note, to write one only when something more resolved. */
  private backendsNoted = "";

  /**
   * The build's backend devices with their get_name functions placed in the target, and the ggml
   * libraries it mapped: what names each split's backend (a library loaded later resolves more).
   */
  private noteBackends(): void {
    const backends = this.probes.backends;
    if (!backends) return;
    let bases: Map<string, bigint>;
    try {
      bases = mappedBases(this.pid);
    } catch {
      return;
    }
    const hex = (n: bigint) => `0x${n.toString(16)}`;
    const note: BackendsNote = {
      kind: "backends",
      devices: backends.devices.map((d) => {
        const base = d.getName ? bases.get(d.getName.library) : undefined;
        return {
          name: d.name,
          description: d.description,
          registry: d.registry,
          getName: base !== undefined ? hex(base + BigInt(d.getName!.offset)) : null,
        };
      }),
      libraries: [...bases]
        .filter(([path]) => /\/lib(ggml|llama)[^/]*\.so/.test(path))
        .map(([path, base]) => ({ path, base: hex(base) })),
    };
    this.backendDevices = note.devices;
    const text = JSON.stringify(note);
    if (text === this.backendsNoted) return;
    this.backendsNoted = text;
    this.note(note);
  }

  /** the build's devices located in the target (the last backends note's) */
  private backendDevices: BackendsNote["devices"] = [];

  backendName(deviceGetName: bigint): string {
    const named = this.backendDevices.filter(
      (d) => d.getName !== null && BigInt(d.getName) === deviceGetName,
    );
    // several devices of one implementation share it: their registry's name then
    return named.length === 1 ? named[0]!.name : (named[0]?.registry ?? "unknown");
  }

  private warn(message: string): void {
    this.options.log(message);
    this.note({ kind: "warning", message });
  }

  private note(note: RunNote): void {
    this.writer.note(note);
  }

  private header(): RunHeader {
    const layout = this.probes.layout;
    return {
      format: "profinfer-raw",
      version: 1,
      eventAbi: this.native.eventAbi,
      profinfer: this.options.version,
      profinferPid: process.pid,
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
      ...(this.backendStall ? { backendStall: { formula: this.backendStall.id } } : {}),
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
      opFuncs: this.probes.opFuncs,
      ...(this.probes.backendCalls.length > 0 ? { backendCalls: this.probes.backendCalls } : {}),
      host: {
        hostname: hostname(),
        kernel: release(),
        cpuModel: cpus()[0]?.model ?? "unknown",
        cpus: cpus().length,
      },
      ...(this.options.resource ? { resource: this.options.resource } : {}),
      ...(this.options.machine ? { machine: this.options.machine } : {}),
    };
  }

  /** The header can be written: what the level needs from the libraries is known. */
  private readyToWrite(): boolean {
    const roles = this.follower.libraries;
    if (this.options.level === "token") return roles.some((r) => r.llama);
    if (this.options.level === "metrics") return roles.some((r) => r.ggmlCpu);
    return this.probes.layout !== null;
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
      batch = withoutTypes(batch, LIBRARY_EVENTS);
    }
    if (tokenBegins > 0 && !this.firstDecode) {
      // profinfer's own CPU is counted from here (the target's decoding, not its start-up), and
      // the model is loaded by now: note which one it is
      this.firstDecode = { cpu: process.cpuUsage(), wallMs: performance.now() };
      this.note({ kind: "model", models: modelsOfProcess(this.pid, this.command) });
    }
    if (this.layoutCheck.due(false)) this.checkLayout();
    // once the layout is refused, what was read through it is garbage; the rest of what the
    // kernel recorded (calls, batches, graph timing, scheduling) is kept
    if (this.layoutCheck.refusal) batch = withoutTypes(batch, READ_THROUGH_LAYOUT);
    if (!this.writer.opened && this.readyToWrite()) this.writer.open(this.header());
    this.writer.events(batch);
  }

  private checkLayout(): void {
    const refusal = this.layoutCheck.judge(this.probes.layout);
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
        missing.push("operator level: no CPU backend (ggml_graph_compute) was mapped");
      else if (!this.probes.layout)
        missing.push("operator level: the ggml tensor layout of this build could not be resolved");
      else if (this.probes.opFuncs.length === 0 && this.probes.stepLibraries.length === 0)
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
    // process.hrtime is CLOCK_MONOTONIC, the clock of the events
    this.stoppedNs = process.hrtime.bigint();
    this.targetExited = exit !== null;
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
    this.finalReadings = {
      aggregates: this.tracer.aggregates(),
      counters,
      requests: this.tracer.requests(),
    };
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
      const aggregates = this.finalReadings.aggregates;
      this.note({
        kind: "aggregates",
        ...aggregates,
        // JSON has no BigInt: the backends' keys as hex
        backends: (aggregates.backends ?? []).map((b) => ({
          ...b,
          deviceGetName: `0x${BigInt(b.deviceGetName).toString(16)}`,
          device: `0x${BigInt(b.device).toString(16)}`,
        })),
        boundsNs: [...this.native.aggregateBoundsNs],
      });
    }
    this.note({
      kind: "hits",
      ...(Object.fromEntries(HIT_COUNTERS.map((h, i) => [h.note, counters.hits[i] ?? 0])) as Omit<
        HitsNote,
        "kind"
      >),
      probes: counters.attached,
    });
    if (this.profilerCpu) this.note({ kind: "profiler", ...this.profilerCpu });
    if (exit) this.note({ kind: "exit", code: exit.code, signal: exit.signal });
    this.note({
      kind: "end",
      events: this.stats.events,
      tokens: this.stats.tokens,
      stoppedNs: String(this.stoppedNs),
    });
    this.writer.close();
    this.state = "closed";
    this.tracer.close();
  }
}

/** The dynamic linker's control events, never written. */
const LIBRARY_EVENTS: ReadonlySet<number> = new Set([EV_LIBRARY]);

/** The events whose contents are read through the resolved ggml layout (tensors, nodes, steps). */
const READ_THROUGH_LAYOUT: ReadonlySet<number> = new Set([
  EventType.GRAPH_NODES,
  EventType.TENSOR,
  EventType.OP_BEGIN,
  EventType.OP_END,
  EventType.STEP,
  STEPS_RECORD,
  EventType.MOE_IDS,
]);

/** A batch without the records of the given event types. */
function withoutTypes(batch: Buffer, types: ReadonlySet<number>): Buffer {
  const parts: Buffer[] = [];
  for (let at = 0; at + 8 <= batch.length;) {
    const length = batch.readUInt32LE(at);
    if (!types.has(batch.readUInt32LE(at + 4))) parts.push(batch.subarray(at, at + 4 + length));
    at += 4 + length;
  }
  return Buffer.concat(parts);
}
