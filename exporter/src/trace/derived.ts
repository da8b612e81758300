// SPDX-License-Identifier: Apache-2.0
// Figures derived from counter deltas, the same for every output (stats.json, the summary, the
// Perfetto counter tracks, spans): each is present only when the events it needs were recorded.
import type { DerivedFigures } from "@profinfer/contract";
import { backendStallRatio, formulaOfRun, type BackendStallFormula } from "./backendStall.js";

/** Bytes one last-level cache miss moves from memory: one cache line. */
export const CACHE_LINE_BYTES = 64;

/** The first name of `names` that was recorded. */
function pick(counters: Readonly<Record<string, number>>, ...names: string[]): number | undefined {
  for (const n of names) if (n in counters) return counters[n];
  return undefined;
}

const round = (v: number, digits = 4): number => {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
};

/**
 * Derived figures of summed counter deltas. `threadNs` is the summed duration of the thread
 * intervals the deltas cover (for bandwidth and on-CPU ratio); `stall` the run's backend-stall
 * formula (Run.backendStall; by default the generic one where its events were recorded).
 */
export function deriveFigures(
  counters: Readonly<Record<string, number>>,
  threadNs: number,
  stall: BackendStallFormula | null = formulaOfRun(undefined, Object.keys(counters)),
): DerivedFigures {
  const out: DerivedFigures = {};
  const cycles = pick(counters, "cycles", "cpu-cycles");
  const instructions = pick(counters, "instructions");
  const refs = pick(counters, "cache-references");
  const misses = pick(counters, "cache-misses");
  const frontend = pick(counters, "stalled-cycles-frontend", "idle-cycles-frontend");
  const branches = pick(counters, "branch-instructions", "branches");
  const branchMisses = pick(counters, "branch-misses");
  const taskClock = pick(counters, "task-clock", "cpu-clock");
  if (cycles && instructions !== undefined) out.ipc = round(instructions / cycles);
  if (refs && misses !== undefined) out.cacheMissRate = round(misses / refs);
  const backendStall = backendStallRatio(stall, counters);
  if (backendStall !== undefined) out.backendStallRatio = round(backendStall);
  if (cycles && frontend !== undefined) out.frontendStallRatio = round(frontend / cycles);
  if (branches && branchMisses !== undefined) out.branchMissRate = round(branchMisses / branches);
  if (misses !== undefined) {
    out.memoryBytes = misses * CACHE_LINE_BYTES;
    if (threadNs > 0) out.memoryBandwidth = Math.round(out.memoryBytes / (threadNs / 1e9));
  }
  if (taskClock !== undefined && threadNs > 0) out.onCpuRatio = round(taskClock / threadNs);
  return out;
}

/** Adds `more` into `into`, counter by counter. */
export function addCounters(
  into: Record<string, number>,
  more: Readonly<Record<string, number>>,
): void {
  for (const [name, v] of Object.entries(more)) into[name] = (into[name] ?? 0) + v;
}
