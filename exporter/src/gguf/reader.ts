// SPDX-License-Identifier: Apache-2.0
// A GGUF header reader. Written here rather than taken from @huggingface/gguf because profinfer
// must say exactly where a damaged file goes wrong (file and byte offset), must never allocate
// from an untrusted length before checking it against the file size, and reads 100+ MiB
// vocabularies and multi-GiB models through a small window without loading them whole.
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import {
  GGML_BLOCK,
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  GgufValueType,
  alignTo,
  ggmlTypeName,
  isKnownGgmlType,
  tensorByteSize,
  type GgufScalar,
  type GgufTensorInfo,
  type GgufValue,
} from "./format.js";

export class GgufFormatError extends Error {
  override name = "GgufFormatError";
  constructor(
    readonly file: string,
    readonly offset: number,
    readonly reason: string,
  ) {
    super(`${file}: not a valid GGUF file at byte offset ${offset}: ${reason}`);
  }
}

export interface GgufFile {
  path: string;
  version: number;
  fileSize: number;
  metadata: Map<string, GgufValue>;
  tensors: GgufTensorInfo[];
  alignment: number;
  /** absolute file offset where tensor data begins */
  dataOffset: number;
}

const WINDOW = 1 << 20;
const MAX_STRING = 1 << 26; // 64 MiB: no key, token or template is near this
const MAX_DIMS = 4; // GGML_MAX_DIMS

/** Sequential reader over a file descriptor through a sliding window, with bounds checks. */
class Cursor {
  private buffer = Buffer.alloc(0);
  private bufferStart = 0;
  pos = 0;

  constructor(
    private readonly fd: number,
    readonly path: string,
    readonly size: number,
  ) {}

  fail(reason: string, at = this.pos): never {
    throw new GgufFormatError(this.path, at, reason);
  }

  private ensure(n: number, what: string): number {
    if (this.pos + n > this.size) {
      this.fail(`file ends (size ${this.size}) while reading ${what} of ${n} bytes`);
    }
    const rel = this.pos - this.bufferStart;
    if (rel >= 0 && rel + n <= this.buffer.length) return rel;
    const length = Math.min(Math.max(WINDOW, n), this.size - this.pos);
    const next = Buffer.allocUnsafe(length);
    let got = 0;
    while (got < length) {
      const r = readSync(this.fd, next, got, length - got, this.pos + got);
      if (r === 0) this.fail(`read returned no data at offset ${this.pos + got}`);
      got += r;
    }
    this.buffer = next;
    this.bufferStart = this.pos;
    return 0;
  }

  /**
   * Moves past `n` strings of array `key`, reading only their lengths, straight from the window:
   * this runs for every token and merge of a vocabulary (400k strings for LLaMA 3), so it builds
   * no name and calls nothing per string unless one is wrong.
   */
  skipStrings(n: number, key: string): void {
    for (let i = 0; i < n; i++) {
      let rel = this.pos - this.bufferStart;
      if (rel < 0 || rel + 8 > this.buffer.length) rel = this.ensure(8, `length of '${key}'[${i}]`);
      const high = this.buffer.readUInt32LE(rel + 4);
      const length = high * 2 ** 32 + this.buffer.readUInt32LE(rel);
      if (high !== 0 || length > MAX_STRING || this.pos + 8 + length > this.size) {
        this.count(`length of '${key}'[${i}]`, Math.min(MAX_STRING, this.size - this.pos - 8));
      }
      this.pos += 8 + length;
    }
  }

  /** Moves past `n` bytes (checked against the file size) without reading them. */
  skip(n: number, what: string): void {
    if (this.pos + n > this.size) {
      this.fail(`file ends (size ${this.size}) while skipping ${what} of ${n} bytes`);
    }
    this.pos += n;
  }

  u8(what = "u8"): number {
    const at = this.ensure(1, what);
    this.pos += 1;
    return this.buffer.readUInt8(at);
  }
  i8(): number {
    const at = this.ensure(1, "i8");
    this.pos += 1;
    return this.buffer.readInt8(at);
  }
  u16(): number {
    const at = this.ensure(2, "u16");
    this.pos += 2;
    return this.buffer.readUInt16LE(at);
  }
  i16(): number {
    const at = this.ensure(2, "i16");
    this.pos += 2;
    return this.buffer.readInt16LE(at);
  }
  u32(what = "u32"): number {
    const at = this.ensure(4, what);
    this.pos += 4;
    return this.buffer.readUInt32LE(at);
  }
  i32(): number {
    const at = this.ensure(4, "i32");
    this.pos += 4;
    return this.buffer.readInt32LE(at);
  }
  f32(): number {
    const at = this.ensure(4, "f32");
    this.pos += 4;
    return this.buffer.readFloatLE(at);
  }
  f64(): number {
    const at = this.ensure(8, "f64");
    this.pos += 8;
    return this.buffer.readDoubleLE(at);
  }
  u64big(what = "u64"): bigint {
    const at = this.ensure(8, what);
    this.pos += 8;
    return this.buffer.readBigUInt64LE(at);
  }
  i64big(): bigint {
    const at = this.ensure(8, "i64");
    this.pos += 8;
    return this.buffer.readBigInt64LE(at);
  }
  /** A u64 that must be a count or size: checked against `max` before anything is allocated. */
  count(what: string, max: number): number {
    const at = this.ensure(8, what);
    // two u32 halves rather than a BigInt: this runs for every string of a vocabulary
    const high = this.buffer.readUInt32LE(at + 4);
    const v = high * 2 ** 32 + this.buffer.readUInt32LE(at);
    if (high >= 2 ** 21 || v > max) {
      const exact = this.buffer.readBigUInt64LE(at);
      this.fail(`${what} is ${exact}, more than the file can hold (${max})`, this.pos);
    }
    this.pos += 8;
    return v;
  }
  string(what: string): string {
    const at = this.pos;
    const length = this.count(`length of ${what}`, Math.min(MAX_STRING, this.size - this.pos));
    const rel = this.ensure(length, what);
    this.pos += length;
    const text = this.buffer.toString("utf8", rel, rel + length);
    if (
      length > 0 &&
      text.includes("\uFFFD") &&
      !isValidUtf8(this.buffer.subarray(rel, rel + length))
    ) {
      this.fail(`${what} is not valid UTF-8`, at);
    }
    return text;
  }
}

function isValidUtf8(bytes: Buffer): boolean {
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    return true;
  } catch {
    return false;
  }
}

function readScalar(c: Cursor, type: GgufValueType, what: string): GgufScalar {
  switch (type) {
    case GgufValueType.UINT8:
      return c.u8();
    case GgufValueType.INT8:
      return c.i8();
    case GgufValueType.UINT16:
      return c.u16();
    case GgufValueType.INT16:
      return c.i16();
    case GgufValueType.UINT32:
      return c.u32();
    case GgufValueType.INT32:
      return c.i32();
    case GgufValueType.FLOAT32:
      return c.f32();
    case GgufValueType.BOOL: {
      const at = c.pos;
      const b = c.u8("bool");
      if (b > 1) c.fail(`${what}: bool value ${b} is neither 0 nor 1`, at);
      return b === 1;
    }
    case GgufValueType.STRING:
      return c.string(what);
    case GgufValueType.UINT64:
      return c.u64big();
    case GgufValueType.INT64:
      return c.i64big();
    case GgufValueType.FLOAT64:
      return c.f64();
    default:
      return c.fail(`${what}: unknown value type ${String(type)}`, c.pos - 4);
  }
}

/** An array's item type and count; `minItem` is the least bytes an item takes (its size, but strings). */
function arrayHead(
  c: Cursor,
  key: string,
): { itemType: Exclude<GgufValueType, GgufValueType.ARRAY>; n: number; minItem: number } {
  const itemTypeAt = c.pos;
  const itemType = c.u32(`array item type of '${key}'`);
  if (itemType === GgufValueType.ARRAY || !(itemType in GgufValueType)) {
    c.fail(`'${key}': unsupported array item type ${itemType}`, itemTypeAt);
  }
  // Every item takes at least one byte (strings at least 8): bound the count by what is left.
  const minItem = itemType === GgufValueType.STRING ? 8 : (SCALAR_MIN[itemType] ?? 1);
  const n = c.count(`item count of '${key}'`, Math.floor((c.size - c.pos) / minItem));
  return { itemType: itemType as Exclude<GgufValueType, GgufValueType.ARRAY>, n, minItem };
}

function readValue(c: Cursor, key: string): GgufValue {
  const typeAt = c.pos;
  const type = c.u32(`value type of '${key}'`);
  if (type === GgufValueType.ARRAY) {
    const { itemType, n } = arrayHead(c, key);
    const items: GgufScalar[] = new Array<GgufScalar>(n);
    for (let i = 0; i < n; i++) items[i] = readScalar(c, itemType, `'${key}'[${i}]`);
    return { type: GgufValueType.ARRAY, itemType, value: items };
  }
  if (!(type in GgufValueType)) c.fail(`'${key}': unknown value type ${type}`, typeAt);
  return {
    type: type as Exclude<GgufValueType, GgufValueType.ARRAY>,
    value: readScalar(c, type, `'${key}'`),
  };
}

/**
 * Moves past a metadata value without building it: fixed-size arrays in one step, strings by
 * their lengths alone. A 128k-token vocabulary is skipped in milliseconds instead of the
 * hundreds of milliseconds (and garbage) that decoding every token string costs.
 */
function skipValue(c: Cursor, key: string): void {
  const typeAt = c.pos;
  const type = c.u32(`value type of '${key}'`);
  if (type === GgufValueType.ARRAY) {
    const { itemType, n, minItem } = arrayHead(c, key);
    if (itemType === GgufValueType.STRING) c.skipStrings(n, key);
    else c.skip(n * minItem, `items of '${key}'`);
    return;
  }
  if (type === GgufValueType.STRING) {
    const length = c.count(`length of '${key}'`, Math.min(MAX_STRING, c.size - c.pos));
    c.skip(length, `'${key}'`);
    return;
  }
  if (!(type in GgufValueType)) c.fail(`'${key}': unknown value type ${type}`, typeAt);
  readScalar(c, type, `'${key}'`);
}

const SCALAR_MIN: Partial<Record<number, number>> = {
  [GgufValueType.UINT16]: 2,
  [GgufValueType.INT16]: 2,
  [GgufValueType.UINT32]: 4,
  [GgufValueType.INT32]: 4,
  [GgufValueType.FLOAT32]: 4,
  [GgufValueType.UINT64]: 8,
  [GgufValueType.INT64]: 8,
  [GgufValueType.FLOAT64]: 8,
};

/**
 * The header and metadata; with `keys`, only those keys' values are built and every other value
 * (the tokenizer's arrays above all) is skipped over, still bounds-checked.
 */
function readHead(
  c: Cursor,
  keys: ReadonlySet<string> | null,
): { version: number; tensorCount: number; metadata: Map<string, GgufValue> } {
  const size = c.size;
  if (size < 24) c.fail(`file is ${size} bytes, shorter than a GGUF header (24 bytes)`, 0);
  const magic = c.u32("magic");
  if (magic !== GGUF_MAGIC) {
    c.fail(`magic is 0x${magic.toString(16).padStart(8, "0")}, expected 0x46554747 ("GGUF")`, 0);
  }
  const version = c.u32("version");
  if (version < 2 || version > 3)
    c.fail(`unsupported GGUF version ${version} (this reader handles 2 and 3)`, 4);
  const tensorCount = c.count("tensor count", Math.floor(size / 24));
  const kvCount = c.count("metadata key count", Math.floor(size / 12));

  const metadata = new Map<string, GgufValue>();
  const seen = new Set<string>();
  for (let i = 0; i < kvCount; i++) {
    const keyAt = c.pos;
    const key = c.string(`key #${i}`);
    if (seen.has(key)) c.fail(`duplicate metadata key '${key}'`, keyAt);
    seen.add(key);
    if (keys === null || keys.has(key)) {
      metadata.set(key, readValue(c, key));
      // converters write general.* first: a model's name is found without walking its vocabulary
      if (keys !== null && metadata.size === keys.size) break;
    } else skipValue(c, key);
  }
  return { version, tensorCount, metadata };
}

/**
 * The GGUF version and the values of `keys` only (those the file has), without the tensor table:
 * what a caller that names a model needs, at a small fraction of `readGguf`'s cost. Reading stops
 * once every key is found, so a damaged file past them is not noticed here.
 */
export function readGgufMetadata(
  path: string,
  keys: readonly string[],
): { version: number; metadata: Map<string, GgufValue> } {
  const fd = openSync(path, "r");
  try {
    const c: Cursor = new Cursor(fd, path, fstatSync(fd).size);
    const { version, metadata } = readHead(c, new Set(keys));
    return { version, metadata };
  } finally {
    closeSync(fd);
  }
}

/**
 * Reads the header, metadata and tensor table of a GGUF file and checks that every tensor's data
 * lies inside the file. Tensor data itself is not read.
 */
export function readGguf(path: string): GgufFile {
  const fd = openSync(path, "r");
  try {
    const size = fstatSync(fd).size;
    const c: Cursor = new Cursor(fd, path, size);
    const { version, tensorCount, metadata } = readHead(c, null);

    const alignmentValue = metadata.get("general.alignment");
    const alignment =
      alignmentValue && alignmentValue.type !== GgufValueType.ARRAY
        ? Number(alignmentValue.value)
        : GGUF_DEFAULT_ALIGNMENT;
    if (!Number.isInteger(alignment) || alignment <= 0 || (alignment & (alignment - 1)) !== 0) {
      c.fail(`general.alignment ${String(alignmentValue?.value)} is not a power of two`);
    }

    const tensors: GgufTensorInfo[] = [];
    const names = new Set<string>();
    for (let i = 0; i < tensorCount; i++) {
      const at = c.pos;
      const name = c.string(`name of tensor #${i}`);
      if (names.has(name)) c.fail(`duplicate tensor name '${name}'`, at);
      names.add(name);
      const nDimsAt = c.pos;
      const nDims = c.u32(`dimension count of '${name}'`);
      if (nDims === 0 || nDims > MAX_DIMS)
        c.fail(`tensor '${name}' has ${nDims} dimensions (1..${MAX_DIMS} allowed)`, nDimsAt);
      const dims: number[] = [];
      for (let d = 0; d < nDims; d++) {
        const dimAt = c.pos;
        const v = c.u64big(`dimension ${d} of '${name}'`);
        if (v === 0n || v > BigInt(Number.MAX_SAFE_INTEGER))
          c.fail(`tensor '${name}' dimension ${d} is ${v}`, dimAt);
        dims.push(Number(v));
      }
      const typeAt = c.pos;
      const type = c.u32(`type of '${name}'`);
      if (!isKnownGgmlType(type)) c.fail(`tensor '${name}' has unknown ggml type ${type}`, typeAt);
      if ((dims[0] ?? 0) % GGML_BLOCK[type].elements !== 0) {
        c.fail(
          `tensor '${name}': ${ggmlTypeName(type)} rows need a multiple of ${GGML_BLOCK[type].elements} elements, ne[0] is ${dims[0]}`,
          nDimsAt,
        );
      }
      const offsetAt = c.pos;
      const offset = c.u64big(`data offset of '${name}'`);
      if (offset % BigInt(alignment) !== 0n)
        c.fail(`tensor '${name}' data offset ${offset} is not aligned to ${alignment}`, offsetAt);
      if (offset > BigInt(size))
        c.fail(
          `tensor '${name}' data offset ${offset} lies beyond the end of the file (size ${size})`,
          offsetAt,
        );
      tensors.push({ name, dims, type, offset: Number(offset) });
    }

    const dataOffset = alignTo(c.pos, alignment);
    for (const t of tensors) {
      const start = dataOffset + t.offset;
      const end = start + tensorByteSize(t.type, t.dims);
      if (end > size) {
        throw new GgufFormatError(
          path,
          size,
          `tensor '${t.name}' needs bytes ${start}..${end} but the file ends at ${size} (truncated?)`,
        );
      }
    }
    return { path, version, fileSize: size, metadata, tensors, alignment, dataOffset };
  } finally {
    closeSync(fd);
  }
}
