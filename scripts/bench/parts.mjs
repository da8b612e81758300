// SPDX-License-Identifier: Apache-2.0
// The parts section. The token and graph levels cost less than the rounds can resolve: their cost
// is put together from parts measured here instead. What a probe hit costs comes from a C loop
// (probeCost.mjs: the trap and profinfer's own token programs); how many hits each program takes
// per decode call and its own run time come from a long recorded run (bpf_stats); profinfer's
// CPU from the same run's "profiler" note. Also each BPF program's in-kernel time per hit for the
// configurations that differ in what a hit does.
import { spawn } from "node:child_process";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { bpftool, pollProgramRuns, programNsOf, withBpfStats } from "./bpfStats.mjs";
import { table } from "./output.mjs";
import { measureProbeCost } from "./probeCost.mjs";
import { completeDecodeCalls, durationNs, profilerCpuPct, takeRecording } from "./recording.mjs";
import { median } from "./stats.mjs";

const { buildRun } = await import("@profinfer/exporter");

// step_site: the step probes (op and metrics levels); cpu_graph_enter reads the graph's node
// list and shapes at each graph compute at op level (the snapshot signature)
const PROGRAMS = [
  "decode_enter",
  "decode_exit",
  "sched_graph_enter",
  "sched_graph_exit",
  "sched_alloc",
  "cpu_graph_exit",
  "step_site",
  "op_enter",
  "op_exit",
  "barrier_enter",
  "barrier_exit",
  "cpu_graph_enter",
  "on_sched_switch",
  "on_sched_wakeup",
];
// the configurations whose probe hits do different work
const PROGRAM_COST_CONFIGS = ["op", "op-functions", "op+1 counter", "op+4 counters", "metrics"];
const PARTS_LEVELS = ["token", "graph"];

/**
 * A recorded llama-bench run of `config` decoding `tokens`: its programs' hits and in-kernel ns
 * per hit, or with `inspect` { programs, seen: inspect(recording) }, read before the folder goes.
 */
async function programCostRun(bench, config, { tokens, inspect }) {
  const out = join(bench.scratch, `stats-${config.replace(/\W/g, "_")}`);
  const options = ["--no-report", ...bench.recordOptions[config]];
  const child = spawn(...bench.record(options, out, tokens), { stdio: "ignore" });
  const exited = new Promise((r) => child.on("exit", r));
  const runs = await pollProgramRuns(child.pid, exited, PROGRAMS);
  const programs = Object.fromEntries(
    Object.entries(runs).map(([name, v]) => [name, { hits: v.runs, nsPerHit: v.ns / v.runs }]),
  );
  if (!inspect) {
    rmSync(out, { recursive: true, force: true });
    return programs;
  }
  return { programs, seen: inspect(takeRecording(out)) };
}

/** llama_decode calls, the median decode call and profinfer's CPU share of a recording */
function decodeFigures(recording) {
  const run = buildRun(recording);
  return {
    calls: run.tokens.length,
    decodeMs: median(completeDecodeCalls(run).map(durationNs)) / 1e6,
    selfPct: profilerCpuPct(recording),
  };
}

/**
 * { bpfCost, probeCost, partsCost }: per configuration, each program's hits and in-kernel ns per
 * hit (null where bpf_stats cannot be read); a probe hit's cost on the C loop; per level the
 * programs of a BENCH_PARTS_TOKENS run and its decode figures. A failure is printed, not thrown:
 * what was measured before it is kept.
 */
export async function measureParts({ configs, tokens, partsTokens, bpfStats }, bench) {
  const measured = { bpfCost: null, probeCost: null, partsCost: {} };
  if (!bpftool || !bpfStats) return measured;
  try {
    await withBpfStats(async () => {
      measured.bpfCost = {};
      for (const config of PROGRAM_COST_CONFIGS.filter((c) => configs.includes(c)))
        measured.bpfCost[config] = await programCostRun(bench, config, { tokens });
      const levels = PARTS_LEVELS.filter((c) => configs.includes(c));
      if (levels.length === 0) return;
      measured.probeCost = await measureProbeCost({
        scratch: bench.scratch,
        programStats: programNsOf,
      });
      for (const level of levels)
        measured.partsCost[level] = await programCostRun(bench, level, {
          tokens: partsTokens,
          inspect: decodeFigures,
        });
    });
  } catch (error) {
    process.stdout.write(`in-kernel cost not measured: ${error.message}\n`);
  }
  return measured;
}

/** the in-kernel time per hit of each program, per configuration */
export function programCostLines(bpfCost) {
  if (!bpfCost || Object.keys(bpfCost).length === 0) return [];
  return [
    "",
    "In-kernel time per probe hit of each BPF program (kernel.bpf_stats_enabled; the programs' own run time, not the uprobe trap):",
    "",
    ...table(
      ["config", ...PROGRAMS],
      Object.entries(bpfCost).map(([config, progs]) => [
        config,
        ...PROGRAMS.map((p) => (progs[p] ? `${progs[p].nsPerHit.toFixed(0)} ns` : "-")),
      ]),
    ),
  ];
}

// what a probe hit costs beyond its program's own run time, by the kind of probe
const probeKind = (name) =>
  name.startsWith("on_sched_") ? "tracepoint" : name.endsWith("_exit") ? "return" : "entry";

/** The token and graph levels' cost from its parts. */
export function partsLines({ partsTokens }, { probeCost, partsCost }) {
  if (!probeCost || Object.keys(partsCost).length === 0) return [];
  const own = probeCost.programNs;
  const trap = {
    entry: probeCost.entryNs - (own.decode_enter ?? 0),
    return: probeCost.returnNs - (own.decode_exit ?? 0),
    tracepoint: 0, // not measured: the scheduler tracepoints' own dispatch
  };
  const rows = Object.entries(partsCost).map(([level, { programs, seen }]) => {
    let hits = 0;
    let ns = 0;
    const parts = [];
    for (const [name, p] of Object.entries(programs)) {
      const kind = probeKind(name);
      const perCall = p.hits / Math.max(seen.calls, 1);
      hits += kind === "tracepoint" ? 0 : perCall;
      ns += perCall * (trap[kind] + p.nsPerHit);
      parts.push(
        `${perCall.toFixed(2)} ${name} (${trap[kind].toFixed(0)} + ${p.nsPerHit.toFixed(0)})`,
      );
    }
    const inTargetPct = (100 * ns) / (seen.decodeMs * 1e6);
    const withSelf = (f) => (seen.selfPct === null ? "-" : `${f(seen.selfPct).toFixed(3)}%`);
    return [
      level,
      parts.join(", "),
      hits.toFixed(1),
      `${(ns / 1000).toFixed(2)} us`,
      `${seen.decodeMs.toFixed(2)} ms`,
      `${inTargetPct.toFixed(3)}%`,
      withSelf((self) => self),
      withSelf((self) => inTargetPct + self),
    ];
  });
  return [
    "",
    `Token and graph levels from their parts. A probe hit on a C loop's llama_decode (at its first instruction, ${probeCost.site.instruction.toLowerCase()}, emulated; ${probeCost.rounds} interleaved rounds of ${probeCost.calls} calls): the entry probe adds ${probeCost.entryNs.toFixed(0)} ns a call (decode_enter's own run time ${own.decode_enter?.toFixed(0) ?? "?"} ns, so the trap ${trap.entry.toFixed(0)} ns), the return probe ${probeCost.returnNs.toFixed(0)} ns more (decode_exit ${own.decode_exit?.toFixed(0) ?? "?"} ns, trap ${trap.return.toFixed(0)} ns). Each program's hits per llama_decode call and own run time: bpf_stats over one llama-bench -n ${partsTokens} run at that level; the target pays (trap + run time) x hits per call, profinfer's CPU (the run's "profiler" note) comes on top:`,
    "",
    ...table(
      [
        "level",
        "hits per call: program (trap + own ns)",
        "probe hits / call",
        "in the target / call",
        "decode call (median)",
        "in the target",
        "profinfer CPU",
        "together",
      ],
      rows,
      { leftColumns: 2 },
    ),
  ];
}
