// SPDX-License-Identifier: Apache-2.0
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

/** What `npm run setup` (scripts/setup.mjs) built and where; the one place both sides agree on. */
export interface CacheManifest {
  version: 1;
  nodeLlamaCpp: {
    version: string;
    /** npm prefix holding node_modules/node-llama-cpp and @node-llama-cpp/linux-x64 */
    dir: string;
    /** folder of the prebuilt libraries (libllama, libggml-*, llama-addon.node) */
    prebuiltDir: string;
    /** llama.cpp source as a git bundle, shipped inside node-llama-cpp */
    bundle: string;
  };
  llamaCpp: {
    key: string;
    nodeLlamaCppVersion: string;
    llamaCppRelease: string;
    commit: string;
    srcDir: string;
    buildDir: string;
    binDir: string;
    options: Record<string, string>;
    targets: string[];
  };
  /**
   * The observability stack the tests run for real (otelcol, jaeger, prometheus), built from the
   * Go modules pinned in test/stack/; absent in manifests written before set-up built it.
   */
  stack?: Record<string, StackComponent>;
}

export interface StackComponent {
  key: string;
  /** the release, e.g. "3.5.0" for Prometheus (its Go module is tagged v0.305.0) */
  version: string;
  moduleVersion: string;
  goVersion: string;
  dir: string;
  /** binary name -> path */
  binaries: Record<string, string>;
  downloadSeconds: number;
  buildSeconds: number;
}

export function cacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  return env.PROFINFER_CACHE || join(homedir(), ".cache", "profinfer");
}

export function manifestPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(cacheRoot(env), "manifest.json");
}

export class SetupMissingError extends Error {
  override name = "SetupMissingError";
}

/** Reads the set-up manifest, or returns null when set-up has not run on this machine. */
export function readManifest(env: NodeJS.ProcessEnv = process.env): CacheManifest | null {
  const path = manifestPath(env);
  if (!existsSync(path)) return null;
  const parsed = JSON.parse(readFileSync(path, "utf8")) as CacheManifest;
  if (parsed.version !== 1) {
    throw new SetupMissingError(
      `${path} has manifest version ${String(parsed.version)}, this profinfer reads version 1: run 'npm run setup' again`,
    );
  }
  return parsed;
}

/** Like readManifest, but a missing set-up is an error that says what to run. */
export function requireManifest(env: NodeJS.ProcessEnv = process.env): CacheManifest {
  const manifest = readManifest(env);
  if (!manifest) {
    throw new SetupMissingError(
      `no llama.cpp targets found: ${manifestPath(env)} does not exist. Run 'npm run setup' in the profinfer checkout (it builds llama.cpp into ${cacheRoot(env)}).`,
    );
  }
  return manifest;
}

/** The path of a program built from the bundled llama.cpp source (llama-cli, llama-bench, ...). */
export function llamaBinary(manifest: CacheManifest, name: string): string {
  const path = join(manifest.llamaCpp.binDir, name);
  if (!existsSync(path)) {
    throw new SetupMissingError(
      `${name} is not in ${manifest.llamaCpp.binDir}; built targets are ${manifest.llamaCpp.targets.join(", ")}. Run 'npm run setup'.`,
    );
  }
  return path;
}

/** The path of a program of the test stack (otelcol, jaeger, prometheus, promtool) set-up built. */
export function stackBinary(
  manifest: CacheManifest,
  component: string,
  binary = component,
): string {
  const path = manifest.stack?.[component]?.binaries[binary];
  if (!path || !existsSync(path)) {
    throw new SetupMissingError(
      `${binary} (of ${component}) is not built in ${cacheRoot()}: run 'npm run setup', which builds the test stack from test/stack/${component}/go.mod.`,
    );
  }
  return path;
}

/** Where `profinfer models` writes by default and where demo and tests look for models. */
export function modelsDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(cacheRoot(env), "models");
}
