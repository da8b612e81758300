// SPDX-License-Identifier: Apache-2.0
// Tensor descriptions and the operator DAG of one graph snapshot: names and ops from the run
// header's tables (never a ggml enum compiled in), layers from llama.cpp's tensor names, views
// resolved to what they view so that edges reach the real producer.
import type { TensorEvent } from "../abi/events.js";
import type { RunHeader } from "./header.js";
import type {
  Dag,
  DagEdge,
  DagLeaf,
  DagNode,
  LeafKind,
  OpNaming,
  TensorInfo,
  TensorRef,
} from "./types.js";

export function opNamingFrom(header: RunHeader): OpNaming {
  return {
    opNames: header.opNames,
    unaryOpNames: header.unaryOpNames,
    gluOpNames: header.gluOpNames,
    typeNames: header.typeNames,
  };
}

/** ggml_tensor_flag bits (ggml.h), not an op enum: stable across builds that have them. */
export const TENSOR_FLAG_INPUT = 1;
export const TENSOR_FLAG_PARAM = 4;
export const TENSOR_FLAG_COMPUTE = 16;

/** Ops ggml_op_is_empty() reports: the CPU loop skips them (by name, from the header's table). */
export const EMPTY_OPS: ReadonlySet<string> = new Set([
  "NONE",
  "RESHAPE",
  "VIEW",
  "PERMUTE",
  "TRANSPOSE",
]);

const NAME_SUFFIXES = /( \([^()]*\))+$/;

/**
 * The layer of a tensor from its name, as llama.cpp names them: "attn_norm-3", "ffn_moe_topk-12"
 * (cb() appends "-<layer>"; ggml adds " (view)", " (reshaped)", ... to views of them), weights
 * "blk.3.attn_q.weight", KV cache "cache_k_l3". Null when the name carries no layer.
 */
export function parseLayer(name: string): number | null {
  const base = name.replace(NAME_SUFFIXES, "");
  const m =
    /-(\d+)$/.exec(base) ?? /^blk\.(\d+)\./.exec(base) ?? /^cache_[a-z]+_l(\d+)$/.exec(base);
  return m ? Number(m[1]) : null;
}

/** The op label as ggml users type it: lower case, "mul_mat", "unary:silu", "rms_norm+mul". */
export function displayOpName(label: string): string {
  return label.toLowerCase();
}

function tableName(table: readonly string[], index: number, what: string): string {
  return table[index] ?? `${what}#${index}`;
}

export function describeTensor(ev: TensorEvent, naming: OpNaming): TensorInfo {
  const opName = tableName(naming.opNames, ev.op, "OP");
  let subOp: string | null = null;
  if (opName === "UNARY") subOp = tableName(naming.unaryOpNames, ev.opParams[0], "UNARY");
  else if (opName === "GLU") subOp = tableName(naming.gluOpNames, ev.opParams[0], "GLU");
  const src: (bigint | null)[] = ev.src.map((a) => (a === 0n ? null : a));
  while (src.length > 0 && src[src.length - 1] === null) src.pop();
  return {
    addr: ev.addr,
    name: ev.name,
    op: ev.op,
    opName,
    subOp,
    opLabel: subOp === null ? opName : `${opName}:${subOp}`,
    type: ev.typeIndex,
    typeName: tableName(naming.typeNames, ev.typeIndex, "type"),
    ne: ev.ne,
    nb: ev.nb,
    flags: ev.flags,
    src,
    viewSrc: ev.viewSrc === 0n ? null : ev.viewSrc,
    viewOffs: ev.viewOffs,
    layer: parseLayer(ev.name),
  };
}

/** A tensor the snapshot never described (its TENSOR event was dropped). */
function undescribed(addr: bigint): TensorInfo {
  return {
    addr,
    name: `0x${addr.toString(16)}`,
    op: -1,
    opName: "?",
    subOp: null,
    opLabel: "?",
    type: -1,
    typeName: "?",
    ne: [],
    nb: [],
    flags: 0,
    src: [],
    viewSrc: null,
    viewOffs: 0n,
    layer: null,
  };
}

/** What a tensor that no node of the graph produces is: a weight, an input, the KV cache. */
export function classifyLeaf(tensor: TensorInfo): LeafKind {
  const name = tensor.name.replace(NAME_SUFFIXES, "");
  if (/^cache_[a-z]+_l\d+$/.test(name)) return "cache";
  if (
    (tensor.flags & TENSOR_FLAG_PARAM) !== 0 ||
    /\.(weight|bias|scale)$/.test(name) ||
    /^blk\.\d+\./.test(name)
  ) {
    return "weight";
  }
  if ((tensor.flags & TENSOR_FLAG_INPUT) !== 0 || /(^|_)inp_/.test(name) || /kq_mask/i.test(name)) {
    return "input";
  }
  return "other";
}

export function snapshotKey(cgraph: bigint, signature: bigint): string {
  return `0x${cgraph.toString(16)}:0x${signature.toString(16)}`;
}

/**
 * Build the DAG of a node list. `tensors` holds the descriptions of the snapshot's signature:
 * nodes, their sources, and what views view.
 */
export function buildDag(
  nodeAddrs: readonly bigint[],
  tensors: ReadonlyMap<bigint, TensorEvent>,
  naming: OpNaming,
): Dag {
  const infos = new Map<bigint, TensorInfo>();
  const info = (addr: bigint): TensorInfo | undefined => {
    let t = infos.get(addr);
    if (t === undefined) {
      const ev = tensors.get(addr);
      if (ev === undefined) return undefined;
      t = describeTensor(ev, naming);
      infos.set(addr, t);
    }
    return t;
  };

  const nodeByAddr = new Map<bigint, number>();
  nodeAddrs.forEach((addr, i) => {
    if (addr !== 0n && !nodeByAddr.has(addr)) nodeByAddr.set(addr, i);
  });

  let undescribedNodes = 0;
  const nodeTensors = nodeAddrs.map((addr) => {
    const t = info(addr);
    if (t === undefined) undescribedNodes++;
    return t ?? undescribed(addr);
  });
  // Builds without GGML_TENSOR_FLAG_COMPUTE compute every non-empty node.
  const hasComputeFlag = nodeTensors.some((t) => (t.flags & TENSOR_FLAG_COMPUTE) !== 0);

  const rootOf = (addr: bigint): bigint => {
    let a = addr;
    for (let guard = 0; guard < 64; guard++) {
      const vs = info(a)?.viewSrc ?? null;
      if (vs === null) return a;
      a = vs;
    }
    return a;
  };

  const leaves: DagLeaf[] = [];
  const leafByAddr = new Map<bigint, number>();
  const refOf = (addr: bigint): TensorRef => {
    const node = nodeByAddr.get(addr);
    if (node !== undefined) return { kind: "node", index: node };
    let leaf = leafByAddr.get(addr);
    if (leaf === undefined) {
      const t = info(addr);
      leaf = leaves.length;
      leaves.push({
        index: leaf,
        tensor: t ?? undescribed(addr),
        kind: t ? classifyLeaf(t) : "other",
        described: t !== undefined,
      });
      leafByAddr.set(addr, leaf);
    }
    return { kind: "leaf", index: leaf };
  };

  const nodes: DagNode[] = nodeTensors.map((tensor, index) => {
    const empty = EMPTY_OPS.has(tensor.opName);
    const computed =
      !empty && tensor.op >= 0 && (!hasComputeFlag || (tensor.flags & TENSOR_FLAG_COMPUTE) !== 0);
    return {
      index,
      tensor,
      view: empty && tensor.opName !== "NONE",
      computed,
      viewOf: null,
      sources: [],
    };
  });

  // Which computed nodes write into a view of a root tensor (KV cache updates: SET_ROWS, CPY).
  const writers = new Map<bigint, number[]>();
  for (const node of nodes) {
    if (node.tensor.viewSrc !== null) {
      const root = rootOf(node.tensor.addr);
      node.viewOf = refOf(root);
      if (node.computed) {
        const list = writers.get(root);
        if (list) list.push(node.index);
        else writers.set(root, [node.index]);
      }
    }
  }

  const edges: DagEdge[] = [];
  for (const node of nodes) {
    node.tensor.src.forEach((addr, slot) => {
      if (addr === null) return;
      const direct = refOf(addr);
      const root = rootOf(addr);
      let producer = refOf(root);
      if (producer.kind === "leaf") {
        const list = writers.get(root);
        if (list) {
          let last = -1;
          for (const w of list) if (w < node.index) last = w;
          if (last >= 0) producer = { kind: "node", index: last };
        }
      }
      node.sources.push({ slot, addr, direct, producer });
      const via = producer.kind === direct.kind && producer.index === direct.index ? null : direct;
      edges.push({ from: producer, to: node.index, slot, via });
    });
  }

  inferUnnamedLayers(nodes, leaves);
  return {
    nodes,
    leaves,
    edges,
    computed: nodes.filter((n) => n.computed).map((n) => n.index),
    nodeByAddr,
    undescribedNodes,
  };
}

/** ggml's names for tensors nobody named: "node_21", "leaf_3" (and views of them). */
const UNNAMED = /^(node|leaf)_\d+$|^$/;

/**
 * Layers for the nodes llama.cpp leaves unnamed (ggml calls them "node_N": a fused
 * flash_attn_ext, a cont between named ops): the one layer their consumers have, else the one
 * layer their sources have. Named tensors keep what their name says (result_norm reads the last layer
 * and belongs to none), and a node between two layers, or with no neighbour in a layer, keeps none.
 */
function inferUnnamedLayers(nodes: DagNode[], leaves: DagLeaf[]): void {
  const layerOf = (ref: TensorRef): number | null =>
    ref.kind === "node"
      ? (nodes[ref.index]?.tensor.layer ?? null)
      : (leaves[ref.index]?.tensor.layer ?? null);
  const single = (layers: (number | null)[]): number | null => {
    const known = new Set(layers.filter((l): l is number => l !== null));
    return known.size === 1 ? [...known][0]! : null;
  };
  const unnamed = nodes.filter(
    (n) => n.tensor.layer === null && UNNAMED.test(n.tensor.name.replace(NAME_SUFFIXES, "")),
  );
  if (unnamed.length === 0) return;
  const consumers = new Map<number, number[]>();
  for (const n of nodes) {
    for (const s of n.sources) {
      if (s.producer.kind !== "node") continue;
      const list = consumers.get(s.producer.index) ?? [];
      list.push(n.index);
      consumers.set(s.producer.index, list);
    }
  }
  // nodes are in execution order: a backward pass sees each consumer's layer before its source's
  // (an unnamed op is computed for what reads it: the last layer's get_rows of the residual reads
  // the layer before's output and belongs to the last), then a forward pass for the rest
  for (let i = unnamed.length - 1; i >= 0; i--) {
    const n = unnamed[i]!;
    const layer = single((consumers.get(n.index) ?? []).map((c) => nodes[c]!.tensor.layer));
    if (layer !== null) n.tensor = { ...n.tensor, layer };
  }
  for (const n of unnamed) {
    if (n.tensor.layer !== null) continue;
    const layer = single(n.sources.flatMap((s) => [layerOf(s.producer), layerOf(s.direct)]));
    if (layer !== null) n.tensor = { ...n.tensor, layer };
  }
}

/** Whether node `consumer` reads the output of node `producer` (directly or through views). */
export function consumes(dag: Dag, consumer: number, producer: number): boolean {
  const node = dag.nodes[consumer];
  if (!node) return false;
  for (const s of node.sources) {
    if (s.producer.kind === "node" && s.producer.index === producer) return true;
    if (s.direct.kind === "node" && s.direct.index === producer) return true;
  }
  return false;
}
