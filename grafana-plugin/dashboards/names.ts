// SPDX-License-Identifier: Apache-2.0
// Names shared by the dashboards and provisioning/grafana/: data source uids (datasources/
// profinfer.yaml) and the plugin id (src/plugin.json). Metric, rule and alert names are the
// contract's (@profinfer/contract).

export const PROMETHEUS_UID = "profinfer-prometheus";
export const TEMPO_UID = "profinfer-tempo";
export const PANEL_PLUGIN_ID = "profinfer-profdag-panel";
export const DASHBOARD_UID = "profinfer-llama-cpp";
export const DASHBOARD_TITLE = "llama.cpp inference profile";
