// SPDX-License-Identifier: Apache-2.0
// Which probe goes where, for a library and a level: pure functions of what discovery found in
// the library (its symbols, probe sites and step sites) and the recording's options. The
// recorder attaches what they plan (probeAttacher.ts).
import {
  OP_BY_TENSOR,
  OP_NO_AGGREGATE,
  PiLevel,
  STEP_FINAL,
  STEP_REGISTERS,
} from "../abi/constants.js";
import {
  functionLabel,
  isExtraComputeMethod,
  opsOfFunction,
  type LibraryRoles,
} from "../discovery/libraries.js";
import type { StepSite } from "../discovery/stepSites.js";
import type { RecordLevel } from "../trace/header.js";
import type { ProbeHandler } from "./nativeTracer.js";

/**
 * BPF level (enum pi_level) of each level. `metrics` probes what `op` does but sends no event to
 * user space: the kernel keeps the aggregates the metrics exporter reads.
 */
export const LEVELS: Readonly<Record<RecordLevel, number>> = {
  token: PiLevel.TOKEN,
  graph: PiLevel.GRAPH,
  op: PiLevel.OP,
  metrics: PiLevel.OP,
};

/** The operators that consume MoE routing ids (read when the first of them starts). */
export const MOE_CONSUMERS: readonly string[] = ["get_rows", "mul_mat_id"];

/** A probe on a function's entry (or return), by symbol. */
export interface FunctionProbe {
  handler: ProbeHandler;
  symbol: string;
}

/**
 * A probe site: the function it is in, its file offset, the cookie its handler reads (an
 * operator function's index; for a step probe, the register holding node_n + 1, or final).
 */
export interface ProbeSite {
  symbol: string;
  offset: number;
  cookie: number;
}

const entryAndReturn = (symbol: string, enter: ProbeHandler, exit: ProbeHandler) => [
  { handler: enter, symbol },
  { handler: exit, symbol },
];

/**
 * The function probes of a library above the CPU backend: llama_decode (tokens), the scheduler's
 * graph compute and, where graphs are snapshotted, its allocation (which says when to read them
 * again).
 */
export function callProbes(roles: LibraryRoles, level: number): FunctionProbe[] {
  const probes: FunctionProbe[] = [];
  if (roles.llama) probes.push(...entryAndReturn("llama_decode", "decode_enter", "decode_exit"));
  if (roles.ggmlBase && level >= PiLevel.GRAPH)
    probes.push(
      ...entryAndReturn(
        "ggml_backend_sched_graph_compute_async",
        "sched_graph_enter",
        "sched_graph_exit",
      ),
    );
  if (
    roles.ggmlBase &&
    level >= PiLevel.OP &&
    roles.probeSites.has("ggml_backend_sched_alloc_graph")
  )
    probes.push({ handler: "sched_alloc", symbol: "ggml_backend_sched_alloc_graph" });
  return probes;
}

/**
 * ggml's backend API that every backend goes through, at the graph level and above: each split
 * handed to a backend, each tensor copied to another backend's buffer (ggml_backend_tensor_copy,
 * and a known backend's own async copy), each wait of the host for a backend.
 */
export function backendApiProbes(roles: LibraryRoles, level: number): FunctionProbe[] {
  if (level < PiLevel.GRAPH) return [];
  const probes: FunctionProbe[] = [];
  const both = (symbol: string, enter: ProbeHandler, exit: ProbeHandler) => {
    if (roles.probeSites.has(symbol)) probes.push(...entryAndReturn(symbol, enter, exit));
  };
  both("ggml_backend_graph_compute_async", "split_enter", "split_exit");
  both("ggml_backend_tensor_copy", "copy_enter", "copy_exit");
  both("ggml_backend_synchronize", "sync_enter", "sync_exit");
  for (const symbol of roles.asyncCopies) both(symbol, "copy_async_enter", "copy_async_exit");
  return probes;
}

/** The CPU backend's graph compute (one CPU split), at the graph level and above. */
export function cpuGraphProbes(roles: LibraryRoles, level: number): FunctionProbe[] {
  return roles.ggmlCpu && level >= PiLevel.GRAPH
    ? entryAndReturn("ggml_graph_compute", "cpu_graph_enter", "cpu_graph_exit")
    : [];
}

/**
 * The barrier's entry and return (ggml_barrier, or the GOMP_barrier an inlined one calls): the
 * boundaries between operators, for function probes.
 */
export function barrierProbes(roles: LibraryRoles): FunctionProbe[] {
  return roles.barrier ? entryAndReturn(roles.barrier, "barrier_enter", "barrier_exit") : [];
}

/** The step sites as probe sites: the loop's (cookie: its register) and the final ones. */
export function stepProbeSites(sites: readonly StepSite[]): {
  loop: (ProbeSite & { site: StepSite })[];
  final: (ProbeSite & { site: StepSite })[];
} {
  const probe = (site: StepSite) => ({
    symbol: site.function ?? "ggml_graph_compute_thread",
    offset: site.fileOffset,
    cookie: site.final ? STEP_FINAL : STEP_REGISTERS.indexOf(site.register!),
    site,
  });
  return {
    loop: sites.filter((s) => !s.final).map(probe),
    final: sites.filter((s) => s.final).map(probe),
  };
}

export interface OperatorFunctionPlan {
  /**
   * the sites to probe, ggml_compute_forward_<op> functions and the extra buffer types' compute
   * methods (whose arguments start one on, after `this`); `index` continues the run's table of
   * probed functions (OP events name them by it)
   */
  functions: (ProbeSite & { index: number })[];
  methods: (ProbeSite & { index: number })[];
  /** functions left to the barriers: their entry instruction would be single-stepped */
  stepped: string[];
}

/**
 * Entry and return probes on the per-operator functions of `wanted` ops (null: all). With
 * `moeOnly` (beside step probes) they only read MoE ids: every one is probed, and its cookie
 * keeps it out of the aggregates that the step probes fill. An extra buffer type's compute
 * method computes several ops: its aggregates are keyed by each tensor's op.
 */
export function operatorFunctionSites(
  roles: LibraryRoles,
  wanted: readonly string[] | null,
  options: { probeAllOps: boolean; moeOnly: boolean; firstIndex: number },
): OperatorFunctionPlan {
  const plan: OperatorFunctionPlan = { functions: [], methods: [], stepped: [] };
  const add = (symbol: string, method: boolean) => {
    if (wanted && !opsOfFunction(symbol).some((op) => wanted.includes(op))) return;
    const site = roles.probeSites.get(symbol);
    if (!site) return;
    if (!site.emulated && !options.probeAllOps && !options.moeOnly) {
      plan.stepped.push(functionLabel(symbol));
      return;
    }
    const index = options.firstIndex + plan.functions.length + plan.methods.length;
    const extra = roles.extraComputes.includes(symbol);
    const flags = (options.moeOnly ? OP_NO_AGGREGATE : 0) + (extra ? OP_BY_TENSOR : 0);
    (method ? plan.methods : plan.functions).push({
      index,
      symbol,
      offset: site.fileOffset,
      cookie: index + flags,
    });
  };
  for (const symbol of roles.opFunctions) add(symbol, false);
  for (const symbol of roles.extraComputes) add(symbol, isExtraComputeMethod(symbol));
  return plan;
}
