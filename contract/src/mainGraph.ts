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
 * The rule fed one graph at a time, in order, keeping a few figures per description instead of
 * every graph: what a run streamed chunk by chunk can afford. `T` is how the caller refers to a
 * graph.
 */
export class MainGraphChooser<T> {
  private readonly groups = new Map<string, { count: number; first: T; firstComplete: T | null }>();
  private firstWithOps: T | null = null;

  add(graph: GraphCandidate, ref: T): void {
    if (!graph.withOps) return;
    this.firstWithOps ??= ref;
    if (!graph.decode) return;
    const group = this.groups.get(graph.description);
    if (!group) {
      this.groups.set(graph.description, {
        count: 1,
        first: ref,
        firstComplete: graph.complete ? ref : null,
      });
      return;
    }
    group.count++;
    if (graph.complete) group.firstComplete ??= ref;
  }

  /**
   * The graph to show first, or null: among the decode graphs with operators, those of the
   * description most of them share (the steady-state decode graph; the first such description on
   * a tie), the first complete one, else the first; without any, the first graph with operators.
   */
  chosen(): T | null {
    let largest: { count: number; first: T; firstComplete: T | null } | null = null;
    for (const group of this.groups.values())
      if (!largest || group.count > largest.count) largest = group;
    if (!largest) return this.firstWithOps;
    return largest.firstComplete ?? largest.first;
  }
}

/** The index of the graph to show first (MainGraphChooser's rule), or -1. */
export function mainGraphIndex(graphs: readonly GraphCandidate[]): number {
  const chooser = new MainGraphChooser<number>();
  graphs.forEach((g, i) => chooser.add(g, i));
  return chooser.chosen() ?? -1;
}
