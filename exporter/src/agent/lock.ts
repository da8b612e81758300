// SPDX-License-Identifier: Apache-2.0
// One agent per host: the first binds a Unix socket in the runtime folder and holds it while it
// runs; a second finds it taken, asks the holder who it is, and refuses with that. A socket, not
// a pid file: the kernel releases it when its holder dies however it dies, and a file left by a
// killed agent is told apart from a live one by whether anyone answers on it.
import { mkdirSync, unlinkSync } from "node:fs";
import { createConnection, createServer, type Server } from "node:net";
import { join } from "node:path";
import { UserError } from "../errors.js";

export interface AgentLock {
  release(): Promise<void>;
}

/** What the holder answers a second agent: its pid and where it serves its metrics. */
interface Holder {
  pid: number;
  metrics: string;
}

function ask(path: string): Promise<Holder | null> {
  return new Promise((resolveAsk) => {
    const socket = createConnection(path);
    let text = "";
    const done = (holder: Holder | null) => {
      socket.destroy();
      resolveAsk(holder);
    };
    socket.setTimeout(2000, () => done(null));
    socket.on("data", (d) => (text += d.toString()));
    socket.on("end", () => {
      try {
        done(JSON.parse(text) as Holder);
      } catch {
        done(null);
      }
    });
    socket.on("error", () => done(null));
  });
}

function listen(server: Server, path: string): Promise<NodeJS.ErrnoException | null> {
  return new Promise((resolveListen) => {
    server.once("error", (error: NodeJS.ErrnoException) => resolveListen(error));
    server.listen(path, () => resolveListen(null));
  });
}

/** Takes the host's agent lock in `runtimeDir`, or refuses with who holds it. */
export async function takeAgentLock(runtimeDir: string, metrics: string): Promise<AgentLock> {
  mkdirSync(runtimeDir, { recursive: true, mode: 0o755 });
  const path = join(runtimeDir, "agent.sock");
  const answer = JSON.stringify({ pid: process.pid, metrics } satisfies Holder);
  for (let attempt = 0; attempt < 2; attempt++) {
    const server = createServer((socket) => socket.end(answer));
    const error = await listen(server, path);
    if (!error) {
      server.unref();
      return {
        release: () => new Promise<void>((resolveRelease) => server.close(() => resolveRelease())),
      };
    }
    if (error.code !== "EADDRINUSE") {
      throw new UserError(`cannot take the agent's lock ${path}: ${error.message}`);
    }
    const holder = await ask(path);
    if (holder) {
      throw new UserError(
        `another profinfer agent is running on this host (pid ${holder.pid}, metrics at ${holder.metrics}): ` +
          `one agent follows every llama.cpp process of a host, so a second would only double the probes and the series. ` +
          `Stop the running one first (systemctl stop profinfer-agent, or kill ${holder.pid}).`,
      );
    }
    // nobody answers: the socket was left by an agent that died; take it over
    try {
      unlinkSync(path);
    } catch {
      // another agent starting at this moment took it over first: the next attempt sees it
    }
  }
  throw new UserError(`cannot take the agent's lock ${path}: another agent is starting now`);
}
