// SPDX-License-Identifier: Apache-2.0
// The target's threads as a run shows them: the threads that called llama_decode first ("main"),
// then ggml's workers by their index, then any other thread the scheduler saw.
import type { GraphRun, OffCpuInterval, ThreadInfo, Token } from "./types.js";

export function orderThreads(
  tokens: readonly Token[],
  graphRuns: readonly GraphRun[],
  offCpu: ReadonlyMap<number, readonly OffCpuInterval[]>,
  ithByTid: ReadonlyMap<number, number>,
  comms: ReadonlyMap<number, string>,
  targetPid: number,
): Map<number, ThreadInfo> {
  const callers = new Set(tokens.map((t) => t.tid));
  const tids = new Map<number, number>();
  for (const t of tokens) tids.set(t.tid, t.tgid);
  for (const g of graphRuns) {
    tids.set(g.tid, g.tgid);
    for (const gt of g.threads) tids.set(gt.tid, g.tgid);
  }
  for (const tid of offCpu.keys()) if (!tids.has(tid)) tids.set(tid, targetPid);
  const ordered = [...tids].sort((a, b) => {
    const ca = callers.has(a[0]) ? 0 : 1;
    const cb = callers.has(b[0]) ? 0 : 1;
    const ia = ithByTid.get(a[0]) ?? Number.MAX_SAFE_INTEGER;
    const ib = ithByTid.get(b[0]) ?? Number.MAX_SAFE_INTEGER;
    return ca - cb || ia - ib || a[0] - b[0];
  });
  const threads = new Map<number, ThreadInfo>();
  for (const [tid, tgid] of ordered) {
    const caller = callers.has(tid);
    const ith = ithByTid.get(tid) ?? null;
    const name = caller
      ? callers.size === 1
        ? "main"
        : `main ${tid}`
      : ith !== null
        ? `worker ${ith}`
        : `thread ${tid}`;
    threads.set(tid, { tid, tgid, ith, decodeCaller: caller, name, comm: comms.get(tid) ?? null });
  }
  return threads;
}
