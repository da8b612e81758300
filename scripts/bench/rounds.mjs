// SPDX-License-Identifier: Apache-2.0
// The rounds: llama-bench alone and under `profinfer record` in each configuration, interleaved
// in rounds (the order shuffled each round) so that machine drift cancels in the per-round
// ratios. Gives the slowdown, the CPU, probe hits per decoded token and the cost per probe hit.
import { join } from "node:path";
import { runTimed } from "./harness.mjs";
import { orDash, percent, span, table } from "./output.mjs";
import { noteOf, profilerCpuPct, takeRecording } from "./recording.mjs";
import { median, percentOver, range } from "./stats.mjs";

const { EventType } = await import("@profinfer/exporter");

/** one llama-bench run of `config`: t/s, probe hits (per token and in all), CPU, profinfer's CPU */
function runOnce(bench, config, round, tokens) {
  const options = bench.recordOptions[config];
  const out = join(bench.scratch, `${config}-${round}`);
  const command = options === null ? bench.llamaBench(tokens) : bench.record(options, out, tokens);
  const { stdout, cpuSeconds } = runTimed(...command, config);
  const json = JSON.parse(stdout.slice(stdout.indexOf("["), stdout.lastIndexOf("]") + 1));
  const tps = json[0].avg_ts;
  if (options === null) return { tps, hits: null, totalHits: null, cpuSeconds, selfPct: null };
  const recording = takeRecording(out);
  const note = noteOf(recording, "hits");
  // at level metrics no event reaches user space: the kernel's aggregates count the decodes
  // (NativeAggregates.tokens is by phase, 1 the decode phase; the entry has no name for it)
  const aggregates = noteOf(recording, "aggregates");
  const decodes = aggregates
    ? aggregates.tokens[1].calls
    : recording.events.filter((e) => e.type === EventType.TOKEN_BEGIN && e.nTokens === 1).length;
  // entry + return probes, and step probes (entry only)
  const totalHits = note
    ? (note.op + note.barrier + note.graph + note.token) * 2 + (note.step ?? 0)
    : null;
  const hits = totalHits === null ? null : totalHits / Math.max(decodes, 1);
  return { tps, hits, totalHits, cpuSeconds, selfPct: profilerCpuPct(recording) };
}

/** config -> its runs, one a round, printing each round's t/s as it ends */
export function runRounds({ rounds, tokens, configs }, bench) {
  const results = Object.fromEntries(configs.map((c) => [c, []]));
  for (let round = 0; round < rounds; round++) {
    const order = [...configs].sort(() => Math.random() - 0.5);
    for (const config of order) results[config].push(runOnce(bench, config, round, tokens));
    process.stdout.write(
      `round ${round + 1}/${rounds}: ${configs.map((c) => `${c} ${results[c].at(-1).tps.toFixed(2)} t/s`).join(", ")}\n`,
    );
  }
  return results;
}

/** `field` of each run of `config` over that of the same round's run of `baseline` */
export const perRoundRatios = (results, config, baseline, field) =>
  (results[config] ?? []).map((r, i) => r[field] / results[baseline][i][field]);

/** one row a configuration: medians over the rounds, each set against llama-bench alone */
export function summariseRounds({ configs }, results) {
  const noneTps = median(results.none.map((r) => r.tps));
  return configs.map((config) => {
    const runs = results[config];
    const tps = median(runs.map((r) => r.tps));
    const slowdown = perRoundRatios(results, config, "none", "tps").map((r) => percentOver(1 / r));
    const hits = median(runs.map((r) => r.hits ?? 0));
    const extraMsPerToken = 1000 / tps - 1000 / noneTps;
    // CPU time of the whole run (model load included) against the same round's run without profinfer
    const cpuRatios = perRoundRatios(results, config, "none", "cpuSeconds");
    const selfPcts = runs.filter((r) => r.selfPct !== null).map((r) => r.selfPct);
    return {
      config,
      medianTps: tps,
      medianSlowdownPct: config === "none" ? 0 : median(slowdown),
      medianCpuIncreasePct: config === "none" ? 0 : percentOver(median(cpuRatios)),
      medianCpuSeconds: median(runs.map((r) => r.cpuSeconds)),
      slowdownRangePct: config === "none" ? [0, 0] : range(slowdown),
      probeHitsPerToken: config === "none" ? 0 : hits,
      medianSelfPct: selfPcts.length > 0 ? median(selfPcts) : null,
      // with few hits a token the difference is inside the run-to-run noise
      usPerProbeHit:
        config === "none" || !hits || hits < 100 ? null : (extraMsPerToken * 1000) / hits,
    };
  });
}

/** The cost of reading counters: extra time per token over plain `op`, per probe hit. */
export function counterCosts(rows, results) {
  const opRow = rows.find((r) => r.config === "op");
  return rows
    .filter((r) => r.config.includes("counter") && opRow)
    .map((r) => {
      const extraMs = 1000 / r.medianTps - 1000 / opRow.medianTps;
      // CPU time is less disturbed than t/s by other programs on the machine: the extra CPU of the
      // whole run (target and profinfer) over plain op, per probe hit of the run
      const cpuPerHitUs = results[r.config].map(
        (x, i) => ((x.cpuSeconds - results.op[i].cpuSeconds) * 1e6) / (x.totalHits ?? Infinity),
      );
      return {
        config: r.config,
        extraMsPerToken: extraMs,
        usPerHit: r.probeHitsPerToken ? (extraMs * 1000) / r.probeHitsPerToken : null,
        cpuUsPerHit: median(cpuPerHitUs),
      };
    });
}

/** the rounds' table, with what its columns mean */
export function roundsLines({ rounds, tokens }, rows) {
  return [
    `bench model, llama-bench -t 2 -n ${tokens}, ${rounds} interleaved rounds (profinfer's own CPU shares the 2 cores).`,
    "CPU s / run: user+system CPU of the whole run (model load, warm-up, the tokens, and under profinfer its start-up, probing and output writing).",
    "",
    'profinfer CPU: what profinfer itself used (all its threads) from the target\'s first llama_decode to the end of tracing, as a share of one core (the "profiler" note; none at level metrics, which streams no token events).',
    "",
    ...table(
      [
        "level",
        "median t/s",
        "slowdown (median)",
        "slowdown range",
        "CPU s / run",
        "CPU increase (median)",
        "profinfer CPU",
        "probe hits / token",
        "us / probe hit",
      ],
      rows.map((r) => [
        r.config,
        r.medianTps.toFixed(2),
        percent(r.medianSlowdownPct, 2),
        `${span(r.slowdownRangePct, 1)}%`,
        r.medianCpuSeconds.toFixed(2),
        percent(r.medianCpuIncreasePct, 1),
        orDash(r.medianSelfPct, (x) => percent(x, 2)),
        r.probeHitsPerToken ? r.probeHitsPerToken.toFixed(0) : "-",
        orDash(r.usPerProbeHit, (x) => x.toFixed(2)),
      ]),
    ),
  ];
}

/** the counters' table (none without a counter configuration) */
export function counterLines(counterCost) {
  if (counterCost.length === 0) return [];
  return [
    "",
    "Reading counters at every boundary, over plain op (extra time per decoded token and per probe hit):",
    "",
    ...table(
      [
        "config",
        "extra ms / token",
        "us / probe hit (from t/s)",
        "CPU us / probe hit (median of rounds)",
      ],
      counterCost.map((c) => [
        c.config,
        c.extraMsPerToken.toFixed(3),
        orDash(c.usPerHit, (x) => x.toFixed(3)),
        c.cpuUsPerHit.toFixed(3),
      ]),
    ),
  ];
}
