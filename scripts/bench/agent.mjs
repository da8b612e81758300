// SPDX-License-Identifier: Apache-2.0
// The agent section: what `profinfer agent` costs (docs/agent.md "What it costs").
// - Its own CPU (utime + stime of its process, /proc/PID/stat) and resident memory (VmRSS):
//   idle (no llama.cpp process) over BENCH_AGENT_IDLE_S seconds (default 20), with three
//   llama-servers of the tiny model followed and idle over the same time, and per generated
//   token while those three serve BENCH_AGENT_LOAD_S seconds (default 20) of one client each.
// - Serving: llama-server with the bench model and 4 slots, 4 concurrent clients of
//   BENCH_REQUESTS_TOKENS tokens (default 32), generated tokens per second over each round's wall
//   time alone and with the agent following it, taking turns for BENCH_AGENT_ROUNDS rounds each
//   (default 5) on one server: the agent starts before its round and stops after it.
// Every process of the section carries the scratch folder in its command line and the agent
// follows only those: the machine's other llama.cpp processes do not count.
import { spawn } from "node:child_process";
import { copyFileSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { cli } from "./harness.mjs";
import { table } from "./output.mjs";
import { freePort, serveRound, servingLines, waitHealthy } from "./requests.mjs";

const { llamaBinary, requireManifest, ensureModels, TINY_MODELS, modelsDir } =
  await import("@profinfer/exporter");
const { fetch } = globalThis;
const TICKS = 100; // USER_HZ: /proc/PID/stat counts CPU in 1/100 s

/** CPU seconds (user + system) and resident bytes of process `pid` now */
function usage(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const cpu = (Number(fields[11]) + Number(fields[12])) / TICKS;
  const rss = Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))[1]);
  return { cpu, rssMb: rss / 1024 };
}

/** `profinfer agent` following the processes whose command line names `marker`, once it serves */
async function startAgent(marker, runtimeDir) {
  const port = await freePort();
  const child = spawn(
    cli,
    [
      "agent",
      "--metrics-addr",
      `127.0.0.1:${port}`,
      "--runtime-dir",
      runtimeDir,
      "--include",
      `command=*${marker}*`,
      "--exit-linger",
      "0",
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let log = "";
  child.stderr.on("data", (d) => (log += d.toString()));
  for (let i = 0; !/agent: metrics at/.test(log); i++) {
    if (child.exitCode !== null || i > 600) throw new Error(`the agent did not start: ${log}`);
    await sleep(100);
  }
  const url = `http://127.0.0.1:${port}`;
  return {
    pid: child.pid,
    /** waits until it follows `n` processes */
    async following(n) {
      for (let i = 0; i < 600; i++) {
        const text = await (await fetch(`${url}/metrics`)).text();
        if (new RegExp(`^profinfer_agent_processes ${n}$`, "m").test(text)) return;
        await sleep(100);
      }
      throw new Error(`the agent does not follow ${n} processes: ${log.slice(-1000)}`);
    },
    async generated() {
      const text = await (await fetch(`${url}/metrics`)).text();
      return [...text.matchAll(/^profinfer_generated_tokens_total\{[^}]*\} (\S+)$/gm)].reduce(
        (n, m) => n + Number(m[1]),
        0,
      );
    },
    async stop() {
      const exited = new Promise((r) => child.on("exit", r));
      child.kill("SIGINT");
      await exited;
    },
  };
}

async function startServer(model, extra) {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(
    llamaBinary(requireManifest(), "llama-server"),
    ["-m", model, "-t", "2", "--port", String(port), ...extra],
    { stdio: "ignore" },
  );
  await waitHealthy(url);
  return { url, stop: () => child.kill("SIGTERM") };
}

/** the agent's cost idle, with three servers followed, and per token while they serve */
async function measureOwnCost(bench, marker, { idleS, loadS }) {
  const tiny = ensureModels(TINY_MODELS, {
    outDir: join(modelsDir(), "tiny"),
    llamaSrcDir: requireManifest().llamaCpp.srcDir,
  }).find((m) => m.config.arch === "llama").path;
  const model = join(marker, "tiny-llama.gguf");
  copyFileSync(tiny, model);
  const agent = await startAgent(marker, join(marker, "run-own"));
  const servers = [];
  try {
    await sleep(2000);
    let from = usage(agent.pid);
    await sleep(idleS * 1000);
    let to = usage(agent.pid);
    const idle = { cpuPercent: (100 * (to.cpu - from.cpu)) / idleS, rssMb: to.rssMb };
    for (let i = 0; i < 3; i++) servers.push(await startServer(model, ["-c", "1024"]));
    await agent.following(3);
    await sleep(2000);
    from = usage(agent.pid);
    await sleep(idleS * 1000);
    to = usage(agent.pid);
    const three = { cpuPercent: (100 * (to.cpu - from.cpu)) / idleS, rssMb: to.rssMb };
    // load: one client per server, requests one after the other, for loadS seconds
    const generatedBefore = await agent.generated();
    from = usage(agent.pid);
    const until = performance.now() + loadS * 1000;
    await Promise.all(
      servers.map(async (s, i) => {
        for (let r = 0; performance.now() < until; r++) await serveRound(s.url, 1, 32, r * 10 + i);
      }),
    );
    await sleep(1500);
    to = usage(agent.pid);
    const tokens = (await agent.generated()) - generatedBefore;
    const load = {
      tokens,
      cpuSeconds: to.cpu - from.cpu,
      usPerToken: tokens > 0 ? ((to.cpu - from.cpu) * 1e6) / tokens : null,
      cpuPercent: (100 * (to.cpu - from.cpu)) / loadS,
      rssMb: to.rssMb,
    };
    return { idle, three, load };
  } finally {
    for (const s of servers) s.stop();
    await agent.stop();
  }
}

/** llama-server's tokens/s under 4 concurrent clients, alone and with the agent, in turns */
async function measureServing(bench, marker, { clients, tokens, rounds }) {
  const server = await startServer(bench.model, ["-np", "4", "-c", "4096", "--alias", marker]);
  try {
    await serveRound(server.url, clients, tokens, -1);
    const results = { alone: [], "with the agent": [] };
    for (let round = 0; round < rounds * 2; round++) {
      const withAgent = round % 2 === 1;
      const agent = withAgent ? await startAgent(marker, join(marker, `run-${round}`)) : null;
      try {
        await agent?.following(1);
        results[withAgent ? "with the agent" : "alone"].push(
          await serveRound(server.url, clients, tokens, round),
        );
      } finally {
        await agent?.stop();
      }
    }
    return results;
  } finally {
    server.stop();
  }
}

/** { own, serving }; a failure is printed, not thrown: what was measured is kept */
export async function measureAgent(bench, env = process.env) {
  const measured = { own: null, serving: null };
  const marker = join(bench.scratch, "agent-bench");
  mkdirSync(marker, { recursive: true });
  try {
    measured.own = await measureOwnCost(bench, marker, {
      idleS: Number(env.BENCH_AGENT_IDLE_S ?? 20),
      loadS: Number(env.BENCH_AGENT_LOAD_S ?? 20),
    });
    measured.serving = await measureServing(bench, marker, {
      clients: 4,
      tokens: Number(env.BENCH_REQUESTS_TOKENS ?? 32),
      rounds: Number(env.BENCH_AGENT_ROUNDS ?? 5),
    });
  } catch (error) {
    process.stdout.write(`agent not measured: ${error.message}\n`);
  }
  return measured;
}

export function agentLines({ own, serving }) {
  const lines = [];
  if (own) {
    const row = (name, m, perToken) => [
      name,
      `${m.cpuPercent.toFixed(3)}%`,
      perToken,
      m.rssMb.toFixed(1),
    ];
    lines.push(
      "",
      "profinfer agent's own process (CPU as a share of one core, resident memory at the end of each phase):",
      "",
      ...table(
        ["", "CPU", "CPU per generated token", "RSS (MB)"],
        [
          row("idle, no process followed", own.idle, "-"),
          row("three llama-servers followed, idle", own.three, "-"),
          row(
            `three serving (${own.load.tokens} tokens)`,
            own.load,
            own.load.usPerToken === null ? "-" : `${own.load.usPerToken.toFixed(1)} us`,
          ),
        ],
      ),
    );
  }
  if (serving && serving.alone.length > 0) {
    lines.push(
      ...servingLines(
        "llama-server (bench model, 4 slots), 4 concurrent clients, generated tokens/s over each round's wall time, alone and with the agent following it, taking turns on one server:",
        serving,
      ),
    );
  }
  return lines;
}
