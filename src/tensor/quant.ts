/**
 * Reference quantization and dequantization of ggml blocks (plain TS; the kernels' oracle).
 * Weights are quantized as ggml's reference quantizer does (C roundf: half away from zero);
 * activations for quantized matmuls are quantized as ggml's SIMD path does (scale 127/amax,
 * round to nearest-even), because that is what llama.cpp computes with at run time.
 */
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from './f16.js';
import { DTYPES, type DType } from './dtype.js';
import { dequantizeK, quantizeQ4_K, quantizeQ5_K, quantizeQ6_K, quantizeQ8_K } from './quant-k.js';
import { RequestError } from '../errors.js';
import { dequantizeLegacy, quantizeLegacy } from './quant-legacy.js';

const QK = 32;

/** Round half to even, like _mm256_round_ps(_MM_ROUND_NEAREST) and numpy's round. */
export function roundEven(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Round half away from zero, like C roundf. */
function roundAway(x: number): number {
  return Math.sign(x) * Math.round(Math.abs(x));
}

/** Quantize n floats (n a multiple of 32) into Q8_0 blocks. `activation` selects ggml's run-time rounding. */
export function quantizeQ8_0(src: ArrayLike<number>, n: number, dst: Uint8Array, activation = false): void {
  const view = new DataView(dst.buffer, dst.byteOffset, dst.byteLength);
  for (let b = 0; b < n / QK; b++) {
    let amax = 0;
    for (let j = 0; j < QK; j++) amax = Math.max(amax, Math.abs(src[b * QK + j]!));
    const d = amax / 127;
    const id = activation ? (amax ? 127 / amax : 0) : d ? 1 / d : 0;
    const base = b * 34;
    view.setUint16(base, f32ToF16(d), true);
    for (let j = 0; j < QK; j++) {
      const v = Math.fround(src[b * QK + j]! * id);
      view.setInt8(base + 2 + j, activation ? roundEven(v) : roundAway(v));
    }
  }
}

/** Quantize n floats (n a multiple of 32) into Q4_0 blocks, as ggml's reference quantizer. */
export function quantizeQ4_0(src: ArrayLike<number>, n: number, dst: Uint8Array): void {
  const view = new DataView(dst.buffer, dst.byteOffset, dst.byteLength);
  for (let b = 0; b < n / QK; b++) {
    let amax = 0;
    let max = 0;
    for (let j = 0; j < QK; j++) {
      const v = src[b * QK + j]!;
      if (Math.abs(v) > amax) {
        amax = Math.abs(v);
        max = v;
      }
    }
    const d = Math.fround(max / -8);
    const id = d ? Math.fround(1 / d) : 0;
    const base = b * 18;
    view.setUint16(base, f32ToF16(d), true);
    for (let j = 0; j < QK / 2; j++) {
      const x0 = Math.min(15, Math.trunc(Math.fround(src[b * QK + j]! * id) + 8.5));
      const x1 = Math.min(15, Math.trunc(Math.fround(src[b * QK + j + 16]! * id) + 8.5));
      view.setUint8(base + 2 + j, x0 | (x1 << 4));
    }
  }
}

/** Decode `count` values of any dtype starting at value index `start` of `bytes` into `out`. */
export function dequantize(dtype: DType, bytes: Uint8Array, start: number, count: number, out: Float32Array, outOffset = 0): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (dtype) {
    case 'f32':
      if ((bytes.byteOffset + start * 4) % 4 === 0) {
        // aligned: one copy (little-endian hosts, as GGUF)
        out.set(new Float32Array(bytes.buffer, bytes.byteOffset + start * 4, count), outOffset);
        return;
      }
      for (let i = 0; i < count; i++) out[outOffset + i] = view.getFloat32((start + i) * 4, true);
      return;
    case 'f16':
      for (let i = 0; i < count; i++) out[outOffset + i] = f16ToF32(view.getUint16((start + i) * 2, true));
      return;
    case 'bf16':
      for (let i = 0; i < count; i++) out[outOffset + i] = bf16ToF32(view.getUint16((start + i) * 2, true));
      return;
    case 'q8_0':
    case 'q4_0': {
      const blockBytes = DTYPES[dtype].blockBytes;
      for (let i = 0; i < count; i++) {
        const idx = start + i;
        const base = Math.floor(idx / QK) * blockBytes;
        const j = idx % QK;
        const d = f16ToF32(view.getUint16(base, true));
        if (dtype === 'q8_0') {
          out[outOffset + i] = d * view.getInt8(base + 2 + j);
        } else {
          const byte = view.getUint8(base + 2 + (j % 16));
          out[outOffset + i] = d * ((j < 16 ? byte & 0xf : byte >> 4) - 8);
        }
      }
      return;
    }
    case 'q4_1':
    case 'q5_0':
    case 'q5_1':
      return dequantizeLegacy(dtype, bytes, start, count, out, outOffset);
    case 'q4_k':
    case 'q5_k':
    case 'q6_k':
    case 'q8_k':
      return dequantizeK(dtype, bytes, start, count, out, outOffset);
  }
}

/** GGUF's general.file_type (llama.cpp's LLAMA_FTYPE_*) for a model mostly of that type. */
export const GGUF_FILE_TYPE = {
  f32: 0, f16: 1, q4_0: 2, q4_1: 3, q8_0: 7, q5_0: 8, q5_1: 9, bf16: 32,
  // llama.cpp's MOSTLY_Q4_K_S .. MOSTLY_Q6_K; files of plain q4_k / q5_k weights carry the _S number
  q4_k_s: 14, q4_k_m: 15, q5_k_s: 16, q5_k_m: 17, q4_k: 14, q5_k: 16, q6_k: 18,
} as const;

/** Write f32 `values` into `dst` as `dtype` (f32, f16, a 32-block type or a K-quant; the quantized types with ggml's rounding). */
export function encodeValues(dtype: DType, values: Float32Array, dst: Uint8Array): void {
  switch (dtype) {
    case 'f32':
      dst.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength)); // little-endian hosts, as GGUF
      return;
    case 'f16': {
      const view = new DataView(dst.buffer, dst.byteOffset, dst.byteLength);
      for (let i = 0; i < values.length; i++) view.setUint16(2 * i, f32ToF16(values[i]!), true);
      return;
    }
    case 'bf16': {
      const view = new DataView(dst.buffer, dst.byteOffset, dst.byteLength);
      for (let i = 0; i < values.length; i++) view.setUint16(2 * i, f32ToBf16(values[i]!), true);
      return;
    }
    case 'q8_0':
      return quantizeQ8_0(values, values.length, dst);
    case 'q4_0':
      return quantizeQ4_0(values, values.length, dst);
    case 'q4_1':
    case 'q5_0':
    case 'q5_1':
      return quantizeLegacy(dtype, values, values.length, dst);
    case 'q4_k':
      return quantizeQ4_K(values, values.length, dst);
    case 'q5_k':
      return quantizeQ5_K(values, values.length, dst);
    case 'q6_k':
      return quantizeQ6_K(values, values.length, dst);
    case 'q8_k':
      return quantizeQ8_K(values, values.length, dst);
    default:
      throw new RequestError('invalid_dtype', 'dtype', `cannot write ${dtype} values`);
  }
}
