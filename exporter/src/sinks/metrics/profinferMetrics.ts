// SPDX-License-Identifier: Apache-2.0
// profinfer's Prometheus metrics, registered on one injected Registry. Every value is read at
// scrape time from the in-kernel aggregates (BPF maps, summed by the addon): nothing is observed
// per event on the JS thread. TargetMetrics serves the traced processes' series, one set of
// labels per process (record and attach: one, by model; the host agent: each process it follows);
// ProfilerMetrics serves profinfer's own (probe hits, drops, span export, CPU).
import { Counter, Gauge, type Registry } from "prom-client";
import { cachedMachineProfile } from "../../host/machineProfile.js";
import { AggPhase, BATCH_SEQ_BUCKETS, BATCH_TOKEN_BUCKETS, NO_LAYER } from "../../abi/constants.js";
import { aggregateOpName } from "../../trace/aggregateNames.js";
import { backendStallParts } from "../../trace/backendStall.js";
import type { Aggregates } from "../../trace/notes.js";
import type { LiveRecording } from "../liveSink.js";
import { AggregatedHistogram } from "./aggregatedHistogram.js";
import { RequestMetrics, type EndedRequest } from "./requestMetrics.js";
import * as N from "@profinfer/contract";

/** What the metrics read of one traced process: a recording, or a process the agent follows. */
export type TargetReadings = Pick<
  LiveRecording,
  "aggregates" | "requests" | "operatorFunctions" | "counters" | "backendStall" | "opNames"
>;

/** What they read of profinfer itself. */
export type ProfilerReadings = Pick<LiveRecording, "probeCounters" | "eventsReceived">;

/** One traced process as the metrics see it. */
export interface MetricsTarget {
  /** the values of the target labels, which tell its series from the others' */
  labels: Readonly<Record<string, string>>;
  readings: TargetReadings;
}

export interface TargetMetricsOptions {
  /** the labels every target series carries (record and attach: model) */
  targetLabels: readonly string[];
  /** bucket upper bounds of the aggregates, in ns (the addon's aggregateBoundsNs) */
  boundsNs: readonly number[];
  /** expose profinfer_layer_op_seconds_total (the aggregates were kept per layer) */
  layers: boolean;
  /** expose profinfer_moe_expert_selections_total */
  moe: boolean;
  /** a request whose sequence had no call for this long has ended (default REQUEST_IDLE_NS) */
  requestIdleNs?: bigint;
  /** hears of every request that ended, with its target's labels */
  onRequestEnded?: (labels: Readonly<Record<string, string>>, request: EndedRequest) => void;
}

export interface MetricsOptions extends Omit<TargetMetricsOptions, "targetLabels"> {
  /** the `model` label */
  model: string;
}

interface OpTotals {
  count: number;
  ns: number;
  barrierNs: number;
  runs: number;
  bytes: number;
  counters: number[];
  buckets: number[];
}

/** The `phase` label of each phase of the token aggregates. */
const PHASES = [
  ["prefill", AggPhase.PREFILL],
  ["decode", AggPhase.DECODE],
  ["mixed", AggPhase.MIXED],
] as const satisfies readonly (readonly [(typeof N.PHASES)[number], number])[];

/** Upper bounds 2^0, 2^1, ... of the tokens and sequences per call histograms. */
const powersOfTwo = (n: number) => Array.from({ length: n - 1 }, (_, i) => 2 ** i);

/** What the metrics read of the OTLP exporter's ExportStats. */
export interface SpanExportCounts {
  sent: number;
  resent: number;
  queued: number;
  dropped: number;
}

/** A target's identity among the others (its label values). */
const keyOf = (labels: Readonly<Record<string, string>>) => JSON.stringify(labels);

/** The series of traced processes: token, request and operator metrics, one label set each. */
export class TargetMetrics {
  /** the per-request metrics: polled at each scrape, and between scrapes (pollRequests) */
  private readonly requests: RequestMetrics;
  /** one read of a target's maps serves every metric of a scrape */
  private readonly cached = new Map<string, { at: number; value: Aggregates }>();

  constructor(
    registry: Registry,
    private readonly targets: () => readonly MetricsTarget[],
    options: TargetMetricsOptions,
  ) {
    const labelNames = options.targetLabels;
    const bounds = options.boundsNs.map((ns) => ns / 1e9);
    const each = () => this.targets();
    const aggregates = (t: MetricsTarget) => this.aggregatesOf(t);
    const opTotals = (t: MetricsTarget) => this.opTotals(t);

    this.requests = new RequestMetrics(
      registry,
      labelNames,
      () => this.targets().map((t) => ({ labels: t.labels, source: () => t.readings.requests() })),
      options.requestIdleNs,
      options.onRequestEnded,
    );
    new AggregatedHistogram(
      N.DECODE_CALL_DURATION,
      "Duration of each llama_decode call, by phase (prefill: prompt tokens only, decode: generated tokens only, mixed: both)",
      bounds,
      () =>
        each().flatMap((target) =>
          PHASES.flatMap(([phase, i]) => {
            const t = aggregates(target).tokens[i];
            return t && t.calls > 0
              ? [{ labels: { ...target.labels, phase }, buckets: t.buckets, sum: t.ns / 1e9 }]
              : [];
          }),
        ),
    ).register(registry);
    /** the calls of every phase, summed: their `pick` buckets and `sum` */
    const perCall = (pick: "tokenBuckets" | "seqBuckets", sum: "tokens" | "sequences") => () =>
      each().flatMap((target) => {
        const buckets: number[] = [];
        let total = 0;
        let calls = 0;
        for (const t of aggregates(target).tokens) {
          calls += t.calls;
          total += t[sum] ?? 0;
          (t[pick] ?? []).forEach((v, i) => (buckets[i] = (buckets[i] ?? 0) + v));
        }
        return calls > 0 ? [{ labels: target.labels, buckets, sum: total }] : [];
      });
    new AggregatedHistogram(
      N.BATCH_TOKENS,
      "Tokens in each llama_decode call's batch",
      powersOfTwo(BATCH_TOKEN_BUCKETS),
      perCall("tokenBuckets", "tokens"),
    ).register(registry);
    new AggregatedHistogram(
      N.BATCH_SEQUENCES,
      "Sequences (requests) in each llama_decode call's batch",
      powersOfTwo(BATCH_SEQ_BUCKETS),
      perCall("seqBuckets", "sequences"),
    ).register(registry);
    const tokenTotal = (target: MetricsTarget, field: "promptTokens" | "generatedTokens") =>
      aggregates(target).tokens.reduce((n, t) => n + (t[field] ?? 0), 0);
    new Counter({
      name: N.PROMPT_TOKENS,
      help: "Prompt tokens evaluated for the requests (not those taken from the cache), counted at each request's first token",
      labelNames,
      registers: [registry],
      collect() {
        this.reset();
        for (const t of each()) this.inc(t.labels, tokenTotal(t, "promptTokens"));
      },
    });
    new Counter({
      name: N.GENERATED_TOKENS,
      help: "Tokens generated for the requests: one per output sampled",
      labelNames,
      registers: [registry],
      collect() {
        this.reset();
        for (const t of each()) this.inc(t.labels, tokenTotal(t, "generatedTokens"));
      },
    });
    /** a counter of the token aggregates' `field`, by phase */
    const byPhase = (field: "tokens" | "calls") =>
      function (this: Counter) {
        this.reset();
        for (const target of each()) {
          const tokens = aggregates(target).tokens;
          for (const [phase, i] of PHASES)
            this.inc({ ...target.labels, phase }, tokens[i]?.[field] ?? 0);
        }
      };
    new Counter({
      name: N.TOKENS,
      help: "Tokens processed by llama_decode, by the phase of their call",
      labelNames: [...labelNames, N.LABEL_PHASE],
      registers: [registry],
      collect: byPhase("tokens"),
    });
    new Counter({
      name: N.DECODE_CALLS,
      help: "llama_decode calls, by phase (prefill: prompt tokens only, decode: generated tokens only, mixed: both)",
      labelNames: [...labelNames, N.LABEL_PHASE],
      registers: [registry],
      collect: byPhase("calls"),
    });

    new AggregatedHistogram(
      N.OP_DURATION,
      "Duration of one operator on one worker thread, by operator type",
      bounds,
      () =>
        each().flatMap((target) =>
          [...opTotals(target)].map(([op, t]) => ({
            labels: { ...target.labels, [N.LABEL_OP]: op },
            buckets: t.buckets,
            sum: t.ns / 1e9,
          })),
        ),
    ).register(registry);
    /** a counter of each operator type's `value` */
    const perOp = (value: (t: OpTotals) => number) =>
      function (this: Counter) {
        this.reset();
        for (const target of each())
          for (const [op, t] of opTotals(target)) this.inc({ ...target.labels, op }, value(t));
      };
    new Counter({
      name: N.OP_SECONDS,
      help: "Time in operators, summed over worker threads, by operator type",
      labelNames: [...labelNames, N.LABEL_OP],
      registers: [registry],
      collect: perOp((t) => t.ns / 1e9),
    });
    new Counter({
      name: N.OP_RUNS,
      help: "Operator runs, each counted once (not per worker thread), by operator type: with profinfer_op_duration_seconds_count (one per thread) it says how many threads an operator ran on",
      labelNames: [...labelNames, N.LABEL_OP],
      registers: [registry],
      collect: perOp((t) => t.runs),
    });
    new Counter({
      name: N.OP_BYTES,
      help: "Bytes operators read from their sources and wrote to their destinations, from the tensors' shapes and the build's type sizes (docs/findings.md), by operator type",
      labelNames: [...labelNames, N.LABEL_OP],
      registers: [registry],
      collect: perOp((t) => t.bytes),
    });
    new Counter({
      name: N.BARRIER_WAIT,
      help: "Time worker threads waited in the barrier after an operator, by operator type",
      labelNames: [...labelNames, N.LABEL_OP],
      registers: [registry],
      collect: perOp((t) => t.barrierNs / 1e9),
    });
    new Counter({
      name: N.OP_COUNTER,
      help: "Perf counter deltas inside operators, summed over threads, by operator type and event",
      labelNames: [...labelNames, N.LABEL_OP, N.LABEL_EVENT],
      registers: [registry],
      collect() {
        this.reset();
        for (const target of each()) {
          const names = target.readings.counters.map((c) => c.name);
          for (const [op, t] of opTotals(target)) {
            names.forEach((event, i) =>
              this.inc({ ...target.labels, op, event }, t.counters[i] ?? 0),
            );
          }
        }
      },
    });
    // both sides per op from the summed deltas; served never lower than before, as a counter
    const served = { stalled: new Map<string, number>(), total: new Map<string, number>() };
    const side = (which: "stalled" | "total") =>
      function (this: Counter) {
        this.reset();
        for (const target of each()) {
          const stall = target.readings.backendStall;
          if (!stall) continue;
          const names = target.readings.counters.map((c) => c.name);
          for (const [op, t] of opTotals(target)) {
            const deltas = Object.fromEntries(names.map((n, i) => [n, t.counters[i] ?? 0]));
            const parts = backendStallParts(stall, deltas);
            if (!parts) continue;
            const key = keyOf({ ...target.labels, op });
            const value = Math.max(parts[which], served[which].get(key) ?? 0);
            served[which].set(key, value);
            this.inc({ ...target.labels, op }, value);
          }
        }
      };
    const stall = this.targets().find((t) => t.readings.backendStall)?.readings.backendStall;
    if (stall) {
      new Counter({
        name: N.OP_BACKEND_STALL_SLOTS,
        help: `Issue slots (${stall.unit}) stalled on the back end inside operators, by operator type: ${stall.metric}`,
        labelNames: [...labelNames, N.LABEL_OP],
        registers: [registry],
        collect: side("stalled"),
      });
      new Counter({
        name: N.OP_BACKEND_SLOTS,
        help: `Issue slots (${stall.unit}) inside operators, the backend-stall figure's denominator, by operator type`,
        labelNames: [...labelNames, N.LABEL_OP],
        registers: [registry],
        collect: side("total"),
      });
    }
    new Gauge({
      name: N.COUNTER_INFO,
      help: 'The perf counters recorded: hardware="true" for real hardware counts, "false" for software events; feeds="backend_stall" and formula for those the backend-stall figure is computed from',
      labelNames: [...labelNames, N.LABEL_EVENT, N.LABEL_HARDWARE, N.LABEL_FEEDS, N.LABEL_FORMULA],
      registers: [registry],
      collect() {
        this.reset();
        for (const target of each()) {
          const formula = target.readings.backendStall ?? null;
          const feeds = new Set(formula?.events.map((e) => e.name) ?? []);
          for (const c of target.readings.counters) {
            const fed = formula && feeds.has(c.name);
            this.set(
              {
                ...target.labels,
                event: c.name,
                hardware: String(c.hardware),
                ...(fed ? { feeds: N.FEEDS_BACKEND_STALL, formula: formula.id } : {}),
              },
              1,
            );
          }
        }
      },
    });

    if (options.layers) {
      new Counter({
        name: N.LAYER_OP_SECONDS,
        help: "Time in probed operators per layer and operator type, summed over threads",
        labelNames: [...labelNames, N.LABEL_LAYER, N.LABEL_OP],
        registers: [registry],
        collect() {
          this.reset();
          for (const target of each()) {
            for (const l of aggregates(target).layers) {
              if (l.layer === NO_LAYER) continue;
              const op = aggregateOpName(l.func, target.readings);
              this.inc({ ...target.labels, layer: String(l.layer), op }, l.ns / 1e9);
            }
          }
        },
      });
    }
    if (options.moe) {
      new Counter({
        name: N.MOE_EXPERT_SELECTIONS,
        help: "Times each expert was chosen, per MoE layer (tokens x k)",
        labelNames: [...labelNames, N.LABEL_LAYER, N.LABEL_EXPERT],
        registers: [registry],
        collect() {
          this.reset();
          for (const target of each()) {
            for (const m of aggregates(target).moe) {
              if (m.layer === NO_LAYER) continue;
              this.inc(
                { ...target.labels, layer: String(m.layer), expert: String(m.expert) },
                m.count,
              );
            }
          }
        },
      });
    }
  }

  /** Takes the requests that ended into the metrics (the kernel's queue of them is bounded). */
  pollRequests(): void {
    this.requests.poll();
  }

  /** A target's aggregates, read at most once per 100 ms (one read serves a whole scrape). */
  private aggregatesOf(target: MetricsTarget): Aggregates {
    const key = keyOf(target.labels);
    const now = performance.now();
    let entry = this.cached.get(key);
    if (!entry || now - entry.at > 100) {
      entry = { at: now, value: target.readings.aggregates() };
      this.cached.set(key, entry);
      if (this.cached.size > 2 * this.targets().length + 8) this.forgetGone();
    }
    return entry.value;
  }

  private forgetGone(): void {
    const live = new Set(this.targets().map((t) => keyOf(t.labels)));
    for (const key of this.cached.keys()) if (!live.has(key)) this.cached.delete(key);
  }

  /** A target's aggregates by operator type (functions of one op summed). */
  private opTotals(target: MetricsTarget): Map<string, OpTotals> {
    const names = new Map<number, string>();
    const out = new Map<string, OpTotals>();
    for (const a of this.aggregatesOf(target).ops) {
      let op = names.get(a.func);
      if (op === undefined) names.set(a.func, (op = aggregateOpName(a.func, target.readings)));
      let t = out.get(op);
      if (!t) {
        t = { count: 0, ns: 0, barrierNs: 0, runs: 0, bytes: 0, counters: [], buckets: [] };
        out.set(op, t);
      }
      t.count += a.count;
      t.ns += a.ns;
      t.barrierNs += a.barrierNs;
      t.runs += a.runs ?? 0;
      t.bytes += a.bytes ?? 0;
      a.counters.forEach((v, i) => (t.counters[i] = (t.counters[i] ?? 0) + v));
      a.buckets.forEach((v, i) => (t.buckets[i] = (t.buckets[i] ?? 0) + v));
    }
    return out;
  }
}

/** profinfer's own series: probe hits, events and drops, span export, its CPU time. */
export class ProfilerMetrics {
  private spanStats: (() => SpanExportCounts) | null = null;

  constructor(
    registry: Registry,
    source: ProfilerReadings,
    /** the labels of its series (record and attach: the model; the host agent: none) */
    labels: Readonly<Record<string, string>>,
  ) {
    const labelNames = Object.keys(labels);
    new Gauge({
      name: N.MACHINE_READ_BANDWIDTH,
      help: "This host's read bandwidth by the number of threads reading, as its machine profile measured it (profinfer machine; docs/findings.md): the ceiling of profinfer_op_bytes_total's rate",
      labelNames: [...labelNames, N.LABEL_THREADS],
      registers: [registry],
      collect() {
        this.reset();
        // the cached profile, read at each scrape: a `profinfer machine --refresh` shows at once
        const profile = cachedMachineProfile();
        for (const p of profile?.bandwidth.points ?? []) {
          this.set({ ...labels, [N.LABEL_THREADS]: String(p.threads) }, p.bytesPerSecond);
        }
      },
    });
    new Counter({
      name: N.PROBE_HITS,
      help: "Probe hits of profinfer's eBPF programs in the target",
      labelNames,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(
          labels,
          source.probeCounters().hits.reduce((a, b) => a + b, 0),
        );
      },
    });
    new Counter({
      name: N.EVENTS,
      help: "Events profinfer's user space received from the kernel",
      labelNames,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(labels, source.eventsReceived());
      },
    });
    new Counter({
      name: N.EVENTS_DROPPED,
      help: "Events lost in the kernel, by reason",
      labelNames: [...labelNames, N.LABEL_REASON],
      registers: [registry],
      collect() {
        this.reset();
        const drops = source.probeCounters().drops;
        N.DROP_REASONS.forEach((reason, i) => this.inc({ ...labels, reason }, drops[i] ?? 0));
      },
    });
    // the span exporter's own counts, read at each scrape once followSpanExport() names them
    const spans = () => this.spanStats?.() ?? { sent: 0, resent: 0, queued: 0, dropped: 0 };
    new Counter({
      name: N.SPANS_EXPORTED,
      help: "Spans exported over OTLP (first attempt or re-sent from the spool)",
      labelNames,
      registers: [registry],
      collect() {
        this.reset();
        const s = spans();
        this.inc(labels, s.sent + s.resent);
      },
    });
    new Gauge({
      name: N.SPANS_QUEUED,
      help: "Spans waiting in the spool to be exported",
      labelNames,
      registers: [registry],
      collect() {
        this.set(labels, spans().queued);
      },
    });
    new Counter({
      name: N.SPANS_DROPPED,
      help: "Spans dropped before export (the spool was full)",
      labelNames,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(labels, spans().dropped);
      },
    });
    new Counter({
      name: N.PROCESS_CPU,
      help: "CPU time of profinfer's own process (user and system)",
      labelNames,
      registers: [registry],
      collect() {
        this.reset();
        const { user, system } = process.cpuUsage();
        this.inc(labels, (user + system) / 1e6);
      },
    });
  }

  /** Serve the OTLP span exporter's counts (sent, re-sent, queued, dropped). */
  followSpanExport(stats: () => SpanExportCounts): void {
    this.spanStats = stats;
  }
}

/** The metrics of one recording (record and attach), labelled by its model. */
export class ProfinferMetrics {
  private readonly targetMetrics: TargetMetrics;
  private readonly profiler: ProfilerMetrics;

  constructor(registry: Registry, source: LiveRecording, options: MetricsOptions) {
    const labels = { [N.LABEL_MODEL]: options.model };
    const target: MetricsTarget = { labels, readings: source };
    this.targetMetrics = new TargetMetrics(registry, () => [target], {
      ...options,
      targetLabels: [N.LABEL_MODEL],
    });
    this.profiler = new ProfilerMetrics(registry, source, labels);
  }

  /** Takes the requests that ended into the metrics (the kernel's queue of them is bounded). */
  pollRequests(): void {
    this.targetMetrics.pollRequests();
  }

  /** Serve the OTLP span exporter's counts (sent, re-sent, queued, dropped). */
  followSpanExport(stats: () => SpanExportCounts): void {
    this.profiler.followSpanExport(stats);
  }
}
