// SPDX-License-Identifier: Apache-2.0
// The Prometheus provisioning against real runs: Prometheus 3 (built by set-up, the compose
// file's version) loads provisioning/prometheus/prometheus.yml and its rules, scrapes two profiled
// llama.cpp runs of the same model on two instances, and then every recording rule, every alert
// expression, every Prometheus query of the dashboard and every traces-to-metrics link of the
// Grafana data source is asked what it returns. A rule, panel or link that names a series, label
// or attribute a real run does not produce returns nothing, and the test says which.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { parse, stringify } from "yaml";
import * as C from "@profinfer/contract";
import { OtlpCollector } from "./support/otlpCollector.js";
import { otlpJsonSpans } from "./support/stack.js";
import {
  cli,
  completion,
  freePort,
  repoRoot,
  stack,
  tinyModels,
  type Ran,
} from "./support/targets.js";

const scratch = mkdtempSync(join(tmpdir(), "profinfer-prom-run-"));
after(() => rmSync(scratch, { recursive: true, force: true }));
const prov = join(repoRoot, "provisioning");

interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

/** Hardware counters these VMs lack: the figures fed by them are empty where no PMU counts. */
const HARDWARE_RULES: string[] = [C.RULE_BACKEND_STALL_RATIO, C.RULE_IPC];
/** ... and the series that feed them, exported only when a run recorded their events */
const HARDWARE_SERIES: string[] = [...HARDWARE_RULES, C.OP_BACKEND_STALL_SLOTS, C.OP_BACKEND_SLOTS];

function record(dir: string, metricsPort: number, otlp: string, model: string): Promise<Ran> {
  const child = spawn(
    cli,
    [
      "record",
      "--no-status",
      "--out",
      dir,
      "--metrics-addr",
      `127.0.0.1:${metricsPort}`,
      // scraped (every second) well after the end: rates over a minute see the whole run
      "--metrics-linger",
      "20",
      "--metrics-layers",
      "--metrics-moe",
      "--pmc",
      "task-clock",
      "--otlp-endpoint",
      otlp,
      "--otlp-op-sample",
      "every:8",
      "--",
      ...completion(model, 48),
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolveRun) =>
    child.on("close", (code, signal) => resolveRun({ code, signal, stdout, stderr })),
  );
}

describe("Prometheus 3 with the provisioning's rules, scraping two real runs", () => {
  let prometheus: ChildProcess;
  let promUrl = "";
  const instances: string[] = [];
  const dirs: string[] = [];
  let otlp: OtlpCollector;

  async function query(promql: string): Promise<Sample[]> {
    const url = `${promUrl}/api/v1/query?query=${encodeURIComponent(promql)}`;
    const body = (await (await fetch(url)).json()) as {
      status: string;
      error?: string;
      data: { result: Sample[] };
    };
    assert.equal(body.status, "success", `${promql}: ${body.error}`);
    return body.data.result;
  }

  before(async () => {
    const [promPort, ...metricsPorts] = [await freePort(), await freePort(), await freePort()];
    instances.push(...metricsPorts.map((p) => `127.0.0.1:${p}`));
    // the provisioning's configuration: its rule files, its profinfer job, scraped faster
    const config = parse(readFileSync(join(prov, "prometheus", "prometheus.yml"), "utf8"));
    config.global.scrape_interval = "1s";
    config.global.evaluation_interval = "1s";
    config.rule_files = (config.rule_files as string[]).map((f) => join(prov, "prometheus", f));
    const job = (config.scrape_configs as { job_name: string }[]).find(
      (j) => j.job_name === "profinfer",
    ) as Record<string, unknown>;
    job.scrape_interval = "1s";
    job.static_configs = [{ targets: instances }];
    const file = join(scratch, "prometheus.yml");
    writeFileSync(file, stringify(config));
    prometheus = spawn(
      stack("prometheus"),
      [
        `--config.file=${file}`,
        `--storage.tsdb.path=${join(scratch, "tsdb")}`,
        `--web.listen-address=127.0.0.1:${promPort}`,
      ],
      { stdio: "ignore" },
    );
    promUrl = `http://127.0.0.1:${promPort}`;
    for (let i = 0; ; i++) {
      try {
        if ((await fetch(`${promUrl}/-/ready`)).ok) break;
      } catch {
        // not listening yet
      }
      if (i > 150) throw new Error("prometheus did not become ready");
      await new Promise((r) => setTimeout(r, 200));
    }
    otlp = await OtlpCollector.start();
    const moe = tinyModels().find((m) => m.arch === "qwen2moe")!.path;
    // two hosts profiling the same model at once
    const runs = metricsPorts.map((port, i) => {
      dirs.push(join(scratch, `run-${i}`));
      return record(dirs[i]!, port, otlp.url, moe);
    });
    for (const ran of await Promise.all(runs)) assert.equal(ran.code, 0, ran.stderr.slice(-3000));
  });
  after(async () => {
    prometheus?.kill("SIGTERM");
    await otlp?.stop();
  });

  test("every rule loads and evaluates without error", async () => {
    const body = (await (await fetch(`${promUrl}/api/v1/rules`)).json()) as {
      data: { groups: { rules: { name: string; health: string; lastError?: string }[] }[] };
    };
    const rules = body.data.groups.flatMap((g) => g.rules);
    assert.deepEqual(
      rules.map((r) => r.name).sort(),
      [...C.RECORDING_RULES, ...C.ALERTS].sort(),
      "the rule files hold the rules the contract names",
    );
    for (const r of rules) assert.equal(r.health, "ok", `${r.name}: ${r.lastError}`);
  });

  test("every series a rule, alert or panel names is one a real run produces", async () => {
    const names = new Set(
      (
        (await (await fetch(`${promUrl}/api/v1/label/__name__/values`)).json()) as {
          data: string[];
        }
      ).data,
    );
    const dashboard = JSON.parse(
      readFileSync(join(prov, "grafana", "dashboards", "llama-cpp-inference-profile.json"), "utf8"),
    ) as { panels: { targets?: { expr?: string }[] }[] };
    const rules = [
      ...readRules(join(prov, "prometheus", "rules", "profinfer-recording.yml")),
      ...readRules(join(prov, "prometheus", "rules", "profinfer-alerts.yml")),
    ];
    const exprs = [
      ...rules.map((r) => r.expr),
      ...dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr ?? "")),
    ];
    const named = new Set(exprs.flatMap((e) => e.match(/\b(?:profinfer|gen_ai)[\w:]*\b/g) ?? []));
    assert.ok(named.size >= 15, `${named.size} series named`);
    const hardware = await query(`${C.COUNTER_INFO}{${C.LABEL_HARDWARE}="true"}`);
    for (const name of named) {
      // a figure of hardware counters is recorded only where a PMU counts them
      if (hardware.length === 0 && HARDWARE_SERIES.includes(name)) continue;
      assert.ok(names.has(name), `${name} is scraped or recorded`);
    }
  });

  test("each recording rule keeps the two instances apart and returns data", async () => {
    const hardware = await query(`${C.COUNTER_INFO}{${C.LABEL_HARDWARE}="true"}`);
    for (const rule of C.RECORDING_RULES) {
      const result = await query(`last_over_time(${rule}[5m])`);
      if (HARDWARE_RULES.includes(rule) && hardware.length === 0) {
        assert.equal(result.length, 0, `${rule}: no hardware counter, no figure`);
        continue;
      }
      assert.ok(result.length > 0, `${rule} returns data`);
      assert.deepEqual(
        [...new Set(result.map((s) => s.metric.instance))].sort(),
        [...instances].sort(),
        `${rule} keeps instance`,
      );
    }
    // the generated tokens of each instance are its own run's (48 each), not their sum
    for (const instance of instances) {
      const [generated] = await query(
        `last_over_time(${C.GENERATED_TOKENS}{instance="${instance}"}[5m])`,
      );
      assert.equal(Number(generated!.value[1]), 48);
    }
  });

  test("every Prometheus query of the dashboard returns data for the runs", async () => {
    const dashboard = JSON.parse(
      readFileSync(join(prov, "grafana", "dashboards", "llama-cpp-inference-profile.json"), "utf8"),
    ) as {
      panels: {
        title: string;
        targets?: { expr?: string; datasource?: { type?: string } }[];
      }[];
    };
    const hardware = await query(`${C.COUNTER_INFO}{${C.LABEL_HARDWARE}="true"}`);
    let asked = 0;
    for (const panel of dashboard.panels) {
      for (const target of panel.targets ?? []) {
        if (target.datasource?.type !== "prometheus" || !target.expr) continue;
        // Grafana's variables as a user who picked every model and host over the last ten minutes
        const promql = target.expr
          .replaceAll("$model", ".+")
          .replaceAll("$instance", ".+")
          .replaceAll("$__rate_interval", "1m")
          .replaceAll("$__range", "10m");
        const result = await query(promql);
        asked++;
        if (hardware.length === 0 && HARDWARE_RULES.some((r) => promql.includes(r))) {
          assert.equal(result.length, 0, `${panel.title}: no hardware counter, no figure`);
          continue;
        }
        assert.ok(result.length > 0, `${panel.title}: ${promql} returns data`);
      }
    }
    assert.ok(asked >= 15, `${asked} queries asked`);
  });

  test("each traces-to-metrics link of the Tempo data source finds the span's series", async () => {
    const datasources = parse(
      readFileSync(join(prov, "grafana", "datasources", "profinfer.yaml"), "utf8"),
    ) as {
      datasources: {
        type: string;
        jsonData?: {
          tracesToMetrics?: {
            tags: { key: string; value?: string }[];
            queries: { name: string; query: string }[];
          };
        };
      }[];
    };
    const link = datasources.datasources.find((d) => d.type === "tempo")!.jsonData!
      .tracesToMetrics!;
    const spans = otlpJsonSpans(readFileSync(join(dirs[0]!, "traces.otlp.jsonl"), "utf8"));
    // an operator span, a llama_decode span and a request span, each with its resource's
    // attributes beside its own, as Grafana's trace view has them
    const kinds = [
      spans.find((s) => s.span.attributes?.some((a) => a.key === C.ATTR_OP)),
      spans.find((s) => s.span.name === C.SPAN_TOKEN),
      spans.find((s) =>
        s.span.attributes?.some((a) => a.key === C.ATTR_GEN_AI_SERVER_TIME_TO_FIRST_TOKEN),
      ),
    ];
    for (const found of kinds) {
      assert.ok(found, "the run has operator, call and request spans");
      const tags = new Map<string, string>();
      for (const a of [...found.resource, ...(found.span.attributes ?? [])])
        tags.set(a.key, String(Object.values(a.value)[0]));
      for (const q of link.queries) {
        const promql = grafanaLinkQuery(q.query, link.tags, tags);
        const result = await query(promql);
        assert.ok(result.length > 0, `"${q.name}" from a ${found.span.name} span: ${promql}`);
      }
    }
  });
});

function readRules(path: string): { expr: string }[] {
  const doc = parse(readFileSync(path, "utf8")) as { groups: { rules: { expr: string }[] }[] };
  return doc.groups.flatMap((g) => g.rules);
}

/**
 * A traces-to-metrics query as Grafana's trace view fills it in for a span (its span and
 * resource attributes in `tags`): `$__tags` becomes the configured tags the span has, as label
 * matchers under their mapped names; `${__span.tags["key"]}` the value of one attribute. The
 * provisioning file doubles `$` (Grafana's own environment interpolation of provisioning); that
 * is undone first, as Grafana does when it reads the file.
 */
function grafanaLinkQuery(
  query: string,
  configured: { key: string; value?: string }[],
  tags: Map<string, string>,
): string {
  const text = query.replaceAll("$$", "$");
  const matchers = configured
    .filter((t) => tags.has(t.key))
    .map((t) => `${t.value || t.key}="${tags.get(t.key)}"`)
    .join(", ");
  return text
    .replaceAll("$__tags", matchers)
    .replace(/\$\{__span\.tags\["([^"]+)"\]\}/g, (_, key: string) => tags.get(key) ?? "");
}
