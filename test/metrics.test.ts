// SPDX-License-Identifier: Apache-2.0
// Counters and metrics against real llama.cpp processes (root, real eBPF, real perf events): the
// software-event counter path end to end, hardware events this machine may lack, a real
// Prometheus server scraping a live profiled run, and the bad input a user can give.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type AddressInfo, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { buildRun, hasCorePmu, readRawFile, type Run } from "@profinfer/exporter";
import type { ProfStats } from "@profinfer/contract";
import { mixedLoad, recordServer, runLoad, type LoadResponse } from "./support/llamaServerLoad.js";
import { completion, freePort, profinfer, stack, tinyModels, type Ran } from "./support/targets.js";

const scratch = mkdtempSync(join(tmpdir(), "profinfer-metrics-"));
after(() => rmSync(scratch, { recursive: true, force: true }));
let llamaModel = "";
before(() => {
  llamaModel = tinyModels().find((m) => m.arch === "llama")!.path;
});

let runCounter = 0;
async function record(
  args: string[],
  command: string[],
): Promise<{ dir: string; ran: Ran; run: Run; stats: ProfStats }> {
  const dir = join(scratch, `run-${++runCounter}`);
  const ran = await profinfer(["record", "--no-status", "--out", dir, ...args, "--", ...command]);
  assert.equal(ran.code, 0, ran.stderr);
  const run = buildRun(readRawFile(join(dir, "events.pinf")));
  const stats = JSON.parse(readFileSync(join(dir, "stats.json"), "utf8")) as ProfStats;
  return { dir, ran, run, stats };
}

/** task-clock may differ from an interval's on-CPU time by this much (probe cost, clock reads). */
const TASK_CLOCK_TOLERANCE = { relative: 0.1, absoluteNs: 3000 };

describe("software counters on every operator of every thread", () => {
  let result: Awaited<ReturnType<typeof record>>;
  before(async () => {
    result = await record(
      ["--pmc", "task-clock,page-faults,context-switches"],
      completion(llamaModel, 16),
    );
  });

  test("the run says which counters it recorded and that they are software events", () => {
    assert.deepEqual(result.run.counters, [
      { name: "task-clock", hardware: false, scaled: false },
      { name: "page-faults", hardware: false, scaled: false },
      { name: "context-switches", hardware: false, scaled: false },
    ]);
    assert.deepEqual(result.stats.counters, result.run.counters);
    assert.match(result.ran.stderr, /counters: task-clock \(software\), page-faults \(software\)/);
    assert.match(result.ran.stdout, /counters per operator type \(task-clock SOFTWARE/);
  });

  test("every operator on every thread carries deltas of every counter", () => {
    let runs = 0;
    let inferredStarts = 0;
    for (const g of result.run.graphRuns.filter((g) => g.opsRecorded)) {
      for (const op of g.ops) {
        assert.ok(op.threads.length >= 1, `${op.label} of graph ${g.id} has threads`);
        for (const t of op.threads) {
          runs++;
          // a thread's first step of a graph starts with the graph, before any of its readings
          if (t.startInferred) {
            inferredStarts++;
            continue;
          }
          assert.ok(t.counters, `${op.label} (node ${op.nodeIndex}) on ${t.tid} has counters`);
          assert.deepEqual(Object.keys(t.counters).sort(), [
            "context-switches",
            "page-faults",
            "task-clock",
          ]);
        }
      }
    }
    assert.ok(runs > 500, `${runs} operator intervals`);
    // only the first step of each graph on each worker can lack its start reading
    const graphs = result.run.graphRuns.filter((g) => g.opsRecorded).length;
    assert.ok(
      inferredStarts <= graphs * 2,
      `${inferredStarts} inferred starts in ${graphs} graphs`,
    );
  });

  test("task-clock deltas agree with the operators' on-CPU time", () => {
    let taskClock = 0;
    let onCpu = 0;
    let checked = 0;
    let outside = 0;
    for (const g of result.run.graphRuns.filter((g) => g.opsRecorded)) {
      for (const op of g.ops) {
        for (const t of op.threads) {
          if (!t.counters) continue;
          const on = Number(t.endNs - t.startNs) - t.offCpuNs;
          const tc = t.counters["task-clock"]!;
          taskClock += tc;
          onCpu += on;
          checked++;
          const allowed = TASK_CLOCK_TOLERANCE.relative * on + TASK_CLOCK_TOLERANCE.absoluteNs;
          if (Math.abs(tc - on) > allowed) outside++;
        }
      }
    }
    assert.ok(checked > 500);
    // every interval within 10% + 3 us, but for a handful where a switch fell between a probe's
    // clock read and its counter read
    assert.ok(outside <= checked * 0.01, `${outside} of ${checked} intervals outside tolerance`);
    assert.ok(Math.abs(taskClock - onCpu) <= 0.05 * onCpu, `task-clock ${taskClock} vs ${onCpu}`);
  });

  test("derived figures reach stats.json and the Perfetto counter tracks", () => {
    const mulMat = result.stats.ops.find((o) => o.op === "MUL_MAT")!;
    assert.ok(mulMat.counters!["task-clock"]! > 0, JSON.stringify(mulMat));
    const ratio = mulMat.derived!.onCpuRatio!;
    // on-CPU time over wall time of its threads: below 1 by the time other programs took the CPUs
    assert.ok(ratio > 0 && ratio <= 1.1, `mul_mat on-CPU ratio ${ratio}`);
    assert.ok(
      result.stats.layers.some((l) => l.counters && l.counters["task-clock"]! > 0),
      "layers carry counters",
    );
    const trace = readFileSync(join(result.dir, "trace.json"), "utf8");
    assert.match(trace, /"name":"task-clock\/us tid \d+","cat":"counter","ph":"C"/);
    assert.match(trace, /"name":"on-CPU ratio tid \d+"/);
  });

  test("replay rebuilds the same counters from events.pinf", async () => {
    const replay = await profinfer(["replay", result.dir]);
    assert.equal(replay.code, 0, replay.stderr);
    const again = JSON.parse(readFileSync(join(result.dir, "stats.json"), "utf8")) as ProfStats;
    assert.deepEqual(again.ops, result.stats.ops);
  });
});

describe("hardware events", () => {
  test("each hardware event this machine lacks is named with the reason; the run goes on", async () => {
    const wanted = ["cycles", "instructions", "stalled-cycles-backend", "cpu/event=0x3c/", "r003c"];
    const { ran, run } = await record(
      ["--pmc", [...wanted, "task-clock"].join(",")],
      completion(llamaModel, 4),
    );
    if (hasCorePmu()) {
      // a machine with a PMU records them as hardware counts
      assert.ok(run.counters!.some((c) => c.name === "cycles" && c.hardware));
      return;
    }
    for (const name of wanted) {
      const line = ran.stderr
        .split("\n")
        .find((l) => l.includes(`counter ${name} is not recorded`));
      assert.ok(line, `a message names ${name}`);
      assert.match(line, /No such file or directory|no PMU named 'cpu'/);
    }
    assert.deepEqual(run.counters, [{ name: "task-clock", hardware: false, scaled: false }]);
    assert.equal(run.tokens.length, 4, "the run completed: the prompt and 3 tokens");
  });

  test("a sysfs PMU event resolved through format/ is read as a hardware count", async (t) => {
    if (!hasCorePmu() && !readFileSync("/proc/mounts", "utf8").includes("sysfs")) {
      t.skip("no sysfs");
      return;
    }
    let msr = false;
    try {
      msr = readFileSync("/sys/bus/event_source/devices/msr/events/tsc", "utf8").length > 0;
    } catch {
      msr = false;
    }
    if (!msr) {
      t.skip("no msr PMU with a tsc event on this machine");
      return;
    }
    const { run } = await record(["--pmc", "msr/tsc/"], completion(llamaModel, 4));
    assert.deepEqual(run.counters, [{ name: "msr/tsc/", hardware: true, scaled: false }]);
    const op = run.graphRuns.find((g) => g.opsRecorded)!.ops.find((o) => o.visible)!;
    // the time stamp counter ticks at a GHz rate: far more ticks than nanoseconds would be wrong
    const t0 = op.threads.find((x) => x.counters)!;
    const ticks = t0.counters!["msr/tsc/"]!;
    const ns = Number(t0.endNs - t0.startNs) - t0.offCpuNs;
    assert.ok(ticks > ns * 0.3 && ticks < ns * 10, `${ticks} ticks in ${ns} ns`);
  });
});

describe("bad input", () => {
  test("an unknown event name is refused before anything runs", async () => {
    const ran = await profinfer(["record", "--pmc", "cycles,bogus-event", "--", "/bin/true"]);
    assert.equal(ran.code, 2);
    assert.match(ran.stderr, /unknown event 'bogus-event'. Give a perf event: cycles/);
  });

  test("counters at a level without operator probes are refused", async () => {
    const ran = await profinfer([
      "record",
      "--level",
      "token",
      "--pmc",
      "task-clock",
      "--",
      "/bin/true",
    ]);
    assert.equal(ran.code, 2);
    assert.match(ran.stderr, /--pmc reads counters at operator boundaries/);
  });

  test("a malformed raw event is refused with the syntax", async () => {
    const ran = await profinfer(["record", "--pmc", "r12xz", "--", "/bin/true"]);
    assert.equal(ran.code, 2);
    assert.match(
      ran.stderr,
      /'r12xz' is not a raw event: a raw event is 'r' and the event code in hex/,
    );
  });

  test("a PMU field the PMU does not have is named with the ones it has", async () => {
    const ran = await profinfer(["record", "--pmc", "msr/umask=1/", "--", "/bin/true"]);
    assert.equal(ran.code, 2);
    assert.match(ran.stderr, /has no field 'umask' \(its fields: event\)|no PMU named 'msr'/);
  });

  test("a metrics port in use is a clear error at start", async () => {
    const busy: Server = createServer();
    await new Promise<void>((r) => busy.listen(0, "127.0.0.1", () => r()));
    const port = (busy.address() as AddressInfo).port;
    try {
      const ran = await profinfer([
        "record",
        "--level",
        "metrics",
        "--metrics-addr",
        `127.0.0.1:${port}`,
        "--",
        "/bin/true",
      ]);
      assert.equal(ran.code, 2);
      assert.match(
        ran.stderr,
        new RegExp(`cannot serve metrics on 127.0.0.1:${port}: the port is in use`),
      );
    } finally {
      busy.close();
    }
  });

  test("per-layer and MoE metrics without a metrics endpoint are refused", async () => {
    const ran = await profinfer(["record", "--metrics-moe", "--", "/bin/true"]);
    assert.equal(ran.code, 2);
    assert.match(ran.stderr, /give --metrics-addr HOST:PORT or --level metrics/);
  });

  test("a metrics address that is not HOST:PORT is refused", async () => {
    const ran = await profinfer(["record", "--metrics-addr", "localhost", "--", "/bin/true"]);
    assert.equal(ran.code, 2);
    assert.match(ran.stderr, /'localhost' is not HOST:PORT/);
  });
});

describe("a real Prometheus server scrapes a live profiled run", () => {
  let prometheus: ChildProcess;
  let promPort = 0;
  let metricsPort = 0;
  /** a llama-server's port, scraped by the same Prometheus (its own llamacpp:* metrics) */
  let serverPort = 0;
  before(async () => {
    promPort = await freePort();
    metricsPort = await freePort();
    serverPort = await freePort();
    const dir = join(scratch, "prometheus");
    const config = join(scratch, "prometheus.yml");
    writeFileSync(
      config,
      [
        "global:",
        "  scrape_interval: 1s",
        "scrape_configs:",
        "  - job_name: profinfer",
        "    static_configs:",
        `      - targets: ["127.0.0.1:${metricsPort}"]`,
        "  - job_name: llama-server",
        "    static_configs:",
        `      - targets: ["127.0.0.1:${serverPort}"]`,
        "",
      ].join("\n"),
    );
    prometheus = spawn(
      stack("prometheus"),
      [
        `--config.file=${config}`,
        `--storage.tsdb.path=${dir}`,
        `--web.listen-address=127.0.0.1:${promPort}`,
      ],
      { stdio: "ignore" },
    );
    for (let i = 0; i < 100; i++) {
      try {
        if ((await fetch(`http://127.0.0.1:${promPort}/-/ready`)).ok) return;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error("prometheus did not become ready");
  });
  after(() => {
    prometheus?.kill("SIGTERM");
  });

  async function query(promql: string): Promise<Map<string, number>> {
    const url = `http://127.0.0.1:${promPort}/api/v1/query?query=${encodeURIComponent(promql)}`;
    const body = (await (await fetch(url)).json()) as {
      status: string;
      data: { result: { metric: Record<string, string>; value: [number, string] }[] };
    };
    assert.equal(body.status, "success");
    return new Map(
      body.data.result.map((r) => [
        Object.entries(r.metric)
          .filter(([k]) => !["__name__", "instance", "job"].includes(k))
          .map(([k, v]) => `${k}=${v}`)
          .sort()
          .join(","),
        Number(r.value[1]),
      ]),
    );
  }

  test("PromQL finds the series and the token and operator counts agree with stats.json", async () => {
    const { stats } = await record(
      [
        "--pmc",
        "task-clock",
        "--metrics-addr",
        `127.0.0.1:${metricsPort}`,
        "--metrics-linger",
        "4",
        "--model",
        "tiny-llama",
        "--metrics-layers",
      ],
      completion(llamaModel, 48),
    );
    const last = (m: string) => query(`last_over_time(${m}[10m])`);
    const tokens = await last("profinfer_tokens_total");
    assert.equal(tokens.get("model=tiny-llama,phase=prefill"), stats.phases.prefill.tokens);
    assert.equal(tokens.get("model=tiny-llama,phase=decode"), stats.phases.decode.tokens);
    const calls = await last("profinfer_decode_calls_total");
    assert.equal(calls.get("model=tiny-llama,phase=decode"), stats.phases.decode.calls);
    // one sequence: one request, whose figures the kernel found as the trace model did
    const [request] = stats.requests.list;
    assert.equal(stats.requests.count, 1);
    const generated = await last("profinfer_generated_tokens_total");
    assert.equal(generated.get("model=tiny-llama"), request!.generatedTokens);
    assert.equal(request!.generatedTokens, 48, "llama-completion -n 48");
    const prompt = await last("profinfer_prompt_tokens_total");
    assert.equal(prompt.get("model=tiny-llama"), request!.promptTokens);
    const durations = await last("gen_ai_server_request_duration_seconds_count");
    assert.equal(durations.get("model=tiny-llama"), 1);
    // the kernel times a call from its own clock reads at llama_decode's entry and return
    const ttft = await last("gen_ai_server_time_to_first_token_seconds_sum");
    assert.ok(Math.abs(ttft.get("model=tiny-llama")! * 1e3 - request!.ttftMs!) < 0.5, "TTFT");
    const tpot = await last("gen_ai_server_time_per_output_token_seconds_sum");
    assert.ok(Math.abs(tpot.get("model=tiny-llama")! * 1e3 - request!.tpotMs!) < 0.05, "TPOT");

    // operators probed on every run: one interval per thread per run in both
    const opCounts = await last("profinfer_op_duration_seconds_count");
    let compared = 0;
    for (const o of stats.ops) {
      if (o.inferred > 0 || o.op.includes("+") || o.op.includes(":")) continue;
      assert.equal(opCounts.get(`model=tiny-llama,op=${o.display}`), o.threadRuns, o.display);
      compared++;
    }
    assert.ok(compared >= 3, `${compared} operator types compared`);
    const counters = await last("profinfer_op_counter_total");
    assert.ok((counters.get("event=task-clock,model=tiny-llama,op=mul_mat") ?? 0) > 0);
    const info = await last("profinfer_counter_info");
    assert.equal(info.get("event=task-clock,hardware=false,model=tiny-llama"), 1);
    const dropped = await last("profinfer_events_dropped_total");
    assert.equal(dropped.get("model=tiny-llama,reason=ringbuf_full"), 0);
    // per-layer detail: every layer of the model that stats.json saw has mul_mat time
    const layers = await last("profinfer_layer_op_seconds_total");
    for (const l of stats.layers) {
      if (l.layer === null) continue;
      assert.ok(
        (layers.get(`layer=${l.layer},model=tiny-llama,op=mul_mat`) ?? 0) > 0,
        `layer ${l.layer}`,
      );
    }
  });

  test("llama-server with its default slots at --level metrics: per-request metrics agree with the server's own figures and counters, through one Prometheus", async () => {
    const dir = join(scratch, `run-${++runCounter}`);
    const server = await recordServer(
      dir,
      llamaModel,
      ["-c", "2048"],
      [
        "--level",
        "metrics",
        "--metrics-addr",
        `127.0.0.1:${metricsPort}`,
        "--model",
        "tiny-llama-server",
        "--request-idle",
        "1",
        "--metrics-linger",
        "3",
      ],
      serverPort,
    );
    let responses: LoadResponse[] = [];
    try {
      // more requests than its 4 slots, different lengths, some sharing a cached prefix
      responses = await runLoad(server.base, mixedLoad(10));
      const scraped = async (promql: string) => [...(await query(promql)).values()][0];
      // every request ended (idle for the bound) and was scraped, and the server's counters too
      const total = responses.reduce((n, r) => n + r.timings.predicted_n, 0);
      for (let i = 0; ; i++) {
        const complete = await scraped(`profinfer_requests_total{outcome="complete"}`);
        const predicted = await scraped("llamacpp:tokens_predicted_total");
        if (complete === responses.length && predicted === total) break;
        assert.ok(i < 120, `requests ended: ${complete} of ${responses.length}`);
        await new Promise((r) => setTimeout(r, 500));
      }
    } finally {
      const stopped = await server.stop();
      assert.equal(stopped.code, 0, stopped.stderr.slice(-3000));
    }
    const last = async (m: string) => {
      const v = [...(await query(`last_over_time(${m}[10m])`)).values()];
      assert.equal(v.length, 1, m);
      return v[0]!;
    };
    const label = '{model="tiny-llama-server"}';
    const sum = (pick: (r: LoadResponse) => number) => responses.reduce((n, r) => n + pick(r), 0);
    // tokens: what every response says, and the server's own counters, scraped by the same Prometheus
    assert.equal(
      await last(`profinfer_prompt_tokens_total${label}`),
      sum((r) => r.timings.prompt_n),
    );
    assert.equal(
      await last("llamacpp:prompt_tokens_total"),
      sum((r) => r.timings.prompt_n),
    );
    assert.equal(
      await last(`profinfer_generated_tokens_total${label}`),
      sum((r) => r.timings.predicted_n),
    );
    assert.equal(
      await last("llamacpp:tokens_predicted_total"),
      sum((r) => r.timings.predicted_n),
    );
    // calls: the server's n_decode_total leaves out its two warm-up calls, a request of their own
    assert.equal(
      [
        ...(await query(`sum(last_over_time(profinfer_decode_calls_total${label}[10m]))`)).values(),
      ][0],
      (await last("llamacpp:n_decode_total")) + 2,
    );
    assert.equal(
      await last(`profinfer_requests_total{model="tiny-llama-server",outcome="no_output"}`),
      1,
    );
    assert.equal(
      await last(`profinfer_requests_total{model="tiny-llama-server",outcome="incomplete"}`),
      0,
    );
    // one observation per request, into the GenAI histograms
    assert.equal(
      await last(`gen_ai_server_request_duration_seconds_count${label}`),
      responses.length,
    );
    assert.equal(
      await last(`gen_ai_server_time_to_first_token_seconds_count${label}`),
      responses.length,
    );
    assert.equal(
      await last(`gen_ai_server_time_per_output_token_seconds_count${label}`),
      responses.filter((r) => r.timings.predicted_n >= 2).length,
    );
    // the server's prompt_ms runs from before a request's first call to after the call of its
    // first token (its clock reads are between calls): it holds profinfer's TTFT, request by
    // request, so their sums are ordered too (each server figure truncated to its 1 us clock)
    const ttft = await last(`gen_ai_server_time_to_first_token_seconds_sum${label}`);
    assert.ok(ttft > 0);
    assert.ok(
      ttft * 1e3 <= sum((r) => r.timings.prompt_ms) + responses.length * 0.002,
      `TTFT ${ttft * 1e3} ms within the server's prompt_ms ${sum((r) => r.timings.prompt_ms)} ms`,
    );
    // calls shared by several requests: the slots were batched (Prometheus 3 writes le as a float)
    const single = await last(
      `profinfer_batch_sequences_bucket{model="tiny-llama-server",le="1.0"}`,
    );
    const calls = await last(`profinfer_batch_sequences_count${label}`);
    assert.ok(single < calls, `${calls - single} of ${calls} calls held several sequences`);
    assert.equal(await last(`profinfer_active_requests${label}`), 0);
  });

  test("MoE expert selections per layer and expert agree with stats.json", async () => {
    const moeModel = tinyModels().find((m) => m.arch === "qwen2moe")!.path;
    const { stats } = await record(
      [
        "--metrics-addr",
        `127.0.0.1:${metricsPort}`,
        "--metrics-linger",
        "4",
        "--model",
        "tiny-moe",
        "--metrics-moe",
      ],
      completion(moeModel, 12),
    );
    assert.ok(stats.experts.length > 0, "the model routed tokens");
    const selections = await query(
      'last_over_time(profinfer_moe_expert_selections_total{model="tiny-moe"}[10m])',
    );
    let total = 0;
    for (const e of stats.experts) {
      for (const [expert, n] of Object.entries(e.counts)) {
        assert.equal(
          selections.get(`expert=${expert},layer=${e.layer},model=tiny-moe`),
          n,
          `layer ${e.layer} expert ${expert}`,
        );
        total += n;
      }
    }
    assert.equal(
      [...selections.values()].reduce((a, b) => a + b, 0),
      total,
    );
  });

  test("--level metrics streams no events and still fills every operator metric", async () => {
    const dir = join(scratch, `run-${++runCounter}`);
    const ran = await profinfer([
      "record",
      "--no-status",
      "--out",
      dir,
      "--level",
      "metrics",
      "--metrics-addr",
      `127.0.0.1:${metricsPort}`,
      "--metrics-linger",
      "4",
      "--model",
      "tiny-llama-metrics",
      "--",
      ...completion(llamaModel, 24),
    ]);
    assert.equal(ran.code, 0, ran.stderr);
    const run = buildRun(readRawFile(join(dir, "events.pinf")));
    assert.equal(run.eventCount, 0, "no event reached user space");
    const events = await query(
      'last_over_time(profinfer_events_total{model="tiny-llama-metrics"}[10m])',
    );
    assert.equal([...events.values()][0], 0);
    const tokens = await query(
      'last_over_time(profinfer_tokens_total{model="tiny-llama-metrics",phase="decode"}[10m])',
    );
    assert.equal([...tokens.values()][0], 23, "23 decode calls after the prompt's");
    // the summary and stats.json hold the kernel's figures, which llama.cpp's own agree with
    const stats = JSON.parse(readFileSync(join(dir, "stats.json"), "utf8")) as ProfStats;
    const evalRuns = /eval time =\s+[\d.]+ ms \/\s+(\d+) runs/.exec(ran.stdout + ran.stderr);
    assert.ok(evalRuns, "llama-completion printed its eval runs");
    assert.equal(stats.phases.decode.calls, Number(evalRuns[1]));
    assert.equal(stats.phases.decode.tokens, 23);
    assert.ok(stats.phases.decode.totalMs > 0 && stats.phases.decode.p99Ms > 0);
    assert.ok(stats.ops.some((o) => o.display === "mul_mat" && o.totalMs > 0));
    assert.match(ran.stdout, /decode\s+23\s+23\s/);
    // no empty timeline, spans or report, and the run says why
    for (const file of ["trace.json", "traces.otlp.jsonl", "report.html"])
      assert.ok(!existsSync(join(dir, file)), `${file} is not written`);
    assert.match(ran.stderr, /level metrics records no event per call, so there is no timeline/);
    const ops = await query(
      'last_over_time(profinfer_op_seconds_total{model="tiny-llama-metrics"}[10m]) > 0',
    );
    assert.ok(ops.has("model=tiny-llama-metrics,op=mul_mat"), [...ops.keys()].join(" "));
    // step probes name every operator, fused steps and unary/glu kinds included
    assert.ok(!ops.has("model=tiny-llama-metrics,op=unprobed"), [...ops.keys()].join(" "));
    // the same program recorded at --level op: the kernel's intervals per op type are the model's
    const same = await record([], completion(llamaModel, 24));
    const counts = await query(
      'last_over_time(profinfer_op_duration_seconds_count{model="tiny-llama-metrics"}[10m])',
    );
    for (const o of same.stats.ops)
      assert.equal(
        counts.get(`model=tiny-llama-metrics,op=${o.display}`),
        o.threadRuns,
        `${o.display}: ${[...counts.keys()].join(" ")}`,
      );
    assert.ok(
      same.stats.ops.some((o) => o.display.includes("+")),
      "a fused step was compared",
    );
    // ... and so are its runs, each counted once, and the bytes its tensors' shapes say it moved
    // (the kernel's reading of the shapes against the trace model's, work.ts)
    const runs = await query(
      'last_over_time(profinfer_op_runs_total{model="tiny-llama-metrics"}[10m])',
    );
    const bytes = await query(
      'last_over_time(profinfer_op_bytes_total{model="tiny-llama-metrics"}[10m])',
    );
    for (const o of same.stats.ops) {
      const label = `model=tiny-llama-metrics,op=${o.display}`;
      assert.equal(runs.get(label), o.count, `${o.display} runs`);
      const modelBytes = same.run.graphRuns
        .flatMap((g) => g.ops)
        .filter((op) => op.label === o.op)
        .reduce((n, op) => n + (op.work?.bytes ?? 0), 0);
      assert.ok(modelBytes > 0, `${o.display}: the model has its bytes`);
      assert.equal(bytes.get(label), modelBytes, `${o.display} bytes`);
    }
    const bandwidth = await query(
      'last_over_time(profinfer_machine_read_bandwidth_bytes_per_second{model="tiny-llama-metrics"}[10m])',
    );
    assert.equal(bandwidth.size, same.stats.machine!.bandwidth.points.length);
  });
});
