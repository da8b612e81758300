// SPDX-License-Identifier: Apache-2.0
// report.html: one self-contained file, no network, that shows a run without Grafana: ProfDAG of
// the main decode graph, the expert heatmap of MoE models, a timeline overview and the ProfStat
// tables. It holds the run as the frames the Grafana panel reads (traceFrame.ts) plus stats.json,
// and the plugin's report bundle (grafana-plugin/dist/report/report.js), which draws them with
// the panel's own data -> model functions and components.
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { UserError } from "../errors.js";
import type { Run } from "../trace/types.js";
import { REPORT_DATA_ELEMENT_ID, type ProfStats, type ReportData } from "@profinfer/contract";
import { firstPrefillGraph, mainDecodeGraph, runModelName, traceFrame } from "./traceFrame.js";

export function reportData(run: Run, stats: ProfStats): ReportData {
  const main = mainDecodeGraph(run);
  const prefill = firstPrefillGraph(run);
  const opGraphs = [main, prefill].filter((g) => g !== null);
  const frame = traceFrame(run, { opGraphs });
  // the span ids follow the run's graph order: find the main graph's row by its start
  let mainGraphSpanId: string | null = null;
  if (main) {
    const ids = frame.fields.find((f) => f.name === "spanID")!.values as string[];
    const names = frame.fields.find((f) => f.name === "operationName")!.values as string[];
    const graphRows = ids.filter((_, i) => names[i] === "graph_compute");
    mainGraphSpanId = graphRows[run.graphRuns.indexOf(main)] ?? null;
  }
  return {
    format: "profinfer-report",
    version: 1,
    title: `profinfer report: ${runModelName(run)}`,
    frames: [frame],
    mainGraphSpanId,
    stats,
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
      `report.html cannot be written: the report bundle of the Grafana plugin is missing (${(error as Error).message.split("\n")[0]}). Build it with 'npm run build' in the profinfer checkout.`,
    );
  }
  return bundleCache;
}

/** The report page: the data as inert JSON, then the bundle, both inline. */
export function renderReportHtml(data: ReportData, bundle: string): string {
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

export function writeReport(run: Run, stats: ProfStats, path: string): void {
  writeFileSync(path, renderReportHtml(reportData(run, stats), reportBundle()));
}
