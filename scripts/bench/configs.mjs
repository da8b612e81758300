// SPDX-License-Identifier: Apache-2.0
// The configurations the bench compares: each one's `profinfer record` options. `metrics` keeps
// operator aggregates in the kernel (no event stream, /metrics served); `op` with N counters reads
// them at every boundary (software events, so any machine has them): its extra time per token over
// `op`, divided by the probe hits, is the cost of reading N counters a hit. `op+otlp` is the op
// level with live OTLP export (default operator-span sampling) to a real gRPC receiver; `none` and
// `all` the same without operator spans and with every one.

const COUNTER_SETS = { 1: "task-clock", 4: "task-clock,cpu-clock,page-faults,context-switches" };

/**
 * name -> profinfer record options (null: llama-bench alone). A function because "op+otlp"
 * exports to the OTLP receiver, whose address is known once it listens.
 */
export function recordOptions(otlpEndpoint) {
  return {
    none: null,
    token: ["--level", "token"],
    graph: ["--level", "graph"],
    op: ["--level", "op"],
    // the same with the operator functions' entry and return probes and ggml_barrier's
    "op-functions": ["--level", "op", "--op-timing", "functions"],
    metrics: ["--level", "metrics", "--metrics-addr", "127.0.0.1:0"],
    "op+1 counter": ["--level", "op", "--pmc", COUNTER_SETS[1]],
    "op+4 counters": ["--level", "op", "--pmc", COUNTER_SETS[4]],
    "op+otlp": ["--level", "op", "--otlp-endpoint", otlpEndpoint],
    // the export's fixed cost: every call's call, graph and step spans, no operator spans
    "op+otlp none": [
      "--level",
      "op",
      "--otlp-endpoint",
      otlpEndpoint,
      "--otlp-op-sample",
      "none",
      "--otlp-cpu",
      "0",
    ],
    "op+otlp all": [
      "--level",
      "op",
      "--otlp-endpoint",
      otlpEndpoint,
      "--otlp-op-sample",
      "all",
      "--otlp-cpu",
      "0",
    ],
  };
}

/** every configuration, in the order the bench reports them */
export const CONFIG_NAMES = Object.keys(recordOptions(""));
