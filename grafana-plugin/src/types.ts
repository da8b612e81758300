// SPDX-License-Identifier: Apache-2.0
// The panel's options and their defaults.
import type { HeatmapMode } from "./data/heatmap.js";
import type { Aggregate } from "./data/fold.js";
import type { ScaleType, SchemeName } from "./data/colorScale.js";
import { DIFF_DEFAULTS } from "@profinfer/contract";

export type View = "dag" | "heatmap";
export type HeatmapSource = "auto" | "prometheus" | "trace";
export type RankDir = "TB" | "LR";

export interface DagOptions {
  colorMetric: string;
  colorScale: ScaleType;
  colorScheme: SchemeName;
  fold: boolean;
  foldAggregate: Aggregate;
  criticalPath: boolean;
  rankdir: RankDir;
}

/** ProfDAG comparing two traces (two queries): the base query's refId, the change that counts */
export interface CompareOptions {
  compare: boolean;
  compareBase: string;
  /** percent: a node's change beyond ± this is slower or faster */
  compareMinChange: number;
}

export interface HeatmapOptions {
  heatmapSource: HeatmapSource;
  heatmapMode: HeatmapMode;
  /** the layer of tokens mode; -1: the first layer */
  heatmapLayer: number;
  heatmapScale: ScaleType;
  heatmapScheme: SchemeName;
}

export interface Options extends DagOptions, CompareOptions, HeatmapOptions {
  view: View;
}

export const defaultOptions: Options = {
  view: "dag",
  colorMetric: "duration",
  colorScale: "log",
  colorScheme: "inferno",
  fold: false,
  foldAggregate: "mean",
  criticalPath: true,
  rankdir: "TB",
  compare: false,
  compareBase: "A",
  compareMinChange: DIFF_DEFAULTS.minRelative * 100,
  heatmapSource: "auto",
  heatmapMode: "layers",
  heatmapLayer: -1,
  heatmapScale: "linear",
  heatmapScheme: "viridis",
};
