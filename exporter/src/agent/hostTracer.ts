// SPDX-License-Identifier: Apache-2.0
// The host agent's one tracer: the BPF object in its multi-process mode. A probe set per library
// file that defines llama_decode (its entry and return, attached with no pid, so that one set
// serves every process mapping that file), a probe on each dynamic linker's hook, the exec and
// exit tracepoints, and the processes followed (the BPF map "targets": their per-process state,
// aggregates and requests are keyed by tgid). Nothing per call leaves the kernel: only the
// control events of processes starting, loading libraries and exiting.
import { EV_LIBRARY, EV_PROCESS_EXEC, EV_PROCESS_EXIT, PiLevel } from "../abi/constants.js";
import type { LibraryRoles } from "../discovery/libraries.js";
import type { NativeModule, NativeTracer, KernelRequests } from "../record/nativeTracer.js";
import { ProbeAttacher } from "../record/probeAttacher.js";
import { callProbes } from "../record/probePlan.js";
import type { Aggregates } from "../trace/notes.js";

export type ProcessEventKind = "exec" | "exit" | "library";

export interface ProcessEvent {
  kind: ProcessEventKind;
  pid: number;
}

const KIND_OF_TYPE = new Map<number, ProcessEventKind>([
  [EV_PROCESS_EXEC, "exec"],
  [EV_PROCESS_EXIT, "exit"],
  [EV_LIBRARY, "library"],
]);

/** The control events of a batch (u32 length + pi_header records), in order. */
export function processEvents(batch: Buffer): ProcessEvent[] {
  const out: ProcessEvent[] = [];
  for (let at = 0; at + 4 + 16 <= batch.length;) {
    const length = batch.readUInt32LE(at);
    // pi_header: type, cpu, tgid, tid, ts
    const kind = KIND_OF_TYPE.get(batch.readUInt32LE(at + 4));
    if (kind) out.push({ kind, pid: batch.readUInt32LE(at + 12) });
    at += 4 + length;
  }
  return out;
}

/** A library file's probes, and the processes they serve now. */
interface ProbeSet {
  path: string;
  users: Set<number>;
}

export interface HostTracerOptions {
  batchTokens: number;
  uprobeMulti: boolean;
  log: (message: string) => void;
}

export class HostTracer {
  private readonly tracer: NativeTracer;
  private readonly attacher: ProbeAttacher;
  /** by file id (device:inode) */
  private readonly probeSets = new Map<string, ProbeSet>();
  private readonly linkers = new Set<string>();
  private closed = false;

  constructor(
    native: NativeModule,
    private readonly options: HostTracerOptions,
  ) {
    this.tracer = new native.Tracer({
      tgid: 0,
      multi: true,
      level: PiLevel.TOKEN,
      sampleEvery: 1,
      windowFirst: 0,
      windowLast: 0,
      opsWithoutTokens: false,
      moe: false,
      // only the control events travel: a few per process start
      ringBufferBytes: 256 << 10,
      uprobeMulti: options.uprobeMulti,
      stream: false,
      aggregate: true,
      aggregateLayers: false,
      aggregateMoe: false,
      batchTokens: options.batchTokens,
      counters: [],
    });
    this.attacher = new ProbeAttacher(this.tracer, options.uprobeMulti, options.log);
  }

  /** Exec and exit tracepoints on, and the control events to `onEvents` from now on. */
  start(onEvents: (events: ProcessEvent[]) => void): void {
    const error = this.tracer.attachProcessTracepoints();
    if (error) throw new Error(`cannot follow process starts and exits: ${error}`);
    this.tracer.start((batch) => {
      if (batch) onEvents(processEvents(batch));
    });
  }

  /** The dynamic linker at `path` (its file id `fileId`) tells of every library loaded. */
  watchLinker(fileId: string, roles: LibraryRoles): boolean {
    if (this.linkers.has(fileId)) return false;
    this.linkers.add(fileId);
    this.attacher.attachFunction(roles, { handler: "dl_activity", symbol: "_dl_debug_state" });
    return true;
  }

  /**
   * Follows process `pid`, whose llama.cpp library is `roles` (file id `fileId`): its probe set
   * goes on when no process maps that file yet. Returns "" or why it could not.
   */
  follow(pid: number, fileId: string, roles: LibraryRoles): string {
    let set = this.probeSets.get(fileId);
    if (!set) {
      const probes = callProbes(roles, PiLevel.TOKEN);
      const attached = probes.filter((p) => this.attacher.attachFunction(roles, p));
      if (attached.length !== probes.length) {
        this.tracer.detachBinary(roles.path);
        return `the probes on llama_decode in ${roles.path} could not be attached`;
      }
      set = { path: roles.path, users: new Set() };
      this.probeSets.set(fileId, set);
    }
    const error = this.tracer.addTarget(pid);
    if (error) {
      this.release(fileId, pid);
      return error;
    }
    set.users.add(pid);
    return "";
  }

  /** Forgets process `pid` (and its map entries); its library's probes go when no one uses them. */
  unfollow(pid: number, fileId: string): void {
    this.tracer.removeTarget(pid);
    this.release(fileId, pid);
  }

  private release(fileId: string, pid: number): void {
    const set = this.probeSets.get(fileId);
    if (!set) return;
    set.users.delete(pid);
    if (set.users.size === 0) {
      this.tracer.detachBinary(set.path);
      this.probeSets.delete(fileId);
    }
  }

  get probeSetCount(): number {
    return this.probeSets.size;
  }

  aggregates(pid: number): Aggregates {
    return this.tracer.aggregates(pid);
  }

  requests(): KernelRequests {
    return this.tracer.requests();
  }

  counters(): { drops: number[]; hits: number[]; attached: number } {
    return this.tracer.counters();
  }

  /** Detaches every probe and closes the BPF object. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.tracer.stop();
    this.tracer.detach();
    this.tracer.close();
  }
}
