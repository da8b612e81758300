// SPDX-License-Identifier: Apache-2.0
// The ggml layout discovery resolved, as the addon's pi_layout (bpf/profinfer.h): field offsets,
// and the ops the compute loop skips as a bit mask, by name from the build's own op table.
import type { ProbedLayout } from "../discovery/layout.js";
import { EMPTY_OPS } from "../trace/dag.js";
import type { NativeLayout } from "./nativeTracer.js";

/**
 * The offsets and op values the BPF programs read, from the layout the probe gave, and the offset
 * of a backend's device the backends probe found (null: unknown, not read).
 */
export function toNativeLayout(p: ProbedLayout, backendDevice: number | null = null): NativeLayout {
  return {
    tensorType: p.tensor.type,
    tensorNe: p.tensor.ne,
    tensorNb: p.tensor.nb,
    tensorOp: p.tensor.op,
    tensorOpParams: p.tensor.opParams,
    tensorFlags: p.tensor.flags,
    tensorSrc: p.tensor.src,
    tensorViewSrc: p.tensor.viewSrc,
    tensorViewOffs: p.tensor.viewOffs,
    tensorData: p.tensor.data,
    tensorName: p.tensor.name,
    cgraphNNodes: p.cgraph.nNodes,
    cgraphNodes: p.cgraph.nodes,
    paramsIth: p.computeParams.ith,
    paramsNth: p.computeParams.nth,
    // ggml_cplan is public ABI: work_size, work_data, then n_threads
    cplanNThreads: p.cplan?.nThreads ?? 16,
    ...emptyOpMask(p.opNames),
    opUnary: opIndex(p.opNames, "UNARY"),
    opGlu: opIndex(p.opNames, "GLU"),
    opGetRows: opIndex(p.opNames, "GET_ROWS"),
    opSetRows: opIndex(p.opNames, "SET_ROWS"),
    opMulMatId: opIndex(p.opNames, "MUL_MAT_ID"),
    typeSizes: p.typeSizes ?? [],
    blockSizes: p.blockSizes ?? [],
    backendDevice: backendDevice ?? 0,
  };
}

function opIndex(opNames: readonly string[], name: string): number {
  const i = opNames.indexOf(name);
  return i >= 0 && i < 255 ? i : 255;
}

function emptyOpMask(
  opNames: readonly string[],
): Pick<NativeLayout, "emptyOps0" | "emptyOps1" | "emptyOps2" | "emptyOps3"> {
  const words = [0, 0, 0, 0];
  for (const name of EMPTY_OPS) {
    const i = opNames.indexOf(name);
    if (i >= 0 && i < 128) words[i >> 5]! |= 1 << (i & 31);
  }
  // as unsigned 32-bit numbers
  const [emptyOps0, emptyOps1, emptyOps2, emptyOps3] = words.map((w) => w >>> 0) as [
    number,
    number,
    number,
    number,
  ];
  return { emptyOps0, emptyOps1, emptyOps2, emptyOps3 };
}
