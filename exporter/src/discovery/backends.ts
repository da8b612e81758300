// SPDX-License-Identifier: Apache-2.0
// The backends a ggml build has and what profinfer knows of each. Any backend is traced at graph
// level through ggml's own backend API (its splits, the copies between backends, the host's waits
// for it); the backends named here also have functions of their own that profinfer probes, found
// by symbol in the library that holds them. The device table comes from the build's registry,
// asked by native/layout-probe/ggml_backends_probe.c.
import { spawnSync } from "node:child_process";
import type { ElfFile } from "./elf.js";

/** One device the build's backend registry lists (ggml-backends-probe's output). */
export interface ProbedDevice {
  /** ggml_backend_dev_name: "CPU", "BLAS", "Vulkan0", as llama.cpp names a split's backend */
  name: string;
  description: string;
  /** enum ggml_backend_dev_type of the build */
  type: number;
  /** its registry's name: the backend implementation ("CPU", "BLAS", "Vulkan", "RPC") */
  registry: string;
  /** where its get_name function lies (virtual address from the library's load base) */
  getName: { library: string; offset: number } | null;
}

export interface ProbedBackends {
  abi: number;
  library: string;
  /** offset of `device` in struct ggml_backend; null when the probe could not find it */
  backendDevice: number | null;
  devices: ProbedDevice[];
}

export class BackendProbeError extends Error {
  override name = "BackendProbeError";
}

/** Asks the registry library `libggml` (libggml.so) for its devices. */
export function probeBackends(probePath: string, libggml: string): ProbedBackends {
  const run = spawnSync(probePath, [libggml], { encoding: "utf8", timeout: 30_000 });
  if (run.error) {
    throw new BackendProbeError(
      `cannot run ${probePath}: ${run.error.message}; run 'npm run build'`,
    );
  }
  let parsed: ProbedBackends | { error: string };
  try {
    parsed = JSON.parse(run.stdout) as typeof parsed;
  } catch {
    throw new BackendProbeError(
      `the backends probe gave no answer for ${libggml} (exit ${run.status}): ${run.stderr.trim().slice(-500)}`,
    );
  }
  if ("error" in parsed) {
    throw new BackendProbeError(`cannot list the backends of ${libggml}: ${parsed.error}`);
  }
  return parsed;
}

/**
 * What a known backend's own function means (pi_backend_call): `op` is a call made inside one
 * node's compute on the calling thread, the nodes of a split taking them in order (BLAS: one
 * cblas_sgemm per matrix of a MUL_MAT, one per OUT_PROD); `submit` hands a command buffer to the device; `wait` is
 * the host waiting for the device's fence; `record` records one node into a command buffer
 * (args[1]: the graph, args[2]: the node's index; the return: whether it was enqueued).
 */
export type BackendCallRole = "op" | "submit" | "wait" | "record";

export interface KnownBackendCall {
  /** the backend implementation (a registry name) */
  backend: string;
  role: BackendCallRole;
  symbol: string;
}

interface KnownBackend {
  /** what profinfer measures of it beyond graph level, in the words the outputs use */
  measures: string;
  /** its own functions, by symbol pattern (C++ ones by their mangled name) */
  calls: { pattern: RegExp; role: BackendCallRole }[];
  /** its cpy_tensor_async (backend_src, backend_dst, src, dst) -> bool */
  asyncCopy?: RegExp;
}

/**
 * The backends profinfer knows beyond graph level, by registry name. The CPU backend's operators
 * are timed by the step or operator probes (libraryProbes.ts); BLAS computes its nodes one after
 * the other on the calling thread, so its node functions time them; Vulkan's device time is not
 * seen from the host, only its command buffers: nodes recorded, submissions and fence waits.
 */
export const KNOWN_BACKENDS: Readonly<Record<string, KnownBackend>> = {
  CPU: { measures: "operators per thread (measured)", calls: [] },
  BLAS: {
    // ggml-blas's own node functions are inlined into its graph compute: its nodes end with
    // their last cblas_sgemm, which the BLAS library exports
    measures:
      "each node on the calling thread, ended by its last cblas_sgemm (measured; it starts where the node before ended)",
    calls: [{ pattern: /^cblas_sgemm$/, role: "op" }],
  },
  Vulkan: {
    measures:
      "nodes recorded into command buffers, submissions and fence waits on the host (measured); device time per node is not seen",
    calls: [
      { pattern: /^_Z\d+ggml_vk_build_graphP\w+$/, role: "record" },
      { pattern: /^_Z\d+ggml_vk_submitR\w+$/, role: "submit" },
      { pattern: /^_Z\d+ggml_vk_wait_for_fenceP\w+$/, role: "wait" },
    ],
    asyncCopy: /^_ZL?\d*ggml_backend_vk_cpy_tensor_async\w*$|^ggml_backend_vk_cpy_tensor_async$/,
  },
};

/** What profinfer says it measures of a backend implementation (registry name), or null. */
export function backendMeasures(registry: string | null): string | null {
  return registry === null ? null : (KNOWN_BACKENDS[registry]?.measures ?? null);
}

/** The known backends' own functions and async copies that `elf` holds (exported or local). */
export function knownBackendFunctions(elf: ElfFile): {
  calls: KnownBackendCall[];
  asyncCopies: string[];
} {
  const calls: KnownBackendCall[] = [];
  const asyncCopies: string[] = [];
  for (const s of elf.symbols.values()) {
    if (!s.isFunction || !/ggml_|^cblas_sgemm$/.test(s.name)) continue;
    for (const [backend, known] of Object.entries(KNOWN_BACKENDS)) {
      const call = known.calls.find((c) => c.pattern.test(s.name));
      if (call) calls.push({ backend, role: call.role, symbol: s.name });
      if (known.asyncCopy?.test(s.name)) asyncCopies.push(s.name);
    }
  }
  calls.sort((a, b) => a.symbol.localeCompare(b.symbol));
  return { calls, asyncCopies: asyncCopies.sort() };
}
