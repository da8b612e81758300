// SPDX-License-Identifier: Apache-2.0
// The native addon as an interface, so that the recorder can be tested with a fake one and
// without root. loadNativeTracer() loads the real one built from native/.
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { Aggregates } from "../trace/notes.js";

/** Field offsets of the target's ggml structs, as native/src/tracer.h's pi_layout. */
export interface NativeLayout {
  tensorType: number;
  tensorNe: number;
  tensorNb: number;
  tensorOp: number;
  tensorOpParams: number;
  tensorFlags: number;
  tensorSrc: number;
  tensorViewSrc: number;
  tensorViewOffs: number;
  tensorData: number;
  tensorName: number;
  cgraphNNodes: number;
  cgraphNodes: number;
  paramsIth: number;
  paramsNth: number;
  cplanNThreads: number;
  /** bit i of the 128-bit mask (four 32-bit words): ggml op i is empty, the loop skips it */
  emptyOps0: number;
  emptyOps1: number;
  emptyOps2: number;
  emptyOps3: number;
  /** enum values of GGML_OP_UNARY and GGML_OP_GLU (255 when the build has none) */
  opUnary: number;
  opGlu: number;
  /** ... and of the ops whose bytes are not their tensors' whole sizes */
  opGetRows: number;
  opSetRows: number;
  opMulMatId: number;
  /** ggml_type_size and ggml_blck_size by type index (empty: the build did not say) */
  typeSizes: number[];
  blockSizes: number[];
  /** offset of `device` in struct ggml_backend; 0 when unknown (splits then name no device) */
  backendDevice: number;
}

export interface NativeTracerOptions {
  tgid: number;
  /** 1 token, 2 graph, 3 op (enum pi_level) */
  level: number;
  sampleEvery: number;
  windowFirst: number;
  windowLast: number;
  /** nothing of the calls after windowLast streams (the host agent's windows) */
  windowOnly?: boolean;
  opsWithoutTokens: boolean;
  moe: boolean;
  ringBufferBytes: number;
  /** per-operator probes go on as uprobe_multi links (Linux 6.6+) */
  uprobeMulti: boolean;
  /** false (level metrics): no event leaves the kernel but the dynamic linker's */
  stream: boolean;
  /** keep the in-kernel aggregates (aggregates()) */
  aggregate: boolean;
  /** ...also per layer and operator function (reads each operator's tensor name) */
  aggregateLayers: boolean;
  /** ...also MoE expert selections per layer (where expert ids are read: levels that stream) */
  aggregateMoe: boolean;
  /** tokens of a llama_decode batch read at most (the kernel's bound is MAX_BATCH_TOKENS) */
  batchTokens: number;
  /** perf events to read at operator and barrier boundaries, per CPU */
  counters: { name: string; type: number; config: bigint; config1: bigint; config2: bigint }[];
  /**
   * the host agent: probes serve every process that maps their file (tgid 0), the processes
   * followed are those addTarget() names, exec, exit and dynamic linker activity of every process
   * come as control events
   */
  multi?: boolean;
}

export type ProbeHandler =
  | "decode_enter"
  | "decode_exit"
  | "sched_graph_enter"
  | "sched_graph_exit"
  | "sched_alloc"
  | "cpu_graph_enter"
  | "cpu_graph_exit"
  | "op_enter"
  | "op_method_enter"
  | "op_exit"
  | "barrier_enter"
  | "barrier_exit"
  | "step_site"
  | "dl_activity"
  | "split_enter"
  | "split_exit"
  | "copy_enter"
  | "copy_exit"
  | "copy_async_enter"
  | "copy_async_exit"
  | "sync_enter"
  | "sync_exit"
  | "backend_call_enter"
  | "backend_call_exit";

export interface NativeTracer {
  /**
   * "" on success, else a message naming the symbol, the library and errno. `fileOffset` places
   * the probe at that offset of the file rather than at the symbol's first instruction.
   */
  attachUprobe(
    handler: ProbeHandler,
    binary: string,
    symbol: string,
    cookie: number,
    fileOffset?: number,
  ): string;
  /** one uprobe_multi link over many file offsets; cookies[i] goes with offsets[i] */
  attachUprobeMulti(
    handler: "op_enter" | "op_method_enter" | "op_exit" | "step_site",
    binary: string,
    fileOffsets: number[],
    cookies: number[],
  ): string;
  /** closes the most recent uprobe_multi link */
  dropLastMultiLink(): void;
  /** closes the links of `program` (single and uprobe_multi); returns how many */
  detachProgram(program: ProbeHandler): number;
  /** closes the single uprobes attached to `binary` (the path attachUprobe was given) */
  detachBinary(binary: string): number;
  attachSchedTracepoints(): string;
  /** multi: exec and exit of processes as control events (abi/constants EV_PROCESS_*) */
  attachProcessTracepoints(): string;
  /** multi: follow process `tgid` from now on, its state empty; "" or why not */
  addTarget(tgid: number): string;
  /** multi: forget process `tgid` and what the maps hold of it */
  removeTarget(tgid: number): void;
  setLayout(layout: NativeLayout): string;
  /**
   * Batches of `u32 length + event` records, delivered on the JS thread; null once after the
   * last. `counts[type]` is how many records of each event type a batch holds.
   */
  start(onBatch: (batch: Buffer | null, counts: Uint32Array | null) => void): void;
  /** drains the ring buffer and stops polling; the last batches and the null still arrive after */
  stop(): void;
  detach(): void;
  close(): void;
  counters(): { drops: number[]; hits: number[]; attached: number };
  /** each requested perf counter: opened on every CPU, or the reason (errno in words) */
  counterStatus(): { name: string; opened: boolean; error: string }[];
  /**
   * bpf/profinfer.h pi_token_agg / pi_op_agg ..., summed over CPUs, cumulative; the token
   * aggregates are process `tgid`'s (multi), else the target's
   */
  aggregates(tgid?: number): Aggregates;
  /** the requests the kernel follows; `finished` ones are handed out once */
  requests(): KernelRequests;
}

/** A request as the kernel follows it (bpf/profinfer.h pi_request); ns are CLOCK_MONOTONIC. */
export interface KernelRequest {
  /** requests started before it while tracing */
  id: number;
  pid: number;
  ctx: bigint;
  seqId: number;
  startNs: bigint;
  /** the end of the call of its first output; null: none yet */
  firstOutputNs: bigint | null;
  endNs: bigint;
  promptTokens: number;
  generatedTokens: number;
  cachedTokens: number | null;
  steps: number;
  longestGapNs: bigint;
  lastCallNs: bigint;
  /** abi/constants RequestFlag */
  flags: number;
}

export interface KernelRequests {
  /** each sequence's current request */
  active: KernelRequest[];
  /** requests a new one replaced since the last read */
  finished: KernelRequest[];
  /** llama_decode calls in flight */
  inFlight: { tgid: number; ctx: bigint; startNs: bigint }[];
}

export interface NativeModule {
  Tracer: new (options: NativeTracerOptions) => NativeTracer;
  clockPair(): [string, string];
  eventAbi: number;
  /** upper bounds (ns) of the aggregate histograms' buckets; one more bucket is +Inf */
  aggregateBoundsNs: number[];
}

const nativeDir = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "native");

/** The compiled ggml layout probe (native/layout-probe/ggml_layout_probe.c). */
export const layoutProbePath = join(nativeDir, "build", "Release", "ggml-layout-probe");

/** The compiled backends probe (native/layout-probe/ggml_backends_probe.c). */
export const backendsProbePath = join(nativeDir, "build", "Release", "ggml-backends-probe");

/** The compiled machine probe (native/machine-probe/machine_probe.c). */
export const machineProbePath = join(nativeDir, "build", "Release", "profinfer-machine-probe");

export function loadNativeModule(): NativeModule {
  const path = join(nativeDir, "build", "Release", "profinfer_native.node");
  if (!existsSync(path)) {
    throw new Error(`the profinfer addon is not built (${path} is missing): run 'npm run build'`);
  }
  return createRequire(import.meta.url)(path) as NativeModule;
}
