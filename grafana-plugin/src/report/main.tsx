// SPDX-License-Identifier: Apache-2.0
// Entry of the standalone bundle (dist/report/report.js) that the exporter inlines into
// report.html and the diff page: renders the embedded data (window.profinfer.renderReport), a
// run's report or two runs' comparison by its format.
import React from "react";
import { flushSync } from "react-dom";
import { createRoot, type Root } from "react-dom/client";
import { REPORT_THEME } from "../components/theme.js";
import { REPORT_DATA_ELEMENT_ID, type DiffPageData, type ReportData } from "@profinfer/contract";
import { DiffPage } from "./DiffPage.js";
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

export const api = {
  renderReport(container: Element, data: ReportData | DiffPageData): void {
    const width = Math.max(900, Math.min(1600, window.innerWidth - 40));
    const page =
      data.format === "profinfer-diff-page" ? (
        <DiffPage data={data} theme={REPORT_THEME} width={width} />
      ) : (
        <Report data={data} theme={REPORT_THEME} width={width} />
      );
    flushSync(() => rootOf(container).render(page));
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
  api.renderReport(mount, JSON.parse(embedded.textContent) as ReportData | DiffPageData);
}
