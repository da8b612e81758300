// SPDX-License-Identifier: Apache-2.0
// Event timestamps are CLOCK_MONOTONIC ns; the run header pairs one monotonic reading with a
// CLOCK_REALTIME one taken at the same instant. Conversion is BigInt arithmetic: exact to the ns
// (a double holds realtime ns only to about 256 ns).
import type { RunHeader } from "./header.js";
import type { RunClock } from "./types.js";

export function clockFrom(header: RunHeader): RunClock {
  return {
    monotonicNs: BigInt(header.clock.monotonicNs),
    realtimeNs: BigInt(header.clock.realtimeNs),
  };
}

/** Wall-clock ns since the Unix epoch of a monotonic event timestamp: realtime + (ts - monotonic). */
export function toWallClockNs(clock: RunClock, ts: bigint): bigint {
  return clock.realtimeNs + (ts - clock.monotonicNs);
}
