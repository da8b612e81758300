// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { test } from "node:test";
import { validateTensorReadings } from "./layout.js";

const OPS = 96;
const tensor = (name: string, ne: number[], op = 0) => ({ name, op, ne });

test("tensors as llama.cpp names and shapes them read back, zero-sized dimensions included", () => {
  assert.equal(
    validateTensorReadings(
      [
        tensor("inp_embd", [256, 7, 1, 1], 40),
        tensor("blk.0.attn_q.weight", [256, 256, 1, 1]),
        // a batch that wants no output (a prompt chunk llama-server evaluates without logits):
        // llama.cpp's out_ids has no row, and the get_rows it feeds none either
        tensor("out_ids", [0, 1, 1, 1]),
        tensor("node_117", [256, 0, 1, 1], 40),
      ],
      OPS,
    ),
    null,
  );
});

test("garbage is refused: unprintable names, ops beyond the table, negative or huge dimensions", () => {
  for (const bad of [
    tensor("\u0001\u0002", [4, 1, 1, 1]),
    tensor("attn_norm-3", [4, 1, 1, 1], OPS),
    tensor("attn_norm-3", [-1, 1, 1, 1]),
    tensor("attn_norm-3", [2 ** 41, 1, 1, 1]),
  ]) {
    const problem = validateTensorReadings([tensor("inp_embd", [256, 7, 1, 1]), bad], OPS);
    assert.match(problem ?? "", /^1 of 2 tensors read back as garbage/, JSON.stringify(bad));
  }
  // printable but no name llama.cpp gives: not this build's layout
  assert.match(
    validateTensorReadings([tensor("hello world", [1, 1, 1, 1])], OPS) ?? "",
    /0 of 1 tensors/,
  );
});
