// SPDX-License-Identifier: Apache-2.0
// The few colours and fonts the views draw with: from Grafana's theme inside Grafana
// (ProfinferPanel maps GrafanaTheme2 onto it), fixed in the offline report.

export interface ViewTheme {
  text: string;
  textWeak: string;
  background: string;
  surface: string;
  border: string;
  edge: string;
  highlight: string;
  fontFamily: string;
  fontSize: number;
}

export const REPORT_THEME: ViewTheme = {
  text: "#1f2328",
  textWeak: "#59636e",
  background: "#ffffff",
  surface: "#f6f8fa",
  border: "#d1d9e0",
  edge: "#8c959f",
  highlight: "#0969da",
  fontFamily: "Inter, 'Helvetica Neue', Arial, sans-serif",
  fontSize: 12,
};
