// SPDX-License-Identifier: Apache-2.0
// The Grafana side of the plugin: frames -> model (data/panelData.ts), errors -> Grafana's
// PanelDataErrorView naming what is missing, the model -> the pure views with Grafana's theme.
import React, { useMemo, useState } from "react";
import type { GrafanaTheme2, PanelProps } from "@grafana/data";
import { PanelDataErrorView } from "@grafana/runtime";
import { useTheme2 } from "@grafana/ui";
import { DEFAULT_GRAPH_CHANGE_BOUNDS, comparisonFromFrames } from "../data/dagChange.js";
import { isModelError } from "../data/errors.js";
import type { FrameLike } from "../data/frames.js";
import { dagModelFromFrames, heatmapModelFromFrames } from "../data/panelData.js";
import type { Options } from "../types.js";
import { DagComparison } from "./DagComparison.js";
import { ExpertHeatmap } from "./ExpertHeatmap.js";
import { ProfDag } from "./ProfDag.js";
import type { ViewTheme } from "./theme.js";

export function viewTheme(theme: GrafanaTheme2): ViewTheme {
  return {
    text: theme.colors.text.primary,
    textWeak: theme.colors.text.secondary,
    background: theme.colors.background.primary,
    surface: theme.colors.background.secondary,
    border: theme.colors.border.medium,
    edge: theme.colors.text.disabled,
    highlight: theme.colors.primary.main,
    fontFamily: theme.typography.fontFamily,
    fontSize: theme.typography.fontSize,
  };
}

type Built<T> = { model: T; error?: undefined } | { model?: undefined; error: string };

function build<T>(make: () => T): Built<T> {
  try {
    return { model: make() };
  } catch (error) {
    if (isModelError(error)) return { error: error.message };
    return { error: `profinfer panel: ${(error as Error).message}` };
  }
}

export function ProfinferPanel({
  data,
  options,
  width,
  height,
  id,
  fieldConfig,
}: PanelProps<Options>) {
  const theme = viewTheme(useTheme2());
  const frames = data.series as unknown as FrameLike[];
  const [graphId, setGraphId] = useState<string | null>(null);
  const [newGraphId, setNewGraphId] = useState<string | null>(null);
  const [layer, setLayer] = useState<number | null>(null);
  const comparing = options.view === "dag" && options.compare;
  const dag = useMemo(
    () =>
      options.view === "dag" && !comparing
        ? build(() => dagModelFromFrames(frames, graphId))
        : null,
    [frames, options.view, comparing, graphId],
  );
  const comparison = useMemo(
    () =>
      comparing
        ? build(() =>
            comparisonFromFrames(frames, {
              baseRefId: options.compareBase,
              minRelative: options.compareMinChange / 100,
              minShare: DEFAULT_GRAPH_CHANGE_BOUNDS.minShare,
              baseGraphId: graphId,
              nextGraphId: newGraphId,
            }),
          )
        : null,
    [frames, comparing, options.compareBase, options.compareMinChange, graphId, newGraphId],
  );
  const heatmap = useMemo(
    () =>
      options.view === "heatmap"
        ? build(() =>
            heatmapModelFromFrames(frames, {
              ...options,
              heatmapLayer: layer ?? options.heatmapLayer,
            }),
          )
        : null,
    [frames, options, layer],
  );
  const error = dag?.error ?? comparison?.error ?? heatmap?.error;
  if (error !== undefined)
    return (
      <PanelDataErrorView panelId={id} data={data} fieldConfig={fieldConfig} message={error} />
    );
  if (comparison?.model)
    return (
      <DagComparison
        comparison={comparison.model}
        width={width}
        height={height}
        theme={theme}
        options={options}
        onBaseGraphChange={setGraphId}
        onNewGraphChange={setNewGraphId}
      />
    );
  if (dag?.model)
    return (
      <ProfDag
        model={dag.model}
        width={width}
        height={height}
        theme={theme}
        options={options}
        onGraphChange={setGraphId}
      />
    );
  if (heatmap?.model)
    return (
      <ExpertHeatmap
        model={heatmap.model}
        width={width}
        height={height}
        theme={theme}
        scale={options.heatmapScale}
        scheme={options.heatmapScheme}
        onLayerChange={setLayer}
      />
    );
  return null;
}
