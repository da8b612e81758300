// SPDX-License-Identifier: Apache-2.0
// Nodes: the op kind's outline filled with the metric's colour, the op and the tensor's name on
// it; a folded block has a heavier outline and its member count.
import React, { memo } from "react";
import { textOn, type ColorScale } from "../../data/colorScale.js";
import type { CriticalPath } from "../../data/criticalPath.js";
import type { DagNodeModel } from "../../data/dagModel.js";
import type { ViewTheme } from "../theme.js";
import type { NodeBox } from "./layout.js";
import { shapePath } from "./shapes.js";

function DagNode({
  node,
  box,
  fill,
  critical,
  theme,
}: {
  node: DagNodeModel;
  box: NodeBox;
  fill: string;
  critical: boolean;
  theme: ViewTheme;
}) {
  const ink = textOn(fill);
  const folded = Boolean(node.members);
  return (
    <g
      data-testid="profdag-node"
      data-node-id={node.id}
      data-kind={node.kind}
      data-critical={critical ? "true" : undefined}
      data-folded={node.members ? String(node.members.length) : undefined}
      transform={`translate(${box.x},${box.y})`}
      style={{ cursor: "default" }}
    >
      <path
        d={shapePath(node.kind, box.width, box.height)}
        fill={fill}
        stroke={critical ? theme.highlight : folded ? theme.text : theme.border}
        strokeWidth={critical ? 3 : folded ? 2 : 1}
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
  path: CriticalPath | null;
  theme: ViewTheme;
}

/** memo: a hover re-renders ProfDag, and redrawing every node for it would lag */
export const DagNodes = memo(function DagNodes({
  nodes,
  boxes,
  scale,
  colorBy,
  path,
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
          critical={path?.nodes.has(n.id) ?? false}
          theme={theme}
        />
      ))}
    </g>
  );
});
