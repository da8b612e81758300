// SPDX-License-Identifier: Apache-2.0
// The svg of the graph: edges under nodes inside one viewport group, whose transform the pan and
// zoom hooks write (React never sets it, so a render does not undo a pan).
import React, { type MouseEventHandler, type RefObject } from "react";
import type { ColorScale } from "../../data/colorScale.js";
import type { CriticalPath } from "../../data/criticalPath.js";
import type { NodeChange } from "../../data/dagChange.js";
import type { DagModel } from "../../data/dagModel.js";
import type { ViewTheme } from "../theme.js";
import { DagEdges, EdgeArrowMarkers } from "./DagEdge.js";
import { DagNodes } from "./DagNode.js";
import type { DagLayout } from "./layout.js";
import { FAR_CLASS } from "./useViewTransform.js";

export interface DagGraphProps {
  svgRef: RefObject<SVGSVGElement | null>;
  viewportRef: RefObject<SVGGElement | null>;
  width: number;
  height: number;
  shown: DagModel;
  layout: DagLayout;
  scale: ColorScale;
  colorBy: string;
  changes: ReadonlyMap<string, NodeChange> | null;
  path: CriticalPath | null;
  highlightOp: string | null;
  theme: ViewTheme;
  onMouseMove: MouseEventHandler<SVGSVGElement>;
  onMouseLeave: MouseEventHandler<SVGSVGElement>;
}

export function DagGraph({
  svgRef,
  viewportRef,
  width,
  height,
  shown,
  layout,
  scale,
  colorBy,
  changes,
  path,
  highlightOp,
  theme,
  onMouseMove,
  onMouseLeave,
}: DagGraphProps) {
  return (
    <svg
      ref={svgRef}
      data-testid="profdag-svg"
      width={width}
      height={height}
      style={{ display: "block", background: theme.background, touchAction: "none" }}
      onMouseMove={onMouseMove}
      onMouseLeave={onMouseLeave}
    >
      <style>{`.${FAR_CLASS} text{display:none}`}</style>
      <defs>
        <EdgeArrowMarkers theme={theme} />
      </defs>
      <g ref={viewportRef}>
        <DagEdges edges={shown.edges} routes={layout.edges} path={path} theme={theme} />
        <DagNodes
          nodes={shown.nodes}
          boxes={layout.nodes}
          scale={scale}
          colorBy={colorBy}
          changes={changes}
          path={path}
          highlightOp={highlightOp}
          theme={theme}
        />
      </g>
    </svg>
  );
}
