#!/usr/bin/env -S node --no-memory-reducer --expose-gc
// SPDX-License-Identifier: Apache-2.0
// --no-memory-reducer: V8 otherwise runs full garbage collections some seconds after start-up to
// give memory back, while the target decodes, on the cores it shares with the target (docs/cli.md
// has what it cost). It can only be set when node starts (v8.setFlagsFromString is too late: the
// reducer already exists). --expose-gc: the run's outputs are written chunk by chunk, and a full
// collection between chunks once the heap passes a bound keeps profinfer's resident memory flat
// whatever the run's length (trace/runStream.ts); V8 alone lets garbage grow to several times the
// live heap first.
import { readFileSync } from "node:fs";
import { Command, CommanderError } from "commander";
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

type Register = (program: Command) => void;
// Each command's module loads only when it is the one run (all of them for the top-level help or
// an unknown command): `profinfer agent` stays resident for days, and the recorder, the report
// and the OpenTelemetry packages it does not use would hold about 20 MB of it.
const COMMANDS: [string, () => Promise<Register>][] = [
  ["models", async () => (await import("./commands/models.js")).registerModelsCommand],
  ["record", async () => (await import("./commands/record.js")).registerRecordCommand],
  ["attach", async () => (await import("./commands/attach.js")).registerAttachCommand],
  ["replay", async () => (await import("./commands/replay.js")).registerReplayCommand],
  ["report", async () => (await import("./commands/report.js")).registerReportCommand],
  ["profile", async () => (await import("./commands/profile.js")).registerProfileCommand],
  ["diff", async () => (await import("./commands/diff.js")).registerDiffCommand],
  ["findings", async () => (await import("./commands/findings.js")).registerFindingsCommand],
  ["doctor", async () => (await import("./commands/doctor.js")).registerDoctorCommand],
  ["machine", async () => (await import("./commands/machine.js")).registerMachineCommand],
  ["agent", async () => (await import("./commands/agent.js")).registerAgentCommand],
];
const named = COMMANDS.find(([name]) => name === process.argv[2]);
for (const [, load] of named ? [named] : COMMANDS) (await load())(program);

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
