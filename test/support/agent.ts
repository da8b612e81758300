// SPDX-License-Identifier: Apache-2.0
// `profinfer agent` from a test: started on a free port with a runtime folder of its own, ready
// once it says where it serves; its /metrics read as series; stopped with SIGINT as a service
// manager's stop would (SIGTERM works the same). Also llama-servers on a chosen port, so that a
// restart runs the same command line.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { http, serverArgs, waitForHealth } from "./llamaServerLoad.js";
import { cli, freePort } from "./targets.js";

export interface Series {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of a Prometheus text exposition. */
export function parseExposition(text: string): Series[] {
  const out: Series[] = [];
  for (const line of text.split("\n")) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
    }
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

export interface RunningAgent {
  base: string;
  pid: number;
  runtimeDir: string;
  log(): string;
  running(): boolean;
  series(): Promise<Series[]>;
  /** SIGHUP: the agent reads its configuration again */
  hup(): void;
  /** SIGINT; resolves with its exit code and what it said */
  stop(): Promise<{ code: number | null; log: string }>;
}

/** `profinfer agent ...args` on a free port, once it serves. */
export async function startAgent(
  args: string[],
  runtimeDir = mkdtempSync(join(tmpdir(), "profinfer-agent-rt-")),
  /** a command that runs the agent (setpriv with a capability set) */
  wrapper: string[] = [],
): Promise<RunningAgent> {
  const port = await freePort();
  const command = [
    ...wrapper,
    cli,
    ...["agent", "--metrics-addr", `127.0.0.1:${port}`, "--runtime-dir", runtimeDir, ...args],
  ];
  const child = spawn(command[0]!, command.slice(1), { stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  child.stdout!.on("data", (d: Buffer) => (log += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (log += d.toString()));
  const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; !/agent: metrics at/.test(log); i++) {
    if (child.exitCode !== null || i > 600)
      throw new Error(`the agent did not start (${child.exitCode})\n${log.slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    base,
    pid: child.pid!,
    runtimeDir,
    log: () => log,
    running: () => child.exitCode === null && child.signalCode === null,
    series: async () => parseExposition((await http("GET", `${base}/metrics`)).text),
    hup: () => child.kill("SIGHUP"),
    async stop() {
      child.kill("SIGINT");
      return { code: await exited, log };
    },
  };
}

/** Polls `check` every 250 ms until it returns a value (not undefined); fails after `ms`. */
export async function eventually<T>(
  what: string | (() => string),
  check: () => Promise<T | undefined>,
  ms = 60_000,
): Promise<T> {
  const until = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (error) {
      last = error;
    }
    if (Date.now() > until)
      throw new Error(
        `${typeof what === "string" ? what : what()}: not within ${ms / 1000} s${last ? ` (${String(last)})` : ""}`,
      );
    await new Promise((r) => setTimeout(r, 250));
  }
}

export interface PortServer {
  process: ChildProcess;
  base: string;
  port: number;
  /** SIGTERM, and its exit */
  stop(): Promise<void>;
}

/** llama-server (serverArgs) on `port`, once it is ready. */
export async function serverOnPort(
  model: string,
  port: number,
  extra: string[] = [],
): Promise<PortServer> {
  const [binary, ...args] = serverArgs(model, port, extra);
  const child = spawn(binary!, args, { stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  child.stderr!.on("data", (d: Buffer) => (err = (err + d.toString()).slice(-5000)));
  const exited = new Promise<void>((r) => child.on("exit", () => r()));
  const base = `http://127.0.0.1:${port}`;
  try {
    await waitForHealth(base, () => child.exitCode === null && child.signalCode === null);
  } catch (error) {
    child.kill("SIGKILL");
    throw new Error(`${(error as Error).message}\n${err}`);
  }
  return {
    process: child,
    base,
    port,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await exited;
    },
  };
}
