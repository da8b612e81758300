// SPDX-License-Identifier: Apache-2.0
// A trace as the data frame Grafana's Tempo data source returns it (pkg/tsdb/tempo TraceToFrame):
// one row per span with traceID, spanID, parentSpanID, operationName, serviceName, ..., startTime
// and duration in ms, tags and logs as lists of {key, value}, array attributes as their JSON text.
// The exporter writes it into report.html; the plugin reads it there and from Tempo alike.

export interface FrameField {
  name: string;
  type: "string" | "number" | "other";
  config: Record<string, never>;
  values: unknown[];
}

export interface TraceFrame {
  name: "Trace";
  refId: string;
  meta: { preferredVisualisationType: "trace" };
  fields: FrameField[];
  length: number;
}

/** An attribute or span event field of the frame's tags and logs. */
export interface FrameKeyValue {
  key: string;
  value: string | number | boolean;
}

/** A span event as a row of the frame's logs. */
export interface FrameLog {
  /** ms since the Unix epoch */
  timestamp: number;
  name: string;
  fields: FrameKeyValue[];
}
