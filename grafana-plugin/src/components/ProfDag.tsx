// SPDX-License-Identifier: Apache-2.0
// ProfDAG: the operator DAG of one graph, laid out in layers, nodes coloured by a metric, shaped
// by op kind; repeated blocks fold into one, the critical path can be highlighted. Pure React
// (no Grafana import): the panel and the offline report render this same component.
//
// Large graphs stay responsive: the layout is computed once per model and direction, nodes and
// edges are redrawn only when the layout, colours or critical path change, and pan/zoom only
// rewrite one transform attribute on the DOM, so React does not re-render on wheel or drag.
// The parts are in dag/: the toolbar, the svg (nodes, edges), the legend, the tooltip, and the
// hooks for the toolbar's choices, the drawn model, pan, zoom and hover.
import React, { useCallback, useLayoutEffect, useRef } from "react";
import type { NodeChange } from "../data/dagChange.js";
import type { DagModel } from "../data/dagModel.js";
import type { DagOptions } from "../types.js";
import { DagGraph } from "./dag/DagGraph.js";
import { DagLegend, LEGEND_HEIGHT } from "./dag/DagLegend.js";
import { DagToolbar, TOOLBAR_HEIGHT } from "./dag/DagToolbar.js";
import { NodeTooltip } from "./dag/NodeTooltip.js";
import { useDagChoices } from "./dag/useDagChoices.js";
import { useNodeHover } from "./dag/useNodeHover.js";
import { usePanning } from "./dag/usePanning.js";
import { useShownDag } from "./dag/useShownDag.js";
import { useViewTransform } from "./dag/useViewTransform.js";
import { useZoom } from "./dag/useZoom.js";
import { fitTransform } from "./dag/viewTransform.js";
import type { ViewTheme } from "./theme.js";

export interface ProfDagProps {
  model: DagModel;
  width: number;
  height: number;
  theme: ViewTheme;
  options: DagOptions;
  onGraphChange?: (graphId: string) => void;
  /** comparing two graphs (DagComparison): each node's change, drawn instead of the metric */
  changes?: ReadonlyMap<string, NodeChange>;
  /** outline the nodes of this op (as users type it: "mul_mat"), such as a finding's */
  highlightOp?: string | null;
  /** called after each commit with how long the layout took */
  onRendered?: (info: { layoutMs: number; nodes: number; edges: number }) => void;
}

export function ProfDag({
  model,
  width,
  height,
  theme,
  options,
  onGraphChange,
  changes: modelChanges,
  onRendered,
  highlightOp = null,
}: ProfDagProps) {
  const choices = useDagChoices(options);
  const { canFold, shown, layout, layoutMs, metric, colorBy, scale, path, changes } = useShownDag(
    model,
    options,
    choices,
    modelChanges,
  );

  const graphHeight = Math.max(60, height - TOOLBAR_HEIGHT - LEGEND_HEIGHT);
  const svgRef = useRef<SVGSVGElement>(null);
  const viewportRef = useRef<SVGGElement>(null);
  const view = useViewTransform(svgRef, viewportRef);
  usePanning(svgRef, view);
  useZoom(svgRef, view);
  const fit = useCallback(
    () => view.set(fitTransform(layout, width, graphHeight)),
    [view, layout, width, graphHeight],
  );
  // a new layout or size starts fitted, before the browser paints the unfitted graph
  useLayoutEffect(() => {
    fit();
    onRendered?.({ layoutMs, nodes: shown.nodes.length, edges: shown.edges.length });
  }, [fit, onRendered, layoutMs, shown]);

  const { hover, onMouseMove, onMouseLeave } = useNodeHover();
  const hovered = hover ? shown.nodes.find((n) => n.id === hover.id) : undefined;
  return (
    <div
      data-testid="profdag"
      data-layout-ms={layoutMs.toFixed(1)}
      style={{
        position: "relative",
        width,
        height,
        fontFamily: theme.fontFamily,
        color: theme.text,
      }}
    >
      <DagToolbar
        shown={shown}
        metric={metric}
        choices={choices}
        canFold={canFold}
        path={path}
        theme={theme}
        onGraphChange={onGraphChange}
        onFit={fit}
      />
      <DagGraph
        svgRef={svgRef}
        viewportRef={viewportRef}
        width={width}
        height={graphHeight}
        shown={shown}
        layout={layout}
        scale={scale}
        colorBy={colorBy}
        changes={changes}
        path={path}
        highlightOp={highlightOp}
        theme={theme}
        onMouseMove={onMouseMove}
        onMouseLeave={onMouseLeave}
      />
      <DagLegend
        nodes={shown.nodes}
        backends={shown.backends}
        metric={metric}
        scale={scale}
        changes={changes}
        width={width}
        theme={theme}
      />
      {hovered && hover && (
        <NodeTooltip
          node={hovered}
          metrics={shown.metrics}
          theme={theme}
          x={hover.x}
          // the hover is measured in the svg, which sits below the toolbar
          y={hover.y + TOOLBAR_HEIGHT}
        />
      )}
    </div>
  );
}
