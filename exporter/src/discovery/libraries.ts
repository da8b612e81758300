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
  /** where a probe on each traced function goes, by symbol */
  probeSites: Map<string, ProbeSite>;
  /** _dl_debug_state: the dynamic linker */
  dynamicLinker: boolean;
  hasDebugInfo: boolean;
  hasSymbolTable: boolean;
}

const OP_FUNCTION = /^ggml_compute_forward_[a-z0-9_]+$/;

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
  const opFunctions = ggmlCpu
    ? [...elf.symbols.values()]
        .filter((s) => s.isFunction && OP_FUNCTION.test(s.name))
        .map((s) => s.name)
        .sort()
    : [];
  const probeSites = new Map<string, ProbeSite>();
  const traced = [
    "llama_decode",
    "ggml_backend_sched_graph_compute_async",
    "ggml_backend_sched_alloc_graph",
    "ggml_graph_compute",
    "ggml_barrier",
    "_dl_debug_state",
    ...opFunctions,
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
