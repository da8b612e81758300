// SPDX-License-Identifier: Apache-2.0
// Deterministic random tensor data. Every tensor has its own generator seeded from the model seed
// and the tensor's name, so a tensor's bytes do not depend on which tensors precede it.
import { GgmlType, ggmlTypeName, tensorByteSize } from "../gguf/format.js";

/** xoshiro128** (Blackman and Vigna): fast, 32-bit, good enough for weights. */
export class Xoshiro128 {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  constructor(seed: number) {
    // splitmix32 expands one 32-bit seed into four non-zero state words.
    let x = seed >>> 0;
    const next = () => {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next() | 1;
  }

  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** uniform in [0, 1) */
  nextFloat(): number {
    return this.nextU32() / 4294967296;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** FNV-1a of the seed and a name: the per-tensor seed. */
export function tensorSeed(seed: number, name: string): number {
  let h = 0x811c9dc5 ^ (seed >>> 0);
  h = Math.imul(h, 0x01000193);
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** IEEE half from a float, round to nearest even; enough for weights (no NaN payloads). */
export function toHalf(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && half & 1)) half++;
    return sign | half;
  }
  let half = sign | (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  return half;
}

/** How a tensor's values are drawn. */
export type Init =
  /** uniform, zero mean, with the given standard deviation */
  | { kind: "uniform"; std: number }
  /** `center` plus uniform noise of the given standard deviation (norm weights) */
  | { kind: "around"; center: number; std: number }
  /** fixed values, for tensors whose content is defined (rope frequency factors) */
  | { kind: "values"; values: Float32Array };

const CHUNK_ELEMENTS = 1 << 20;
const SQRT3 = Math.sqrt(3);
// Standard deviation of the quantised integers we draw: Q8_0 uniform in [-127, 127],
// Q4_0 nibbles uniform in [1, 15] so that (q - 8) is symmetric around zero.
const Q8_STD = Math.sqrt((255 * 255 - 1) / 12);
const Q4_STD = Math.sqrt((15 * 15 - 1) / 12);

/**
 * Generates the bytes of a tensor of `type` and `dims` with values drawn as `init` says.
 * Quantised types are generated directly as blocks (random integers and a per-block scale that
 * gives the wanted spread), which is what a quantised random model is.
 */
export function* randomTensorData(
  type: GgmlType,
  dims: readonly number[],
  init: Init,
  seed: number,
): Generator<Uint8Array> {
  const count = dims.reduce((a, b) => a * b, 1);
  const rng = new Xoshiro128(seed);
  const value = (i: number): number => {
    switch (init.kind) {
      case "uniform":
        return (rng.nextFloat() * 2 - 1) * SQRT3 * init.std;
      case "around":
        return init.center + (rng.nextFloat() * 2 - 1) * SQRT3 * init.std;
      case "values":
        return init.values[i % init.values.length]!;
    }
  };
  if (init.kind === "values" && type !== GgmlType.F32) {
    throw new TypeError(`fixed values are written as F32 only, not ${ggmlTypeName(type)}`);
  }
  const std = init.kind === "values" ? 0 : init.std;
  switch (type) {
    case GgmlType.F32:
      for (let start = 0; start < count; start += CHUNK_ELEMENTS) {
        const n = Math.min(CHUNK_ELEMENTS, count - start);
        const out = new Float32Array(n);
        for (let i = 0; i < n; i++) out[i] = value(start + i);
        yield new Uint8Array(out.buffer);
      }
      return;
    case GgmlType.F16:
      for (let start = 0; start < count; start += CHUNK_ELEMENTS) {
        const n = Math.min(CHUNK_ELEMENTS, count - start);
        const out = new Uint16Array(n);
        for (let i = 0; i < n; i++) out[i] = toHalf(value(start + i));
        yield new Uint8Array(out.buffer);
      }
      return;
    case GgmlType.Q8_0: {
      const blocks = count / 32;
      const scale = toHalf(std / Q8_STD);
      const perChunk = CHUNK_ELEMENTS / 32;
      for (let b0 = 0; b0 < blocks; b0 += perChunk) {
        const n = Math.min(perChunk, blocks - b0);
        const out = Buffer.allocUnsafe(n * 34);
        for (let b = 0; b < n; b++) {
          const o = b * 34;
          out.writeUInt16LE(scale, o);
          for (let j = 0; j < 32; j += 4) {
            const r = rng.nextU32();
            for (let k = 0; k < 4; k++)
              out.writeInt8((((r >>> (8 * k)) & 0xff) % 255) - 127, o + 2 + j + k);
          }
        }
        yield out;
      }
      return;
    }
    case GgmlType.Q4_0: {
      const blocks = count / 32;
      const scale = toHalf(std / Q4_STD);
      const perChunk = CHUNK_ELEMENTS / 32;
      for (let b0 = 0; b0 < blocks; b0 += perChunk) {
        const n = Math.min(perChunk, blocks - b0);
        const out = Buffer.allocUnsafe(n * 18);
        for (let b = 0; b < n; b++) {
          const o = b * 18;
          out.writeUInt16LE(scale, o);
          for (let j = 0; j < 16; j += 4) {
            const r = rng.nextU32();
            for (let k = 0; k < 4; k++) {
              const byte = (r >>> (8 * k)) & 0xff;
              const lo = 1 + ((byte & 0x0f) % 15);
              const hi = 1 + ((byte >>> 4) % 15);
              out[o + 2 + j + k] = lo | (hi << 4);
            }
          }
        }
        yield out;
      }
      return;
    }
    default:
      throw new TypeError(
        `random data for ${ggmlTypeName(type)} is not implemented; use F32, F16, Q8_0 or Q4_0 (size ${tensorByteSize(type, dims)})`,
      );
  }
}
