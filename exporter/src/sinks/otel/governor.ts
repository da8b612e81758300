// SPDX-License-Identifier: Apache-2.0
// What keeps the live span export from slowing the target: profinfer's own CPU share (all its
// threads, measured between the export's chunks, about once a second) against a bound, and the
// exporter's queue. Past the bound, or while the queue grows behind a connected endpoint (the
// export makes more than it can send), the operator-span sampling is lowered one step (every:N to
// every:2N, ..., to none; all to every:2; first:K to first:K/2); after a while well below it, it
// goes back up a step at a time towards the sampling asked for. Request, step, call and graph
// spans are always sent; each llama_decode span says which sampling applied to it
// (profinfer.token.op_sampling), so a backend can tell a call left without operators by the
// governor from one the asked sampling skipped.
import { formatOpSampling, type OpSampling } from "./spans.js";

export interface GovernorOptions {
  /** the sampling asked for (--otlp-op-sample) */
  asked: OpSampling;
  /** the most of one core profinfer may use while the export runs (0.02: 2%); 0: no bound */
  maxShare: number;
  /** how long the share is measured over before a step is taken */
  windowMs: number;
  /** spans queued in memory past which the export counts as behind */
  maxBacklogSpans: number;
  log: (message: string) => void;
}

/** The steps below `asked`, lowest last. */
function ladder(asked: OpSampling): OpSampling[] {
  const steps: OpSampling[] = [asked];
  switch (asked.kind) {
    case "none":
      return steps;
    case "all":
      for (let n = 2; n <= 1024; n *= 2) steps.push({ kind: "every", n });
      break;
    case "every":
      for (let n = asked.n * 2; n <= Math.max(1024, asked.n * 2); n *= 2)
        steps.push({ kind: "every", n });
      break;
    case "first":
      for (let k = Math.floor(asked.k / 2); k >= 1; k = Math.floor(k / 2))
        steps.push({ kind: "first", k });
      break;
  }
  steps.push({ kind: "none" });
  return steps;
}

/** Windows in a row well below the bound before a step back up. */
const CALM_WINDOWS = 5;

export class SamplingGovernor {
  private readonly steps: OpSampling[];
  private level = 0;
  private windowStart = process.hrtime.bigint();
  private cpuStart = process.cpuUsage();
  private calm = 0;
  /** the lowest step taken so far, and how many times it stepped down */
  readonly stats = { lowered: 0, lowest: "" };

  constructor(private readonly options: GovernorOptions) {
    this.steps = ladder(options.asked);
    this.stats.lowest = formatOpSampling(options.asked);
  }

  /** Tracing begins: the first window starts now (what profinfer did to start does not count). */
  start(): void {
    this.windowStart = process.hrtime.bigint();
    this.cpuStart = process.cpuUsage();
  }

  /** The sampling that applies now. */
  get sampling(): OpSampling {
    return this.steps[this.level]!;
  }

  /**
   * After a chunk: profinfer's CPU share since the window began and the spans waiting in memory.
   * Returns the sampling that applies to the next chunk.
   */
  observe(backlogSpans: number): OpSampling {
    const { maxShare, windowMs, maxBacklogSpans } = this.options;
    if (maxShare <= 0) return this.sampling;
    const now = process.hrtime.bigint();
    const wallUs = Number(now - this.windowStart) / 1000;
    if (wallUs < windowMs * 1000) return this.sampling;
    const cpu = process.cpuUsage(this.cpuStart);
    const share = (cpu.user + cpu.system) / wallUs;
    this.windowStart = now;
    this.cpuStart = process.cpuUsage();
    const behind = backlogSpans > maxBacklogSpans;
    if ((share > maxShare || behind) && this.level < this.steps.length - 1) {
      this.level++;
      this.calm = 0;
      this.stats.lowered++;
      if (this.level === this.steps.length - 1 || this.stats.lowered === 1)
        this.options.log(
          `OTLP export: ${behind ? `${backlogSpans} spans wait to be sent` : `profinfer used ${(share * 100).toFixed(1)}% of a core`} (bound ${(maxShare * 100).toFixed(1)}%): operator spans now for ${formatOpSampling(this.sampling)} calls; --otlp-cpu raises the bound`,
        );
      this.stats.lowest = formatOpSampling(this.sampling);
    } else if (this.level > 0 && !behind && share < maxShare / 4) {
      if (++this.calm >= CALM_WINDOWS) {
        this.level--;
        this.calm = 0;
      }
    } else this.calm = 0;
    return this.sampling;
  }
}
