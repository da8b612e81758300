// SPDX-License-Identifier: Apache-2.0
// Edges: a polyline along dagre's route with an arrow head; critical-path edges stand out, loop
// edges of a folded block are dashed.
import React, { memo } from "react";
import type { CriticalPath } from "../../data/criticalPath.js";
import type { DagEdgeModel } from "../../data/dagModel.js";
import type { ViewTheme } from "../theme.js";
import type { EdgePath } from "./layout.js";

const ARROW_ID = "profdag-arrow";
const ARROW_ON_ID = "profdag-arrow-on";

function ArrowMarker({ id, color }: { id: string; color: string }) {
  return (
    <marker
      id={id}
      viewBox="0 0 10 10"
      refX="10"
      refY="5"
      markerWidth="6"
      markerHeight="6"
      orient="auto-start-reverse"
    >
      <path d="M0,0L10,5L0,10Z" fill={color} />
    </marker>
  );
}

/** the arrow heads DagEdge refers to, once per svg */
export function EdgeArrowMarkers({ theme }: { theme: ViewTheme }) {
  return (
    <>
      <ArrowMarker id={ARROW_ID} color={theme.edge} />
      <ArrowMarker id={ARROW_ON_ID} color={theme.highlight} />
    </>
  );
}

function DagEdge({
  edge,
  route,
  critical,
  theme,
}: {
  edge: DagEdgeModel;
  route: EdgePath | undefined;
  critical: boolean;
  theme: ViewTheme;
}) {
  const d = (route?.points ?? [])
    .map((q, i) => `${i === 0 ? "M" : "L"}${q.x.toFixed(1)},${q.y.toFixed(1)}`)
    .join("");
  return (
    <path
      d={d}
      data-testid="profdag-edge"
      data-source={edge.source}
      data-target={edge.target}
      data-critical={critical ? "true" : undefined}
      fill="none"
      stroke={critical ? theme.highlight : theme.edge}
      strokeWidth={critical ? 2.5 : 1}
      strokeDasharray={edge.loop ? "5 4" : undefined}
      markerEnd={`url(#${critical ? ARROW_ON_ID : ARROW_ID})`}
    />
  );
}

export interface DagEdgesProps {
  edges: DagEdgeModel[];
  routes: Map<string, EdgePath>;
  path: CriticalPath | null;
  theme: ViewTheme;
}

/** memo: a hover re-renders ProfDag, and redrawing thousands of edges for it would lag */
export const DagEdges = memo(function DagEdges({ edges, routes, path, theme }: DagEdgesProps) {
  return (
    <g>
      {edges.map((e) => (
        <DagEdge
          key={e.id}
          edge={e}
          route={routes.get(e.id)}
          critical={path?.edges.has(e.id) ?? false}
          theme={theme}
        />
      ))}
    </g>
  );
});
