// SPDX-License-Identifier: Apache-2.0
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { test } from "node:test";
import assert from "node:assert/strict";
import type { DoctorHost, DoctorReport } from "./checks.js";
import { systemHost } from "./doctor.js";
import { checkKernel, findTracefsMounts } from "./kernel.js";
import {
  HARDWARE_EVENTS,
  SOFTWARE_EVENTS,
  checkPerfEvents,
  parsePerfStatCsv,
} from "./perfEvents.js";
import {
  CAPABILITY_BITS,
  capabilityNames,
  checkPermissions,
  parseEffectiveCapabilities,
} from "./permissions.js";
import { UNVERIFIED_BUILDS, checkLlamaTargets, checkVerifiedBuilds } from "./targets.js";
import type { CacheManifest, LlamaCppBuild } from "../setup/cache.js";
import { summarizeDoctorReport } from "../commands/doctor.js";
import { ElfFormatError, readElfSections } from "../discovery/elf.js";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");

function hasCommand(name: string): boolean {
  return systemHost().findOnPath(name) !== null;
}

// --- ELF section headers ------------------------------------------------------------------------

test("ELF sections: /bin/ls is stripped, with neither .debug_info nor .symtab", () => {
  const names = readElfSections("/bin/ls").map((section) => section.name);

  assert.ok(names.includes(".text"));
  assert.ok(names.includes(".dynsym"));
  assert.ok(!names.includes(".debug_info"));
  assert.ok(!names.includes(".symtab"));
});

test(
  "ELF sections: a gcc -g object has .debug_info and .symtab, and the same names readelf sees",
  { skip: hasCommand("gcc") ? false : "gcc is not on PATH" },
  (t) => {
    const dir = mkdtempSync(join(tmpdir(), "profinfer-elf-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(
      join(dir, "probe.c"),
      "int answer(void) { return 42; }\nint main(void) { return answer(); }\n",
    );
    const binary = join(dir, "probe");
    const compiled = spawnSync("gcc", ["-g", "-o", binary, join(dir, "probe.c")], {
      encoding: "utf8",
    });
    assert.equal(compiled.status, 0, compiled.stderr);

    const names = readElfSections(binary).map((section) => section.name);

    assert.ok(names.includes(".debug_info"));
    assert.ok(names.includes(".symtab"));
    if (hasCommand("readelf")) {
      const listing = spawnSync("readelf", ["-S", "-W", binary], { encoding: "utf8" }).stdout;
      const readelfNames = [...listing.matchAll(/^\s*\[\s*\d+\]\s+(\S*)/gm)].map((m) => m[1]);
      // readelf prints no name for the null section 0.
      assert.deepEqual(names.slice(1), readelfNames.slice(1));
    }
  },
);

test("ELF sections: a file that is not ELF is a typed error naming the file", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "profinfer-elf-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, "not-elf.so");
  writeFileSync(
    path,
    "#!/bin/sh\necho this is a script, long enough to hold an ELF header's 64 bytes\n",
  );

  assert.throws(
    () => readElfSections(path),
    (error: unknown) => {
      assert.ok(error instanceof ElfFormatError);
      assert.match(error.message, /not-elf\.so: not an ELF file/);
      return true;
    },
  );
});

test("ELF sections: a truncated file is a typed error, not a crash", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "profinfer-elf-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, "short.so");
  writeFileSync(path, Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]));

  assert.throws(() => readElfSections(path), ElfFormatError);
});

// --- capabilities -------------------------------------------------------------------------------

const procStatus = (capEff: string) =>
  `Name:\tnode\nUmask:\t0022\nState:\tR (running)\nCapInh:\t0000000000000000\nCapPrm:\t${capEff}\nCapEff:\t${capEff}\nCapBnd:\t000001ffffffffff\n`;

const maskOf = (...bits: number[]) => bits.reduce((mask, bit) => mask | (1n << BigInt(bit)), 0n);

test("capabilities: CapEff is read as a hex mask and named", () => {
  const mask = parseEffectiveCapabilities(procStatus("000001fffeffffff"));

  assert.equal(mask, 0x1fffeffffffn);
  assert.deepEqual(capabilityNames(mask ?? 0n), ["CAP_SYS_ADMIN", "CAP_PERFMON", "CAP_BPF"]);
  assert.equal(parseEffectiveCapabilities("Name:\tnode\n"), null);
});

test("capabilities: a non-root process with CAP_BPF and CAP_PERFMON may profile", () => {
  const check = checkPermissions({
    effectiveUid: 1000,
    effectiveCapabilities: maskOf(CAPABILITY_BITS.CAP_BPF, CAPABILITY_BITS.CAP_PERFMON),
    unprivilegedBpfDisabled: 2,
    perfEventParanoid: 2,
  });

  assert.equal(check.status, "ok");
  assert.match(
    check.found,
    /euid 1000; CapEff CAP_PERFMON CAP_BPF; unprivileged_bpf_disabled=2, perf_event_paranoid=2/,
  );
});

test("capabilities: CAP_SYS_ADMIN alone stands in for both, as bpf_capable() does", () => {
  const check = checkPermissions({
    effectiveUid: 0,
    effectiveCapabilities: maskOf(CAPABILITY_BITS.CAP_SYS_ADMIN),
    unprivilegedBpfDisabled: null,
    perfEventParanoid: null,
  });

  assert.equal(check.status, "ok");
});

test("capabilities: root in a container without CAP_BPF is missing, with a container fix", () => {
  const check = checkPermissions({
    effectiveUid: 0,
    effectiveCapabilities: maskOf(CAPABILITY_BITS.CAP_PERFMON),
    unprivilegedBpfDisabled: 2,
    perfEventParanoid: 2,
  });

  assert.equal(check.status, "missing");
  assert.match(check.fix ?? "", /--cap-add BPF/);
});

test("capabilities: an ordinary user is told to use sudo", () => {
  const check = checkPermissions({
    effectiveUid: 1000,
    effectiveCapabilities: 0n,
    unprivilegedBpfDisabled: 2,
    perfEventParanoid: 4,
  });

  assert.equal(check.status, "missing");
  assert.match(check.fix ?? "", /sudo/);
});

// --- perf stat CSV ------------------------------------------------------------------------------

// Captured from `perf stat -x, -e <the hardware events> -- true` on a VM without a virtual PMU,
// and from the software events on the same machine.
const perfOnVm = `<not supported>,,cycles,0,100.00,,
<not supported>,,instructions,0,100.00,,
<not supported>,,cache-references,0,100.00,,
<not supported>,,cache-misses,0,100.00,,
<not supported>,,branch-misses,0,100.00,,
<not supported>,,stalled-cycles-backend,0,100.00,,
<not supported>,,stalled-cycles-frontend,0,100.00,,
`;
const perfSoftware = `0.56,msec,task-clock,558770,100.00,0.347,CPUs utilized
0.56,msec,cpu-clock,558770,100.00,0.346,CPUs utilized
49,,page-faults,558770,100.00,87.885,K/sec
1,,context-switches,558770,100.00,1.794,K/sec
`;

test("perf CSV: counted events open, <not supported> ones do not", () => {
  const hardware = parsePerfStatCsv(perfOnVm, HARDWARE_EVENTS);
  const software = parsePerfStatCsv(perfSoftware, SOFTWARE_EVENTS);

  assert.ok(hardware.every((probe) => !probe.opened && probe.reason === "not supported"));
  assert.deepEqual(
    software.map((probe) => [probe.event, probe.opened, probe.count]),
    [
      ["task-clock", true, 0.56],
      ["cpu-clock", true, 0.56],
      ["page-faults", true, 49],
      ["context-switches", true, 1],
    ],
  );
});

test("perf CSV: ':u' modifiers, hybrid PMU names and <not counted> are understood", () => {
  const text = `1234,,cpu_atom/cycles:u/,100,100.00,,
<not counted>,,cpu_core/cycles:u/,0,0.00,,
5678,,instructions:u,100,100.00,,
<not counted>,,cache-misses:u,0,0.00,,
`;

  const probes = parsePerfStatCsv(text, ["cycles", "instructions", "cache-misses"]);

  assert.deepEqual(probes, [
    { event: "cycles", opened: true, count: 1234 },
    { event: "instructions", opened: true, count: 5678 },
    { event: "cache-misses", opened: false, reason: "not counted" },
  ]);
});

test("perf CSV: when perf fails outright, every event carries its error", () => {
  const text = "event syntax error: 'bogus'\n                  \\___ parser error\n";

  const probes = parsePerfStatCsv(text, ["task-clock"]);

  assert.deepEqual(probes, [
    { event: "task-clock", opened: false, reason: "event syntax error: 'bogus'" },
  ]);
});

test("perf checks: no hardware counters says so plainly; software events are fine", () => {
  const [hardware, software] = checkPerfEvents({
    hardware: parsePerfStatCsv(perfOnVm, HARDWARE_EVENTS),
    software: parsePerfStatCsv(perfSoftware, SOFTWARE_EVENTS),
  });

  assert.equal(hardware?.status, "warn");
  assert.equal(
    hardware?.found,
    "not available on this machine (virtualised CPU?) — profinfer will use software events",
  );
  assert.equal(software?.status, "ok");
});

test("perf checks: without perf both are unknown, with the install command", () => {
  const checks = checkPerfEvents({
    hardware: null,
    software: null,
    perfError: "perf is not on PATH",
  });

  assert.deepEqual(
    checks.map((check) => [check.id, check.status, check.fix]),
    [
      ["perf-hardware", "unknown", "apt-get install linux-perf"],
      ["perf-software", "unknown", "apt-get install linux-perf"],
    ],
  );
});

// --- kernel, tracefs, manifest, summary ---------------------------------------------------------

test("kernel: 5.8 and later are ok, older is missing, nonsense is unknown", () => {
  assert.equal(checkKernel("6.18.44-fc-v669").status, "ok");
  assert.equal(checkKernel("5.8.0").status, "ok");
  assert.equal(checkKernel("5.4.0-150-generic").status, "missing");
  assert.equal(checkKernel("4.19.0").status, "missing");
  assert.equal(checkKernel("weird").status, "unknown");
});

test("tracefs: mount points are found in /proc/mounts text", () => {
  const mounts = `sysfs /sys sysfs rw,nosuid 0 0
tracefs /sys/kernel/tracing tracefs rw,nosuid,nodev,noexec 0 0
debugfs /sys/kernel/debug debugfs rw 0 0
`;

  assert.deepEqual(findTracefsMounts(mounts), ["/sys/kernel/tracing"]);
  assert.deepEqual(findTracefsMounts("proc /proc proc rw 0 0\n"), []);
});

test("llama.cpp targets: without a manifest the fix is npm run setup", () => {
  const host = {
    readManifest: () => null,
    manifestPath: () => "/nowhere/manifest.json",
  } as Partial<DoctorHost> as DoctorHost;

  const checks = checkLlamaTargets(host);

  assert.deepEqual(checks, [
    {
      id: "llama-targets",
      name: "llama.cpp targets",
      status: "missing",
      found: "no set-up manifest at /nowhere/manifest.json",
      fix: "npm run setup",
    },
  ]);
});

test("verified builds: each build set-up made, with what it took; every unverified kind", () => {
  const build = (release: string, version: string, times: object): LlamaCppBuild => ({
    key: release,
    nodeLlamaCppVersion: version,
    llamaCppRelease: release,
    commit: "0",
    srcDir: "/src",
    buildDir: "/build",
    binDir: "/build/bin",
    options: {},
    targets: ["llama-cli"],
    ...times,
  });
  const manifest = {
    version: 1,
    nodeLlamaCpp: { version: "3.22.1", dir: "/n", prebuiltDir: "/n/bins", bundle: "/n/b" },
    llamaCpp: build("v0.5.0", "3.22.1", { buildSeconds: 420 }),
    builds: {
      static: {
        ...build("v0.5.0", "3.22.1", { buildSeconds: 900, cpuSeconds: 1500 }),
        variants: {
          static: { options: {}, binDir: "/s" },
          "static-openmp": { options: {}, binDir: "/o" },
        },
      },
      releases: [build("b3889", "3.1.1", {}), build("b7347", "3.14.5", { buildSeconds: 600 })],
      llamaCppPython: {
        key: "p",
        version: "0.3.36",
        dir: "/p",
        python: "/p/python",
        libDir: "/p/lib",
        options: {},
        buildSeconds: 300,
        cpuSeconds: 250,
      },
    },
  } satisfies CacheManifest;

  const check = checkVerifiedBuilds(manifest);

  assert.equal(check.status, "ok");
  assert.deepEqual(check.notes?.slice(0, 6), [
    "verified: v0.5.0 shared libraries (node-llama-cpp 3.22.1's source), built in 420 s",
    "verified: node-llama-cpp 3.22.1 prebuilt libraries",
    "verified: v0.5.0 linked into one executable, without and with OpenMP (static, static-openmp), built in 900 s (1500 s of CPU)",
    "verified: b3889 shared libraries (node-llama-cpp 3.1.1's source)",
    "verified: b7347 shared libraries (node-llama-cpp 3.14.5's source), built in 600 s",
    "verified: llama-cpp-python 0.3.36, pip's build of its source, built in 300 s (250 s of CPU)",
  ]);
  assert.deepEqual(
    check.notes?.slice(6),
    UNVERIFIED_BUILDS.map((line) => `unverified: ${line}`),
  );
  const bare = checkVerifiedBuilds({ ...manifest, builds: undefined });
  assert.equal(bare.status, "warn");
  assert.deepEqual(
    bare.notes,
    UNVERIFIED_BUILDS.map((line) => `unverified: ${line}`),
  );
});

test("summary: problems first, then warnings; no problems reads ready", () => {
  const report = (statuses: Array<"ok" | "warn" | "missing">): DoctorReport => ({
    checks: statuses.map((status, index) => ({
      id: `c${index}`,
      name: `c${index}`,
      status,
      found: "",
    })),
    ready: !statuses.includes("missing"),
  });

  assert.equal(summarizeDoctorReport(report(["ok", "ok"])), "ready to profile");
  assert.equal(summarizeDoctorReport(report(["ok", "warn"])), "ready to profile (1 warning: c1)");
  assert.equal(
    summarizeDoctorReport(report(["missing", "warn", "missing"])),
    "2 problems: c0, c2 — not ready to profile; 1 warning: c1",
  );
});

// --- the real command ---------------------------------------------------------------------------

const builtCli = join(repoRoot, "exporter", "dist", "cli.js");

test(
  "profinfer doctor --json reports every check and finds BTF on this machine",
  { skip: existsSync(builtCli) ? false : `${builtCli} is not built (npm run build)` },
  () => {
    const result = spawnSync(process.execPath, [builtCli, "doctor", "--json"], {
      encoding: "utf8",
    });

    assert.equal(result.status, 0, result.stderr);
    const report = JSON.parse(result.stdout) as DoctorReport;
    assert.equal(typeof report.ready, "boolean");
    assert.ok(Array.isArray(report.checks) && report.checks.length > 0);
    for (const check of report.checks) {
      assert.equal(typeof check.id, "string");
      assert.equal(typeof check.name, "string");
      assert.ok(["ok", "warn", "missing", "unknown"].includes(check.status), check.status);
      assert.equal(typeof check.found, "string");
    }
    assert.equal(
      report.ready,
      report.checks.every((check) => check.status !== "missing"),
    );
    assert.equal(report.checks.find((check) => check.id === "btf")?.status, "ok");
  },
);
