// SPDX-License-Identifier: Apache-2.0
// The shape every span set profinfer exports must have, checked on what a real OTLP receiver got
// (docs/spans.md "The traces"): one root per trace; a request's trace is its root span and one
// step span per llama_decode call it took part in, nothing else; a call's trace has llama_decode
// at its root; each step links to its call's llama_decode span, and each llama_decode span links
// to every step it served, each link pointing at a span that arrived.
import assert from "node:assert/strict";
import * as C from "@profinfer/contract";
import type { ReceivedSpan } from "./otlpCollector.js";

export interface TraceShape {
  /** the root span of each request's trace */
  requests: ReceivedSpan[];
  /** the llama_decode span of each call's trace */
  calls: ReceivedSpan[];
  /** trace id -> its spans */
  traces: Map<string, ReceivedSpan[]>;
  byId: Map<string, ReceivedSpan>;
}

export const isStepSpan = (s: ReceivedSpan): boolean =>
  (C.STEP_SPAN_NAMES as readonly string[]).includes(s.name);
export const isRequestSpan = (s: ReceivedSpan): boolean =>
  s.attributes[C.ATTR_GEN_AI_OPERATION_NAME] !== undefined;

/** An int attribute of a received span, as a number. */
export const intOf = (s: ReceivedSpan, key: string): number => {
  const a = s.attributes[key];
  assert.ok(a && a.type === "int", `${s.name}: ${key} is an int`);
  return Number(a.value);
};

export function assertTraceShape(spans: readonly ReceivedSpan[]): TraceShape {
  const byId = new Map(spans.map((s) => [s.spanId, s]));
  assert.equal(byId.size, spans.length, "span ids are unique");
  const traces = new Map<string, ReceivedSpan[]>();
  for (const s of spans) traces.set(s.traceId, [...(traces.get(s.traceId) ?? []), s]);
  const requests: ReceivedSpan[] = [];
  const calls: ReceivedSpan[] = [];
  for (const [traceId, list] of traces) {
    const roots = list.filter((s) => s.parentSpanId === "");
    assert.equal(roots.length, 1, `trace ${traceId}: one root span`);
    const root = roots[0]!;
    if (isRequestSpan(root)) {
      requests.push(root);
      for (const s of list) {
        if (s === root) continue;
        assert.ok(isStepSpan(s), `a request's trace holds steps only, not ${s.name}`);
        assert.equal(s.parentSpanId, root.spanId, "a step is a child of its request's root");
        assert.ok(s.startNs >= root.startNs && s.endNs <= root.endNs, "it nests in the request");
      }
      assert.equal(list.length - 1, intOf(root, C.ATTR_REQUEST_STEPS), "one step per call");
    } else {
      assert.equal(root.name, C.SPAN_TOKEN, `trace ${traceId}: a call's, llama_decode at its root`);
      calls.push(root);
      assert.ok(list.every((s) => !isStepSpan(s) && !isRequestSpan(s)));
    }
  }
  for (const step of spans.filter(isStepSpan)) {
    assert.equal(step.links.length, 1, "a step links to its call");
    const link = step.links[0]!;
    const call = byId.get(link.spanId);
    assert.ok(call && call.name === C.SPAN_TOKEN, "the call's llama_decode span arrived");
    assert.equal(call.traceId, link.traceId);
    assert.notEqual(call.traceId, step.traceId, "in a trace of its own");
    assert.equal(intOf(call, C.ATTR_TOKEN_SEQ), intOf(step, C.ATTR_TOKEN_SEQ));
    assert.deepEqual([step.startNs, step.endNs], [call.startNs, call.endNs], "the call's time");
    const back = call.links.filter((l) => l.spanId === step.spanId);
    assert.equal(back.length, 1, "the call links back to the step");
    assert.equal(back[0]!.traceId, step.traceId);
  }
  for (const call of calls) {
    assert.equal(call.links.length, intOf(call, C.ATTR_TOKEN_REQUESTS), "a link per request");
    let tokens = 0;
    for (const link of call.links) {
      const step = byId.get(link.spanId);
      assert.ok(step && isStepSpan(step), "each link points at a step that arrived");
      assert.equal(step.traceId, link.traceId);
      assert.equal(step.links[0]!.spanId, call.spanId);
      assert.equal(link.attributes[C.ATTR_STEP_KIND]!.value, step.name);
      tokens += Number(link.attributes[C.ATTR_STEP_TOKENS]!.value);
    }
    assert.equal(tokens, intOf(call, C.ATTR_TOKEN_N_TOKENS), "its steps hold its tokens");
  }
  return { requests, calls, traces, byId };
}
