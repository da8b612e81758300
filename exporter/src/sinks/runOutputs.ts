// SPDX-License-Identifier: Apache-2.0
// Every output of a run folder, rebuilt from its events.pinf: the same code path for a live
// record, attach and replay, so that replay reproduces them byte for byte.
import { join } from "node:path";
import { buildRun } from "../trace/buildRun.js";
import type { Run } from "../trace/types.js";
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
import { writeRunProfiles } from "./pprof.js";
import { writeReport } from "./report.js";
import { computeStats, writeStatsJson } from "./stats.js";
import { formatStatsSummary } from "./statsSummary.js";

export interface RunOutputOptions {
  /** write report.html (default true) */
  report?: boolean;
  /** which llama_decode calls get operator spans (traces.otlp.jsonl) */
  opSampling?: OpSampling;
  /** the idle bound that ends a request (traces.otlp.jsonl; default REQUEST_IDLE_NS) */
  requestIdleNs?: bigint;
  /** service.name of the spans; default: the program's name */
  serviceName?: string;
}

export interface RunOutputs {
  run: Run;
  summary: string;
  /** report.html, when it was written */
  report: string | null;
  /** why report.html was not written, when it was asked for */
  reportError: string | null;
  /** why the outputs built from events (trace.json, traces.otlp.jsonl, report.html) were not written */
  notWritten: string | null;

  /** the spans of traces.otlp.jsonl, and their resource's attributes */
  spans: SpanRecord[];
  resource: ReturnType<typeof resourceAttributes>;
}

/**
 * Writes trace.json, stats.json, the pprof profiles (profile.pb.gz, profile-<phase>.pb.gz),
 * traces.otlp.jsonl and report.html into `runDir`.
 */
export function writeRunOutputs(runDir: string, options: RunOutputOptions = {}): RunOutputs {
  const run = buildRun(readRawFile(join(runDir, "events.pinf")));
  const stats = computeStats(run);
  writeStatsJson(stats, join(runDir, "stats.json"));
  if (run.header.level === "metrics") {
    // no event per call reached user space: a timeline, spans or a report would be empty
    return {
      run,
      summary: formatStatsSummary(stats),
      report: null,
      reportError: null,
      notWritten:
        "level metrics records no event per call, so there is no timeline (trace.json), no profile (profile.pb.gz), no spans (traces.otlp.jsonl) and no report.html; stats.json and the summary hold the kernel's aggregates. Record at --level op (the default) for those.",
      spans: [],
      resource: resourceAttributes(
        run.header,
        run.notes.map((n) => n.note),
        options.serviceName,
      ),
    };
  }
  writePerfettoTrace(run, join(runDir, "trace.json"));
  writeRunProfiles(run, runDir);
  const spans = buildRunSpans(
    run,
    options.opSampling ?? DEFAULT_OP_SAMPLING,
    options.requestIdleNs !== undefined ? { requestIdleNs: options.requestIdleNs } : {},
  );
  writeOtlpJsonLines(
    join(runDir, "traces.otlp.jsonl"),
    spans,
    runResource(run, options.serviceName),
    run.header.profinfer,
  );
  let report: string | null = null;
  let reportError: string | null = null;
  if (options.report ?? true) {
    // the report comes last: a failure to write it loses none of the other outputs
    try {
      report = join(runDir, "report.html");
      writeReport(run, stats, report);
    } catch (error) {
      report = null;
      reportError = (error as Error).message;
    }
  }
  return {
    run,
    summary: formatStatsSummary(stats),
    report,
    reportError,
    notWritten: null,
    spans,
    resource: resourceAttributes(
      run.header,
      run.notes.map((n) => n.note),
      options.serviceName,
    ),
  };
}
