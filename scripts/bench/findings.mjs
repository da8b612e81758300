// SPDX-License-Identifier: Apache-2.0
// The findings section: what measuring the machine profile takes, and what the roofline and the
// findings cost on a recorded run of the bench model (BENCH_FINDINGS_TOKENS tokens, default 512,
// --level op): the trace model's build, its bytes and operations pass (attachWork), ProfStat with
// its roofline tables, and the findings, each the median of BENCH_FINDINGS_REPEAT (default 5)
// repetitions in this process, with the heap they keep (after a collection, node --expose-gc).
import { performance } from "node:perf_hooks";
import { join } from "node:path";
import { table } from "./output.mjs";
import { median } from "./stats.mjs";
import { runChecked } from "./harness.mjs";

const {
  attachWork,
  buildRun,
  FindingsAccumulator,
  chunkOfRun,
  computeFindings,
  computeStats,
  measureMachine,
  readRawFile,
  typeSizesOf,
} = await import("@profinfer/exporter");

const gc = globalThis.gc ?? (() => {});

/** the median ms of `repeat` calls of `fn`, and the heap its last result keeps, MB */
function timed(fn, repeat) {
  const ms = [];
  let result;
  for (let i = 0; i < repeat; i++) {
    const start = performance.now();
    result = fn();
    ms.push(performance.now() - start);
  }
  return { ms: median(ms), result };
}

function heapMb() {
  gc();
  return process.memoryUsage().heapUsed / 2 ** 20;
}

export async function measureFindings(bench, env) {
  const tokens = Number(env.BENCH_FINDINGS_TOKENS ?? 512);
  const repeat = Number(env.BENCH_FINDINGS_REPEAT ?? 5);
  const started = performance.now();
  const profile = measureMachine();
  const machineWallS = (performance.now() - started) / 1000;

  const out = join(bench.scratch, "findings-run");
  const [command, args] = bench.record(["--no-report", "--level", "op"], out, tokens);
  runChecked(command, args, "profinfer record (findings)");
  const recording = readRawFile(join(out, "events.pinf"));
  const before = heapMb();
  const build = timed(() => buildRun(recording), repeat);
  const run = build.result;
  const runHeapMb = heapMb() - before;
  const sizes = typeSizesOf(run.header.layout);
  const tokenOf = new Map(run.tokens.map((t) => [`${t.tgid}:${t.seq}`, t]));
  const work = timed(
    () => attachWork(run.graphRuns, (g) => tokenOf.get(`${g.tgid}:${g.tokenSeq}`) ?? null, sizes),
    repeat,
  );
  const stats = timed(() => computeStats(run), repeat);
  const withoutFindings = { ...stats.result };
  delete withoutFindings.findings;
  const beforeFindings = heapMb();
  const findings = timed(() => {
    const input = new FindingsAccumulator();
    input.add(chunkOfRun(run));
    return computeFindings(input.input(), withoutFindings);
  }, repeat);
  const findingsHeapMb = heapMb() - beforeFindings;
  return {
    tokens,
    repeat,
    machine: {
      wallS: machineWallS,
      probeS: profile.seconds,
      points: profile.bandwidth.points.length,
    },
    events: run.eventCount,
    opRuns: run.graphRuns.reduce((n, g) => n + g.ops.length, 0),
    buildMs: build.ms,
    runHeapMb,
    workMs: work.ms,
    statsMs: stats.ms,
    findingsMs: findings.ms,
    findingsHeapMb,
    findings: findings.result.map((f) => f.id),
  };
}

export function findingsLines(r) {
  return [
    "",
    `## Machine profile and findings (bench model, ${r.tokens} tokens, --level op; median of ${r.repeat})`,
    "",
    `Machine profile: ${r.machine.wallS.toFixed(2)} s wall (the probe's own ${r.machine.probeS.toFixed(2)} s, ${r.machine.points} thread counts).`,
    "",
    ...table(
      ["step", "ms", "share of the trace model's build"],
      [
        ["trace model (buildRun, with bytes and operations)", r.buildMs.toFixed(1), "100%"],
        [
          "of which bytes and operations (attachWork)",
          r.workMs.toFixed(1),
          `${((100 * r.workMs) / r.buildMs).toFixed(1)}%`,
        ],
        [
          "ProfStat with roofline and findings (computeStats)",
          r.statsMs.toFixed(1),
          `${((100 * r.statsMs) / r.buildMs).toFixed(1)}%`,
        ],
        [
          "findings alone (computeFindings)",
          r.findingsMs.toFixed(1),
          `${((100 * r.findingsMs) / r.buildMs).toFixed(1)}%`,
        ],
      ],
    ),
    "",
    `${r.events} events, ${r.opRuns} operator runs; the model keeps ${r.runHeapMb.toFixed(0)} MB of heap, the findings ${r.findingsHeapMb.toFixed(2)} MB more. Findings: ${r.findings.join(", ") || "none"}.`,
  ];
}
