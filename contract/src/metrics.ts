// SPDX-License-Identifier: Apache-2.0
// Prometheus metric, label and rule names: the contract between the exporter that serves the
// metrics, the recording and alert rules of provisioning/prometheus/ and the Grafana dashboards
// (docs/metrics.md). Base units, `_total` on counters.

/** Per request (docs/metrics.md "Requests"): the GenAI server histograms. */
export const TIME_TO_FIRST_TOKEN = "gen_ai_server_time_to_first_token_seconds";
export const TIME_PER_OUTPUT_TOKEN = "gen_ai_server_time_per_output_token_seconds";
export const REQUEST_DURATION = "gen_ai_server_request_duration_seconds";
/** Requests that ended, by outcome (OUTCOMES). */
export const REQUESTS = "profinfer_requests_total";
export const ACTIVE_REQUESTS = "profinfer_active_requests";
export const PROMPT_TOKENS = "profinfer_prompt_tokens_total";
export const GENERATED_TOKENS = "profinfer_generated_tokens_total";
/** Per llama_decode call: the engine's view. */
export const TOKENS = "profinfer_tokens_total";
export const DECODE_CALLS = "profinfer_decode_calls_total";
export const DECODE_CALL_DURATION = "profinfer_decode_call_duration_seconds";
export const BATCH_TOKENS = "profinfer_batch_tokens";
export const BATCH_SEQUENCES = "profinfer_batch_sequences";
export const OP_DURATION = "profinfer_op_duration_seconds";
export const OP_SECONDS = "profinfer_op_seconds_total";
export const BARRIER_WAIT = "profinfer_barrier_wait_seconds_total";
export const OP_COUNTER = "profinfer_op_counter_total";
/**
 * The backend-stall figure's two sides inside operators, by operator type: issue slots (or cycles,
 * one slot per cycle) stalled on the back end, and all slots, as the run's formula computes them
 * from the events this CPU has (docs/metrics.md "Backend stalls"). rate() / rate() is the ratio.
 */
export const OP_BACKEND_STALL_SLOTS = "profinfer_op_backend_stall_slots_total";
export const OP_BACKEND_SLOTS = "profinfer_op_backend_slots_total";
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
export const HISTOGRAMS = [
  TIME_TO_FIRST_TOKEN,
  TIME_PER_OUTPUT_TOKEN,
  REQUEST_DURATION,
  DECODE_CALL_DURATION,
  BATCH_TOKENS,
  BATCH_SEQUENCES,
  OP_DURATION,
] as const;

/** Every metric family profinfer serves. */
export const METRIC_FAMILIES = [
  TIME_TO_FIRST_TOKEN,
  TIME_PER_OUTPUT_TOKEN,
  REQUEST_DURATION,
  REQUESTS,
  ACTIVE_REQUESTS,
  PROMPT_TOKENS,
  GENERATED_TOKENS,
  TOKENS,
  DECODE_CALLS,
  DECODE_CALL_DURATION,
  BATCH_TOKENS,
  BATCH_SEQUENCES,
  OP_DURATION,
  OP_SECONDS,
  BARRIER_WAIT,
  OP_COUNTER,
  OP_BACKEND_STALL_SLOTS,
  OP_BACKEND_SLOTS,
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
export const LABEL_OUTCOME = "outcome";
/** profinfer_counter_info: the derived figure a counter feeds (FEEDS), and that figure's formula */
export const LABEL_FEEDS = "feeds";
export const LABEL_FORMULA = "formula";

/** The `feeds` label of the counters that feed the backend-stall figure. */
export const FEEDS_BACKEND_STALL = "backend_stall";

/** The `phase` label of the per-call metrics: what a llama_decode call computed, by content. */
export const PHASES = ["prefill", "decode", "mixed"] as const;

/**
 * The `outcome` label of profinfer_requests_total: ran whole (the per-request histograms observe
 * these), produced no output (a prompt only), or incomplete (a call not read whole, tracing began
 * or ended during it).
 */
export const OUTCOMES = ["complete", "no_output", "incomplete"] as const;

/**
 * Bucket upper bounds (s) of the per-request histograms: the GenAI semantic conventions'
 * explicit bucket boundaries of gen_ai.server.time_to_first_token, time_per_output_token and
 * request.duration.
 */
export const TTFT_BUCKETS = [
  0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
] as const;
export const TPOT_BUCKETS = [
  0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
] as const;
export const REQUEST_DURATION_BUCKETS = [
  0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
] as const;

/** The `op` label of operators without a probe of their own (timed between barriers). */
export const UNPROBED_OP = "unprobed";

/** The `reason` label of dropped events, by index of the BPF drop counters (enum pi_drop_reason). */
export const DROP_REASONS = [
  "ringbuf_full",
  "read_failed",
  "map_full",
  "nodes_truncated",
  "counter_read_failed",
  "batch_truncated",
] as const;

/** Series written by the recording rules of provisioning/prometheus/rules/. */
export const RULE_TOKENS_PER_SECOND = "profinfer:tokens_per_second:rate5m";
export const RULE_GENERATED_TOKENS_PER_SECOND = "profinfer:generated_tokens_per_second:rate5m";
export const RULE_BACKEND_STALL_RATIO = "profinfer:op_backend_stall_ratio:rate5m";
export const RULE_IPC = "profinfer:op_ipc:rate5m";
export const RULE_TIME_SHARE = "profinfer:op_time_share:rate5m";
export const RECORDING_RULES = [
  RULE_BACKEND_STALL_RATIO,
  RULE_IPC,
  RULE_TOKENS_PER_SECOND,
  RULE_GENERATED_TOKENS_PER_SECOND,
  RULE_TIME_SHARE,
] as const;

/** The alerts of provisioning/prometheus/rules/. */
export const ALERTS = [
  "ProfinferDecodeMemoryBound",
  "ProfinferTimePerOutputTokenRegressed",
  "ProfinferTimeToFirstTokenRegressed",
  "ProfinferDroppingEvents",
] as const;
