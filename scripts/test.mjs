#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
// Runs every test with node's own test runner: unit tests beside the code (exporter/src/**) and
// integration tests against real llama.cpp (test/**). Extra arguments narrow the files:
// `npm test -- gguf` runs the files whose path contains "gguf".
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join, relative, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const roots = ["contract/src", "exporter/src", "grafana-plugin/src", "native/test", "test"];

function collect(dir) {
  const out = [];
  for (const entry of readdirSync(dir)) {
    if (entry === "node_modules" || entry === "dist") continue;
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) out.push(...collect(path));
    else if (entry.endsWith(".test.ts")) out.push(path);
  }
  return out;
}

const filters = process.argv.slice(2);
const files = roots
  .flatMap((r) => collect(join(repoRoot, r)))
  .map((f) => relative(repoRoot, f))
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort();
if (files.length === 0) {
  console.error(`no test files match ${filters.join(" ")}`);
  process.exit(1);
}
// The machine profile (the roofline's ceilings) is measured once per host, and best on a quiet
// one: now, before any test runs a target or a busy process beside it.
const cli = join(repoRoot, "exporter", "dist", "cli.js");
if (files.some((f) => f.startsWith("test/"))) {
  spawnSync(process.execPath, [cli, "machine"], { cwd: repoRoot, stdio: "inherit" });
}
const result = spawnSync(
  process.execPath,
  // --conditions=source: profinfer's packages are imported from their TypeScript source
  [
    "--conditions=source",
    "--import",
    "tsx",
    "--test",
    "--test-concurrency=1",
    "--test-timeout=900000",
    ...files,
  ],
  { cwd: repoRoot, stdio: "inherit" },
);
process.exit(result.status ?? 1);
