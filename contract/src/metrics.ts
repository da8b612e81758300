// SPDX-License-Identifier: Apache-2.0
// Prometheus metric, label and rule names: the contract between the exporter that serves the
// metrics, the recording and alert rules of provisioning/prometheus/ and the Grafana dashboards
// (docs/metrics.md). Base units, `_total` on counters.

export const TIME_TO_FIRST_TOKEN = "gen_ai_server_time_to_first_token_seconds";
export const TIME_PER_OUTPUT_TOKEN = "gen_ai_server_time_per_output_token_seconds";
export const TOKENS = "profinfer_tokens_total";
export const DECODE_CALLS = "profinfer_decode_calls_total";
export const OP_DURATION = "profinfer_op_duration_seconds";
export const OP_SECONDS = "profinfer_op_seconds_total";
export const BARRIER_WAIT = "profinfer_barrier_wait_seconds_total";
export const OP_COUNTER = "profinfer_op_counter_total";
export const LAYER_OP_SECONDS = "profinfer_layer_op_seconds_total";
export const MOE_EXPERT_SELECTIONS = "profinfer_moe_expert_selections_total";
export const PROBE_HITS = "profinfer_probe_hits_total";
export const EVENTS = "profinfer_events_total";
export const EVENTS_DROPPED = "profinfer_events_dropped_total";
export const SPANS_EXPORTED = "profinfer_spans_exported_total";
export const SPANS_QUEUED = "profinfer_spans_queued";
export const SPANS_DROPPED = "profinfer_spans_dropped_total";
export const PROCESS_CPU = "profinfer_process_cpu_seconds_total";
/** which counters are recorded, and whether each is a real hardware count */
export const COUNTER_INFO = "profinfer_counter_info";

/** Histograms: the series Prometheus stores for each (`_bucket`, `_sum`, `_count`). */
export const HISTOGRAMS = [TIME_TO_FIRST_TOKEN, TIME_PER_OUTPUT_TOKEN, OP_DURATION] as const;

/** Every metric family profinfer serves. */
export const METRIC_FAMILIES = [
  TIME_TO_FIRST_TOKEN,
  TIME_PER_OUTPUT_TOKEN,
  TOKENS,
  DECODE_CALLS,
  OP_DURATION,
  OP_SECONDS,
  BARRIER_WAIT,
  OP_COUNTER,
  LAYER_OP_SECONDS,
  MOE_EXPERT_SELECTIONS,
  PROBE_HITS,
  EVENTS,
  EVENTS_DROPPED,
  SPANS_EXPORTED,
  SPANS_QUEUED,
  SPANS_DROPPED,
  PROCESS_CPU,
  COUNTER_INFO,
] as const;

/** The only labels profinfer's metrics carry (never thread, token or request ids). */
export const LABEL_MODEL = "model";
export const LABEL_OP = "op";
export const LABEL_LAYER = "layer";
export const LABEL_EXPERT = "expert";
export const LABEL_EVENT = "event";
export const LABEL_PHASE = "phase";
export const LABEL_REASON = "reason";
export const LABEL_HARDWARE = "hardware";

/** The `op` label of operators without a probe of their own (timed between barriers). */
export const UNPROBED_OP = "unprobed";

/** The `reason` label of dropped events, by index of the BPF drop counters (enum pi_drop_reason). */
export const DROP_REASONS = [
  "ringbuf_full",
  "read_failed",
  "map_full",
  "nodes_truncated",
  "counter_read_failed",
] as const;

/** Series written by the recording rules of provisioning/prometheus/rules/. */
export const RULE_TOKENS_PER_SECOND = "profinfer:tokens_per_second:rate1m";
export const RULE_BACKEND_STALL_RATIO = "profinfer:op_backend_stall_ratio:rate5m";
export const RULE_IPC = "profinfer:op_ipc:rate5m";
export const RULE_TIME_SHARE = "profinfer:op_time_share:rate5m";
export const RECORDING_RULES = [
  RULE_BACKEND_STALL_RATIO,
  RULE_IPC,
  RULE_TOKENS_PER_SECOND,
  RULE_TIME_SHARE,
] as const;

/** The alerts of provisioning/prometheus/rules/. */
export const ALERTS = [
  "ProfinferDecodeMemoryBound",
  "ProfinferTimePerOutputTokenRegressed",
  "ProfinferDroppingEvents",
] as const;
