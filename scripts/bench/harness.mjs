// SPDX-License-Identifier: Apache-2.0
// What every section of the bench runs on: the bench model under llama-bench, alone or under
// `profinfer record`, with a scratch folder for the recordings, and the OTLP receiver.
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { recordOptions } from "./configs.mjs";

const { requireManifest, llamaBinary, modelsDir, BENCH_MODEL } =
  await import("@profinfer/exporter");

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const cli = join(repoRoot, "exporter", "dist", "cli.js");

/** a command's result; a failure names `label`, the exit status and the end of its stderr */
export function runChecked(command, args, label) {
  const run = spawnSync(command, args, { encoding: "utf8", maxBuffer: 64 << 20 });
  if (run.status !== 0) throw new Error(`${label}: exit ${run.status}\n${run.stderr.slice(-2000)}`);
  return run;
}

const shellQuote = (arg) => `'${arg.replace(/'/g, "'\\''")}'`;

/** runChecked with the CPU seconds (user + system) that the command and its children used */
export function runTimed(command, args, label) {
  // bash's `time` sums the CPU of everything it waited for: the target and profinfer itself
  const quoted = [command, ...args].map(shellQuote).join(" ");
  const run = runChecked("bash", ["-c", `TIMEFORMAT='cpu %U %S'; time ${quoted}`], label);
  const cpu = /cpu ([\d.]+) ([\d.]+)\s*$/.exec(run.stderr);
  return { stdout: run.stdout, cpuSeconds: cpu ? Number(cpu[1]) + Number(cpu[2]) : NaN };
}

/**
 * Starts the test OTLP receiver in a process of its own, so that decoding the spans does not
 * count as profinfer's CPU, and resolves once it listens.
 */
async function startCollector() {
  const child = spawn(
    process.execPath,
    ["--import", "tsx", join(repoRoot, "test", "support", "otlpCollectorProcess.ts")],
    { cwd: repoRoot, stdio: ["ignore", "pipe", "inherit"] },
  );
  let output = "";
  const port = await new Promise((resolvePort, reject) => {
    child.stdout.on("data", (d) => {
      output += d.toString();
      const m = /port (\d+)/.exec(output);
      if (m) resolvePort(Number(m[1]));
    });
    child.on("exit", (code) => reject(new Error(`the OTLP receiver exited (${code})`)));
  });
  return {
    url: `http://127.0.0.1:${port}`,
    /** [total spans received, distinct span ids] so far: the receiver prints them as they grow */
    received() {
      const last = [...output.matchAll(/spans (\d+) (\d+)/g)].at(-1);
      return last ? [Number(last[1]), Number(last[2])] : [0, 0];
    },
    stop: () => child.kill(),
  };
}

/**
 * The bench's surroundings: llama-bench from the set-up's manifest, the bench model (made if
 * missing, `model` its path), a scratch folder and the OTLP receiver; `close()` removes and stops
 * them. `llamaBench(n)` and `record(options, out, n, shape?)` are [command, args] pairs for
 * llama-bench decoding n tokens once (or running `shape`'s -p/-n), alone or under `profinfer
 * record` writing to `out`.
 */
export async function openBench() {
  const benchBin = llamaBinary(requireManifest(), "llama-bench");
  runChecked(cli, ["models", "bench"], "profinfer models bench");
  const model = join(modelsDir(), "bench", `${BENCH_MODEL.name}.gguf`);
  // decode only (no prompt), on 2 threads, once, as JSON; `shape` replaces -p 0 -n N
  const llamaBenchArgs = (n, shape = ["-p", "0", "-n", String(n)]) => [
    "-m",
    model,
    "-t",
    "2",
    ...shape,
    "-r",
    "1",
    "-o",
    "json",
  ];
  const collector = await startCollector();
  const scratch = mkdtempSync(join(tmpdir(), "profinfer-bench-"));
  return {
    scratch,
    model,
    collector,
    recordOptions: recordOptions(collector.url),
    llamaBench: (n) => [benchBin, llamaBenchArgs(n)],
    record: (options, out, n, shape) => [
      cli,
      [
        "record",
        "--no-status",
        ...options,
        "--out",
        out,
        "--",
        benchBin,
        ...llamaBenchArgs(n, shape),
      ],
    ],
    close() {
      collector.stop();
      rmSync(scratch, { recursive: true, force: true });
    },
  };
}
