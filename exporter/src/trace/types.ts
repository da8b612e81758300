// SPDX-License-Identifier: Apache-2.0
// The trace model's types: Run > Token > GraphRun > OpRun (per thread), the graph descriptions
// (the DAG of each snapshot) and the scheduler's off-CPU intervals. Timestamps are BigInt
// CLOCK_MONOTONIC ns (exact); durations are plain numbers of ns. This module imports no code
// that builds the model (buildRun.ts and its passes do); docs/trace-model.md describes the rules.
import type { BackendStallFormula } from "./backendStall.js";
import type { Drops, Phase } from "@profinfer/contract";
import type { BatchSequence, ChunkEvent } from "../abi/events.js";
import type { RunHeader } from "./header.js";
import type { ExitNote, NoteRecord } from "./notes.js";

/** One CLOCK_MONOTONIC / CLOCK_REALTIME pair taken at the same instant (the run header's). */
export interface RunClock {
  monotonicNs: bigint;
  realtimeNs: bigint;
}

export interface Run {
  /** the file it was read from, when it was */
  source: string | null;
  header: RunHeader;
  /** the header's clock pair, parsed */
  clock: RunClock;
  /** earliest and latest event timestamp (0n when there are no events) */
  firstNs: bigint;
  lastNs: bigint;
  eventCount: number;
  /** llama_decode calls, in start order */
  tokens: Token[];
  /** requests: one sequence's work from its prompt to its last generated token, in start order */
  requests: Request[];
  /** every graph computation, in start order (nested CPU graphs after their sched graph) */
  graphRuns: GraphRun[];
  /** the backends the splits were handed to (recordings of ABI 5), in order of first use */
  backends: Backend[];
  /** graph descriptions by snapshotKey(cgraph, signature) */
  snapshots: Map<string, GraphSnapshot>;
  /** the target's threads: decode callers first, then workers by ith */
  threads: Map<number, ThreadInfo>;
  /** off-CPU intervals per target thread (sched_switch), by tid */
  offCpu: Map<number, OffCpuInterval[]>;
  /** the last "drops" note: cumulative per-reason counts; null when none was written */
  drops: Drops | null;
  /** the "exit" note, when the target's exit was seen */
  exit: ExitNote | null;
  /** when tracing stopped (the "end" note's, CLOCK_MONOTONIC ns); null when it does not say */
  stoppedNs: bigint | null;
  notes: NoteRecord[];
  /** where the file was cut short (the events after it are lost); null when it is whole */
  truncatedAt: number | null;
  warnings: string[];
  /** what was lost on the way, by kind (the counts behind the warnings) */
  losses: RunLosses;
  /**
   * The perf counters recorded (the run header's), in order: `hardware` says whether it counts
   * real hardware events (false: a software event of the kernel), `scaled` whether any reading
   * was multiplexed and so scaled by enabled/running time. Absent when no counter was recorded.
   */
  counters?: { name: string; hardware: boolean; scaled: boolean }[];
  /** the formula of the backend-stall figure; absent when its events were not recorded */
  backendStall?: BackendStallFormula;
}

/** Events the model could not place, by what went wrong (docs/trace-model.md "Completeness"). */
export interface RunLosses {
  /** token or graph end events without their begin */
  unpaired: number;
  /** graph computations outside any recorded llama_decode call */
  outside: number;
  /** operator, barrier and step intervals outside any graph */
  lost: number;
  /** operator and barrier intervals that lost their begin or end */
  broken: number;
  /** MoE expert-id events that could not be placed */
  expertsUnplaced: number;
}

export interface ThreadInfo {
  tid: number;
  tgid: number;
  /** ggml worker index; null when it never ran an operator */
  ith: number | null;
  /** it called llama_decode */
  decodeCaller: boolean;
  /** "main", "worker 2", "thread 1234" */
  name: string;
  /** its comm, when a sched_switch named it */
  comm: string | null;
}

/** One llama_decode call. */
export interface Token {
  seq: number;
  tgid: number;
  tid: number;
  ctx: bigint;
  /**
   * what it computed, by content: prompt tokens (prefill), generated ones (decode), or both
   * (mixed); without a batch summary (older recordings), n_tokens > 1 is prefill
   */
  phase: Phase;
  nTokens: number;
  startNs: bigint;
  endNs: bigint;
  /** llama_decode's return value; null when its end was not recorded */
  ret: number | null;
  opsSampled: boolean;
  /** graph computations inside the call, in start order (sched graphs and their CPU graphs) */
  graphs: GraphRun[];
  /** MoE routing: layer -> one row of k expert ids per token of the batch */
  experts?: Map<number, number[][]>;
  /** what the call's batch held per sequence (recordings of ABI 4 and later) */
  batch?: TokenBatch;
  /** the call's part of each request it served (set with Run.requests) */
  steps?: RequestStep[];
}

/** What a request's tokens in one call were. */
export type StepKind = "prompt" | "decode" | "speculative";

/** A request's part of one llama_decode call. */
export interface RequestStep {
  request: Request;
  token: Token;
  kind: StepKind;
  /** its tokens in the call, and the outputs it asked for */
  nTokens: number;
  nOutputs: number;
  /** its first and last position; -1 when the batch gave none */
  posMin: number;
  posMax: number;
}

/**
 * One request: a sequence's work from its prompt to its last generated token (docs/trace-model.md
 * "Requests"), found from the batches' contents.
 */
export interface Request {
  /** index in Run.requests */
  id: number;
  tgid: number;
  /** the llama_context of its calls */
  ctx: bigint;
  seqId: number;
  /** start of its first call, end of its last */
  startNs: bigint;
  endNs: bigint;
  /** end of the call that produced its first output (its first token); null before that */
  firstOutputNs: bigint | null;
  /** prompt tokens evaluated */
  promptTokens: number;
  /** prompt tokens taken from the cache: its first position; null when the batch gave none */
  cachedTokens: number | null;
  /** tokens generated: one per output sampled */
  generatedTokens: number;
  /** the calls it took part in, in order */
  steps: RequestStep[];
  /** why its figures may fall short (a call not read whole, the recording ended during it) */
  incomplete: string | null;
}

/** A llama_decode call's batch, summed per sequence (the kernel's pi_batch). */
export interface TokenBatch {
  /** bpf/profinfer.h enum pi_batch_flags: which arrays the caller gave (abi/constants BatchFlag) */
  flags: number;
  /** tokens summed; fewer than the call's when it was beyond the per-call bound */
  tokensRead: number;
  /** token-sequence pairs of sequences beyond the per-call bound of sequences */
  tokensLost: number;
  seqs: BatchSequence[];
}

export interface GraphRun {
  /** index in Run.graphRuns */
  id: number;
  /**
   * sched: the scheduler's graph (all backends); split: one split handed to its backend
   * (ggml_backend_graph_compute_async, ABI 5), inside its sched graph; cpu: the CPU backend's
   * compute of a split (inside that split's run, or the sched graph's before ABI 5)
   */
  fn: "sched" | "split" | "cpu";
  /** a split's backend, place and copies (fn "split") */
  split?: SplitInfo;
  cgraph: bigint;
  signature: bigint;
  tgid: number;
  /** the thread that called the graph compute */
  tid: number;
  nNodes: number;
  /** cplan threads (CPU graphs); 0 when the event does not say */
  nThreads: number;
  startNs: bigint;
  endNs: bigint;
  ret: number | null;
  /** the graph this one runs inside (a CPU split inside the scheduler's compute) */
  parent: GraphRun | null;
  /** seq of the token it belongs to; null when no llama_decode contains it */
  tokenSeq: number | null;
  /** the DAG description it refers to (shared by every run of the same cgraph + signature) */
  snapshot: GraphSnapshot | null;
  /** operators were reconstructed for it (the innermost graph of a token whose ops were sampled) */
  opsRecorded: boolean;
  /** one per computed node (or fused group), in execution order */
  ops: OpRun[];
  /** per participating thread, its totals in this graph, by ith */
  threads: GraphThread[];
  /** no event was missing: every op has every thread, nothing had to be guessed beyond the rules */
  complete: boolean;
  /** why it is not complete, for people */
  problems: string[];
  /**
   * how many of `problems` its own begin and end events gave (the rest are its operators'):
   * what a graph span says when the call's operators are not exported
   */
  eventProblems: number;
}

/** A backend a run computed on: one device of one backend implementation. */
export interface Backend {
  /** index in Run.backends */
  id: number;
  /** as llama.cpp names it ("CPU", "BLAS", "Vulkan0"); "backend <id>" when nothing named it */
  name: string;
  /** its implementation, its registry's name ("CPU", "BLAS", "Vulkan"); null when not known */
  registry: string | null;
  /**
   * where the name came from: the build's device list (registry), the scheduler's names of the
   * tensors it copied to it (copies), the CPU graph it ran (cpu), nothing (none)
   */
  namedBy: "registry" | "copies" | "cpu" | "none";
  /** profinfer probes this implementation's own functions (discovery/backends.ts) */
  known: boolean;
  /** what profinfer measured of it beyond graph level (null: graph level only) */
  measures: string | null;
  /** what could not be seen of it, for people */
  unseen: string[];
  /** the ggml_backend_t objects (one per context using the device) */
  addresses: bigint[];
  /** its device and the device's get_name function (0n when not read) */
  device: bigint;
  deviceGetName: bigint;
  /** the library its get_name function lies in, when the run says */
  library: string | null;
}

/** A split: a run of a scheduler graph's nodes handed to one backend. */
export interface SplitInfo {
  backend: Backend;
  /** the scheduler graph it is part of; null when it ran outside one */
  sched: GraphRun | null;
  /** its position among that graph's splits, from 0 */
  index: number;
  /** its first node's index in the scheduler graph; -1 when unknown */
  firstNode: number;
  nNodes: number;
  /** its inputs copied to its backend before it was handed over (on its thread) */
  copies: TensorCopy[];
  /**
   * when the host saw it complete: at its return for a backend that computes before returning
   * (returned), else at the end of the first wait of the host for its backend after it
   * (synchronized), or not at all before its backend was given more work (unobserved: its end)
   */
  completeNs: bigint;
  completion: "returned" | "synchronized" | "unobserved";
  /** the waits of the host for its backend while it was pending */
  waits: BackendInterval[];
  /** its backend's own host-side work inside it (Vulkan: nodes recorded, submissions, fence waits) */
  calls: BackendInterval[];
}

/** A tensor copied to another backend's buffer (ggml_backend_tensor_copy, or an async copy). */
export interface TensorCopy {
  src: bigint;
  dst: bigint;
  srcName: string;
  /** the scheduler names a split's input "<backend>#<tensor>#<copy>" */
  dstName: string;
  /** ggml_nbytes of the source; null without the run's type sizes */
  bytes: number | null;
  startNs: bigint;
  endNs: bigint;
  tid: number;
  via: "sync" | "async";
  /** the backend it was copied to, when known */
  to: Backend | null;
}

/** An interval of the host's side of a backend's work: a wait, a submission, a node recorded. */
export interface BackendInterval {
  kind: "wait" | "submit" | "record" | "op" | "fence";
  tid: number;
  startNs: bigint;
  endNs: bigint;
  /** record: the node's index in its split; -1 otherwise */
  node: number;
}

export interface GraphThread {
  tid: number;
  ith: number | null;
  /** time inside operator intervals */
  computeNs: number;
  /** time in the barriers after operators */
  barrierWaitNs: number;
  offCpuNs: number;
  preemptedNs: number;
}

/** One computed node (or fused group of nodes) of one graph run. */
export interface OpRun {
  nodeIndex: number;
  tensor: TensorInfo;
  /** tensor.opLabel, or the fused group's labels joined with "+": "RMS_NORM+MUL" */
  label: string;
  /** the other nodes ggml computed in the same step (fusion), by node index */
  fusedWith?: number[];
  sources: DagSource[];
  /** its per-operator function was probed (an OP event names it) on at least one thread */
  visible: boolean;
  /** per thread, by ith */
  threads: OpThreadRun[];
  /** graph threads with no interval for this op (events lost) */
  missingTids: number[];
  /** earliest start and latest end over its threads; null when no thread has it */
  startNs: bigint | null;
  endNs: bigint | null;
  /** endNs - startNs, 0 when unknown */
  durationNs: number;
  /** what it moved and computed (trace/work.ts); absent when the run lacks ggml's type sizes */
  work?: OpWork;
}

/** The bytes an operator run moves and the operations it computes, from its tensors' shapes. */
export interface OpWork {
  /** read from its sources, each once, and written to its destination */
  bytes: number;
  /** arithmetic operations (a multiply-add is 2) */
  ops: number;
  /** the arithmetic peak it is measured against: int8 dot products (quantised matmuls) or f32 */
  kind: "int8" | "f32";
  /** the bytes rest on an assumption (MUL_MAT_ID without the routing's ids: distinct experts) */
  estimated: boolean;
}

export interface OpThreadRun extends OffCpuTarget {
  tid: number;
  ith: number | null;
  startNs: bigint;
  endNs: bigint;
  /** timed by the op's own OP events (false: by the barriers around it) */
  visible: boolean;
  /** the start is the graph's start: an unprobed first op whose thread start was not seen */
  startInferred: boolean;
  /** the ggml_barrier that follows the op on this thread */
  barrierStartNs: bigint | null;
  barrierEndNs: bigint | null;
  barrierWaitNs: number;
  /** barriers the op's own code passed (mul_mat's, mul_mat_id's) */
  innerBarrierWaitNs: number;
  offCpuNs: number;
  preemptedNs: number;
  /**
   * Counter deltas of this thread over this interval (event name -> scaled count), when the run
   * recorded counters and both readings were seen (a thread's first step of a graph that started
   * before any of its events was read: none).
   */
  counters?: Record<string, number>;
}

export interface RawInput {
  header: RunHeader;
  events: readonly ChunkEvent[];
  notes?: readonly NoteRecord[];
  truncatedAt?: number | null;
  path?: string | null;
}

/** ggml's op/type name tables for the binary that was recorded. */
export interface OpNaming {
  opNames: readonly string[];
  unaryOpNames: readonly string[];
  gluOpNames: readonly string[];
  typeNames: readonly string[];
}

/** One tensor as the TENSOR event described it, with names resolved. */
export interface TensorInfo {
  addr: bigint;
  name: string;
  /** ggml_tensor.op, an index into the header's opNames */
  op: number;
  /** the op's name as ggml prints it: "MUL_MAT", "UNARY" */
  opName: string;
  /** for UNARY / GLU, the sub-op named by op_params[0]: "SILU", "SWIGLU"; otherwise null */
  subOp: string | null;
  /** opName, or "OP:SUB" for UNARY/GLU: "UNARY:SILU" */
  opLabel: string;
  /** ggml_tensor.type and its name ("f32", "q4_0") */
  type: number;
  typeName: string;
  ne: number[];
  nb: number[];
  flags: number;
  /** source tensor addresses by slot, null for an empty slot; trailing empty slots dropped */
  src: (bigint | null)[];
  viewSrc: bigint | null;
  viewOffs: bigint;
  /** the model layer, from the name ("attn_norm-3", "blk.3.attn_q.weight", "cache_k_l3") */
  layer: number | null;
}

export type LeafKind = "weight" | "input" | "cache" | "other";

/** A tensor of the DAG: a node of the graph, or a leaf (a tensor nodes read but no node makes). */
export interface TensorRef {
  kind: "node" | "leaf";
  index: number;
}

export interface DagSource {
  slot: number;
  addr: bigint;
  /** the tensor in the slot (a view node, if the source is a view that is a node) */
  direct: TensorRef;
  /** who really produced the data: views followed to their root, a root the graph writes into
   * (KV cache) resolved to the last node writing a view of it before this one */
  producer: TensorRef;
}

export interface DagNode {
  index: number;
  tensor: TensorInfo;
  /** VIEW / RESHAPE / PERMUTE / TRANSPOSE: takes no compute time, ggml skips it */
  view: boolean;
  /** the CPU loop computes it: not an empty op, and the COMPUTE flag set where the build has it */
  computed: boolean;
  /** the root tensor this node views (following view_src), null when it views nothing */
  viewOf: TensorRef | null;
  sources: DagSource[];
}

export interface DagLeaf {
  index: number;
  tensor: TensorInfo;
  kind: LeafKind;
  /** whether the snapshot described it (false: only its address is known) */
  described: boolean;
}

export interface DagEdge {
  from: TensorRef;
  to: number;
  slot: number;
  /** set when `from` was reached through a view: the direct source tensor */
  via: TensorRef | null;
}

export interface Dag {
  nodes: DagNode[];
  leaves: DagLeaf[];
  /** one per node source, from the real producer (views resolved) */
  edges: DagEdge[];
  /** indices of the nodes the CPU loop computes, in graph order */
  computed: number[];
  nodeByAddr: Map<bigint, number>;
  /** nodes whose TENSOR description is missing (events dropped) */
  undescribedNodes: number;
}

/** A graph description: the node list of one (cgraph, signature) and its tensors. */
export interface GraphSnapshot {
  key: string;
  cgraph: bigint;
  signature: bigint;
  nNodes: number;
  dag: Dag;
  /** graph runs that referred to it; reuses = uses - 1 */
  uses: number;
  /** all node chunks and all node descriptions arrived */
  complete: boolean;
}

/** The task that took the CPU from a preempted target thread. */
export interface Preemptor {
  comm: string;
  tgid: number;
  tid: number;
}

/** A target thread off CPU from `startNs` until it ran again at `endNs`. */
export interface OffCpuInterval {
  tid: number;
  startNs: bigint;
  endNs: bigint;
  /** the CPU it left */
  cpu: number;
  /** prev_state 0: it was runnable and another task took the CPU (interference) */
  preempted: boolean;
  prevState: number;
  /** who took the CPU, when preempted */
  by: Preemptor | null;
  /** the recording ended before it ran again (`endNs` is the run's last event) */
  open: boolean;
}

/** Anything with a thread interval that off-CPU time can be charged to. */
export interface OffCpuTarget {
  startNs: bigint;
  endNs: bigint;
  offCpuNs: number;
  preemptedNs: number;
}
