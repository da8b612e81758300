// SPDX-License-Identifier: Apache-2.0
/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
// The plugin's views in a real browser (Debian's Chromium driven by playwright-core) with data
// recorded from real llama.cpp runs, in each supported Grafana (test/support/grafanaHost.ts: the
// compose file's 12.2 with React 18 and the newest with React 19, dist/module.js loaded as their
// SystemJS does): ProfDAG has exactly the graph's operators and data edges, folding the layers and
// unfolding them restores them, the expert heatmap has layers x experts cells for the MoE model;
// report.html opens with the network off and no console error.
// Screenshots and render times go to test-output/grafana/.
import assert from "node:assert/strict";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { chromium, type Browser, type Page } from "playwright-core";
import {
  TINY_MODELS,
  buildRun,
  displayOpName,
  mainDecodeGraph,
  readRawFile,
  traceFrame,
  type GraphRun,
  type OpRun,
  type Run,
} from "@profinfer/exporter";
import { diffTensorKey, type TraceFrame } from "@profinfer/contract";
import { benchModel, completion, profinfer, repoRoot, tinyModels } from "./support/targets.js";
import { makeNodeGraphFrames } from "./support/frames.js";
import { grafanaHosts, openPlugin, type GrafanaHost } from "./support/grafanaHost.js";

const CHROMIUM = "/usr/bin/chromium";
const outDir = join(repoRoot, "test-output", "grafana");
const scratch = mkdtempSync(join(tmpdir(), "profinfer-grafana-"));
let browser: Browser;
const timings: Record<string, unknown> = {};

before(async () => {
  mkdirSync(outDir, { recursive: true });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
});
after(async () => {
  await browser?.close();
  writeFileSync(join(outDir, "timings.json"), JSON.stringify(timings, null, 2) + "\n");
  rmSync(scratch, { recursive: true, force: true });
});

/** A real run of llama-completion under profinfer record; its folder and model. */
async function recordRun(
  name: string,
  modelPath: string,
  tokens: number,
): Promise<{ dir: string; run: Run }> {
  const dir = join(scratch, name);
  const ran = await profinfer([
    "record",
    "--no-status",
    "--out",
    dir,
    "--",
    ...completion(modelPath, tokens),
  ]);
  assert.equal(ran.code, 0, ran.stderr.slice(-3000));
  return { dir, run: buildRun(readRawFile(join(dir, "events.pinf"))) };
}

/** The operator DAG of a graph run as the trace model has it: operators and producer -> consumer pairs. */
function expectedDag(graph: GraphRun): { nodes: Set<number>; edges: Set<string> } {
  const dag = graph.snapshot!.dag;
  const opOf = new Map<number, OpRun>();
  for (const op of graph.ops)
    for (const i of [op.nodeIndex, ...(op.fusedWith ?? [])]) opOf.set(i, op);
  const edges = new Set<string>();
  for (const e of dag.edges) {
    if (e.from.kind !== "node") continue;
    const from = opOf.get(e.from.index);
    const to = opOf.get(e.to);
    if (from && to && from !== to) edges.add(`${from.nodeIndex}->${to.nodeIndex}`);
  }
  return { nodes: new Set(graph.ops.map((o) => o.nodeIndex)), edges };
}

/** span id -> ggml.node.index, read from the frame's tags column */
function nodeIndexBySpan(frame: TraceFrame): Map<string, number> {
  const ids = frame.fields.find((f) => f.name === "spanID")!.values as string[];
  const tags = frame.fields.find((f) => f.name === "tags")!.values as {
    key: string;
    value: unknown;
  }[][];
  const out = new Map<string, number>();
  ids.forEach((id, i) => {
    const index = tags[i]!.find((t) => t.key === "ggml.node.index");
    if (index) out.set(id, index.value as number);
  });
  return out;
}

/** A page with the plugin loaded in this Grafana; its errors listed on the page. */
async function harness(host: GrafanaHost): Promise<Page> {
  const { page, errors } = await openPlugin(browser, host, scratch, { width: 1440, height: 1000 });
  (page as Page & { errors: string[] }).errors = errors;
  return page;
}

/** Mounts the plugin's panel with these frames and options; its render and paint times. */
function renderPanel(
  page: Page,
  frames: unknown[],
  options: Record<string, unknown>,
  size = { width: 1400, height: 900 },
) {
  return page.evaluate(({ frames, options, size }) => window.renderPanel(frames, options, size), {
    frames,
    options,
    size,
  });
}

async function drawnDag(page: Page, spans: Map<string, number>) {
  const drawn = await page.evaluate(() => ({
    nodes: [...document.querySelectorAll("[data-testid=profdag-node]")].map((n) =>
      n.getAttribute("data-node-id")!,
    ),
    edges: [...document.querySelectorAll("[data-testid=profdag-edge]")].map(
      (e) => `${e.getAttribute("data-source")}->${e.getAttribute("data-target")}`,
    ),
    folded: [...document.querySelectorAll("[data-folded]")].map((n) =>
      Number(n.getAttribute("data-folded")),
    ),
  }));
  const node = (id: string) => spans.get(id) ?? id;
  return {
    nodes: new Set(drawn.nodes.map(node)),
    nodeCount: drawn.nodes.length,
    edges: new Set(drawn.edges.map((e) => e.split("->").map(node).join("->"))),
    edgeCount: drawn.edges.length,
    folded: drawn.folded,
  };
}

/**
 * Wheel-zooms ProfDAG 20 times and returns the median ms from each wheel event to the second
 * animation frame after it (the zoomed graph painted); checks that each step changed the view.
 */
async function zoomFrameMs(page: Page): Promise<number> {
  const steps = await page.evaluate(async () => {
    const svg = document.querySelector("[data-testid=profdag-svg]")!;
    const viewport = svg.querySelector("g[transform]")!;
    const frame = () => new Promise((resolve) => requestAnimationFrame(resolve));
    const out: { ms: number; changed: boolean }[] = [];
    for (let i = 0; i < 20; i++) {
      const before = viewport.getAttribute("transform");
      const t0 = performance.now();
      svg.dispatchEvent(
        new WheelEvent("wheel", {
          deltaY: i < 10 ? -120 : 120,
          clientX: 600,
          clientY: 300,
          bubbles: true,
          cancelable: true,
        }),
      );
      await frame();
      await frame();
      out.push({
        ms: performance.now() - t0,
        changed: viewport.getAttribute("transform") !== before,
      });
    }
    return out;
  });
  assert.ok(
    steps.every((s) => s.changed),
    "every wheel step zooms",
  );
  const sorted = steps.map((s) => s.ms).sort((a, b) => a - b);
  return Math.round(sorted[Math.floor(sorted.length / 2)]! * 10) / 10;
}

const runs = new Map<string, Promise<{ dir: string; run: Run }>>();

/** The run recorded under this name, recorded once for every Grafana version and test. */
function runOf(name: string, modelPath: () => string, tokens: number) {
  let run = runs.get(name);
  if (!run) {
    run = recordRun(name, modelPath(), tokens);
    runs.set(name, run);
  }
  return run;
}
const tinyModel = (arch: string) => () => tinyModels().find((m) => m.arch === arch)!.path;

for (const host of grafanaHosts()) {
  describe(`ProfDAG of real runs in Chromium, in Grafana ${host.version} (React ${host.react})`, () => {
    const shot = (name: string) => join(outDir, `grafana-${host.line}-${name}.png`);
    for (const arch of ["llama", "qwen2", "gemma2", "qwen2moe"]) {
      test(`${arch}: the DAG has exactly the decode graph's operators and edges; fold and unfold restore them`, async () => {
        // arrange: a real run, its main decode graph as the trace frame the panel reads
        const recorded = await runOf(arch, tinyModel(arch), 6);
        const graph = mainDecodeGraph(recorded.run)!;
        assert.ok(graph, "the run has a decode graph with operators");
        const frame = traceFrame(recorded.run, { opGraphs: [graph] });
        const expected = expectedDag(graph);
        const spans = nodeIndexBySpan(frame);
        const page = await harness(host);

        // act
        const timing = await renderPanel(page, [frame], { view: "dag" });

        // assert: the same operators and the same data edges, each once
        const drawn = await drawnDag(page, spans);
        assert.equal(drawn.nodeCount, expected.nodes.size);
        assert.deepEqual(drawn.nodes, expected.nodes);
        assert.equal(drawn.edgeCount, expected.edges.size);
        assert.deepEqual(drawn.edges, expected.edges);
        await page.screenshot({ path: shot(`profdag-${arch}`) });
        timings[`grafana-${host.line}/profdag-${arch}`] = {
          nodes: drawn.nodeCount,
          edges: drawn.edgeCount,
          ...timing,
        };

        // fold: one block for all layers, each folded node standing for one operator per layer
        await page.click("[data-testid=profdag-fold]");
        const folded = await drawnDag(page, spans);
        const layered = graph.ops.filter((o) => o.tensor.layer !== null).length;
        assert.ok(folded.nodeCount < expected.nodes.size, "folding shrinks the graph");
        const inBlocks = folded.folded.reduce((a, b) => a + b, 0);
        // every operator of a layer is in a block (with llama.cpp's unnamed tensors of a layer)
        assert.ok(inBlocks >= layered, "the folded blocks stand for every layered operator");
        assert.equal(folded.nodeCount - folded.folded.length + inBlocks, expected.nodes.size);
        const nLayer = TINY_MODELS.find((m) => m.arch === arch)!.nLayer;
        assert.ok(
          folded.folded.every((n) => n <= nLayer),
          "at most one member per layer",
        );
        // every operator of layer 0 has its counterpart in every other layer (the last layer of
        // llama.cpp's graphs adds the get_rows of the output rows, which stay apart)
        const full = folded.folded.filter((n) => n === nLayer).length;
        assert.ok(full >= graph.ops.filter((o) => o.tensor.layer === 0).length);
        await page.screenshot({ path: shot(`profdag-${arch}-folded`) });

        // unfold: exactly the graph again
        await page.click("[data-testid=profdag-fold]");
        const unfolded = await drawnDag(page, spans);
        assert.deepEqual(unfolded.nodes, expected.nodes);
        assert.deepEqual(unfolded.edges, expected.edges);

        // the critical path is a chain of drawn edges
        const critical = await page
          .locator("[data-testid=profdag-edge][data-critical=true]")
          .count();
        const criticalNodes = await page
          .locator("[data-testid=profdag-node][data-critical=true]")
          .count();
        assert.ok(criticalNodes >= 2);
        assert.equal(critical, criticalNodes - 1);

        // the tooltip names the tensor, its shape and per-thread times
        await page.locator("[data-testid=profdag-node]").first().dispatchEvent("mousemove");
        await page.hover("[data-testid=profdag-node] >> nth=0", { force: true });
        const tooltip = await page.locator("[data-testid=profdag-tooltip]").textContent();
        assert.match(tooltip ?? "", /tensor.*shape.*\[/s);
        assert.match(tooltip ?? "", /thread/);
        assert.deepEqual((page as Page & { errors: string[] }).errors, []);
        await page.close();
      });
    }

    test("the bench model's decode graph (LLaMA-3.2-1B shapes) draws exactly too", async () => {
      const recorded = await runOf("bench", benchModel, 2);
      const graph = mainDecodeGraph(recorded.run)!;
      const frame = traceFrame(recorded.run, { opGraphs: [graph] });
      const expected = expectedDag(graph);
      const page = await harness(host);
      const timing = await renderPanel(page, [frame], { view: "dag" });
      const drawn = await drawnDag(page, nodeIndexBySpan(frame));
      assert.deepEqual(drawn.nodes, expected.nodes);
      assert.deepEqual(drawn.edges, expected.edges);
      await page.screenshot({ path: shot("profdag-bench") });
      timings[`grafana-${host.line}/profdag-bench`] = {
        nodes: drawn.nodeCount,
        edges: drawn.edgeCount,
        ...timing,
      };
      // zooming rewrites one transform and repaints: the time to the next painted frame
      timings[`grafana-${host.line}/profdag-bench-zoom-frame-ms`] = await zoomFrameMs(page);

      // 1,000+ operators: four decode steps of the bench graph chained (each step's output feeds
      // the next step's embedding), as a nodes/edges frame pair of Grafana's node graph
      const copies = 4;
      const order = [...expected.nodes].sort((a, b) => a - b);
      const nodes: { id: string; title: string; subtitle: string; mainstat: number }[] = [];
      const edges: [string, string][] = [];
      for (let c = 0; c < copies; c++) {
        for (const op of graph.ops)
          nodes.push({
            id: `${c}:${op.nodeIndex}`,
            title: op.tensor.name,
            subtitle: op.label.toLowerCase(),
            mainstat: op.durationNs / 1e6,
          });
        for (const e of expected.edges) {
          const [a, b] = e.split("->");
          edges.push([`${c}:${a}`, `${c}:${b}`]);
        }
        if (c > 0) edges.push([`${c - 1}:${order[order.length - 1]}`, `${c}:${order[0]}`]);
      }
      const pair = makeNodeGraphFrames(nodes, edges, { mainstatUnit: "ms" });
      const big = await renderPanel(page, pair, { view: "dag", criticalPath: false });
      assert.ok(nodes.length >= 1000);
      assert.equal(await page.locator("[data-testid=profdag-node]").count(), nodes.length);
      assert.equal(await page.locator("[data-testid=profdag-edge]").count(), edges.length);
      timings[`grafana-${host.line}/profdag-bench-x4-node-graph`] = {
        nodes: nodes.length,
        edges: edges.length,
        ...big,
      };
      timings[`grafana-${host.line}/profdag-bench-x4-zoom-frame-ms`] = await zoomFrameMs(page);
      await page.screenshot({ path: shot("profdag-bench-x4") });
      assert.deepEqual((page as Page & { errors: string[] }).errors, []);
      await page.close();
    });
  });

  describe(`ProfDAG comparing two real runs' traces in Chromium, in Grafana ${host.version} (React ${host.react})`, () => {
    const shot = (name: string) => join(outDir, `grafana-${host.line}-${name}.png`);
    test("tiny-llama (query A) against tiny-qwen2 (query B): both graphs, the nodes only one has outlined, the rest coloured by their change", async () => {
      // arrange: each run's main decode graph as the trace of its own query
      const [llama, qwen2] = [
        await runOf("llama", tinyModel("llama"), 6),
        await runOf("qwen2", tinyModel("qwen2"), 6),
      ];
      const graphs = [mainDecodeGraph(llama.run)!, mainDecodeGraph(qwen2.run)!];
      const frames = [
        { ...traceFrame(qwen2.run, { opGraphs: [graphs[1]!] }), refId: "B" },
        { ...traceFrame(llama.run, { opGraphs: [graphs[0]!] }), refId: "A" },
      ];
      // each operator's key as profinfer diff keys tensors, and each key's time, from the trace model
      const keyed = (graph: GraphRun) => {
        const time = new Map<string, number>();
        const keys = new Map<number, string>();
        for (const op of graph.ops) {
          const key = diffTensorKey(op.tensor.name, displayOpName(op.label), op.tensor.layer);
          keys.set(op.nodeIndex, key);
          time.set(key, (time.get(key) ?? 0) + op.durationNs);
        }
        return { keys, time, total: [...time.values()].reduce((a, b) => a + b, 0) };
      };
      const [a, b] = graphs.map(keyed) as [ReturnType<typeof keyed>, ReturnType<typeof keyed>];
      const page = await harness(host);

      // act
      await renderPanel(
        page,
        frames,
        { view: "dag", compare: true, compareBase: "A" },
        { width: 1400, height: 800 },
      );

      // assert: each side draws its own graph's operators
      for (const [role, graph, frame, own, other] of [
        ["base", graphs[0]!, frames[1]!, a, b],
        ["new", graphs[1]!, frames[0]!, b, a],
      ] as const) {
        const spans = nodeIndexBySpan(frame);
        const drawn = await page.evaluate(
          (role) =>
            [
              ...document.querySelectorAll(
                `[data-testid=profdag-${role}] [data-testid=profdag-node]`,
              ),
            ].map(
              (n) => [n.getAttribute("data-node-id")!, n.getAttribute("data-change")!] as const,
            ),
          role,
        );
        assert.deepEqual(
          new Set(drawn.map(([id]) => spans.get(id))),
          new Set(graph.ops.map((o) => o.nodeIndex)),
          `${role}: its graph's operators`,
        );
        let judged = 0;
        for (const [id, change] of drawn) {
          const key = own.keys.get(spans.get(id)!)!;
          const [mine, theirs] = [own.time.get(key)!, other.time.get(key)];
          if (theirs === undefined) {
            assert.equal(change, role === "new" ? "added" : "removed", `${role}: ${key}`);
            continue;
          }
          // clear cases only: far beyond the 15% bound and 1% of the graph, or well within it
          const [was, is] = role === "new" ? [theirs, mine] : [mine, theirs];
          const big = Math.abs(is - was) >= 0.02 * Math.max(a.total, b.total);
          if (big && is > was * 1.5) assert.equal(change, "slower", `${role}: ${key}`);
          else if (big && is < was / 1.5) assert.equal(change, "faster", `${role}: ${key}`);
          else if (Math.abs(is / was - 1) < 0.05) assert.equal(change, "same", `${role}: ${key}`);
          else continue;
          judged++;
        }
        assert.ok(judged > 0, `${role}: some nodes' change is clear-cut`);
      }
      // the structural difference is there: qwen2's bias adds only in B, llama's attn_out only in A
      assert.ok((await page.locator("[data-testid=profdag-new] [data-change=added]").count()) > 0);
      assert.ok(
        (await page.locator("[data-testid=profdag-base] [data-change=removed]").count()) > 0,
      );
      assert.equal(await page.locator("[data-testid=profdag-change-legend]").count(), 2);
      await page.screenshot({ path: shot("profdag-compare-llama-qwen2") });

      // one trace only: the panel says a second query is needed
      await renderPanel(page, [frames[1]!], { view: "dag", compare: true, compareBase: "A" });
      await page.waitForFunction(() =>
        document.body.textContent?.includes("Unable to render data"),
      );
      assert.match((await page.textContent("#root")) ?? "", /Comparing needs two traces/);
      assert.deepEqual((page as Page & { errors: string[] }).errors, []);
      await page.close();
    });
  });

  describe(`expert heatmap of a real MoE run in Chromium, in Grafana ${host.version} (React ${host.react})`, () => {
    const shot = (name: string) => join(outDir, `grafana-${host.line}-${name}.png`);
    test("tiny-qwen2moe: layers x experts cells whose counts are the recorded routing; tokens mode: one row per token", async () => {
      const config = TINY_MODELS.find((m) => m.arch === "qwen2moe")!;
      const recorded = await runOf("qwen2moe", tinyModel("qwen2moe"), 6);
      const frame = traceFrame(recorded.run, { opGraphs: [mainDecodeGraph(recorded.run)!] });
      const page = await harness(host);
      await renderPanel(
        page,
        [frame],
        { view: "heatmap", heatmapMode: "layers" },
        { width: 900, height: 500 },
      );
      const cells = await page.locator("[data-testid=heatmap-cell]").count();
      assert.equal(cells, config.nLayer * config.nExpert!);
      // each layer's row sums to k choices per routed token row
      const values = await page.evaluate(() =>
        [...document.querySelectorAll("[data-testid=heatmap-cell]")].map((c) => [
          Number(c.getAttribute("data-row")),
          Number(c.getAttribute("data-value")),
        ]),
      );
      const rowsPerLayer = new Map<number, number>();
      for (const t of recorded.run.tokens)
        for (const [layer, rows] of t.experts ?? [])
          rowsPerLayer.set(layer, (rowsPerLayer.get(layer) ?? 0) + rows.length);
      for (let layer = 0; layer < config.nLayer; layer++) {
        const sum = values.filter(([r]) => r === layer).reduce((a, [, v]) => a + v!, 0);
        assert.equal(sum, rowsPerLayer.get(layer)! * config.nExpertUsed!, `layer ${layer}`);
      }
      await page.hover("[data-testid=heatmap-cell] >> nth=5");
      assert.match(
        (await page.locator("[data-testid=heatmap-tooltip]").textContent()) ?? "",
        /layer 0, expert 5: chosen \d+ times/,
      );
      await page.screenshot({ path: shot("heatmap-qwen2moe-layers") });

      await renderPanel(
        page,
        [frame],
        { view: "heatmap", heatmapMode: "tokens", heatmapLayer: 0 },
        { width: 900, height: 700 },
      );
      const tokenCells = await page.locator("[data-testid=heatmap-cell]").count();
      assert.equal(tokenCells, rowsPerLayer.get(0)! * config.nExpert!);
      await page.screenshot({ path: shot("heatmap-qwen2moe-tokens") });
      assert.deepEqual((page as Page & { errors: string[] }).errors, []);
      await page.close();
    });
  });
}

describe("report.html of a real run", () => {
  test("record writes it; replay rewrites it byte for byte; --no-report leaves it out; report --out writes it anywhere", async () => {
    const recorded = await runOf("llama", tinyModel("llama"), 6);
    const file = join(recorded.dir, "report.html");
    const original = readFileSync(file);
    rmSync(file);
    const noReport = await profinfer(["replay", "--no-report", recorded.dir]);
    assert.equal(noReport.code, 0, noReport.stderr);
    assert.ok(!existsSync(file));
    const replay = await profinfer(["replay", recorded.dir]);
    assert.equal(replay.code, 0, replay.stderr);
    assert.match(replay.stderr, /profinfer: report .*report\.html/);
    assert.ok(readFileSync(file).equals(original), "the same report from the same events");
    const elsewhere = join(scratch, "elsewhere.html");
    const report = await profinfer(["report", recorded.dir, "--out", elsewhere]);
    assert.equal(report.code, 0, report.stderr);
    assert.ok(readFileSync(elsewhere).equals(original));
    const missing = await profinfer(["report", scratch]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /holds no events\.pinf/);
  });

  for (const arch of ["llama", "qwen2moe"]) {
    test(`${arch}: opens in Chromium with the network off and renders every section with no console error`, async () => {
      const recorded = await runOf(arch, tinyModel(arch), 6);
      const file = join(recorded.dir, "report.html");
      const size = statSync(file).size;
      timings[`report-${arch}-bytes`] = size;
      const context = await browser.newContext({
        offline: true,
        viewport: { width: 1400, height: 1000 },
      });
      const requests: string[] = [];
      await context.route("**/*", (route) => {
        const url = route.request().url();
        if (url.startsWith("file:")) return route.continue();
        requests.push(url);
        return route.abort();
      });
      const page = await context.newPage();
      const problems: string[] = [];
      page.on("pageerror", (e) => problems.push(e.message));
      page.on("console", (m) => {
        if (m.type() === "error" || m.type() === "warning")
          problems.push(`${m.type()}: ${m.text()}`);
      });
      await page.goto(`file://${file}`);
      await page.waitForSelector("[data-testid=profdag-node]");
      const graph = mainDecodeGraph(recorded.run)!;
      assert.equal(await page.locator("[data-testid=profdag-node]").count(), graph.ops.length);
      assert.equal(await page.locator("[data-testid=timeline-overview]").count(), 1);
      assert.equal(await page.locator("[data-testid=timeline-graph]").count(), 1);
      assert.equal(
        await page.locator("[data-testid=stats-ops] tbody tr").count(),
        JSON.parse(readFileSync(join(recorded.dir, "stats.json"), "utf8")).ops.length,
      );
      // the findings first, one item each
      const { findings } = JSON.parse(readFileSync(join(recorded.dir, "stats.json"), "utf8")) as {
        findings: unknown[];
      };
      assert.equal(await page.locator("[data-testid=report-finding]").count(), findings.length);
      assert.equal(await page.locator("[data-testid=report-findings]").count(), 1);
      const heatmaps = await page.locator("[data-testid=expert-heatmap]").count();
      assert.equal(heatmaps, arch === "qwen2moe" ? 2 : 0);
      await page.screenshot({ path: join(outDir, `report-${arch}.png`), fullPage: true });
      assert.deepEqual(requests, [], "the report asks the network for nothing");
      assert.deepEqual(problems, []);
      await context.close();
    });
  }
});
