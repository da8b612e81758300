// SPDX-License-Identifier: Apache-2.0
// A run built chunk by chunk, so that memory does not grow with its length: the events are cut
// into chunks of whole llama_decode calls (trace/chunker.ts), each chunk becomes a trace model of
// its own (buildRun), and what spans chunks is followed here once for the whole run: the
// requests (one tracker fed every call in order, so that phases and steps are the whole run's),
// the off-CPU intervals (one state machine fed every switch in order), the threads, the graph
// ids. The same code serves the live exports (sinks/liveChunks.ts, cut by a timer) and the run's
// outputs (streamRunFile: two passes over events.pinf, the first for what only the whole file
// tells, trace/runFacts.ts).
import { readRunNotes, runWarnings, addLosses, NO_LOSSES, buildRun } from "./buildRun.js";
import { formulaOfHeader } from "./backendStall.js";
import { BackendKeeper } from "./backends.js";
import { eventsIn, firstNsOf, type ChunkEvent } from "../abi/events.js";
import type { Drops } from "@profinfer/contract";
import { CallChunker } from "./chunker.js";
import { clockFrom } from "./clock.js";
import type { RunHeader } from "./header.js";
import type { ExitNote, NoteRecord, RunNote } from "./notes.js";
import { SegmentsReader } from "./segments.js";
import { RequestTracker, callOf, recordingCutOff } from "./requests.js";
import { scanRunFacts, type RunFacts } from "./runFacts.js";
import { OffCpuTracker } from "./sched.js";
import type { DescriptionCache } from "./snapshots.js";
import { ThreadCollector } from "./threads.js";
import type {
  Backend,
  OffCpuInterval,
  Request,
  Run,
  RunClock,
  RunLosses,
  ThreadInfo,
  Token,
} from "./types.js";

/** One chunk of a run: whole llama_decode calls and what happened between them. */
export interface RunChunk {
  /**
   * The chunk's model: its calls (phases and steps from the whole run's requests), their graphs
   * (ids counted over the whole run) and operators. `offCpu` holds each thread's off-CPU
   * intervals as far as they lie in the chunk (what its operators were charged with); its
   * `requests` are those the chunk started; `threads` are the chunk's own (RunTotals has the
   * run's, named once all are known).
   */
  run: Run;
  /** the requests that ended in this chunk (a pause does not end one: stats.json's rules) */
  requestsEnded: Request[];
  /** the off-CPU intervals that closed in this chunk, whole */
  offCpuClosed: OffCpuInterval[];
}

/** What only the end of a run tells: the whole run's figures the chunks add up to. */
export interface RunTotals {
  source: string | null;
  header: RunHeader;
  clock: RunClock;
  firstNs: bigint;
  lastNs: bigint;
  eventCount: number;
  /** llama_decode calls */
  calls: number;
  notes: NoteRecord[];
  drops: Drops | null;
  exit: ExitNote | null;
  stoppedNs: bigint | null;
  truncatedAt: number | null;
  losses: RunLosses;
  warnings: string[];
  /** the target's threads, ordered and named as Run.threads */
  threads: Map<number, ThreadInfo>;
  /** graph runs per graph description that was described (snapshotKey) */
  snapshotUses: Map<string, number>;
  /** the backends the splits were handed to, in order of first use (Run.backends) */
  backends: Backend[];
  counters?: Run["counters"];
  backendStall?: Run["backendStall"];
}

/** A run's totals when it was built whole (buildRun). */
export function totalsOfRun(run: Run): RunTotals {
  const snapshotUses = new Map<string, number>();
  for (const s of run.snapshots.values()) snapshotUses.set(s.key, s.uses);
  return {
    source: run.source,
    header: run.header,
    clock: run.clock,
    firstNs: run.firstNs,
    lastNs: run.lastNs,
    eventCount: run.eventCount,
    calls: run.tokens.length,
    notes: run.notes,
    drops: run.drops,
    exit: run.exit,
    stoppedNs: run.stoppedNs,
    truncatedAt: run.truncatedAt,
    losses: run.losses,
    warnings: run.warnings,
    threads: run.threads,
    snapshotUses,
    backends: run.backends,
    ...(run.counters ? { counters: run.counters } : {}),
    ...(run.backendStall ? { backendStall: run.backendStall } : {}),
  };
}

/** A whole run as its one chunk: what the chunked readers take. */
export function chunkOfRun(run: Run): RunChunk {
  return {
    run,
    requestsEnded: run.requests,
    offCpuClosed: [...run.offCpu.values()].flat(),
  };
}

/** Built graph descriptions kept for later chunks (the oldest go first). */
const KEPT_BUILT_DESCRIPTIONS = 128;

export class RunStream {
  private readonly chunker = new CallChunker();
  private readonly requests = new RequestTracker();
  private readonly offCpu = new OffCpuTracker();
  private readonly threads: ThreadCollector;
  private readonly targetTgids: Set<number>;
  private readonly notes: NoteRecord[] = [];
  private readonly snapshotUses = new Map<string, number>();
  private readonly descriptions: DescriptionCache = new Map();
  private readonly backends = new BackendKeeper();
  private losses: RunLosses = NO_LOSSES;
  private scaledBits = 0;
  private graphs = 0;
  private callCount = 0;
  private eventCount = 0;
  private firstNs = -1n;
  private lastNs = 0n;
  private lastCut: bigint | null = null;
  private done = false;

  /**
   * `facts`: what the first pass read of the whole file (a live recording has none: its notes
   * come through note(), its times from the events taken).
   */
  constructor(
    readonly header: RunHeader,
    private readonly facts: RunFacts | null = null,
    /** whether a call's operators are wanted (BuildHooks.operators; default every call's) */
    private readonly operators?: (token: Token) => boolean,
  ) {
    this.threads = new ThreadCollector(header.target.pid);
    this.targetTgids = new Set([header.target.pid]);
  }

  take(ev: ChunkEvent): void {
    this.chunker.take(ev);
    const first = firstNsOf(ev);
    this.eventCount += eventsIn(ev);
    if (this.firstNs < 0n || first < this.firstNs) this.firstNs = first;
    if (ev.ts > this.lastNs) this.lastNs = ev.ts;
  }

  /** A note of a live recording, as it is written. */
  note(note: RunNote): void {
    this.notes.push({ type: "note", offset: 0, afterEvents: this.eventCount, note });
  }

  /** The newest event time taken. */
  get newestNs(): bigint {
    return this.chunker.newestNs;
  }

  get pendingEvents(): number {
    return this.chunker.pendingEvents;
  }

  /** The latest cut at or before `ns` that splits no call (CallChunker.cutAtOrBefore). */
  cutAtOrBefore(ns: bigint): bigint {
    return this.chunker.cutAtOrBefore(ns);
  }

  /** The begin time of each call still open. */
  openCallBegins(): IterableIterator<bigint> {
    return this.chunker.openCallBegins();
  }

  /**
   * The chunk of the events before `cut` (a time from cutAtOrBefore, after the previous cut), or,
   * with null, of every event left: the run's end. Null when there is nothing before `cut`.
   */
  cut(cut: bigint | null): RunChunk | null {
    if (this.done) throw new Error("the run has ended: no chunk follows the last");
    if (cut !== null && this.lastCut !== null && cut <= this.lastCut) return null;
    const events = this.chunker.split(cut);
    if (cut !== null && events.length === 0) return null;
    const last = cut === null;
    const notes = this.facts?.notes ?? this.notes;
    const endNs = this.facts?.lastNs ?? this.lastNs;
    const ended: Request[] = [];
    let closed: OffCpuInterval[] = [];
    const run = buildRun(
      {
        header: this.header,
        events,
        notes,
        truncatedAt: this.facts?.truncatedAt ?? null,
        path: this.facts?.path ?? null,
      },
      {
        requests: (tokens) => this.followRequests(tokens, ended),
        offCpu: (sorted, ranAt) => {
          for (const tgid of sorted.targetTgids) this.targetTgids.add(tgid);
          const result = this.offCpu.chunk(sorted.switches, this.targetTgids, ranAt, cut, endNs);
          closed = result.closed;
          return result.pieces;
        },
        ...(this.operators ? { operators: this.operators } : {}),
        descriptions: this.descriptions,
        backends: this.backends,
      },
    );
    if (last) {
      const { stoppedNs, exit } = this.facts ?? readRunNotes(notes);
      ended.push(...this.requests.endAll(recordingCutOff(stoppedNs, exit)));
      this.done = true;
    }
    for (const g of run.graphRuns) g.id += this.graphs;
    this.graphs += run.graphRuns.length;
    this.callCount += run.tokens.length;
    this.losses = addLosses(this.losses, run.losses);
    for (const s of run.snapshots.values())
      if (s.uses > 0) this.snapshotUses.set(s.key, (this.snapshotUses.get(s.key) ?? 0) + s.uses);
    for (const c of run.counters ?? [])
      if (c.scaled) this.scaledBits |= 1 << this.counterIndex(c.name);
    const iths = new Map<number, number>();
    const comms = new Map<number, string>();
    for (const t of run.threads.values()) {
      if (t.ith !== null) iths.set(t.tid, t.ith);
      if (t.comm !== null) comms.set(t.tid, t.comm);
    }
    this.threads.add(run.tokens, run.graphRuns, run.offCpu.keys(), iths, comms);
    // as many descriptions as the chunker carries, and then some
    for (const key of this.descriptions.keys()) {
      if (this.descriptions.size <= KEPT_BUILT_DESCRIPTIONS) break;
      this.descriptions.delete(key);
    }
    this.lastCut = cut;
    return { run, requestsEnded: ended, offCpuClosed: closed };
  }

  private counterIndex(name: string): number {
    return (this.header.counters ?? []).findIndex((c) => c.name === name);
  }

  /** The whole run's requests fed the chunk's calls: their phases and steps, those started. */
  private followRequests(tokens: Token[], ended: Request[]): Request[] {
    const started: Request[] = [];
    for (const token of tokens) {
      const call = callOf(token);
      const step = this.requests.add(call);
      token.phase = call.phase;
      token.steps = call.steps!;
      started.push(...step.started);
      ended.push(...step.ended);
    }
    return started;
  }

  /** The whole run's figures; after the last chunk. */
  totals(): RunTotals {
    const facts = this.facts;
    const notes = facts?.notes ?? this.notes;
    const { drops, exit, stoppedNs } = facts ?? readRunNotes(notes);
    const truncatedAt = facts?.truncatedAt ?? null;
    const counterNames = (this.header.counters ?? []).map((c) => c.name);
    const counters =
      counterNames.length > 0
        ? (this.header.counters ?? []).map((c, i) => ({
            name: c.name,
            hardware: c.hardware,
            scaled: (this.scaledBits & (1 << i)) !== 0,
          }))
        : null;
    const backendStall = formulaOfHeader(this.header);
    return {
      source: facts?.path ?? null,
      header: this.header,
      clock: clockFrom(this.header),
      firstNs: facts?.firstNs ?? (this.firstNs < 0n ? 0n : this.firstNs),
      lastNs: facts?.lastNs ?? this.lastNs,
      eventCount: facts?.eventCount ?? this.eventCount,
      calls: this.callCount,
      notes,
      drops,
      exit,
      stoppedNs,
      truncatedAt,
      losses: this.losses,
      warnings: runWarnings(this.losses, notes, truncatedAt, drops),
      threads: this.threads.threads(),
      snapshotUses: this.snapshotUses,
      backends: this.backends.backends,
      ...(counters ? { counters } : {}),
      ...(backendStall ? { backendStall } : {}),
    };
  }
}

/**
 * The heap a streamed run may hold between chunks before a full collection (when the CLI exposes
 * one: node --expose-gc): what a chunk keeps alive is a few MB, and V8 alone would let the
 * garbage of many chunks pile up before it collects.
 */
const HEAP_BOUND = 128 << 20;
const gc = (globalThis as { gc?: () => void }).gc;
function boundHeap(): void {
  if (gc && process.memoryUsage().heapUsed > HEAP_BOUND) gc();
}

export interface StreamOptions {
  /** events read before a cut is tried */
  chunkEvents?: number;
  /** events newer than the newest read less this may still be behind in the file */
  marginNs?: bigint;
}

/**
 * Events a chunk is cut after: some ten calls of the bench model, fifty of tiny-llama; a few MB of
 * model at a time, most of it dead before V8's young generation fills.
 */
const CHUNK_EVENTS = 8_000;
const FILE_MARGIN_NS = 200_000_000n;

/**
 * Builds the run of an events.pinf (or of a rotated one's segments, oldest first) chunk by chunk: `facts` from the first pass (scanRunFacts;
 * read here when not given), then each chunk handed to `onChunk` in time order, until it returns
 * true (then null is returned). Returns the totals. Memory holds one chunk at a time, whatever
 * the length of the run.
 */
export function streamRunFile(
  path: string | readonly string[],
  onChunk: (chunk: RunChunk) => boolean | void,
  options: StreamOptions & { facts?: RunFacts } = {},
): RunTotals | null {
  const facts = options.facts ?? scanRunFacts(path);
  const chunkEvents = options.chunkEvents ?? CHUNK_EVENTS;
  const margin = options.marginNs ?? FILE_MARGIN_NS;
  const stream = new RunStream(facts.header, facts);
  const reader = SegmentsReader.open(path);
  // a call open for long (a long prompt) holds the cut back: try again a while later
  let tryAt = chunkEvents;
  for (const record of reader) {
    if (record.type === "note") continue;
    stream.take(record);
    if (stream.pendingEvents < tryAt) continue;
    const chunk = stream.cut(stream.cutAtOrBefore(stream.newestNs - margin));
    if (chunk && onChunk(chunk) === true) return null;
    if (chunk) boundHeap();
    tryAt = stream.pendingEvents + (chunk ? chunkEvents : chunkEvents / 4);
  }
  const chunk = stream.cut(null);
  if (chunk && onChunk(chunk) === true) return null;
  return stream.totals();
}
