// SPDX-License-Identifier: Apache-2.0
// Every `npx profinfer ...` command of the README and docs/ runs as written, the way a user runs
// it: through npx (the bin npm links), with sudo where the line has it, from a folder of its own. What a line leaves to the reader is filled in:
// `model.gguf` is the tiny llama, `llama-completion` the built one, `--pid 1234` a running llama-server, a run folder the one the
// first record wrote, the collector at localhost:4317 a real one (in front of Jaeger), a bare
// `...` a short completion. Commands that run until stopped (a server, attach, the agent) are
// stopped with SIGINT once they trace (the agent: once its /healthz answers), as a user stops
// them with Ctrl-C.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { ProfStats } from "@profinfer/contract";
import { Collector, Jaeger } from "./support/stack.js";
import { startServer, type StartedServer } from "./support/llamaServerLoad.js";
import { manifest, repoRoot, tinyModels } from "./support/targets.js";

/** The commands of the sh blocks of a Markdown file, continuation lines joined, comments cut. */
function commandsOf(file: string): string[] {
  const out: string[] = [];
  const text = readFileSync(file, "utf8");
  for (const block of text.matchAll(/^\s*```sh\n([\s\S]*?)^\s*```/gm)) {
    const lines = block[1]!.split("\n").map((l) => l.trim());
    for (let i = 0; i < lines.length; i++) {
      let line = lines[i]!;
      while (line.endsWith("\\") && i + 1 < lines.length)
        line = `${line.slice(0, -1)} ${lines[++i]}`;
      line = line.replace(/\s+#\s.*$/, "").trim();
      if (/^(sudo )?npx profinfer\b/.test(line)) out.push(line);
    }
  }
  return out;
}

const documents = [
  join(repoRoot, "README.md"),
  ...readdirSync(join(repoRoot, "docs"))
    .filter((f) => f.endsWith(".md"))
    .map((f) => join(repoRoot, "docs", f)),
];

describe("every profinfer command of the README and docs/ works as written", () => {
  const cwd = mkdtempSync(join(tmpdir(), "profinfer-docs-"));
  let server: StartedServer | null = null;
  let jaeger: Jaeger;
  let collector: Collector;
  let tinyLlama = "";
  const env = {
    ...process.env,
    PATH: `${manifest().llamaCpp.binDir}:${process.env.PATH}`,
    TOKEN: "docs-test",
  };
  before(async () => {
    // npx finds the project's bin through node_modules, as in a project that installed profinfer
    symlinkSync(join(repoRoot, "node_modules"), join(cwd, "node_modules"));
    tinyLlama = tinyModels().find((m) => m.arch === "llama")!.path;
    jaeger = await Jaeger.start(join(cwd, "stack"));
    collector = await Collector.start(join(cwd, "stack"), jaeger.otlpEndpoint);
    server = await startServer(tinyLlama);
  });
  after(async () => {
    server?.process.kill("SIGTERM");
    await collector?.stop();
    await jaeger?.stop();
    rmSync(cwd, { recursive: true, force: true });
  });

  const all = documents.flatMap((d) => commandsOf(d).map((c) => ({ doc: d, command: c })));
  test("the documents hold commands", () => assert.ok(all.length >= 20, `${all.length}`));

  for (const { doc, command } of all) {
    test(`${doc.slice(repoRoot.length + 1)}: ${command}`, async () => {
      const runs = join(cwd, "profinfer-runs");
      // the folder of the last run recorded with events per call (a --level metrics run has no
      // operators to report or profile), as the examples' llama-cli-... folder is
      const lastRun = () =>
        existsSync(runs)
          ? readdirSync(runs)
              .sort()
              .filter((r) => {
                const stats = join(runs, r, "stats.json");
                return (
                  existsSync(stats) &&
                  (JSON.parse(readFileSync(stats, "utf8")) as ProfStats).run.level !== "metrics"
                );
              })
              .map((r) => join("profinfer-runs", r))
              .pop()
          : undefined;
      let line = command
        .replaceAll("model.gguf", tinyLlama)
        .replace(/--pid (1234|\$\(pidof llama-server\))/g, `--pid ${server!.process.pid}`)
        .replaceAll("http://localhost:4317", collector.grpcEndpoint)
        .replaceAll("https://tempo.example:4317", collector.grpcEndpoint)
        .replace(/ -- \.\.\.$/, ` -- llama-completion -m ${tinyLlama} -p Hello -n 8 -no-cnv`)
        // the reader's own llama.cpp programs: sudo's secure_path would not find them on PATH
        .replace(/\b(llama-completion|llama-server)\b(?= -m)/g, (p: string) =>
          join(manifest().llamaCpp.binDir, p),
        );
      if (/profinfer-runs\/\S+/.test(line)) {
        const run = lastRun();
        assert.ok(run, "an earlier command recorded a run");
        line = line.replace(/profinfer-runs\/\S+/g, run);
      }
      // a server or attach runs until stopped: Ctrl-C once it traces (and, attached to the
      // server, once it answered a request), to the whole process group as a terminal sends it
      const agent = /profinfer agent\b/.test(line);
      const untilStopped = agent || /\battach\b|-- \S*llama-server\b/.test(line);
      const child = spawn("bash", ["-c", line], {
        cwd,
        env,
        stdio: ["ignore", "pipe", "pipe"],
        detached: true,
      });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      const timer = setTimeout(() => process.kill(-child.pid!, "SIGKILL"), 300_000);
      const done = new Promise<{ code: number | null; signal: string | null }>((r) =>
        child.on("close", (code, signal) => r({ code, signal })),
      );
      if (untilStopped) {
        const ready = agent
          ? /agent: metrics at (http:\S+)\/metrics/
          : /profinfer: tracing pid \d+/;
        for (let i = 0; !ready.test(stderr); i++) {
          assert.ok(i < 1200, `traced within 120 s:\n${stderr.slice(-3000)}`);
          await new Promise((r) => setTimeout(r, 100));
        }
        if (agent) {
          const health = await fetch(`${ready.exec(stderr)![1]}/healthz`);
          assert.equal(health.status, 200, stderr.slice(-3000));
        } else if (/\battach\b/.test(line)) {
          const answer = await fetch(`${server!.base}/completion`, {
            method: "POST",
            body: JSON.stringify({ prompt: "Hello", n_predict: 8 }),
          });
          assert.equal(answer.status, 200);
        } else {
          await new Promise((r) => setTimeout(r, 3000));
        }
        process.kill(-child.pid!, "SIGINT");
      }
      const { code, signal } = await done;
      clearTimeout(timer);
      const said = `${line}\n${stdout.slice(-2000)}\n${stderr.slice(-3000)}`;
      if (untilStopped) {
        // npx passes Ctrl-C on as the shell shows it; profinfer itself finished the run
        assert.ok(code === 0 || signal === "SIGINT" || code === 130, said);
        assert.match(stderr, agent ? /profinfer: agent: stopped/ : /profinfer: run folder /, said);
      } else {
        assert.equal(code, 0, said);
      }
      if (/\battach\b/.test(line)) assert.match(stdout, /decode\s+[1-9]/, "the request was traced");
      assert.doesNotMatch(stderr, /could not determine executable to run/);
    });
  }
});
