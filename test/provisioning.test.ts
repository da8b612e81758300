// SPDX-License-Identifier: Apache-2.0
// provisioning/ checked without Docker: the compose file parses, every path it mounts exists,
// every port and service name agrees with the configs of Grafana, Tempo, the collector and
// Prometheus (promtool checks the latter); the built plugin.json follows Grafana's plugin
// schema and its Grafana range covers every Grafana the browser harness loads it in, the first of
// which is the one the compose file runs; the generated dashboard refers only to provisioned data sources, the plugin's options,
// defined variables and the metric and rule names profinfer exports; the alert rules are there.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { join, resolve } from "node:path";
import { describe, test } from "node:test";
import { ALERTS, HISTOGRAMS, METRIC_FAMILIES, RECORDING_RULES } from "@profinfer/contract";
import { compare, satisfies } from "semver";
import { parse } from "yaml";
import { grafanaHosts } from "./support/grafanaHost.js";
import { manifest, repoRoot, stack } from "./support/targets.js";

const prov = join(repoRoot, "provisioning");
const yamlFile = (path: string) => parse(readFileSync(path, "utf8")) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const compose = yamlFile(join(prov, "compose.yaml"));
const services = compose.services as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const pluginDist = join(repoRoot, "grafana-plugin", "dist");
const dashboardFile = join(prov, "grafana", "dashboards", "llama-cpp-inference-profile.json");
const RULES_DIR = join(prov, "prometheus", "rules");

/** The series profinfer's exporter writes (histograms as their _bucket, _sum and _count). */
const EXPORTED = new Set(
  METRIC_FAMILIES.flatMap((name): string[] =>
    (HISTOGRAMS as readonly string[]).includes(name)
      ? [`${name}_bucket`, `${name}_sum`, `${name}_count`]
      : [name],
  ),
);
const RECORDED = new Set<string>(RECORDING_RULES);

interface Mount {
  service: string;
  host: string;
  container: string;
}

function mounts(): Mount[] {
  const out: Mount[] = [];
  for (const [service, spec] of Object.entries(services))
    for (const v of (spec.volumes ?? []) as string[]) {
      const [host, container] = v.split(":");
      if (host!.startsWith("."))
        out.push({ service, host: resolve(prov, host!), container: container! });
    }
  return out;
}

/** The host path that a container path of a service comes from. */
function hostPathOf(service: string, containerPath: string): string | null {
  for (const m of mounts().filter((x) => x.service === service))
    if (containerPath === m.container || containerPath.startsWith(m.container + "/"))
      return join(m.host, containerPath.slice(m.container.length));
  return null;
}

const containerPort = (service: string) =>
  ((services[service].ports ?? []) as string[]).map((p) => Number(String(p).split(":").pop()));
const portOf = (endpoint: string) => Number(/:(\d+)$/.exec(endpoint)![1]);

describe("compose file", () => {
  test("parses and has Grafana, Tempo, Prometheus and the collector", () => {
    assert.deepEqual(Object.keys(services).sort(), [
      "grafana",
      "otel-collector",
      "prometheus",
      "tempo",
    ]);
    for (const [name, spec] of Object.entries(services)) {
      assert.match(spec.image, /^[\w./-]+:[\w.-]+$/, `${name} pins an image tag`);
      for (const dep of spec.depends_on ?? [])
        assert.ok(services[dep], `${name} depends on a service ${dep} that exists`);
    }
    for (const v of Object.values(services).flatMap((s) => (s.volumes ?? []) as string[]))
      if (!v.startsWith("."))
        assert.ok(
          compose.volumes?.[v.split(":")[0]!] !== undefined,
          `named volume ${v} is declared`,
        );
  });

  test("every mounted file and folder exists (rules aside: see the rules test)", () => {
    for (const m of mounts()) {
      if (m.host === RULES_DIR) continue;
      assert.ok(existsSync(m.host), `${m.service} mounts ${m.host}, which exists`);
    }
  });

  test("the images of Prometheus and the collector are the versions the tests build and run", () => {
    const tag = (service: string) => (services[service].image as string).split(":")[1]!;
    const built = manifest().stack!;
    assert.equal(tag("prometheus"), `v${built.prometheus!.version}`);
    assert.equal(tag("otel-collector"), built.otelcol!.version);
  });

  test("published ports are unique and are the ports the services listen on", () => {
    const published = Object.values(services).flatMap((s) =>
      ((s.ports ?? []) as string[]).map((p) => String(p).split(":")[0]),
    );
    assert.equal(new Set(published).size, published.length);
    const tempo = yamlFile(hostPathOf("tempo", "/etc/tempo/tempo.yaml")!);
    assert.deepEqual(containerPort("tempo"), [tempo.server.http_listen_port]);
    const collector = yamlFile(hostPathOf("otel-collector", "/etc/otelcol-contrib/config.yaml")!);
    assert.deepEqual(containerPort("otel-collector"), [
      portOf(collector.receivers.otlp.protocols.grpc.endpoint),
    ]);
    assert.deepEqual(containerPort("grafana"), [3000]);
    assert.deepEqual(containerPort("prometheus"), [9090]);
  });

  test("the collector exports to Tempo's OTLP receiver; the service commands name the mounted configs", () => {
    const collector = yamlFile(hostPathOf("otel-collector", "/etc/otelcol-contrib/config.yaml")!);
    const tempo = yamlFile(hostPathOf("tempo", "/etc/tempo/tempo.yaml")!);
    const endpoint: string = collector.exporters["otlp/tempo"].endpoint;
    assert.equal(endpoint.split(":")[0], "tempo");
    assert.ok(services.tempo);
    assert.equal(
      portOf(endpoint),
      portOf(tempo.distributor.receivers.otlp.protocols.grpc.endpoint),
    );
    assert.ok(collector.service.pipelines.traces.exporters.includes("otlp/tempo"));
    const config = (service: string, flag: RegExp) =>
      (services[service].command as string[]).map((c) => flag.exec(c)?.[1]).find(Boolean)!;
    assert.ok(existsSync(hostPathOf("tempo", config("tempo", /^-config\.file=(.+)$/))!));
    assert.ok(
      existsSync(hostPathOf("otel-collector", config("otel-collector", /^--config=(.+)$/))!),
    );
    assert.ok(existsSync(hostPathOf("prometheus", config("prometheus", /^--config\.file=(.+)$/))!));
  });

  test("Prometheus' config passes promtool and loads the rules from the mounted rules folder", () => {
    const path = hostPathOf("prometheus", "/etc/prometheus/prometheus.yml")!;
    const checked = spawnSync(
      stack("prometheus", "promtool"),
      ["check", "config", "--syntax-only", path],
      {
        encoding: "utf8",
      },
    );
    assert.equal(checked.status, 0, checked.stdout + checked.stderr);
    const config = yamlFile(path);
    for (const glob of config.rule_files as string[]) {
      const dir = glob.slice(0, glob.lastIndexOf("/"));
      assert.equal(
        hostPathOf("prometheus", dir),
        RULES_DIR,
        `${glob} lies in the mounted rules folder`,
      );
    }
  });

  test("Grafana loads the built plugin unsigned, the data sources and the dashboards", () => {
    const plugin = JSON.parse(readFileSync(join(pluginDist, "plugin.json"), "utf8"));
    const pluginMount = mounts().find(
      (m) => m.service === "grafana" && m.container.startsWith("/var/lib/grafana/plugins/"),
    )!;
    assert.equal(pluginMount.host, pluginDist);
    assert.equal(pluginMount.container, `/var/lib/grafana/plugins/${plugin.id}`);
    assert.ok(existsSync(join(pluginDist, "module.js")));
    const env = services.grafana.environment as Record<string, string>;
    assert.ok(env.GF_PLUGINS_ALLOW_LOADING_UNSIGNED_PLUGINS!.split(",").includes(plugin.id));
    assert.ok(existsSync(hostPathOf("grafana", env.GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH!)!));

    const datasources = yamlFile(
      hostPathOf("grafana", "/etc/grafana/provisioning/datasources/profinfer.yaml")!,
    ).datasources as { name: string; uid: string; type: string; url: string; jsonData: any }[]; // eslint-disable-line @typescript-eslint/no-explicit-any
    for (const ds of datasources) {
      const url = new URL(ds.url);
      assert.ok(services[url.hostname], `${ds.name} points at the service ${url.hostname}`);
      assert.ok(
        containerPort(url.hostname).includes(Number(url.port)),
        `${ds.url} is a port ${url.hostname} listens on`,
      );
    }
    const tempo = datasources.find((d) => d.type === "tempo")!;
    assert.ok(
      datasources.some(
        (d) => d.uid === tempo.jsonData.tracesToMetrics.datasourceUid && d.type === "prometheus",
      ),
    );
    for (const q of tempo.jsonData.tracesToMetrics.queries as { query: string }[])
      checkMetricNames(q.query);

    const providers = yamlFile(
      hostPathOf("grafana", "/etc/grafana/provisioning/dashboards/profinfer.yaml")!,
    ).providers as { options: { path: string } }[];
    for (const p of providers) {
      const dir = hostPathOf("grafana", p.options.path)!;
      assert.ok(
        readdirSync(dir).some((f) => f.endsWith(".json")),
        `${p.options.path} holds dashboards`,
      );
    }
  });

  test("the alert and recording rules of provisioning/prometheus/rules pass promtool and hold profinfer's names", (t) => {
    if (!existsSync(RULES_DIR)) {
      t.skip(
        "provisioning/prometheus/rules is not in this checkout yet (it comes with the metrics work)",
      );
      return;
    }
    const files = readdirSync(RULES_DIR)
      .filter((f) => f.endsWith(".yml"))
      .map((f) => join(RULES_DIR, f));
    assert.ok(files.length > 0);
    const checked = spawnSync(stack("prometheus", "promtool"), ["check", "rules", ...files], {
      encoding: "utf8",
    });
    assert.equal(checked.status, 0, checked.stdout + checked.stderr);
    const names = new Set(
      files.flatMap((f) =>
        (yamlFile(f).groups as { rules: { alert?: string; record?: string }[] }[]).flatMap((g) =>
          g.rules.map((r) => r.alert ?? r.record),
        ),
      ),
    );
    for (const n of [...ALERTS, ...RECORDED]) assert.ok(names.has(n), `rule ${n}`);
    for (const n of names)
      assert.ok(
        (ALERTS as readonly string[]).includes(n!) || RECORDED.has(n!),
        `rule ${n} is named in @profinfer/contract`,
      );
  });
});

/** Every metric or rule name in a PromQL expression is one profinfer writes or records. */
function checkMetricNames(expr: string): void {
  // Grafana's ${...} variables first: they may hold quotes of their own
  const withoutStrings = expr
    .replace(/\$+\{[^}]*\}/g, "")
    .replace(/"[^"]*"/g, '""')
    .replace(/\[[^\]]*\]/g, "");
  for (const m of withoutStrings.matchAll(/\b((?:gen_ai|profinfer)[a-z0-9_:]*)/g))
    assert.ok(
      EXPORTED.has(m[1]!) || RECORDED.has(m[1]!),
      `${m[1]} in ${expr} is a name profinfer exports or records`,
    );
}

describe("plugin.json (Grafana's plugin schema)", () => {
  const plugin = JSON.parse(readFileSync(join(pluginDist, "plugin.json"), "utf8"));
  test("required keys, id, type and no keys the schema does not know", () => {
    for (const key of ["type", "name", "id", "info", "dependencies"]) assert.ok(key in plugin, key);
    const known = [
      "$schema",
      "type",
      "name",
      "id",
      "info",
      "dependencies",
      "includes",
      "skipDataQuery",
      "preload",
      "backend",
      "routes",
      "category",
      "state",
    ];
    for (const key of Object.keys(plugin)) assert.ok(known.includes(key), `top-level key ${key}`);
    assert.match(
      plugin.id,
      /^[0-9a-z]+-([0-9a-z]+-)?(app|panel|datasource|secretsmanager|transformer)$/,
    );
    assert.ok(plugin.id.endsWith(`-${plugin.type}`));
    assert.equal(plugin.type, "panel");
  });
  test("info: logos that exist, a version, an update date, keywords; dependencies: a Grafana range", () => {
    const info = plugin.info;
    for (const key of ["logos", "version", "updated", "keywords"])
      assert.ok(key in info, `info.${key}`);
    for (const key of Object.keys(info))
      assert.ok(
        [
          "author",
          "build",
          "description",
          "keywords",
          "links",
          "logos",
          "screenshots",
          "updated",
          "version",
        ].includes(key),
        `info.${key}`,
      );
    assert.ok(
      existsSync(join(pluginDist, info.logos.small)) &&
        existsSync(join(pluginDist, info.logos.large)),
    );
    assert.ok(info.keywords.length >= 1);
    assert.match(info.version, /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$/);
    assert.match(info.updated, /^\d{4}-\d{2}-\d{2}$/);
    assert.match(
      plugin.dependencies.grafanaDependency,
      /^(<=|>=|<|>|=|~|\^)?([0-9]+)(\.[0-9x*]+)(\.[0-9x*]+)?$/,
    );
    assert.equal(readFileSync(join(pluginDist, "module.js"), "utf8").slice(0, 7), "define(");
  });
});

describe("the Grafana versions the plugin is tested with", () => {
  const hosts = grafanaHosts();
  const plugin = JSON.parse(readFileSync(join(pluginDist, "plugin.json"), "utf8"));
  const majorMinor = (v: string) => v.split(".").slice(0, 2).join(".");
  test("the compose file runs the oldest Grafana the harness loads the plugin in, the same release", () => {
    const image = /^grafana\/grafana:(\d+\.\d+\.\d+)$/.exec(services.grafana.image as string);
    assert.ok(image, `compose pins a Grafana release: ${services.grafana.image}`);
    const oldest = hosts.map((h) => h.version).sort(compare)[0];
    assert.equal(image[1], oldest, "compose's Grafana is the oldest in test/grafana-hosts/");
  });
  test("every tested Grafana is in plugin.json's grafanaDependency range, with the React its packages are built for", () => {
    for (const host of hosts) {
      assert.equal(majorMinor(host.version), host.line, `test/grafana-hosts/grafana-${host.line}`);
      assert.ok(
        satisfies(host.version, plugin.dependencies.grafanaDependency),
        `${host.version} in ${plugin.dependencies.grafanaDependency}`,
      );
      const ui = createRequire(join(host.dir, "package.json"))("@grafana/ui/package.json") as {
        peerDependencies: Record<string, string>;
      };
      assert.ok(
        satisfies(host.react, ui.peerDependencies.react!),
        `React ${host.react} for @grafana/ui ${host.version} (${ui.peerDependencies.react})`,
      );
    }
  });
});

describe("the dashboard llama.cpp inference profile", () => {
  const dashboard = JSON.parse(readFileSync(dashboardFile, "utf8"));
  const datasources = yamlFile(join(prov, "grafana", "datasources", "profinfer.yaml"))
    .datasources as { uid: string; type: string }[];
  const plugin = JSON.parse(readFileSync(join(pluginDist, "plugin.json"), "utf8"));
  const panels = dashboard.panels as any[]; // eslint-disable-line @typescript-eslint/no-explicit-any

  test("every panel and query uses a provisioned data source of the right type", () => {
    assert.equal(dashboard.title, "llama.cpp inference profile");
    for (const p of panels) {
      for (const ref of [
        p.datasource,
        ...(p.targets ?? []).map((t: { datasource?: unknown }) => t.datasource),
      ].filter(Boolean))
        assert.ok(
          datasources.some((d) => d.uid === ref.uid && d.type === ref.type),
          `${p.title}: ${JSON.stringify(ref)}`,
        );
    }
  });

  test("queries use only names profinfer exports or records, and defined variables", () => {
    const vars = new Set((dashboard.templating.list as { name: string }[]).map((v) => v.name));
    const builtins = new Set([
      "__rate_interval",
      "__range",
      "__interval",
      "__value",
      "__url_time_range",
    ]);
    let exprs = 0;
    for (const p of panels)
      for (const t of p.targets ?? []) {
        const text = t.expr ?? t.query ?? "";
        if (t.expr) {
          checkMetricNames(t.expr);
          exprs++;
        }
        for (const m of text.matchAll(/\$\{?(\w+)/g))
          assert.ok(vars.has(m[1]) || builtins.has(m[1]), `${p.title}: $${m[1]}`);
      }
    assert.ok(exprs >= 10);
  });

  test("has the views the issue lists, the plugin's panels with its own options", () => {
    const titles = panels.map((p) => p.title).join("\n");
    for (const t of [
      /Tokens per second/,
      /Time to first token/,
      /Time per output token/,
      /Time by operator type/,
      /stall ratio/i,
      /Barrier wait/,
      /Dropped events/,
      /Expert selections/,
      /ProfDAG/,
      /Tempo search/,
      /alerts/,
    ])
      assert.match(titles, t);
    const own = panels.filter((p) => p.type === plugin.id);
    assert.equal(own.length, 3);
    const optionKeys = Object.keys(JSON.parse(JSON.stringify(own[0].options)));
    for (const p of own) assert.deepEqual(Object.keys(p.options).sort(), optionKeys.sort());
    assert.deepEqual(new Set(own.map((p) => p.options.view)), new Set(["dag", "heatmap"]));
    const search = panels.find((p) => p.type === "table");
    assert.equal(search.targets[0].queryType, "traceql");
    const alertList = panels.find((p) => p.type === "alertlist");
    assert.ok(
      ALERTS.every((a) => a.startsWith(alertList.options.alertName)),
      "the alert list shows profinfer's alerts",
    );
  });

  test("panels do not overlap on the grid", () => {
    const cells = new Set<string>();
    for (const p of panels) {
      const g = p.gridPos;
      assert.ok(g.x >= 0 && g.x + g.w <= 24, `${p.title} fits in 24 columns`);
      for (let x = g.x; x < g.x + g.w; x++)
        for (let y = g.y; y < g.y + g.h; y++) {
          assert.ok(!cells.has(`${x},${y}`), `${p.title} overlaps at ${x},${y}`);
          cells.add(`${x},${y}`);
        }
    }
  });

  test("it is generated: the file is what the dashboard code builds now", () => {
    assert.ok(statSync(dashboardFile).size > 0);
    const built = spawnSync(
      process.execPath,
      [
        "--import",
        "tsx",
        "-e",
        `import("${join(repoRoot, "grafana-plugin/dashboards/inferenceProfile.ts")}").then(m => process.stdout.write(JSON.stringify(m.inferenceProfileDashboard(), null, 2) + "\\n"))`,
      ],
      { encoding: "utf8", cwd: repoRoot },
    );
    assert.equal(built.status, 0, built.stderr);
    assert.equal(built.stdout, readFileSync(dashboardFile, "utf8"));
  });
});
