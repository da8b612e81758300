// SPDX-License-Identifier: Apache-2.0
// What the exporter embeds in report.html (and diff.html) and the plugin's report bundle reads:
// the run as the frames the panel reads (a trace frame in the shape of Grafana's Tempo data
// source) and ProfStat.
import type { ProfStats } from "./stats.js";
import type { TraceFrame } from "./traceFrame.js";

/** A run as ProfDAG reads it: its trace frame and the graph shown first. */
export interface RunFrames {
  /**
   * the trace frame of the run: its llama_decode and graph spans (report.html: those of the calls
   * in its sample, ReportData.callSample), operator spans of the graphs shown
   */
  frames: TraceFrame[];
  /** the graph_compute span ProfDAG shows first */
  mainGraphSpanId: string | null;
}

export interface ReportData extends RunFrames {
  format: "profinfer-report";
  version: 1;
  title: string;
  /**
   * per finding id, the graph_compute span of the first call it names (where.calls) that carries
   * operators: the report shows that graph when the finding is chosen
   */
  findingGraphSpanIds: Record<string, string>;
  /** its per-call and per-request tables hold those the sample shows (callSample) */
  stats: ProfStats;
  /**
   * which calls and requests the report holds in detail (spans, the per-call table): a sample of
   * a long run, and how it was chosen; the aggregates are always the whole run's. Absent in
   * reports written before the sample.
   */
  callSample?: {
    /** llama_decode calls of the run, and those shown */
    total: number;
    shown: number;
    /** requests of the run, and those listed */
    requests: number;
    requestsShown: number;
    /** how the calls were chosen, for people */
    rule: string;
  };
}

/** The id of the inert <script type="application/json"> element that holds the page's data. */
export const REPORT_DATA_ELEMENT_ID = "profinfer-report-data";
