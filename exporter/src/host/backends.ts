// SPDX-License-Identifier: Apache-2.0
// doctor's backends row: the backends each set-up build has, as its own registry lists them, and
// what profinfer measures of each (discovery/backends.ts).
import { join } from "node:path";
import { backendMeasures, type ProbedBackends } from "../discovery/backends.js";
import { backendsProbePath } from "../record/nativeTracer.js";
import type { CacheManifest } from "../setup/cache.js";
import type { DoctorCheck, DoctorHost } from "./checks.js";

/** The devices the registry library of `binDir` lists, or why there are none. */
function listBackends(host: DoctorHost, binDir: string): ProbedBackends | { error: string } {
  const library = join(binDir, "libggml.so");
  if (!host.exists(library)) return { error: `${library} is absent` };
  const ran = host.run(backendsProbePath, [library]);
  try {
    const parsed = JSON.parse(ran.stdout) as ProbedBackends | { error: string };
    return parsed;
  } catch {
    return {
      error: ran.error ?? `the backends probe gave no answer (${ran.stderr.trim().slice(-200)})`,
    };
  }
}

/** One line per device: its name, implementation, description and what profinfer measures of it. */
function describeDevices(probed: ProbedBackends): string[] {
  return probed.devices.map((d) => {
    const measures = backendMeasures(d.registry) ?? "graph level only (splits, copies, waits)";
    return `${d.name} (${d.registry}: ${d.description}): ${measures}`;
  });
}

export function checkBackends(host: DoctorHost, manifest: CacheManifest): DoctorCheck {
  const base = { id: "backends", name: "llama.cpp backends" };
  const builds: [string, string][] = [["pinned build", manifest.llamaCpp.binDir]];
  if (manifest.backends) builds.push(["backends build", manifest.backends.binDir]);
  const notes: string[] = [];
  const data: Record<string, unknown> = {};
  let missing = false;
  for (const [label, binDir] of builds) {
    const probed = listBackends(host, binDir);
    if ("error" in probed) {
      missing = true;
      notes.push(`${label}: ${probed.error}`);
      continue;
    }
    data[label] = probed.devices.map((d) => ({ name: d.name, registry: d.registry }));
    notes.push(`${label} (${binDir}):`, ...describeDevices(probed).map((l) => `  ${l}`));
  }
  const names = Object.values(data).flatMap((list) =>
    (list as { name: string }[]).map((d) => d.name),
  );
  const found = `${[...new Set(names)].join(", ") || "none listed"}`;
  if (missing) return { ...base, status: "warn", found, notes, fix: "npm run setup", data };
  if (!manifest.backends) {
    return {
      ...base,
      status: "warn",
      found,
      notes: [...notes, "the BLAS and Vulkan build is not in the set-up manifest"],
      fix: "npm run setup",
      data,
    };
  }
  return { ...base, status: "ok", found, notes, data };
}
