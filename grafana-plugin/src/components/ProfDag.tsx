// SPDX-License-Identifier: Apache-2.0
// ProfDAG: the operator DAG of one graph, laid out in layers, nodes coloured by a metric, shaped
// by op kind; repeated blocks fold into one, the critical path can be highlighted. Pure React
// (no Grafana import): the panel and the offline report render this same component.
//
// Large graphs stay responsive: the layout is computed once per model and direction, node and
// edge elements are built once per (layout, colours), and pan/zoom only rewrites one transform
// attribute on the DOM, so React does not re-render on wheel or drag.
import React, { useCallback, useLayoutEffect, useMemo, useRef } from "react";
import { formatValue, textOn, type ScaleType } from "../data/colorScale.js";
import type { DagModel } from "../data/dagModel.js";
import { AGGREGATES, type Aggregate } from "../data/fold.js";
import type { DagOptions } from "../types.js";
import { ColorLegend } from "./Legend.js";
import { KIND_LABELS, shapePath } from "./dag/shapes.js";
import { NodeTooltip } from "./dag/NodeTooltip.js";
import { useDagChoices } from "./dag/useDagChoices.js";
import { useNodeHover } from "./dag/useNodeHover.js";
import { usePanning } from "./dag/usePanning.js";
import { useShownDag } from "./dag/useShownDag.js";
import { FAR_CLASS, useViewTransform } from "./dag/useViewTransform.js";
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
  /** called after each commit with how long the layout took */
  onRendered?: (info: { layoutMs: number; nodes: number; edges: number }) => void;
}

const TOOLBAR_HEIGHT = 30;
const LEGEND_HEIGHT = 44;

export function ProfDag({
  model,
  width,
  height,
  theme,
  options,
  onGraphChange,
  onRendered,
}: ProfDagProps) {
  const choices = useDagChoices(options);
  const { canFold, shown, layout, layoutMs, metric, colorBy, scale, path } = useShownDag(
    model,
    options,
    choices,
  );

  const viewH = Math.max(60, height - TOOLBAR_HEIGHT - LEGEND_HEIGHT);
  const svgRef = useRef<SVGSVGElement>(null);
  const viewportRef = useRef<SVGGElement>(null);
  const view = useViewTransform(svgRef, viewportRef);
  usePanning(svgRef, view);
  useZoom(svgRef, view);
  const fit = useCallback(
    () => view.set(fitTransform(layout, width, viewH)),
    [view, layout, width, viewH],
  );
  // a new layout or size starts fitted, before the browser paints the unfitted graph
  useLayoutEffect(() => {
    fit();
    onRendered?.({
      layoutMs,
      nodes: shown.nodes.length,
      edges: shown.edges.length,
    });
  }, [fit, onRendered, layoutMs, shown]);

  const edgeElements = useMemo(
    () =>
      shown.edges.map((e) => {
        const p = layout.edges.get(e.id)?.points ?? [];
        const d = p
          .map((q, i) => `${i === 0 ? "M" : "L"}${q.x.toFixed(1)},${q.y.toFixed(1)}`)
          .join("");
        const on = path?.edges.has(e.id) ?? false;
        return (
          <path
            key={e.id}
            d={d}
            data-testid="profdag-edge"
            data-source={e.source}
            data-target={e.target}
            data-critical={on ? "true" : undefined}
            fill="none"
            stroke={on ? theme.highlight : theme.edge}
            strokeWidth={on ? 2.5 : 1}
            strokeDasharray={e.loop ? "5 4" : undefined}
            markerEnd={on ? "url(#profdag-arrow-on)" : "url(#profdag-arrow)"}
          />
        );
      }),
    [shown, layout, path, theme],
  );
  const nodeElements = useMemo(
    () =>
      shown.nodes.map((n) => {
        const box = layout.nodes.get(n.id)!;
        const fill = scale.color(n.metrics[colorBy]);
        const ink = textOn(fill);
        const on = path?.nodes.has(n.id) ?? false;
        return (
          <g
            key={n.id}
            data-testid="profdag-node"
            data-node-id={n.id}
            data-kind={n.kind}
            data-critical={on ? "true" : undefined}
            data-folded={n.members ? String(n.members.length) : undefined}
            transform={`translate(${box.x},${box.y})`}
            style={{ cursor: "default" }}
          >
            <path
              d={shapePath(n.kind, box.width, box.height)}
              fill={fill}
              stroke={on ? theme.highlight : n.members ? theme.text : theme.border}
              strokeWidth={on ? 3 : n.members ? 2 : 1}
            />
            <text y={-3} textAnchor="middle" fill={ink} fontSize={10} fontWeight={600}>
              {n.op}
            </text>
            <text y={11} textAnchor="middle" fill={ink} fontSize={10}>
              {n.members ? `${n.label} x${n.members.length}` : n.label}
            </text>
          </g>
        );
      }),
    [shown, layout, scale, colorBy, path, theme],
  );

  const { hover, onMouseMove, onMouseLeave } = useNodeHover();
  const hovered = hover ? shown.nodes.find((n) => n.id === hover.id) : undefined;
  const kinds = useMemo(() => [...new Set(shown.nodes.map((n) => n.kind))], [shown]);
  const control = {
    background: theme.surface,
    color: theme.text,
    border: `1px solid ${theme.border}`,
    borderRadius: 3,
    fontSize: 11,
    padding: "1px 6px",
    height: 22,
  };
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
      <div
        style={{
          height: TOOLBAR_HEIGHT,
          display: "flex",
          alignItems: "center",
          gap: 6,
          fontSize: 11,
          overflow: "hidden",
          whiteSpace: "nowrap",
        }}
      >
        {shown.graphs.length > 1 && onGraphChange && (
          <select
            aria-label="graph"
            data-testid="profdag-graph"
            style={{ ...control, maxWidth: 260 }}
            value={shown.graphId ?? ""}
            onChange={(e) => onGraphChange(e.target.value)}
          >
            {shown.graphs.map((g) => (
              <option key={g.id} value={g.id}>
                {g.label}
              </option>
            ))}
          </select>
        )}
        <label>
          colour{" "}
          <select
            aria-label="colour by"
            data-testid="profdag-metric"
            style={control}
            value={metric?.id ?? ""}
            onChange={(e) => choices.setMetricId(e.target.value)}
          >
            {shown.metrics.map((m) => (
              <option key={m.id} value={m.id}>
                {m.label}
              </option>
            ))}
          </select>
        </label>
        <select
          aria-label="scale"
          style={control}
          value={choices.scaleType}
          onChange={(e) => choices.setScaleType(e.target.value as ScaleType)}
        >
          <option value="linear">linear</option>
          <option value="log">log</option>
        </select>
        {canFold && (
          <>
            <button
              type="button"
              data-testid="profdag-fold"
              style={control}
              onClick={choices.toggleFold}
            >
              {choices.folded ? "unfold layers" : "fold layers"}
            </button>
            <select
              aria-label="fold aggregate"
              style={control}
              value={choices.aggregate}
              onChange={(e) => choices.setAggregate(e.target.value as Aggregate)}
            >
              {AGGREGATES.map((a) => (
                <option key={a} value={a}>
                  {a}
                </option>
              ))}
            </select>
          </>
        )}
        <button
          type="button"
          data-testid="profdag-critical"
          style={{ ...control, fontWeight: choices.critical ? 700 : 400 }}
          onClick={choices.toggleCritical}
        >
          critical path
        </button>
        <button type="button" style={control} onClick={fit}>
          fit
        </button>
        <span data-testid="profdag-counts" style={{ color: theme.textWeak }}>
          {shown.nodes.length} ops, {shown.edges.length} edges
          {path ? `, critical path ${formatValue(path.total, "ms")} (${path.nodes.size} ops)` : ""}
        </span>
      </div>
      <svg
        ref={svgRef}
        data-testid="profdag-svg"
        width={width}
        height={viewH}
        style={{ display: "block", background: theme.background, touchAction: "none" }}
        onMouseMove={onMouseMove}
        onMouseLeave={onMouseLeave}
      >
        <style>{`.${FAR_CLASS} text{display:none}`}</style>
        <defs>
          <marker
            id="profdag-arrow"
            viewBox="0 0 10 10"
            refX="10"
            refY="5"
            markerWidth="6"
            markerHeight="6"
            orient="auto-start-reverse"
          >
            <path d="M0,0L10,5L0,10Z" fill={theme.edge} />
          </marker>
          <marker
            id="profdag-arrow-on"
            viewBox="0 0 10 10"
            refX="10"
            refY="5"
            markerWidth="6"
            markerHeight="6"
            orient="auto-start-reverse"
          >
            <path d="M0,0L10,5L0,10Z" fill={theme.highlight} />
          </marker>
        </defs>
        <g ref={viewportRef}>
          <g>{edgeElements}</g>
          <g>{nodeElements}</g>
        </g>
      </svg>
      <div
        style={{
          height: LEGEND_HEIGHT,
          display: "flex",
          gap: 16,
          alignItems: "flex-start",
          paddingTop: 4,
        }}
      >
        {metric && (
          <ColorLegend scale={scale} title={metric.label} unit={metric.unit} theme={theme} />
        )}
        <svg
          width={Math.max(0, width - 260)}
          height={LEGEND_HEIGHT - 6}
          data-testid="profdag-shapes"
        >
          {kinds.map((k, i) => (
            <g key={k} transform={`translate(${i * 150 + 18},14)`}>
              <path d={shapePath(k, 30, 16)} fill="none" stroke={theme.textWeak} />
              <text x={22} y={4} fontSize={10} fill={theme.textWeak}>
                {KIND_LABELS[k]}
              </text>
            </g>
          ))}
        </svg>
      </div>
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
