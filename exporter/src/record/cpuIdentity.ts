// SPDX-License-Identifier: Apache-2.0
// Which backend-stall formula (trace/backendStall.ts) this machine's CPU can feed: its vendor,
// family and model from /proc/cpuinfo, its core PMU and that PMU's named events from sysfs. The
// family and model ranges are those of perf's own pmu-events/arch/x86/mapfile.csv.
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import {
  BACKEND_STALL_FORMULAS,
  GENERIC_STALL,
  type BackendStallFormula,
} from "../trace/backendStall.js";

export interface CpuIdentity {
  /** vendor_id of x86 ("GenuineIntel", "AuthenticAMD"), "arm" for Arm, null when unknown */
  vendor: string | null;
  family: number | null;
  model: number | null;
  /** the PMUs in sysfs, each with the names of its events/ */
  pmus: Record<string, string[]>;
}

/** A formula chosen for this CPU, with its events in `--pmc` syntax for the PMU found. */
export interface StallChoice {
  formula: BackendStallFormula;
  /** `--pmc` encodings, by event name */
  encodings: Record<string, string>;
  /** why this formula and not a more specific one, when it is the generic fallback */
  note?: string;
}

const CORE_PMUS = ["cpu", "cpu_core"];

/** Reads the identity of CPU 0 and the PMUs of `sysfsRoot`. */
export function readCpuIdentity(
  sysfsRoot = "/sys/bus/event_source/devices",
  cpuinfo = "/proc/cpuinfo",
): CpuIdentity {
  let text = "";
  try {
    text = readFileSync(cpuinfo, "utf8");
  } catch {
    // no /proc: nothing known of the CPU
  }
  return { ...parseCpuinfo(text), pmus: readPmus(sysfsRoot) };
}

export function parseCpuinfo(text: string): Omit<CpuIdentity, "pmus"> {
  const field = (name: string) =>
    new RegExp(`^${name}\\s*:\\s*(.+)$`, "m").exec(text)?.[1]?.trim() ?? null;
  const vendor = field("vendor_id") ?? (field("CPU implementer") !== null ? "arm" : null);
  const num = (v: string | null) => (v === null ? null : Number(v));
  return {
    vendor,
    family: vendor === "arm" ? num(field("CPU architecture")) : num(field("cpu family")),
    model: vendor === "arm" ? num(field("CPU part")) : num(field("model")),
  };
}

function readPmus(root: string): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  let dirs: string[] = [];
  try {
    dirs = readdirSync(root);
  } catch {
    return out;
  }
  for (const d of dirs) {
    const events = join(root, d, "events");
    out[d] = existsSync(events) ? readdirSync(events).filter((e) => !e.includes(".")) : [];
  }
  return out;
}

const SKYLAKE_MODELS = new Set([0x4e, 0x5e, 0x55, 0x8e, 0x9e, 0xa5, 0xa6]);

/** perf's mapfile.csv ranges for AMD: which Zen a family and model is. */
function zenOf(family: number, model: number): 2 | 3 | 4 | 5 | null {
  if (family === 0x17) return model >= 0x30 ? 2 : null;
  if (family === 0x19) return model < 0x10 || [2, 4, 5].includes(model >> 4) ? 3 : 4;
  if (family === 0x1a) return 5;
  return null;
}

function encode(formula: BackendStallFormula, pmu: string): StallChoice {
  return {
    formula,
    encodings: Object.fromEntries(
      formula.events.map((e) => [e.name, e.encoding.replace("{pmu}", pmu)]),
    ),
  };
}

const byId = (id: string) => BACKEND_STALL_FORMULAS.find((f) => f.id === id)!;

/**
 * The most specific formula this CPU has the events of. A hybrid CPU (cpu_core beside cpu_atom)
 * counts a model-specific event on one kind of core only, and the counters must open on every
 * CPU, so it gets the generic formula (which its perf driver may lack).
 */
export function chooseStallFormula(cpu: CpuIdentity): StallChoice {
  const pmus = Object.keys(cpu.pmus);
  const hybrid = pmus.includes("cpu_core") && pmus.includes("cpu_atom");
  const core = CORE_PMUS.find((p) => p in cpu.pmus);
  const generic = (note: string): StallChoice => ({ ...encode(GENERIC_STALL, ""), note });
  if (hybrid) {
    return generic(
      "a hybrid CPU: its P-cores and E-cores count backend stalls with different events, and a counter must open on every CPU",
    );
  }
  if ((cpu.vendor === "GenuineIntel" || cpu.vendor === "AuthenticAMD") && !core) {
    return generic(
      "sysfs has no core PMU (cpu) for the CPU's own events (a virtual machine without a virtual PMU?)",
    );
  }
  if (cpu.vendor === "GenuineIntel" && core) {
    if (cpu.pmus[core]!.includes("topdown-be-bound")) return encode(byId("intel-topdown"), core);
    if (cpu.family === 6 && cpu.model !== null && SKYLAKE_MODELS.has(cpu.model))
      return encode(byId("intel-tma-skylake"), core);
    return generic("an Intel core without a formula in profinfer's table (older than Skylake?)");
  }
  if (cpu.vendor === "AuthenticAMD" && core && cpu.family !== null && cpu.model !== null) {
    const zen = zenOf(cpu.family, cpu.model);
    if (zen) return encode(byId(`amd-zen${zen}`), core);
    return generic("an AMD core before Zen 2, whose driver maps stalled-cycles-backend");
  }
  const arm = pmus.filter((p) => cpu.pmus[p]!.includes("stall_backend"));
  if (arm.length === 1) return encode(byId("arm-pmuv3"), arm[0]!);
  if (arm.length > 1) {
    return generic(
      "several Arm core PMUs (big.LITTLE): the kernel maps stalled-cycles-backend to each one's STALL_BACKEND",
    );
  }
  return generic("no CPU-specific formula applies");
}
