// SPDX-License-Identifier: Apache-2.0
// MoE routing: the expert ids read from each routing tensor (ffn_moe_topk-<layer>), placed in the
// llama_decode call and layer they belong to, one row of k ids per token of the batch.
import { parseLayer } from "./dag.js";
import type { MoeIdsEvent } from "../abi/events.js";
import type { CallAt, GraphIndex } from "./placement.js";
import type { Dag, GraphRun, GraphSnapshot } from "./types.js";

/** Fills each call's `experts`; returns how many events could not be placed. */
export function attachExperts(
  moeEvents: readonly MoeIdsEvent[],
  tokenAt: CallAt,
  indexes: Map<number, GraphIndex>,
  snapshots: Map<string, GraphSnapshot>,
): number {
  let unplaced = 0;
  const names = new Map<Dag, Map<bigint, string>>();
  const nameIn = (dag: Dag, addr: bigint): string | null => {
    let byAddr = names.get(dag);
    if (!byAddr) {
      byAddr = new Map();
      for (const leaf of dag.leaves) byAddr.set(leaf.tensor.addr, leaf.tensor.name);
      for (const node of dag.nodes) byAddr.set(node.tensor.addr, node.tensor.name);
      names.set(dag, byAddr);
    }
    return byAddr.get(addr) ?? null;
  };
  for (const ev of moeEvents) {
    const token = tokenAt(ev.tgid, ev.ts);
    let name: string | null = null;
    const g = indexes.get(ev.tgid)?.innermostAt(ev.ts) ?? null;
    for (let at: GraphRun | null = g; at && name === null; at = at.parent) {
      if (at.snapshot) name = nameIn(at.snapshot.dag, ev.tensor);
    }
    for (const s of snapshots.values()) {
      if (name !== null) break;
      name = nameIn(s.dag, ev.tensor);
    }
    const layer = name === null ? null : parseLayer(name);
    if (!token || layer === null || ev.k <= 0) {
      unplaced++;
      continue;
    }
    const rows: number[][] = [];
    for (let r = 0; (r + 1) * ev.k <= ev.ids.length && r < ev.nTokens; r++) {
      rows.push(Array.from(ev.ids.subarray(r * ev.k, (r + 1) * ev.k)));
    }
    token.experts ??= new Map();
    const have = token.experts.get(layer) ?? [];
    // rows go to their batch positions: a large prefill arrives in several events
    rows.forEach((row, r) => (have[ev.firstToken + r] = row));
    token.experts.set(layer, have);
  }
  for (const t of new Set(moeEvents.map((e) => tokenAt(e.tgid, e.ts)))) {
    if (t?.experts) t.experts = new Map([...t.experts].sort((a, b) => a[0] - b[0]));
  }
  return unplaced;
}
