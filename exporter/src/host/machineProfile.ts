// SPDX-License-Identifier: Apache-2.0
// The machine profile (contract MachineProfile): bandwidth and arithmetic peaks measured by
// native/machine-probe, caches and cores read from sysfs, cached per host in the profinfer cache so
// that it is measured once, while the host is quiet, and embedded in every run after.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { arch, cpus, hostname, totalmem } from "node:os";
import { join } from "node:path";
import type { MachineProfile } from "@profinfer/contract";
import { machineProbePath } from "../record/nativeTracer.js";
import { cacheRoot } from "../setup/cache.js";
import { listDirOrNull, readTextOrNull } from "./files.js";
import type { DoctorCheck, DoctorHost } from "./checks.js";

export class MachineProfileError extends Error {
  override name = "MachineProfileError";
}

/** What the probe prints (native/machine-probe/machine_probe.c). */
interface ProbeOutput {
  abi: number;
  error?: string;
  bandwidth: {
    bufferBytes: number;
    repeats: number;
    points: MachineProfile["bandwidth"]["points"];
  };
  f32Fma: { isa: string; lanes: number; perThread: number };
  int8Dot: { isa: string; perThread: number };
  seconds: number;
}

const PROBE_ABI = 1;
const MIB = 1024 * 1024;
/** The bandwidth buffer: this many times the last-level cache, so that reads come from memory. */
const BUFFER_CACHE_MULTIPLE = 8;
const BUFFER_MIN_BYTES = 256 * MIB;

export const BANDWIDTH_METHOD =
  "STREAM-style read: each thread sums its slice of one buffer (8 times the last-level cache, at least 256 MiB) with vector loads, threads released together by a barrier, timed from the first reader's start to the last one's end; the best of 10 passes after a warm-up pass";

/** sysfs as the profile reads it; a folder other than /sys in tests. */
export interface SysfsReader {
  readText(path: string): string | null;
  listDir(path: string): string[] | null;
}

const realSysfs: SysfsReader = { readText: readTextOrNull, listDir: listDirOrNull };

/** "32K", "1024K", "32M" as sysfs writes cache sizes. */
function parseSize(text: string): number {
  const m = /^(\d+)\s*([KMG]?)/.exec(text.trim());
  if (!m) return 0;
  const unit = { "": 1, K: 1024, M: MIB, G: 1024 * MIB }[m[2] as "" | "K" | "M" | "G"];
  return Number(m[1]) * unit;
}

/** Count of CPUs in a sysfs list such as "0-3,8,10-11". */
export function cpuListCount(list: string): number {
  let n = 0;
  for (const part of list.trim().split(",")) {
    if (!part) continue;
    const [a, b] = part.split("-").map(Number);
    n += b === undefined ? 1 : b - a! + 1;
  }
  return n;
}

/** Caches as cpu0 sees them, and the cores of the online CPUs. */
export function readTopology(sys: SysfsReader = realSysfs): {
  caches: MachineProfile["caches"];
  cores: MachineProfile["cores"];
} {
  const base = "/sys/devices/system/cpu";
  const caches: MachineProfile["caches"] = [];
  for (const entry of (sys.listDir(`${base}/cpu0/cache`) ?? []).sort()) {
    if (!/^index\d+$/.test(entry)) continue;
    const read = (f: string) => sys.readText(`${base}/cpu0/cache/${entry}/${f}`)?.trim() ?? "";
    const level = Number(read("level"));
    if (!level) continue;
    caches.push({
      level,
      type: read("type").toLowerCase() || "unknown",
      sizeBytes: parseSize(read("size")),
      sharedByCpus: cpuListCount(read("shared_cpu_list") || "0"),
    });
  }
  const online = sys.readText(`${base}/online`);
  const onlineCount = online ? cpuListCount(online) : cpus().length;
  const coreIds = new Set<string>();
  for (const entry of sys.listDir(base) ?? []) {
    if (!/^cpu\d+$/.test(entry)) continue;
    const core = sys.readText(`${base}/${entry}/topology/core_id`)?.trim();
    const pkg = sys.readText(`${base}/${entry}/topology/physical_package_id`)?.trim();
    if (core !== undefined) coreIds.add(`${pkg ?? 0}:${core}`);
  }
  const physical = coreIds.size || onlineCount;
  return {
    caches,
    cores: {
      online: onlineCount,
      physical,
      threadsPerCore: Math.max(1, Math.round(onlineCount / physical)),
    },
  };
}

/** The bandwidth buffer for these caches and this much available memory. */
export function bandwidthBufferBytes(
  caches: MachineProfile["caches"],
  availableBytes: number,
): number {
  const llc = caches
    .filter((c) => c.type !== "instruction")
    .reduce(
      (a, c) => (c.level > (a?.level ?? 0) ? c : a),
      undefined as (typeof caches)[number] | undefined,
    );
  const wanted = Math.max(BUFFER_MIN_BYTES, BUFFER_CACHE_MULTIPLE * (llc?.sizeBytes ?? 0));
  const bound = Math.max(64 * MIB, Math.floor(availableBytes / 4));
  return Math.floor(Math.min(wanted, bound) / (2 * MIB)) * 2 * MIB;
}

function availableMemory(sys: SysfsReader): number {
  const info = sys.readText("/proc/meminfo") ?? "";
  const m = /^MemAvailable:\s+(\d+) kB/m.exec(info);
  return m ? Number(m[1]) * 1024 : totalmem() / 2;
}

function hostIdentity(): MachineProfile["host"] {
  return {
    hostname: hostname(),
    cpuModel: cpus()[0]?.model ?? "unknown",
    cpus: cpus().length,
    memoryBytes: totalmem(),
    arch: arch(),
  };
}

/** The same machine: a profile measured on another host, CPU or memory size is not reused. */
function sameHost(a: MachineProfile["host"], b: MachineProfile["host"]): boolean {
  return (
    a.hostname === b.hostname &&
    a.cpuModel === b.cpuModel &&
    a.cpus === b.cpus &&
    a.arch === b.arch &&
    // memory as the kernel reports it moves by a few MB between boots
    Math.abs(a.memoryBytes - b.memoryBytes) < 0.02 * b.memoryBytes
  );
}

/** Measures this machine now (a few seconds; the host should be quiet). */
export function measureMachine(
  options: { probePath?: string; sysfs?: SysfsReader } = {},
): MachineProfile {
  const sys = options.sysfs ?? realSysfs;
  const probe = options.probePath ?? machineProbePath;
  if (!existsSync(probe)) {
    throw new MachineProfileError(
      `the machine probe is not built (${probe} is missing): run 'npm run build'`,
    );
  }
  const { caches, cores } = readTopology(sys);
  const buffer = bandwidthBufferBytes(caches, availableMemory(sys));
  const run = spawnSync(probe, ["--buffer-bytes", String(buffer)], {
    encoding: "utf8",
    timeout: 300_000,
  });
  let out: ProbeOutput;
  try {
    out = JSON.parse(run.stdout) as ProbeOutput;
  } catch {
    throw new MachineProfileError(
      `the machine probe gave no answer (exit ${run.status ?? run.signal}): ${run.error?.message ?? run.stderr.trim()}`,
    );
  }
  if (out.error !== undefined)
    throw new MachineProfileError(`the machine probe failed: ${out.error}`);
  if (out.abi !== PROBE_ABI) {
    throw new MachineProfileError(
      `the machine probe speaks ABI ${out.abi}, this profinfer reads ${PROBE_ABI}: run 'npm run build'`,
    );
  }
  return {
    format: "profinfer-machine",
    version: 1,
    measuredAt: new Date().toISOString(),
    host: hostIdentity(),
    cores,
    caches,
    bandwidth: {
      method: BANDWIDTH_METHOD,
      bufferBytes: out.bandwidth.bufferBytes,
      points: out.bandwidth.points,
    },
    compute: {
      f32: { isa: out.f32Fma.isa, perThread: out.f32Fma.perThread },
      int8: { isa: out.int8Dot.isa, perThread: out.int8Dot.perThread },
    },
    seconds: out.seconds,
  };
}

function profilePath(env: NodeJS.ProcessEnv): string {
  return join(cacheRoot(env), "machine", "profile.json");
}

/** This host's cached profile; null when none was measured here (or it was another machine's). */
export function cachedMachineProfile(env: NodeJS.ProcessEnv = process.env): MachineProfile | null {
  const path = profilePath(env);
  try {
    const profile = JSON.parse(readFileSync(path, "utf8")) as MachineProfile;
    if (profile.format !== "profinfer-machine" || profile.version !== 1) return null;
    return sameHost(profile.host, hostIdentity()) ? profile : null;
  } catch {
    return null;
  }
}

/** This host's profile: the cached one, else measured now and cached (`refresh`: measured now). */
export function machineProfile(
  options: { refresh?: boolean; env?: NodeJS.ProcessEnv; log?: (line: string) => void } = {},
): MachineProfile {
  const env = options.env ?? process.env;
  if (!options.refresh) {
    const cached = cachedMachineProfile(env);
    if (cached) return cached;
  }
  options.log?.(
    "measuring this machine's memory bandwidth and arithmetic peaks (once per host, a few seconds)",
  );
  const profile = measureMachine();
  const path = profilePath(env);
  mkdirSync(join(path, ".."), { recursive: true });
  writeFileSync(`${path}.tmp`, `${JSON.stringify(profile, null, 2)}\n`);
  renameSync(`${path}.tmp`, path);
  return profile;
}

const gbps = (b: number) => `${(b / 1e9).toFixed(1)} GB/s`;
const size = (b: number) => (b >= MIB ? `${b / MIB} MiB` : `${b / 1024} KiB`);

/** The profile as lines for the terminal (profinfer machine, doctor). */
export function formatMachineProfile(p: MachineProfile): string[] {
  return [
    `machine profile of ${p.host.hostname} (${p.host.cpuModel}, ${p.cores.online} CPUs, ${p.cores.physical} cores), measured ${p.measuredAt} in ${p.seconds.toFixed(1)} s`,
    `  read bandwidth: ${p.bandwidth.points.map((pt) => `${pt.threads} thread${pt.threads > 1 ? "s" : ""} ${gbps(pt.bytesPerSecond)}`).join(", ")}`,
    `  f32 fused multiply-add: ${(p.compute.f32.perThread / 1e9).toFixed(1)} GFLOP/s per thread (${p.compute.f32.isa})`,
    `  int8 dot products: ${(p.compute.int8.perThread / 1e9).toFixed(1)} GOP/s per thread (${p.compute.int8.isa})`,
    `  caches: ${p.caches.map((c) => `L${c.level} ${c.type} ${size(c.sizeBytes)}${c.sharedByCpus > 1 ? ` (shared by ${c.sharedByCpus} CPUs)` : ""}`).join(", ")}`,
  ];
}

/** doctor's row: the profile the roofline measures operators against. */
export function checkMachineProfile(host: DoctorHost): DoctorCheck {
  const profile = host.machineProfile();
  if ("error" in profile) {
    return {
      id: "machine-profile",
      name: "machine profile",
      status: "warn",
      found: profile.error,
      fix: "npm run build, then profinfer machine",
    };
  }
  const [, ...notes] = formatMachineProfile(profile);
  const most = Math.max(...profile.bandwidth.points.map((p) => p.bytesPerSecond));
  return {
    id: "machine-profile",
    name: "machine profile",
    status: "ok",
    found: `${gbps(most)} read bandwidth at most, measured ${profile.measuredAt} (profinfer machine --refresh measures again)`,
    notes: notes.map((n) => n.trim()),
    data: { profile },
  };
}
