// SPDX-License-Identifier: Apache-2.0
// profinfer record -- COMMAND...: launch a llama.cpp program and trace it from its first
// instruction until it exits.
import type { Command } from "commander";
import { resolve } from "node:path";
import { runSession } from "../session/session.js";
import { exitStatusOf, launchTarget } from "../session/targets.js";
import { addCommonOptions, defaultRunDir, sessionConfig, type CommonOptions } from "./options.js";

export function registerRecordCommand(program: Command): void {
  addCommonOptions(
    program
      .command("record")
      .description(
        "launch a llama.cpp program and trace it from its first instruction until it exits",
      )
      .argument("<command...>", "the program and its arguments (after --)")
      .usage("[options] -- <command ...>"),
  ).action(async (command: string[], opts: CommonOptions) => {
    const outDir = resolve(opts.out ?? defaultRunDir(command[0]!));
    const config = sessionConfig(opts, outDir, command);
    const end = await runSession(config, () => launchTarget(command));
    process.exitCode = exitStatusOf(end.exit!);
  });
}
