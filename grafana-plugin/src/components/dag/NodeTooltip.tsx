// SPDX-License-Identifier: Apache-2.0
// The hovered node's details, metrics and per-thread times, beside the pointer.
import React from "react";
import { formatValue } from "../../data/colorScale.js";
import type { DagNodeModel, MetricDef } from "../../data/dagModel.js";
import type { ViewTheme } from "../theme.js";

export interface NodeTooltipProps {
  node: DagNodeModel;
  metrics: MetricDef[];
  theme: ViewTheme;
  /** the pointer, relative to ProfDag's top left corner */
  x: number;
  y: number;
}

export function NodeTooltip({ node, metrics, theme, x, y }: NodeTooltipProps) {
  const name = { color: theme.textWeak, paddingRight: 8 };
  return (
    <div
      data-testid="profdag-tooltip"
      style={{
        position: "absolute",
        left: x + 14,
        top: y + 14,
        maxWidth: 420,
        padding: "6px 8px",
        background: theme.surface,
        color: theme.text,
        border: `1px solid ${theme.border}`,
        borderRadius: 4,
        fontSize: 11,
        // the tooltip sits under the pointer's path: it must not take the hover from the node
        pointerEvents: "none",
        zIndex: 10,
        boxShadow: "0 2px 8px rgba(0,0,0,0.25)",
      }}
    >
      <table style={{ borderCollapse: "collapse" }}>
        <tbody>
          {node.details.map(([k, v]) => (
            <tr key={`d-${k}`}>
              <td style={name}>{k}</td>
              <td style={{ wordBreak: "break-all" }}>{v}</td>
            </tr>
          ))}
          {metrics.map((m) =>
            node.metrics[m.id] === undefined ? null : (
              <tr key={`m-${m.id}`}>
                <td style={name}>{m.label}</td>
                <td>{formatValue(node.metrics[m.id], m.unit)}</td>
              </tr>
            ),
          )}
        </tbody>
      </table>
      {node.threads.length > 0 && (
        <table style={{ borderCollapse: "collapse", marginTop: 4 }}>
          <thead>
            <tr style={{ color: theme.textWeak }}>
              <td style={{ paddingRight: 8 }}>thread</td>
              <td style={{ paddingRight: 8 }}>tid</td>
              <td>time</td>
            </tr>
          </thead>
          <tbody>
            {node.threads.map((t, i) => (
              <tr key={i}>
                <td style={{ paddingRight: 8 }}>{t.ith ?? "?"}</td>
                <td style={{ paddingRight: 8 }}>{t.tid ?? "?"}</td>
                <td>{formatValue(t.durationMs, "ms")}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}
