// SPDX-License-Identifier: Apache-2.0
// profinfer's Prometheus metrics, registered on one injected Registry. Every value is read at
// scrape time from the in-kernel aggregates (BPF maps, summed by the addon): nothing is observed
// per event on the JS thread.
import { Counter, Gauge, type Registry } from "prom-client";
import type { NativeAggregates } from "../../record/nativeTracer.js";
import { opOfFunction } from "../../discovery/libraries.js";
import { AggregatedHistogram, type BucketCounts } from "./aggregatedHistogram.js";
import * as N from "@profinfer/contract";

/** What the metrics are read from: a live recording (the Recorder through record.ts). */
export interface MetricsSource {
  /** cumulative in-kernel aggregates */
  aggregates(): NativeAggregates;
  /** cumulative probe hits and drops by reason (bpf/profinfer.h) */
  probeCounters(): { drops: number[]; hits: number[] };
  /** probed operator functions: the aggregate key is the index */
  readonly operatorFunctions: readonly { index: number; symbol: string }[];
  /** the counters recorded, in the order of the aggregates' counter arrays */
  readonly counters: readonly { name: string; hardware: boolean }[];
  /** events user space received so far (0 at level metrics) */
  eventsReceived(): number;
  /** the build's op, unary and glu names by enum value (step aggregate keys hold enum values) */
  readonly opNames?: { ops: readonly string[]; unary: readonly string[]; glu: readonly string[] };
}

export interface MetricsOptions {
  /** the `model` label */
  model: string;
  /** aggregate keys from this one up name a step probe's ops (the addon's stepKeyBase) */
  stepKeyBase?: number;
  /** the aggregate key of barrier-timed operators (the addon's unprobedKey) */
  unprobedKey: number;
  /** bucket upper bounds of the aggregates, in ns (the addon's aggregateBoundsNs) */
  boundsNs: readonly number[];
  /** the layer the aggregates give a tensor without one (the addon's noLayer) */
  noLayer: number;
  /** expose profinfer_layer_op_seconds_total (the aggregates were kept per layer) */
  layers: boolean;
  /** expose profinfer_moe_expert_selections_total */
  moe: boolean;
}

interface OpTotals {
  count: number;
  ns: number;
  barrierNs: number;
  counters: number[];
  buckets: number[];
}

const PHASES = ["prefill", "decode"] as const;

/** What the metrics read of the OTLP exporter's ExportStats. */
export interface SpanExportCounts {
  sent: number;
  resent: number;
  queued: number;
  dropped: number;
}

export class ProfinferMetrics {
  /** set by the span exporter (OTLP) when one runs */
  readonly spansExported: Counter<typeof N.LABEL_MODEL>;
  readonly spansQueued: Gauge<typeof N.LABEL_MODEL>;
  readonly spansDropped: Counter<typeof N.LABEL_MODEL>;

  private readonly source: MetricsSource;
  private spanStats: (() => SpanExportCounts) | null = null;

  /** Serve the OTLP span exporter's counts (sent, re-sent, queued, dropped). */
  followSpanExport(stats: () => SpanExportCounts): void {
    this.spanStats = stats;
  }

  constructor(
    registry: Registry,
    source: MetricsSource,
    private readonly options: MetricsOptions,
  ) {
    // one read of the maps serves every metric of a scrape
    let cached: { at: number; value: NativeAggregates } | null = null;
    this.source = {
      operatorFunctions: source.operatorFunctions,
      get opNames() {
        return source.opNames;
      },
      counters: source.counters,
      probeCounters: () => source.probeCounters(),
      eventsReceived: () => source.eventsReceived(),
      aggregates: () => {
        const now = performance.now();
        if (!cached || now - cached.at > 100) cached = { at: now, value: source.aggregates() };
        return cached.value;
      },
    };
    const model = { [N.LABEL_MODEL]: options.model };
    const bounds = options.boundsNs.map((ns) => ns / 1e9);
    // collect() runs with the prom-client metric as `this`
    const src = this.source;
    const opTotals = () => this.opTotals();

    const tokenSeries = (phase: 0 | 1): BucketCounts[] => {
      const t = this.source.aggregates().tokens[phase];
      return t && t.calls > 0 ? [{ labels: model, buckets: t.buckets, sum: t.ns / 1e9 }] : [];
    };
    new AggregatedHistogram(
      N.TIME_TO_FIRST_TOKEN,
      "Duration of prompt processing (prefill llama_decode calls): the time to the first token",
      bounds,
      () => tokenSeries(0),
    ).register(registry);
    new AggregatedHistogram(
      N.TIME_PER_OUTPUT_TOKEN,
      "Duration of each decode llama_decode call (one output token)",
      bounds,
      () => tokenSeries(1),
    ).register(registry);

    new Counter({
      name: N.TOKENS,
      help: "Tokens processed by llama_decode, by phase",
      labelNames: [N.LABEL_MODEL, N.LABEL_PHASE] as const,
      registers: [registry],
      collect() {
        this.reset();
        const tokens = src.aggregates().tokens;
        PHASES.forEach((phase, i) => this.inc({ ...model, phase }, tokens[i]?.tokens ?? 0));
      },
    });
    new Counter({
      name: N.DECODE_CALLS,
      help: "llama_decode calls, by phase",
      labelNames: [N.LABEL_MODEL, N.LABEL_PHASE] as const,
      registers: [registry],
      collect() {
        this.reset();
        const tokens = src.aggregates().tokens;
        PHASES.forEach((phase, i) => this.inc({ ...model, phase }, tokens[i]?.calls ?? 0));
      },
    });

    new AggregatedHistogram(
      N.OP_DURATION,
      "Duration of one operator on one worker thread, by operator type",
      bounds,
      () =>
        [...this.opTotals()].map(([op, t]) => ({
          labels: { ...model, [N.LABEL_OP]: op },
          buckets: t.buckets,
          sum: t.ns / 1e9,
        })),
    ).register(registry);
    new Counter({
      name: N.OP_SECONDS,
      help: "Time in operators, summed over worker threads, by operator type",
      labelNames: [N.LABEL_MODEL, N.LABEL_OP] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const [op, t] of opTotals()) this.inc({ ...model, op }, t.ns / 1e9);
      },
    });
    new Counter({
      name: N.BARRIER_WAIT,
      help: "Time worker threads waited in the barrier after an operator, by operator type",
      labelNames: [N.LABEL_MODEL, N.LABEL_OP] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const [op, t] of opTotals()) this.inc({ ...model, op }, t.barrierNs / 1e9);
      },
    });
    new Counter({
      name: N.OP_COUNTER,
      help: "Perf counter deltas inside operators, summed over threads, by operator type and event",
      labelNames: [N.LABEL_MODEL, N.LABEL_OP, N.LABEL_EVENT] as const,
      registers: [registry],
      collect() {
        this.reset();
        const names = src.counters.map((c) => c.name);
        for (const [op, t] of opTotals()) {
          names.forEach((event, i) => this.inc({ ...model, op, event }, t.counters[i] ?? 0));
        }
      },
    });
    new Gauge({
      name: N.COUNTER_INFO,
      help: 'The perf counters recorded: hardware="true" for real hardware counts, "false" for software events',
      labelNames: [N.LABEL_MODEL, N.LABEL_EVENT, N.LABEL_HARDWARE] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const c of src.counters)
          this.set({ ...model, event: c.name, hardware: String(c.hardware) }, 1);
      },
    });

    if (options.layers) {
      const opName = (func: number) => this.opName(func);
      new Counter({
        name: N.LAYER_OP_SECONDS,
        help: "Time in probed operators per layer and operator type, summed over threads",
        labelNames: [N.LABEL_MODEL, N.LABEL_LAYER, N.LABEL_OP] as const,
        registers: [registry],
        collect() {
          this.reset();
          for (const l of src.aggregates().layers) {
            if (l.layer === options.noLayer) continue;
            this.inc({ ...model, layer: String(l.layer), op: opName(l.func) }, l.ns / 1e9);
          }
        },
      });
    }
    if (options.moe) {
      new Counter({
        name: N.MOE_EXPERT_SELECTIONS,
        help: "Times each expert was chosen, per MoE layer (tokens x k)",
        labelNames: [N.LABEL_MODEL, N.LABEL_LAYER, N.LABEL_EXPERT] as const,
        registers: [registry],
        collect() {
          this.reset();
          for (const m of src.aggregates().moe) {
            if (m.layer === options.noLayer) continue;
            this.inc({ ...model, layer: String(m.layer), expert: String(m.expert) }, m.count);
          }
        },
      });
    }
    new Counter({
      name: N.PROBE_HITS,
      help: "Probe hits of profinfer's eBPF programs in the target",
      labelNames: [N.LABEL_MODEL] as const,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(
          model,
          src.probeCounters().hits.reduce((a, b) => a + b, 0),
        );
      },
    });
    new Counter({
      name: N.EVENTS,
      help: "Events profinfer's user space received from the kernel",
      labelNames: [N.LABEL_MODEL] as const,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(model, src.eventsReceived());
      },
    });
    new Counter({
      name: N.EVENTS_DROPPED,
      help: "Events lost in the kernel, by reason",
      labelNames: [N.LABEL_MODEL, N.LABEL_REASON] as const,
      registers: [registry],
      collect() {
        this.reset();
        const drops = src.probeCounters().drops;
        N.DROP_REASONS.forEach((reason, i) => this.inc({ ...model, reason }, drops[i] ?? 0));
      },
    });
    // the span exporter's own counts, read at each scrape once followSpanExport() names them
    const spans = () => this.spanStats?.() ?? { sent: 0, resent: 0, queued: 0, dropped: 0 };
    this.spansExported = new Counter({
      name: N.SPANS_EXPORTED,
      help: "Spans exported over OTLP (first attempt or re-sent from the spool)",
      labelNames: [N.LABEL_MODEL] as const,
      registers: [registry],
      collect() {
        this.reset();
        const s = spans();
        this.inc(model, s.sent + s.resent);
      },
    });
    this.spansQueued = new Gauge({
      name: N.SPANS_QUEUED,
      help: "Spans waiting in the spool to be exported",
      labelNames: [N.LABEL_MODEL] as const,
      registers: [registry],
      collect() {
        this.set(model, spans().queued);
      },
    });
    this.spansDropped = new Counter({
      name: N.SPANS_DROPPED,
      help: "Spans dropped before export (the spool was full)",
      labelNames: [N.LABEL_MODEL] as const,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(model, spans().dropped);
      },
    });
    new Counter({
      name: N.PROCESS_CPU,
      help: "CPU time of profinfer's own process (user and system)",
      labelNames: [N.LABEL_MODEL] as const,
      registers: [registry],
      collect() {
        this.reset();
        const { user, system } = process.cpuUsage();
        this.inc(model, (user + system) / 1e6);
      },
    });
  }

  /** The `op` label of an aggregate key. */
  opName(func: number): string {
    if (func === this.options.unprobedKey) return N.UNPROBED_OP;
    if (this.options.stepKeyBase !== undefined && func >= this.options.stepKeyBase)
      return this.stepOpName(func - this.options.stepKeyBase);
    const f = this.source.operatorFunctions.find((x) => x.index === func);
    return f ? opOfFunction(f.symbol) : `func${func}`;
  }

  /**
   * A step probe's key (bpf/profinfer.h PI_AGG_STEP): the step's first op, its unary or glu kind,
   * and the op fused after it, named as stats.json names op types ("unary:silu", "rms_norm+mul").
   */
  private stepOpName(key: number): string {
    const names = this.source.opNames;
    const op = key & 0xff;
    const second = ((key >> 8) & 0xff) - 1;
    const kind = ((key >> 16) & 0xff) - 1;
    const opName = (i: number) => names?.ops[i]?.toLowerCase() ?? `op${i}`;
    let label = opName(op);
    if (kind >= 0) {
      const table = label === "unary" ? names?.unary : names?.glu;
      label += `:${table?.[kind]?.toLowerCase() ?? kind}`;
    }
    if (second >= 0) label += `+${opName(second)}`;
    return label;
  }

  /** The aggregates by operator type (functions of one op summed). */
  opTotals(): Map<string, OpTotals> {
    const names = new Map<number, string>();
    const out = new Map<string, OpTotals>();
    for (const a of this.source.aggregates().ops) {
      let op = names.get(a.func);
      if (op === undefined) names.set(a.func, (op = this.opName(a.func)));
      let t = out.get(op);
      if (!t) {
        t = { count: 0, ns: 0, barrierNs: 0, counters: [], buckets: [] };
        out.set(op, t);
      }
      t.count += a.count;
      t.ns += a.ns;
      t.barrierNs += a.barrierNs;
      a.counters.forEach((v, i) => (t.counters[i] = (t.counters[i] ?? 0) + v));
      a.buckets.forEach((v, i) => (t.buckets[i] = (t.buckets[i] ?? 0) + v));
    }
    return out;
  }
}
