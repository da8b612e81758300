// SPDX-License-Identifier: Apache-2.0
// The roofline of a set of operator runs: their bytes and operations (OpRun.work) over their time,
// as shares of what the machine profile says the threads they ran on can reach, and the class that
// follows (docs/findings.md "Roofline": the thresholds).
import {
  bandwidthAt,
  type MachineProfile,
  type RooflineClass,
  type RooflineFigures,
} from "@profinfer/contract";
import type { OpRun } from "../trace/types.js";

/** Thresholds of the classes, documented in docs/findings.md. */
export const ROOFLINE_THRESHOLDS = {
  /** a share of a peak at least this is bound by it */
  boundShare: 0.5,
  /** barrier wait over the threads' time in the op and that wait: sync bound */
  syncShare: 0.25,
  /** runs shorter than this on average, near neither peak: overhead bound (ns) */
  overheadNs: 20_000,
} as const;

const round = (v: number, digits: number) => Math.round(v * 10 ** digits) / 10 ** digits;

/** Sums the runs of one operator, table row or tensor; figures() gives their roofline. */
export class RooflineAcc {
  private runs = 0;
  private bytes = 0;
  private ops = 0;
  private ns = 0;
  /** what the threads could have moved / computed at the peaks in the runs' time */
  private reachableBytes = 0;
  private reachableOps = 0;
  private threadNs = 0;
  private barrierNs = 0;
  private int8 = 0;
  private estimated = false;

  constructor(private readonly machine: MachineProfile | null) {}

  add(op: OpRun): void {
    const work = op.work;
    if (!work || op.durationNs <= 0) return;
    this.runs++;
    this.bytes += work.bytes;
    this.ops += work.ops;
    this.ns += op.durationNs;
    if (work.kind === "int8") this.int8++;
    this.estimated ||= work.estimated;
    for (const t of op.threads) {
      this.threadNs += Number(t.endNs - t.startNs);
      this.barrierNs += t.barrierWaitNs;
    }
    if (this.machine) {
      const threads = Math.max(1, op.threads.length);
      const seconds = op.durationNs / 1e9;
      const perThread = this.machine.compute[work.kind].perThread;
      this.reachableBytes += seconds * bandwidthAt(this.machine, threads);
      this.reachableOps += seconds * perThread * Math.min(threads, this.machine.cores.online);
    }
  }

  /** Summed operator time, ns. */
  get durationNs(): number {
    return this.ns;
  }

  figures(): RooflineFigures | null {
    if (this.runs === 0) return null;
    const seconds = this.ns / 1e9;
    const bandwidthShare = this.machine ? this.bytes / this.reachableBytes : null;
    const computeShare = this.machine ? this.ops / this.reachableOps : null;
    const barrierShare = this.barrierNs / Math.max(1, this.threadNs + this.barrierNs);
    return {
      runs: this.runs,
      totalMs: Math.round(this.ns) / 1e6,
      bytes: Math.round(this.bytes / this.runs),
      ops: Math.round(this.ops / this.runs),
      intensity: round(this.bytes > 0 ? this.ops / this.bytes : 0, 4),
      bandwidth: Math.round(this.bytes / seconds),
      rate: Math.round(this.ops / seconds),
      computeKind: this.int8 * 2 >= this.runs ? "int8" : "f32",
      bandwidthShare: bandwidthShare === null ? null : round(bandwidthShare, 4),
      computeShare: computeShare === null ? null : round(computeShare, 4),
      barrierShare: round(barrierShare, 4),
      class:
        bandwidthShare === null || computeShare === null
          ? null
          : rooflineClass(bandwidthShare, computeShare, barrierShare, this.ns / this.runs),
      estimated: this.estimated,
    };
  }
}

/** The class of docs/findings.md "Roofline", in the order its rules are tried. */
export function rooflineClass(
  bandwidthShare: number,
  computeShare: number,
  barrierShare: number,
  meanNs: number,
): RooflineClass {
  const t = ROOFLINE_THRESHOLDS;
  if (Math.max(bandwidthShare, computeShare) >= t.boundShare) {
    return bandwidthShare >= computeShare ? "memory" : "compute";
  }
  if (barrierShare >= t.syncShare) return "sync";
  if (meanNs < t.overheadNs) return "overhead";
  return "latency";
}
