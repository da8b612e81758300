// SPDX-License-Identifier: Apache-2.0
// The per-request metrics from the requests the kernel follows (bpf/requests.bpf.h): a request a
// new one replaced comes off the kernel's queue; a sequence's current request has ended once it
// has been idle (REQUEST_IDLE_NS, no call of its process in flight since its last one), or, when
// tracing stopped, unless it was cut off then. Each ended request is observed once into the GenAI
// server histograms (those that ran whole) and counted by outcome.
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import * as N from "@profinfer/contract";
import type { KernelRequest, KernelRequests } from "../../record/nativeTracer.js";
import { REQUEST_IDLE_NS, cutOffAtEnd } from "../../trace/requests.js";

export type RequestSource = () => KernelRequests & {
  stoppedNs: bigint | null;
  targetExited: boolean;
};

/** What a request that ended adds to the metrics. */
export interface EndedRequest {
  outcome: (typeof N.OUTCOMES)[number];
  ttftSeconds: number | null;
  tpotSeconds: number | null;
  durationSeconds: number;
}

function ended(r: KernelRequest, cutOff: boolean): EndedRequest {
  const first = r.firstOutputNs;
  const outcome =
    r.flags !== 0 || cutOff
      ? "incomplete"
      : first === null || r.generatedTokens === 0
        ? "no_output"
        : "complete";
  return {
    outcome,
    ttftSeconds: first === null ? null : Number(first - r.startNs) / 1e9,
    tpotSeconds:
      first === null || r.generatedTokens < 2
        ? null
        : Number(r.endNs - first) / 1e9 / (r.generatedTokens - 1),
    durationSeconds: Number(r.endNs - r.startNs) / 1e9,
  };
}

/**
 * Decides when the kernel's requests end, each exactly once: `poll` returns those that ended
 * since the last poll and how many are still active.
 */
export class KernelRequestFollower {
  /** requests taken as ended while still the current one of their sequence */
  private readonly endedActive = new Set<number>();

  constructor(
    private readonly source: RequestSource,
    private readonly idleNs: bigint = REQUEST_IDLE_NS,
  ) {}

  poll(nowNs: bigint): { ended: EndedRequest[]; active: number } {
    const { active, finished, inFlight, stoppedNs, targetExited } = this.source();
    const out: EndedRequest[] = [];
    for (const r of finished) {
      // already counted when it went idle: its queue record only says a new one replaced it
      if (this.endedActive.delete(r.id)) continue;
      out.push(ended(r, false));
    }
    let running = 0;
    for (const r of active) {
      if (this.endedActive.has(r.id)) continue;
      if (stoppedNs !== null) {
        // tracing ended: a target that exited ended its requests; else one may have been cut off
        const interval = r.longestGapNs > 0n ? r.longestGapNs : r.lastCallNs;
        out.push(ended(r, !targetExited && cutOffAtEnd(r.endNs, stoppedNs, interval)));
        this.endedActive.add(r.id);
        continue;
      }
      const callAfter = inFlight.some((c) => c.tgid === r.pid && c.startNs > r.endNs);
      if (!callAfter && nowNs - r.endNs > this.idleNs) {
        out.push(ended(r, false));
        this.endedActive.add(r.id);
      } else {
        running += 1;
      }
    }
    return { ended: out, active: running };
  }
}

/** A traced process's requests, and the labels of its series. */
export interface RequestTarget {
  labels: Readonly<Record<string, string>>;
  source: RequestSource;
}

/**
 * Registers the per-request metrics on `registry`, one label set per target; `poll` feeds them
 * (each scrape calls it). A target that is no longer listed loses its series.
 */
export class RequestMetrics {
  private readonly ttft: Histogram;
  private readonly tpot: Histogram;
  private readonly duration: Histogram;
  private readonly outcomes: Counter;
  /** by target: its follower (which remembers what it handed out), labels and active count */
  private readonly followed = new Map<
    string,
    { follower: KernelRequestFollower; labels: Readonly<Record<string, string>>; active: number }
  >();
  private lastPoll = -Infinity;

  constructor(
    registry: Registry,
    labelNames: readonly string[],
    private readonly targets: () => readonly RequestTarget[],
    private readonly idleNs?: bigint,
    /** hears of every request that ended, with its target's labels */
    private readonly onEnded?: (labels: Readonly<Record<string, string>>, r: EndedRequest) => void,
  ) {
    // every metric of a scrape sees one poll of the kernel's requests
    const sync = () => this.poll();
    this.ttft = new Histogram({
      name: N.TIME_TO_FIRST_TOKEN,
      help: "Per request: from the start of the llama_decode call that began its prompt to the end of the call that produced its first token",
      labelNames,
      buckets: [...N.TTFT_BUCKETS],
      registers: [registry],
      collect: sync,
    });
    this.tpot = new Histogram({
      name: N.TIME_PER_OUTPUT_TOKEN,
      help: "Per request: time from its first token to its last, per token generated after the first",
      labelNames,
      buckets: [...N.TPOT_BUCKETS],
      registers: [registry],
      collect: sync,
    });
    this.duration = new Histogram({
      name: N.REQUEST_DURATION,
      help: "Per request: from the start of its first llama_decode call to the end of its last",
      labelNames,
      buckets: [...N.REQUEST_DURATION_BUCKETS],
      registers: [registry],
      collect: sync,
    });
    this.outcomes = new Counter({
      name: N.REQUESTS,
      help: "Requests that ended: complete (in the histograms), no_output (a prompt only), incomplete (not followed whole)",
      labelNames: [...labelNames, N.LABEL_OUTCOME],
      registers: [registry],
      collect: sync,
    });
    const followed = this.followed;
    new Gauge({
      name: N.ACTIVE_REQUESTS,
      help: "Requests in progress: sequences that took part in a llama_decode call within the idle bound",
      labelNames,
      registers: [registry],
      collect() {
        sync();
        this.reset();
        for (const f of followed.values()) this.set(f.labels, f.active);
      },
    });
  }

  /** Takes what ended since the last poll into the metrics (at most once per 100 ms). */
  poll(): void {
    const now = performance.now();
    if (now - this.lastPoll < 100) return;
    this.lastPoll = now;
    const listed = new Set<string>();
    for (const target of this.targets()) {
      const key = JSON.stringify(target.labels);
      listed.add(key);
      let f = this.followed.get(key);
      if (!f) {
        f = {
          follower: new KernelRequestFollower(target.source, this.idleNs),
          labels: target.labels,
          active: 0,
        };
        this.followed.set(key, f);
        for (const outcome of N.OUTCOMES) this.outcomes.inc({ ...f.labels, outcome }, 0);
      }
      this.observe(f);
    }
    for (const [key, f] of this.followed) {
      if (listed.has(key)) continue;
      // gone: its series go with it
      this.followed.delete(key);
      for (const h of [this.ttft, this.tpot, this.duration]) h.remove(f.labels);
      for (const outcome of N.OUTCOMES) this.outcomes.remove({ ...f.labels, outcome });
    }
  }

  private observe(f: {
    follower: KernelRequestFollower;
    labels: Readonly<Record<string, string>>;
    active: number;
  }): void {
    const { ended, active } = f.follower.poll(process.hrtime.bigint());
    f.active = active;
    const labels = f.labels;
    for (const r of ended) {
      this.onEnded?.(labels, r);
      this.outcomes.inc({ ...labels, [N.LABEL_OUTCOME]: r.outcome });
      if (r.outcome !== "complete") continue;
      this.duration.observe(labels, r.durationSeconds);
      if (r.ttftSeconds !== null) this.ttft.observe(labels, r.ttftSeconds);
      if (r.tpotSeconds !== null) this.tpot.observe(labels, r.tpotSeconds);
    }
  }
}
