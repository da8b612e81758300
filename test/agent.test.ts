// SPDX-License-Identifier: Apache-2.0
// profinfer agent against real llama.cpp processes and real eBPF (root): llama-servers of two
// models started before and after it, stopped, restarted with the same command line, each one's
// token counts against the server's own /metrics; a node-llama-cpp app found through the backend
// it dlopens; no probe left behind; and bad input (an unknown configuration key, a library
// without llama_decode, processes that exit while being attached, a second agent).
//
// Every process of these tests carries a marker folder in its command line and the agent follows
// only those (--include command=...): the machine's other llama.cpp processes are not its business.
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import * as N from "@profinfer/contract";
import { findProbeSite, readElf } from "@profinfer/exporter";
import { liveAddress, readTargetBytes } from "./support/attach.js";
import {
  eventually,
  serverOnPort,
  startAgent,
  type PortServer,
  type RunningAgent,
  type Series,
} from "./support/agent.js";
import {
  http,
  mixedLoad,
  runInTurn,
  serverArgs,
  serverMetrics,
  waitForHealth,
} from "./support/llamaServerLoad.js";
import { OtlpCollector, type ReceivedSpan } from "./support/otlpCollector.js";
import { readProfiles } from "./support/otlpProfiles.js";
import { ProfilesCollector } from "./support/stack.js";
import { cli, freePort, llama, nodeLlamaCppWorkload, tinyModels } from "./support/targets.js";

const marker = mkdtempSync(join(tmpdir(), "profinfer-agent-test-"));
after(() => rmSync(marker, { recursive: true, force: true }));
const INCLUDE = ["--include", `command=*${marker}*`];
let llamaModel = "";
let qwenModel = "";
before(() => {
  // copies in the marker folder: the servers' command lines name it
  const models = tinyModels();
  llamaModel = join(marker, "tiny-llama.gguf");
  qwenModel = join(marker, "tiny-qwen2.gguf");
  copyFileSync(models.find((m) => m.arch === "llama")!.path, llamaModel);
  copyFileSync(models.find((m) => m.arch === "qwen2")!.path, qwenModel);
});

const ofPid = (series: Series[], pid: number) =>
  series.find((s) => s.name === N.PROCESS_INFO && s.labels[N.LABEL_PID] === String(pid));

/** The instance id the agent gave process `pid`, once it follows it. */
async function followed(agent: RunningAgent, pid: number): Promise<string> {
  return eventually(`pid ${pid} in ${N.PROCESS_INFO}`, async () => {
    const info = ofPid(await agent.series(), pid);
    return info?.labels[N.LABEL_SERVICE_INSTANCE_ID];
  });
}

/** The value of `name` on the series of instance `id`; undefined when it has none. */
function valueOf(series: Series[], name: string, id: string): number | undefined {
  return series.find((s) => s.name === name && s.labels[N.LABEL_SERVICE_INSTANCE_ID] === id)?.value;
}

/** The agent's prompt and generated token counts of `id` come to the server's own. */
async function countsMatch(
  agent: RunningAgent,
  id: string,
  server: { base: string },
): Promise<void> {
  const own = await serverMetrics(server.base);
  const wanted = [own.get("prompt_tokens_total"), own.get("tokens_predicted_total")];
  assert.ok(wanted[1]! > 0, "the server generated tokens");
  let seen: (number | undefined)[] = [];
  await eventually(
    `${id}: prompt and generated tokens ${wanted.join(", ")} (agent: ${seen.join(", ")})`,
    async () => {
      const series = await agent.series();
      seen = [valueOf(series, N.PROMPT_TOKENS, id), valueOf(series, N.GENERATED_TOKENS, id)];
      return seen[0] === wanted[0] && seen[1] === wanted[1] ? true : undefined;
    },
    30_000,
  );
}

/** The probe site of llama_decode in a running process: its address and the file's bytes. */
function decodeProbeAddress(pid: number): number {
  const library = execFileSync("grep", ["-m1", "libllama", `/proc/${pid}/maps`], {
    encoding: "utf8",
  })
    .trim()
    .split(/\s+/)
    .slice(5)
    .join(" ");
  const site = findProbeSite(readElf(library), "llama_decode")!;
  return liveAddress(pid, "llama_decode") + site.delta;
}

const UPROBE_TRAP = 0xcc;

describe("profinfer agent", () => {
  test("three llama-servers of two models, stopped, started and restarted: each appears and goes, its tokens are its own /metrics', one probe set serves them, none is left", async () => {
    const ports = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
    const servers: PortServer[] = [];
    let agent: RunningAgent | null = null;
    try {
      // started before the agent
      const a = await serverOnPort(llamaModel, ports[0]!, ["-c", "1024"]);
      servers.push(a);
      agent = await startAgent([...INCLUDE, "--exit-linger", "1", "--request-idle", "1"]);
      const idA = await followed(agent, a.process.pid!);
      const b = await serverOnPort(llamaModel, ports[1]!, ["-c", "1024"]);
      const c = await serverOnPort(qwenModel, ports[2]!, ["-c", "1024"]);
      servers.push(b, c);
      const idB = await followed(agent, b.process.pid!);
      const idC = await followed(agent, c.process.pid!);
      assert.equal(new Set([idA, idB, idC]).size, 3, "three instances");
      for (const s of [a, b, c]) await runInTurn(s.base, mixedLoad(3));
      for (const [id, s] of [
        [idA, a],
        [idB, b],
        [idC, c],
      ] as const)
        await countsMatch(agent, id, s);
      let series = await agent.series();
      const model = (id: string) =>
        series.find(
          (s) => s.name === N.PROMPT_TOKENS && s.labels[N.LABEL_SERVICE_INSTANCE_ID] === id,
        )?.labels[N.LABEL_MODEL];
      assert.deepEqual(
        [model(idA), model(idB), model(idC)],
        ["tiny-llama", "tiny-llama", "tiny-qwen2"],
      );
      // one build, three processes: one set of probes
      assert.equal(series.find((s) => s.name === N.AGENT_PROBE_SETS)?.value, 1);
      assert.equal(series.find((s) => s.name === N.AGENT_PROCESSES)?.value, 3);
      // no pid on the counters: only on the info series
      for (const s of series) {
        if (s.name !== N.PROCESS_INFO) assert.equal(s.labels[N.LABEL_PID], undefined, s.name);
      }
      const trapped = decodeProbeAddress(a.process.pid!);
      assert.equal(
        (await readTargetBytes(a.process.pid!, trapped, 1))[0],
        UPROBE_TRAP,
        "the probe is in place while the agent runs",
      );

      // one stops: its series go
      await b.stop();
      servers.splice(servers.indexOf(b), 1);
      await eventually(`${idB} gone`, async () => {
        series = await agent!.series();
        return series.some((s) => s.labels[N.LABEL_SERVICE_INSTANCE_ID] === idB) ? undefined : true;
      });
      // another starts
      const d = await serverOnPort(llamaModel, ports[3]!, ["-c", "1024"]);
      servers.push(d);
      const idD = await followed(agent, d.process.pid!);
      await runInTurn(d.base, mixedLoad(2));
      await countsMatch(agent, idD, d);
      // one restarts with the same command line: the same instance, counting afresh
      await a.stop();
      servers.splice(servers.indexOf(a), 1);
      const a2 = await serverOnPort(llamaModel, ports[0]!, ["-c", "1024"]);
      servers.push(a2);
      await eventually(`the restarted server followed`, async () =>
        ofPid(await agent!.series(), a2.process.pid!) ? true : undefined,
      );
      assert.equal(await followed(agent, a2.process.pid!), idA, "a restart keeps its instance id");
      await runInTurn(a2.base, mixedLoad(2));
      await countsMatch(agent, idA, a2);

      // the agent stops: no probe is left in the servers that go on
      const addresses = servers.map((s) => [s, decodeProbeAddress(s.process.pid!)] as const);
      const stopped = await agent.stop();
      agent = null;
      assert.equal(stopped.code, 0, stopped.log.slice(-3000));
      for (const [s, address] of addresses) {
        const byte = (await readTargetBytes(s.process.pid!, address, 1))[0];
        assert.notEqual(byte, UPROBE_TRAP, `pid ${s.process.pid}: no uprobe left`);
      }
      for (const s of servers) assert.equal((await http("GET", `${s.base}/health`)).status, 200);
    } finally {
      await agent?.stop();
      await Promise.all(servers.map((s) => s.stop()));
    }
  });

  test("a node-llama-cpp app started after the agent is found through the backend it dlopens", async () => {
    const agent = await startAgent([...INCLUDE, "--exit-linger", "60"]);
    try {
      const [node, ...args] = nodeLlamaCppWorkload("--model", qwenModel, "--tokens", "12");
      const app = spawn(node!, args, { stdio: ["ignore", "pipe", "pipe"] });
      let stdout = "";
      let stderr = "";
      app.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
      app.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      const code = await new Promise<number | null>((r) => app.on("exit", (c) => r(c)));
      assert.equal(code, 0, stderr.slice(-3000));
      const said = JSON.parse(stdout.split("\n").find((l) => l.startsWith("{"))!) as {
        promptTokens: number;
        generatedTokens: number;
      };
      await eventually(
        () => `the app followed\n${agent.log()}`,
        async () => (agent.log().includes(`following pid ${app.pid} (node,`) ? true : undefined),
      );
      const series = await agent.series();
      const id = series.find(
        (s) => s.name === N.GENERATED_TOKENS && s.labels[N.LABEL_EXECUTABLE] === "node",
      )?.labels[N.LABEL_SERVICE_INSTANCE_ID];
      assert.ok(id, "the app's series");
      assert.equal(valueOf(series, N.GENERATED_TOKENS, id), said.generatedTokens);
      assert.equal(valueOf(series, N.PROMPT_TOKENS, id), said.promptTokens);
    } finally {
      const stopped = await agent.stop();
      assert.equal(stopped.code, 0, stopped.log.slice(-3000));
    }
  });

  test("sampled windows: operator spans of K calls at a real OTLP receiver, their profiles at a real collector, run folders kept within their bounds", async () => {
    const collector = await OtlpCollector.start();
    const profiles = await ProfilesCollector.start(join(marker, "profiles-collector"));
    const windows = join(marker, "windows");
    const CALLS = 4;
    const KEEP = 2;
    const MAX = 48 << 20;
    const server = await serverOnPort(llamaModel, await freePort(), ["-c", "1024"]);
    const agent = await startAgent([
      ...INCLUDE,
      ...["--window-every", "2", "--window-calls", String(CALLS), "--window-dir", windows],
      ...["--window-keep", String(KEEP), "--window-max-size", "48M"],
      ...["--otlp-endpoint", collector.url],
      ...["--profiles-endpoint", profiles.grpcEndpoint],
    ]);
    try {
      const id = await followed(agent, server.process.pid!);
      // a load while windows come and go, until three have ended
      const ended = () =>
        agent.log().match(/window on pid \d+: 4 llama_decode calls recorded/g)?.length ?? 0;
      // bounded in time, not in requests: a quiet machine answers many requests per window
      const until = Date.now() + 120_000;
      while (ended() < 3) {
        assert.ok(Date.now() < until, `windows ended: ${ended()}\n${agent.log().slice(-3000)}`);
        await runInTurn(server.base, mixedLoad(2));
      }
      const series = await agent.series();
      const started = series.find(
        (s) => s.name === N.AGENT_WINDOWS && s.labels[N.LABEL_TRIGGER] === "schedule",
      )!.value;
      assert.ok(started >= 3, `${started} windows`);
      // every window's spans: its process's identity on the resource, operators under its calls
      const ofWindow = new Map<string, ReceivedSpan[]>();
      await eventually("spans of three windows", async () => {
        ofWindow.clear();
        for (const span of collector.spans) {
          if (span.resource[N.RES_SERVICE_INSTANCE_ID]?.value !== id) continue;
          const run = String(span.resource[N.RES_RUN_ID]?.value);
          ofWindow.set(run, [...(ofWindow.get(run) ?? []), span]);
        }
        return ofWindow.size >= 3 ? true : undefined;
      });
      for (const [run, spans] of ofWindow) {
        const calls = spans.filter((s) => s.name === N.SPAN_TOKEN);
        assert.ok(calls.length >= 1 && calls.length <= CALLS, `${run}: ${calls.length} calls`);
        assert.equal(spans[0]!.resource[N.RES_WINDOW_TRIGGER]?.value, "schedule");
        const graphIds = new Set(spans.filter((s) => s.name === N.SPAN_GRAPH).map((g) => g.spanId));
        const ops = spans.filter((s) => s.name !== N.SPAN_GRAPH && graphIds.has(s.parentSpanId));
        assert.ok(
          ops.some((o) => o.name === "mul_mat"),
          `${run}: operator spans`,
        );
      }
      // the run folders: the newest, within the count and the bytes
      const folders = readdirSync(windows).map((f) => join(windows, f));
      assert.ok(folders.length <= KEEP, `${folders.length} folders kept`);
      const bytes = (p: string): number =>
        statSync(p).isDirectory()
          ? readdirSync(p).reduce((n, e) => n + bytes(join(p, e)), 0)
          : statSync(p).size;
      assert.ok(folders.reduce((n, f) => n + bytes(f), 0) <= MAX);
      for (const f of folders) assert.ok(existsSync(join(f, "stats.json")), f);
      // every window's operator time as an OTLP profile, under the same identity and run as its
      // spans
      await eventually("profiles of three windows", async () => {
        const text = existsSync(profiles.outFile) ? readFileSync(profiles.outFile, "utf8") : "";
        const wall = readProfiles(text).filter(
          (p) => p.type === "wall" && p.resource.get(N.RES_SERVICE_INSTANCE_ID) === id,
        );
        // the three windows whose spans arrived, each with a profile (later windows may follow)
        const runs = new Set(wall.map((p) => String(p.resource.get(N.RES_RUN_ID))));
        if ([...ofWindow.keys()].filter((run) => runs.has(run)).length < 3) return undefined;
        assert.ok(
          wall.every((p) => p.samples.some((s) => s.frames.some((f) => f.name === "mul_mat"))),
        );
        return true;
      });
    } finally {
      const stopped = await agent.stop();
      await server.stop();
      await collector.stop();
      await profiles.stop();
      assert.equal(stopped.code, 0, stopped.log.slice(-3000));
    }
  });

  test("selection from a configuration file, read again on SIGHUP; a bad one is said and the running one kept", async () => {
    const config = join(marker, "reload.yaml");
    const selecting = (exclude: string) =>
      writeFileSync(
        config,
        `include:\n  - command: '*${marker}*'\nexclude:\n  - executable: '${exclude}'\n`,
      );
    selecting("*/llama-server");
    const server = await serverOnPort(llamaModel, await freePort(), ["-c", "512"]);
    const agent = await startAgent(["--config", config]);
    try {
      // the first look at the running processes may end after the metrics server is up
      await eventually("the first look follows nothing", async () =>
        /following 0 llama\.cpp process/.test(agent.log()) ? true : undefined,
      );
      selecting("*/nothing-of-the-sort");
      agent.hup();
      await followed(agent, server.process.pid!);
      writeFileSync(config, "exclude:\n  - exe: llama-server\n");
      agent.hup();
      await eventually("the bad configuration said", async () =>
        /the configuration was not reloaded: .*exclude\[0\]: unknown field 'exe'/.test(agent.log())
          ? true
          : undefined,
      );
      assert.ok(ofPid(await agent.series(), server.process.pid!), "still followed");
    } finally {
      const stopped = await agent.stop();
      await server.stop();
      assert.equal(stopped.code, 0, stopped.log.slice(-3000));
    }
  });

  test("a followed process that execs llama-server is followed again as what it became", async () => {
    const agent = await startAgent([...INCLUDE, "--exit-linger", "0"]);
    const port = await freePort();
    const libllama = execFileSync(
      "sh",
      ["-c", `ldd ${llama("llama-server")} | grep -o '/[^ ]*/libllama[.]so[^ ]*'`],
      {
        encoding: "utf8",
      },
    ).trim();
    // python maps llama.cpp's library (followed as python3), then replaces itself with the server
    const [binary, ...args] = serverArgs(llamaModel, port, ["-c", "512"]);
    const program = `import ctypes, os, time; ctypes.CDLL(${JSON.stringify(libllama)}); time.sleep(3); os.execv(${JSON.stringify(binary)}, ${JSON.stringify([binary!, ...args])})`;
    const child = spawn("python3", ["-c", program, marker], { stdio: "ignore" });
    try {
      await eventually("followed as python3", async () =>
        new RegExp(`following pid ${child.pid} \\(python3[.\\d]*,`).test(agent.log())
          ? true
          : undefined,
      );
      await eventually("followed again as llama-server", async () =>
        agent.log().includes(`following pid ${child.pid} (llama-server,`) ? true : undefined,
      );
      assert.match(
        agent.log(),
        new RegExp(`pid ${child.pid} \\(python3[.\\d]*\\) replaced its program \\(exec\\)`),
      );
      const base = `http://127.0.0.1:${port}`;
      await waitForHealth(base, () => child.exitCode === null);
      await runInTurn(base, mixedLoad(2));
      const id = await followed(agent, child.pid!);
      await countsMatch(agent, id, { base });
    } finally {
      child.kill("SIGTERM");
      const stopped = await agent.stop();
      assert.equal(stopped.code, 0, stopped.log.slice(-3000));
    }
  });

  test("bad input: an unknown key, a library without llama_decode, processes gone while attached, a second agent", async () => {
    // a configuration with a misspelt key is refused, naming it
    const config = join(marker, "agent.yaml");
    writeFileSync(config, "include:\n  - executable: '*/llama-server'\nwindows:\n  evry: 60\n");
    const refused = spawnSync(cli, ["agent", "--config", config], { encoding: "utf8" });
    assert.equal(refused.status, 2);
    assert.match(refused.stderr, /windows\.evry: unknown key; 'windows' takes dir, every, calls/);

    const agent = await startAgent([...INCLUDE, "--exit-linger", "0"]);
    try {
      // a library named as llama.cpp's without its symbols, loaded by a program
      const fake = join(marker, "fake");
      execFileSync("mkdir", ["-p", fake]);
      writeFileSync(join(fake, "fake.c"), "int not_llama(void) { return 42; }\n");
      execFileSync("cc", [
        "-shared",
        "-fPIC",
        "-o",
        join(fake, "libllama.so"),
        join(fake, "fake.c"),
      ]);
      const loader = spawn("python3", [
        "-c",
        `import ctypes, time; ctypes.CDLL(${JSON.stringify(join(fake, "libllama.so"))}); time.sleep(30)`,
        marker,
      ]);
      try {
        await eventually("the library without symbols reported", async () =>
          agent
            .log()
            .includes(
              `pid ${loader.pid} maps ${join(fake, "libllama.so")}, which defines no llama_decode`,
            )
            ? true
            : undefined,
        );
        const failures = (await agent.series()).find(
          (s) => s.name === N.AGENT_ATTACH_FAILURES && s.labels[N.LABEL_REASON] === "no_symbols",
        );
        assert.ok(failures && failures.value >= 1);
      } finally {
        loader.kill("SIGKILL");
      }

      // programs that load llama.cpp and exit at once, many times: none is kept, the agent goes on
      const quick = Array.from({ length: 12 }, () =>
        spawnSync(llama("llama-server"), ["--version", "-m", marker], { encoding: "utf8" }),
      );
      assert.ok(quick.every((q) => q.status === 0));
      await new Promise((r) => setTimeout(r, 1000));
      const health = JSON.parse((await http("GET", `${agent.base}/healthz`)).text) as {
        status: string;
        processes: number;
        probeSets: number;
      };
      assert.deepEqual(health, { ...health, status: "ok", processes: 0, probeSets: 0 });
      for (const q of quick) assert.equal(ofPid(await agent.series(), q.pid!), undefined);

      // a second agent refuses, naming the first
      const second = spawnSync(
        cli,
        ["agent", "--metrics-addr", "127.0.0.1:0", "--runtime-dir", agent.runtimeDir],
        { encoding: "utf8", timeout: 60_000 },
      );
      assert.equal(second.status, 2);
      assert.match(
        second.stderr,
        new RegExp(
          `another profinfer agent is running on this host \\(pid ${agent.pid}, metrics at 127\\.0\\.0\\.1:\\d+\\)`,
        ),
      );
      assert.ok(agent.running(), "the first goes on");
    } finally {
      const stopped = await agent.stop();
      assert.equal(stopped.code, 0, stopped.log.slice(-3000));
    }
  });
});
