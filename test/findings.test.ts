// SPDX-License-Identifier: Apache-2.0
// Findings on real runs (traced with real eBPF, root), each induced on purpose and absent from a
// run where it is not: more threads than CPUs; a busy process taking the target's CPUs (named,
// with the time lost); threads waiting at barriers for the one that was preempted; attention
// growing with a long generation's context (and no fit for a short one); replay gives the same.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { Finding, ProfStats } from "@profinfer/contract";
import { TINY_MODELS, buildRun, readRawFile } from "@profinfer/exporter";
import { profinfer, recordCompletion, tinyModels } from "./support/targets.js";

const scratch = mkdtempSync(join(tmpdir(), "profinfer-findings-"));
after(() => rmSync(scratch, { recursive: true, force: true }));
let counter = 0;
let model = "";
before(() => {
  model = tinyModels().find((m) => m.arch === "llama")!.path;
});

async function record(
  tokens: number,
  extra: string[],
  modelPath = model,
): Promise<{ dir: string; stats: ProfStats }> {
  const dir = await recordCompletion(join(scratch, `run-${++counter}`), modelPath, tokens, extra);
  return { dir, stats: JSON.parse(readFileSync(join(dir, "stats.json"), "utf8")) as ProfStats };
}

const find = (stats: ProfStats, id: string): Finding | undefined =>
  stats.findings.find((f) => f.id === id);

/** A process that spins on one CPU (taskset), comm "python3", until stopped. */
function spinner(cpu: number): ChildProcess {
  return spawn("taskset", ["-c", String(cpu), "python3", "-c", "while True: pass"], {
    stdio: "ignore",
  });
}

describe("threads and CPUs", () => {
  test("more compute threads than CPUs is named; as many as the CPUs is not", async () => {
    const n = cpus().length;
    const over = await record(48, ["-t", String(2 * n)]);
    const f = find(over.stats, "threads.oversubscribed");
    assert.ok(f, JSON.stringify(over.stats.findings));
    assert.equal(f.evidence.threads, 2 * n);
    assert.equal(f.evidence.cpus, n);
    assert.ok((f.evidence.preemptedBySelfMs as number) > 0, "they preempted each other");
    assert.match(f.action, new RegExp(`-t ${n} or fewer`));
    const fits = await record(48, ["-t", String(n)]);
    assert.equal(find(fits.stats, "threads.oversubscribed"), undefined);
  });

  test("a busy process on the target's CPUs is named with the time it took; a quiet run has none", async () => {
    const quiet = await record(96, ["-t", "1"]);
    assert.equal(
      find(quiet.stats, "sched.interference"),
      undefined,
      JSON.stringify(quiet.stats.findings),
    );
    const spin = [spinner(0), spinner(1)];
    try {
      const busy = await record(96, ["-t", "2"]);
      const f = find(busy.stats, "sched.interference");
      assert.ok(f, JSON.stringify(busy.stats.findings));
      const pids = spin.map((s) => s.pid);
      assert.equal(f.where.process?.comm, "python3");
      assert.ok(pids.includes(f.where.process!.tgid), `${f.where.process!.tgid} is a spinner`);
      // the time it names is what the spinners took, as stats.json's preemptors count it
      const bySpinners = busy.stats.interference.by
        .filter((p) => pids.includes(p.tgid))
        .reduce((n, p) => n + p.ms, 0);
      assert.ok(
        (f.evidence.lostMs as number) > 1 && (f.evidence.lostMs as number) <= bySpinners + 1e-6,
      );
      // and the threads waited at barriers for the one a spinner held off its CPU
      const barrier = find(busy.stats, "barrier.wait");
      assert.ok(barrier, JSON.stringify(busy.stats.findings));
      assert.ok((barrier.evidence.share as number) >= 0.2);
      assert.match(String(barrier.where.thread), /^(main|worker 1)$/);
    } finally {
      for (const s of spin) s.kill("SIGKILL");
    }
    // one thread has no barrier to wait at
    assert.equal(find(quiet.stats, "barrier.wait"), undefined);
  });
});

describe("attention against the context", () => {
  test("a long generation: attention time grows, with a slope and a projection at -c", async () => {
    const long = await record(400, ["-t", "1", "-c", "1024", "--ignore-eos"]);
    const f = find(long.stats, "kv.growth");
    assert.ok(f, JSON.stringify(long.stats.findings));
    assert.ok((f.evidence.slopeMsPer1000Tokens as number) > 0);
    assert.equal(f.evidence.contextSize, 1024);
    const e = f.evidence as Record<string, number>;
    const line = e.interceptMs! + (e.slopeMsPer1000Tokens! / 1000) * 1024;
    assert.ok(Math.abs(line - e.projectedMs!) < 1e-3, "the projection is the line's");
    assert.ok((f.evidence.toPosition as number) >= 399, `${f.evidence.toPosition}`);
    // replay: the same findings from the same events
    const again = join(scratch, "replayed");
    cpSync(long.dir, again, { recursive: true });
    const ran = await profinfer(["replay", again, "--no-report"]);
    assert.equal(ran.code, 0, ran.stderr);
    const replayed = JSON.parse(readFileSync(join(again, "stats.json"), "utf8")) as ProfStats;
    assert.deepEqual(replayed.findings, long.stats.findings);
    const printed = await profinfer(["findings", long.dir, "--json"]);
    assert.deepEqual(JSON.parse(printed.stdout), long.stats.findings);
  });

  test("a short one: too few calls for a fit, no finding", async () => {
    const short = await record(16, ["-t", "1"]);
    assert.equal(find(short.stats, "kv.growth"), undefined);
  });
});

test("MoE load on tiny-qwen2moe: Jain's index per layer and the reuse, as computed from the recorded expert ids", async () => {
  const moe = tinyModels().find((m) => m.arch === "qwen2moe")!;
  const experts = TINY_MODELS.find((m) => m.arch === "qwen2moe")!.nExpert!;
  // 96 tokens: the last layer (output rows only) sees 4 choices per expert, enough to judge
  const { dir, stats } = await record(96, ["-t", "2"], moe.path);
  const f = find(stats, "moe.load");
  assert.ok(f, JSON.stringify(stats.findings));
  assert.equal(f.evidence.experts, experts, "the router's width is the model's expert count");
  // the test's own count: every row of expert ids of every call, per layer
  const run = buildRun(readRawFile(join(dir, "events.pinf")));
  const counts = new Map<number, number[]>();
  for (const t of run.tokens) {
    for (const [layer, rows] of t.experts ?? []) {
      const c = counts.get(layer) ?? new Array<number>(experts).fill(0);
      for (const row of rows) for (const e of row) c[e]!++;
      counts.set(layer, c);
    }
  }
  assert.equal(counts.size, 4, "4 MoE layers");
  for (const [layer, c] of counts) {
    const sum = c.reduce((a, b) => a + b, 0);
    const jain = (sum * sum) / (experts * c.reduce((a, b) => a + b * b, 0));
    assert.ok(
      Math.abs((f.evidence[`layer ${layer} jain`] as number) - jain) < 1e-4,
      `layer ${layer}: ${f.evidence[`layer ${layer} jain`]} against ${jain}`,
    );
  }
  // reuse: of a decode token's experts, the share the next decode token chose again
  const decode = run.tokens.filter((t) => t.phase === "decode" && t.ret !== null);
  let reused = 0;
  let pairs = 0;
  for (let i = 1; i < decode.length; i++) {
    for (const [layer, rows] of decode[i]!.experts!) {
      const before = decode[i - 1]!.experts!.get(layer)![0]!;
      reused += rows[0]!.filter((e) => before.includes(e)).length / rows[0]!.length;
      pairs++;
    }
  }
  assert.ok(Math.abs((f.evidence.reuse as number) - reused / pairs) < 1e-4);
  // a dense model has no experts to load
  const dense = await record(16, ["-t", "1"]);
  assert.equal(find(dense.stats, "moe.load"), undefined);
});
