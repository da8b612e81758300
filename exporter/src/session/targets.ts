// SPDX-License-Identifier: Apache-2.0
// What a session traces: a program it launches (record), held until the probes are in place, or
// a process that already runs (attach), followed until it exits or profinfer is told to stop.
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { constants } from "node:os";
import { UserError } from "../errors.js";

export interface TargetExit {
  code: number | null;
  signal: string | null;
}

/** Why tracing stopped: the target's exit status when it was seen, and what to tell the user. */
export interface TargetEnd {
  exit: TargetExit | null;
  message: string | null;
}

export interface SessionTarget {
  readonly pid: number;
  readonly command: string[];
  /** the probes are in place: let it run */
  release(): void;
  /** stop tracing when this resolves (call after release) */
  ended(): Promise<TargetEnd>;
  /** the recording could not start: nothing launched may run on untraced */
  abandon(): void;
}

/**
 * Launches `command`. It waits on fd 3 until the probes are in place, then execs the real
 * program, so that nothing runs untraced and the pid the probes filter on is the program's own.
 */
export function launchTarget(command: string[]): SessionTarget {
  const child = spawn("/bin/sh", ["-c", 'read _ <&3; exec 3<&-; exec "$0" "$@"', ...command], {
    stdio: ["inherit", "inherit", "inherit", "pipe"],
  });
  const exited = new Promise<TargetExit>((resolveExit) =>
    child.on("exit", (code, signal) => resolveExit({ code, signal })),
  );
  return {
    pid: child.pid!,
    command,
    release: () => (child.stdio[3] as NodeJS.WritableStream).end("go\n"),
    async ended() {
      // Ctrl-C reaches the target too (same process group): let it end, then finish the run; a
      // SIGTERM sent to profinfer alone (a service manager stopping it) is passed on to the
      // target, so that the run is finished and written rather than lost with profinfer
      const onSignal = () => {};
      const onTerm = () => child.kill("SIGTERM");
      process.on("SIGINT", onSignal);
      process.on("SIGTERM", onTerm);
      const exit = await exited;
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onTerm);
      const message =
        exit.code === 127 ? `'${command[0]}' could not be started (command not found?)` : null;
      return { exit, message };
    },
    abandon: () => child.kill("SIGKILL"),
  };
}

/** The running process `pid`, and the command line it was started with. */
export function runningTarget(pid: number): SessionTarget {
  if (!existsSync(`/proc/${pid}`)) throw new UserError(`no process with pid ${pid}`);
  const command = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
  return {
    pid,
    command,
    release: () => {},
    async ended() {
      const reason = await new Promise<string>((resolveStop) => {
        const onSignal = () => resolveStop("interrupted");
        process.once("SIGINT", onSignal);
        process.once("SIGTERM", onSignal);
        const poll = setInterval(() => {
          if (!existsSync(`/proc/${pid}`)) {
            clearInterval(poll);
            resolveStop("exited");
          }
        }, 200);
        poll.unref();
      });
      return { exit: null, message: `detached from pid ${pid} (${reason})` };
    },
    abandon: () => {},
  };
}

/** The exit status profinfer record ends with: the target's own, 128 + signal when killed. */
export function exitStatusOf(exit: TargetExit): number {
  if (exit.code !== null) return exit.code;
  const signal = exit.signal ? constants.signals[exit.signal as NodeJS.Signals] : undefined;
  return exit.signal ? 128 + (signal ?? 1) : 1;
}
