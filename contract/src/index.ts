// SPDX-License-Identifier: Apache-2.0
// The contract between profinfer's packages: names and shapes each defined once here and imported
// by the exporter, the Grafana plugin, the dashboards, the provisioning checks and the tests.
export * from "./spans.js";
export * from "./metrics.js";
export type * from "./stats.js";
export * from "./diff.js";
export * from "./findings.js";
export * from "./traceFrame.js";
export * from "./report.js";
export * from "./mainGraph.js";
export * from "./machine.js";
