// SPDX-License-Identifier: Apache-2.0
// A titled table of figures, as the report's ProfStat tables and the diff page's sections draw it.
import React from "react";
import type { ViewTheme } from "../components/theme.js";

export type Cell = string | number | null;

export function Table({
  title,
  head,
  rows,
  theme,
  testId,
  rowAttrs,
}: {
  title: string;
  head: string[];
  rows: Cell[][];
  theme: ViewTheme;
  testId: string;
  /** per row: a data-verdict for tests, and a background */
  rowAttrs?: (index: number) => { verdict?: string; background?: string };
}) {
  const cell = {
    padding: "2px 8px",
    borderBottom: `1px solid ${theme.border}`,
    textAlign: "right" as const,
  };
  return (
    <section style={{ marginBottom: 16 }}>
      <h3 style={{ fontSize: 14, margin: "8px 0 4px" }}>{title}</h3>
      <table
        data-testid={testId}
        style={{ borderCollapse: "collapse", fontSize: 12, fontVariantNumeric: "tabular-nums" }}
      >
        <thead>
          <tr>
            {head.map((h, i) => (
              <th
                key={h}
                style={{ ...cell, textAlign: i === 0 ? "left" : "right", color: theme.textWeak }}
              >
                {h}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.map((r, i) => (
            <tr
              key={i}
              data-verdict={rowAttrs?.(i).verdict}
              style={{ background: rowAttrs?.(i).background }}
            >
              {r.map((c, j) => (
                <td key={j} style={{ ...cell, textAlign: j === 0 ? "left" : "right" }}>
                  {c === null ? "-" : typeof c === "number" ? fmt(c) : c}
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

export const fmt = (n: number) =>
  Number.isInteger(n) ? String(n) : Math.abs(n) >= 100 ? n.toFixed(1) : n.toFixed(3);
