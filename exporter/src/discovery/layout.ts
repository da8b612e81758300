// SPDX-License-Identifier: Apache-2.0
// The ggml struct layout and op names of the binary in hand: asked of the library itself through
// native/layout-probe/ggml_layout_probe.c, then validated against what the tracer reads at attach.
import { spawnSync } from "node:child_process";

/** What ggml-layout-probe prints. */
export interface ProbedLayout {
  abi: number;
  library: string;
  cpuLibrary?: string | null;
  ggmlVersion: string | null;
  commit: string | null;
  tensor: {
    type: number;
    ne: number;
    nb: number;
    op: number;
    opParams: number;
    flags: number;
    src: number;
    viewSrc: number;
    viewOffs: number;
    data: number;
    name: number;
    maxSrc: number;
    maxName: number;
    maxOpParams: number;
    /** sizeof(struct ggml_tensor), when the probe could establish it */
    size: number | null;
  };
  cgraph: { nNodes: number; nodes: number };
  /** ggml_compute_params is never exported: its offsets are its public definition's */
  computeParams: { ith: number; nth: number; wsize: number; wdata: number; source: string };
  cplan: { nThreads: number; source: string } | null;
  opNames: string[];
  unaryOpNames: string[];
  gluOpNames: string[];
  typeNames: string[];
  /**
   * bytes per block and elements per block of each type (ggml_type_size, ggml_blck_size), by
   * type index; null when the build does not export them
   */
  typeSizes: number[] | null;
  blockSizes: number[] | null;
}

export class LayoutError extends Error {
  override name = "LayoutError";
}

/** The tracer's event structs hold this many sources and name bytes (bpf/profinfer.h). */
const EVENT_MAX_SRC = 10;
const EVENT_MAX_NAME = 64;

/** Runs the probe on a ggml base library (and CPU backend); throws LayoutError with its reason. */
export function probeLayout(probePath: string, ggmlBase: string, ggmlCpu?: string): ProbedLayout {
  const args = ggmlCpu ? [ggmlBase, ggmlCpu] : [ggmlBase];
  const run = spawnSync(probePath, args, { encoding: "utf8", timeout: 30_000 });
  if (run.error)
    throw new LayoutError(`cannot run ${probePath}: ${run.error.message}; run 'npm run build'`);
  let parsed: (ProbedLayout & { error?: undefined }) | { error: string };
  try {
    parsed = JSON.parse(run.stdout) as typeof parsed;
  } catch {
    throw new LayoutError(
      `the layout probe gave no answer for ${ggmlBase} (exit ${run.status}): ${run.stderr.trim()}`,
    );
  }
  if (parsed.error !== undefined) {
    throw new LayoutError(
      `cannot resolve the ggml_tensor layout of ${ggmlBase}: ${parsed.error}. This build of ggml is not one profinfer can read safely; operator tracing needs it (token level still works: --level token).`,
    );
  }
  const layout = parsed as ProbedLayout;
  if (layout.tensor.maxSrc !== EVENT_MAX_SRC || layout.tensor.maxName !== EVENT_MAX_NAME) {
    throw new LayoutError(
      `${ggmlBase} was built with GGML_MAX_SRC=${layout.tensor.maxSrc} and GGML_MAX_NAME=${layout.tensor.maxName}; profinfer's events hold ${EVENT_MAX_SRC} and ${EVENT_MAX_NAME}. Use --level graph, or rebuild ggml with the defaults.`,
    );
  }
  return layout;
}

/**
 * Checks tensors read through the layout in a live process: names must read back as the names
 * llama.cpp gives tensors (printable, like "attn_norm-3", "blk.0.attn_q.weight", "inp_embd"),
 * op indices must be in the op table and no dimension negative or huge (a zero one is real: a batch
 * that wants no output). Returns null when they do, else why not.
 */
export function validateTensorReadings(
  tensors: readonly { name: string; op: number; ne: readonly number[] }[],
  opCount: number,
): string | null {
  if (tensors.length === 0) return null;
  const plausibleName = /^[\x20-\x7e]{1,63}$/;
  const llamaName =
    /(-\d+$)|(\.weight$)|(\.bias$)|^(inp_|embd|result|norm|cache_|attn_|ffn_|leaf_|node_)/;
  let bad = 0;
  let recognised = 0;
  for (const t of tensors) {
    // a dimension may be 0: a batch that wants no output has out_ids [0] and rows [n, 0]
    const shapeOk = t.ne.every((n) => n >= 0 && n < 2 ** 40);
    if (!plausibleName.test(t.name) || t.op < 0 || t.op >= opCount || !shapeOk) bad++;
    else if (llamaName.test(t.name)) recognised++;
  }
  if (bad > 0 || recognised === 0) {
    const sample = tensors
      .slice(0, 3)
      .map((t) => JSON.stringify(t.name))
      .join(", ");
    return `${bad} of ${tensors.length} tensors read back as garbage (first names: ${sample})`;
  }
  return null;
}

/** ggml_backend_score() of each CPU backend variant (0: this CPU cannot run it; -1: no score). */
export function scoreCpuVariants(
  probePath: string,
  libraries: readonly string[],
): Map<string, number> {
  const run = spawnSync(probePath, ["--score", ...libraries], {
    encoding: "utf8",
    timeout: 30_000,
  });
  try {
    const parsed = JSON.parse(run.stdout) as { scores: Record<string, number> };
    return new Map(Object.entries(parsed.scores));
  } catch {
    throw new LayoutError(
      `cannot score the CPU backend variants (${run.stderr.trim() || `exit ${run.status}`})`,
    );
  }
}
