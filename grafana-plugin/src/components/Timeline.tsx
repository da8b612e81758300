// SPDX-License-Identifier: Apache-2.0
// Tracks of intervals on one time axis (the report's timeline overview).
import React, { useState } from "react";
import type { TimelineTrack } from "../data/timeline.js";
import { formatValue } from "../data/colorScale.js";
import type { ViewTheme } from "./theme.js";

const KIND_COLORS: Record<string, string> = {
  prefill: "#8e44ad",
  decode: "#2e86de",
  graph: "#7f8c8d",
  matmul: "#e67e22",
  norm: "#27ae60",
  attention: "#c0392b",
  memory: "#16a085",
  elementwise: "#f1c40f",
  other: "#95a5a6",
};

export interface TimelineProps {
  title: string;
  startMs: number;
  endMs: number;
  tracks: TimelineTrack[];
  width: number;
  theme: ViewTheme;
  testId: string;
}

export function Timeline({ title, startMs, endMs, tracks, width, theme, testId }: TimelineProps) {
  const label = 130;
  const lane = 18;
  const span = Math.max(1e-9, endMs - startMs);
  const x = (t: number) => label + ((t - startMs) / span) * (width - label - 8);
  const [hover, setHover] = useState<string | null>(null);
  return (
    <div
      data-testid={testId}
      style={{ fontFamily: theme.fontFamily, fontSize: 11, color: theme.text }}
    >
      <div style={{ marginBottom: 4 }}>
        {title} — {formatValue(span, "ms")}
      </div>
      <svg width={width} height={tracks.length * (lane + 4) + 20}>
        {tracks.map((track, i) => (
          <g key={track.name} transform={`translate(0,${i * (lane + 4)})`}>
            <text x={0} y={lane - 5} fontSize={10} fill={theme.textWeak}>
              {track.name}
            </text>
            {track.items.map((it, j) => (
              <rect
                key={j}
                x={x(it.startMs)}
                y={0}
                width={Math.max(0.5, x(it.endMs) - x(it.startMs))}
                height={lane}
                fill={KIND_COLORS[it.kind] ?? "#999"}
                onMouseEnter={() =>
                  setHover(
                    `${track.name}: ${it.label}, ${formatValue(it.endMs - it.startMs, "ms")}`,
                  )
                }
                onMouseLeave={() => setHover(null)}
              >
                <title>{it.label}</title>
              </rect>
            ))}
          </g>
        ))}
        <text x={label} y={tracks.length * (lane + 4) + 14} fontSize={10} fill={theme.textWeak}>
          0
        </text>
        <text
          x={width - 8}
          y={tracks.length * (lane + 4) + 14}
          fontSize={10}
          fill={theme.textWeak}
          textAnchor="end"
        >
          {formatValue(span, "ms")}
        </text>
      </svg>
      <div style={{ height: 14, color: theme.textWeak }}>{hover ?? ""}</div>
    </div>
  );
}
