// SPDX-License-Identifier: Apache-2.0
// Graph descriptions: one snapshot per (cgraph, signature) from the node list chunks and tensor
// descriptions the tracer sent when the graph changed, shared by every run that refers to it.
import { buildDag, snapshotKey } from "./dag.js";
import type { GraphNodesEvent, TensorEvent } from "../abi/events.js";
import type { GraphRun, GraphSnapshot, OpNaming } from "./types.js";

/** The snapshots by key; each graph run gets its own (and counts as one of its uses). */
export function describeSnapshots(
  nodeChunks: ReadonlyMap<string, readonly GraphNodesEvent[]>,
  tensorsBySignature: ReadonlyMap<bigint, ReadonlyMap<bigint, TensorEvent>>,
  graphRuns: readonly GraphRun[],
  naming: OpNaming,
): Map<string, GraphSnapshot> {
  const snapshots = new Map<string, GraphSnapshot>();
  const nodeCounts = new Map<string, number>();
  for (const g of graphRuns) nodeCounts.set(snapshotKey(g.cgraph, g.signature), g.nNodes);
  for (const [key, chunks] of nodeChunks) {
    const first = chunks[0];
    if (!first) continue;
    const covered = chunks.reduce((n, c) => Math.max(n, c.first + c.nodes.length), 0);
    const nNodes = nodeCounts.get(key) ?? covered;
    const addrs = new Array<bigint>(nNodes).fill(0n);
    let filled = 0;
    for (const c of [...chunks].sort((a, b) => a.first - b.first)) {
      c.nodes.forEach((addr, i) => {
        const at = c.first + i;
        if (at < nNodes && addrs[at] === 0n) {
          addrs[at] = addr;
          filled++;
        }
      });
    }
    const dag = buildDag(addrs, tensorsBySignature.get(first.signature) ?? new Map(), naming);
    snapshots.set(key, {
      key,
      cgraph: first.cgraph,
      signature: first.signature,
      nNodes,
      dag,
      uses: 0,
      complete: filled === nNodes && dag.undescribedNodes === 0,
    });
  }
  for (const g of graphRuns) {
    const snapshot = snapshots.get(snapshotKey(g.cgraph, g.signature)) ?? null;
    g.snapshot = snapshot;
    if (snapshot) snapshot.uses++;
  }
  return snapshots;
}
