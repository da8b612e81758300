// SPDX-License-Identifier: Apache-2.0
// The demo's llama-server run: `profinfer record` launches llama-server (its default slots) on a
// free port, more concurrent /completion requests than it has slots go to it (different prompt
// and output lengths, some sharing a cached prefix), the server is stopped, and profinfer's summary
// is printed with, for every request, the server's own `timings` beside profinfer's figures. Run
// it with `node --import tsx` (npm run demo does).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { ProfStats } from "@profinfer/contract";
import { mixedLoad, pairBySlot, recordServer, runLoad } from "../llamaServerLoad.js";

const { values } = parseArgs({
  options: {
    model: { type: "string" },
    out: { type: "string" },
    requests: { type: "string", default: "10" },
  },
});
if (!values.model || !values.out) {
  process.stderr.write("usage: llamaServerDemo --model FILE.gguf --out RUN_DIR [--requests N]\n");
  process.exit(2);
}

// the server quiet (--log-disable): profinfer's summary is what this shows
const server = await recordServer(values.out, values.model, ["-c", "2048", "--log-disable"]);
const load = mixedLoad(Number(values.requests));
process.stdout.write(`llama-server pid ${server.pid}: ${load.length} concurrent requests\n`);
let responses;
try {
  responses = await runLoad(server.base, load);
} finally {
  const stopped = await server.stop();
  // profinfer's own summary of the run (its per-request table among it), and what it said
  process.stdout.write(stopped.stdout);
  process.stdout.write(
    stopped.stderr
      .split("\n")
      .filter((l) => l.startsWith("profinfer: "))
      .join("\n") + "\n",
  );
  if (stopped.code !== 0) process.exitCode = 1;
}

const stats = JSON.parse(readFileSync(join(values.out, "stats.json"), "utf8")) as ProfStats;
const { pairs } = pairBySlot(stats.requests.list, responses);
const fmt = (v: number | null | undefined) => (v === null || v === undefined ? "-" : v.toFixed(2));
const rows = [
  [
    "slot",
    "prompt_n",
    "prompt",
    "cache_n",
    "cached",
    "predicted_n",
    "generated",
    "prompt_ms",
    "TTFT ms",
    "predicted_ms",
    "dur-TTFT ms",
  ],
  ...pairs.map(({ response, request }) => {
    const t = response.timings;
    return [
      String(response.slot),
      String(t.prompt_n),
      String(request?.promptTokens ?? "-"),
      String(t.cache_n),
      String(request?.cachedTokens ?? "-"),
      String(t.predicted_n),
      String(request?.generatedTokens ?? "-"),
      fmt(t.prompt_ms),
      fmt(request?.ttftMs),
      fmt(t.predicted_ms),
      request?.ttftMs === null || !request ? "-" : fmt(request.durationMs - request.ttftMs),
    ];
  }),
];
const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
process.stdout.write(
  "\neach request: llama-server's own timings beside profinfer's (stats.json requests)\n" +
    rows.map((r) => r.map((c, i) => c.padStart(widths[i]!)).join("  ")).join("\n") +
    "\n",
);
