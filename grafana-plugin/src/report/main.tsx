// SPDX-License-Identifier: Apache-2.0
// Entry of the standalone bundle (dist/report/report.js) that the exporter inlines into
// report.html: renders the embedded report, and offers the same views to test harness pages as
// window.profinfer.
import React from "react";
import { flushSync } from "react-dom";
import { createRoot, type Root } from "react-dom/client";
import { ExpertHeatmap } from "../components/ExpertHeatmap.js";
import { ProfDag } from "../components/ProfDag.js";
import { REPORT_THEME } from "../components/theme.js";
import type { FrameLike } from "../data/frames.js";
import { dagModelFromFrames, heatmapModelFromFrames } from "../data/panelData.js";
import { defaultOptions, type Options } from "../types.js";
import { REPORT_DATA_ELEMENT_ID, type ReportData } from "@profinfer/contract";
import { Report } from "./Report.js";

const roots = new WeakMap<Element, Root>();
function rootOf(container: Element): Root {
  let root = roots.get(container);
  if (!root) {
    root = createRoot(container);
    roots.set(container, root);
  }
  return root;
}

const nextFrame = () => new Promise<void>((resolve) => requestAnimationFrame(() => resolve()));

export interface RenderTiming {
  /** frames -> model -> layout -> DOM, synchronously */
  renderMs: number;
  /** the same up to the second animation frame after it (the browser has painted) */
  paintedMs: number;
  layoutMs: number;
}

async function timed(
  container: Element,
  element: React.ReactElement,
  layoutMs: () => number,
): Promise<RenderTiming> {
  const t0 = performance.now();
  flushSync(() => rootOf(container).render(element));
  const renderMs = performance.now() - t0;
  await nextFrame();
  await nextFrame();
  return { renderMs, paintedMs: performance.now() - t0, layoutMs: layoutMs() };
}

export const api = {
  renderReport(container: Element, data: ReportData): void {
    const width = Math.max(900, Math.min(1600, window.innerWidth - 40));
    flushSync(() =>
      rootOf(container).render(<Report data={data} theme={REPORT_THEME} width={width} />),
    );
  },
  async renderProfDag(
    container: Element,
    frames: FrameLike[],
    options: Partial<Options> = {},
    size = { width: 1400, height: 900 },
  ): Promise<RenderTiming> {
    let layoutMs = 0;
    const t0 = performance.now();
    const model = dagModelFromFrames(frames);
    const modelMs = performance.now() - t0;
    const timing = await timed(
      container,
      <ProfDag
        model={model}
        width={size.width}
        height={size.height}
        theme={REPORT_THEME}
        options={{ ...defaultOptions, ...options }}
        onRendered={(i) => (layoutMs = i.layoutMs)}
      />,
      () => layoutMs,
    );
    return {
      ...timing,
      renderMs: timing.renderMs + modelMs,
      paintedMs: timing.paintedMs + modelMs,
    };
  },
  async renderHeatmap(
    container: Element,
    frames: FrameLike[],
    options: Partial<Options> = {},
    size = { width: 900, height: 500 },
  ): Promise<RenderTiming> {
    const o = { ...defaultOptions, ...options };
    const model = heatmapModelFromFrames(frames, o);
    return timed(
      container,
      <ExpertHeatmap
        model={model}
        width={size.width}
        height={size.height}
        theme={REPORT_THEME}
        scale={o.heatmapScale}
        scheme={o.heatmapScheme}
      />,
      () => 0,
    );
  },
};

declare global {
  interface Window {
    profinfer: typeof api;
  }
}
window.profinfer = api;

const embedded = document.getElementById(REPORT_DATA_ELEMENT_ID);
if (embedded?.textContent) {
  const mount =
    document.getElementById("profinfer-report") ??
    document.body.appendChild(document.createElement("div"));
  api.renderReport(mount, JSON.parse(embedded.textContent) as ReportData);
}
