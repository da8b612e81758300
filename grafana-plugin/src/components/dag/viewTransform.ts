// SPDX-License-Identifier: Apache-2.0
// Where the graph sits in its viewport: a scale and an offset, and the pure steps that change
// them (fit, wheel zoom). The hooks in this folder apply the result to the DOM.
import type { DagLayout } from "./layout.js";

export interface ViewTransform {
  k: number;
  x: number;
  y: number;
}

/** below this zoom labels are hidden (they would be unreadable) */
export const LABEL_ZOOM = 0.4;
const MIN_FIT_ZOOM = 0.55;
const MAX_FIT_ZOOM = 1.2;
const MIN_ZOOM = 0.02;
const MAX_ZOOM = 8;
/** zoom factor per pixel of wheel delta, as an exponent so that in and out steps cancel */
const WHEEL_ZOOM_RATE = 0.0015;

export function fitTransform(layout: DagLayout, width: number, height: number): ViewTransform {
  // the whole graph when its labels stay readable, else readable from the top (pan for the rest)
  const fitWidth = width / Math.max(1, layout.width);
  const fitBoth = Math.min(fitWidth, height / Math.max(1, layout.height));
  const k = Math.min(MAX_FIT_ZOOM, fitWidth, Math.max(fitBoth, MIN_FIT_ZOOM));
  return {
    k,
    x: (width - layout.width * k) / 2,
    y: Math.max(0, (height - layout.height * k) / 2),
  };
}

/** zooms by a wheel step, keeping the point (px, py) of the viewport under the pointer */
export function zoomAt(t: ViewTransform, px: number, py: number, deltaY: number): ViewTransform {
  const k = Math.min(MAX_ZOOM, Math.max(MIN_ZOOM, t.k * Math.exp(-deltaY * WHEEL_ZOOM_RATE)));
  return { k, x: px - ((px - t.x) * k) / t.k, y: py - ((py - t.y) * k) / t.k };
}
