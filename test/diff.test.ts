// SPDX-License-Identifier: Apache-2.0
// profinfer diff on real runs (traced with real eBPF, root): runs of one command mark nothing as
// changed (the false positives over several pairs are counted and must be none); the bench model
// at -t 1 against -t 2 has faster matrix multiplies, barrier waits and a second thread only in the
// second, the findings of each run's stats.json, and an HTML page (opened in Chromium) whose two
// ProfDAGs are coloured by the diff's verdicts; llama-server's requests at -t 1 and -t 2 against the
// server's own timings; bad input (a --level metrics run, a corrupt file) says what it cannot
// compare.
import assert from "node:assert/strict";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { chromium } from "playwright-core";
import {
  REPORT_DATA_ELEMENT_ID,
  diffTensorKey,
  type DiffPageData,
  type DiffReport,
  type DiffSection,
  type ProfStats,
  type TraceFrame,
} from "@profinfer/contract";
import {
  buildRun,
  mainDecodeGraph,
  readGguf,
  readRawFile,
  tensorByteSize,
} from "@profinfer/exporter";
import { evalCallbackCommand, evalCallbackNodes, NOT_COMPUTED } from "./support/evalCallback.js";
import { recordServer, runInTurn, type LoadResponse } from "./support/llamaServerLoad.js";
import {
  benchModel,
  profinfer,
  recordCompletion,
  repoRoot,
  runProgram,
  tinyModels,
} from "./support/targets.js";

const scratch = mkdtempSync(join(tmpdir(), "profinfer-diff-"));
after(() => rmSync(scratch, { recursive: true, force: true }));
let counter = 0;

function record(modelPath: string, tokens: number, extra: string[], recordArgs: string[] = []) {
  return recordCompletion(join(scratch, `run-${++counter}`), modelPath, tokens, extra, recordArgs);
}

async function diff(base: string, next: string): Promise<DiffReport> {
  const ran = await profinfer(["diff", base, next, "--json", "-"]);
  assert.equal(ran.code, 0, ran.stderr);
  return JSON.parse(ran.stdout) as DiffReport;
}

const changed = (report: DiffReport) =>
  report.sections.flatMap((s) =>
    s.rows
      .filter((r) => r.verdict === "slower" || r.verdict === "faster")
      .map((r) => `${s.name}: ${r.name} ${r.verdict} (${((r.relative ?? 0) * 100).toFixed(1)}%)`),
  );
const sectionOf = (report: DiffReport, name: string): DiffSection => {
  const s = report.sections.find((x) => x.name === name);
  assert.ok(s, `a ${name} section`);
  return s;
};

let tiny = "";
before(() => {
  tiny = tinyModels().find((m) => m.arch === "llama")!.path;
});

test("runs of one command: nothing changed beyond the noise, over every pair of four runs", async (t) => {
  const runs: string[] = [];
  // the bench model on one thread of these 2-core machines: profinfer's own work (start-up,
  // reading the ring) has a core of its own instead of taking turns with the target's threads,
  // and its calls (tens of ms) are not dominated by the probes' µs as a tiny model's are
  const model = benchModel();
  for (let i = 0; i < 4; i++) runs.push(await record(model, 24, ["-t", "1"]));
  const falsePositives: string[] = [];
  let rows = 0;
  for (let i = 0; i < runs.length; i++) {
    for (let j = i + 1; j < runs.length; j++) {
      const report = await diff(runs[i]!, runs[j]!);
      rows += report.sections.reduce(
        (n, s) => n + s.rows.filter((r) => r.interval !== null).length,
        0,
      );
      assert.deepEqual(sectionOf(report, "operators").added, [], "the same operators");
      falsePositives.push(...changed(report).map((c) => `runs ${i + 1}-${j + 1}: ${c}`));
    }
  }
  assert.ok(rows > 500, `${rows} figures judged`);
  t.diagnostic(`${falsePositives.length} false positives among ${rows} figures judged`);
  assert.deepEqual(falsePositives, [], `false positives among ${rows} figures judged`);
});

describe("the bench model at -t 1 against -t 2", () => {
  let report: DiffReport;
  let page = "";
  before(async () => {
    const model = benchModel();
    // 31 decode calls a side: one call held up by another task moves a mean of 15 too far
    const one = await record(model, 32, ["-t", "1"]);
    const two = await record(model, 32, ["-t", "2"]);
    report = await diff(one, two);
    page = join(scratch, "diff.html");
    const ran = await profinfer(["diff", one, two, "--html", page]);
    assert.equal(ran.code, 0, ran.stderr);
    assert.match(ran.stderr, /profinfer: diff page .*diff\.html/);
  });

  test("matrix multiplies per decode call take less time, beyond the noise", () => {
    const mulMat = sectionOf(report, "operators").rows.find((r) => r.name === "mul_mat");
    assert.ok(mulMat, "mul_mat compared");
    assert.equal(mulMat.verdict, "faster", JSON.stringify(mulMat));
    assert.ok(mulMat.change < 0 && mulMat.interval![1] < -0.15, JSON.stringify(mulMat));
    const call = sectionOf(report, "phases").rows.find((r) => r.name === "decode call");
    assert.equal(call?.verdict, "faster", JSON.stringify(call));
  });

  test("barrier waits appear only with two threads", () => {
    const barrier = sectionOf(report, "barrier wait");
    assert.ok(barrier.rows.length >= 5, `${barrier.rows.length} op types`);
    for (const r of barrier.rows) assert.equal(r.base, 0, `${r.name} waits with one thread`);
    const waited = barrier.rows.reduce((n, r) => n + (r.new ?? 0), 0);
    assert.ok(waited > 0, "two threads wait at barriers");
    assert.equal(barrier.rows.find((r) => r.name === "mul_mat")?.verdict, "slower");
  });

  test("threads by place in the pool: the second thread only in the second run", () => {
    const threads = sectionOf(report, "threads");
    assert.deepEqual(threads.added, [
      "thread 1: barrier wait",
      "thread 1: compute",
      "thread 1: preempted",
    ]);
    assert.deepEqual(threads.removed, []);
    // the caller's own share of the matrix work halves: its compute per call is faster
    const compute = threads.rows.find((r) => r.name === "thread 0: compute")!;
    assert.equal(compute.verdict, "faster", JSON.stringify(compute));
    const waits = threads.rows.find((r) => r.name === "thread 0: barrier wait")!;
    assert.equal(waits.base, 0, "one thread never waits at a barrier");
  });

  test("findings: those of each run's stats.json, matched by id", () => {
    const ids = (dir: string) =>
      (JSON.parse(readFileSync(join(dir, "stats.json"), "utf8")) as ProfStats).findings.map(
        (f) => f.id,
      );
    const [a, b] = [ids(report.base.dir), ids(report.new.dir)];
    const f = report.findings;
    assert.deepEqual(f.appeared.map((x) => x.id).sort(), b.filter((id) => !a.includes(id)).sort());
    assert.deepEqual(
      f.disappeared.map((x) => x.id).sort(),
      a.filter((id) => !b.includes(id)).sort(),
    );
    assert.deepEqual(f.both.map((x) => x.id).sort(), a.filter((id) => b.includes(id)).sort());
  });

  test("the HTML page in Chromium: both ProfDAGs, each node coloured by its tensor's verdict", async () => {
    const html = readFileSync(page, "utf8");
    const data = JSON.parse(
      new RegExp(
        `<script type="application/json" id="${REPORT_DATA_ELEMENT_ID}">(.*?)</script>`,
        "s",
      ).exec(html)![1]!,
    ) as DiffPageData;
    // each side's nodes by span id, keyed as the diff keys tensors, from the embedded frames
    const keysOf = (frame: TraceFrame) => {
      const field = (name: string) => frame.fields.find((f) => f.name === name)!.values;
      const tags = field("tags") as { key: string; value: unknown }[][];
      const out = new Map<string, string>();
      (field("spanID") as string[]).forEach((id, i) => {
        const tag = (key: string) => tags[i]!.find((t) => t.key === key)?.value;
        if (tag("ggml.op") === undefined) return;
        const layer = tag("ggml.layer");
        out.set(
          id,
          diffTensorKey(
            String(tag("ggml.tensor.name")),
            String(tag("ggml.op")),
            layer === undefined ? null : Number(layer),
          ),
        );
      });
      return out;
    };
    const verdicts = new Map(sectionOf(report, "tensors").rows.map((r) => [r.name, r.verdict]));
    const browser = await chromium.launch({
      executablePath: "/usr/bin/chromium",
      args: ["--no-sandbox"],
    });
    try {
      const context = await browser.newContext({
        offline: true,
        viewport: { width: 1500, height: 1000 },
      });
      const tab = await context.newPage();
      const problems: string[] = [];
      tab.on("pageerror", (e) => problems.push(e.message));
      tab.on("console", (m) => {
        if (m.type() === "error") problems.push(m.text());
      });
      await tab.goto(`file://${page}`);
      await tab.waitForSelector("[data-testid=profdag-new] [data-testid=profdag-node]");
      const fills = new Map<string, Set<string>>();
      for (const [role, side, run] of [
        ["base", data.base, report.base.dir],
        ["new", data.new, report.new.dir],
      ] as const) {
        const keys = keysOf(side.frames[0]!);
        const drawn = await tab.evaluate(
          (role) =>
            [
              ...document.querySelectorAll(
                `[data-testid=profdag-${role}] [data-testid=profdag-node]`,
              ),
            ].map((n) => ({
              id: n.getAttribute("data-node-id")!,
              change: n.getAttribute("data-change"),
              fill: n.querySelector("path")!.getAttribute("fill")!,
            })),
          role,
        );
        // every operator of the run's main decode graph, each once
        const graph = mainDecodeGraph(buildRun(readRawFile(join(run, "events.pinf"))))!;
        assert.equal(drawn.length, graph.ops.length, `${role}: the main decode graph's operators`);
        for (const n of drawn) {
          const key = keys.get(n.id);
          assert.ok(key, `${role}: node ${n.id} is an operator span of the frame`);
          assert.equal(n.change, verdicts.get(key), `${role}: ${key}`);
          fills.set(n.change!, (fills.get(n.change!) ?? new Set()).add(n.fill));
        }
      }
      // one colour per verdict, another for each verdict, and changes beyond the noise among them
      for (const [mark, colours] of fills) assert.equal(colours.size, 1, mark);
      const colours = [...fills.values()].map((c) => [...c][0]);
      assert.equal(new Set(colours).size, colours.length, `${[...fills.keys()]}: ${colours}`);
      assert.ok(fills.has("faster") || fills.has("slower"), [...fills.keys()].join(", "));
      // the tables: mul_mat's row says what the JSON says; the findings listed
      const mulMat = tab.locator("[data-testid=diff-section-operators] tr", {
        hasText: /^mul_mat/,
      });
      assert.equal(
        await mulMat.first().getAttribute("data-verdict"),
        sectionOf(report, "operators").rows.find((r) => r.name === "mul_mat")!.verdict,
      );
      const f = report.findings;
      assert.equal(
        await tab.locator("[data-testid=diff-findings] > li[data-finding-id]").count(),
        f.appeared.length + f.disappeared.length + f.both.length,
      );
      await tab.screenshot({
        path: join(repoRoot, "test-output", "diff-t1-t2.png"),
        fullPage: true,
      });
      assert.deepEqual(problems, []);
    } finally {
      await browser.close();
    }
  });

  test("the table says what changed, the largest change first", async () => {
    const ran = await profinfer(["diff", report.base.dir, report.new.dir]);
    assert.equal(ran.code, 0, ran.stderr);
    assert.match(ran.stdout, /^operators, in ms per decode call/m);
    assert.match(ran.stdout, /^mul_mat\s+[\d.]+\s+[\d.]+\s+-[\d.]+\s+-[\d.]+%.*faster$/m);
  });
});

test("the bench model's matrices in Q4_0 against Q8_0: the layers' mul_mat time grows with their bytes", async () => {
  const [q4, q8] = [benchModel("q4_0"), benchModel("q8_0")];
  // the bytes of the layers' matrices, from each file's tensor table (the output matrix, the
  // embedding tied to it, is Q8_0 in both)
  const layerBytes = (path: string) =>
    readGguf(path)
      .tensors.filter((t) => t.name.startsWith("blk.") && t.dims.length === 2)
      .reduce((n, t) => n + tensorByteSize(t.type, t.dims), 0);
  const bytesRatio = layerBytes(q8) / layerBytes(q4);
  assert.ok(Math.abs(bytesRatio - 34 / 18) < 0.01, `${bytesRatio}`);
  const report = await diff(await record(q4, 16, ["-t", "1"]), await record(q8, 16, ["-t", "1"]));
  const tensors = sectionOf(report, "tensors").rows;
  const layerMs = (side: "base" | "new") =>
    tensors
      .filter((r) => r.name.endsWith("(mul_mat)") && !r.name.startsWith("result_output"))
      .reduce((n, r) => n + (r[side] ?? 0), 0);
  const timeRatio = layerMs("new") / layerMs("base");
  // A decode call reads every layer matrix once: where reading the weights bounds the time, it
  // grows with their bytes (1.89 times). Q4_0's blocks take more work per byte to unpack than
  // Q8_0's, so on one core the ratio lands below that (1.60 and 1.26 measured on these machines),
  // but beyond the diff's ±15% (the weights not mattering would give 1, within the noise); above
  // the bytes' ratio by more than a tenth it would be something else than the weights.
  assert.ok(
    timeRatio > 1.15 && timeRatio < bytesRatio * 1.1,
    `the layers' mul_mat took ${timeRatio.toFixed(2)} times as long for ${bytesRatio.toFixed(2)} times the bytes`,
  );
  assert.equal(sectionOf(report, "operators").rows[0]!.name, "mul_mat");
  assert.equal(sectionOf(report, "operators").rows[0]!.verdict, "slower");
  // the output matrix has the same bytes in both: no change beyond the noise
  const output = tensors.find((r) => r.name === "result_output (mul_mat)");
  assert.equal(output?.verdict, "same", JSON.stringify(output));
});

test("tiny-llama against tiny-qwen2: the graph nodes only one has are those llama.cpp's own graphs differ by", async () => {
  const model = (arch: string) => tinyModels().find((m) => m.arch === arch)!.path;
  // llama.cpp's view (llama-eval-callback on the prompt), keyed as the diff keys nodes: named
  // ones by name and op, unnamed ones (node_<index>) counted per op
  const oracle = async (arch: string) => {
    const ran = await runProgram(
      evalCallbackCommand(model(arch))[0]!,
      evalCallbackCommand(model(arch)).slice(1),
    );
    assert.equal(ran.code, 0, ran.stderr.slice(-2000));
    const named = new Set<string>();
    const unnamed = new Map<string, number>();
    for (const n of evalCallbackNodes(ran.stdout + ran.stderr)) {
      if (NOT_COMPUTED.includes(n.op)) continue;
      const op = n.op.toLowerCase();
      if (/^node_\d+$/.test(n.name)) unnamed.set(op, (unnamed.get(op) ?? 0) + 1);
      else named.add(`${n.name} (${op})`);
    }
    return { named, unnamed };
  };
  const [llama, qwen2] = [await oracle("llama"), await oracle("qwen2")];
  const more = (x: typeof llama, y: typeof llama) =>
    [
      ...[...x.named].filter((k) => !y.named.has(k)),
      ...[...x.unnamed]
        .filter(([op, n]) => n > (y.unnamed.get(op) ?? 0))
        .map(([op, n]) => `${n - (y.unnamed.get(op) ?? 0)} unnamed (${op})`),
    ].sort();
  const report = await diff(
    await record(model("llama"), 8, []),
    await record(model("qwen2"), 8, []),
  );
  const nodes = sectionOf(report, "graph nodes");
  // llama.cpp prints UNARY and GLU nodes by their sub-op: "swiglu" for profinfer's "glu:swiglu"
  const asPrinted = (list: string[]) => list.map((k) => k.replace(/\((?:unary|glu):/, "(")).sort();
  assert.ok(more(qwen2, llama).length > 0, "the two models' graphs differ");
  assert.deepEqual(asPrinted(nodes.added), more(qwen2, llama), "only in tiny-qwen2");
  assert.deepEqual(asPrinted(nodes.removed), more(llama, qwen2), "only in tiny-llama");
});

describe("llama-server's requests on the bench model, -t 1 twice and -t 2", () => {
  // eight prompts of about the same length that share no prefix (no slot's cache serves
  // another), each answered alone (one slot, in turn), eight tokens each
  const load = [
    "Why is the sky blue on a clear day?",
    "Name three rivers that flow through Europe.",
    "Describe how a bicycle gear works.",
    "What makes bread rise in the oven?",
    "Tell me how bees find their way home.",
    "List some uses of copper in houses.",
    "Explain why ice floats on water.",
    "Give two reasons owls hunt at night.",
  ].map((prompt) => ({ prompt, nPredict: 8 }));

  /** The server's own time per output token, per request: from its first token to its last. */
  const serverTpot = (responses: LoadResponse[]) =>
    responses.map((r) => r.timings.predicted_ms / (r.timings.predicted_n - 1));
  const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;

  async function serve(threads: string) {
    const dir = join(scratch, `server-${++counter}`);
    const server = await recordServer(
      dir,
      benchModel(),
      ["-t", threads, "-np", "1", "-c", "512", "--no-warmup"],
      ["--level", "token", "--no-report"],
    );
    let responses: LoadResponse[];
    try {
      responses = await runInTurn(server.base, load);
    } finally {
      const stopped = await server.stop();
      assert.equal(stopped.code, 0, stopped.stderr.slice(-2000));
    }
    return { dir, responses };
  }

  test("the same server twice: no request figure changed; at -t 2 the time per token changes as the server's own timings say", async (t) => {
    const one = await serve("1");
    const again = await serve("1");
    const two = await serve("2");
    const same = await diff(one.dir, again.dir);
    const requests = sectionOf(same, "requests");
    assert.deepEqual(
      requests.rows.map((r) => [r.name, r.calls]),
      [
        ["TTFT", [8, 8]],
        ["TPOT", [8, 8]],
        ["tokens/s", [8, 8]],
      ],
      "one request per response",
    );
    assert.deepEqual(
      requests.rows.filter((r) => r.verdict !== "same").map((r) => `${r.name} ${r.verdict}`),
      [],
    );
    const threads = await diff(one.dir, two.dir);
    const tpot = sectionOf(threads, "requests").rows.find((r) => r.name === "TPOT")!;
    const perSecond = sectionOf(threads, "requests").rows.find((r) => r.name === "tokens/s")!;
    // the server's own time per token: profinfer's means are the same, within the gaps between
    // its calls (a few %)
    const [own1, own2] = [mean(serverTpot(one.responses)), mean(serverTpot(two.responses))];
    t.diagnostic(JSON.stringify({ tpot, perSecond, serverTpotMs: [own1, own2] }));
    assert.ok(
      Math.abs(tpot.base! / own1 - 1) < 0.05,
      `TPOT ${tpot.base} against the server's ${own1}`,
    );
    assert.ok(
      Math.abs(tpot.new! / own2 - 1) < 0.05,
      `TPOT ${tpot.new} against the server's ${own2}`,
    );
    // a second thread changes the time per token: faster on an idle machine of 2 cores (by 28%
    // in one CI run), slower where other work holds the cores (its barriers then wait for the
    // thread off CPU); the verdicts say what the server's own figures say. A change well beyond
    // the ±15% bound must be found, one well within it must not; near the bound either is right.
    const way = own2 < own1 ? "faster" : "slower";
    const own = Math.abs(own2 / own1 - 1);
    const allowed = own > 0.2 ? [way] : own < 0.1 ? ["same"] : [way, "same"];
    assert.ok(
      allowed.includes(tpot.verdict),
      `${JSON.stringify(tpot)}: the server's own change ${own}`,
    );
    assert.ok(
      allowed.includes(perSecond.verdict),
      `${JSON.stringify(perSecond)}: the server's own change ${own}`,
    );
  });
});

describe("bad input", () => {
  test("a --level metrics run: what it cannot compare is named", async () => {
    const op = await record(tiny, 8, []);
    const metrics = await record(tiny, 8, [], ["--level", "metrics"]);
    const report = await diff(op, metrics);
    assert.equal(report.sections.length, 0);
    assert.match(report.notCompared.join("\n"), /NEW ran at --level metrics/);
    const ran = await profinfer(["diff", op, metrics]);
    assert.match(ran.stdout, /not compared: everything: NEW ran at --level metrics/);
  });

  test("a corrupt file, a folder that is no run: a clear error naming it", async () => {
    const op = await record(tiny, 8, []);
    const corrupt = join(scratch, "corrupt");
    cpSync(op, corrupt, { recursive: true });
    const bytes = readFileSync(join(corrupt, "events.pinf"));
    writeFileSync(join(corrupt, "events.pinf"), Buffer.from(bytes.subarray(0, 16)));
    const ran = await profinfer(["diff", op, corrupt]);
    assert.equal(ran.code, 2, ran.stderr);
    assert.match(ran.stderr, /NEW .*events\.pinf cannot be read/);
    assert.doesNotMatch(ran.stderr, /\n\s+at /, "no stack trace");
    const none = await profinfer(["diff", op, scratch]);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /holds no events\.pinf/);
  });
});
