// SPDX-License-Identifier: Apache-2.0
// The Prometheus provisioning under provisioning/prometheus/: promtool checks the scrape config
// and the rules, and runs the rule unit tests (input series that fire and that do not fire each
// alert, and the recording rules' values).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { ALERTS, RECORDING_RULES } from "@profinfer/contract";
import { repoRoot, stack } from "./support/targets.js";

const dir = join(repoRoot, "provisioning", "prometheus");

function promtool(args: string[]): { status: number | null; out: string } {
  const r = spawnSync(stack("prometheus", "promtool"), args, { cwd: dir, encoding: "utf8" });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

test("promtool check rules accepts every rule file", () => {
  const r = promtool([
    "check",
    "rules",
    "rules/profinfer-recording.yml",
    "rules/profinfer-alerts.yml",
  ]);
  assert.equal(r.status, 0, r.out);
  assert.match(r.out, new RegExp(`SUCCESS: ${RECORDING_RULES.length} rules found`));
  assert.match(r.out, new RegExp(`SUCCESS: ${ALERTS.length} rules found`));
});

test("promtool check config accepts the scrape configuration and finds its rules", () => {
  const r = promtool(["check", "config", "prometheus.yml"]);
  assert.equal(r.status, 0, r.out);
  assert.match(r.out, /SUCCESS: 2 rule files found/);
});

test("promtool test rules: each alert fires on its input series and stays quiet on the others", () => {
  const r = promtool(["test", "rules", "tests/alerts.test.yml"]);
  assert.equal(r.status, 0, r.out);
  assert.match(r.out, /SUCCESS/);
  const tests = readFileSync(join(dir, "tests", "alerts.test.yml"), "utf8");
  for (const alert of ALERTS) {
    // a firing case and a quiet case of each
    const cases = tests.split(`alertname: ${alert}`).length - 1;
    assert.ok(cases >= 2, `${alert} has a firing and a quiet case`);
  }
});

test("every alert has a summary, a description and a runbook section that exists", () => {
  const rules = readFileSync(join(dir, "rules", "profinfer-alerts.yml"), "utf8");
  const doc = readFileSync(join(repoRoot, "docs", "metrics.md"), "utf8");
  const anchors = new Set(
    [...doc.matchAll(/^#+ (.+)$/gm)].map((m) =>
      m[1]!
        .trim()
        .toLowerCase()
        .replace(/[^a-z0-9 -]/g, "")
        .replace(/ /g, "-"),
    ),
  );
  const alerts = rules.split(/\n\s+- alert: /).slice(1);
  assert.equal(alerts.length, ALERTS.length);
  for (const block of alerts) {
    const name = block.split("\n")[0]!.trim();
    assert.match(block, /summary: /, `${name} summary`);
    assert.match(block, /description: /, `${name} description`);
    const runbook = /runbook_url: "docs\/metrics\.md#([^"]+)"/.exec(block);
    assert.ok(runbook, `${name} runbook_url`);
    assert.ok(anchors.has(runbook[1]!), `${name}: docs/metrics.md has a section #${runbook[1]}`);
  }
});

test("every rule keeps instance: two hosts running one model stay apart, and alerts name the host", () => {
  const recording = readFileSync(join(dir, "rules", "profinfer-recording.yml"), "utf8");
  const alerts = readFileSync(join(dir, "rules", "profinfer-alerts.yml"), "utf8");
  assert.deepEqual(
    [...recording.matchAll(/record: (\S+)/g)].map((m) => m[1]).sort(),
    [...RECORDING_RULES].sort(),
  );
  for (const m of `${recording}\n${alerts}`.matchAll(/\b(?:sum|avg|max|min) by \(([^)]*)\)/g)) {
    const labels = m[1]!.split(",").map((l) => l.trim());
    assert.ok(labels.includes("instance"), `${m[0]} keeps instance`);
  }
  const tests = readFileSync(join(dir, "tests", "alerts.test.yml"), "utf8");
  // the expected alert texts name a host: none reads "on  " with an empty instance
  assert.doesNotMatch(tests, / on {2}/);
  assert.match(tests, /profinfer:op_backend_stall_ratio:rate5m\{instance="h1",model="llama-1b"/);
  assert.match(tests, /profinfer:op_backend_stall_ratio:rate5m\{instance="h2",model="llama-1b"/);
});
