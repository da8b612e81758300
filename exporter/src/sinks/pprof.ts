// SPDX-License-Identifier: Apache-2.0
// Operator time as pprof profiles (profile.proto, gzipped: what `go tool pprof`, Pyroscope,
// Grafana's flame graph and speedscope read). Not sampled: every operator run of the recording is
// one stack, phase > layer > op > tensor (root first), with the thread that ran it as a label, and
// valued in wall time, thread time, barrier wait, runs and each recorded counter. The time of a
// llama_decode call outside its graphs, and of a graph outside its operators, are stacks of their
// own, so that a phase's total is the time of its calls. pprof-format (Datadog's pure-JS encoder)
// writes the protobuf; the output depends on the recording only, byte for byte.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { Function as PprofFunction, Line, Location, Profile, StringTable } from "pprof-format";
import type { Phase } from "@profinfer/contract";
import { toWallClockNs } from "../trace/clock.js";
import { displayOpName } from "../trace/dag.js";
import type { RunTotals } from "../trace/runStream.js";
import type { GraphRun, OpRun, Run, Token } from "../trace/types.js";

/** What a frame of a stack is; pprof keeps functions of equal name but other file apart. */
type FrameKind = "phase" | "layer" | "op" | "tensor" | "time";

export interface Frame {
  kind: FrameKind;
  name: string;
}

/** A stack's root: the phase of its llama_decode call, or none. */
export type ProfileRoot = Phase | "outside";

/** The stack root of graphs no llama_decode call contains (a program's own graph computes). */
export const OUTSIDE_DECODE = "(outside llama_decode)";
/** Leaf of a call's time outside its graph computes (batch preparation, sampling, llama's own). */
export const DECODE_OUTSIDE_GRAPHS = "(llama_decode outside graph_compute)";
/** Leaf of a graph's time outside its operators (scheduling, splits, the barriers' ends). */
export const GRAPH_OUTSIDE_OPS = "(graph_compute outside operators)";
/** Leaf of a graph whose operators were not recorded (sampled out, or a level without them). */
export const GRAPH_WITHOUT_OPS = "(graph_compute, operators not recorded)";
/** The layer frame of operators outside every layer (embeddings, output). */
export const NO_LAYER = "(no layer)";

export interface Sample {
  root: ProfileRoot;
  frames: Frame[];
  /** values in the order of the profile's sample types */
  values: number[];
  thread: { name: string; tid: number } | null;
}

export interface RunProfiles {
  /** the sample types, in order (type, unit) */
  sampleTypes: { type: string; unit: string }[];
  /** the whole run */
  whole: Uint8Array;
  /** one profile per stack root present, gzipped */
  byRoot: Map<ProfileRoot, Uint8Array>;
}

/** The sample types of a run's profiles, in the order of each sample's values. */
export function profileSampleTypes(run: Pick<Run, "counters">): { type: string; unit: string }[] {
  return [
    { type: "wall", unit: "nanoseconds" },
    { type: "thread", unit: "nanoseconds" },
    { type: "barrier", unit: "nanoseconds" },
    { type: "runs", unit: "count" },
    ...(run.counters ?? []).map((c) => ({ type: c.name, unit: "count" })),
  ];
}

/** Threads beyond this many get one sample per stack and thread name, without their tid. */
const MAX_PROFILE_TIDS = 256;

/**
 * Samples of one stack and thread summed, in the order first seen: a run's profile keeps one
 * sample per operator, layer, phase and thread however long the run (a program that computes
 * each graph on new threads, as node-llama-cpp's do, is summed by thread name past
 * MAX_PROFILE_TIDS threads).
 */
export class SampleSet {
  private readonly samples = new Map<string, Sample>();
  private readonly tids = new Set<number>();

  add(samples: readonly Sample[]): void {
    for (const s of samples) {
      let thread = s.thread;
      if (thread && !this.tids.has(thread.tid)) {
        if (this.tids.size < MAX_PROFILE_TIDS) this.tids.add(thread.tid);
        else thread = { name: thread.name, tid: 0 };
      }
      const key = `${s.frames.map((f) => `${f.kind}:${f.name}`).join("\u0000")}\u0001${thread?.tid ?? -1}\u0001${thread?.name ?? ""}`;
      const have = this.samples.get(key);
      if (have) s.values.forEach((v, i) => (have.values[i] = (have.values[i] ?? 0) + v));
      else this.samples.set(key, { ...s, thread, values: [...s.values] });
    }
  }

  get size(): number {
    return this.samples.size;
  }

  list(): Sample[] {
    return [...this.samples.values()];
  }

  clear(): void {
    this.samples.clear();
    this.tids.clear();
  }
}

/** What a profile says of its run beside the samples (a run built whole, or a streamed one's totals). */
type ProfiledRun = Pick<RunTotals, "header" | "clock" | "firstNs" | "lastNs" | "eventCount">;

/** The profiles of a run's samples: the whole run and one per phase, gzipped protobuf. */
export function encodeRunProfiles(
  run: ProfiledRun,
  sampleTypes: { type: string; unit: string }[],
  samples: readonly Sample[],
): RunProfiles {
  const byRoot = new Map<ProfileRoot, Uint8Array>();
  for (const root of new Set(samples.map((s) => s.root))) {
    byRoot.set(
      root,
      encode(
        run,
        sampleTypes,
        samples.filter((s) => s.root === root),
      ),
    );
  }
  return { sampleTypes, whole: encode(run, sampleTypes, samples), byRoot };
}

/** The profiles of a run built whole. */
export function buildRunProfiles(run: Run): RunProfiles {
  const set = new SampleSet();
  set.add(collectSamples(run));
  return encodeRunProfiles(run, profileSampleTypes(run), set.list());
}

/**
 * Samples of a run streamed chunk by chunk, the threads named at the end (a chunk does not know
 * every thread of the run: "main" becomes "main <tid>" when another thread called llama_decode).
 */
export class ProfileAccumulator {
  private readonly set = new SampleSet();
  private sampleTypes: { type: string; unit: string }[] | null = null;

  add(run: Run): void {
    this.sampleTypes ??= profileSampleTypes(run);
    this.set.add(collectSamples(run));
  }

  finish(totals: RunTotals): RunProfiles {
    const samples = this.set.list().map((s) => {
      const name = s.thread && totals.threads.get(s.thread.tid)?.name;
      return name ? { ...s, thread: { ...s.thread!, name } } : s;
    });
    const sampleTypes = this.sampleTypes ?? profileSampleTypes({ counters: totals.counters });
    return encodeRunProfiles(totals, sampleTypes, samples);
  }
}

/** profile.pb.gz of the whole run and profile-<phase>.pb.gz per phase, in `dir`; their paths. */
export function writeRunProfiles(run: Run, dir: string): string[] {
  return writeProfiles(buildRunProfiles(run), dir);
}

/** Writes profiles into `dir`; their paths. */
export function writeProfiles(profiles: RunProfiles, dir: string): string[] {
  const written = [join(dir, "profile.pb.gz")];
  writeFileSync(written[0]!, profiles.whole);
  for (const [root, bytes] of profiles.byRoot) {
    const path = join(dir, `profile-${root}.pb.gz`);
    writeFileSync(path, bytes);
    written.push(path);
  }
  return written;
}

function rootFrame(root: ProfileRoot): Frame {
  return { kind: "phase", name: root === "outside" ? OUTSIDE_DECODE : root };
}

/**
 * Every stack of a run with its values (profileSampleTypes' order) and thread, named by
 * `threadName` (by default the run's own names).
 */
export function collectSamples(
  run: Run,
  threadName: (tid: number) => string = (tid) => run.threads.get(tid)?.name ?? `thread ${tid}`,
): Sample[] {
  const counters = (run.counters ?? []).map((c) => c.name);
  const width = 4 + counters.length;
  const zero = () => new Array<number>(width).fill(0);
  const samples: Sample[] = [];
  const tokenOf = new Map<string, Token>(run.tokens.map((t) => [`${t.tgid}:${t.seq}`, t]));
  const rootOf = (g: GraphRun): ProfileRoot => {
    const token = g.tokenSeq === null ? undefined : tokenOf.get(`${g.tgid}:${g.tokenSeq}`);
    return token?.phase ?? "outside";
  };
  const timeSample = (root: ProfileRoot, leaf: string, ns: number, tid: number | null) => {
    if (ns <= 0) return;
    const values = zero();
    values[0] = ns;
    samples.push({
      root,
      frames: [rootFrame(root), { kind: "time", name: leaf }],
      values,
      thread: tid === null ? null : { name: threadName(tid), tid },
    });
  };
  const opSamples = (root: ProfileRoot, op: OpRun) => {
    const layer = op.tensor.layer === null ? NO_LAYER : `layer ${op.tensor.layer}`;
    const frames: Frame[] = [
      rootFrame(root),
      { kind: "layer", name: layer },
      { kind: "op", name: displayOpName(op.label) },
      { kind: "tensor", name: op.tensor.name },
    ];
    const threads = op.threads;
    if (threads.length === 0) {
      const values = zero();
      values[0] = op.durationNs;
      values[3] = 1;
      samples.push({ root, frames, values, thread: null });
      return;
    }
    // the op's wall time shared out among its threads (the first takes the remainder), so that
    // the samples of one op sum to its wall time and a thread's share can be looked at alone
    const share = Math.floor(op.durationNs / threads.length);
    threads.forEach((t, i) => {
      const values = zero();
      values[0] = i === 0 ? op.durationNs - share * (threads.length - 1) : share;
      values[1] = Number(t.endNs - t.startNs);
      values[2] = t.barrierWaitNs;
      values[3] = i === 0 ? 1 : 0;
      counters.forEach((name, k) => (values[4 + k] = t.counters?.[name] ?? 0));
      samples.push({ root, frames, values, thread: { name: threadName(t.tid), tid: t.tid } });
    });
  };
  /** the op time inside a graph and the graphs nested in it */
  const opNsWithin = (g: GraphRun, children: Map<GraphRun, GraphRun[]>): number =>
    g.ops.reduce((n, op) => n + op.durationNs, 0) +
    (children.get(g) ?? []).reduce((n, c) => n + opNsWithin(c, children), 0);
  const hasOps = (g: GraphRun, children: Map<GraphRun, GraphRun[]>): boolean =>
    g.ops.length > 0 || (children.get(g) ?? []).some((c) => hasOps(c, children));

  const children = new Map<GraphRun, GraphRun[]>();
  for (const g of run.graphRuns) {
    if (g.parent) children.set(g.parent, [...(children.get(g.parent) ?? []), g]);
  }
  for (const g of run.graphRuns) {
    const root = rootOf(g);
    for (const op of g.ops) opSamples(root, op);
    if (g.parent) continue;
    const ns = Number(g.endNs - g.startNs);
    if (hasOps(g, children)) {
      timeSample(root, GRAPH_OUTSIDE_OPS, ns - opNsWithin(g, children), g.tid);
    } else {
      timeSample(root, GRAPH_WITHOUT_OPS, ns, g.tid);
    }
  }
  for (const t of run.tokens) {
    // a call whose end was not recorded has no duration to share out
    if (t.ret === null) continue;
    const inGraphs = t.graphs
      .filter((g) => g.parent === null)
      .reduce((n, g) => n + Number(g.endNs - g.startNs), 0);
    timeSample(t.phase, DECODE_OUTSIDE_GRAPHS, Number(t.endNs - t.startNs) - inGraphs, t.tid);
  }
  return samples;
}

/** One profile.proto message of `samples`, gzipped. */
function encode(
  run: ProfiledRun,
  sampleTypes: readonly { type: string; unit: string }[],
  samples: readonly Sample[],
): Uint8Array {
  const strings = new StringTable();
  const functions: PprofFunction[] = [];
  const locations: Location[] = [];
  const locationOf = new Map<string, number>();
  const locate = (frame: Frame): number => {
    const key = `${frame.kind}\u0000${frame.name}`;
    let id = locationOf.get(key);
    if (id === undefined) {
      id = locations.length + 1;
      const name = strings.dedup(frame.name);
      functions.push(
        new PprofFunction({ id, name, systemName: name, filename: strings.dedup(frame.kind) }),
      );
      locations.push(new Location({ id, mappingId: 1, line: [new Line({ functionId: id })] }));
      locationOf.set(key, id);
    }
    return id;
  };
  const threadKey = strings.dedup("thread");
  const tidKey = strings.dedup("tid");
  const profile = new Profile({
    sampleType: sampleTypes.map((t) => ({
      type: strings.dedup(t.type),
      unit: strings.dedup(t.unit),
    })),
    sample: samples.map((s) => ({
      // pprof lists a stack leaf first
      locationId: s.frames.map(locate).reverse(),
      value: s.values,
      label: s.thread
        ? [
            { key: threadKey, str: strings.dedup(s.thread.name) },
            ...(s.thread.tid > 0 ? [{ key: tidKey, num: s.thread.tid }] : []),
          ]
        : [],
    })),
    // the program as the one mapping: its frames are named already (no symbols to look up)
    mapping: [
      {
        id: 1,
        filename: strings.dedup(run.header.target.executable ?? run.header.target.command[0] ?? ""),
        hasFunctions: true,
      },
    ],
    location: locations,
    function: functions,
    stringTable: strings,
    timeNanos: run.eventCount > 0 ? toWallClockNs(run.clock, run.firstNs) : 0n,
    durationNanos: run.lastNs - run.firstNs,
    periodType: { type: strings.dedup("wall"), unit: strings.dedup("nanoseconds") },
    period: 1,
    // what pprof shows unless told otherwise (its default is the last type)
    defaultSampleType: strings.dedup("wall"),
  });
  return gzipSync(profile.encode());
}
