// SPDX-License-Identifier: Apache-2.0
// The backend-stall figure: the share of the core's issue slots (or cycles) lost because the back
// end (memory, execution units) could not take more work. Each CPU family counts it with its own
// events; this table carries, per family, the events and the formula of the metric perf itself
// computes for it (the JSON tables under the Linux tree's tools/perf/pmu-events/arch/, named in
// `metric`). Both sides of every formula are sums of counter deltas, so the exporter can serve
// them as two counters and Prometheus can divide their rates.

/** One term of a formula: `coefficient` times the delta of the counter named `event`. */
export interface StallTerm {
  event: string;
  coefficient: number;
}

/** An event a formula needs: the name it is recorded under and how perf_event_open gets it. */
export interface StallEvent {
  /** the counter's name in the run (perf's own event name, lower case as `perf list` shows it) */
  name: string;
  /**
   * `--pmc` syntax for it; `{pmu}` stands for the core PMU found in sysfs. A perf generic event
   * (`cycles`) where the kernel maps the generic event to the one perf's formula names.
   */
  encoding: string;
}

export interface BackendStallFormula {
  /** stable id, recorded in the run and served as the `formula` label */
  id: string;
  /** the CPUs it is for */
  cpu: string;
  /** perf's metric it follows: name and table */
  metric: string;
  /** the unit both sides count */
  unit: "slots" | "cycles";
  events: StallEvent[];
  /** slots (cycles) stalled on the back end */
  stalled: StallTerm[];
  /** all slots (cycles) of the same interval */
  total: StallTerm[];
}

const term = (event: string, coefficient = 1): StallTerm => ({ event, coefficient });

/** perf's generic events: the kernel maps them for the CPU (or says it has none). */
export const GENERIC_STALL: BackendStallFormula = {
  id: "generic",
  cpu: "any CPU whose perf driver maps the generic stalled-cycles-backend event (AMD Zen 1, Arm PMUv3, some others)",
  metric: "stalled-cycles-backend / cycles (perf stat's 'backend cycles idle')",
  unit: "cycles",
  events: [
    { name: "stalled-cycles-backend", encoding: "stalled-cycles-backend" },
    { name: "cycles", encoding: "cycles" },
  ],
  stalled: [term("stalled-cycles-backend")],
  total: [term("cycles")],
};

/**
 * The table, most specific first. The cycle counts use perf's generic `cycles` where the kernel
 * maps it to the event perf's formula names (CPU_CLK_UNHALTED.THREAD on Intel, ls_not_halted_cyc
 * on AMD Zen, CPU_CYCLES on Arm), so the figure costs no extra counter beside `cycles`.
 */
export const BACKEND_STALL_FORMULAS: readonly BackendStallFormula[] = [
  {
    id: "intel-topdown",
    cpu: "Intel cores with perf-metrics top-down events (Ice Lake, Tiger Lake, Sapphire Rapids and later; the P-cores of hybrids)",
    metric:
      "tma_backend_bound = topdown-be-bound / (all topdown slots) (x86/icelake/icl-metrics.json, x86/sapphirerapids/spr-metrics.json)",
    unit: "slots",
    // the topdown-* metric events open only in a group led by `slots`, which a per-CPU counter
    // read from BPF cannot be; the general-purpose events below count the same slots
    events: [
      { name: "topdown.backend_bound_slots", encoding: "{pmu}/event=0xa4,umask=0x02/" },
      { name: "topdown.slots_p", encoding: "{pmu}/event=0xa4,umask=0x01/" },
    ],
    stalled: [term("topdown.backend_bound_slots")],
    total: [term("topdown.slots_p")],
  },
  {
    id: "intel-tma-skylake",
    cpu: "Intel Skylake-family cores (Skylake, Kaby/Coffee/Comet Lake, Skylake-SP, Cascade Lake)",
    metric:
      "tma_backend_bound = 1 - tma_frontend_bound - (UOPS_ISSUED.ANY + 4 * INT_MISC.RECOVERY_CYCLES) / tma_info_thread_slots, slots = 4 * CPU_CLK_UNHALTED.THREAD (x86/skylake/skl-metrics.json)",
    unit: "slots",
    events: [
      { name: "cycles", encoding: "cycles" },
      { name: "idq_uops_not_delivered.core", encoding: "{pmu}/event=0x9c,umask=0x01/" },
      { name: "uops_issued.any", encoding: "{pmu}/event=0x0e,umask=0x01/" },
      { name: "int_misc.recovery_cycles", encoding: "{pmu}/event=0x0d,umask=0x01/" },
    ],
    stalled: [
      term("cycles", 4),
      term("idq_uops_not_delivered.core", -1),
      term("uops_issued.any", -1),
      term("int_misc.recovery_cycles", -4),
    ],
    total: [term("cycles", 4)],
  },
  {
    id: "amd-zen5",
    cpu: "AMD Zen 5 (family 0x1a)",
    metric:
      "backend_bound = de_no_dispatch_per_slot.backend_stalls / (8 * ls_not_halted_cyc) (x86/amdzen5/pipeline.json)",
    unit: "slots",
    events: [
      { name: "de_no_dispatch_per_slot.backend_stalls", encoding: "{pmu}/event=0x1a0,umask=0x1e/" },
      { name: "cycles", encoding: "cycles" },
    ],
    stalled: [term("de_no_dispatch_per_slot.backend_stalls")],
    total: [term("cycles", 8)],
  },
  {
    id: "amd-zen4",
    cpu: "AMD Zen 4 (family 0x19, the models Zen 3 does not have)",
    metric:
      "backend_bound = de_no_dispatch_per_slot.backend_stalls / (6 * ls_not_halted_cyc) (x86/amdzen4/pipeline.json)",
    unit: "slots",
    events: [
      { name: "de_no_dispatch_per_slot.backend_stalls", encoding: "{pmu}/event=0x1a0,umask=0x1e/" },
      { name: "cycles", encoding: "cycles" },
    ],
    stalled: [term("de_no_dispatch_per_slot.backend_stalls")],
    total: [term("cycles", 6)],
  },
  {
    id: "amd-zen3",
    cpu: "AMD Zen 3 (family 0x19, models 0x00-0x0f, 0x20-0x2f, 0x40-0x5f)",
    // perf has no backend_bound metric for Zen 3: its dispatch token stall events (every unit
    // mask of each) count the cycles dispatch waited on a back-end resource
    metric:
      "no perf metric; de_dis_dispatch_token_stalls1 + de_dis_dispatch_token_stalls2 (all unit masks) / ls_not_halted_cyc (events of x86/amdzen3/other.json)",
    unit: "cycles",
    events: [
      { name: "de_dis_dispatch_token_stalls1", encoding: "{pmu}/event=0xae,umask=0xff/" },
      { name: "de_dis_dispatch_token_stalls2", encoding: "{pmu}/event=0xaf,umask=0x3f/" },
      { name: "cycles", encoding: "cycles" },
    ],
    stalled: [term("de_dis_dispatch_token_stalls1"), term("de_dis_dispatch_token_stalls2")],
    total: [term("cycles")],
  },
  {
    id: "amd-zen2",
    cpu: "AMD Zen 2 (family 0x17, models 0x30 on)",
    metric:
      "no perf metric; de_dis_dispatch_token_stalls0 + de_dis_dispatch_token_stalls1 (all unit masks) / ls_not_halted_cyc (events of x86/amdzen2/other.json)",
    unit: "cycles",
    events: [
      { name: "de_dis_dispatch_token_stalls0", encoding: "{pmu}/event=0xaf,umask=0x7f/" },
      { name: "de_dis_dispatch_token_stalls1", encoding: "{pmu}/event=0xae,umask=0xff/" },
      { name: "cycles", encoding: "cycles" },
    ],
    stalled: [term("de_dis_dispatch_token_stalls0"), term("de_dis_dispatch_token_stalls1")],
    total: [term("cycles")],
  },
  {
    id: "arm-pmuv3",
    cpu: "Arm cores with a PMUv3 (Neoverse, Cortex-A) exposing stall_backend",
    metric:
      "backend_stalled_cycles = STALL_BACKEND / CPU_CYCLES (arm64/arm/neoverse-*/metrics.json)",
    unit: "cycles",
    events: [
      { name: "stall_backend", encoding: "{pmu}/stall_backend/" },
      { name: "cycles", encoding: "cycles" },
    ],
    stalled: [term("stall_backend")],
    total: [term("cycles")],
  },
  GENERIC_STALL,
];

export function backendStallFormula(id: string): BackendStallFormula | undefined {
  return BACKEND_STALL_FORMULAS.find((f) => f.id === id);
}

/**
 * The formula a run's stall figure comes from: the one it was recorded with, or (for runs from
 * before formulas were recorded) the generic one where its events were recorded.
 */
export function formulaOfRun(
  recordedId: string | undefined,
  counterNames: readonly string[],
): BackendStallFormula | null {
  if (recordedId !== undefined) return backendStallFormula(recordedId) ?? null;
  const names = new Set(counterNames);
  return GENERIC_STALL.events.every((e) => names.has(e.name)) ? GENERIC_STALL : null;
}

/** The formula of a run's stall figure, from its header (the counters it recorded). */
export function formulaOfHeader(header: {
  backendStall?: { formula?: string } | undefined;
  counters?: readonly { name: string }[] | undefined;
}): BackendStallFormula | null {
  return formulaOfRun(
    header.backendStall?.formula,
    (header.counters ?? []).map((c) => c.name),
  );
}

/** Both sides of the formula over summed counter deltas; null when an event is missing. */
export function backendStallParts(
  formula: BackendStallFormula,
  counters: Readonly<Record<string, number>>,
): { stalled: number; total: number } | null {
  const sum = (terms: readonly StallTerm[]): number | null => {
    let v = 0;
    for (const t of terms) {
      const c = counters[t.event];
      if (c === undefined) return null;
      v += t.coefficient * c;
    }
    return v;
  };
  const stalled = sum(formula.stalled);
  const total = sum(formula.total);
  if (stalled === null || total === null) return null;
  // a difference of counts read at slightly different instants can dip below zero
  return { stalled: Math.min(Math.max(stalled, 0), Math.max(total, 0)), total: Math.max(total, 0) };
}

/** stalled / total, or undefined when it cannot be computed. */
export function backendStallRatio(
  formula: BackendStallFormula | null,
  counters: Readonly<Record<string, number>>,
): number | undefined {
  if (!formula) return undefined;
  const parts = backendStallParts(formula, counters);
  return parts && parts.total > 0 ? parts.stalled / parts.total : undefined;
}
