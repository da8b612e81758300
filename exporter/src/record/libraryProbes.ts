// SPDX-License-Identifier: Apache-2.0
// The probes of each llama.cpp and ggml library as the recording's level and options want them:
// calls and graphs, the ggml layout resolved from ggml's base library (the CPU backend's probes
// read tensors through it), then the operators: step probes on the compute loop where it is
// found, else probes on the operator functions and ggml_barrier.
import { BackendProbeError, probeBackends, type ProbedBackends } from "../discovery/backends.js";
import { LayoutError, probeLayout, type ProbedLayout } from "../discovery/layout.js";
import { functionLabel, type LibraryRoles } from "../discovery/libraries.js";
import { readElf } from "../discovery/elf.js";
import { findStepSites, type StepSite } from "../discovery/stepSites.js";
import { PiLevel } from "../abi/constants.js";
import type { BackendCall, OpFunction } from "../trace/header.js";
import type { RunNote } from "../trace/notes.js";
import { toNativeLayout } from "./nativeLayout.js";
import { backendsProbePath, layoutProbePath, type NativeTracer } from "./nativeTracer.js";
import { ProbeAttacher, stepProbeError } from "./probeAttacher.js";
import {
  barrierProbes,
  LEVELS,
  backendApiProbes,
  MOE_CONSUMERS,
  callProbes,
  cpuGraphProbes,
  operatorFunctionSites,
  stepProbeSites,
  type ProbeSite,
} from "./probePlan.js";
import type { RecordOptions } from "./options.js";

type ProbeOptions = Pick<RecordOptions, "level" | "ops" | "moe" | "probeAllOps" | "opTiming">;

export class LibraryProbes {
  /** the ggml layout, once resolved and accepted by the tracer */
  layout: ProbedLayout | null = null;
  /** the probed operator functions, in the order of their index (the run header's opFuncs) */
  readonly opFuncs: OpFunction[] = [];
  /** the probed operator functions' ops, by aggregate key (their index) */
  readonly operatorFunctions: { index: number; op: string }[] = [];
  /** the libraries timed by step probes */
  readonly stepLibraries: string[] = [];
  /** the known backends' own functions probed, in the order of their index (the header's) */
  readonly backendCalls: BackendCall[] = [];
  /** the build's backends, as its registry lists them (the first registry library seen) */
  backends: ProbedBackends | null = null;
  /** the libraries probed so far */
  private readonly libraries: LibraryRoles[] = [];

  constructor(
    private readonly tracer: NativeTracer,
    private readonly attacher: ProbeAttacher,
    private readonly options: ProbeOptions,
    private readonly warn: (message: string) => void,
    private readonly note: (note: RunNote) => void,
  ) {}

  /** Probes `roles` at the recording's level (discovery found what it offers). */
  attach(roles: LibraryRoles): void {
    this.libraries.push(roles);
    const level = LEVELS[this.options.level];
    for (const probe of callProbes(roles, level)) this.attacher.attachFunction(roles, probe);
    if (roles.ggmlBase && level >= PiLevel.GRAPH && !this.layout) this.resolveLayout(roles.path);
    if (roles.ggmlRegistry && level >= PiLevel.GRAPH && !this.backends) this.listBackends(roles);
    for (const probe of backendApiProbes(roles, level)) this.attacher.attachFunction(roles, probe);
    if (level >= PiLevel.OP) this.attachBackendCalls(roles);
    for (const probe of cpuGraphProbes(roles, level)) this.attacher.attachFunction(roles, probe);
    if (!roles.ggmlCpu || level < PiLevel.OP) return;
    if (!this.layout) {
      const base = this.libraries.find((r) => r.ggmlBase);
      if (base) this.resolveLayout(base.path, roles.path);
    }
    if (!this.layout) {
      this.warn(`operator probes on ${roles.path} skipped: the ggml layout is unknown`);
      return;
    }
    if (this.options.opTiming === "steps" && this.attachSteps(roles)) {
      // MoE routing ids are read when their consumer operator starts: probe just those
      if (this.options.moe) this.attachOpFunctions(roles, MOE_CONSUMERS, true);
      return;
    }
    if (!roles.barrier)
      this.warn(
        `${roles.path} has no barrier to probe (neither ggml_barrier nor an OpenMP barrier): operators whose functions are not probed are not timed`,
      );
    for (const probe of barrierProbes(roles)) this.attacher.attachFunction(roles, probe);
    this.attachOpFunctions(roles, this.options.ops, false);
  }

  /**
   * Step probes: one on the compute loop's own barrier call (and on the final one), which time
   * every step of every thread and name its nodes. False (nothing attached) when the library
   * does not have the loop's pattern; the caller then probes the operator functions.
   */
  private attachSteps(roles: LibraryRoles): boolean {
    let sites: StepSite[] = [];
    try {
      sites = findStepSites(readElf(roles.path), this.layout!.cgraph.nNodes);
    } catch (error) {
      this.warn(`cannot read ${roles.path}: ${(error as Error).message}`);
    }
    const planned = stepProbeSites(sites);
    if (planned.loop.length === 0) {
      this.warn(
        `the compute loop's barrier call was not found in ${roles.path}; operators are timed by probing their functions instead`,
      );
      return false;
    }
    const errors: string[] = [];
    const failed = (p: ProbeSite, error: string) => errors.push(stepProbeError(p, error));
    // loop sites first: when none attaches, nothing is left half done
    const loop = this.attacher.attachStepSites(roles.path, planned.loop, failed);
    if (loop.length === 0) {
      this.warn(`${errors[0]}; operators are timed by probing their functions instead`);
      return false;
    }
    const final = this.attacher.attachStepSites(roles.path, planned.final, failed);
    for (const error of errors) this.warn(`${error}; some steps of that loop will be missing`);
    this.attacher.keepStepProbes(roles.path, [...loop, ...final]);
    this.stepLibraries.push(roles.path);
    this.note({
      kind: "steps",
      library: roles.path,
      sites: [...loop, ...final].map(({ site }) => ({
        fileOffset: site.fileOffset,
        final: site.final,
        register: site.register,
        function: site.function,
      })),
    });
    return true;
  }

  /** Entry and return probes on the per-operator functions of `wanted` ops (null: all). */
  private attachOpFunctions(
    roles: LibraryRoles,
    wanted: readonly string[] | null,
    moeOnly: boolean,
  ): void {
    const plan = operatorFunctionSites(roles, wanted, {
      probeAllOps: this.options.probeAllOps,
      moeOnly,
      firstIndex: this.opFuncs.length,
    });
    if (plan.stepped.length > 0) {
      this.note({
        kind: "unprobed",
        library: roles.path,
        reason: "single-stepped entry instruction",
        ops: plan.stepped,
      });
    }
    const failures: string[] = [];
    const failed = (c: ProbeSite, error: string) =>
      failures.push(`${functionLabel(c.symbol)} (${error})`);
    const attached = [
      ...this.attacher.attachSites(["op_enter", "op_exit"], roles.path, plan.functions, failed),
      ...this.attacher.attachSites(
        ["op_method_enter", "op_exit"],
        roles.path,
        plan.methods,
        failed,
      ),
    ]
      .sort((a, b) => a.index - b.index)
      .map((c) => ({ index: c.index, symbol: c.symbol, library: roles.path }));
    if (failures.length > 0) {
      this.warn(
        `${failures.length} of ${roles.opFunctions.length + roles.extraComputes.length} operator functions in ${roles.path} cannot carry a probe ` +
          `and are timed from the barriers instead: ${failures.join(", ")}`,
      );
    }
    this.opFuncs.push(...attached);
    this.operatorFunctions.push(
      ...attached.map((f) => ({ index: f.index, op: functionLabel(f.symbol) })),
    );
    if (attached.length === 0 && !moeOnly)
      this.warn(`no per-operator function of ${roles.path} could be probed`);
    this.note({ kind: "attach", library: roles.path, opFuncs: attached });
  }

  /**
   * The devices of the build's registry, for naming each split's backend, and the offset of a
   * backend's device, which the split probe reads (set in the layout once both are known).
   */
  private listBackends(roles: LibraryRoles): void {
    try {
      this.backends = probeBackends(backendsProbePath, roles.path);
    } catch (error) {
      if (!(error instanceof BackendProbeError)) throw error;
      this.warn(`${error.message}; splits are traced, their backends named by their copies only`);
      return;
    }
    if (this.backends.backendDevice === null) {
      this.warn(
        `the offset of a backend's device in ${roles.path} could not be found; splits are traced, their backends named by their copies only`,
      );
    }
    if (this.layout) this.setLayout();
  }

  /** Entry and return probes on the known backends' own functions (BLAS nodes, Vulkan command buffers). */
  private attachBackendCalls(roles: LibraryRoles): void {
    for (const call of roles.backendCalls) {
      const index = this.backendCalls.length;
      const attached = ["backend_call_enter", "backend_call_exit"].every((handler) =>
        this.attacher.attachFunction(
          roles,
          { handler: handler as "backend_call_enter" | "backend_call_exit", symbol: call.symbol },
          index,
        ),
      );
      if (attached) this.backendCalls.push({ index, ...call, library: roles.path });
    }
  }

  /** Gives the tracer the layout, with the backend's device offset once the registry told it. */
  private setLayout(): void {
    const error = this.tracer.setLayout(
      toNativeLayout(this.layout!, this.backends?.backendDevice ?? null),
    );
    if (error) {
      this.warn(error);
      this.layout = null;
    }
  }

  private resolveLayout(ggmlBase: string, ggmlCpu?: string): void {
    try {
      this.layout = probeLayout(
        layoutProbePath,
        ggmlBase,
        ggmlCpu ?? this.libraries.find((r) => r.ggmlCpu)?.path,
      );
    } catch (error) {
      if (!(error instanceof LayoutError)) throw error;
      this.warn(error.message);
      return;
    }
    this.setLayout();
  }
}
