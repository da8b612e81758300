// SPDX-License-Identifier: Apache-2.0
// Which node the pointer is over, and where in the svg: one listener on the svg, which finds the
// node by the data-node-id DagNode puts on it, instead of a pair of handlers on every node.
import { useCallback, useState, type MouseEvent as ReactMouseEvent } from "react";

export interface NodeHover {
  id: string;
  /** the pointer, relative to the svg's top left corner */
  x: number;
  y: number;
}

export function useNodeHover() {
  const [hover, setHover] = useState<NodeHover | null>(null);
  const onMouseMove = useCallback((e: ReactMouseEvent) => {
    const target = (e.target as Element).closest("[data-node-id]");
    const rect = (e.currentTarget as Element).getBoundingClientRect();
    if (!target) return setHover(null);
    setHover({
      id: target.getAttribute("data-node-id")!,
      x: e.clientX - rect.left,
      y: e.clientY - rect.top,
    });
  }, []);
  const onMouseLeave = useCallback(() => setHover(null), []);
  return { hover, onMouseMove, onMouseLeave };
}
