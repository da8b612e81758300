#!/usr/bin/env -S node --no-memory-reducer
// SPDX-License-Identifier: Apache-2.0
// --no-memory-reducer: V8 otherwise runs full garbage collections some seconds after start-up to
// give memory back, while the target decodes, on the cores it shares with the target (docs/cli.md
// has what it cost). It can only be set when node starts (v8.setFlagsFromString is too late: the
// reducer already exists).
import { readFileSync } from "node:fs";
import { Command, CommanderError } from "commander";
import { registerDiffCommand } from "./commands/diff.js";
import { registerDoctorCommand } from "./commands/doctor.js";
import { registerFindingsCommand } from "./commands/findings.js";
import { registerModelsCommand } from "./commands/models.js";
import { registerAttachCommand } from "./commands/attach.js";
import { registerRecordCommand } from "./commands/record.js";
import { registerReplayCommand } from "./commands/replay.js";
import { registerProfileCommand } from "./commands/profile.js";
import { registerReportCommand } from "./commands/report.js";
import { UserError } from "./errors.js";
import { SetupMissingError } from "./setup/cache.js";

const program = new Command("profinfer")
  .description("Fine-grained eBPF profiler for llama.cpp inference")
  .version(
    (
      JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
        version: string;
      }
    ).version,
  )
  .showHelpAfterError()
  .exitOverride();

registerModelsCommand(program);
registerRecordCommand(program);
registerAttachCommand(program);
registerReplayCommand(program);
registerReportCommand(program);
registerProfileCommand(program);
registerDiffCommand(program);
registerFindingsCommand(program);
registerDoctorCommand(program);

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    process.exitCode = error.exitCode;
  } else if (error instanceof UserError || error instanceof SetupMissingError) {
    process.stderr.write(`profinfer: ${error.message}\n`);
    process.exitCode = error instanceof UserError ? error.exitCode : 2;
  } else {
    throw error;
  }
}
