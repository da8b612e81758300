// SPDX-License-Identifier: Apache-2.0
// Findings: what a run's figures say is slow, why, where, and what to try (stats.json `findings`,
// the summary, `profinfer findings`). Ids are stable: alerts, diffs and docs refer to them.

export const FINDING_IDS = [
  "decode.memory-bound",
  "threads.oversubscribed",
  "sched.interference",
  "profiler.cost",
  "barrier.wait",
  "kv.growth",
  "startup.first-call",
  "moe.load",
] as const;
export type FindingId = (typeof FINDING_IDS)[number];

export type FindingSeverity = "high" | "medium" | "low";

export interface Finding {
  id: FindingId;
  severity: FindingSeverity;
  /** one line, with the figure that matters */
  title: string;
  /** the numbers behind it, by name (ms, shares from 0 to 1, counts) */
  evidence: Record<string, number | string>;
  /** where it is: op type, layer, tensor, thread, process, llama_decode calls (seq from..to) */
  where: {
    op?: string;
    layer?: number;
    thread?: string;
    process?: { comm: string; tgid: number };
    calls?: [number, number];
  };
  /** what to try */
  action: string;
}
