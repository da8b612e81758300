// SPDX-License-Identifier: Apache-2.0
// The one rule for the graph a view shows first (the report's ProfDAG, the Grafana panel's
// default), for the exporter's graph runs and the plugin's graph spans alike.

/** What the rule needs to know of each graph. */
export interface GraphCandidate {
  /** it ran inside a decode call */
  decode: boolean;
  /** it carries operators */
  withOps: boolean;
  /** no event of it was missing */
  complete: boolean;
  /** its description (node list and shapes): the same for every run of one graph */
  description: string;
}

/**
 * The index of the graph to show first, or -1: among the decode graphs with operators, those of
 * the description most of them share (the steady-state decode graph; the first such description
 * on a tie), the first complete one, else the first; without any, the first graph with operators.
 */
export function mainGraphIndex(graphs: readonly GraphCandidate[]): number {
  const groups = new Map<string, number[]>();
  graphs.forEach((g, i) => {
    if (!g.decode || !g.withOps) return;
    const group = groups.get(g.description);
    if (group) group.push(i);
    else groups.set(g.description, [i]);
  });
  if (groups.size === 0) return graphs.findIndex((g) => g.withOps);
  let largest: number[] = [];
  for (const group of groups.values()) if (group.length > largest.length) largest = group;
  return largest.find((i) => graphs[i]!.complete) ?? largest[0]!;
}
