// SPDX-License-Identifier: Apache-2.0
// SpanExport against the real gRPC receiver, without root: a refusing endpoint, the spool, the
// re-send, the counts.
import assert from "node:assert/strict";
import { status } from "@grpc/grpc-js";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import {
  EXPORT_DEFAULTS,
  SpanExport,
  buildRun,
  buildRunSpans,
  checkEndpoint,
} from "@profinfer/exporter";
import { syntheticRecorder } from "./support/fixtures.js";
import { OtlpCollector } from "./support/otlpCollector.js";

const scratch = mkdtempSync(join(tmpdir(), "profinfer-otlp-export-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

function exporterTo(url: string, spoolDir: string, spoolMaxBytes = EXPORT_DEFAULTS.spoolMaxBytes) {
  const logged: string[] = [];
  const exporter = new SpanExport(
    {
      url,
      headers: { "x-test": "1" },
      timeoutMs: 2000,
      spoolDir,
      spoolMaxBytes,
      batchSpans: 100,
      retryInitialMs: 50,
      retryMaxMs: 200,
      version: "test",
      log: (m) => logged.push(m),
    },
    { "service.name": "export-test" },
  );
  return { exporter, logged };
}

const spans = buildRunSpans(buildRun(syntheticRecorder(12, 2, 2).recording()), { kind: "all" });

test("an endpoint that answers UNAVAILABLE: spans wait in the spool and arrive once when it takes them", async () => {
  const collector = await OtlpCollector.start();
  collector.refuseWith = status.UNAVAILABLE;
  const spoolDir = join(scratch, "spool-a");
  const { exporter, logged } = exporterTo(collector.url, spoolDir);
  try {
    exporter.add(spans.slice(0, 250));
    exporter.add(spans.slice(250));
    assert.equal(await exporter.flush(1500), false, "nothing can be delivered yet");
    assert.equal(exporter.stats.connected, false);
    assert.equal(exporter.stats.queued, spans.length);
    assert.ok(readdirSync(spoolDir).length >= Math.ceil(spans.length / 100), "one file per batch");
    assert.match(logged.join("\n"), /failed: unavailable/);
    collector.refuseWith = null;
    assert.equal(await exporter.flush(30_000), true);
    assert.deepEqual(
      { ...exporter.stats, failedAttempts: 0 },
      {
        sent: 0,
        resent: spans.length,
        queued: 0,
        spooled: spans.length,
        dropped: 0,
        failedAttempts: 0,
        connected: true,
      },
    );
    assert.ok(exporter.stats.failedAttempts > 0);
    const ids = collector.spans.map((s) => s.spanId);
    assert.equal(new Set(ids).size, ids.length, "exactly once");
    assert.deepEqual(new Set(ids), new Set(spans.map((s) => s.spanId)));
    assert.ok(collector.requests.every((r) => r.metadata["x-test"] === "1"));
    assert.equal(collector.spans[0]!.resource["service.name"]!.value, "export-test");
  } finally {
    await exporter.close();
    await collector.stop();
  }
  assert.ok(!existsSync(spoolDir), "the empty spool is removed");
});

test("a spool bound too small: what does not fit is dropped and counted, the rest arrives", async () => {
  const collector = await OtlpCollector.start();
  collector.refuseWith = status.UNAVAILABLE;
  const { exporter, logged } = exporterTo(collector.url, join(scratch, "spool-b"), 120_000);
  try {
    exporter.add(spans);
    await exporter.flush(500);
    collector.refuseWith = null;
    assert.equal(await exporter.flush(30_000), true);
    const s = exporter.stats;
    assert.ok(s.dropped > 0, "some batches did not fit");
    assert.equal(s.resent + s.sent + s.dropped, spans.length, "every span is accounted for");
    assert.equal(collector.spans.length, s.resent + s.sent);
    assert.equal(new Set(collector.spans.map((x) => x.spanId)).size, collector.spans.length);
    assert.match(logged.join("\n"), /spool .* is full/);
  } finally {
    await exporter.close();
    await collector.stop();
  }
});

test("a spool left by an earlier run is re-sent by the next one", async () => {
  const spoolDir = join(scratch, "spool-c");
  const nowhere = await OtlpCollector.start();
  const url = nowhere.url;
  await nowhere.stop();
  const first = exporterTo(url, spoolDir).exporter;
  first.markDown();
  first.add(spans.slice(0, 30));
  await first.close();
  assert.equal(first.stats.queued, 30);
  const collector = await OtlpCollector.start(Number(new URL(url).port));
  const { exporter, logged } = exporterTo(url, spoolDir);
  try {
    assert.match(logged.join("\n"), /30 spans left in the spool/);
    assert.equal(await exporter.flush(30_000), true);
    assert.equal(exporter.stats.resent, 30);
    assert.equal(collector.spans.length, 30);
  } finally {
    await exporter.close();
    await collector.stop();
  }
});

test("checkEndpoint tells a refused port and a live endpoint apart", async () => {
  const collector = await OtlpCollector.start();
  assert.equal(await checkEndpoint({ url: collector.url, headers: {}, timeoutMs: 2000 }), null);
  await collector.stop();
  assert.match(
    (await checkEndpoint({ url: collector.url, headers: {}, timeoutMs: 2000 })) ?? "",
    /^unavailable/,
  );
});
