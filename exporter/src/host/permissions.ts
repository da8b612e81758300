// SPDX-License-Identifier: Apache-2.0
// Whether this process may load BPF programs and open perf events: root, or the capabilities
// CAP_BPF and CAP_PERFMON (CAP_SYS_ADMIN on kernels before 5.8), and perf_event_paranoid.
import type { DoctorCheck, DoctorHost } from "./checks.js";

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
