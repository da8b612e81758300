// SPDX-License-Identifier: Apache-2.0
// stats.json's backends: per backend, its splits from submission to completion as the host saw
// them, the copies of their inputs, the host's waits, and what was and was not measured of it.
// Added up chunk by chunk (a split and its CPU graph are in one llama_decode call, hence one chunk).
import type { BackendStat } from "@profinfer/contract";
import type { Backend, GraphRun, Run } from "../trace/types.js";

const ms = (ns: number) => Math.round(ns) / 1e6;

interface BackendAcc {
  splits: number;
  submitNs: number;
  completeNs: number;
  waitNs: number;
  copies: number;
  copyBytes: number;
  copyNs: number;
  ops: number;
}

export class BackendStatsAccumulator {
  /** per backend id (Backend.id, kept across chunks) */
  private readonly acc = new Map<number, BackendAcc>();

  add(graphRuns: readonly GraphRun[]): void {
    // a CPU split's operators are its CPU graph's
    const childOps = new Map<GraphRun, number>();
    for (const g of graphRuns)
      if (g.parent?.split) childOps.set(g.parent, (childOps.get(g.parent) ?? 0) + g.ops.length);
    for (const g of graphRuns) {
      const s = g.split;
      if (!s) continue;
      let a = this.acc.get(s.backend.id);
      if (!a) {
        a = {
          splits: 0,
          submitNs: 0,
          completeNs: 0,
          waitNs: 0,
          copies: 0,
          copyBytes: 0,
          copyNs: 0,
          ops: 0,
        };
        this.acc.set(s.backend.id, a);
      }
      a.splits++;
      a.submitNs += Number(g.endNs - g.startNs);
      a.completeNs += Number(s.completeNs - g.startNs);
      for (const w of s.waits) a.waitNs += Number(w.endNs - w.startNs);
      for (const c of s.copies) {
        a.copies++;
        a.copyBytes += c.bytes ?? 0;
        a.copyNs += Number(c.endNs - c.startNs);
      }
      a.ops += g.ops.length + (childOps.get(g) ?? 0);
    }
  }

  /** The run's backends (RunTotals.backends, in order of first use) with their sums. */
  finish(backends: readonly Backend[]): BackendStat[] {
    return backends.map((b) => {
      const a = this.acc.get(b.id);
      return {
        name: b.name,
        registry: b.registry,
        namedBy: b.namedBy,
        splits: a?.splits ?? 0,
        submitMs: ms(a?.submitNs ?? 0),
        completeMs: ms(a?.completeNs ?? 0),
        waitMs: ms(a?.waitNs ?? 0),
        copies: a?.copies ?? 0,
        copyBytes: a?.copyBytes ?? 0,
        copyMs: ms(a?.copyNs ?? 0),
        ops: a?.ops ?? 0,
        measured: b.measures,
        notSeen: [...b.unseen],
      };
    });
  }
}

export function backendStats(run: Run): BackendStat[] {
  const acc = new BackendStatsAccumulator();
  acc.add(run.graphRuns);
  return acc.finish(run.backends);
}
