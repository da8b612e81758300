// SPDX-License-Identifier: Apache-2.0
// The model zoo: real architectures and real tokenizer vocabularies with random weights.
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { GgmlType, GgufValueType, type GgufValue } from "../gguf/format.js";
import { GgufFormatError, readGguf } from "../gguf/reader.js";
import { gguf, writeGguf, type TensorToWrite } from "../gguf/writer.js";
import {
  ModelSpecError,
  architectureMetadata,
  tensorPlan,
  validateConfig,
  type ModelConfig,
} from "./architectures.js";
import { randomTensorData, tensorSeed } from "./random.js";

export const DEFAULT_SEED = 42;

const LLAMA32_ROPE = { factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalContext: 8192 };

/**
 * One small model per architecture: real vocabularies, real block structure (several layers,
 * GQA, q/k/v biases, post-norms and soft-capping, 60 experts top-4 with a shared expert),
 * dimensions shrunk so that a test generates tokens in a second or two.
 */
export const TINY_MODELS: readonly ModelConfig[] = [
  {
    arch: "llama",
    name: "tiny-llama",
    realModel: "LLaMA-3.2",
    vocab: "llama-bpe",
    nLayer: 4,
    nEmbd: 256,
    nFf: 768,
    nHead: 8,
    nHeadKv: 2,
    headDim: 32,
    contextLength: 4096,
    ropeFreqBase: 500000,
    rmsEps: 1e-5,
    tiedEmbeddings: true,
    weightType: GgmlType.Q8_0,
    embeddingType: GgmlType.Q8_0,
    llama3Rope: LLAMA32_ROPE,
  },
  {
    arch: "qwen2",
    name: "tiny-qwen2",
    realModel: "Qwen2.5",
    vocab: "qwen2",
    nLayer: 4,
    nEmbd: 256,
    nFf: 768,
    nHead: 4,
    nHeadKv: 2,
    contextLength: 4096,
    ropeFreqBase: 1000000,
    rmsEps: 1e-6,
    tiedEmbeddings: true,
    weightType: GgmlType.Q8_0,
    embeddingType: GgmlType.Q8_0,
  },
  {
    arch: "gemma2",
    name: "tiny-gemma2",
    realModel: "Gemma-2",
    vocab: "gemma-4",
    nLayer: 4,
    nEmbd: 256,
    nFf: 1024,
    nHead: 8,
    nHeadKv: 4,
    headDim: 64,
    contextLength: 4096,
    ropeFreqBase: 10000,
    rmsEps: 1e-6,
    tiedEmbeddings: true,
    weightType: GgmlType.Q8_0,
    embeddingType: GgmlType.Q8_0,
    slidingWindow: 4096,
    attnLogitSoftcap: 50,
    finalLogitSoftcap: 30,
  },
  {
    arch: "qwen2moe",
    name: "tiny-qwen2moe",
    realModel: "Qwen1.5-MoE-A2.7B",
    vocab: "qwen2",
    nLayer: 4,
    nEmbd: 256,
    nFf: 256,
    nHead: 4,
    nHeadKv: 4,
    contextLength: 4096,
    ropeFreqBase: 1000000,
    rmsEps: 1e-6,
    tiedEmbeddings: false,
    weightType: GgmlType.Q8_0,
    embeddingType: GgmlType.Q8_0,
    nExpert: 60,
    nExpertUsed: 4,
    nFfExpert: 64,
    nFfSharedExpert: 256,
  },
];

/** LLaMA-3.2-1B's true shapes, Q4_0 matrices (the embedding, tied to the output, in Q8_0). */
export const BENCH_MODEL: ModelConfig = {
  arch: "llama",
  name: "bench-llama3.2-1b-q4_0",
  realModel: "LLaMA-3.2-1B",
  vocab: "llama-bpe",
  nLayer: 16,
  nEmbd: 2048,
  nFf: 8192,
  nHead: 32,
  nHeadKv: 8,
  headDim: 64,
  contextLength: 131072,
  ropeFreqBase: 500000,
  rmsEps: 1e-5,
  tiedEmbeddings: true,
  weightType: GgmlType.Q4_0,
  embeddingType: GgmlType.Q8_0,
  llama3Rope: LLAMA32_ROPE,
};

/** The bench model with Q8_0 matrices: the same graph over weights of 1.89 times the bytes. */
export const BENCH_MODEL_Q8_0: ModelConfig = {
  ...BENCH_MODEL,
  name: "bench-llama3.2-1b-q8_0",
  weightType: GgmlType.Q8_0,
};

export const ZOO_SETS = { tiny: TINY_MODELS, bench: [BENCH_MODEL, BENCH_MODEL_Q8_0] } as const;
export type ZooSet = keyof typeof ZOO_SETS;

export class VocabularyError extends Error {
  override name = "VocabularyError";
}

export function vocabularyPath(llamaSrcDir: string, vocab: string): string {
  return join(llamaSrcDir, "models", `ggml-vocab-${vocab}.gguf`);
}

/** The tokenizer.* entries of a llama.cpp vocabulary file, with their GGUF types. */
export function loadVocabulary(path: string): { entries: [string, GgufValue][]; nVocab: number } {
  if (!existsSync(path)) {
    throw new VocabularyError(
      `vocabulary file ${path} does not exist. The model zoo takes its tokenizers from the llama.cpp source that node-llama-cpp ships; run 'npm run setup', or pass --llama-src DIR pointing at a llama.cpp checkout.`,
    );
  }
  const file = readGguf(path);
  const entries = [...file.metadata].filter(([k]) => k.startsWith("tokenizer."));
  const tokens = file.metadata.get("tokenizer.ggml.tokens");
  if (!tokens || tokens.type !== GgufValueType.ARRAY || tokens.value.length === 0) {
    throw new GgufFormatError(
      path,
      0,
      "has no tokenizer.ggml.tokens array: not a llama.cpp vocabulary file",
    );
  }
  return { entries, nVocab: tokens.value.length };
}

export interface WrittenModel {
  config: ModelConfig;
  path: string;
  bytes: number;
  nVocab: number;
  tensors: number;
  milliseconds: number;
}

/** Writes one model deterministically: the same config, vocabulary and seed give the same bytes. */
export function writeModel(
  config: ModelConfig,
  options: { outDir: string; llamaSrcDir: string; seed?: number },
): WrittenModel {
  const started = performance.now();
  validateConfig(config);
  const seed = options.seed ?? DEFAULT_SEED;
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new ModelSpecError(`seed must be an integer in 0..4294967295, got ${seed}`);
  }
  const vocab = loadVocabulary(vocabularyPath(options.llamaSrcDir, config.vocab));
  const metadata: [string, GgufValue][] = [
    ["general.architecture", gguf.str(config.arch)],
    ["general.type", gguf.str("model")],
    ["general.name", gguf.str(config.name)],
    [
      "general.description",
      gguf.str(
        `Random weights (seed ${seed}) in the architecture and shapes of ${config.realModel}, written by profinfer models. Not a trained model.`,
      ),
    ],
    ["general.alignment", gguf.u32(32)],
    ...architectureMetadata(config, vocab.nVocab),
    ...vocab.entries,
  ];
  const tensors: TensorToWrite[] = tensorPlan(config, vocab.nVocab).map((t) => ({
    name: t.name,
    dims: t.dims,
    type: t.type,
    data: () => randomTensorData(t.type, t.dims, t.init, tensorSeed(seed, t.name)),
  }));
  mkdirSync(options.outDir, { recursive: true });
  const path = join(options.outDir, `${config.name}.gguf`);
  const { bytes } = writeGguf(path, metadata, tensors);
  return {
    config,
    path,
    bytes,
    nVocab: vocab.nVocab,
    tensors: tensors.length,
    milliseconds: performance.now() - started,
  };
}

/**
 * Bumped whenever the bytes written for the same config and seed change, so that cached models
 * written by an older profinfer are rewritten.
 */
export const ZOO_REVISION = 1;

function modelStamp(config: ModelConfig, seed: number, vocabPath: string): string {
  const vocabStat = statSync(vocabPath);
  return createHash("sha256")
    .update(
      JSON.stringify({ ZOO_REVISION, config, seed, vocab: [vocabStat.size, vocabStat.mtimeMs] }),
    )
    .digest("hex");
}

/**
 * Writes the models of a set into `outDir` unless an identical one is already there (same config,
 * seed, vocabulary and zoo revision, recorded in a `.stamp` file beside each model).
 */
export function ensureModels(
  configs: readonly ModelConfig[],
  options: {
    outDir: string;
    llamaSrcDir: string;
    seed?: number;
    force?: boolean;
    onModel?: (m: WrittenModel & { reused: boolean }) => void;
  },
): (WrittenModel & { reused: boolean })[] {
  const seed = options.seed ?? DEFAULT_SEED;
  return configs.map((config) => {
    const path = join(options.outDir, `${config.name}.gguf`);
    const stampPath = `${path}.stamp`;
    const vocabPath = vocabularyPath(options.llamaSrcDir, config.vocab);
    if (!options.force && existsSync(path) && existsSync(stampPath) && existsSync(vocabPath)) {
      const stamp = modelStamp(config, seed, vocabPath);
      if (readFileSync(stampPath, "utf8") === stamp) {
        const file = readGguf(path);
        const tokens = file.metadata.get("tokenizer.ggml.tokens");
        const result = {
          config,
          path,
          bytes: file.fileSize,
          nVocab: tokens?.type === GgufValueType.ARRAY ? tokens.value.length : 0,
          tensors: file.tensors.length,
          milliseconds: 0,
          reused: true,
        };
        options.onModel?.(result);
        return result;
      }
    }
    const written = { ...writeModel(config, { ...options, seed }), reused: false };
    writeFileSync(stampPath, modelStamp(config, seed, vocabPath));
    options.onModel?.(written);
    return written;
  });
}
