// SPDX-License-Identifier: Apache-2.0
// profinfer report RUN_DIR: report.html of a run folder, offline.
import type { Command } from "commander";
import { join, resolve } from "node:path";
import { writeRunReport } from "../sinks/runOutputs.js";
import { log, requireRunDir } from "./options.js";

export function registerReportCommand(program: Command): void {
  program
    .command("report")
    .description(
      "write report.html of a run folder: ProfDAG, expert heatmap, timeline and ProfStat in one offline file",
    )
    .argument("<run-dir>", "a folder written by record or attach")
    .option("--out <file>", "where to write it (default: RUN_DIR/report.html)")
    .action((runDir: string, opts: { out?: string }) => {
      const dir = requireRunDir(runDir);
      const out = resolve(opts.out ?? join(dir, "report.html"));
      writeRunReport(dir, out);
      log(`report ${out}`);
    });
}
