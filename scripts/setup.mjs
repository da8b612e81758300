#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
// One-command set-up: Debian packages, npm dependencies, the pinned node-llama-cpp package, a
// llama.cpp build from the source it ships, and the observability stack the tests run for real
// (OpenTelemetry Collector, Jaeger, Prometheus and promtool, built from the Go modules pinned in
// test/stack/). Plain Node with no dependencies, because it runs before `npm install`. Idempotent: every step checks a stamp or the file it would produce first.
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { cpus, homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const rootPackage = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8"));
const nodeLlamaCppVersion = rootPackage.profinfer.nodeLlamaCpp;
const cacheRoot = process.env.PROFINFER_CACHE || join(homedir(), ".cache", "profinfer");
const manifestPath = join(cacheRoot, "manifest.json");
const isTty = process.stdout.isTTY === true;

// Debian packages and the command each one provides, so a warm machine needs no dpkg query per package.
const debianPackages = [
  ["clang", "clang"],
  ["llvm", "llvm-strip"],
  ["libbpf-dev", null],
  ["libelf-dev", null],
  ["zlib1g-dev", null],
  ["bpftool", "bpftool"],
  ["linux-perf", "perf"],
  ["cmake", "cmake"],
  ["make", "make"],
  ["g++", "g++"],
  ["pkg-config", "pkg-config"],
  ["git", "git"],
  ["chromium", "chromium"],
  // the OTLP tests make a self-signed certificate for their TLS endpoint
  ["openssl", "openssl"],
  // the README's and docs' commands are written as a user runs them, `sudo npx profinfer ...`,
  // and test/docsCommands.test.ts runs them so
  ["sudo", "sudo"],
];

// llama.cpp build options. The key of the cache folder is derived from them, so a change of any
// option gets a fresh build beside the old one instead of a silently reconfigured one. The targets
// are not part of the key: they choose what is built, not how, so a target added here is built
// into the existing folder, incrementally.
const llamaTargets = [
  "llama-cli",
  "llama-completion",
  "llama-server",
  "llama-bench",
  "llama-simple",
  "llama-eval-callback",
  "llama-gguf",
  // several sequences per llama_decode call, each reporting its own token counts (requests tests)
  "llama-batched",
  "llama-parallel",
];
const llamaCmakeOptions = {
  CMAKE_BUILD_TYPE: "RelWithDebInfo",
  BUILD_SHARED_LIBS: "ON",
  GGML_NATIVE: "ON",
  LLAMA_BUILD_TESTS: "OFF",
  LLAMA_OPENSSL: "OFF",
  LLAMA_BUILD_UI: "OFF",
  // The prebuilt web UI is downloaded at configure time; our machines reach no such host.
  LLAMA_USE_PREBUILT_UI: "OFF",
};

function log(message) {
  process.stdout.write(`[setup] ${message}\n`);
}

function fail(message) {
  process.stderr.write(`[setup] error: ${message}\n`);
  process.exit(1);
}

function formatSeconds(ms) {
  const s = Math.round(ms / 1000);
  return s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s` : `${s}s`;
}

function which(command) {
  return spawnSync("sh", ["-c", `command -v ${command}`], { stdio: "ignore" }).status === 0;
}

function runChecked(command, args, options = {}) {
  const result = spawnSync(command, args, { stdio: "inherit", ...options });
  if (result.status !== 0) {
    fail(`'${command} ${args.join(" ")}' exited with status ${result.status ?? result.signal}`);
  }
}

/**
 * Runs a long command and shows that it moves: a progress line rewritten in place on a terminal,
 * a line every 30 s otherwise (CI logs). `parseProgress` turns an output line into a fraction.
 */
function runWithProgress(label, command, args, { cwd, env, logFile, parseProgress }) {
  return new Promise((resolvePromise, rejectPromise) => {
    const started = Date.now();
    let fraction = 0;
    let lastLine = "";
    let lastReport = 0;
    const logLines = [];
    const child = spawn(command, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
    const report = (force) => {
      const now = Date.now();
      const pct = `${Math.floor(fraction * 100)}%`.padStart(4);
      const text = `${label}: ${pct} ${formatSeconds(now - started)} ${lastLine.slice(0, 60)}`;
      if (isTty) {
        process.stdout.write(`\r\x1b[K[setup] ${text}`);
      } else if (force || now - lastReport >= 30000) {
        process.stdout.write(`[setup] ${text}\n`);
        lastReport = now;
      }
    };
    const timer = setInterval(() => report(false), isTty ? 1000 : 5000);
    const onData = (chunk) => {
      for (const line of chunk.toString().split("\n")) {
        if (!line.trim()) continue;
        logLines.push(line);
        const p = parseProgress(line);
        if (p !== null) fraction = Math.max(fraction, p);
        lastLine = line.replace(/^\[\s*\d+%\]\s*/, "").trim();
      }
      report(false);
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.on("error", (error) => {
      clearInterval(timer);
      rejectPromise(error);
    });
    child.on("close", (code) => {
      clearInterval(timer);
      writeFileSync(logFile, logLines.join("\n") + "\n");
      if (isTty) process.stdout.write("\n");
      if (code === 0) {
        log(`${label}: done in ${formatSeconds(Date.now() - started)}`);
        resolvePromise();
      } else {
        const tail = logLines.slice(-30).join("\n");
        rejectPromise(new Error(`${label} failed (exit ${code}); full log: ${logFile}\n${tail}`));
      }
    });
  });
}

function ensureDebianPackages() {
  const missing = debianPackages.filter(([pkg, command]) =>
    command ? !which(command) : !existsSync(`/usr/share/doc/${pkg}`),
  );
  if (missing.length === 0) {
    log("Debian packages: all present");
    return;
  }
  const names = missing.map(([pkg]) => pkg);
  if (process.getuid?.() !== 0) {
    fail(
      `missing Debian packages: ${names.join(" ")}. Run as root, or install them first: ` +
        `sudo apt-get install -y ${names.join(" ")}`,
    );
  }
  log(`Debian packages: installing ${names.join(" ")}`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const listsStamp = "/var/lib/apt/lists/lock";
  const listsAge = existsSync("/var/lib/apt/lists")
    ? spawnSync("sh", ["-c", "ls /var/lib/apt/lists | wc -l"], { encoding: "utf8" }).stdout.trim()
    : "0";
  if (!existsSync(listsStamp) || Number(listsAge) < 5) {
    runChecked("apt-get", ["update", "-q"], { env });
  }
  const install = spawnSync(
    "apt-get",
    ["install", "-y", "-q", "--no-install-recommends", ...names],
    {
      stdio: "inherit",
      env,
    },
  );
  if (install.status !== 0) {
    // A stale package list is the usual cause; refresh once and retry.
    runChecked("apt-get", ["update", "-q"], { env });
    runChecked("apt-get", ["install", "-y", "-q", "--no-install-recommends", ...names], { env });
  }
}

function fileHash(path) {
  return existsSync(path) ? createHash("sha256").update(readFileSync(path)).digest("hex") : "none";
}

function ensureNpmDependencies() {
  const lock = join(repoRoot, "package-lock.json");
  const stampPath = join(repoRoot, "node_modules", ".profinfer-setup-stamp");
  const wanted = `${fileHash(lock)} ${fileHash(join(repoRoot, "package.json"))} ${process.version}`;
  if (existsSync(stampPath) && readFileSync(stampPath, "utf8") === wanted) {
    log("npm dependencies: up to date");
    return;
  }
  log("npm dependencies: installing");
  runChecked("npm", [existsSync(lock) ? "ci" : "install", "--no-audit", "--no-fund"], {
    cwd: repoRoot,
  });
  writeFileSync(stampPath, wanted);
}

function ensureNodeLlamaCppPackage() {
  // Installed into the cache, not the repo: it is a profiling target, and the package's optional
  // dependencies would otherwise pull every GPU variant. Its install script is not run: it would
  // try to download or build binaries, and the prebuilt package already carries them.
  const dir = join(cacheRoot, `node-llama-cpp-${nodeLlamaCppVersion}`);
  const pkgJson = join(dir, "node_modules", "node-llama-cpp", "package.json");
  const prebuiltDir = join(
    dir,
    "node_modules",
    "@node-llama-cpp",
    "linux-x64",
    "bins",
    "linux-x64",
  );
  if (existsSync(pkgJson) && existsSync(join(prebuiltDir, "llama-addon.node"))) {
    log(`node-llama-cpp ${nodeLlamaCppVersion}: present in ${dir}`);
  } else {
    log(`node-llama-cpp ${nodeLlamaCppVersion}: installing into ${dir}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(
      join(dir, "package.json"),
      JSON.stringify(
        {
          name: "profinfer-target-node-llama-cpp",
          private: true,
          dependencies: {
            "node-llama-cpp": nodeLlamaCppVersion,
            "@node-llama-cpp/linux-x64": nodeLlamaCppVersion,
          },
        },
        null,
        2,
      ),
    );
    runChecked(
      "npm",
      [
        "install",
        "--omit=optional",
        "--ignore-scripts",
        "--no-audit",
        "--no-fund",
        "--loglevel=error",
      ],
      { cwd: dir },
    );
  }
  return {
    dir,
    prebuiltDir,
    bundle: join(dir, "node_modules", "node-llama-cpp", "llama", "gitRelease.bundle"),
  };
}

// A native build is only valid on a CPU with the same features.
function cpuKey() {
  const cpuModel = cpus()[0]?.model ?? "unknown-cpu";
  return `cpu${createHash("sha256").update(cpuModel).digest("hex").slice(0, 6)}`;
}

function llamaBuildKey() {
  const optionsHash = createHash("sha256")
    .update(JSON.stringify({ llamaCmakeOptions }))
    .digest("hex")
    .slice(0, 8);
  return `llama.cpp-${nodeLlamaCppVersion}-${llamaCmakeOptions.CMAKE_BUILD_TYPE.toLowerCase()}-${optionsHash}-${cpuKey()}`;
}

/**
 * The cache folder of this build: one whose finished build has the same node-llama-cpp version,
 * options and CPU, whatever targets it holds (folders named before the targets left the key hashed
 * them too), else the folder of the key.
 */
function llamaBuildDir(key) {
  const prefix = `llama.cpp-${nodeLlamaCppVersion}-`;
  const suffix = `-${cpuKey()}`;
  const candidates = existsSync(cacheRoot)
    ? readdirSync(cacheRoot)
        .filter((name) => name.startsWith(prefix) && name.endsWith(suffix))
        .sort((a, b) => (a === key ? -1 : b === key ? 1 : a.localeCompare(b)))
    : [];
  for (const name of candidates) {
    const stampPath = join(cacheRoot, name, "build-complete.json");
    if (!existsSync(stampPath)) continue;
    const stamp = JSON.parse(readFileSync(stampPath, "utf8"));
    if (
      stamp.nodeLlamaCppVersion === nodeLlamaCppVersion &&
      JSON.stringify(stamp.options) === JSON.stringify(llamaCmakeOptions)
    ) {
      return { key: name, dir: join(cacheRoot, name) };
    }
  }
  return { key, dir: join(cacheRoot, key) };
}

async function ensureLlamaCppBuild(nodeLlamaCpp) {
  const { key, dir } = llamaBuildDir(llamaBuildKey());
  const srcDir = join(dir, "src");
  const buildDir = join(dir, "build");
  const binDir = join(buildDir, "bin");
  const doneStamp = join(dir, "build-complete.json");
  if (existsSync(doneStamp) && llamaTargets.every((t) => existsSync(join(binDir, t)))) {
    log(`llama.cpp build: present in ${dir}`);
    return JSON.parse(readFileSync(doneStamp, "utf8"));
  }
  mkdirSync(dir, { recursive: true });
  if (!existsSync(join(srcDir, "CMakeLists.txt"))) {
    log(`llama.cpp source: cloning ${nodeLlamaCpp.bundle}`);
    rmSync(srcDir, { recursive: true, force: true });
    runChecked("git", ["clone", "--quiet", nodeLlamaCpp.bundle, srcDir]);
  }
  const commit = spawnSync("git", ["-C", srcDir, "rev-parse", "HEAD"], {
    encoding: "utf8",
  }).stdout.trim();
  const releaseInfo = JSON.parse(
    readFileSync(
      join(nodeLlamaCpp.dir, "node_modules", "node-llama-cpp", "llama", "llama.cpp.info.json"),
      "utf8",
    ),
  );
  if (!existsSync(join(buildDir, "CMakeCache.txt"))) {
    log("llama.cpp: configuring");
    const defines = Object.entries(llamaCmakeOptions).map(([k, v]) => `-D${k}=${v}`);
    runChecked("cmake", ["-S", srcDir, "-B", buildDir, ...defines], {
      stdio: ["ignore", "ignore", "inherit"],
    });
  }
  log(
    `llama.cpp: building ${llamaTargets.join(", ")} with ${cpus().length} jobs ` +
      "(about 7 minutes on 2 cores when cold; the result is cached)",
  );
  try {
    await runWithProgress(
      "llama.cpp build",
      "cmake",
      ["--build", buildDir, "-j", String(cpus().length), "--target", ...llamaTargets],
      {
        cwd: dir,
        logFile: join(dir, "build.log"),
        parseProgress: (line) => {
          const m = /^\[\s*(\d+)%\]/.exec(line);
          return m ? Number(m[1]) / 100 : null;
        },
      },
    );
  } catch (error) {
    fail(error.message);
  }
  const info = {
    key,
    nodeLlamaCppVersion,
    llamaCppRelease: releaseInfo.tag,
    commit,
    srcDir,
    buildDir,
    binDir,
    options: llamaCmakeOptions,
    targets: llamaTargets,
  };
  writeFileSync(doneStamp, JSON.stringify(info, null, 2));
  return info;
}

// The observability stack the tests run for real, each built from a Go module of its own in
// test/stack/<name> (go.mod and go.sum pin every module; the collector's main.go names its
// components). `release` turns the version of `versionModule` in go.mod into the release it is:
// that go.mod is the one place a version is written.
const stackComponents = [
  {
    name: "otelcol",
    versionModule: "go.opentelemetry.io/collector/otelcol",
    release: (v) => v.replace(/^v/, ""),
    packages: ["."],
    binaries: ["otelcol"],
  },
  {
    name: "jaeger",
    versionModule: "github.com/jaegertracing/jaeger",
    release: (v) => v.replace(/^v/, ""),
    packages: ["github.com/jaegertracing/jaeger/cmd/jaeger"],
    binaries: ["jaeger"],
  },
  {
    // Prometheus tags its Go module v0.3XY.Z for the release v3.XY.Z
    name: "prometheus",
    versionModule: "github.com/prometheus/prometheus",
    release: (v) => {
      const m = /^v0\.3(\d\d)\.(\d+)$/.exec(v);
      return m ? `3.${Number(m[1])}.${m[2]}` : v;
    },
    packages: [
      "github.com/prometheus/prometheus/cmd/prometheus",
      "github.com/prometheus/prometheus/cmd/promtool",
    ],
    binaries: ["prometheus", "promtool"],
  },
];
const stackSourceDir = join(repoRoot, "test", "stack");

/**
 * The Go environment of the stack's builds: module and build caches in the profinfer cache, the
 * machine's own Go (a toolchain line never downloads another), static binaries.
 */
function goEnv() {
  return {
    ...process.env,
    GOMODCACHE: join(cacheRoot, "go", "mod"),
    GOCACHE: join(cacheRoot, "go", "build"),
    GOFLAGS: "-mod=readonly -buildvcs=false -trimpath",
    GOTOOLCHAIN: "local",
    CGO_ENABLED: "0",
  };
}

/** The Go on PATH, when it is at least the version every test/stack/go.mod asks for. */
function ensureGo() {
  const wanted = Math.max(
    ...stackComponents.map((c) => {
      const m = /^go 1\.(\d+)/m.exec(readFileSync(join(stackSourceDir, c.name, "go.mod"), "utf8"));
      return Number(m?.[1] ?? 0);
    }),
  );
  const found = spawnSync("go", ["env", "GOVERSION"], { encoding: "utf8", env: goEnv() });
  const minor = Number(/^go1\.(\d+)/.exec(found.stdout?.trim() ?? "")?.[1] ?? -1);
  if (found.status !== 0 || minor < wanted) {
    fail(
      `the observability stack for the tests is built with Go >= 1.${wanted}, and ` +
        (found.status === 0 ? `'go' on PATH is ${found.stdout.trim()}` : "no 'go' is on PATH") +
        `. Install Go 1.${wanted} (https://go.dev/dl/, or the golang.org/toolchain module from ` +
        "a Go module proxy) so that 'go' is on PATH, then run 'npm run setup' again.",
    );
  }
  return found.stdout.trim();
}

function stackBuild(component, goVersion) {
  const sourceDir = join(stackSourceDir, component.name);
  const files = readdirSync(sourceDir)
    .filter((f) => f === "go.mod" || f === "go.sum" || f.endsWith(".go"))
    .sort();
  const hash = createHash("sha256");
  for (const f of files) hash.update(f).update(readFileSync(join(sourceDir, f)));
  hash.update(goVersion);
  const goMod = readFileSync(join(sourceDir, "go.mod"), "utf8");
  const escaped = component.versionModule.replace(/[.]/g, "\\.");
  const moduleVersion = new RegExp(`^\\s*${escaped} (v\\S+)`, "m").exec(goMod)?.[1];
  if (!moduleVersion) fail(`${sourceDir}/go.mod does not require ${component.versionModule}`);
  const version = component.release(moduleVersion);
  const key = `${component.name}-${version}-${hash.digest("hex").slice(0, 8)}`;
  return { sourceDir, key, version, moduleVersion, dir: join(cacheRoot, key) };
}

async function ensureStackComponent(component, goVersion) {
  const { sourceDir, key, version, moduleVersion, dir } = stackBuild(component, goVersion);
  const binDir = join(dir, "bin");
  const doneStamp = join(dir, "build-complete.json");
  const binaries = Object.fromEntries(component.binaries.map((b) => [b, join(binDir, b)]));
  if (existsSync(doneStamp) && Object.values(binaries).every((b) => existsSync(b))) {
    log(`${component.name} ${version}: present in ${dir}`);
    return JSON.parse(readFileSync(doneStamp, "utf8"));
  }
  mkdirSync(binDir, { recursive: true });
  const env = goEnv();
  const started = Date.now();
  log(`${component.name} ${version}: downloading its Go modules (cached in ${env.GOMODCACHE})`);
  runChecked("go", ["mod", "download"], {
    cwd: sourceDir,
    env,
    stdio: ["ignore", "ignore", "inherit"],
  });
  const downloadMs = Date.now() - started;
  // `go build -v` names each package as it compiles it: the share of the dependencies named so far
  const listed = spawnSync("go", ["list", "-deps", ...component.packages], {
    cwd: sourceDir,
    env,
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
  });
  if (listed.status !== 0) fail(`go list in ${sourceDir} failed:\n${listed.stderr}`);
  const total = listed.stdout.split("\n").filter(Boolean).length;
  let compiled = 0;
  log(
    `${component.name} ${version}: building ${component.binaries.join(", ")} (${total} packages)`,
  );
  const buildStarted = Date.now();
  try {
    await runWithProgress(
      `${component.name} build`,
      "go",
      ["build", "-v", "-o", binDir + "/", ...component.packages],
      {
        cwd: sourceDir,
        env,
        logFile: join(dir, "build.log"),
        parseProgress: (line) => (/^[\w.-]+(\/[\w.~-]+)*$/.test(line) ? ++compiled / total : null),
      },
    );
  } catch (error) {
    fail(error.message);
  }
  const info = {
    key,
    version,
    moduleVersion,
    goVersion,
    sourceDir,
    dir,
    binaries,
    downloadSeconds: Math.round(downloadMs / 1000),
    buildSeconds: Math.round((Date.now() - buildStarted) / 1000),
  };
  writeFileSync(doneStamp, JSON.stringify(info, null, 2));
  return info;
}

async function ensureStack() {
  const goVersion = ensureGo();
  const stack = {};
  for (const component of stackComponents) {
    stack[component.name] = await ensureStackComponent(component, goVersion);
  }
  return stack;
}

async function main() {
  const started = Date.now();
  log(`cache: ${cacheRoot}`);
  mkdirSync(cacheRoot, { recursive: true });
  ensureDebianPackages();
  ensureNpmDependencies();
  const nodeLlamaCpp = ensureNodeLlamaCppPackage();
  const llamaCpp = await ensureLlamaCppBuild(nodeLlamaCpp);
  const stack = await ensureStack();
  const manifest = {
    version: 1,
    nodeLlamaCpp: { version: nodeLlamaCppVersion, ...nodeLlamaCpp },
    llamaCpp,
    stack,
  };
  const text = JSON.stringify(manifest, null, 2) + "\n";
  if (!existsSync(manifestPath) || readFileSync(manifestPath, "utf8") !== text) {
    writeFileSync(manifestPath, text);
  }
  log(`ready in ${formatSeconds(Date.now() - started)} (manifest: ${manifestPath})`);
}

main().catch((error) => fail(error.stack ?? String(error)));
