// SPDX-License-Identifier: Apache-2.0
// Drag to pan. The pointer is captured on press, so a drag that leaves the svg still pans.
import { useEffect, type RefObject } from "react";
import type { ViewTransformHandle } from "./useViewTransform.js";

export function usePanning(svgRef: RefObject<SVGSVGElement | null>, view: ViewTransformHandle) {
  useEffect(() => {
    const svg = svgRef.current;
    if (!svg) return;
    let drag: { x: number; y: number; tx: number; ty: number } | null = null;
    const onDown = (e: PointerEvent) => {
      const t = view.get();
      drag = { x: e.clientX, y: e.clientY, tx: t.x, ty: t.y };
      svg.setPointerCapture(e.pointerId);
    };
    const onMove = (e: PointerEvent) => {
      if (!drag) return;
      view.set({ ...view.get(), x: drag.tx + e.clientX - drag.x, y: drag.ty + e.clientY - drag.y });
    };
    const onUp = () => (drag = null);
    svg.addEventListener("pointerdown", onDown);
    svg.addEventListener("pointermove", onMove);
    svg.addEventListener("pointerup", onUp);
    return () => {
      svg.removeEventListener("pointerdown", onDown);
      svg.removeEventListener("pointermove", onMove);
      svg.removeEventListener("pointerup", onUp);
    };
  }, [svgRef, view]);
}
