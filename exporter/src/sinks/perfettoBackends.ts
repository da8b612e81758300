// SPDX-License-Identifier: Apache-2.0
// ProfTime's backend tracks (timeline.ts): one "backend <name>" track per backend a run computed
// on, holding each scheduler graph's part on that backend, inside it each split from its
// submission to when the host saw it complete, the copies of its inputs, the host's waits for it
// and its backend's own host-side work (a Vulkan command buffer's nodes recorded and submitted).
// Written chunk by chunk: a split and its scheduler graph are in one llama_decode call.
import type { Backend, GraphRun } from "../trace/types.js";

/** The "backend <name>" track of backend id has this tid plus its id. */
export const BACKEND_TRACK_BASE = 1_800_000_000;

const CALL_NAMES = {
  wait: "wait",
  submit: "submit",
  record: "record",
  op: "node",
  fence: "fence wait",
} as const;

/** A slice of a backend's track (timeline.ts writes them). */
export interface BackendSlice {
  name: string;
  cat: string;
  startNs: bigint;
  endNs: bigint;
  args?: Record<string, unknown>;
}

/** What a backend's slices say of it: its implementation, what was measured, what was not seen. */
function backendArgs(b: Backend): Record<string, unknown> {
  return {
    backend: b.name,
    registry: b.registry,
    named_by: b.namedBy,
    measured: b.measures ?? "graph level only: splits, copies and waits, seen from the host",
    ...(b.unseen.length > 0 ? { not_seen: b.unseen } : {}),
  };
}

const slice = (
  name: string,
  cat: string,
  startNs: bigint,
  endNs: bigint,
  args?: Record<string, unknown>,
): BackendSlice => ({
  name,
  cat,
  startNs,
  endNs: endNs > startNs ? endNs : startNs,
  ...(args ? { args } : {}),
});

/** The backends' slices of some graph runs (a chunk's), backend by backend, each in time order. */
export function backendSlices(
  graphRuns: readonly GraphRun[],
): { backend: Backend; slices: BackendSlice[] }[] {
  const splitsBySched = new Map<GraphRun, GraphRun[]>();
  const orphans: GraphRun[] = [];
  for (const g of graphRuns) {
    if (!g.split) continue;
    const sched = g.split.sched;
    if (!sched) orphans.push(g);
    else {
      let list = splitsBySched.get(sched);
      if (!list) splitsBySched.set(sched, (list = []));
      list.push(g);
    }
  }
  const perTrack = new Map<Backend, BackendSlice[]>();
  const push = (b: Backend, ev: BackendSlice) => {
    let list = perTrack.get(b);
    if (!list) perTrack.set(b, (list = []));
    list.push(ev);
  };
  for (const [sched, splits] of splitsBySched) {
    const byBackend = new Map<Backend, GraphRun[]>();
    for (const g of splits) {
      let list = byBackend.get(g.split!.backend);
      if (!list) byBackend.set(g.split!.backend, (list = []));
      list.push(g);
    }
    for (const [b, list] of byBackend) {
      let end = sched.endNs;
      for (const g of list) if (g.split!.completeNs > end) end = g.split!.completeNs;
      push(
        b,
        slice(`graph #${sched.id}`, "backend graph", sched.startNs, end, {
          graph: sched.id,
          token: sched.tokenSeq,
          splits: list.length,
          ...backendArgs(b),
        }),
      );
      for (const g of list) for (const ev of splitSlices(g)) push(b, ev);
    }
  }
  for (const g of orphans) for (const ev of splitSlices(g)) push(g.split!.backend, ev);
  const out: { backend: Backend; slices: BackendSlice[] }[] = [];
  for (const b of [...perTrack.keys()].sort((a, b) => a.id - b.id)) {
    const list = perTrack.get(b)!;
    // parents before children at equal starts, so that viewers nest them
    list.sort((x, y) =>
      x.startNs !== y.startNs
        ? x.startNs < y.startNs
          ? -1
          : 1
        : y.endNs - y.startNs > x.endNs - x.startNs
          ? 1
          : y.endNs - y.startNs < x.endNs - x.startNs
            ? -1
            : 0,
    );
    out.push({ backend: b, slices: list });
  }
  return out;
}

/** A split's slice, with its copies before it and its submission, waits and calls inside it. */
function splitSlices(g: GraphRun): BackendSlice[] {
  const s = g.split!;
  const bytes = s.copies.reduce((sum, c) => sum + (c.bytes ?? 0), 0);
  const out = [
    slice(`split #${s.index}`, "split", g.startNs, s.completeNs, {
      graph: s.sched?.id ?? null,
      run: g.id,
      token: g.tokenSeq,
      backend: s.backend.name,
      first_node: s.firstNode,
      nodes: s.nNodes,
      completion: s.completion,
      submit_ns: Number(g.endNs - g.startNs),
      copies: s.copies.length,
      copy_bytes: bytes,
      ops: g.ops.length,
    }),
  ];
  for (const c of s.copies) {
    out.push(
      slice(`copy ${c.srcName}`, "copy", c.startNs, c.endNs, {
        to: c.dstName,
        bytes: c.bytes,
        via: c.via,
        split: s.index,
      }),
    );
  }
  if (s.completion !== "returned") out.push(slice("submit", "submit", g.startNs, g.endNs));
  for (const w of s.waits) out.push(slice("wait", "wait", w.startNs, w.endNs, { tid: w.tid }));
  for (const c of s.calls) {
    out.push(
      slice(CALL_NAMES[c.kind], c.kind, c.startNs, c.endNs, {
        tid: c.tid,
        ...(c.node >= 0 ? { node: c.node } : {}),
      }),
    );
  }
  return out;
}
