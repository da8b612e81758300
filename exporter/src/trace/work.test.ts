// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Dag, DagSource, OpRun, TensorInfo } from "./types.js";
import { tensorBytes, workOf, type TypeSizes } from "./work.js";

// ggml's sizes of the types used here, by index: f32, f16, q4_0 (18 bytes per 32), i32, q8_0
const TYPES = ["f32", "f16", "q4_0", "i32", "q8_0"];
const SIZES: TypeSizes = { typeSizes: [4, 2, 18, 4, 34], blockSizes: [1, 1, 32, 1, 32] };

let nextAddr = 0x1000n;

/** A contiguous tensor as ggml lays it out: nb[0] the block size, then rows, planes. */
function tensor(name: string, opName: string, type: string, ne: number[]): TensorInfo {
  const t = TYPES.indexOf(type);
  const full = [0, 1, 2, 3].map((i) => ne[i] ?? 1);
  const nb0 = SIZES.typeSizes[t]!;
  const nb1 = (nb0 * full[0]!) / SIZES.blockSizes[t]!;
  const nb = [nb0, nb1, nb1 * full[1]!, nb1 * full[1]! * full[2]!];
  nextAddr += 0x1000n;
  return {
    addr: nextAddr,
    name,
    op: 0,
    opName,
    subOp: null,
    opLabel: opName,
    type: t,
    typeName: type,
    ne: full,
    nb,
    flags: 0,
    src: [],
    viewSrc: null,
    viewOffs: 0n,
    layer: null,
  };
}

/** A DAG of `leaves` and `nodes`, each node's sources given by name. */
function dagOf(leaves: TensorInfo[], nodes: { t: TensorInfo; src: string[] }[]): Dag {
  const byName = new Map<string, { ref: DagSource["direct"]; t: TensorInfo }>();
  leaves.forEach((t, index) => byName.set(t.name, { ref: { kind: "leaf", index }, t }));
  const dagNodes = nodes.map(({ t, src }, index) => {
    const sources: DagSource[] = src.map((name, slot) => {
      const s = byName.get(name)!;
      return { slot, addr: s.t.addr, direct: s.ref, producer: s.ref };
    });
    byName.set(t.name, { ref: { kind: "node", index }, t });
    return { index, tensor: t, view: false, computed: true, viewOf: null, sources };
  });
  return {
    nodes: dagNodes,
    leaves: leaves.map((tensor, index) => ({ index, tensor, kind: "weight", described: true })),
    edges: [],
    computed: dagNodes.map((n) => n.index),
    nodeByAddr: new Map(dagNodes.map((n) => [n.tensor.addr, n.index])),
    undescribedNodes: 0,
  };
}

function opRun(dag: Dag, index: number, fusedWith?: number[]): OpRun {
  const node = dag.nodes[index]!;
  return {
    nodeIndex: index,
    tensor: node.tensor,
    label: node.tensor.opLabel,
    ...(fusedWith ? { fusedWith } : {}),
    sources: node.sources,
    visible: true,
    threads: [],
    missingTids: [],
    startNs: 0n,
    endNs: 1000n,
    durationNs: 1000,
  };
}

test("tensorBytes is ggml_nbytes: blocks of quantised rows, a view's strided extent", () => {
  assert.equal(tensorBytes(tensor("w", "NONE", "q4_0", [64, 100]), SIZES), 100 * 2 * 18);
  assert.equal(tensorBytes(tensor("x", "NONE", "f32", [64]), SIZES), 256);
  // ten rows of 64 f16 out of a cache whose rows are 128 wide: the last row ends at its 64th element
  const view = { ...tensor("k", "VIEW", "f16", [64, 10]), nb: [2, 256, 2560, 2560] };
  assert.equal(tensorBytes(view, SIZES), 2 + 63 * 2 + 9 * 256);
  assert.equal(tensorBytes({ ...view, type: 9 }, SIZES), null, "an unknown type has no size");
});

test("a quantised matmul reads its weight once and counts 2·K·M·N int8 operations", () => {
  const w = tensor("blk.0.attn_q.weight", "NONE", "q4_0", [64, 100]);
  const x = tensor("attn_norm-0", "NONE", "f32", [64, 3]);
  const q = tensor("Qcur-0", "MUL_MAT", "f32", [100, 3]);
  const dag = dagOf([w, x], [{ t: q, src: [w.name, x.name] }]);

  const work = workOf(dag, opRun(dag, 0), SIZES, undefined)!;

  assert.equal(work.bytes, 3600 + 64 * 3 * 4 + 100 * 3 * 4);
  assert.equal(work.ops, 2 * 64 * 100 * 3);
  assert.equal(work.kind, "int8");
  assert.equal(work.estimated, false);
});

test("a fused step reads the group's outside sources and writes only its last destination", () => {
  const x = tensor("inp_embd", "NONE", "f32", [64]);
  const g = tensor("blk.0.attn_norm.weight", "NONE", "f32", [64]);
  const norm = tensor("norm-0", "RMS_NORM", "f32", [64]);
  const mul = tensor("attn_norm-0", "MUL", "f32", [64]);
  const dag = dagOf(
    [x, g],
    [
      { t: norm, src: [x.name] },
      { t: mul, src: [norm.name, g.name] },
    ],
  );

  const work = workOf(dag, opRun(dag, 0, [1]), SIZES, undefined)!;

  assert.equal(work.bytes, 256 + 256 + 256, "input, weight and the product; not norm-0");
  assert.equal(work.ops, 3 * 64 + 64);
  assert.equal(work.kind, "f32");
});

test("get_rows reads its rows, set_rows writes its rows, not the whole table or cache", () => {
  const table = tensor("token_embd.weight", "NONE", "q8_0", [64, 1000]);
  const ids = tensor("inp_tokens", "NONE", "i32", [2]);
  const embd = tensor("inp_embd", "GET_ROWS", "f32", [64, 2]);
  const cache = tensor("cache_k_l0", "NONE", "f16", [64, 512]);
  const rows = tensor("inp_pos", "NONE", "i32", [2]);
  const store = { ...tensor("k_store-0", "SET_ROWS", "f16", [64, 512]), nb: cache.nb };
  const dag = dagOf(
    [table, ids, cache, rows],
    [
      { t: embd, src: [table.name, ids.name] },
      // as llama.cpp builds it: the cache it stores into is its third source
      { t: store, src: [embd.name, rows.name, cache.name] },
    ],
  );

  const get = workOf(dag, opRun(dag, 0), SIZES, undefined)!;
  const set = workOf(dag, opRun(dag, 1), SIZES, undefined)!;

  assert.equal(get.bytes, 2 * 68 + 8 + 2 * 64 * 4, "two rows of 64 q8_0 (2 blocks of 34 bytes)");
  assert.equal(set.bytes, 2 * 64 * 4 + 8 + 2 * 64 * 2, "two f16 rows written");
});

test("mul_mat_id reads the experts the routing chose, or assumes distinct ones without ids", () => {
  const experts = tensor("blk.0.ffn_gate_exps.weight", "NONE", "q4_0", [64, 128, 8]);
  const x = tensor("attn_out-0", "NONE", "f32", [64, 1, 3]);
  const ids = tensor("ffn_moe_topk-0", "NONE", "i32", [2, 3]);
  const gate = tensor("ffn_moe_gate-0", "MUL_MAT_ID", "f32", [128, 2, 3]);
  const dag = dagOf([experts, x, ids], [{ t: gate, src: [experts.name, x.name, ids.name] }]);
  const perExpert = 128 * 2 * 18;
  const rest = 64 * 3 * 4 + 2 * 3 * 4 + 128 * 2 * 3 * 4;

  const chosen = workOf(dag, opRun(dag, 0), SIZES, [
    [1, 5],
    [5, 2],
    [1, 2],
  ])!;
  const assumed = workOf(dag, opRun(dag, 0), SIZES, undefined)!;

  assert.equal(chosen.bytes, 3 * perExpert + rest, "experts 1, 2 and 5");
  assert.equal(chosen.estimated, false);
  assert.equal(assumed.bytes, 6 * perExpert + rest, "2 experts for each of 3 tokens, at most 8");
  assert.equal(assumed.estimated, true);
  assert.equal(chosen.ops, 2 * 64 * 128 * 2 * 3);
});
