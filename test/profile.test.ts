// SPDX-License-Identifier: Apache-2.0
// The pprof profiles of real runs (traced with real eBPF, root), read by `go tool pprof` (a
// reader that is not profinfer's): per operator type its wall time, barrier wait, runs and
// counter deltas equal stats.json's; the per-phase profiles sum to the whole run's, and each
// phase's wall time is the time of its llama_decode calls; two runs diff with -diff_base, and
// the op that changed most is the one the two stats.json say.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { ProfStats } from "@profinfer/contract";
import { completion, profinfer, tinyModels } from "./support/targets.js";

const scratch = mkdtempSync(join(tmpdir(), "profinfer-profile-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** `go tool pprof ARGS` (the Go toolchain builds its pprof on first use); its stdout. */
function pprof(args: string[]): string {
  const r = spawnSync("go", ["tool", "pprof", ...args], { encoding: "utf8", timeout: 300_000 });
  assert.equal(r.status, 0, `go tool pprof ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

/** `pprof -top -cum` in ns (or counts) without dropping a node: cum per function name. */
function cumulative(
  profile: string,
  sampleIndex: string,
  extra: string[] = [],
): Map<string, number> {
  const text = pprof([
    "-top",
    "-cum",
    "-unit=ns",
    "-nodecount=0",
    "-nodefraction=0",
    "-edgefraction=0",
    `-sample_index=${sampleIndex}`,
    ...extra,
    profile,
  ]);
  const out = new Map<string, number>();
  // flat flat% sum% cum cum% name
  for (const line of text.split("\n")) {
    const m =
      /^\s*(-?[\d.]+)(?:ns)?\s+-?[\d.]+%\s+-?[\d.]+%\s+(-?[\d.]+)(?:ns)?\s+-?[\d.]+%\s+(.+)$/.exec(
        line,
      );
    if (m) out.set(m[3]!.trim(), Number(m[2]));
  }
  return out;
}

/** "Total samples = N" of `pprof -top` for a sample type. */
function total(profile: string, sampleIndex: string): number {
  const text = pprof(["-top", "-unit=ns", "-nodecount=1", `-sample_index=${sampleIndex}`, profile]);
  const m = /Total samples = (-?[\d.]+)/.exec(text);
  assert.ok(m, text);
  return Number(m[1]);
}

function record(name: string, tokens: number, extra: string[] = []) {
  const dir = join(scratch, name);
  return profinfer([
    "record",
    "--no-status",
    "--out",
    dir,
    ...extra,
    "--",
    ...completion(model, tokens),
  ]).then((ran) => {
    assert.equal(ran.code, 0, ran.stderr);
    return {
      dir,
      stats: JSON.parse(readFileSync(join(dir, "stats.json"), "utf8")) as ProfStats,
    };
  });
}

let model = "";
before(() => {
  model = tinyModels().find((m) => m.arch === "llama")!.path;
});

describe("a run's profiles through go tool pprof", () => {
  let run: Awaited<ReturnType<typeof record>>;
  before(async () => {
    run = await record("counted", 24, ["--pmc", "task-clock"]);
  });

  test("per operator type: wall time, barrier wait, runs and counter deltas as in stats.json", () => {
    const profile = join(run.dir, "profile.pb.gz");
    const wall = cumulative(profile, "wall");
    const barrier = cumulative(profile, "barrier");
    const runs = cumulative(profile, "runs");
    const clock = cumulative(profile, "task-clock");
    assert.ok(run.stats.ops.length >= 5, `${run.stats.ops.length} op types`);
    for (const op of run.stats.ops) {
      const name = op.display;
      assert.ok(
        Math.abs(wall.get(name)! - op.totalMs * 1e6) <= 1,
        `${name} wall ${wall.get(name)}`,
      );
      assert.ok(
        Math.abs((barrier.get(name) ?? 0) - op.barrierWaitMs * 1e6) <= 1,
        `${name} barrier`,
      );
      assert.equal(runs.get(name), op.count, `${name} runs`);
      const counted = op.counters?.["task-clock"];
      assert.ok(counted !== undefined && counted > 0, `${name} has task-clock deltas`);
      assert.ok(Math.abs((clock.get(name) ?? 0) - counted) <= 1, `${name} task-clock`);
    }
  });

  test("-traces lists every stack once per thread, root first the phase, with the thread as a label", () => {
    // the runs sample: a stack's operator runs (counted on the thread that ran the node first)
    const text = pprof(["-traces", "-sample_index=runs", join(run.dir, "profile.pb.gz")]);
    const blocks = text.split(/^-+\+-+$/m).slice(1);
    const threads = new Set<string>();
    const seen = new Set<string>();
    let runs = 0;
    for (const block of blocks) {
      const lines = block.split("\n").filter((l) => l.trim());
      if (lines.length === 0) continue;
      const label = /^\s*thread:\s+(.+)$/.exec(lines[0]!);
      if (label) threads.add(label[1]!.trim());
      const stackLines = lines.filter((l) => !/^\s*\w+:\s/.test(l));
      const value = /^\s*(-?\d+)\s/.exec(stackLines[0]!);
      assert.ok(value, stackLines[0]);
      const frames = stackLines.map((l) => l.replace(/^\s*-?\d+\s+/, "").trim());
      assert.ok(["prefill", "decode", "mixed"].includes(frames.at(-1)!), frames.join(" < "));
      // samples are summed per stack and thread: each pair once
      const key = `${label?.[1]} ${frames.join(" < ")}`;
      assert.ok(!seen.has(key), `${key} twice`);
      seen.add(key);
      if (frames.length === 4) runs += Number(value[1]);
    }
    assert.ok(threads.has("main") && threads.has("worker 1"), [...threads].join(", "));
    const opRuns = run.stats.ops.reduce((n, op) => n + op.count, 0);
    assert.equal(runs, opRuns, "every operator run in one phase > layer > op > tensor stack");
  });

  test("the per-phase profiles sum to the whole run, and a phase's wall time is its calls' time", () => {
    const whole = join(run.dir, "profile.pb.gz");
    const phases = (["prefill", "decode", "mixed"] as const).filter((p) =>
      existsSync(join(run.dir, `profile-${p}.pb.gz`)),
    );
    assert.deepEqual(phases, ["prefill", "decode"]);
    for (const type of ["wall", "thread", "barrier", "runs", "task-clock"]) {
      const parts = phases.map((p) => total(join(run.dir, `profile-${p}.pb.gz`), type));
      assert.ok(
        Math.abs(parts.reduce((a, b) => a + b, 0) - total(whole, type)) <= 1,
        `${type}: ${parts.join(" + ")} against ${total(whole, type)}`,
      );
    }
    for (const phase of phases) {
      const wall = total(join(run.dir, `profile-${phase}.pb.gz`), "wall");
      assert.ok(
        Math.abs(wall - run.stats.phases[phase].totalMs * 1e6) <= 1,
        `${phase}: ${wall} ns against ${run.stats.phases[phase].totalMs} ms of calls`,
      );
    }
  });

  test("profinfer profile writes the same profiles again", async () => {
    const copy = join(scratch, "again");
    mkdirSync(copy);
    cpSync(join(run.dir, "events.pinf"), join(copy, "events.pinf"));
    const ran = await profinfer(["profile", copy]);
    assert.equal(ran.code, 0, ran.stderr);
    for (const name of ["profile.pb.gz", "profile-prefill.pb.gz", "profile-decode.pb.gz"]) {
      assert.ok(
        readFileSync(join(copy, name)).equals(readFileSync(join(run.dir, name))),
        `${name} byte for byte`,
      );
    }
  });
});

test("two runs diff with -diff_base: the op that changed most is the one the two stats.json say", async () => {
  const short = await record("short", 4);
  const long = await record("long", 48);
  const diff = cumulative(join(long.dir, "profile.pb.gz"), "wall", [
    `-diff_base=${join(short.dir, "profile.pb.gz")}`,
  ]);
  const change = (name: string) => {
    const ms = (s: ProfStats) => s.ops.find((o) => o.display === name)?.totalMs ?? 0;
    return ms(long.stats) - ms(short.stats);
  };
  const names = [...new Set([...long.stats.ops, ...short.stats.ops].map((o) => o.display))];
  const byStats = names.reduce((a, b) => (Math.abs(change(b)) > Math.abs(change(a)) ? b : a));
  const byPprof = names.reduce((a, b) =>
    Math.abs(diff.get(b) ?? 0) > Math.abs(diff.get(a) ?? 0) ? b : a,
  );
  assert.equal(byPprof, byStats);
  assert.ok(Math.abs(diff.get(byStats)! - change(byStats) * 1e6) <= 2, "by the same amount");
});
