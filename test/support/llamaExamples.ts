// SPDX-License-Identifier: Apache-2.0
// llama.cpp's own multi-sequence examples and the figures they print about their sequences:
// llama-batched (one prompt shared by N streams decoded together) and llama-parallel (simulated
// clients, each a sequence of its own, served with continuous batching). Both run with
// --log-jsonl, one JSON object per log line on stdout, so their figures are read from their own
// messages rather than from a layout of prefixes and colours.
import { llama } from "./targets.js";

/** The messages of a --log-jsonl run (other lines, such as profinfer's, are skipped). */
export function logMessages(stdout: string): string[] {
  const out: string[] = [];
  for (const line of stdout.split("\n")) {
    if (!line.startsWith('{"type":"log"')) continue;
    const msg = (JSON.parse(line) as { msg?: unknown }).msg;
    // eslint-disable-next-line no-control-regex
    if (typeof msg === "string") out.push(msg.replace(/\u001b\[[0-9;]*m/g, ""));
  }
  return out;
}

function one(messages: string[], pattern: RegExp, what: string): RegExpExecArray {
  for (const m of messages) {
    const match = pattern.exec(m);
    if (match) return match;
  }
  throw new Error(`no ${what} in the program's log (${messages.length} messages)`);
}

/**
 * llama-batched: `parallel` streams (>= 2) of `predict` positions in all (prompt included) from
 * `prompt`, greedy, on 2 threads, with a unified KV cache (its one prompt batch gives every token
 * to all streams, which the split KV cache refuses).
 */
export function batchedCommand(
  model: string,
  options: { parallel: number; predict: number; prompt: string },
): string[] {
  if (options.parallel < 2)
    throw new Error("llama-batched prints its prompt size only for -np >= 2");
  return [
    llama("llama-batched"),
    "-m",
    model,
    "-p",
    options.prompt,
    "-np",
    String(options.parallel),
    "-n",
    String(options.predict),
    "-t",
    "2",
    "--temp",
    "0",
    "-kvu",
    "--log-jsonl",
  ];
}

export interface BatchedFigures {
  /** the prompt's tokens, which every stream evaluates */
  promptTokens: number;
  /** per stream, the tokens it sampled: from the prompt's logits on, the last one not decoded */
  streams: { stream: number; generatedTokens: number }[];
  /** "decoded N tokens": the sampled tokens that were decoded (all but each stream's last) */
  decoded: number;
}

/**
 * What llama-batched says: `n_predict`, `n_parallel` and `n_kv_req` = prompt + (n_predict -
 * prompt) * n_parallel give the prompt's size; "stream i finished at n_cur = C" says stream i
 * sampled tokens for positions prompt .. C (C - prompt + 1 tokens, the last not decoded);
 * "decoded N tokens" counts the tokens it decoded.
 */
export function parseBatched(stdout: string): BatchedFigures {
  const messages = logMessages(stdout);
  const sizes = one(
    messages,
    /n_predict = (\d+), n_ctx = \d+, n_batch = \d+, n_parallel = (\d+), n_kv_req = (\d+)/,
    "n_kv_req line",
  );
  const [predict, parallel, kvReq] = [1, 2, 3].map((i) => Number(sizes[i]));
  const promptTokens = (parallel! * predict! - kvReq!) / (parallel! - 1);
  const streams = messages.flatMap((m) => {
    const match = /stream (\d+) finished at n_cur = (\d+)/.exec(m);
    return match
      ? [{ stream: Number(match[1]), generatedTokens: Number(match[2]) - promptTokens + 1 }]
      : [];
  });
  const decoded = Number(one(messages, /decoded (\d+) tokens in/, "'decoded N tokens' line")[1]);
  return { promptTokens, streams, decoded };
}

/**
 * llama-parallel: `clients` simulated clients serving `sequences` requests in all, each
 * generating up to `predict` tokens, greedy, continuous batching, on 2 threads. With
 * `sharedSystemPrompt` (-pps) the system prompt is evaluated once on sequence 0 and copied to the
 * clients' sequences (1 .. clients), whose prompts then start after it.
 */
export function parallelCommand(
  model: string,
  options: { clients: number; sequences: number; predict: number; sharedSystemPrompt: boolean },
): string[] {
  return [
    llama("llama-parallel"),
    "-m",
    model,
    "-np",
    String(options.clients),
    "-ns",
    String(options.sequences),
    "-n",
    String(options.predict),
    "-t",
    "2",
    "--temp",
    "0",
    "-c",
    "4096",
    "-kvu",
    ...(options.sharedSystemPrompt ? ["-pps"] : []),
    "--log-jsonl",
  ];
}

export interface ParallelFigures {
  /** the system prompt's tokens */
  systemTokens: number;
  /** every request served, in the order it finished: its client and its figures */
  requests: { client: number; request: number; promptTokens: number; response: number }[];
  totalPromptTokens: number;
  totalGenTokens: number;
}

/**
 * What llama-parallel says: "system tokens = N"; per request served, "Client c, seq s/n, prompt
 * P t, response R t" (P: its prompt after the system prompt; R: the tokens it decoded, the first
 * sampled one from the prompt's logits not counted); the totals of P and R.
 */
export function parseParallel(stdout: string): ParallelFigures {
  const messages = logMessages(stdout);
  const systemTokens = Number(one(messages, /system tokens = (\d+)/, "system tokens line")[1]);
  const requests = messages.flatMap((m) => {
    const match = /Client +(\d+), seq +(\d+)\/ *\d+, prompt +(\d+) t, response +(\d+) t/.exec(m);
    return match
      ? [
          {
            client: Number(match[1]),
            request: Number(match[2]),
            promptTokens: Number(match[3]),
            response: Number(match[4]),
          },
        ]
      : [];
  });
  return {
    systemTokens,
    requests,
    totalPromptTokens: Number(one(messages, /Total prompt tokens: +(\d+)/, "prompt total")[1]),
    totalGenTokens: Number(one(messages, /Total gen tokens: +(\d+)/, "gen total")[1]),
  };
}
