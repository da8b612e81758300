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
  llamaCpp: LlamaCppBuild;
  /**
   * Other kinds of build that the tests trace (test/builds.test.ts); absent in manifests written
   * before set-up built them.
   */
  builds?: OtherBuilds;
  /**
   * llama.cpp with ggml's BLAS, Vulkan and RPC backends (test/backends.test.ts); absent in
   * manifests written before set-up built it
   */
  backends?: CacheManifest["llamaCpp"] & { patches?: string[]; buildSeconds?: number };
  /**
   * The observability stack the tests run for real (otelcol, jaeger, prometheus), built from the
   * Go modules pinned in test/stack/; absent in manifests written before set-up built it.
   */
  stack?: Record<string, StackComponent>;
  /**
   * Python tools the tests run (kubernetes-validate), each pinned in package.json's profinfer
   * field and installed by set-up into a virtual environment of its own; absent before set-up
   * installed them.
   */
  python?: Record<string, PythonTool>;
}

export interface PythonTool {
  version: string;
  /** the virtual environment */
  dir: string;
  /** command name -> path */
  binaries: Record<string, string>;
}

/** A llama.cpp built by set-up from the source a node-llama-cpp version ships. */
export interface LlamaCppBuild {
  key: string;
  nodeLlamaCppVersion: string;
  llamaCppRelease: string;
  commit: string;
  srcDir: string;
  buildDir: string;
  binDir: string;
  options: Record<string, string>;
  /**
   * option sets built in turn in one tree, each one's targets copied into its own folder, with
   * what each took (absent in builds made before set-up recorded it)
   */
  variants?: Record<
    string,
    { options: Record<string, string>; binDir: string } & Partial<BuildTimes>
  >;
  targets: string[];
  /** the cold build's wall time (absent in builds made before set-up recorded it) */
  buildSeconds?: number;
  /** its CPU time (absent in builds made before set-up recorded it) */
  cpuSeconds?: number;
}

/**
 * What a cold build took: wall time, and CPU time (user and system of the build's processes),
 * which another load on the machine changes far less than the wall time.
 */
export interface BuildTimes {
  buildSeconds: number;
  cpuSeconds: number;
}

export interface OtherBuilds {
  /** the pinned source linked into one executable; variants "static" and "static-openmp" */
  static: LlamaCppBuild;
  /** older releases, oldest first */
  releases: LlamaCppBuild[];
  llamaCppPython: LlamaCppPythonBuild;
}

/** llama-cpp-python in a virtual environment of its own, built by pip from its source. */
export interface LlamaCppPythonBuild {
  key: string;
  version: string;
  dir: string;
  /** the environment's interpreter */
  python: string;
  /** the package's llama.cpp and ggml libraries */
  libDir: string;
  options: Record<string, string>;
  buildSeconds: number;
  /** absent in builds made before set-up recorded it */
  cpuSeconds?: number;
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

/** A command of a Python tool set-up installed (manifest.python). */
export function pythonToolBinary(manifest: CacheManifest, tool: string, binary = tool): string {
  const path = manifest.python?.[tool]?.binaries[binary];
  if (!path || !existsSync(path)) {
    throw new SetupMissingError(
      `${binary} (Python package ${tool}) is not installed in ${cacheRoot()}: run 'npm run setup'.`,
    );
  }
  return path;
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

/** The other builds set-up made, or an error that says to run it. */
export function otherBuilds(manifest: CacheManifest): OtherBuilds {
  if (!manifest.builds) {
    throw new SetupMissingError(
      `the static, older-release and llama-cpp-python builds are not in ${cacheRoot()}: run 'npm run setup'.`,
    );
  }
  return manifest.builds;
}

/** A program of the BLAS, Vulkan and RPC build (llama-completion, llama-bench, ggml-rpc-server). */
export function backendsBinary(manifest: CacheManifest, name: string): string {
  const path = manifest.backends ? join(manifest.backends.binDir, name) : null;
  if (!path || !existsSync(path)) {
    throw new SetupMissingError(
      `${name} of the BLAS, Vulkan and RPC build is not in ${cacheRoot()}: run 'npm run setup'.`,
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
