// SPDX-License-Identifier: Apache-2.0
// ProfStat as tables (the same figures as stats.json and the terminal summary).
import React from "react";
import type { ViewTheme } from "../components/theme.js";
import type { LatencyStat, ProfStats } from "@profinfer/contract";
import { Table, fmt } from "./Table.js";

const pct = (n: number) => `${(n * 100).toFixed(1)}%`;

const latency = (l: LatencyStat | null) =>
  l === null ? "-" : `p50 ${fmt(l.p50)} ms, p99 ${fmt(l.p99)} ms`;
const opt = (v: number | null) => (v === null ? "-" : v);

/** One row per request (the first 200), and the latencies over those that ran whole. */
function RequestsTable({ stats, theme }: { stats: ProfStats; theme: ViewTheme }) {
  const r = stats.requests;
  if (r.count === 0) return null;
  return (
    <>
      <Table
        title={`Requests: ${r.count} (${r.complete} whole)`}
        testId="stats-requests"
        theme={theme}
        head={[
          "request",
          "seq",
          "prompt",
          "cached",
          "generated",
          "calls",
          "TTFT ms",
          "TPOT ms",
          "duration ms",
          "batch share",
          "incomplete",
        ]}
        rows={r.list
          .slice(0, 200)
          .map((q) => [
            `#${q.id}`,
            q.seqId,
            q.promptTokens,
            opt(q.cachedTokens),
            q.generatedTokens,
            q.calls.prompt + q.calls.decode + q.calls.speculative,
            opt(q.ttftMs),
            opt(q.tpotMs),
            q.durationMs,
            pct(q.batchShare),
            q.incomplete ?? "",
          ])}
      />
      <p style={{ fontSize: 12 }}>
        per request: TTFT {latency(r.ttftMs)}; TPOT {latency(r.tpotMs)}; duration{" "}
        {latency(r.durationMs)}
        {r.count > 200 ? `; ${r.count - 200} more requests in stats.json` : ""}
      </p>
    </>
  );
}

export function StatsTables({ stats, theme }: { stats: ProfStats; theme: ViewTheme }) {
  const p = stats.phases;
  return (
    <div>
      <Table
        title="Phases"
        testId="stats-phases"
        theme={theme}
        head={["phase", "calls", "tokens", "total ms", "mean ms", "p50 ms", "p99 ms", "tokens/s"]}
        rows={(["prefill", "decode", "mixed"] as const)
          .filter((k) => k !== "mixed" || p[k].calls > 0)
          .map((k) => [
            k,
            p[k].calls,
            p[k].tokens,
            p[k].totalMs,
            p[k].meanMs,
            p[k].p50Ms,
            p[k].p99Ms,
            p[k].tokensPerSecond,
          ])}
      />
      <p style={{ fontSize: 12 }}>
        TTFT {p.ttftMs === null ? "-" : `${fmt(p.ttftMs)} ms`} (first prefill call), TPOT{" "}
        {p.tpotMs === null ? "-" : `${fmt(p.tpotMs)} ms`} (mean decode call)
      </p>
      <RequestsTable stats={stats} theme={theme} />
      <Table
        title="Operators by type"
        testId="stats-ops"
        theme={theme}
        head={[
          "op",
          "count",
          "total ms",
          "mean ms",
          "p99 ms",
          "share",
          "barrier wait ms",
          "imbalance",
        ]}
        rows={stats.ops.map((o) => [
          `${o.display}${o.inferred === o.count ? " *" : ""}`,
          o.count,
          o.totalMs,
          o.meanMs,
          o.p99Ms,
          pct(o.share),
          o.barrierWaitMs,
          o.imbalance,
        ])}
      />
      <Table
        title="Layers"
        testId="stats-layers"
        theme={theme}
        head={["layer", "ops", "total ms", "share"]}
        rows={stats.layers.map((l) => [
          l.layer === null ? "none" : String(l.layer),
          l.ops,
          l.totalMs,
          pct(l.share),
        ])}
      />
      <Table
        title="Slowest tensors"
        testId="stats-tensors"
        theme={theme}
        head={["tensor", "op", "layer", "count", "mean ms", "total ms"]}
        rows={stats.slowestTensors.map((t) => [
          t.tensor,
          t.op,
          t.layer,
          t.count,
          t.meanMs,
          t.totalMs,
        ])}
      />
      <Table
        title="Threads"
        testId="stats-threads"
        theme={theme}
        head={["thread", "tid", "compute ms", "barrier wait ms", "off-CPU ms", "preempted ms"]}
        rows={stats.threads.map((t) => [
          t.name,
          t.tid,
          t.computeMs,
          t.barrierWaitMs,
          t.offCpuMs,
          t.preemptedMs,
        ])}
      />
      {stats.experts.length > 0 && (
        <Table
          title="Experts (most chosen first)"
          testId="stats-experts"
          theme={theme}
          head={["layer", "k", "token rows", "top experts (times chosen)"]}
          rows={stats.experts.map((e) => [
            String(e.layer),
            e.k,
            e.rows,
            Object.entries(e.counts)
              .sort((a, b) => b[1] - a[1])
              .slice(0, 8)
              .map(([id, n]) => `${id}:${n}`)
              .join(" "),
          ])}
        />
      )}
      <p style={{ fontSize: 12 }}>
        dropped events: {stats.drops?.total ?? 0}
        {stats.warnings.length > 0 ? ` — ${stats.warnings.join("; ")}` : ""}
      </p>
    </div>
  );
}
