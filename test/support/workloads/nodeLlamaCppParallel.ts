// SPDX-License-Identifier: Apache-2.0
// A node-llama-cpp application serving several sequences at once, as a server built on it does:
// one context with `sequences: N`, one LlamaContextSequence each, all evaluating concurrently, so
// that node-llama-cpp puts their tokens into the same llama_decode batches. Sequence i gets a
// prompt of its own length (the test prompt, then i extra words) and generates its own number of
// tokens (`--tokens` + 3 * i). It prints one JSON line with what the program itself knows: per
// sequence, its prompt's token count and the tokens it received. Run it with `node --import tsx`
// (nodeLlamaCppParallelWorkload in test/support/targets.ts).
import { parseArgs } from "node:util";
import { loadLlama } from "./nodeLlamaCpp.js";

const { values } = parseArgs({
  options: {
    model: { type: "string" },
    sequences: { type: "string", default: "3" },
    prompt: { type: "string", default: "The quick brown fox jumps over the lazy dog" },
    tokens: { type: "string", default: "8" },
    threads: { type: "string", default: "2" },
    context: { type: "string", default: "1024" },
  },
});
if (!values.model) {
  process.stderr.write(
    "usage: nodeLlamaCppParallel --model FILE.gguf [--sequences N] [--prompt TEXT] [--tokens N] [--threads N] [--context N]\n",
  );
  process.exit(2);
}
const sequenceCount = Number(values.sequences);
if (!Number.isInteger(sequenceCount) || sequenceCount < 1) {
  process.stderr.write(`--sequences wants a whole number >= 1, got ${values.sequences}\n`);
  process.exit(2);
}

const llama = await loadLlama();
const model = await llama.loadModel({ modelPath: values.model });
const context = await model.createContext({
  contextSize: Number(values.context),
  threads: Number(values.threads),
  sequences: sequenceCount,
});
const extraWords = ["and", "then", "runs", "far", "away", "from", "the", "farm"];
const jobs = Array.from({ length: sequenceCount }, (_, i) => ({
  sequence: context.getSequence(),
  prompt: model.tokenize(
    [values.prompt, ...Array.from({ length: i }, (_, k) => extraWords[k % extraWords.length])].join(
      " ",
    ),
  ),
  wanted: Number(values.tokens) + 3 * i,
}));
// every sequence starts before any awaits: node-llama-cpp batches what is queued together
const generated = await Promise.all(
  jobs.map(async ({ sequence, prompt, wanted }) => {
    let n = 0;
    for await (const token of sequence.evaluate(prompt, { temperature: 0 })) {
      void token;
      if (++n >= wanted) break;
    }
    return n;
  }),
);
process.stdout.write(
  JSON.stringify({
    model: values.model,
    sequences: jobs.map((job, i) => ({
      promptTokens: job.prompt.length,
      generatedTokens: generated[i],
    })),
  }) + "\n",
);
await context.dispose();
await model.dispose();
await llama.dispose();
