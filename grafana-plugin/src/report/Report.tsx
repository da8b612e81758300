// SPDX-License-Identifier: Apache-2.0
// The offline report: the findings, ProfDAG of the main decode graph, the expert heatmap (MoE models), the
// timeline overview and the ProfStat tables, from the same frames and components as the panel.
import React, { useMemo, useRef, useState } from "react";
import type { Finding } from "@profinfer/contract";
import { focusOfFinding, type FindingFocus } from "../data/findingFocus.js";
import { ExpertHeatmap } from "../components/ExpertHeatmap.js";
import { ProfDag } from "../components/ProfDag.js";
import { Timeline } from "../components/Timeline.js";
import type { ViewTheme } from "../components/theme.js";
import { isModelError } from "../data/errors.js";
import { dagModelFromFrames, heatmapModelFromFrames } from "../data/panelData.js";
import { timelineFromTrace } from "../data/timeline.js";
import { isTraceFrame, traceFromFrame } from "../data/trace.js";
import { defaultOptions } from "../types.js";
import type { ReportData } from "@profinfer/contract";
import { Findings } from "./Findings.js";
import { StatsTables } from "./StatsTables.js";

function attempt<T>(make: () => T): { value: T | null; error: string | null } {
  try {
    return { value: make(), error: null };
  } catch (error) {
    if (isModelError(error)) return { value: null, error: error.message };
    throw error;
  }
}

function Note({ text, theme }: { text: string; theme: ViewTheme }) {
  return (
    <p data-testid="report-note" style={{ color: theme.textWeak, fontSize: 12 }}>
      {text}
    </p>
  );
}

export function Report({
  data,
  theme,
  width,
}: {
  data: ReportData;
  theme: ViewTheme;
  width: number;
}) {
  const [graphId, setGraphId] = useState<string | null>(data.mainGraphSpanId);
  const [layer, setLayer] = useState<number | null>(null);
  const [focus, setFocus] = useState<(FindingFocus & { id: string }) | null>(null);
  const dagRef = useRef<HTMLHeadingElement>(null);
  const choose = (finding: Finding) => {
    const next = focusOfFinding(finding, data.findingGraphSpanIds ?? {});
    setFocus({ ...next, id: finding.id });
    if (next.graphId) setGraphId(next.graphId);
    dagRef.current?.scrollIntoView({ behavior: "smooth" });
  };
  const dagOptions = useMemo(
    () => (focus ? { ...defaultOptions, colorMetric: focus.colorMetric } : defaultOptions),
    [focus],
  );
  const dag = useMemo(
    () => attempt(() => dagModelFromFrames(data.frames, graphId)),
    [data, graphId],
  );
  const hasMoe = data.stats.experts.length > 0;
  const layers = useMemo(
    () =>
      hasMoe
        ? attempt(() =>
            heatmapModelFromFrames(data.frames, {
              ...defaultOptions,
              heatmapSource: "trace",
              heatmapMode: "layers",
            }),
          )
        : null,
    [data, hasMoe],
  );
  const tokens = useMemo(
    () =>
      hasMoe
        ? attempt(() =>
            heatmapModelFromFrames(data.frames, {
              ...defaultOptions,
              heatmapSource: "trace",
              heatmapMode: "tokens",
              heatmapLayer: layer ?? -1,
            }),
          )
        : null,
    [data, hasMoe, layer],
  );
  const timeline = useMemo(() => {
    const frame = data.frames.find(isTraceFrame);
    return frame ? timelineFromTrace(traceFromFrame(frame), graphId) : null;
  }, [data, graphId]);
  const s = data.stats;
  const h2 = {
    fontSize: 16,
    margin: "20px 0 6px",
    borderBottom: `1px solid ${theme.border}`,
    paddingBottom: 2,
  };
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
      <div style={{ fontSize: 12, color: theme.textWeak }}>
        <code>{s.run.command.join(" ")}</code> — pid {s.run.pid}, level {s.run.level},{" "}
        {s.run.events} events, {s.run.durationMs.toFixed(1)} ms
        {s.run.truncated ? " (event file cut short)" : ""}
      </div>
      <h2 style={h2}>Findings</h2>
      <Findings
        findings={s.findings ?? []}
        theme={theme}
        chosen={focus?.id ?? null}
        onChoose={choose}
      />
      <h2 style={h2} ref={dagRef}>
        ProfDAG
      </h2>
      {dag.value ? (
        <ProfDag
          model={dag.value}
          width={width}
          height={720}
          theme={theme}
          options={dagOptions}
          onGraphChange={setGraphId}
          highlightOp={focus?.op ?? null}
        />
      ) : (
        <Note text={dag.error ?? ""} theme={theme} />
      )}
      {hasMoe && (
        <>
          <h2 style={h2}>Expert activations</h2>
          {layers?.value ? (
            <ExpertHeatmap
              model={layers.value}
              width={width}
              height={Math.min(600, 110 + layers.value.rows.length * 24)}
              theme={theme}
              scale="linear"
              scheme="viridis"
            />
          ) : (
            <Note text={layers?.error ?? ""} theme={theme} />
          )}
          {tokens?.value && (
            <ExpertHeatmap
              model={tokens.value}
              width={width}
              height={Math.min(700, 110 + tokens.value.rows.length * 12)}
              theme={theme}
              scale="linear"
              scheme="viridis"
              onLayerChange={setLayer}
            />
          )}
        </>
      )}
      <h2 style={h2}>Timeline</h2>
      {data.callSample && data.callSample.shown < data.callSample.total && (
        <Note
          text={`A long run: the timeline and the per-call detail hold ${data.callSample.rule}; the statistics cover the whole run.`}
          theme={theme}
        />
      )}
      {timeline ? (
        <>
          <Timeline
            testId="timeline-overview"
            title="llama_decode calls and graphs"
            {...timeline.overview}
            width={width}
            theme={theme}
          />
          {timeline.graph && (
            <Timeline
              testId="timeline-graph"
              {...timeline.graph}
              title={`operators per thread: ${timeline.graph.title}`}
              width={width}
              theme={theme}
            />
          )}
        </>
      ) : (
        <Note text="The run holds no trace." theme={theme} />
      )}
      <h2 style={h2}>ProfStat</h2>
      <StatsTables stats={s} theme={theme} />
    </div>
  );
}
