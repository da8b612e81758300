// SPDX-License-Identifier: Apache-2.0
// Above the graph: which graph, colour metric and scale, fold and its aggregate, the critical
// path, fit to view, and what is drawn.
import React from "react";
import { formatValue, type ScaleType } from "../../data/colorScale.js";
import type { CriticalPath } from "../../data/criticalPath.js";
import type { DagModel, MetricDef } from "../../data/dagModel.js";
import { AGGREGATES, type Aggregate } from "../../data/fold.js";
import type { ViewTheme } from "../theme.js";
import type { DagChoices } from "./useDagChoices.js";

export const TOOLBAR_HEIGHT = 30;

export interface DagToolbarProps {
  shown: DagModel;
  metric: MetricDef | undefined;
  choices: DagChoices;
  canFold: boolean;
  path: CriticalPath | null;
  theme: ViewTheme;
  onGraphChange?: (graphId: string) => void;
  onFit: () => void;
}

export function DagToolbar({
  shown,
  metric,
  choices,
  canFold,
  path,
  theme,
  onGraphChange,
  onFit,
}: DagToolbarProps) {
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
      <button type="button" style={control} onClick={onFit}>
        fit
      </button>
      <span data-testid="profdag-counts" style={{ color: theme.textWeak }}>
        {shown.nodes.length} ops, {shown.edges.length} edges
        {path ? `, critical path ${formatValue(path.total, "ms")} (${path.nodes.size} ops)` : ""}
      </span>
    </div>
  );
}
