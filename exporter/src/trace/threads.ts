// SPDX-License-Identifier: Apache-2.0
// The target's threads as a run shows them: the threads that called llama_decode first ("main"),
// then ggml's workers by their index, then any other thread the scheduler saw. Collected chunk by
// chunk (a whole run is one chunk); the names depend on all of them, so they come at the end.
import type { GraphRun, ThreadInfo, Token } from "./types.js";

export class ThreadCollector {
  private readonly callers = new Set<number>();
  private readonly tgids = new Map<number, number>();
  private readonly iths = new Map<number, number>();
  private readonly comms = new Map<number, string>();

  constructor(private readonly targetPid: number) {}

  /**
   * The threads of one chunk: the callers of its calls, its graphs' threads, the threads it saw
   * off CPU, the ggml index of each worker (from its OP events) and the names sched_switch gave.
   */
  add(
    tokens: readonly Token[],
    graphRuns: readonly GraphRun[],
    offCpuTids: Iterable<number>,
    ithByTid: ReadonlyMap<number, number>,
    comms: ReadonlyMap<number, string>,
  ): void {
    for (const t of tokens) {
      this.callers.add(t.tid);
      this.tgids.set(t.tid, t.tgid);
    }
    for (const g of graphRuns) {
      this.tgids.set(g.tid, g.tgid);
      for (const gt of g.threads) this.tgids.set(gt.tid, g.tgid);
    }
    for (const tid of offCpuTids) if (!this.tgids.has(tid)) this.tgids.set(tid, this.targetPid);
    for (const [tid, ith] of ithByTid) this.iths.set(tid, ith);
    for (const [tid, comm] of comms) this.comms.set(tid, comm);
  }

  /** Every thread seen, ordered and named. */
  threads(): Map<number, ThreadInfo> {
    const { callers, iths } = this;
    const ordered = [...this.tgids].sort((a, b) => {
      const ca = callers.has(a[0]) ? 0 : 1;
      const cb = callers.has(b[0]) ? 0 : 1;
      const ia = iths.get(a[0]) ?? Number.MAX_SAFE_INTEGER;
      const ib = iths.get(b[0]) ?? Number.MAX_SAFE_INTEGER;
      return ca - cb || ia - ib || a[0] - b[0];
    });
    const threads = new Map<number, ThreadInfo>();
    for (const [tid, tgid] of ordered) {
      const caller = callers.has(tid);
      const ith = iths.get(tid) ?? null;
      const name = caller
        ? callers.size === 1
          ? "main"
          : `main ${tid}`
        : ith !== null
          ? `worker ${ith}`
          : `thread ${tid}`;
      threads.set(tid, {
        tid,
        tgid,
        ith,
        decodeCaller: caller,
        name,
        comm: this.comms.get(tid) ?? null,
      });
    }
    return threads;
  }
}
