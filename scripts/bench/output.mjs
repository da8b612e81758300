// SPDX-License-Identifier: Apache-2.0
// What the bench prints and keeps: Markdown tables, the numbers in them, and the files under
// test-output/ (each section's lines as .md, its measurements as .json).
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { repoRoot } from "./harness.mjs";

const outDir = join(repoRoot, "test-output");

// an empty cell is one space wide, like the cells of a hand-written table
const tableRow = (cells) => `|${cells.map((c) => (c === "" ? " " : ` ${c} `)).join("|")}|`;

/** a Markdown table: the header, its alignment (the first `leftColumns` left, the rest right), the rows */
export function table(header, rows, { leftColumns = 1 } = {}) {
  const alignment = header.map((_, i) => (i < leftColumns ? "---" : "---:"));
  return [header, alignment, ...rows].map(tableRow);
}

/** `x` with `digits` decimals and a percent sign */
export const percent = (x, digits) => `${x.toFixed(digits)}%`;

/** a [low, high] pair as "low .. high" */
export const span = (pair, digits) => pair.map((x) => x.toFixed(digits)).join(" .. ");

/** "-" for a value not measured (null), else `format(x)` */
export const orDash = (x, format) => (x === null ? "-" : format(x));

/** test-output/NAME.json (the measurements) and NAME.md (the lines printed) */
export function writeResults(name, data, lines) {
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, `${name}.json`), JSON.stringify(data, null, 2));
  writeFileSync(join(outDir, `${name}.md`), lines.join("\n") + "\n");
}
