// SPDX-License-Identifier: Apache-2.0
/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
// The built plugin as each supported Grafana loads it (test/support/grafanaHost.ts): the
// compose file's Grafana 12.2 with React 18, and the newest with React 19. In Chromium,
// dist/module.js gets that version's React, @grafana/data, @grafana/ui and @grafana/runtime as its
// SystemJS shares them, must export a PanelPlugin whose options are the ones the views read, in
// their categories, and its panel component must draw a real run's trace, and name the missing
// field through Grafana's PanelDataErrorView when a frame lacks it.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { chromium, type Browser } from "playwright-core";
import { buildRun, mainDecodeGraph, readRawFile, traceFrame } from "@profinfer/exporter";
import { builtModule, grafanaHosts, openPlugin } from "./support/grafanaHost.js";
import { recordCompletion, repoRoot, tinyModels } from "./support/targets.js";

const scratch = mkdtempSync(join(tmpdir(), "profinfer-grafana-module-"));
const outDir = join(repoRoot, "test-output", "grafana");
let browser: Browser;

before(async () => {
  mkdirSync(outDir, { recursive: true });
  browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
});
after(async () => {
  await browser?.close();
  rmSync(scratch, { recursive: true, force: true });
});

/** A real run's main decode graph as a Tempo trace frame, recorded once for every version. */
let recorded: Promise<{ frame: ReturnType<typeof traceFrame>; ops: number }> | undefined;
function recordedFrame() {
  recorded ??= (async () => {
    const dir = join(scratch, "run");
    const model = tinyModels().find((m) => m.arch === "qwen2moe")!;
    await recordCompletion(dir, model.path, 4);
    const run = buildRun(readRawFile(join(dir, "events.pinf")));
    const graph = mainDecodeGraph(run)!;
    return { frame: traceFrame(run, { opGraphs: [graph] }), ops: graph.ops.length };
  })();
  return recorded;
}

describe("dist/module.js asks Grafana only for what every supported version shares", () => {
  test("its define() names shared modules only, and it bundles no React of its own", () => {
    const { code, requires } = builtModule();
    assert.ok(requires.includes("react") && requires.includes("@grafana/data"));
    for (const host of grafanaHosts())
      for (const module of requires)
        assert.ok(host.shared.includes(module), `Grafana ${host.line} shares ${module}`);
    // React's and react-dom's internals are reached through these names, which minifying keeps
    assert.doesNotMatch(code, /__SECRET_INTERNALS_DO_NOT_USE|__CLIENT_INTERNALS_DO_NOT_USE/);
  });
});

for (const host of grafanaHosts()) {
  describe(`dist/module.js in Chromium as Grafana ${host.version} (React ${host.react}) loads it`, () => {
    test("exports a PanelPlugin whose options are grouped by view", async () => {
      const { page, errors } = await openPlugin(browser, host, scratch);
      const options = await page.evaluate(() => {
        const data = window.grafanaModules["@grafana/data"];
        const plugin = window.pluginModule.plugin;
        const builder = new data.PanelOptionsEditorBuilder();
        plugin.getPanelOptionsSupplier()(builder, { data: [] });
        return {
          react: window.grafanaModules.react.version as string,
          isPanelPlugin: plugin instanceof data.PanelPlugin,
          items: builder
            .getItems()
            .map((i: { path: string; category?: string[] }) => [
              i.path,
              (i.category ?? []).join("/"),
            ]),
        };
      });
      assert.equal(options.react, host.react, "the React this Grafana shares");
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
      for (const p of ["compare", "compareBase", "compareMinChange"])
        assert.equal(byPath[p], "ProfDAG: compare two traces", p);
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
      const { frame, ops } = await recordedFrame();
      const { page, errors } = await openPlugin(browser, host, scratch);
      const size = { width: 1200, height: 800 };
      const render = (frames: unknown[], options: Record<string, unknown>) =>
        page.evaluate(({ frames, options, size }) => window.renderPanel(frames, options, size), {
          frames,
          options,
          size,
        });
      await render([frame], { view: "dag" });
      await page.waitForSelector("[data-testid=profdag-node]");
      assert.equal(await page.locator("[data-testid=profdag-node]").count(), ops);
      await page.screenshot({ path: join(outDir, `grafana-${host.line}-module-profdag.png`) });

      await render([frame], { view: "heatmap", heatmapSource: "trace", heatmapMode: "layers" });
      await page.waitForSelector("[data-testid=heatmap-cell]");
      assert.ok((await page.locator("[data-testid=heatmap-cell]").count()) > 0);

      const withoutLogs = { ...frame, fields: frame.fields.filter((f) => f.name !== "logs") };
      await render([withoutLogs], { view: "heatmap", heatmapSource: "trace" });
      await page.waitForFunction(() =>
        document.body.textContent?.includes("Unable to render data"),
      );
      assert.match(
        (await page.textContent("#root")) ?? "",
        /Unable to render data: The Tempo trace frame has no "logs" field/,
      );
      assert.deepEqual(errors, []);
      await page.close();
    });
  });
}
