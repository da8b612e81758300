// SPDX-License-Identifier: Apache-2.0
// Span, span event and attribute names of profinfer's OpenTelemetry export, defined once for the
// exporter that writes them and the Grafana plugin that reads them. The GenAI semantic
// conventions are still "development" in @opentelemetry/semantic-conventions (only in its
// unstable `incubating` entry point), so, as opentelemetry-js-contrib does, the few we use are
// copied here as constants. Everything else lives in one namespace of our own: `ggml.*` for what
// ggml computes, `profinfer.*` for what the profiler adds. docs/spans.md is the reference.
import { ATTR_SERVICE_NAME } from "@opentelemetry/semantic-conventions";

// --- span names
// a request's root span is named `{gen_ai.operation.name} {gen_ai.request.model}`: requestSpanName
export const SPAN_TOKEN = "llama_decode";
export const SPAN_GRAPH = "graph_compute";
// operator spans are named after the op in lower case ("mul_mat", "rms_norm+mul")
/** a request's part of one llama_decode call, named after what it was (a request trace's children) */
export const SPAN_STEP_PREFILL = "prefill";
export const SPAN_STEP_DECODE = "decode";
export const SPAN_STEP_SPECULATIVE = "speculative";
export const STEP_SPAN_NAMES = [
  SPAN_STEP_PREFILL,
  SPAN_STEP_DECODE,
  SPAN_STEP_SPECULATIVE,
] as const;
export type StepSpanName = (typeof STEP_SPAN_NAMES)[number];

// --- span event names
export const EVENT_MOE_ROUTE = "moe.route";
export const EVENT_THREAD = "thread";
export const EVENT_OFF_CPU = "off_cpu";

// --- OpenTelemetry GenAI semantic conventions (gen_ai.*)
export const ATTR_GEN_AI_OPERATION_NAME = "gen_ai.operation.name";
export const ATTR_GEN_AI_PROVIDER_NAME = "gen_ai.provider.name";
export const ATTR_GEN_AI_REQUEST_MODEL = "gen_ai.request.model";
export const ATTR_GEN_AI_USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens";
/** prompt tokens served from the cache (int); included in gen_ai.usage.input_tokens */
export const ATTR_GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS = "gen_ai.usage.cache_read.input_tokens";
export const ATTR_GEN_AI_USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens";
/**
 * TTFT and TPOT of a request, in seconds (double): the names and units of the GenAI model server
 * metrics gen_ai.server.time_to_first_token and gen_ai.server.time_per_output_token, as span
 * attributes
 */
export const ATTR_GEN_AI_SERVER_TIME_TO_FIRST_TOKEN = "gen_ai.server.time_to_first_token";
export const ATTR_GEN_AI_SERVER_TIME_PER_OUTPUT_TOKEN = "gen_ai.server.time_per_output_token";
export const GEN_AI_OPERATION_TEXT_COMPLETION = "text_completion";
export const GEN_AI_PROVIDER_LLAMA_CPP = "llama.cpp";

/** The GenAI span name of a request: `{gen_ai.operation.name} {gen_ai.request.model}`. */
export function requestSpanName(model: string): string {
  return `${GEN_AI_OPERATION_TEXT_COMPLETION} ${model}`;
}

// --- request (the root span of a request's trace)
/** the sequence id its calls gave it in their batches (int) */
export const ATTR_REQUEST_SEQ_ID = "profinfer.request.seq_id";
/** the llama_context pointer its calls ran on, hex (string) */
export const ATTR_REQUEST_CONTEXT = "profinfer.request.context";
/** the seq of its first and of its last llama_decode call (int) */
export const ATTR_REQUEST_FIRST_SEQ = "profinfer.request.first_seq";
export const ATTR_REQUEST_LAST_SEQ = "profinfer.request.last_seq";
/** the llama_decode calls it took part in: its step spans (int) */
export const ATTR_REQUEST_STEPS = "profinfer.request.steps";
/** prompt tokens it evaluated (its prompt chunks' tokens; the rest came from the cache) (int) */
export const ATTR_REQUEST_PROMPT_TOKENS = "profinfer.request.prompt_tokens";
/** its tokens over the tokens of the calls it took part in (double, 1: it had them alone) */
export const ATTR_REQUEST_BATCH_SHARE = "profinfer.request.batch_share";

// --- step (a request's part of one call: a child of the request's root span; also the
// attributes of the links from a llama_decode span to its steps)
/** prefill, decode or speculative: the step span's name (string, on links) */
export const ATTR_STEP_KIND = "profinfer.step.kind";
/** its position in the request, from 0 (int) */
export const ATTR_STEP_INDEX = "profinfer.step.index";
/** its tokens in the call (int) */
export const ATTR_STEP_TOKENS = "profinfer.step.tokens";
/** the outputs (logits) it asked for (int) */
export const ATTR_STEP_OUTPUTS = "profinfer.step.outputs";
/** its first and last position in the sequence (int; absent when the batch gave none) */
export const ATTR_STEP_POS_MIN = "profinfer.step.pos_min";
export const ATTR_STEP_POS_MAX = "profinfer.step.pos_max";
/** its tokens over the call's (double) */
export const ATTR_STEP_SHARE = "profinfer.step.share";

// --- token span (llama_decode)
export const ATTR_TOKEN_SEQ = "profinfer.token.seq";
export const ATTR_TOKEN_PHASE = "profinfer.token.phase";
export const ATTR_TOKEN_N_TOKENS = "profinfer.token.n_tokens";
export const ATTR_TOKEN_RET = "profinfer.token.ret";
/** the requests the call served: one step of each, one link to each (int) */
export const ATTR_TOKEN_REQUESTS = "profinfer.token.requests";
/** operator spans were exported for this call (bool) */
export const ATTR_TOKEN_OPS_EXPORTED = "profinfer.token.ops_exported";
/**
 * the operator-span sampling that applied to this call (string, --otlp-op-sample's spec): the
 * one asked for, or a lower one the live export took to stay within its CPU bound
 */
export const ATTR_TOKEN_OP_SAMPLING = "profinfer.token.op_sampling";
/** both begin and end of the call were recorded (bool) */
export const ATTR_TOKEN_COMPLETE = "profinfer.token.complete";
/** the thread that called llama_decode (int) */
export const ATTR_THREAD_ID = "thread.id";

// --- MoE routing (span event moe.route on the token span)
export const ATTR_LAYER = "ggml.layer";
export const ATTR_MOE_K = "ggml.moe.k";
export const ATTR_MOE_EXPERTS = "ggml.moe.experts";

// --- graph span (graph_compute)
export const ATTR_BACKEND = "ggml.backend";
export const ATTR_GRAPH_NODES = "ggml.graph.nodes";
export const ATTR_GRAPH_FN = "ggml.graph.fn";
export const ATTR_GRAPH_THREADS = "ggml.graph.threads";
/** the graph description it ran (node list and shapes), hex: the same for every run of it (string) */
export const ATTR_GRAPH_SIGNATURE = "ggml.graph.signature";
/** operator spans below it (int) */
export const ATTR_GRAPH_OPS = "profinfer.graph.ops";
/** no event was missing (bool) */
export const ATTR_GRAPH_COMPLETE = "profinfer.graph.complete";
/** why it is not complete (string array) */
export const ATTR_GRAPH_PROBLEMS = "profinfer.graph.problems";

// --- a split's graph span (ggml.graph.fn "split"): one run of nodes handed to one backend
/** its position among its scheduler graph's splits (int) */
export const ATTR_SPLIT_INDEX = "ggml.split.index";
/** its first node's index in the scheduler graph, -1 unknown (int) */
export const ATTR_SPLIT_FIRST_NODE = "ggml.split.first_node";
/** how the host saw it complete: returned, synchronized, unobserved (string) */
export const ATTR_SPLIT_COMPLETION = "profinfer.split.completion";
/** from its submission to when the host saw it complete, ns (int) */
export const ATTR_SPLIT_COMPLETE_NS = "profinfer.split.complete_ns";
/** its inputs copied to its backend before it, and their bytes (int) */
export const ATTR_SPLIT_COPIES = "profinfer.split.copies";
export const ATTR_SPLIT_COPY_BYTES = "profinfer.split.copy_bytes";
/** what profinfer measured of its backend beyond graph level (string) */
export const ATTR_BACKEND_MEASURED = "profinfer.backend.measured";
/** what could not be seen of its backend (string array) */
export const ATTR_BACKEND_NOT_SEEN = "profinfer.backend.not_seen";

// --- operator span
export const ATTR_OP = "ggml.op";
export const ATTR_TENSOR_NAME = "ggml.tensor.name";
export const ATTR_TENSOR_SHAPE = "ggml.tensor.shape";
export const ATTR_TENSOR_TYPE = "ggml.tensor.type";
export const ATTR_NODE_INDEX = "ggml.node.index";
export const ATTR_SRC_NAMES = "ggml.src.names";
export const ATTR_SRC_OPS = "ggml.src.ops";
/**
 * each source's producer in the graph: the ggml.node.index of the operator span that computed it,
 * -1 for a tensor no operator of the graph computes (a weight, an input); the DAG's edges, exact
 */
export const ATTR_SRC_NODES = "ggml.src.nodes";
/** a fused step: the tensor names of the nodes ggml computed in it, first to last */
export const ATTR_FUSED_NAMES = "ggml.fused.names";
export const ATTR_THREADS = "ggml.threads";
export const ATTR_THREAD_SLOWEST_NS = "ggml.thread.slowest_ns";
export const ATTR_THREAD_FASTEST_NS = "ggml.thread.fastest_ns";
export const ATTR_THREAD_IMBALANCE = "ggml.thread.imbalance";
export const ATTR_BARRIER_WAIT_NS = "ggml.barrier_wait_ns";
/** barriers passed inside the op's own code (mul_mat), summed over threads (int) */
export const ATTR_INNER_BARRIER_WAIT_NS = "ggml.inner_barrier_wait_ns";
/** timed by its own probe (true) or from the barriers around it (false) */
export const ATTR_OP_PROBED = "ggml.op.probed";
/** off-CPU and preempted time inside the op, summed over threads (int, only when > 0) */
export const ATTR_OFF_CPU_NS = "ggml.off_cpu_ns";
export const ATTR_PREEMPTED_NS = "ggml.preempted_ns";
/** prefix of counter deltas: ggml.counter.<event> (double, sum over threads) */
export const ATTR_COUNTER_PREFIX = "ggml.counter.";
export const ATTR_IPC = "ggml.ipc";
/** bytes the op read from its sources and wrote to its destination, from their shapes (int) */
export const ATTR_OP_BYTES = "ggml.op.bytes";
/** its arithmetic operations, a multiply-add counting 2 (int) */
export const ATTR_OP_OPERATIONS = "ggml.op.operations";
/**
 * its bytes per second and operations per second as shares of the machine profile's read
 * bandwidth and arithmetic peak for its threads (double), and its roofline class (string:
 * memory, compute, sync, overhead, latency; docs/findings.md "Roofline")
 */
export const ATTR_ROOFLINE_BANDWIDTH_SHARE = "profinfer.roofline.bandwidth_share";
export const ATTR_ROOFLINE_COMPUTE_SHARE = "profinfer.roofline.compute_share";
export const ATTR_ROOFLINE_CLASS = "profinfer.roofline.class";
export const ATTR_BACKEND_STALL_RATIO = "ggml.backend_stall_ratio";

// --- thread span event (one per worker thread of an operator)
export const ATTR_THREAD_ITH = "ggml.thread.ith";
/** thread start and end, ns after the operator span's start (int) */
export const ATTR_THREAD_START = "start";
export const ATTR_THREAD_END = "end";
/** the thread's barrier wait after the op (int) */
export const ATTR_THREAD_BARRIER_WAIT_NS = "ggml.barrier_wait_ns";

// --- off_cpu span event (an off-CPU interval of a worker thread inside an operator)
/** how long it was off CPU (int, ns) */
export const ATTR_OFF_CPU_DURATION_NS = "profinfer.off_cpu.duration_ns";
/** runnable but another task took the CPU (bool) */
export const ATTR_OFF_CPU_PREEMPTED = "profinfer.off_cpu.preempted";
/** the task that took the CPU (string), when preempted */
export const ATTR_OFF_CPU_BY = "profinfer.off_cpu.by";
export const ATTR_CPU_ID = "cpu.id";

// --- resource (semantic-conventions names where they exist)
export const RES_SERVICE_NAME = ATTR_SERVICE_NAME;
/** the host agent's identity of a process, as the metrics' service_instance_id label has it */
export const RES_SERVICE_INSTANCE_ID = "service.instance.id";
export const RES_CONTAINER_ID = "container.id";
export const RES_K8S_POD_NAME = "k8s.pod.name";
export const RES_K8S_POD_UID = "k8s.pod.uid";
export const RES_K8S_NAMESPACE_NAME = "k8s.namespace.name";
/** a sampled window of the host agent: what started it (WINDOW_TRIGGERS) */
export const RES_WINDOW_TRIGGER = "profinfer.window.trigger";
export const RES_HOST_NAME = "host.name";
export const RES_HOST_ARCH = "host.arch";
export const RES_HOST_CPU_MODEL_NAME = "host.cpu.model.name";
export const RES_HOST_CPU_COUNT = "profinfer.host.cpus";
export const RES_OS_TYPE = "os.type";
export const RES_OS_VERSION = "os.version";
export const RES_PROCESS_PID = "process.pid";
export const RES_PROCESS_EXECUTABLE_NAME = "process.executable.name";
export const RES_PROCESS_EXECUTABLE_PATH = "process.executable.path";
export const RES_PROCESS_COMMAND_ARGS = "process.command_args";
export const RES_LLAMA_CPP_LIBRARY = "llama_cpp.library";
export const RES_GGML_VERSION = "ggml.version";
export const RES_GGML_COMMIT = "ggml.commit";
export const RES_MODEL_NAME = "gen_ai.request.model";
export const RES_MODEL_ARCHITECTURE = "profinfer.model.architecture";
export const RES_MODEL_FILE = "profinfer.model.file";
export const RES_MODEL_SIZE_BYTES = "profinfer.model.size_bytes";
export const RES_PROFINFER_VERSION = "profinfer.version";
export const RES_PROFINFER_LEVEL = "profinfer.level";
export const RES_RUN_ID = "profinfer.run.id";

/** instrumentation scope of every span */
export const SCOPE_NAME = "profinfer";
