/**
 * Element types. Block-quantized types follow ggml's exact block layouts so GGUF files load
 * without conversion:
 *   Q8_0: 32 values = f16 scale d + 32 × int8 q;         x = d·q            (34 bytes)
 *   Q4_0: 32 values = f16 scale d + 16 bytes of nibbles; x = d·(q − 8)      (18 bytes)
 *         byte j holds value j in its low nibble and value j+16 in its high nibble.
 *   Q4_1, Q5_0, Q5_1: see tensor/quant-legacy.ts (20, 22, 24 bytes).
 *   Q4_K, Q5_K, Q6_K: 256-value super-blocks with per-sub-block scales (layouts in quant-k.ts);
 *   Q8_K: 256 × int8 + f32 scale + sums, the activations K-quant matmuls multiply with.
 */
export type DType = 'f32' | 'f16' | 'bf16' | 'q8_0' | 'q4_0' | 'q4_1' | 'q5_0' | 'q5_1' | 'q4_k' | 'q5_k' | 'q6_k' | 'q8_k';

export interface DTypeInfo {
  readonly name: DType;
  /** Values per block (1 for plain types). */
  readonly blockSize: number;
  /** Bytes per block. */
  readonly blockBytes: number;
  /** The ggml_type number used in GGUF tensor infos. */
  readonly ggmlType: number;
}

export const DTYPES: Readonly<Record<DType, DTypeInfo>> = {
  f32: { name: 'f32', blockSize: 1, blockBytes: 4, ggmlType: 0 },
  f16: { name: 'f16', blockSize: 1, blockBytes: 2, ggmlType: 1 },
  q4_0: { name: 'q4_0', blockSize: 32, blockBytes: 18, ggmlType: 2 },
  q4_1: { name: 'q4_1', blockSize: 32, blockBytes: 20, ggmlType: 3 },
  q5_0: { name: 'q5_0', blockSize: 32, blockBytes: 22, ggmlType: 6 },
  q5_1: { name: 'q5_1', blockSize: 32, blockBytes: 24, ggmlType: 7 },
  q8_0: { name: 'q8_0', blockSize: 32, blockBytes: 34, ggmlType: 8 },
  q4_k: { name: 'q4_k', blockSize: 256, blockBytes: 144, ggmlType: 12 },
  q5_k: { name: 'q5_k', blockSize: 256, blockBytes: 176, ggmlType: 13 },
  q6_k: { name: 'q6_k', blockSize: 256, blockBytes: 210, ggmlType: 14 },
  q8_k: { name: 'q8_k', blockSize: 256, blockBytes: 292, ggmlType: 15 },
  bf16: { name: 'bf16', blockSize: 1, blockBytes: 2, ggmlType: 30 },
};

/** ggml_type numbers we know by name but cannot compute with yet (for clear error messages). */
export const GGML_TYPE_NAMES: Readonly<Record<number, string>> = {
  0: 'F32', 1: 'F16', 2: 'Q4_0', 3: 'Q4_1', 6: 'Q5_0', 7: 'Q5_1', 8: 'Q8_0', 9: 'Q8_1',
  10: 'Q2_K', 11: 'Q3_K', 12: 'Q4_K', 13: 'Q5_K', 14: 'Q6_K', 15: 'Q8_K', 16: 'IQ2_XXS',
  17: 'IQ2_XS', 18: 'IQ3_XXS', 19: 'IQ1_S', 20: 'IQ4_NL', 21: 'IQ3_S', 22: 'IQ2_S', 23: 'IQ4_XS',
  24: 'I8', 25: 'I16', 26: 'I32', 27: 'I64', 28: 'F64', 29: 'IQ1_M', 30: 'BF16', 34: 'TQ1_0',
  35: 'TQ2_0',
};

const BY_GGML_TYPE = new Map<number, DType>(
  Object.values(DTYPES).map((info) => [info.ggmlType, info.name]),
);

/** The DType for a ggml_type number, or undefined when we do not support it. */
export function dtypeFromGgml(ggmlType: number): DType | undefined {
  return BY_GGML_TYPE.get(ggmlType);
}

export function isQuantized(dtype: DType): boolean {
  return DTYPES[dtype].blockSize > 1;
}

/** Bytes taken by `count` values (count must be a multiple of the block size). */
export function byteSize(dtype: DType, count: number): number {
  const { blockSize, blockBytes } = DTYPES[dtype];
  if (count % blockSize !== 0) {
    throw new RangeError(`${dtype}: ${count} values is not a multiple of the block size ${blockSize}`);
  }
  return (count / blockSize) * blockBytes;
}
