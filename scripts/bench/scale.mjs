// SPDX-License-Identifier: Apache-2.0
// The scale section: profinfer's peak resident memory and wall time for `record --level op` and its
// outputs, at several run lengths (tiny-llama under llama-completion, the bench model under
// llama-bench): flat memory, time in proportion to the length. The peak is the process's VmHWM,
// read from /proc while it runs; the outputs' own time is replay's, on the same events.
import { spawn } from "node:child_process";
import { readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { cli } from "./harness.mjs";
import { table } from "./output.mjs";

const { TINY_MODELS, ensureModels, llamaBinary, modelsDir, requireManifest } =
  await import("@profinfer/exporter");

/** The command's exit, wall time (ms) and peak resident memory (bytes), VmHWM polled every 20 ms. */
function runWatched(command, args) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(command, args, { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d.toString()));
    let peak = 0;
    const poll = setInterval(() => {
      try {
        const status = readFileSync(`/proc/${child.pid}/status`, "utf8");
        peak = Math.max(peak, Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1] ?? 0) * 1024);
      } catch {
        // exited
      }
    }, 20);
    child.on("error", reject);
    child.on("close", (code) => {
      clearInterval(poll);
      if (code !== 0)
        reject(new Error(`${args.slice(0, 2).join(" ")}: exit ${code}\n${stderr.slice(-2000)}`));
      else resolve({ wallMs: performance.now() - started, peak, stderr });
    });
  });
}

const mib = (bytes) => bytes / 2 ** 20;

function folderBytes(dir, names) {
  return Object.fromEntries(
    readdirSync(dir)
      .filter((n) => names.some((x) => n.startsWith(x)))
      .map((n) => [n, statSync(join(dir, n)).size]),
  );
}

/** One length: record (with its outputs) and replay, their peaks and times, the files' sizes. */
async function measureOne(bench, label, tokens, command) {
  const out = join(bench.scratch, `scale-${label}-${tokens}`);
  const record = await runWatched(cli, [
    "record",
    "--no-status",
    "--level",
    "op",
    "--out",
    out,
    "--",
    ...command,
  ]);
  const replay = await runWatched(cli, ["replay", out]);
  const stats = JSON.parse(readFileSync(join(out, "stats.json"), "utf8"));
  const sizes = folderBytes(out, ["events", "trace", "report", "traces", "profile.pb", "stats"]);
  rmSync(out, { recursive: true, force: true });
  return {
    label,
    tokens,
    calls: stats.tokens.length,
    events: stats.run.events,
    recordMs: record.wallMs,
    recordPeak: record.peak,
    replayMs: replay.wallMs,
    replayPeak: replay.peak,
    sizes,
  };
}

export async function measureScale(bench, env) {
  const tiny = (env.BENCH_SCALE_TINY ?? "1000,3000,10000").split(",").filter(Boolean).map(Number);
  const big = (env.BENCH_SCALE_BENCH ?? "512,2048").split(",").filter(Boolean).map(Number);
  const manifest = requireManifest();
  const [llama] = ensureModels(
    TINY_MODELS.filter((m) => m.arch === "llama"),
    { outDir: join(modelsDir(), "tiny"), llamaSrcDir: manifest.llamaCpp.srcDir },
  );
  const completion = llamaBinary(manifest, "llama-completion");
  const rows = [];
  for (const n of tiny) {
    const command = [
      completion,
      "-m",
      llama.path,
      "-p",
      "Once upon a time",
      "-n",
      String(n),
      "--ignore-eos",
      "-no-cnv",
      "--temp",
      "0",
      "-t",
      "2",
      "-c",
      String(n + 64),
      "--no-warmup",
    ];
    rows.push(await measureOne(bench, "tiny-llama", n, command));
  }
  for (const n of big) {
    const [cmd, args] = bench.llamaBench(n);
    rows.push(await measureOne(bench, "bench model", n, [cmd, ...args]));
  }
  return rows;
}

export function scaleLines(rows) {
  return [
    "",
    "## Memory and time of record and its outputs (--level op; peak resident memory = VmHWM from /proc)",
    "",
    ...table(
      [
        "model",
        "tokens",
        "calls",
        "events.pinf MiB",
        "record: peak MiB",
        "record: wall s",
        "replay: peak MiB",
        "replay: wall s",
        "replay ms / call",
        "trace.pftrace MiB",
        "report.html MiB",
      ],
      rows.map((r) => [
        r.label,
        String(r.tokens),
        String(r.calls),
        mib(r.sizes["events.pinf"] ?? 0).toFixed(1),
        mib(r.recordPeak).toFixed(0),
        (r.recordMs / 1000).toFixed(1),
        mib(r.replayPeak).toFixed(0),
        (r.replayMs / 1000).toFixed(1),
        (r.replayMs / r.calls).toFixed(2),
        mib(r.sizes["trace.pftrace"] ?? 0).toFixed(1),
        mib(r.sizes["report.html"] ?? 0).toFixed(1),
      ]),
    ),
  ];
}
