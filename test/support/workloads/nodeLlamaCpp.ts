// SPDX-License-Identifier: Apache-2.0
// What the node-llama-cpp workloads share: the part of node-llama-cpp's API they use (the package
// lives in the cache, untyped here) and getLlama on its prebuilt libraries, CPU only, never built.
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { requireManifest } from "@profinfer/exporter";

interface NodeLlamaCpp {
  getLlama(options: {
    gpu: false;
    build: "never";
    logLevel: unknown;
    progressLogs: boolean;
  }): Promise<Llama>;
  LlamaLogLevel: { warn: unknown };
}
export interface Llama {
  loadModel(options: { modelPath: string }): Promise<LlamaModel>;
  dispose(): Promise<void>;
}
export interface LlamaModel {
  tokenize(text: string): number[];
  detokenize(tokens: number[]): string;
  createContext(options: {
    contextSize: number;
    threads: number;
    sequences?: number;
  }): Promise<LlamaContext>;
  dispose(): Promise<void>;
}
export interface LlamaContextSequence {
  evaluate(tokens: number[], options: { temperature: number }): AsyncIterable<number>;
}
export interface LlamaContext {
  getSequence(): LlamaContextSequence;
  dispose(): Promise<void>;
}

/** node-llama-cpp from the cache (or $PROFINFER_NODE_LLAMA_CPP), its prebuilt CPU libraries. */
export async function loadLlama(): Promise<Llama> {
  const packageDir =
    process.env.PROFINFER_NODE_LLAMA_CPP ??
    join(requireManifest().nodeLlamaCpp.dir, "node_modules", "node-llama-cpp");
  const nlc = (await import(
    pathToFileURL(join(packageDir, "dist", "index.js")).href
  )) as NodeLlamaCpp;
  return nlc.getLlama({
    gpu: false,
    build: "never",
    logLevel: nlc.LlamaLogLevel.warn,
    progressLogs: false,
  });
}
