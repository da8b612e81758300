// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { test } from "node:test";
import { Registry } from "prom-client";
import { UserError } from "../../errors.js";
import { AGG_UNPROBED, NO_LAYER } from "../../abi/constants.js";
import type { KernelRequest } from "../../record/nativeTracer.js";
import type { Aggregates } from "../../trace/notes.js";
import type { LiveRecording } from "../liveSink.js";
import { OP_BACKEND_SLOTS, OP_BACKEND_STALL_SLOTS } from "@profinfer/contract";
import { backendStallFormula } from "../../trace/backendStall.js";
import { ProfinferMetrics } from "./profinferMetrics.js";
import { parseMetricsAddr, startMetricsServer } from "./server.js";

const BOUNDS_NS = [1000, 2000, 5000];
const UNPROBED = AGG_UNPROBED;
const OPTIONS = { boundsNs: BOUNDS_NS };

function source(reads: { n: number }): LiveRecording {
  const aggregates: Aggregates = {
    tokens: [
      {
        calls: 1,
        tokens: 9,
        ns: 4500,
        buckets: [0, 0, 1, 0],
        promptTokens: 9,
        generatedTokens: 1,
        tokenBuckets: [0, 0, 0, 0, 1],
        seqBuckets: [1],
        sequences: 1,
      },
      {
        calls: 3,
        tokens: 3,
        ns: 3000,
        buckets: [3, 0, 0, 0],
        promptTokens: 0,
        generatedTokens: 3,
        tokenBuckets: [3],
        seqBuckets: [3],
        sequences: 3,
      },
      {
        calls: 2,
        tokens: 10,
        ns: 8000,
        buckets: [0, 0, 0, 2],
        promptTokens: 8,
        generatedTokens: 2,
        tokenBuckets: [0, 0, 0, 2],
        seqBuckets: [0, 2],
        sequences: 4,
      },
    ],
    ops: [
      { func: 0, count: 4, ns: 6000, barrierNs: 100, counters: [5000, 7], buckets: [1, 2, 1, 0] },
      // a second function of the same op (add and add_non_quantized) sums into one series
      { func: 1, count: 2, ns: 1000, barrierNs: 50, counters: [900, 1], buckets: [2, 0, 0, 0] },
      {
        func: UNPROBED,
        count: 1,
        ns: 9000,
        barrierNs: 0,
        counters: [8000, 0],
        buckets: [0, 0, 0, 1],
      },
    ],
    layers: [
      { layer: 3, func: 0, count: 2, ns: 4000 },
      { layer: 3, func: 1, count: 1, ns: 4000 },
      { layer: NO_LAYER, func: 0, count: 2, ns: 2000 },
    ],
    moe: [
      { layer: 1, expert: 7, count: 12 },
      { layer: NO_LAYER, expert: 2, count: 1 },
    ],
  };
  return {
    aggregates: () => {
      reads.n++;
      return aggregates;
    },
    probeCounters: () => ({ drops: [2, 0, 0, 0, 1], hits: [10, 20, 30] }),
    operatorFunctions: [
      { index: 0, op: "add" },
      { index: 1, op: "add" },
    ],
    counters: [
      { name: "task-clock", hardware: false },
      { name: "cycles", hardware: true },
    ],
    eventsReceived: () => 123,
    // one request ended (replaced by a new one), which ran whole: 2 ms to its first token, 3 more
    requests: () => {
      const finished = requestsHandedOut ? [] : [kernelRequest(7, 1_000_000n)];
      requestsHandedOut = true;
      return { active: [], finished, inFlight: [], stoppedNs: null, targetExited: false };
    },
  };
}
let requestsHandedOut = false;

function kernelRequest(id: number, startNs: bigint): KernelRequest {
  return {
    id,
    pid: 1,
    ctx: 0xc0n,
    seqId: 0,
    startNs,
    firstOutputNs: startNs + 2_000_000n,
    endNs: startNs + 8_000_000n,
    promptTokens: 9,
    generatedTokens: 4,
    cachedTokens: 0,
    steps: 4,
    longestGapNs: 2_000_000n,
    lastCallNs: 1_000_000n,
    flags: 0,
  };
}

test("the metrics read the aggregates once per scrape and expose them under the contract's names", async () => {
  const registry = new Registry();
  const reads = { n: 0 };
  new ProfinferMetrics(registry, source(reads), {
    ...OPTIONS,
    model: "tiny",
    layers: true,
    moe: true,
  });
  const text = await registry.metrics();
  assert.equal(reads.n, 1);
  const lines = new Set(text.split("\n"));
  for (const line of [
    'profinfer_tokens_total{model="tiny",phase="prefill"} 9',
    'profinfer_tokens_total{model="tiny",phase="decode"} 3',
    'profinfer_tokens_total{model="tiny",phase="mixed"} 10',
    'profinfer_decode_calls_total{model="tiny",phase="decode"} 3',
    'profinfer_decode_calls_total{model="tiny",phase="mixed"} 2',
    'profinfer_decode_call_duration_seconds_bucket{model="tiny",phase="prefill",le="0.000005"} 1',
    'profinfer_decode_call_duration_seconds_count{model="tiny",phase="prefill"} 1',
    'profinfer_decode_call_duration_seconds_bucket{model="tiny",phase="decode",le="0.000001"} 3',
    'profinfer_decode_call_duration_seconds_sum{model="tiny",phase="decode"} 0.000003',
    'profinfer_decode_call_duration_seconds_bucket{model="tiny",phase="mixed",le="+Inf"} 2',
    'profinfer_prompt_tokens_total{model="tiny"} 17',
    'profinfer_generated_tokens_total{model="tiny"} 6',
    'profinfer_batch_tokens_bucket{model="tiny",le="1"} 3',
    'profinfer_batch_tokens_bucket{model="tiny",le="8"} 5',
    'profinfer_batch_tokens_bucket{model="tiny",le="16"} 6',
    'profinfer_batch_tokens_sum{model="tiny"} 22',
    'profinfer_batch_tokens_count{model="tiny"} 6',
    'profinfer_batch_sequences_bucket{model="tiny",le="1"} 4',
    'profinfer_batch_sequences_bucket{model="tiny",le="2"} 6',
    'profinfer_batch_sequences_sum{model="tiny"} 8',
    'gen_ai_server_time_to_first_token_seconds_bucket{le="0.001",model="tiny"} 0',
    'gen_ai_server_time_to_first_token_seconds_bucket{le="0.005",model="tiny"} 1',
    'gen_ai_server_time_to_first_token_seconds_sum{model="tiny"} 0.002',
    'gen_ai_server_time_per_output_token_seconds_sum{model="tiny"} 0.002',
    'gen_ai_server_request_duration_seconds_bucket{le="0.01",model="tiny"} 1',
    'gen_ai_server_request_duration_seconds_count{model="tiny"} 1',
    'profinfer_requests_total{model="tiny",outcome="complete"} 1',
    'profinfer_requests_total{model="tiny",outcome="incomplete"} 0',
    'profinfer_active_requests{model="tiny"} 0',
    'profinfer_op_duration_seconds_bucket{model="tiny",op="add",le="0.000001"} 3',
    'profinfer_op_duration_seconds_bucket{model="tiny",op="add",le="+Inf"} 6',
    'profinfer_op_duration_seconds_count{model="tiny",op="add"} 6',
    'profinfer_op_duration_seconds_count{model="tiny",op="unprobed"} 1',
    'profinfer_op_seconds_total{model="tiny",op="add"} 0.000007',
    'profinfer_barrier_wait_seconds_total{model="tiny",op="add"} 1.5e-7',
    'profinfer_op_counter_total{model="tiny",op="add",event="task-clock"} 5900',
    'profinfer_op_counter_total{model="tiny",op="unprobed",event="cycles"} 0',
    'profinfer_counter_info{model="tiny",event="cycles",hardware="true"} 1',
    'profinfer_counter_info{model="tiny",event="task-clock",hardware="false"} 1',
    'profinfer_probe_hits_total{model="tiny"} 60',
    'profinfer_events_total{model="tiny"} 123',
    'profinfer_events_dropped_total{model="tiny",reason="ringbuf_full"} 2',
    'profinfer_events_dropped_total{model="tiny",reason="counter_read_failed"} 1',
    'profinfer_spans_exported_total{model="tiny"} 0',
    'profinfer_layer_op_seconds_total{model="tiny",layer="3",op="add"} 0.000008',
    'profinfer_moe_expert_selections_total{model="tiny",layer="1",expert="7"} 12',
    "# TYPE profinfer_op_duration_seconds histogram",
    "# TYPE profinfer_tokens_total counter",
  ]) {
    assert.ok(lines.has(line), `missing: ${line}`);
  }
  // labels only from the fixed set
  for (const m of text.matchAll(/\{([^}]*)\}/g)) {
    for (const pair of m[1]!.split(",")) {
      const label = pair.split("=")[0]!;
      assert.ok(
        [
          "model",
          "op",
          "event",
          "phase",
          "hardware",
          "reason",
          "le",
          "layer",
          "expert",
          "outcome",
          // the machine profile's bandwidth by thread count (a count, bounded by the CPUs)
          "threads",
        ].includes(label),
        label,
      );
    }
  }
});

test("the backend-stall figure's two sides are counters, and counter_info says which events fed them", async () => {
  // an AMD Zen 4: the ops' counter arrays hold cycles and de_no_dispatch_per_slot.backend_stalls
  const zen4 = backendStallFormula("amd-zen4")!;
  const registry = new Registry();
  new ProfinferMetrics(
    registry,
    {
      ...source({ n: 0 }),
      counters: [
        { name: "cycles", hardware: true },
        { name: "de_no_dispatch_per_slot.backend_stalls", hardware: true },
      ],
      backendStall: zen4,
    },
    { ...OPTIONS, model: "tiny", layers: false, moe: false },
  );
  const lines = new Set((await registry.metrics()).split("\n"));
  for (const line of [
    // add: 5900 cycles (6 dispatch slots each), 8 slots stalled
    `${OP_BACKEND_STALL_SLOTS}{model="tiny",op="add"} 8`,
    `${OP_BACKEND_SLOTS}{model="tiny",op="add"} 35400`,
    `${OP_BACKEND_SLOTS}{model="tiny",op="unprobed"} 48000`,
    'profinfer_counter_info{model="tiny",event="cycles",hardware="true",feeds="backend_stall",formula="amd-zen4"} 1',
    'profinfer_counter_info{model="tiny",event="de_no_dispatch_per_slot.backend_stalls",hardware="true",feeds="backend_stall",formula="amd-zen4"} 1',
  ]) {
    assert.ok(lines.has(line), `missing: ${line}`);
  }
});

test("the server serves /metrics, and a port in use is a UserError naming it", async () => {
  const registry = new Registry();
  new ProfinferMetrics(registry, source({ n: 0 }), {
    ...OPTIONS,
    model: "m",
    layers: false,
    moe: false,
  });
  const server = await startMetricsServer(registry, parseMetricsAddr("127.0.0.1:0"));
  try {
    const url = `http://127.0.0.1:${server.address.port}`;
    const res = await fetch(`${url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(await res.text(), /profinfer_tokens_total\{model="m",phase="decode"\} 3/);
    assert.equal((await fetch(`${url}/other`)).status, 404);
    await assert.rejects(
      startMetricsServer(registry, { host: "127.0.0.1", port: server.address.port }),
      (e: Error) =>
        e instanceof UserError && /the port is in use by another program/.test(e.message),
    );
  } finally {
    await server.close();
  }
});

test("metrics addresses parse as HOST:PORT, [IPv6]:PORT or :PORT", () => {
  assert.deepEqual(parseMetricsAddr("0.0.0.0:9464"), { host: "0.0.0.0", port: 9464 });
  assert.deepEqual(parseMetricsAddr("[::1]:9"), { host: "::1", port: 9 });
  assert.deepEqual(parseMetricsAddr(":9464"), { host: "127.0.0.1", port: 9464 });
  for (const bad of ["9464", "host:", "host:70000", "a:b:c"]) {
    assert.throws(() => parseMetricsAddr(bad), UserError, bad);
  }
});
