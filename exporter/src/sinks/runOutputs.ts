// SPDX-License-Identifier: Apache-2.0
// Every output of a run folder, rebuilt from its events.pinf: the same code path for a live
// record, attach and replay, so that replay reproduces them byte for byte. Streaming passes over
// the file (trace/runStream.ts), so that memory does not grow with the run: the first reads what
// only the whole file tells, the second builds the model a chunk of calls at a time and hands
// each chunk to every output, the third (short) gives report.html the operators of the graphs it
// shows once the findings are known.
import { join } from "node:path";
import type { Attributes } from "@opentelemetry/api";
import { scanRunFacts, type RunFacts } from "../trace/runFacts.js";
import { runEventFiles } from "../trace/segments.js";
import type { ProfStats } from "@profinfer/contract";
import { streamRunFile, type RunChunk, type RunTotals } from "../trace/runStream.js";
import { formulaOfHeader } from "../trace/backendStall.js";
import { clockFrom } from "../trace/clock.js";
import { modelNameOfRun } from "../trace/modelName.js";
import { REQUEST_IDLE_NS } from "../trace/requests.js";
import { OtlpJsonLinesWriter } from "./otel/readable.js";
import { RecordSink } from "./otel/spanSink.js";
import { resourceAttributes } from "./otel/resource.js";
import {
  DEFAULT_OP_SAMPLING,
  SpanBuilder,
  SpanIds,
  type OpSampling,
  type SpanRecord,
} from "./otel/spans.js";
import { jsonTimelineFile } from "./perfetto.js";
import { protoTimelineFile } from "./perfettoProto.js";
import { ProfileAccumulator, writeProfiles } from "./pprof.js";
import { ReportCollector, writeReportData } from "./report.js";
import { StatsAccumulator, writeStatsJson } from "./stats.js";
import { formatStatsSummary } from "./statsSummary.js";
import { TimelineWriter, type TimelineEncoder, type TimelineEnd } from "./timeline.js";
import { resourceFromAttributes } from "@opentelemetry/resources";

/** Which timeline files to write: trace.json (JSON), trace.pftrace (Perfetto's protobuf). */
export type TimelineFormat = "auto" | "json" | "protobuf" | "both";
export const TIMELINE_FORMATS: readonly TimelineFormat[] = ["auto", "json", "protobuf", "both"];

/**
 * With "auto", trace.json too for runs whose events.pinf is at most this big: its JSON is about
 * five times the raw file, and Perfetto UI opens JSON traces of up to a few hundred MB only.
 */
export const JSON_TIMELINE_MAX_RAW_BYTES = 32 << 20;

export interface RunOutputOptions {
  /** write report.html (default true) */
  report?: boolean;
  /** which timeline files to write (default "auto": the protobuf one, and trace.json when small) */
  timeline?: TimelineFormat;
  /** which llama_decode calls get operator spans (traces.otlp.jsonl) */
  opSampling?: OpSampling;
  /** the idle bound that ends a request (traces.otlp.jsonl; default REQUEST_IDLE_NS) */
  requestIdleNs?: bigint;
  /** service.name of the spans; default: the program's name */
  serviceName?: string;
  /** receives the spans of traces.otlp.jsonl as they are made (replay sends them), after their resource */
  spans?: { resource(attributes: Attributes): void; add(records: SpanRecord[]): void };
}

export interface RunOutputs {
  summary: string;
  /** the timeline files written */
  timelines: string[];
  /** report.html, when it was written */
  report: string | null;
  /** why report.html was not written, when it was asked for */
  reportError: string | null;
  /** why the outputs built from events (trace.json, traces.otlp.jsonl, report.html) were not written */
  notWritten: string | null;
  /** spans of traces.otlp.jsonl */
  spans: number;
  /** their resource's attributes */
  resource: Attributes;
}

/** The timeline files of a run: `auto` writes the protobuf one, and trace.json while the run is small. */
function timelineFiles(
  format: TimelineFormat,
  rawBytes: number,
): { json: boolean; protobuf: boolean } {
  switch (format) {
    case "json":
      return { json: true, protobuf: false };
    case "protobuf":
      return { json: false, protobuf: true };
    case "both":
      return { json: true, protobuf: true };
    case "auto":
      return { json: rawBytes <= JSON_TIMELINE_MAX_RAW_BYTES, protobuf: true };
  }
}

/** Several encoders fed as one. */
function allOf(encoders: TimelineEncoder[]): TimelineEncoder {
  return {
    slice: (...args) => encoders.forEach((e) => e.slice(...args)),
    counter: (...args) => encoders.forEach((e) => e.counter(...args)),
    finish: (end: TimelineEnd) => encoders.forEach((e) => e.finish(end)),
  };
}

/**
 * Writes stats.json, the timeline (trace.pftrace and/or trace.json), the pprof profiles
 * (profile.pb.gz, profile-<phase>.pb.gz), traces.otlp.jsonl and report.html into `runDir`.
 */
export function writeRunOutputs(runDir: string, options: RunOutputOptions = {}): RunOutputs {
  const path = runEventFiles(runDir);
  const facts = scanRunFacts(path);
  const header = facts.header;
  const notes = facts.notes.map((n) => n.note);
  const resource = resourceAttributes(header, notes, options.serviceName);
  const stats = new StatsAccumulator(header, facts.firstNs);
  if (header.level === "metrics") {
    // no event per call reached user space: a timeline, spans or a report would be empty
    const totals = streamRunFile(path, (chunk) => stats.add(chunk), { facts })!;
    const result = stats.finish(totals);
    writeStatsJson(result, join(runDir, "stats.json"));
    return {
      summary: formatStatsSummary(result),
      timelines: [],
      report: null,
      reportError: null,
      notWritten:
        "level metrics records no event per call, so there is no timeline (trace.pftrace, trace.json), no profile (profile.pb.gz), no spans (traces.otlp.jsonl) and no report.html; stats.json and the summary hold the kernel's aggregates. Record at --level op (the default) for those.",
      spans: 0,
      resource,
    };
  }
  const wanted = timelineFiles(options.timeline ?? "auto", facts.fileSize);
  const files: { encoder: TimelineEncoder; close(): void }[] = [];
  const timelines: string[] = [];
  if (wanted.protobuf) {
    timelines.push(join(runDir, "trace.pftrace"));
    files.push(
      protoTimelineFile(timelines.at(-1)!, header.target.pid, header.target.command, facts.firstNs),
    );
  }
  if (wanted.json) {
    timelines.push(join(runDir, "trace.json"));
    files.push(jsonTimelineFile(timelines.at(-1)!, header.target.pid, facts.firstNs));
  }
  const timeline = new TimelineWriter(
    header,
    allOf(files.map((f) => f.encoder)),
    (key) => facts.snapshotUses.get(key) ?? 0,
    formulaOfHeader(header),
  );
  const profiles = new ProfileAccumulator();
  const spanBuilder = new SpanBuilder(SpanIds.forHeader(header), clockFrom(header), {
    opSampling: options.opSampling ?? DEFAULT_OP_SAMPLING,
    model: modelNameOfRun(header, facts.notes) ?? "unknown",
    requestIdleNs: options.requestIdleNs ?? REQUEST_IDLE_NS,
  });
  const jsonl = new OtlpJsonLinesWriter(
    join(runDir, "traces.otlp.jsonl"),
    resourceFromAttributes(resource),
    header.profinfer,
  );
  options.spans?.resource(resource);
  const report =
    (options.report ?? true) ? new ReportCollector(header, facts.notes, facts.calls) : null;
  const sendSpans = (records: SpanRecord[]) => {
    jsonl.add(records);
    if (records.length > 0) options.spans?.add(records);
  };
  let totals: RunTotals;
  try {
    totals = streamRunFile(
      path,
      (chunk: RunChunk) => {
        stats.add(chunk);
        timeline.chunk(chunk);
        profiles.add(chunk.run);
        const out = new RecordSink();
        spanBuilder.addTokens(chunk.run, chunk.run.tokens, out);
        sendSpans(out.records);
        report?.chunk(chunk);
      },
      { facts },
    )!;
    const out = new RecordSink();
    spanBuilder.finish(totals.stoppedNs, totals.exit, out);
    sendSpans(out.records);
    timeline.finish(totals);
  } finally {
    for (const f of files) f.close();
    jsonl.close();
  }
  const result = stats.finish(totals);
  writeStatsJson(result, join(runDir, "stats.json"));
  writeProfiles(profiles.finish(totals), runDir);
  let reportPath: string | null = null;
  let reportError: string | null = null;
  if (report) {
    // the report comes last: a failure to write it loses none of the other outputs
    try {
      reportPath = join(runDir, "report.html");
      finishReport(path, facts, report, totals, result, reportPath);
    } catch (error) {
      reportPath = null;
      reportError = (error as Error).message;
    }
  }
  return {
    summary: formatStatsSummary(result),
    timelines,
    report: reportPath,
    reportError,
    notWritten: null,
    spans: jsonl.spans,
    resource,
  };
}

/** The report's last pass (the operators of the graphs it shows) and report.html. */
function finishReport(
  path: readonly string[],
  facts: RunFacts,
  report: ReportCollector,
  totals: RunTotals,
  stats: ProfStats,
  out: string,
): void {
  report.end(totals, stats);
  streamRunFile(path, (chunk) => report.detail(chunk), { facts });
  writeReportData(report.data(stats), out);
}

/** A run folder's statistics (stats.json's content), streamed from its events.pinf. */
export function runStats(runDir: string): ProfStats {
  const path = runEventFiles(runDir);
  const facts = scanRunFacts(path);
  const stats = new StatsAccumulator(facts.header, facts.firstNs);
  return stats.finish(streamRunFile(path, (chunk) => stats.add(chunk), { facts })!);
}

/** A run folder's report.html, written to `out`, streamed from its events.pinf. */
export function writeRunReport(runDir: string, out: string): void {
  const path = runEventFiles(runDir);
  const facts = scanRunFacts(path);
  const stats = new StatsAccumulator(facts.header, facts.firstNs);
  const report = new ReportCollector(facts.header, facts.notes, facts.calls);
  const totals = streamRunFile(
    path,
    (chunk) => {
      stats.add(chunk);
      report.chunk(chunk);
    },
    { facts },
  )!;
  finishReport(path, facts, report, totals, stats.finish(totals), out);
}

/** A run folder's pprof profiles, written into `out`, streamed from its events.pinf; their paths. */
export function writeRunProfileFiles(runDir: string, out: string): string[] {
  const path = runEventFiles(runDir);
  const profiles = new ProfileAccumulator();
  const totals = streamRunFile(path, (chunk) => profiles.add(chunk.run))!;
  return writeProfiles(profiles.finish(totals), out);
}
