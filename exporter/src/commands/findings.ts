// SPDX-License-Identifier: Apache-2.0
// profinfer findings RUN_DIR: what a recorded run's figures say is slow, why, where and what to
// try, from its events.pinf. No root needed.
import type { Command } from "commander";
import { runStats } from "../sinks/runOutputs.js";
import { formatFindings } from "../sinks/statsSummary.js";
import { requireRunDir } from "./options.js";

export function registerFindingsCommand(program: Command): void {
  program
    .command("findings")
    .description(
      "print what a run's figures say is slow, why, where and what to try (the findings of stats.json)",
    )
    .argument("<run-dir>", "a folder written by record or attach")
    .option("--json", "print them as JSON (stats.json's findings)")
    .action((runDir: string, opts: { json?: boolean }) => {
      const stats = runStats(requireRunDir(runDir));
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(stats.findings, null, 2)}\n`);
        return;
      }
      const lines =
        stats.findings.length > 0
          ? formatFindings(stats.findings)
          : [
              stats.run.level === "metrics"
                ? "no findings: a --level metrics run keeps the kernel's aggregates only; record at --level op for them"
                : "no findings: nothing past the thresholds of docs/findings.md",
            ];
      process.stdout.write(`${lines.join("\n")}\n`);
    });
}
