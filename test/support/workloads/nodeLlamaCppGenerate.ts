// SPDX-License-Identifier: Apache-2.0
// A node-llama-cpp application, as users write them: load a model with the prebuilt libraries of
// @node-llama-cpp/linux-x64, evaluate a prompt and generate tokens. It is a profiling target
// (the libraries are loaded at run time, the CPU backend variant by dlopen), so it stays small and
// prints one JSON line that tests compare with what the tracer saw. Run it with
// `node --import tsx` (NODE_LLAMA_CPP_WORKLOAD in test/support/targets.ts).
import { parseArgs } from "node:util";
import { loadLlama } from "./nodeLlamaCpp.js";

const { values } = parseArgs({
  options: {
    model: { type: "string" },
    prompt: { type: "string", default: "The quick brown fox jumps over the lazy dog" },
    tokens: { type: "string", default: "16" },
    threads: { type: "string", default: "2" },
    context: { type: "string", default: "512" },
  },
});
if (!values.model) {
  process.stderr.write(
    "usage: nodeLlamaCppGenerate --model FILE.gguf [--prompt TEXT] [--tokens N] [--threads N] [--context N]\n",
  );
  process.exit(2);
}

const started = performance.now();
const llama = await loadLlama();
const model = await llama.loadModel({ modelPath: values.model });
const context = await model.createContext({
  contextSize: Number(values.context),
  threads: Number(values.threads),
});
const promptTokens = model.tokenize(values.prompt);
const wanted = Number(values.tokens);
const generated: number[] = [];
const generationStarted = performance.now();
for await (const token of context.getSequence().evaluate(promptTokens, { temperature: 0 })) {
  generated.push(token);
  if (generated.length >= wanted) break;
}
const finished = performance.now();
process.stdout.write(
  JSON.stringify({
    model: values.model,
    promptTokens: promptTokens.length,
    generatedTokens: generated.length,
    text: model.detokenize(generated),
    loadMs: Math.round(generationStarted - started),
    generateMs: Math.round(finished - generationStarted),
  }) + "\n",
);
await context.dispose();
await model.dispose();
await llama.dispose();
