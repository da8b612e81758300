// SPDX-License-Identifier: Apache-2.0
// The llama.cpp targets of the set-up (the source build and node-llama-cpp's prebuilt
// libraries): present, with the symbols and debug info tracing needs.
import { basename, join } from "node:path";
import { classifyLibrary } from "../discovery/libraries.js";
import type { CacheManifest } from "../setup/cache.js";
import { checkBackends } from "./backends.js";
import type { DoctorCheck, DoctorHost } from "./checks.js";

export interface DebugInfoSummary {
  path: string;
  /** .debug_info: DWARF, needed to resolve the ggml_tensor layout from the library itself. */
  hasDebugInfo: boolean;
  /** .symtab: local symbols beyond the exported ones (static per-op functions ...). */
  hasSymbolTable: boolean;
  error?: string;
}

export function summarizeDebugInfo(host: DoctorHost, path: string): DebugInfoSummary {
  try {
    const names = new Set(host.readElfSections(path).map((section) => section.name));
    return { path, hasDebugInfo: names.has(".debug_info"), hasSymbolTable: names.has(".symtab") };
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    return { path, hasDebugInfo: false, hasSymbolTable: false, error: message };
  }
}

function describeDebugInfo(summary: DebugInfoSummary): string {
  const file = basename(summary.path);
  if (summary.error) return `${file}: unreadable (${summary.error})`;
  const debug = summary.hasDebugInfo ? "debug info" : "no debug info";
  const symtab = summary.hasSymbolTable ? ".symtab" : "no .symtab";
  return `${file}: ${debug}, ${symtab}`;
}

export const BUILD_LIBRARIES = ["libllama.so", "libggml-base.so", "libggml-cpu.so"] as const;
const PREBUILT_MAIN_LIBRARY = /^(libllama.*|libggml-base)\.so$/;
const PREBUILT_CPU_VARIANT = /^libggml-cpu-(.+)\.so$/;

export function checkLlamaTargets(host: DoctorHost): DoctorCheck[] {
  let manifest: CacheManifest | null;
  try {
    manifest = host.readManifest();
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    return [
      {
        id: "llama-targets",
        name: "llama.cpp targets",
        status: "missing",
        found: `set-up manifest unreadable: ${message}`,
        fix: "npm run setup",
      },
    ];
  }
  if (!manifest) {
    return [
      {
        id: "llama-targets",
        name: "llama.cpp targets",
        status: "missing",
        found: `no set-up manifest at ${host.manifestPath()}`,
        fix: "npm run setup",
      },
    ];
  }
  return [
    checkLlamaBuild(host, manifest),
    checkBackends(host, manifest),
    checkNodeLlamaCppPrebuilt(host, manifest),
    checkVerifiedBuilds(manifest),
  ];
}

export function checkLlamaBuild(host: DoctorHost, manifest: CacheManifest): DoctorCheck {
  const build = manifest.llamaCpp;
  const base = { id: "llama-build", name: "llama.cpp build" };
  const found = `${build.llamaCppRelease} (commit ${build.commit.slice(0, 12)}) in ${build.binDir}`;
  if (!host.exists(build.binDir)) {
    return { ...base, status: "missing", found: `${found}: folder absent`, fix: "npm run setup" };
  }
  const presentTargets = build.targets.filter((target) => host.exists(join(build.binDir, target)));
  const absentTargets = build.targets.filter((target) => !presentTargets.includes(target));
  const absentLibraries = BUILD_LIBRARIES.filter((name) => !host.exists(join(build.binDir, name)));
  const libraries = BUILD_LIBRARIES.filter((name) => !absentLibraries.includes(name)).map((name) =>
    summarizeDebugInfo(host, join(build.binDir, name)),
  );
  const notes = [
    `targets: ${presentTargets.join(" ") || "none"}${absentTargets.length ? `; absent: ${absentTargets.join(" ")}` : ""}`,
    ...libraries.map(describeDebugInfo),
    ...absentLibraries.map((name) => `${name}: absent`),
    ...describeProbeSites(join(build.binDir, "libggml-cpu.so")),
  ];
  const data = {
    release: build.llamaCppRelease,
    commit: build.commit,
    binDir: build.binDir,
    targets: presentTargets,
    absentTargets,
    libraries,
    absentLibraries,
  };
  if (absentTargets.length || absentLibraries.length) {
    return { ...base, status: "missing", found, notes, fix: "npm run setup", data };
  }
  // The build is RelWithDebInfo on purpose: without DWARF the tensor layout cannot be checked.
  const stripped = libraries.filter((library) => !library.hasDebugInfo || !library.hasSymbolTable);
  if (stripped.length) {
    return {
      ...base,
      status: "warn",
      found,
      notes,
      fix: `rebuild with debug info: delete ${build.buildDir} and run npm run setup`,
      data,
    };
  }
  return { ...base, status: "ok", found, notes, data };
}

/** How cheaply the operator functions of a CPU backend can be probed (see record's docs). */
function describeProbeSites(library: string): string[] {
  const roles = classifyLibrary(library);
  if (!roles || roles.opFunctions.length === 0) return [];
  const sites = roles.opFunctions
    .map((f) => roles.probeSites.get(f))
    .filter((s) => s !== undefined);
  const cheap = sites.filter((s) => s.emulated).length;
  return [
    `operator functions: ${roles.opFunctions.length}, ${cheap} with an emulated probe site, ` +
      `${sites.length - cheap} single-stepped (timed from the barriers unless --probe-all-ops)`,
  ];
}

export function checkNodeLlamaCppPrebuilt(host: DoctorHost, manifest: CacheManifest): DoctorCheck {
  const nodeLlamaCpp = manifest.nodeLlamaCpp;
  const base = { id: "node-llama-cpp", name: "node-llama-cpp" };
  const found = `${nodeLlamaCpp.version}, prebuilt libraries in ${nodeLlamaCpp.prebuiltDir}`;
  const entries = host.listDir(nodeLlamaCpp.prebuiltDir);
  if (entries === null) {
    return { ...base, status: "missing", found: `${found}: folder absent`, fix: "npm run setup" };
  }
  const cpuVariants = entries
    .map((name) => PREBUILT_CPU_VARIANT.exec(name)?.[1])
    .filter((variant): variant is string => variant !== undefined)
    .sort();
  const mainLibraries = entries.filter((name) => PREBUILT_MAIN_LIBRARY.test(name)).sort();
  const libraries = mainLibraries.map((name) =>
    summarizeDebugInfo(host, join(nodeLlamaCpp.prebuiltDir, name)),
  );
  const notes = [
    `libggml-cpu variants: ${cpuVariants.join(" ") || "none"}`,
    ...libraries.map(describeDebugInfo),
  ];
  const data = {
    version: nodeLlamaCpp.version,
    prebuiltDir: nodeLlamaCpp.prebuiltDir,
    cpuVariants,
    libraries,
  };
  if (!mainLibraries.some((name) => name.startsWith("libllama")) || cpuVariants.length === 0) {
    return {
      ...base,
      status: "missing",
      found: `${found}: libllama or libggml-cpu-* absent`,
      notes,
      fix: "npm run setup",
      data,
    };
  }
  // Prebuilt libraries ship without DWARF; their exported symbols are enough to attach.
  return { ...base, status: "ok", found, notes, data };
}

/**
 * What each kind of build not among the verified ones is expected to give, from how discovery
 * works (docs/builds.md says why for each).
 */
export const UNVERIFIED_BUILDS: readonly string[] = [
  "another release from October 2024 on, shared or static: every level; a compute loop without the step pattern is timed by probing the operator functions and the barrier (ggml_barrier, or the GOMP_barrier an OpenMP build inlined it into), and record says so",
  "a release whose ggml_barrier is inlined into a build without OpenMP: as above, but with no barrier to probe, only the operators whose functions are probed are timed (record says so)",
  "a release before ggml_graph_n_nodes and ggml_graph_node (mid-2024): the token level; the layout probe names the symbols it misses, and the graph and operator levels need the layout",
  "an executable stripped of its symbol table (strip --strip-all): nothing, and record says the executable is stripped; strip --strip-debug keeps what tracing needs",
  "an executable linked at fixed addresses (-no-pie): the token level; its layout cannot be resolved (it cannot be loaded beside the layout probe), and the graph and operator levels need it",
  "GPU backends other than Vulkan (CUDA, Metal, ...): calls, graphs and every split with its copies and the host's waits; operators only of the splits the CPU or BLAS computes (docs/cuda.md)",
  "other architectures than x86-64 (aarch64): operator functions probed instead of step sites",
];

/**
 * The builds the tests verify, as set-up built them on this machine: the pinned shared build and
 * node-llama-cpp's prebuilt libraries (checked above), one static executable with and without
 * OpenMP, older releases, llama-cpp-python.
 */
export function checkVerifiedBuilds(manifest: CacheManifest | null): DoctorCheck {
  const base = { id: "verified-builds", name: "verified builds" };
  const builds = manifest?.builds;
  const unverified = UNVERIFIED_BUILDS.map((line) => `unverified: ${line}`);
  if (!manifest || !builds) {
    return {
      ...base,
      status: "warn",
      found: "the test builds are not set up on this machine",
      notes: unverified,
      fix: "npm run setup (only the tests need them)",
    };
  }
  const seconds = (t: { buildSeconds?: number; cpuSeconds?: number }) =>
    t.buildSeconds === undefined
      ? ""
      : `, built in ${t.buildSeconds} s` +
        (t.cpuSeconds === undefined ? "" : ` (${t.cpuSeconds} s of CPU)`);
  const verified = [
    `${manifest.llamaCpp.llamaCppRelease} shared libraries (node-llama-cpp ${manifest.nodeLlamaCpp.version}'s source)${seconds(manifest.llamaCpp)}`,
    `node-llama-cpp ${manifest.nodeLlamaCpp.version} prebuilt libraries`,
    `${builds.static.llamaCppRelease} linked into one executable, without and with OpenMP (${Object.keys(builds.static.variants ?? {}).join(", ")})${seconds(builds.static)}`,
    ...builds.releases.map(
      (r) =>
        `${r.llamaCppRelease} shared libraries (node-llama-cpp ${r.nodeLlamaCppVersion}'s source)${seconds(r)}`,
    ),
    `llama-cpp-python ${builds.llamaCppPython.version}, pip's build of its source${seconds(builds.llamaCppPython)}`,
    ...(manifest.backends
      ? [
          `${manifest.backends.llamaCppRelease} with the BLAS (OpenBLAS), Vulkan (lavapipe) and RPC backends, split by split${seconds(manifest.backends)}`,
        ]
      : []),
  ];
  return {
    ...base,
    status: "ok",
    found: `${verified.length} kinds of build verified by the tests`,
    notes: [...verified.map((line) => `verified: ${line}`), ...unverified],
    data: { verified, unverified: UNVERIFIED_BUILDS },
  };
}
