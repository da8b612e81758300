// SPDX-License-Identifier: Apache-2.0
// The graph descriptions a recording has sent so far, kept to be given again: the tracer sends a
// graph's node list and tensors only when the graph changes, so a chunk of a run (chunker.ts) or
// a new segment of a rotated events file (record/runWriter.ts) needs them repeated to rebuild the
// operators of the graphs it runs. Per graph the newest description; the newest KEPT of them.
import { snapshotKey } from "./dag.js";

const KEPT = 64;

export class DescriptionKeeper<T> {
  private readonly descriptions = new Map<string, { nodes: T[]; signature: bigint }>();
  private readonly tensors = new Map<bigint, Map<bigint, T>>();

  /** A graph begins and says it changed: its description starts afresh. */
  changed(cgraph: bigint, signature: bigint): void {
    const key = snapshotKey(cgraph, signature);
    this.descriptions.delete(key);
    this.descriptions.set(key, { nodes: [], signature });
    if (this.descriptions.size <= KEPT) return;
    const oldest = this.descriptions.keys().next().value!;
    const gone = this.descriptions.get(oldest)!.signature;
    this.descriptions.delete(oldest);
    if (![...this.descriptions.values()].some((d) => d.signature === gone))
      this.tensors.delete(gone);
  }

  /** A chunk of a graph's node list. */
  nodes(cgraph: bigint, signature: bigint, item: T): void {
    this.descriptions.get(snapshotKey(cgraph, signature))?.nodes.push(item);
  }

  /** A tensor of a description (one per address; the newest wins). */
  tensor(signature: bigint, addr: bigint, item: T): void {
    let pool = this.tensors.get(signature);
    if (!pool) this.tensors.set(signature, (pool = new Map()));
    pool.set(addr, item);
  }

  /** The kept descriptions of the graphs `keys` (every one without): node lists, then tensors. */
  itemsFor(keys?: Iterable<string>): T[] {
    const out: T[] = [];
    const signatures = new Set<bigint>();
    for (const key of keys ?? this.descriptions.keys()) {
      const d = this.descriptions.get(key);
      if (!d) continue;
      out.push(...d.nodes);
      signatures.add(d.signature);
    }
    for (const signature of signatures) out.push(...(this.tensors.get(signature)?.values() ?? []));
    return out;
  }
}
