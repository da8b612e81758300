// SPDX-License-Identifier: Apache-2.0
// Below the graph: the colour legend of the metric (comparing: of the changes drawn) and the
// outline of each op kind drawn.
import React, { useMemo } from "react";
import type { ColorScale } from "../../data/colorScale.js";
import type { NodeChange } from "../../data/dagChange.js";
import { METRIC_BACKEND, type DagNodeModel, type MetricDef } from "../../data/dagModel.js";
import { ColorLegend } from "../Legend.js";
import type { ViewTheme } from "../theme.js";
import { CHANGE_MARKS, changeStyle } from "./changeStyle.js";
import { KIND_LABELS, shapePath } from "./shapes.js";

export const LEGEND_HEIGHT = 44;

export interface DagLegendProps {
  nodes: DagNodeModel[];
  /** the model's backends: the legend of the backend colours */
  backends: string[];
  metric: MetricDef | undefined;
  scale: ColorScale;
  changes: ReadonlyMap<string, NodeChange> | null;
  width: number;
  theme: ViewTheme;
}

/** The change marks the graph holds, each as its swatch. */
function ChangeLegend({
  changes,
  theme,
}: {
  changes: ReadonlyMap<string, NodeChange>;
  theme: ViewTheme;
}) {
  const present = new Set([...changes.values()].map((c) => c.mark));
  const marks = CHANGE_MARKS.filter((m) => present.has(m));
  return (
    <svg width={250} height={LEGEND_HEIGHT - 6} data-testid="profdag-change-legend">
      {marks.map((m, i) => {
        const s = changeStyle(m, theme);
        return (
          <g key={m} transform={`translate(${(i % 3) * 84 + 2},${Math.floor(i / 3) * 14 + 3})`}>
            <rect
              width={16}
              height={9}
              fill={s.fill}
              stroke={s.stroke}
              strokeWidth={Math.min(2, s.strokeWidth)}
              strokeDasharray={s.dash}
            />
            <text x={20} y={8} fontSize={10} fill={theme.textWeak}>
              {s.label}
            </text>
          </g>
        );
      })}
    </svg>
  );
}

export function DagLegend({
  nodes,
  backends,
  metric,
  scale,
  changes,
  width,
  theme,
}: DagLegendProps) {
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
      {changes ? (
        <ChangeLegend changes={changes} theme={theme} />
      ) : metric?.id === METRIC_BACKEND.id ? (
        <div
          data-testid="backend-legend"
          style={{ fontSize: 11, color: theme.textWeak, width: 220 }}
        >
          {backends.map((b, i) => (
            <span key={b} style={{ marginRight: 10, whiteSpace: "nowrap" }}>
              <span
                style={{
                  display: "inline-block",
                  width: 10,
                  height: 10,
                  marginRight: 4,
                  background: scale.color(i),
                  border: `1px solid ${theme.border}`,
                }}
              />
              {b}
            </span>
          ))}
        </div>
      ) : (
        metric && (
          <ColorLegend scale={scale} title={metric.label} unit={metric.unit} theme={theme} />
        )
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
