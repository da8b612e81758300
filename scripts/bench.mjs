#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
// `npm run bench`: decode speed of the bench model (LLaMA-3.2-1B shapes, Q4_0, 2 threads) with
// llama-bench, without profinfer and under `profinfer record` in each configuration, and what
// profinfer's parts cost. A benchmark, not a test: it asserts nothing. Sections (scripts/bench/):
// - rounds.mjs: llama-bench alone and under each configuration, interleaved in rounds.
//   BENCH_ROUNDS rounds (default 7; with 0 no tracer tables are printed) of BENCH_TOKENS tokens
//   (default 64); BENCH_CONFIGS, a comma-separated subset of configs.mjs ("none" always runs).
// - parts.mjs: each BPF program's in-kernel time per hit, and with "token" or "graph" their cost
//   put together from measured parts over a run of BENCH_PARTS_TOKENS (default 1024).
//   BENCH_BPF_STATS=0 skips it.
// - inRun.mjs: with "op", BENCH_INRUN_ROUNDS runs (default 3) of BENCH_INRUN_TOKENS tokens
//   (default 1024) whose step probes are toggled every second.
// - otlp.mjs: span throughput, CPU per span and span sizes over BENCH_OTLP_REPEAT repetitions
//   (default 20) of a run of BENCH_OTLP_TOKENS tokens (default 16).
// - requests.mjs: the cost of reading each call's batch, and llama-server's tokens/s with
//   concurrent clients alone and under `profinfer attach --level metrics`. BENCH_REQUESTS=0
//   skips it.
// - findings.mjs: the machine profile's run time, and what the roofline and the findings cost on a
//   BENCH_FINDINGS_TOKENS-token run (default 512). BENCH_FINDINGS=0 skips it.
// - scale.mjs: peak resident memory and wall time of record --level op with its outputs, and of
//   replay, for tiny-llama at BENCH_SCALE_TINY tokens (default 1000,3000,10000) and the bench
//   model at BENCH_SCALE_BENCH (default 512,2048). BENCH_SCALE=0 skips it.
// - agent.mjs: profinfer agent's own CPU and memory idle, with three llama-servers followed and per
//   token under load, and llama-server's tokens/s with 4 clients with and without it, in turns.
//   BENCH_AGENT=0 skips it.
// Prints the tables and keeps them in test-output/bench-tracer.{md,json}, bench-otlp.{md,json},
// bench-requests.{md,json}, bench-findings.{md,json}, bench-scale.{md,json} and
// bench-agent.{md,json}.
import { CONFIG_NAMES } from "./bench/configs.mjs";
import { openBench } from "./bench/harness.mjs";
import { inRunLines, measureInRun } from "./bench/inRun.mjs";
import { measureOtlp, otlpLines } from "./bench/otlp.mjs";
import { writeResults } from "./bench/output.mjs";
import { measureParts, partsLines, programCostLines } from "./bench/parts.mjs";
import { measureRequests, requestsLines } from "./bench/requests.mjs";
import { findingsLines, measureFindings } from "./bench/findings.mjs";
import { measureScale, scaleLines } from "./bench/scale.mjs";
import { agentLines, measureAgent } from "./bench/agent.mjs";
import {
  counterCosts,
  counterLines,
  roundsLines,
  runRounds,
  summariseRounds,
} from "./bench/rounds.mjs";

const env = process.env;
const configs = (env.BENCH_CONFIGS?.split(",") ?? CONFIG_NAMES).filter((c) =>
  CONFIG_NAMES.includes(c),
);
if (!configs.includes("none")) configs.unshift("none");
const config = {
  rounds: Number(env.BENCH_ROUNDS ?? 7),
  tokens: Number(env.BENCH_TOKENS ?? 64),
  configs,
  bpfStats: env.BENCH_BPF_STATS !== "0",
  partsTokens: Number(env.BENCH_PARTS_TOKENS ?? 1024),
  inRunRounds: configs.includes("op") ? Number(env.BENCH_INRUN_ROUNDS ?? 3) : 0,
  inRunTokens: Number(env.BENCH_INRUN_TOKENS ?? 1024),
  otlpTokens: Number(env.BENCH_OTLP_TOKENS ?? 16),
  otlpRepeat: Number(env.BENCH_OTLP_REPEAT ?? 20),
};

const bench = await openBench();
try {
  const results = runRounds(config, bench);
  const rows = summariseRounds(config, results);
  const parts = await measureParts(config, bench);
  const counterCost = counterCosts(rows, results);
  const inRun = measureInRun(config, bench);
  if (config.rounds > 0) {
    const lines = [
      ...roundsLines(config, rows),
      ...inRunLines(config, inRun),
      ...counterLines(counterCost),
      ...programCostLines(parts.bpfCost),
      ...partsLines(config, parts),
    ];
    process.stdout.write("\n" + lines.join("\n") + "\n");
    const { rounds, tokens } = config;
    writeResults(
      "bench-tracer",
      { rounds, tokens, results, rows, inRun, counterCost, ...parts },
      lines,
    );
  }
  const otlp = await measureOtlp(config, bench, results);
  const lines = otlpLines(config, otlp);
  process.stdout.write(lines.join("\n") + "\n");
  writeResults("bench-otlp", otlp, lines);
  if (env.BENCH_REQUESTS !== "0") {
    const requests = await measureRequests(bench);
    const requestLines = requestsLines(requests);
    process.stdout.write(requestLines.join("\n") + "\n");
    writeResults("bench-requests", requests, requestLines);
  }
  if (env.BENCH_AGENT !== "0") {
    const agent = await measureAgent(bench, env);
    const lines = agentLines(agent);
    process.stdout.write(lines.join("\n") + "\n");
    writeResults("bench-agent", agent, lines);
  }
  if (env.BENCH_FINDINGS !== "0") {
    const findings = await measureFindings(bench, env);
    const lines = findingsLines(findings);
    process.stdout.write(lines.join("\n") + "\n");
    writeResults("bench-findings", findings, lines);
  }
  if (env.BENCH_SCALE !== "0") {
    const scale = await measureScale(bench, env);
    const lines = scaleLines(scale);
    process.stdout.write(lines.join("\n") + "\n");
    writeResults("bench-scale", scale, lines);
  }
} finally {
  bench.close();
}
