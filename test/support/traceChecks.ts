// SPDX-License-Identifier: Apache-2.0
// The checks a traced llama.cpp run must pass whatever the build (shared libraries, one static
// executable, another release): token counts against the program's own timings, graphs and
// operators nested and on every worker thread, and the computed nodes against llama.cpp's own
// view of its graph (llama-eval-callback).
import assert from "node:assert/strict";
import type { Run } from "@profinfer/exporter";
import { NOT_COMPUTED, evalCallbackNodes } from "./evalCallback.js";

/** The CPU graphs whose operators were recorded. */
export function cpuGraphs(run: Run) {
  return run.graphRuns.filter((g) => g.fn === "cpu" && g.opsRecorded);
}

/**
 * llama.cpp's own count in a llama-completion (or an older llama-cli) run's timings: one prompt
 * evaluation of N tokens, then one eval run per further token. The run's prefill tokens and
 * decode calls must equal them.
 */
export function assertTokenCounts(run: Run, programOutput: string): void {
  const promptEval = /prompt eval time =\s+[\d.]+ ms \/\s+(\d+) tokens/.exec(programOutput);
  const evals = /\beval time =\s+[\d.]+ ms \/\s+(\d+) runs/.exec(programOutput);
  assert.ok(promptEval && evals, "the program printed its timings");
  const prefill = run.tokens.filter((t) => t.phase === "prefill");
  const decode = run.tokens.filter((t) => t.phase === "decode");
  assert.equal(decode.length, Number(evals[1]), "decode calls = llama.cpp's eval runs");
  assert.equal(
    prefill.reduce((a, t) => a + t.nTokens, 0),
    Number(promptEval[1]),
    "prefill tokens = llama.cpp's prompt tokens",
  );
  assert.ok(run.tokens.every((t) => t.ret !== null && t.ret === 0));
}

/**
 * Every CPU graph with operators: complete, inside its llama_decode call, every computed node
 * covered by an operator run, each operator on every worker thread and inside its graph, and no
 * two operators overlapping on a thread.
 */
export function assertGraphStructure(run: Run): void {
  const graphs = cpuGraphs(run);
  assert.ok(graphs.length >= run.tokens.length, "at least one CPU graph per llama_decode");
  for (const g of graphs) {
    assert.ok(g.complete, `graph ${g.id}: ${g.problems.join("; ")}`);
    const token = run.tokens.find((t) => t.seq === g.tokenSeq)!;
    assert.ok(
      g.startNs >= token.startNs && g.endNs <= token.endNs,
      "graphs nest inside their token",
    );
    const computed = g.snapshot!.dag.computed.length;
    const covered = g.ops.reduce((a, op) => a + 1 + (op.fusedWith?.length ?? 0), 0);
    assert.equal(covered, computed, "every computed node has an operator run");
    const nThreads = new Set(g.ops.flatMap((op) => op.threads.map((t) => t.tid))).size;
    for (const op of g.ops) {
      assert.equal(op.threads.length, nThreads, `${op.tensor.name} runs on every worker thread`);
      for (const t of op.threads)
        assert.ok(t.startNs >= g.startNs && t.endNs <= g.endNs, "ops nest inside their graph");
    }
    const byThread = new Map<number, [bigint, bigint][]>();
    for (const op of g.ops)
      for (const t of op.threads)
        byThread.set(t.tid, [...(byThread.get(t.tid) ?? []), [t.startNs, t.endNs]]);
    for (const intervals of byThread.values()) {
      intervals.sort((a, b) => (a[0] < b[0] ? -1 : 1));
      for (let i = 1; i < intervals.length; i++)
        assert.ok(intervals[i]![0] >= intervals[i - 1]![1], "operators do not overlap on a thread");
    }
  }
  assert.equal(run.drops?.total ?? 0, 0, "no events dropped");
}

/**
 * The last prefill's computed nodes, in order, with their op types and their first two sources,
 * equal the nodes llama-eval-callback printed (`programOutput`, its stdout and stderr). Returns
 * the prefill token, for further checks of the caller.
 */
export function assertMatchesEvalCallback(run: Run, programOutput: string) {
  const oracle = evalCallbackNodes(programOutput);
  assert.ok(oracle.length > 50, `llama-eval-callback printed ${oracle.length} nodes`);
  // the token the callback printed: the prompt's (last) prefill
  const token = run.tokens.filter((t) => t.phase === "prefill").at(-1)!;
  const nodes = token.graphs
    .filter((g) => g.fn === "cpu" && g.snapshot)
    .flatMap((g) =>
      g.snapshot!.dag.computed.map((i) => ({
        node: g.snapshot!.dag.nodes[i]!,
        dag: g.snapshot!.dag,
      })),
    );
  // llama.cpp prints UNARY and GLU nodes by their sub-op (SILU, SWIGLU); a name's leading space
  // (" (copy)" of an unnamed tensor) is lost in its output
  const ours = nodes.map(({ node }) => ({
    name: node.tensor.name.trim(),
    op: node.tensor.subOp ?? node.tensor.opName,
  }));
  const theirs = oracle.filter((n) => !NOT_COMPUTED.includes(n.op));
  assert.deepEqual(
    ours.map((n) => `${n.name}:${n.op}`),
    theirs.map((n) => `${n.name}:${n.op}`),
    "the computed nodes, in order, with their op types",
  );
  // DAG edges: each node's sources carry the names llama.cpp prints for it
  for (const [i, { node, dag }] of nodes.entries()) {
    const sourceNames = node.sources.map((s) =>
      (s.direct.kind === "node"
        ? dag.nodes[s.direct.index]!.tensor.name
        : dag.leaves[s.direct.index]!.tensor.name
      ).trim(),
    );
    // llama-eval-callback prints the first two sources of a node
    assert.deepEqual(sourceNames.slice(0, 2), theirs[i]!.sources, `sources of ${node.tensor.name}`);
  }
  return token;
}
