// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { gguf as hfGguf } from "@huggingface/gguf";
import { GgmlType, GgufValueType, tensorByteSize } from "./format.js";
import { GgufFormatError, readGguf, readGgufMetadata } from "./reader.js";
import { gguf, writeGguf, type TensorToWrite } from "./writer.js";

const dir = mkdtempSync(join(tmpdir(), "profinfer-gguf-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function constantTensor(name: string, dims: number[], type: GgmlType, byte: number): TensorToWrite {
  return { name, dims, type, data: () => [new Uint8Array(tensorByteSize(type, dims)).fill(byte)] };
}

const metadata: [string, ReturnType<typeof gguf.u32>][] = [
  ["general.architecture", gguf.str("llama")],
  ["general.name", gguf.str("round trip ✓")],
  ["test.u8", { type: GgufValueType.UINT8, value: 200 }],
  ["test.i8", { type: GgufValueType.INT8, value: -100 }],
  ["test.u16", { type: GgufValueType.UINT16, value: 65000 }],
  ["test.i16", { type: GgufValueType.INT16, value: -32000 }],
  ["test.u32", gguf.u32(4000000000)],
  ["test.i32", gguf.i32(-2000000000)],
  ["test.f32", gguf.f32(0.5)],
  ["test.bool", gguf.bool(true)],
  ["test.u64", { type: GgufValueType.UINT64, value: 1n << 40n }],
  ["test.i64", { type: GgufValueType.INT64, value: -(1n << 40n) }],
  ["test.f64", { type: GgufValueType.FLOAT64, value: Math.PI }],
  ["test.strings", gguf.arr(GgufValueType.STRING, ["a", "", "ünïcode"])],
  ["test.ints", gguf.arr(GgufValueType.INT32, [1, -2, 3])],
];
const tensors = [
  constantTensor("a.weight", [64, 3], GgmlType.Q8_0, 1),
  constantTensor("b.weight", [5], GgmlType.F32, 2),
  constantTensor("c.weight", [32, 2, 3], GgmlType.Q4_0, 3),
  constantTensor("d.weight", [7, 3], GgmlType.F16, 4),
];

function writeSample(name: string): string {
  const path = join(dir, name);
  writeGguf(path, metadata, tensors);
  return path;
}

test("a written file reads back to the same metadata and tensor table with our reader", () => {
  const path = writeSample("ours.gguf");
  const file = readGguf(path);
  assert.equal(file.version, 3);
  assert.deepEqual(
    [...file.metadata.keys()],
    metadata.map(([k]) => k),
  );
  for (const [key, value] of metadata) assert.deepEqual(file.metadata.get(key), value, key);
  assert.deepEqual(
    file.tensors.map((t) => [t.name, t.dims, t.type]),
    tensors.map((t) => [t.name, t.dims, t.type]),
  );
  // tensor data sits where the table says, aligned to 32
  const bytes = readFileSync(path);
  for (const [i, t] of file.tensors.entries()) {
    assert.equal((file.dataOffset + t.offset) % 32, 0);
    assert.equal(bytes[file.dataOffset + t.offset], i + 1, `first byte of ${t.name}`);
  }
});

test("an independent reader (@huggingface/gguf) parses the same metadata and tensor table", async () => {
  const path = writeSample("theirs.gguf");
  const ours = readGguf(path);
  const theirs = await hfGguf(path, { allowLocalFile: true });
  assert.equal(theirs.tensorInfos.length, ours.tensors.length);
  for (const [i, info] of theirs.tensorInfos.entries()) {
    const t = ours.tensors[i]!;
    assert.equal(info.name, t.name);
    assert.deepEqual(info.shape.map(Number), t.dims);
    assert.equal(info.dtype, t.type);
    assert.equal(Number(info.offset), t.offset);
  }
  const md = theirs.metadata as Record<string, unknown>;
  assert.equal(md["general.name"], "round trip ✓");
  assert.equal(md["test.u32"], 4000000000);
  assert.equal(md["test.i8"], -100);
  assert.equal(md["test.bool"], true);
  assert.equal(md["test.u64"], 1n << 40n);
  assert.deepEqual(md["test.strings"], ["a", "", "ünïcode"]);
  assert.deepEqual(md["test.ints"], [1, -2, 3]);
});

test("the metadata-only reader builds the asked-for keys, skips the rest, and still catches a cut", () => {
  const path = writeSample("keys.gguf");
  // keys after skipped string and integer arrays, and keys the file lacks
  const keys = ["general.name", "test.f64", "test.ints", "test.missing"];
  const { version, metadata: got } = readGgufMetadata(path, keys);
  assert.equal(version, 3);
  assert.deepEqual([...got.keys()], ["general.name", "test.f64", "test.ints"]);
  const full = readGguf(path);
  for (const key of got.keys()) assert.deepEqual(got.get(key), full.metadata.get(key), key);
  // a cut inside a skipped array is reported, not read past
  const bytes = readFileSync(path);
  const inStrings = bytes.indexOf(Buffer.from("ünïcode"));
  const cut = join(dir, "keys-cut.gguf");
  writeFileSync(cut, bytes.subarray(0, inStrings + 2));
  assert.throws(
    () => readGgufMetadata(cut, ["test.ints"]),
    (e: unknown) => e instanceof GgufFormatError && /'test\.strings'\[2\]/.test(e.reason),
  );
});

test("the same input gives byte-identical files", () => {
  const a = readFileSync(writeSample("same-a.gguf"));
  const b = readFileSync(writeSample("same-b.gguf"));
  assert.ok(a.equals(b));
});

test("a tensor whose generator yields the wrong size is refused and leaves no file", () => {
  const path = join(dir, "short.gguf");
  assert.throws(
    () =>
      writeGguf(path, metadata, [
        { name: "x", dims: [32], type: GgmlType.F32, data: () => [new Uint8Array(4)] },
      ]),
    /tensor 'x' .* produced 4 bytes, expected 128/,
  );
  assert.throws(() => statSync(path));
  assert.throws(() => statSync(`${path}.partial`));
});

test("a truncated file fails with the file name and an offset, at every cut point", () => {
  const source = readFileSync(writeSample("full.gguf"));
  const cut = join(dir, "cut.gguf");
  // Cut inside the header, the metadata, the tensor table and the data.
  const file = readGguf(join(dir, "full.gguf"));
  const last = file.tensors.at(-1)!;
  const endOfData = file.dataOffset + last.offset + tensorByteSize(last.type, last.dims);
  const points = [
    0,
    3,
    10,
    23,
    40,
    100,
    300,
    file.dataOffset - 8,
    file.dataOffset + 10,
    endOfData - 1,
  ];
  for (const size of points) {
    writeFileSync(cut, source.subarray(0, size));
    const error = (() => {
      try {
        readGguf(cut);
      } catch (e) {
        return e;
      }
      return null;
    })();
    assert.ok(
      error instanceof GgufFormatError,
      `cut at ${size}: expected GgufFormatError, got ${String(error)}`,
    );
    assert.equal(error.file, cut);
    assert.ok(error.offset >= 0 && error.offset <= size, `cut at ${size}: offset ${error.offset}`);
    assert.match(
      error.message,
      new RegExp(
        `${cut.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}: not a valid GGUF file at byte offset \\d+`,
      ),
    );
  }
});

test("corrupt headers fail clearly instead of allocating or hanging", () => {
  const source = readFileSync(writeSample("corrupt-src.gguf"));
  const bad = join(dir, "bad.gguf");
  const cases: [string, (b: Buffer) => void, RegExp][] = [
    ["bad magic", (b) => b.write("GGML", 0), /magic is 0x4c4d4747/],
    ["bad version", (b) => b.writeUInt32LE(99, 4), /unsupported GGUF version 99/],
    [
      "huge tensor count",
      (b) => b.writeBigUInt64LE(1n << 60n, 8),
      /tensor count is \d+, more than the file can hold/,
    ],
    ["huge key length", (b) => b.writeBigUInt64LE(1n << 50n, 24), /length of key #0 is \d+/],
    [
      "unknown value type",
      (b) => b.writeUInt32LE(77, 24 + 8 + "general.architecture".length),
      /unknown value type 77/,
    ],
  ];
  for (const [label, mutate, expected] of cases) {
    const copy = Buffer.from(source);
    mutate(copy);
    writeFileSync(bad, copy);
    assert.throws(
      () => readGguf(bad),
      (e: unknown) => e instanceof GgufFormatError && expected.test(e.message),
      label,
    );
  }
});

test("a file cut inside the tensor data is reported as truncated with the tensor named", () => {
  const path = writeSample("trunc-data.gguf");
  const size = statSync(path).size;
  truncateSync(path, size - 40);
  assert.throws(
    () => readGguf(path),
    /tensor 'd.weight' needs bytes \d+\.\.\d+ but the file ends at \d+ \(truncated\?\)/,
  );
});
