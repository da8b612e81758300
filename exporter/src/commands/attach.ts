// SPDX-License-Identifier: Apache-2.0
// profinfer attach --pid PID: trace a running llama.cpp process until Ctrl-C or until it exits;
// it keeps running.
import type { Command } from "commander";
import { resolve } from "node:path";
import { runSession } from "../session/session.js";
import { runningTarget } from "../session/targets.js";
import {
  addCommonOptions,
  defaultRunDir,
  positiveInt,
  sessionConfig,
  type CommonOptions,
} from "./options.js";

export function registerAttachCommand(program: Command): void {
  addCommonOptions(
    program
      .command("attach")
      .description(
        "trace a running llama.cpp process until Ctrl-C or until it exits; it keeps running",
      )
      .requiredOption("--pid <pid>", "process id", positiveInt("--pid")),
  ).action(async (opts: CommonOptions & { pid: number }) => {
    const target = runningTarget(opts.pid);
    const outDir = resolve(opts.out ?? defaultRunDir(target.command[0] ?? String(opts.pid)));
    await runSession(sessionConfig(opts, outDir, target.command, opts.pid), () => target);
  });
}
