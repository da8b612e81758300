// SPDX-License-Identifier: Apache-2.0
// Colour legend (a gradient bar with ticks) shared by ProfDAG and the expert heatmap.
import React from "react";
import { formatValue, type ColorScale } from "../data/colorScale.js";
import type { ViewTheme } from "./theme.js";

export interface ColorLegendProps {
  scale: ColorScale;
  /** the values are counts: only whole-number ticks */
  integer?: boolean;
  title: string;
  unit: string;
  theme: ViewTheme;
  width?: number;
}

export function ColorLegend({
  scale,
  title,
  unit,
  theme,
  integer = false,
  width = 220,
}: ColorLegendProps) {
  const stops = Array.from({ length: 11 }, (_, i) => `${scale.at(i / 10)} ${i * 10}%`).join(", ");
  const [lo, hi] = scale.domain;
  const pos = (v: number) =>
    scale.type === "log"
      ? (Math.log(v) - Math.log(lo)) / (Math.log(hi) - Math.log(lo))
      : (v - lo) / (hi - lo);
  return (
    <div data-testid="color-legend" style={{ fontSize: 11, color: theme.textWeak, width }}>
      <div style={{ marginBottom: 2 }}>
        {title}
        {unit && unit !== "ratio" ? ` [${unit}]` : ""} ({scale.type})
      </div>
      <div
        style={{
          height: 10,
          borderRadius: 2,
          background: `linear-gradient(to right, ${stops})`,
          border: `1px solid ${theme.border}`,
        }}
      />
      <div style={{ position: "relative", height: 14 }}>
        {scale.ticks
          .filter((t) => t >= lo && t <= hi && (!integer || Number.isInteger(t)))
          .map((t) => {
            const at = Math.min(1, Math.max(0, pos(t)));
            // the end ticks stay inside the bar's width
            const shift = at < 0.05 ? "0" : at > 0.95 ? "-100%" : "-50%";
            return (
              <span
                key={t}
                style={{
                  position: "absolute",
                  left: `${at * 100}%`,
                  transform: `translateX(${shift})`,
                  whiteSpace: "nowrap",
                }}
              >
                {formatValue(t, unit === "ratio" ? "ratio" : "")}
              </span>
            );
          })}
      </div>
    </div>
  );
}
