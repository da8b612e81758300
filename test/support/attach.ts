// SPDX-License-Identifier: Apache-2.0
// `profinfer attach` to a running process, from a test: start it, know when its probes are in
// place (the uprobe's breakpoint is in the target's copy of llama_decode), detach with SIGINT as
// a user's Ctrl-C does.
import { spawn } from "node:child_process";
import { open } from "node:fs/promises";
import { readFileSync } from "node:fs";
import { readElf } from "@profinfer/exporter";
import { cli } from "./targets.js";

/** The address of `symbol` in process `pid`: the first mapped file defining it, as mapped. */
function liveAddress(pid: number, symbol: string): number {
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

/**
 * Waits until `symbol`'s first byte in process `pid` is the uprobe's breakpoint (int3, 0xcc on
 * x86-64): from then on its calls are traced.
 */
export async function waitForProbe(
  pid: number,
  symbol: string,
  alive: () => boolean,
  attempts = 300,
): Promise<void> {
  const address = liveAddress(pid, symbol);
  const handle = await open(`/proc/${pid}/mem`, "r");
  try {
    const byte = Buffer.alloc(1);
    for (let i = 0; i < attempts; i++) {
      await handle.read(byte, 0, 1, address);
      if (byte[0] === 0xcc) return;
      if (!alive()) throw new Error("profinfer attach exited before its probes were in place");
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await handle.close();
  }
  throw new Error(`no probe on ${symbol} in pid ${pid} after ${attempts} looks`);
}

export interface Attached {
  /** SIGINT, as Ctrl-C: the recording ends, the outputs are written; its exit code and stderr */
  detach(): Promise<{ code: number | null; stderr: string }>;
}

/** `profinfer attach --pid PID --out DIR ...extra`, once its probe on llama_decode is in place. */
export async function attach(pid: number, outDir: string, extra: string[] = []): Promise<Attached> {
  const tracer = spawn(
    cli,
    ["attach", "--pid", String(pid), "--no-status", "--out", outDir, ...extra],
    {
      stdio: ["ignore", "ignore", "pipe"],
    },
  );
  let stderr = "";
  tracer.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((r) => tracer.on("exit", (code) => r(code)));
  try {
    await waitForProbe(pid, "llama_decode", () => tracer.exitCode === null);
  } catch (error) {
    tracer.kill("SIGKILL");
    throw new Error(`${(error as Error).message}\n${stderr.slice(-3000)}`);
  }
  return {
    async detach() {
      tracer.kill("SIGINT");
      return { code: await exited, stderr };
    },
  };
}
