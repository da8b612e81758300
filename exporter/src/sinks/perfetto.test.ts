// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { moeRunFixture } from "../../../test/support/fixtures.js";
import {
  readPerfettoJson,
  readPerfettoProto,
  sortedSlices,
} from "../../../test/support/perfettoReader.js";
import { buildRun } from "../trace/buildRun.js";
import {
  GRAPHS_TRACK_TID,
  REQUESTS_TRACK_BASE,
  SCHED_TRACK_BASE,
  TOKENS_TRACK_TID,
  renderPerfettoTrace,
  writePerfettoTrace,
} from "./perfetto.js";
import { renderPerfettoProto } from "./perfettoProto.js";

const dir = mkdtempSync(join(tmpdir(), "profinfer-perfetto-"));
after(() => rmSync(dir, { recursive: true, force: true }));

interface Ev {
  name: string;
  cat?: string;
  ph: string;
  ts?: number;
  dur?: number;
  pid: number;
  tid: number;
  args?: Record<string, unknown>;
}

const fixture = moeRunFixture();
const run = buildRun(fixture.rec.recording());
const text = renderPerfettoTrace(run);
const trace = JSON.parse(text) as { displayTimeUnit: string; traceEvents: Ev[]; otherData: object };
const events = trace.traceEvents;

test("trace.json is the JSON Object Format with the process and thread names", () => {
  assert.equal(trace.displayTimeUnit, "ns");
  assert.ok(Array.isArray(events));
  const meta = events.filter((e) => e.ph === "M" && e.name.endsWith("_name"));
  assert.deepEqual(
    meta.map((e) => [e.name, e.tid, e.args!.name]),
    [
      ["process_name", 1000, "llama-simple -m tiny.gguf -n 2"],
      ["thread_name", TOKENS_TRACK_TID, "tokens"],
      ["thread_name", GRAPHS_TRACK_TID, "graphs"],
      ["thread_name", REQUESTS_TRACK_BASE, "seq 0"],
      ["thread_name", 1001, "main"],
      ["thread_name", 1002, "worker 1"],
      ["thread_name", 1003, "worker 2"],
      ["thread_name", SCHED_TRACK_BASE + 1001, "sched 1001"],
      ["thread_name", SCHED_TRACK_BASE + 1002, "sched 1002"],
    ],
  );
  assert.ok(events.every((e) => e.pid === 1000));
});

test("each request is a slice on its sequence's track, split at its first token", () => {
  const slices = events.filter((e) => e.cat === "request");
  const [request] = run.requests;
  assert.equal(run.requests.length, 1);
  assert.deepEqual(
    slices.map((e) => [e.name, e.tid]),
    [
      [`request #0`, REQUESTS_TRACK_BASE],
      ["prompt", REQUESTS_TRACK_BASE],
      ["generation", REQUESTS_TRACK_BASE],
    ],
  );
  const [whole, prompt, generation] = slices;
  assert.equal(whole!.args!.generated_tokens, request!.generatedTokens);
  // the prompt ends where the generation starts: at the end of the call of the first token
  assert.equal(prompt!.ts! + prompt!.dur!, generation!.ts);
  assert.equal(whole!.ts! + whole!.dur!, generation!.ts! + generation!.dur!);
  assert.ok(Math.abs((whole!.args!.ttft_ms as number) - prompt!.dur! / 1000) < 1e-9);
});

test("rendering twice, or writing to a file, gives the same bytes", () => {
  assert.equal(renderPerfettoTrace(buildRun(fixture.rec.recording())), text);
  const path = join(dir, "trace.json");
  writePerfettoTrace(run, path);
  assert.equal(readFileSync(path, "utf8"), text);
});

test("each worker thread has one op event per operator run and one barrier event after each", () => {
  const opsPerGraph = run.graphRuns.filter((g) => g.fn === "cpu").map((g) => g.ops.length);
  const total = opsPerGraph.reduce((a, b) => a + b, 0);
  for (const tid of fixture.tids) {
    const mine = events.filter((e) => e.ph === "X" && e.tid === tid);
    const ops = mine.filter((e) => e.cat !== "barrier");
    assert.equal(ops.length, total, `ops of ${tid}`);
    assert.equal(mine.length - ops.length, total, `barriers of ${tid}`);
    for (let i = 1; i < mine.length; i++) {
      assert.ok(
        mine[i - 1]!.ts! + mine[i - 1]!.dur! <= mine[i]!.ts! + 1e-9,
        "in time order, disjoint",
      );
    }
  }
  const silu = events.find((e) => e.name === "ffn_moe_silu-0" && e.tid === 1002)!;
  assert.equal(silu.cat, "unary:silu");
  assert.deepEqual(silu.args, {
    op: "UNARY:SILU",
    shape: [64, 1, 1, 1],
    type: "f32",
    layer: 0,
    node: 11,
    visible: false,
    graph: 1,
    token: 1,
  });
  const norm = events.find((e) => e.name === "norm-0")!;
  assert.equal(norm.cat, "rms_norm+mul");
  assert.deepEqual(norm.args!.fused, ["attn_norm-0"]);
});

test("tokens, graphs and the scheduler have tracks of their own", () => {
  const tokens = events.filter((e) => e.tid === TOKENS_TRACK_TID && e.ph === "X");
  assert.deepEqual(
    tokens.map((e) => [e.name, e.args!.phase, e.args!.n_tokens, e.args!.seq]),
    [
      ["prefill", "prefill", 3, 1],
      ["decode", "decode", 1, 2],
      ["decode", "decode", 1, 3],
    ],
  );
  const graphs = events.filter((e) => e.tid === GRAPHS_TRACK_TID && e.ph === "X");
  assert.deepEqual(
    graphs.map((e) => e.name),
    ["sched graph", "cpu graph", "sched graph", "cpu graph", "sched graph", "cpu graph"],
  );
  const sched = events.filter((e) => e.tid === SCHED_TRACK_BASE + 1002);
  assert.deepEqual(
    sched.filter((e) => e.ph === "X").map((e) => [e.name, e.dur, e.args!.by_tgid]),
    [["preempted by stress-ng", 1, 4242]],
  );
  const sleeps = events.filter((e) => e.tid === SCHED_TRACK_BASE + 1001 && e.ph === "X");
  assert.deepEqual(
    sleeps.map((e) => e.name),
    ["off-cpu", "off-cpu", "off-cpu"],
  );
});

test("timestamps are microseconds from the first event, exact to the nanosecond", () => {
  const x = events.filter((e) => e.ph === "X");
  assert.equal(Math.min(...x.map((e) => e.ts!)), 0);
  for (const e of x) {
    assert.ok(Math.abs(e.ts! * 1000 - Math.round(e.ts! * 1000)) < 1e-6, `${e.name} ts ${e.ts}`);
    assert.ok(e.dur! >= 0);
  }
  const op = run.graphRuns[1]!.ops[3]!.threads[1]!;
  const ev = x.find((e) => e.name === run.graphRuns[1]!.ops[3]!.tensor.name && e.tid === op.tid)!;
  assert.equal(ev.ts, Number(op.startNs - run.firstNs) / 1000);
  assert.equal(ev.dur, Number(op.endNs - op.startNs) / 1000);
});

test("the protobuf timeline, read with Perfetto's schema, holds trace.json's tracks, slices and arguments", () => {
  const proto = readPerfettoProto(renderPerfettoProto(run));
  const json = readPerfettoJson(text);
  const withoutNulls = (args: Record<string, unknown>) =>
    Object.fromEntries(Object.entries(args).filter(([, v]) => v !== null));
  assert.deepEqual(
    sortedSlices(proto.slices),
    sortedSlices(json.map((s) => ({ ...s, args: withoutNulls(s.args) }))),
  );
  assert.deepEqual(proto.process, { pid: 1000, name: "llama-simple -m tiny.gguf -n 2" });
  assert.deepEqual(proto.threads.map((t) => t.name).sort(), ["main", "worker 1", "worker 2"]);
});
