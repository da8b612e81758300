// SPDX-License-Identifier: Apache-2.0
// `--pmc`: perf event names as `perf` users write them, turned into what perf_event_open takes.
// Hand-written: no npm package parses perf's event syntax or reads the kernel's sysfs PMU
// descriptions (format/ bit fields, events/ aliases); libpfm4 does, but only as a C library that
// would become a native dependency for what is a few dozen lines here.
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { PI_MAX_COUNTERS } from "../abi/events.js";
import { UserError } from "../errors.js";
import type { BackendStallFormula } from "../trace/backendStall.js";
import { GENERIC_STALL } from "../trace/backendStall.js";
import { chooseStallFormula, readCpuIdentity, type CpuIdentity } from "./cpuIdentity.js";

/** Where the kernel describes its PMUs. */
export const SYSFS_PMU_ROOT = "/sys/bus/event_source/devices";

/** perf_event_attr.type values of the uapi. */
export const PerfType = { HARDWARE: 0, SOFTWARE: 1, TRACEPOINT: 2, HW_CACHE: 3, RAW: 4 } as const;

/** One counter to open: what perf_event_open takes, and the name the user wrote. */
export interface CounterRequest {
  name: string;
  type: number;
  config: bigint;
  config1: bigint;
  config2: bigint;
  /** it counts real hardware events (false: a software event of the kernel) */
  hardware: boolean;
}

/** A counter that was asked for but cannot be had on this machine, and why. */
export interface CounterUnavailable {
  name: string;
  reason: string;
}

export interface CounterSelection {
  counters: CounterRequest[];
  unavailable: CounterUnavailable[];
  /**
   * the formula the backend-stall figure comes from, when every event it needs is in `counters`
   * (the recorder keeps it only if they all open); `note` says why a CPU got the generic one
   */
  backendStall: { formula: BackendStallFormula; note?: string } | null;
}

/** `--pmc backend-stall`: the events of this CPU's backend-stall formula (trace/backendStall.ts). */
export const BACKEND_STALL_KEYWORD = "backend-stall";

/**
 * perf's aliases of its generic events, by the name profinfer records: whichever a user writes,
 * the run, the metrics' `event` label and the derived figures see the first name of perf list's
 * "cpu-cycles OR cycles" lines as perf users and rules write them.
 */
const ALIASES: Readonly<Record<string, string>> = {
  "cpu-cycles": "cycles",
  branches: "branch-instructions",
  "idle-cycles-frontend": "stalled-cycles-frontend",
  "idle-cycles-backend": "stalled-cycles-backend",
  faults: "page-faults",
  cs: "context-switches",
  migrations: "cpu-migrations",
};

/** The name a generic event is recorded under (perf's aliases folded into one). */
export function canonicalEventName(name: string): string {
  return ALIASES[name] ?? name;
}

/** perf's generic hardware events (PERF_TYPE_HARDWARE), with perf's aliases. */
const HARDWARE_EVENTS: Readonly<Record<string, number>> = {
  cycles: 0,
  "cpu-cycles": 0,
  instructions: 1,
  "cache-references": 2,
  "cache-misses": 3,
  "branch-instructions": 4,
  branches: 4,
  "branch-misses": 5,
  "bus-cycles": 6,
  "stalled-cycles-frontend": 7,
  "idle-cycles-frontend": 7,
  "stalled-cycles-backend": 8,
  "idle-cycles-backend": 8,
  "ref-cycles": 9,
};

/** perf's software events (PERF_TYPE_SOFTWARE), with perf's aliases. */
const SOFTWARE_EVENTS: Readonly<Record<string, number>> = {
  "cpu-clock": 0,
  "task-clock": 1,
  "page-faults": 2,
  faults: 2,
  "context-switches": 3,
  cs: 3,
  "cpu-migrations": 4,
  migrations: 4,
  "minor-faults": 5,
  "major-faults": 6,
  "alignment-faults": 7,
  "emulation-faults": 8,
};

/**
 * `--pmc auto` where the CPU has a PMU: what the derived figures need, the backend-stall
 * formula's events in place of the keyword; cut to the counters that fit, from the end.
 */
export const AUTO_HARDWARE = [
  "cycles",
  "instructions",
  "cache-references",
  "cache-misses",
  "branch-misses",
  BACKEND_STALL_KEYWORD,
  "stalled-cycles-frontend",
];
/** `--pmc auto` without one: the kernel's own counts. */
export const AUTO_SOFTWARE = ["task-clock", "page-faults", "context-switches"];

/** PMUs whose events are the kernel's own, not hardware counts. */
const SOFTWARE_PMUS = new Set(["software", "tracepoint", "kprobe", "uprobe", "breakpoint"]);
/** PMUs that count for the CPU cores (the generic hardware events go to one of them). */
const CORE_PMU = /^(cpu|cpu_core|cpu_atom|armv\d+_\w+|armv8_pmuv3(_\d+)?)$/;

export function knownEventNames(): string[] {
  return [...Object.keys(HARDWARE_EVENTS), ...Object.keys(SOFTWARE_EVENTS)];
}

/** The CPU exposes a core PMU through sysfs, so generic hardware events may open. */
export function hasCorePmu(root = SYSFS_PMU_ROOT): boolean {
  try {
    return readdirSync(root).some((d) => CORE_PMU.test(d));
  } catch {
    return false;
  }
}

/**
 * Splits a `--pmc` list. Commas also separate the terms inside `pmu/.../`, so a comma only
 * separates events outside slashes.
 */
export function splitEventList(list: string): string[] {
  const out: string[] = [];
  let cur = "";
  let slashes = 0;
  for (const ch of list) {
    if (ch === "/") slashes++;
    if (ch === "," && slashes % 2 === 0) {
      out.push(cur.trim());
      cur = "";
      continue;
    }
    cur += ch;
  }
  out.push(cur.trim());
  return out.filter(Boolean);
}

/**
 * Resolves `--pmc LIST`. Names that are not perf event syntax throw a UserError (nothing is
 * recorded yet); events that are well-formed but that this machine does not have (a PMU that is
 * absent) come back in `unavailable` with the reason, and the run goes on without them.
 * `backend-stall` (and `auto`) take the events of the formula chosen for `cpu`.
 */
export function resolveCounters(
  list: string,
  root = SYSFS_PMU_ROOT,
  cpu?: CpuIdentity,
): CounterSelection {
  const auto = list.trim() === "auto";
  const written = auto ? autoEvents(root) : splitEventList(list);
  if (written.length === 0) throw new UserError("--pmc needs at least one event name, or 'auto'");
  const seen = new Map<string, string>();
  for (const name of written) {
    const canonical = canonicalEventName(name);
    const before = seen.get(canonical);
    if (before !== undefined) {
      throw new UserError(
        before === name
          ? `--pmc names '${name}' twice`
          : `--pmc names '${canonical}' twice: '${before}' and '${name}' are the same perf event`,
      );
    }
    seen.set(canonical, name);
  }
  const stall = written.includes(BACKEND_STALL_KEYWORD)
    ? chooseStallFormula(cpu ?? readCpuIdentity(root))
    : null;
  // the keyword's events where it stands, each event once
  const names: string[] = [];
  const encodings = new Map<string, string>();
  for (const name of written) {
    const expanded =
      name === BACKEND_STALL_KEYWORD ? stall!.formula.events.map((e) => e.name) : [name];
    for (const n of expanded.map(canonicalEventName)) if (!names.includes(n)) names.push(n);
  }
  if (stall) for (const [n, enc] of Object.entries(stall.encodings)) encodings.set(n, enc);
  if (auto) names.splice(PI_MAX_COUNTERS);
  const counters: CounterRequest[] = [];
  const unavailable: CounterUnavailable[] = [];
  for (const name of names) {
    const encoding = encodings.get(name);
    const result = resolveEvent(encoding ?? name, root);
    if ("reason" in result) unavailable.push({ ...result, name });
    else counters.push({ ...result, name });
  }
  const has = (f: BackendStallFormula) =>
    f.events.every((e) => counters.some((c) => c.name === e.name));
  const backendStall =
    stall && has(stall.formula)
      ? { formula: stall.formula, ...(stall.note ? { note: stall.note } : {}) }
      : has(GENERIC_STALL)
        ? { formula: GENERIC_STALL, ...(stall?.note ? { note: stall.note } : {}) }
        : null;
  return { counters, unavailable, backendStall };
}

function autoEvents(root: string): string[] {
  return hasCorePmu(root) ? AUTO_HARDWARE : AUTO_SOFTWARE;
}

function request(name: string, type: number, config: bigint, hardware: boolean): CounterRequest {
  return { name, type, config, config1: 0n, config2: 0n, hardware };
}

export function resolveEvent(
  name: string,
  root = SYSFS_PMU_ROOT,
): CounterRequest | CounterUnavailable {
  if (name in HARDWARE_EVENTS) {
    return request(
      canonicalEventName(name),
      PerfType.HARDWARE,
      BigInt(HARDWARE_EVENTS[name]!),
      true,
    );
  }
  if (name in SOFTWARE_EVENTS) {
    return request(
      canonicalEventName(name),
      PerfType.SOFTWARE,
      BigInt(SOFTWARE_EVENTS[name]!),
      false,
    );
  }
  if (/^r/.test(name) && !name.includes("/")) {
    const m = /^r([0-9a-fA-F]{1,16})$/.exec(name);
    if (!m) {
      throw new UserError(
        `--pmc: '${name}' is not a raw event: a raw event is 'r' and the event code in hex, up to 16 digits (r003c, r01c2)`,
      );
    }
    return request(name, PerfType.RAW, BigInt(`0x${m[1]}`), true);
  }
  if (name.includes("/")) return resolvePmuEvent(name, root);
  if (/:/.test(name)) {
    throw new UserError(
      `--pmc: '${name}': event modifiers (:u, :k, ...) are not supported; counters count user and kernel time of the target's threads`,
    );
  }
  throw new UserError(
    `--pmc: unknown event '${name}'. Give a perf event: ${knownEventNames().join(", ")}; ` +
      `a PMU event such as cpu/event=0x3c,umask=0x00/ or armv8_pmuv3/mem_access/; a raw event such as r003c; ` +
      `'${BACKEND_STALL_KEYWORD}' (the events of this CPU's backend-stall formula); or 'auto'`,
  );
}

/** `pmu/term=value,term,.../`: terms are format/ fields or an alias from events/. */
function resolvePmuEvent(name: string, root: string): CounterRequest | CounterUnavailable {
  const m = /^([A-Za-z0-9_.-]+)\/([^/]*)\/$/.exec(name);
  if (!m) {
    throw new UserError(
      `--pmc: '${name}' is not a PMU event: write PMU/TERMS/ with a slash at each end, e.g. cpu/event=0x3c,umask=0x00/ or armv8_pmuv3/mem_access/`,
    );
  }
  const [, pmu, termList] = m as unknown as [string, string, string];
  const dir = join(root, pmu);
  if (!existsSync(join(dir, "type"))) {
    let present: string[] = [];
    try {
      present = readdirSync(root);
    } catch {
      // no sysfs: nothing to list
    }
    return {
      name,
      reason: `this machine has no PMU named '${pmu}' (${root} holds: ${present.join(", ") || "nothing"})`,
    };
  }
  const type = Number(readFileSync(join(dir, "type"), "utf8").trim());
  const terms = parseTerms(termList, name);
  if (terms.length === 0) throw new UserError(`--pmc: '${name}' names no event inside the slashes`);
  const fields = { config: 0n, config1: 0n, config2: 0n };
  for (const term of expandAliases(terms, dir, name)) {
    const format = readFormat(dir, term.key, name);
    place(fields, format, term.value, name, term.key);
  }
  return {
    name,
    type,
    config: fields.config,
    config1: fields.config1,
    config2: fields.config2,
    hardware: !SOFTWARE_PMUS.has(pmu),
  };
}

interface Term {
  key: string;
  /** null: a bare word (an alias, or a flag term meaning 1) */
  value: bigint | null;
}

function parseTerms(list: string, name: string): Term[] {
  return list
    .split(",")
    .map((t) => t.trim())
    .filter(Boolean)
    .map((t) => {
      const m = /^([A-Za-z_][A-Za-z0-9_.-]*)(?:=(0x[0-9a-fA-F]+|\d+))?$/.exec(t);
      if (!m) {
        throw new UserError(
          `--pmc: '${name}': the term '${t}' is not NAME or NAME=VALUE (VALUE decimal or 0x hex)`,
        );
      }
      return { key: m[1]!, value: m[2] === undefined ? null : BigInt(m[2]) };
    });
}

/** Bare words that name an event in events/ stand for that event's own terms. */
function expandAliases(terms: Term[], dir: string, name: string): { key: string; value: bigint }[] {
  const out: { key: string; value: bigint }[] = [];
  for (const term of terms) {
    if (term.value !== null) {
      out.push({ key: term.key, value: term.value });
      continue;
    }
    const alias = join(dir, "events", term.key);
    if (existsSync(alias)) {
      const inner = parseTerms(readFileSync(alias, "utf8").trim(), name);
      for (const t of inner) out.push({ key: t.key, value: t.value ?? 1n });
      continue;
    }
    if (existsSync(join(dir, "format", term.key))) {
      out.push({ key: term.key, value: 1n });
      continue;
    }
    let events: string[] = [];
    try {
      events = readdirSync(join(dir, "events")).filter((e) => !e.includes("."));
    } catch {
      // a PMU without named events
    }
    throw new UserError(
      `--pmc: '${name}': '${term.key}' is neither an event of this PMU nor one of its fields` +
        (events.length
          ? ` (its events: ${events.slice(0, 20).join(", ")}${events.length > 20 ? ", ..." : ""})`
          : ""),
    );
  }
  return out;
}

interface FieldFormat {
  field: "config" | "config1" | "config2";
  /** bit ranges, low bits of the value first */
  ranges: [number, number][];
}

/** format/<term>: "config:0-7" or "config1:0-3,8-11" */
function readFormat(dir: string, key: string, name: string): FieldFormat {
  const path = join(dir, "format", key);
  if (!existsSync(path)) {
    let known: string[] = [];
    try {
      known = readdirSync(join(dir, "format"));
    } catch {
      // no format directory
    }
    throw new UserError(
      `--pmc: '${name}': this PMU has no field '${key}' (its fields: ${known.join(", ") || "none"})`,
    );
  }
  const text = readFileSync(path, "utf8").trim();
  const m = /^(config[12]?):(.+)$/.exec(text);
  if (!m) throw new UserError(`--pmc: '${name}': cannot read ${path} ('${text}')`);
  const ranges = m[2]!.split(",").map((r): [number, number] => {
    const [lo, hi] = r.split("-").map(Number) as [number, number | undefined];
    return [lo, hi ?? lo];
  });
  return { field: m[1] as FieldFormat["field"], ranges };
}

function place(
  fields: Record<FieldFormat["field"], bigint>,
  format: FieldFormat,
  value: bigint,
  name: string,
  key: string,
): void {
  let rest = value;
  for (const [lo, hi] of format.ranges) {
    const width = BigInt(hi - lo + 1);
    const mask = (1n << width) - 1n;
    fields[format.field] |= (rest & mask) << BigInt(lo);
    rest >>= width;
  }
  if (rest !== 0n) {
    throw new UserError(`--pmc: '${name}': ${key}=${value} does not fit the field's bits`);
  }
}
