// SPDX-License-Identifier: Apache-2.0
// Wheel zoom around the pointer.
import { useEffect, type RefObject } from "react";
import type { ViewTransformHandle } from "./useViewTransform.js";
import { zoomAt } from "./viewTransform.js";

export function useZoom(svgRef: RefObject<SVGSVGElement | null>, view: ViewTransformHandle) {
  useEffect(() => {
    const svg = svgRef.current;
    if (!svg) return;
    const onWheel = (e: WheelEvent) => {
      // the page must not scroll while the graph zooms
      e.preventDefault();
      const rect = svg.getBoundingClientRect();
      view.set(zoomAt(view.get(), e.clientX - rect.left, e.clientY - rect.top, e.deltaY));
    };
    // a listener of our own: React's onWheel is passive, so it could not prevent the scroll
    svg.addEventListener("wheel", onWheel, { passive: false });
    return () => svg.removeEventListener("wheel", onWheel);
  }, [svgRef, view]);
}
