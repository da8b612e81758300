// SPDX-License-Identifier: Apache-2.0
// What the exporter embeds in report.html and the plugin's report bundle reads: the run as the
// frames the panel reads (a trace frame in the shape of Grafana's Tempo data source) and ProfStat.
import type { ProfStats } from "./stats.js";
import type { TraceFrame } from "./traceFrame.js";

export interface ReportData {
  format: "profinfer-report";
  version: 1;
  title: string;
  /** the trace frame of the run: every llama_decode and graph span, operator spans of the graphs shown */
  frames: TraceFrame[];
  /** the graph_compute span ProfDAG shows first */
  mainGraphSpanId: string | null;
  stats: ProfStats;
}

/** The id of the inert <script type="application/json"> element that holds the ReportData. */
export const REPORT_DATA_ELEMENT_ID = "profinfer-report-data";
