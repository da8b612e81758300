// SPDX-License-Identifier: Apache-2.0
// report.html: one self-contained file, no network, that shows a run without Grafana: ProfDAG of
// the main decode graph, the expert heatmap of MoE models, a timeline overview and the ProfStat
// tables. It holds the run as the frames the Grafana panel reads (traceFrame.ts) plus stats.json,
// and the plugin's report bundle (grafana-plugin/dist/report/report.js), which draws them with
// the panel's own data -> model functions and components. `profinfer diff --html` writes the
// same kind of page with two runs' frames and their comparison.
//
// Bounded whatever the run's length: the aggregates are the whole run's (stats.json), the
// per-call detail is a sample of calls, every k-th so that about REPORT_CALLS are shown, plus the
// calls of the graphs whose operators it shows (the main decode graph, the first prompt's graph,
// each finding's graph), and the first REPORT_REQUESTS requests; the report says which.
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import {
  ATTR_TOKEN_SEQ,
  MainGraphChooser,
  REPORT_DATA_ELEMENT_ID,
  SPAN_TOKEN,
  type DiffPageData,
  type DiffReport,
  type ProfStats,
  type ReportData,
  type RunFrames,
} from "@profinfer/contract";
import { UserError } from "../errors.js";
import { clockFrom } from "../trace/clock.js";
import type { RunHeader } from "../trace/header.js";
import { modelNameOfRun } from "../trace/modelName.js";
import type { NoteRecord } from "../trace/notes.js";
import { REQUEST_IDLE_NS } from "../trace/requests.js";
import { chunkOfRun, totalsOfRun, type RunChunk } from "../trace/runStream.js";
import type { GraphRun, Run, Token } from "../trace/types.js";
import { resourceAttributes } from "./otel/resource.js";
import { RecordSink } from "./otel/spanSink.js";
import { SpanBuilder, SpanIds, graphSignature, type SpanRecord } from "./otel/spans.js";
import { mainDecodeGraph, runModelName, traceFrame, traceFrameOf } from "./traceFrame.js";

/** About this many calls have their spans in the report, evenly spread over the run. */
export const REPORT_CALLS = 500;
/** The requests whose root spans and table rows the report holds: the first ones. */
export const REPORT_REQUESTS = 200;

/** A graph run by where it is: the call (process, seq) and its place among the call's graphs. */
interface GraphRef {
  tgid: number;
  seq: number;
  index: number;
}

/**
 * Gathers report.html's data while a run streams by (pass 2: the sampled calls' spans and which
 * graphs to show), then the operator spans of the graphs shown (pass 3, over the chunks that hold
 * them, once the findings are known: wanted() says which calls).
 */
export class ReportCollector {
  private readonly ids: SpanIds;
  private readonly sampleBuilder: SpanBuilder;
  /** the calls of the chunk at hand that are in the sample */
  private sampled = new Set<Token>();
  private detailBuilder: SpanBuilder | null = null;
  private readonly spans = new Map<string, SpanRecord>();
  private readonly every: number;
  private calls = 0;
  private shown = 0;
  private readonly main = new MainGraphChooser<GraphRef>();
  private firstPrompt: GraphRef | null = null;
  /** pass 3: calls wanted (by seq, as findings name them) and the graph spans found for them */
  private wantedSeqs = new Set<number>();
  private readonly graphOfSeq = new Map<number, GraphRef>();

  constructor(
    private readonly header: RunHeader,
    private readonly notes: readonly NoteRecord[],
    totalCalls: number,
  ) {
    this.ids = SpanIds.forHeader(header);
    this.every = Math.max(1, Math.ceil(totalCalls / REPORT_CALLS));
    this.sampleBuilder = this.builder((t) => this.sampled.has(t));
  }

  private builder(calls: (token: Token) => boolean): SpanBuilder {
    return new SpanBuilder(this.ids, clockFrom(this.header), {
      opSampling: { kind: "none" },
      opGraphs: new Set(),
      model: modelNameOfRun(this.header, this.notes) ?? "unknown",
      requestIdleNs: REQUEST_IDLE_NS,
      calls,
      requests: (r) => r.id < REPORT_REQUESTS,
    });
  }

  /** Pass 2: one chunk of the run. */
  chunk(chunk: RunChunk): void {
    const run = chunk.run;
    this.sampled = new Set();
    for (const t of run.tokens) {
      if (this.calls++ % this.every === 0) this.sampled.add(t);
      t.graphs.forEach((g, index) => {
        const withOps = g.opsRecorded && g.ops.length > 0;
        const ref = { tgid: t.tgid, seq: t.seq, index };
        this.main.add(
          {
            decode: t.phase === "decode",
            withOps,
            complete: g.complete,
            description: graphSignature(g),
          },
          ref,
        );
        if (withOps && t.phase !== "decode") this.firstPrompt ??= ref;
      });
    }
    this.shown += this.sampled.size;
    const out = new RecordSink();
    this.sampleBuilder.addTokens(run, run.tokens, out);
    for (const s of out.records) this.spans.set(s.spanId, s);
  }

  /** The end of pass 2 (the run's end and its findings): the calls whose graphs pass 3 builds. */
  end(
    totals: { stoppedNs: bigint | null; exit: { signal: string | null } | null },
    stats: ProfStats,
  ): Set<number> {
    const out = new RecordSink();
    this.sampleBuilder.finish(totals.stoppedNs, totals.exit, out);
    for (const s of out.records) this.spans.set(s.spanId, s);
    const wanted = new Set<number>();
    for (const ref of [this.main.chosen(), this.firstPrompt]) {
      if (!ref) continue;
      wanted.add(ref.seq);
      this.graphOfSeq.set(ref.seq, ref);
    }
    for (const f of stats.findings) {
      const seq = f.where.calls?.[0];
      if (seq !== undefined) wanted.add(seq);
    }
    this.wantedSeqs = wanted;
    this.detailBuilder = this.builder((t) => this.wantedSeqs.has(t.seq));
    return wanted;
  }

  /** Pass 3: a chunk again; true once every wanted call has been seen. */
  detail(chunk: RunChunk): boolean {
    const run = chunk.run;
    const graphs = new Set<GraphRun>();
    for (const t of run.tokens) {
      if (!this.wantedSeqs.has(t.seq)) continue;
      const ref = this.graphOfSeq.get(t.seq);
      // a finding names a call: its first graph with operators
      const index = ref ? ref.index : t.graphs.findIndex((g) => g.opsRecorded && g.ops.length > 0);
      if (index < 0) continue;
      this.graphOfSeq.set(t.seq, { tgid: t.tgid, seq: t.seq, index });
      graphs.add(t.graphs[index]!);
    }
    this.detailBuilder!.setOpGraphs(new Set(withOtherBackends(run, [...graphs])));
    const out = new RecordSink();
    this.detailBuilder!.addTokens(run, run.tokens, out);
    for (const s of out.records) this.spans.set(s.spanId, s);
    const last = run.tokens.at(-1)?.seq ?? -1;
    return [...this.wantedSeqs].every((seq) => seq <= last);
  }

  /** The report's data, after pass 3. */
  data(stats: ProfStats): ReportData {
    const graphSpan = (seq: number | undefined) => {
      const ref = seq === undefined ? undefined : this.graphOfSeq.get(seq);
      return ref ? this.ids.graphSpan(ref.tgid, ref.seq, ref.index) : null;
    };
    const main = this.main.chosen();
    const spans = [...this.spans.values()].sort((a, b) =>
      a.startNs < b.startNs ? -1 : a.startNs > b.startNs ? 1 : 0,
    );
    const present = new Set(spans.map((s) => s.spanId));
    const findingGraphSpanIds: Record<string, string> = {};
    for (const f of stats.findings) {
      const id = graphSpan(f.where.calls?.[0]);
      if (id && present.has(id)) findingGraphSpanIds[f.id] = id;
    }
    const mainId = main ? graphSpan(main.seq) : null;
    const shownSeqs = new Set(
      spans
        .filter((s) => s.parentSpanId === null && s.name === SPAN_TOKEN)
        .map((s) => s.attributes[ATTR_TOKEN_SEQ]),
    );
    const total = stats.tokens.length;
    const rule =
      this.every === 1
        ? `every llama_decode call of the run (${total})`
        : `${shownSeqs.size} of the run's ${total} llama_decode calls: every ${this.every}th, and the calls of the graphs whose operators are shown`;
    return {
      format: "profinfer-report",
      version: 1,
      title: `profinfer report: ${runModelName({ header: this.header, notes: this.notes })}`,
      frames: [
        traceFrameOf(
          spans,
          resourceAttributes(
            this.header,
            this.notes.map((n) => n.note),
          ),
          this.header.profinfer,
        ),
      ],
      mainGraphSpanId: mainId && present.has(mainId) ? mainId : null,
      findingGraphSpanIds,
      stats: {
        ...stats,
        tokens: stats.tokens.filter((t) => shownSeqs.has(t.seq)),
        requests: { ...stats.requests, list: stats.requests.list.slice(0, REPORT_REQUESTS) },
      },
      callSample: {
        total,
        shown: shownSeqs.size,
        requests: stats.requests.count,
        requestsShown: Math.min(stats.requests.count, REPORT_REQUESTS),
        rule,
      },
    };
  }
}

/** report.html's data for a run built whole. */
export function reportData(run: Run, stats: ProfStats): ReportData {
  const collector = new ReportCollector(run.header, run.notes, run.tokens.length);
  const chunk = chunkOfRun(run);
  collector.chunk(chunk);
  const totals = totalsOfRun(run);
  collector.end(totals, stats);
  // the detail pass reads the same calls again: their requests start afresh
  collector.detail(chunkOfRun(run));
  return collector.data(stats);
}

/**
 * A run built whole as its trace frame with operator spans of its main decode graph and of
 * `more` graphs, the main graph's span id, and how to find another graph's (the diff page).
 */
export function runFrames(
  run: Run,
  more: readonly (GraphRun | null)[] = [],
): RunFrames & { spanIdOf: (g: GraphRun) => string | null } {
  const main = mainDecodeGraph(run);
  const chosen = [...new Set([main, ...more])].filter((g) => g !== null);
  const frame = traceFrame(run, { opGraphs: withOtherBackends(run, chosen) });
  // the span ids follow the run's graph order: find a graph's row by its index
  const ids = frame.fields.find((f) => f.name === "spanID")!.values as string[];
  const names = frame.fields.find((f) => f.name === "operationName")!.values as string[];
  const graphRows = ids.filter((_, i) => names[i] === "graph_compute");
  const spanIdOf = (g: GraphRun) => graphRows[run.graphRuns.indexOf(g)] ?? null;
  return { frames: [frame], mainGraphSpanId: main ? spanIdOf(main) : null, spanIdOf };
}

/** The scheduler graph a graph run is part of (itself for one). */
function schedOf(g: GraphRun): GraphRun | null {
  let at: GraphRun | null = g;
  while (at && at.fn !== "sched") at = at.parent;
  return at;
}

/**
 * The graphs chosen, and where one is a split of a scheduler graph computed on several backends,
 * the other splits' graphs with operators too: ProfDAG then shows that graph on every backend.
 */
function withOtherBackends(run: Run, chosen: readonly GraphRun[]): GraphRun[] {
  const scheds = new Set(chosen.map(schedOf).filter((g) => g !== null));
  const out = new Set(chosen);
  const backends = new Map<GraphRun, Set<string>>();
  for (const g of run.graphRuns) {
    const sched = g.split?.sched;
    if (sched && scheds.has(sched)) {
      let names = backends.get(sched);
      if (!names) backends.set(sched, (names = new Set()));
      names.add(g.split!.backend.name);
    }
  }
  for (const g of run.graphRuns) {
    const sched = schedOf(g);
    if (sched && (backends.get(sched)?.size ?? 0) > 1 && g.opsRecorded && g.ops.length > 0)
      out.add(g);
  }
  return [...out];
}

function mainGraphFrames(run: Run): RunFrames {
  const { frames, mainGraphSpanId } = runFrames(run);
  return { frames, mainGraphSpanId };
}

/** The diff page's data: the comparison, and each run's main decode graph. */
export function diffPageData(base: Run, next: Run, diff: DiffReport): DiffPageData {
  return {
    format: "profinfer-diff-page",
    version: 1,
    title: `profinfer diff: ${runModelName(base)} against ${runModelName(next)}`,
    diff,
    base: mainGraphFrames(base),
    new: mainGraphFrames(next),
  };
}

let bundleCache: string | undefined;
/** The plugin's standalone report bundle; built by `npm run build`. */
export function reportBundle(): string {
  if (bundleCache !== undefined) return bundleCache;
  let path: string;
  try {
    path = createRequire(import.meta.url).resolve("@profinfer/grafana-plugin/report");
    bundleCache = readFileSync(path, "utf8");
  } catch (error) {
    throw new UserError(
      `the HTML page (report.html, diff --html) cannot be written: the report bundle of the Grafana plugin is missing (${(error as Error).message.split("\n")[0]}). Build it with 'npm run build' in the profinfer checkout.`,
    );
  }
  return bundleCache;
}

/** A page of the report bundle (report or diff): the data as inert JSON, then the bundle, both inline. */
export function renderReportHtml(data: ReportData | DiffPageData, bundle: string): string {
  const json = JSON.stringify(data).replace(/</g, "\\u003c");
  const script = bundle.replace(/<\/script/gi, "<\\/script");
  const title = data.title.replace(/[<&]/g, (c) => (c === "<" ? "&lt;" : "&amp;"));
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title>
<style>body{margin:0;background:#fff}</style>
</head>
<body>
<div id="profinfer-report"></div>
<script type="application/json" id="${REPORT_DATA_ELEMENT_ID}">${json}</script>
<script>${script}</script>
</body>
</html>
`;
}

export function writeReportData(data: ReportData, path: string): void {
  writeFileSync(path, renderReportHtml(data, reportBundle()));
}

export function writeReport(run: Run, stats: ProfStats, path: string): void {
  writeReportData(reportData(run, stats), path);
}

export function writeDiffPage(base: Run, next: Run, diff: DiffReport, path: string): void {
  writeFileSync(path, renderReportHtml(diffPageData(base, next, diff), reportBundle()));
}
