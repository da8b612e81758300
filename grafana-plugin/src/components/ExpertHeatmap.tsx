// SPDX-License-Identifier: Apache-2.0
// The expert heatmap: rows (layers, or the tokens of one layer) x experts, coloured by how often
// each expert was chosen, with hover counts and a layer selector in tokens mode. Pure React: the
// panel and the offline report render this same component.
import React, { useEffect, useMemo, useState } from "react";
import { makeColorScale, type ScaleType, type SchemeName } from "../data/colorScale.js";
import type { HeatmapModel } from "../data/heatmap.js";
import { ColorLegend } from "./Legend.js";
import type { ViewTheme } from "./theme.js";

export interface ExpertHeatmapProps {
  model: HeatmapModel;
  width: number;
  height: number;
  theme: ViewTheme;
  scale: ScaleType;
  scheme: SchemeName;
  onLayerChange?: (layer: number) => void;
}

const HEADER = 26;
const LEGEND = 44;
const ROW_LABEL = 70;
const COL_LABEL = 16;

export function ExpertHeatmap({
  model,
  width,
  height,
  theme,
  scale,
  scheme,
  onLayerChange,
}: ExpertHeatmapProps) {
  const colors = useMemo(
    () => makeColorScale(model.values.flat(), scale, scheme),
    [model, scale, scheme],
  );
  const [hover, setHover] = useState<{ row: number; col: number; x: number; y: number } | null>(
    null,
  );
  // a new matrix (another layer, new data) drops the hover of the old one
  useEffect(() => setHover(null), [model]);
  const gridW = Math.max(40, width - ROW_LABEL - 8);
  const gridH = Math.max(40, height - HEADER - LEGEND - COL_LABEL);
  const cw = gridW / Math.max(1, model.experts.length);
  const ch = Math.min(28, gridH / Math.max(1, model.rows.length));
  const labelEvery = Math.max(1, Math.ceil(11 / Math.max(1, ch)));
  const expertEvery = Math.max(1, Math.ceil(18 / Math.max(1, cw)));
  const cells = useMemo(
    () =>
      model.values.flatMap((row, r) =>
        row.map((v, c) => (
          <rect
            key={`${r}:${c}`}
            data-testid="heatmap-cell"
            data-row={r}
            data-col={c}
            data-value={v}
            x={ROW_LABEL + c * cw}
            y={COL_LABEL + r * ch}
            width={Math.max(0.5, cw - (cw > 6 ? 1 : 0))}
            height={Math.max(0.5, ch - (ch > 6 ? 1 : 0))}
            fill={v === 0 ? theme.surface : colors.color(v)}
          />
        )),
      ),
    [model, cw, ch, colors, theme],
  );
  const svgH = COL_LABEL + ch * model.rows.length + 4;
  return (
    <div
      data-testid="expert-heatmap"
      style={{
        position: "relative",
        width,
        height,
        fontFamily: theme.fontFamily,
        color: theme.text,
        fontSize: 11,
      }}
    >
      <div
        style={{
          height: HEADER,
          display: "flex",
          alignItems: "center",
          gap: 8,
          whiteSpace: "nowrap",
          overflow: "hidden",
        }}
      >
        <span>{model.title}</span>
        {model.mode === "tokens" && onLayerChange && (
          <select
            aria-label="layer"
            data-testid="heatmap-layer"
            value={model.layer ?? ""}
            onChange={(e) => onLayerChange(Number(e.target.value))}
            style={{
              background: theme.surface,
              color: theme.text,
              border: `1px solid ${theme.border}`,
              fontSize: 11,
            }}
          >
            {model.layers.map((l) => (
              <option key={l} value={l}>
                layer {l}
              </option>
            ))}
          </select>
        )}
        <span style={{ color: theme.textWeak }} data-testid="heatmap-size">
          {model.rows.length} {model.mode === "layers" ? "layers" : "tokens"} x{" "}
          {model.experts.length} experts
        </span>
      </div>
      <div style={{ maxHeight: height - HEADER - LEGEND, overflowY: "auto" }}>
        <svg
          data-testid="heatmap-svg"
          width={width}
          height={svgH}
          onMouseMove={(e) => {
            const t = e.target as Element;
            const r = t.getAttribute("data-row");
            const c = t.getAttribute("data-col");
            const rect = (e.currentTarget as Element).getBoundingClientRect();
            if (r === null || c === null) return setHover(null);
            setHover({
              row: Number(r),
              col: Number(c),
              x: e.clientX - rect.left,
              y: e.clientY - rect.top,
            });
          }}
          onMouseLeave={() => setHover(null)}
        >
          {model.experts.map((e, c) =>
            c % expertEvery === 0 ? (
              <text
                key={e}
                x={ROW_LABEL + c * cw + cw / 2}
                y={11}
                textAnchor="middle"
                fontSize={9}
                fill={theme.textWeak}
              >
                {e}
              </text>
            ) : null,
          )}
          {model.rows.map((label, r) =>
            r % labelEvery === 0 ? (
              <text
                key={label + r}
                x={ROW_LABEL - 4}
                y={COL_LABEL + r * ch + ch / 2 + 3}
                textAnchor="end"
                fontSize={9}
                fill={theme.textWeak}
              >
                {label}
              </text>
            ) : null,
          )}
          {cells}
        </svg>
      </div>
      <div style={{ height: LEGEND, paddingTop: 4 }}>
        <ColorLegend scale={colors} title="times chosen" unit="" theme={theme} integer />
      </div>
      {hover && (
        <div
          data-testid="heatmap-tooltip"
          style={{
            position: "absolute",
            left: hover.x + 12,
            top: hover.y + HEADER + 12,
            background: theme.surface,
            border: `1px solid ${theme.border}`,
            padding: "4px 6px",
            borderRadius: 4,
            pointerEvents: "none",
          }}
        >
          {model.rows[hover.row]}, expert {model.experts[hover.col]}: chosen{" "}
          {model.values[hover.row]![hover.col]} times
        </div>
      )}
    </div>
  );
}
