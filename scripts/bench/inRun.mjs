// SPDX-License-Identifier: Apache-2.0
// The in-run section: the cost of the op level within one run, free of the drift between rounds.
// One long llama-bench run at --level op whose step probes are taken off and put back every second
// (record --toggle-op-probes). Decode calls of a window with the probes on are set against those
// of the windows either side, without them: the machine's drift, which moves whole rounds, is far
// slower than that. What the op level adds over the graph level while it runs (probe traps,
// programs, step batches, their reading and writing), less the graph snapshot, which runs in both
// kinds of window (the parts section's bpf_stats, cpu_graph_enter, gives it).
import { join } from "node:path";
import { runChecked } from "./harness.mjs";
import { orDash, percent, span, table } from "./output.mjs";
import { completeDecodeCalls, durationNs, takeRecording } from "./recording.mjs";
import { median, percentOver, range } from "./stats.mjs";

const { buildRun } = await import("@profinfer/exporter");

const TOGGLE_MS = 1000;
// a call that began this soon after a switch is left out: the switch may still be settling
const SETTLE_NS = 100_000_000n;

/**
 * [from, to) windows with the step probes on or off; they start on. A switch takes time (taking
 * uprobes off waits for the kernel): calls while one is under way belong to neither window.
 */
function probeWindows(recording) {
  const windows = [];
  let from = 0n;
  let on = true;
  for (const { note } of recording.notes.filter((n) => n.note.kind === "stepProbes")) {
    windows.push({ from, to: BigInt(note.beganNs), on });
    from = BigInt(note.monotonicNs);
    on = note.on;
  }
  windows.push({ from, to: 1n << 62n, on });
  return windows;
}

/** per window with the probes on: its median decode call over the mean of its neighbours' */
function onOverOffRatios(windows, decodes) {
  const medians = windows.map((w) => {
    const inside = decodes.filter((t) => t.startNs >= w.from + SETTLE_NS && t.endNs <= w.to);
    return inside.length >= 5 ? median(inside.map(durationNs)) : null;
  });
  const ratios = [];
  for (let i = 1; i + 1 < windows.length; i++) {
    if (!windows[i].on || medians[i] === null) continue;
    if (medians[i - 1] === null || medians[i + 1] === null) continue;
    ratios.push(medians[i] / ((medians[i - 1] + medians[i + 1]) / 2));
  }
  return ratios;
}

/** one entry a run: the ratios of its windows, their median and range as percent longer */
export function measureInRun({ inRunRounds, inRunTokens }, bench) {
  const inRun = [];
  for (let round = 0; round < inRunRounds; round++) {
    const out = join(bench.scratch, `inrun-${round}`);
    const options = ["--no-report", "--level", "op", "--toggle-op-probes", String(TOGGLE_MS)];
    runChecked(...bench.record(options, out, inRunTokens), "in-run");
    const recording = takeRecording(out);
    const ratios = onOverOffRatios(
      probeWindows(recording),
      completeDecodeCalls(buildRun(recording)),
    );
    inRun.push({
      ratios,
      windows: ratios.length,
      medianPct: ratios.length ? percentOver(median(ratios)) : null,
      rangePct: ratios.length ? range(ratios).map(percentOver) : null,
    });
    process.stdout.write(
      `in-run ${round + 1}/${inRunRounds}: decode calls ${inRun.at(-1).medianPct?.toFixed(2) ?? "?"}% longer with the step probes on (${ratios.length} windows)\n`,
    );
  }
  return inRun;
}

/** the in-run table (none without in-run runs) */
export function inRunLines({ inRunTokens }, inRun) {
  if (inRun.length === 0) return [];
  const windows = inRun.reduce((n, r) => n + r.windows, 0);
  return [
    "",
    `In-run cost of the op level (llama-bench -n ${inRunTokens} at --level op, step probes taken off and put back every second: each window with them on against the windows either side; median decode call per window):`,
    "",
    ...table(
      ["run", "windows on", "longer by (median)", "range"],
      [
        ...inRun.map((r, i) => [
          String(i + 1),
          String(r.windows),
          orDash(r.medianPct, (x) => percent(x, 2)),
          orDash(r.rangePct, (x) => `${span(x, 1)}%`),
        ]),
        ...(windows > 0
          ? [
              [
                "all",
                String(windows),
                percent(percentOver(median(inRun.flatMap((r) => r.ratios))), 2),
                "",
              ],
            ]
          : []),
      ],
    ),
  ];
}
