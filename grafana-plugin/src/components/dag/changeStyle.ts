// SPDX-License-Identifier: Apache-2.0
// How a node's change is drawn, as differential flame graphs do: red slower, blue faster, grey the
// same; an added node outlined in green, a removed one dashed; amber for a folded block whose
// layers changed differently.
import type { ChangeMark } from "../../data/dagChange.js";
import type { ViewTheme } from "../theme.js";

export interface ChangeStyle {
  fill: string;
  stroke: string;
  strokeWidth: number;
  dash?: string;
  label: string;
}

export const CHANGE_MARKS: ChangeMark[] = [
  "slower",
  "faster",
  "same",
  "added",
  "removed",
  "mixed",
  "too few calls",
  "not compared",
];

export function changeStyle(mark: ChangeMark, theme: ViewTheme): ChangeStyle {
  switch (mark) {
    case "slower":
      return { fill: "#d6453d", stroke: theme.border, strokeWidth: 1, label: "slower" };
    case "faster":
      return { fill: "#3b7dd8", stroke: theme.border, strokeWidth: 1, label: "faster" };
    case "same":
      return { fill: "#c8c8c8", stroke: theme.border, strokeWidth: 1, label: "same" };
    case "added":
      return { fill: theme.background, stroke: "#2da44e", strokeWidth: 3, label: "only in new" };
    case "removed":
      return {
        fill: theme.background,
        stroke: "#8250df",
        strokeWidth: 3,
        dash: "5 3",
        label: "only in base",
      };
    case "mixed":
      return { fill: "#e3a13b", stroke: theme.border, strokeWidth: 1, label: "layers differ" };
    default:
      return { fill: "#f0f0f0", stroke: theme.textWeak, strokeWidth: 1, dash: "2 2", label: mark };
  }
}
