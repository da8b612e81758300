// SPDX-License-Identifier: Apache-2.0
// A GGUF writer. No maintained JavaScript library writes whole GGUF files with tensor data
// (@huggingface/gguf serialises metadata only), and the format is small, so it is written here.
import { closeSync, openSync, renameSync, rmSync, writeSync } from "node:fs";
import {
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  GGUF_VERSION,
  GgufValueType,
  SCALAR_SIZE,
  alignTo,
  ggmlTypeName,
  tensorByteSize,
  type GgmlType,
  type GgufScalar,
  type GgufValue,
} from "./format.js";

export interface TensorToWrite {
  name: string;
  /** ne[0] first */
  dims: number[];
  type: GgmlType;
  /** Produces exactly tensorByteSize(type, dims) bytes, in chunks. */
  data: () => Iterable<Uint8Array>;
}

// Typed metadata constructors, so that call sites read like the GGUF key/value table.
export const gguf = {
  u32: (value: number): GgufValue => ({ type: GgufValueType.UINT32, value }),
  i32: (value: number): GgufValue => ({ type: GgufValueType.INT32, value }),
  f32: (value: number): GgufValue => ({ type: GgufValueType.FLOAT32, value }),
  bool: (value: boolean): GgufValue => ({ type: GgufValueType.BOOL, value }),
  str: (value: string): GgufValue => ({ type: GgufValueType.STRING, value }),
  arr: (itemType: Exclude<GgufValueType, GgufValueType.ARRAY>, value: GgufScalar[]): GgufValue => ({
    type: GgufValueType.ARRAY,
    itemType,
    value,
  }),
};

/** Buffers small writes into large ones. */
class FileSink {
  private buffer = Buffer.allocUnsafe(1 << 22);
  private used = 0;
  written = 0;

  constructor(private readonly fd: number) {}

  private flush(): void {
    let off = 0;
    while (off < this.used) off += writeSync(this.fd, this.buffer, off, this.used - off);
    this.used = 0;
  }

  bytes(data: Uint8Array): void {
    if (data.length > this.buffer.length - this.used) {
      this.flush();
      if (data.length > this.buffer.length) {
        let off = 0;
        while (off < data.length) off += writeSync(this.fd, data, off, data.length - off);
        this.written += data.length;
        return;
      }
    }
    this.buffer.set(data, this.used);
    this.used += data.length;
    this.written += data.length;
  }

  private scratch = Buffer.alloc(8);
  u32(v: number): void {
    this.scratch.writeUInt32LE(v, 0);
    this.bytes(this.scratch.subarray(0, 4));
  }
  u64(v: number | bigint): void {
    this.scratch.writeBigUInt64LE(BigInt(v), 0);
    this.bytes(this.scratch.subarray(0, 8));
  }
  string(s: string): void {
    const b = Buffer.from(s, "utf8");
    this.u64(b.length);
    this.bytes(b);
  }
  padTo(alignment: number): void {
    const pad = alignTo(this.written, alignment) - this.written;
    if (pad > 0) this.bytes(new Uint8Array(pad));
  }
  close(): void {
    this.flush();
  }
}

function writeScalar(sink: FileSink, type: GgufValueType, value: GgufScalar, key: string): void {
  if (type === GgufValueType.STRING) {
    if (typeof value !== "string")
      throw new TypeError(`metadata '${key}': expected a string, got ${typeof value}`);
    sink.string(value);
    return;
  }
  const size = SCALAR_SIZE[type];
  if (size === undefined) throw new TypeError(`metadata '${key}': unsupported value type ${type}`);
  const b = Buffer.alloc(size);
  switch (type) {
    case GgufValueType.UINT8:
      b.writeUInt8(Number(value));
      break;
    case GgufValueType.INT8:
      b.writeInt8(Number(value));
      break;
    case GgufValueType.UINT16:
      b.writeUInt16LE(Number(value));
      break;
    case GgufValueType.INT16:
      b.writeInt16LE(Number(value));
      break;
    case GgufValueType.UINT32:
      b.writeUInt32LE(Number(value));
      break;
    case GgufValueType.INT32:
      b.writeInt32LE(Number(value));
      break;
    case GgufValueType.FLOAT32:
      b.writeFloatLE(Number(value));
      break;
    case GgufValueType.BOOL:
      b.writeUInt8(value ? 1 : 0);
      break;
    case GgufValueType.UINT64:
      b.writeBigUInt64LE(BigInt(value));
      break;
    case GgufValueType.INT64:
      b.writeBigInt64LE(BigInt(value));
      break;
    case GgufValueType.FLOAT64:
      b.writeDoubleLE(Number(value));
      break;
  }
  sink.bytes(b);
}

/**
 * Writes a GGUF v3 file: metadata in the order given, tensors in the order given, each tensor's
 * data aligned. Written to a temporary name and renamed, so that an interrupted write never
 * leaves a file that looks complete.
 */
export function writeGguf(
  path: string,
  metadata: Iterable<[string, GgufValue]>,
  tensors: readonly TensorToWrite[],
): { bytes: number } {
  const entries = [...metadata];
  const alignmentEntry = entries.find(([k]) => k === "general.alignment");
  const alignment = alignmentEntry ? Number(alignmentEntry[1].value) : GGUF_DEFAULT_ALIGNMENT;

  const sizes = tensors.map((t) => {
    for (const d of t.dims) {
      if (!Number.isSafeInteger(d) || d <= 0)
        throw new RangeError(`tensor '${t.name}': dimension ${d} is not a positive integer`);
    }
    return tensorByteSize(t.type, t.dims);
  });
  const offsets: number[] = [];
  let dataSize = 0;
  for (const size of sizes) {
    offsets.push(dataSize);
    dataSize = alignTo(dataSize + size, alignment);
  }

  const tmp = `${path}.partial`;
  const fd = openSync(tmp, "w");
  let open = true;
  try {
    const sink = new FileSink(fd);
    sink.u32(GGUF_MAGIC);
    sink.u32(GGUF_VERSION);
    sink.u64(tensors.length);
    sink.u64(entries.length);
    for (const [key, v] of entries) {
      sink.string(key);
      sink.u32(v.type);
      if (v.type === GgufValueType.ARRAY) {
        sink.u32(v.itemType);
        sink.u64(v.value.length);
        for (const item of v.value) writeScalar(sink, v.itemType, item, key);
      } else {
        writeScalar(sink, v.type, v.value, key);
      }
    }
    tensors.forEach((t, i) => {
      sink.string(t.name);
      sink.u32(t.dims.length);
      for (const d of t.dims) sink.u64(d);
      sink.u32(t.type);
      sink.u64(offsets[i]!);
    });
    sink.padTo(alignment);
    const dataStart = sink.written;
    tensors.forEach((t, i) => {
      const before = sink.written;
      for (const chunk of t.data()) sink.bytes(chunk);
      const produced = sink.written - before;
      if (produced !== sizes[i]) {
        throw new Error(
          `tensor '${t.name}' (${ggmlTypeName(t.type)} ${t.dims.join("x")}) produced ${produced} bytes, expected ${sizes[i]}`,
        );
      }
      if (sink.written - dataStart !== offsets[i]! + sizes[i]!)
        throw new Error(`tensor '${t.name}' is misplaced`);
      sink.padTo(alignment);
    });
    sink.close();
    closeSync(fd);
    open = false;
    renameSync(tmp, path);
    return { bytes: sink.written };
  } catch (error) {
    if (open) closeSync(fd);
    rmSync(tmp, { force: true });
    throw error;
  }
}
