// SPDX-License-Identifier: Apache-2.0
// Two ProfDAGs compared node by node: each operator is matched to the other graph's by its
// tensor's key (name and op, an unnamed node by op and layer: @profinfer/contract's
// diffTensorKey, the diff's own key) and marked slower, faster, same, added or removed, either
// from `profinfer diff`'s verdicts (the diff page: over every decode call of both runs, against
// their noise) or from the two graphs alone (the panel: one trace a side, so no noise estimate,
// only a bound on the change).
import {
  DIFF_DEFAULTS,
  diffTensorKey,
  type DiffPageData,
  type DiffRow,
  type DiffVerdict,
} from "@profinfer/contract";
import type { DagModel, DagNodeModel } from "./dagModel.js";
import { EmptyModelError, NoUsableFrameError } from "./errors.js";
import type { FrameLike } from "./frames.js";
import { dagModelFromFrames } from "./panelData.js";
import { isTraceFrame } from "./trace.js";

/** A node's change; "mixed": a folded block whose layers changed differently. */
export type ChangeMark = DiffVerdict | "mixed" | "not compared";

export interface NodeChange {
  mark: ChangeMark;
  /** new / base - 1 of its key's time, when both graphs have it */
  relative: number | null;
}

export interface DagComparison {
  base: DagModel;
  next: DagModel;
  /** by node id of each model */
  baseChanges: Map<string, NodeChange>;
  nextChanges: Map<string, NodeChange>;
  /** how the marks were decided, one line for the legend */
  method: string;
}

/** The key that matches a node to the other graph's and to the diff's tensors rows. */
export function nodeKey(node: DagNodeModel): string {
  return diffTensorKey(node.label, node.op, node.layer);
}

const pct = (v: number) => `${v >= 0 ? "+" : ""}${(v * 100).toFixed(1)}%`;

/** The models with each node's change as a tooltip row. */
function withChanges(
  base: DagModel,
  next: DagModel,
  changeOf: (node: DagNodeModel, side: "base" | "new") => NodeChange,
  method: string,
): DagComparison {
  const mark = (model: DagModel, side: "base" | "new") => {
    const changes = new Map<string, NodeChange>();
    const nodes = model.nodes.map((n) => {
      const c = changeOf(n, side);
      changes.set(n.id, c);
      const text = c.relative === null ? c.mark : `${c.mark} (${pct(c.relative)})`;
      return { ...n, details: [...n.details, ["change", text] as [string, string]] };
    });
    return { model: { ...model, nodes }, changes };
  };
  const a = mark(base, "base");
  const b = mark(next, "new");
  return { base: a.model, next: b.model, baseChanges: a.changes, nextChanges: b.changes, method };
}

/**
 * Marks from the diff's tensors section: a node takes its key's verdict (over every decode call of
 * both runs); a key the section lacks is "not compared" (a graph other than a decode call's).
 */
export function changesFromDiff(base: DagModel, next: DagModel, rows: DiffRow[]): DagComparison {
  const byKey = new Map(rows.map((r) => [r.name, r]));
  return withChanges(
    base,
    next,
    (n) => {
      const row = byKey.get(nodeKey(n));
      return row
        ? { mark: row.verdict, relative: row.relative }
        : { mark: "not compared", relative: null };
    },
    "profinfer diff's verdicts: the tensor's time per decode call, judged against both runs' noise",
  );
}

export interface GraphChangeBounds {
  /** changes smaller than this share of the base are "same" (0.15: 15%) */
  minRelative: number;
  /** changes smaller than this share of the larger graph's operator time are "same" */
  minShare: number;
}

/** profinfer diff's bounds */
export const DEFAULT_GRAPH_CHANGE_BOUNDS: GraphChangeBounds = {
  minRelative: DIFF_DEFAULTS.minRelative,
  minShare: DIFF_DEFAULTS.minShare,
};

/**
 * Marks from two graphs alone: a key's time summed over its nodes in each graph; more than
 * minRelative and minShare of the graph slower or faster, a key one graph lacks added or removed.
 * One call a side holds no noise estimate: the bounds stand in for one (docs/diff.md).
 */
export function changesBetweenGraphs(
  base: DagModel,
  next: DagModel,
  bounds: GraphChangeBounds = DEFAULT_GRAPH_CHANGE_BOUNDS,
): DagComparison {
  const timeByKey = (m: DagModel) => {
    const out = new Map<string, number>();
    for (const n of m.nodes) out.set(nodeKey(n), (out.get(nodeKey(n)) ?? 0) + durationOf(n));
    return out;
  };
  const [a, b] = [timeByKey(base), timeByKey(next)];
  const total = (t: Map<string, number>) => [...t.values()].reduce((x, y) => x + y, 0);
  const least = bounds.minShare * Math.max(total(a), total(b));
  const changeOf = (n: DagNodeModel): NodeChange => {
    const key = nodeKey(n);
    const [was, is] = [a.get(key), b.get(key)];
    if (was === undefined) return { mark: "added", relative: null };
    if (is === undefined) return { mark: "removed", relative: null };
    const relative = was > 0 ? is / was - 1 : null;
    const mark: ChangeMark =
      Math.abs(is - was) < least || relative === null
        ? "same"
        : relative > bounds.minRelative
          ? "slower"
          : relative < -bounds.minRelative
            ? "faster"
            : "same";
    return { mark, relative };
  };
  return withChanges(
    base,
    next,
    changeOf,
    `one graph a side, no noise estimate: a change beyond ±${(bounds.minRelative * 100).toFixed(0)}% and ${(bounds.minShare * 100).toFixed(0)}% of the graph counts`,
  );
}

const durationOf = (n: DagNodeModel) => n.metrics.duration ?? 0;

/** A folded node's change: its members' when they agree, else "mixed". */
export function foldedChange(
  node: DagNodeModel,
  changes: ReadonlyMap<string, NodeChange>,
): NodeChange | undefined {
  if (!node.members) return changes.get(node.id);
  const marks = new Set(node.members.map((m) => changes.get(m)?.mark));
  const only = marks.size === 1 ? [...marks][0] : undefined;
  return { mark: only ?? "mixed", relative: null };
}

/** The diff page's two graphs, marked by the diff's tensors section. */
export function comparisonFromDiffPage(page: DiffPageData): DagComparison {
  const tensors = page.diff.sections.find((s) => s.name === "tensors");
  if (!tensors)
    throw new EmptyModelError(
      "The diff compared no operators (a run without operator events: see 'not compared' below), so there is no graph to colour.",
    );
  const base = dagModelFromFrames(page.base.frames, page.base.mainGraphSpanId);
  const next = dagModelFromFrames(page.new.frames, page.new.mainGraphSpanId);
  return changesFromDiff(base, next, tensors.rows);
}

export interface FrameComparisonOptions extends GraphChangeBounds {
  /** the refId of the base query; the other trace is the new one */
  baseRefId: string;
  /** the graph shown on each side; the default graph when null */
  baseGraphId?: string | null;
  nextGraphId?: string | null;
}

/** The panel's comparison: two trace frames (queries), the base one by its refId. */
export function comparisonFromFrames(
  frames: readonly FrameLike[],
  options: FrameComparisonOptions,
): DagComparison {
  const traces = frames.filter(isTraceFrame);
  const base = traces.find((f) => f.refId === options.baseRefId);
  const next = traces.find((f) => f !== base);
  if (traces.length < 2 || !base || !next)
    throw new NoUsableFrameError(
      `Comparing needs two traces, one from the query ${options.baseRefId} (the base) and one from another query (the new run); ` +
        `the panel got ${traces.length} trace${traces.length === 1 ? "" : "s"}` +
        (traces.length > 0 ? ` from ${traces.map((f) => f.refId ?? "?").join(", ")}` : "") +
        ". Add a second Tempo query with the other trace ID, or set the base query.",
    );
  return changesBetweenGraphs(
    dagModelFromFrames([base], options.baseGraphId ?? null),
    dagModelFromFrames([next], options.nextGraphId ?? null),
    options,
  );
}
