// SPDX-License-Identifier: Apache-2.0
import { Command, InvalidArgumentError } from "commander";
import { join } from "node:path";
import { ggmlTypeName } from "../gguf/format.js";
import { ARCHITECTURES, headDim, ModelSpecError } from "../models/architectures.js";
import {
  DEFAULT_SEED,
  ensureModels,
  VocabularyError,
  ZOO_SETS,
  type ZooSet,
} from "../models/zoo.js";
import { UserError } from "../errors.js";
import { modelsDir, requireManifest } from "../setup/cache.js";
import { GgufFormatError } from "../gguf/reader.js";

function parseSeed(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n > 0xffffffff)
    throw new InvalidArgumentError("the seed is an integer in 0..4294967295.");
  return n;
}

function formatBytes(n: number): string {
  return n >= 1 << 30 ? `${(n / (1 << 30)).toFixed(2)} GiB` : `${(n / (1 << 20)).toFixed(1)} MiB`;
}

export function registerModelsCommand(program: Command): void {
  program
    .command("models")
    .description("write the model zoo: real architectures and vocabularies with random weights")
    .argument("<set>", `which models: ${Object.keys(ZOO_SETS).join(" | ")} | list`)
    .option("--out <dir>", "output folder (default: <cache>/models/<set>)")
    .option(
      "--seed <n>",
      "random seed; the same seed gives byte-identical files",
      parseSeed,
      DEFAULT_SEED,
    )
    .option(
      "--arch <list>",
      `only these architectures (comma-separated: ${ARCHITECTURES.join(",")})`,
    )
    .option(
      "--llama-src <dir>",
      "llama.cpp source holding models/ggml-vocab-*.gguf (default: the set-up's build)",
    )
    .option("--force", "rewrite models even when an identical one exists")
    .action(
      (
        set: string,
        opts: { out?: string; seed: number; arch?: string; llamaSrc?: string; force?: boolean },
      ) => {
        if (set === "list") {
          for (const [name, configs] of Object.entries(ZOO_SETS)) {
            for (const c of configs) {
              const moe = c.nExpert ? `, ${c.nExpert} experts top-${c.nExpertUsed}` : "";
              process.stdout.write(
                `${name.padEnd(6)} ${c.name.padEnd(24)} ${c.arch.padEnd(9)} ${c.realModel}: ${c.nLayer} layers, embd ${c.nEmbd}, ffn ${c.nFf}, ` +
                  `${c.nHead}/${c.nHeadKv} heads x ${headDim(c)}${moe}, ${ggmlTypeName(c.weightType)}, vocab ${c.vocab}\n`,
              );
            }
          }
          return;
        }
        if (!(set in ZOO_SETS)) {
          throw new UserError(
            `unknown model set '${set}'; choose one of: ${Object.keys(ZOO_SETS).join(", ")}, or 'list'`,
          );
        }
        let configs = ZOO_SETS[set as ZooSet] as readonly (typeof ZOO_SETS)[ZooSet][number][];
        if (opts.arch) {
          const wanted = opts.arch
            .split(",")
            .map((s) => s.trim())
            .filter(Boolean);
          const unknown = wanted.filter((a) => !configs.some((c) => c.arch === a));
          if (unknown.length > 0) {
            throw new UserError(
              `unknown architecture ${unknown.map((u) => `'${u}'`).join(", ")} in the ${set} set; it has: ${configs.map((c) => c.arch).join(", ")}`,
            );
          }
          configs = configs.filter((c) => wanted.includes(c.arch));
        }
        const llamaSrcDir = opts.llamaSrc ?? requireManifest().llamaCpp.srcDir;
        const outDir = opts.out ?? join(modelsDir(), set);
        try {
          ensureModels(configs, {
            outDir,
            llamaSrcDir,
            seed: opts.seed,
            force: opts.force ?? false,
            onModel: (m) => {
              const how = m.reused
                ? "unchanged"
                : `written in ${(m.milliseconds / 1000).toFixed(1)} s`;
              process.stdout.write(
                `${m.path}  ${formatBytes(m.bytes)}  ${m.tensors} tensors, vocab ${m.nVocab}  (${how})\n`,
              );
            },
          });
        } catch (error) {
          if (
            error instanceof ModelSpecError ||
            error instanceof VocabularyError ||
            error instanceof GgufFormatError
          ) {
            throw new UserError(error.message);
          }
          throw error;
        }
      },
    );
}
