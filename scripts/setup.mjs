#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
// One-command set-up: Debian packages, npm dependencies, the pinned node-llama-cpp package, a
// llama.cpp build from the source it ships, and the observability stack the tests run for real
// (OpenTelemetry Collector, Jaeger, Prometheus and promtool, built from the Go modules pinned in
// test/stack/). Plain Node with no dependencies, because it runs before `npm install`. Idempotent: every step checks a stamp or the file it would produce first.
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
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
  // the memory-bound test checks the roofline against a bandwidth another tool measures
  ["sysbench", "sysbench"],
  // the agent's systemd unit is checked with systemd-analyze verify
  ["systemd", "systemd-analyze"],
  // ggml's BLAS and Vulkan backends (test/backends.test.ts): OpenBLAS, the Vulkan loader and
  // headers, the shader compiler and Mesa's lavapipe, a Vulkan driver that runs on the CPU
  ["libopenblas-dev", null],
  ["libvulkan-dev", null],
  ["spirv-headers", null],
  ["glslc", "glslc"],
  ["mesa-vulkan-drivers", null],
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
 * CPU seconds used by this process's finished children (cutime + cstime of /proc/self/stat, in
 * USER_HZ ticks, 100 on Linux): a build's CPU time, which the machine's other load barely changes
 * while its wall time can triple.
 */
function childCpuSeconds() {
  const fields = readFileSync("/proc/self/stat", "utf8").split(") ").at(-1).split(" ");
  return (Number(fields[13]) + Number(fields[14])) / 100;
}

/**
 * Runs a long command and shows that it moves: a progress line rewritten in place on a terminal,
 * a line every 30 s otherwise (CI logs). `parseProgress` turns an output line into a fraction.
 */
function runWithProgress(label, command, args, { cwd, env, logFile, parseProgress }) {
  return new Promise((resolvePromise, rejectPromise) => {
    const started = Date.now();
    const cpuBefore = childCpuSeconds();
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
        const cpuSeconds = Math.round(childCpuSeconds() - cpuBefore);
        log(`${label}: done in ${formatSeconds(Date.now() - started)} (${cpuSeconds} CPU seconds)`);
        resolvePromise({ cpuSeconds });
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
  const releaseInfo = JSON.parse(
    readFileSync(
      join(nodeLlamaCpp.dir, "node_modules", "node-llama-cpp", "llama", "llama.cpp.info.json"),
      "utf8",
    ),
  );
  return buildLlamaCpp({
    label: "llama.cpp",
    key,
    dir,
    bundle: nodeLlamaCpp.bundle,
    nodeLlamaCppVersion,
    llamaCppRelease: releaseInfo.tag,
    options: llamaCmakeOptions,
    targets: llamaTargets,
    expected: "about 7 minutes on 2 cores when cold",
  });
}

/**
 * Clones `bundle` and builds `targets` with `options` in `dir`, once: a finished build leaves
 * build-complete.json, which is returned as it is on later runs. With `variants`, one build tree
 * serves several option sets that differ in a few options (a reconfigure rebuilds only what they
 * change): each variant's targets are copied into `dir/<variant>` before the next is configured.
 */
async function buildLlamaCpp(build) {
  const { label, key, dir, bundle, options, targets, variants } = build;
  const srcDir = join(dir, "src");
  const buildDir = join(dir, "build");
  const binDir = join(buildDir, "bin");
  const doneStamp = join(dir, "build-complete.json");
  const outputs = variants
    ? variants.flatMap((v) => targets.map((t) => join(dir, v.name, t)))
    : targets.map((t) => join(binDir, t));
  const patchesWanted = (build.patches ?? []).map((p) => p.why);
  if (existsSync(doneStamp) && outputs.every((o) => existsSync(o))) {
    const stamp = JSON.parse(readFileSync(doneStamp, "utf8"));
    // a patch added or changed is applied and built into the same folder, incrementally
    if (JSON.stringify(stamp.patches ?? []) === JSON.stringify(patchesWanted)) {
      log(`${label} build: present in ${dir}`);
      return stamp;
    }
  }
  const started = Date.now();
  mkdirSync(dir, { recursive: true });
  if (!existsSync(join(srcDir, "CMakeLists.txt"))) {
    log(`${label} source: cloning ${bundle}`);
    rmSync(srcDir, { recursive: true, force: true });
    runChecked("git", ["clone", "--quiet", bundle, srcDir]);
  }
  const commit = spawnSync("git", ["-C", srcDir, "rev-parse", "HEAD"], {
    encoding: "utf8",
  }).stdout.trim();
  let cpuSeconds = 0;
  const variantTimes = {};
  for (const patch of build.patches ?? []) applyPatch(srcDir, patch);
  for (const variant of variants ?? [{ name: null, options: {} }]) {
    const variantStarted = Date.now();
    const variantOptions = { ...options, ...variant.options };
    const variantLabel = variant.name ? `${label} (${variant.name})` : label;
    const configured = join(buildDir, "CMakeCache.txt");
    if (!existsSync(configured) || variant.name) {
      log(`${variantLabel}: configuring`);
      const defines = Object.entries(variantOptions).map(([k, v]) => `-D${k}=${v}`);
      runChecked("cmake", ["-S", srcDir, "-B", buildDir, ...defines], {
        stdio: ["ignore", "ignore", "inherit"],
      });
    }
    log(
      `${variantLabel}: building ${targets.join(", ")} with ${cpus().length} jobs ` +
        `(${build.expected}; the result is cached)`,
    );
    try {
      const built = await runWithProgress(
        `${variantLabel} build`,
        "cmake",
        ["--build", buildDir, "-j", String(cpus().length), "--target", ...targets],
        {
          cwd: dir,
          logFile: join(dir, variant.name ? `build-${variant.name}.log` : "build.log"),
          parseProgress: (line) => {
            const m = /^\[\s*(\d+)%\]/.exec(line);
            return m ? Number(m[1]) / 100 : null;
          },
        },
      );
      cpuSeconds += built.cpuSeconds;
      variantTimes[variant.name] = {
        buildSeconds: Math.round((Date.now() - variantStarted) / 1000),
        cpuSeconds: built.cpuSeconds,
      };
    } catch (error) {
      fail(error.message);
    }
    if (variant.name) {
      mkdirSync(join(dir, variant.name), { recursive: true });
      for (const t of targets) copyFileSync(join(binDir, t), join(dir, variant.name, t));
    }
  }
  const info = {
    key,
    nodeLlamaCppVersion: build.nodeLlamaCppVersion,
    llamaCppRelease: build.llamaCppRelease,
    commit,
    srcDir,
    buildDir,
    binDir,
    options,
    ...(variants
      ? {
          variants: Object.fromEntries(
            variants.map((v) => [
              v.name,
              { options: v.options, binDir: join(dir, v.name), ...variantTimes[v.name] },
            ]),
          ),
        }
      : {}),
    targets,
    ...(build.patches ? { patches: patchesWanted } : {}),
    buildSeconds: Math.round((Date.now() - started) / 1000),
    cpuSeconds,
  };
  writeFileSync(doneStamp, JSON.stringify(info, null, 2));
  return info;
}

/**
 * A build fix to the source: every `find` of `file` becomes `replace`, once (a file that already
 * holds the replacement is left alone). A source that has neither fails, with `why`.
 */
function applyPatch(srcDir, patch) {
  const path = join(srcDir, patch.file);
  const text = readFileSync(path, "utf8");
  if (patch.edits.every((e) => text.includes(e.replace))) return;
  let patched = text;
  for (const edit of patch.edits) {
    if (!patched.includes(edit.find)) {
      fail(`${path} is not the source this patch was written for (${patch.why})`);
    }
    patched = patched.replace(edit.find, edit.replace);
  }
  writeFileSync(path, patched);
  log(`patched ${patch.file}: ${patch.why}`);
}

// llama.cpp with the non-CPU backends that run on a machine without a GPU, traced by
// test/backends.test.ts: ggml's BLAS backend over OpenBLAS, its Vulkan backend (Mesa's lavapipe
// runs it on the CPU) and its RPC backend (a backend profinfer has no probes for, served by
// rpc-server on localhost). One build holds all three, because most of a build is what they share
// (ggml, llama, the tools); each run picks its devices (--device, --rpc). Only the targets the
// tests and the bench run.
const backendTargets = ["llama-completion", "llama-bench", "ggml-rpc-server"];
const backendCmakeOptions = {
  ...llamaCmakeOptions,
  GGML_BLAS: "ON",
  GGML_BLAS_VENDOR: "OpenBLAS",
  GGML_VULKAN: "ON",
  GGML_RPC: "ON",
};

/**
 * The pinned source compiles one pair of Intel-only flash-attention shaders (fa_decode_ph1/ph2,
 * for Xe GPUs) with cooperative matrices unconditionally, where every other such shader is
 * guarded by GGML_VULKAN_COOPMAT_GLSLC_SUPPORT; Debian 12's glslc has no
 * GL_KHR_cooperative_matrix, so they get the same guard, in the generator and where the pipeline
 * is made. Nothing else changes: lavapipe never takes that Xe path. And it sets the validation
 * layer's options through VK_EXT_layer_settings, which Debian 12's Vulkan headers predate: that
 * code is kept where the headers have the extension (the options only matter with the validation
 * layer, GGML_VULKAN_VALIDATE builds).
 */
const COOPMAT = "#if defined(GGML_VULKAN_COOPMAT_GLSLC_SUPPORT)";
const backendPatches = [
  {
    file: "ggml/src/ggml-vulkan/vulkan-shaders/vulkan-shaders-gen.cpp",
    why: "guard the Xe flash-attention decode shaders by GGML_VULKAN_COOPMAT_GLSLC_SUPPORT",
    edits: [
      {
        find: '    string_to_spv("fa_decode_ph1", "flash_attn_decode_phase_1.comp", {}, true, true, false, false);\n    string_to_spv("fa_decode_ph2", "flash_attn_decode_phase_2.comp", {}, true, true, false, false);\n',
        replace: `${COOPMAT}\n    string_to_spv("fa_decode_ph1", "flash_attn_decode_phase_1.comp", {}, true, true, false, false);\n    string_to_spv("fa_decode_ph2", "flash_attn_decode_phase_2.comp", {}, true, true, false, false);\n#endif\n`,
      },
    ],
  },
  {
    file: "ggml/src/ggml-vulkan/ggml-vulkan.cpp",
    why: "set the validation layer's options only where the Vulkan headers have VK_EXT_layer_settings (Debian 12's 1.3.239 has not)",
    edits: [
      {
        find: "    VkBool32 enable_best_practice = layer_settings;\n",
        replace:
          "#ifdef VK_EXT_layer_settings\n    VkBool32 enable_best_practice = layer_settings;\n",
      },
      {
        find: "    vk::InstanceCreateInfo instance_create_info(vk::InstanceCreateFlags{}, &app_info, layers, extensions, &layer_setting_info);\n",
        replace:
          "    vk::InstanceCreateInfo instance_create_info(vk::InstanceCreateFlags{}, &app_info, layers, extensions, &layer_setting_info);\n#else\n    vk::InstanceCreateInfo instance_create_info(vk::InstanceCreateFlags{}, &app_info, layers, extensions);\n#endif\n",
      },
    ],
  },
  {
    file: "ggml/src/ggml-vulkan/ggml-vulkan.cpp",
    why: "create the Xe flash-attention decode pipelines only where their shaders were compiled",
    edits: [
      {
        find: '            ggml_vk_create_pipeline(device, pipelines.first, "xe_fa_decode_ph1"',
        replace: `${COOPMAT}\n            ggml_vk_create_pipeline(device, pipelines.first, "xe_fa_decode_ph1"`,
      },
      {
        find: "out_dim_per_wg }, 1, false, true, xe_native_sub_group_size);\n",
        replace: "out_dim_per_wg }, 1, false, true, xe_native_sub_group_size);\n#endif\n",
      },
    ],
  },
];

async function ensureBackendsBuild(nodeLlamaCpp, pinned) {
  const optionsHash = createHash("sha256")
    .update(JSON.stringify({ backendCmakeOptions }))
    .digest("hex")
    .slice(0, 8);
  const key = `llama.cpp-${nodeLlamaCppVersion}-backends-${optionsHash}-${cpuKey()}`;
  return buildLlamaCpp({
    label: "llama.cpp backends",
    key,
    dir: join(cacheRoot, key),
    bundle: nodeLlamaCpp.bundle,
    nodeLlamaCppVersion,
    llamaCppRelease: pinned.llamaCppRelease,
    options: backendCmakeOptions,
    targets: backendTargets,
    patches: backendPatches,
    expected: "about 7 minutes on 2 cores when cold",
  });
}

// Other kinds of build and other releases, traced by test/builds.test.ts. Each builds only the
// targets those tests run. A llama.cpp linked into one executable (BUILD_SHARED_LIBS=OFF), without
// and with OpenMP: one build tree, reconfigured, so that the second variant rebuilds only the CPU
// backend (the one part OpenMP changes). Older releases, from the llama.cpp source older
// node-llama-cpp versions ship, built like the pinned one. llama-cpp-python, built from its
// source on PyPI against the llama.cpp it bundles, as `pip install` builds it for a user.
const staticBuild = {
  targets: ["llama-completion", "llama-eval-callback"],
  options: { ...llamaCmakeOptions, BUILD_SHARED_LIBS: "OFF" },
  variants: [
    { name: "static", options: { GGML_OPENMP: "OFF" } },
    { name: "static-openmp", options: { GGML_OPENMP: "ON" } },
  ],
};
const releaseTargets = ["llama-cli", "llama-eval-callback"];
// curl was on by default in 2025's releases, and its headers are not installed here
const releaseCmakeOptions = { ...llamaCmakeOptions, LLAMA_CURL: "OFF" };
const olderReleases = rootPackage.profinfer.olderReleases;
const llamaCppPythonVersion = rootPackage.profinfer.llamaCppPython;

function optionsKey(value) {
  return createHash("sha256").update(JSON.stringify(value)).digest("hex").slice(0, 8);
}

async function ensureStaticBuild(nodeLlamaCpp, pinned) {
  const key = `llama.cpp-${nodeLlamaCppVersion}-static-${optionsKey(staticBuild)}-${cpuKey()}`;
  return buildLlamaCpp({
    label: "llama.cpp static",
    key,
    dir: join(cacheRoot, key),
    bundle: nodeLlamaCpp.bundle,
    nodeLlamaCppVersion,
    llamaCppRelease: pinned.llamaCppRelease,
    ...staticBuild,
    expected: "about 5 minutes on 2 cores when cold, then 2 for the OpenMP variant",
  });
}

/** The llama.cpp source an older node-llama-cpp ships, unpacked from its npm package. */
function olderReleaseSource(version) {
  const dir = join(cacheRoot, `node-llama-cpp-${version}-source`);
  const bundle = join(dir, "package", "llama", "gitRelease.bundle");
  const infoPath = join(dir, "package", "llama", "llama.cpp.info.json");
  if (!existsSync(bundle) || !existsSync(infoPath)) {
    log(`node-llama-cpp ${version}: fetching its llama.cpp source`);
    mkdirSync(dir, { recursive: true });
    const packed = spawnSync(
      "npm",
      ["pack", `node-llama-cpp@${version}`, "--pack-destination", dir, "--silent"],
      { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] },
    );
    const tarball = packed.stdout.trim().split("\n").at(-1);
    if (packed.status !== 0 || !tarball) fail(`npm pack node-llama-cpp@${version} failed`);
    runChecked("tar", [
      "-xzf",
      join(dir, tarball),
      "-C",
      dir,
      "package/llama/gitRelease.bundle",
      "package/llama/llama.cpp.info.json",
    ]);
    rmSync(join(dir, tarball));
  }
  return { bundle, release: JSON.parse(readFileSync(infoPath, "utf8")).tag };
}

async function ensureOlderReleases() {
  const builds = [];
  for (const version of olderReleases) {
    const source = olderReleaseSource(version);
    const key = `llama.cpp-${source.release}-${version}-${optionsKey({ releaseCmakeOptions, releaseTargets })}-${cpuKey()}`;
    builds.push(
      await buildLlamaCpp({
        label: `llama.cpp ${source.release}`,
        key,
        dir: join(cacheRoot, key),
        bundle: source.bundle,
        nodeLlamaCppVersion: version,
        llamaCppRelease: source.release,
        options: releaseCmakeOptions,
        targets: releaseTargets,
        expected: "a few minutes on 2 cores when cold",
      }),
    );
  }
  return builds;
}

/** A Python virtual environment at `venv`. */
function makeVenv(venv) {
  const made = spawnSync("python3", ["-m", "venv", venv], { stdio: "inherit" });
  if (made.status !== 0) {
    // Debian's python3 leaves venv to a package of its own
    runChecked("apt-get", ["install", "-y", "-q", "--no-install-recommends", "python3-venv"], {
      env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
    });
    runChecked("python3", ["-m", "venv", venv]);
  }
}

/**
 * llama-cpp-python in a virtual environment of its own, installed by pip from the source
 * distribution (there is no other for Linux): pip builds the llama.cpp it bundles with CMake, as
 * it does for a user. Two CMake options, passed the way its documentation tells users to
 * (CMAKE_ARGS), leave out what nothing of the package loads once its multimodal library is off
 * (LLAVA_BUILD=OFF, no test uses it): llama.cpp's common library and its HTTP client, which the
 * binding forces on for that multimodal library, a large part of the build (docs/builds.md). Its
 * project hook sets LLAMA_BUILD_COMMON as a plain variable in llama.cpp's directory, which the
 * forced cache entry does not override; the libraries the program loads (libllama, libggml*) are
 * built exactly as without it.
 */
const llamaCppPythonCmakeHook =
  "# written by profinfer's set-up: the common library is for mtmd, which is not built\n" +
  "set(LLAMA_BUILD_COMMON OFF)\n";

async function ensureLlamaCppPython() {
  const optionsHash = optionsKey({ llamaCppPythonCmakeHook, args: "-DLLAVA_BUILD=OFF" });
  const key = `llama-cpp-python-${llamaCppPythonVersion}-${optionsHash}-${cpuKey()}`;
  const dir = join(cacheRoot, key);
  const venv = join(dir, "venv");
  const python = join(venv, "bin", "python");
  const doneStamp = join(dir, "build-complete.json");
  if (existsSync(doneStamp) && existsSync(python)) {
    log(`llama-cpp-python ${llamaCppPythonVersion}: present in ${dir}`);
    return JSON.parse(readFileSync(doneStamp, "utf8"));
  }
  const started = Date.now();
  mkdirSync(dir, { recursive: true });
  if (!existsSync(python)) makeVenv(venv);
  const hook = join(dir, "skip-common.cmake");
  writeFileSync(hook, llamaCppPythonCmakeHook);
  // pip splits CMAKE_ARGS like a shell (shlex)
  const cmakeArgs = `-DLLAVA_BUILD=OFF '-DCMAKE_PROJECT_llama.cpp_INCLUDE=${hook}'`;
  log(
    `llama-cpp-python ${llamaCppPythonVersion}: pip builds it and its llama.cpp ` +
      `(a few minutes on 2 cores when cold; the result is cached)`,
  );
  let built;
  try {
    built = await runWithProgress(
      "llama-cpp-python build",
      python,
      [
        "-m",
        "pip",
        "install",
        "--verbose",
        "--disable-pip-version-check",
        // pip's wheel cache is keyed by the source, not by CMAKE_ARGS: it would hand back a wheel
        // built with other options
        "--no-cache-dir",
        "--no-binary",
        "llama-cpp-python",
        `llama-cpp-python==${llamaCppPythonVersion}`,
      ],
      {
        cwd: dir,
        env: {
          ...process.env,
          CMAKE_ARGS: cmakeArgs,
          CMAKE_BUILD_PARALLEL_LEVEL: String(cpus().length),
        },
        logFile: join(dir, "build.log"),
        // ninja's "[12/150] Building ..."
        parseProgress: (line) => {
          const m = /^\[(\d+)\/(\d+)\]/.exec(line.trim());
          return m ? Number(m[1]) / Number(m[2]) : null;
        },
      },
    );
  } catch (error) {
    fail(error.message);
  }
  const located = spawnSync(
    python,
    ["-c", "import llama_cpp, os; print(os.path.dirname(llama_cpp.__file__))"],
    { encoding: "utf8" },
  );
  if (located.status !== 0) fail(`llama-cpp-python does not import: ${located.stderr}`);
  const packageDir = located.stdout.trim();
  const info = {
    key,
    version: llamaCppPythonVersion,
    dir,
    python,
    libDir: join(packageDir, "lib"),
    options: { CMAKE_ARGS: cmakeArgs },
    buildSeconds: Math.round((Date.now() - started) / 1000),
    cpuSeconds: built.cpuSeconds,
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
  {
    // renders the agent's chart (provisioning/helm) for its test
    name: "helm",
    versionModule: "helm.sh/helm/v4",
    release: (v) => v.replace(/^v/, ""),
    packages: ["helm.sh/helm/v4/cmd/helm"],
    binaries: ["helm"],
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

// Python tools the tests run, each pinned in package.json (profinfer.python) and installed with
// pip into a virtual environment of its own in the cache.
const pythonTools = rootPackage.profinfer.python ?? {};

function ensurePythonTools() {
  const out = {};
  for (const [name, version] of Object.entries(pythonTools)) {
    const dir = join(cacheRoot, `python-${name}-${version}`);
    const bin = join(dir, "bin", name);
    const info = { version, dir, binaries: { [name]: bin } };
    out[name] = info;
    if (existsSync(bin)) {
      log(`${name} ${version}: present in ${dir}`);
      continue;
    }
    log(`${name} ${version}: installing with pip into ${dir}`);
    rmSync(dir, { recursive: true, force: true });
    makeVenv(dir);
    runChecked(join(dir, "bin", "pip"), ["install", "-q", `${name}==${version}`], {
      env: { ...process.env, PIP_CACHE_DIR: join(cacheRoot, "pip") },
    });
  }
  return out;
}

async function main() {
  const started = Date.now();
  log(`cache: ${cacheRoot}`);
  mkdirSync(cacheRoot, { recursive: true });
  ensureDebianPackages();
  ensureNpmDependencies();
  const nodeLlamaCpp = ensureNodeLlamaCppPackage();
  const llamaCpp = await ensureLlamaCppBuild(nodeLlamaCpp);
  const backends = await ensureBackendsBuild(nodeLlamaCpp, llamaCpp);
  const builds = {
    static: await ensureStaticBuild(nodeLlamaCpp, llamaCpp),
    releases: await ensureOlderReleases(),
    llamaCppPython: await ensureLlamaCppPython(),
  };
  const stack = await ensureStack();
  const python = ensurePythonTools();
  const manifest = {
    version: 1,
    nodeLlamaCpp: { version: nodeLlamaCppVersion, ...nodeLlamaCpp },
    llamaCpp,
    backends,
    builds,
    stack,
    python,
  };
  const text = JSON.stringify(manifest, null, 2) + "\n";
  if (!existsSync(manifestPath) || readFileSync(manifestPath, "utf8") !== text) {
    writeFileSync(manifestPath, text);
  }
  log(`ready in ${formatSeconds(Date.now() - started)} (manifest: ${manifestPath})`);
}

main().catch((error) => fail(error.stack ?? String(error)));
