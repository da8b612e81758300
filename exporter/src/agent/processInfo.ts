// SPDX-License-Identifier: Apache-2.0
// What the host agent knows of a process, from /proc alone: its program, command line, start
// time (a reused pid is another process), cgroup, and the container and Kubernetes pod that the
// cgroup path and the process's own environment and files name. The parsing of each is a pure
// function, so that the container runtimes' path shapes are tested without them.
import { readFileSync, readlinkSync } from "node:fs";

export interface ContainerInfo {
  /** the runtime's container id (64 hex digits for docker, containerd and CRI-O) */
  id: string;
}

export interface PodInfo {
  /** the pod's uid, from the kubepods cgroup path */
  uid: string;
  /** the pod's name: the container's hostname, which Kubernetes sets to it */
  name: string | null;
  /** from the service account the pod mounts, or $POD_NAMESPACE */
  namespace: string | null;
}

export interface ProcessInfo {
  pid: number;
  /** the program file, as the process's own mount namespace names it; "" when unreadable */
  executable: string;
  command: string[];
  /** clock ticks since boot at the process's start (/proc/PID/stat field 22) */
  startTime: number;
  /** the cgroup v2 path ("/system.slice/llama.service"); "" when none */
  cgroup: string;
  container: ContainerInfo | null;
  pod: PodInfo | null;
  /** the variables of its environment the agent reads (OTEL_SERVICE_NAME, HOSTNAME ...) */
  environment: ReadonlyMap<string, string>;
}

/** The environment variables the agent reads of a process (the rest is never kept). */
const ENVIRONMENT_KEYS = new Set([
  "OTEL_SERVICE_NAME",
  "OTEL_RESOURCE_ATTRIBUTES",
  "HOSTNAME",
  "POD_NAME",
  "POD_NAMESPACE",
  "KUBERNETES_SERVICE_HOST",
]);

/** The start time of process `pid` (field 22 of /proc/PID/stat); null when it is gone. */
export function processStartTime(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // pid (comm) state ...: comm may hold spaces and parentheses, so count after the last ")"
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(fields[19]);
  } catch {
    return null;
  }
}

/** The cgroup v2 path of a /proc/PID/cgroup text ("0::/path"), else the first hierarchy's. */
export function cgroupPath(text: string): string {
  const lines = text.split("\n").filter(Boolean);
  const unified = lines.find((l) => l.startsWith("0::"));
  const line = unified ?? lines[0] ?? "";
  return line.slice(line.indexOf(":", line.indexOf(":") + 1) + 1);
}

const CONTAINER_ID =
  /(?:^|[/-])(?:docker-|cri-containerd-|crio-|libpod-)?([0-9a-f]{64})(?:\.scope)?$/;

/** The container a cgroup path names (docker, containerd, CRI-O, podman; systemd or cgroupfs). */
export function containerOfCgroup(path: string): ContainerInfo | null {
  for (const part of path.split("/").reverse()) {
    const m = CONTAINER_ID.exec(part);
    if (m) return { id: m[1]! };
  }
  return null;
}

/**
 * The pod uid of a kubepods cgroup path: `kubepods-burstable-pod<uid>.slice` (systemd driver,
 * with '_' for '-') or `pod<uid>` (cgroupfs driver).
 */
export function podUidOfCgroup(path: string): string | null {
  if (!path.includes("kubepods")) return null;
  for (const part of path.split("/")) {
    const m =
      /pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})(?:\.slice)?$/.exec(
        part,
      );
    if (m) return m[1]!.replaceAll("_", "-");
  }
  return null;
}

function readText(path: string): string | null {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return null;
  }
}

function readEnvironment(pid: number): Map<string, string> {
  const out = new Map<string, string>();
  for (const entry of (readText(`/proc/${pid}/environ`) ?? "").split("\0")) {
    const at = entry.indexOf("=");
    if (at > 0 && ENVIRONMENT_KEYS.has(entry.slice(0, at)))
      out.set(entry.slice(0, at), entry.slice(at + 1));
  }
  return out;
}

/** A pod's name and namespace, from what the process sees of itself. */
function podOf(pid: number, uid: string, environment: ReadonlyMap<string, string>): PodInfo {
  const root = `/proc/${pid}/root`;
  const hostname = readText(`${root}/etc/hostname`)?.trim() || null;
  const namespace =
    environment.get("POD_NAMESPACE") ??
    (readText(`${root}/var/run/secrets/kubernetes.io/serviceaccount/namespace`)?.trim() || null);
  return {
    uid,
    name: environment.get("POD_NAME") ?? environment.get("HOSTNAME") ?? hostname,
    namespace,
  };
}

/** What /proc says of process `pid`; null when it is gone (or exited while being read). */
export function readProcessInfo(pid: number): ProcessInfo | null {
  const startTime = processStartTime(pid);
  const cmdline = readText(`/proc/${pid}/cmdline`);
  if (startTime === null || cmdline === null) return null;
  let executable = "";
  try {
    executable = readlinkSync(`/proc/${pid}/exe`).replace(/ \(deleted\)$/, "");
  } catch {
    // a kernel thread, or gone
  }
  const cgroup = cgroupPath(readText(`/proc/${pid}/cgroup`) ?? "");
  const environment = readEnvironment(pid);
  const uid = podUidOfCgroup(cgroup);
  return {
    pid,
    executable,
    command: cmdline.split("\0").filter(Boolean),
    startTime,
    cgroup,
    container: containerOfCgroup(cgroup),
    pod: uid ? podOf(pid, uid, environment) : null,
    environment,
  };
}
