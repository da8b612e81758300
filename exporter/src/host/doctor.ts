// SPDX-License-Identifier: Apache-2.0
// `profinfer doctor`: can this machine load our BPF programs, attach uprobes, open perf
// counters, and are the llama.cpp targets of `npm run setup` there? The checks run in the order
// of the table, each through the injectable DoctorHost (systemHost is the real machine).
import { spawnSync } from "node:child_process";
import { accessSync, constants as fsConstants, existsSync, statSync } from "node:fs";
import { release } from "node:os";
import { delimiter, join } from "node:path";
import { readElfSections } from "../discovery/elf.js";
import { manifestPath, readManifest } from "../setup/cache.js";
import { checkBuildTools } from "./buildTools.js";
import type { DoctorCheck, DoctorHost, DoctorReport } from "./checks.js";
import { checkBtf, checkKernel, checkTracefs, checkUprobes } from "./kernel.js";
import { checkPerfEvents, probePerfEvents } from "./perfEvents.js";
import { checkPermissions, gatherPermissionFacts } from "./permissions.js";
import { checkLlamaTargets } from "./targets.js";
import { listDirOrNull, readTextOrNull } from "./files.js";
import { checkMachineProfile, machineProfile } from "./machineProfile.js";

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
    checkMachineProfile(host),
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
    readText: readTextOrNull,
    listDir: listDirOrNull,
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
    machineProfile: () => {
      try {
        return machineProfile({ env });
      } catch (error) {
        return { error: (error as Error).message };
      }
    },
  };
}
