// SPDX-License-Identifier: Apache-2.0
// Names shared by the dashboards and provisioning/: data source uids (provisioning/grafana/
// datasources/profinfer.yaml), the plugin id (src/plugin.json), and the Prometheus series the
// exporter writes and provisioning/prometheus/rules records (their names are the exporter's:
// exporter/src/sinks/metrics; the dashboards cannot import it).

export const PROMETHEUS_UID = "profinfer-prometheus";
export const TEMPO_UID = "profinfer-tempo";
export const PANEL_PLUGIN_ID = "profinfer-profdag-panel";
export const DASHBOARD_UID = "profinfer-llama-cpp";
export const DASHBOARD_TITLE = "llama.cpp inference profile";

export const METRICS = {
  ttft: "gen_ai_server_time_to_first_token_seconds",
  tpot: "gen_ai_server_time_per_output_token_seconds",
  tokens: "profinfer_tokens_total",
  opSeconds: "profinfer_op_seconds_total",
  barrierWait: "profinfer_barrier_wait_seconds_total",
  expertSelections: "profinfer_moe_expert_selections_total",
  eventsDropped: "profinfer_events_dropped_total",
  spansDropped: "profinfer_spans_dropped_total",
  tokensPerSecondRule: "profinfer:tokens_per_second:rate1m",
  stallRatioRule: "profinfer:op_backend_stall_ratio:rate5m",
  ipcRule: "profinfer:op_ipc:rate5m",
  timeShareRule: "profinfer:op_time_share:rate5m",
} as const;

export const ALERTS = [
  "ProfinferDecodeMemoryBound",
  "ProfinferTimePerOutputTokenRegressed",
  "ProfinferDroppingEvents",
] as const;
