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
import type { AttributeValue, Attributes } from "@opentelemetry/api";
import { toWallClockNs } from "../../trace/clock.js";
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
  recordingCutOff,
  requestTpotNs,
  requestTtftNs,
} from "../../trace/requests.js";
import * as C from "@profinfer/contract";
import { modelNameOfRun } from "../../trace/modelName.js";

export interface SpanEventRecord {
  name: string;
  /** wall-clock ns since the Unix epoch */
  timeNs: bigint;
  attributes: Attributes;
}

/** A span link: the span it points to, in its own trace, and what the link says. */
export interface SpanLinkRecord {
  traceId: string;
  spanId: string;
  attributes: Attributes;
}

export interface SpanRecord {
  traceId: string;
  spanId: string;
  parentSpanId: string | null;
  name: string;
  /** wall-clock ns since the Unix epoch, from the BPF clock (exact) */
  startNs: bigint;
  endNs: bigint;
  attributes: Attributes;
  events: SpanEventRecord[];
  links: SpanLinkRecord[];
  /** set when the span records a failure (status ERROR with this message) */
  error?: string;
}

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

/** Whether a call gets operator spans; `indices` are its steps' positions in their requests. */
function sampled(s: OpSampling, call: Token, indices: readonly number[]): boolean {
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

  static forRun(run: Run): SpanIds {
    return new SpanIds(`${run.header.target.pid}:${run.clock.realtimeNs}:${run.clock.monotonicNs}`);
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
    const packed =
      (kind << 62n) |
      ((BigInt(seq) & 0x3fffffffn) << 32n) |
      ((BigInt(graph) & 0xffn) << 24n) |
      BigInt(node & 0xffffff);
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
}

/**
 * What the request tracker keeps of a call: everything but its graphs and expert rows, so that a
 * long request held open in a live export does not hold its calls' operators, and the run's own
 * tokens keep their phase and steps (the tracker sets both).
 */
function callOf(token: Token): Token {
  const call: Token = { ...token, graphs: [] };
  delete call.experts;
  delete call.steps;
  return call;
}

export interface SpanOptions {
  opSampling: OpSampling;
  /** only these graphs get operator spans, whatever the sampling says (the report's choice) */
  opGraphs?: ReadonlySet<GraphRun>;
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

  private wall(ts: bigint): bigint {
    return toWallClockNs(this.clock, ts);
  }

  /**
   * The spans of `tokens` (in start order) of `run`, appended to `out`: each call's trace, the
   * step of each request it served, and the root spans of the requests that ended before it
   * (idle for the bound, or followed by a new request on their sequence). `out` is the caller's
   * batch.
   */
  addTokens(run: Run, tokens: readonly Token[], out: SpanRecord[]): void {
    for (const token of tokens) {
      this.endIdle(token.startNs, out);
      const call = callOf(token);
      const { started, ended } = this.requests.add(call);
      for (const r of ended) out.push(this.requestSpan(r));
      for (const r of started) {
        const firstSeq = r.steps[0]?.token.seq ?? call.seq;
        this.open.set(r, {
          traceId: this.ids.requestTrace(r.tgid, r.ctx, r.seqId, firstSeq),
          spanId: this.ids.requestSpan(r.tgid, firstSeq, r.seqId),
        });
      }
      this.addCall(run, token, call, out);
    }
  }

  /**
   * Ends the requests whose sequence had no call for the idle bound by `ns`, a time before which
   * every call has been given (a live export's cut): their root spans, appended to `out`.
   */
  endIdle(ns: bigint, out: SpanRecord[]): void {
    for (const r of this.requests.endIdle(ns - this.options.requestIdleNs))
      out.push(this.requestSpan(r));
  }

  /**
   * The end of the recording, at `stoppedNs` (the end note's; null when unknown), after the
   * target's `exit` (its exit note; null: tracing stopped while it ran): the requests idle by then
   * end as idle, every other one as cut off or not by the end (recordingCutOff).
   */
  finish(
    stoppedNs: bigint | null,
    exit: { signal: string | null } | null,
    out: SpanRecord[],
  ): void {
    if (stoppedNs !== null) this.endIdle(stoppedNs, out);
    for (const r of this.requests.endAll(recordingCutOff(stoppedNs, exit)))
      out.push(this.requestSpan(r));
  }

  private idsOf(r: Request): RequestIds {
    const ids = this.open.get(r);
    if (!ids) throw new Error(`request ${r.id} (sequence ${r.seqId}) was never started`);
    return ids;
  }

  /** The root span of a request that has ended. */
  private requestSpan(r: Request): SpanRecord {
    const { traceId, spanId } = this.idsOf(r);
    this.open.delete(r);
    let mine = 0;
    let all = 0;
    for (const step of r.steps) {
      mine += step.nTokens;
      all += step.token.nTokens;
    }
    const attributes: Attributes = {
      [C.ATTR_GEN_AI_OPERATION_NAME]: C.GEN_AI_OPERATION_TEXT_COMPLETION,
      [C.ATTR_GEN_AI_PROVIDER_NAME]: C.GEN_AI_PROVIDER_LLAMA_CPP,
      [C.ATTR_GEN_AI_REQUEST_MODEL]: this.options.model,
      // the GenAI conventions count cached prompt tokens in the input tokens
      [C.ATTR_GEN_AI_USAGE_INPUT_TOKENS]: r.promptTokens + (r.cachedTokens ?? 0),
      [C.ATTR_GEN_AI_USAGE_OUTPUT_TOKENS]: r.generatedTokens,
      [C.ATTR_REQUEST_PROMPT_TOKENS]: r.promptTokens,
      [C.ATTR_REQUEST_SEQ_ID]: r.seqId,
      [C.ATTR_REQUEST_CONTEXT]: `0x${r.ctx.toString(16)}`,
      [C.ATTR_REQUEST_FIRST_SEQ]: r.steps[0]!.token.seq,
      [C.ATTR_REQUEST_LAST_SEQ]: r.steps.at(-1)!.token.seq,
      [C.ATTR_REQUEST_STEPS]: r.steps.length,
      [C.ATTR_REQUEST_BATCH_SHARE]: all > 0 ? mine / all : 1,
    };
    if (r.cachedTokens !== null)
      attributes[C.ATTR_GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = r.cachedTokens;
    const ttft = requestTtftNs(r);
    if (ttft !== null) attributes[C.ATTR_GEN_AI_SERVER_TIME_TO_FIRST_TOKEN] = ttft / 1e9;
    const tpot = requestTpotNs(r);
    if (tpot !== null) attributes[C.ATTR_GEN_AI_SERVER_TIME_PER_OUTPUT_TOKEN] = tpot / 1e9;
    return {
      traceId,
      spanId,
      parentSpanId: null,
      name: C.requestSpanName(this.options.model),
      startNs: this.wall(r.startNs),
      endNs: this.wall(r.endNs),
      attributes,
      events: [],
      links: [],
      ...(r.incomplete !== null ? { error: r.incomplete } : {}),
    };
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
   */
  private addCall(run: Run, token: Token, call: Token, out: SpanRecord[]): void {
    const ids = this.ids;
    const traceId = ids.callTrace(token.tgid, token.ctx, token.seq);
    const tokenSpanId = ids.callSpan(token.tgid, token.seq);
    const steps = call.steps ?? [];
    const indices = steps.map((s) => s.request.steps.lastIndexOf(s));
    const opsWanted = sampled(this.options.opSampling, call, indices);
    const error = SpanBuilder.callError(token);
    const startNs = this.wall(token.startNs);
    const endNs = this.wall(token.endNs);
    const links: SpanLinkRecord[] = [];
    steps.forEach((step, i) => {
      const request = this.idsOf(step.request);
      const spanId = ids.stepSpan(token.tgid, token.seq, step.request.seqId);
      const name = STEP_NAMES[step.kind];
      links.push({
        traceId: request.traceId,
        spanId,
        attributes: {
          [C.ATTR_REQUEST_SEQ_ID]: step.request.seqId,
          [C.ATTR_STEP_KIND]: name,
          [C.ATTR_STEP_TOKENS]: step.nTokens,
        },
      });
      const attributes: Attributes = {
        [C.ATTR_STEP_INDEX]: indices[i]!,
        [C.ATTR_STEP_TOKENS]: step.nTokens,
        [C.ATTR_STEP_OUTPUTS]: step.nOutputs,
        [C.ATTR_STEP_SHARE]: token.nTokens > 0 ? step.nTokens / token.nTokens : 1,
        [C.ATTR_TOKEN_SEQ]: token.seq,
        [C.ATTR_TOKEN_N_TOKENS]: token.nTokens,
        [C.ATTR_TOKEN_REQUESTS]: steps.length,
      };
      if (step.posMin >= 0) attributes[C.ATTR_STEP_POS_MIN] = step.posMin;
      if (step.posMax >= 0) attributes[C.ATTR_STEP_POS_MAX] = step.posMax;
      out.push({
        traceId: request.traceId,
        spanId,
        parentSpanId: request.spanId,
        name,
        startNs,
        endNs,
        attributes,
        events: [],
        links: [{ traceId, spanId: tokenSpanId, attributes: {} }],
        ...(error !== null ? { error } : {}),
      });
    });
    const events: SpanEventRecord[] = [];
    if (token.experts) {
      for (const [layer, rows] of token.experts) {
        const k = rows.find((r) => r)?.length ?? 0;
        events.push({
          name: C.EVENT_MOE_ROUTE,
          timeNs: startNs,
          attributes: {
            [C.ATTR_LAYER]: layer,
            [C.ATTR_MOE_K]: k,
            // rows of k ids, one per token of the batch, row-major (a lost row reads as -1s)
            [C.ATTR_MOE_EXPERTS]: Array.from(
              rows,
              (r) => r ?? new Array<number>(k).fill(-1),
            ).flat(),
          },
        });
      }
    }
    let opsExported = false;
    const graphSpanIds = new Map<GraphRun, string>();
    const graphSpans: SpanRecord[] = [];
    token.graphs.forEach((g, gi) => {
      const spanId = ids.span(SPAN_KIND_GRAPH, token.tgid, token.seq, gi, 0);
      graphSpanIds.set(g, spanId);
      const parent = (g.parent && graphSpanIds.get(g.parent)) || tokenSpanId;
      const attributes: Attributes = {
        [C.ATTR_GRAPH_NODES]: g.nNodes,
        [C.ATTR_GRAPH_FN]: g.fn,
        [C.ATTR_GRAPH_COMPLETE]: g.complete,
        [C.ATTR_GRAPH_SIGNATURE]: graphSignature(g),
      };
      // the scheduler's graph spans every backend; its CPU splits are the CPU graph spans
      if (g.fn === "cpu") attributes[C.ATTR_BACKEND] = "CPU";
      if (g.nThreads > 0) attributes[C.ATTR_GRAPH_THREADS] = g.nThreads;
      if (g.problems.length > 0) attributes[C.ATTR_GRAPH_PROBLEMS] = [...g.problems];
      const span: SpanRecord = {
        traceId,
        spanId,
        parentSpanId: parent,
        name: C.SPAN_GRAPH,
        startNs: this.wall(g.startNs),
        endNs: this.wall(g.endNs),
        attributes,
        events: [],
        links: [],
      };
      graphSpans.push(span);
      let ops = 0;
      const wanted = this.options.opGraphs ? this.options.opGraphs.has(g) : opsWanted;
      if (wanted && g.opsRecorded && g.snapshot) {
        const steps = stepOfNode(g);
        for (const op of g.ops) {
          if (op.startNs === null || op.endNs === null) continue;
          out.push(this.opSpan(run, token, gi, g, op, steps, traceId, spanId));
          ops++;
        }
      }
      attributes[C.ATTR_GRAPH_OPS] = ops;
      if (ops > 0) opsExported = true;
    });
    const attributes: Attributes = {
      [C.ATTR_TOKEN_SEQ]: token.seq,
      [C.ATTR_TOKEN_PHASE]: call.phase,
      [C.ATTR_TOKEN_N_TOKENS]: token.nTokens,
      [C.ATTR_TOKEN_REQUESTS]: steps.length,
      [C.ATTR_TOKEN_OPS_EXPORTED]: opsExported,
      [C.ATTR_TOKEN_COMPLETE]: token.ret !== null,
      [C.ATTR_THREAD_ID]: token.tid,
    };
    if (token.ret !== null) attributes[C.ATTR_TOKEN_RET] = token.ret;
    out.push({
      traceId,
      spanId: tokenSpanId,
      parentSpanId: null,
      name: C.SPAN_TOKEN,
      startNs,
      endNs,
      attributes,
      events,
      links,
      ...(error !== null ? { error } : {}),
    });
    out.push(...graphSpans);
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
  ): SpanRecord {
    const dag = g.snapshot!.dag;
    const name = displayOpName(op.label);
    const opStart = op.startNs!;
    const attributes: Attributes = {
      [C.ATTR_OP]: name,
      [C.ATTR_TENSOR_NAME]: op.tensor.name,
      [C.ATTR_TENSOR_SHAPE]: op.tensor.ne,
      [C.ATTR_TENSOR_TYPE]: op.tensor.typeName,
      [C.ATTR_NODE_INDEX]: op.nodeIndex,
      [C.ATTR_OP_PROBED]: op.visible,
    };
    if (op.tensor.layer !== null) attributes[C.ATTR_LAYER] = op.tensor.layer;
    const sources = sourcesOf(dag, op);
    attributes[C.ATTR_SRC_NAMES] = sources.names;
    attributes[C.ATTR_SRC_OPS] = sources.ops;
    attributes[C.ATTR_SRC_NODES] = sources.producers.map((n) =>
      n < 0 ? -1 : (steps.get(n) ?? -1),
    );
    if (op.fusedWith && op.fusedWith.length > 0) {
      attributes[C.ATTR_FUSED_NAMES] = [
        op.tensor.name,
        ...op.fusedWith.map((i) => dag.nodes[i]?.tensor.name ?? ""),
      ];
    }
    const events: SpanEventRecord[] = [];
    const threads = op.threads;
    attributes[C.ATTR_THREADS] = threads.length;
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
        const tc = (t as OpThreadRun & { counters?: Record<string, number> }).counters;
        if (tc) {
          counters ??= {};
          for (const [event, value] of Object.entries(tc))
            counters[event] = (counters[event] ?? 0) + value;
        }
        const threadAttributes: Attributes = {
          [C.ATTR_THREAD_ID]: t.tid,
          [C.ATTR_THREAD_START]: Number(t.startNs - opStart),
          [C.ATTR_THREAD_END]: Number(t.endNs - opStart),
          [C.ATTR_THREAD_BARRIER_WAIT_NS]: t.barrierWaitNs,
        };
        if (t.ith !== null) threadAttributes[C.ATTR_THREAD_ITH] = t.ith;
        events.push({
          name: C.EVENT_THREAD,
          timeNs: this.wall(t.startNs),
          attributes: threadAttributes,
        });
        if (t.offCpuNs > 0) this.offCpuEvents(run, t, events);
      }
      attributes[C.ATTR_THREAD_SLOWEST_NS] = slowest;
      attributes[C.ATTR_THREAD_FASTEST_NS] = fastest;
      attributes[C.ATTR_THREAD_IMBALANCE] = total > 0 ? slowest / (total / threads.length) : 1;
      attributes[C.ATTR_BARRIER_WAIT_NS] = barrier;
      if (inner > 0) attributes[C.ATTR_INNER_BARRIER_WAIT_NS] = inner;
      if (offCpu > 0) attributes[C.ATTR_OFF_CPU_NS] = offCpu;
      if (preempted > 0) attributes[C.ATTR_PREEMPTED_NS] = preempted;
      if (counters) addCounters(attributes, counters, run.backendStall ?? null);
    }
    return {
      traceId,
      spanId: this.ids.span(SPAN_KIND_OP, token.tgid, token.seq, graphIndex, op.nodeIndex),
      parentSpanId,
      name,
      startNs: this.wall(opStart),
      endNs: this.wall(op.endNs!),
      attributes,
      events,
      links: [],
    };
  }

  private offCpuEvents(run: Run, t: OpThreadRun, events: SpanEventRecord[]): void {
    const intervals = run.offCpu.get(t.tid);
    if (!intervals) return;
    for (const iv of overlapping(intervals, t.startNs, t.endNs)) {
      const start = iv.startNs > t.startNs ? iv.startNs : t.startNs;
      const end = iv.endNs < t.endNs ? iv.endNs : t.endNs;
      const attributes: Attributes = {
        [C.ATTR_THREAD_ID]: t.tid,
        [C.ATTR_OFF_CPU_DURATION_NS]: Number(end - start),
        [C.ATTR_OFF_CPU_PREEMPTED]: iv.preempted,
        [C.ATTR_CPU_ID]: iv.cpu,
      };
      if (iv.by) attributes[C.ATTR_OFF_CPU_BY] = `${iv.by.comm} (${iv.by.tgid}/${iv.by.tid})`;
      events.push({ name: C.EVENT_OFF_CPU, timeNs: this.wall(start), attributes });
    }
  }
}

/** Counter deltas, and the ratios they allow, as ggml.counter.<event>, ggml.ipc, ... */
function addCounters(
  attributes: Attributes,
  counters: Record<string, number>,
  stall: BackendStallFormula | null,
): void {
  for (const [event, value] of Object.entries(counters))
    attributes[`${C.ATTR_COUNTER_PREFIX}${event}`] = value as AttributeValue;
  const cycles = counters["cycles"];
  const instructions = counters["instructions"];
  if (cycles && cycles > 0 && instructions !== undefined)
    attributes[C.ATTR_IPC] = instructions / cycles;
  const stalled = backendStallRatio(stall, counters);
  if (stalled !== undefined) attributes[C.ATTR_BACKEND_STALL_RATIO] = stalled;
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
  const out: SpanRecord[] = [];
  builder.addTokens(run, run.tokens, out);
  builder.finish(run.stoppedNs, run.exit, out);
  return out;
}
