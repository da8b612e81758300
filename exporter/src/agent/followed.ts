// SPDX-License-Identifier: Apache-2.0
// The processes the host agent follows, as the metrics read them: the labels of each one's series,
// its token aggregates and its requests (the kernel's requests of all processes, read once and
// handed to each its own). A process that exited keeps its last readings for a while, so that a
// last scrape sees how it ended.
import type { KernelRequest, KernelRequests } from "../record/nativeTracer.js";
import type { MetricsTarget, TargetReadings } from "../sinks/metrics/profinferMetrics.js";
import type { Aggregates } from "../trace/notes.js";
import * as N from "@profinfer/contract";
import type { InstanceIdentity } from "./identity.js";
import type { ProcessInfo } from "./processInfo.js";

/** The kernel's requests of every followed process, read at most every 100 ms, taken per process. */
export class RequestsByProcess {
  private latest: KernelRequests = { active: [], finished: [], inFlight: [] };
  private readAt = -Infinity;
  /** requests a new one replaced, not yet handed to their process's metrics */
  private readonly pending = new Map<number, KernelRequest[]>();

  constructor(private readonly read: () => KernelRequests) {}

  refresh(force = false): void {
    const now = performance.now();
    if (!force && now - this.readAt < 100) return;
    this.readAt = now;
    this.latest = this.read();
    for (const r of this.latest.finished) {
      const list = this.pending.get(r.pid);
      if (list) list.push(r);
      else this.pending.set(r.pid, [r]);
    }
  }

  /** Process `pid`'s requests now; its finished ones are handed out once. */
  take(pid: number): KernelRequests {
    this.refresh();
    const finished = this.pending.get(pid) ?? [];
    this.pending.delete(pid);
    return {
      active: this.latest.active.filter((r) => r.pid === pid),
      finished,
      inFlight: this.latest.inFlight.filter((c) => c.tgid === pid),
    };
  }
}

/** The end of a followed process: its last readings, served until `until` (ms, performance.now). */
interface Ended {
  stoppedNs: bigint;
  aggregates: Aggregates;
  requests: KernelRequests;
  until: number;
}

/** One process the agent follows (or followed, until its last readings expire). */
export class FollowedProcess {
  /** the model's name, once known (the metrics list the process from then on) */
  model: string | null = null;
  modelCheckedAt = -Infinity;
  ended: Ended | null = null;

  constructor(
    readonly info: ProcessInfo,
    readonly identity: InstanceIdentity,
    /** the file that defines llama_decode (its identity, and the path it was probed through) */
    readonly fileId: string,
    readonly library: string,
    private readonly readAggregates: (pid: number) => Aggregates,
    private readonly requests: RequestsByProcess,
  ) {}

  get pid(): number {
    return this.info.pid;
  }

  /** The labels of its series. */
  get labels(): Record<string, string> {
    return {
      [N.LABEL_MODEL]: this.model ?? "unknown",
      [N.LABEL_EXECUTABLE]: this.identity.executable,
      [N.LABEL_SERVICE_NAME]: this.identity.serviceName,
      [N.LABEL_SERVICE_INSTANCE_ID]: this.identity.instanceId,
    };
  }

  /** Takes its last readings; the caller forgets it in the kernel right after. */
  end(lingerMs: number): void {
    if (this.ended) return;
    this.requests.refresh(true);
    this.ended = {
      stoppedNs: process.hrtime.bigint(),
      aggregates: this.readAggregates(this.pid),
      requests: this.requests.take(this.pid),
      until: performance.now() + lingerMs,
    };
  }

  get readings(): TargetReadings {
    const pid = this.pid;
    return {
      aggregates: () => this.ended?.aggregates ?? this.readAggregates(pid),
      requests: () => {
        const ended = this.ended;
        if (!ended) return { ...this.requests.take(pid), stoppedNs: null, targetExited: false };
        const last = ended.requests;
        ended.requests = { ...last, finished: [] };
        // it exited: its requests ended with it, none was cut off by the agent
        return { ...last, stoppedNs: ended.stoppedNs, targetExited: true };
      },
      operatorFunctions: [],
      counters: [],
      backendStall: null,
    };
  }

  get target(): MetricsTarget {
    return { labels: this.labels, readings: this.readings };
  }
}
