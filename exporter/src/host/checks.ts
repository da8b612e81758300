// SPDX-License-Identifier: Apache-2.0
// What every check of `profinfer doctor` returns, and the machine it reads through: parsing is
// split from I/O so that tests can feed captured text to a fake DoctorHost.
import type { MachineProfile } from "@profinfer/contract";
import type { ElfSection } from "../discovery/elf.js";
import type { CacheManifest } from "../setup/cache.js";

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
  /** this host's machine profile: the cached one, else measured now; or why there is none */
  machineProfile(): MachineProfile | { error: string };
}
