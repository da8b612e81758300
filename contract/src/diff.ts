// SPDX-License-Identifier: Apache-2.0
// `profinfer diff BASE NEW --json`: two runs compared figure by figure; and the data of the page
// `--html` writes (the two runs' frames beside the comparison).
import type { Finding } from "./findings.js";
import type { RunFrames } from "./report.js";

/** Whether a change is more than the run-to-run noise (see docs/diff.md for the method). */
export type DiffVerdict =
  "slower" | "faster" | "same" | "too few calls" | "too few requests" | "added" | "removed";

export interface DiffRow {
  /** what is compared: "mul_mat", "layer 3", "ffn_out-3 (mul_mat)", "decode call", "TTFT" */
  name: string;
  /** its unit: "ms per decode call", "ms per prompt token", "ms per request" */
  unit: string;
  /** means over the samples (calls or requests), in `unit`; null when the run has none */
  base: number | null;
  new: number | null;
  /** new - base (the contribution to the total change), in `unit` */
  change: number;
  /** new / base - 1; null when base is 0 or absent */
  relative: number | null;
  /** the interval of new / base - 1 the method gives (its confidence), null when not computed */
  interval: [number, number] | null;
  /**
   * slower / faster: in the sense of the figure (tokens per second higher is faster, time
   * higher is slower)
   */
  verdict: DiffVerdict;
  /** the samples each side's mean is over: llama_decode calls, or requests (DiffSection.samples) */
  calls: [number, number];
}

export interface DiffSection {
  /** "phases", "requests", "operators", "barrier wait", "layers", "tensors", "threads", "graph nodes" */
  name: string;
  /** what one sample is: a llama_decode call, or a request */
  samples: "calls" | "requests";
  /** sorted by |change|, largest first; requests keep TTFT, TPOT, tokens/s (three units) in order */
  rows: DiffRow[];
  /** present in NEW only, or in BASE only (by name) */
  added: string[];
  removed: string[];
}

/** The findings (stats.json `findings`) of both runs, matched by id. */
export interface DiffFindings {
  /** in NEW only */
  appeared: Finding[];
  /** in BASE only */
  disappeared: Finding[];
  /** in both, each side's own (its title and evidence) */
  both: { id: string; base: Finding; new: Finding }[];
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
    /** fewer samples (calls, requests) than this on a side: no verdict */
    minCalls: number;
    /** changes per decode call below this share of the decode call's time are "same" */
    minShare: number;
  };
  sections: DiffSection[];
  findings: DiffFindings;
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
  /** requests that ran whole (their figures are compared) */
  requests: number;
}

/** What `profinfer diff --html` embeds: the comparison and each run's main decode graph. */
export interface DiffPageData {
  format: "profinfer-diff-page";
  version: 1;
  title: string;
  diff: DiffReport;
  base: RunFrames;
  new: RunFrames;
}

/**
 * The diff's defaults (docs/diff.md): a 99% interval from 2000 resamples, 5 samples a side at
 * least, and a change counts beyond ±15% (two quiet runs of one command drift by up to about 10%
 * on shared machines) and 1% of the decode call (small operators differ by a few µs between runs,
 * more than each run's own calls vary).
 */
export const DIFF_DEFAULTS = {
  confidence: 0.99,
  minRelative: 0.15,
  resamples: 2000,
  minCalls: 5,
  minShare: 0.02,
} as const;

/** ggml's name for a node its graph builder left unnamed */
export const UNNAMED_TENSOR = /^(node_\d+)?$/;

/**
 * A tensor's key in the diff's tensors section and in a comparison of two graphs: `name (op)`, or
 * for a node ggml left unnamed its op and layer (its name, node_<index>, shifts with every node
 * before it, so two graphs' unnamed names do not match). `op` as users type it ("mul_mat").
 */
export function diffTensorKey(name: string, op: string, layer: number | null): string {
  return UNNAMED_TENSOR.test(name)
    ? `unnamed (${op}) in ${layer === null ? "(no layer)" : `layer ${layer}`}`
    : `${name} (${op})`;
}
