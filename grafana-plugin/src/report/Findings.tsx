// SPDX-License-Identifier: Apache-2.0
// The report's first section: what the run's figures say is slow (stats.json `findings`), each
// with its evidence and what to try; choosing one shows it in ProfDAG and the timeline below.
// The diff page lists the findings of two runs with the same items.
import React from "react";
import type { Finding } from "@profinfer/contract";
import type { ViewTheme } from "../components/theme.js";

export function Findings({
  findings,
  theme,
  chosen,
  onChoose,
}: {
  findings: Finding[];
  theme: ViewTheme;
  /** the finding shown in the DAG, by id */
  chosen: string | null;
  onChoose: (finding: Finding) => void;
}) {
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
        <FindingItem
          key={f.id}
          finding={f}
          theme={theme}
          testId="report-finding"
          chosen={chosen === f.id}
          onChoose={onChoose}
        />
      ))}
    </ul>
  );
}

export const evidenceText = (f: Finding) =>
  Object.entries(f.evidence)
    .map(([k, v]) => `${k} ${v}`)
    .join(", ");

/** One finding: its severity, id and title, its evidence, what to try; a button to show it. */
export function FindingItem({
  finding: f,
  theme,
  testId,
  label,
  chosen = false,
  onChoose,
}: {
  finding: Finding;
  theme: ViewTheme;
  testId: string;
  /** before the severity: "appeared", "disappeared" */
  label?: string;
  chosen?: boolean;
  /** when given, a button that shows the finding in ProfDAG and the timeline */
  onChoose?: (finding: Finding) => void;
}) {
  return (
    <li
      data-testid={testId}
      data-finding-id={f.id}
      data-chosen={chosen ? "true" : undefined}
      style={{ marginBottom: 6 }}
    >
      {label && <em>{label} </em>}
      <strong>{f.severity}</strong> <code>{f.id}</code>: {f.title}{" "}
      {onChoose && (
        <button
          type="button"
          data-testid="report-finding-show"
          onClick={() => onChoose(f)}
          style={{
            fontSize: 11,
            border: `1px solid ${theme.border}`,
            background: chosen ? theme.highlight : theme.background,
            color: theme.text,
            cursor: "pointer",
          }}
        >
          show in ProfDAG and timeline
        </button>
      )}
      <div style={{ fontSize: 12, color: theme.textWeak }}>{evidenceText(f)}</div>
      <div style={{ fontSize: 12 }}>Try: {f.action}</div>
    </li>
  );
}
