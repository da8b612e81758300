// SPDX-License-Identifier: Apache-2.0
// `profinfer diff BASE NEW --json`: two runs compared figure by figure.

/** Whether a change is more than the run-to-run noise (see docs/diff.md for the method). */
export type DiffVerdict = "slower" | "faster" | "same" | "too few calls" | "added" | "removed";

export interface DiffRow {
  /** what is compared: "mul_mat", "layer 3", "ffn_out-3 (mul_mat)", "decode call" */
  name: string;
  /** its unit: "ms per decode call", "ms per prompt token" */
  unit: string;
  /** means over the calls, in `unit`; null when the run has none */
  base: number | null;
  new: number | null;
  /** new - base (the contribution to the total change), in `unit` */
  change: number;
  /** new / base - 1; null when base is 0 or absent */
  relative: number | null;
  /** the interval of new / base - 1 the method gives (its confidence), null when not computed */
  interval: [number, number] | null;
  verdict: DiffVerdict;
  /** the calls each side's mean is over */
  calls: [number, number];
}

export interface DiffSection {
  /** "phases", "operators", "barrier wait", "layers", "tensors" */
  name: string;
  /** sorted by |change|, largest first */
  rows: DiffRow[];
  /** present in NEW only, or in BASE only (by name) */
  added: string[];
  removed: string[];
}

export interface DiffReport {
  format: "profinfer-diff";
  version: 1;
  base: DiffRunInfo;
  new: DiffRunInfo;
  /** how changes are judged against noise */
  method: {
    name: string;
    confidence: number;
    /** changes smaller than this share of the base are "same" whatever the test says */
    minRelative: number;
    resamples: number;
    minCalls: number;
    /** changes per decode call below this share of the decode call's time are "same" */
    minShare: number;
  };
  sections: DiffSection[];
  /** what could not be compared, and why */
  notCompared: string[];
}

export interface DiffRunInfo {
  dir: string;
  command: string[];
  level: string;
  model: string | null;
  decodeCalls: number;
  prefillCalls: number;
}
