// SPDX-License-Identifier: Apache-2.0
// The pan and zoom of the graph live in a ref and go straight to the viewport's transform
// attribute: a wheel or drag step of a graph with a thousand nodes then costs one attribute
// write, not a React render.
import { useMemo, useRef, type RefObject } from "react";
import { LABEL_ZOOM, type ViewTransform } from "./viewTransform.js";

/** the svg's class while zoomed out too far for labels; DagGraph's stylesheet hides them */
export const FAR_CLASS = "profdag-far";

export interface ViewTransformHandle {
  get(): ViewTransform;
  set(transform: ViewTransform): void;
}

export function useViewTransform(
  svgRef: RefObject<SVGSVGElement | null>,
  viewportRef: RefObject<SVGGElement | null>,
): ViewTransformHandle {
  const transform = useRef<ViewTransform>({ k: 1, x: 0, y: 0 });
  return useMemo(
    () => ({
      get: () => transform.current,
      set: (t) => {
        transform.current = t;
        viewportRef.current?.setAttribute("transform", `translate(${t.x},${t.y}) scale(${t.k})`);
        svgRef.current?.classList.toggle(FAR_CLASS, t.k < LABEL_ZOOM);
      },
    }),
    [svgRef, viewportRef],
  );
}
