// SPDX-License-Identifier: Apache-2.0
// Below the graph: the colour legend of the metric and the outline of each op kind drawn.
import React, { useMemo } from "react";
import type { ColorScale } from "../../data/colorScale.js";
import type { DagNodeModel, MetricDef } from "../../data/dagModel.js";
import { ColorLegend } from "../Legend.js";
import type { ViewTheme } from "../theme.js";
import { KIND_LABELS, shapePath } from "./shapes.js";

export const LEGEND_HEIGHT = 44;

export interface DagLegendProps {
  nodes: DagNodeModel[];
  metric: MetricDef | undefined;
  scale: ColorScale;
  width: number;
  theme: ViewTheme;
}

export function DagLegend({ nodes, metric, scale, width, theme }: DagLegendProps) {
  const kinds = useMemo(() => [...new Set(nodes.map((n) => n.kind))], [nodes]);
  return (
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
      <svg width={Math.max(0, width - 260)} height={LEGEND_HEIGHT - 6} data-testid="profdag-shapes">
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
  );
}
