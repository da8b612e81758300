// SPDX-License-Identifier: Apache-2.0
// llama-server under a load of concurrent requests, and what the server itself says about them:
// each /completion response's `timings` and `id_slot`, and the `llamacpp:*` counters of /metrics.
// The requests tests compare profinfer's requests with these figures (an oracle from outside
// profinfer). The server is either launched here or by `profinfer record -- llama-server ...`:
// serverArgs() builds the command line either way, waitForHealth() waits for it to load.
import { spawn, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { cli, freePort, llama } from "./targets.js";

/** What llama-server reports per request (`timings` of a /completion response). */
export interface ServerTimings {
  /** prompt tokens evaluated (not taken from the cache) */
  prompt_n: number;
  /** from the slot starting the prompt to the first token sampled */
  prompt_ms: number;
  /** tokens sampled */
  predicted_n: number;
  /** from the first token sampled to the last */
  predicted_ms: number;
  /** prompt tokens taken from the slot's cache */
  cache_n: number;
}

/** One request of a load: a prompt and how many tokens to generate (EOS ignored). */
export interface LoadRequest {
  prompt: string;
  nPredict: number;
  /** the slot to serve it (id_slot); the server chooses when absent */
  slot?: number;
}

export interface LoadResponse {
  /** index of the request in the load */
  index: number;
  /** the slot that served it; llama-server's sequence id is the slot id */
  slot: number;
  /** its place among the responses of the whole load, in order of arrival */
  arrival: number;
  timings: ServerTimings;
  tokensPredicted: number;
}

/** llama-server's command line: `model`, loopback `port`, 2 threads, `extra` (-np, -c ...). */
export function serverArgs(model: string, port: number, extra: string[] = []): string[] {
  return [
    llama("llama-server"),
    "-m",
    model,
    "--host",
    "127.0.0.1",
    "--port",
    String(port),
    "-t",
    "2",
    "--metrics",
    ...extra,
  ];
}

/**
 * One HTTP exchange on a connection of its own, closed after it: llama-server serves each open
 * connection on one of its few fixed HTTP threads, so a kept-alive idle one (fetch's pool) can
 * hold back a request of the load for seconds.
 */
export function http(
  method: "GET" | "POST",
  url: string,
  body?: unknown,
): Promise<{ status: number; text: string }> {
  return new Promise((resolveExchange, reject) => {
    const req = httpRequest(url, { method, agent: false }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (text += d));
      res.on("end", () => resolveExchange({ status: res.statusCode ?? 0, text }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

/** Waits until the server at `base` answers /health with 200; fails if `alive()` turns false. */
export async function waitForHealth(
  base: string,
  alive: () => boolean,
  attempts = 300,
): Promise<void> {
  for (let i = 0; i < attempts; i++) {
    const ok = await http("GET", `${base}/health`)
      .then((r) => r.status === 200)
      .catch(() => false);
    if (ok) return;
    if (!alive()) throw new Error(`llama-server at ${base} exited before it was ready`);
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`llama-server at ${base} did not answer /health within ${attempts} tries`);
}

export interface StartedServer {
  process: ChildProcess;
  base: string;
  /** what the server wrote on stderr so far (for failure messages) */
  stderr(): string;
}

/** Starts llama-server (serverArgs) on a free port and waits until it is ready. */
export async function startServer(model: string, extra: string[] = []): Promise<StartedServer> {
  const port = await freePort();
  const [binary, ...args] = serverArgs(model, port, extra);
  const child = spawn(binary!, args, { stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  child.stderr!.on("data", (d: Buffer) => (err = (err + d.toString()).slice(-20000)));
  const base = `http://127.0.0.1:${port}`;
  try {
    await waitForHealth(base, () => child.exitCode === null && child.signalCode === null);
  } catch (error) {
    child.kill("SIGKILL");
    throw new Error(`${(error as Error).message}\n${err.slice(-3000)}`);
  }
  return { process: child, base, stderr: () => err };
}

/** POST /completion: greedy, EOS ignored, the prompt cache on; fails unless 200. */
export async function complete(
  base: string,
  request: LoadRequest,
): Promise<{ slot: number; timings: ServerTimings; tokensPredicted: number }> {
  const { status, text } = await http("POST", `${base}/completion`, {
    prompt: request.prompt,
    n_predict: request.nPredict,
    temperature: 0,
    ignore_eos: true,
    cache_prompt: true,
    ...(request.slot === undefined ? {} : { id_slot: request.slot }),
  });
  if (status !== 200) throw new Error(`llama-server answered ${status}: ${text}`);
  const body = JSON.parse(text) as {
    id_slot: number;
    timings: ServerTimings;
    tokens_predicted: number;
  };
  return { slot: body.id_slot, timings: body.timings, tokensPredicted: body.tokens_predicted };
}

/** Sends every request of `load` at once and collects the responses (in load order). */
export async function runLoad(base: string, load: readonly LoadRequest[]): Promise<LoadResponse[]> {
  let arrivals = 0;
  return Promise.all(
    load.map(async (request, index) => {
      const r = await complete(base, request);
      return { index, arrival: arrivals++, ...r };
    }),
  );
}

/** Sends the requests of `load` one after the other, each once the one before was answered. */
export async function runInTurn(
  base: string,
  load: readonly LoadRequest[],
): Promise<LoadResponse[]> {
  const out: LoadResponse[] = [];
  for (const [index, request] of load.entries())
    out.push({ index, arrival: index, ...(await complete(base, request)) });
  return out;
}

/**
 * A load of `count` requests of different prompt and output lengths; the even ones share a long
 * prefix, so that a slot's cache serves a later one (cache_n > 0 in the server's figures). After 8
 * the prompts repeat, as a retried request does: the server, finding the whole prompt in a cache,
 * evaluates only its last token again (prompt_n 1). Their output lengths (one less per round) keep
 * every prompt length of the tiny llama model apart from every other request's prompt + output
 * length, so that no repeated prompt's one remaining token falls right after another request's
 * last position, which would read as that request's decode step (docs/trace-model.md, Requests).
 */
export function mixedLoad(count: number): LoadRequest[] {
  const shared =
    "You are a careful assistant. Answer in one short paragraph, plainly, without lists. " +
    "The farm lies at the end of a long road past the river, the mill and the old stone bridge, " +
    "where the fox, the dog and the hens have lived side by side for many quiet years.";
  const questions = [
    "Who lives on the farm?",
    "Why is the road so long, and what does one pass on the way there from the town?",
    "Name the bridge.",
    "What does the fox do at night when the dog is asleep and the hens are in their house?",
    "Is the mill still working?",
    "Tell me about the river.",
    "How old is the stone bridge, and who built it, and why did they choose that place?",
    "What colour is the dog?",
  ];
  const outputs = [6, 17, 9, 24, 4, 13, 30, 8];
  return Array.from({ length: count }, (_, i) => ({
    prompt: (i % 2 === 0 ? `${shared} ` : "") + questions[i % questions.length]!,
    nPredict: outputs[i % outputs.length]! - Math.floor(i / outputs.length),
  }));
}

/** The `llamacpp:*` series of the server's /metrics (it runs with --metrics), by name. */
export async function serverMetrics(base: string): Promise<Map<string, number>> {
  const { status, text } = await http("GET", `${base}/metrics`);
  if (status !== 200) throw new Error(`/metrics answered ${status}: ${text}`);
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = /^llamacpp:(\w+) (\S+)$/.exec(line);
    if (m) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

/** The pid of a process's child (the program under profinfer record, which execs into it). */
export function childOf(parent: number): number {
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

export interface RecordedServer {
  base: string;
  /** the server's pid (profinfer record's child: its shell execs into the server) */
  pid: number;
  /** SIGTERM to the server, then the record's end: its exit code and stderr */
  stop(): Promise<{ code: number | null; stderr: string; stdout: string }>;
}

/**
 * `profinfer record --no-status --out DIR ...recordArgs -- llama-server ...`: the server traced
 * from its launch, once it answers /health; on `port` (default: a free one).
 */
export async function recordServer(
  outDir: string,
  model: string,
  serverExtra: string[],
  recordArgs: string[] = [],
  port?: number,
): Promise<RecordedServer> {
  port ??= await freePort();
  const record = spawn(
    cli,
    [
      "record",
      "--no-status",
      "--out",
      outDir,
      ...recordArgs,
      "--",
      ...serverArgs(model, port, serverExtra),
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let stderr = "";
  let stdout = "";
  record.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  record.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
  const exited = new Promise<number | null>((r) => record.on("close", (code) => r(code)));
  const base = `http://127.0.0.1:${port}`;
  try {
    await waitForHealth(base, () => record.exitCode === null);
  } catch (error) {
    record.kill("SIGKILL");
    throw new Error(`${(error as Error).message}\n${stderr.slice(-3000)}`);
  }
  const pid = childOf(record.pid!);
  return {
    base,
    pid,
    async stop() {
      process.kill(pid, "SIGTERM");
      return { code: await exited, stderr, stdout };
    },
  };
}

/** A streamed completion under way. */
export interface Stream {
  /** tokens received so far */
  received(): number;
  /** the server's figures so far (timings_per_token), null before the first chunk */
  timings(): ServerTimings | null;
  /** closes the connection: the server stops generating it */
  cancel(): void;
  /** resolves with the final chunk's figures; rejects when cancelled */
  done: Promise<{ slot: number; timings: ServerTimings }>;
}

/** POST /completion with `stream: true` and the server's figures in every chunk. */
export function completeStreaming(base: string, request: LoadRequest): Stream {
  let received = 0;
  let latest: ServerTimings | null = null;
  let cancel = () => {};
  const done = new Promise<{ slot: number; timings: ServerTimings }>((resolveDone, reject) => {
    const req = httpRequest(`${base}/completion`, { method: "POST", agent: false }, (res) => {
      if (res.statusCode !== 200) {
        reject(new Error(`llama-server answered ${res.statusCode}`));
        res.resume();
        return;
      }
      let buffered = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => {
        buffered += d;
        let end: number;
        while ((end = buffered.indexOf("\n\n")) >= 0) {
          const event = buffered.slice(0, end);
          buffered = buffered.slice(end + 2);
          if (!event.startsWith("data: ")) continue;
          const chunk = JSON.parse(event.slice(6)) as {
            stop: boolean;
            tokens?: number[];
            id_slot: number;
            timings?: ServerTimings;
          };
          if (chunk.timings) latest = chunk.timings;
          if (chunk.stop) {
            resolveDone({ slot: chunk.id_slot, timings: chunk.timings! });
            return;
          }
          received += chunk.tokens?.length ?? 1;
        }
      });
      res.on("error", reject);
      res.on("end", () => reject(new Error("the stream ended without its final chunk")));
    });
    req.on("error", reject);
    cancel = () => req.destroy(new Error("cancelled"));
    req.end(
      JSON.stringify({
        prompt: request.prompt,
        n_predict: request.nPredict,
        temperature: 0,
        ignore_eos: true,
        cache_prompt: true,
        stream: true,
        timings_per_token: true,
      }),
    );
  });
  return { received: () => received, timings: () => latest, cancel: () => cancel(), done };
}

/** What the pairing of responses with requests needs of a request (stats.json's RequestStat). */
interface SequenceRequest {
  seqId: number;
  generatedTokens: number;
}

/**
 * Each response with its request in the trace. llama-server gives each slot the sequence id of
 * the slot's number (id_slot in the response) and a slot serves one request at a time, so the
 * k-th request profinfer found on sequence s is the k-th one slot s served. A slot sends its
 * response when it finishes a request, before it can take the next, and the next takes at least
 * its own prompt's llama_decode call before it can answer: on each slot the responses arrive in
 * the order the slot served them. Requests without output (llama-server's warm-up call) are not
 * responses. Also returns both sides by slot, so that a caller can say where they differ.
 */
export function pairBySlot<R extends SequenceRequest>(
  requests: readonly R[],
  responses: readonly LoadResponse[],
): {
  pairs: { response: LoadResponse; request: R | undefined }[];
  requestsBySlot: Map<number, R[]>;
  responsesBySlot: Map<number, LoadResponse[]>;
} {
  const requestsBySlot = new Map<number, R[]>();
  for (const r of requests) {
    if (r.generatedTokens === 0) continue;
    requestsBySlot.set(r.seqId, [...(requestsBySlot.get(r.seqId) ?? []), r]);
  }
  const responsesBySlot = new Map<number, LoadResponse[]>();
  for (const r of [...responses].sort((a, b) => a.arrival - b.arrival))
    responsesBySlot.set(r.slot, [...(responsesBySlot.get(r.slot) ?? []), r]);
  const pairs = [...responsesBySlot].flatMap(([slot, list]) =>
    list.map((response, k) => ({ response, request: requestsBySlot.get(slot)?.[k] })),
  );
  return { pairs, requestsBySlot, responsesBySlot };
}
