// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { GgmlType, GgufValueType } from "../gguf/format.js";
import { GgufFormatError, readGguf } from "../gguf/reader.js";
import { gguf, writeGguf } from "../gguf/writer.js";
import { ModelSpecError, tensorPlan, validateConfig, type ModelConfig } from "./architectures.js";
import { toHalf } from "./random.js";
import { BENCH_MODEL, TINY_MODELS, VocabularyError, ensureModels, writeModel } from "./zoo.js";

// A stand-in for llama.cpp's source tree: models/ggml-vocab-<name>.gguf with a small vocabulary.
const root = mkdtempSync(join(tmpdir(), "profinfer-zoo-"));
after(() => rmSync(root, { recursive: true, force: true }));
const llamaSrcDir = join(root, "llama.cpp");
mkdirSync(join(llamaSrcDir, "models"), { recursive: true });
for (const vocab of ["llama-bpe", "qwen2", "gemma-4"]) {
  const tokens = Array.from({ length: 96 }, (_, i) => `tok${i}`);
  writeGguf(
    join(llamaSrcDir, "models", `ggml-vocab-${vocab}.gguf`),
    [
      ["general.architecture", gguf.str("llama")],
      ["tokenizer.ggml.model", gguf.str("gpt2")],
      ["tokenizer.ggml.tokens", gguf.arr(GgufValueType.STRING, tokens)],
      [
        "tokenizer.ggml.token_type",
        gguf.arr(
          GgufValueType.INT32,
          tokens.map(() => 1),
        ),
      ],
    ],
    [],
  );
}
writeGguf(
  join(llamaSrcDir, "models", "ggml-vocab-empty.gguf"),
  [["general.architecture", gguf.str("llama")]],
  [],
);

const tinyLlama = TINY_MODELS.find((m) => m.arch === "llama")!;

test("the same seed writes byte-identical models; another seed changes the weights", () => {
  const a = writeModel(tinyLlama, { outDir: join(root, "a"), llamaSrcDir, seed: 7 });
  const b = writeModel(tinyLlama, { outDir: join(root, "b"), llamaSrcDir, seed: 7 });
  const c = writeModel(tinyLlama, { outDir: join(root, "c"), llamaSrcDir, seed: 8 });
  assert.ok(readFileSync(a.path).equals(readFileSync(b.path)));
  assert.ok(!readFileSync(a.path).equals(readFileSync(c.path)));
  assert.equal(a.bytes, c.bytes);
});

test("each tiny model carries its architecture's tensors, metadata and the vocabulary", () => {
  for (const config of TINY_MODELS) {
    const m = writeModel(config, { outDir: join(root, "tiny"), llamaSrcDir });
    const file = readGguf(m.path);
    const names = new Set(file.tensors.map((t) => t.name));
    const md = (k: string) => file.metadata.get(k)?.value;
    assert.equal(md("general.architecture"), config.arch);
    assert.equal(md(`${config.arch}.block_count`), config.nLayer);
    assert.deepEqual((md("tokenizer.ggml.tokens") as string[]).length, 96);
    assert.equal(file.tensors.find((t) => t.name === "token_embd.weight")?.dims[1], 96);
    for (let i = 0; i < config.nLayer; i++)
      assert.ok(names.has(`blk.${i}.attn_q.weight`), `${config.name} layer ${i}`);
    assert.equal(names.has("output.weight"), !config.tiedEmbeddings, `${config.name} output`);
    assert.equal(
      names.has("blk.0.attn_q.bias"),
      config.arch === "qwen2" || config.arch === "qwen2moe",
      `${config.name} bias`,
    );
    assert.equal(names.has("blk.0.post_ffw_norm.weight"), config.arch === "gemma2");
    assert.equal(names.has("rope_freqs.weight"), config.arch === "llama");
    if (config.arch === "qwen2moe") {
      const exps = file.tensors.find((t) => t.name === "blk.0.ffn_down_exps.weight")!;
      assert.deepEqual(exps.dims, [config.nFfExpert, config.nEmbd, 60]);
      assert.equal(md("qwen2moe.expert_used_count"), 4);
      assert.ok(names.has("blk.0.ffn_gate_inp_shexp.weight"));
    }
    if (config.arch === "gemma2") {
      assert.equal(md("gemma2.attn_logit_softcapping"), 50);
      assert.equal(md("gemma2.final_logit_softcapping"), 30);
    }
  }
});

test("the bench model has LLaMA-3.2-1B's shapes", () => {
  const plan = tensorPlan(BENCH_MODEL, 128256);
  const dims = (name: string) => plan.find((t) => t.name === name)?.dims;
  assert.deepEqual(dims("token_embd.weight"), [2048, 128256]);
  assert.deepEqual(dims("blk.15.attn_k.weight"), [2048, 512]);
  assert.deepEqual(dims("blk.15.ffn_down.weight"), [8192, 2048]);
  assert.deepEqual(dims("rope_freqs.weight"), [32]);
  assert.equal(plan.find((t) => t.name === "blk.0.attn_q.weight")?.type, GgmlType.Q4_0);
  assert.equal(
    plan.some((t) => t.name === "output.weight"),
    false,
  );
  const factors = plan.find((t) => t.name === "rope_freqs.weight")!.init;
  assert.equal(factors.kind, "values");
  if (factors.kind === "values") {
    assert.equal(factors.values[0], 1); // highest frequencies are not scaled
    assert.equal(factors.values[31], 32); // lowest frequencies are scaled by the full factor
  }
});

test("bad configurations are refused with the reason", () => {
  const bad = (patch: Partial<ModelConfig>) => () =>
    validateConfig({ ...tinyLlama, ...patch } as ModelConfig);
  assert.throws(
    bad({ arch: "mamba" as ModelConfig["arch"] }),
    (e: unknown) => e instanceof ModelSpecError && /unknown architecture 'mamba'/.test(e.message),
  );
  assert.throws(
    bad({ headDim: undefined, nEmbd: 250 }),
    /embedding length 250 is not divisible by 8 heads/,
  );
  assert.throws(bad({ nHeadKv: 3 }), /8 query heads are not a multiple of 3 key\/value heads/);
  assert.throws(
    bad({ nFf: 100 }),
    /blk.0.ffn_down.weight has rows of 100 elements, not a multiple of the Q8_0 block of 32/,
  );
  assert.throws(bad({ nLayer: 0 }), /nLayer must be a positive integer/);
  const moe = TINY_MODELS.find((m) => m.arch === "qwen2moe")!;
  assert.throws(() => validateConfig({ ...moe, nExpertUsed: 61 }), /top-61 of only 60 experts/);
});

test("a missing or unusable vocabulary is a clear error", () => {
  assert.throws(
    () =>
      writeModel({ ...tinyLlama, vocab: "nonexistent" }, { outDir: join(root, "x"), llamaSrcDir }),
    (e: unknown) =>
      e instanceof VocabularyError &&
      /ggml-vocab-nonexistent\.gguf does not exist.*npm run setup/.test(e.message),
  );
  assert.throws(
    () => writeModel({ ...tinyLlama, vocab: "empty" }, { outDir: join(root, "x"), llamaSrcDir }),
    (e: unknown) => e instanceof GgufFormatError && /no tokenizer\.ggml\.tokens/.test(e.message),
  );
});

test("ensureModels reuses an identical model and rewrites when the seed changes", () => {
  const outDir = join(root, "ensure");
  const [first] = ensureModels([tinyLlama], { outDir, llamaSrcDir, seed: 1 });
  const [again] = ensureModels([tinyLlama], { outDir, llamaSrcDir, seed: 1 });
  const [other] = ensureModels([tinyLlama], { outDir, llamaSrcDir, seed: 2 });
  assert.equal(first!.reused, false);
  assert.equal(again!.reused, true);
  assert.equal(other!.reused, false);
});

test("half-precision conversion rounds like IEEE 754", () => {
  assert.equal(toHalf(1), 0x3c00);
  assert.equal(toHalf(-2), 0xc000);
  assert.equal(toHalf(65504), 0x7bff);
  assert.equal(toHalf(1e6), 0x7c00);
  assert.equal(toHalf(5.960464477539063e-8), 0x0001);
  assert.equal(toHalf(0), 0);
});
