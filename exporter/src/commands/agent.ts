// SPDX-License-Identifier: Apache-2.0
// profinfer agent: follow every llama.cpp process of the host, serve their metrics, sample their
// operators (docs/agent.md). The flags override the configuration file; SIGHUP reads it again.
import { InvalidArgumentError, type Command } from "commander";
import { resolve } from "node:path";
import { runAgent } from "../agent/agent.js";
import { agentConfig, mergeSettings, readConfigFile, type AgentSettings } from "../agent/config.js";
import { parseRuleFlag, type SelectionRule } from "../agent/selection.js";
import { VERSION } from "../version.js";
import { log } from "./log.js";

interface AgentOptions {
  config?: string;
  metricsAddr?: string;
  include?: SelectionRule[];
  exclude?: SelectionRule[];
  requestIdle?: number;
  exitLinger?: number;
  windowDir?: string;
  windowEvery?: number;
  windowCalls?: number;
  windowTpotAbove?: number;
  windowTtftAbove?: number;
  windowKeep?: number;
  windowMaxSize?: string;
  otlpEndpoint?: string;
  profilesEndpoint?: string;
  runtimeDir: string;
}

function seconds(what: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+(\.\d+)?$/.test(value))
      throw new InvalidArgumentError(`${what} is a number of seconds.`);
    return n;
  };
}

function count(what: string) {
  return (value: string): number => {
    if (!/^\d+$/.test(value) || Number(value) < 1)
      throw new InvalidArgumentError(`${what} is a whole number above 0.`);
    return Number(value);
  };
}

function rule(value: string, previous: SelectionRule[] = []): SelectionRule[] {
  try {
    return [...previous, parseRuleFlag(value)];
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
}

/** The settings the flags give (only those given). */
function flagSettings(o: AgentOptions): AgentSettings {
  const windows = Object.fromEntries(
    Object.entries({
      dir: o.windowDir,
      every: o.windowEvery,
      calls: o.windowCalls,
      tpotAbove: o.windowTpotAbove,
      ttftAbove: o.windowTtftAbove,
      keep: o.windowKeep,
      maxSize: o.windowMaxSize,
      otlpEndpoint: o.otlpEndpoint,
      profilesEndpoint: o.profilesEndpoint,
    }).filter(([, v]) => v !== undefined),
  );
  return {
    ...(o.metricsAddr !== undefined ? { metricsAddr: o.metricsAddr } : {}),
    ...(o.include ? { include: o.include } : {}),
    ...(o.exclude ? { exclude: o.exclude } : {}),
    ...(o.requestIdle !== undefined ? { requestIdle: o.requestIdle } : {}),
    ...(o.exitLinger !== undefined ? { exitLinger: o.exitLinger } : {}),
    ...(Object.keys(windows).length > 0 ? { windows } : {}),
  };
}

export function registerAgentCommand(program: Command): void {
  program
    .command("agent")
    .description(
      "follow every llama.cpp process of this host: one /metrics for all, sampled operator windows (docs/agent.md)",
    )
    .option("--config <file>", "YAML configuration (docs/agent.md); read again on SIGHUP")
    .option(
      "--metrics-addr <host:port>",
      "serve /metrics and /healthz here (default 127.0.0.1:9464)",
    )
    .option(
      "--include <field=glob>",
      "follow only matching processes (repeatable; fields: executable, command, cgroup, container, pod, namespace)",
      rule,
    )
    .option("--exclude <field=glob>", "never follow matching processes (repeatable)", rule)
    .option(
      "--request-idle <seconds>",
      "a request whose sequence had no call for this long has ended",
      seconds("--request-idle"),
    )
    .option(
      "--exit-linger <seconds>",
      "an exited process's last series stay this long",
      seconds("--exit-linger"),
    )
    .option("--window-dir <dir>", "where sampled windows' run folders go")
    .option(
      "--window-every <seconds>",
      "an operator window every this often, each process in turn",
      seconds("--window-every"),
    )
    .option("--window-calls <n>", "llama_decode calls per window", count("--window-calls"))
    .option(
      "--window-tpot-above <seconds>",
      "a request slower than this per output token triggers a window",
      seconds("--window-tpot-above"),
    )
    .option(
      "--window-ttft-above <seconds>",
      "a request slower than this to its first token triggers a window",
      seconds("--window-ttft-above"),
    )
    .option("--window-keep <n>", "run folders kept at most", count("--window-keep"))
    .option("--window-max-size <size>", "bytes the kept run folders take at most (256M, 1G)")
    .option("--otlp-endpoint <url>", "send the windows' spans over OTLP gRPC here")
    .option(
      "--profiles-endpoint <url>",
      "send each window's operator time as OTLP profiles (the profiles signal) here",
    )
    .option("--runtime-dir <dir>", "where the one-agent-per-host lock lives", "/run/profinfer")
    .action(async (opts: AgentOptions) => {
      const flags = flagSettings(opts);
      const file = opts.config ? resolve(opts.config) : null;
      const load = () => agentConfig(mergeSettings(file ? readConfigFile(file) : {}, flags));
      await runAgent({ load, runtimeDir: resolve(opts.runtimeDir), log, version: VERSION });
    });
}
