// SPDX-License-Identifier: Apache-2.0
// What each operator run moves and computes, from its tensors' shapes and types: the bytes it
// reads from its sources and writes to its destination, and its arithmetic operations
// (docs/findings.md "Bytes and operations" gives the rules). The roofline measures these against
// the machine profile's peaks.
import type { Dag, DagSource, GraphRun, OpRun, OpWork, TensorInfo, Token } from "./types.js";

/** ggml's bytes per block and elements per block, by type index (the layout probe's). */
export interface TypeSizes {
  typeSizes: readonly number[];
  blockSizes: readonly number[];
}

/**
 * ggml_nbytes: the bytes a tensor's strides span (a view's own extent, not its root's); null for
 * a type whose sizes are unknown.
 */
export function tensorBytes(t: TensorInfo, sizes: TypeSizes): number | null {
  const typeSize = sizes.typeSizes[t.type];
  const block = sizes.blockSizes[t.type];
  if (!typeSize || !block) return null;
  const ne = [0, 1, 2, 3].map((i) => t.ne[i] ?? 1);
  const nb = [0, 1, 2, 3].map((i) => t.nb[i] ?? 0);
  if (ne.some((n) => n <= 0)) return 0;
  let bytes = block === 1 ? typeSize : (ne[0]! * nb[0]!) / block;
  for (let i = block === 1 ? 0 : 1; i < 4; i++) bytes += (ne[i]! - 1) * nb[i]!;
  return bytes;
}

const elements = (t: TensorInfo) => [0, 1, 2, 3].reduce((n, i) => n * (t.ne[i] ?? 1), 1);

/** Arithmetic per destination element of the ops that are not products (an estimate, said so). */
const OPS_PER_ELEMENT: Record<string, number> = {
  ADD: 1,
  ADD1: 1,
  SUB: 1,
  MUL: 1,
  DIV: 1,
  SCALE: 1,
  SQR: 1,
  SQRT: 1,
  // square, sum and scale
  RMS_NORM: 3,
  // mean, variance and scale
  NORM: 5,
  // max, subtract, exp, sum, divide
  SOFT_MAX: 5,
  // two products and a sum per rotated pair, per element
  ROPE: 3,
  // the activation (a handful of operations) and, for GLU, the gate's product
  UNARY: 4,
  GLU: 5,
};

function tensorOf(dag: Dag, src: DagSource): TensorInfo {
  const ref = src.direct;
  return ref.kind === "node" ? dag.nodes[ref.index]!.tensor : dag.leaves[ref.index]!.tensor;
}

/** The arithmetic of one node. */
function nodeOps(node: TensorInfo, srcs: readonly TensorInfo[]): number {
  switch (node.opName) {
    case "MUL_MAT":
    case "MUL_MAT_ID":
    case "OUT_PROD":
      // every output element is a dot product over the shared dimension: k multiplies and adds
      return 2 * (srcs[0]?.ne[0] ?? 0) * elements(node);
    case "FLASH_ATTN_EXT": {
      // q [D, n_q, heads, seqs], k [D, n_kv, ...], v [Dv, n_kv, ...]: Q·K, the softmax, P·V
      const [q, k, v] = srcs;
      if (!q || !k || !v) return 0;
      const rows = (q.ne[1] ?? 1) * (q.ne[2] ?? 1) * (q.ne[3] ?? 1);
      const nKv = k.ne[1] ?? 0;
      return rows * nKv * (2 * (q.ne[0] ?? 0) + 2 * (v.ne[0] ?? 0) + 4);
    }
    default:
      return (OPS_PER_ELEMENT[node.opName] ?? 0) * elements(node);
  }
}

/**
 * Bytes a source slot is read for: GET_ROWS reads its rows only, MUL_MAT_ID its chosen experts,
 * SET_ROWS its rows and their indices (its third source is the tensor it stores into: written,
 * not read).
 */
function sourceBytes(
  node: TensorInfo,
  slot: number,
  src: TensorInfo,
  sizes: TypeSizes,
  experts: number[][] | undefined,
): { bytes: number | null; estimated: boolean } {
  if (node.opName === "SET_ROWS" && slot >= 2) return { bytes: 0, estimated: false };
  if (node.opName === "GET_ROWS" && slot === 0) {
    // one row of src0 per index: the destination's rows
    const rows = elements(node) / Math.max(1, node.ne[0] ?? 1);
    return { bytes: rows * (src.nb[1] ?? 0), estimated: false };
  }
  if (node.opName === "MUL_MAT_ID" && slot === 0) {
    // src0 holds every expert's matrix [K, M, n_expert]: the ones the routing chose are read
    const perExpert = src.nb[2] ?? 0;
    const nExpert = src.ne[2] ?? 1;
    if (experts && experts.length > 0) {
      const chosen = new Set(experts.flat());
      return { bytes: Math.min(chosen.size, nExpert) * perExpert, estimated: false };
    }
    // without the ids: every token's k experts distinct, at most all of them
    const routed = (node.ne[1] ?? 1) * (node.ne[2] ?? 1);
    return { bytes: Math.min(routed, nExpert) * perExpert, estimated: true };
  }
  return { bytes: tensorBytes(src, sizes), estimated: false };
}

/** Bytes written to a node's destination: SET_ROWS writes its source's rows only. */
function destinationBytes(node: TensorInfo, srcs: readonly TensorInfo[], sizes: TypeSizes) {
  if (node.opName === "SET_ROWS" && srcs[0]) {
    const rows = elements(srcs[0]) / Math.max(1, srcs[0].ne[0] ?? 1);
    return rows * (node.nb[1] ?? 0);
  }
  return tensorBytes(node, sizes);
}

/**
 * One operator run's bytes and operations: every source read once (a tensor two slots share,
 * once), the destination written once; of a fused group, the sources from outside the group and
 * the last node's destination (ggml keeps the intermediates in registers).
 */
export function workOf(
  dag: Dag,
  op: OpRun,
  sizes: TypeSizes,
  experts: number[][] | undefined,
): OpWork | null {
  const indices = [op.nodeIndex, ...(op.fusedWith ?? [])];
  const nodes = indices.map((i) => dag.nodes[i]!);
  const inside = new Set(nodes.map((n) => n.tensor.addr));
  const read = new Set<bigint>();
  let bytes = 0;
  let ops = 0;
  let estimated = false;
  let int8 = false;
  for (const node of nodes) {
    const srcs = node.sources.map((s) => tensorOf(dag, s));
    ops += nodeOps(node.tensor, srcs);
    for (const [i, s] of node.sources.entries()) {
      const t = srcs[i]!;
      if (inside.has(s.addr) || read.has(s.addr)) continue;
      read.add(s.addr);
      const b = sourceBytes(node.tensor, s.slot, t, sizes, experts);
      if (b.bytes === null) return null;
      bytes += b.bytes;
      estimated ||= b.estimated;
    }
    // ggml's quantised products convert the activations to 8 bits and use int8 dot products
    if (/^MUL_MAT/.test(node.tensor.opName) && (sizes.blockSizes[srcs[0]?.type ?? -1] ?? 1) > 1) {
      int8 = true;
    }
  }
  const last = nodes.at(-1)!;
  const written = destinationBytes(
    last.tensor,
    last.sources.map((s) => tensorOf(dag, s)),
    sizes,
  );
  if (written === null) return null;
  return { bytes: bytes + written, ops, kind: int8 ? "int8" : "f32", estimated };
}

/** The type sizes of a run's header, when the layout probe recorded them. */
export function typeSizesOf(
  layout:
    | {
        typeSizes?: number[] | null;
        blockSizes?: number[] | null;
      }
    | undefined,
): TypeSizes | null {
  if (!layout?.typeSizes || !layout.blockSizes) return null;
  return { typeSizes: layout.typeSizes, blockSizes: layout.blockSizes };
}

/**
 * Sets `work` on every operator run. Runs of one snapshot share shapes, so each node's work is
 * computed once per snapshot, except MUL_MAT_ID's, which follows the call's routing.
 */
export function attachWork(
  graphRuns: readonly GraphRun[],
  tokenOf: (g: GraphRun) => Token | null,
  sizes: TypeSizes,
): void {
  const cache = new Map<Dag, Map<number, OpWork | null>>();
  for (const g of graphRuns) {
    const dag = g.snapshot?.dag;
    if (!dag || g.ops.length === 0) continue;
    let known = cache.get(dag);
    if (!known) cache.set(dag, (known = new Map()));
    for (const op of g.ops) {
      if (op.tensor.opName === "MUL_MAT_ID") {
        const experts =
          op.tensor.layer === null ? undefined : tokenOf(g)?.experts?.get(op.tensor.layer);
        op.work = workOf(dag, op, sizes, experts) ?? undefined;
        continue;
      }
      let work = known.get(op.nodeIndex);
      if (work === undefined) known.set(op.nodeIndex, (work = workOf(dag, op, sizes, undefined)));
      if (work) op.work = work;
    }
  }
}
