// SPDX-License-Identifier: Apache-2.0
// Every output of a run folder, rebuilt from its events.pinf: the same code path for a live
// record, attach and replay, so that replay reproduces them byte for byte.
import { join } from "node:path";
import { buildRun, type Run } from "../trace/model.js";
import { readRawFile } from "../trace/rawFile.js";
import { writePerfettoTrace } from "./perfetto.js";
import { computeStats, formatStatsSummary, writeStatsJson } from "./stats.js";

/** Writes trace.json and stats.json into `runDir`; returns the run and the terminal summary. */
export function writeRunOutputs(runDir: string): { run: Run; summary: string } {
  const run = buildRun(readRawFile(join(runDir, "events.pinf")));
  writePerfettoTrace(run, join(runDir, "trace.json"));
  const stats = computeStats(run);
  writeStatsJson(stats, join(runDir, "stats.json"));
  return { run, summary: formatStatsSummary(stats) };
}
