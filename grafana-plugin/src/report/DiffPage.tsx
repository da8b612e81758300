// SPDX-License-Identifier: Apache-2.0
// The page `profinfer diff --html` writes: the two runs, the findings that appeared or
// disappeared, both ProfDAGs coloured by the diff's verdicts, and every section's table (the
// terminal table's rows, each with its interval and verdict).
import React, { useMemo } from "react";
import type { DiffPageData, DiffRow, DiffRunInfo, DiffSection } from "@profinfer/contract";
import { DagComparison } from "../components/DagComparison.js";
import { changeStyle } from "../components/dag/changeStyle.js";
import type { ViewTheme } from "../components/theme.js";
import { comparisonFromDiffPage } from "../data/dagChange.js";
import { isModelError } from "../data/errors.js";
import { defaultOptions } from "../types.js";
import { FindingItem, evidenceText } from "./Findings.js";
import { Table } from "./Table.js";

const pct = (v: number | null) =>
  v === null || !Number.isFinite(v) ? "-" : `${v >= 0 ? "+" : ""}${(v * 100).toFixed(1)}%`;

function RunLine({ role, run, theme }: { role: string; run: DiffRunInfo; theme: ViewTheme }) {
  return (
    <div style={{ fontSize: 12, color: theme.textWeak }} data-testid={`diff-run-${role}`}>
      <strong style={{ color: theme.text }}>{role}</strong> <code>{run.command.join(" ")}</code> —
      level {run.level}, {run.decodeCalls} decode calls, {run.prefillCalls} prefill calls,{" "}
      {run.requests} whole requests ({run.dir})
    </div>
  );
}

function SectionTable({ section, theme }: { section: DiffSection; theme: ViewTheme }) {
  const units = [...new Set(section.rows.map((r) => r.unit))].join(" / ");
  const tint = (r: DiffRow) =>
    r.verdict === "slower" || r.verdict === "faster"
      ? `${changeStyle(r.verdict, theme).fill}33`
      : undefined;
  return (
    <>
      {section.rows.length > 0 && (
        <Table
          title={`${section.name} (${units}, over ${section.samples})`}
          testId={`diff-section-${section.name.replace(/ /g, "-")}`}
          theme={theme}
          head={["", "base", "new", "change", "rel", "interval", "verdict"]}
          rows={section.rows.map((r) => [
            r.name,
            r.base,
            r.new,
            r.change,
            pct(r.relative),
            r.interval ? `${pct(r.interval[0])}..${pct(r.interval[1])}` : "-",
            r.verdict,
          ])}
          rowAttrs={(i) => ({
            verdict: section.rows[i]!.verdict,
            background: tint(section.rows[i]!),
          })}
        />
      )}
      {(section.added.length > 0 || section.removed.length > 0) && (
        <p
          style={{ fontSize: 12 }}
          data-testid={`diff-structure-${section.name.replace(/ /g, "-")}`}
        >
          {section.name}: only in new: {section.added.join(", ") || "none"}; only in base:{" "}
          {section.removed.join(", ") || "none"}
        </p>
      )}
    </>
  );
}

export function DiffPage({
  data,
  theme,
  width,
}: {
  data: DiffPageData;
  theme: ViewTheme;
  width: number;
}) {
  const comparison = useMemo(() => {
    try {
      return { value: comparisonFromDiffPage(data), error: null };
    } catch (error) {
      if (isModelError(error)) return { value: null, error: error.message };
      throw error;
    }
  }, [data]);
  const d = data.diff;
  const m = d.method;
  const h2 = {
    fontSize: 16,
    margin: "20px 0 6px",
    borderBottom: `1px solid ${theme.border}`,
    paddingBottom: 2,
  };
  const f = d.findings;
  return (
    <div
      style={{
        fontFamily: theme.fontFamily,
        color: theme.text,
        background: theme.background,
        padding: 16,
        width,
      }}
    >
      <h1 style={{ fontSize: 20, margin: "0 0 4px" }}>{data.title}</h1>
      <RunLine role="base" run={d.base} theme={theme} />
      <RunLine role="new" run={d.new} theme={theme} />
      <p style={{ fontSize: 12 }}>
        A change counts when the {m.confidence * 100}% bootstrap interval of new/base − 1 lies
        beyond ±{m.minRelative * 100}% (each run's calls, or requests, resampled {m.resamples}{" "}
        times; {m.minCalls} or more a side) and, per decode call, it is at least {m.minShare * 100}%
        of the call's time.
      </p>
      <h2 style={h2}>Findings</h2>
      <ul data-testid="diff-findings" style={{ fontSize: 13, paddingLeft: 18, margin: 0 }}>
        {f.appeared.map((x) => (
          <FindingItem
            key={`a-${x.id}`}
            finding={x}
            theme={theme}
            testId="diff-finding-appeared"
            label="appeared"
          />
        ))}
        {f.disappeared.map((x) => (
          <FindingItem
            key={`d-${x.id}`}
            finding={x}
            theme={theme}
            testId="diff-finding-disappeared"
            label="disappeared"
          />
        ))}
        {f.both.map((x) => (
          <li key={`b-${x.id}`} data-testid="diff-finding-both" data-finding-id={x.id}>
            <em>in both </em>
            <code>{x.id}</code>
            <div style={{ fontSize: 12, color: theme.textWeak }}>
              base: {x.base.title} ({evidenceText(x.base)})
            </div>
            <div style={{ fontSize: 12, color: theme.textWeak }}>
              new: {x.new.title} ({evidenceText(x.new)})
            </div>
          </li>
        ))}
        {f.appeared.length + f.disappeared.length + f.both.length === 0 && (
          <li style={{ color: theme.textWeak }}>Neither run has a finding.</li>
        )}
      </ul>
      <h2 style={h2}>ProfDAG: the main decode graph of each run, coloured by the diff</h2>
      {comparison.value ? (
        <DagComparison
          comparison={comparison.value}
          width={width - 32}
          height={760}
          theme={theme}
          options={defaultOptions}
        />
      ) : (
        <p data-testid="report-note" style={{ color: theme.textWeak, fontSize: 12 }}>
          {comparison.error}
        </p>
      )}
      <h2 style={h2}>What changed</h2>
      {d.sections.map((s) => (
        <SectionTable key={s.name} section={s} theme={theme} />
      ))}
      {d.notCompared.map((n) => (
        <p key={n} data-testid="diff-not-compared" style={{ fontSize: 12 }}>
          not compared: {n}
        </p>
      ))}
    </div>
  );
}
