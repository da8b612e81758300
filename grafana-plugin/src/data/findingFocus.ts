// SPDX-License-Identifier: Apache-2.0
// What the report shows when a finding is chosen: the graph of the call it names, its op's nodes
// outlined, and the DAG coloured by the metric that carries its evidence.
import type { Finding } from "@profinfer/contract";

export interface FindingFocus {
  /** the graph_compute span to show; null: the one shown already */
  graphId: string | null;
  /** the op to outline ("mul_mat"); null: none */
  op: string | null;
  /** the DAG node metric to colour by */
  colorMetric: string;
}

/** The node metric that shows each finding's evidence on the DAG (others: duration). */
const METRIC_OF: Partial<Record<Finding["id"], string>> = {
  "decode.memory-bound": "bandwidthShare",
  "barrier.wait": "barrierWait",
};

export function focusOfFinding(
  finding: Finding,
  graphSpanIds: Readonly<Record<string, string>>,
): FindingFocus {
  return {
    graphId: graphSpanIds[finding.id] ?? null,
    op: finding.where.op ?? null,
    colorMetric: METRIC_OF[finding.id] ?? "duration",
  };
}
