// SPDX-License-Identifier: Apache-2.0
/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
// The built plugin as Grafana loads it: dist/module.js is an AMD module; in Chromium it is handed
// the real React, @grafana/data, @grafana/ui and @grafana/runtime (bundled for the browser here,
// as Grafana's own page provides them), must export a PanelPlugin whose options are the ones the
// views read, in their categories, and its panel component must draw a real run's trace, and
// name the missing field through Grafana's PanelDataErrorView when a frame lacks it.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { build } from "esbuild";
import { chromium, type Browser, type Page } from "playwright-core";
import { buildRun, mainDecodeGraph, readRawFile, traceFrame } from "@profinfer/exporter";
import { completion, profinfer, repoRoot, tinyModels } from "./support/targets.js";

const pluginDir = join(repoRoot, "grafana-plugin");
const scratch = mkdtempSync(join(tmpdir(), "profinfer-grafana-module-"));
const outDir = join(repoRoot, "test-output", "grafana");
let browser: Browser;
let grafanaModules: string;

/** What Grafana provides to plugins, bundled for the browser from the plugin's own dependencies. */
async function bundleGrafanaModules(): Promise<string> {
  // react-dom/client only for the test to mount the panel, as Grafana's page does
  const names = [
    "react",
    "react-dom",
    "react-dom/client",
    "@grafana/data",
    "@grafana/ui",
    "@grafana/runtime",
    "@emotion/css",
    "@emotion/react",
  ];
  const entry =
    names.map((n, i) => `import * as m${i} from ${JSON.stringify(n)};`).join("\n") +
    `\nwindow.grafanaModules = {${names.map((n, i) => `${JSON.stringify(n)}: m${i}`).join(", ")}};\n`;
  const result = await build({
    stdin: { contents: entry, resolveDir: pluginDir, loader: "js" },
    bundle: true,
    format: "iife",
    platform: "browser",
    minify: true,
    write: false,
    define: { "process.env.NODE_ENV": '"production"', global: "window" },
    loader: {
      ".css": "empty",
      ".svg": "dataurl",
      ".png": "dataurl",
      ".woff": "empty",
      ".woff2": "empty",
      ".ttf": "empty",
    },
    logLevel: "error",
  });
  return result.outputFiles[0]!.text;
}

before(async () => {
  mkdirSync(outDir, { recursive: true });
  grafanaModules = await bundleGrafanaModules();
  browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
});
after(async () => {
  await browser?.close();
  rmSync(scratch, { recursive: true, force: true });
});

declare global {
  interface Window {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    grafanaModules: Record<string, any>;
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    pluginModule: any;
    define: (deps: string[], factory: (...modules: unknown[]) => unknown) => void;
  }
}

async function loadPlugin(): Promise<{ page: Page; errors: string[] }> {
  const page = await browser.newPage({ viewport: { width: 1300, height: 900 } });
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(m.text());
  });
  const esc = (js: string) => js.replace(/<\/script/gi, "<\\/script");
  // Grafana's SystemJS loader resolves AMD dependencies to the modules it shares with plugins
  const define = `window.define = function (deps, factory) { window.pluginModule = factory.apply(null, deps.map(function (d) { return window.grafanaModules[d]; })); };`;
  // Grafana's page sets its boot data before @grafana/runtime reads its config
  const bootData = `window.grafanaBootData = { settings: { buildInfo: { version: "12.2.0" }, featureToggles: {} }, user: {}, navTree: [] };`;
  // tsx compiles this file with esbuild's keepNames: functions handed to page.evaluate call __name
  const keepNames = `window.__name = function (f) { return f; };`;
  // Grafana's core registers the option pane's editors at boot; the options themselves are the plugin's
  const editors = `window.grafanaModules["@grafana/data"].standardEditorsRegistry.setInit(function () { return ["radio", "select", "boolean", "number", "text", "color", "unit", "slider", "multi-select"].map(function (id) { return { id: id, name: id, editor: function () { return null; } }; }); });`;
  // a file page, not about:blank: Grafana's libraries read localStorage as they load
  const html = join(scratch, "harness.html");
  writeFileSync(
    html,
    `<!doctype html><html><body><div id="root"></div><script>${bootData}</script><script>${esc(grafanaModules)}</script><script>${define}${editors}${keepNames}</script><script>${esc(readFileSync(join(pluginDir, "dist", "module.js"), "utf8"))}</script></body></html>`,
  );
  await page.goto(`file://${html}`);
  return { page, errors };
}

describe("dist/module.js in Chromium with Grafana's libraries", () => {
  test("exports a PanelPlugin whose options are grouped by view", async () => {
    const { page, errors } = await loadPlugin();
    const options = await page.evaluate(() => {
      const data = window.grafanaModules["@grafana/data"];
      const plugin = window.pluginModule.plugin;
      const builder = new data.PanelOptionsEditorBuilder();
      plugin.getPanelOptionsSupplier()(builder, { data: [] });
      return {
        isPanelPlugin: plugin instanceof data.PanelPlugin,
        items: builder
          .getItems()
          .map((i: { path: string; category?: string[] }) => [
            i.path,
            (i.category ?? []).join("/"),
          ]),
      };
    });
    assert.ok(options.isPanelPlugin);
    const byPath = Object.fromEntries(options.items);
    assert.equal(byPath.view, "");
    for (const p of [
      "colorMetric",
      "colorScale",
      "colorScheme",
      "fold",
      "foldAggregate",
      "criticalPath",
      "rankdir",
    ])
      assert.equal(byPath[p], "ProfDAG", p);
    for (const p of [
      "heatmapSource",
      "heatmapMode",
      "heatmapLayer",
      "heatmapScale",
      "heatmapScheme",
    ])
      assert.equal(byPath[p], "Expert heatmap", p);
    assert.deepEqual(errors, []);
    await page.close();
  });

  test("its panel draws a real run's trace with Grafana's theme, and names a missing field in PanelDataErrorView", async () => {
    const dir = join(scratch, "run");
    const model = tinyModels().find((m) => m.arch === "qwen2moe")!;
    const ran = await profinfer([
      "record",
      "--no-status",
      "--no-report",
      "--out",
      dir,
      "--",
      ...completion(model.path, 4),
    ]);
    assert.equal(ran.code, 0, ran.stderr.slice(-2000));
    const run = buildRun(readRawFile(join(dir, "events.pinf")));
    const graph = mainDecodeGraph(run)!;
    const frame = traceFrame(run, { opGraphs: [graph] });
    const { page, errors } = await loadPlugin();
    const render = (frames: unknown[], options: Record<string, unknown>) =>
      page.evaluate(
        ({ frames, options }) => {
          const React = window.grafanaModules.react;
          const data = window.grafanaModules["@grafana/data"];
          const plugin = window.pluginModule.plugin;
          const builder = new data.PanelOptionsEditorBuilder();
          plugin.getPanelOptionsSupplier()(builder, { data: [] });
          const defaults = Object.fromEntries(
            builder
              .getItems()
              .map((i: { path: string; defaultValue: unknown }) => [i.path, i.defaultValue]),
          );
          const root = document.getElementById("root")!;
          root.innerHTML = "";
          const mount = document.createElement("div");
          root.appendChild(mount);
          const timeRange = data.getDefaultTimeRange();
          const props = {
            id: 1,
            data: { state: "Done", series: frames.map((f) => data.toDataFrame(f)), timeRange },
            timeRange,
            timeZone: "utc",
            options: { ...defaults, ...options },
            fieldConfig: { defaults: {}, overrides: [] },
            width: 1200,
            height: 800,
            transparent: false,
            renderCounter: 1,
            title: "profinfer",
            eventBus: new data.EventBusSrv(),
            onOptionsChange: () => {},
            onFieldConfigChange: () => {},
            replaceVariables: (s: string) => s,
            onChangeTimeRange: () => {},
          };
          window.grafanaModules["react-dom/client"]
            .createRoot(mount)
            .render(React.createElement(plugin.panel, props));
        },
        { frames, options },
      );
    await render([frame], { view: "dag" });
    await page.waitForSelector("[data-testid=profdag-node]");
    assert.equal(await page.locator("[data-testid=profdag-node]").count(), graph.ops.length);
    await page.screenshot({ path: join(outDir, "grafana-module-profdag.png") });

    await render([frame], { view: "heatmap", heatmapSource: "trace", heatmapMode: "layers" });
    await page.waitForSelector("[data-testid=heatmap-cell]");
    assert.ok((await page.locator("[data-testid=heatmap-cell]").count()) > 0);

    const withoutLogs = { ...frame, fields: frame.fields.filter((f) => f.name !== "logs") };
    await render([withoutLogs], { view: "heatmap", heatmapSource: "trace" });
    await page.waitForFunction(() => document.body.textContent?.includes("Unable to render data"));
    assert.match(
      (await page.textContent("#root")) ?? "",
      /Unable to render data: The Tempo trace frame has no "logs" field/,
    );
    assert.deepEqual(errors, []);
    await page.close();
  });
});
