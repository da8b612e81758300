// SPDX-License-Identifier: Apache-2.0
// profinfer profile RUN_DIR: the run's pprof profiles (profile.pb.gz and one per phase), offline.
import type { Command } from "commander";
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { UserError } from "../errors.js";
import { writeRunProfileFiles } from "../sinks/runOutputs.js";
import { log, readRunHeader, requireRunDir } from "./options.js";

export function registerProfileCommand(program: Command): void {
  program
    .command("profile")
    .description(
      "write the run's pprof profiles (profile.pb.gz, profile-<phase>.pb.gz): operator time as flame graphs for go tool pprof, Pyroscope, Grafana and speedscope",
    )
    .argument("<run-dir>", "a folder written by record or attach")
    .option("--out <dir>", "where to write them (default: RUN_DIR)")
    .action((runDir: string, opts: { out?: string }) => {
      const dir = requireRunDir(runDir);
      if (readRunHeader(dir).level === "metrics") {
        throw new UserError(
          "level metrics records no event per call, so there is no operator run to profile; record at --level op (the default)",
        );
      }
      const out = resolve(opts.out ?? dir);
      mkdirSync(out, { recursive: true });
      for (const path of writeRunProfileFiles(dir, out)) log(`profile ${path}`);
      log(`open one with: go tool pprof -http=localhost:8080 ${join(out, "profile.pb.gz")}`);
    });
}
