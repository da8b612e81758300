#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
// `npm run demo` after set-up and build: checks the machine, writes the tiny model zoo, and
// records every tiny model with profinfer: llama.cpp built from the bundle (llama-completion) and,
// for the MoE model, a node-llama-cpp app on the prebuilt libraries; then llama-server serving
// concurrent requests, its per-request table beside the server's own timings. Each run leaves a
// folder with trace.json (open it in https://ui.perfetto.dev), stats.json and the raw events, and
// prints its ProfStat summary.
import { spawnSync } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const cli = join(repoRoot, "exporter", "dist", "cli.js");
const { requireManifest, llamaBinary, modelsDir, TINY_MODELS } =
  await import("@profinfer/exporter");

function step(title) {
  process.stdout.write(`\n=== ${title}\n`);
}

function run(command, args, options = {}) {
  const result = spawnSync(command, args, { stdio: "inherit", ...options });
  if (result.status !== 0)
    throw new Error(`${command} ${args.join(" ")} exited with ${result.status ?? result.signal}`);
}

const manifest = requireManifest();
step(
  `profinfer doctor (llama.cpp ${manifest.llamaCpp.llamaCppRelease}, node-llama-cpp ${manifest.nodeLlamaCpp.version})`,
);
run(cli, ["doctor"]);

step("model zoo: tiny models");
const modelDir = join(modelsDir(), "tiny");
run(cli, ["models", "tiny", "--out", modelDir]);

const runsDir = join(repoRoot, "profinfer-runs", "demo");
const prompt = "The quick brown fox jumps over the lazy dog";
const folders = [];
for (const config of TINY_MODELS) {
  const out = join(runsDir, config.name);
  step(`profinfer record: llama-completion on ${config.name} (${config.realModel} architecture)`);
  run(
    cli,
    [
      "record",
      "--no-status",
      "--out",
      out,
      "--",
      llamaBinary(manifest, "llama-completion"),
      "-m",
      join(modelDir, `${config.name}.gguf`),
      "-p",
      prompt,
      "-n",
      "16",
      "--ignore-eos",
      "-no-cnv",
      "--temp",
      "0",
      "-t",
      "2",
      "-c",
      "512",
      "--no-warmup",
    ],
    { stdio: ["ignore", "inherit", "ignore"] },
  );
  folders.push(out);
}

const nlcOut = join(runsDir, "node-llama-cpp-tiny-qwen2moe");
step("profinfer record: a node-llama-cpp app (prebuilt libraries, CPU backend loaded by dlopen)");
run(
  cli,
  [
    "record",
    "--no-status",
    "--out",
    nlcOut,
    "--",
    process.execPath,
    "--import",
    "tsx",
    join(repoRoot, "test", "support", "workloads", "nodeLlamaCppGenerate.ts"),
    "--model",
    join(modelDir, "tiny-qwen2moe.gguf"),
    "--tokens",
    "16",
  ],
  { stdio: ["ignore", "inherit", "ignore"] },
);
folders.push(nlcOut);

const serverOut = join(runsDir, "llama-server-tiny-llama");
step(
  "profinfer record: llama-server (its default slots) serving more concurrent requests than it has slots",
);
run(
  process.execPath,
  [
    "--import",
    "tsx",
    join(repoRoot, "test", "support", "workloads", "llamaServerDemo.ts"),
    "--model",
    join(modelDir, "tiny-llama.gguf"),
    "--out",
    serverOut,
  ],
  { cwd: repoRoot },
);
folders.push(serverOut);

step("run folders (open report.html in a browser, trace.json in https://ui.perfetto.dev)");
for (const folder of folders) process.stdout.write(`  ${join(folder, "trace.json")}\n`);
