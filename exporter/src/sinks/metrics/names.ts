// SPDX-License-Identifier: Apache-2.0
// Prometheus metric and label names: the contract with the Grafana dashboards and the rules in
// provisioning/prometheus/ (docs/metrics.md). Base units, `_total` on counters.

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

/** The only labels profinfer's metrics carry (never thread, token or request ids). */
export const MODEL = "model";
export const OP = "op";
export const LAYER = "layer";
export const EXPERT = "expert";
export const EVENT = "event";
export const BACKEND = "backend";
export const PHASE = "phase";
export const REASON = "reason";
export const HARDWARE = "hardware";

/** The `op` label of operators without a probe of their own (timed between barriers). */
export const UNPROBED_OP = "unprobed";

/** Drop reasons by index of the BPF drop counters (bpf/profinfer.h enum pi_drop_reason). */
export const DROP_REASONS = [
  "ringbuf_full",
  "read_failed",
  "map_full",
  "nodes_truncated",
  "counter_read_failed",
] as const;
