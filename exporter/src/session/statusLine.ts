// SPDX-License-Identifier: Apache-2.0
import type { Recorder } from "../record/recorder.js";

/** A status line on the terminal while recording: tokens, tokens/s, events/s, drops. */
export function statusLine(recorder: Recorder, enabled: boolean): () => void {
  if (!enabled || !process.stderr.isTTY) return () => {};
  // rates over the last 5 s: events arrive in batches twice a second, a 1 s window would jitter
  const window: { at: number; tokens: number; events: number }[] = [
    { at: performance.now(), tokens: 0, events: 0 },
  ];
  const timer = setInterval(() => {
    const now = performance.now();
    const s = recorder.stats;
    window.push({ at: now, tokens: s.tokens, events: s.events });
    while (window.length > 2 && now - window[1]!.at >= 5000) window.shift();
    const first = window[0]!;
    const dt = (now - first.at) / 1000;
    const line =
      `recording pid ${recorder.pid}  tokens ${s.tokens} (${((s.tokens - first.tokens) / dt).toFixed(1)}/s)  ` +
      `events ${s.events} (${Math.round((s.events - first.events) / dt)}/s)  drops ${recorder.liveDrops()}  ${(s.bytes / (1 << 20)).toFixed(1)} MiB`;
    process.stderr.write(`\r\x1b[K${line}`);
  }, 1000);
  return () => {
    clearInterval(timer);
    process.stderr.write("\r\x1b[K");
  };
}
