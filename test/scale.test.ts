// SPDX-License-Identifier: Apache-2.0
// Scale (issue 13): a long op-level recording and its outputs within a bound on profinfer's
// resident memory, read by this test from /proc while profinfer runs (a bound, not a timing), with
// every output whole; and the protobuf timeline read by an independent reader (protobufjs and
// Perfetto's documented schema) holding trace.json's tracks and slices for the same run.
import assert from "node:assert/strict";
import { createReadStream, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import * as C from "@profinfer/contract";
import type { ProfStats, ReportData } from "@profinfer/contract";
import { createInterface } from "node:readline";
import {
  countPerfettoSlices,
  readPerfettoJson,
  readPerfettoProto,
  sortedSlices,
} from "./support/perfettoReader.js";
import { cli, completion, runProgram, tinyModels } from "./support/targets.js";

const scratch = mkdtempSync(join(tmpdir(), "profinfer-scale-"));
after(() => rmSync(scratch, { recursive: true, force: true }));
let tinyLlama = "";
before(() => {
  tinyLlama = tinyModels().find((m) => m.arch === "llama")!.path;
});

/** The bound on profinfer's resident memory, whatever the run's length. */
const RSS_BOUND_BYTES = 300 * 2 ** 20;

/** The peak resident set a process reached (VmHWM), read from /proc until it exits. */
function watchPeakResident(pid: number): { peak: () => number; stop: () => void } {
  let peak = 0;
  const read = () => {
    try {
      const status = readFileSync(`/proc/${pid}/status`, "utf8");
      const kb = Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1] ?? 0);
      peak = Math.max(peak, kb * 1024);
    } catch {
      // it has exited: the last reading stands
    }
  };
  const timer = setInterval(read, 20);
  return { peak: () => peak, stop: () => clearInterval(timer) };
}

describe("a long op-level recording", () => {
  test("10,000 tokens: profinfer's peak resident memory stays under 300 MB, and every output is whole", async () => {
    const dir = join(scratch, "long");
    let watch: ReturnType<typeof watchPeakResident> | null = null;
    const tokens = 10_000;
    const ran = await runProgram(
      cli,
      [
        "record",
        "--no-status",
        "--out",
        dir,
        "--",
        ...completion(tinyLlama, tokens, ["-c", String(tokens + 64)]),
      ],
      { timeoutMs: 1_500_000, onSpawn: (child) => (watch = watchPeakResident(child.pid!)) },
    );
    watch!.stop();
    assert.equal(ran.code, 0, ran.stderr.slice(-3000));
    const peak = watch!.peak();
    assert.ok(peak > 0, "the resident memory was read");
    assert.ok(
      peak < RSS_BOUND_BYTES,
      `peak resident memory ${(peak / 2 ** 20).toFixed(0)} MB, bound ${RSS_BOUND_BYTES / 2 ** 20} MB`,
    );

    // stats.json: every call, one prompt and the generated tokens
    const stats = JSON.parse(readFileSync(join(dir, "stats.json"), "utf8")) as ProfStats;
    assert.equal(stats.phases.decode.calls + stats.phases.prefill.calls, stats.tokens.length);
    assert.ok(stats.tokens.length >= tokens, `${stats.tokens.length} calls`);
    assert.equal(stats.requests.count, 1);
    assert.ok(stats.requests.generatedTokens >= tokens);
    assert.ok(stats.ops.length > 0 && stats.ops.every((o) => o.count > 0));
    // the timeline: a long run gets Perfetto's protobuf format, with a slice per call
    const slices = countPerfettoSlices(readFileSync(join(dir, "trace.pftrace")));
    assert.equal(slices.get("tokens|token"), stats.tokens.length, "a tokens slice per call");
    assert.ok(
      (slices.get("main|mul_mat") ?? 0) > stats.tokens.length,
      "operator slices on the main thread",
    );
    assert.ok(!existsSync(join(dir, "trace.json")), "no JSON timeline for a run this long");
    // the spans of every call, in the OTLP JSON file
    const names = new Map<string, number>();
    const lines = createInterface({ input: createReadStream(join(dir, "traces.otlp.jsonl")) });
    for await (const line of lines) {
      if (line === "") continue;
      const request = JSON.parse(line) as {
        resourceSpans: { scopeSpans: { spans: { name: string }[] }[] }[];
      };
      for (const rs of request.resourceSpans)
        for (const ss of rs.scopeSpans)
          for (const s of ss.spans) names.set(s.name, (names.get(s.name) ?? 0) + 1);
    }
    assert.equal(names.get(C.SPAN_TOKEN), stats.tokens.length, "a llama_decode span per call");
    // the profiles and a report bounded in size, which says what it shows
    assert.ok(statSync(join(dir, "profile.pb.gz")).size > 0);
    const html = readFileSync(join(dir, "report.html"), "utf8");
    const data = JSON.parse(
      /<script type="application\/json" id="profinfer-report-data">(.*?)<\/script>/s.exec(
        html,
      )![1]!,
    ) as ReportData;
    assert.equal(data.callSample?.total, stats.tokens.length);
    assert.ok(data.callSample!.shown <= 600, `${data.callSample!.shown} calls shown in detail`);
    assert.ok(data.mainGraphSpanId !== null, "the main decode graph, with its operators");
  });
});

describe("the protobuf timeline", () => {
  test("read with Perfetto's schema, it holds the tracks and slices of trace.json for the same run", async () => {
    const dir = join(scratch, "small");
    const ran = await runProgram(cli, [
      "record",
      "--no-status",
      "--no-report",
      "--timeline",
      "both",
      "--out",
      dir,
      "--",
      ...completion(tinyLlama, 6),
    ]);
    assert.equal(ran.code, 0, ran.stderr.slice(-3000));
    const proto = readPerfettoProto(readFileSync(join(dir, "trace.pftrace")));
    const json = readPerfettoJson(readFileSync(join(dir, "trace.json"), "utf8"));
    const key = (s: { track: string; name: string; cat: string; startNs: number; durNs: number }) =>
      `${s.track}|${s.name}|${s.cat}|${s.startNs}|${s.durNs}`;
    assert.ok(json.length > 100, `${json.length} slices`);
    assert.deepEqual(sortedSlices(proto.slices).map(key), sortedSlices(json).map(key));
    assert.deepEqual(
      [...new Set(proto.slices.map((s) => s.track))].sort(),
      [...new Set(json.map((s) => s.track))].sort(),
      "the same tracks",
    );
    // the arguments of an operator slice, as trace.json has them (nulls left out)
    const op = sortedSlices(json).find((s) => s.cat === "mul_mat")!;
    const same = proto.slices.find((s) => key(s) === key(op))!;
    assert.deepEqual(
      same.args,
      Object.fromEntries(Object.entries(op.args).filter(([, v]) => v !== null)),
    );
  });
});
