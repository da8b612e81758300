// SPDX-License-Identifier: Apache-2.0
// The OTLP section: how many spans a second profinfer exports without a drop, the CPU it spends
// per span, and the span sizes the default sampling (docs/spans.md "Volume") is chosen from.
// Spans of one recorded op-level run are built and encoded straight from its trace model, as the
// live export does (SpanBuilder into OtlpSpanEncoder), and sent again and again through
// SpanExport to the OTLP receiver in a process of its own; and the op level with live export
// against the op level alone, from the rounds.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { ProtobufTraceSerializer } from "@opentelemetry/otlp-transformer";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { ATTR_OP } from "@profinfer/contract";
import { runChecked } from "./harness.mjs";
import { takeRecording } from "./recording.mjs";
import { perRoundRatios } from "./rounds.mjs";
import { span } from "./output.mjs";
import { median, range } from "./stats.mjs";

const {
  buildRun,
  buildRunSpans,
  encodeRunSpans,
  SpanExport,
  EXPORT_DEFAULTS,
  toReadableSpans,
  resourceAttributes,
} = await import("@profinfer/exporter");

// generous: the backlog goes through the disk spool
const FLUSH_TIMEOUT_MS = 600_000;
// the receiver prints its counts every 50 ms: wait for the last ones
const RECEIVER_LAG_MS = 300;

/** the spans of one op-level run, the CPU and time building them took, and their sizes */
function spansOfOneRun({ otlpTokens }, bench) {
  const out = join(bench.scratch, "otlp-run");
  runChecked(...bench.record(["--level", "op"], out, otlpTokens), "OTLP bench record");
  const run = buildRun(takeRecording(out));
  const spans = buildRunSpans(run, { kind: "all" });
  const resourceAttrs = resourceAttributes(
    run.header,
    run.notes.map((n) => n.note),
  );
  // spans straight from the model into OTLP requests, as the live export makes them: the best of
  // five (the first compiles the code)
  let buildCpu = null;
  let buildWallMs = Infinity;
  let batches = [];
  for (let i = 0; i < 5; i++) {
    const cpu0 = process.cpuUsage();
    const wall0 = performance.now();
    batches = encodeRunSpans(run, { kind: "all" }, resourceAttrs, "bench");
    const cpu = process.cpuUsage(cpu0);
    const wallMs = performance.now() - wall0;
    if (!buildCpu || cpu.user + cpu.system < buildCpu.user + buildCpu.system) buildCpu = cpu;
    buildWallMs = Math.min(buildWallMs, wallMs);
  }
  const opSpans = spans.filter((x) => x.attributes[ATTR_OP] !== undefined);
  const resource = resourceFromAttributes(resourceAttrs);
  const opBytes = ProtobufTraceSerializer.serializeRequest(
    toReadableSpans(opSpans, resource, "bench"),
  ).length;
  const decodeCalls = run.tokens.filter((t) => t.phase === "decode");
  const opsPerDecode =
    decodeCalls.length > 0
      ? Math.round(
          decodeCalls.reduce(
            (n, t) => n + t.graphs.reduce((m, g) => m + (g.opsRecorded ? g.ops.length : 0), 0),
            0,
          ) / decodeCalls.length,
        )
      : 0;
  return { spans, batches, opSpans, resource, buildCpu, buildWallMs, opBytes, opsPerDecode };
}

/**
 * CPU (us) and wall time (ms) of `send`, and how many spans reached the receiver from its start
 * until RECEIVER_LAG_MS after `thenUntimed` (what follows the sending but is not timed).
 */
async function measureSending(collector, send, thenUntimed = async () => {}) {
  // the receiver's counts reach this process through its event loop, which the rounds' spawnSync
  // held: let what the rounds' live exports sent be counted before this starts
  let before = -1;
  while (before !== collector.received()[0]) {
    before = collector.received()[0];
    await sleep(RECEIVER_LAG_MS);
  }
  const cpu0 = process.cpuUsage();
  const wall0 = performance.now();
  await send();
  const wallMs = performance.now() - wall0;
  const cpu = process.cpuUsage(cpu0);
  await thenUntimed();
  await sleep(RECEIVER_LAG_MS);
  return { wallMs, cpuUs: cpu.user + cpu.system, arrived: collector.received()[0] - before };
}

/**
 * The export's throughput, CPU per span and span sizes, and the op level with live OTLP export
 * over op in the same rounds (t/s and CPU per run; empty without those rounds): bench-otlp.json.
 */
export async function measureOtlp(config, bench, results) {
  const run = spansOfOneRun(config, bench);
  const repeat = config.otlpRepeat;
  const spoolDir = join(bench.scratch, "otlp-spool");
  mkdirSync(spoolDir);
  const exporter = new SpanExport(
    {
      url: bench.collector.url,
      headers: {},
      timeoutMs: EXPORT_DEFAULTS.timeoutMs,
      spoolDir,
      spoolMaxBytes: EXPORT_DEFAULTS.spoolMaxBytes,
      batchSpans: EXPORT_DEFAULTS.batchSpans,
      retryInitialMs: EXPORT_DEFAULTS.retryInitialMs,
      retryMaxMs: EXPORT_DEFAULTS.retryMaxMs,
      version: "bench",
      log: (m) => process.stderr.write(`otlp: ${m}\n`),
    },
    run.resource.attributes,
  );
  const addAll = () => {
    for (const batch of run.batches) exporter.addEncoded(batch);
  };
  // direct: each repetition handed over and sent before the next, as live export does in chunks
  const direct = await measureSending(bench.collector, async () => {
    for (let i = 0; i < repeat; i++) {
      addAll();
      await exporter.flush(FLUSH_TIMEOUT_MS);
    }
  });
  // backlog: everything at once, more than the memory queue holds: the excess goes through the spool
  const backlog = await measureSending(
    bench.collector,
    async () => {
      for (let i = 0; i < repeat; i++) addAll();
      await exporter.flush(FLUSH_TIMEOUT_MS);
    },
    () => exporter.close(),
  );
  const exported = run.spans.length * repeat;
  return {
    spansPerRun: run.spans.length,
    opSpans: run.opSpans.length,
    opSpansPerDecodeCall: run.opsPerDecode,
    bytesPerOpSpan: run.opBytes / Math.max(run.opSpans.length, 1),
    buildUsPerSpan: (run.buildCpu.user + run.buildCpu.system) / run.spans.length,
    buildWallMs: run.buildWallMs,
    exported,
    arrived: direct.arrived,
    spansPerSecond: exported / (direct.wallMs / 1000),
    sendCpuUsPerSpan: direct.cpuUs / exported,
    backlogArrived: backlog.arrived,
    backlogSpansPerSecond: exported / (backlog.wallMs / 1000),
    backlogCpuUsPerSpan: backlog.cpuUs / exported,
    spooled: exporter.stats.spooled,
    dropped: exporter.stats.dropped + (2 * exported - direct.arrived - backlog.arrived),
    opOtlpOverOpRatios: perRoundRatios(results, "op+otlp", "op", "tps"),
    opOtlpOverOpCpu: perRoundRatios(results, "op+otlp", "op", "cpuSeconds"),
    opOtlpNoneOverOpRatios: perRoundRatios(results, "op+otlp none", "op", "tps"),
    opOtlpNoneOverOpCpu: perRoundRatios(results, "op+otlp none", "op", "cpuSeconds"),
    opOtlpAllOverOpRatios: perRoundRatios(results, "op+otlp all", "op", "tps"),
    opOtlpAllOverOpCpu: perRoundRatios(results, "op+otlp all", "op", "cpuSeconds"),
    selfPct: {
      op: median((results.op ?? []).map((r) => r.selfPct ?? 0)),
      "op+otlp": median((results["op+otlp"] ?? []).map((r) => r.selfPct ?? 0)),
      "op+otlp none": median((results["op+otlp none"] ?? []).map((r) => r.selfPct ?? 0)),
      "op+otlp all": median((results["op+otlp all"] ?? []).map((r) => r.selfPct ?? 0)),
    },
  };
}

/** the OTLP section's lines */
export function otlpLines({ otlpTokens }, otlp) {
  const { opOtlpOverOpRatios: tps, opOtlpOverOpCpu: cpu } = otlp;
  const { opOtlpAllOverOpRatios: allTps, opOtlpAllOverOpCpu: allCpu } = otlp;
  const { opOtlpNoneOverOpRatios: noneTps, opOtlpNoneOverOpCpu: noneCpu } = otlp;
  const against = (label, ratios, cpuRatios, self) =>
    ratios.length > 0
      ? [
          `- ${label} vs op alone, same rounds: median t/s ratio ${median(ratios).toFixed(4)} (slowdown ${((1 / median(ratios) - 1) * 100).toFixed(2)}%, range ${span(range(ratios), 3)}), median CPU-per-run ratio ${median(cpuRatios).toFixed(4)}; profinfer's own CPU while the target decoded: ${self.toFixed(2)}% of one core (op alone ${otlp.selfPct.op.toFixed(2)}%)`,
        ]
      : [];
  return [
    "",
    `OTLP export (bench model, llama-bench -n ${otlpTokens} at op level, every operator span; receiver in its own process):`,
    `- spans of the run: ${otlp.spansPerRun} (${otlp.opSpans} operator spans, ${otlp.opSpansPerDecodeCall} per decode call), ${otlp.bytesPerOpSpan.toFixed(0)} bytes per operator span in OTLP protobuf`,
    `- spans built and encoded straight from the model into OTLP requests: ${otlp.buildUsPerSpan.toFixed(2)} us CPU per span (best of five)`,
    `- export, chunk by chunk: ${otlp.exported} spans in ${(otlp.exported / otlp.spansPerSecond).toFixed(2)} s = ${Math.round(otlp.spansPerSecond)} spans/s, ${otlp.sendCpuUsPerSpan.toFixed(2)} us CPU per span (gRPC), ${otlp.arrived} arrived`,
    `- profinfer CPU per span, built, encoded and sent: ${(otlp.buildUsPerSpan + otlp.sendCpuUsPerSpan).toFixed(2)} us`,
    `- export, all at once (the excess through the disk spool): ${Math.round(otlp.backlogSpansPerSecond)} spans/s, ${otlp.backlogCpuUsPerSpan.toFixed(2)} us CPU per span, ${otlp.backlogArrived} arrived, ${otlp.spooled} spooled`,
    `- dropped: ${otlp.dropped}`,
    ...against(
      "op with live OTLP export without operator spans (its fixed cost, no CPU bound)",
      noneTps,
      noneCpu,
      otlp.selfPct["op+otlp none"],
    ),
    ...against(
      "op with live OTLP export (default sampling and CPU bound)",
      tps,
      cpu,
      otlp.selfPct["op+otlp"],
    ),
    ...against(
      "op with live OTLP export of every operator (no CPU bound)",
      allTps,
      allCpu,
      otlp.selfPct["op+otlp all"],
    ),
  ];
}
