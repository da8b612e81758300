// SPDX-License-Identifier: Apache-2.0
// The run header of events.pinf (docs/raw-events.md "Run header"): what was recorded, how, from
// which process and build. Checked once when a file is opened, so that readers need not.
import type { MachineProfile } from "@profinfer/contract";
import { READABLE_EVENT_ABIS } from "../abi/events.js";

/** What a run recorded (record --level): the event stream's depth, or only in-kernel aggregates. */
export type RecordLevel = "token" | "graph" | "op" | "metrics";

/** A probed per-operator function: OP events name it by `index`. */
export interface OpFunction {
  index: number;
  symbol: string;
  library: string;
}

/**
 * A known backend's own function that was probed: BACKEND_CALL events name it by `index`, `role`
 * says what it does (discovery/backends.ts BackendCallRole).
 */
export interface BackendCall {
  index: number;
  symbol: string;
  library: string;
  /** the backend implementation (its registry's name: "BLAS", "Vulkan") */
  backend: string;
  role: "op" | "submit" | "wait" | "record";
}

/** What a mapped library offered the tracer. */
export interface LibraryEntry {
  llama: boolean;
  ggmlBase: boolean;
  ggmlCpu: boolean;
  debugInfo: boolean;
}

export interface RunHeader {
  format: "profinfer-raw";
  version: 1;
  eventAbi: number;
  /** the profinfer version that recorded it */
  profinfer: string;
  /** the pid of the profinfer that recorded it (absent in older runs): its own share of the CPUs */
  profinferPid?: number;
  level: RecordLevel;
  /** the recording options that shape what the events hold */
  options: {
    sampleTokens?: number;
    ops?: string[] | null;
    window?: [number, number] | null;
    moe?: boolean;
    pmc?: string[] | null;
  };
  /** the perf counters the OP/BARRIER events carry readings of, in order (absent: none) */
  counters?: { name: string; hardware: boolean }[];
  /**
   * the backend-stall formula (trace/backendStall.ts) whose events are all among `counters`
   * (absent: none, or a run recorded before formulas were recorded)
   */
  backendStall?: { formula: string };
  /** one CLOCK_MONOTONIC / CLOCK_REALTIME pair, decimal strings of ns */
  clock: { monotonicNs: string; realtimeNs: string };
  target: {
    pid: number;
    command: string[];
    executable?: string;
    libraries?: Record<string, LibraryEntry>;
  };
  /** the ggml layout resolved for the build (the layout probe's output) */
  layout?: {
    library?: string;
    ggmlVersion?: string | null;
    commit?: string | null;
    /** ggml_type_size and ggml_blck_size by type index (absent in runs before they were probed) */
    typeSizes?: number[] | null;
    blockSizes?: number[] | null;
  };
  /** this host's machine profile when the run was recorded (absent: none was measured) */
  machine?: MachineProfile;
  /** ggml op names, indexed by ggml_tensor.op for the binary in hand */
  opNames: string[];
  unaryOpNames: string[];
  gluOpNames: string[];
  typeNames: string[];
  opFuncs: OpFunction[];
  /** the known backends' own functions probed (absent: none, or a run before ABI 5) */
  backendCalls?: BackendCall[];
  host?: { hostname?: string; kernel?: string; cpuModel?: string; cpus?: number; arch?: string };
  /**
   * the OpenTelemetry resource the user asked for when recording (--service-name,
   * OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES), so that replay sends the same
   */
  resource?: ResourceIdentity;
}

/** The names a user gave the run's telemetry, as the run keeps them. */
export interface ResourceIdentity {
  serviceName?: string;
  attributes: Record<string, string>;
  /** --model: the model's name in every output, in place of the GGUF's */
  model?: string;
}

const isStringArray = (value: unknown): value is string[] =>
  Array.isArray(value) && value.every((n) => typeof n === "string");

/** A parsed run header, checked; `fail` is called with what is wrong with it. */
export function checkHeader(
  header: Partial<RunHeader>,
  fail: (reason: string) => never,
): RunHeader {
  if (header.format !== "profinfer-raw") fail(`the run header's format is not "profinfer-raw"`);
  if (header.version !== 1) {
    fail(`format version ${String(header.version)} is not 1, the one this profinfer reads`);
  }
  if (!READABLE_EVENT_ABIS.includes(header.eventAbi as number)) {
    fail(
      `its events have ABI ${String(header.eventAbi)}, this profinfer decodes ABI ${READABLE_EVENT_ABIS.join(" and ")}: ` +
        "replay it with the profinfer version that recorded it",
    );
  }
  const clock = header.clock;
  if (
    !clock ||
    typeof clock.monotonicNs !== "string" ||
    typeof clock.realtimeNs !== "string" ||
    !/^\d+$/.test(clock.monotonicNs) ||
    !/^\d+$/.test(clock.realtimeNs)
  ) {
    fail("the run header's clock pair is missing or not decimal strings");
  }
  for (const table of ["opNames", "unaryOpNames", "gluOpNames", "typeNames"] as const) {
    if (!isStringArray(header[table])) fail(`the run header's ${table} is not an array of strings`);
  }
  const target = header.target;
  if (!target || typeof target.pid !== "number" || !isStringArray(target.command)) {
    fail("the run header's target has no numeric pid and command list");
  }
  const resource = header.resource;
  if (
    resource !== undefined &&
    (typeof resource !== "object" ||
      resource === null ||
      (resource.serviceName !== undefined && typeof resource.serviceName !== "string") ||
      (resource.model !== undefined && typeof resource.model !== "string") ||
      typeof resource.attributes !== "object" ||
      resource.attributes === null ||
      !Object.values(resource.attributes).every((v) => typeof v === "string"))
  ) {
    fail("the run header's resource is not a service name and string attributes");
  }
  return header as RunHeader;
}
