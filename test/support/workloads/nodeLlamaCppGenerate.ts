// SPDX-License-Identifier: Apache-2.0
// A node-llama-cpp application, as users write them: load a model with the prebuilt libraries of
// @node-llama-cpp/linux-x64, evaluate a prompt and generate tokens. It is a profiling target
// (the libraries are loaded at run time, the CPU backend variant by dlopen), so it stays small and
// prints one JSON line that tests compare with what the tracer saw. Run it with
// `node --import tsx` (NODE_LLAMA_CPP_WORKLOAD in test/support/targets.ts).
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { requireManifest } from "@profinfer/exporter";

/** The part of node-llama-cpp's API this program uses (the package lives in the cache, untyped here). */
interface NodeLlamaCpp {
  getLlama(options: {
    gpu: false;
    build: "never";
    logLevel: unknown;
    progressLogs: boolean;
  }): Promise<Llama>;
  LlamaLogLevel: { warn: unknown };
}
interface Llama {
  loadModel(options: { modelPath: string }): Promise<LlamaModel>;
  dispose(): Promise<void>;
}
interface LlamaModel {
  tokenize(text: string): number[];
  detokenize(tokens: number[]): string;
  createContext(options: { contextSize: number; threads: number }): Promise<LlamaContext>;
  dispose(): Promise<void>;
}
interface LlamaContext {
  getSequence(): {
    evaluate(tokens: number[], options: { temperature: number }): AsyncIterable<number>;
  };
  dispose(): Promise<void>;
}

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

const packageDir =
  process.env.PROFINFER_NODE_LLAMA_CPP ??
  join(requireManifest().nodeLlamaCpp.dir, "node_modules", "node-llama-cpp");
const nlc = (await import(
  pathToFileURL(join(packageDir, "dist", "index.js")).href
)) as NodeLlamaCpp;

const started = performance.now();
const llama = await nlc.getLlama({
  gpu: false,
  build: "never",
  logLevel: nlc.LlamaLogLevel.warn,
  progressLogs: false,
});
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
