// SPDX-License-Identifier: Apache-2.0
// The backend-stall figure per CPU family, through fake sysfs trees and /proc/cpuinfo texts (no
// PMU on the machines that run the tests): which formula each CPU gets, the events `--pmc
// backend-stall` opens for it, and the ratio those events' counts give.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { deriveFigures } from "../trace/derived.js";
import { BACKEND_STALL_FORMULAS, backendStallParts } from "../trace/backendStall.js";
import { resolveCounters } from "./counters.js";
import { chooseStallFormula, parseCpuinfo, readCpuIdentity } from "./cpuIdentity.js";

const roots: string[] = [];
after(() => roots.forEach((r) => rmSync(r, { recursive: true, force: true })));

interface FakePmu {
  type: number;
  format: Record<string, string>;
  events?: string[];
}

/** A machine: /sys/bus/event_source/devices and /proc/cpuinfo. */
function machine(cpuinfo: string, pmus: Record<string, FakePmu>) {
  const dir = mkdtempSync(join(tmpdir(), "profinfer-cpu-"));
  roots.push(dir);
  const sysfs = join(dir, "devices");
  for (const [name, p] of Object.entries(pmus)) {
    mkdirSync(join(sysfs, name, "format"), { recursive: true });
    mkdirSync(join(sysfs, name, "events"), { recursive: true });
    writeFileSync(join(sysfs, name, "type"), `${p.type}\n`);
    for (const [k, v] of Object.entries(p.format))
      writeFileSync(join(sysfs, name, "format", k), `${v}\n`);
    for (const e of p.events ?? []) writeFileSync(join(sysfs, name, "events", e), "event=0x00\n");
  }
  writeFileSync(join(dir, "cpuinfo"), cpuinfo);
  return { sysfs, cpu: readCpuIdentity(sysfs, join(dir, "cpuinfo")) };
}

const x86 = (vendor: string, family: number, model: number) =>
  `processor\t: 0\nvendor_id\t: ${vendor}\ncpu family\t: ${family}\nmodel\t\t: ${model}\n`;
const INTEL_FORMAT = { event: "config:0-7", umask: "config:8-15", cmask: "config:24-31" };
const AMD_FORMAT = { event: "config:0-7,32-35", umask: "config:8-15" };

const MACHINES = {
  "intel-topdown": () =>
    machine(x86("GenuineIntel", 6, 0x8f), {
      cpu: { type: 4, format: INTEL_FORMAT, events: ["slots", "topdown-be-bound"] },
    }),
  "intel-tma-skylake": () =>
    machine(x86("GenuineIntel", 6, 0x55), { cpu: { type: 4, format: INTEL_FORMAT } }),
  "amd-zen2": () =>
    machine(x86("AuthenticAMD", 23, 0x31), { cpu: { type: 4, format: AMD_FORMAT } }),
  "amd-zen3": () =>
    machine(x86("AuthenticAMD", 25, 0x21), { cpu: { type: 4, format: AMD_FORMAT } }),
  "amd-zen4": () =>
    machine(x86("AuthenticAMD", 25, 0x11), { cpu: { type: 4, format: AMD_FORMAT } }),
  "amd-zen5": () =>
    machine(x86("AuthenticAMD", 26, 0x02), { cpu: { type: 4, format: AMD_FORMAT } }),
  "arm-pmuv3": () =>
    machine("processor\t: 0\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU part\t: 0xd0c\n", {
      armv8_pmuv3_0: { type: 10, format: { event: "config:0-15" }, events: ["stall_backend"] },
    }),
  generic: () => machine(x86("GenuineIntel", 6, 0x3c), { cpu: { type: 4, format: INTEL_FORMAT } }),
} as const;

test("every formula of the table has a machine here, and its events cover its terms", () => {
  assert.deepEqual(BACKEND_STALL_FORMULAS.map((f) => f.id).sort(), Object.keys(MACHINES).sort());
  for (const f of BACKEND_STALL_FORMULAS) {
    const names = f.events.map((e) => e.name);
    for (const t of [...f.stalled, ...f.total]) assert.ok(names.includes(t.event), f.id);
    assert.match(f.metric, /\.json\)|perf stat/, `${f.id} names perf's table`);
  }
});

test("each CPU family gets its own formula from /proc/cpuinfo and sysfs", () => {
  for (const [id, make] of Object.entries(MACHINES)) {
    assert.equal(chooseStallFormula(make().cpu).formula.id, id, id);
  }
  const hybrid = machine(x86("GenuineIntel", 6, 0x97), {
    cpu_core: { type: 4, format: INTEL_FORMAT, events: ["topdown-be-bound"] },
    cpu_atom: { type: 10, format: INTEL_FORMAT },
  });
  const choice = chooseStallFormula(hybrid.cpu);
  assert.equal(choice.formula.id, "generic");
  assert.match(choice.note!, /hybrid/);
  assert.deepEqual(parseCpuinfo(""), { vendor: null, family: null, model: null });
});

test("--pmc backend-stall opens the formula's events under perf's names, each once", () => {
  const expected: Record<string, [string, number, bigint][]> = {
    "intel-topdown": [
      ["cycles", 0, 0n],
      ["topdown.backend_bound_slots", 4, 0xa4n | (0x02n << 8n)],
      ["topdown.slots_p", 4, 0xa4n | (0x01n << 8n)],
    ],
    "intel-tma-skylake": [
      ["cycles", 0, 0n],
      ["idq_uops_not_delivered.core", 4, 0x9cn | (0x01n << 8n)],
      ["uops_issued.any", 4, 0x0en | (0x01n << 8n)],
      ["int_misc.recovery_cycles", 4, 0x0dn | (0x01n << 8n)],
    ],
    // event 0x1a0: its high nibble goes to config bits 32-35
    "amd-zen4": [
      ["cycles", 0, 0n],
      ["de_no_dispatch_per_slot.backend_stalls", 4, 0xa0n | (0x1en << 8n) | (1n << 32n)],
    ],
    "arm-pmuv3": [
      ["cycles", 0, 0n],
      ["stall_backend", 10, 0x00n],
    ],
    generic: [
      ["cycles", 0, 0n],
      ["stalled-cycles-backend", 0, 8n],
    ],
  };
  for (const [id, want] of Object.entries(expected)) {
    const { sysfs, cpu } = MACHINES[id as keyof typeof MACHINES]();
    const selection = resolveCounters("cycles,backend-stall", sysfs, cpu);
    assert.deepEqual(
      selection.counters.map((c) => [c.name, c.type, c.config]),
      want,
      id,
    );
    assert.equal(selection.backendStall?.formula.id, id);
  }
});

test("a CPU whose formula's PMU is not in sysfs gets the generic events, and no events no figure", () => {
  const zen4 = machine(x86("AuthenticAMD", 25, 0x61), {});
  const selection = resolveCounters("backend-stall", zen4.sysfs, zen4.cpu);
  assert.deepEqual(
    selection.counters.map((c) => c.name),
    ["stalled-cycles-backend", "cycles"],
  );
  assert.equal(selection.backendStall?.formula.id, "generic");
  assert.equal(resolveCounters("cycles,instructions", zen4.sysfs, zen4.cpu).backendStall, null);
});

test("the stall ratio of synthetic counts follows each family's formula", () => {
  // one interval of 1e9 cycles on each machine, with the counts its events would show
  const cases: [string, Record<string, number>, number][] = [
    [
      "intel-topdown",
      { cycles: 1e9, "topdown.backend_bound_slots": 3.6e9, "topdown.slots_p": 6e9 },
      0.6,
    ],
    [
      // 4e9 slots: 0.4e9 not delivered, 1.8e9 issued, 0.1e9 recovery cycles (0.4e9 slots)
      "intel-tma-skylake",
      {
        cycles: 1e9,
        "idq_uops_not_delivered.core": 0.4e9,
        "uops_issued.any": 1.8e9,
        "int_misc.recovery_cycles": 0.1e9,
      },
      0.35,
    ],
    ["amd-zen4", { cycles: 1e9, "de_no_dispatch_per_slot.backend_stalls": 4.8e9 }, 0.8],
    ["amd-zen5", { cycles: 1e9, "de_no_dispatch_per_slot.backend_stalls": 4.8e9 }, 0.6],
    [
      "amd-zen3",
      { cycles: 1e9, de_dis_dispatch_token_stalls1: 0.5e9, de_dis_dispatch_token_stalls2: 0.2e9 },
      0.7,
    ],
    [
      "amd-zen2",
      { cycles: 1e9, de_dis_dispatch_token_stalls0: 0.1e9, de_dis_dispatch_token_stalls1: 0.3e9 },
      0.4,
    ],
    ["arm-pmuv3", { cycles: 1e9, stall_backend: 0.9e9 }, 0.9],
    ["generic", { cycles: 1e9, "stalled-cycles-backend": 0.5e9 }, 0.5],
  ];
  for (const [id, counts, ratio] of cases) {
    const formula = BACKEND_STALL_FORMULAS.find((f) => f.id === id)!;
    assert.equal(deriveFigures(counts, 1e9, formula).backendStallRatio, ratio, id);
  }
  // a difference of counts that dips below zero is no stall, and never more than all slots
  const skl = BACKEND_STALL_FORMULAS.find((f) => f.id === "intel-tma-skylake")!;
  assert.deepEqual(
    backendStallParts(skl, {
      cycles: 10,
      "idq_uops_not_delivered.core": 30,
      "uops_issued.any": 20,
      "int_misc.recovery_cycles": 0,
    }),
    { stalled: 0, total: 40 },
  );
  // a run recorded before formulas were recorded: the generic events where they were recorded
  assert.equal(
    deriveFigures({ cycles: 100, "stalled-cycles-backend": 25 }, 1).backendStallRatio,
    0.25,
  );
  assert.equal(deriveFigures({ cycles: 100 }, 1).backendStallRatio, undefined);
});
