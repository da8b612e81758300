// SPDX-License-Identifier: Apache-2.0
// The GGUF container format (ggml/docs/gguf.md in the llama.cpp source): constants and types
// shared by our reader and writer.

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
export const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;

export enum GgufValueType {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
}

/** Byte size of each fixed-size scalar value type. */
export const SCALAR_SIZE: Partial<Record<GgufValueType, number>> = {
  [GgufValueType.UINT8]: 1,
  [GgufValueType.INT8]: 1,
  [GgufValueType.UINT16]: 2,
  [GgufValueType.INT16]: 2,
  [GgufValueType.UINT32]: 4,
  [GgufValueType.INT32]: 4,
  [GgufValueType.FLOAT32]: 4,
  [GgufValueType.BOOL]: 1,
  [GgufValueType.UINT64]: 8,
  [GgufValueType.INT64]: 8,
  [GgufValueType.FLOAT64]: 8,
};

export type GgufScalar = number | bigint | boolean | string;

/** A metadata value with its GGUF type, so that a file can be rewritten exactly. */
export type GgufValue =
  | { type: Exclude<GgufValueType, GgufValueType.ARRAY>; value: GgufScalar }
  | {
      type: GgufValueType.ARRAY;
      itemType: Exclude<GgufValueType, GgufValueType.ARRAY>;
      value: GgufScalar[];
    };

/** ggml tensor types (enum ggml_type); only the ones with a known block layout are listed. */
export enum GgmlType {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  BF16 = 30,
}

/** Elements per block and bytes per block of each type (ggml's type_traits). */
export const GGML_BLOCK: Record<GgmlType, { elements: number; bytes: number }> = {
  [GgmlType.F32]: { elements: 1, bytes: 4 },
  [GgmlType.F16]: { elements: 1, bytes: 2 },
  [GgmlType.Q4_0]: { elements: 32, bytes: 18 },
  [GgmlType.Q4_1]: { elements: 32, bytes: 20 },
  [GgmlType.Q5_0]: { elements: 32, bytes: 22 },
  [GgmlType.Q5_1]: { elements: 32, bytes: 24 },
  [GgmlType.Q8_0]: { elements: 32, bytes: 34 },
  [GgmlType.Q8_1]: { elements: 32, bytes: 36 },
  [GgmlType.Q2_K]: { elements: 256, bytes: 84 },
  [GgmlType.Q3_K]: { elements: 256, bytes: 110 },
  [GgmlType.Q4_K]: { elements: 256, bytes: 144 },
  [GgmlType.Q5_K]: { elements: 256, bytes: 176 },
  [GgmlType.Q6_K]: { elements: 256, bytes: 210 },
  [GgmlType.Q8_K]: { elements: 256, bytes: 292 },
  [GgmlType.I8]: { elements: 1, bytes: 1 },
  [GgmlType.I16]: { elements: 1, bytes: 2 },
  [GgmlType.I32]: { elements: 1, bytes: 4 },
  [GgmlType.I64]: { elements: 1, bytes: 8 },
  [GgmlType.F64]: { elements: 1, bytes: 8 },
  [GgmlType.BF16]: { elements: 1, bytes: 2 },
};

export function ggmlTypeName(type: number): string {
  return GgmlType[type] ?? `type#${type}`;
}

export function isKnownGgmlType(type: number): type is GgmlType {
  return type in GGML_BLOCK;
}

/**
 * Bytes of a tensor of `type` with dimensions `dims` (ne[0] first, as GGUF stores them).
 * Throws when the innermost dimension is not a whole number of blocks.
 */
export function tensorByteSize(type: GgmlType, dims: readonly number[]): number {
  const block = GGML_BLOCK[type];
  const ne0 = dims[0] ?? 1;
  if (ne0 % block.elements !== 0) {
    throw new RangeError(
      `a ${ggmlTypeName(type)} row needs a multiple of ${block.elements} elements, got ${ne0}`,
    );
  }
  const rows = dims.slice(1).reduce((a, b) => a * b, 1);
  return (ne0 / block.elements) * block.bytes * rows;
}

export interface GgufTensorInfo {
  name: string;
  /** ne[0], ne[1], ... (innermost first, as ggml and GGUF store them) */
  dims: number[];
  type: GgmlType;
  /** offset of the tensor's data from the start of the data section */
  offset: number;
}

export function alignTo(value: number, alignment: number): number {
  return Math.ceil(value / alignment) * alignment;
}
