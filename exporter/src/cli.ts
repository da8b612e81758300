#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
import { Command, CommanderError } from "commander";
import { registerDoctorCommand } from "./commands/doctor.js";
import { registerModelsCommand } from "./commands/models.js";
import { registerRecordCommands } from "./commands/record.js";
import { UserError } from "./errors.js";
import { SetupMissingError } from "./target/cache.js";

const program = new Command("profinfer")
  .description("Fine-grained eBPF profiler for llama.cpp inference")
  .showHelpAfterError()
  .exitOverride();

registerModelsCommand(program);
registerRecordCommands(program);
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
