// SPDX-License-Identifier: Apache-2.0
// Off-CPU intervals of the target's threads from sched_switch, and their attribution to the
// operator intervals they overlap.
import type { SchedSwitchEvent } from "../abi/events.js";
import type { GraphRun, OffCpuInterval, OffCpuTarget } from "./types.js";

/**
 * Per target thread, its off-CPU intervals in time order. A switch concerns a target thread when
 * it is the header's thread (`h.tid`) or belongs to a target process; the state machine ignores
 * repeated leaves and takes, so the same switch reported for both sides counts once.
 */
export function offCpuIntervals(
  switches: readonly SchedSwitchEvent[],
  targetTgids: ReadonlySet<number>,
  endNs: bigint,
  ranAt: ReadonlyMap<number, readonly bigint[]> = new Map(),
): Map<number, OffCpuInterval[]> {
  // The thread's own events (ascending) prove it was running: an interval whose switch back was
  // not seen (the tracepoint does not always report it) ends at the first of them after its start.
  const firstRunAfter = (tid: number, after: bigint, before: bigint): bigint | null => {
    const times = ranAt.get(tid);
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
  };
  const closeIfRan = (tid: number, before: bigint): void => {
    const off = open.get(tid);
    if (!off) return;
    const ran = firstRunAfter(tid, off.startNs, before);
    if (ran === null) return;
    push({ ...off, endNs: ran, open: false });
    open.delete(tid);
  };
  const sorted = [...switches].sort((a, b) => (a.ts < b.ts ? -1 : a.ts > b.ts ? 1 : 0));
  const open = new Map<number, Omit<OffCpuInterval, "endNs" | "open">>();
  const out = new Map<number, OffCpuInterval[]>();
  function push(iv: OffCpuInterval): void {
    const list = out.get(iv.tid);
    if (list) list.push(iv);
    else out.set(iv.tid, [iv]);
  }
  for (const ev of sorted) {
    const leaves =
      ev.prevTid !== 0 && (ev.prevTid === ev.tid || targetTgids.has(ev.prevTgid)) ? ev.prevTid : -1;
    const takes =
      ev.nextTid !== 0 && (ev.nextTid === ev.tid || targetTgids.has(ev.nextTgid)) ? ev.nextTid : -1;
    if (takes >= 0) closeIfRan(takes, ev.ts);
    if (leaves >= 0) closeIfRan(leaves, ev.ts);
    if (takes >= 0) {
      const off = open.get(takes);
      if (off) {
        push({ ...off, endNs: ev.ts, open: false });
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
  for (const off of [...open.values()]) {
    closeIfRan(off.tid, endNs + 1n);
    if (open.has(off.tid) && endNs > off.startNs) push({ ...off, endNs, open: true });
  }
  for (const list of out.values()) list.sort((a, b) => (a.startNs < b.startNs ? -1 : 1));
  return new Map([...out.entries()].sort((a, b) => a[0] - b[0]));
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
