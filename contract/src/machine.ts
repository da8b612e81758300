// SPDX-License-Identifier: Apache-2.0
// The machine profile: what this host's memory and cores can do, measured once per host
// (`profinfer machine`, cached), embedded in every run it records and in stats.json, and the
// ceilings the roofline of docs/findings.md measures operators against.

export interface MachineProfile {
  format: "profinfer-machine";
  version: 1;
  /** when it was measured, ISO 8601 */
  measuredAt: string;
  /** the host it was measured on: a profile is reused only on the same one */
  host: { hostname: string; cpuModel: string; cpus: number; memoryBytes: number; arch: string };
  /** from sysfs: CPUs online, physical cores (distinct core ids per package), SMT width */
  cores: { online: number; physical: number; threadsPerCore: number };
  /** from sysfs (cpu0's view): one per level and type, with how many CPUs share each instance */
  caches: { level: number; type: string; sizeBytes: number; sharedByCpus: number }[];
  /** read bandwidth 1..N threads reach (docs/findings.md "Machine profile": the method) */
  bandwidth: {
    method: string;
    bufferBytes: number;
    points: { threads: number; bytesPerSecond: number }[];
  };
  /** peak arithmetic per thread: f32 fused multiply-adds (flops/s), int8 dot products (ops/s) */
  compute: {
    f32: { isa: string; perThread: number };
    int8: { isa: string; perThread: number };
  };
  /** how long the measurement took, seconds */
  seconds: number;
}

/**
 * The read bandwidth `threads` threads can reach: the most any measured count up to `threads`
 * reached (fewer threads, each doing more, are still within reach of that many).
 */
export function bandwidthAt(profile: MachineProfile, threads: number): number {
  const points = profile.bandwidth.points;
  let best = points[0]?.bytesPerSecond ?? 0;
  for (const p of points) if (p.threads <= threads) best = Math.max(best, p.bytesPerSecond);
  return best;
}
