// SPDX-License-Identifier: Apache-2.0
// Colour scales of both views, on d3-scale and d3-scale-chromatic's perceptual schemes.
import { scaleLinear, scaleSequential, scaleSequentialLog } from "d3-scale";
import {
  interpolateInferno,
  interpolateMagma,
  interpolatePlasma,
  interpolateTurbo,
  interpolateViridis,
  interpolateYlOrRd,
} from "d3-scale-chromatic";

export type ScaleType = "linear" | "log";
export type SchemeName = "viridis" | "inferno" | "magma" | "plasma" | "turbo" | "YlOrRd";
export const SCHEMES: SchemeName[] = ["viridis", "inferno", "magma", "plasma", "turbo", "YlOrRd"];

const INTERPOLATORS: Record<SchemeName, (t: number) => string> = {
  viridis: interpolateViridis,
  inferno: interpolateInferno,
  magma: interpolateMagma,
  plasma: interpolatePlasma,
  turbo: interpolateTurbo,
  YlOrRd: interpolateYlOrRd,
};

export interface ColorScale {
  type: ScaleType;
  domain: [number, number];
  color: (value: number | undefined) => string;
  /** values at which the legend puts ticks */
  ticks: number[];
  /** the colour at position t in [0, 1] of the legend bar */
  at: (t: number) => string;
}

export const NO_VALUE_COLOR = "#8e8e8e";

/** Powers of ten inside [lo, hi], thinned to at most five; the ends when there are none. */
function logTicks(lo: number, hi: number): number[] {
  const ticks: number[] = [];
  for (let e = Math.ceil(Math.log10(lo)); e <= Math.floor(Math.log10(hi)); e++) ticks.push(10 ** e);
  if (ticks.length < 2) return [lo, hi];
  const step = Math.ceil(ticks.length / 5);
  return ticks.filter((_t, i) => i % step === 0);
}

/** A scale over the values; log uses the smallest positive value as its low end. */
export function makeColorScale(
  values: readonly number[],
  type: ScaleType,
  scheme: SchemeName,
): ColorScale {
  const interpolate = INTERPOLATORS[scheme] ?? interpolateViridis;
  const finite = values.filter((v) => Number.isFinite(v));
  let hi = finite.length ? Math.max(...finite) : 1;
  if (type === "log") {
    const positive = finite.filter((v) => v > 0);
    let lo = positive.length ? Math.min(...positive) : 1;
    if (hi <= lo) hi = lo * 10;
    if (!(lo > 0)) lo = hi / 10;
    const s = scaleSequentialLog(interpolate).domain([lo, hi]).clamp(true);
    return {
      type,
      domain: [lo, hi],
      color: (v) => (v === undefined || !Number.isFinite(v) ? NO_VALUE_COLOR : s(Math.max(v, lo))),
      ticks: logTicks(lo, hi),
      at: (t) => interpolate(t),
    };
  }
  const lo = finite.length ? Math.min(0, ...finite) : 0;
  if (hi <= lo) hi = lo + 1;
  const s = scaleSequential(interpolate).domain([lo, hi]).clamp(true);
  return {
    type,
    domain: [lo, hi],
    color: (v) => (v === undefined || !Number.isFinite(v) ? NO_VALUE_COLOR : s(v)),
    ticks: scaleLinear().domain([lo, hi]).ticks(4),
    at: (t) => interpolate(t),
  };
}

/**
 * Distinct colours for categories (backends), told apart without a legend of shades: d3's
 * Tableau 10 palette, which is made for that.
 */
export const CATEGORY_COLORS = [
  "#4e79a7",
  "#f28e2c",
  "#e15759",
  "#76b7b2",
  "#59a14f",
  "#edc949",
  "#af7aa1",
  "#ff9da7",
  "#9c755f",
  "#bab0ab",
];

/** A scale over category indices 0..n-1: each its own colour. */
export function categoryScale(n: number): ColorScale {
  const color = (v: number | undefined) =>
    v === undefined || !Number.isInteger(v) || v < 0
      ? NO_VALUE_COLOR
      : CATEGORY_COLORS[v % CATEGORY_COLORS.length]!;
  return {
    type: "linear",
    domain: [0, Math.max(0, n - 1)],
    color,
    ticks: Array.from({ length: n }, (_, i) => i),
    at: (t) => color(Math.round(t * Math.max(0, n - 1))),
  };
}

/** A readable text colour on a background colour ("rgb(r, g, b)" or "#rrggbb"). */
export function textOn(background: string): string {
  let r = 128;
  let g = 128;
  let b = 128;
  const rgb = /rgb\((\d+),\s*(\d+),\s*(\d+)\)/.exec(background);
  const hex = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(background);
  if (rgb) [r, g, b] = [Number(rgb[1]), Number(rgb[2]), Number(rgb[3])];
  else if (hex) [r, g, b] = [parseInt(hex[1]!, 16), parseInt(hex[2]!, 16), parseInt(hex[3]!, 16)];
  return 0.299 * r + 0.587 * g + 0.114 * b > 150 ? "#111" : "#fff";
}

export function formatValue(v: number | undefined, unit: string): string {
  if (v === undefined || !Number.isFinite(v)) return "-";
  if (Number.isInteger(v) && Math.abs(v) < 1e6)
    return unit && unit !== "ratio" ? `${v} ${unit}` : String(v);
  if (unit === "ratio") return v < 10 ? v.toFixed(3) : v.toFixed(1);
  const a = Math.abs(v);
  const s =
    a !== 0 && (a < 0.001 || a >= 1e6)
      ? v.toExponential(2)
      : a < 1
        ? v.toFixed(4)
        : a < 100
          ? v.toFixed(3)
          : v.toFixed(0);
  return unit ? `${s} ${unit}` : s;
}
