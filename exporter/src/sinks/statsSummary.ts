// SPDX-License-Identifier: Apache-2.0
// ProfStat for the terminal: compact plain-text tables of stats.json, within 100 columns.
import type {
  DerivedFigures,
  Finding,
  LatencyStat,
  OpTypeStat,
  ProfStats,
} from "@profinfer/contract";
import { displayOpName } from "../trace/dag.js";

const WIDTH = 100;

function fmtMs(value: number): string {
  return value >= 1000 ? value.toFixed(0) : value >= 10 ? value.toFixed(2) : value.toFixed(3);
}

function pct(share: number): string {
  return `${(share * 100).toFixed(1)}%`;
}

function clip(text: string, width: number): string {
  return text.length <= width ? text : `${text.slice(0, Math.max(0, width - 1))}~`;
}

/** A plain table: first column left-aligned (clipped so the table fits WIDTH), others right. */
function table(headers: string[], rows: string[][]): string[] {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const rest = widths.slice(1).reduce((a, w) => a + w + 2, 0);
  widths[0] = Math.min(widths[0]!, Math.max(8, WIDTH - rest));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i === 0 ? clip(c, widths[0]!).padEnd(widths[0]!) : c.padStart(widths[i]!)))
      .join("  ")
      .trimEnd();
  return [line(headers), ...rows.map(line)];
}

function fmtCount(v: number): string {
  if (v >= 1e9) return `${(v / 1e9).toFixed(2)}G`;
  if (v >= 1e6) return `${(v / 1e6).toFixed(2)}M`;
  if (v >= 1e3) return `${(v / 1e3).toFixed(1)}k`;
  return String(Math.round(v));
}

/**
 * Each op type's decode runs (else its prompt runs) on the roofline: bytes and operations per
 * second, their shares of the machine profile's peaks, and the class (docs/findings.md).
 */
function rooflineSummary(stats: ProfStats, top: OpTypeStat[]): string[] {
  const phase = top.some((o) => o.roofline?.decode) ? "decode" : "prefill";
  const rows = top.flatMap((o) => {
    const r = o.roofline?.[phase];
    return r ? [{ o, r }] : [];
  });
  if (rows.length === 0) return [];
  const share = (v: number | null) => (v === null ? "-" : pct(v));
  const m = stats.machine;
  const head = m
    ? `roofline of the ${phase} calls (machine: ${(Math.max(...m.bandwidth.points.map((p) => p.bytesPerSecond)) / 1e9).toFixed(1)} GB/s read at most; docs/findings.md)`
    : `roofline of the ${phase} calls (no machine profile: run 'profinfer machine', then replay)`;
  return [
    head,
    ...table(
      ["op", "MB/run", "GB/s", "of peak", "GOP/s", "of peak", "barrier", "class"],
      rows.map(({ o, r }) => [
        o.display,
        (r.bytes / 1e6).toFixed(3),
        (r.bandwidth / 1e9).toFixed(2),
        share(r.bandwidthShare),
        (r.rate / 1e9).toFixed(2),
        share(r.computeShare),
        pct(r.barrierShare),
        r.class ?? "-",
      ]),
    ),
    "",
  ];
}

/** Counter totals and derived figures per operator type, and which counters are hardware. */
function counterSummary(stats: ProfStats, top: OpTypeStat[]): string[] {
  const counters = stats.counters ?? [];
  const kinds = counters
    .map((c) => `${c.name} ${c.hardware ? "hardware" : "SOFTWARE"}${c.scaled ? " (scaled)" : ""}`)
    .join(", ");
  const figures: [keyof DerivedFigures, string, (v: number) => string][] = [
    ["ipc", "IPC", (v) => v.toFixed(2)],
    ["backendStallRatio", "be-stall", pct],
    ["cacheMissRate", "miss", pct],
    ["memoryBandwidth", "GB/s", (v) => (v / 1e9).toFixed(2)],
    ["onCpuRatio", "on-cpu", pct],
  ];
  const shown = figures.filter(([key]) => top.some((o) => o.derived?.[key] !== undefined));
  const names = counters.map((c) => c.name).slice(0, Math.max(1, 5 - shown.length));
  return [
    clip(`counters per operator type (${kinds})`, WIDTH),
    ...table(
      ["op", ...names, ...shown.map(([, label]) => label)],
      top.map((o) => [
        o.display,
        ...names.map((n) => (o.counters?.[n] === undefined ? "-" : fmtCount(o.counters[n]!))),
        ...shown.map(([key, , fmt]) => {
          const v = o.derived?.[key];
          return v === undefined ? "-" : fmt(v);
        }),
      ]),
    ),
    "",
  ];
}

export interface SummaryOptions {
  /** rows of the operator table (default 15) */
  ops?: number;
  /** rows of the request table (default 20) */
  requests?: number;
}

function fmtLatency(l: LatencyStat | null): string {
  return l === null ? "-" : `p50 ${fmtMs(l.p50)} p99 ${fmtMs(l.p99)} ms`;
}

/** The per-request table: the first `rows` requests, and the latencies over those that ran whole. */
function requestSummary(stats: ProfStats, rows: number): string[] {
  const r = stats.requests;
  if (r.count === 0) return [];
  const shown = r.list.slice(0, rows);
  const opt = (v: number | null) => (v === null ? "-" : fmtMs(v));
  return [
    clip(
      `requests: ${r.count} (${r.complete} whole), ${r.promptTokens} prompt and ` +
        `${r.generatedTokens} generated tokens`,
      WIDTH,
    ),
    clip(
      `TTFT ${fmtLatency(r.ttftMs)}   TPOT ${fmtLatency(r.tpotMs)}   ` +
        `duration ${fmtLatency(r.durationMs)}`,
      WIDTH,
    ),
    ...table(
      [
        "request",
        "seq",
        "prompt",
        "cached",
        "gen",
        "calls",
        "TTFT ms",
        "TPOT ms",
        "dur ms",
        "share",
      ],
      shown.map((q) => [
        `#${q.id}${q.incomplete === null ? "" : "!"}`,
        String(q.seqId),
        String(q.promptTokens),
        q.cachedTokens === null ? "-" : String(q.cachedTokens),
        String(q.generatedTokens),
        String(q.calls.prompt + q.calls.decode + q.calls.speculative),
        opt(q.ttftMs),
        opt(q.tpotMs),
        fmtMs(q.durationMs),
        pct(q.batchShare),
      ]),
    ),
    ...(r.count > shown.length ? [`(${r.count - shown.length} more requests in stats.json)`] : []),
    ...(shown.some((q) => q.incomplete !== null)
      ? ["! incomplete (stats.json says why): left out of the latencies"]
      : []),
    "",
  ];
}

/** The terminal summary: compact tables, at most 100 columns wide. */
/** Findings for the terminal: severity, id and title; with `brief` false, evidence and what to try. */
export function formatFindings(
  findings: readonly Finding[],
  options: { brief?: boolean } = {},
): string[] {
  const out = [`findings (${findings.length}; docs/findings.md)`];
  for (const f of findings) {
    out.push(clip(`${f.severity.padEnd(6)} ${f.id}: ${f.title}`, options.brief ? WIDTH : Infinity));
    if (options.brief) continue;
    const evidence = Object.entries(f.evidence).map(([k, v]) => `${k} ${v}`);
    out.push(`       evidence: ${evidence.join(", ")}`, `       try: ${f.action}`);
  }
  return out;
}

export function formatStatsSummary(stats: ProfStats, options: SummaryOptions = {}): string {
  const out: string[] = [];
  const r = stats.run;
  // at level metrics the calls are the kernel's counts: no event per call reached user space
  const aggregated = r.level === "metrics";
  const calls = aggregated
    ? stats.phases.prefill.calls + stats.phases.decode.calls + stats.phases.mixed.calls
    : stats.tokens.length;
  out.push(
    clip(`profinfer: ${r.command.join(" ")}`, WIDTH),
    `pid ${r.pid}, level ${r.level}, ${r.events} events, ${calls} llama_decode calls` +
      (aggregated
        ? " (counted in the kernel)"
        : `, ${fmtMs(r.durationMs)} ms${r.truncated ? ", TRUNCATED" : ""}`),
    "",
  );
  if (stats.findings.length > 0) out.push(...formatFindings(stats.findings, { brief: true }), "");

  const ph = stats.phases;
  out.push(
    ...table(
      ["phase", "calls", "tokens", "total ms", "mean ms", "p50 ms", "p99 ms", "tok/s"],
      (["prefill", "decode", "mixed"] as const)
        .filter((name) => name !== "mixed" || ph.mixed.calls > 0)
        .map((name) => {
          const p = ph[name];
          return [
            name,
            String(p.calls),
            String(p.tokens),
            fmtMs(p.totalMs),
            fmtMs(p.meanMs),
            fmtMs(p.p50Ms),
            fmtMs(p.p99Ms),
            p.tokensPerSecond.toFixed(1),
          ];
        }),
    ),
    `TTFT ${ph.ttftMs === null ? "-" : `${fmtMs(ph.ttftMs)} ms`} (first prefill call)   ` +
      `TPOT ${ph.tpotMs === null ? "-" : `${fmtMs(ph.tpotMs)} ms`} (mean decode call)`,
    "",
  );
  // one backend that is the CPU is the usual case: the table only says something beside another
  if (stats.backends.some((b) => b.registry !== "CPU")) {
    out.push(
      ...table(
        ["backend", "splits", "submit ms", "to done ms", "wait ms", "copies", "copy KiB", "ops"],
        stats.backends.map((b) => [
          b.name,
          String(b.splits),
          fmtMs(b.submitMs),
          fmtMs(b.completeMs),
          fmtMs(b.waitMs),
          String(b.copies),
          (b.copyBytes / 1024).toFixed(1),
          String(b.ops),
        ]),
      ),
      ...stats.backends.map((b) =>
        clip(
          `${b.name}: ${b.measured ?? "graph level only"}` +
            (b.notSeen.length > 0 ? `; not seen: ${b.notSeen.join("; ")}` : ""),
          WIDTH,
        ),
      ),
      "",
    );
  }
  out.push(...requestSummary(stats, options.requests ?? 20));

  if (stats.ops.length > 0) {
    const top = stats.ops.slice(0, options.ops ?? 15);
    out.push(
      aggregated
        ? `operators (share of ${fmtMs(stats.graphs.opGraphMs)} ms of operator time; counts per thread, p50/p99 bucket bounds)`
        : `operators (share of ${fmtMs(stats.graphs.opGraphMs)} ms in ${stats.graphs.withOps} ` +
            `graphs; ${stats.graphs.reuses} graph reuses)`,
      ...table(
        ["op", "count", "total ms", "mean ms", "p50 ms", "p99 ms", "share", "barrier ms", "imbal"],
        top.map((o) => [
          o.inferred === o.count ? `${o.display}*` : o.display,
          String(o.count),
          fmtMs(o.totalMs),
          fmtMs(o.meanMs),
          fmtMs(o.p50Ms),
          fmtMs(o.p99Ms),
          pct(o.share),
          fmtMs(o.barrierWaitMs),
          pct(o.imbalance),
        ]),
      ),
    );
    if (stats.ops.length > top.length) out.push(`(${stats.ops.length - top.length} more op types)`);
    if (top.some((o) => o.inferred === o.count)) {
      out.push("* not probed: timed from the barriers around it");
    }
    out.push("");
    out.push(...rooflineSummary(stats, top));
    if (stats.counters && stats.counters.length > 0) out.push(...counterSummary(stats, top));

    const layerCells = stats.layers.map(
      (l) => `${l.layer === null ? "other" : `L${l.layer}`} ${pct(l.share)}`,
    );
    const cell = Math.max(...layerCells.map((c) => c.length)) + 2;
    const perLine = Math.max(1, Math.floor(WIDTH / cell));
    if (layerCells.length > 0) out.push("time per layer");
    for (let i = 0; i < layerCells.length; i += perLine) {
      out.push(
        layerCells
          .slice(i, i + perLine)
          .map((c) => c.padEnd(cell))
          .join("")
          .trimEnd(),
      );
    }
    if (layerCells.length > 0) out.push("");

    if (stats.slowestTensors.length > 0)
      out.push(
        `slowest tensors (mean per ${stats.slowestTensorsOver === "decode" ? "decode " : ""}call)`,
        ...table(
          ["tensor", "op", "layer", "count", "mean ms"],
          stats.slowestTensors.map((t) => [
            t.tensor,
            displayOpName(t.op),
            t.layer === null ? "-" : String(t.layer),
            String(t.count),
            fmtMs(t.meanMs),
          ]),
        ),
        "",
      );
  }

  if (stats.threads.length > 0) {
    out.push(
      ...table(
        ["thread", "tid", "compute ms", "barrier ms", "off-cpu ms", "preempted ms", "preemptions"],
        stats.threads.map((t) => [
          t.name,
          String(t.tid),
          fmtMs(t.computeMs),
          fmtMs(t.barrierWaitMs),
          fmtMs(t.offCpuMs),
          fmtMs(t.preemptedMs),
          String(t.preemptions),
        ]),
      ),
    );
    const i = stats.interference;
    const who = i.by.map((p) => `${p.comm} (${p.tgid}) ${fmtMs(p.ms)} ms`).join(", ");
    out.push(
      clip(
        `preempted ${i.preemptions} times, ${fmtMs(i.preemptedMs)} ms${who ? ` by ${who}` : ""}`,
        WIDTH,
      ),
      "",
    );
  }

  if (stats.experts.length > 0) {
    out.push("experts chosen per layer (id x count, most used first)");
    for (const e of stats.experts) {
      const ranked = Object.entries(e.counts)
        .sort((a, b) => b[1] - a[1] || Number(a[0]) - Number(b[0]))
        .map(([id, n]) => `${id}x${n}`)
        .join(" ");
      out.push(clip(`L${e.layer} k=${e.k} rows=${e.rows}: ${ranked}`, WIDTH));
    }
    out.push("");
  }

  if (stats.drops) {
    out.push(
      stats.drops.total > 0
        ? clip(
            `DROPPED ${stats.drops.total} events: ${Object.entries(stats.drops.counts)
              .filter(([, n]) => n > 0)
              .map(([k, n]) => `${k} ${n}`)
              .join(", ")}`,
            WIDTH,
          )
        : "no events dropped",
    );
  }
  if (stats.graphs.incomplete > 0) {
    out.push(`${stats.graphs.incomplete} of ${stats.graphs.runs} graphs are incomplete`);
  }
  for (const w of stats.warnings) out.push(clip(`warning: ${w}`, WIDTH));
  return `${out.join("\n").trimEnd()}\n`;
}
