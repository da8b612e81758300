// SPDX-License-Identifier: Apache-2.0
// The test OTLP receiver as a process of its own (for the benchmark, so that its decoding does not
// count as profinfer's CPU): prints "port N" once listening, then "spans N" (the running total of
// spans received, and how many distinct ids) whenever it grows.
import { OtlpCollector } from "./otlpCollector.js";

const collector = await OtlpCollector.start(Number(process.argv[2] ?? 0));
process.stdout.write(`port ${collector.port}\n`);
let total = 0;
const ids = new Set<string>();
setInterval(() => {
  if (collector.spans.length === 0) return;
  total += collector.spans.length;
  for (const s of collector.spans) ids.add(s.spanId);
  // only the counts matter here: keep memory flat over long benchmarks
  collector.spans.length = 0;
  process.stdout.write(`spans ${total} ${ids.size}\n`);
}, 50);
