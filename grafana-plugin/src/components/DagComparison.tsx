// SPDX-License-Identifier: Apache-2.0
// Two ProfDAGs side by side, base on the left, new on the right, each node filled by its change
// (data/dagChange.ts). Pure React: the panel's compare mode and the diff page render it alike.
import React from "react";
import type { DagComparison as Comparison } from "../data/dagChange.js";
import type { DagOptions } from "../types.js";
import { ProfDag } from "./ProfDag.js";
import type { ViewTheme } from "./theme.js";

export interface DagComparisonProps {
  comparison: Comparison;
  width: number;
  height: number;
  theme: ViewTheme;
  options: DagOptions;
  onBaseGraphChange?: (graphId: string) => void;
  onNewGraphChange?: (graphId: string) => void;
}

const GAP = 12;
const CAPTION_HEIGHT = 34;

export function DagComparison({
  comparison,
  width,
  height,
  theme,
  options,
  onBaseGraphChange,
  onNewGraphChange,
}: DagComparisonProps) {
  const half = Math.max(200, Math.floor((width - GAP) / 2));
  // the fill is the change: the critical path's outline (the theme's highlight, a blue) would
  // read as one, so it starts off here (the toolbar turns it on)
  const shown = { ...options, criticalPath: false };
  const side = (
    role: "base" | "new",
    model: Comparison["base"],
    changes: Comparison["baseChanges"],
    onGraphChange?: (graphId: string) => void,
  ) => (
    <div data-testid={`profdag-${role}`} style={{ width: half }}>
      <div
        style={{
          height: CAPTION_HEIGHT,
          fontSize: 12,
          overflow: "hidden",
          color: theme.text,
          fontFamily: theme.fontFamily,
        }}
      >
        <strong>{role}</strong> {model.title}
        <div style={{ color: theme.textWeak, fontSize: 11 }}>{comparison.method}</div>
      </div>
      <ProfDag
        model={model}
        width={half}
        height={Math.max(120, height - CAPTION_HEIGHT)}
        theme={theme}
        options={shown}
        changes={changes}
        onGraphChange={onGraphChange}
      />
    </div>
  );
  return (
    <div data-testid="profdag-compare" style={{ display: "flex", gap: GAP, width }}>
      {side("base", comparison.base, comparison.baseChanges, onBaseGraphChange)}
      {side("new", comparison.next, comparison.nextChanges, onNewGraphChange)}
    </div>
  );
}
