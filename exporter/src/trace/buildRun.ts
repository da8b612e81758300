// SPDX-License-Identifier: Apache-2.0
// buildRun: the trace model of a recording, in named passes (docs/trace-model.md describes the
// rules): sort and pair the events, place graphs in calls, describe the graphs, place operator
// and step events in graphs, reconstruct each graph's operators, charge off-CPU time, place MoE
// routing, order the threads, and say what was lost.
import { formulaOfRun } from "./backendStall.js";
import type { Drops } from "@profinfer/contract";
import { innerBarrierExpectations, reconstructGraph } from "./alignment.js";
import { clockFrom } from "./clock.js";
import { opNamingFrom } from "./dag.js";
import { attachExperts } from "./experts.js";
import type { RunHeader } from "./header.js";
import { pushTo } from "./multimap.js";
import { stoppedNsOf, type DropsNote, type ExitNote, type NoteRecord } from "./notes.js";
import { sortEvents, type SortedEvents } from "./pairing.js";
import {
  callsByTime,
  graphIndexes,
  placeGraphsInCalls,
  placeThreadEvents,
  type PlacedItems,
} from "./placement.js";
import type { RawRecording } from "./rawFile.js";
import { chargeGraphThreads, chargeOffCpu, offCpuIntervals } from "./sched.js";
import { describeSnapshots } from "./snapshots.js";
import { buildRequests, recordingCutOff } from "./requests.js";
import { reconstructFromSteps } from "./steps.js";
import { orderThreads } from "./threads.js";
import type { GraphRun, OffCpuInterval, OffCpuTarget, RawInput, Run, Token } from "./types.js";

/** Rebuild the trace model from a recording (readRawFile's result, or events in memory). */
export function buildRun(input: RawInput | RawRecording): Run {
  const header = input.header;
  const notes = input.notes ?? [];
  const truncatedAt = input.truncatedAt ?? null;
  const warnings: string[] = [];

  const sorted = sortEvents(input.events, header.target.pid);
  const { tokens, graphRuns } = sorted;
  if (sorted.unpaired > 0) {
    warnings.push(
      `${sorted.unpaired} token or graph end events had no matching begin (events lost)`,
    );
  }
  const { drops, exit, stoppedNs } = readNotes(notes, warnings);
  // a detach or a killing signal may cut a request off; a target that exited ended its own
  const requests = buildRequests(tokens, recordingCutOff(stoppedNs, exit));
  const callAt = callsByTime(tokens);
  const outside = placeGraphsInCalls(graphRuns, callAt);
  if (outside > 0) {
    warnings.push(`${outside} graph computations ran outside any recorded llama_decode call`);
  }
  const snapshots = describeSnapshots(
    sorted.nodeChunks,
    sorted.tensorsBySignature,
    graphRuns,
    opNamingFrom(header),
  );
  const indexes = graphIndexes(graphRuns);
  const placed = placeThreadEvents(sorted.threadEvents, sorted.stepEvents, indexes);
  if (placed.lost > 0) {
    warnings.push(`${placed.lost} operator/barrier intervals fell outside any graph`);
  }
  if (placed.broken > 0) {
    warnings.push(`${placed.broken} operator/barrier intervals lost their begin or end event`);
  }
  const lossPossible = truncatedAt !== null || (drops?.total ?? 0) > 0 || placed.broken > 0;
  const opIntervals = reconstructOperators(header, tokens, graphRuns, placed, lossPossible);

  const offCpu = chargeScheduling(sorted, graphRuns, opIntervals);
  attachExperts(sorted.moeEvents, callAt, indexes, snapshots, warnings);
  const threads = orderThreads(
    tokens,
    graphRuns,
    offCpu,
    placed.ithByTid,
    sorted.comms,
    header.target.pid,
  );

  if (truncatedAt !== null) {
    warnings.push(`the event file was cut short at byte ${truncatedAt}; later events are lost`);
  }
  if (drops && drops.total > 0) {
    warnings.push(
      `${drops.total} events were dropped while recording (${Object.entries(drops.counts)
        .filter(([, n]) => n > 0)
        .map(([k, n]) => `${k}: ${n}`)
        .join(", ")}); graphs with missing events are marked incomplete`,
    );
  }
  const counters = recordedCounters(header, sorted);
  const backendStall = formulaOfRun(
    header.backendStall?.formula,
    (counters ?? []).map((c) => c.name),
  );
  return {
    source: input.path ?? null,
    header,
    clock: clockFrom(header),
    firstNs: sorted.firstNs,
    lastNs: sorted.lastNs,
    eventCount: input.events.length,
    tokens,
    requests,
    graphRuns,
    snapshots,
    threads,
    offCpu,
    drops,
    exit,
    stoppedNs,
    notes: [...notes],
    truncatedAt,
    warnings,
    ...(counters ? { counters } : {}),
    ...(backendStall ? { backendStall } : {}),
  };
}

/**
 * The last drops and exit notes, when tracing stopped, and the recorder's warnings (appended to
 * `warnings`).
 */
function readNotes(
  notes: readonly NoteRecord[],
  warnings: string[],
): { drops: Drops | null; exit: ExitNote | null; stoppedNs: bigint | null } {
  let drops: Drops | null = null;
  let exit: ExitNote | null = null;
  let stoppedNs: bigint | null = null;
  for (const { note } of notes) {
    if (note.kind === "drops") drops = dropsFrom(note);
    else if (note.kind === "exit") exit = note;
    else if (note.kind === "warning") warnings.push(note.message);
    else if (note.kind === "end") stoppedNs = stoppedNsOf(note) ?? stoppedNs;
  }
  return { drops, exit, stoppedNs };
}

/** Drop counts of a "drops" note: its `counts` object, or else its numeric fields. */
function dropsFrom(note: DropsNote): Drops {
  const source: Record<string, unknown> = note.counts ?? { ...note };
  const counts: Record<string, number> = {};
  for (const key of Object.keys(source).sort()) {
    const value = source[key];
    if (key !== "kind" && typeof value === "number" && Number.isFinite(value)) counts[key] = value;
  }
  return { counts, total: Object.values(counts).reduce((a, b) => a + b, 0) };
}

/**
 * Each graph's operators, from its steps where it has them, else from its operator and barrier
 * intervals (also when it was expected to have operators and none arrived). Returns every thread
 * interval made, by thread, for the off-CPU charge.
 */
function reconstructOperators(
  header: RunHeader,
  tokens: readonly Token[],
  graphRuns: readonly GraphRun[],
  placed: PlacedItems,
  lossPossible: boolean,
): Map<number, OffCpuTarget[]> {
  const hasChild = new Set<GraphRun>();
  for (const g of graphRuns) if (g.parent) hasChild.add(g.parent);
  const tokenBySeq = new Map<string, Token>();
  for (const t of tokens) tokenBySeq.set(`${t.tgid}:${t.seq}`, t);
  const context = {
    expectInner: innerBarrierExpectations(placed.itemsByGraph),
    ithByTid: placed.ithByTid,
    lossPossible,
    counterNames: (header.counters ?? []).map((c) => c.name),
  };
  const targetsByTid = new Map<number, OffCpuTarget[]>();
  for (const g of graphRuns) {
    const items = placed.itemsByGraph.get(g);
    const token = g.tokenSeq === null ? null : tokenBySeq.get(`${g.tgid}:${g.tokenSeq}`);
    const expectOps =
      header.level === "op" && !hasChild.has(g) && g.fn === "cpu" && (token?.opsSampled ?? false);
    const steps = placed.stepsByGraph.get(g);
    if (steps) reconstructFromSteps(g, steps, placed.ithByTid);
    else if (items || expectOps) reconstructGraph(g, items ?? new Map(), context);
    else continue;
    for (const op of g.ops) for (const t of op.threads) pushTo(targetsByTid, t.tid, t);
  }
  return targetsByTid;
}

/** Off-CPU intervals per thread (sched_switch), charged to operator intervals and graph threads. */
function chargeScheduling(
  sorted: SortedEvents,
  graphRuns: readonly GraphRun[],
  opIntervals: ReadonlyMap<number, OffCpuTarget[]>,
): Map<number, OffCpuInterval[]> {
  const ranAt = new Map<number, bigint[]>();
  for (const [tid, list] of sorted.threadEvents)
    ranAt.set(
      tid,
      list.map((e) => e.ts),
    );
  const offCpu = offCpuIntervals(sorted.switches, sorted.targetTgids, sorted.lastNs, ranAt);
  for (const [tid, targets] of opIntervals) {
    const intervals = offCpu.get(tid);
    if (intervals) chargeOffCpu(targets, intervals);
  }
  chargeGraphThreads(graphRuns, offCpu);
  return offCpu;
}

/** The header's counters, each with whether any of its readings was multiplexed (scaled). */
function recordedCounters(header: RunHeader, sorted: SortedEvents): Run["counters"] | null {
  const counters = header.counters ?? [];
  if (counters.length === 0) return null;
  let scaledBits = 0;
  for (const list of sorted.threadEvents.values())
    for (const ev of list) if (ev.counters) scaledBits |= ev.counters.scaled;
  return counters.map((c, i) => ({
    name: c.name,
    hardware: c.hardware,
    scaled: (scaledBits & (1 << i)) !== 0,
  }));
}
