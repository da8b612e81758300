// SPDX-License-Identifier: Apache-2.0
// Which files a process has mapped, and what each offers the tracer: llama_decode, the backend
// scheduler, a CPU backend with its per-operator functions, the dynamic linker's debug hook.
import { readFileSync } from "node:fs";
import { readElf, type ElfFile } from "./elf.js";
import { findProbeSite, type ProbeSite } from "./probeSite.js";

export interface LibraryRoles {
  path: string;
  /** llama_decode: token level */
  llama: boolean;
  /** ggml_backend_sched_graph_compute_async and the ggml core API: graph level, layout probe */
  ggmlBase: boolean;
  /** ggml_graph_compute and ggml_barrier: a CPU backend */
  ggmlCpu: boolean;
  /** ggml_compute_forward_<op> functions found in the CPU backend (exported or local) */
  opFunctions: string[];
  /**
   * the extra buffer types' compute methods and functions (repacked or AMX weights): ggml computes
   * a matmul of such weights there instead of in ggml_compute_forward_mul_mat
   */
  extraComputes: string[];
  /** where a probe on each traced function goes, by symbol */
  probeSites: Map<string, ProbeSite>;
  /** _dl_debug_state: the dynamic linker */
  dynamicLinker: boolean;
  hasDebugInfo: boolean;
  hasSymbolTable: boolean;
}

const OP_FUNCTION = /^ggml_compute_forward_[a-z0-9_]+$/;
/** An extra buffer type's ggml::cpu::<type>::...::compute_forward(ggml_compute_params*, ggml_tensor*) */
const EXTRA_COMPUTE_METHOD =
  /^_ZN4ggml3cpu(\d+)\w*15compute_forwardEP19ggml_compute_paramsP11ggml_tensor$/;
/** ggml_backend_<type>_mul_mat(const ggml_compute_params*, ggml_tensor*): what AMX's method calls */
const EXTRA_COMPUTE_FUNCTION =
  /^_Z\d+ggml_backend_([a-z0-9]+)_mul_matPK19ggml_compute_paramsP11ggml_tensor$/;
/** The ops an extra buffer type computes (ggml-cpu's extra_buffer_type::supports_op). */
const EXTRA_COMPUTE_OPS = ["mul_mat", "mul_mat_id"];

/** File-backed mappings of a process, in the order of /proc/PID/maps, each path once. */
export function mappedFiles(pid: number): string[] {
  const maps = readFileSync(`/proc/${pid}/maps`, "utf8");
  const paths: string[] = [];
  const seen = new Set<string>();
  for (const line of maps.split("\n")) {
    // address perms offset dev inode path
    const fields = line.split(/\s+/);
    const path = fields.slice(5).join(" ");
    if (!path.startsWith("/") || path.endsWith(" (deleted)") || seen.has(path)) continue;
    seen.add(path);
    paths.push(path);
  }
  return paths;
}

function has(elf: ElfFile, name: string): boolean {
  return elf.symbols.get(name)?.isFunction === true;
}

/** What a mapped file offers; null for files that are not ELF (fonts, locale data, ...). */
export function classifyLibrary(path: string): LibraryRoles | null {
  let elf: ElfFile;
  try {
    elf = readElf(path);
  } catch {
    return null;
  }
  const ggmlCpu = has(elf, "ggml_graph_compute") && has(elf, "ggml_barrier");
  const functionsLike = (pattern: RegExp) =>
    ggmlCpu
      ? [...elf.symbols.values()]
          .filter((s) => s.isFunction && pattern.test(s.name))
          .map((s) => s.name)
          .sort()
      : [];
  const opFunctions = functionsLike(OP_FUNCTION);
  const extraComputes = [
    ...functionsLike(EXTRA_COMPUTE_METHOD),
    ...functionsLike(EXTRA_COMPUTE_FUNCTION),
  ];
  const probeSites = new Map<string, ProbeSite>();
  const traced = [
    "llama_decode",
    "ggml_backend_sched_graph_compute_async",
    "ggml_backend_sched_alloc_graph",
    "ggml_graph_compute",
    "ggml_barrier",
    "_dl_debug_state",
    ...opFunctions,
    ...extraComputes,
  ];
  for (const symbol of traced) {
    const site = findProbeSite(elf, symbol);
    if (site) probeSites.set(symbol, site);
  }
  return {
    path,
    llama: has(elf, "llama_decode"),
    ggmlBase: has(elf, "ggml_backend_sched_graph_compute_async") && has(elf, "ggml_op_name"),
    ggmlCpu,
    opFunctions,
    extraComputes,
    probeSites,
    dynamicLinker: has(elf, "_dl_debug_state"),
    hasDebugInfo: elf.hasDebugInfo,
    hasSymbolTable: elf.hasSymbolTable,
  };
}

/** The op name a per-operator function computes: ggml_compute_forward_mul_mat -> mul_mat. */
export function opOfFunction(symbol: string): string {
  return symbol.replace(/^ggml_compute_forward_/, "");
}

/** Whether `symbol` is an extra buffer type's compute method: its arguments start after `this`. */
export function isExtraComputeMethod(symbol: string): boolean {
  return EXTRA_COMPUTE_METHOD.test(symbol);
}

/** The ops a probed function computes. */
export function opsOfFunction(symbol: string): string[] {
  return EXTRA_COMPUTE_METHOD.test(symbol) || EXTRA_COMPUTE_FUNCTION.test(symbol)
    ? EXTRA_COMPUTE_OPS
    : [opOfFunction(symbol)];
}

/** How messages name a probed function: its op, or "mul_mat (repack)" for an extra compute. */
export function functionLabel(symbol: string): string {
  const method = EXTRA_COMPUTE_METHOD.exec(symbol);
  // the namespace after ggml::cpu, length-prefixed as the mangling writes it (3amx, 6repack)
  const start = "_ZN4ggml3cpu".length + (method?.[1]?.length ?? 0);
  const type = method
    ? symbol.slice(start, start + Number(method[1]))
    : EXTRA_COMPUTE_FUNCTION.exec(symbol)?.[1];
  return type ? `${EXTRA_COMPUTE_OPS[0]} (${type})` : opOfFunction(symbol);
}
