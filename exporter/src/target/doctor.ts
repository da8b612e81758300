// SPDX-License-Identifier: Apache-2.0
// The checks behind `profinfer doctor`: can this machine load our BPF programs, attach uprobes,
// open perf counters, and are the llama.cpp targets of `npm run setup` there? Every check returns
// a structured result; parsing is split from I/O so tests can feed captured text, and all I/O
// goes through an injectable DoctorHost.
import { spawnSync } from "node:child_process";
import {
  accessSync,
  constants as fsConstants,
  existsSync,
  readdirSync,
  readFileSync,
  statSync,
} from "node:fs";
import { release } from "node:os";
import { basename, delimiter, join } from "node:path";
import { manifestPath, readManifest, type CacheManifest } from "./cache.js";
import { readElfSections, type ElfSection } from "./elf.js";
import { classifyLibrary } from "./libraries.js";

/**
 * ok: works. warn: works in a degraded way, or is optional. missing: something profinfer needs
 * is absent (the machine is not ready). unknown: the check itself could not run.
 */
export type CheckStatus = "ok" | "warn" | "missing" | "unknown";

export interface DoctorCheck {
  /** Stable identifier for scripts reading `--json`. */
  id: string;
  /** Short human label, the first column of the table. */
  name: string;
  status: CheckStatus;
  /** What was found, one line. */
  found: string;
  /** Further lines of what was found (one per library, per event group ...). */
  notes?: string[];
  /** A plain command or action that fixes a check that is not ok. */
  fix?: string;
  /** Structured facts for `--json` consumers. */
  data?: Record<string, unknown>;
}

export interface DoctorReport {
  checks: DoctorCheck[];
  /** True when no check is missing: warnings and unknowns do not stop profiling. */
  ready: boolean;
}

export interface CommandOutcome {
  /** False when the program could not be started at all (ENOENT ...). */
  started: boolean;
  exitCode: number | null;
  stdout: string;
  stderr: string;
  /** Why it did not start or did not finish, when it did not. */
  error?: string;
}

/** Everything doctor reads from the machine, so tests can substitute a fake one. */
export interface DoctorHost {
  kernelRelease(): string;
  effectiveUid(): number | null;
  exists(path: string): boolean;
  /** File contents, or null when it cannot be read. */
  readText(path: string): string | null;
  /** Entry names, or null when the folder cannot be read. */
  listDir(path: string): string[] | null;
  /** Absolute path of an executable found on PATH, or null. */
  findOnPath(name: string): string | null;
  run(command: string, args: string[]): CommandOutcome;
  readManifest(): CacheManifest | null;
  manifestPath(): string;
  readElfSections(path: string): ElfSection[];
}

// ---------------------------------------------------------------------------------------------
// Kernel

/** BPF ring buffer and CAP_BPF / CAP_PERFMON arrived in 5.8. */
export const MINIMUM_KERNEL = { major: 5, minor: 8 } as const;

export function parseKernelVersion(kernelRelease: string): { major: number; minor: number } | null {
  const match = /^(\d+)\.(\d+)/.exec(kernelRelease);
  if (!match) return null;
  return { major: Number(match[1]), minor: Number(match[2]) };
}

function isAtLeast(
  version: { major: number; minor: number },
  minimum: { major: number; minor: number },
) {
  return (
    version.major > minimum.major ||
    (version.major === minimum.major && version.minor >= minimum.minor)
  );
}

export function checkKernel(kernelRelease: string): DoctorCheck {
  const version = parseKernelVersion(kernelRelease);
  const minimum = `${MINIMUM_KERNEL.major}.${MINIMUM_KERNEL.minor}`;
  const base = { id: "kernel", name: "kernel", data: { release: kernelRelease, minimum } };
  if (!version) {
    return { ...base, status: "unknown", found: `cannot read a version from '${kernelRelease}'` };
  }
  if (isAtLeast(version, MINIMUM_KERNEL)) {
    // uprobe_multi (6.6): operator probes as one link per library, detached in one step
    const multi = isAtLeast(version, { major: 6, minor: 6 });
    return {
      ...base,
      status: "ok",
      found: `${kernelRelease} (>= ${minimum}: ring buffer, CAP_BPF${multi ? "; >= 6.6: uprobe_multi" : ""})`,
      ...(multi
        ? {}
        : {
            notes: [
              "before 6.6 operator probes are attached one by one: detaching takes about 0.1 s a probe",
            ],
          }),
    };
  }
  return {
    ...base,
    status: "missing",
    found: `${kernelRelease} is older than ${minimum} (no BPF ring buffer, no CAP_BPF)`,
    fix: `boot a kernel >= ${minimum}`,
  };
}

// ---------------------------------------------------------------------------------------------
// BTF, uprobes, tracefs

export const VMLINUX_BTF = "/sys/kernel/btf/vmlinux";
export const UPROBE_PMU_TYPE = "/sys/bus/event_source/devices/uprobe/type";
export const TRACEFS_MOUNT_POINTS = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"] as const;

export function checkBtf(host: DoctorHost): DoctorCheck {
  const base = { id: "btf", name: "BTF" };
  if (host.exists(VMLINUX_BTF)) {
    return { ...base, status: "ok", found: `${VMLINUX_BTF} present (CO-RE relocations work)` };
  }
  return {
    ...base,
    status: "missing",
    found: `${VMLINUX_BTF} absent: the kernel has no BTF, so CO-RE BPF programs cannot load`,
    fix: "boot a kernel built with CONFIG_DEBUG_INFO_BTF=y (Debian's stock kernels are)",
  };
}

/** Mount points of tracefs listed in /proc/mounts text. */
export function findTracefsMounts(procMounts: string): string[] {
  const mountPoints: string[] = [];
  for (const line of procMounts.split("\n")) {
    const [, mountPoint, fsType] = line.split(" ");
    if (fsType === "tracefs" && mountPoint) mountPoints.push(mountPoint);
  }
  return mountPoints;
}

/** The tracefs folder in use, preferring the modern mount point. */
function tracefsRoot(host: DoctorHost): string | null {
  const mounted = findTracefsMounts(host.readText("/proc/mounts") ?? "");
  for (const candidate of TRACEFS_MOUNT_POINTS) {
    if (mounted.includes(candidate)) return candidate;
  }
  // /proc/mounts may be unreadable (some sandboxes): fall back to looking for the files.
  for (const candidate of TRACEFS_MOUNT_POINTS) {
    if (host.exists(join(candidate, "uprobe_events"))) return candidate;
  }
  return null;
}

const MOUNT_TRACEFS = "mount -t tracefs nodev /sys/kernel/tracing";

export function checkUprobes(host: DoctorHost): DoctorCheck {
  const base = { id: "uprobes", name: "uprobes" };
  const hasPmu = host.exists(UPROBE_PMU_TYPE);
  const tracefs = tracefsRoot(host);
  const uprobeEvents = tracefs ? join(tracefs, "uprobe_events") : null;
  const hasUprobeEvents = uprobeEvents !== null && host.exists(uprobeEvents);
  const data = { uprobePmu: hasPmu, tracefsUprobeEvents: hasUprobeEvents ? uprobeEvents : null };
  const tracefsPart = hasUprobeEvents
    ? `tracefs ${uprobeEvents} present`
    : "tracefs uprobe_events not available";
  if (hasPmu) {
    return {
      ...base,
      status: "ok",
      found: `uprobe PMU present (libbpf attach); ${tracefsPart}`,
      data,
    };
  }
  if (hasUprobeEvents) {
    // libbpf falls back to creating the probe through tracefs when the PMU is absent.
    return {
      ...base,
      status: "warn",
      found: `no uprobe PMU (${UPROBE_PMU_TYPE}); libbpf will use the legacy ${tracefsPart}`,
      data,
    };
  }
  return {
    ...base,
    status: "missing",
    found: `no uprobe PMU and ${tracefsPart}: uprobes cannot be attached`,
    fix: `boot a kernel with CONFIG_UPROBE_EVENTS=y; if it has it, ${MOUNT_TRACEFS}`,
    data,
  };
}

export function checkTracefs(host: DoctorHost): DoctorCheck {
  const base = { id: "tracefs", name: "tracefs" };
  const root = tracefsRoot(host);
  if (root)
    return { ...base, status: "ok", found: `mounted at ${root}`, data: { mountPoint: root } };
  // Only the legacy uprobe attach needs tracefs; with the uprobe PMU it is a convenience.
  const needed = !host.exists(UPROBE_PMU_TYPE);
  return {
    ...base,
    status: needed ? "missing" : "warn",
    found: `not mounted at ${TRACEFS_MOUNT_POINTS.join(" or ")}${needed ? "" : " (optional: the uprobe PMU is present)"}`,
    fix: MOUNT_TRACEFS,
    data: { mountPoint: null },
  };
}

// ---------------------------------------------------------------------------------------------
// Permissions

/** Capability bit numbers from linux/capability.h. */
export const CAPABILITY_BITS = { CAP_SYS_ADMIN: 21, CAP_PERFMON: 38, CAP_BPF: 39 } as const;
export type CapabilityName = keyof typeof CAPABILITY_BITS;

/** The effective capability mask from /proc/<pid>/status text, or null when absent. */
export function parseEffectiveCapabilities(procStatus: string): bigint | null {
  const match = /^CapEff:\s*([0-9a-fA-F]+)\s*$/m.exec(procStatus);
  return match ? BigInt(`0x${match[1]}`) : null;
}

export function capabilityNames(mask: bigint): CapabilityName[] {
  return (Object.keys(CAPABILITY_BITS) as CapabilityName[]).filter(
    (name) => (mask >> BigInt(CAPABILITY_BITS[name])) & 1n,
  );
}

export interface PermissionFacts {
  effectiveUid: number | null;
  effectiveCapabilities: bigint | null;
  /** /proc/sys/kernel/unprivileged_bpf_disabled, null when absent. */
  unprivilegedBpfDisabled: number | null;
  /** /proc/sys/kernel/perf_event_paranoid, null when absent. */
  perfEventParanoid: number | null;
}

export function checkPermissions(facts: PermissionFacts): DoctorCheck {
  const base = { id: "permissions", name: "BPF permissions" };
  const held =
    facts.effectiveCapabilities === null ? null : capabilityNames(facts.effectiveCapabilities);
  const sysctls =
    `unprivileged_bpf_disabled=${facts.unprivilegedBpfDisabled ?? "n/a"}, ` +
    `perf_event_paranoid=${facts.perfEventParanoid ?? "n/a"}`;
  const found =
    `euid ${facts.effectiveUid ?? "unknown"}; ` +
    `CapEff ${held === null ? "unreadable" : held.length ? held.join(" ") : "has none of CAP_BPF CAP_PERFMON CAP_SYS_ADMIN"}; ` +
    sysctls;
  const data = {
    effectiveUid: facts.effectiveUid,
    capabilities: held,
    unprivilegedBpfDisabled: facts.unprivilegedBpfDisabled,
    perfEventParanoid: facts.perfEventParanoid,
  };
  if (held === null) {
    return { ...base, status: facts.effectiveUid === 0 ? "warn" : "unknown", found, data };
  }
  // The kernel's bpf_capable() and perfmon_capable() both accept CAP_SYS_ADMIN in their place.
  const sysAdmin = held.includes("CAP_SYS_ADMIN");
  const bpfCapable = sysAdmin || held.includes("CAP_BPF");
  const perfmonCapable = sysAdmin || held.includes("CAP_PERFMON");
  if (bpfCapable && perfmonCapable) {
    const notes = sysAdmin
      ? undefined
      : ["without CAP_SYS_ADMIN: enough for uprobes and perf events on kernels >= 5.8"];
    return { ...base, status: "ok", found, ...(notes ? { notes } : {}), data };
  }
  const lacking = [bpfCapable ? null : "CAP_BPF", perfmonCapable ? null : "CAP_PERFMON"].filter(
    (name): name is string => name !== null,
  );
  const fix =
    facts.effectiveUid === 0
      ? `root without ${lacking.join(" and ")} (a container?): start it with --cap-add BPF --cap-add PERFMON, or --privileged`
      : "run profinfer as root (sudo), or give the process CAP_BPF and CAP_PERFMON";
  return { ...base, status: "missing", found, fix, data };
}

function readInteger(host: DoctorHost, path: string): number | null {
  const text = host.readText(path);
  if (text === null) return null;
  const value = Number.parseInt(text.trim(), 10);
  return Number.isNaN(value) ? null : value;
}

export function gatherPermissionFacts(host: DoctorHost): PermissionFacts {
  const status = host.readText("/proc/self/status");
  return {
    effectiveUid: host.effectiveUid(),
    effectiveCapabilities: status === null ? null : parseEffectiveCapabilities(status),
    unprivilegedBpfDisabled: readInteger(host, "/proc/sys/kernel/unprivileged_bpf_disabled"),
    perfEventParanoid: readInteger(host, "/proc/sys/kernel/perf_event_paranoid"),
  };
}

// ---------------------------------------------------------------------------------------------
// Perf events

export const HARDWARE_EVENTS = [
  "cycles",
  "instructions",
  "cache-references",
  "cache-misses",
  "branch-misses",
  "stalled-cycles-backend",
  "stalled-cycles-frontend",
] as const;
export const SOFTWARE_EVENTS = [
  "task-clock",
  "cpu-clock",
  "page-faults",
  "context-switches",
] as const;

export interface PerfEventProbe {
  event: string;
  opened: boolean;
  /** The count perf read, when the event opened. */
  count?: number;
  /** Why it did not open: "not supported", "not counted", or perf's own error. */
  reason?: string;
}

/** perf may decorate a name: "cycles:u" when not privileged, "cpu_core/cycles/" on hybrid CPUs. */
function basePerfEventName(printed: string): string {
  const pmuForm = /^[^/]+\/([^/]+)\/.*$/.exec(printed);
  const name = pmuForm?.[1] ?? printed;
  return name.split(":")[0] ?? name;
}

/** First line of perf's complaint, to say why events did not open when no CSV came back. */
function firstErrorLine(stderr: string): string {
  const line = stderr
    .split("\n")
    .map((text) => text.trim())
    .find((text) => text.length > 0 && !text.startsWith("#"));
  return line ?? "perf printed no result";
}

/**
 * Reads the CSV that `perf stat -x, -e a,b -- true` writes on stderr
 * (count,unit,event,run-time,percent,metric,metric-unit per line) into one result per
 * requested event. An event with no line did not open; perf's error says why.
 */
export function parsePerfStatCsv(stderr: string, requested: readonly string[]): PerfEventProbe[] {
  const seen = new Map<string, PerfEventProbe>();
  for (const line of stderr.split("\n")) {
    const fields = line.split(",");
    const [value, , printedEvent] = fields;
    if (fields.length < 3 || value === undefined || !printedEvent) continue;
    const event = basePerfEventName(printedEvent);
    if (!requested.includes(event)) continue;
    const notOpened = /^<(not supported|not counted)>$/.exec(value.trim());
    const count = Number(value);
    const probe: PerfEventProbe = notOpened
      ? { event, opened: false, reason: notOpened[1] ?? "not counted" }
      : Number.isFinite(count) && value.trim() !== ""
        ? { event, opened: true, count }
        : { event, opened: false, reason: `unreadable count '${value}'` };
    // On hybrid CPUs an event prints once per core type: it opens if any of them counted.
    const previous = seen.get(event);
    if (!previous || (!previous.opened && probe.opened)) seen.set(event, probe);
  }
  const fallbackReason = firstErrorLine(stderr);
  return requested.map(
    (event) => seen.get(event) ?? { event, opened: false, reason: fallbackReason },
  );
}

export interface PerfProbeResult {
  /** Null when perf itself is absent or would not run: the events are then unknown. */
  hardware: PerfEventProbe[] | null;
  software: PerfEventProbe[] | null;
  perfError?: string;
}

/** Opens every event through Debian's `perf` until our own addon can do it: two runs, not eleven. */
export function probePerfEvents(host: DoctorHost): PerfProbeResult {
  const perf = host.findOnPath("perf");
  if (!perf) return { hardware: null, software: null, perfError: "perf is not on PATH" };
  const runGroup = (events: readonly string[]) =>
    host.run(perf, ["stat", "-x,", "-e", events.join(","), "--", "true"]);
  const hardwareRun = runGroup(HARDWARE_EVENTS);
  if (!hardwareRun.started) {
    return { hardware: null, software: null, perfError: hardwareRun.error ?? "perf did not start" };
  }
  const softwareRun = runGroup(SOFTWARE_EVENTS);
  return {
    hardware: parsePerfStatCsv(hardwareRun.stderr, HARDWARE_EVENTS),
    software: softwareRun.started ? parsePerfStatCsv(softwareRun.stderr, SOFTWARE_EVENTS) : null,
  };
}

/** "not supported: cycles, instructions; not counted: ...", one group per reason. */
function describeUnopened(probes: PerfEventProbe[]): string {
  const byReason = new Map<string, string[]>();
  for (const probe of probes) {
    const reason = probe.reason ?? "did not open";
    byReason.set(reason, [...(byReason.get(reason) ?? []), probe.event]);
  }
  return [...byReason].map(([reason, events]) => `${reason}: ${events.join(", ")}`).join("; ");
}

const INSTALL_PERF = "apt-get install linux-perf";

export function checkPerfEvents(result: PerfProbeResult): DoctorCheck[] {
  const unknown = (id: string, name: string): DoctorCheck => ({
    id,
    name,
    status: "unknown",
    found: `cannot test: ${result.perfError ?? "perf did not run"}`,
    fix: INSTALL_PERF,
  });
  const hardwareCheck = result.hardware
    ? checkHardwareEvents(result.hardware)
    : unknown("perf-hardware", "hardware counters");
  const softwareCheck = result.software
    ? checkSoftwareEvents(result.software)
    : unknown("perf-software", "software events");
  return [hardwareCheck, softwareCheck];
}

function checkHardwareEvents(probes: PerfEventProbe[]): DoctorCheck {
  const base = { id: "perf-hardware", name: "hardware counters", data: { events: probes } };
  const opened = probes.filter((probe) => probe.opened);
  const unopened = probes.filter((probe) => !probe.opened);
  if (opened.length === 0) {
    return {
      ...base,
      status: "warn",
      found:
        "not available on this machine (virtualised CPU?) — profinfer will use software events",
      notes: [describeUnopened(unopened)],
      fix: "none needed to profile; for hardware counters use bare metal or a VM with a virtual PMU",
    };
  }
  const core =
    opened.some((p) => p.event === "cycles") && opened.some((p) => p.event === "instructions");
  return {
    ...base,
    status: core ? "ok" : "warn",
    found: `${opened.length} of ${probes.length} open: ${opened.map((p) => p.event).join(", ")}`,
    ...(unopened.length ? { notes: [describeUnopened(unopened)] } : {}),
  };
}

function checkSoftwareEvents(probes: PerfEventProbe[]): DoctorCheck {
  const base = { id: "perf-software", name: "software events", data: { events: probes } };
  const opened = probes.filter((probe) => probe.opened);
  const unopened = probes.filter((probe) => !probe.opened);
  if (unopened.length === 0) {
    return { ...base, status: "ok", found: `all open: ${opened.map((p) => p.event).join(", ")}` };
  }
  // Timing comes from uprobes, so profinfer still works without counters: a warning, not a stop.
  return {
    ...base,
    status: "warn",
    found: opened.length
      ? `${opened.length} of ${probes.length} open: ${opened.map((p) => p.event).join(", ")}`
      : "none open: operators will be timed but carry no counter deltas",
    notes: [describeUnopened(unopened)],
    fix: "run as root or with CAP_PERFMON, or lower /proc/sys/kernel/perf_event_paranoid",
  };
}

// ---------------------------------------------------------------------------------------------
// BPF build tools

/** Tools needed to build bpf/, with the Debian package providing each. */
export const BPF_BUILD_TOOLS = [
  { command: "clang", debianPackage: "clang" },
  { command: "bpftool", debianPackage: "bpftool" },
] as const;

/** Debian keeps bpftool in /usr/sbin, which a non-root PATH often lacks. */
const SBIN_DIRS = ["/usr/sbin", "/sbin"];

export function checkBuildTools(host: DoctorHost): DoctorCheck {
  const found: string[] = [];
  const offPath: string[] = [];
  const absent: (typeof BPF_BUILD_TOOLS)[number][] = [];
  for (const tool of BPF_BUILD_TOOLS) {
    const onPath = host.findOnPath(tool.command);
    if (onPath) {
      found.push(`${tool.command} ${onPath}`);
      continue;
    }
    const elsewhere = SBIN_DIRS.map((dir) => join(dir, tool.command)).find((path) =>
      host.exists(path),
    );
    if (elsewhere) offPath.push(elsewhere);
    else absent.push(tool);
  }
  const base = { id: "bpf-toolchain", name: "BPF build tools" };
  const parts = [
    ...found,
    ...offPath.map((path) => `${basename(path)} at ${path} (not on PATH)`),
    ...absent.map((tool) => `${tool.command} absent`),
  ];
  if (absent.length) {
    return {
      ...base,
      status: "missing",
      found: parts.join(", "),
      fix: `apt-get install ${absent.map((tool) => tool.debianPackage).join(" ")}`,
    };
  }
  if (offPath.length) {
    return {
      ...base,
      status: "warn",
      found: parts.join(", "),
      fix: `add ${[...new Set(offPath.map((path) => path.slice(0, -basename(path).length - 1)))].join(":")} to PATH`,
    };
  }
  return { ...base, status: "ok", found: parts.join(", ") };
}

export interface DebugInfoSummary {
  path: string;
  /** .debug_info: DWARF, needed to resolve the ggml_tensor layout from the library itself. */
  hasDebugInfo: boolean;
  /** .symtab: local symbols beyond the exported ones (static per-op functions ...). */
  hasSymbolTable: boolean;
  error?: string;
}

export function summarizeDebugInfo(host: DoctorHost, path: string): DebugInfoSummary {
  try {
    const names = new Set(host.readElfSections(path).map((section) => section.name));
    return { path, hasDebugInfo: names.has(".debug_info"), hasSymbolTable: names.has(".symtab") };
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    return { path, hasDebugInfo: false, hasSymbolTable: false, error: message };
  }
}

function describeDebugInfo(summary: DebugInfoSummary): string {
  const file = basename(summary.path);
  if (summary.error) return `${file}: unreadable (${summary.error})`;
  const debug = summary.hasDebugInfo ? "debug info" : "no debug info";
  const symtab = summary.hasSymbolTable ? ".symtab" : "no .symtab";
  return `${file}: ${debug}, ${symtab}`;
}

// ---------------------------------------------------------------------------------------------
// llama.cpp targets from the set-up manifest

export const BUILD_LIBRARIES = ["libllama.so", "libggml-base.so", "libggml-cpu.so"] as const;
const PREBUILT_MAIN_LIBRARY = /^(libllama.*|libggml-base)\.so$/;
const PREBUILT_CPU_VARIANT = /^libggml-cpu-(.+)\.so$/;

export function checkLlamaTargets(host: DoctorHost): DoctorCheck[] {
  let manifest: CacheManifest | null;
  try {
    manifest = host.readManifest();
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    return [
      {
        id: "llama-targets",
        name: "llama.cpp targets",
        status: "missing",
        found: `set-up manifest unreadable: ${message}`,
        fix: "npm run setup",
      },
    ];
  }
  if (!manifest) {
    return [
      {
        id: "llama-targets",
        name: "llama.cpp targets",
        status: "missing",
        found: `no set-up manifest at ${host.manifestPath()}`,
        fix: "npm run setup",
      },
    ];
  }
  return [checkLlamaBuild(host, manifest), checkNodeLlamaCppPrebuilt(host, manifest)];
}

export function checkLlamaBuild(host: DoctorHost, manifest: CacheManifest): DoctorCheck {
  const build = manifest.llamaCpp;
  const base = { id: "llama-build", name: "llama.cpp build" };
  const found = `${build.llamaCppRelease} (commit ${build.commit.slice(0, 12)}) in ${build.binDir}`;
  if (!host.exists(build.binDir)) {
    return { ...base, status: "missing", found: `${found}: folder absent`, fix: "npm run setup" };
  }
  const presentTargets = build.targets.filter((target) => host.exists(join(build.binDir, target)));
  const absentTargets = build.targets.filter((target) => !presentTargets.includes(target));
  const absentLibraries = BUILD_LIBRARIES.filter((name) => !host.exists(join(build.binDir, name)));
  const libraries = BUILD_LIBRARIES.filter((name) => !absentLibraries.includes(name)).map((name) =>
    summarizeDebugInfo(host, join(build.binDir, name)),
  );
  const notes = [
    `targets: ${presentTargets.join(" ") || "none"}${absentTargets.length ? `; absent: ${absentTargets.join(" ")}` : ""}`,
    ...libraries.map(describeDebugInfo),
    ...absentLibraries.map((name) => `${name}: absent`),
    ...describeProbeSites(join(build.binDir, "libggml-cpu.so")),
  ];
  const data = {
    release: build.llamaCppRelease,
    commit: build.commit,
    binDir: build.binDir,
    targets: presentTargets,
    absentTargets,
    libraries,
    absentLibraries,
  };
  if (absentTargets.length || absentLibraries.length) {
    return { ...base, status: "missing", found, notes, fix: "npm run setup", data };
  }
  // The build is RelWithDebInfo on purpose: without DWARF the tensor layout cannot be checked.
  const stripped = libraries.filter((library) => !library.hasDebugInfo || !library.hasSymbolTable);
  if (stripped.length) {
    return {
      ...base,
      status: "warn",
      found,
      notes,
      fix: `rebuild with debug info: delete ${build.buildDir} and run npm run setup`,
      data,
    };
  }
  return { ...base, status: "ok", found, notes, data };
}

/** How cheaply the operator functions of a CPU backend can be probed (see record's docs). */
function describeProbeSites(library: string): string[] {
  const roles = classifyLibrary(library);
  if (!roles || roles.opFunctions.length === 0) return [];
  const sites = roles.opFunctions
    .map((f) => roles.probeSites.get(f))
    .filter((s) => s !== undefined);
  const cheap = sites.filter((s) => s.emulated).length;
  return [
    `operator functions: ${roles.opFunctions.length}, ${cheap} with an emulated probe site, ` +
      `${sites.length - cheap} single-stepped (timed from the barriers unless --probe-all-ops)`,
  ];
}

export function checkNodeLlamaCppPrebuilt(host: DoctorHost, manifest: CacheManifest): DoctorCheck {
  const nodeLlamaCpp = manifest.nodeLlamaCpp;
  const base = { id: "node-llama-cpp", name: "node-llama-cpp" };
  const found = `${nodeLlamaCpp.version}, prebuilt libraries in ${nodeLlamaCpp.prebuiltDir}`;
  const entries = host.listDir(nodeLlamaCpp.prebuiltDir);
  if (entries === null) {
    return { ...base, status: "missing", found: `${found}: folder absent`, fix: "npm run setup" };
  }
  const cpuVariants = entries
    .map((name) => PREBUILT_CPU_VARIANT.exec(name)?.[1])
    .filter((variant): variant is string => variant !== undefined)
    .sort();
  const mainLibraries = entries.filter((name) => PREBUILT_MAIN_LIBRARY.test(name)).sort();
  const libraries = mainLibraries.map((name) =>
    summarizeDebugInfo(host, join(nodeLlamaCpp.prebuiltDir, name)),
  );
  const notes = [
    `libggml-cpu variants: ${cpuVariants.join(" ") || "none"}`,
    ...libraries.map(describeDebugInfo),
  ];
  const data = {
    version: nodeLlamaCpp.version,
    prebuiltDir: nodeLlamaCpp.prebuiltDir,
    cpuVariants,
    libraries,
  };
  if (!mainLibraries.some((name) => name.startsWith("libllama")) || cpuVariants.length === 0) {
    return {
      ...base,
      status: "missing",
      found: `${found}: libllama or libggml-cpu-* absent`,
      notes,
      fix: "npm run setup",
      data,
    };
  }
  // Prebuilt libraries ship without DWARF; their exported symbols are enough to attach.
  return { ...base, status: "ok", found, notes, data };
}

// ---------------------------------------------------------------------------------------------
// All together

export function runDoctor(host: DoctorHost = systemHost()): DoctorReport {
  const checks = [
    checkKernel(host.kernelRelease()),
    checkBtf(host),
    checkUprobes(host),
    checkTracefs(host),
    checkPermissions(gatherPermissionFacts(host)),
    ...checkPerfEvents(probePerfEvents(host)),
    checkBuildTools(host),
    ...checkLlamaTargets(host),
  ];
  return {
    checks: checks.map(inReadingOrder),
    ready: checks.every((check) => check.status !== "missing"),
  };
}

/** The same key order in every check, so `--json` reads the way the table does. */
function inReadingOrder({ id, name, status, found, notes, fix, data }: DoctorCheck): DoctorCheck {
  return {
    id,
    name,
    status,
    found,
    ...(notes ? { notes } : {}),
    ...(fix ? { fix } : {}),
    ...(data ? { data } : {}),
  };
}

function isExecutableFile(path: string): boolean {
  try {
    accessSync(path, fsConstants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

const COMMAND_TIMEOUT_MS = 15_000;

/** The real machine. */
export function systemHost(env: NodeJS.ProcessEnv = process.env): DoctorHost {
  return {
    kernelRelease: () => release(),
    effectiveUid: () => (typeof process.geteuid === "function" ? process.geteuid() : null),
    exists: (path) => existsSync(path),
    readText: (path) => {
      try {
        return readFileSync(path, "utf8");
      } catch {
        return null;
      }
    },
    listDir: (path) => {
      try {
        return readdirSync(path);
      } catch {
        return null;
      }
    },
    findOnPath: (name) => {
      for (const dir of (env.PATH ?? "").split(delimiter)) {
        if (dir && isExecutableFile(join(dir, name))) return join(dir, name);
      }
      return null;
    },
    run: (command, args) => {
      // LC_ALL=C: a decimal comma would break perf's comma-separated output.
      const result = spawnSync(command, args, {
        encoding: "utf8",
        timeout: COMMAND_TIMEOUT_MS,
        env: { ...env, LC_ALL: "C" },
      });
      const started = !(result.error && (result.error as NodeJS.ErrnoException).code === "ENOENT");
      return {
        started,
        exitCode: result.status,
        stdout: result.stdout ?? "",
        stderr: result.stderr ?? "",
        ...(result.error ? { error: result.error.message } : {}),
      };
    },
    readManifest: () => readManifest(env),
    manifestPath: () => manifestPath(env),
    readElfSections,
  };
}
