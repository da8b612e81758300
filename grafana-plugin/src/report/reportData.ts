// SPDX-License-Identifier: Apache-2.0
// What the exporter embeds in report.html: the run as the frames the panel reads (a trace frame
// in the shape of Grafana's Tempo data source) and ProfStat (stats.json, as
// docs/trace-model.md describes it; only the fields the tables show are typed here).
import type { FrameLike } from "../data/frames.js";

export interface ReportPhase {
  calls: number;
  tokens: number;
  totalMs: number;
  meanMs: number;
  p50Ms: number;
  p99Ms: number;
  tokensPerSecond: number;
}

export interface ReportStats {
  run: {
    command: string[];
    pid: number;
    level: string;
    events: number;
    durationMs: number;
    truncated: boolean;
  };
  phases: {
    prefill: ReportPhase;
    decode: ReportPhase;
    ttftMs: number | null;
    tpotMs: number | null;
  };
  ops: {
    display: string;
    count: number;
    inferred: number;
    totalMs: number;
    meanMs: number;
    p50Ms: number;
    p99Ms: number;
    share: number;
    barrierWaitMs: number;
    imbalance: number;
  }[];
  layers: { layer: number | null; ops: number; totalMs: number; share: number }[];
  slowestTensors: {
    tensor: string;
    op: string;
    layer: number | null;
    count: number;
    meanMs: number;
    totalMs: number;
  }[];
  threads: {
    tid: number;
    name: string;
    computeMs: number;
    barrierWaitMs: number;
    offCpuMs: number;
    preemptedMs: number;
  }[];
  experts: { layer: number; k: number; rows: number; counts: Record<string, number> }[];
  drops: { counts: Record<string, number>; total: number } | null;
  warnings: string[];
}

export interface ReportData {
  format: "profinfer-report";
  version: 1;
  title: string;
  /** the trace frame of the run: every llama_decode and graph span, operator spans of the main graph */
  frames: FrameLike[];
  /** the graph_compute span ProfDAG shows first */
  mainGraphSpanId: string | null;
  stats: ReportStats;
}

export const REPORT_DATA_ELEMENT_ID = "profinfer-report-data";
