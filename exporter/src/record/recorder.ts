// SPDX-License-Identifier: Apache-2.0
// A recording of one process: load the tracer, follow the libraries the process maps (also the
// ones it dlopens later), attach probes, stream events into events.pinf, finish cleanly.
import { readdirSync } from "node:fs";
import { hostname, cpus, release } from "node:os";
import { join } from "node:path";
import { kernelHasUprobeMulti } from "../host/kernel.js";
import {
  LayoutError,
  probeLayout,
  scoreCpuVariants,
  toNativeLayout,
  validateTensorReadings,
  type ProbedLayout,
} from "../discovery/layout.js";
import {
  classifyLibrary,
  mappedFiles,
  opOfFunction,
  type LibraryRoles,
} from "../discovery/libraries.js";
import { readElf } from "../discovery/elf.js";
import { STEP_REGISTERS, findStepSites, type StepSite } from "../discovery/stepSites.js";
import { EventType, decodeEvent, type TensorEvent } from "../trace/events.js";
import type { CounterRequest, CounterSelection } from "./counters.js";
import { RawFileWriter } from "../trace/rawFile.js";
import type { RunNote } from "../trace/notes.js";
import type { RunHeader } from "../trace/header.js";
import { modelsOfProcess } from "../discovery/modelFile.js";
import {
  layoutProbePath,
  type NativeAggregates,
  type NativeModule,
  type NativeTracer,
  type ProbeHandler,
} from "./nativeTracer.js";

export type Level = "token" | "graph" | "op" | "metrics";
export type OpTiming = "steps" | "functions";

/** The operators that consume MoE routing ids (read when the first of them starts). */
const MOE_CONSUMERS = ["get_rows", "mul_mat_id"];
const STEP_FINAL = 255;
/** bpf/profinfer.h PI_OP_NO_AGGREGATE: an operator function probe's cookie bit */
const OP_NO_AGGREGATE = 0x40000000;

/**
 * BPF level (enum pi_level) of each level. `metrics` probes what `op` does but sends no event to
 * user space: the kernel keeps the aggregates the metrics exporter reads.
 */
export const LEVELS: Record<Level, number> = { token: 1, graph: 2, op: 3, metrics: 3 };

export interface RecordOptions {
  outDir: string;
  level: Level;
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
  /** sees what events.pinf receives, as it is written (live sinks: the OTLP export) */
  listener?: RecordListener;
}

/**
 * A live view of the recording: the header, then every batch of events and every note in the
 * order events.pinf gets them. Called on the recorder's own turn of the event loop, so it must
 * only take what it needs and return (a batch's buffer may be reused after the call); what it
 * throws is reported once and otherwise ignored: recording goes on.
 */
export interface RecordListener {
  header(header: RunHeader): void;
  events(batch: Buffer): void;
  note(note: RunNote): void;
}

/**
 * A probe site: the function it is in, its file offset, the cookie its handler reads (an
 * operator function's index; for a step probe, the register holding node_n + 1, or final).
 */
interface ProbeSite {
  symbol: string;
  offset: number;
  cookie: number;
}

function stepProbeError(site: ProbeSite, error: string): string {
  return `step probe in ${site.symbol} (file offset 0x${site.offset.toString(16)}): ${error}`;
}

/** The step probes of one library, as attached. */
interface StepProbes {
  path: string;
  sites: ProbeSite[];
}

/** Event type of the dynamic linker hook (bpf/profinfer.h PI_EV_LIBRARY): control, not recorded. */
const EV_LIBRARY = 14;
const VALIDATION_SAMPLE = 24;

export interface RecorderStats {
  tokens: number;
  events: number;
  bytes: number;
  drops: number;
}

export class Recorder {
  private tracer: NativeTracer;
  private writer: RawFileWriter | null = null;
  private pending: Buffer[] = [];
  private notes: RunNote[] = [];
  private examined = new Set<string>();
  private roles: LibraryRoles[] = [];
  private layout: ProbedLayout | null = null;
  private opFuncs: { index: number; symbol: string; library: string }[] = [];
  private validating: TensorEvent[] = [];
  private validated = false;
  private refused: string | null = null;
  private finished = false;
  private finalAggregates: NativeAggregates | null = null;
  private finalCounters: { drops: number[]; hits: number[] } | null = null;
  private failure: Error | null = null;
  private streamEnded: (() => void) | null = null;
  private closed = false;
  private chosenVariants = new Map<string, string | null>();
  private stepLibraries: string[] = [];
  private readonly uprobeMulti: boolean;
  private clock: { monotonicNs: string; realtimeNs: string };
  /** the counters that opened, in the order the events carry their readings */
  readonly counters: CounterRequest[] = [];
  private modelNoted = false;
  /** the step probes attached, to attach again after toggleStepProbes took them off */
  private stepProbes: StepProbes[] = [];
  private stepProbesOn = true;
  /** process.cpuUsage() and the time at the first llama_decode */
  private selfStart: { cpu: NodeJS.CpuUsage; wallMs: number } | null = null;
  /** profinfer's CPU from the first llama_decode to the end of tracing (all its threads) */
  profilerCpu: { cpuMs: number; wallMs: number } | null = null;
  private listenerFailed = false;
  readonly stats: RecorderStats = { tokens: 0, events: 0, bytes: 0, drops: 0 };

  /** the llama.cpp / ggml libraries found in the target so far */
  get libraries(): string[] {
    return this.roles.map((r) => r.path);
  }

  constructor(
    private readonly native: NativeModule,
    readonly pid: number,
    private readonly command: string[],
    private readonly options: RecordOptions,
  ) {
    this.uprobeMulti = kernelHasUprobeMulti(release());
    const [monotonicNs, realtimeNs] = native.clockPair();
    this.clock = { monotonicNs, realtimeNs };
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
      uprobeMulti: this.uprobeMulti,
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
    for (const missing of options.counters?.unavailable ?? []) {
      this.warn(`counter ${missing.name} is not recorded: ${missing.reason}`);
    }
    const requested = options.counters?.counters ?? [];
    for (const status of this.tracer.counterStatus()) {
      const req = requested.find((c) => c.name === status.name);
      if (status.opened && req) this.counters.push(req);
      else this.warn(`counter ${status.name} is not recorded: ${status.error}`);
    }
    if (requested.length > 0 || (options.counters?.unavailable.length ?? 0) > 0) {
      options.log(this.counterSummary());
    }
  }

  /** One line saying which counters are recorded and which of them are real hardware counts. */
  counterSummary(): string {
    if (this.counters.length === 0) return "counters: none recorded";
    const kind = (c: CounterRequest) => (c.hardware ? "hardware" : "software");
    return `counters: ${this.counters.map((c) => `${c.name} (${kind(c)})`).join(", ")}`;
  }

  /** The in-kernel aggregates so far (cumulative), for the metrics exporter. */
  aggregates(): NativeAggregates {
    return this.finalAggregates ?? this.tracer.aggregates();
  }

  /** Probe hits and drops so far (cumulative), for the metrics exporter. */
  probeCounters(): { drops: number[]; hits: number[] } {
    return this.finalCounters ?? this.tracer.counters();
  }

  /** The probed operator functions (index = aggregate key), for the metrics exporter. */
  get operatorFunctions(): readonly { index: number; symbol: string }[] {
    return this.opFuncs;
  }

  /** the build's op names by enum value, once its layout is known */
  get opNames(): { ops: string[]; unary: string[]; glu: string[] } | undefined {
    const l = this.layout;
    return l ? { ops: l.opNames, unary: l.unaryOpNames, glu: l.gluOpNames } : undefined;
  }

  get rawPath(): string {
    return join(this.options.outDir, "events.pinf");
  }

  /** Attaches to what the process has mapped now and to the dynamic linker, and starts polling. */
  start(): void {
    if (LEVELS[this.options.level] >= LEVELS.op) {
      const error = this.tracer.attachSchedTracepoints();
      if (error) this.warn(`scheduler tracepoints: ${error}; off-CPU time will not be shown`);
    }
    this.scanLibraries();
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

  /** Looks at the process's mappings and attaches probes to every new library that has any. */
  scanLibraries(): void {
    let files: string[];
    try {
      files = mappedFiles(this.pid);
    } catch {
      return; // the process is gone
    }
    const found: LibraryRoles[] = [];
    for (const path of files) {
      if (this.examined.has(path)) continue;
      this.examined.add(path);
      const roles = classifyLibrary(path);
      if (!roles) continue;
      if (roles.dynamicLinker) this.attach("dl_activity", roles, "_dl_debug_state", 0);
      if (roles.ggmlCpu && !this.isChosenCpuVariant(path)) continue;
      if (roles.llama || roles.ggmlBase || roles.ggmlCpu) found.push(roles);
    }
    // ggml's base library first: the layout it gives is needed before operator probes go in
    found.sort((a, b) => Number(b.ggmlBase) - Number(a.ggmlBase));
    this.roles.push(...found);
    for (const roles of found) {
      this.attachLibrary(roles);
    }
  }

  /**
   * A build with dynamically loaded backends (node-llama-cpp, GGML_BACKEND_DL) dlopens every
   * libggml-cpu-<variant>.so of its folder to ask its score and keeps the best. Only that one
   * will compute, so only that one is probed: thousands of probes on the others would cost their
   * detach time for nothing.
   */
  private isChosenCpuVariant(path: string): boolean {
    const match = /^(.*)\/libggml-cpu-[^/]+\.so$/.exec(path);
    if (!match) return true;
    const dir = match[1]!;
    let best: string | null | undefined = this.chosenVariants.get(dir);
    if (best === undefined) {
      best = null;
      try {
        const variants = readdirSync(dir)
          .filter((f) => /^libggml-cpu-[^/]+\.so$/.test(f))
          .map((f) => join(dir, f));
        let top = 0;
        for (const [variant, score] of scoreCpuVariants(layoutProbePath, variants)) {
          if (score > top) [best, top] = [variant, score];
        }
      } catch (error) {
        this.warn(`${(error as Error).message}; probing every CPU variant in ${dir}`);
      }
      this.chosenVariants.set(dir, best);
    }
    return best === null || best === path;
  }

  private attach(
    handler: ProbeHandler,
    roles: LibraryRoles,
    symbol: string,
    cookie: number,
  ): boolean {
    const site = roles.probeSites.get(symbol);
    const error = this.tracer.attachUprobe(
      handler,
      roles.path,
      symbol,
      cookie,
      site?.fileOffset ?? 0,
    );
    if (error) this.warn(error);
    return !error;
  }

  private attachLibrary(roles: LibraryRoles): void {
    const level = LEVELS[this.options.level];
    if (roles.llama) {
      this.attach("decode_enter", roles, "llama_decode", 0);
      this.attach("decode_exit", roles, "llama_decode", 0);
    }
    if (roles.ggmlBase && level >= LEVELS.graph) {
      this.attach("sched_graph_enter", roles, "ggml_backend_sched_graph_compute_async", 0);
      this.attach("sched_graph_exit", roles, "ggml_backend_sched_graph_compute_async", 0);
    }
    // where graphs are snapshotted: a (re)allocation by the scheduler says when to read them again
    if (
      roles.ggmlBase &&
      level >= LEVELS.op &&
      roles.probeSites.has("ggml_backend_sched_alloc_graph")
    )
      this.attach("sched_alloc", roles, "ggml_backend_sched_alloc_graph", 0);
    if (roles.ggmlBase && level >= LEVELS.graph && !this.layout) this.resolveLayout(roles.path);
    if (roles.ggmlCpu && level >= LEVELS.graph) {
      this.attach("cpu_graph_enter", roles, "ggml_graph_compute", 0);
      this.attach("cpu_graph_exit", roles, "ggml_graph_compute", 0);
    }
    if (roles.ggmlCpu && level >= LEVELS.op) {
      if (!this.layout) {
        const base = this.roles.find((r) => r.ggmlBase);
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
      this.attach("barrier_enter", roles, "ggml_barrier", 0);
      this.attach("barrier_exit", roles, "ggml_barrier", 0);
      this.attachOpFunctions(roles, this.options.ops, false);
    }
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
    if (!sites.some((s) => !s.final)) {
      this.warn(
        `the compute loop's barrier call was not found in ${roles.path}; operators are timed by probing their functions instead`,
      );
      return false;
    }
    const probe = (site: StepSite): ProbeSite & { site: StepSite } => ({
      symbol: site.function ?? "ggml_graph_compute_thread",
      offset: site.fileOffset,
      cookie: site.final ? STEP_FINAL : STEP_REGISTERS.indexOf(site.register!),
      site,
    });
    const errors: string[] = [];
    const failed = (p: ProbeSite, error: string) => errors.push(stepProbeError(p, error));
    // loop sites first: when none attaches, nothing is left half done
    const loop = this.attachSites(
      ["step_site"],
      roles.path,
      sites.filter((s) => !s.final).map(probe),
      failed,
    );
    if (loop.length === 0) {
      this.warn(`${errors[0]}; operators are timed by probing their functions instead`);
      return false;
    }
    const final = this.attachSites(
      ["step_site"],
      roles.path,
      sites.filter((s) => s.final).map(probe),
      failed,
    );
    for (const error of errors) this.warn(`${error}; some steps of that loop will be missing`);
    const attached = [...loop, ...final].map((p) => p.site);
    this.stepProbes.push({
      path: roles.path,
      sites: [...loop, ...final].map(({ symbol, offset, cookie }) => ({ symbol, offset, cookie })),
    });
    this.stepLibraries.push(roles.path);
    this.note({
      kind: "steps",
      library: roles.path,
      sites: attached.map((s) => ({
        fileOffset: s.fileOffset,
        final: s.final,
        register: s.register,
        function: s.function,
      })),
    });
    return true;
  }

  /** Entry and return probes on the per-operator functions of `wanted` ops (null: all). */
  private attachOpFunctions(
    roles: LibraryRoles,
    wanted: readonly string[] | null,
    alwaysProbe: boolean,
  ): void {
    // beside step probes (alwaysProbe), these only read MoE ids: they must not feed the aggregates
    const cookieFlags = alwaysProbe ? OP_NO_AGGREGATE : 0;
    const candidates: (ProbeSite & { index: number })[] = [];
    const stepped: string[] = [];
    for (const symbol of roles.opFunctions) {
      if (wanted && !wanted.includes(opOfFunction(symbol))) continue;
      const site = roles.probeSites.get(symbol);
      if (!site) continue;
      if (!site.emulated && !this.options.probeAllOps && !alwaysProbe) {
        stepped.push(opOfFunction(symbol));
        continue;
      }
      const index = this.opFuncs.length + candidates.length;
      candidates.push({ index, symbol, offset: site.fileOffset, cookie: index + cookieFlags });
    }
    if (stepped.length > 0) {
      this.note({
        kind: "unprobed",
        library: roles.path,
        reason: "single-stepped entry instruction",
        ops: stepped,
      });
    }
    const failures: string[] = [];
    const attached = this.attachSites(["op_enter", "op_exit"], roles.path, candidates, (c, error) =>
      failures.push(`${opOfFunction(c.symbol)} (${error})`),
    ).map((c) => ({ index: c.index, symbol: c.symbol, library: roles.path }));
    if (failures.length > 0) {
      this.warn(
        `${failures.length} of ${roles.opFunctions.length} operator functions in ${roles.path} cannot carry a probe ` +
          `and are timed from the barriers instead: ${failures.join(", ")}`,
      );
    }
    this.opFuncs.push(...attached);
    if (attached.length === 0 && !alwaysProbe)
      this.warn(`no per-operator function of ${roles.path} could be probed`);
    this.note({ kind: "attach", library: roles.path, opFuncs: attached });
  }

  private resolveLayout(ggmlBase: string, ggmlCpu?: string): void {
    try {
      this.layout = probeLayout(
        layoutProbePath,
        ggmlBase,
        ggmlCpu ?? this.roles.find((r) => r.ggmlCpu)?.path,
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

  /**
   * Attaches each of `handlers` at every site of `path`. With uprobe_multi, one link per handler
   * covers them all; when the kernel refuses a set (one site that cannot carry a probe spoils
   * the link), the set is split in halves until the culprits are found, so a few links still
   * cover everything else. Returns the sites attached; `failed` hears of each other one.
   */
  private attachSites<T extends ProbeSite>(
    handlers: readonly ("op_enter" | "op_exit" | "step_site")[],
    path: string,
    sites: T[],
    failed: (site: T, error: string) => void,
  ): T[] {
    if (sites.length === 0) return [];
    if (!this.uprobeMulti) {
      return sites.filter((site) => {
        const errors = handlers.map((h) =>
          this.tracer.attachUprobe(h, path, site.symbol, site.cookie, site.offset),
        );
        const error = errors.find(Boolean);
        if (error) failed(site, error.replace(/^.*: /, ""));
        return !error;
      });
    }
    const offsets = sites.map((s) => s.offset);
    const cookies = sites.map((s) => s.cookie);
    let error = "";
    let links = 0;
    for (const h of handlers) {
      error = this.tracer.attachUprobeMulti(h, path, offsets, cookies);
      if (error) break;
      links++;
    }
    if (!error) return sites;
    // an entry link without its return twin would leave operators open: take it out again
    for (; links > 0; links--) this.tracer.dropLastMultiLink();
    if (sites.length === 1) {
      failed(sites[0]!, error.replace(/^.*: /, ""));
      return [];
    }
    const half = Math.ceil(sites.length / 2);
    return [sites.slice(0, half), sites.slice(half)].flatMap((part) =>
      this.attachSites(handlers, path, part, failed),
    );
  }

  private note(note: RunNote): void {
    if (this.writer) {
      if (!this.closed) {
        this.writer.appendNote(note);
        this.tell((l) => l.note(note));
      }
    } else this.notes.push(note);
  }

  /** Passes something to the listener; a listener's failure never stops the recording. */
  private tell(call: (listener: RecordListener) => void): void {
    const listener = this.options.listener;
    if (!listener || this.listenerFailed) return;
    try {
      call(listener);
    } catch (error) {
      this.listenerFailed = true;
      this.options.log(`live export stopped: ${(error as Error).message}`);
    }
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
          this.roles.map((r) => [
            r.path,
            { llama: r.llama, ggmlBase: r.ggmlBase, ggmlCpu: r.ggmlCpu, debugInfo: r.hasDebugInfo },
          ]),
        ),
      },
      layout: layout ? (layout as unknown as Record<string, unknown>) : undefined,
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
    if (this.options.level === "token") return this.roles.some((r) => r.llama);
    if (this.options.level === "metrics") return this.roles.some((r) => r.ggmlCpu);
    return this.layout !== null;
  }

  /** Opens events.pinf once the ggml libraries are known, writing what was held back. */
  private openWriter(): void {
    if (this.writer) return;
    const header = this.header();
    this.writer = RawFileWriter.create(this.rawPath, header);
    this.tell((l) => l.header(header));
    for (const note of this.notes) {
      this.writer.appendNote(note);
      this.tell((l) => l.note(note));
    }
    this.notes = [];
    for (const batch of this.pending) {
      this.writer.appendEvents(batch);
      this.tell((l) => l.events(batch));
    }
    this.pending = [];
  }

  /** `counts[type]`: the batch's events of each type (the addon counts them as it copies). */
  private onBatch(batch: Buffer, counts: Uint32Array): void {
    const libraryEvents = counts[EV_LIBRARY] ?? 0;
    const tokenBegins = counts[EventType.TOKEN_BEGIN] ?? 0;
    this.stats.events += counts.reduce((a, b) => a + b, 0) - libraryEvents;
    this.stats.tokens += counts[EventType.TOKEN_END] ?? 0;
    // only the first batches with tensor descriptions are walked: tens of thousands of records a
    // second otherwise cost the target CPU on a machine it keeps busy
    if (!this.validated && (counts[EventType.TENSOR] ?? 0) > 0) {
      for (let at = 0; at + 8 <= batch.length;) {
        const length = batch.readUInt32LE(at);
        if (batch.readUInt32LE(at + 4) === EventType.TENSOR)
          this.validating.push(decodeEvent(batch, at + 4, length) as TensorEvent);
        at += 4 + length;
      }
    }
    this.stats.bytes += batch.length;
    if (libraryEvents > 0) {
      // the process stopped itself at the dynamic linker's hook: attach to what it loaded, resume
      this.scanLibraries();
      this.resume();
      batch = withoutType(batch, EV_LIBRARY);
    }
    if (tokenBegins > 0 && !this.selfStart) {
      // profinfer's own CPU is counted from here: the target's decoding, not its start-up
      this.selfStart = { cpu: process.cpuUsage(), wallMs: performance.now() };
    }
    if (tokenBegins > 0 && !this.modelNoted) {
      // the model is loaded by the first llama_decode: note which one it is
      this.modelNoted = true;
      this.note({ kind: "model", models: modelsOfProcess(this.pid, this.command) });
    }
    if (!this.validated && this.validating.length >= VALIDATION_SAMPLE) this.validate();
    if (this.refused) return;
    if (!this.writer && this.readyToWrite()) this.openWriter();
    if (this.writer) {
      this.writer.appendEvents(batch);
      this.tell((l) => l.events(batch));
    } else this.pending.push(batch);
  }

  private validate(): void {
    this.validated = true;
    const problem = validateTensorReadings(this.validating, this.layout?.opNames.length ?? 0);
    this.validating = [];
    if (!problem) return;
    this.refused =
      `the ggml layout resolved for ${this.layout?.library ?? "this build"} (ggml ${this.layout?.ggmlVersion ?? "?"}, commit ${this.layout?.commit ?? "?"}) ` +
      `does not read back in the running process: ${problem}. Operator tracing stopped; what was recorded before is kept. ` +
      `Report this build, and use --level graph meanwhile.`;
    this.tracer.detach();
    this.resume();
    this.warn(this.refused);
  }

  /** SIGCONT after a stop at the dynamic linker's hook (harmless when it is running). */
  private resume(): void {
    try {
      process.kill(this.pid, "SIGCONT");
    } catch {
      // gone
    }
  }

  get refusal(): string | null {
    return this.refused;
  }

  /**
   * For overhead measurements (record --toggle-op-probes): takes the step probes off, or puts
   * them back, and notes when (CLOCK_MONOTONIC, the events' clock), so that decode calls with
   * and without them can be told apart within one run. False when there are none to toggle.
   */
  toggleStepProbes(): boolean {
    if (this.stepProbes.length === 0 || this.finished) return false;
    // taking uprobes off waits for the kernel (tens of ms for a few hundred sites): calls
    // between the two times ran with some probes and not others
    const beganNs = process.hrtime.bigint().toString();
    if (this.stepProbesOn) this.tracer.detachProgram("step_site");
    else {
      for (const { path, sites } of this.stepProbes) {
        this.attachSites(["step_site"], path, sites, (site, error) =>
          this.warn(stepProbeError(site, error)),
        );
      }
    }
    this.stepProbesOn = !this.stepProbesOn;
    this.note({
      kind: "stepProbes",
      on: this.stepProbesOn,
      beganNs,
      monotonicNs: process.hrtime.bigint().toString(),
    });
    return true;
  }

  /** Events dropped so far (the BPF per-CPU counters), for the live status line. */
  liveDrops(): number {
    if (this.finished) return this.stats.drops;
    return this.tracer.counters().drops.reduce((a, b) => a + b, 0);
  }

  /**
   * Which of the asked-for levels could be traced, and why not where not: a library may lack a
   * symbol (a stripped or unusual build), or the layout may not resolve.
   */
  levelReport(): string[] {
    const wanted = LEVELS[this.options.level];
    const missing: string[] = [];
    if (!this.roles.some((r) => r.llama))
      missing.push("token level: no mapped library defines llama_decode");
    if (wanted >= LEVELS.graph && !this.roles.some((r) => r.ggmlBase)) {
      missing.push("graph level: no mapped library defines ggml_backend_sched_graph_compute_async");
    }
    if (wanted >= LEVELS.op) {
      if (!this.roles.some((r) => r.ggmlCpu))
        missing.push(
          "operator level: no CPU backend (ggml_graph_compute with ggml_barrier) was mapped",
        );
      else if (!this.layout)
        missing.push("operator level: the ggml tensor layout of this build could not be resolved");
      else if (this.opFuncs.length === 0 && this.stepLibraries.length === 0)
        missing.push(
          "operator level: no ggml_compute_forward_<op> function could be probed; operators are timed from the barriers only",
        );
      if (this.refused) missing.push(`operator level: ${this.refused}`);
    }
    return missing;
  }

  /** Stops tracing (draining the ring buffer), writes the closing notes; the process is untouched. */
  async finish(exit: { code: number | null; signal: string | null } | null): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    const ended = new Promise<void>((resolveEnd) => (this.streamEnded = resolveEnd));
    this.tracer.stop();
    await ended;
    if (this.selfStart) {
      const used = process.cpuUsage(this.selfStart.cpu);
      this.profilerCpu = {
        cpuMs: Math.round((used.user + used.system) / 100) / 10,
        wallMs: Math.round((performance.now() - this.selfStart.wallMs) * 10) / 10,
      };
    }
    const counters = this.tracer.counters();
    this.finalCounters = counters;
    this.finalAggregates = this.tracer.aggregates();
    this.tracer.detach();
    this.resume();
    this.stats.drops = counters.drops.reduce((a, b) => a + b, 0);
    if (!this.validated && this.validating.length > 0) this.validate();
    if (!this.writer) this.openWriter();
    this.note({
      kind: "drops",
      ringBufferFull: counters.drops[0] ?? 0,
      readFailed: counters.drops[1] ?? 0,
      mapFull: counters.drops[2] ?? 0,
      nodesTruncated: counters.drops[3] ?? 0,
      counterReadFailed: counters.drops[4] ?? 0,
    });
    if (this.options.level === "metrics") {
      this.note({ kind: "aggregates", ...this.finalAggregates });
    }
    this.note({
      kind: "hits",
      token: counters.hits[0] ?? 0,
      graph: counters.hits[1] ?? 0,
      op: counters.hits[2] ?? 0,
      barrier: counters.hits[3] ?? 0,
      sched: counters.hits[4] ?? 0,
      snapshotTensors: counters.hits[5] ?? 0,
      step: counters.hits[6] ?? 0,
      probes: counters.attached,
    });
    if (this.profilerCpu) this.note({ kind: "profiler", ...this.profilerCpu });
    if (exit) this.note({ kind: "exit", code: exit.code, signal: exit.signal });
    this.note({ kind: "end", events: this.stats.events, tokens: this.stats.tokens });
    this.writer?.close();
    this.closed = true;
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
