// SPDX-License-Identifier: Apache-2.0
// profinfer's Prometheus metrics, registered on one injected Registry. Every value is read at
// scrape time from the in-kernel aggregates (BPF maps, summed by the addon): nothing is observed
// per event on the JS thread.
import { Counter, Gauge, type Registry } from "prom-client";
import { AggPhase, BATCH_SEQ_BUCKETS, BATCH_TOKEN_BUCKETS, NO_LAYER } from "../../abi/constants.js";
import { aggregateOpName } from "../../trace/aggregateNames.js";
import { backendStallParts } from "../../trace/backendStall.js";
import type { Aggregates } from "../../trace/notes.js";
import type { LiveRecording } from "../liveSink.js";
import { AggregatedHistogram } from "./aggregatedHistogram.js";
import { KernelRequestFollower, RequestMetrics } from "./requestMetrics.js";
import * as N from "@profinfer/contract";

export interface MetricsOptions {
  /** the `model` label */
  model: string;
  /** bucket upper bounds of the aggregates, in ns (the addon's aggregateBoundsNs) */
  boundsNs: readonly number[];
  /** expose profinfer_layer_op_seconds_total (the aggregates were kept per layer) */
  layers: boolean;
  /** expose profinfer_moe_expert_selections_total */
  moe: boolean;
  /** a request whose sequence had no call for this long has ended (default REQUEST_IDLE_NS) */
  requestIdleNs?: bigint;
}

interface OpTotals {
  count: number;
  ns: number;
  barrierNs: number;
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

export class ProfinferMetrics {
  /** set by the span exporter (OTLP) when one runs */
  readonly spansExported: Counter<typeof N.LABEL_MODEL>;
  readonly spansQueued: Gauge<typeof N.LABEL_MODEL>;
  readonly spansDropped: Counter<typeof N.LABEL_MODEL>;

  private readonly source: LiveRecording;
  /** the per-request metrics: polled at each scrape, and between scrapes (pollRequests) */
  private readonly requests: RequestMetrics;

  /** Takes the requests that ended into the metrics (the kernel's queue of them is bounded). */
  pollRequests(): void {
    this.requests.poll();
  }
  private spanStats: (() => SpanExportCounts) | null = null;

  /** Serve the OTLP span exporter's counts (sent, re-sent, queued, dropped). */
  followSpanExport(stats: () => SpanExportCounts): void {
    this.spanStats = stats;
  }

  constructor(
    registry: Registry,
    source: LiveRecording,
    private readonly options: MetricsOptions,
  ) {
    // one read of the maps serves every metric of a scrape
    let cached: { at: number; value: Aggregates } | null = null;
    this.source = {
      get operatorFunctions() {
        return source.operatorFunctions;
      },
      get opNames() {
        return source.opNames;
      },
      counters: source.counters,
      requests: () => source.requests(),
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

    this.requests = new RequestMetrics(
      registry,
      new KernelRequestFollower(src.requests, options.requestIdleNs),
      options.model,
    );
    new AggregatedHistogram(
      N.DECODE_CALL_DURATION,
      "Duration of each llama_decode call, by phase (prefill: prompt tokens only, decode: generated tokens only, mixed: both)",
      bounds,
      () =>
        PHASES.flatMap(([phase, i]) => {
          const t = src.aggregates().tokens[i];
          return t && t.calls > 0
            ? [{ labels: { ...model, phase }, buckets: t.buckets, sum: t.ns / 1e9 }]
            : [];
        }),
    ).register(registry);
    /** the calls of every phase, summed: their `pick` buckets and `sum` */
    const perCall = (pick: "tokenBuckets" | "seqBuckets", sum: "tokens" | "sequences") => () => {
      const buckets: number[] = [];
      let total = 0;
      let calls = 0;
      for (const t of src.aggregates().tokens) {
        calls += t.calls;
        total += t[sum] ?? 0;
        (t[pick] ?? []).forEach((v, i) => (buckets[i] = (buckets[i] ?? 0) + v));
      }
      return calls > 0 ? [{ labels: model, buckets, sum: total }] : [];
    };
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
    const tokenTotal = (field: "promptTokens" | "generatedTokens") =>
      src.aggregates().tokens.reduce((n, t) => n + (t[field] ?? 0), 0);
    new Counter({
      name: N.PROMPT_TOKENS,
      help: "Prompt tokens evaluated for the requests (not those taken from the cache), counted at each request's first token",
      labelNames: [N.LABEL_MODEL] as const,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(model, tokenTotal("promptTokens"));
      },
    });
    new Counter({
      name: N.GENERATED_TOKENS,
      help: "Tokens generated for the requests: one per output sampled",
      labelNames: [N.LABEL_MODEL] as const,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(model, tokenTotal("generatedTokens"));
      },
    });

    new Counter({
      name: N.TOKENS,
      help: "Tokens processed by llama_decode, by the phase of their call",
      labelNames: [N.LABEL_MODEL, N.LABEL_PHASE] as const,
      registers: [registry],
      collect() {
        this.reset();
        const tokens = src.aggregates().tokens;
        for (const [phase, i] of PHASES) this.inc({ ...model, phase }, tokens[i]?.tokens ?? 0);
      },
    });
    new Counter({
      name: N.DECODE_CALLS,
      help: "llama_decode calls, by phase (prefill: prompt tokens only, decode: generated tokens only, mixed: both)",
      labelNames: [N.LABEL_MODEL, N.LABEL_PHASE] as const,
      registers: [registry],
      collect() {
        this.reset();
        const tokens = src.aggregates().tokens;
        for (const [phase, i] of PHASES) this.inc({ ...model, phase }, tokens[i]?.calls ?? 0);
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
    const stall = source.backendStall ?? null;
    if (stall) {
      // both sides per op from the summed deltas; served never lower than before, as a counter
      const served = { stalled: new Map<string, number>(), total: new Map<string, number>() };
      const side = (which: "stalled" | "total") =>
        function (this: Counter<"model" | "op">) {
          this.reset();
          const names = src.counters.map((c) => c.name);
          for (const [op, t] of opTotals()) {
            const deltas = Object.fromEntries(names.map((n, i) => [n, t.counters[i] ?? 0]));
            const parts = backendStallParts(stall, deltas);
            if (!parts) continue;
            const value = Math.max(parts[which], served[which].get(op) ?? 0);
            served[which].set(op, value);
            this.inc({ ...model, op }, value);
          }
        };
      new Counter({
        name: N.OP_BACKEND_STALL_SLOTS,
        help: `Issue slots (${stall.unit}) stalled on the back end inside operators, by operator type: ${stall.metric}`,
        labelNames: [N.LABEL_MODEL, N.LABEL_OP] as const,
        registers: [registry],
        collect: side("stalled"),
      });
      new Counter({
        name: N.OP_BACKEND_SLOTS,
        help: `Issue slots (${stall.unit}) inside operators, the backend-stall figure's denominator, by operator type`,
        labelNames: [N.LABEL_MODEL, N.LABEL_OP] as const,
        registers: [registry],
        collect: side("total"),
      });
    }
    const feeds = new Set(stall?.events.map((e) => e.name) ?? []);
    new Gauge({
      name: N.COUNTER_INFO,
      help: 'The perf counters recorded: hardware="true" for real hardware counts, "false" for software events; feeds="backend_stall" and formula for those the backend-stall figure is computed from',
      labelNames: [
        N.LABEL_MODEL,
        N.LABEL_EVENT,
        N.LABEL_HARDWARE,
        N.LABEL_FEEDS,
        N.LABEL_FORMULA,
      ] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const c of src.counters) {
          const fed = stall && feeds.has(c.name);
          this.set(
            {
              ...model,
              event: c.name,
              hardware: String(c.hardware),
              ...(fed ? { feeds: N.FEEDS_BACKEND_STALL, formula: stall.id } : {}),
            },
            1,
          );
        }
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
            if (l.layer === NO_LAYER) continue;
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
            if (m.layer === NO_LAYER) continue;
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
    return aggregateOpName(func, this.source);
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
