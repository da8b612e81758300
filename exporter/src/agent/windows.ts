// SPDX-License-Identifier: Apache-2.0
// Sampled detail: now and then, an operator-level window of K llama_decode calls on one followed
// process, recorded as `profinfer attach --level op --window 1-K` would (runSession, with a probe
// set of its own on that process alone, taken off at the window's end), its spans sent over OTLP
// and its run folder kept. Windows come on a schedule (each process in turn) or when a request
// was slow (its TPOT or TTFT above a bound; once per process per cooldown); one at a time. The
// run folders are bounded in count and in bytes: the oldest go first.
import { mkdirSync, readdirSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { Counter, Gauge, type Registry } from "prom-client";
import * as N from "@profinfer/contract";
import { MAX_BATCH_TOKENS } from "../abi/constants.js";
import type { NativeModule } from "../record/nativeTracer.js";
import type { SessionConfig } from "../session/session.js";
import type { SessionTarget, TargetEnd } from "../session/targets.js";
import { EXPORT_DEFAULTS } from "../sinks/otel/defaults.js";
import { endpointConfig } from "../sinks/otel/options.js";
import type { EndedRequest } from "../sinks/metrics/requestMetrics.js";
import type { WindowsConfig } from "./config.js";
import type { FollowedProcess } from "./followed.js";

type Trigger = (typeof N.WINDOW_TRIGGERS)[number];

export interface WindowContext {
  log: (message: string) => void;
  version: string;
  /** the processes followed now */
  processes: () => readonly FollowedProcess[];
  registry: Registry;
}

/** A window under way: its process, and how to end it early. */
interface Running {
  pid: number;
  stop: (message: string) => void;
  done: Promise<void>;
}

/** Bytes under `path` (files and folders, recursively). */
function bytesUnder(path: string): number {
  const st = statSync(path, { throwIfNoEntry: false });
  if (!st) return 0;
  if (!st.isDirectory()) return st.size;
  return readdirSync(path).reduce((n, e) => n + bytesUnder(join(path, e)), 0);
}

/** A name for a folder from an instance id (which holds '/'). */
const folderName = (id: string) => id.replace(/[^A-Za-z0-9._-]+/g, "_");

export class WindowScheduler {
  private config: WindowsConfig | null = null;
  private timer: NodeJS.Timeout | null = null;
  private running: Running | null = null;
  /** the last window of each instance (performance.now ms), for the cooldown */
  private readonly lastWindow = new Map<string, number>();
  private nextInTurn = 0;
  private stopped = false;
  private readonly windows: Counter;
  private keptBytes = 0;

  constructor(
    private readonly native: NativeModule,
    config: WindowsConfig | null,
    private readonly context: WindowContext,
  ) {
    this.windows = new Counter({
      name: N.AGENT_WINDOWS,
      help: "Operator windows recorded, by what started them",
      labelNames: [N.LABEL_TRIGGER],
      registers: [context.registry],
    });
    for (const trigger of N.WINDOW_TRIGGERS) this.windows.inc({ trigger }, 0);
    const kept = () => this.keptBytes;
    new Gauge({
      name: N.AGENT_WINDOW_BYTES,
      help: "Bytes the kept window run folders take on disk",
      registers: [context.registry],
      collect() {
        this.set(kept());
      },
    });
    this.configure(config);
  }

  configure(config: WindowsConfig | null): void {
    this.config = config;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (!config) return;
    mkdirSync(config.dir, { recursive: true });
    this.prune();
    if (config.everyMs) {
      this.timer = setInterval(() => this.onSchedule(), config.everyMs);
      this.timer.unref();
    }
  }

  status(): { running: number | null; keptBytes: number } | null {
    if (!this.config) return null;
    return { running: this.running?.pid ?? null, keptBytes: this.keptBytes };
  }

  /** A request of `f` ended: a slow one starts a window on it (outside its cooldown). */
  requestEnded(f: FollowedProcess, r: EndedRequest): void {
    const c = this.config;
    if (!c || r.outcome !== "complete") return;
    if (c.tpotAboveS !== null && r.tpotSeconds !== null && r.tpotSeconds > c.tpotAboveS) {
      this.trigger(f, "tpot");
    } else if (c.ttftAboveS !== null && r.ttftSeconds !== null && r.ttftSeconds > c.ttftAboveS) {
      this.trigger(f, "ttft");
    }
  }

  /** `f` exited (or is no longer followed): a window on it ends with what it has. */
  processEnded(f: FollowedProcess): void {
    if (this.running?.pid === f.pid) this.running.stop(`pid ${f.pid} ended`);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    const running = this.running;
    if (running) {
      running.stop("the agent stops");
      await running.done;
    }
  }

  private trigger(f: FollowedProcess, trigger: Trigger): void {
    const c = this.config!;
    const last = this.lastWindow.get(f.identity.instanceId);
    if (last !== undefined && performance.now() - last < c.cooldownMs) return;
    this.start(f, trigger);
  }

  /** The next process in turn gets a window (those that decoded since their last one first). */
  private onSchedule(): void {
    const list = this.context.processes();
    if (list.length === 0) return;
    const f = list[this.nextInTurn++ % list.length]!;
    this.start(f, "schedule");
  }

  private start(f: FollowedProcess, trigger: Trigger): void {
    const c = this.config;
    if (!c || this.running || this.stopped || f.ended) return;
    this.lastWindow.set(f.identity.instanceId, performance.now());
    // the window under way counts among those kept: room for it first
    this.prune(1);
    const stamp = new Date().toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15);
    const outDir = join(c.dir, `${folderName(f.identity.instanceId)}-${stamp}-${trigger}`);
    let stop: (message: string) => void = () => {};
    const ended = new Promise<TargetEnd>((resolveEnd) => {
      stop = (message) => resolveEnd({ exit: null, message });
    });
    const timeout = setTimeout(
      () => stop(`no ${c.calls} calls within ${c.timeoutMs / 1000} s`),
      c.timeoutMs,
    );
    const target: SessionTarget = {
      pid: f.pid,
      command: f.info.command,
      release: () => {},
      ended: () => ended,
      abandon: () => {},
    };
    const log = (m: string) => this.context.log(`window on pid ${f.pid}: ${m}`);
    this.windows.inc({ trigger });
    log(`${c.calls} llama_decode calls at operator level (${trigger}) into ${outDir}`);
    // the recorder and its sinks load with the first window: an agent that follows processes at
    // metrics level only keeps about 40 MB less resident (measured: 87 -> 46 MB of modules)
    const done = import("../session/session.js")
      .then(({ runSession }) =>
        runSession(this.sessionConfig(f, c, outDir, trigger, log), () => target),
      )
      .catch((error: Error) => log(`failed: ${error.message}`))
      .then(() => {
        clearTimeout(timeout);
        this.running = null;
        this.prune();
      });
    this.running = { pid: f.pid, stop, done };
  }

  private sessionConfig(
    f: FollowedProcess,
    c: WindowsConfig,
    outDir: string,
    trigger: Trigger,
    log: (message: string) => void,
  ): SessionConfig {
    const { info, identity } = f;
    const attributes: Record<string, string> = {
      [N.RES_SERVICE_INSTANCE_ID]: identity.instanceId,
      [N.RES_WINDOW_TRIGGER]: trigger,
      ...(info.container ? { [N.RES_CONTAINER_ID]: info.container.id } : {}),
      ...(info.pod ? { [N.RES_K8S_POD_UID]: info.pod.uid } : {}),
      ...(info.pod?.name ? { [N.RES_K8S_POD_NAME]: info.pod.name } : {}),
      ...(info.pod?.namespace ? { [N.RES_K8S_NAMESPACE_NAME]: info.pod.namespace } : {}),
    };
    const opSampling = { kind: "all" } as const;
    return {
      record: {
        outDir,
        level: "op",
        ops: null,
        sampleEvery: 1,
        window: [1, c.calls],
        windowOnly: true,
        moe: true,
        ringBufferBytes: 16 << 20,
        batchTokens: MAX_BATCH_TOKENS,
        probeAllOps: false,
        opTiming: "steps",
        counters: null,
        aggregate: false,
        aggregateLayers: false,
        aggregateMoe: false,
        resource: {
          serviceName: identity.serviceName,
          attributes,
          ...(f.model ? { model: f.model } : {}),
        },
        log,
        version: this.context.version,
      },
      otlp: c.otlpEndpoint
        ? {
            endpoint: endpointConfig(c.otlpEndpoint, {}, EXPORT_DEFAULTS.timeoutMs),
            spoolDir: join(outDir, "otlp-spool"),
            // the spool counts against the windows' bound too
            spoolMaxBytes: Math.max(1 << 20, Math.floor(c.maxBytes / Math.max(c.keep, 1))),
            flushTimeoutMs: 10_000,
            opSampling,
            requestIdleNs: 2_000_000_000n,
            serviceName: identity.serviceName,
            version: this.context.version,
            log,
          }
        : null,
      metrics: null,
      // one profile of the whole window (its interval outlasts the window's calls)
      profiles: c.profilesEndpoint
        ? {
            endpoint: endpointConfig(c.profilesEndpoint, {}, EXPORT_DEFAULTS.timeoutMs),
            intervalMs: c.timeoutMs,
            serviceName: identity.serviceName,
            version: this.context.version,
            log,
          }
        : null,
      // a window is attached to a running server: the host's cached profile only
      machineProfile: "cached",
      status: false,
      toggleOpProbesMs: null,
      outputs: { report: false, opSampling, serviceName: identity.serviceName },
      stopAfterCalls: c.calls,
      printSummary: false,
    };
  }

  /**
   * Keeps the newest run folders within the count and byte bounds, less `room` windows' share of
   * them (for one about to start); the rest go.
   */
  private prune(room = 0): void {
    const c = this.config;
    if (!c) return;
    const keep = Math.max(c.keep - room, 0);
    const maxBytes = c.maxBytes - room * Math.floor(c.maxBytes / Math.max(c.keep, 1));
    let folders: { path: string; mtime: number; bytes: number }[] = [];
    try {
      folders = readdirSync(c.dir, { withFileTypes: true })
        .filter((e) => e.isDirectory())
        .map((e) => {
          const path = join(c.dir, e.name);
          return { path, mtime: statSync(path).mtimeMs, bytes: bytesUnder(path) };
        })
        .sort((a, b) => b.mtime - a.mtime);
    } catch {
      return;
    }
    let total = 0;
    let kept = 0;
    for (const f of folders) {
      if (kept < keep && total + f.bytes <= maxBytes) {
        kept++;
        total += f.bytes;
        continue;
      }
      rmSync(f.path, { recursive: true, force: true });
    }
    this.keptBytes = total;
  }
}
