// SPDX-License-Identifier: Apache-2.0
// The span model of a run (docs/spans.md): a trace per request and a trace per llama_decode call.
// A request's trace is its root span (`text_completion <model>`, the GenAI conventions) with one
// child per step it took part in (a prompt chunk, a decode step, a speculative verification); a
// call's trace is llama_decode > graph_compute (scheduler graph > CPU graph) > one span per
// operator run. The work a call shares between requests is exported once, in the call's trace,
// and joined to each request by span links both ways: a step links to its call, a call to each
// step it served. Spans are plain records with wall-clock BigInt ns and deterministic ids, so that
// the live export, the traces.otlp.jsonl file and a replay produce the very same spans, and a
// span re-sent after an outage carries the id it had the first time.
import { backendStallRatio, type BackendStallFormula } from "../../trace/backendStall.js";
import { createHash } from "node:crypto";
import { clockFrom, toWallClockNs } from "../../trace/clock.js";
import type { RunHeader } from "../../trace/header.js";
import type { RunClock } from "../../trace/types.js";
import { displayOpName } from "../../trace/dag.js";
import type { Dag } from "../../trace/types.js";
import type {
  GraphRun,
  OpRun,
  OpThreadRun,
  Request,
  Run,
  StepKind,
  Token,
} from "../../trace/types.js";
import type { OffCpuInterval } from "../../trace/types.js";
import {
  REQUEST_IDLE_NS,
  RequestTracker,
  callOf,
  recordingCutOff,
  requestTpotNs,
  requestTtftNs,
} from "../../trace/requests.js";
import * as C from "@profinfer/contract";
import type { MachineProfile } from "@profinfer/contract";
import { RooflineAcc } from "../roofline.js";
import { modelNameOfRun } from "../../trace/modelName.js";
import type { AttributeValue } from "@opentelemetry/api";
import { RecordSink, type AttributeGroup, type SpanRecord, type SpanSink } from "./spanSink.js";

export type { SpanEventRecord, SpanLinkRecord, SpanRecord } from "./spanSink.js";

/** Which llama_decode calls get operator spans. */
export type OpSampling =
  | { kind: "all" }
  | { kind: "none" }
  /** 1 in N calls: those whose seq is a multiple of N, and every call with prompt tokens */
  | { kind: "every"; n: number }
  /** the calls that are among the first K steps of a request they serve */
  | { kind: "first"; k: number };

/**
 * Operator spans for every call with prompt tokens and 1 in 16 of the others: they are 95% of
 * the bytes, and Tempo's default ingestion rate is a bound too (docs/spans.md "Volume" has the
 * sizes measured).
 */
export const DEFAULT_OP_SAMPLING: OpSampling = { kind: "every", n: 16 };

export function parseOpSampling(spec: string): OpSampling {
  const s = spec.trim().toLowerCase();
  if (s === "all") return { kind: "all" };
  if (s === "none") return { kind: "none" };
  const m = /^(every|first):(\d+)$/.exec(s);
  if (m && Number(m[2]) >= 1 && Number.isSafeInteger(Number(m[2]))) {
    return m[1] === "every"
      ? { kind: "every", n: Number(m[2]) }
      : { kind: "first", k: Number(m[2]) };
  }
  throw new Error(
    `'${spec}' is not an operator-span sample: use all, none, every:N (the llama_decode calls whose seq is a multiple of N, and those with prompt tokens) or first:K (the calls among a request's first K steps)`,
  );
}

/** The spec parseOpSampling reads back as `s`. */
export function formatOpSampling(s: OpSampling): string {
  switch (s.kind) {
    case "all":
    case "none":
      return s.kind;
    case "every":
      return `every:${s.n}`;
    case "first":
      return `first:${s.k}`;
  }
}

/**
 * Whether a call gets operator spans; `indices` are its steps' positions in their requests
 * (stepIndices).
 */
export function sampled(s: OpSampling, call: Token, indices: readonly number[]): boolean {
  switch (s.kind) {
    case "all":
      return true;
    case "none":
      return false;
    case "every":
      return call.seq % s.n === 0 || call.phase !== "decode";
    case "first":
      return indices.some((i) => i < s.k);
  }
}

/** Each step of a call (its steps and phase set by a request tracker): its place in its request. */
export function stepIndices(call: Token): number[] {
  return (call.steps ?? []).map((s) => s.request.steps.lastIndexOf(s));
}

/** The step span's name: what the request's tokens in the call were. */
const STEP_NAMES: Record<StepKind, C.StepSpanName> = {
  prompt: C.SPAN_STEP_PREFILL,
  decode: C.SPAN_STEP_DECODE,
  speculative: C.SPAN_STEP_SPECULATIVE,
};

/** Span id kinds (the top two bits): requests and their steps, calls, graphs, operators. */
const SPAN_KIND_REQUEST = 0n;
const SPAN_KIND_TOKEN = 1n;
const SPAN_KIND_GRAPH = 2n;
const SPAN_KIND_OP = 3n;
/** the graph field of a request kind id: its root span, or one of its steps */
const REQUEST_ROOT = 0;
const REQUEST_STEP = 1;

/**
 * Deterministic ids: the same run gives the same ids, wherever and whenever spans are built. A
 * trace id is a hash of the run and the request (its sequence and first call) or the call; a
 * span id packs what it is (kind, call seq, graph within the call or root/step, node or sequence
 * id) into 64 bits, XORed with a per-run, per-process salt: unique within a run by construction,
 * different between runs.
 */
export class SpanIds {
  private readonly salts = new Map<number, bigint>();
  constructor(readonly runKey: string) {}

  /** The ids of a run: its pid and clock pair (the header's), the same live and replayed. */
  static forHeader(header: RunHeader): SpanIds {
    const clock = clockFrom(header);
    return new SpanIds(`${header.target.pid}:${clock.realtimeNs}:${clock.monotonicNs}`);
  }

  static forRun(run: Run): SpanIds {
    return SpanIds.forHeader(run.header);
  }

  private hash(text: string): string {
    return createHash("sha256").update(`${this.runKey}|${text}`).digest("hex").slice(0, 32);
  }

  /** The trace of one llama_decode call. */
  callTrace(tgid: number, ctx: bigint, seq: number): string {
    return this.hash(`${tgid}|${ctx}|${seq}`);
  }

  /** The trace of a request: its sequence and its first call. */
  requestTrace(tgid: number, ctx: bigint, seqId: number, firstSeq: number): string {
    return this.hash(`request|${tgid}|${ctx}|${seqId}|${firstSeq}`);
  }

  private salt(tgid: number): bigint {
    let salt = this.salts.get(tgid);
    if (salt === undefined) {
      const digest = createHash("sha256").update(`${this.runKey}|span|${tgid}`).digest();
      salt = digest.readBigUInt64BE(0);
      this.salts.set(tgid, salt);
    }
    return salt;
  }

  span(kind: bigint, tgid: number, seq: number, graph: number, node: number): string {
    // a call computes a graph per split (hundreds where BLAS takes every large matmul of a
    // prompt): 14 bits of graph, 18 of node (PI_MAX_GRAPH_NODES is 2^14)
    const packed =
      (kind << 62n) |
      ((BigInt(seq) & 0x3fffffffn) << 32n) |
      ((BigInt(graph) & 0x3fffn) << 18n) |
      BigInt(node & 0x3ffff);
    let id = packed ^ this.salt(tgid);
    if (id === 0n) id = 1n; // the all-zero id is invalid in OTLP
    return id.toString(16).padStart(16, "0");
  }

  /** A request's root span: the seq of its first call and its sequence id. */
  requestSpan(tgid: number, firstSeq: number, seqId: number): string {
    return this.span(SPAN_KIND_REQUEST, tgid, firstSeq, REQUEST_ROOT, seqId);
  }

  /** A request's step in call `seq`. */
  stepSpan(tgid: number, seq: number, seqId: number): string {
    return this.span(SPAN_KIND_REQUEST, tgid, seq, REQUEST_STEP, seqId);
  }

  callSpan(tgid: number, seq: number): string {
    return this.span(SPAN_KIND_TOKEN, tgid, seq, 0, 0);
  }

  /** The span of the graph at `index` of call `seq`'s graphs. */
  graphSpan(tgid: number, seq: number, index: number): string {
    return this.span(SPAN_KIND_GRAPH, tgid, seq, index, 0);
  }
}

export interface SpanOptions {
  opSampling: OpSampling;
  /** only these graphs get operator spans, whatever the sampling says (the report's choice) */
  opGraphs?: ReadonlySet<GraphRun>;
  /**
   * only these calls get spans (their own trace and their steps), every call still following
   * the requests (the report's sample); root spans of requests are given to `requests`' choice
   */
  calls?: (token: Token) => boolean;
  /** which ended requests get their root span (default: all) */
  requests?: (request: Request) => boolean;
  /** gen_ai.request.model: the model's name */
  model: string;
  /** a request whose sequence had no call for this long (ns) has ended */
  requestIdleNs: bigint;
}

/** The ids of a request's trace, from its start to its root span. */
interface RequestIds {
  traceId: string;
  spanId: string;
}

/** Source names, ops and producing nodes of every node of a DAG, computed once per snapshot. */
const sourceCache = new WeakMap<
  Dag,
  Map<number, { names: string[]; ops: string[]; producers: number[] }>
>();

/** An operator span's attributes that its graph's node gives, kept per node. */
interface NodeAttributes extends AttributeGroup {
  label: string;
  backend: string | null;
  fusedWith: readonly number[] | undefined;
}

const nodeAttributeCache = new WeakMap<Dag, Map<number, NodeAttributes>>();

function sameIndexes(a: readonly number[] | undefined, b: readonly number[] | undefined): boolean {
  if (a === b) return true;
  if (!a || !b || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * The op's name, backend, tensor, node and layer, its sources and the names of the nodes fused
 * into it: the same every run of its node with the same fusion, so the span sinks may encode them
 * once (an operator span's attributes are most of its cost).
 */
function nodeAttributes(
  dag: Dag,
  op: OpRun,
  name: string,
  backend: string | null,
  sources: { names: string[]; ops: string[] },
): NodeAttributes {
  let perDag = nodeAttributeCache.get(dag);
  if (!perDag) nodeAttributeCache.set(dag, (perDag = new Map()));
  const kept = perDag.get(op.nodeIndex);
  if (
    kept &&
    kept.label === op.label &&
    kept.backend === backend &&
    sameIndexes(kept.fusedWith, op.fusedWith)
  )
    return kept;
  const t = op.tensor;
  const entries: [string, AttributeValue][] = [[C.ATTR_OP, name]];
  if (backend !== null) entries.push([C.ATTR_BACKEND, backend]);
  entries.push(
    [C.ATTR_TENSOR_NAME, t.name],
    [C.ATTR_TENSOR_SHAPE, t.ne],
    [C.ATTR_TENSOR_TYPE, t.typeName],
    [C.ATTR_NODE_INDEX, op.nodeIndex],
  );
  if (t.layer !== null) entries.push([C.ATTR_LAYER, t.layer]);
  entries.push([C.ATTR_SRC_NAMES, sources.names], [C.ATTR_SRC_OPS, sources.ops]);
  if (op.fusedWith && op.fusedWith.length > 0) {
    entries.push([
      C.ATTR_FUSED_NAMES,
      [t.name, ...op.fusedWith.map((i) => dag.nodes[i]?.tensor.name ?? "")],
    ]);
  }
  const group: NodeAttributes = {
    label: op.label,
    backend,
    fusedWith: op.fusedWith ? [...op.fusedWith] : undefined,
    entries,
  };
  perDag.set(op.nodeIndex, group);
  return group;
}

/**
 * The sources of an operator (every node of a fused group; what the group makes itself is not a
 * source), each as the tensor that really produced it: through views, the node that last wrote
 * the viewed tensor (the set_rows that stored into a KV cache), else the tensor viewed; a leaf
 * (weight, input) is itself. `producers` are the producing nodes (-1: a leaf or a node no step
 * computes), so that a consumer can rebuild the DAG's edges from spans alone.
 */
function sourcesOf(dag: Dag, op: OpRun) {
  let perDag = sourceCache.get(dag);
  if (!perDag) sourceCache.set(dag, (perDag = new Map()));
  let entry = perDag.get(op.nodeIndex);
  if (!entry) {
    const members = [op.nodeIndex, ...(op.fusedWith ?? [])];
    const inside = new Set(members);
    const names: string[] = [];
    const ops: string[] = [];
    const producers: number[] = [];
    for (const m of members) {
      for (const s of dag.nodes[m]?.sources ?? []) {
        const ref = s.producer;
        if (ref.kind === "node" && inside.has(ref.index)) continue;
        if (ref.kind === "node") {
          const node = dag.nodes[ref.index]!;
          names.push(node.tensor.name);
          ops.push(node.computed ? displayOpName(node.tensor.opLabel) : "none");
          producers.push(node.computed ? ref.index : -1);
        } else {
          names.push(dag.leaves[ref.index]?.tensor.name ?? "");
          ops.push("none");
          producers.push(-1);
        }
      }
    }
    entry = { names, ops, producers };
    perDag.set(op.nodeIndex, entry);
  }
  return entry;
}

/** Each computed node of a graph run -> the node index of the operator (step) that computed it. */
function stepOfNode(g: GraphRun): Map<number, number> {
  const steps = new Map<number, number>();
  for (const op of g.ops) {
    steps.set(op.nodeIndex, op.nodeIndex);
    for (const i of op.fusedWith ?? []) steps.set(i, op.nodeIndex);
  }
  return steps;
}

/** The backend a graph run computed on: its split's, or the CPU's for a CPU graph; null for the scheduler's. */
function backendOf(g: GraphRun): string | null {
  if (g.split) return g.split.backend.name;
  if (g.fn === "cpu") return g.parent?.split?.backend.name ?? "CPU";
  return null;
}

/** The ggml.graph.signature of a graph run: its description's signature, in hex. */
export function graphSignature(g: GraphRun): string {
  return `0x${g.signature.toString(16)}`;
}

/** Off-CPU intervals of a thread that overlap [start, end] (intervals sorted by start). */
function overlapping(intervals: readonly OffCpuInterval[], start: bigint, end: bigint) {
  let lo = 0;
  let hi = intervals.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (intervals[mid]!.endNs <= start) lo = mid + 1;
    else hi = mid;
  }
  const out: OffCpuInterval[] = [];
  for (let i = lo; i < intervals.length && intervals[i]!.startNs < end; i++) {
    if (intervals[i]!.endNs > start) out.push(intervals[i]!);
  }
  return out;
}

/**
 * Builds the spans of one run, or of consecutive chunks of a live one: the builder follows the
 * requests across the calls it is given (its own RequestTracker, fed every call in start order),
 * so that chunk after chunk it forms the requests, steps and phases the whole run gives.
 */
export class SpanBuilder {
  private readonly requests = new RequestTracker();
  private readonly open = new Map<Request, RequestIds>();
  private readonly clock: RunClock;

  constructor(
    private readonly ids: SpanIds,
    clock: RunClock,
    private readonly options: SpanOptions,
  ) {
    this.clock = clock;
  }

  /** The model name request spans carry (known once the model note arrives). */
  setModel(name: string): void {
    this.options.model = name;
  }

  /** The operator-span sampling from now on (the live export's governor lowers it). */
  setOpSampling(sampling: OpSampling): void {
    this.options.opSampling = sampling;
  }

  /** The graphs that get operator spans from now on, whatever the sampling says. */
  setOpGraphs(graphs: ReadonlySet<GraphRun>): void {
    this.options.opGraphs = graphs;
  }

  private wall(ts: bigint): bigint {
    return toWallClockNs(this.clock, ts);
  }

  /**
   * The spans of `tokens` (in start order) of `run`, written to `sink`: each call's trace, the
   * step of each request it served, and the root spans of the requests that ended before it
   * (idle for the bound, or followed by a new request on their sequence).
   */
  addTokens(run: Run, tokens: readonly Token[], sink: SpanSink): void {
    for (const token of tokens) {
      this.endIdle(token.startNs, sink);
      const call = callOf(token);
      const { started, ended } = this.requests.add(call);
      for (const r of ended) this.endRequest(r, sink);
      for (const r of started) {
        const firstSeq = r.steps[0]?.token.seq ?? call.seq;
        this.open.set(r, {
          traceId: this.ids.requestTrace(r.tgid, r.ctx, r.seqId, firstSeq),
          spanId: this.ids.requestSpan(r.tgid, firstSeq, r.seqId),
        });
      }
      if (!this.options.calls || this.options.calls(token)) this.addCall(run, token, call, sink);
    }
  }

  private endRequest(r: Request, sink: SpanSink): void {
    const ids = this.idsOf(r);
    this.open.delete(r);
    if (!this.options.requests || this.options.requests(r)) this.requestSpan(r, ids, sink);
  }

  /**
   * Ends the requests whose sequence had no call for the idle bound by `ns`, a time before which
   * every call has been given (a live export's cut): their root spans, written to `sink`.
   */
  endIdle(ns: bigint, sink: SpanSink): void {
    for (const r of this.requests.endIdle(ns - this.options.requestIdleNs))
      this.endRequest(r, sink);
  }

  /**
   * The end of the recording, at `stoppedNs` (the end note's; null when unknown), after the
   * target's `exit` (its exit note; null: tracing stopped while it ran): the requests idle by then
   * end as idle, every other one as cut off or not by the end (recordingCutOff).
   */
  finish(stoppedNs: bigint | null, exit: { signal: string | null } | null, sink: SpanSink): void {
    if (stoppedNs !== null) this.endIdle(stoppedNs, sink);
    for (const r of this.requests.endAll(recordingCutOff(stoppedNs, exit)))
      this.endRequest(r, sink);
  }

  private idsOf(r: Request): RequestIds {
    const ids = this.open.get(r);
    if (!ids) throw new Error(`request ${r.id} (sequence ${r.seqId}) was never started`);
    return ids;
  }

  /** The root span of a request that has ended. */
  private requestSpan(r: Request, ids: RequestIds, sink: SpanSink): void {
    let mine = 0;
    let all = 0;
    for (const step of r.steps) {
      mine += step.nTokens;
      all += step.token.nTokens;
    }
    sink.start(
      ids.traceId,
      ids.spanId,
      null,
      C.requestSpanName(this.options.model),
      this.wall(r.startNs),
      this.wall(r.endNs),
    );
    sink.attribute(C.ATTR_GEN_AI_OPERATION_NAME, C.GEN_AI_OPERATION_TEXT_COMPLETION);
    sink.attribute(C.ATTR_GEN_AI_PROVIDER_NAME, C.GEN_AI_PROVIDER_LLAMA_CPP);
    sink.attribute(C.ATTR_GEN_AI_REQUEST_MODEL, this.options.model);
    // the GenAI conventions count cached prompt tokens in the input tokens
    sink.attribute(C.ATTR_GEN_AI_USAGE_INPUT_TOKENS, r.promptTokens + (r.cachedTokens ?? 0));
    sink.attribute(C.ATTR_GEN_AI_USAGE_OUTPUT_TOKENS, r.generatedTokens);
    sink.attribute(C.ATTR_REQUEST_PROMPT_TOKENS, r.promptTokens);
    sink.attribute(C.ATTR_REQUEST_SEQ_ID, r.seqId);
    sink.attribute(C.ATTR_REQUEST_CONTEXT, `0x${r.ctx.toString(16)}`);
    sink.attribute(C.ATTR_REQUEST_FIRST_SEQ, r.steps[0]!.token.seq);
    sink.attribute(C.ATTR_REQUEST_LAST_SEQ, r.steps.at(-1)!.token.seq);
    sink.attribute(C.ATTR_REQUEST_STEPS, r.steps.length);
    sink.attribute(C.ATTR_REQUEST_BATCH_SHARE, all > 0 ? mine / all : 1);
    if (r.cachedTokens !== null)
      sink.attribute(C.ATTR_GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, r.cachedTokens);
    const ttft = requestTtftNs(r);
    if (ttft !== null) sink.attribute(C.ATTR_GEN_AI_SERVER_TIME_TO_FIRST_TOKEN, ttft / 1e9);
    const tpot = requestTpotNs(r);
    if (tpot !== null) sink.attribute(C.ATTR_GEN_AI_SERVER_TIME_PER_OUTPUT_TOKEN, tpot / 1e9);
    if (r.incomplete !== null) sink.error(r.incomplete);
    sink.end();
  }

  /** Why a call's span is an error, if it is. */
  private static callError(token: Token): string | null {
    if (token.ret === null) return "the end of this llama_decode call was not recorded";
    if (token.ret < 0) return `llama_decode returned ${token.ret}`;
    return null;
  }

  /**
   * One call: its own trace (llama_decode > graphs > operators) and its step in the trace of
   * each request it served, linked both ways. `call` is the tracker's copy, with steps and phase.
   * Written in the order the spans are whole: the steps, each graph's operators, the call, its
   * graphs (whose operator counts are known by then).
   */
  private addCall(run: Run, token: Token, call: Token, sink: SpanSink): void {
    const ids = this.ids;
    const traceId = ids.callTrace(token.tgid, token.ctx, token.seq);
    const tokenSpanId = ids.callSpan(token.tgid, token.seq);
    const steps = call.steps ?? [];
    const indices = stepIndices(call);
    const opsWanted = sampled(this.options.opSampling, call, indices);
    const error = SpanBuilder.callError(token);
    const startNs = this.wall(token.startNs);
    const endNs = this.wall(token.endNs);
    const stepIds: { traceId: string; spanId: string }[] = [];
    steps.forEach((step, i) => {
      const request = this.idsOf(step.request);
      const spanId = ids.stepSpan(token.tgid, token.seq, step.request.seqId);
      stepIds.push({ traceId: request.traceId, spanId });
      sink.start(request.traceId, spanId, request.spanId, STEP_NAMES[step.kind], startNs, endNs);
      sink.attribute(C.ATTR_STEP_INDEX, indices[i]!);
      sink.attribute(C.ATTR_STEP_TOKENS, step.nTokens);
      sink.attribute(C.ATTR_STEP_OUTPUTS, step.nOutputs);
      sink.attribute(C.ATTR_STEP_SHARE, token.nTokens > 0 ? step.nTokens / token.nTokens : 1);
      sink.attribute(C.ATTR_TOKEN_SEQ, token.seq);
      sink.attribute(C.ATTR_TOKEN_N_TOKENS, token.nTokens);
      sink.attribute(C.ATTR_TOKEN_REQUESTS, steps.length);
      if (step.posMin >= 0) sink.attribute(C.ATTR_STEP_POS_MIN, step.posMin);
      if (step.posMax >= 0) sink.attribute(C.ATTR_STEP_POS_MAX, step.posMax);
      sink.link(traceId, tokenSpanId);
      if (error !== null) sink.error(error);
      sink.end();
    });
    const graphSpanIds = new Map<GraphRun, string>();
    const graphOps: number[] = [];
    token.graphs.forEach((g, gi) => {
      const spanId = ids.graphSpan(token.tgid, token.seq, gi);
      graphSpanIds.set(g, spanId);
      let ops = 0;
      if (this.opsWanted(g, opsWanted) && g.opsRecorded && g.snapshot) {
        const nodeSteps = stepOfNode(g);
        for (const op of g.ops) {
          if (op.startNs === null || op.endNs === null) continue;
          this.opSpan(run, token, gi, g, op, nodeSteps, traceId, spanId, sink);
          ops++;
        }
      }
      graphOps.push(ops);
    });
    sink.start(traceId, tokenSpanId, null, C.SPAN_TOKEN, startNs, endNs);
    sink.attribute(C.ATTR_TOKEN_SEQ, token.seq);
    sink.attribute(C.ATTR_TOKEN_PHASE, call.phase);
    sink.attribute(C.ATTR_TOKEN_N_TOKENS, token.nTokens);
    sink.attribute(C.ATTR_TOKEN_REQUESTS, steps.length);
    sink.attribute(
      C.ATTR_TOKEN_OPS_EXPORTED,
      graphOps.some((n) => n > 0),
    );
    sink.attribute(C.ATTR_TOKEN_OP_SAMPLING, this.samplingSpec());
    sink.attribute(C.ATTR_TOKEN_COMPLETE, token.ret !== null);
    sink.attribute(C.ATTR_THREAD_ID, token.tid);
    if (token.ret !== null) sink.attribute(C.ATTR_TOKEN_RET, token.ret);
    if (token.experts) {
      for (const [layer, rows] of token.experts) {
        const k = rows.find((r) => r)?.length ?? 0;
        sink.event(C.EVENT_MOE_ROUTE, startNs);
        sink.attribute(C.ATTR_LAYER, layer);
        sink.attribute(C.ATTR_MOE_K, k);
        // rows of k ids, one per token of the batch, row-major (a lost row reads as -1s)
        sink.attribute(
          C.ATTR_MOE_EXPERTS,
          Array.from(rows, (r) => r ?? new Array<number>(k).fill(-1)).flat(),
        );
      }
    }
    steps.forEach((step, i) => {
      sink.link(stepIds[i]!.traceId, stepIds[i]!.spanId);
      sink.attribute(C.ATTR_REQUEST_SEQ_ID, step.request.seqId);
      sink.attribute(C.ATTR_STEP_KIND, STEP_NAMES[step.kind]);
      sink.attribute(C.ATTR_STEP_TOKENS, step.nTokens);
    });
    if (error !== null) sink.error(error);
    sink.end();
    token.graphs.forEach((g, gi) => {
      const parent = (g.parent && graphSpanIds.get(g.parent)) || tokenSpanId;
      // without its operators, a graph span says what its own events say (the live export does
      // not rebuild the operators of the calls it sends none of)
      const problems = this.opsWanted(g, opsWanted)
        ? g.problems
        : g.problems.slice(0, g.eventProblems);
      sink.start(
        traceId,
        graphSpanIds.get(g)!,
        parent,
        C.SPAN_GRAPH,
        this.wall(g.startNs),
        this.wall(g.endNs),
      );
      sink.attribute(C.ATTR_GRAPH_NODES, g.nNodes);
      sink.attribute(C.ATTR_GRAPH_FN, g.fn);
      sink.attribute(C.ATTR_GRAPH_COMPLETE, problems.length === 0);
      sink.attribute(C.ATTR_GRAPH_SIGNATURE, graphSignature(g));
      // the scheduler's graph spans every backend; each split names its own, and a CPU graph
      // computes a split of the CPU backend
      const backend = backendOf(g);
      if (backend !== null) sink.attribute(C.ATTR_BACKEND, backend);
      const split = g.split;
      if (split) {
        sink.attribute(C.ATTR_SPLIT_INDEX, split.index);
        sink.attribute(C.ATTR_SPLIT_FIRST_NODE, split.firstNode);
        sink.attribute(C.ATTR_SPLIT_COMPLETION, split.completion);
        sink.attribute(C.ATTR_SPLIT_COMPLETE_NS, Number(split.completeNs - g.startNs));
        sink.attribute(C.ATTR_SPLIT_COPIES, split.copies.length);
        sink.attribute(
          C.ATTR_SPLIT_COPY_BYTES,
          split.copies.reduce((n, c) => n + (c.bytes ?? 0), 0),
        );
        sink.attribute(
          C.ATTR_BACKEND_MEASURED,
          split.backend.measures ??
            "graph level only: splits, copies and waits, seen from the host",
        );
        if (split.backend.unseen.length > 0)
          sink.attribute(C.ATTR_BACKEND_NOT_SEEN, [...split.backend.unseen]);
      }
      if (g.nThreads > 0) sink.attribute(C.ATTR_GRAPH_THREADS, g.nThreads);
      if (problems.length > 0) sink.attribute(C.ATTR_GRAPH_PROBLEMS, [...problems]);
      sink.attribute(C.ATTR_GRAPH_OPS, graphOps[gi]!);
      sink.end();
    });
  }

  private spec: [OpSampling, string] | null = null;
  /** The sampling's spec, formatted once per sampling. */
  private samplingSpec(): string {
    const s = this.options.opSampling;
    if (this.spec?.[0] !== s) this.spec = [s, formatOpSampling(s)];
    return this.spec[1];
  }

  /** Whether graph `g` of a call gets operator spans (the report's choice, else the sampling). */
  private opsWanted(g: GraphRun, sampledCall: boolean): boolean {
    return this.options.opGraphs ? this.options.opGraphs.has(g) : sampledCall;
  }

  private opSpan(
    run: Run,
    token: Token,
    graphIndex: number,
    g: GraphRun,
    op: OpRun,
    steps: ReadonlyMap<number, number>,
    traceId: string,
    parentSpanId: string,
    sink: SpanSink,
  ): void {
    const dag = g.snapshot!.dag;
    const name = displayOpName(op.label);
    const opStart = op.startNs!;
    sink.start(
      traceId,
      this.ids.span(SPAN_KIND_OP, token.tgid, token.seq, graphIndex, op.nodeIndex),
      parentSpanId,
      name,
      this.wall(opStart),
      this.wall(op.endNs!),
    );
    const sources = sourcesOf(dag, op);
    sink.attributes(nodeAttributes(dag, op, name, backendOf(g), sources));
    sink.attribute(C.ATTR_OP_PROBED, op.visible);
    sink.attribute(
      C.ATTR_SRC_NODES,
      sources.producers.map((n) => (n < 0 ? -1 : (steps.get(n) ?? -1))),
    );
    const threads = op.threads;
    sink.attribute(C.ATTR_THREADS, threads.length);
    if (threads.length > 0) {
      let slowest = 0;
      let fastest = Number.MAX_SAFE_INTEGER;
      let total = 0;
      let barrier = 0;
      let inner = 0;
      let offCpu = 0;
      let preempted = 0;
      let counters: Record<string, number> | null = null;
      for (const t of threads) {
        const d = Number(t.endNs - t.startNs);
        if (d > slowest) slowest = d;
        if (d < fastest) fastest = d;
        total += d;
        barrier += t.barrierWaitNs;
        inner += t.innerBarrierWaitNs;
        offCpu += t.offCpuNs;
        preempted += t.preemptedNs;
        if (t.counters) {
          counters ??= {};
          for (const [event, value] of Object.entries(t.counters))
            counters[event] = (counters[event] ?? 0) + value;
        }
      }
      sink.attribute(C.ATTR_THREAD_SLOWEST_NS, slowest);
      sink.attribute(C.ATTR_THREAD_FASTEST_NS, fastest);
      sink.attribute(C.ATTR_THREAD_IMBALANCE, total > 0 ? slowest / (total / threads.length) : 1);
      sink.attribute(C.ATTR_BARRIER_WAIT_NS, barrier);
      if (inner > 0) sink.attribute(C.ATTR_INNER_BARRIER_WAIT_NS, inner);
      if (offCpu > 0) sink.attribute(C.ATTR_OFF_CPU_NS, offCpu);
      if (preempted > 0) sink.attribute(C.ATTR_PREEMPTED_NS, preempted);
      if (counters) counterAttributes(sink, counters, run.backendStall ?? null);
    }
    if (op.work) rooflineAttributes(sink, op, run.header.machine ?? null);
    for (const t of threads) {
      sink.event(C.EVENT_THREAD, this.wall(t.startNs));
      sink.attribute(C.ATTR_THREAD_ID, t.tid);
      sink.attribute(C.ATTR_THREAD_START, Number(t.startNs - opStart));
      sink.attribute(C.ATTR_THREAD_END, Number(t.endNs - opStart));
      sink.attribute(C.ATTR_THREAD_BARRIER_WAIT_NS, t.barrierWaitNs);
      if (t.ith !== null) sink.attribute(C.ATTR_THREAD_ITH, t.ith);
      if (t.offCpuNs > 0) this.offCpuEvents(run, t, sink);
    }
    sink.end();
  }

  private offCpuEvents(run: Run, t: OpThreadRun, sink: SpanSink): void {
    const intervals = run.offCpu.get(t.tid);
    if (!intervals) return;
    for (const iv of overlapping(intervals, t.startNs, t.endNs)) {
      const start = iv.startNs > t.startNs ? iv.startNs : t.startNs;
      const end = iv.endNs < t.endNs ? iv.endNs : t.endNs;
      sink.event(C.EVENT_OFF_CPU, this.wall(start));
      sink.attribute(C.ATTR_THREAD_ID, t.tid);
      sink.attribute(C.ATTR_OFF_CPU_DURATION_NS, Number(end - start));
      sink.attribute(C.ATTR_OFF_CPU_PREEMPTED, iv.preempted);
      sink.attribute(C.ATTR_CPU_ID, iv.cpu);
      if (iv.by) sink.attribute(C.ATTR_OFF_CPU_BY, `${iv.by.comm} (${iv.by.tgid}/${iv.by.tid})`);
    }
  }
}

/** The op's bytes and operations, and where this run of it sits on the machine's roofline. */
function rooflineAttributes(sink: SpanSink, op: OpRun, machine: MachineProfile | null): void {
  sink.attribute(C.ATTR_OP_BYTES, op.work!.bytes);
  sink.attribute(C.ATTR_OP_OPERATIONS, op.work!.ops);
  if (!machine || op.durationNs <= 0) return;
  const roof = new RooflineAcc(machine);
  roof.add(op);
  const figures = roof.figures();
  if (!figures) return;
  sink.attribute(C.ATTR_ROOFLINE_BANDWIDTH_SHARE, figures.bandwidthShare!);
  sink.attribute(C.ATTR_ROOFLINE_COMPUTE_SHARE, figures.computeShare!);
  sink.attribute(C.ATTR_ROOFLINE_CLASS, figures.class!);
}

/** Counter deltas, and the ratios they allow, as ggml.counter.<event>, ggml.ipc, ... */
function counterAttributes(
  sink: SpanSink,
  counters: Record<string, number>,
  stall: BackendStallFormula | null,
): void {
  for (const [event, value] of Object.entries(counters))
    sink.attribute(`${C.ATTR_COUNTER_PREFIX}${event}`, value);
  const cycles = counters["cycles"];
  const instructions = counters["instructions"];
  if (cycles && cycles > 0 && instructions !== undefined)
    sink.attribute(C.ATTR_IPC, instructions / cycles);
  const stalled = backendStallRatio(stall, counters);
  if (stalled !== undefined) sink.attribute(C.ATTR_BACKEND_STALL_RATIO, stalled);
}

export interface RunSpanOptions {
  /** only these graphs get operator spans, whatever the sampling says (the report's choice) */
  opGraphs?: ReadonlySet<GraphRun>;
  /** the idle bound that ends a request (default REQUEST_IDLE_NS) */
  requestIdleNs?: bigint;
}

/**
 * Every span of a whole run, in the order of its calls, each request's root span where it ended;
 * the requests still open end with the recording (its end note's time).
 */
export function buildRunSpans(
  run: Run,
  opSampling: OpSampling,
  options: RunSpanOptions = {},
): SpanRecord[] {
  const builder = new SpanBuilder(SpanIds.forRun(run), run.clock, {
    opSampling,
    model: modelNameOfRun(run.header, run.notes) ?? "unknown",
    requestIdleNs: options.requestIdleNs ?? REQUEST_IDLE_NS,
    ...(options.opGraphs ? { opGraphs: options.opGraphs } : {}),
  });
  const sink = new RecordSink();
  builder.addTokens(run, run.tokens, sink);
  builder.finish(run.stoppedNs, run.exit, sink);
  return sink.records;
}
