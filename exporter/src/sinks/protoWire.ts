// SPDX-License-Identifier: Apache-2.0
// Protocol-buffer messages written field by field into one growing buffer, for the formats whose
// few messages profinfer writes itself against their documented schema (Perfetto's trace
// packets, OTLP spans and profiles): the field numbers live beside each writer, the wire format
// here. Hand-written because these writers run per operator and per span: protobufjs' Writer
// allocates an object per field written, and its garbage collection cost more than the encoding
// itself; this one writes in place and reuses its buffer.

export const VARINT = 0;
export const I64 = 1;
export const LEN = 2;
export const I32 = 5;

/** The strings a writer keeps encoded (stringCached), at most. */
const STRING_CACHE = 8192;

export class ProtoWriter {
  private buf: Buffer;
  private readonly encoded = new Map<string, Buffer>();
  /** bytes written */
  pos = 0;

  constructor(size = 1 << 16) {
    this.buf = Buffer.allocUnsafe(size);
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(grown, 0, 0, this.pos);
    this.buf = grown;
  }

  /** A non-negative integer below 2^53 as a varint. */
  varint(v: number): this {
    this.ensure(10);
    const buf = this.buf;
    let pos = this.pos;
    while (v >= 128) {
      buf[pos++] = (v % 128) | 128;
      v = Math.floor(v / 128);
    }
    buf[pos++] = v;
    this.pos = pos;
    return this;
  }

  tag(field: number, wire: number): this {
    return this.varint(field * 8 + wire);
  }

  /** An int64 field's value: a negative one as its 64-bit two's complement (ten bytes). */
  int64(v: number): this {
    if (v >= 0) return this.varint(v);
    // two 32-bit halves of the two's complement (v a safe integer), seven bits at a time
    let lo = Math.trunc(v) >>> 0;
    let hi = Math.floor(Math.trunc(v) / 4294967296) >>> 0;
    this.ensure(10);
    const buf = this.buf;
    let pos = this.pos;
    while (hi !== 0) {
      buf[pos++] = (lo & 127) | 128;
      lo = ((lo >>> 7) | (hi << 25)) >>> 0;
      hi >>>= 7;
    }
    while (lo > 127) {
      buf[pos++] = (lo & 127) | 128;
      lo >>>= 7;
    }
    buf[pos++] = lo;
    this.pos = pos;
    return this;
  }

  /** A uint64 from a bigint (times in ns since the epoch pass 2^53). */
  uint64Big(v: bigint): this {
    this.ensure(10);
    while (v >= 128n) {
      this.buf[this.pos++] = Number(v & 127n) | 128;
      v >>= 7n;
    }
    this.buf[this.pos++] = Number(v);
    return this;
  }

  bool(v: boolean): this {
    return this.varint(v ? 1 : 0);
  }

  double(v: number): this {
    this.ensure(8);
    this.buf.writeDoubleLE(v, this.pos);
    this.pos += 8;
    return this;
  }

  fixed32(v: number): this {
    this.ensure(4);
    this.buf.writeUInt32LE(v >>> 0, this.pos);
    this.pos += 4;
    return this;
  }

  /** A length-delimited field's value of the bytes a hex string spells (OTLP's ids). */
  hex(s: string): this {
    this.varint(s.length >> 1);
    this.ensure(s.length >> 1);
    this.pos += this.buf.write(s, this.pos, "hex");
    return this;
  }

  /** Bytes as they are (an already encoded part of the message). */
  raw(b: Uint8Array): this {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
    return this;
  }

  /** A fixed64 from a bigint. */
  fixed64(v: bigint): this {
    this.ensure(8);
    this.buf.writeBigUInt64LE(BigInt.asUintN(64, v), this.pos);
    this.pos += 8;
    return this;
  }

  string(s: string): this {
    // at most three bytes a UTF-16 unit
    this.ensure(5 + s.length * 3);
    // short ASCII text (attribute keys, tensor names) is copied here: the native encoder's call
    // costs more than the copy
    if (s.length < 64) {
      const buf = this.buf;
      let pos = this.pos + 1;
      let i = 0;
      for (; i < s.length; i++) {
        const c = s.charCodeAt(i);
        if (c >= 128) break;
        buf[pos++] = c;
      }
      if (i === s.length) {
        buf[this.pos] = s.length;
        this.pos = pos;
        return this;
      }
    }
    const start = this.pos;
    // the length's varint is written after the text: reserve one byte, move the text if longer
    this.pos += 1;
    const n = this.buf.write(s, this.pos, "utf8");
    this.pos += n;
    this.lengthAt(start, n);
    return this;
  }

  /**
   * A string, its encoding kept for the next time: for the few strings written again and again
   * (attribute keys, operator and tensor names), where copying the bytes beats encoding them.
   */
  stringCached(s: string): this {
    let b = this.encoded.get(s);
    if (b === undefined) {
      const start = this.pos;
      this.string(s);
      if (this.encoded.size >= STRING_CACHE) return this;
      b = Buffer.from(this.buf.subarray(start, this.pos));
      this.encoded.set(s, b);
      return this;
    }
    this.ensure(b.length);
    const buf = this.buf;
    let pos = this.pos;
    for (let i = 0; i < b.length; i++) buf[pos++] = b[i]!;
    this.pos = pos;
    return this;
  }

  bytes(b: Uint8Array): this {
    this.varint(b.length);
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
    return this;
  }

  /** Opens a length-delimited field; end() with the returned mark closes it. */
  begin(field: number): number {
    this.tag(field, LEN);
    this.ensure(1);
    return this.pos++;
  }

  end(mark: number): this {
    this.lengthAt(mark, this.pos - mark - 1);
    return this;
  }

  /** Writes `length` at `mark` (one byte reserved there), moving what follows when it needs more. */
  private lengthAt(mark: number, length: number): void {
    if (length < 128) {
      this.buf[mark] = length;
      return;
    }
    let size = 1;
    for (let v = length; v >= 128; v = Math.floor(v / 128)) size++;
    this.ensure(size - 1);
    this.buf.copyWithin(mark + size, mark + 1, this.pos);
    this.pos += size - 1;
    let pos = mark;
    let v = length;
    while (v >= 128) {
      this.buf[pos++] = (v % 128) | 128;
      v = Math.floor(v / 128);
    }
    this.buf[pos] = v;
  }

  /** A length-delimited field holding what `body` writes. */
  message(field: number, body: (w: this) => void): this {
    const mark = this.begin(field);
    body(this);
    return this.end(mark);
  }

  /** A packed repeated int64 field (nothing when empty). */
  packedInt(field: number, values: readonly number[]): this {
    if (values.length === 0) return this;
    const mark = this.begin(field);
    for (const v of values) this.int64(v);
    return this.end(mark);
  }

  /** The bytes written (a view: valid until the next write after reset). */
  view(): Buffer {
    return this.buf.subarray(0, this.pos);
  }

  /** A copy of the bytes written. */
  finish(): Uint8Array {
    return Uint8Array.prototype.slice.call(this.buf, 0, this.pos);
  }

  reset(): void {
    this.pos = 0;
  }
}
