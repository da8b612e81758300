// SPDX-License-Identifier: Apache-2.0
// Which perf events open on this machine, hardware and software, asked of `perf stat`.
import type { DoctorCheck, DoctorHost } from "./checks.js";

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
