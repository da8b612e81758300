// SPDX-License-Identifier: Apache-2.0
// Builds raw event streams programmatically for tests: a run header with op tables of its own
// (deliberately not ggml's order, so that nothing can lean on a compiled-in enum), graph
// descriptions, and graph computations simulated the way ggml's CPU loop runs them: steps over
// the computed nodes, a barrier after each, inner barriers in mul_mat / mul_mat_id, RMS_NORM+MUL
// fused into one step, unprobed ops without OP events, a final barrier per thread.
import {
  BatchFlag,
  EMPTY_OPS,
  EVENT_ABI,
  EventType,
  GraphFn,
  PI_MAX_SRC,
  PI_NODES_PER_CHUNK,
  RawFileWriter,
  TENSOR_FLAG_COMPUTE,
  TENSOR_FLAG_INPUT,
  type BatchSequence,
  type NoteRecord,
  type RawEvent,
  type RawRecording,
  type RunNote,
  type RunHeader,
} from "@profinfer/exporter";
import { encodeEvent } from "./encodeEvent.js";

export const FIXTURE_OP_NAMES = [
  "NONE",
  "ADD",
  "MUL",
  "RMS_NORM",
  "MUL_MAT",
  "MUL_MAT_ID",
  "GET_ROWS",
  "SET_ROWS",
  "CPY",
  "VIEW",
  "RESHAPE",
  "PERMUTE",
  "TRANSPOSE",
  "ARGSORT",
  "SOFT_MAX",
  "UNARY",
  "GLU",
  "ROPE",
];
export const FIXTURE_UNARY_NAMES = ["ABS", "NEG", "RELU", "GELU", "SILU"];
export const FIXTURE_GLU_NAMES = ["REGLU", "GEGLU", "SWIGLU"];
export const FIXTURE_TYPE_NAMES = ["f32", "f16", "q4_0", "i32"];

export const FIXTURE_PID = 1000;
/** CLOCK_MONOTONIC and CLOCK_REALTIME of the fixture header's clock pair */
export const FIXTURE_MONOTONIC_NS = 5_000_000_000n;
export const FIXTURE_REALTIME_NS = 1_732_870_000_123_456_789n;

/** Nanoseconds from a step's release to an op's OP_BEGIN, and from OP_END to BARRIER_BEGIN. */
export const DISPATCH_NS = 100;
/** Nanoseconds from the last thread's barrier arrival to every thread's release. */
export const RELEASE_NS = 100;

export function fixtureHeader(overrides: Partial<RunHeader> = {}): RunHeader {
  return {
    format: "profinfer-raw",
    version: 1,
    eventAbi: EVENT_ABI,
    profinfer: "0.1.0",
    level: "op",
    options: { sampleTokens: 1, ops: null },
    clock: { monotonicNs: String(FIXTURE_MONOTONIC_NS), realtimeNs: String(FIXTURE_REALTIME_NS) },
    target: {
      pid: FIXTURE_PID,
      command: ["llama-simple", "-m", "tiny.gguf", "-n", "2"],
      executable: "/opt/llama/llama-simple",
      libraries: {},
    },
    layout: {},
    opNames: FIXTURE_OP_NAMES,
    unaryOpNames: FIXTURE_UNARY_NAMES,
    gluOpNames: FIXTURE_GLU_NAMES,
    typeNames: FIXTURE_TYPE_NAMES,
    opFuncs: FIXTURE_OP_NAMES.map((op, index) => ({
      index,
      symbol: `ggml_compute_forward_${op.toLowerCase()}`,
      library: "/opt/llama/libggml-cpu.so",
    })),
    host: { hostname: "fixture", kernel: "6.1.0", cpuModel: "fixture", cpus: 4 },
    ...overrides,
  };
}

/** A tensor of a fixture graph, by name. */
export interface TensorSpec {
  name: string;
  /** op name from FIXTURE_OP_NAMES; leaves default to NONE */
  op?: string;
  /** UNARY / GLU sub-op name */
  sub?: string;
  type?: string;
  ne?: number[];
  /** source tensor names, by slot */
  src?: string[];
  /** name of the tensor it views (view_src) */
  viewOf?: string;
  /** default: COMPUTE for nodes, INPUT for leaves named inp_* */
  flags?: number;
}

export interface GraphSpec {
  /** in graph order */
  nodes: TensorSpec[];
  /** tensors nodes read that no node produces */
  leaves: TensorSpec[];
}

/** What one simulated step did, for tests to derive their expectations from. */
export interface StepInfo {
  /** node indices computed in this step (a fused group has several) */
  nodes: number[];
  probed: boolean;
  /** release time the step started from */
  releaseNs: bigint;
  /** per ith: compute interval (OP events for probed steps) and barrier that followed */
  threads: {
    ith: number;
    tid: number;
    opStartNs: bigint;
    opEndNs: bigint;
    barrierBeginNs: bigint;
    barrierEndNs: bigint;
  }[];
}

export interface ComputeOptions {
  cgraph: bigint;
  signature: bigint;
  graph: GraphSpec;
  /** emit the description (GRAPH_NODES + TENSOR events) before computing */
  changed: boolean;
  /** worker tids by ith; [0] is the calling thread */
  threads: number[];
  /** compute ns of a node on thread ith (a fused step takes the sum of its nodes) */
  duration: (node: TensorSpec, ith: number) => number;
  /** whether the node's per-op function is probed: default every op but MUL_MAT_ID */
  probed?: (node: TensorSpec) => boolean;
  /** barriers the op passes inside itself: default 1 for MUL_MAT and MUL_MAT_ID */
  innerBarriers?: (node: TensorSpec) => number;
  /** compute RMS_NORM + MUL as one unprobed step, as ggml_cpu_try_fuse_ops does (default true) */
  fuse?: boolean;
  /** also wrap the CPU graph in a scheduler graph (fn 1), as llama_decode does (default true) */
  sched?: boolean;
  /** called when a step starts: MoE ids are emitted here */
  onStep?: (step: StepInfo, nodes: TensorSpec[]) => void;
  /**
   * record as step probes do (--op-timing steps): a STEP event at each of the loop's barrier calls
   * and at the final one, and no OP or BARRIER events
   */
  steps?: boolean;
  /** with `steps`, OP events of the probed steps as well (as MoE consumers' probes give them) */
  stepsWithOps?: boolean;
  /**
   * the loop of releases before ggml skipped empty nodes, built with OpenMP (b3889): a barrier
   * after every node, views included, none after the loop, no fusion, and OpenMP's barrier (of
   * the `omp single` that opens the parallel region) before the loop, which GOMP_barrier probes see
   */
  olderLoop?: boolean;
}

export interface ComputeResult {
  startNs: bigint;
  endNs: bigint;
  steps: StepInfo[];
}

const BASE_ADDR = 0x7f00_0000_0000n;

/**
 * Accumulates events on a simulated CLOCK_MONOTONIC (`now`), then hands them out sorted by time,
 * as a ring buffer would deliver them, either in memory or written through RawFileWriter.
 */
export class FixtureRecorder {
  readonly header: RunHeader;
  now: bigint;
  private readonly events: RawEvent[] = [];
  private readonly notes: RunNote[] = [];
  private readonly addrs = new Map<string, bigint>();
  /** events for which this returns true are not recorded (simulated loss) */
  drop: ((ev: RawEvent) => boolean) | null = null;

  constructor(header: RunHeader = fixtureHeader(), startNs = FIXTURE_MONOTONIC_NS + 1_000_000n) {
    this.header = header;
    this.now = startNs;
  }

  addr(name: string): bigint {
    let a = this.addrs.get(name);
    if (a === undefined) {
      a = BASE_ADDR + BigInt(this.addrs.size + 1) * 0x400n;
      this.addrs.set(name, a);
    }
    return a;
  }

  opIndex(name: string): number {
    const i = this.header.opNames.indexOf(name);
    if (i < 0) throw new Error(`fixture: op ${name} is not in the header's opNames`);
    return i;
  }

  emit(ev: RawEvent): void {
    if (this.drop?.(ev)) return;
    this.events.push(ev);
  }

  note(note: RunNote): void {
    this.notes.push(note);
  }

  private head(type: RawEvent["type"], tid: number, ts: bigint, cpu = 0) {
    return { type, cpu, tgid: this.header.target.pid, tid, ts };
  }

  /**
   * One llama_decode call on `tid` around `body`; with `batch`, the call's batch summary (ABI 4)
   * right after its begin, as the kernel sends it.
   */
  token(
    seq: number,
    nTokens: number,
    tid: number,
    body: () => void,
    opsSampled = true,
    batch?: { flags: number; seqs: BatchSequence[] },
  ): void {
    this.emit({
      ...this.head(EventType.TOKEN_BEGIN, tid, this.now),
      type: EventType.TOKEN_BEGIN,
      ctx: 0x5555_0000n,
      nTokens,
      seq,
      opsSampled,
    });
    if (batch) {
      this.emit({
        ...this.head(EventType.BATCH, tid, this.now),
        type: EventType.BATCH,
        seq,
        nTokens,
        flags: batch.flags,
        tokensRead: nTokens,
        tokensLost: 0,
        seqs: batch.seqs,
      });
    }
    this.now += 1_000n;
    body();
    this.now += 1_000n;
    this.emit({
      ...this.head(EventType.TOKEN_END, tid, this.now),
      type: EventType.TOKEN_END,
      ret: 0,
      seq,
    });
    this.now += 10_000n;
  }

  private tensorEvent(
    spec: TensorSpec,
    isNode: boolean,
    signature: bigint,
    tid: number,
    ts: bigint,
  ) {
    const src = (spec.src ?? []).map((n) => this.addr(n));
    while (src.length < PI_MAX_SRC) src.push(0n);
    const sub = spec.sub;
    const table =
      spec.op === "UNARY"
        ? this.header.unaryOpNames
        : spec.op === "GLU"
          ? this.header.gluOpNames
          : null;
    const flags =
      spec.flags ??
      (isNode ? TENSOR_FLAG_COMPUTE : spec.name.startsWith("inp_") ? TENSOR_FLAG_INPUT : 0);
    const ne = spec.ne ?? [64, 1, 1, 1];
    this.emit({
      ...this.head(EventType.TENSOR, tid, ts),
      type: EventType.TENSOR,
      addr: this.addr(spec.name),
      signature,
      ne: [...ne, 1, 1, 1, 1].slice(0, 4),
      nb: [4, 4 * (ne[0] ?? 1), 0, 0],
      src,
      viewSrc: spec.viewOf ? this.addr(spec.viewOf) : 0n,
      viewOffs: 0n,
      data: 0n,
      typeIndex: Math.max(0, this.header.typeNames.indexOf(spec.type ?? "f32")),
      op: this.opIndex(spec.op ?? "NONE"),
      opParams: [table && sub ? table.indexOf(sub) : 0, 0],
      flags,
      name: spec.name,
    });
  }

  private describe(opts: ComputeOptions, tid: number): void {
    const { graph, cgraph, signature } = opts;
    const ts = this.now;
    const addrs = graph.nodes.map((n) => this.addr(n.name));
    for (let first = 0; first < addrs.length; first += PI_NODES_PER_CHUNK) {
      this.emit({
        ...this.head(EventType.GRAPH_NODES, tid, ts),
        type: EventType.GRAPH_NODES,
        cgraph,
        signature,
        first,
        nodes: addrs.slice(first, first + PI_NODES_PER_CHUNK),
      });
    }
    for (const n of graph.nodes) this.tensorEvent(n, true, signature, tid, ts);
    for (const l of graph.leaves) this.tensorEvent(l, false, signature, tid, ts);
  }

  /** The ggml CPU loop over `opts.graph` on `opts.threads`, from `now`. */
  compute(opts: ComputeOptions): ComputeResult {
    const caller = opts.threads[0]!;
    const sched = opts.sched ?? true;
    const older = opts.olderLoop ?? false;
    const fuse = !older && (opts.fuse ?? true);
    const probed = opts.probed ?? ((n: TensorSpec) => n.op !== "MUL_MAT_ID");
    const innerOf =
      opts.innerBarriers ??
      ((n: TensorSpec) => (n.op === "MUL_MAT" || n.op === "MUL_MAT_ID" ? 1 : 0));
    const nodes = opts.graph.nodes;
    const nNodes = nodes.length;
    const begin = (fn: number): void => {
      this.emit({
        ...this.head(EventType.GRAPH_BEGIN, caller, this.now),
        type: EventType.GRAPH_BEGIN,
        cgraph: fn === GraphFn.SCHED ? opts.cgraph + 0x10_0000n : opts.cgraph,
        fn,
        nNodes,
        nThreads: fn === GraphFn.CPU ? opts.threads.length : 0,
        changed: opts.changed,
        signature: opts.signature,
      });
    };
    const end = (fn: number): void => {
      this.emit({
        ...this.head(EventType.GRAPH_END, caller, this.now),
        type: EventType.GRAPH_END,
        cgraph: fn === GraphFn.SCHED ? opts.cgraph + 0x10_0000n : opts.cgraph,
        fn,
        ret: 0,
      });
    };
    const startNs = this.now;
    if (sched) {
      begin(GraphFn.SCHED);
      this.now += 500n;
    }
    begin(GraphFn.CPU);
    if (opts.changed) {
      this.describe(opts, caller);
    }
    this.now += 1_000n;

    // Steps: computed nodes, RMS_NORM + MUL fused when the MUL reads the RMS_NORM.
    const isComputed = (n: TensorSpec): boolean =>
      !EMPTY_OPS.has(n.op ?? "NONE") &&
      ((n.flags ?? TENSOR_FLAG_COMPUTE) & TENSOR_FLAG_COMPUTE) !== 0;
    const steps: number[][] = [];
    for (let i = 0; i < nNodes; i++) {
      const n = nodes[i]!;
      if (!isComputed(n)) {
        if (older) steps.push([i]);
        continue;
      }
      const next = nodes[i + 1];
      if (fuse && n.op === "RMS_NORM" && next?.op === "MUL" && next.src?.includes(n.name)) {
        steps.push([i, i + 1]);
        i++;
      } else steps.push([i]);
    }

    const threadCount = opts.threads.length;
    const barrier = (arrivals: bigint[]): bigint =>
      arrivals.reduce((a, b) => (a > b ? a : b)) + BigInt(RELEASE_NS);
    let release = this.now;
    if (older) {
      const arrivals = opts.threads.map((_, ith) => release + BigInt(50 * (ith + 1)));
      const out = barrier(arrivals);
      opts.threads.forEach((tid, ith) => {
        this.barrierEvent(EventType.BARRIER_BEGIN, tid, arrivals[ith]!);
        this.barrierEvent(EventType.BARRIER_END, tid, out);
      });
      release = out;
    }
    const infos: StepInfo[] = [];
    for (const [s, step] of steps.entries()) {
      const stepNodes = step.map((i) => nodes[i]!);
      const leader = stepNodes[0]!;
      const isProbed = step.length === 1 && isComputed(leader) && probed(leader);
      const inner = step.length === 1 && isComputed(leader) ? innerOf(leader) : 0;
      const info: StepInfo = { nodes: step, probed: isProbed, releaseNs: release, threads: [] };
      opts.onStep?.(info, stepNodes);
      // Each thread: dispatch, compute in (inner + 1) parts separated by inner barriers.
      const cursors = opts.threads.map(() => release + BigInt(DISPATCH_NS));
      const opStarts = [...cursors];
      const totals = opts.threads.map((_, ith) =>
        stepNodes.reduce((sum, n) => sum + (isComputed(n) ? opts.duration(n, ith) : 0), 0),
      );
      opts.threads.forEach((tid, ith) => {
        if (isProbed && (!opts.steps || opts.stepsWithOps))
          this.opEvent(EventType.OP_BEGIN, tid, opStarts[ith]!, leader, ith, threadCount);
      });
      for (let part = 0; part <= inner; part++) {
        const arrivals = cursors.map(
          (c, ith) => c + BigInt(Math.round(totals[ith]! / (inner + 1))),
        );
        if (part < inner) {
          const out = barrier(arrivals);
          opts.threads.forEach((tid, ith) => {
            if (!opts.steps) {
              this.barrierEvent(EventType.BARRIER_BEGIN, tid, arrivals[ith]!);
              this.barrierEvent(EventType.BARRIER_END, tid, out);
            }
            cursors[ith] = out;
          });
        } else arrivals.forEach((a, ith) => (cursors[ith] = a));
      }
      const opEnds = [...cursors];
      opts.threads.forEach((tid, ith) => {
        if (isProbed && (!opts.steps || opts.stepsWithOps))
          this.opEvent(EventType.OP_END, tid, opEnds[ith]!, leader, ith, threadCount);
      });
      const last = step[step.length - 1]!;
      const isLastStep = s === steps.length - 1;
      const arrivals = opEnds.map((e) => e + BigInt(DISPATCH_NS));
      // ggml: a barrier unless the step ended on the graph's last node; then the final barrier.
      const barriers = older ? 1 : (last + 1 < nNodes ? 1 : 0) + (isLastStep ? 1 : 0);
      let out = release;
      let begin = arrivals;
      for (let b = 0; b < barriers; b++) {
        out = barrier(begin);
        const closing = out;
        const final = !(last + 1 < nNodes && b === 0);
        opts.threads.forEach((tid, ith) => {
          if (opts.steps) {
            this.emit({
              ...this.head(EventType.STEP, tid, begin[ith]!),
              type: EventType.STEP,
              next: final ? -1 : last + 1,
            });
            return;
          }
          this.barrierEvent(EventType.BARRIER_BEGIN, tid, begin[ith]!);
          this.barrierEvent(EventType.BARRIER_END, tid, closing);
        });
        if (b === 0) {
          info.threads = opts.threads.map((tid, ith) => ({
            ith,
            tid,
            opStartNs: opStarts[ith]!,
            opEndNs: opEnds[ith]!,
            barrierBeginNs: arrivals[ith]!,
            barrierEndNs: closing,
          }));
        }
        // Between the loop's barrier and the final one, threads walk the trailing empty nodes.
        begin = opts.threads.map(() => closing + 20n);
      }
      release = out;
      infos.push(info);
    }
    this.now = release + 1_000n;
    end(GraphFn.CPU);
    if (sched) {
      this.now += 500n;
      end(GraphFn.SCHED);
    }
    const endNs = this.now;
    this.now += 1_000n;
    return { startNs, endNs, steps: infos };
  }

  private opEvent(
    type: typeof EventType.OP_BEGIN | typeof EventType.OP_END,
    tid: number,
    ts: bigint,
    node: TensorSpec,
    ith: number,
    nth: number,
  ): void {
    this.emit({
      ...this.head(type, tid, ts, ith),
      type,
      dst: this.addr(node.name),
      func: this.opIndex(node.op ?? "NONE"),
      ith,
      nth,
    });
  }

  private barrierEvent(
    type: typeof EventType.BARRIER_BEGIN | typeof EventType.BARRIER_END,
    tid: number,
    ts: bigint,
  ): void {
    this.emit({ ...this.head(type, tid, ts), type });
  }

  /** `tid` preempted while runnable from `fromNs` to `toNs` by another task. */
  preempt(
    tid: number,
    fromNs: bigint,
    toNs: bigint,
    by: { comm: string; tgid: number; tid: number },
  ) {
    this.switchEvent(tid, fromNs, 0, by, true);
    this.switchEvent(tid, toNs, 0, by, false);
  }

  /** `tid` blocked (prev_state 1) from `fromNs` to `toNs`. */
  sleep(tid: number, fromNs: bigint, toNs: bigint): void {
    const idle = { comm: "swapper/0", tgid: 0, tid: 0 };
    this.switchEvent(tid, fromNs, 1, idle, true);
    this.switchEvent(tid, toNs, 0, idle, false);
  }

  private switchEvent(
    tid: number,
    ts: bigint,
    prevState: number,
    other: { comm: string; tgid: number; tid: number },
    leaving: boolean,
  ): void {
    const me = { comm: "llama-simple", tgid: this.header.target.pid, tid };
    const prev = leaving ? me : other;
    const next = leaving ? other : me;
    this.emit({
      ...this.head(EventType.SCHED_SWITCH, tid, ts, 1),
      type: EventType.SCHED_SWITCH,
      prevTid: prev.tid,
      nextTid: next.tid,
      prevState: leaving ? prevState : 0,
      prevTgid: prev.tgid,
      nextTgid: next.tgid,
      prevComm: prev.comm,
      nextComm: next.comm,
    });
  }

  /** Expert ids of routing tensor `tensor`, read when `consumer` started. */
  moeIds(tid: number, ts: bigint, tensor: string, consumer: string, rows: number[][]): void {
    const k = rows[0]?.length ?? 0;
    this.emit({
      ...this.head(EventType.MOE_IDS, tid, ts),
      type: EventType.MOE_IDS,
      tensor: this.addr(tensor),
      consumer: this.addr(consumer),
      k,
      nTokens: rows.length,
      firstToken: 0,
      ids: Int32Array.from(rows.flat()),
    });
  }

  /** Events sorted by time (stable: one thread's events keep their order). */
  sortedEvents(): RawEvent[] {
    return [...this.events].sort((a, b) => (a.ts < b.ts ? -1 : a.ts > b.ts ? 1 : 0));
  }

  /** The recording in memory, as readRawFile would return it. */
  recording(path = "fixture.pinf"): RawRecording {
    const events = this.sortedEvents();
    const notes: NoteRecord[] = this.notes.map((note) => ({
      type: "note",
      offset: 0,
      afterEvents: events.length,
      note,
    }));
    return { path, header: this.header, events, notes, truncatedAt: null, fileSize: 0 };
  }

  /** Write events.pinf through RawFileWriter: header, events in time order, then the notes. */
  writeTo(path: string): void {
    const writer = RawFileWriter.create(path, this.header);
    try {
      const events = this.sortedEvents();
      for (let i = 0; i < events.length; i += 4096) {
        writer.appendEvents(events.slice(i, i + 4096).map((ev) => encodeEvent(ev)));
      }
      for (const note of this.notes) writer.appendNote(note);
    } finally {
      writer.close();
    }
  }
}

/**
 * One MoE transformer layer plus embedding and output, in llama.cpp's naming: a probed GET_ROWS,
 * an RMS_NORM + MUL pair ggml fuses, MUL_MATs with inner barriers, a KV-cache write (SET_ROWS
 * into a view of cache_k_l<layer>) read back through a VIEW node, the MoE routing (ARGSORT
 * ffn_moe_argsort-<layer> viewed as ffn_moe_topk-<layer>, as ggml_argsort_top_k builds it) and two
 * MUL_MAT_IDs around an unary SILU, and a trailing RESHAPE.
 */
export function moeLayerGraph(layer = 0): GraphSpec {
  const l = layer;
  return {
    leaves: [
      { name: "token_embd.weight", type: "q4_0", ne: [64, 100] },
      { name: "inp_tokens", type: "i32", ne: [1] },
      { name: `blk.${l}.attn_norm.weight`, ne: [64] },
      { name: `blk.${l}.attn_q.weight`, type: "q4_0", ne: [64, 64] },
      { name: `cache_k_l${l}`, type: "f16", ne: [64, 256] },
      { name: `blk.${l}.ffn_gate_inp.weight`, ne: [64, 4] },
      { name: `blk.${l}.ffn_gate_exps.weight`, type: "q4_0", ne: [64, 128, 4] },
      { name: `blk.${l}.ffn_down_exps.weight`, type: "q4_0", ne: [128, 64, 4] },
      { name: "output.weight", type: "q4_0", ne: [64, 100] },
    ],
    nodes: [
      { name: "inp_embd", op: "GET_ROWS", src: ["token_embd.weight", "inp_tokens"] },
      { name: `norm-${l}`, op: "RMS_NORM", src: ["inp_embd"] },
      { name: `attn_norm-${l}`, op: "MUL", src: [`norm-${l}`, `blk.${l}.attn_norm.weight`] },
      { name: `Qcur-${l}`, op: "MUL_MAT", src: [`blk.${l}.attn_q.weight`, `attn_norm-${l}`] },
      {
        name: `k_store-${l}`,
        op: "SET_ROWS",
        src: [`Qcur-${l}`],
        viewOf: `cache_k_l${l}`,
        type: "f16",
      },
      { name: `k-${l}`, op: "VIEW", src: [`cache_k_l${l}`], viewOf: `cache_k_l${l}`, type: "f16" },
      { name: `kq-${l}`, op: "MUL_MAT", src: [`k-${l}`, `Qcur-${l}`] },
      {
        name: `ffn_moe_logits-${l}`,
        op: "MUL_MAT",
        src: [`blk.${l}.ffn_gate_inp.weight`, `kq-${l}`],
      },
      { name: `ffn_moe_argsort-${l}`, op: "ARGSORT", src: [`ffn_moe_logits-${l}`], type: "i32" },
      {
        name: `ffn_moe_topk-${l}`,
        op: "VIEW",
        src: [`ffn_moe_argsort-${l}`],
        viewOf: `ffn_moe_argsort-${l}`,
        type: "i32",
      },
      {
        name: `ffn_moe_gate-${l}`,
        op: "MUL_MAT_ID",
        src: [`blk.${l}.ffn_gate_exps.weight`, `kq-${l}`, `ffn_moe_topk-${l}`],
      },
      { name: `ffn_moe_silu-${l}`, op: "UNARY", sub: "SILU", src: [`ffn_moe_gate-${l}`] },
      {
        name: `ffn_moe_down-${l}`,
        op: "MUL_MAT_ID",
        src: [`blk.${l}.ffn_down_exps.weight`, `ffn_moe_silu-${l}`, `ffn_moe_topk-${l}`],
      },
      { name: `ffn_out-${l}`, op: "ADD", src: [`ffn_moe_down-${l}`, "inp_embd"] },
      { name: "result_output", op: "MUL_MAT", src: ["output.weight", `ffn_out-${l}`] },
      {
        name: "result_output (reshaped)",
        op: "RESHAPE",
        src: ["result_output"],
        viewOf: "result_output",
      },
    ],
  };
}

/**
 * A dense llama-like graph of `layers` layers (about 16 computed nodes each), every op probed
 * except MUL_MAT_ID: the shape of the synthetic runs used to measure model-building speed.
 */
export function denseGraph(layers: number): GraphSpec {
  const leaves: TensorSpec[] = [
    { name: "token_embd.weight", type: "q4_0" },
    { name: "inp_tokens", type: "i32" },
    { name: "inp_pos", type: "i32" },
    { name: "output.weight", type: "q4_0" },
  ];
  const nodes: TensorSpec[] = [
    { name: "inp_embd", op: "GET_ROWS", src: ["token_embd.weight", "inp_tokens"] },
  ];
  let input = "inp_embd";
  for (let l = 0; l < layers; l++) {
    for (const w of [
      "attn_norm",
      "attn_q",
      "attn_k",
      "attn_v",
      "attn_output",
      "ffn_norm",
      "ffn_gate",
      "ffn_up",
      "ffn_down",
    ]) {
      leaves.push({ name: `blk.${l}.${w}.weight`, type: "q4_0" });
    }
    leaves.push({ name: `cache_k_l${l}`, type: "f16" }, { name: `cache_v_l${l}`, type: "f16" });
    const n = (name: string, op: string, src: string[], extra: Partial<TensorSpec> = {}) =>
      nodes.push({ name: `${name}-${l}`, op, src, ...extra });
    n("norm", "RMS_NORM", [input]);
    n("attn_norm", "MUL", [`norm-${l}`, `blk.${l}.attn_norm.weight`]);
    n("Qcur", "MUL_MAT", [`blk.${l}.attn_q.weight`, `attn_norm-${l}`]);
    n("Kcur", "MUL_MAT", [`blk.${l}.attn_k.weight`, `attn_norm-${l}`]);
    n("Vcur", "MUL_MAT", [`blk.${l}.attn_v.weight`, `attn_norm-${l}`]);
    n("Qrope", "ROPE", [`Qcur-${l}`, "inp_pos"]);
    n("Krope", "ROPE", [`Kcur-${l}`, "inp_pos"]);
    n("k_store", "SET_ROWS", [`Krope-${l}`], { viewOf: `cache_k_l${l}` });
    n("v_store", "SET_ROWS", [`Vcur-${l}`], { viewOf: `cache_v_l${l}` });
    n("k", "VIEW", [`cache_k_l${l}`], { viewOf: `cache_k_l${l}` });
    n("kq", "MUL_MAT", [`k-${l}`, `Qrope-${l}`]);
    n("kq_soft_max", "SOFT_MAX", [`kq-${l}`]);
    n("kqv", "MUL_MAT", [`cache_v_l${l}`, `kq_soft_max-${l}`]);
    n("attn_out", "MUL_MAT", [`blk.${l}.attn_output.weight`, `kqv-${l}`]);
    n("ffn_inp", "ADD", [`attn_out-${l}`, input]);
    n("ffn_norm_raw", "RMS_NORM", [`ffn_inp-${l}`]);
    n("ffn_norm", "MUL", [`ffn_norm_raw-${l}`, `blk.${l}.ffn_norm.weight`]);
    n("ffn_gate", "MUL_MAT", [`blk.${l}.ffn_gate.weight`, `ffn_norm-${l}`]);
    n("ffn_up", "MUL_MAT", [`blk.${l}.ffn_up.weight`, `ffn_norm-${l}`]);
    n("ffn_swiglu", "GLU", [`ffn_gate-${l}`, `ffn_up-${l}`], { sub: "SWIGLU" });
    n("ffn_out", "MUL_MAT", [`blk.${l}.ffn_down.weight`, `ffn_swiglu-${l}`]);
    n("l_out", "ADD", [`ffn_out-${l}`, `ffn_inp-${l}`]);
    input = `l_out-${l}`;
  }
  nodes.push({ name: "result_output", op: "MUL_MAT", src: ["output.weight", input] });
  return { nodes, leaves };
}

/**
 * A synthetic run of `tokens` decode calls over denseGraph(layers) on `threads` threads: one prefill
 * that describes the graph, then reuses. Used to measure buildRun on about a million events.
 */
export function syntheticRecorder(
  tokens: number,
  layers: number,
  threads: number,
  options: {
    header?: RunHeader;
    /** compute ns of a node on thread ith in call seq */
    duration?: (node: TensorSpec, ith: number, seq: number) => number;
    /** ComputeOptions' `steps` and `stepsWithOps` */
    steps?: boolean;
    stepsWithOps?: boolean;
  } = {},
): FixtureRecorder {
  const rec = new FixtureRecorder(options.header);
  const graph = denseGraph(layers);
  const tids = Array.from({ length: threads }, (_, i) => 2000 + i);
  const duration =
    options.duration ??
    ((n: TensorSpec, ith: number, seq: number) =>
      (n.op === "MUL_MAT" ? 20_000 : 3_000) + ith * 500 + (seq % 7) * 10);
  for (let seq = 1; seq <= tokens; seq++) {
    rec.token(seq, seq === 1 ? 8 : 1, tids[0]!, () => {
      rec.compute({
        cgraph: 0xc0ffee00n,
        signature: seq === 1 ? 0x1111n : 0x2222n,
        graph,
        changed: seq <= 2,
        threads: tids,
        duration: (n, ith) => duration(n, ith, seq),
        ...(options.steps ? { steps: true, stepsWithOps: options.stepsWithOps ?? false } : {}),
      });
    });
  }
  return rec;
}

/** The threads of moeRunFixture: [0] calls llama_decode and is worker 0. */
export const MOE_FIXTURE_TIDS = [1001, 1002, 1003];

export interface MoeRunFixture {
  rec: FixtureRecorder;
  tids: number[];
  /** per llama_decode call: its batch, the simulated CPU graph, the expert rows emitted */
  tokens: { seq: number; nTokens: number; compute: ComputeResult; experts: number[][] }[];
  /** where worker 1 was preempted (inside kq-0 of the third call) */
  preemption: { tid: number; fromNs: bigint; toNs: bigint; node: string };
}

/**
 * Three llama_decode calls over moeLayerGraph(0) on three threads: a prefill of 3 tokens (graph
 * described), a decode (new signature, described) and a decode reusing it. MUL_MAT_ID and the
 * unary SILU are not probed, RMS_NORM + MUL are fused, worker 1 is preempted inside kq-0 of the
 * last call, the main thread sleeps between calls, MoE ids are read for every call, and the
 * recorder's drops and exit notes close the run.
 */
export function moeRunFixture(): MoeRunFixture {
  const rec = new FixtureRecorder();
  const graph = moeLayerGraph(0);
  const tids = MOE_FIXTURE_TIDS;
  const tokens: MoeRunFixture["tokens"] = [];
  const calls = [
    { seq: 1, nTokens: 3, signature: 0x100n, changed: true },
    { seq: 2, nTokens: 1, signature: 0x200n, changed: true },
    { seq: 3, nTokens: 1, signature: 0x200n, changed: false },
  ];
  for (const call of calls) {
    const experts = Array.from({ length: call.nTokens }, (_, t) => [
      (call.seq + t) % 4,
      (call.seq + t + 1) % 4,
    ]);
    let compute: ComputeResult | undefined;
    rec.token(call.seq, call.nTokens, tids[0]!, () => {
      compute = rec.compute({
        cgraph: 0xabc000n,
        signature: call.signature,
        graph,
        changed: call.changed,
        threads: tids,
        probed: (n) => n.op !== "MUL_MAT_ID" && n.op !== "UNARY",
        duration: (n, ith) =>
          (n.op === "MUL_MAT" || n.op === "MUL_MAT_ID" ? 4000 : 1000) * call.nTokens + 300 * ith,
        onStep: (step, nodes) => {
          if (nodes[0]!.name === "ffn_moe_gate-0") {
            rec.moeIds(tids[0]!, step.releaseNs, "ffn_moe_topk-0", "ffn_moe_gate-0", experts);
          }
        },
      });
    });
    tokens.push({ seq: call.seq, nTokens: call.nTokens, compute: compute!, experts });
    rec.sleep(tids[0]!, rec.now - 9_000n, rec.now - 4_000n);
  }
  const kq = graph.nodes.findIndex((n) => n.name === "kq-0");
  const step = tokens[2]!.compute.steps.find((s) => s.nodes[0] === kq)!;
  const worker = step.threads[1]!;
  const preemption = {
    tid: worker.tid,
    fromNs: worker.opStartNs + 500n,
    toNs: worker.opStartNs + 1_500n,
    node: "kq-0",
  };
  rec.preempt(preemption.tid, preemption.fromNs, preemption.toNs, {
    comm: "stress-ng",
    tgid: 4242,
    tid: 4243,
  });
  rec.note({ kind: "drops", ringBufferFull: 0, readFailed: 0, mapFull: 0, nodesTruncated: 0 });
  rec.note({ kind: "exit", code: 0, signal: null });
  return { rec, tids, tokens, preemption };
}

/** One sequence's part of a simulated server call: [seq id, tokens, first position, outputs]. */
export type ServerPart = [number, number, number, number];

/** A call of serverRecorder: its sequences' parts, after `gapNs` of nothing (default 20 us). */
export interface ServerCall {
  parts: ServerPart[];
  gapNs?: bigint;
}

/**
 * A simulated llama-server with several slots: each llama_decode call's batch as the server fills
 * it (per sequence: its tokens, first position and outputs wanted, ABI 4), computing
 * denseGraph(1) on two threads (a matrix multiply taking `mulMatNsPerToken` per token of the
 * batch); the recording stops `tailNs` after the last call (the end note).
 */
export function serverRecorder(
  calls: readonly ServerCall[],
  tailNs = 500_000_000n,
  mulMatNsPerToken = 4_000,
): FixtureRecorder {
  const rec = new FixtureRecorder();
  const graph = denseGraph(1);
  const tids = [3000, 3001];
  const flags = BatchFlag.POS | BatchFlag.SEQ_ID | BatchFlag.OUTPUTS;
  calls.forEach((call, i) => {
    rec.now += call.gapNs ?? 20_000n;
    const seqs: BatchSequence[] = call.parts.map(([seqId, nTokens, posMin, nOutputs]) => ({
      seqId,
      nTokens,
      posMin,
      posMax: posMin + nTokens - 1,
      nOutputs,
    }));
    const nTokens = seqs.reduce((n, s) => n + s.nTokens, 0);
    const seq = i + 1;
    rec.token(
      seq,
      nTokens,
      tids[0]!,
      () => {
        rec.compute({
          cgraph: 0x5e4e00n,
          signature: 0x3333n,
          graph,
          changed: seq === 1,
          threads: tids,
          duration: (n, ith) =>
            (n.op === "MUL_MAT" ? mulMatNsPerToken * nTokens : 1_000) + ith * 200,
        });
      },
      true,
      { flags, seqs },
    );
  });
  rec.note({ kind: "end", stoppedNs: String(rec.now + tailNs) });
  return rec;
}

/**
 * Three slots serving five requests, as llama-server batches them: A's prompt alone, then B's
 * prompt beside A's decoding (a mixed call), C's prompt in two chunks beside both, D on A's slot
 * reusing 2 tokens of its cache, a pause of 3 s (every request idle), then E on B's slot, cut off
 * by the end of the recording.
 */
export function serverRunFixture(): FixtureRecorder {
  return serverRecorder(
    [
      { parts: [[0, 6, 0, 1]] },
      {
        parts: [
          [0, 1, 6, 1],
          [1, 5, 0, 1],
        ],
      },
      {
        parts: [
          [0, 1, 7, 1],
          [1, 1, 5, 1],
          [2, 4, 0, 0],
        ],
      },
      {
        parts: [
          [0, 1, 8, 1],
          [1, 1, 6, 1],
          [2, 4, 4, 1],
        ],
      },
      {
        parts: [
          [0, 1, 9, 1],
          [1, 1, 7, 1],
          [2, 1, 8, 1],
        ],
      },
      {
        parts: [
          [1, 1, 8, 1],
          [2, 1, 9, 1],
        ],
      },
      {
        parts: [
          [0, 5, 2, 1],
          [1, 1, 9, 1],
          [2, 1, 10, 1],
        ],
      },
      {
        parts: [
          [0, 1, 7, 1],
          [2, 1, 11, 1],
        ],
      },
      { parts: [[1, 4, 0, 1]], gapNs: 3_000_000_000n },
      { parts: [[1, 1, 4, 1]] },
    ],
    100_000n,
  );
}
