// SPDX-License-Identifier: Apache-2.0
// `profinfer attach` to a running process, from a test: start it, wait for its own word that the
// probes are in place ("tracing pid N" on stderr, the line scripts wait for), detach with SIGINT
// as a user's Ctrl-C does. A sleep in place of that line, or the first probe's breakpoint seen in
// the target's memory, leaves a window in which the load's first call is half traced.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { open } from "node:fs/promises";
import { readElf } from "@profinfer/exporter";
import { cli } from "./targets.js";

export interface Attached {
  /** whether profinfer is still running */
  running(): boolean;
  /** profinfer's stderr so far */
  stderr(): string;
  /** SIGINT, as Ctrl-C: the recording ends, the outputs are written; its exit code and stderr */
  detach(): Promise<{ code: number | null; stderr: string }>;
}

/** `profinfer attach --pid PID --no-status --out DIR ...extra`, once it is tracing. */
export async function attach(
  pid: number,
  outDir: string,
  extra: string[] = [],
  timeoutMs = 60_000,
): Promise<Attached> {
  const tracer = spawn(
    cli,
    ["attach", "--pid", String(pid), "--no-status", "--out", outDir, ...extra],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let stderr = "";
  const exited = new Promise<number | null>((r) => tracer.on("exit", (code) => r(code)));
  const ready = new RegExp(`^profinfer: tracing pid ${pid}$`, "m");
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      tracer.kill("SIGKILL");
      reject(new Error(`profinfer attach said nothing of tracing in ${timeoutMs} ms\n${stderr}`));
    }, timeoutMs);
    tracer.stderr!.on("data", (d: Buffer) => {
      stderr += d.toString();
      if (ready.test(stderr)) {
        clearTimeout(timer);
        resolve();
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`profinfer attach exited (${code}) before tracing\n${stderr.slice(-3000)}`));
    });
  });
  return {
    running: () => tracer.exitCode === null && tracer.signalCode === null,
    stderr: () => stderr,
    async detach() {
      tracer.kill("SIGINT");
      return { code: await exited, stderr };
    },
  };
}

/** The address of `symbol` in process `pid`: in the first mapped library defining it, as mapped. */
export function liveAddress(pid: number, symbol: string): number {
  const mappings = readFileSync(`/proc/${pid}/maps`, "utf8")
    .split("\n")
    .map((l) => l.split(/\s+/))
    .filter((f) => f.length >= 6 && f[5]!.startsWith("/"));
  for (const path of new Set(mappings.map((f) => f.slice(5).join(" ")))) {
    if (!/\.so(\.|$)/.test(path)) continue;
    let elf;
    try {
      elf = readElf(path);
    } catch {
      continue;
    }
    const sym = elf.symbols.get(symbol);
    if (!sym) continue;
    const fileOffset = elf.fileOffsetOf(sym.address);
    if (fileOffset === null) continue;
    const mapping = mappings.find((f) => {
      if (f.slice(5).join(" ") !== path) return false;
      const offset = parseInt(f[2]!, 16);
      const [lo, hi] = f[0]!.split("-").map((x) => parseInt(x, 16));
      return fileOffset >= offset && fileOffset < offset + (hi! - lo!);
    });
    if (mapping) {
      return parseInt(mapping[0]!.split("-")[0]!, 16) + fileOffset - parseInt(mapping[2]!, 16);
    }
  }
  throw new Error(`no library mapped by pid ${pid} defines ${symbol}`);
}

/** Bytes of another process's memory (root): /proc/PID/mem at an address. */
export async function readTargetBytes(
  pid: number,
  address: number,
  length: number,
): Promise<Buffer> {
  const handle = await open(`/proc/${pid}/mem`, "r");
  try {
    const buffer = Buffer.alloc(length);
    await handle.read(buffer, 0, length, address);
    return buffer;
  } finally {
    await handle.close();
  }
}
