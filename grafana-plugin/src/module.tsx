// SPDX-License-Identifier: Apache-2.0
// The plugin and its options: one panel, two views (ProfDAG and the expert heatmap).
import { PanelPlugin } from "@grafana/data";
import { SCHEMES } from "./data/colorScale.js";
import { KNOWN_METRICS } from "./data/dagModel.js";
import { AGGREGATES } from "./data/fold.js";
import { ProfinferPanel } from "./components/ProfinferPanel.js";
import { defaultOptions, type Options } from "./types.js";

const DAG = ["ProfDAG"];
const COMPARE = ["ProfDAG: compare two traces"];
const HEATMAP = ["Expert heatmap"];
const isDag = (o: Options) => o.view === "dag";
const isHeatmap = (o: Options) => o.view === "heatmap";
const isComparing = (o: Options) => isDag(o) && o.compare;
const choices = <T extends string>(values: readonly T[]) =>
  values.map((value) => ({ value, label: value }));

export const plugin = new PanelPlugin<Options>(ProfinferPanel).setPanelOptions((builder) =>
  builder
    .addRadio({
      path: "view",
      name: "View",
      description:
        "ProfDAG reads a Tempo trace or a nodes/edges pair; the heatmap reads Prometheus expert selections or a trace",
      defaultValue: defaultOptions.view,
      settings: {
        options: [
          { value: "dag", label: "ProfDAG" },
          { value: "heatmap", label: "Expert heatmap" },
        ],
      },
    })
    .addSelect({
      path: "colorMetric",
      name: "Colour by",
      description:
        "A metric of the operator spans; counters (ggml.counter.<event>) are listed when the trace has them",
      category: DAG,
      defaultValue: defaultOptions.colorMetric,
      settings: {
        allowCustomValue: true,
        options: KNOWN_METRICS.map((m) => ({ value: m.id, label: m.label })),
      },
      showIf: isDag,
    })
    .addRadio({
      path: "colorScale",
      name: "Colour scale",
      category: DAG,
      defaultValue: defaultOptions.colorScale,
      settings: { options: choices(["linear", "log"] as const) },
      showIf: isDag,
    })
    .addSelect({
      path: "colorScheme",
      name: "Colour scheme",
      category: DAG,
      defaultValue: defaultOptions.colorScheme,
      settings: { options: choices(SCHEMES) },
      showIf: isDag,
    })
    .addBooleanSwitch({
      path: "fold",
      name: "Fold repeated layers",
      description: "Show one transformer block standing for all layers",
      category: DAG,
      defaultValue: defaultOptions.fold,
      showIf: isDag,
    })
    .addSelect({
      path: "foldAggregate",
      name: "Folded block metric",
      category: DAG,
      defaultValue: defaultOptions.foldAggregate,
      settings: { options: choices(AGGREGATES) },
      showIf: isDag,
    })
    .addBooleanSwitch({
      path: "criticalPath",
      name: "Highlight the critical path",
      category: DAG,
      defaultValue: defaultOptions.criticalPath,
      showIf: isDag,
    })
    .addRadio({
      path: "rankdir",
      name: "Direction",
      category: DAG,
      defaultValue: defaultOptions.rankdir,
      settings: {
        options: [
          { value: "TB", label: "top to bottom" },
          { value: "LR", label: "left to right" },
        ],
      },
      showIf: isDag,
    })
    .addBooleanSwitch({
      path: "compare",
      name: "Compare two traces",
      description:
        "Two queries, each one trace (one llama_decode call): both DAGs side by side, nodes coloured by change (red slower, blue faster, grey the same, outlined: only in one)",
      category: COMPARE,
      defaultValue: defaultOptions.compare,
      showIf: isDag,
    })
    .addTextInput({
      path: "compareBase",
      name: "Base query",
      description:
        "The refId of the query that holds the base trace; the other trace is the new one",
      category: COMPARE,
      defaultValue: defaultOptions.compareBase,
      showIf: isComparing,
    })
    .addNumberInput({
      path: "compareMinChange",
      name: "Change that counts (%)",
      description:
        "One call a side holds no noise estimate: a tensor slower or faster by less than this (or by less than 1% of the graph) is the same. profinfer diff judges runs against their noise.",
      category: COMPARE,
      defaultValue: defaultOptions.compareMinChange,
      settings: { min: 0 },
      showIf: isComparing,
    })
    .addRadio({
      path: "heatmapSource",
      name: "Data",
      category: HEATMAP,
      defaultValue: defaultOptions.heatmapSource,
      settings: {
        options: [
          { value: "auto", label: "auto" },
          { value: "prometheus", label: "Prometheus" },
          { value: "trace", label: "trace" },
        ],
      },
      showIf: isHeatmap,
    })
    .addRadio({
      path: "heatmapMode",
      name: "Rows",
      description: "Tokens mode reads a trace",
      category: HEATMAP,
      defaultValue: defaultOptions.heatmapMode,
      settings: {
        options: [
          { value: "layers", label: "layer x expert" },
          { value: "tokens", label: "token x expert (one layer)" },
        ],
      },
      showIf: isHeatmap,
    })
    .addNumberInput({
      path: "heatmapLayer",
      name: "Layer",
      description: "The layer of tokens mode (-1: the first)",
      category: HEATMAP,
      defaultValue: defaultOptions.heatmapLayer,
      settings: { integer: true, min: -1 },
      showIf: (o) => isHeatmap(o) && o.heatmapMode === "tokens",
    })
    .addRadio({
      path: "heatmapScale",
      name: "Colour scale",
      category: HEATMAP,
      defaultValue: defaultOptions.heatmapScale,
      settings: { options: choices(["linear", "log"] as const) },
      showIf: isHeatmap,
    })
    .addSelect({
      path: "heatmapScheme",
      name: "Colour scheme",
      category: HEATMAP,
      defaultValue: defaultOptions.heatmapScheme,
      settings: { options: choices(SCHEMES) },
      showIf: isHeatmap,
    }),
);
