// SPDX-License-Identifier: Apache-2.0
// profinfer profile RUN_DIR: the run's pprof profiles (profile.pb.gz and one per phase), offline.
import type { Command } from "commander";
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { UserError } from "../errors.js";
import { writeRunProfiles } from "../sinks/pprof.js";
import { log, readRunDir } from "./options.js";

export function registerProfileCommand(program: Command): void {
  program
    .command("profile")
    .description(
      "write the run's pprof profiles (profile.pb.gz, profile-<phase>.pb.gz): operator time as flame graphs for go tool pprof, Pyroscope, Grafana and speedscope",
    )
    .argument("<run-dir>", "a folder written by record or attach")
    .option("--out <dir>", "where to write them (default: RUN_DIR)")
    .action((runDir: string, opts: { out?: string }) => {
      const { dir, run } = readRunDir(runDir);
      if (run.header.level === "metrics") {
        throw new UserError(
          "level metrics records no event per call, so there is no operator run to profile; record at --level op (the default)",
        );
      }
      const out = resolve(opts.out ?? dir);
      mkdirSync(out, { recursive: true });
      for (const path of writeRunProfiles(run, out)) log(`profile ${path}`);
      log(`open one with: go tool pprof -http=localhost:8080 ${join(out, "profile.pb.gz")}`);
    });
}
