// SPDX-License-Identifier: Apache-2.0
// Off-CPU intervals of the target's threads from sched_switch, and their attribution to the
// operator intervals they overlap.
import type { SchedSwitchEvent } from "../abi/events.js";
import type { GraphRun, OffCpuInterval, OffCpuTarget } from "./types.js";

type OpenOffCpu = Omit<OffCpuInterval, "endNs" | "open">;

/** The first of a thread's own event times (ascending) in (after, before), if any. */
function firstRunBetween(times: readonly bigint[] | undefined, after: bigint, before: bigint) {
  if (!times || times.length === 0) return null;
  let lo = 0;
  let hi = times.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (times[mid]! <= after) lo = mid + 1;
    else hi = mid;
  }
  const t = times[lo];
  return t !== undefined && t < before ? t : null;
}

/**
 * Off-CPU intervals of the target's threads from sched_switch, fed chunk after chunk in time
 * order (a whole run is one chunk). A switch concerns a target thread when it is the header's
 * thread (`h.tid`) or belongs to a target process; the state machine ignores repeated leaves and
 * takes, so the same switch reported for both sides counts once. The thread's own events prove
 * it was running: an interval whose switch back was not seen (the tracepoint does not always
 * report it) ends at the first of them after its start. An interval still open when the run ends
 * closes there (`open`).
 */

/**
 * Each thread's own event times (ascending) by thread id: when it was running. Read only for a
 * thread with an off-CPU interval whose end was not recorded, so it may compute them on demand.
 */
export interface RanAt {
  get(tid: number): readonly bigint[] | undefined;
}

export class OffCpuTracker {
  private readonly open = new Map<number, OpenOffCpu>();
  /** the previous chunk's cut: intervals are clipped to it in the chunk's pieces */
  private from: bigint | null = null;

  /**
   * One chunk: its switches (events before `cut`; null for the last chunk, the run ending at
   * `endNs`), the target's processes and the times of its threads' own operator and barrier
   * events (ascending, per thread). Returns the intervals closed in it, and each thread's intervals
   * as far as they lie in the chunk (from the previous cut to this one): what its operators are
   * charged with.
   */
  chunk(
    switches: readonly SchedSwitchEvent[],
    targetTgids: ReadonlySet<number>,
    ranAt: RanAt,
    cut: bigint | null,
    endNs: bigint,
  ): { closed: OffCpuInterval[]; pieces: Map<number, OffCpuInterval[]> } {
    const open = this.open;
    const closed: OffCpuInterval[] = [];
    const closeIfRan = (tid: number, before: bigint): void => {
      const off = open.get(tid);
      if (!off) return;
      const ran = firstRunBetween(ranAt.get(tid), off.startNs, before);
      if (ran === null) return;
      closed.push({ ...off, endNs: ran, open: false });
      open.delete(tid);
    };
    // they arrive in time order but for the ring buffer's small reorderings
    let inOrder = true;
    for (let i = 1; i < switches.length && inOrder; i++)
      inOrder = switches[i - 1]!.ts <= switches[i]!.ts;
    const sorted = inOrder
      ? switches
      : [...switches].sort((a, b) => (a.ts < b.ts ? -1 : a.ts > b.ts ? 1 : 0));
    for (const ev of sorted) {
      const leaves =
        ev.prevTid !== 0 && (ev.prevTid === ev.tid || targetTgids.has(ev.prevTgid))
          ? ev.prevTid
          : -1;
      const takes =
        ev.nextTid !== 0 && (ev.nextTid === ev.tid || targetTgids.has(ev.nextTgid))
          ? ev.nextTid
          : -1;
      if (takes >= 0) closeIfRan(takes, ev.ts);
      if (leaves >= 0) closeIfRan(leaves, ev.ts);
      if (takes >= 0) {
        const off = open.get(takes);
        if (off) {
          closed.push({ ...off, endNs: ev.ts, open: false });
          open.delete(takes);
        }
      }
      if (leaves >= 0 && !open.has(leaves)) {
        const preempted = ev.prevState === 0;
        open.set(leaves, {
          tid: leaves,
          startNs: ev.ts,
          cpu: ev.cpu,
          preempted,
          prevState: ev.prevState,
          by: preempted ? { comm: ev.nextComm, tgid: ev.nextTgid, tid: ev.nextTid } : null,
        });
      }
    }
    const stillOpen: OffCpuInterval[] = [];
    for (const off of [...open.values()]) {
      closeIfRan(off.tid, cut ?? endNs + 1n);
      if (!open.has(off.tid)) continue;
      if (cut !== null) stillOpen.push({ ...off, endNs: cut, open: true });
      else {
        if (endNs > off.startNs) closed.push({ ...off, endNs, open: true });
        open.delete(off.tid);
      }
    }
    // a thread's intervals close in time order, and the one still open comes after them
    const from = this.from;
    this.from = cut;
    const pieces = new Map<number, OffCpuInterval[]>();
    for (const list of [closed, stillOpen]) {
      for (const iv of list) {
        const piece = from !== null && iv.startNs < from ? { ...iv, startNs: from } : iv;
        const have = pieces.get(iv.tid);
        if (have) have.push(piece);
        else pieces.set(iv.tid, [piece]);
      }
    }
    return { closed, pieces };
  }
}

/** Per target thread, its off-CPU intervals in time order, over a whole run (OffCpuTracker). */
export function offCpuIntervals(
  switches: readonly SchedSwitchEvent[],
  targetTgids: ReadonlySet<number>,
  endNs: bigint,
  ranAt: RanAt = new Map(),
): Map<number, OffCpuInterval[]> {
  const { pieces } = new OffCpuTracker().chunk(switches, targetTgids, ranAt, null, endNs);
  return new Map([...pieces].sort((a, b) => a[0] - b[0]));
}

/**
 * Add to each target the off-CPU (and preempted) ns of the intervals that overlap it. `targets`
 * are one thread's intervals; they are sorted here by start.
 */
export function chargeOffCpu(targets: OffCpuTarget[], intervals: readonly OffCpuInterval[]): void {
  if (intervals.length === 0 || targets.length === 0) return;
  targets.sort((a, b) => (a.startNs < b.startNs ? -1 : a.startNs > b.startNs ? 1 : 0));
  let first = 0;
  for (const t of targets) {
    while (first < intervals.length && intervals[first]!.endNs <= t.startNs) first++;
    for (let i = first; i < intervals.length; i++) {
      const iv = intervals[i]!;
      if (iv.startNs >= t.endNs) break;
      const from = iv.startNs > t.startNs ? iv.startNs : t.startNs;
      const to = iv.endNs < t.endNs ? iv.endNs : t.endNs;
      if (to > from) {
        const ns = Number(to - from);
        t.offCpuNs += ns;
        if (iv.preempted) t.preemptedNs += ns;
      }
    }
  }
}

/** Each graph thread's off-CPU (and preempted) ns while its graph ran. */
export function chargeGraphThreads(
  graphRuns: readonly GraphRun[],
  offCpu: ReadonlyMap<number, readonly OffCpuInterval[]>,
): void {
  for (const g of graphRuns) {
    for (const gt of g.threads) {
      const intervals = offCpu.get(gt.tid);
      if (!intervals) continue;
      const span: OffCpuTarget = {
        startNs: g.startNs,
        endNs: g.endNs,
        offCpuNs: 0,
        preemptedNs: 0,
      };
      chargeOffCpu([span], intervals);
      gt.offCpuNs = span.offCpuNs;
      gt.preemptedNs = span.preemptedNs;
    }
  }
}
