// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { test } from "node:test";
import { EventType, type SchedSwitchEvent } from "../abi/events.js";
import { offCpuIntervals } from "./sched.js";

const TGID = 50;
function sw(
  ts: bigint,
  prevTid: number,
  prevTgid: number,
  nextTid: number,
  nextTgid: number,
): SchedSwitchEvent {
  return {
    type: EventType.SCHED_SWITCH,
    cpu: 1,
    tgid: prevTgid === TGID ? prevTgid : nextTgid,
    tid: prevTgid === TGID ? prevTid : nextTid,
    ts,
    prevTid,
    nextTid,
    prevState: 0,
    prevTgid,
    nextTgid,
    prevComm: prevTgid === TGID ? "llama" : "other",
    nextComm: nextTgid === TGID ? "llama" : "other",
  };
}

test("an off-CPU interval ends when the thread runs again", () => {
  const out = offCpuIntervals(
    [sw(100n, 7, TGID, 9, 1), sw(300n, 9, 1, 7, TGID)],
    new Set([TGID]),
    1000n,
  );
  assert.deepEqual(
    out.get(7)!.map((iv) => [iv.startNs, iv.endNs, iv.preempted, iv.open]),
    [[100n, 300n, true, false]],
  );
});

test("a switch back that was not reported ends at the thread's next own event", () => {
  // the thread left at 100, its return was not reported, it recorded an event at 250 and left again at 400
  const switches = [sw(100n, 7, TGID, 9, 1), sw(400n, 7, TGID, 9, 1), sw(500n, 9, 1, 7, TGID)];
  const out = offCpuIntervals(switches, new Set([TGID]), 1000n, new Map([[7, [50n, 250n, 600n]]]));
  assert.deepEqual(
    out.get(7)!.map((iv) => [iv.startNs, iv.endNs]),
    [
      [100n, 250n],
      [400n, 500n],
    ],
  );
  // without the thread's events the first interval runs to the next reported return
  const blind = offCpuIntervals(switches, new Set([TGID]), 1000n);
  assert.deepEqual(
    blind.get(7)!.map((iv) => [iv.startNs, iv.endNs]),
    [[100n, 500n]],
  );
});

test("an interval still open at the end closes at a later own event, else at the run's end", () => {
  const out = offCpuIntervals(
    [sw(100n, 7, TGID, 9, 1), sw(150n, 8, TGID, 9, 1)],
    new Set([TGID]),
    1000n,
    new Map([[7, [700n]]]),
  );
  assert.deepEqual(
    out.get(7)!.map((iv) => [iv.endNs, iv.open]),
    [[700n, false]],
  );
  assert.deepEqual(
    out.get(8)!.map((iv) => [iv.endNs, iv.open]),
    [[1000n, true]],
  );
});
