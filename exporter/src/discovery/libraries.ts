// SPDX-License-Identifier: Apache-2.0
// Which files a process has mapped, and what each offers the tracer: llama_decode, the backend
// scheduler, a CPU backend with its per-operator functions, the dynamic linker's debug hook.
import { readFileSync } from "node:fs";
import { knownBackendFunctions, type KnownBackendCall } from "./backends.js";
import { readElf, type ElfFile } from "./elf.js";
import { findProbeSite, type ProbeSite } from "./probeSite.js";
import { callTargetsOf } from "./stepSites.js";

export interface LibraryRoles {
  path: string;
  /** llama_decode: token level */
  llama: boolean;
  /** ggml_backend_sched_graph_compute_async and the ggml core API: graph level, layout probe */
  ggmlBase: boolean;
  /** ggml_graph_compute: a CPU backend */
  ggmlCpu: boolean;
  /**
   * the CPU backend's barrier between operators, by the symbol its probe site is kept under in
   * `probeSites`: ggml_barrier, or GOMP_barrier where an OpenMP build inlined a static
   * ggml_barrier into its callers (releases until late 2024); null when neither is found
   */
  barrier: "ggml_barrier" | "GOMP_barrier" | null;
  /** ggml_compute_forward_<op> functions found in the CPU backend (exported or local) */
  opFunctions: string[];
  /**
   * the extra buffer types' compute methods and functions (repacked or AMX weights): ggml computes
   * a matmul of such weights there instead of in ggml_compute_forward_mul_mat
   */
  extraComputes: string[];
  /** where a probe on each traced function goes, by symbol */
  probeSites: Map<string, ProbeSite>;
  /** ggml_backend_dev_count: ggml's backend registry (libggml), which lists the build's backends */
  ggmlRegistry: boolean;
  /** a known backend's own functions (discovery/backends.ts) and its cpy_tensor_async */
  backendCalls: KnownBackendCall[];
  asyncCopies: string[];
  /** _dl_debug_state: the dynamic linker */
  dynamicLinker: boolean;
  hasDebugInfo: boolean;
  hasSymbolTable: boolean;
}

const OP_FUNCTION = /^ggml_compute_forward_[a-z0-9_]+$/;
/** ggml's backend API that every backend goes through: a split, a copy, the host's wait */
export const GENERIC_BACKEND_FUNCTIONS = [
  "ggml_backend_graph_compute_async",
  "ggml_backend_tensor_copy",
  "ggml_backend_synchronize",
] as const;
/** An extra buffer type's ggml::cpu::<type>::...::compute_forward(ggml_compute_params*, ggml_tensor*) */
const EXTRA_COMPUTE_METHOD =
  /^_ZN4ggml3cpu(\d+)\w*15compute_forwardEP19ggml_compute_paramsP11ggml_tensor$/;
/** ggml_backend_<type>_mul_mat(const ggml_compute_params*, ggml_tensor*): what AMX's method calls */
const EXTRA_COMPUTE_FUNCTION =
  /^_Z\d+ggml_backend_([a-z0-9]+)_mul_matPK19ggml_compute_paramsP11ggml_tensor$/;
/** The ops an extra buffer type computes (ggml-cpu's extra_buffer_type::supports_op). */
const EXTRA_COMPUTE_OPS = ["mul_mat", "mul_mat_id"];

/** A file a process maps: its path (in the process's mount namespace) and its file's identity. */
export interface MappedFile {
  path: string;
  /** device:inode as /proc/PID/maps gives them: one file, whatever path reaches it */
  fileId: string;
}

/** File-backed mappings of a process, in the order of /proc/PID/maps, each path once. */
export function mappedObjects(pid: number): MappedFile[] {
  const maps = readFileSync(`/proc/${pid}/maps`, "utf8");
  const out: MappedFile[] = [];
  const seen = new Set<string>();
  for (const line of maps.split("\n")) {
    // address perms offset dev inode path
    const fields = line.split(/\s+/);
    const path = fields.slice(5).join(" ");
    if (!path.startsWith("/") || path.endsWith(" (deleted)") || seen.has(path)) continue;
    seen.add(path);
    out.push({ path, fileId: `${fields[3]}:${fields[4]}` });
  }
  return out;
}

/** The paths of mappedObjects(pid). */
export function mappedFiles(pid: number): string[] {
  return mappedObjects(pid).map((m) => m.path);
}

/**
 * Where each file-backed mapping of a process starts: the address of its file offset 0, the base
 * its symbols' virtual addresses are relative to (a shared library's first segment).
 */
export function mappedBases(pid: number): Map<string, bigint> {
  const bases = new Map<string, bigint>();
  for (const line of readFileSync(`/proc/${pid}/maps`, "utf8").split("\n")) {
    const fields = line.split(/\s+/);
    const path = fields.slice(5).join(" ");
    if (!path.startsWith("/") || fields[2] !== "00000000" || bases.has(path)) continue;
    bases.set(path, BigInt(`0x${fields[0]!.split("-")[0]}`));
  }
  return bases;
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
  const ggmlCpu = has(elf, "ggml_graph_compute");
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
  const backend = knownBackendFunctions(elf);
  const traced = [
    "llama_decode",
    "ggml_backend_sched_graph_compute_async",
    "ggml_backend_sched_alloc_graph",
    ...GENERIC_BACKEND_FUNCTIONS,
    ...backend.calls.map((c) => c.symbol),
    ...backend.asyncCopies,
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
  let barrier: LibraryRoles["barrier"] = null;
  if (ggmlCpu && probeSites.has("ggml_barrier")) barrier = "ggml_barrier";
  else if (ggmlCpu) {
    const site = openMpBarrierSite(elf);
    if (site) {
      probeSites.set("GOMP_barrier", site);
      barrier = "GOMP_barrier";
    }
  }
  return {
    path,
    llama: has(elf, "llama_decode"),
    ggmlBase: has(elf, "ggml_backend_sched_graph_compute_async") && has(elf, "ggml_op_name"),
    ggmlCpu,
    barrier,
    opFunctions,
    extraComputes,
    probeSites,
    ggmlRegistry: has(elf, "ggml_backend_dev_count"),
    backendCalls: backend.calls,
    asyncCopies: backend.asyncCopies,
    dynamicLinker: has(elf, "_dl_debug_state"),
    hasDebugInfo: elf.hasDebugInfo,
    hasSymbolTable: elf.hasSymbolTable,
  };
}

/**
 * Where an inlined ggml_barrier's `#pragma omp barrier` goes: libgomp's GOMP_barrier, reached
 * through this file's PLT stub. Entry and return probes on the stub see each of ggml's barrier
 * calls and nothing else of the process's (a probe there finds the caller's return address at
 * [rsp], as at a function's entry). A GOMP_barrier linked into the file is probed itself.
 */
function openMpBarrierSite(elf: ElfFile): ProbeSite | null {
  const own = findProbeSite(elf, "GOMP_barrier");
  if (own) return own;
  const stubs = [...callTargetsOf(elf, "GOMP_barrier")];
  const fileOffset = stubs.length === 1 ? elf.fileOffsetOf(stubs[0]!) : null;
  // an indirect jump through the GOT (after an endbr64 in CET builds): single-stepped
  return fileOffset === null
    ? null
    : { fileOffset, delta: 0, emulated: false, instruction: "PLT stub" };
}

/**
 * Whether a file carries ggml's code, found by what its symbols cannot tell once it is stripped:
 * the message of ggml's assertions, which every build of ggml keeps in its read-only data.
 */
export function carriesGgml(path: string): boolean {
  try {
    const elf = readElf(path);
    const rodata = elf.sections.find((s) => s.name === ".rodata" && s.address !== 0);
    return rodata
      ? (elf.bytesAt(rodata.address, rodata.size)?.includes("GGML_ASSERT") ?? false)
      : false;
  } catch {
    return false;
  }
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
