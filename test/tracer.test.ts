// SPDX-License-Identifier: Apache-2.0
// The tracer against real llama.cpp processes (root, real eBPF): token counts, graphs and
// operators against llama.cpp's own view of its graph (llama-eval-callback), MoE expert ids,
// per-thread structure, replay, and the failure cases a user meets.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { evalCallbackCommand } from "./support/evalCallback.js";
import {
  assertGraphStructure,
  assertMatchesEvalCallback,
  assertTokenCounts,
  cpuGraphs,
} from "./support/traceChecks.js";
import { EventType, buildRun, readElf, readRawFile, type Run } from "@profinfer/exporter";
import { attach, liveAddress, readTargetBytes } from "./support/attach.js";
import {
  cli,
  completion,
  llama,
  manifest,
  profinfer,
  nodeLlamaCppWorkload,
  prompt,
  runProgram,
  tinyModels,
  type Ran,
  startLlamaServer,
} from "./support/targets.js";

const scratch = mkdtempSync(join(tmpdir(), "profinfer-tracer-"));
after(() => rmSync(scratch, { recursive: true, force: true }));
let models: ReturnType<typeof tinyModels> = [];
before(() => {
  models = tinyModels();
});
const model = (arch: string) => models.find((m) => m.arch === arch)!.path;

let runCounter = 0;
/** profinfer record into a fresh run folder; returns the run folder, the model and the output. */
async function record(
  args: string[],
  command: string[],
): Promise<{ dir: string; ran: Ran; run: Run }> {
  const dir = join(scratch, `run-${++runCounter}`);
  const ran = await profinfer(["record", "--no-status", "--out", dir, ...args, "--", ...command]);
  const run = buildRun(readRawFile(join(dir, "events.pinf")));
  return { dir, ran, run };
}

describe("tokens, graphs and operators of every tiny architecture", () => {
  for (const arch of ["llama", "qwen2", "gemma2", "qwen2moe"]) {
    test(`${arch}: token count, phases, nesting and threads`, async () => {
      const { ran, run } = await record([], completion(model(arch), 8));
      assert.equal(ran.code, 0, ran.stderr.slice(-3000));
      assertTokenCounts(run, ran.stderr);
      assertGraphStructure(run);
      const graphs = cpuGraphs(run);
      // every attention op has its layer, those llama.cpp leaves unnamed ("node_21") included:
      // one per layer, the model's block count (its weights' blk.N names)
      const layers = new Set(
        graphs
          .flatMap((g) => g.snapshot!.dag.leaves.map((l) => l.tensor.layer))
          .filter((l) => l !== null),
      );
      for (const g of graphs) {
        const attention = g.ops.filter((o) =>
          ["FLASH_ATTN_EXT", "SOFT_MAX"].includes(o.tensor.opName),
        );
        assert.ok(attention.length > 0, `graph ${g.id} computes attention`);
        assert.ok(
          attention.every((o) => o.tensor.layer !== null),
          `unnamed attention ops get a layer: ${attention.map((o) => `${o.tensor.name}=${o.tensor.layer}`).join(" ")}`,
        );
        const perLayer = new Set(attention.map((o) => o.tensor.layer));
        assert.deepEqual([...perLayer].sort(), [...layers].sort(), "attention in every layer");
      }
    });
  }
});

describe("operator function probes (--op-timing functions)", () => {
  test("every matmul is timed by a probe of its own, through whichever path the CPU backend computes it", async () => {
    // on CPUs whose backend repacks the weights (AVX-512, AMX, Arm), ggml computes these matmuls in
    // an extra buffer type's compute function instead of ggml_compute_forward_mul_mat
    for (const arch of ["llama", "qwen2moe"]) {
      const { ran, run } = await record(["--op-timing", "functions"], completion(model(arch), 6));
      assert.equal(ran.code, 0, ran.stderr.slice(-3000));
      // (ggml_compute_forward_mul_mat_id is no symbol in the pinned build: MoE's expert matmuls are
      // timed from the barriers unless an extra buffer type computes them)
      const matmuls = cpuGraphs(run).flatMap((g) =>
        g.ops.filter((op) => op.tensor.opName === "MUL_MAT"),
      );
      assert.ok(matmuls.length > 0, arch);
      const unseen = matmuls.filter((op) => !op.visible).map((op) => op.tensor.name);
      assert.deepEqual([...new Set(unseen)], [], `${arch}: matmuls timed from the barriers only`);
    }
  });
});

/**
 * The ffn_moe_topk tensors llama-eval-callback printed, per layer: its first rows and, when it
 * elides the middle with "...", its last rows ({ head, tail }).
 */
function evalCallbackTopk(text: string): Map<number, { head: number[][]; tail: number[][] }> {
  const out = new Map<number, { head: number[][]; tail: number[][] }>();
  const re = /ffn_moe_topk-(\d+) = \(i32\)[^\n]*\n([\s\S]*?)sum = /g;
  for (const m of text.matchAll(re)) {
    const [before, after = ""] = m[2]!.split("...,");
    const rows = (part: string) =>
      [...part.matchAll(/\[([^[\]]+)\]/g)].map((r) =>
        r[1]!.split(",").map((x) => Math.round(Number(x.trim()))),
      );
    out.set(Number(m[1]), { head: rows(before!), tail: rows(after) });
  }
  return out;
}

describe("against llama.cpp's own view of the graph (llama-eval-callback)", () => {
  for (const arch of ["llama", "qwen2moe"]) {
    test(`${arch}: operators, op types and DAG sources match; MoE ids equal llama.cpp's`, async () => {
      const { ran, run } = await record([], evalCallbackCommand(model(arch)));
      assert.equal(ran.code, 0, ran.stderr.slice(-3000));
      const token = assertMatchesEvalCallback(run, ran.stdout + ran.stderr);
      if (arch === "qwen2moe") {
        const expected = evalCallbackTopk(ran.stdout + ran.stderr);
        assert.equal(expected.size, 4, "llama.cpp printed the routing of 4 layers");
        for (const [layer, { head, tail }] of expected) {
          const ours = token.experts?.get(layer) ?? [];
          assert.deepEqual(ours.slice(0, head.length), head, `layer ${layer}: first rows`);
          if (tail.length > 0)
            assert.deepEqual(ours.slice(-tail.length), tail, `layer ${layer}: last rows`);
        }
      }
    });
  }

  test("qwen2moe: expert ids are recorded for every decode token and layer, prefill batches included", async () => {
    const { run } = await record([], completion(model("qwen2moe"), 6));
    for (const t of run.tokens) {
      assert.deepEqual([...(t.experts?.keys() ?? [])], [0, 1, 2, 3], `token ${t.seq}`);
      for (const [layer, rows] of t.experts!) {
        // llama.cpp computes the last layer for the output token only (inp_out_ids)
        assert.equal(
          rows.length,
          layer === 3 ? 1 : t.nTokens,
          `layer ${layer}: one row per token computed`,
        );
        for (const row of rows) {
          assert.equal(row.length, 4, "top-4");
          assert.ok(
            row.every((id) => id >= 0 && id < 60) && new Set(row).size === 4,
            `distinct experts in range: ${row}`,
          );
        }
      }
    }
  });
});

describe("volume control", () => {
  test("--sample-tokens and --window choose the llama_decode calls whose operators are recorded", async () => {
    const sampled = await record(["--sample-tokens", "3"], completion(model("qwen2"), 9));
    assert.deepEqual(
      sampled.run.tokens.map((t) => t.opsSampled),
      sampled.run.tokens.map((t) => (t.seq - 1) % 3 === 0),
      "1 in 3 calls",
    );
    for (const t of sampled.run.tokens) {
      const ops = t.graphs.filter((g) => g.fn === "cpu").reduce((a, g) => a + g.ops.length, 0);
      assert.equal(ops > 0, t.opsSampled, `call ${t.seq}: operators only when sampled`);
    }
    const windowed = await record(["--window", "3-4"], completion(model("qwen2"), 6));
    assert.deepEqual(
      windowed.run.tokens.filter((t) => t.opsSampled).map((t) => t.seq),
      [3, 4],
    );
    assert.equal(windowed.run.tokens.length, 6, "tokens outside the window are still recorded");
  });

  test("--toggle-op-probes takes the step probes off and puts them back, noting when", async () => {
    const { dir, ran } = await record(
      ["--toggle-op-probes", "300"],
      completion(model("llama"), 1500, ["-c", "2048"]),
    );
    assert.equal(ran.code, 0, ran.stderr.slice(-3000));
    const recording = readRawFile(join(dir, "events.pinf"));
    const switches = recording.notes
      .map((n) => n.note)
      .filter((note) => note.kind === "stepProbes")
      .map((note) => ({
        began: BigInt(note.beganNs!),
        at: BigInt(note.monotonicNs),
        on: note.on,
      }));
    assert.ok(switches.length >= 4, `${switches.length} switches`);
    switches.forEach((s, i) => assert.equal(s.on, i % 2 === 1, "off first, then on, in turn"));
    switches.forEach((s) =>
      assert.ok(s.began <= s.at, "a switch is noted when it began and ended"),
    );
    const steps = recording.events.filter((e) => e.type === EventType.STEP).map((e) => e.ts);
    // llama_decode calls, begin to end: the toggling starts with the recording, so the first
    // windows can fall in the model load, when there is nothing to step through
    const calls: [bigint, bigint][] = [];
    for (const e of recording.events) {
      if (e.type === EventType.TOKEN_BEGIN) calls.push([e.ts, -1n]);
      else if (e.type === EventType.TOKEN_END && calls.length > 0) calls.at(-1)![1] = e.ts;
    }
    let onWindowsWithCalls = 0;
    // a window: from the end of one switch to the start of the next (taking probes off waits
    // for the kernel; calls during a switch ran with some probes and not others)
    for (let i = 0; i + 1 < switches.length; i++) {
      const [from, to] = [switches[i]!.at, switches[i + 1]!.began];
      const inside = steps.filter((ts) => ts > from && ts < to).length;
      if (switches[i]!.on) {
        // every decode call wholly inside a window with the probes on steps through its graph
        const within = calls.filter(([b, e]) => b > from && e > b && e < to);
        for (const [b, e] of within) {
          const n = steps.filter((ts) => ts > b && ts < e).length;
          assert.ok(n > 10, `window ${i} (on): call at ${b} has ${n} steps`);
        }
        if (within.length > 0) onWindowsWithCalls++;
      } else {
        // none with them off, but for a thread that had hit a probe just before it went off and
        // ran its handler later, preempted in between (seen: one step, up to 44 ms after the
        // switch): at most one per thread (-t 2)
        assert.ok(inside <= 2, `window ${i} (off) has ${inside} steps`);
      }
    }
    assert.ok(
      onWindowsWithCalls >= 2,
      `${onWindowsWithCalls} windows with the probes on saw calls`,
    );
  });
});

describe("graph snapshots", () => {
  test("follow the graph's shapes as the KV cache grows, though reused graphs are not read again", async () => {
    const { ran, run } = await record([], completion(model("llama"), 600, ["-c", "2048"]));
    assert.equal(ran.code, 0, ran.stderr.slice(-3000));
    const prefill = run.tokens.filter((t) => t.phase === "prefill");
    let context = prefill.reduce((n, t) => n + t.nTokens, 0);
    const sizes = new Set<number>();
    for (const t of run.tokens.filter((x) => x.phase === "decode")) {
      const g = t.graphs.find((x) => x.fn === "cpu" && x.opsRecorded)!;
      // the layer-0 K cache view the attention reads: ne[2] is n_kv, the cells attended to
      const view = g.snapshot!.dag.nodes.find(
        (n) => n.tensor.name.startsWith("cache_k_l0 (view)") && Number(n.tensor.ne[2]) > 1,
      )!;
      const nKv = Number(view.tensor.ne[2]);
      assert.ok(nKv > context, `call ${t.seq}: n_kv ${nKv} covers the ${context + 1} cells in use`);
      assert.ok(nKv <= context + 256, `call ${t.seq}: n_kv ${nKv} is not stale-large`);
      sizes.add(nKv);
      context += t.nTokens;
    }
    assert.ok(sizes.size >= 2, `n_kv grew: ${[...sizes].join(", ")}`);
    const snapshots = new Set(
      run.graphRuns.filter((g) => g.fn === "cpu").map((g) => g.snapshot?.key),
    );
    assert.ok(
      snapshots.size < 20,
      `${snapshots.size} snapshots for 600 calls: reused graphs are not described again`,
    );
  });
});

describe("outputs", () => {
  test("replay reproduces trace.json and stats.json byte for byte, without the tracer", async () => {
    const { dir } = await record([], completion(model("gemma2"), 6));
    const trace = readFileSync(join(dir, "trace.json"));
    const stats = readFileSync(join(dir, "stats.json"));
    rmSync(join(dir, "trace.json"));
    rmSync(join(dir, "stats.json"));
    const replay = await profinfer(["replay", dir]);
    assert.equal(replay.code, 0, replay.stderr);
    assert.ok(readFileSync(join(dir, "trace.json")).equals(trace), "trace.json identical");
    assert.ok(readFileSync(join(dir, "stats.json")).equals(stats), "stats.json identical");
    const parsed = JSON.parse(trace.toString()) as {
      traceEvents: { ph: string; name: string; args?: Record<string, unknown> }[];
    };
    const threadNames = parsed.traceEvents
      .filter((e) => e.ph === "M" && e.name === "thread_name")
      .map((e) => e.args?.name);
    assert.ok(threadNames.includes("worker 1"), `thread tracks: ${threadNames.join(", ")}`);
    assert.ok(
      parsed.traceEvents.some((e) => e.ph === "X" && e.name === "barrier"),
      "barrier waits on the timeline",
    );
  });

  test("a node-llama-cpp app is traced through the prebuilt libraries it dlopens", async () => {
    const { ran, run } = await record(
      [],
      nodeLlamaCppWorkload("--model", model("qwen2moe"), "--tokens", "6"),
    );
    assert.equal(ran.code, 0, ran.stderr.slice(-3000));
    const summary = JSON.parse(ran.stdout.split("\n").find((l) => l.startsWith("{"))!) as {
      generatedTokens: number;
    };
    assert.equal(summary.generatedTokens, 6);
    const libraries = Object.keys(run.header.target.libraries ?? {});
    assert.ok(
      libraries.some((l) => l.includes("@node-llama-cpp/linux-x64")),
      `prebuilt libraries traced: ${libraries.join(", ")}`,
    );
    assert.ok(run.tokens.filter((t) => t.phase === "decode").length >= 5, "decode calls recorded");
    assert.ok(
      cpuGraphs(run).some((g) => g.ops.length > 50),
      "operators recorded on the dlopen'ed CPU backend",
    );
    assert.ok(
      run.tokens.some((t) => t.experts?.size === 4),
      "expert ids on the prebuilt build too",
    );
  });
});

describe("attach to a running llama-server", () => {
  test("requests succeed while traced, the trace holds their tokens, no probe is left behind", async () => {
    const llamaServer = await startLlamaServer(model("llama"));
    const server = llamaServer.process;
    try {
      const dir = join(scratch, "attach");
      const tracer = await attach(server.pid!, dir);
      const completions: { content: string; tokens_predicted: number }[] = [];
      for (let i = 0; i < 3; i++) completions.push(await llamaServer.complete(String(i)));
      const detached = await tracer.detach();
      assert.equal(detached.code, 0, detached.stderr);
      assert.equal(server.exitCode, null, "the server keeps running");
      // after detaching, the probed instructions are back: no int3 left in the server's memory
      const libllama = readFileSync(`/proc/${server.pid}/maps`, "utf8")
        .split("\n")
        .find((l) => l.includes("libllama.so"))!;
      const elf = readElf(libllama.split(/\s+/).slice(5).join(" "));
      const decode = elf.symbols.get("llama_decode")!;
      const address = liveAddress(server.pid!, "llama_decode");
      const live = await readTargetBytes(server.pid!, address, 8);
      assert.deepEqual(
        live,
        elf.bytesAt(decode.address, 8),
        "llama_decode's first bytes are the file's again",
      );

      const run = buildRun(readRawFile(join(dir, "events.pinf")));
      const decodeCalls = run.tokens.filter((t) => t.phase === "decode").length;
      const predicted = completions.reduce((a, c) => a + c.tokens_predicted, 0);
      assert.ok(
        decodeCalls >= predicted - completions.length,
        `${decodeCalls} decode calls for ${predicted} generated tokens`,
      );
      assert.ok(
        run.tokens.filter((t) => t.phase === "prefill").length >= 3,
        "each request's prompt",
      );
      // the server still answers after the tracer left
      const after = await llamaServer.complete("after", 4);
      assert.equal(after.tokens_predicted, 4);
    } finally {
      server.kill("SIGKILL");
    }
  });
});

/** The pid of a process's child (the traced program under profinfer record). */
function childOf(parent: number): number {
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      // pid (comm) state ppid ...: comm may hold spaces, so split after the last ")"
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === parent) return Number(entry);
    } catch {
      // gone
    }
  }
  throw new Error(`no child of ${parent}`);
}

describe("bad input: a clear message, nothing recorded lost", () => {
  test("a command that is not llama.cpp names the symbols looked for", async () => {
    const dir = join(scratch, "not-llama");
    const ran = await profinfer(["record", "--no-status", "--out", dir, "--", "/bin/true"]);
    assert.equal(ran.code, 0, "exits with the target's status");
    assert.match(
      ran.stderr,
      /no llama\.cpp library was found in the target: none of the files it mapped defines llama_decode, ggml_backend_sched_graph_compute_async, or ggml_graph_compute/,
    );
  });

  test("stripped libraries: what can be traced is traced; a missing level is named with the reason", async () => {
    // copies of the build's libraries without .symtab or debug info, found first through LD_LIBRARY_PATH
    const stripped = join(scratch, "stripped");
    mkdirSync(stripped, { recursive: true });
    const binDir = manifest().llamaCpp.binDir;
    for (const file of readdirSync(binDir).filter((f) => /\.so(\.\d+)*$/.test(f))) {
      copyFileSync(join(binDir, file), join(stripped, file));
      const strip = await runProgram("strip", ["--strip-all", join(stripped, file)]);
      assert.equal(strip.code, 0, strip.stderr);
    }
    assert.equal(readElf(join(stripped, "libggml-cpu.so")).hasSymbolTable, false);
    const env = { ...process.env, LD_LIBRARY_PATH: stripped };
    const dir = join(scratch, "stripped-run");
    const ran = await runProgram(
      cli,
      ["record", "--no-status", "--out", dir, "--", ...completion(model("llama"), 6)],
      { env },
    );
    assert.equal(ran.code, 0, ran.stderr.slice(-2000));
    const run = buildRun(readRawFile(join(dir, "events.pinf")));
    assert.ok(
      Object.keys(run.header.target.libraries ?? {}).every((l) => l.startsWith(stripped)),
      "the stripped copies were traced",
    );
    assert.equal(run.tokens.filter((t) => t.phase === "decode").length, 5);
    assert.ok(
      cpuGraphs(run).every((g) => g.complete && g.ops.some((op) => op.visible)),
      "exported operator functions still probed",
    );
    assert.doesNotMatch(ran.stderr, /not traced/);
    // a ggml program without libllama: the token level is missing, and the output says why
    const gguf = await runProgram(
      cli,
      [
        "record",
        "--no-status",
        "--out",
        join(scratch, "no-llama"),
        "--",
        llama("llama-gguf"),
        model("llama"),
        "r",
        "n",
      ],
      { env },
    );
    assert.match(gguf.stderr, /not traced: token level: no mapped library defines llama_decode/);
  });

  test("without privileges: names the capabilities needed", async () => {
    const ran = await runProgram("setpriv", [
      "--reuid=nobody",
      "--regid=nogroup",
      "--clear-groups",
      "--inh-caps=-all",
      "--bounding-set=-all",
      cli,
      "record",
      "--out",
      join(tmpdir(), `profinfer-unprivileged-${process.pid}`),
      "--",
      "/bin/true",
    ]);
    assert.notEqual(ran.code, 0);
    assert.match(ran.stderr, /needs root, or the capabilities CAP_BPF and CAP_PERFMON/);
    assert.doesNotMatch(ran.stderr, /\n\s+at /, "no stack trace");
  });

  test("the target killed mid-run: outputs complete up to that point", async () => {
    const dir = join(scratch, "killed");
    const child = spawn(
      cli,
      [
        "record",
        "--no-status",
        "--out",
        dir,
        "--",
        ...completion(model("llama"), 100000, ["-c", "4096"]),
      ],
      {
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    // kill it once it has generated some tokens (the machine may be slow: wait for them, not a time)
    const start = Date.now();
    while (Date.now() - start < 120_000) {
      const at = out.indexOf(prompt);
      if (at >= 0 && out.length - (at + prompt.length) > 40) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    process.kill(childOf(child.pid!), "SIGKILL");
    const code = await new Promise<number | null>((r) => child.on("exit", r));
    assert.equal(code, 137, "exits with the target's status (killed)");
    const recording = readRawFile(join(dir, "events.pinf"));
    const run = buildRun(recording);
    assert.ok(
      run.tokens.filter((t) => t.ret !== null).length > 3,
      "tokens up to the kill are kept",
    );
    assert.equal(run.exit?.signal, "SIGKILL");
    // steps travel in per-thread batches: those of the graph the kill cut short are sent at the end
    const hits = recording.notes.map((n) => n.note).find((note) => note.kind === "hits");
    const stepHits = Number(hits?.step);
    assert.ok(stepHits > 0);
    assert.equal(
      recording.events.filter((e) => e.type === EventType.STEP).length,
      stepHits,
      "every step probe hit is in the file",
    );
    assert.ok(existsSync(join(dir, "trace.json")) && existsSync(join(dir, "stats.json")));
    assert.match(out, /decode/);
  });

  test("profinfer record stopped with SIGTERM: the program is stopped too, the run written whole", async () => {
    const dir = join(scratch, "terminated");
    const child = spawn(
      cli,
      [
        "record",
        "--no-status",
        "--level",
        "token",
        "--out",
        dir,
        "--",
        ...completion(model("llama"), 100000, ["-c", "4096"]),
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    const start = Date.now();
    while (Date.now() - start < 120_000) {
      const at = out.indexOf(prompt);
      if (at >= 0 && out.length - (at + prompt.length) > 40) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const program = childOf(child.pid!);
    child.kill("SIGTERM"); // to profinfer alone, as a service manager stops it
    await new Promise((r) => child.on("exit", r));
    assert.ok(!existsSync(`/proc/${program}`), "the program was stopped with it");
    const run = buildRun(readRawFile(join(dir, "events.pinf")));
    assert.equal(run.exit?.signal, "SIGTERM");
    assert.ok(run.tokens.filter((t) => t.ret !== null).length > 3, "its calls are kept");
    assert.ok(
      existsSync(join(dir, "trace.json")) && existsSync(join(dir, "stats.json")),
      "and the outputs written",
    );
  });

  test("a ring buffer too small: drops are counted and reported, incomplete graphs are marked", async () => {
    const { ran, run } = await record(["--ring-buffer", "16K"], completion(model("qwen2moe"), 8));
    assert.equal(ran.code, 0, ran.stderr.slice(-2000));
    assert.ok((run.drops?.counts.ringBufferFull ?? 0) > 0, "the BPF side counted drops");
    assert.match(ran.stdout, /dropped/i);
    assert.ok(
      run.graphRuns.some((g) => !g.complete),
      "graphs that lost events are marked incomplete",
    );
  });

  test("replay of a truncated raw event file keeps what came before the cut", async () => {
    const { dir } = await record([], completion(model("qwen2"), 6));
    const copy = join(scratch, "truncated");
    rmSync(copy, { recursive: true, force: true });
    const { mkdirSync } = await import("node:fs");
    mkdirSync(copy);
    copyFileSync(join(dir, "events.pinf"), join(copy, "events.pinf"));
    truncateSync(
      join(copy, "events.pinf"),
      Math.floor(statSync(join(copy, "events.pinf")).size * 0.6) + 3,
    );
    const replay = await profinfer(["replay", copy]);
    assert.equal(replay.code, 0, replay.stderr);
    assert.match(replay.stdout, /cut short|truncated/i);
    const run = buildRun(readRawFile(join(copy, "events.pinf")));
    assert.ok(run.truncatedAt !== null && run.tokens.length > 0);
  });
});
