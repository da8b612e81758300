// SPDX-License-Identifier: Apache-2.0
// What integration tests share: the set-up's llama.cpp targets and the model zoo in the cache.
import { spawn, type ChildProcess } from "node:child_process";
import { createServer, type AddressInfo } from "node:net";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import {
  BENCH_MODEL,
  BENCH_MODEL_Q8_0,
  TINY_MODELS,
  ensureModels,
  llamaBinary,
  modelsDir,
  requireManifest,
  stackBinary,
  type CacheManifest,
} from "@profinfer/exporter";

export const repoRoot = resolve(fileURLToPath(new URL("../..", import.meta.url)));

let manifestCache: CacheManifest | undefined;
export function manifest(): CacheManifest {
  return (manifestCache ??= requireManifest());
}

export function llama(name: string): string {
  return llamaBinary(manifest(), name);
}

/** A program of the test stack set-up built from test/stack/ (otelcol, jaeger, prometheus, promtool). */
export function stack(component: string, binary = component): string {
  return stackBinary(manifest(), component, binary);
}

/** The node-llama-cpp application tests and the demo profile, as a command line for spawn. */
export function nodeLlamaCppWorkload(...args: string[]): string[] {
  const script = join(repoRoot, "test", "support", "workloads", "nodeLlamaCppGenerate.ts");
  return [process.execPath, "--import", "tsx", script, ...args];
}

/**
 * The node-llama-cpp application that serves several sequences of one context at once
 * (workloads/nodeLlamaCppParallel.ts), as a command line for spawn.
 */
export function nodeLlamaCppParallelWorkload(...args: string[]): string[] {
  const script = join(repoRoot, "test", "support", "workloads", "nodeLlamaCppParallel.ts");
  return [process.execPath, "--import", "tsx", script, ...args];
}

export const prompt = "The quick brown fox jumps over the lazy dog";

/**
 * llama-completion generating `tokens` tokens from the test prompt, greedily, on 2 threads, with
 * no warm-up call (so every llama_decode is the prompt's or a generated token's).
 */
export function completion(modelPath: string, tokens: number, extra: string[] = []): string[] {
  const args = [
    "-m",
    modelPath,
    "-p",
    prompt,
    "-n",
    String(tokens),
    "--ignore-eos",
    "-no-cnv",
    "--temp",
    "0",
  ];
  return [llama("llama-completion"), ...args, "-t", "2", "-c", "256", "--no-warmup", ...extra];
}

/** The tiny models, written into the cache once and reused while identical. */
export function tinyModels(): { arch: string; name: string; path: string }[] {
  return ensureModels(TINY_MODELS, {
    outDir: join(modelsDir(), "tiny"),
    llamaSrcDir: manifest().llamaCpp.srcDir,
  }).map((m) => ({
    arch: m.config.arch,
    name: m.config.name,
    path: m.path,
  }));
}

/** The bench model (Q4_0 matrices), or with `weights` "q8_0" the same shapes in Q8_0. */
export function benchModel(weights: "q4_0" | "q8_0" = "q4_0"): string {
  return ensureModels([weights === "q4_0" ? BENCH_MODEL : BENCH_MODEL_Q8_0], {
    outDir: join(modelsDir(), "bench"),
    llamaSrcDir: manifest().llamaCpp.srcDir,
  })[0]!.path;
}

export interface Ran {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a program to completion (bounded by `timeoutMs`) and collects its output. */
export function runProgram(
  command: string,
  args: string[],
  options: {
    timeoutMs?: number;
    env?: NodeJS.ProcessEnv;
    /** told the process once it runs (to watch it) */
    onSpawn?: (child: ChildProcess) => void;
  } = {},
): Promise<Ran> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, {
      stdio: ["ignore", "pipe", "pipe"],
      env: options.env ?? process.env,
    });
    options.onSpawn?.(child);
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 120_000);
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ code, signal, stdout, stderr });
    });
  });
}

/**
 * The built CLI, run as a user runs it: through its `#!` line, which carries the node flags
 * profinfer needs.
 */
export const cli = join(repoRoot, "exporter", "dist", "cli.js");

/** The built CLI, as a user runs it. */
export function profinfer(args: string[]): Promise<Ran> {
  return runProgram(cli, [...args]);
}

/**
 * `profinfer record --no-status --no-report --out DIR ...recordArgs -- llama-completion` of
 * `modelPath` for `tokens` tokens (plus `extra`); fails unless it exits 0. The run folder.
 */
export async function recordCompletion(
  dir: string,
  modelPath: string,
  tokens: number,
  extra: string[] = [],
  recordArgs: string[] = [],
): Promise<string> {
  const ran = await recordCommand(dir, completion(modelPath, tokens, extra), recordArgs);
  if (ran.code !== 0)
    throw new Error(`profinfer record exited ${ran.code}: ${ran.stderr.slice(-2000)}`);
  return dir;
}

/** `profinfer record` of `command` into `dir`, with no status line and no report. */
export function recordCommand(
  dir: string,
  command: readonly string[],
  recordArgs: readonly string[] = [],
): Promise<Ran> {
  return profinfer([
    "record",
    "--no-status",
    "--no-report",
    "--out",
    dir,
    ...recordArgs,
    "--",
    ...command,
  ]);
}

/** A TCP port free on loopback now. */
export function freePort(): Promise<number> {
  return new Promise((resolvePort) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as AddressInfo).port;
      s.close(() => resolvePort(port));
    });
  });
}

export interface LlamaServer {
  process: ChildProcess;
  /** http://127.0.0.1:PORT */
  base: string;
  /** POST /completion of the test prompt (plus `suffix`), greedy, `tokens` tokens; fails unless 200 */
  complete(suffix: string, tokens?: number): Promise<Completion>;
}

/** What llama-server answers a completion: the text, tokens generated, prompt tokens evaluated. */
export interface Completion {
  content: string;
  tokens_predicted: number;
  timings: { prompt_n: number };
}

/** llama-server on loopback with `slots` slots (default one) and 2 threads, once /health answers. */
export async function startLlamaServer(modelPath: string, slots = 1): Promise<LlamaServer> {
  const port = await freePort();
  const server = spawn(
    llama("llama-server"),
    [
      "-m",
      modelPath,
      "--host",
      "127.0.0.1",
      "--port",
      String(port),
      "-t",
      "2",
      "-c",
      "512",
      "-np",
      String(slots),
    ],
    { stdio: ["ignore", "ignore", "ignore"] },
  );
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 150; i++) {
    const ok = await fetch(`${base}/health`)
      .then((r) => r.ok)
      .catch(() => false);
    if (ok) break;
    if (server.exitCode !== null) throw new Error(`llama-server exited with ${server.exitCode}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    process: server,
    base,
    async complete(suffix, tokens = 8) {
      const res = await fetch(`${base}/completion`, {
        method: "POST",
        body: JSON.stringify({
          prompt: `${prompt} ${suffix}`,
          n_predict: tokens,
          temperature: 0,
          ignore_eos: true,
          cache_prompt: false,
        }),
      });
      if (res.status !== 200) throw new Error(`llama-server answered ${res.status}`);
      return (await res.json()) as Completion;
    },
  };
}
