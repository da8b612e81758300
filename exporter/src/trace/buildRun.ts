// SPDX-License-Identifier: Apache-2.0
// buildRun: the trace model of a recording, in named passes (docs/trace-model.md describes the
// rules): sort and pair the events, place graphs in calls, describe the graphs, place operator
// and step events in graphs, reconstruct each graph's operators, charge off-CPU time, place MoE
// routing, order the threads, and say what was lost.
import { eventsIn, opTimesOf, type ChunkEvent } from "../abi/events.js";
import { formulaOfHeader } from "./backendStall.js";
import { attachBackends, type BackendKeeper } from "./backends.js";
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
  itemsOf,
  placeGraphsInCalls,
  placeThreadEvents,
  stepsOf,
  type PlacedItems,
} from "./placement.js";
import type { RawRecording } from "./rawFile.js";
import { chargeGraphThreads, chargeOffCpu, offCpuIntervals, type RanAt } from "./sched.js";
import { describeSnapshots, type DescriptionCache } from "./snapshots.js";
import { buildRequests, recordingCutOff } from "./requests.js";
import { reconstructFromSteps } from "./steps.js";
import { ThreadCollector } from "./threads.js";
import { attachWork, typeSizesOf } from "./work.js";
import type {
  GraphRun,
  OffCpuInterval,
  OffCpuTarget,
  RawInput,
  Request,
  Run,
  RunLosses,
  Token,
} from "./types.js";

/**
 * What a chunk of a run (trace/runStream.ts) takes from the whole run instead of computing it
 * from its own events: the requests, followed across chunks, and the off-CPU intervals, whose
 * switches may lie in earlier chunks.
 */
export interface BuildHooks {
  /** sets each call's phase and steps; returns the requests the calls started */
  requests?(tokens: Token[]): Request[];
  /**
   * each thread's off-CPU intervals, as far as they concern these events; `ranAt` holds the times
   * of each thread's own operator and barrier events (ascending)
   */
  offCpu?(sorted: SortedEvents, ranAt: RanAt): Map<number, OffCpuInterval[]>;
  /**
   * whether a call's operators are wanted (default: every call's): the live span export wants
   * those of the calls whose operator spans it sends, and the rest of a call costs far less
   * without them; called once its phase and steps are set
   */
  operators?(token: Token): boolean;
  /** graph descriptions built by earlier chunks of the run, reused when given again */
  descriptions?: DescriptionCache;
  /** the backends met by earlier chunks, which keep their ids and names */
  backends?: BackendKeeper;
}

/** Rebuild the trace model from a recording (readRawFile's result, or events in memory). */
export function buildRun(input: RawInput | RawRecording, hooks: BuildHooks = {}): Run {
  const header = input.header;
  const notes = input.notes ?? [];
  const truncatedAt = input.truncatedAt ?? null;

  const sorted = sortEvents(input.events, header.target.pid);
  const { tokens, graphRuns } = sorted;
  for (const g of graphRuns) g.eventProblems = g.problems.length;
  const { drops, exit, stoppedNs } = readRunNotes(notes);
  // a detach or a killing signal may cut a request off; a target that exited ended its own
  const requests = hooks.requests
    ? hooks.requests(tokens)
    : buildRequests(tokens, recordingCutOff(stoppedNs, exit));
  const callAt = callsByTime(tokens);
  const outside = placeGraphsInCalls(graphRuns, callAt);
  const snapshots = describeSnapshots(
    sorted.nodeChunks,
    sorted.tensorsBySignature,
    graphRuns,
    opNamingFrom(header),
    hooks.descriptions,
  );
  const indexes = graphIndexes(graphRuns);
  const placed = placeThreadEvents(
    sorted.threadEvents,
    sorted.stepEvents,
    indexes,
    sorted.stepBatches,
    sorted.opBatches,
  );
  const lossPossible = truncatedAt !== null || (drops?.total ?? 0) > 0 || placed.broken > 0;
  const opIntervals = reconstructOperators(
    header,
    tokens,
    graphRuns,
    placed,
    lossPossible,
    hooks.operators,
  );
  const backends = attachBackends(
    {
      graphRuns,
      splitEvents: sorted.splitEvents,
      backendEvents: sorted.backendEvents,
      notes,
      backendCalls: header.backendCalls ?? [],
      sizes: typeSizesOf(header.layout),
      lastNs: sorted.lastNs,
    },
    hooks.backends,
  );

  const offCpu = chargeScheduling(sorted, graphRuns, opIntervals, hooks);
  const expertsUnplaced = attachExperts(sorted.moeEvents, callAt, indexes, snapshots);
  const sizes = typeSizesOf(header.layout);
  if (sizes) {
    const bySeq = new Map(tokens.map((t) => [`${t.tgid}:${t.seq}`, t]));
    attachWork(graphRuns, (g) => bySeq.get(`${g.tgid}:${g.tokenSeq}`) ?? null, sizes);
  }
  const threadCollector = new ThreadCollector(header.target.pid);
  threadCollector.add(tokens, graphRuns, offCpu.keys(), placed.ithByTid, sorted.comms);
  const threads = threadCollector.threads();
  const losses: RunLosses = {
    unpaired: sorted.unpaired,
    outside,
    lost: placed.lost,
    broken: placed.broken,
    expertsUnplaced,
  };
  const warnings = runWarnings(losses, notes, truncatedAt, drops);
  const counters = recordedCounters(header, sorted);
  const backendStall = formulaOfHeader(header);
  return {
    source: input.path ?? null,
    header,
    clock: clockFrom(header),
    firstNs: sorted.firstNs,
    lastNs: sorted.lastNs,
    eventCount: countEvents(input.events),
    tokens,
    requests,
    graphRuns,
    backends,
    snapshots,
    threads,
    offCpu,
    drops,
    exit,
    stoppedNs,
    notes: [...notes],
    truncatedAt,
    warnings,
    losses,
    ...(counters ? { counters } : {}),
    ...(backendStall ? { backendStall } : {}),
  };
}

/** The last drops and exit notes, when tracing stopped, and the recorder's warnings. */
export function readRunNotes(notes: readonly NoteRecord[]): {
  drops: Drops | null;
  exit: ExitNote | null;
  stoppedNs: bigint | null;
  warnings: string[];
} {
  let drops: Drops | null = null;
  let exit: ExitNote | null = null;
  let stoppedNs: bigint | null = null;
  const warnings: string[] = [];
  let removed: { segments: number; bytes: number } | null = null;
  for (const { note } of notes) {
    if (note.kind === "drops") drops = dropsFrom(note);
    else if (note.kind === "exit") exit = note;
    else if (note.kind === "warning") warnings.push(note.message);
    else if (note.kind === "end") stoppedNs = stoppedNsOf(note) ?? stoppedNs;
    else if (note.kind === "segment" && note.removed) removed = note.removed;
  }
  if (removed && removed.segments > 0) {
    warnings.push(
      `the first ${removed.segments} segments of the events file (${(removed.bytes / 2 ** 20).toFixed(1)} MiB) were removed to stay within --max-disk: the outputs cover the rest of the run`,
    );
  }
  return { drops, exit, stoppedNs, warnings };
}

/** What a run's readers are told it lost, in a fixed order (docs/trace-model.md). */
export function runWarnings(
  losses: RunLosses,
  notes: readonly NoteRecord[],
  truncatedAt: number | null,
  drops: Drops | null,
): string[] {
  const warnings: string[] = [];
  if (losses.unpaired > 0) {
    warnings.push(
      `${losses.unpaired} token or graph end events had no matching begin (events lost)`,
    );
  }
  warnings.push(...readRunNotes(notes).warnings);
  if (losses.outside > 0) {
    warnings.push(
      `${losses.outside} graph computations ran outside any recorded llama_decode call`,
    );
  }
  if (losses.lost > 0) {
    warnings.push(`${losses.lost} operator/barrier intervals fell outside any graph`);
  }
  if (losses.broken > 0) {
    warnings.push(`${losses.broken} operator/barrier intervals lost their begin or end event`);
  }
  if (losses.expertsUnplaced > 0) {
    warnings.push(
      `${losses.expertsUnplaced} MoE expert-id events could not be placed (no token, or the routing tensor's ` +
        "layer is unknown)",
    );
  }
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
  return warnings;
}

/** The sum of two chunks' losses. */
export function addLosses(a: RunLosses, b: RunLosses): RunLosses {
  return {
    unpaired: a.unpaired + b.unpaired,
    outside: a.outside + b.outside,
    lost: a.lost + b.lost,
    broken: a.broken + b.broken,
    expertsUnplaced: a.expertsUnplaced + b.expertsUnplaced,
  };
}

export const NO_LOSSES: RunLosses = {
  unpaired: 0,
  outside: 0,
  lost: 0,
  broken: 0,
  expertsUnplaced: 0,
};

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
  wanted?: (token: Token) => boolean,
): Map<number, OffCpuTarget[]> {
  const hasChild = new Set<GraphRun>();
  for (const g of graphRuns) if (g.parent) hasChild.add(g.parent);
  const tokenBySeq = new Map<string, Token>();
  for (const t of tokens) tokenBySeq.set(`${t.tgid}:${t.seq}`, t);
  let expectInner: ReturnType<typeof innerBarrierExpectations> | null = null;
  const context = {
    // over every graph's items, but only once a graph is rebuilt from them (the live export
    // rebuilds few)
    get expectInner() {
      return (expectInner ??= innerBarrierExpectations(placed.itemsByGraph));
    },
    ithByTid: placed.ithByTid,
    lossPossible,
    counterNames: (header.counters ?? []).map((c) => c.name),
  };
  const targetsByTid = new Map<number, OffCpuTarget[]>();
  for (const g of graphRuns) {
    const token = g.tokenSeq === null ? null : tokenBySeq.get(`${g.tgid}:${g.tokenSeq}`);
    if (token && wanted && !wanted(token)) continue;
    const expectOps =
      header.level === "op" && !hasChild.has(g) && g.fn === "cpu" && (token?.opsSampled ?? false);
    const steps = stepsOf(g, placed);
    if (steps) reconstructFromSteps(g, steps, placed.ithByTid);
    else {
      const items = itemsOf(g, placed);
      if (items || expectOps) reconstructGraph(g, items ?? new Map(), context);
      else continue;
    }
    for (const op of g.ops) for (const t of op.threads) pushTo(targetsByTid, t.tid, t);
  }
  return targetsByTid;
}

/** Off-CPU intervals per thread (sched_switch), charged to operator intervals and graph threads. */
function chargeScheduling(
  sorted: SortedEvents,
  graphRuns: readonly GraphRun[],
  opIntervals: ReadonlyMap<number, OffCpuTarget[]>,
  hooks: BuildHooks,
): Map<number, OffCpuInterval[]> {
  const ranAt = new Map<number, bigint[]>();
  const ascending = (a: bigint, b: bigint) => (a < b ? -1 : a > b ? 1 : 0);
  const lazyRanAt: RanAt = {
    // made on demand: only a thread whose switch back in was lost needs them
    get(tid) {
      let times = ranAt.get(tid);
      if (times) return times;
      times = (sorted.threadEvents.get(tid) ?? []).map((e) => e.ts);
      // the OP events of runs kept as records: only their times are read
      const runs = sorted.opBatches.get(tid);
      if (runs) {
        for (const run of runs) times.push(...opTimesOf(run));
        times.sort(ascending);
      }
      ranAt.set(tid, times);
      return times;
    },
  };
  const offCpu = hooks.offCpu
    ? hooks.offCpu(sorted, lazyRanAt)
    : offCpuIntervals(sorted.switches, sorted.targetTgids, sorted.lastNs, lazyRanAt);
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

/** Events, a batch of steps kept as bytes counting one per step. */
export function countEvents(events: readonly ChunkEvent[]): number {
  let n = 0;
  for (const ev of events) n += eventsIn(ev);
  return n;
}
