// SPDX-License-Identifier: Apache-2.0
// The kernel features profinfer needs: its version (BPF ring buffer, CAP_BPF; uprobe_multi
// links), BTF for CO-RE, the uprobe PMU, and tracefs for the scheduler tracepoints.
import { join } from "node:path";
import type { DoctorCheck, DoctorHost } from "./checks.js";

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

/** uprobe_multi links exist from Linux 6.6. */
export function kernelHasUprobeMulti(kernelRelease: string): boolean {
  const v = parseKernelVersion(kernelRelease);
  return v !== null && (v.major > 6 || (v.major === 6 && v.minor >= 6));
}
