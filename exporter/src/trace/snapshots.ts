// SPDX-License-Identifier: Apache-2.0
// Graph descriptions: one snapshot per (cgraph, signature) from the node list chunks and tensor
// descriptions the tracer sent when the graph changed, shared by every run that refers to it.
import { buildDag, snapshotKey } from "./dag.js";
import type { GraphNodesEvent, TensorEvent } from "../abi/events.js";
import type { Dag, GraphRun, GraphSnapshot, OpNaming } from "./types.js";

/** A description built once, by the events it was built from (a run streamed in chunks). */
interface BuiltDescription {
  first: GraphNodesEvent;
  chunks: number;
  tensors: number;
  nNodes: number;
  dag: Dag;
  complete: boolean;
}

/**
 * Descriptions already built, kept across the chunks of one run: a chunk is given the same
 * description events again (trace/chunker.ts), and the DAG they make is the same.
 */
export type DescriptionCache = Map<string, BuiltDescription>;

/** The snapshots by key; each graph run gets its own (and counts as one of its uses). */
export function describeSnapshots(
  nodeChunks: ReadonlyMap<string, readonly GraphNodesEvent[]>,
  tensorsBySignature: ReadonlyMap<bigint, ReadonlyMap<bigint, TensorEvent>>,
  graphRuns: readonly GraphRun[],
  naming: OpNaming,
  cache?: DescriptionCache,
): Map<string, GraphSnapshot> {
  const snapshots = new Map<string, GraphSnapshot>();
  const nodeCounts = new Map<string, number>();
  for (const g of graphRuns) nodeCounts.set(snapshotKey(g.cgraph, g.signature), g.nNodes);
  for (const [key, chunks] of nodeChunks) {
    const first = chunks[0];
    if (!first) continue;
    const covered = chunks.reduce((n, c) => Math.max(n, c.first + c.nodes.length), 0);
    const nNodes = nodeCounts.get(key) ?? covered;
    const tensors = tensorsBySignature.get(first.signature);
    const built = cache?.get(key);
    if (
      built &&
      built.first === first &&
      built.chunks === chunks.length &&
      built.tensors === (tensors?.size ?? 0) &&
      built.nNodes === nNodes
    ) {
      snapshots.set(key, {
        key,
        cgraph: first.cgraph,
        signature: first.signature,
        nNodes,
        dag: built.dag,
        uses: 0,
        complete: built.complete,
      });
      continue;
    }
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
    const dag = buildDag(addrs, tensors ?? new Map(), naming);
    const complete = filled === nNodes && dag.undescribedNodes === 0;
    snapshots.set(key, {
      key,
      cgraph: first.cgraph,
      signature: first.signature,
      nNodes,
      dag,
      uses: 0,
      complete,
    });
    cache?.set(key, {
      first,
      chunks: chunks.length,
      tensors: tensors?.size ?? 0,
      nNodes,
      dag,
      complete,
    });
  }
  for (const g of graphRuns) {
    const snapshot = snapshots.get(snapshotKey(g.cgraph, g.signature)) ?? null;
    g.snapshot = snapshot;
    if (snapshot) snapshot.uses++;
  }
  return snapshots;
}
