// SPDX-License-Identifier: Apache-2.0
// The exporter's public entry: what scripts, tests and other packages import, in the order of the
// data flow (docs/architecture.md). Only re-exports.
export { UserError } from "./errors.js";

// the event ABI of bpf/profinfer.h
export {
  EVENT_ABI,
  EVENT_SIZES,
  EventType,
  GraphFn,
  LAYOUT,
  PI_MAX_BATCH_SEQS,
  PI_MAX_COUNTERS,
  PI_MAX_MOE_IDS,
  PI_MAX_NAME,
  PI_MAX_SRC,
  PI_NODES_PER_CHUNK,
  countedEventSize,
  decodeEvent,
  decodeRecord,
  type BatchEvent,
  type BatchSequence,
  type CounterReadings,
  type RawEvent,
} from "./abi/events.js";
export { BatchFlag, STEP_REGISTERS } from "./abi/constants.js";

// the target
export { readElf, type ElfFile } from "./discovery/elf.js";
export { findProbeSite } from "./discovery/probeSite.js";
export { callTargetsOf, findStepSites } from "./discovery/stepSites.js";
export type { ProbedLayout } from "./discovery/layout.js";

// recording
export { loadNativeModule, layoutProbePath, type NativeModule } from "./record/nativeTracer.js";
export { LEVELS } from "./record/probePlan.js";
export { hasCorePmu } from "./record/counters.js";
export { kernelHasUprobeMulti } from "./host/kernel.js";

// the raw file and the trace model
export { readRawFile, RawFileReader, RawFileWriter, type RawRecording } from "./trace/rawFile.js";
export type { RunHeader, RecordLevel } from "./trace/header.js";
export type { NoteRecord, RunNote } from "./trace/notes.js";
export { buildRun } from "./trace/buildRun.js";
export { scanRunFacts, type RunFacts } from "./trace/runFacts.js";
export {
  RunStream,
  chunkOfRun,
  streamRunFile,
  totalsOfRun,
  type RunChunk,
  type RunTotals,
} from "./trace/runStream.js";
export type { Run, Token, GraphRun, OpRun } from "./trace/types.js";
export { EMPTY_OPS, TENSOR_FLAG_COMPUTE, TENSOR_FLAG_INPUT, displayOpName } from "./trace/dag.js";
export { toWallClockNs } from "./trace/clock.js";
export { attachWork, typeSizesOf } from "./trace/work.js";

// outputs
export { REQUEST_IDLE_NS } from "./trace/requests.js";
export { buildRunSpans, type SpanLinkRecord, type SpanRecord } from "./sinks/otel/spans.js";
export { SpanExport, EXPORT_DEFAULTS, checkEndpoint } from "./sinks/otel/exporter.js";
export { OtlpSpanEncoder, encodeRunSpans, type EncodedBatch } from "./sinks/otel/otlpEncoder.js";
export { toReadableSpans } from "./sinks/otel/readable.js";
export { resourceAttributes } from "./sinks/otel/resource.js";
export { mainDecodeGraph, traceFrame, traceFrameOf } from "./sinks/traceFrame.js";
export { reportBundle } from "./sinks/report.js";
export { StatsAccumulator, computeStats, renderStatsJson } from "./sinks/stats.js";
export { FindingsAccumulator, computeFindings } from "./sinks/findings.js";

// the machine profile
export { measureMachine, machineProfile } from "./host/machineProfile.js";

// set-up, models
export {
  SetupMissingError,
  cacheRoot,
  backendsBinary,
  llamaBinary,
  manifestPath,
  modelsDir,
  otherBuilds,
  readManifest,
  requireManifest,
  pythonToolBinary,
  stackBinary,
  type CacheManifest,
  type LlamaCppBuild,
  type LlamaCppPythonBuild,
  type OtherBuilds,
  type StackComponent,
} from "./setup/cache.js";
export { BENCH_MODEL, BENCH_MODEL_Q8_0, TINY_MODELS, ensureModels } from "./models/zoo.js";
export { ggmlTypeName, tensorByteSize } from "./gguf/format.js";
export { readGguf } from "./gguf/reader.js";
export {
  agentConfig,
  readConfigFile as readAgentConfigFile,
  type AgentConfig,
  type AgentSettings,
} from "./agent/config.js";
