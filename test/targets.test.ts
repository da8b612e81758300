// SPDX-License-Identifier: Apache-2.0
// The foundation against the real things: every tiny model runs in llama.cpp built from the
// bundle and in node-llama-cpp's prebuilt libraries; written files are read back by independent
// readers (llama.cpp's own gguf example and @huggingface/gguf); the CLI refuses bad input clearly.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { gguf as hfGguf } from "@huggingface/gguf";
import { ggmlTypeName, readGguf } from "@profinfer/exporter";
import {
  benchModel,
  completion,
  llama,
  profinfer,
  nodeLlamaCppWorkload,
  prompt,
  runProgram,
  tinyModels,
} from "./support/targets.js";

let models: ReturnType<typeof tinyModels> = [];
const scratch = mkdtempSync(join(tmpdir(), "profinfer-targets-"));
before(() => {
  models = tinyModels();
});
after(() => rmSync(scratch, { recursive: true, force: true }));

describe("every tiny model generates tokens", () => {
  test("in llama-simple built from the bundle", async () => {
    for (const m of models) {
      const r = await runProgram(llama("llama-simple"), ["-m", m.path, "-n", "16", prompt]);
      assert.equal(r.code, 0, `${m.name}: ${r.stderr.slice(-2000)}`);
      const decoded = /decoded (\d+) tokens in/.exec(r.stderr);
      assert.ok(decoded, `${m.name}: no 'decoded N tokens' line`);
      assert.equal(Number(decoded[1]), 16, `${m.name} decoded ${decoded[1]} tokens`);
    }
  });

  test("in llama-completion built from the bundle, with the requested token count", async () => {
    for (const m of models) {
      const [binary, ...args] = completion(m.path, 8);
      const r = await runProgram(binary!, args);
      assert.equal(r.code, 0, `${m.name}: ${r.stderr.slice(-2000)}`);
      // The first token is sampled from the prompt's logits, each further one costs one eval run.
      const runs = /\beval time =\s+[\d.]+ ms \/\s+(\d+) runs/.exec(r.stderr);
      assert.ok(runs, `${m.name}: no eval time line in\n${r.stderr.slice(-1500)}`);
      assert.equal(Number(runs[1]), 7, m.name);
    }
  });

  test("in llama-cli (single turn, conversation mode) built from the bundle", async () => {
    for (const m of models) {
      const args = [
        "-m",
        m.path,
        "-p",
        "Hello",
        "-n",
        "8",
        "-st",
        "--temp",
        "0",
        "-t",
        "2",
        "-c",
        "512",
      ];
      const r = await runProgram(llama("llama-cli"), args);
      assert.equal(r.code, 0, `${m.name}: ${r.stderr.slice(-2000)}`);
      assert.match(r.stdout + r.stderr, /Generation: [\d.]+ t\/s/, m.name);
    }
  });

  test("through node-llama-cpp's prebuilt libraries, as a node-llama-cpp app", async () => {
    for (const m of models) {
      const [node, ...args] = nodeLlamaCppWorkload("--model", m.path, "--tokens", "12");
      const r = await runProgram(node!, args);
      assert.equal(r.code, 0, `${m.name}: ${r.stderr.slice(-2000)}`);
      const summary = JSON.parse(r.stdout.trim().split("\n").at(-1)!) as {
        promptTokens: number;
        generatedTokens: number;
      };
      assert.equal(summary.generatedTokens, 12, m.name);
      assert.ok(
        summary.promptTokens >= 5,
        `${m.name}: prompt tokenised to ${summary.promptTokens} tokens`,
      );
    }
  });
});

describe("written GGUF files round-trip through independent readers", () => {
  test("llama.cpp's gguf example reads the same metadata keys and tensor table", async () => {
    for (const m of models) {
      const ours = readGguf(m.path);
      const r = await runProgram(llama("llama-gguf"), [m.path, "r", "n"]);
      assert.equal(r.code, 0, `${m.name}: ${r.stderr.slice(-2000)}`);
      const keys = [...r.stdout.matchAll(/gguf_ex_read_0: kv\[\d+\]: key = (\S+)/g)].map(
        (x) => x[1],
      );
      assert.deepEqual(keys, [...ours.metadata.keys()], m.name);
      const tensors = [
        ...r.stdout.matchAll(
          /gguf_ex_read_1: tensor\[\d+\]: name = (\S+), size = (\d+), offset = (\d+), type = ([^,\s]+)/g,
        ),
      ].map((x) => [x[1], Number(x[3]), x[4]]);
      assert.deepEqual(
        tensors,
        ours.tensors.map((t) => [t.name, t.offset, ggmlTypeName(t.type).toLowerCase()]),
        m.name,
      );
      assert.match(r.stdout, new RegExp(`data offset: ${ours.dataOffset}\\b`), m.name);
    }
  });

  test("@huggingface/gguf reads the same metadata values and tensor shapes", async () => {
    for (const m of models) {
      const ours = readGguf(m.path);
      const theirs = await hfGguf(m.path, { allowLocalFile: true });
      const md = theirs.metadata as Record<string, unknown>;
      for (const [key, value] of ours.metadata) {
        if (Array.isArray(value.value)) {
          assert.equal((md[key] as unknown[]).length, value.value.length, `${m.name} ${key}`);
          assert.deepEqual(
            (md[key] as unknown[]).slice(0, 50),
            value.value.slice(0, 50),
            `${m.name} ${key}`,
          );
        } else if (typeof value.value === "number" && !Number.isInteger(value.value)) {
          assert.ok(Math.abs((md[key] as number) - value.value) < 1e-6, `${m.name} ${key}`);
        } else {
          assert.equal(md[key], value.value, `${m.name} ${key}`);
        }
      }
      assert.deepEqual(
        theirs.tensorInfos.map((t) => [t.name, t.shape.map(Number), t.dtype]),
        ours.tensors.map((t) => [t.name, t.dims, t.type]),
        m.name,
      );
    }
  });
});

describe("profinfer models", () => {
  test("the same seed gives byte-identical files with the real vocabularies", async () => {
    const digest = (p: string) => createHash("sha256").update(readFileSync(p)).digest("hex");
    for (const run of ["a", "b"]) {
      const r = await profinfer([
        "models",
        "tiny",
        "--arch",
        "qwen2moe,gemma2",
        "--out",
        join(scratch, run),
        "--force",
      ]);
      assert.equal(r.code, 0, r.stderr);
    }
    for (const name of ["tiny-qwen2moe", "tiny-gemma2"]) {
      const a = digest(join(scratch, "a", `${name}.gguf`));
      assert.equal(a, digest(join(scratch, "b", `${name}.gguf`)), name);
      assert.equal(
        a,
        digest(models.find((m) => m.name === name)!.path),
        `${name} equals the cached default-seed model`,
      );
    }
  });

  test("bad input gets a clear error and exit status 2", async () => {
    const cases: [string[], RegExp][] = [
      [["models", "huge"], /unknown model set 'huge'; choose one of: tiny, bench, or 'list'/],
      [
        ["models", "tiny", "--arch", "mamba"],
        /unknown architecture 'mamba' in the tiny set; it has: llama, qwen2, gemma2, qwen2moe/,
      ],
      [
        ["models", "tiny", "--llama-src", join(scratch, "nowhere"), "--out", join(scratch, "x")],
        /ggml-vocab-llama-bpe\.gguf does not exist/,
      ],
      [["models", "tiny", "--seed", "-3"], /the seed is an integer/],
    ];
    for (const [args, expected] of cases) {
      const r = await profinfer(args);
      assert.notEqual(r.code, 0, args.join(" "));
      assert.match(r.stderr, expected, args.join(" "));
      assert.doesNotMatch(r.stderr, /\n\s+at /, `${args.join(" ")}: no stack trace`);
    }
  });

  test("a corrupt model file is refused by name and offset", async () => {
    const source = readFileSync(models[0]!.path);
    const cut = join(scratch, "cut.gguf");
    writeFileSync(cut, source.subarray(0, 5000));
    assert.throws(() => readGguf(cut), /cut\.gguf: not a valid GGUF file at byte offset \d+: \S/);
    const garbage = join(scratch, "garbage.gguf");
    writeFileSync(garbage, Buffer.alloc(4096, 0xab));
    assert.throws(
      () => readGguf(garbage),
      /garbage\.gguf: not a valid GGUF file at byte offset 0: magic is 0xabababab/,
    );
  });
});

test("the bench model has LLaMA-3.2-1B's shapes and decodes in llama-simple", async () => {
  const path = benchModel();
  const file = readGguf(path);
  const md = (k: string) => file.metadata.get(k)?.value;
  assert.equal(md("llama.block_count"), 16);
  assert.equal(md("llama.embedding_length"), 2048);
  assert.equal(md("llama.feed_forward_length"), 8192);
  assert.equal(md("llama.attention.head_count"), 32);
  assert.equal(md("llama.attention.head_count_kv"), 8);
  assert.equal((md("tokenizer.ggml.tokens") as string[]).length, 128256);
  assert.equal(
    file.tensors.some((t) => t.name === "output.weight"),
    false,
    "tied embeddings",
  );
  const r = await runProgram(llama("llama-simple"), ["-m", path, "-n", "4", prompt], {
    timeoutMs: 300_000,
  });
  assert.equal(r.code, 0, r.stderr.slice(-2000));
  assert.match(r.stderr, /decoded 4 tokens/);
});
