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
 * Operator runs, each once, and the bytes they moved by their tensors' shapes (docs/findings.md
 * "Bytes and operations"): rate(bytes) over the operators' wall time is their bandwidth, which
 * the machine profile's gauge says how near the machine's peak is, with or without PMU counters.
 */
export const OP_RUNS = "profinfer_op_runs_total";
export const OP_BYTES = "profinfer_op_bytes_total";
/** The machine profile's read bandwidth (docs/findings.md "Machine profile"), by thread count. */
export const MACHINE_READ_BANDWIDTH = "profinfer_machine_read_bandwidth_bytes_per_second";
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
/**
 * Per backend (label `backend`, the names llama.cpp gives them): splits handed to it, the time in
 * their submission, the host's waits for it, the copies of the splits' inputs to it.
 */
export const BACKEND_SPLITS = "profinfer_backend_splits_total";
export const BACKEND_SUBMIT_SECONDS = "profinfer_backend_submit_seconds_total";
export const BACKEND_WAIT_SECONDS = "profinfer_backend_wait_seconds_total";
export const BACKEND_COPIES = "profinfer_backend_copies_total";
export const BACKEND_COPY_BYTES = "profinfer_backend_copy_bytes_total";
export const BACKEND_COPY_SECONDS = "profinfer_backend_copy_seconds_total";
/** which counters are recorded, and whether each is a real hardware count */
export const COUNTER_INFO = "profinfer_counter_info";

/**
 * The host agent (`profinfer agent`, docs/agent.md). One series per followed process maps its
 * instance identity (LABEL_SERVICE_NAME, LABEL_SERVICE_INSTANCE_ID, which every series of the
 * process carries) to its pid, program, model and container: the pid is on this series only.
 */
export const PROCESS_INFO = "profinfer_process_info";
/** the agent's own figures: processes followed, library files probed, what it saw and refused */
export const AGENT_PROCESSES = "profinfer_agent_processes";
export const AGENT_PROBE_SETS = "profinfer_agent_probe_sets";
export const AGENT_PROCESS_EVENTS = "profinfer_agent_process_events_total";
export const AGENT_ATTACH_FAILURES = "profinfer_agent_attach_failures_total";
export const AGENT_RESIDENT_MEMORY = "profinfer_agent_resident_memory_bytes";
export const AGENT_WINDOWS = "profinfer_agent_windows_total";
export const AGENT_WINDOW_BYTES = "profinfer_agent_window_bytes";

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
  OP_RUNS,
  OP_BYTES,
  MACHINE_READ_BANDWIDTH,
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
  PROCESS_INFO,
  AGENT_PROCESSES,
  AGENT_PROBE_SETS,
  AGENT_PROCESS_EVENTS,
  AGENT_ATTACH_FAILURES,
  AGENT_RESIDENT_MEMORY,
  AGENT_WINDOWS,
  AGENT_WINDOW_BYTES,
  BACKEND_SPLITS,
  BACKEND_SUBMIT_SECONDS,
  BACKEND_WAIT_SECONDS,
  BACKEND_COPIES,
  BACKEND_COPY_BYTES,
  BACKEND_COPY_SECONDS,
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
/** profinfer_machine_read_bandwidth_bytes_per_second: the threads reading (a count, not an id) */
export const LABEL_THREADS = "threads";
/** the backend a split was handed to, as llama.cpp names it ("CPU", "BLAS", "Vulkan0") */
export const LABEL_BACKEND = "backend";
/** profinfer_counter_info: the derived figure a counter feeds (FEEDS), and that figure's formula */
export const LABEL_FEEDS = "feeds";
export const LABEL_FORMULA = "formula";

/**
 * The host agent's labels of a process: the program's file name, and its OpenTelemetry
 * service.name and service.instance.id (the spans of its windows carry the same on their resource).
 */
export const LABEL_EXECUTABLE = "executable";
export const LABEL_SERVICE_NAME = "service_name";
export const LABEL_SERVICE_INSTANCE_ID = "service_instance_id";
/** profinfer_process_info only: what identifies the process behind an instance now */
export const LABEL_PID = "pid";
export const LABEL_COMMAND = "command";
export const LABEL_CONTAINER_ID = "container_id";
export const LABEL_POD = "pod";
export const LABEL_NAMESPACE = "namespace";
/** profinfer_agent_process_events_total: the kernel's word that a process did something */
export const LABEL_KIND = "kind";
export const PROCESS_EVENT_KINDS = ["exec", "exit", "library"] as const;
/** profinfer_agent_windows_total: what started a window */
export const LABEL_TRIGGER = "trigger";
export const WINDOW_TRIGGERS = ["schedule", "tpot", "ttft"] as const;

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
export const RULE_OP_BANDWIDTH = "profinfer:op_bandwidth_bytes_per_second:rate5m";
export const RULE_OP_BANDWIDTH_SHARE = "profinfer:op_bandwidth_share:rate5m";
export const RECORDING_RULES = [
  RULE_BACKEND_STALL_RATIO,
  RULE_IPC,
  RULE_TOKENS_PER_SECOND,
  RULE_GENERATED_TOKENS_PER_SECOND,
  RULE_TIME_SHARE,
  RULE_OP_BANDWIDTH,
  RULE_OP_BANDWIDTH_SHARE,
] as const;

/** The alerts of provisioning/prometheus/rules/. */
export const ALERTS = [
  "ProfinferDecodeMemoryBound",
  "ProfinferOperatorsAtMemoryBandwidth",
  "ProfinferTimePerOutputTokenRegressed",
  "ProfinferTimeToFirstTokenRegressed",
  "ProfinferDroppingEvents",
] as const;
