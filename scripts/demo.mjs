#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
// `npm run demo` after set-up and build: writes the tiny model zoo and runs every model through
// llama.cpp built from the bundle (llama-simple) and through node-llama-cpp's prebuilt libraries.
// The eBPF tracer is not built yet; once it lands, this records the same runs with it.
import { spawnSync } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const cli = join(repoRoot, "exporter", "dist", "cli.js");
const { requireManifest, llamaBinary, modelsDir } = await import(
  join(repoRoot, "exporter", "dist", "target", "cache.js")
);
const { TINY_MODELS } = await import(join(repoRoot, "exporter", "dist", "models", "zoo.js"));

function run(command, args) {
  const result = spawnSync(command, args, { encoding: "utf8", maxBuffer: 64 << 20 });
  if (result.status !== 0) {
    process.stderr.write(result.stdout + result.stderr);
    throw new Error(`${command} ${args.join(" ")} exited with ${result.status ?? result.signal}`);
  }
  return result;
}

const manifest = requireManifest();
console.log(
  `profinfer demo: llama.cpp ${manifest.llamaCpp.llamaCppRelease} (${manifest.llamaCpp.commit.slice(0, 7)}) from node-llama-cpp ${manifest.nodeLlamaCpp.version}\n`,
);

const doctor = spawnSync(process.execPath, [cli, "doctor"], { stdio: "inherit" });
if (doctor.status !== 0) process.exitCode = doctor.status;

console.log("\nmodel zoo (tiny):");
const outDir = join(modelsDir(), "tiny");
process.stdout.write(run(process.execPath, [cli, "models", "tiny", "--out", outDir]).stdout);

const prompt = "The quick brown fox jumps over the lazy dog";
const rows = [];
for (const config of TINY_MODELS) {
  const model = join(outDir, `${config.name}.gguf`);
  const simple = run(llamaBinary(manifest, "llama-simple"), ["-m", model, "-n", "32", prompt]);
  const speed = /decoded (\d+) tokens in ([\d.]+) s, speed: ([\d.]+) t\/s/.exec(simple.stderr);
  const nlc = JSON.parse(
    run(process.execPath, [
      join(repoRoot, "exporter", "dist", "workloads", "nodeLlamaCppGenerate.js"),
      "--model",
      model,
      "--tokens",
      "32",
    ])
      .stdout.trim()
      .split("\n")
      .at(-1),
  );
  rows.push([
    config.name,
    config.arch,
    `${speed?.[1] ?? "?"} tokens, ${speed?.[3] ?? "?"} t/s`,
    `${nlc.generatedTokens} tokens in ${nlc.generateMs} ms`,
  ]);
}
const header = ["model", "arch", "llama-simple (bundle build)", "node-llama-cpp (prebuilt)"];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
const line = (cells) => cells.map((c, i) => c.padEnd(widths[i])).join("  ");
console.log("\n" + line(header));
for (const r of rows) console.log(line(r));
console.log(
  "\nThe eBPF tracer has not landed yet: these runs are not profiled. Once it does, `npm run demo` records\n" +
    "them with profinfer and leaves a Perfetto trace and a ProfStat summary.",
);
