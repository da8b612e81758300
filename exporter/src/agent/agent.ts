// SPDX-License-Identifier: Apache-2.0
// The host agent: finds every llama.cpp process of the host (those running when it starts, then
// each as it starts, from the kernel's exec events and the dynamic linkers' hooks, never by
// polling /proc), follows the selected ones at token level through one probe set per library
// file, serves one /metrics for all of them and /healthz, forgets each as it exits, and records
// sampled operator windows (windows.ts). One state machine per host: agentState below.
import { readdirSync } from "node:fs";
import { hostname, release } from "node:os";
import { Counter, Gauge, Registry } from "prom-client";
import * as N from "@profinfer/contract";
import { modelsOfProcess } from "../discovery/modelFile.js";
import { kernelHasUprobeMulti } from "../host/kernel.js";
import { loadNativeModule, type NativeModule } from "../record/nativeTracer.js";
import { ProfilerMetrics, TargetMetrics } from "../sinks/metrics/profinferMetrics.js";
import type { EndedRequest } from "../sinks/metrics/requestMetrics.js";
import { startMetricsServer, type MetricsServer } from "../sinks/metrics/server.js";
import { modelName } from "../trace/modelName.js";
import type { AgentConfig } from "./config.js";
import { FileCatalog, type ProcessFile } from "./discovery.js";
import { FollowedProcess, RequestsByProcess } from "./followed.js";
import { HostTracer, type ProcessEvent } from "./hostTracer.js";
import { instanceIdentity } from "./identity.js";
import { takeAgentLock, type AgentLock } from "./lock.js";
import { processStartTime, readProcessInfo } from "./processInfo.js";
import { selector } from "./selection.js";
import { WindowScheduler } from "./windows.js";

export type AgentState = "starting" | "running" | "stopping" | "stopped";

/** Why a process that maps llama.cpp is not followed (profinfer_agent_attach_failures_total). */
export const ATTACH_FAILURES = ["no_symbols", "exited", "attach_failed"] as const;
type AttachFailure = (typeof ATTACH_FAILURES)[number];

export interface AgentOptions {
  config: AgentConfig;
  /** where the one-agent-per-host lock lives */
  runtimeDir: string;
  log: (message: string) => void;
  version: string;
}

/** Re-reads of a process after its dynamic linker got its probe: it may have loaded past it. */
const RESCANS_MS = [200, 2000];
/** How often followed processes are checked for an exit the kernel's event did not bring. */
const SWEEP_MS = 5000;

export class HostAgent {
  private state: AgentState = "starting";
  private config: AgentConfig;
  private select: ReturnType<typeof selector>;
  private readonly registry = new Registry();
  private readonly catalog = new FileCatalog();
  private tracer: HostTracer | null = null;
  private requests: RequestsByProcess | null = null;
  private server: MetricsServer | null = null;
  private lock: AgentLock | null = null;
  private windows: WindowScheduler | null = null;
  /** live processes, by pid */
  private readonly followed = new Map<number, FollowedProcess>();
  /** processes that ended, serving their last readings for a while */
  private lingering: FollowedProcess[] = [];
  /** what was decided of a process that is not followed (pid -> start time), until it execs */
  private readonly decided = new Map<number, number>();
  private readonly scans = new Set<number>();
  private scanTimer: NodeJS.Timeout | null = null;
  private sweepTimer: NodeJS.Timeout | null = null;
  private readonly hostName = hostname();
  private eventsSeen = 0;
  private readonly startedAt = performance.now();
  private readonly failures: Counter;
  private readonly events: Counter;

  constructor(
    private readonly native: NativeModule,
    private readonly options: AgentOptions,
  ) {
    this.config = options.config;
    this.select = selector(this.config.selection);
    this.failures = new Counter({
      name: N.AGENT_ATTACH_FAILURES,
      help: "Processes that map llama.cpp but are not followed, by reason: no_symbols (no llama_decode in the library), exited (while being attached), attach_failed",
      labelNames: [N.LABEL_REASON],
      registers: [this.registry],
    });
    for (const reason of ATTACH_FAILURES) this.failures.inc({ reason }, 0);
    this.events = new Counter({
      name: N.AGENT_PROCESS_EVENTS,
      help: "The kernel's word that a process did something: exec, exit (of a followed process), library (its dynamic linker loaded one)",
      labelNames: [N.LABEL_KIND],
      registers: [this.registry],
    });
    for (const kind of N.PROCESS_EVENT_KINDS) this.events.inc({ kind }, 0);
  }

  get processes(): readonly FollowedProcess[] {
    return [...this.followed.values()];
  }

  /** Takes the host's lock, serves /metrics, starts following; every running process is looked at. */
  async start(): Promise<void> {
    const { config, log } = { config: this.config, log: this.options.log };
    const addr = `${config.metricsAddr.host}:${config.metricsAddr.port}`;
    this.lock = await takeAgentLock(this.options.runtimeDir, addr);
    try {
      this.tracer = new HostTracer(this.native, {
        batchTokens: config.batchTokens,
        uprobeMulti: kernelHasUprobeMulti(release()),
        log,
      });
      const tracer = this.tracer;
      this.requests = new RequestsByProcess(() => tracer.requests());
      this.registerMetrics();
      this.server = await startMetricsServer(this.registry, config.metricsAddr, {
        "/healthz": () => this.health(),
      });
      const { host, port } = this.server.address;
      // the tracepoints go on before the scan: a process starting during it is not missed
      tracer.start((events) => this.onEvents(events));
      this.windows = new WindowScheduler(this.native, config.windows, {
        log,
        version: this.options.version,
        processes: () => this.processes,
        registry: this.registry,
      });
      this.scanAll();
      this.sweepTimer = setInterval(() => this.sweep(), SWEEP_MS);
      this.sweepTimer.unref();
      this.state = "running";
      log(`agent: metrics at http://${host}:${port}/metrics, health at /healthz`);
      log(`agent: following ${this.followed.size} llama.cpp process(es)`);
    } catch (error) {
      await this.stop();
      throw error;
    }
  }

  /** A new configuration (SIGHUP): selection and windows change now; the address needs a restart. */
  reload(config: AgentConfig): void {
    const { log } = this.options;
    const was = this.config.metricsAddr;
    if (was.host !== config.metricsAddr.host || was.port !== config.metricsAddr.port)
      log("agent: a new metrics address takes effect at the next start; the old one is kept");
    this.config = { ...config, metricsAddr: was };
    this.select = selector(config.selection);
    for (const f of this.processes) {
      if (this.select(f.info)) continue;
      log(`agent: pid ${f.pid} (${f.identity.executable}) is no longer selected`);
      this.end(f);
    }
    this.decided.clear();
    this.windows?.configure(config.windows);
    this.scanAll();
    log(`agent: configuration reloaded; following ${this.followed.size} process(es)`);
  }

  /** Detaches every probe and stops serving. Idempotent. */
  async stop(): Promise<void> {
    if (this.state === "stopping" || this.state === "stopped") return;
    this.state = "stopping";
    if (this.scanTimer) clearTimeout(this.scanTimer);
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    await this.windows?.stop();
    this.tracer?.close();
    await this.server?.close();
    await this.lock?.release();
    this.state = "stopped";
  }

  private health(): { status: number; body: unknown } {
    const ok = this.state === "running";
    return {
      status: ok ? 200 : 503,
      body: {
        status: ok ? "ok" : this.state,
        processes: this.followed.size,
        probeSets: this.tracer?.probeSetCount ?? 0,
        uptimeSeconds: Math.round((performance.now() - this.startedAt) / 1000),
        windows: this.windows?.status() ?? null,
      },
    };
  }

  private registerMetrics(): void {
    const registry = this.registry;
    const tracer = this.tracer!;
    new TargetMetrics(registry, () => this.targets(), {
      targetLabels: [
        N.LABEL_MODEL,
        N.LABEL_EXECUTABLE,
        N.LABEL_SERVICE_NAME,
        N.LABEL_SERVICE_INSTANCE_ID,
      ],
      boundsNs: this.native.aggregateBoundsNs,
      layers: false,
      moe: false,
      requestIdleNs: this.config.requestIdleNs,
      onRequestEnded: (labels, r) => this.onRequestEnded(labels, r),
    });
    new ProfilerMetrics(
      registry,
      { probeCounters: () => tracer.counters(), eventsReceived: () => this.eventsSeen },
      {},
    );
    const followed = () => this.processes;
    new Gauge({
      name: N.PROCESS_INFO,
      help: "1 for each process the agent follows: its pid, program, command line, model and container behind its service.instance.id",
      labelNames: [
        N.LABEL_SERVICE_NAME,
        N.LABEL_SERVICE_INSTANCE_ID,
        N.LABEL_PID,
        N.LABEL_EXECUTABLE,
        N.LABEL_COMMAND,
        N.LABEL_MODEL,
        N.LABEL_CONTAINER_ID,
        N.LABEL_POD,
        N.LABEL_NAMESPACE,
      ],
      registers: [registry],
      collect() {
        this.reset();
        for (const f of followed()) {
          this.set(
            {
              ...f.labels,
              pid: String(f.pid),
              command: f.info.command.join(" ").slice(0, 256),
              ...(f.info.container ? { container_id: f.info.container.id } : {}),
              ...(f.info.pod?.name ? { pod: f.info.pod.name } : {}),
              ...(f.info.pod?.namespace ? { namespace: f.info.pod.namespace } : {}),
            },
            1,
          );
        }
      },
    });
    this.gauge(
      N.AGENT_PROCESSES,
      "llama.cpp processes the agent follows now",
      () => this.followed.size,
    );
    this.gauge(
      N.AGENT_PROBE_SETS,
      "Library files carrying the agent's probes (one set serves every process that maps the file)",
      () => tracer.probeSetCount,
    );
    this.gauge(N.AGENT_RESIDENT_MEMORY, "Resident memory of the agent's process", () =>
      process.memoryUsage.rss(),
    );
  }

  private gauge(name: string, help: string, value: () => number): void {
    new Gauge({
      name,
      help,
      registers: [this.registry],
      collect() {
        this.set(value());
      },
    });
  }

  /** The processes whose series /metrics serves: followed ones whose model is known, and ended ones. */
  private targets() {
    const now = performance.now();
    this.lingering = this.lingering.filter((f) => f.ended!.until > now);
    const live = [...this.followed.values()].filter((f) => this.modelKnown(f));
    const taken = new Set(live.map((f) => f.identity.instanceId));
    // a restarted process continues its predecessor's series: the predecessor's last ones go
    const ended = this.lingering.filter((f) => !taken.has(f.identity.instanceId));
    return [...live, ...ended].map((f) => f.target);
  }

  /** Whether the model of `f` is known (read from its mapped GGUF or -m, at most once a second). */
  private modelKnown(f: FollowedProcess): boolean {
    if (f.model !== null) return true;
    const now = performance.now();
    if (now - f.modelCheckedAt < 1000) return false;
    f.modelCheckedAt = now;
    f.model = modelName(modelsOfProcess(f.pid, f.info.command), f.info.command);
    if (f.model === null && f.readings.aggregates().tokens.some((t) => t.calls > 0))
      f.model = "unknown";
    return f.model !== null;
  }

  private onRequestEnded(labels: Readonly<Record<string, string>>, r: EndedRequest): void {
    const id = labels[N.LABEL_SERVICE_INSTANCE_ID];
    const f = this.processes.find((p) => p.identity.instanceId === id);
    if (f) this.windows?.requestEnded(f, r);
  }

  private onEvents(events: ProcessEvent[]): void {
    if (this.state === "stopping" || this.state === "stopped") return;
    this.eventsSeen += events.length;
    for (const { kind, pid } of events) {
      this.events.inc({ kind });
      const f = this.followed.get(pid);
      if (kind === "exit") {
        if (f) this.end(f, "exited");
        this.decided.delete(pid);
      } else if (kind === "exec") {
        // a followed process that execs is gone as it was: what it is now is looked at afresh
        if (f) this.end(f, "replaced its program (exec)");
        this.decided.delete(pid);
        this.scheduleScan(pid);
      } else if (!f) {
        this.scheduleScan(pid);
      }
    }
  }

  private scheduleScan(pid: number, delayMs = 20): void {
    if (delayMs > 20) {
      setTimeout(() => this.scheduleScan(pid), delayMs).unref();
      return;
    }
    this.scans.add(pid);
    // one pass for the events of a moment (a process start brings several)
    this.scanTimer ??= setTimeout(() => {
      this.scanTimer = null;
      const pids = [...this.scans];
      this.scans.clear();
      for (const p of pids) this.scanSafely(p);
    }, delayMs);
  }

  private scanAll(): void {
    for (const entry of readdirSync("/proc")) {
      const pid = Number(entry);
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid) this.scanSafely(pid);
    }
  }

  /** scan(), where a process that goes away while it is read costs nothing but itself. */
  private scanSafely(pid: number): void {
    try {
      this.scan(pid);
    } catch (error) {
      if (processStartTime(pid) === null) return;
      this.options.log(`agent: pid ${pid} could not be examined: ${(error as Error).message}`);
    }
  }

  /** Looks at what process `pid` maps now, and follows it when it runs llama.cpp and is selected. */
  private scan(pid: number): void {
    if (this.state === "stopping" || this.state === "stopped" || this.followed.has(pid)) return;
    const files = this.catalog.examine(pid);
    if (!files) return;
    let newLinker = false;
    for (const linker of files.linkers)
      newLinker = this.tracer!.watchLinker(linker.fileId, linker.roles) || newLinker;
    // it may have passed the linker's hook before the probe was there
    if (newLinker) for (const ms of RESCANS_MS) this.scheduleScan(pid, ms);
    const verdict = files.verdict;
    if (verdict.kind === "none") return;
    const startTime = processStartTime(pid);
    if (startTime === null || this.decided.get(pid) === startTime) return;
    if (verdict.kind === "no-symbols") {
      this.decided.set(pid, startTime);
      this.fail(
        "no_symbols",
        `pid ${pid} maps ${verdict.path}, which defines no llama_decode (a stripped or unusual build, or not llama.cpp's): it is not followed. Give the agent a build with its dynamic symbols (llama.cpp's shared libraries keep them unless stripped with --strip-all)`,
      );
      return;
    }
    this.follow(pid, verdict.library);
  }

  private follow(pid: number, library: ProcessFile): void {
    const info = readProcessInfo(pid);
    if (!info) {
      this.fail("exited", `pid ${pid} exited while being attached`);
      return;
    }
    this.decided.set(pid, info.startTime);
    if (!this.select(info)) return;
    const identity = this.uniqueIdentity(instanceIdentity(info, this.hostName));
    const error = this.tracer!.follow(pid, library.fileId, library.roles);
    if (error) {
      this.fail("attach_failed", `pid ${pid} (${identity.executable}): ${error}`);
      return;
    }
    // it may have exited before it was in the kernel's map, whose exit event then never comes
    if (processStartTime(pid) !== info.startTime) {
      this.tracer!.unfollow(pid, library.fileId);
      this.fail("exited", `pid ${pid} exited while being attached`);
      return;
    }
    const f = new FollowedProcess(
      info,
      identity,
      library.fileId,
      library.roles.path,
      (p) => this.tracer!.aggregates(p),
      this.requests!,
    );
    this.followed.set(pid, f);
    this.modelKnown(f);
    this.options.log(
      `agent: following pid ${pid} (${identity.executable}, service.instance.id ${identity.instanceId})`,
    );
  }

  /** `identity`, or with a suffix when a live process already has its instance id. */
  private uniqueIdentity<T extends { instanceId: string }>(identity: T): T {
    const taken = new Set(this.processes.map((f) => f.identity.instanceId));
    let id = identity.instanceId;
    for (let n = 2; taken.has(id); n++) id = `${identity.instanceId}-${n}`;
    return { ...identity, instanceId: id };
  }

  private fail(reason: AttachFailure, message: string): void {
    this.failures.inc({ reason });
    this.options.log(`agent: ${message}`);
  }

  /** Stops following `f`: its last readings stay for a last scrape, its kernel state goes. */
  private end(f: FollowedProcess, why = "is no longer selected"): void {
    f.end(this.config.exitLingerMs);
    this.tracer!.unfollow(f.pid, f.fileId);
    this.followed.delete(f.pid);
    this.windows?.processEnded(f);
    if (this.config.exitLingerMs > 0) this.lingering.push(f);
    this.options.log(`agent: pid ${f.pid} (${f.identity.executable}) ${why}`);
  }

  /** A process whose exit event was lost (the ring was full) is found gone here. */
  private sweep(): void {
    for (const f of this.processes) {
      if (processStartTime(f.pid) !== f.info.startTime) this.end(f, "is gone");
    }
  }
}

export interface RunAgentConfig {
  /** the configuration now: the file (read again on SIGHUP) under the flags */
  load: () => AgentConfig;
  runtimeDir: string;
  log: (message: string) => void;
  version: string;
}

/**
 * Runs the agent until SIGINT or SIGTERM; SIGHUP reads the configuration again (a bad one is
 * said, and the running one kept).
 */
export async function runAgent(run: RunAgentConfig): Promise<void> {
  const agent = new HostAgent(loadNativeModule(), {
    config: run.load(),
    runtimeDir: run.runtimeDir,
    log: run.log,
    version: run.version,
  });
  await agent.start();
  await new Promise<void>((resolveStop) => {
    const onHup = () => {
      try {
        agent.reload(run.load());
      } catch (error) {
        run.log(`agent: the configuration was not reloaded: ${(error as Error).message}`);
      }
    };
    const onStop = (signal: string) => {
      run.log(`agent: ${signal}: detaching every probe`);
      process.off("SIGHUP", onHup);
      void agent.stop().then(resolveStop);
    };
    process.on("SIGHUP", onHup);
    process.once("SIGINT", () => onStop("SIGINT"));
    process.once("SIGTERM", () => onStop("SIGTERM"));
  });
  run.log("agent: stopped");
}
