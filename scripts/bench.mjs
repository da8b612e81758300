#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
// `npm run bench`: decode speed of the bench model (LLaMA-3.2-1B shapes, Q4_0, 2 threads) with
// llama-bench, without profinfer and under `profinfer record` at each level, interleaved in
// rounds (the order shuffled each round) so that machine drift cancels in the per-round ratios.
// Reports the slowdown, probe hits per decoded token and the cost per probe hit. A benchmark,
// not a test: it asserts nothing. BENCH_ROUNDS (default 7), BENCH_TOKENS (default 64) and
// BENCH_CONFIGS (a comma-separated subset of the configurations below; "none" always runs) tune it.
// Also: `metrics` (operator aggregates kept in the kernel, no event stream, /metrics served) against
// no profiler, and `op` with N counters read at every boundary (software events here), whose extra
// time per token over `op`, divided by the probe hits, is the cost of reading N counters a hit.
// "op+otlp" is the op level with live OTLP export (default operator-span sampling) to a real gRPC
// receiver in a process of its own; the OTLP section after the rounds measures how many spans a
// second profinfer exports without a drop, the CPU it spends per span, and the span sizes the
// default sampling (docs/spans.md "Volume") is chosen from.
// "profinfer CPU" is what profinfer itself used from the target's first llama_decode on (the
// run's "profiler" note). The in-run section (with "op": BENCH_INRUN_ROUNDS runs, default 3, of
// BENCH_INRUN_TOKENS tokens, default 1024) toggles the step probes every second within one run and
// sets the decode calls with them against those without: free of the drift between rounds.
// The token and graph levels cost less than either method resolves; with "token" or "graph" their
// cost is put together from measured parts (the parts section: a probe hit's trap on a C loop,
// bench/probeCost.mjs; hits and the programs' run time over one run of BENCH_PARTS_TOKENS, default 1024).
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { performance } from "node:perf_hooks";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { measureProbeCost } from "./bench/probeCost.mjs";
import { median } from "./bench/stats.mjs";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const cli = join(repoRoot, "exporter", "dist", "cli.js");
const {
  requireManifest,
  llamaBinary,
  modelsDir,
  readRawFile,
  buildRun,
  buildRunSpans,
  SpanExport,
  EXPORT_DEFAULTS,
  toReadableSpans,
  resourceAttributes,
} = await import("@profinfer/exporter");

const rounds = Number(process.env.BENCH_ROUNDS ?? 7);
const tokens = Number(process.env.BENCH_TOKENS ?? 64);
const manifest = requireManifest();
const benchBin = llamaBinary(manifest, "llama-bench");

const models = spawnSync(cli, ["models", "bench"], { encoding: "utf8" });
if (models.status !== 0) throw new Error(models.stderr);
const model = join(modelsDir(), "bench", "bench-llama3.2-1b-q4_0.gguf");

// the OTLP receiver, a process of its own
const collector = spawn(
  process.execPath,
  ["--import", "tsx", join(repoRoot, "test", "support", "otlpCollectorProcess.ts")],
  { cwd: repoRoot, stdio: ["ignore", "pipe", "inherit"] },
);
let collectorOut = "";
collector.stdout.on("data", (d) => (collectorOut += d.toString()));
const collectorPort = await new Promise((resolvePort, reject) => {
  const timer = setInterval(() => {
    const m = /port (\d+)/.exec(collectorOut);
    if (m) {
      clearInterval(timer);
      resolvePort(Number(m[1]));
    }
  }, 20);
  collector.on("exit", (code) => reject(new Error(`the OTLP receiver exited (${code})`)));
});
const collectorUrl = `http://127.0.0.1:${collectorPort}`;
/** [total spans received, distinct span ids] so far */
const received = () => {
  const all = [...collectorOut.matchAll(/spans (\d+) (\d+)/g)];
  const last = all.at(-1);
  return last ? [Number(last[1]), Number(last[2])] : [0, 0];
};

// name -> profinfer record arguments (null: no profiler)
const COUNTER_SETS = { 1: "task-clock", 4: "task-clock,cpu-clock,page-faults,context-switches" };
const CONFIGS = {
  none: null,
  token: ["--level", "token"],
  graph: ["--level", "graph"],
  op: ["--level", "op"],
  // the same with the operator functions' entry and return probes and ggml_barrier's
  "op-functions": ["--level", "op", "--op-timing", "functions"],
  metrics: ["--level", "metrics", "--metrics-addr", "127.0.0.1:0"],
  "op+1 counter": ["--level", "op", "--pmc", COUNTER_SETS[1]],
  "op+4 counters": ["--level", "op", "--pmc", COUNTER_SETS[4]],
  "op+otlp": ["--level", "op", "--otlp-endpoint", collectorUrl],
};
const configs = (process.env.BENCH_CONFIGS?.split(",") ?? Object.keys(CONFIGS)).filter(
  (c) => c in CONFIGS,
);
if (!configs.includes("none")) configs.unshift("none");
const scratch = mkdtempSync(join(tmpdir(), "profinfer-bench-"));
/** llama-bench decoding `n` tokens, once, as JSON */
const benchArgsFor = (n) => [
  "-m",
  model,
  "-t",
  "2",
  "-p",
  "0",
  "-n",
  String(n),
  "-r",
  "1",
  "-o",
  "json",
];
const benchArgs = benchArgsFor(tokens);

function runOnce(config, round) {
  const out = join(scratch, `${config}-${round}`);
  const command =
    config === "none"
      ? [benchBin, benchArgs]
      : [
          cli,
          ["record", "--no-status", ...CONFIGS[config], "--out", out, "--", benchBin, ...benchArgs],
        ];
  // bash's `time` sums the CPU of everything it waited for: the target and profinfer itself
  const quoted = [command[0], ...command[1]].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(" ");
  const run = spawnSync("bash", ["-c", `TIMEFORMAT='cpu %U %S'; time ${quoted}`], {
    encoding: "utf8",
    maxBuffer: 64 << 20,
  });
  if (run.status !== 0)
    throw new Error(`${config}: exit ${run.status}\n${run.stderr.slice(-2000)}`);
  const cpu = /cpu ([\d.]+) ([\d.]+)\s*$/.exec(run.stderr);
  const cpuSeconds = cpu ? Number(cpu[1]) + Number(cpu[2]) : NaN;
  const json = JSON.parse(
    run.stdout.slice(run.stdout.indexOf("["), run.stdout.lastIndexOf("]") + 1),
  );
  const tps = json[0].avg_ts;
  let hits = null;
  let totalHits = null;
  // profinfer's own CPU from the first llama_decode on, as a share of one core
  let selfPct = null;
  if (config !== "none") {
    const recording = readRawFile(join(out, "events.pinf"));
    const note = recording.notes.find((n) => n.note.kind === "hits")?.note;
    // at level metrics no event reaches user space: the kernel's aggregates count the decodes
    const aggregates = recording.notes.find((n) => n.note.kind === "aggregates")?.note;
    const decodes = aggregates
      ? aggregates.tokens[1].calls
      : recording.events.filter((e) => e.type === 1 && e.nTokens === 1).length;
    // entry + return probes, and step probes (entry only)
    totalHits = note
      ? (note.op + note.barrier + note.graph + note.token) * 2 + (note.step ?? 0)
      : null;
    hits = totalHits === null ? null : totalHits / Math.max(decodes, 1);
    const self = recording.notes.find((n) => n.note.kind === "profiler")?.note;
    selfPct = self && self.wallMs > 0 ? (100 * self.cpuMs) / self.wallMs : null;
    rmSync(out, { recursive: true, force: true });
  }
  return { tps, hits, totalHits, cpuSeconds, selfPct };
}

const results = Object.fromEntries(configs.map((c) => [c, []]));
for (let round = 0; round < rounds; round++) {
  const order = [...configs].sort(() => Math.random() - 0.5);
  for (const config of order) results[config].push(runOnce(config, round));
  process.stdout.write(
    `round ${round + 1}/${rounds}: ${configs.map((c) => `${c} ${results[c].at(-1).tps.toFixed(2)} t/s`).join(", ")}\n`,
  );
}

const rows = configs.map((config) => {
  const tps = results[config].map((r) => r.tps);
  const ratios = results[config].map((r, i) => r.tps / results.none[i].tps);
  const slowdown = ratios.map((r) => (1 / r - 1) * 100);
  const hits = median(results[config].map((r) => r.hits ?? 0));
  const extraMsPerToken = 1000 / median(tps) - 1000 / median(results.none.map((r) => r.tps));
  // CPU time of the whole run (model load included) against the same round's run without profinfer
  const cpuRatios = results[config].map((r, i) => r.cpuSeconds / results.none[i].cpuSeconds);
  return {
    config,
    medianTps: median(tps),
    medianSlowdownPct: config === "none" ? 0 : median(slowdown),
    medianCpuIncreasePct: config === "none" ? 0 : (median(cpuRatios) - 1) * 100,
    medianCpuSeconds: median(results[config].map((r) => r.cpuSeconds)),
    slowdownRangePct: config === "none" ? [0, 0] : [Math.min(...slowdown), Math.max(...slowdown)],
    probeHitsPerToken: config === "none" ? 0 : hits,
    medianSelfPct: results[config].some((r) => r.selfPct !== null)
      ? median(results[config].filter((r) => r.selfPct !== null).map((r) => r.selfPct))
      : null,
    // below a few hundred hits a token the difference is inside the run-to-run noise
    usPerProbeHit:
      config === "none" || !hits || hits < 100 ? null : (extraMsPerToken * 1000) / hits,
  };
});

// In-kernel cost per probe hit of each BPF program (kernel.bpf_stats_enabled: the run time the
// kernel measures for each program), for the configurations that differ in what a hit does. The
// programs' own time, not the uprobe trap around them; unlike t/s it hardly moves when other
// programs load the machine.
const STATS = "/proc/sys/kernel/bpf_stats_enabled";
const BPFTOOL = ["/usr/sbin/bpftool", "/usr/bin/bpftool"].find((p) => {
  try {
    readFileSync(p);
    return true;
  } catch {
    return false;
  }
});
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

function programIdsOf(pid) {
  const ids = new Set();
  try {
    for (const fd of readdirSync(`/proc/${pid}/fdinfo`)) {
      const m = /^prog_id:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, "utf8"));
      if (m) ids.add(Number(m[1]));
    }
  } catch {
    // gone
  }
  return ids;
}

/** run time per hit of each of the BPF programs that process `pid` holds (bpf_stats) */
function programNsOf(pid) {
  const ns = {};
  for (const id of programIdsOf(pid)) {
    const r = spawnSync(BPFTOOL, ["prog", "show", "id", String(id), "-j"], { encoding: "utf8" });
    if (r.status !== 0) continue;
    const p = JSON.parse(r.stdout);
    if (p.run_cnt) ns[p.name] = p.run_time_ns / p.run_cnt;
  }
  return ns;
}

/**
 * A recorded llama-bench run of `config` with the in-kernel run time of its programs (polled
 * until it exits); `inspect(recording)` sees the run before its folder goes.
 */
async function bpfCostRun(config, { tokens: n = tokens, inspect } = {}) {
  const out = join(scratch, `stats-${config.replace(/\W/g, "_")}`);
  const child = spawn(
    cli,
    [
      "record",
      "--no-status",
      "--no-report",
      ...CONFIGS[config],
      "--out",
      out,
      "--",
      benchBin,
      ...benchArgsFor(n),
    ],
    { stdio: "ignore" },
  );
  const exited = new Promise((r) => child.on("exit", r));
  const best = {};
  let running = true;
  exited.then(() => (running = false));
  while (running) {
    for (const id of programIdsOf(child.pid)) {
      const r = spawnSync(BPFTOOL, ["prog", "show", "id", String(id), "-j"], { encoding: "utf8" });
      if (r.status !== 0) continue;
      const p = JSON.parse(r.stdout);
      if (
        PROGRAMS.includes(p.name) &&
        p.run_cnt &&
        (!best[p.name] || best[p.name].runs < p.run_cnt)
      )
        best[p.name] = { runs: p.run_cnt, ns: p.run_time_ns };
    }
    await new Promise((r) => setTimeout(r, 300));
  }
  const seen = inspect ? inspect(readRawFile(join(out, "events.pinf"))) : undefined;
  rmSync(out, { recursive: true, force: true });
  const programs = Object.fromEntries(
    Object.entries(best).map(([name, v]) => [name, { hits: v.runs, nsPerHit: v.ns / v.runs }]),
  );
  return inspect ? { programs, seen } : programs;
}

// The token and graph levels cost less than the rounds can resolve: their cost is put together
// from parts measured here instead. What a probe hit costs comes from a C loop (probeCost.mjs:
// the trap and profinfer's own token programs); how many hits each program takes per decode call
// and its own run time come from a long recorded run (bpf_stats); profinfer's CPU from the same
// run's "profiler" note.
const partsTokens = Number(process.env.BENCH_PARTS_TOKENS ?? 1024);
let probeCost = null;
const partsCost = {};
/** median decode call, llama_decode calls, profinfer's CPU share (of the recording) */
function decodeFigures(recording) {
  const { tokens: calls } = buildRun(recording);
  const decodes = calls.filter((t) => t.phase === "decode" && t.complete);
  const self = recording.notes.find((n) => n.note.kind === "profiler")?.note;
  return {
    calls: calls.length,
    decodeMs: median(decodes.map((t) => Number(t.endNs - t.startNs))) / 1e6,
    selfPct: self && self.wallMs > 0 ? (100 * self.cpuMs) / self.wallMs : null,
  };
}

let bpfCost = null;
if (BPFTOOL && process.env.BENCH_BPF_STATS !== "0") {
  let before = null;
  try {
    before = readFileSync(STATS, "utf8").trim();
    writeFileSync(STATS, "1");
    bpfCost = {};
    for (const config of ["op", "op-functions", "op+1 counter", "op+4 counters", "metrics"].filter(
      (c) => configs.includes(c),
    )) {
      bpfCost[config] = await bpfCostRun(config);
    }
    if (configs.includes("token") || configs.includes("graph")) {
      probeCost = await measureProbeCost({ scratch, programStats: programNsOf });
      for (const level of ["token", "graph"].filter((c) => configs.includes(c)))
        partsCost[level] = await bpfCostRun(level, { tokens: partsTokens, inspect: decodeFigures });
    }
  } catch (error) {
    process.stdout.write(`in-kernel cost not measured: ${error.message}\n`);
  } finally {
    if (before !== null) writeFileSync(STATS, before);
  }
}

// The cost of reading counters: extra time per token over plain `op`, per probe hit.
const opRow = rows.find((r) => r.config === "op");
const counterCost = rows
  .filter((r) => r.config.includes("counter") && opRow)
  .map((r) => {
    const extraMs = 1000 / r.medianTps - 1000 / opRow.medianTps;
    // CPU time is less disturbed than t/s by other programs on the machine: the extra CPU of the
    // whole run (target and profinfer) over plain op, per probe hit of the run
    const runs = results[r.config];
    const cpuPerHitUs = runs.map(
      (x, i) => ((x.cpuSeconds - results.op[i].cpuSeconds) * 1e6) / (x.totalHits ?? Infinity),
    );
    return {
      config: r.config,
      extraMsPerToken: extraMs,
      usPerHit: r.probeHitsPerToken ? (extraMs * 1000) / r.probeHitsPerToken : null,
      cpuUsPerHit: median(cpuPerHitUs),
    };
  });

// In-run cost of the op level: one long llama-bench run at --level op whose step probes are taken
// off and put back every second (record --toggle-op-probes). Decode calls of a window with the probes
// on are set against those of the windows either side, without them: the machine's drift, which
// moves whole rounds by 5-10%, is far slower than that. What the op level adds over the graph
// level while it runs (probe traps, programs, step batches, their reading and writing), less
// the graph snapshot, which runs in both kinds of window (bpf_stats, cpu_graph_enter, gives it).
const inRunRounds = configs.includes("op") ? Number(process.env.BENCH_INRUN_ROUNDS ?? 3) : 0;
const inRunTokens = Number(process.env.BENCH_INRUN_TOKENS ?? 1024);
const inRun = [];
for (let round = 0; round < inRunRounds; round++) {
  const out = join(scratch, `inrun-${round}`);
  const run = spawnSync(
    cli,
    [
      "record",
      "--no-status",
      "--no-report",
      "--level",
      "op",
      "--toggle-op-probes",
      "1000",
      "--out",
      out,
      "--",
      benchBin,
      ...benchArgsFor(inRunTokens),
    ],
    { encoding: "utf8", maxBuffer: 64 << 20 },
  );
  if (run.status !== 0) throw new Error(`in-run: exit ${run.status}\n${run.stderr.slice(-2000)}`);
  const recording = readRawFile(join(out, "events.pinf"));
  const model = buildRun(recording);
  rmSync(out, { recursive: true, force: true });
  // windows: [from, to) with the probes on or off; they start on. A switch takes time (taking
  // uprobes off waits for the kernel): calls while one is under way belong to neither window
  const switches = recording.notes
    .filter((n) => n.note.kind === "stepProbes")
    .map((n) => ({ began: BigInt(n.note.beganNs), at: BigInt(n.note.monotonicNs), on: n.note.on }));
  const windows = [];
  let from = 0n;
  let on = true;
  for (const s of switches) {
    windows.push({ from, to: s.began, on });
    from = s.at;
    on = s.on;
  }
  windows.push({ from, to: 1n << 62n, on });
  const settle = 100_000_000n; // a call that began within 100 ms of a switch is left out
  const decodes = model.tokens.filter((t) => t.phase === "decode" && t.complete);
  const medians = windows.map((w) => {
    const inside = decodes.filter((t) => t.startNs >= w.from + settle && t.endNs <= w.to);
    return inside.length >= 5 ? median(inside.map((t) => Number(t.endNs - t.startNs))) : null;
  });
  const ratios = [];
  for (let i = 1; i + 1 < windows.length; i++) {
    if (!windows[i].on || medians[i] === null) continue;
    if (medians[i - 1] === null || medians[i + 1] === null) continue;
    ratios.push(medians[i] / ((medians[i - 1] + medians[i + 1]) / 2));
  }
  inRun.push({
    ratios,
    windows: ratios.length,
    medianPct: ratios.length ? (median(ratios) - 1) * 100 : null,
    rangePct: ratios.length
      ? [(Math.min(...ratios) - 1) * 100, (Math.max(...ratios) - 1) * 100]
      : null,
  });
  process.stdout.write(
    `in-run ${round + 1}/${inRunRounds}: decode calls ${inRun.at(-1).medianPct?.toFixed(2) ?? "?"}% longer with the step probes on (${ratios.length} windows)\n`,
  );
}

const lines = [
  `bench model, llama-bench -t 2 -n ${tokens}, ${rounds} interleaved rounds (profinfer's own CPU shares the 2 cores).`,
  "CPU s / run: user+system CPU of the whole run (model load, warm-up, the tokens, and under profinfer its start-up, probing and output writing).",
  "",
  'profinfer CPU: what profinfer itself used (all its threads) from the target\'s first llama_decode to the end of tracing, as a share of one core (the "profiler" note; none at level metrics, which streams no token events).',
  "",
  "| level | median t/s | slowdown (median) | slowdown range | CPU s / run | CPU increase (median) | profinfer CPU | probe hits / token | us / probe hit |",
  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ...rows.map(
    (r) =>
      `| ${r.config} | ${r.medianTps.toFixed(2)} | ${r.medianSlowdownPct.toFixed(2)}% | ${r.slowdownRangePct.map((x) => x.toFixed(1)).join(" .. ")}% | ${r.medianCpuSeconds.toFixed(2)} | ${r.medianCpuIncreasePct.toFixed(1)}% | ${r.medianSelfPct === null ? "-" : `${r.medianSelfPct.toFixed(2)}%`} | ${r.probeHitsPerToken ? r.probeHitsPerToken.toFixed(0) : "-"} | ${r.usPerProbeHit === null ? "-" : r.usPerProbeHit.toFixed(2)} |`,
  ),
  ...(inRun.length
    ? [
        "",
        `In-run cost of the op level (llama-bench -n ${inRunTokens} at --level op, step probes taken off and put back every second: each window with them on against the windows either side; median decode call per window):`,
        "",
        "| run | windows on | longer by (median) | range |",
        "| --- | ---: | ---: | ---: |",
        ...inRun.map(
          (r, i) =>
            `| ${i + 1} | ${r.windows} | ${r.medianPct === null ? "-" : `${r.medianPct.toFixed(2)}%`} | ${r.rangePct === null ? "-" : `${r.rangePct.map((x) => x.toFixed(1)).join(" .. ")}%`} |`,
        ),
        ...(inRun.some((r) => r.windows > 0)
          ? [
              `| all | ${inRun.reduce((n, r) => n + r.windows, 0)} | ${((median(inRun.flatMap((r) => r.ratios)) - 1) * 100).toFixed(2)}% | |`,
            ]
          : []),
      ]
    : []),
  ...(counterCost.length
    ? [
        "",
        "Reading counters at every boundary, over plain op (extra time per decoded token and per probe hit):",
        "",
        "| config | extra ms / token | us / probe hit (from t/s) | CPU us / probe hit (median of rounds) |",
        "| --- | ---: | ---: | ---: |",
        ...counterCost.map(
          (c) =>
            `| ${c.config} | ${c.extraMsPerToken.toFixed(3)} | ${c.usPerHit === null ? "-" : c.usPerHit.toFixed(3)} | ${c.cpuUsPerHit.toFixed(3)} |`,
        ),
      ]
    : []),
  ...(bpfCost && Object.keys(bpfCost).length > 0
    ? [
        "",
        "In-kernel time per probe hit of each BPF program (kernel.bpf_stats_enabled; the programs' own run time, not the uprobe trap):",
        "",
        `| config | ${PROGRAMS.join(" | ")} |`,
        `| --- | ${PROGRAMS.map(() => "---:").join(" | ")} |`,
        ...Object.entries(bpfCost).map(
          ([config, progs]) =>
            `| ${config} | ${PROGRAMS.map((p) => (progs[p] ? `${progs[p].nsPerHit.toFixed(0)} ns` : "-")).join(" | ")} |`,
        ),
      ]
    : []),
  ...partsLines(),
];

/** The token and graph levels' cost from its parts (see partsTokens above). */
function partsLines() {
  if (!probeCost || Object.keys(partsCost).length === 0) return [];
  const own = probeCost.programNs;
  const trap = {
    entry: probeCost.entryNs - (own.decode_enter ?? 0),
    return: probeCost.returnNs - (own.decode_exit ?? 0),
    tracepoint: 0, // not measured: the scheduler tracepoints' own dispatch
  };
  const kind = (name) =>
    name.startsWith("on_sched_") ? "tracepoint" : name.endsWith("_exit") ? "return" : "entry";
  const out = [
    "",
    `Token and graph levels from their parts. A probe hit on a C loop's llama_decode (at its first instruction, ${probeCost.site.instruction.toLowerCase()}, emulated; ${probeCost.rounds} interleaved rounds of ${probeCost.calls} calls): the entry probe adds ${probeCost.entryNs.toFixed(0)} ns a call (decode_enter's own run time ${own.decode_enter?.toFixed(0) ?? "?"} ns, so the trap ${trap.entry.toFixed(0)} ns), the return probe ${probeCost.returnNs.toFixed(0)} ns more (decode_exit ${own.decode_exit?.toFixed(0) ?? "?"} ns, trap ${trap.return.toFixed(0)} ns). Each program's hits per llama_decode call and own run time: bpf_stats over one llama-bench -n ${partsTokens} run at that level; the target pays (trap + run time) x hits per call, profinfer's CPU (the run's "profiler" note) comes on top:`,
    "",
    "| level | hits per call: program (trap + own ns) | probe hits / call | in the target / call | decode call (median) | in the target | profinfer CPU | together |",
    "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const [level, { programs, seen }] of Object.entries(partsCost)) {
    let hits = 0;
    let ns = 0;
    const parts = [];
    for (const [name, p] of Object.entries(programs)) {
      const perCall = p.hits / Math.max(seen.calls, 1);
      const cost = trap[kind(name)] + p.nsPerHit;
      hits += kind(name) === "tracepoint" ? 0 : perCall;
      ns += perCall * cost;
      parts.push(
        `${perCall.toFixed(2)} ${name} (${trap[kind(name)].toFixed(0)} + ${p.nsPerHit.toFixed(0)})`,
      );
    }
    const inTargetPct = (100 * ns) / (seen.decodeMs * 1e6);
    out.push(
      `| ${level} | ${parts.join(", ")} | ${hits.toFixed(1)} | ${(ns / 1000).toFixed(2)} us | ${seen.decodeMs.toFixed(2)} ms | ${inTargetPct.toFixed(3)}% | ${seen.selfPct === null ? "-" : `${seen.selfPct.toFixed(3)}%`} | ${seen.selfPct === null ? "-" : `${(inTargetPct + seen.selfPct).toFixed(3)}%`} |`,
    );
  }
  return out;
}
const outDir = join(repoRoot, "test-output");
mkdirSync(outDir, { recursive: true });
// BENCH_ROUNDS=0: only the OTLP section
if (rounds > 0) {
  process.stdout.write("\n" + lines.join("\n") + "\n");
  writeFileSync(
    join(outDir, "bench-tracer.json"),
    JSON.stringify(
      { rounds, tokens, results, rows, inRun, counterCost, bpfCost, probeCost, partsCost },
      null,
      2,
    ),
  );
  writeFileSync(join(outDir, "bench-tracer.md"), lines.join("\n") + "\n");
}
rmSync(scratch, { recursive: true, force: true });

// --- OTLP export: throughput without drops, CPU per span, span sizes
const { resourceFromAttributes } = await import("@opentelemetry/resources");
const { ProtobufTraceSerializer } = await import("@opentelemetry/otlp-transformer");

const otlpTokens = Number(process.env.BENCH_OTLP_TOKENS ?? 16);
const otlpDir = mkdtempSync(join(tmpdir(), "profinfer-bench-otlp-"));
const recorded = spawnSync(
  cli,
  [
    "record",
    "--no-status",
    "--level",
    "op",
    "--out",
    otlpDir,
    "--",
    benchBin,
    ...benchArgsFor(otlpTokens),
  ],
  { encoding: "utf8", maxBuffer: 64 << 20 },
);
if (recorded.status !== 0) throw new Error(`OTLP bench record: ${recorded.stderr.slice(-2000)}`);
const otlpRun = buildRun(readRawFile(join(otlpDir, "events.pinf")));
const t0 = process.cpuUsage();
const w0 = performance.now();
const allSpans = buildRunSpans(otlpRun, { kind: "all" });
const buildCpu = process.cpuUsage(t0);
const buildWall = performance.now() - w0;
const opSpans = allSpans.filter((x) => x.attributes["ggml.op"] !== undefined);
const resource = resourceFromAttributes(
  resourceAttributes(
    otlpRun.header,
    otlpRun.notes.map((n) => n.note),
  ),
);
const opBytes = ProtobufTraceSerializer.serializeRequest(
  toReadableSpans(opSpans, resource, "bench"),
).length;
const decodeCalls = otlpRun.tokens.filter((t) => t.phase === "decode");
const opsPerDecode =
  decodeCalls.length > 0
    ? Math.round(
        decodeCalls.reduce(
          (n, t) => n + t.graphs.reduce((m, g) => m + (g.opsRecorded ? g.ops.length : 0), 0),
          0,
        ) / decodeCalls.length,
      )
    : 0;
rmSync(otlpDir, { recursive: true, force: true });

// throughput: the recorded run's spans, sent REPEAT times through SpanExport as record does
const repeat = Number(process.env.BENCH_OTLP_REPEAT ?? 20);
const spoolDir = mkdtempSync(join(tmpdir(), "profinfer-bench-spool-"));
const exporter = new SpanExport(
  {
    url: collectorUrl,
    headers: {},
    timeoutMs: EXPORT_DEFAULTS.timeoutMs,
    spoolDir,
    spoolMaxBytes: EXPORT_DEFAULTS.spoolMaxBytes,
    batchSpans: EXPORT_DEFAULTS.batchSpans,
    retryInitialMs: EXPORT_DEFAULTS.retryInitialMs,
    retryMaxMs: EXPORT_DEFAULTS.retryMaxMs,
    version: "bench",
    log: (m) => process.stderr.write(`otlp: ${m}\n`),
  },
  resource.attributes,
);
// direct: each repetition handed over and sent before the next, as live export does in chunks
let before = received()[0];
let c0 = process.cpuUsage();
let s0 = performance.now();
for (let i = 0; i < repeat; i++) {
  exporter.add(allSpans);
  await exporter.flush(600_000);
}
const sendWall = performance.now() - s0;
const sendCpu = process.cpuUsage(c0);
await new Promise((r) => setTimeout(r, 300));
const arrived = received()[0] - before;
// backlog: everything at once, more than the memory queue holds: the excess goes through the spool
before = received()[0];
c0 = process.cpuUsage();
s0 = performance.now();
for (let i = 0; i < repeat; i++) exporter.add(allSpans);
await exporter.flush(600_000);
const backlogWall = performance.now() - s0;
const backlogCpu = process.cpuUsage(c0);
await exporter.close();
rmSync(spoolDir, { recursive: true, force: true });
await new Promise((r) => setTimeout(r, 300));
const backlogArrived = received()[0] - before;
collector.kill();
const exported = allSpans.length * repeat;
const otlp = {
  spansPerRun: allSpans.length,
  opSpans: opSpans.length,
  opSpansPerDecodeCall: opsPerDecode,
  bytesPerOpSpan: opBytes / Math.max(opSpans.length, 1),
  buildUsPerSpan: (buildCpu.user + buildCpu.system) / allSpans.length,
  buildWallMs: buildWall,
  exported,
  arrived,
  spansPerSecond: exported / (sendWall / 1000),
  sendCpuUsPerSpan: (sendCpu.user + sendCpu.system) / exported,
  backlogArrived,
  backlogSpansPerSecond: exported / (backlogWall / 1000),
  backlogCpuUsPerSpan: (backlogCpu.user + backlogCpu.system) / exported,
  spooled: exporter.stats.spooled,
  dropped: exporter.stats.dropped + (2 * exported - arrived - backlogArrived),
};
const roundsOtlp = (results["op+otlp"] ?? []).map((r, i) => r.tps / results.op[i].tps);
const cpuOtlp = (results["op+otlp"] ?? []).map((r, i) => r.cpuSeconds / results.op[i].cpuSeconds);
const otlpLines = [
  "",
  `OTLP export (bench model, llama-bench -n ${otlpTokens} at op level, every operator span; receiver in its own process):`,
  `- spans of the run: ${otlp.spansPerRun} (${otlp.opSpans} operator spans, ${otlp.opSpansPerDecodeCall} per decode call), ${otlp.bytesPerOpSpan.toFixed(0)} bytes per operator span in OTLP protobuf`,
  `- building spans from the model: ${otlp.buildUsPerSpan.toFixed(2)} us CPU per span`,
  `- export, chunk by chunk: ${otlp.exported} spans in ${(otlp.exported / otlp.spansPerSecond).toFixed(2)} s = ${Math.round(otlp.spansPerSecond)} spans/s, ${otlp.sendCpuUsPerSpan.toFixed(2)} us CPU per span (serialisation + gRPC), ${otlp.arrived} arrived`,
  `- export, all at once (the excess through the disk spool): ${Math.round(otlp.backlogSpansPerSecond)} spans/s, ${otlp.backlogCpuUsPerSpan.toFixed(2)} us CPU per span, ${otlp.backlogArrived} arrived, ${otlp.spooled} spooled`,
  `- dropped: ${otlp.dropped}`,
  ...(roundsOtlp.length > 0 && results.op
    ? [
        `- op level with live OTLP export vs without, same rounds: median t/s ratio ${median(roundsOtlp).toFixed(4)} (range ${Math.min(...roundsOtlp).toFixed(3)} .. ${Math.max(...roundsOtlp).toFixed(3)}), median CPU-per-run ratio ${median(cpuOtlp).toFixed(4)} (range ${Math.min(...cpuOtlp).toFixed(3)} .. ${Math.max(...cpuOtlp).toFixed(3)})`,
      ]
    : []),
];
process.stdout.write(otlpLines.join("\n") + "\n");
writeFileSync(
  join(outDir, "bench-otlp.json"),
  JSON.stringify({ ...otlp, opOtlpOverOpRatios: roundsOtlp, opOtlpOverOpCpu: cpuOtlp }, null, 2),
);
writeFileSync(join(outDir, "bench-otlp.md"), otlpLines.join("\n") + "\n");
