// SPDX-License-Identifier: Apache-2.0
// The report's first section: what the run's figures say is slow (stats.json `findings`), each
// with its evidence and what to try.
import React from "react";
import type { Finding } from "@profinfer/contract";
import type { ViewTheme } from "../components/theme.js";

export function Findings({ findings, theme }: { findings: Finding[]; theme: ViewTheme }) {
  if (findings.length === 0) {
    return (
      <p data-testid="report-findings" style={{ fontSize: 12, color: theme.textWeak }}>
        No findings: nothing in this run passed the thresholds of docs/findings.md.
      </p>
    );
  }
  return (
    <ul data-testid="report-findings" style={{ fontSize: 13, paddingLeft: 18, margin: 0 }}>
      {findings.map((f) => (
        <li key={f.id} data-testid="report-finding" style={{ marginBottom: 6 }}>
          <strong>{f.severity}</strong> <code>{f.id}</code>: {f.title}
          <div style={{ fontSize: 12, color: theme.textWeak }}>
            {Object.entries(f.evidence)
              .map(([k, v]) => `${k} ${v}`)
              .join(", ")}
          </div>
          <div style={{ fontSize: 12 }}>Try: {f.action}</div>
        </li>
      ))}
    </ul>
  );
}
