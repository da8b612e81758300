// SPDX-License-Identifier: Apache-2.0
// The backends pass on a hand-made recording of one scheduler graph with a CPU split and a split
// on a queueing device: names from the registry's note, from the scheduler's copy names and
// from the CPU graph; copies given to the split they feed; completion at return or at the wait.
import assert from "node:assert/strict";
import { test } from "node:test";
import { fixtureHeader } from "../../../test/support/fixtures.js";
import { EventType, GraphFn, type RawEvent } from "../abi/events.js";
import { renderPerfettoTrace } from "../sinks/perfetto.js";
import { buildRun } from "./buildRun.js";
import type { NoteRecord } from "./notes.js";

const h = (type: number, ts: number, tid = 10) => ({
  type,
  cpu: 0,
  tgid: 1000,
  tid,
  ts: BigInt(ts),
});

const CPU_GET_NAME = 0x7000n;
const GPU_GET_NAME = 0x9000n;

function recording(withRegistry: boolean) {
  const graph = (fn: number, cgraph: bigint, ts: number): RawEvent =>
    ({
      ...h(EventType.GRAPH_BEGIN, ts),
      cgraph,
      fn,
      nNodes: 10,
      nThreads: 0,
      changed: false,
      signature: 1n,
    }) as RawEvent;
  const end = (fn: number, cgraph: bigint, ts: number): RawEvent =>
    ({ ...h(EventType.GRAPH_END, ts), cgraph, fn, ret: 0 }) as RawEvent;
  const split = (
    cgraph: bigint,
    backend: bigint,
    device: bigint,
    getName: bigint,
    first: number,
    ts: number,
  ): RawEvent =>
    ({
      ...h(EventType.SPLIT, ts),
      cgraph,
      backend,
      device,
      deviceGetName: getName,
      schedGraph: 0x100n,
      firstNode: first,
      nNodes: 5,
    }) as RawEvent;
  const events: RawEvent[] = [
    { ...h(EventType.TOKEN_BEGIN, 0), ctx: 1n, nTokens: 1, seq: 1, opsSampled: false } as RawEvent,
    graph(GraphFn.SCHED, 0x100n, 100),
    graph(GraphFn.SPLIT, 0x200n, 110),
    split(0x200n, 0xa0n, 0xd0n, CPU_GET_NAME, 0, 110),
    graph(GraphFn.CPU, 0x200n, 120),
    end(GraphFn.CPU, 0x200n, 300),
    end(GraphFn.SPLIT, 0x200n, 310),
    {
      ...h(EventType.COPY_BEGIN, 320),
      src: 0x1n,
      dst: 0x2n,
      backendSrc: 0n,
      backendDst: 0n,
      ne: [256, 1, 1, 1],
      nb: [4, 1024, 1024, 1024],
      typeIndex: 0,
      via: 1,
      srcName: "inp_embd",
      dstName: "Vulkan0#inp_embd#0",
    } as RawEvent,
    { ...h(EventType.COPY_END, 340), via: 1, ret: 1 } as RawEvent,
    graph(GraphFn.SPLIT, 0x300n, 350),
    split(0x300n, 0xb0n, 0xe0n, GPU_GET_NAME, 5, 350),
    end(GraphFn.SPLIT, 0x300n, 400),
    end(GraphFn.SCHED, 0x100n, 410),
    { ...h(EventType.SYNC_BEGIN, 420), backend: 0xb0n } as RawEvent,
    { ...h(EventType.SYNC_END, 900), backend: 0n } as RawEvent,
    { ...h(EventType.TOKEN_END, 950), ret: 0, seq: 1 } as RawEvent,
  ];
  const notes: NoteRecord[] = withRegistry
    ? [
        {
          type: "note",
          offset: 0,
          afterEvents: 0,
          note: {
            kind: "backends",
            devices: [
              {
                name: "CPU",
                description: "cpu",
                registry: "CPU",
                getName: `0x${CPU_GET_NAME.toString(16)}`,
              },
              {
                name: "Vulkan0",
                description: "gpu",
                registry: "Vulkan",
                getName: `0x${GPU_GET_NAME.toString(16)}`,
              },
            ],
            libraries: [],
          },
        },
      ]
    : [];
  return buildRun({
    header: fixtureHeader({ layout: { typeSizes: [4], blockSizes: [1] } }),
    events,
    notes,
  });
}

test("splits: their backends from the registry, the copies they were fed, completion by the host's wait", () => {
  const run = recording(true);
  assert.deepEqual(
    run.backends.map((b) => [b.name, b.registry, b.namedBy, b.known]),
    [
      ["CPU", "CPU", "registry", true],
      ["Vulkan0", "Vulkan", "registry", true],
    ],
  );
  const [cpu, gpu] = run.graphRuns.filter((g) => g.split);
  assert.equal(cpu!.split!.index, 0);
  assert.equal(gpu!.split!.index, 1);
  assert.equal(gpu!.split!.firstNode, 5);
  assert.equal(cpu!.split!.completion, "returned");
  assert.equal(cpu!.split!.completeNs, 310n);
  // the copy after the CPU split feeds the split after it
  assert.deepEqual(cpu!.split!.copies, []);
  assert.equal(gpu!.split!.copies.length, 1);
  assert.equal(gpu!.split!.copies[0]!.bytes, 1024, "ggml_nbytes of 256 f32");
  // a queueing device completes when the host's wait for it returns
  assert.equal(gpu!.split!.completion, "synchronized");
  assert.equal(gpu!.split!.completeNs, 900n);
  assert.equal(gpu!.split!.waits.length, 1);
  // the CPU graph is the CPU split's child, the splits the scheduler graph's
  const cpuGraph = run.graphRuns.find((g) => g.fn === "cpu")!;
  assert.equal(cpuGraph.parent, cpu);
  assert.equal(cpu!.parent!.fn, "sched");
});

test("without the registry: a backend is named by the scheduler's copy names, the CPU by its graph", () => {
  const run = recording(false);
  assert.deepEqual(
    run.backends.map((b) => [b.name, b.namedBy, b.known]),
    [
      ["CPU", "cpu", true],
      ["Vulkan0", "copies", false],
    ],
  );
  const gpu = run.backends[1]!;
  assert.equal(gpu.measures, null);
  assert.ok(gpu.unseen.some((u) => /operators/.test(u)));
});

test("the timeline: a track per backend, each split inside its graph's slice", () => {
  const run = recording(true);
  const trace = JSON.parse(renderPerfettoTrace(run)) as {
    traceEvents: {
      name: string;
      ph: string;
      tid: number;
      ts?: number;
      dur?: number;
      cat?: string;
    }[];
  };
  const names = trace.traceEvents.filter((e) => e.name === "thread_name").map((e) => e.tid);
  const tracks = trace.traceEvents.filter((e) => e.ph === "M" && e.name === "thread_name");
  assert.ok(tracks.length >= 2 && names.length === tracks.length);
  const splits = trace.traceEvents.filter((e) => e.cat === "split");
  const graphs = trace.traceEvents.filter((e) => e.cat === "backend graph");
  assert.equal(splits.length, 2);
  for (const s of splits) {
    const g = graphs.find((x) => x.tid === s.tid)!;
    assert.ok(s.ts! >= g.ts! && s.ts! + s.dur! <= g.ts! + g.dur! + 1e-9);
  }
  const gpuSplit = splits.find((s) => s.ts === (350 - 0) / 1000)!;
  // from its submission to the end of the host's wait
  assert.equal(gpuSplit.dur, (900 - 350) / 1000);
});
