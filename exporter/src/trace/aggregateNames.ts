// SPDX-License-Identifier: Apache-2.0
// The operator type of an in-kernel aggregate key, as stats.json and the metrics' `op` label name
// it: one place for the live metrics (the recorder's probes) and a run folder's aggregates note.
import { AGG_UNPROBED, stepKeyParts } from "../abi/constants.js";
import { UNPROBED_OP } from "@profinfer/contract";

/** What names the keys: the probed functions by index, and the build's op name tables. */
export interface AggregateNaming {
  operatorFunctions: readonly { index: number; op: string }[];
  opNames?:
    { ops: readonly string[]; unary: readonly string[]; glu: readonly string[] } | undefined;
}

/**
 * The `op` of an aggregate key: `unprobed`, a probed function's op, or a step probe's key
 * (bpf/profinfer.h PI_AGG_STEP: the step's first op, its unary or glu kind, and the op fused after
 * it) named as stats.json names op types ("unary:silu", "rms_norm+mul").
 */
export function aggregateOpName(func: number, naming: AggregateNaming): string {
  if (func === AGG_UNPROBED) return UNPROBED_OP;
  const step = stepKeyParts(func);
  if (!step) {
    return naming.operatorFunctions.find((x) => x.index === func)?.op ?? `func${func}`;
  }
  const names = naming.opNames;
  const opName = (i: number) => names?.ops[i]?.toLowerCase() ?? `op${i}`;
  let label = opName(step.op);
  if (step.kind !== null) {
    const table = label === "unary" ? names?.unary : names?.glu;
    label += `:${table?.[step.kind]?.toLowerCase() ?? step.kind}`;
  }
  if (step.second !== null) label += `+${opName(step.second)}`;
  return label;
}
