// SPDX-License-Identifier: Apache-2.0
// Every output of a run folder, rebuilt from its events.pinf: the same code path for a live
// record, attach and replay, so that replay reproduces them byte for byte.
import { join } from "node:path";
import { buildRun, type Run } from "../trace/model.js";
import { readRawFile } from "../trace/rawFile.js";
import { writeOtlpJsonLines } from "./otel/readable.js";
import { resourceAttributes, runResource } from "./otel/resource.js";
import {
  DEFAULT_OP_SAMPLING,
  buildRunSpans,
  type OpSampling,
  type SpanRecord,
} from "./otel/spans.js";
import { writePerfettoTrace } from "./perfetto.js";
import { computeStats, formatStatsSummary, writeStatsJson } from "./stats.js";

export interface RunOutputOptions {
  /** which llama_decode calls get operator spans (traces.otlp.jsonl) */
  opSampling?: OpSampling;
  /** service.name of the spans; default: the program's name */
  serviceName?: string;
}

export interface RunOutputs {
  run: Run;
  summary: string;
  /** the spans of traces.otlp.jsonl, and their resource's attributes */
  spans: SpanRecord[];
  resource: ReturnType<typeof resourceAttributes>;
}

/** Writes trace.json, stats.json and traces.otlp.jsonl into `runDir`. */
export function writeRunOutputs(runDir: string, options: RunOutputOptions = {}): RunOutputs {
  const run = buildRun(readRawFile(join(runDir, "events.pinf")));
  writePerfettoTrace(run, join(runDir, "trace.json"));
  const stats = computeStats(run);
  writeStatsJson(stats, join(runDir, "stats.json"));
  const spans = buildRunSpans(run, options.opSampling ?? DEFAULT_OP_SAMPLING);
  writeOtlpJsonLines(
    join(runDir, "traces.otlp.jsonl"),
    spans,
    runResource(run, options.serviceName),
    run.header.profinfer,
  );
  return {
    run,
    summary: formatStatsSummary(stats),
    spans,
    resource: resourceAttributes(
      run.header,
      run.notes.map((n) => n.note),
      options.serviceName,
    ),
  };
}
