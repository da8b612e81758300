// SPDX-License-Identifier: Apache-2.0
// profinfer diff BASE NEW: two run folders compared (phases, requests, operators, barrier waits,
// layers, tensors, threads, findings), each change judged against the runs' own noise; the table,
// JSON, or an HTML page with both ProfDAGs coloured by change. No root needed.
import type { Command } from "commander";
import { writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { DIFF_DEFAULTS } from "@profinfer/contract";
import { UserError } from "../errors.js";
import { diffRuns, formatDiff } from "../sinks/diff.js";
import { writeDiffPage } from "../sinks/report.js";
import type { Run } from "../trace/types.js";
import { log, readRunDir } from "./options.js";

function readRun(dir: string, role: string): Run {
  try {
    return readRunDir(dir).run;
  } catch (error) {
    if (error instanceof UserError) throw error;
    const path = join(resolve(dir), "events.pinf");
    throw new UserError(`${role} ${path} cannot be read: ${(error as Error).message}`);
  }
}

export function registerDiffCommand(program: Command): void {
  program
    .command("diff")
    .description(
      "compare two run folders: phases, requests, operators, barrier waits, layers, tensors and threads, each change judged against the runs' own noise, and the findings that appear or disappear",
    )
    .argument("<base>", "the run folder to compare against")
    .argument("<new>", "the run folder to compare")
    .option("--json <file>", "also write the comparison as JSON (- for standard output)")
    .option(
      "--html <file>",
      "also write an HTML page: both ProfDAGs coloured by change, and the tables",
    )
    .option("--all", "list every row, not only the changes and the largest others")
    .option(
      "--min-change <percent>",
      "changes smaller than this are the same",
      String(DIFF_DEFAULTS.minRelative * 100),
    )
    .option(
      "--confidence <percent>",
      "the bootstrap interval's confidence",
      String(DIFF_DEFAULTS.confidence * 100),
    )
    .action(
      (
        baseDir: string,
        newDir: string,
        opts: {
          json?: string;
          html?: string;
          all?: boolean;
          minChange: string;
          confidence: string;
        },
      ) => {
        const minRelative = Number(opts.minChange) / 100;
        const confidence = Number(opts.confidence) / 100;
        if (!(minRelative >= 0) || !(confidence > 0 && confidence < 1)) {
          throw new UserError(
            "--min-change takes a percentage of 0 or more and --confidence one between 0 and 100",
          );
        }
        const base = { dir: resolve(baseDir), run: readRun(baseDir, "BASE") };
        const next = { dir: resolve(newDir), run: readRun(newDir, "NEW") };
        const report = diffRuns(base, next, { minRelative, confidence });
        const json = `${JSON.stringify(report, null, 2)}\n`;
        if (opts.html) {
          writeDiffPage(base.run, next.run, report, resolve(opts.html));
          log(`diff page ${resolve(opts.html)}`);
        }
        if (opts.json === "-") {
          process.stdout.write(json);
          return;
        }
        process.stdout.write(formatDiff(report, { all: opts.all ?? false }));
        if (opts.json) {
          writeFileSync(resolve(opts.json), json);
          log(`diff ${resolve(opts.json)}`);
        }
      },
    );
}
