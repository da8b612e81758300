// SPDX-License-Identifier: Apache-2.0
// The request model's rules, call by call, on batches shaped as llama-server, llama-batched,
// llama-completion and a speculative decoder fill them (docs/trace-model.md "Requests").
import assert from "node:assert/strict";
import { test } from "node:test";
import { BatchFlag } from "../abi/constants.js";
import type { BatchSequence } from "../abi/events.js";
import { RequestTracker, buildRequests, recordingCutOff } from "./requests.js";
import type { Token } from "./types.js";

const SERVER = BatchFlag.POS | BatchFlag.SEQ_ID | BatchFlag.OUTPUTS;
/** [seq id, tokens, first position, outputs] */
type Part = [number, number, number, number];

/** Calls 1 ms apart, each `durationMs` long, from parts per call. */
function calls(spec: { parts: Part[]; flags?: number; durationMs?: number; gapMs?: number }[]) {
  let now = 1_000_000_000n;
  return spec.map((c, i): Token => {
    const seqs: BatchSequence[] = c.parts.map(([seqId, nTokens, posMin, nOutputs]) => ({
      seqId,
      nTokens,
      posMin,
      posMax: posMin < 0 ? -1 : posMin + nTokens - 1,
      nOutputs,
    }));
    const nTokens = seqs.reduce((n, s) => n + s.nTokens, 0);
    now += BigInt((c.gapMs ?? 1) * 1e6);
    const startNs = now;
    now += BigInt((c.durationMs ?? 2) * 1e6);
    return {
      seq: i + 1,
      tgid: 100,
      tid: 100,
      ctx: 0xc0n,
      phase: "decode",
      nTokens,
      startNs,
      endNs: now,
      ret: 0,
      opsSampled: false,
      graphs: [],
      batch: { flags: c.flags ?? SERVER, tokensRead: nTokens, tokensLost: 0, seqs },
    };
  });
}

/** A detach at `ns`: tracing stopped with the target still running. */
const detachedAt = (ns: bigint) => recordingCutOff(ns, null);

const figures = (tokens: Token[]) =>
  buildRequests(tokens, null).map((r) => ({
    seq: r.seqId,
    prompt: r.promptTokens,
    cached: r.cachedTokens,
    generated: r.generatedTokens,
    steps: r.steps.map((s) => s.kind[0]).join(""),
    incomplete: r.incomplete,
  }));

test("server slots: prompts beside generations make mixed calls; a reused prefix starts a new request", () => {
  const tokens = calls([
    { parts: [[0, 5, 0, 1]] }, // request A's prompt
    {
      parts: [
        [0, 1, 5, 1],
        [1, 4, 0, 1],
      ],
    }, // A generates while B's prompt runs
    {
      parts: [
        [0, 1, 6, 1],
        [1, 1, 4, 1],
      ],
    },
    {
      parts: [
        [1, 1, 5, 1],
        [0, 3, 2, 1],
      ],
    }, // A done; C on slot 0 reuses 2 cached tokens
    { parts: [[0, 1, 5, 1]] },
  ]);
  assert.deepEqual(figures(tokens), [
    { seq: 0, prompt: 5, cached: 0, generated: 3, steps: "pdd", incomplete: null },
    { seq: 1, prompt: 4, cached: 0, generated: 3, steps: "pdd", incomplete: null },
    { seq: 0, prompt: 3, cached: 2, generated: 2, steps: "pd", incomplete: null },
  ]);
  assert.deepEqual(
    tokens.map((t) => t.phase),
    ["prefill", "mixed", "decode", "mixed", "decode"],
  );
  assert.deepEqual(
    tokens.map((t) => t.steps!.length),
    [1, 2, 2, 2, 1],
  );
});

test("a cached prompt loaded into a slot starts a new request, even when one token is left to evaluate", () => {
  // llama-server's prompt cache in memory: slot 0 served a short prompt; the next request's prompt
  // was cached from another slot, restored here whole but its last token (which the server
  // evaluates again for its logits): one token, one output, 59 positions further on
  const tokens = calls([
    { parts: [[0, 7, 0, 1]] },
    { parts: [[0, 1, 7, 1]] },
    { parts: [[0, 1, 8, 1]] },
    { parts: [[0, 1, 65, 1]] }, // the restored prompt's last token: the first output
    { parts: [[0, 1, 66, 1]] },
    { parts: [[0, 4, 20, 1]] }, // a shorter cached prompt: positions go back, as before
  ]);
  assert.deepEqual(figures(tokens), [
    { seq: 0, prompt: 7, cached: 0, generated: 3, steps: "pdd", incomplete: null },
    { seq: 0, prompt: 1, cached: 65, generated: 2, steps: "pd", incomplete: null },
    { seq: 0, prompt: 4, cached: 20, generated: 1, steps: "p", incomplete: null },
  ]);
  assert.deepEqual(
    tokens.map((t) => t.phase),
    ["prefill", "decode", "decode", "prefill", "decode", "prefill"],
  );
});

test("a long prompt in chunks is one prefill; the first token comes from the last chunk", () => {
  const tokens = calls([
    { parts: [[0, 2048, 0, 0]], durationMs: 10 },
    { parts: [[0, 952, 2048, 1]], durationMs: 5 },
    { parts: [[0, 1, 3000, 1]] },
  ]);
  const [r] = buildRequests(tokens, null);
  assert.equal(r!.promptTokens, 3000);
  assert.equal(r!.generatedTokens, 2);
  assert.equal(r!.firstOutputNs, tokens[1]!.endNs, "time to first token ends with the last chunk");
  assert.equal(r!.startNs, tokens[0]!.startNs);
});

test("a chat's next turn continues the positions and is still a new request", () => {
  const tokens = calls([
    { parts: [[0, 6, 0, 1]] },
    { parts: [[0, 1, 6, 1]] },
    { parts: [[0, 4, 7, 1]], gapMs: 500 }, // the next turn: a prompt after the generation
    { parts: [[0, 1, 11, 1]] },
  ]);
  assert.deepEqual(
    figures(tokens).map((r) => [r.prompt, r.cached, r.generated]),
    [
      [6, 0, 2],
      [4, 7, 2],
    ],
  );
});

test("speculative verification is named and counts the drafts the next call shows accepted", () => {
  const tokens = calls([
    { parts: [[0, 4, 0, 1]] },
    { parts: [[0, 4, 4, 4]] }, // the sampled token and 3 drafts, all verified
    { parts: [[0, 4, 7, 4]] }, // 2 drafts accepted (positions moved on by 3)
    { parts: [[0, 1, 9, 1]] }, // a rejected draft: positions go back, same request
  ]);
  const [r, more] = buildRequests(tokens, null);
  assert.equal(more, undefined, "a rejected draft starts no request");
  assert.deepEqual(
    r!.steps.map((s) => s.kind),
    ["prompt", "speculative", "speculative", "decode"],
  );
  assert.equal(r!.promptTokens, 4);
  // 1 from the prompt, 1 + 2 accepted, 1 + 1 accepted, 1
  assert.equal(r!.generatedTokens, 7);
  assert.deepEqual(
    tokens.map((t) => t.phase),
    ["prefill", "decode", "decode", "decode"],
  );
});

test("a prompt shared by several sequences (llama-batched) starts a request on each", () => {
  const tokens = calls([
    {
      parts: [
        [0, 7, 0, 1],
        [1, 7, 0, 1],
        [2, 7, 0, 1],
      ],
    },
    {
      parts: [
        [0, 1, 7, 1],
        [1, 1, 7, 1],
        [2, 1, 7, 1],
      ],
    },
    {
      parts: [
        [0, 1, 8, 1],
        [2, 1, 8, 1],
      ],
    },
  ]);
  assert.deepEqual(
    figures(tokens).map((r) => [r.seq, r.prompt, r.generated]),
    [
      [0, 7, 3],
      [1, 7, 2],
      [2, 7, 3],
    ],
  );
});

test("llama_batch_get_one batches (no positions or outputs): phases and requests by call size", () => {
  const flags = 0;
  const tokens = calls([
    { parts: [[0, 2, -1, 1]], flags }, // warm-up
    { parts: [[0, 512, -1, 1]], flags }, // a prompt in two chunks
    { parts: [[0, 100, -1, 1]], flags },
    { parts: [[0, 1, -1, 1]], flags },
    { parts: [[0, 1, -1, 1]], flags },
    { parts: [[0, 9, -1, 1]], flags, gapMs: 300 }, // the next turn
    { parts: [[0, 1, -1, 1]], flags },
  ]);
  const requests = buildRequests(tokens, null);
  assert.deepEqual(
    requests.map((r) => [r.promptTokens, r.generatedTokens, r.cachedTokens]),
    [
      [614, 3, null],
      [9, 2, null],
    ],
  );
  assert.equal(requests[0]!.firstOutputNs, tokens[2]!.endNs, "the first token: the prompt's end");
  assert.deepEqual(
    tokens.map((t) => t.phase),
    ["prefill", "prefill", "prefill", "decode", "decode", "prefill", "decode"],
  );
});

test("llama-server's warm-up call is a request of its own, apart from the first real one", () => {
  const tokens = calls([
    { parts: [[0, 2, -1, 1]], flags: 0 },
    { parts: [[0, 5, 0, 1]] },
    { parts: [[0, 1, 5, 1]] },
  ]);
  assert.deepEqual(
    figures(tokens).map((r) => [r.prompt, r.generated]),
    [
      [2, 0],
      [5, 2],
    ],
  );
});

test("bad input: a batch beyond the per-call bound, a cut-off end, a late start, no output", () => {
  const tokens = calls([
    { parts: [[0, 3, 0, 0]] }, // a sequence that never produces an output
    { parts: [[1, 1, 40, 1]] }, // first met generating: the recording began during it
    {
      parts: [
        [1, 1, 41, 1],
        [2, 8, 0, 1],
      ],
    },
    {
      parts: [
        [1, 1, 42, 1],
        [2, 1, 8, 1],
      ],
    },
  ]);
  tokens[2]!.batch!.tokensRead = 9; // 3 tokens beyond the bound
  tokens[2]!.nTokens = 12;
  const end = tokens[3]!.endNs + 1_000_000n; // stopped right after the last call
  const requests = buildRequests(tokens, detachedAt(end));
  assert.deepEqual(
    requests.map((r) => [r.seqId, r.generatedTokens, r.firstOutputNs === null]),
    [
      [0, 0, true],
      [1, 3, false],
      [2, 2, false],
    ],
  );
  assert.equal(requests[0]!.incomplete, null, "no output is not a fault of the recording");
  assert.match(requests[1]!.incomplete ?? "", /began during it/);
  assert.match(requests[2]!.incomplete ?? "", /beyond the per-call bound \(3 tokens/);
  // without the recording's end, or long after the last call, nothing is cut off
  const later = buildRequests(
    calls([{ parts: [[0, 3, 0, 1]] }, { parts: [[0, 1, 3, 1]] }]),
    detachedAt(tokens[3]!.endNs + 10_000_000_000n),
  );
  assert.equal(later[0]!.incomplete, null);
  const cut = buildRequests(calls([{ parts: [[0, 3, 0, 1]] }, { parts: [[0, 1, 3, 1]] }]), null);
  assert.equal(cut[0]!.incomplete, null);
});

test("the recording's end during a generation marks the request cut off", () => {
  const tokens = calls([
    { parts: [[0, 3, 0, 1]] },
    { parts: [[0, 1, 3, 1]] },
    { parts: [[0, 1, 4, 1]] },
  ]);
  const [r] = buildRequests(tokens, detachedAt(tokens[2]!.endNs + 500_000n));
  assert.equal(r!.incomplete, "the recording ended during it");
});

test("a target that exited by itself cut no request off; one killed by a signal may have", () => {
  // node-llama-cpp disposes its context and exits a few ms after its last sequence's last call,
  // less than two of that sequence's step intervals: the rule for a detach would mark it cut off
  const tokens = calls([
    { parts: [[0, 3, 0, 1]] },
    { parts: [[0, 1, 3, 1]], gapMs: 20 },
    { parts: [[0, 1, 4, 1]], gapMs: 20 },
  ]);
  const stoppedNs = tokens[2]!.endNs + 5_000_000n;
  assert.equal(recordingCutOff(stoppedNs, { signal: null }), null);
  const [exited] = buildRequests(tokens, recordingCutOff(stoppedNs, { signal: null }));
  assert.equal(exited!.incomplete, null);
  assert.equal(exited!.generatedTokens, 3);
  const [killed] = buildRequests(tokens, recordingCutOff(stoppedNs, { signal: "SIGKILL" }));
  assert.equal(killed!.incomplete, "the process was killed (SIGKILL) during it");
  const [detached] = buildRequests(tokens, recordingCutOff(stoppedNs, null));
  assert.equal(detached!.incomplete, "the recording ended during it");
  assert.equal(recordingCutOff(null, null), null, "an older recording without its stop time");
});

test("a live tracker fed in chunks forms the requests a whole run does; idle requests end", () => {
  const spec: { parts: Part[] }[] = [
    { parts: [[0, 5, 0, 1]] },
    {
      parts: [
        [0, 1, 5, 1],
        [1, 4, 0, 1],
      ],
    },
    {
      parts: [
        [0, 1, 6, 1],
        [1, 1, 4, 1],
      ],
    },
    { parts: [[1, 1, 5, 1]] },
  ];
  const whole = figures(calls(spec));
  const tokens = calls(spec);
  const tracker = new RequestTracker();
  const started = tokens.slice(0, 2).flatMap((t) => tracker.add(t).started);
  assert.deepEqual(
    tracker.endIdle(tokens[0]!.startNs).map((r) => r.id),
    [],
    "nothing is idle yet",
  );
  started.push(...tokens.slice(2).flatMap((t) => tracker.add(t).started));
  assert.deepEqual(
    tracker.endIdle(tokens[3]!.startNs).map((r) => r.seqId),
    [0],
    "slot 0 has had no call since",
  );
  assert.deepEqual(
    started.map((r) => [r.seqId, r.promptTokens, r.generatedTokens]),
    whole.map((r) => [r.seq, r.prompt, r.generated]),
  );
});

test("a prompt beyond the per-call bound: its unread tail held the first output; the request goes on", () => {
  const tokens = calls([
    { parts: [[0, 32, 0, 0]] }, // 44 tokens, 32 read: the output wanted was among the rest
    { parts: [[0, 1, 44, 1]] }, // the first generated token, past the unread positions
    { parts: [[0, 1, 45, 1]] },
  ]);
  tokens[0]!.nTokens = 44;
  const requests = buildRequests(tokens, null);
  assert.equal(requests.length, 1, "no new request where the unread tokens took the positions");
  const [r] = requests;
  assert.equal(r!.generatedTokens, 3);
  assert.equal(r!.firstOutputNs, tokens[0]!.endNs);
  assert.deepEqual(
    r!.steps.map((s) => s.kind),
    ["prompt", "decode", "decode"],
  );
  assert.match(r!.incomplete ?? "", /beyond the per-call bound \(12 tokens/);
});
