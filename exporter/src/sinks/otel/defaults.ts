// SPDX-License-Identifier: Apache-2.0
// The span export's defaults, in a module of their own: the agent reads them without loading the
// OpenTelemetry packages, which it needs only once a window exports.

export const EXPORT_DEFAULTS = {
  timeoutMs: 5000,
  spoolMaxBytes: 256 << 20,
  batchSpans: 2048,
  retryInitialMs: 500,
  retryMaxMs: 5000,
};
