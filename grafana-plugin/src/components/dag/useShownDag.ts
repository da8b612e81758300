// SPDX-License-Identifier: Apache-2.0
// The graph as drawn: the model folded or not, its layout, colours and critical path. Each is
// memoised on what it reads, so a hover or a toolbar change recomputes only what it affects;
// the layout, the costly part, only when the drawn model or the direction changes.
import { useMemo } from "react";
import { categoryScale, makeColorScale, type ColorScale } from "../../data/colorScale.js";
import { criticalPath, type CriticalPath } from "../../data/criticalPath.js";
import { foldedChange, type NodeChange } from "../../data/dagChange.js";
import {
  METRIC_BACKEND,
  METRIC_DURATION,
  type DagModel,
  type MetricDef,
} from "../../data/dagModel.js";
import { foldLayers, foldableLayers } from "../../data/fold.js";
import type { DagOptions } from "../../types.js";
import { layoutDag, type DagLayout } from "./layout.js";
import type { DagChoices } from "./useDagChoices.js";

export interface ShownDag {
  canFold: boolean;
  shown: DagModel;
  layout: DagLayout;
  layoutMs: number;
  /** the colour metric: the one chosen, else the first the model has */
  metric: MetricDef | undefined;
  /** the node metric the colours are read from */
  colorBy: string;
  scale: ColorScale;
  path: CriticalPath | null;
  /** comparing: the change of each drawn node (a folded block's from its members) */
  changes: ReadonlyMap<string, NodeChange> | null;
}

export function useShownDag(
  model: DagModel,
  options: DagOptions,
  choices: DagChoices,
  modelChanges: ReadonlyMap<string, NodeChange> | null = null,
): ShownDag {
  const { folded, aggregate, critical, metricId, scaleType } = choices;
  const canFold = useMemo(() => foldableLayers(model).length > 0, [model]);
  const shown = useMemo(
    () => (folded && canFold ? foldLayers(model, aggregate) : model),
    [model, folded, canFold, aggregate],
  );
  const metric = shown.metrics.find((m) => m.id === metricId) ?? shown.metrics[0];
  const colorBy = metric?.id ?? METRIC_DURATION.id;
  const timed = useMemo(() => {
    const t0 = performance.now();
    const layout = layoutDag(shown, options.rankdir);
    return { layout, ms: performance.now() - t0 };
  }, [shown, options.rankdir]);
  const scale = useMemo(
    () =>
      colorBy === METRIC_BACKEND.id
        ? categoryScale(shown.backends.length)
        : makeColorScale(
            shown.nodes.map((n) => n.metrics[colorBy] ?? NaN),
            scaleType,
            options.colorScheme,
          ),
    [shown, colorBy, scaleType, options.colorScheme],
  );
  const path = useMemo(
    () => (critical ? criticalPath(shown, METRIC_DURATION.id) : null),
    [shown, critical],
  );
  const changes = useMemo(() => {
    if (!modelChanges) return null;
    const out = new Map<string, NodeChange>();
    for (const n of shown.nodes) {
      const c = foldedChange(n, modelChanges);
      if (c) out.set(n.id, c);
    }
    return out;
  }, [shown, modelChanges]);
  return {
    canFold,
    shown,
    layout: timed.layout,
    layoutMs: timed.ms,
    metric,
    colorBy,
    scale,
    path,
    changes,
  };
}
