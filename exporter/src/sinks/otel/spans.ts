// SPDX-License-Identifier: Apache-2.0
// The span model of a run (docs/spans.md): a trace per generation; generation > llama_decode >
// graph_compute (scheduler graph > CPU graph) > one span per operator run. Spans are plain
// records with wall-clock BigInt ns and deterministic ids, so that the live export, the
// traces.otlp.jsonl file and a replay produce the very same spans, and a span re-sent after an
// outage carries the id it had the first time.
import { createHash } from "node:crypto";
import type { AttributeValue, Attributes } from "@opentelemetry/api";
import { toWallClockNs } from "../../trace/clock.js";
import type { RunClock } from "../../trace/types.js";
import { displayOpName } from "../../trace/dag.js";
import type { Dag } from "../../trace/types.js";
import type { GraphRun, OpRun, OpThreadRun, Run, Token } from "../../trace/types.js";
import type { OffCpuInterval } from "../../trace/types.js";
import * as C from "@profinfer/contract";
import { modelName, notedModels } from "../../trace/modelName.js";

export interface SpanEventRecord {
  name: string;
  /** wall-clock ns since the Unix epoch */
  timeNs: bigint;
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
  /** set when the span records a failure (status ERROR with this message) */
  error?: string;
}

/** Which llama_decode calls of a generation get operator spans. */
export type OpSampling =
  | { kind: "all" }
  | { kind: "none" }
  /** 1 in N calls: the calls at index 0, N, 2N ... of each generation (the prefill always) */
  | { kind: "every"; n: number }
  /** the first K calls of each generation */
  | { kind: "first"; k: number };

/**
 * Operator spans for the prefill and 1 in 16 calls of each generation: with every call, a long
 * generation's trace is far over Tempo's default size per trace (docs/spans.md "Volume" has the
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
    `'${spec}' is not an operator-span sample: use all, none, every:N (1 in N llama_decode calls of each generation) or first:K (its first K calls)`,
  );
}

function sampled(s: OpSampling, index: number): boolean {
  switch (s.kind) {
    case "all":
      return true;
    case "none":
      return false;
    case "every":
      return index % s.n === 0;
    case "first":
      return index < s.k;
  }
}

const SPAN_KIND_GENERATION = 0n;
const SPAN_KIND_TOKEN = 1n;
const SPAN_KIND_GRAPH = 2n;
const SPAN_KIND_OP = 3n;

/**
 * Deterministic ids: the same run gives the same ids, wherever and whenever spans are built. A
 * trace id is a hash of the run and the generation; a span id packs what it is (kind, call seq,
 * graph within the call, node) into 64 bits, XORed with a per-run, per-process salt: unique
 * within a run by construction, different between runs.
 */
export class SpanIds {
  private readonly salts = new Map<number, bigint>();
  constructor(readonly runKey: string) {}

  static forRun(run: Run): SpanIds {
    return new SpanIds(`${run.header.target.pid}:${run.clock.realtimeNs}:${run.clock.monotonicNs}`);
  }

  trace(tgid: number, ctx: bigint, firstSeq: number): string {
    return createHash("sha256")
      .update(`${this.runKey}|${tgid}|${ctx}|${firstSeq}`)
      .digest("hex")
      .slice(0, 32);
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
}

/** One generation: a llama_decode call with several tokens (or the first call on a context), and
 * the single-token calls on the same context that follow it. */
export interface Generation {
  tgid: number;
  ctx: bigint;
  firstSeq: number;
  traceId: string;
  spanId: string;
  startNs: bigint;
  endNs: bigint;
  calls: number;
  inputTokens: number;
  outputTokens: number;
  /** a call of it lacked its end */
  incomplete: boolean;
}

/**
 * Assigns llama_decode calls to generations, in start order, keeping its state between calls so
 * that a live export fed chunk by chunk forms the same generations as a whole run.
 */
export class GenerationTracker {
  private readonly open = new Map<string, Generation>();
  constructor(private readonly ids: SpanIds) {}

  /** The generation of `token`, its index there, and the generation it closed, if any. */
  assign(token: Token): { generation: Generation; index: number; closed: Generation | null } {
    const key = `${token.tgid}:${token.ctx}`;
    let generation = this.open.get(key);
    let closed: Generation | null = null;
    if (!generation || token.nTokens > 1) {
      closed = generation ?? null;
      generation = {
        tgid: token.tgid,
        ctx: token.ctx,
        firstSeq: token.seq,
        traceId: this.ids.trace(token.tgid, token.ctx, token.seq),
        spanId: this.ids.span(SPAN_KIND_GENERATION, token.tgid, token.seq, 0, 0),
        startNs: token.startNs,
        endNs: token.endNs,
        calls: 0,
        inputTokens: 0,
        outputTokens: 0,
        incomplete: false,
      };
      this.open.set(key, generation);
    }
    const index = generation.calls++;
    if (token.endNs > generation.endNs) generation.endNs = token.endNs;
    if (token.phase === "prefill") generation.inputTokens += token.nTokens;
    else generation.outputTokens += token.nTokens;
    if (token.ret === null) generation.incomplete = true;
    return { generation, index, closed };
  }

  /** Ends every open generation (the end of the run). */
  closeAll(): Generation[] {
    const all = [...this.open.values()];
    this.open.clear();
    return all;
  }
}

export interface SpanOptions {
  opSampling: OpSampling;
  /** only these graphs get operator spans, whatever the sampling says (the report's choice) */
  opGraphs?: ReadonlySet<GraphRun>;
  /** gen_ai.request.model: the model's name */
  model: string;
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

/** Builds the spans of one run, or of consecutive chunks of a live one (same tracker). */
export class SpanBuilder {
  readonly tracker: GenerationTracker;
  private readonly clock: RunClock;

  constructor(
    private readonly ids: SpanIds,
    clock: RunClock,
    private readonly options: SpanOptions,
  ) {
    this.tracker = new GenerationTracker(ids);
    this.clock = clock;
  }

  /** The model name generation spans carry (known once the model note arrives). */
  setModel(name: string): void {
    this.options.model = name;
  }

  private wall(ts: bigint): bigint {
    return toWallClockNs(this.clock, ts);
  }

  /** The root span of a generation that has ended. */
  generationSpan(g: Generation): SpanRecord {
    return {
      traceId: g.traceId,
      spanId: g.spanId,
      parentSpanId: null,
      name: C.SPAN_GENERATION,
      startNs: this.wall(g.startNs),
      endNs: this.wall(g.endNs),
      attributes: {
        [C.ATTR_GEN_AI_OPERATION_NAME]: C.GEN_AI_OPERATION_TEXT_COMPLETION,
        [C.ATTR_GEN_AI_PROVIDER_NAME]: C.GEN_AI_PROVIDER_LLAMA_CPP,
        [C.ATTR_GEN_AI_REQUEST_MODEL]: this.options.model,
        [C.ATTR_GEN_AI_USAGE_INPUT_TOKENS]: g.inputTokens,
        [C.ATTR_GEN_AI_USAGE_OUTPUT_TOKENS]: g.outputTokens,
        [C.ATTR_GENERATION_CALLS]: g.calls,
        [C.ATTR_GENERATION_CONTEXT]: `0x${g.ctx.toString(16)}`,
        [C.ATTR_GENERATION_FIRST_SEQ]: g.firstSeq,
      },
      events: [],
      ...(g.incomplete ? { error: "a llama_decode call of it was not recorded to its end" } : {}),
    };
  }

  /**
   * The spans of `tokens` (in start order) of `run`, appended to `out`; the root spans of the
   * generations they close come along. Returns nothing: `out` is the caller's batch.
   */
  addTokens(run: Run, tokens: readonly Token[], out: SpanRecord[]): void {
    for (const token of tokens) {
      const { generation, index, closed } = this.tracker.assign(token);
      if (closed) out.push(this.generationSpan(closed));
      this.addToken(run, token, generation, index, out);
    }
  }

  /** Root spans of the generations still open: the end of the run. */
  closeAll(out: SpanRecord[]): void {
    for (const g of this.tracker.closeAll()) out.push(this.generationSpan(g));
  }

  private addToken(
    run: Run,
    token: Token,
    generation: Generation,
    index: number,
    out: SpanRecord[],
  ): void {
    const ids = this.ids;
    const traceId = generation.traceId;
    const tokenSpanId = ids.span(SPAN_KIND_TOKEN, token.tgid, token.seq, 0, 0);
    const opsWanted = sampled(this.options.opSampling, index);
    const events: SpanEventRecord[] = [];
    if (token.experts) {
      for (const [layer, rows] of token.experts) {
        const k = rows.find((r) => r)?.length ?? 0;
        events.push({
          name: C.EVENT_MOE_ROUTE,
          timeNs: this.wall(token.startNs),
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
      [C.ATTR_TOKEN_PHASE]: token.phase,
      [C.ATTR_TOKEN_N_TOKENS]: token.nTokens,
      [C.ATTR_TOKEN_INDEX]: index,
      [C.ATTR_TOKEN_OPS_EXPORTED]: opsExported,
      [C.ATTR_TOKEN_COMPLETE]: token.ret !== null,
      [C.ATTR_THREAD_ID]: token.tid,
    };
    if (token.ret !== null) attributes[C.ATTR_TOKEN_RET] = token.ret;
    out.push({
      traceId,
      spanId: tokenSpanId,
      parentSpanId: generation.spanId,
      name: C.SPAN_TOKEN,
      startNs: this.wall(token.startNs),
      endNs: this.wall(token.endNs),
      attributes,
      events,
      ...(token.ret !== null && token.ret < 0
        ? { error: `llama_decode returned ${token.ret}` }
        : token.ret === null
          ? { error: "the end of this llama_decode call was not recorded" }
          : {}),
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
      if (counters) addCounters(attributes, counters);
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
function addCounters(attributes: Attributes, counters: Record<string, number>): void {
  for (const [event, value] of Object.entries(counters))
    attributes[`${C.ATTR_COUNTER_PREFIX}${event}`] = value as AttributeValue;
  const cycles = counters["cycles"] ?? counters["cpu-cycles"];
  const instructions = counters["instructions"];
  const stalled = counters["stalled-cycles-backend"];
  if (cycles && cycles > 0) {
    if (instructions !== undefined) attributes[C.ATTR_IPC] = instructions / cycles;
    if (stalled !== undefined) attributes[C.ATTR_BACKEND_STALL_RATIO] = stalled / cycles;
  }
}

/** Every span of a whole run, in the order of its calls; generations closed at its end. */
export function buildRunSpans(
  run: Run,
  opSampling: OpSampling,
  opGraphs?: ReadonlySet<GraphRun>,
): SpanRecord[] {
  const builder = new SpanBuilder(SpanIds.forRun(run), run.clock, {
    opSampling,
    model: modelName(notedModels(run.notes), []) ?? "unknown",
    ...(opGraphs ? { opGraphs } : {}),
  });
  const out: SpanRecord[] = [];
  builder.addTokens(run, run.tokens, out);
  builder.closeAll(out);
  return out;
}
