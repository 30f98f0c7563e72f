/**
 * ggml's "legacy" 32-value block types besides Q8_0/Q4_0: Q4_1, Q5_0 and Q5_1 (plain TS; the
 * kernels' oracle). Block layouts, exactly as ggml stores them (little-endian):
 *
 *   Q4_1: f16 d, f16 m, 16 bytes of nibbles;               x = d·q + m,    q in 0..15  (20 bytes)
 *   Q5_0: f16 d, u32 qh, 16 bytes of nibbles;              x = d·(q − 16), q in 0..31  (22 bytes)
 *   Q5_1: f16 d, f16 m, u32 qh, 16 bytes of nibbles;       x = d·q + m,    q in 0..31  (24 bytes)
 *
 * As in Q4_0, nibble byte j holds value j (low nibble) and value j + 16 (high nibble); for the
 * 5-bit types bit j of qh is the fifth bit of value j.
 *
 * Weights are quantized as ggml's reference quantizers (quantize_row_q4_1_ref, ...): f32
 * arithmetic, then a truncating cast of v + 0.5 (v + 16.5 for Q5_0). At run time ggml multiplies
 * Q5_0 weights with activations quantized to Q8_0 and Q4_1/Q5_1 weights with Q8_1 activations:
 *
 *   Q8_1: f16 d, f16 s, 32 × i8 q (36 bytes), d and q as Q8_0's activation rounding, and
 *         s = f16(d·Σq) with the f32 d (before its f16 rounding), so that a block's dot product is
 *         d_w·d_x·Σ q_w·q_x + m_w·s_x.
 */
import { f16ToF32, f32ToF16 } from './f16.js';
import { quantizeQ8_0 } from './quant.js';
import { DTYPES, type DType } from './dtype.js';

export type LegacyType = 'q4_1' | 'q5_0' | 'q5_1';

const QK = 32;
/** Bytes of one Q8_1 activation block: f16 d, f16 s, 32 × i8. */
export const Q8_1_BLOCK_BYTES = 36;
const fround = Math.fround;

export function isLegacyType(dtype: DType): dtype is LegacyType {
  return dtype === 'q4_1' || dtype === 'q5_0' || dtype === 'q5_1';
}

/** Byte offsets inside one block: of the min m (−1: none), of qh (−1: none), of the nibbles. */
function layout(dtype: LegacyType): { m: number; qh: number; qs: number } {
  switch (dtype) {
    case 'q4_1':
      return { m: 2, qh: -1, qs: 4 };
    case 'q5_0':
      return { m: -1, qh: 2, qs: 6 };
    case 'q5_1':
      return { m: 2, qh: 4, qs: 8 };
  }
}

/** Smallest and largest of block b (C's FLT_MAX / −FLT_MAX start values and strict compares). */
function blockRange(src: ArrayLike<number>, b: number): { min: number; max: number } {
  let min = 3.4028234663852886e38;
  let max = -3.4028234663852886e38;
  for (let j = 0; j < QK; j++) {
    const v = src[b * QK + j]!;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return { min, max };
}

/** The value of block b with the largest magnitude, sign kept (the first one on ties), as ggml's q4_0/q5_0. */
function blockSignedMax(src: ArrayLike<number>, b: number): number {
  let amax = 0;
  let max = 0;
  for (let j = 0; j < QK; j++) {
    const v = src[b * QK + j]!;
    if (amax < Math.abs(v)) {
      amax = Math.abs(v);
      max = v;
    }
  }
  return max;
}

/** Write 32 quants (0..15 or 0..31) into a block's nibbles and, for 5-bit types, its qh. */
function packQuants(view: DataView, base: number, dtype: LegacyType, q: Uint8Array): void {
  const { qh, qs } = layout(dtype);
  let high = 0;
  for (let j = 0; j < QK / 2; j++) {
    view.setUint8(base + qs + j, (q[j]! & 0x0f) | ((q[j + 16]! & 0x0f) << 4));
    high |= ((q[j]! >> 4) & 1) << j;
    high |= ((q[j + 16]! >> 4) & 1) << (j + 16);
  }
  if (qh >= 0) view.setUint32(base + qh, high >>> 0, true);
}

/** Quantize n floats (n a multiple of 32) into `dtype` blocks, bit for bit as ggml's reference quantizer. */
export function quantizeLegacy(dtype: LegacyType, src: ArrayLike<number>, n: number, dst: Uint8Array): void {
  const view = new DataView(dst.buffer, dst.byteOffset, dst.byteLength);
  const blockBytes = DTYPES[dtype].blockBytes;
  const q = new Uint8Array(QK);
  for (let b = 0; b < n / QK; b++) {
    const base = b * blockBytes;
    if (dtype === 'q5_0') {
      // symmetric: the signed extreme maps to −16, values to round(x/d) + 16 clamped to 31
      const d = fround(blockSignedMax(src, b) / -16);
      const id = d ? fround(1 / d) : 0;
      view.setUint16(base, f32ToF16(d), true);
      for (let j = 0; j < QK; j++) q[j] = Math.min(31, Math.trunc(fround(fround(src[b * QK + j]! * id) + 16.5)));
    } else {
      // min + scale: [min, max] onto 0..levels
      const levels = dtype === 'q4_1' ? 15 : 31;
      const { min, max } = blockRange(src, b);
      const d = fround(fround(max - min) / levels);
      const id = d ? fround(1 / d) : 0;
      view.setUint16(base, f32ToF16(d), true);
      view.setUint16(base + 2, f32ToF16(min), true);
      for (let j = 0; j < QK; j++) {
        const v = Math.trunc(fround(fround(fround(src[b * QK + j]! - min) * id) + 0.5));
        q[j] = dtype === 'q4_1' ? Math.min(15, v) : v; // ggml clamps q4_1 only
      }
    }
    packQuants(view, base, dtype, q);
  }
}

/** The 32 quants of the block at byte `base` (unsigned: 0..15 or 0..31) into q. */
function unpackQuants(view: DataView, base: number, dtype: LegacyType, q: Uint8Array): void {
  const { qh, qs } = layout(dtype);
  const high = qh >= 0 ? view.getUint32(base + qh, true) : 0;
  for (let j = 0; j < QK / 2; j++) {
    const byte = view.getUint8(base + qs + j);
    q[j] = (byte & 0x0f) | (((high >>> j) & 1) << 4);
    q[j + 16] = (byte >> 4) | (((high >>> (j + 16)) & 1) << 4);
  }
}

/** One block's scale d and min m (Q5_0 has no m: its offset is applied as q − 16). */
function blockScales(view: DataView, base: number, dtype: LegacyType): { d: number; m: number } {
  const d = f16ToF32(view.getUint16(base, true));
  const { m } = layout(dtype);
  return { d, m: m >= 0 ? f16ToF32(view.getUint16(base + m, true)) : 0 };
}

/**
 * Decode `count` values starting at value index `start` into `out`, with ggml's f32 arithmetic:
 * d·(q − 16) for Q5_0, f32(d·q) + m for Q4_1/Q5_1 (what dequantize_row_* computes).
 */
export function dequantizeLegacy(dtype: LegacyType, bytes: Uint8Array, start: number, count: number, out: Float32Array, outOffset = 0): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const blockBytes = DTYPES[dtype].blockBytes;
  const q = new Uint8Array(QK);
  for (let i = 0; i < count; ) {
    const b = Math.floor((start + i) / QK);
    const base = b * blockBytes;
    const { d, m } = blockScales(view, base, dtype);
    unpackQuants(view, base, dtype, q);
    for (let j = (start + i) % QK; j < QK && i < count; j++, i++) {
      out[outOffset + i] = dtype === 'q5_0' ? (q[j]! - 16) * d : fround(q[j]! * d) + m;
    }
  }
}

/**
 * Quantize n activations (n a multiple of 32) into Q8_1 blocks as ggml's CPU path does
 * (quantize_row_q8_1): d and q exactly as the Q8_0 activation rounding (tensor/quant.ts), and
 * s = f16(f32(d·Σq)) with d the f32 scale amax/127.
 */
export function quantizeQ8_1(src: ArrayLike<number>, n: number, dst: Uint8Array): void {
  const q8 = new Uint8Array(34);
  const q8View = new DataView(q8.buffer);
  const view = new DataView(dst.buffer, dst.byteOffset, dst.byteLength);
  const block = new Float32Array(QK);
  for (let b = 0; b < n / QK; b++) {
    for (let j = 0; j < QK; j++) block[j] = src[b * QK + j]!;
    quantizeQ8_0(block, QK, q8, true);
    let amax = 0;
    let sum = 0;
    for (let j = 0; j < QK; j++) {
      amax = Math.max(amax, Math.abs(block[j]!));
      sum += q8View.getInt8(2 + j);
    }
    const base = b * Q8_1_BLOCK_BYTES;
    view.setUint16(base, q8View.getUint16(0, true), true);
    view.setUint16(base + 2, f32ToF16(fround(fround(amax / 127) * sum)), true);
    dst.set(q8.subarray(2), base + 4);
  }
}

/**
 * Σ_k w[k]·x[k] for one Q4_1/Q5_1 weight row (K values from byte `wOffset` of `w`) against a Q8_1
 * activation row `x`, by ggml's formula: per block d_w·d_x·Σ q_w·q_x + m_w·s_x, where s_x is the
 * block's f16 s (not d_x·Σq_x). Summed in float64; ggml sums in f32, in another order.
 */
export function dotQ8_1(dtype: 'q4_1' | 'q5_1', w: Uint8Array, wOffset: number, x: Uint8Array, K: number): number {
  const wView = new DataView(w.buffer, w.byteOffset + wOffset, w.byteLength - wOffset);
  const xView = new DataView(x.buffer, x.byteOffset, x.byteLength);
  const blockBytes = DTYPES[dtype].blockBytes;
  const q = new Uint8Array(QK);
  let sum = 0;
  for (let b = 0; b < K / QK; b++) {
    const base = b * blockBytes;
    const { d, m } = blockScales(wView, base, dtype);
    unpackQuants(wView, base, dtype, q);
    const xb = b * Q8_1_BLOCK_BYTES;
    const dx = f16ToF32(xView.getUint16(xb, true));
    const sx = f16ToF32(xView.getUint16(xb + 2, true));
    let isum = 0;
    for (let j = 0; j < QK; j++) isum += q[j]! * xView.getInt8(xb + 4 + j);
    sum += d * dx * isum + m * sx;
  }
  return sum;
}
