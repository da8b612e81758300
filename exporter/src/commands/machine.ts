// SPDX-License-Identifier: Apache-2.0
// profinfer machine: this host's machine profile (memory bandwidth 1..N threads, arithmetic peaks,
// caches, cores), measured once and cached; record embeds it in every run. No root needed.
import type { Command } from "commander";
import { formatMachineProfile, machineProfile } from "../host/machineProfile.js";
import { log } from "./options.js";

export function registerMachineCommand(program: Command): void {
  program
    .command("machine")
    .description(
      "show this host's machine profile (memory bandwidth, arithmetic peaks, caches), measuring it once when none is cached",
    )
    .option("--refresh", "measure again (keep the host quiet for a few seconds)")
    .option("--json", "print the profile as JSON")
    .action((opts: { refresh?: boolean; json?: boolean }) => {
      const profile = machineProfile({ refresh: opts.refresh ?? false, log });
      const text = opts.json
        ? JSON.stringify(profile, null, 2)
        : formatMachineProfile(profile).join("\n");
      process.stdout.write(`${text}\n`);
    });
}
