// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { test } from "node:test";
import { OP_BY_TENSOR, OP_NO_AGGREGATE, STEP_FINAL, STEP_REGISTERS } from "../abi/constants.js";
import type { LibraryRoles } from "../discovery/libraries.js";
import {
  backendApiProbes,
  barrierProbes,
  callProbes,
  cpuGraphProbes,
  operatorFunctionSites,
  stepProbeSites,
  LEVELS,
} from "./probePlan.js";

const REPACK =
  "_ZN4ggml3cpu6repack13tensor_traitsI10block_q8_0Ll4ELl4EL9ggml_type8EE15compute_forwardEP19ggml_compute_paramsP11ggml_tensor";
const AMX = "_Z24ggml_backend_amx_mul_matPK19ggml_compute_paramsP11ggml_tensor";

function cpuLibrary(sites: Record<string, boolean>): LibraryRoles {
  const symbols = Object.keys(sites);
  return {
    path: "/lib/libggml-cpu.so",
    llama: false,
    ggmlBase: false,
    ggmlCpu: true,
    barrier: "ggml_barrier",
    opFunctions: symbols.filter((s) => s.startsWith("ggml_compute_forward_")),
    extraComputes: symbols.filter((s) => s.startsWith("_Z")),
    probeSites: new Map(
      symbols.map((s, i) => [s, { fileOffset: 0x1000 + 16 * i, emulated: sites[s]! }]),
    ) as LibraryRoles["probeSites"],
    ggmlRegistry: false,
    backendCalls: [],
    asyncCopies: [],
    dynamicLinker: false,
    hasDebugInfo: true,
    hasSymbolTable: true,
  };
}

test("operator functions: each probed one gets the next index; single-stepped ones are left to the barriers", () => {
  const roles = cpuLibrary({
    ggml_compute_forward_add: true,
    ggml_compute_forward_rope: false,
    ggml_compute_forward_mul_mat: true,
    [REPACK]: true,
    [AMX]: true,
  });
  const plan = operatorFunctionSites(roles, null, {
    probeAllOps: false,
    moeOnly: false,
    firstIndex: 3,
  });
  assert.deepEqual(
    plan.functions.map((s) => [s.symbol, s.index, s.cookie]),
    [
      ["ggml_compute_forward_add", 3, 3],
      ["ggml_compute_forward_mul_mat", 4, 4],
      // AMX's matmul takes (params, dst) like an operator function; its aggregates go by tensor
      [AMX, 6, 6 + OP_BY_TENSOR],
    ],
  );
  // a compute method's arguments come after `this`: it has a handler of its own
  assert.deepEqual(
    plan.methods.map((s) => [s.symbol, s.index, s.cookie]),
    [[REPACK, 5, 5 + OP_BY_TENSOR]],
  );
  assert.deepEqual(plan.stepped, ["rope"]);
});

test("operator functions: --ops matches an extra compute by the ops it computes; MoE-only probes stay out of the aggregates", () => {
  const roles = cpuLibrary({
    ggml_compute_forward_get_rows: true,
    ggml_compute_forward_add: true,
    ggml_compute_forward_mul_mat_id: false,
    [REPACK]: true,
  });
  const plan = operatorFunctionSites(roles, ["get_rows", "mul_mat_id"], {
    probeAllOps: false,
    moeOnly: true,
    firstIndex: 0,
  });
  assert.deepEqual(
    [...plan.functions, ...plan.methods].map((s) => [s.symbol, s.cookie]),
    [
      ["ggml_compute_forward_get_rows", 0 + OP_NO_AGGREGATE],
      // beside step probes every consumer is probed, single-stepped or not
      ["ggml_compute_forward_mul_mat_id", 1 + OP_NO_AGGREGATE],
      [REPACK, 2 + OP_NO_AGGREGATE + OP_BY_TENSOR],
    ],
  );
  assert.deepEqual(plan.stepped, []);
});

test("step sites: the loop's cookie names its register, the final one is PI_STEP_FINAL", () => {
  const planned = stepProbeSites([
    { address: 0x10, fileOffset: 0x10, final: false, register: "RBX", function: "loop" },
    { address: 0x20, fileOffset: 0x20, final: true, register: null, function: null },
  ]);
  assert.deepEqual(
    planned.loop.map((s) => [s.symbol, s.offset, s.cookie]),
    [["loop", 0x10, STEP_REGISTERS.indexOf("RBX")]],
  );
  assert.deepEqual(
    planned.final.map((s) => [s.symbol, s.cookie]),
    [["ggml_graph_compute_thread", STEP_FINAL]],
  );
});

test("barrier probes: ggml_barrier, else the GOMP_barrier an inlined one calls, else none", () => {
  const probes = (barrier: LibraryRoles["barrier"]) =>
    barrierProbes({ ...cpuLibrary({}), barrier }).map((p) => `${p.handler} ${p.symbol}`);
  assert.deepEqual(probes("ggml_barrier"), [
    "barrier_enter ggml_barrier",
    "barrier_exit ggml_barrier",
  ]);
  assert.deepEqual(probes("GOMP_barrier"), [
    "barrier_enter GOMP_barrier",
    "barrier_exit GOMP_barrier",
  ]);
  assert.deepEqual(probes(null), []);
});

test("call probes by level: tokens always, graphs from the graph level, the allocation at op level", () => {
  const base: LibraryRoles = {
    ...cpuLibrary({}),
    llama: true,
    ggmlBase: true,
    ggmlCpu: true,
    probeSites: new Map([
      ["ggml_backend_sched_alloc_graph", { fileOffset: 1, emulated: true }],
    ]) as LibraryRoles["probeSites"],
  };
  const handlers = (level: number) => [
    ...callProbes(base, level).map((p) => p.handler),
    ...cpuGraphProbes(base, level).map((p) => p.handler),
  ];
  assert.deepEqual(handlers(LEVELS.token), ["decode_enter", "decode_exit"]);
  assert.deepEqual(handlers(LEVELS.graph), [
    "decode_enter",
    "decode_exit",
    "sched_graph_enter",
    "sched_graph_exit",
    "cpu_graph_enter",
    "cpu_graph_exit",
  ]);
  assert.ok(handlers(LEVELS.op).includes("sched_alloc"));
  assert.deepEqual(handlers(LEVELS.metrics), handlers(LEVELS.op));
});

test("backend API probes from the graph level: splits, copies, waits, a known backend's async copy", () => {
  const sites = new Map(
    [
      "ggml_backend_graph_compute_async",
      "ggml_backend_tensor_copy",
      "ggml_backend_synchronize",
      "ggml_backend_vk_cpy_tensor_async",
    ].map((s, i) => [s, { fileOffset: 16 * i, emulated: true }]),
  ) as LibraryRoles["probeSites"];
  const roles: LibraryRoles = {
    ...cpuLibrary({}),
    ggmlBase: true,
    probeSites: sites,
    asyncCopies: ["ggml_backend_vk_cpy_tensor_async"],
  };
  assert.deepEqual(backendApiProbes(roles, LEVELS.token), []);
  assert.deepEqual(
    backendApiProbes(roles, LEVELS.graph).map((p) => `${p.handler} ${p.symbol}`),
    [
      "split_enter ggml_backend_graph_compute_async",
      "split_exit ggml_backend_graph_compute_async",
      "copy_enter ggml_backend_tensor_copy",
      "copy_exit ggml_backend_tensor_copy",
      "sync_enter ggml_backend_synchronize",
      "sync_exit ggml_backend_synchronize",
      "copy_async_enter ggml_backend_vk_cpy_tensor_async",
      "copy_async_exit ggml_backend_vk_cpy_tensor_async",
    ],
  );
  // a library without the API (the CPU backend's own) gets none
  assert.deepEqual(backendApiProbes(cpuLibrary({}), LEVELS.op), []);
});
