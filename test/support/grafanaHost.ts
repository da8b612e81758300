// SPDX-License-Identifier: Apache-2.0
/// <reference lib="dom" />
// The built plugin as each supported Grafana loads it, in Chromium: dist/module.js is an AMD
// module whose dependencies Grafana's SystemJS resolves to the modules it shares with plugins
// (grafana-plugin/sharedModules.json). Each version's shared modules are installed side by side
// in test/grafana-hosts/grafana-<version> (its React, react-dom, @grafana/* and emotion) and
// bundled for the browser from there, one instance each, as Grafana's own page provides them.
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { build, type Plugin } from "esbuild";
import type { Browser, Page } from "playwright-core";
import { repoRoot } from "./targets.js";

export const pluginDir = join(repoRoot, "grafana-plugin");
const hostsDir = join(repoRoot, "test", "grafana-hosts");

export interface GrafanaHost {
  /** major.minor, the key of its list in grafana-plugin/sharedModules.json */
  line: string;
  /** the @grafana/data version installed for it */
  version: string;
  /** the React version installed for it */
  react: string;
  dir: string;
  /** the modules this Grafana shares with plugins */
  shared: string[];
}

const sharedModules = (): Record<string, string[]> =>
  JSON.parse(readFileSync(join(pluginDir, "sharedModules.json"), "utf8")).grafana;

/** Every Grafana the plugin supports, with what is installed for it under test/grafana-hosts/. */
export function grafanaHosts(): GrafanaHost[] {
  const lists = sharedModules();
  const dirs = readdirSync(hostsDir).filter((d) => d.startsWith("grafana-"));
  const lines = dirs.map((d) => d.slice("grafana-".length));
  const unlisted = lines.filter((l) => !(l in lists));
  const uninstalled = Object.keys(lists).filter((l) => !lines.includes(l));
  if (unlisted.length > 0 || uninstalled.length > 0)
    throw new Error(
      `test/grafana-hosts/ and grafana-plugin/sharedModules.json name different Grafana versions ` +
        `(only installed: ${unlisted.join(", ") || "none"}; only listed: ${uninstalled.join(", ") || "none"}): ` +
        "each supported version needs both",
    );
  return lines.map((line) => {
    const dir = join(hostsDir, `grafana-${line}`);
    const version = (name: string) =>
      (createRequire(join(dir, "package.json"))(`${name}/package.json`) as { version: string })
        .version;
    return {
      line,
      version: version("@grafana/data"),
      react: version("react"),
      dir,
      shared: lists[line]!,
    };
  });
}

/**
 * Resolves the host's own dependencies (React, react-dom, @grafana/*, emotion) from its folder
 * wherever they are imported, so that a library hoisted beside the other version's packages still
 * gets this version's single React, as in Grafana's page.
 */
function pinnedTo(host: GrafanaHost): Plugin {
  const pkg = JSON.parse(readFileSync(join(host.dir, "package.json"), "utf8")) as {
    dependencies: Record<string, string>;
  };
  const names = Object.keys(pkg.dependencies);
  const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
  const filter = new RegExp(`^(${names.map(escape).join("|")})(/.*)?$`);
  return {
    name: `grafana-${host.line}`,
    setup(b) {
      b.onResolve({ filter }, async (args) => {
        if (args.pluginData === "pinned") return undefined;
        const r = await b.resolve(args.path, {
          kind: args.kind,
          resolveDir: host.dir,
          pluginData: "pinned",
        });
        return r.errors.length > 0
          ? { errors: r.errors }
          : { path: r.path, sideEffects: r.sideEffects };
      });
    },
  };
}

/** module.js as built, and the modules its define() asks Grafana for. */
export function builtModule(): { code: string; requires: string[] } {
  const code = readFileSync(join(pluginDir, "dist", "module.js"), "utf8");
  const deps = /^define\((\[[^\]]*\])/.exec(code);
  if (!deps) throw new Error("dist/module.js does not start with define([...]): run npm run build");
  return { code, requires: JSON.parse(deps[1]!) as string[] };
}

// Grafana hands these to plugins as { ...module, __useDefault: true } (sharedDependencies.ts)
const USE_DEFAULT = new Set(["lodash", "moment", "jquery"]);

const bundles = new Map<string, Promise<string>>();

/**
 * The shared modules module.js asks for, from this Grafana's packages, as window.grafanaModules;
 * react-dom/client and react-dom besides, for the page to mount the panel as Grafana's does.
 */
function hostBundle(host: GrafanaHost, requires: string[]): Promise<string> {
  const key = `${host.line}:${requires.join(",")}`;
  let bundle = bundles.get(key);
  if (!bundle) {
    const provided = requires.filter((m) => host.shared.includes(m));
    const names = [...new Set([...provided, "react-dom", "react-dom/client"])];
    const entry =
      names.map((n, i) => `import * as m${i} from ${JSON.stringify(n)};`).join("\n") +
      `\nwindow.grafanaModules = {${names
        .map((n, i) =>
          USE_DEFAULT.has(n)
            ? `${JSON.stringify(n)}: Object.assign({}, m${i}, { __useDefault: true })`
            : `${JSON.stringify(n)}: m${i}`,
        )
        .join(", ")}};\n` +
      `window.sharedWithPlugins = ${JSON.stringify(provided)};\n`;
    bundle = build({
      stdin: { contents: entry, resolveDir: host.dir, loader: "js" },
      bundle: true,
      format: "iife",
      platform: "browser",
      minify: true,
      write: false,
      plugins: [pinnedTo(host)],
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
    }).then((r) => r.outputFiles[0]!.text);
    bundles.set(key, bundle);
  }
  return bundle;
}

export interface PluginPage {
  page: Page;
  /** page errors and console errors since the page opened */
  errors: string[];
}

/**
 * A page with this Grafana's shared modules and dist/module.js loaded through a define() that
 * resolves each dependency as Grafana's SystemJS does: to the module shared under that name, or
 * a load error when this Grafana shares none. window.pluginModule is what module.js exported;
 * window.renderPanel(frames, options, size) mounts its panel with Grafana's panel props.
 */
export async function openPlugin(
  browser: Browser,
  host: GrafanaHost,
  scratch: string,
  viewport = { width: 1300, height: 900 },
): Promise<PluginPage> {
  const { code, requires } = builtModule();
  const modules = await hostBundle(host, requires);
  const page = await browser.newPage({ viewport });
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(m.text());
  });
  const esc = (js: string) => js.replace(/<\/script/gi, "<\\/script");
  const define = `window.define = function (deps, factory) {
  window.pluginModule = factory.apply(null, deps.map(function (d) {
    if (window.sharedWithPlugins.indexOf(d) < 0) throw new Error("Grafana ${host.line} shares no module " + d + " with plugins");
    return window.grafanaModules[d];
  }));
};`;
  // Grafana's page sets its boot data before @grafana/runtime reads its config
  const bootData = `window.grafanaBootData = { settings: { buildInfo: { version: ${JSON.stringify(host.version)} }, featureToggles: {} }, user: {}, navTree: [] };`;
  // tsx compiles the tests with esbuild's keepNames: functions handed to page.evaluate call __name
  const keepNames = `window.__name = function (f) { return f; };`;
  // Grafana's core registers the option pane's editors at boot; the options themselves are the plugin's
  const editors = `window.grafanaModules["@grafana/data"].standardEditorsRegistry.setInit(function () { return ["radio", "select", "boolean", "number", "text", "color", "unit", "slider", "multi-select"].map(function (id) { return { id: id, name: id, editor: function () { return null; } }; }); });`;
  const render = `window.renderPanel = function (frames, options, size) {
  var React = window.grafanaModules.react, data = window.grafanaModules["@grafana/data"];
  var plugin = window.pluginModule.plugin, builder = new data.PanelOptionsEditorBuilder();
  plugin.getPanelOptionsSupplier()(builder, { data: [] });
  var defaults = {};
  builder.getItems().forEach(function (i) { defaults[i.path] = i.defaultValue; });
  var root = document.getElementById("root");
  if (window.panelRoot) window.panelRoot.unmount();
  root.innerHTML = "";
  var mount = document.createElement("div");
  root.appendChild(mount);
  var timeRange = data.getDefaultTimeRange();
  var props = {
    id: 1, timeRange: timeRange, timeZone: "utc", transparent: false, renderCounter: 1, title: "profinfer",
    data: { state: "Done", series: frames.map(function (f) { return data.toDataFrame(f); }), timeRange: timeRange },
    options: Object.assign({}, defaults, options), fieldConfig: { defaults: {}, overrides: [] },
    width: size.width, height: size.height, eventBus: new data.EventBusSrv(),
    onOptionsChange: function () {}, onFieldConfigChange: function () {}, onChangeTimeRange: function () {},
    replaceVariables: function (s) { return s; }
  };
  var t0 = performance.now();
  window.panelRoot = window.grafanaModules["react-dom/client"].createRoot(mount);
  window.grafanaModules["react-dom"].flushSync(function () { window.panelRoot.render(React.createElement(plugin.panel, props)); });
  var renderMs = performance.now() - t0;
  var frame = function () { return new Promise(function (r) { requestAnimationFrame(r); }); };
  return frame().then(frame).then(function () { return { renderMs: renderMs, paintedMs: performance.now() - t0 }; });
};`;
  // a file page, not about:blank: Grafana's libraries read localStorage as they load
  const html = join(scratch, `grafana-${host.line}.html`);
  writeFileSync(
    html,
    `<!doctype html><html><body style="margin:0"><div id="root"></div><script>${bootData}</script><script>${esc(modules)}</script><script>${define}${editors}${keepNames}${render}</script><script>${esc(code)}</script></body></html>`,
  );
  await page.goto(`file://${html}`);
  return { page, errors };
}

declare global {
  interface Window {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    grafanaModules: Record<string, any>;
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    pluginModule: any;
    renderPanel(
      frames: unknown[],
      options: Record<string, unknown>,
      size: { width: number; height: number },
    ): Promise<{ renderMs: number; paintedMs: number }>;
  }
}
