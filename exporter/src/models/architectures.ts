// SPDX-License-Identifier: Apache-2.0
// Model architectures as llama.cpp's loader expects them (src/models/<arch>.cpp and
// src/llama-model.cpp in the pinned source): the metadata keys it reads and the tensors, with the
// names and shapes it creates. A model written from these builds exactly the real model's graph.
import { GgmlType, GGML_BLOCK, ggmlTypeName, type GgufValue } from "../gguf/format.js";
import { gguf } from "../gguf/writer.js";
import type { Init } from "./random.js";

export const ARCHITECTURES = ["llama", "qwen2", "gemma2", "qwen2moe"] as const;
export type Architecture = (typeof ARCHITECTURES)[number];

export interface ModelConfig {
  arch: Architecture;
  /** file stem and general.name */
  name: string;
  /** the real model whose structure this one has, for general.description */
  realModel: string;
  /** stem of the llama.cpp vocabulary file: models/ggml-vocab-<vocab>.gguf */
  vocab: string;
  nLayer: number;
  nEmbd: number;
  nFf: number;
  nHead: number;
  nHeadKv: number;
  /** per-head dimension of q and k (and v); nEmbd / nHead when not given */
  headDim?: number;
  contextLength: number;
  ropeFreqBase: number;
  rmsEps: number;
  /** the output projection reuses token_embd, as small LLaMA-3.2, Qwen2.5 and Gemma-2 do */
  tiedEmbeddings: boolean;
  /** type of the 2-D and 3-D weight matrices */
  weightType: GgmlType;
  /** type of token_embd (and output): quantised models keep it at higher precision */
  embeddingType: GgmlType;
  /** LLaMA-3 rope scaling, stored as the rope_freqs tensor as llama.cpp's converter does */
  llama3Rope?: {
    factor: number;
    lowFreqFactor: number;
    highFreqFactor: number;
    originalContext: number;
  };
  /** Gemma-2 */
  slidingWindow?: number;
  attnLogitSoftcap?: number;
  finalLogitSoftcap?: number;
  /** Mixture of experts */
  nExpert?: number;
  nExpertUsed?: number;
  nFfExpert?: number;
  nFfSharedExpert?: number;
}

export class ModelSpecError extends Error {
  override name = "ModelSpecError";
}

export interface TensorPlan {
  name: string;
  dims: number[];
  type: GgmlType;
  init: Init;
}

/** llama_ftype of a file whose matrices are of `type` (general.file_type). */
function fileType(type: GgmlType): number {
  switch (type) {
    case GgmlType.F32:
      return 0;
    case GgmlType.F16:
      return 1;
    case GgmlType.Q4_0:
      return 2;
    case GgmlType.Q8_0:
      return 7;
    case GgmlType.BF16:
      return 32;
    default:
      throw new ModelSpecError(`no file type for weight type ${ggmlTypeName(type)}`);
  }
}

export function headDim(c: ModelConfig): number {
  return c.headDim ?? c.nEmbd / c.nHead;
}

/** Checks that a config is one llama.cpp would load; throws ModelSpecError naming the problem. */
export function validateConfig(c: ModelConfig): void {
  const where = `model '${c.name}' (${c.arch})`;
  if (!(ARCHITECTURES as readonly string[]).includes(c.arch)) {
    throw new ModelSpecError(
      `${where}: unknown architecture '${c.arch}'; known: ${ARCHITECTURES.join(", ")}`,
    );
  }
  for (const key of ["nLayer", "nEmbd", "nFf", "nHead", "nHeadKv", "contextLength"] as const) {
    const v = c[key];
    if (!Number.isInteger(v) || v <= 0)
      throw new ModelSpecError(`${where}: ${key} must be a positive integer, got ${v}`);
  }
  if (c.headDim === undefined && c.nEmbd % c.nHead !== 0) {
    throw new ModelSpecError(
      `${where}: embedding length ${c.nEmbd} is not divisible by ${c.nHead} heads; give headDim`,
    );
  }
  const hd = headDim(c);
  if (!Number.isInteger(hd) || hd % 2 !== 0)
    throw new ModelSpecError(
      `${where}: head dimension ${hd} must be an even integer (rope rotates pairs)`,
    );
  if (c.nHead % c.nHeadKv !== 0) {
    throw new ModelSpecError(
      `${where}: ${c.nHead} query heads are not a multiple of ${c.nHeadKv} key/value heads`,
    );
  }
  if ((c.arch === "qwen2" || c.arch === "qwen2moe") && hd * c.nHead !== c.nEmbd) {
    throw new ModelSpecError(
      `${where}: ${c.arch} needs headDim x nHead = nEmbd (${hd} x ${c.nHead} != ${c.nEmbd})`,
    );
  }
  if (c.arch === "qwen2moe") {
    const { nExpert, nExpertUsed, nFfExpert, nFfSharedExpert } = c;
    if (!nExpert || !nExpertUsed || !nFfExpert || !nFfSharedExpert) {
      throw new ModelSpecError(
        `${where}: qwen2moe needs nExpert, nExpertUsed, nFfExpert and nFfSharedExpert`,
      );
    }
    if (nExpertUsed > nExpert)
      throw new ModelSpecError(`${where}: top-${nExpertUsed} of only ${nExpert} experts`);
    if (c.tiedEmbeddings)
      throw new ModelSpecError(
        `${where}: qwen2moe always has its own output tensor; set tiedEmbeddings false`,
      );
  } else if (c.nExpert !== undefined) {
    throw new ModelSpecError(`${where}: experts are only supported for qwen2moe here`);
  }
  if (c.arch === "gemma2" && !c.tiedEmbeddings) {
    throw new ModelSpecError(
      `${where}: gemma2 always ties its output to token_embd; set tiedEmbeddings true`,
    );
  }
  // Quantised rows must be whole blocks: check every matrix's innermost dimension.
  for (const t of tensorPlan(c, 0)) {
    const block = GGML_BLOCK[t.type].elements;
    if ((t.dims[0] ?? 0) % block !== 0) {
      throw new ModelSpecError(
        `${where}: tensor ${t.name} has rows of ${t.dims[0]} elements, not a multiple of the ${ggmlTypeName(t.type)} block of ${block}`,
      );
    }
  }
}

/** rope_freqs for LLaMA-3 scaling: the converter's formula (convert_hf_to_gguf.py, LlamaModel). */
function llama3RopeFactors(c: ModelConfig): Float32Array {
  const r = c.llama3Rope!;
  const dim = headDim(c);
  const lowWavelen = r.originalContext / r.lowFreqFactor;
  const highWavelen = r.originalContext / r.highFreqFactor;
  const out = new Float32Array(dim / 2);
  for (let i = 0; i < dim / 2; i++) {
    const freq = 1 / Math.pow(c.ropeFreqBase, (2 * i) / dim);
    const wavelen = (2 * Math.PI) / freq;
    if (wavelen < highWavelen) out[i] = 1;
    else if (wavelen > lowWavelen) out[i] = r.factor;
    else {
      const smooth =
        (r.originalContext / wavelen - r.lowFreqFactor) / (r.highFreqFactor - r.lowFreqFactor);
      out[i] = 1 / ((1 - smooth) / r.factor + smooth);
    }
  }
  return out;
}

/**
 * The tensors of a model, in the order llama.cpp's converter writes them. `nVocab` comes from
 * the vocabulary file.
 */
export function tensorPlan(c: ModelConfig, nVocab: number): TensorPlan[] {
  const hd = headDim(c);
  const qDim = hd * c.nHead;
  const kvDim = hd * c.nHeadKv;
  const W = c.weightType;
  const matrix = (name: string, nIn: number, nOut: number, extra: number[] = []): TensorPlan => ({
    name,
    dims: [nIn, nOut, ...extra],
    type: W,
    init: { kind: "uniform", std: 1 / Math.sqrt(nIn) },
  });
  const norm = (name: string, n: number): TensorPlan => ({
    name,
    dims: [n],
    type: GgmlType.F32,
    init: { kind: "around", center: 1, std: 0.05 },
  });
  const bias = (name: string, n: number): TensorPlan => ({
    name,
    dims: [n],
    type: GgmlType.F32,
    init: { kind: "uniform", std: 0.1 },
  });

  const plan: TensorPlan[] = [];
  // Output logits are h . E: a spread of 2/sqrt(n_embd) keeps them near unit scale.
  const vocabRows = nVocab > 0 ? nVocab : 32;
  plan.push({
    name: "token_embd.weight",
    dims: [c.nEmbd, vocabRows],
    type: c.embeddingType,
    init: { kind: "uniform", std: 2 / Math.sqrt(c.nEmbd) },
  });
  if (c.llama3Rope) {
    plan.push({
      name: "rope_freqs.weight",
      dims: [hd / 2],
      type: GgmlType.F32,
      init: { kind: "values", values: llama3RopeFactors(c) },
    });
  }
  for (let i = 0; i < c.nLayer; i++) {
    const b = `blk.${i}`;
    plan.push(norm(`${b}.attn_norm.weight`, c.nEmbd));
    plan.push(matrix(`${b}.attn_q.weight`, c.nEmbd, qDim));
    if (c.arch === "qwen2" || c.arch === "qwen2moe") plan.push(bias(`${b}.attn_q.bias`, qDim));
    plan.push(matrix(`${b}.attn_k.weight`, c.nEmbd, kvDim));
    if (c.arch === "qwen2" || c.arch === "qwen2moe") plan.push(bias(`${b}.attn_k.bias`, kvDim));
    plan.push(matrix(`${b}.attn_v.weight`, c.nEmbd, kvDim));
    if (c.arch === "qwen2" || c.arch === "qwen2moe") plan.push(bias(`${b}.attn_v.bias`, kvDim));
    plan.push(matrix(`${b}.attn_output.weight`, qDim, c.nEmbd));
    if (c.arch === "gemma2") plan.push(norm(`${b}.post_attention_norm.weight`, c.nEmbd));
    plan.push(norm(`${b}.ffn_norm.weight`, c.nEmbd));
    if (c.arch === "qwen2moe") {
      const nExpert = c.nExpert!;
      const nFfExp = c.nFfExpert!;
      const nFfSh = c.nFfSharedExpert!;
      // llama.cpp's quantiser keeps the router in F32; so do we.
      plan.push({
        name: `${b}.ffn_gate_inp.weight`,
        dims: [c.nEmbd, nExpert],
        type: GgmlType.F32,
        init: { kind: "uniform", std: 1 / Math.sqrt(c.nEmbd) },
      });
      plan.push(matrix(`${b}.ffn_gate_exps.weight`, c.nEmbd, nFfExp, [nExpert]));
      plan.push(matrix(`${b}.ffn_down_exps.weight`, nFfExp, c.nEmbd, [nExpert]));
      plan.push(matrix(`${b}.ffn_up_exps.weight`, c.nEmbd, nFfExp, [nExpert]));
      plan.push({
        name: `${b}.ffn_gate_inp_shexp.weight`,
        dims: [c.nEmbd],
        type: GgmlType.F32,
        init: { kind: "uniform", std: 1 / Math.sqrt(c.nEmbd) },
      });
      plan.push(matrix(`${b}.ffn_gate_shexp.weight`, c.nEmbd, nFfSh));
      plan.push(matrix(`${b}.ffn_down_shexp.weight`, nFfSh, c.nEmbd));
      plan.push(matrix(`${b}.ffn_up_shexp.weight`, c.nEmbd, nFfSh));
    } else {
      plan.push(matrix(`${b}.ffn_gate.weight`, c.nEmbd, c.nFf));
      plan.push(matrix(`${b}.ffn_down.weight`, c.nFf, c.nEmbd));
      plan.push(matrix(`${b}.ffn_up.weight`, c.nEmbd, c.nFf));
    }
    if (c.arch === "gemma2") plan.push(norm(`${b}.post_ffw_norm.weight`, c.nEmbd));
  }
  plan.push(norm("output_norm.weight", c.nEmbd));
  if (!c.tiedEmbeddings) {
    plan.push({
      name: "output.weight",
      dims: [c.nEmbd, vocabRows],
      type: c.embeddingType,
      init: { kind: "uniform", std: 2 / Math.sqrt(c.nEmbd) },
    });
  }
  return plan;
}

/** The architecture's metadata keys (everything but general.* bookkeeping and tokenizer.*). */
export function architectureMetadata(c: ModelConfig, nVocab: number): [string, GgufValue][] {
  const a = c.arch;
  const hd = headDim(c);
  const kv: [string, GgufValue][] = [
    [`${a}.context_length`, gguf.u32(c.contextLength)],
    [`${a}.embedding_length`, gguf.u32(c.nEmbd)],
    [`${a}.block_count`, gguf.u32(c.nLayer)],
    [`${a}.feed_forward_length`, gguf.u32(c.nFf)],
    [`${a}.attention.head_count`, gguf.u32(c.nHead)],
    [`${a}.attention.head_count_kv`, gguf.u32(c.nHeadKv)],
    [`${a}.rope.freq_base`, gguf.f32(c.ropeFreqBase)],
    [`${a}.attention.layer_norm_rms_epsilon`, gguf.f32(c.rmsEps)],
  ];
  if (c.headDim !== undefined || a === "llama") {
    kv.push(
      [`${a}.attention.key_length`, gguf.u32(hd)],
      [`${a}.attention.value_length`, gguf.u32(hd)],
    );
  }
  if (a === "llama") {
    kv.push([`${a}.vocab_size`, gguf.u32(nVocab)], [`${a}.rope.dimension_count`, gguf.u32(hd)]);
  }
  if (a === "gemma2") {
    if (c.slidingWindow) kv.push([`${a}.attention.sliding_window`, gguf.u32(c.slidingWindow)]);
    if (c.attnLogitSoftcap) kv.push([`${a}.attn_logit_softcapping`, gguf.f32(c.attnLogitSoftcap)]);
    if (c.finalLogitSoftcap)
      kv.push([`${a}.final_logit_softcapping`, gguf.f32(c.finalLogitSoftcap)]);
  }
  if (a === "qwen2moe") {
    kv.push(
      [`${a}.expert_count`, gguf.u32(c.nExpert!)],
      [`${a}.expert_used_count`, gguf.u32(c.nExpertUsed!)],
      [`${a}.expert_feed_forward_length`, gguf.u32(c.nFfExpert!)],
      [`${a}.expert_shared_feed_forward_length`, gguf.u32(c.nFfSharedExpert!)],
    );
  }
  kv.push(
    ["general.file_type", gguf.u32(fileType(c.weightType))],
    ["general.quantization_version", gguf.u32(2)],
  );
  return kv;
}
