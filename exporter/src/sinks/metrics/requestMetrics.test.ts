// SPDX-License-Identifier: Apache-2.0
// When the kernel's requests count as ended, each exactly once (below the addon's boundary: the
// readings are what bpf/requests.bpf.h would hold).
import assert from "node:assert/strict";
import { test } from "node:test";
import type { KernelRequest, KernelRequests } from "../../record/nativeTracer.js";
import { KernelRequestFollower } from "./requestMetrics.js";

const MS = 1_000_000n;

function request(id: number, endMs: number, over: Partial<KernelRequest> = {}): KernelRequest {
  return {
    id,
    pid: 10,
    ctx: 0xc0n,
    seqId: id,
    startNs: 0n,
    firstOutputNs: 5n * MS,
    endNs: BigInt(endMs) * MS,
    promptTokens: 4,
    generatedTokens: 11,
    cachedTokens: 0,
    steps: 11,
    longestGapNs: 3n * MS,
    lastCallNs: 2n * MS,
    flags: 0,
    ...over,
  };
}

/** A follower over readings given one poll at a time. */
function follower(idleMs: number) {
  let next: KernelRequests & { stoppedNs: bigint | null; targetExited: boolean } = {
    active: [],
    finished: [],
    inFlight: [],
    stoppedNs: null,
    targetExited: false,
  };
  const f = new KernelRequestFollower(() => next, BigInt(idleMs) * MS);
  return {
    poll(nowMs: number, reading: Partial<typeof next>) {
      next = {
        active: [],
        finished: [],
        inFlight: [],
        stoppedNs: null,
        targetExited: false,
        ...reading,
      };
      return f.poll(BigInt(nowMs) * MS);
    },
  };
}

test("an idle request ends once; its queue record, when a new one replaces it, is not counted again", () => {
  const f = follower(1000);
  const r = request(1, 100);
  assert.deepEqual(f.poll(500, { active: [r] }), { ended: [], active: 1 }, "not idle yet");
  const idle = f.poll(1200, { active: [r] });
  assert.equal(idle.ended.length, 1);
  assert.equal(idle.active, 0);
  assert.equal(idle.ended[0]!.outcome, "complete");
  assert.equal(idle.ended[0]!.ttftSeconds, 0.005);
  assert.equal(idle.ended[0]!.durationSeconds, 0.1);
  assert.ok(Math.abs(idle.ended[0]!.tpotSeconds! - 0.095 / 10) < 1e-12);
  assert.deepEqual(f.poll(1300, { active: [r] }).ended, [], "still current, already counted");
  // a new request on its sequence pushes its record: counted already
  assert.deepEqual(f.poll(1400, { finished: [r], active: [request(2, 1390)] }), {
    ended: [],
    active: 1,
  });
});

test("a request replaced before it went idle ends from the queue", () => {
  const f = follower(1000);
  const r = request(3, 100);
  f.poll(150, { active: [r] });
  const out = f.poll(200, { finished: [r], active: [request(4, 190)] });
  assert.deepEqual(
    out.ended.map((e) => e.outcome),
    ["complete"],
  );
  assert.equal(out.active, 1);
});

test("a call in flight of its process that began after its last call defers the end", () => {
  const f = follower(1000);
  const r = request(5, 100);
  const inFlight = [{ tgid: 10, ctx: 0xc0n, startNs: 150n * MS }];
  assert.equal(f.poll(5000, { active: [r], inFlight }).ended.length, 0);
  // a call of another process, or one that began before, does not
  assert.equal(
    f.poll(5000, { active: [r], inFlight: [{ tgid: 11, ctx: 0n, startNs: 150n * MS }] }).ended
      .length,
    1,
  );
});

test("outcomes: no output, a batch beyond the bound, tracing began during it, cut off at the end", () => {
  const f = follower(1000);
  const out = f.poll(9000, {
    active: [
      request(1, 100, { firstOutputNs: null, generatedTokens: 0 }),
      request(2, 100, { flags: 1 }),
      request(3, 100, { flags: 2 }),
    ],
  });
  assert.deepEqual(
    out.ended.map((e) => e.outcome),
    ["no_output", "incomplete", "incomplete"],
  );
  // when tracing stopped: a request within two step intervals of the end was cut off by it
  const g = follower(1000);
  const end = g.poll(200, {
    active: [request(4, 195), request(5, 100)],
    stoppedNs: 200n * MS,
  });
  assert.deepEqual(
    end.ended.map((e) => e.outcome),
    ["incomplete", "complete"],
  );
  assert.equal(end.active, 0);
  // when the target exited, its requests ended with it
  const h = follower(1000);
  const exited = h.poll(200, {
    active: [request(6, 195)],
    stoppedNs: 200n * MS,
    targetExited: true,
  });
  assert.deepEqual(
    exited.ended.map((e) => e.outcome),
    ["complete"],
  );
});
