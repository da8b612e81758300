// SPDX-License-Identifier: Apache-2.0
// The host agent's configuration: a YAML file (--config, read again on SIGHUP) under the
// command's flags. Every key is checked: an unknown one, or a value of the wrong kind, is an
// error that names it and says what is allowed, so a typo never silently turns a setting off.
import { readFileSync } from "node:fs";
import { parse } from "yaml";
import { MAX_BATCH_TOKENS } from "../abi/constants.js";
import { UserError } from "../errors.js";
import { parseMetricsAddr, type MetricsAddress } from "../sinks/metrics/server.js";
import { RULE_FIELDS, type Selection, type SelectionRule } from "./selection.js";

/** Sampled operator windows (docs/agent.md "Sampled windows"). */
export interface WindowsConfig {
  /** where each window's run folder goes */
  dir: string;
  /** a window every this many ms, on the next process in turn; null: none on a schedule */
  everyMs: number | null;
  /** llama_decode calls each window records at operator level (K) */
  calls: number;
  /** a request slower than this per output token (s) triggers a window on its process */
  tpotAboveS: number | null;
  /** a request whose first token took longer than this (s) triggers a window */
  ttftAboveS: number | null;
  /** a process gets no triggered window within this long (ms) of its last one */
  cooldownMs: number;
  /** a window that has not seen its calls in this long (ms) ends with what it has */
  timeoutMs: number;
  /** the run folders kept at most, and their total size at most: the oldest go first */
  keep: number;
  maxBytes: number;
  /** the OTLP gRPC endpoint the windows' spans go to; null: run folders only */
  otlpEndpoint: string | null;
  /** the OTLP gRPC endpoint the windows' profiles go to (profiles signal); null: none */
  profilesEndpoint: string | null;
}

export interface AgentConfig {
  /** /metrics and /healthz */
  metricsAddr: MetricsAddress;
  selection: Selection;
  /** a request whose sequence had no call for this long has ended */
  requestIdleNs: bigint;
  /** an exited process's final series stay this long (ms), for a last scrape */
  exitLingerMs: number;
  /** tokens of each llama_decode batch read at most */
  batchTokens: number;
  windows: WindowsConfig | null;
}

/** What a config file or the flags may say; flags win over the file, the file over defaults. */
export interface AgentSettings {
  metricsAddr?: string;
  include?: SelectionRule[];
  exclude?: SelectionRule[];
  requestIdle?: number;
  exitLinger?: number;
  batchTokens?: number;
  windows?: {
    dir?: string;
    every?: number;
    calls?: number;
    tpotAbove?: number;
    ttftAbove?: number;
    cooldown?: number;
    timeout?: number;
    keep?: number;
    maxSize?: string | number;
    otlpEndpoint?: string;
    profilesEndpoint?: string;
  };
}

export const AGENT_DEFAULTS = {
  metricsAddr: "127.0.0.1:9464",
  requestIdle: 2,
  exitLinger: 30,
  windows: {
    dir: "/var/lib/profinfer/windows",
    calls: 8,
    cooldown: 300,
    timeout: 60,
    keep: 20,
    maxSize: "256M",
  },
} as const;

type Kind = "string" | "seconds" | "count" | "size" | "rules" | "section";

const SETTINGS: Record<string, Kind> = {
  metricsAddr: "string",
  include: "rules",
  exclude: "rules",
  requestIdle: "seconds",
  exitLinger: "seconds",
  batchTokens: "count",
  windows: "section",
};
const WINDOW_SETTINGS: Record<string, Kind> = {
  dir: "string",
  every: "seconds",
  calls: "count",
  tpotAbove: "seconds",
  ttftAbove: "seconds",
  cooldown: "seconds",
  timeout: "seconds",
  keep: "count",
  maxSize: "size",
  otlpEndpoint: "string",
  profilesEndpoint: "string",
};

const KIND_TEXT: Record<Kind, string> = {
  string: "a string",
  seconds: "a number of seconds (0 or more)",
  count: "a whole number above 0",
  size: "a size such as 256M or 1G",
  rules: `a list of rules, each a mapping of ${RULE_FIELDS.join(", ")} to globs`,
  section: "a mapping",
};

/** A size: bytes, or a number with K, M or G (powers of 1024). */
export function parseSize(value: string | number): number | null {
  if (typeof value === "number") return Number.isInteger(value) && value > 0 ? value : null;
  const m = /^(\d+)([KMG]?)i?B?$/i.exec(value.trim());
  if (!m) return null;
  const unit = { "": 1, K: 1 << 10, M: 1 << 20, G: 1 << 30 }[
    m[2]!.toUpperCase() as "" | "K" | "M" | "G"
  ];
  return Number(m[1]) * unit;
}

function checkValue(where: string, kind: Kind, value: unknown): void {
  const bad = () => new UserError(`${where}: ${JSON.stringify(value)} is not ${KIND_TEXT[kind]}`);
  switch (kind) {
    case "string":
      if (typeof value !== "string" || value === "") throw bad();
      return;
    case "seconds":
      if (typeof value !== "number" || !(value >= 0)) throw bad();
      return;
    case "count":
      if (typeof value !== "number" || !Number.isInteger(value) || value < 1) throw bad();
      return;
    case "size":
      if ((typeof value !== "string" && typeof value !== "number") || parseSize(value) === null)
        throw bad();
      return;
    case "rules":
      if (!Array.isArray(value)) throw bad();
      value.forEach((rule: unknown, i) => {
        const at = `${where}[${i}]`;
        if (typeof rule !== "object" || rule === null || Array.isArray(rule))
          throw new UserError(`${at}: ${JSON.stringify(rule)} is not a mapping of fields to globs`);
        const entries = Object.entries(rule);
        if (entries.length === 0)
          throw new UserError(`${at}: an empty rule would match every process; give a field`);
        for (const [field, glob] of entries) {
          if (!RULE_FIELDS.includes(field as (typeof RULE_FIELDS)[number]))
            throw new UserError(
              `${at}: unknown field '${field}'; a rule's fields are ${RULE_FIELDS.join(", ")}`,
            );
          if (typeof glob !== "string" || glob === "")
            throw new UserError(`${at}.${field}: ${JSON.stringify(glob)} is not a glob`);
        }
      });
      return;
    case "section":
      if (typeof value !== "object" || value === null || Array.isArray(value)) throw bad();
      return;
  }
}

function checkKeys(where: string, object: Record<string, unknown>, known: Record<string, Kind>) {
  for (const [key, value] of Object.entries(object)) {
    // a flag not given
    if (value === undefined) continue;
    const kind = known[key];
    const at = where ? `${where}.${key}` : key;
    if (!kind)
      throw new UserError(
        `${at}: unknown key; ${where ? `'${where}' takes` : "the agent's configuration takes"} ${Object.keys(known).join(", ")} (docs/agent.md "Configuration")`,
      );
    checkValue(at, kind, value);
  }
}

/** The settings of config file `path`, checked; a missing or malformed file is a UserError. */
export function readConfigFile(path: string): AgentSettings {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new UserError(
      `cannot read the agent's configuration ${path}: ${(error as Error).message}`,
    );
  }
  let document: unknown;
  try {
    document = parse(text);
  } catch (error) {
    throw new UserError(`${path} is not valid YAML: ${(error as Error).message}`);
  }
  if (document === null || document === undefined) return {};
  if (typeof document !== "object" || Array.isArray(document))
    throw new UserError(`${path}: the configuration is a mapping of keys to values`);
  try {
    checkSettings(document as Record<string, unknown>);
  } catch (error) {
    throw new UserError(`${path}: ${(error as Error).message}`);
  }
  return document as AgentSettings;
}

/** Checks settings from any source (a file, the flags) against the keys the agent knows. */
export function checkSettings(settings: Record<string, unknown>): void {
  checkKeys("", settings, SETTINGS);
  const windows = settings.windows;
  if (windows) checkKeys("windows", windows as Record<string, unknown>, WINDOW_SETTINGS);
}

/** The settings of `file` under `flags` (lists add up, values of the flags win). */
export function mergeSettings(file: AgentSettings, flags: AgentSettings): AgentSettings {
  return {
    ...file,
    ...flags,
    include: [...(file.include ?? []), ...(flags.include ?? [])],
    exclude: [...(file.exclude ?? []), ...(flags.exclude ?? [])],
    windows: file.windows || flags.windows ? { ...file.windows, ...flags.windows } : undefined,
  };
}

/** The configuration the agent runs with. */
export function agentConfig(settings: AgentSettings): AgentConfig {
  checkSettings(settings as Record<string, unknown>);
  const w = settings.windows;
  const d = AGENT_DEFAULTS.windows;
  const windowsOn =
    w !== undefined &&
    (w.every !== undefined || w.tpotAbove !== undefined || w.ttftAbove !== undefined);
  return {
    metricsAddr: parseMetricsAddr(settings.metricsAddr ?? AGENT_DEFAULTS.metricsAddr),
    selection: { include: settings.include ?? [], exclude: settings.exclude ?? [] },
    requestIdleNs: BigInt(Math.round((settings.requestIdle ?? AGENT_DEFAULTS.requestIdle) * 1e9)),
    exitLingerMs: (settings.exitLinger ?? AGENT_DEFAULTS.exitLinger) * 1000,
    batchTokens: Math.min(settings.batchTokens ?? MAX_BATCH_TOKENS, MAX_BATCH_TOKENS),
    windows: windowsOn
      ? {
          dir: w.dir ?? d.dir,
          everyMs: w.every ? w.every * 1000 : null,
          calls: w.calls ?? d.calls,
          tpotAboveS: w.tpotAbove ?? null,
          ttftAboveS: w.ttftAbove ?? null,
          cooldownMs: (w.cooldown ?? d.cooldown) * 1000,
          timeoutMs: (w.timeout ?? d.timeout) * 1000,
          keep: w.keep ?? d.keep,
          maxBytes: parseSize(w.maxSize ?? d.maxSize)!,
          otlpEndpoint: w.otlpEndpoint ?? null,
          profilesEndpoint: w.profilesEndpoint ?? null,
        }
      : null,
  };
}
