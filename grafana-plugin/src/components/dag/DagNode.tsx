// SPDX-License-Identifier: Apache-2.0
// Nodes: the op kind's outline filled with the metric's colour (or, comparing two graphs, its
// change's), the op and the tensor's name on it; a folded block has a heavier outline and its
// member count.
import React, { memo } from "react";
import { textOn, type ColorScale } from "../../data/colorScale.js";
import type { CriticalPath } from "../../data/criticalPath.js";
import type { NodeChange } from "../../data/dagChange.js";
import type { DagNodeModel } from "../../data/dagModel.js";
import type { ViewTheme } from "../theme.js";
import type { NodeBox } from "./layout.js";
import { changeStyle } from "./changeStyle.js";
import { shapePath } from "./shapes.js";

function DagNode({
  node,
  box,
  fill: metricFill,
  change,
  critical,
  highlighted,
  theme,
}: {
  node: DagNodeModel;
  box: NodeBox;
  fill: string;
  change: NodeChange | undefined;
  critical: boolean;
  highlighted: boolean;
  theme: ViewTheme;
}) {
  const folded = Boolean(node.members);
  const marked = change ? changeStyle(change.mark, theme) : null;
  const fill = marked?.fill ?? metricFill;
  const ink = textOn(fill);
  const stroke =
    critical || highlighted
      ? theme.highlight
      : (marked?.strokeWidth ?? 0) > 1
        ? marked!.stroke
        : folded
          ? theme.text
          : theme.border;
  const strokeWidth = highlighted
    ? 4
    : critical
      ? 3
      : Math.max(marked?.strokeWidth ?? 1, folded ? 2 : 1);
  return (
    <g
      data-testid="profdag-node"
      data-node-id={node.id}
      data-kind={node.kind}
      data-critical={critical ? "true" : undefined}
      data-highlighted={highlighted ? "true" : undefined}
      data-folded={node.members ? String(node.members.length) : undefined}
      data-change={change?.mark}
      transform={`translate(${box.x},${box.y})`}
      style={{ cursor: "default" }}
    >
      <path
        d={shapePath(node.kind, box.width, box.height)}
        fill={fill}
        stroke={stroke}
        strokeWidth={strokeWidth}
        strokeDasharray={highlighted ? "6 3" : marked?.dash}
      />
      <text y={-3} textAnchor="middle" fill={ink} fontSize={10} fontWeight={600}>
        {node.op}
      </text>
      <text y={11} textAnchor="middle" fill={ink} fontSize={10}>
        {node.members ? `${node.label} x${node.members.length}` : node.label}
      </text>
    </g>
  );
}

export interface DagNodesProps {
  nodes: DagNodeModel[];
  boxes: Map<string, NodeBox>;
  scale: ColorScale;
  /** the node metric the fill colour is read from */
  colorBy: string;
  /** comparing two graphs: each drawn node's change, which fills it instead of the metric */
  changes: ReadonlyMap<string, NodeChange> | null;
  path: CriticalPath | null;
  /** outline the nodes of this op */
  highlightOp: string | null;
  theme: ViewTheme;
}

/** memo: a hover re-renders ProfDag, and redrawing every node for it would lag */
export const DagNodes = memo(function DagNodes({
  nodes,
  boxes,
  scale,
  colorBy,
  changes,
  path,
  highlightOp,
  theme,
}: DagNodesProps) {
  return (
    <g>
      {nodes.map((n) => (
        <DagNode
          key={n.id}
          node={n}
          box={boxes.get(n.id)!}
          fill={scale.color(n.metrics[colorBy])}
          change={changes?.get(n.id)}
          critical={path?.nodes.has(n.id) ?? false}
          highlighted={highlightOp !== null && n.op === highlightOp}
          theme={theme}
        />
      ))}
    </g>
  );
});
