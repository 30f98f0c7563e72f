/**
 * ggml's K-quants: 256-value super-blocks with per-sub-block scales (plain TS; the kernels' oracle).
 *
 * Block layouts (little-endian, exactly as GGUF stores them):
 *   Q4_K (144 bytes): f16 d, f16 dmin, 12 bytes of 6-bit scales and mins for 8 sub-blocks of 32,
 *                     128 bytes of nibbles.                x = d·sc_j·q − dmin·m_j,  q in 0..15
 *   Q5_K (176 bytes): f16 d, f16 dmin, 12 bytes of scales/mins, 32 bytes qh (the 5th bits),
 *                     128 bytes of low nibbles.            x = d·sc_j·q − dmin·m_j,  q in 0..31
 *   Q6_K (210 bytes): 128 bytes ql (low nibbles), 64 bytes qh (2 high bits each), 16 × i8 scales
 *                     for sub-blocks of 16, f16 d.         x = d·sc_j·(q − 32),      q in 0..63
 *   Q8_K (292 bytes): f32 d, 256 × i8 q, 16 × i16 sums of q over groups of 16.      x = d·q
 *
 * Value order inside a super-block: Q4_K/Q5_K keep 64 values per 32 bytes of nibbles (byte l holds
 * value l in its low nibble and value l + 32 in its high one; Q5_K's qh byte l holds the 5th bit of
 * value 64i + l in bit 2i and of value 64i + 32 + l in bit 2i + 1). Q6_K keeps 128 values per 64
 * bytes of ql and 32 of qh: ql byte l holds values l (low) and l + 64 (high), byte l + 32 holds
 * l + 32 and l + 96; qh byte l holds the high bits of l, l + 32, l + 64, l + 96 in bit pairs 0..3.
 * The 6-bit scales/mins of Q4_K/Q5_K: bytes 0..3 hold sc0..3 (low 6 bits), bytes 4..7 m0..3, bytes
 * 8..11 the low nibbles of sc4..7 (low half) and m4..7 (high half); the top 2 bits of bytes 0..3 and
 * 4..7 are the high bits of sc4..7 and m4..7.
 *
 * The quantizers reproduce ggml's reference quantizers without an importance matrix
 * (quantize_row_q{4,5,6}_K_ref) bit for bit: every float operation is rounded to f32 in C's order
 * (Math.fround), and C's nearest_int (add 1.5·2^23 and read the mantissa) is emulated exactly.
 * Q8_K is what ggml's CPU backend quantizes activations to before a K-quant dot product.
 */
import { f16ToF32, f32ToF16 } from './f16.js';
import type { DType } from './dtype.js';

export const QK_K = 256;

export type KQuantType = 'q4_k' | 'q5_k' | 'q6_k';

/** Is `dtype` a K-quant weight type (the ones computed on against Q8_K activations)? */
export function isKQuant(dtype: DType): dtype is KQuantType {
  return dtype === 'q4_k' || dtype === 'q5_k' || dtype === 'q6_k';
}

const BLOCK_BYTES = { q4_k: 144, q5_k: 176, q6_k: 210, q8_k: 292 } as const;

const f = Math.fround;
/** ggml's GROUP_MAX_EPS (1e-15f): below it a group counts as all zero. */
const GROUP_MAX_EPS = f(1e-15);
const F32_0_1 = f(0.1);

/** 1.5·2^52: an f64 plus this, minus this, is that f64 rounded to an integer, halves to even. */
const ROUND_F64 = 6755399441055744;
const nearestScratch = new Float32Array(1);
const nearestBits = new Int32Array(nearestScratch.buffer);

/**
 * C's nearest_int(fval) for an f32 value: fval + 1.5·2^23 rounded to f32, its low mantissa bits
 * read back as an integer. That is round-half-even where |fval| < 2^22, and well-defined garbage
 * beyond (reproduced, since ggml's asserts are compiled out).
 */
function nearestInt(v: number): number {
  if (v >= -4194303 && v <= 4194303) return v + ROUND_F64 - ROUND_F64;
  nearestScratch[0] = v + 12582912;
  return (nearestBits[0]! & 0x007fffff) - 0x00400000;
}

const clamp = (v: number, lo: number, hi: number): number => (v < lo ? lo : v > hi ? hi : v);

// ---- scale/min search (ggml's make_qkx2_quants and make_qx_quants) ----------------------------

/** Work arrays of one super-block's scale search, reused (the quantizers are synchronous). */
const scratch = {
  xm: new Float32Array(32),
  weights: new Float32Array(32),
  Laux: new Uint8Array(32),
  scales: new Float32Array(8),
  mins: new Float32Array(8),
  fit: new Float32Array(2),
  ls: new Uint8Array(8),
  lm: new Uint8Array(8),
};

/**
 * Fit x[off..off+n) ≈ scale·L − min with L in 0..nmax, weighted least squares over nstep+1 trial
 * scales (ggml's make_qkx2_quants). Writes L[off..] and returns [scale, min] (min ≥ 0, subtracted).
 */
function makeQkx2Quants(
  n: number, nmax: number, x: Float32Array, off: number, weights: Float32Array, L: Uint8Array, Laux: Uint8Array,
  rmin: number, rdelta: number, nstep: number, useMad: boolean, out: Float32Array,
): void {
  let min = x[off]!;
  let max = x[off]!;
  let sumW = weights[0]!;
  let sumX = f(sumW * x[off]!);
  for (let i = 1; i < n; i++) {
    const xi = x[off + i]!;
    if (xi < min) min = xi;
    if (xi > max) max = xi;
    const w = weights[i]!;
    sumW = f(sumW + w);
    sumX = f(sumX + f(w * xi));
  }
  if (min > 0) min = 0;
  if (max === min) {
    L.fill(0, off, off + n);
    out[0] = 0;
    out[1] = -min;
    return;
  }
  // x − min, kept while min stays (the trials below try 21 scales on it)
  const xm = scratch.xm;
  for (let i = 0; i < n; i++) xm[i] = f(x[off + i]! - min);
  let iscale = f(nmax / f(max - min));
  let scale = f(1 / iscale);
  let bestError = 0;
  for (let i = 0; i < n; i++) {
    const l = clamp(nearestInt(f(iscale * xm[i]!)), 0, nmax);
    L[off + i] = l;
    let diff = f(f(f(scale * l) + min) - x[off + i]!);
    diff = useMad ? Math.abs(diff) : f(diff * diff);
    bestError = f(bestError + f(weights[i]! * diff));
  }
  if (nstep < 1) {
    out[0] = scale;
    out[1] = -min;
    return;
  }
  for (let is = 0; is <= nstep; is++) {
    // min is the best fit so far, not the data's minimum, once a trial has won (as in ggml)
    iscale = f(f(f(rmin + f(rdelta * is)) + nmax) / f(max - min));
    let sumL = 0;
    let sumL2 = 0;
    let sumXL = 0;
    for (let i = 0; i < n; i++) {
      let l = nearestInt(f(iscale * xm[i]!));
      l = l < 0 ? 0 : l > nmax ? nmax : l;
      Laux[i] = l;
      const wl = f(weights[i]! * l);
      sumL = f(sumL + wl);
      sumL2 = f(sumL2 + f(wl * l));
      sumXL = f(sumXL + f(wl * x[off + i]!));
    }
    const D = f(f(sumW * sumL2) - f(sumL * sumL));
    if (D > 0) {
      let thisScale = f(f(f(sumW * sumXL) - f(sumX * sumL)) / D);
      let thisMin = f(f(f(sumL2 * sumX) - f(sumL * sumXL)) / D);
      if (thisMin > 0) {
        thisMin = 0;
        thisScale = f(sumXL / sumL2);
      }
      let curError = 0;
      for (let i = 0; i < n; i++) {
        let diff = f(f(f(thisScale * Laux[i]!) + thisMin) - x[off + i]!);
        diff = useMad ? Math.abs(diff) : f(diff * diff);
        curError = f(curError + f(weights[i]! * diff));
      }
      if (curError < bestError) {
        for (let i = 0; i < n; i++) L[off + i] = Laux[i]!;
        bestError = curError;
        scale = thisScale;
        if (thisMin !== min) {
          min = thisMin;
          for (let i = 0; i < n; i++) xm[i] = f(x[off + i]! - min);
        }
      }
    }
  }
  out[0] = scale;
  out[1] = -min;
}

/**
 * Fit x[off..off+n) ≈ scale·(L − nmax) with L in 0..2·nmax−1, weighted by x² and refined over 18
 * trial scales (ggml's make_qx_quants with rmse_type 1 and no importance weights). Returns the scale.
 */
function makeQxQuants(n: number, nmax: number, x: Float32Array, off: number, L: Uint8Array): number {
  let max = 0;
  let amax = 0;
  for (let i = 0; i < n; i++) {
    const ax = Math.abs(x[off + i]!);
    if (ax > amax) {
      amax = ax;
      max = x[off + i]!;
    }
  }
  if (amax < GROUP_MAX_EPS) {
    L.fill(0, off, off + n);
    return 0;
  }
  let iscale = f(-nmax / max);
  let sumLX = 0;
  let sumL2 = 0;
  for (let i = 0; i < n; i++) {
    const xi = x[off + i]!;
    const l = clamp(nearestInt(f(iscale * xi)), -nmax, nmax - 1);
    L[off + i] = l + nmax;
    const w = f(xi * xi);
    sumLX = f(sumLX + f(f(w * xi) * l));
    sumL2 = f(sumL2 + f(f(w * l) * l));
  }
  let scale = sumL2 ? f(sumLX / sumL2) : 0;
  let best = f(scale * sumLX);
  for (let is = -9; is <= 9; is++) {
    if (is === 0) continue;
    iscale = f(-f(nmax + f(F32_0_1 * is)) / max);
    sumLX = 0;
    sumL2 = 0;
    for (let i = 0; i < n; i++) {
      const xi = x[off + i]!;
      const l = clamp(nearestInt(f(iscale * xi)), -nmax, nmax - 1);
      const w = f(xi * xi);
      sumLX = f(sumLX + f(f(w * xi) * l));
      sumL2 = f(sumL2 + f(f(w * l) * l));
    }
    if (sumL2 > 0 && f(sumLX * sumLX) > f(best * sumL2)) {
      for (let i = 0; i < n; i++) L[off + i] = nmax + clamp(nearestInt(f(iscale * x[off + i]!)), -nmax, nmax - 1);
      scale = f(sumLX / sumL2);
      best = f(scale * sumLX);
    }
  }
  return scale;
}

// ---- 6-bit scales and mins of Q4_K / Q5_K -----------------------------------------------------

/** Sub-block j's 6-bit scale from the 12 scale bytes at q[base..]. */
export function kScale(q: Uint8Array, base: number, j: number): number {
  return j < 4 ? q[base + j]! & 63 : (q[base + j + 4]! & 0xf) | ((q[base + j - 4]! >> 6) << 4);
}

/** Sub-block j's 6-bit min from the 12 scale bytes at q[base..]. */
export function kMin(q: Uint8Array, base: number, j: number): number {
  return j < 4 ? q[base + j + 4]! & 63 : (q[base + j + 4]! >> 4) | ((q[base + j]! >> 6) << 4);
}

/** Pack 8 six-bit scales and mins (already clamped to 0..63) into 12 bytes at q[base..]. */
function packScalesMins(q: Uint8Array, base: number, ls: Uint8Array, lm: Uint8Array): void {
  for (let j = 0; j < 8; j++) {
    if (j < 4) {
      q[base + j] = ls[j]!;
      q[base + j + 4] = lm[j]!;
    } else {
      q[base + j + 4] = (ls[j]! & 0xf) | ((lm[j]! & 0xf) << 4);
      q[base + j - 4]! |= (ls[j]! >> 4) << 6;
      q[base + j]! |= (lm[j]! >> 4) << 6;
    }
  }
}

// ---- quantizers -------------------------------------------------------------------------------

/**
 * The shared part of Q4_K and Q5_K: per sub-block of 32 a scale/min fit, the 8 scales and mins
 * quantized to 6 bits against two f16 super-block scales, then the values requantized with the
 * rounded scales. Writes d, dmin and the scales into the block at dst[base..] and the quants into L (0..nmax).
 */
function quantizeScaleMinBlock(x: Float32Array, nmax: number, rmin: number, nstep: number, dst: Uint8Array, view: DataView, base: number, L: Uint8Array): void {
  const { weights, Laux, scales, mins, fit, ls, lm } = scratch;
  let maxScale = 0;
  let maxMin = 0;
  for (let j = 0; j < 8; j++) {
    let sumX2 = 0;
    for (let l = 0; l < 32; l++) sumX2 = f(sumX2 + f(x[32 * j + l]! * x[32 * j + l]!));
    const avX = f(Math.sqrt(f(sumX2 / 32)));
    for (let l = 0; l < 32; l++) weights[l] = f(avX + Math.abs(x[32 * j + l]!));
    makeQkx2Quants(32, nmax, x, 32 * j, weights, L, Laux, rmin, F32_0_1, nstep, false, fit);
    scales[j] = fit[0]!;
    mins[j] = fit[1]!;
    if (scales[j]! > maxScale) maxScale = scales[j]!;
    if (mins[j]! > maxMin) maxMin = mins[j]!;
  }
  const invScale = maxScale > 0 ? f(63 / maxScale) : 0;
  const invMin = maxMin > 0 ? f(63 / maxMin) : 0;
  for (let j = 0; j < 8; j++) {
    ls[j] = Math.min(63, nearestInt(f(invScale * scales[j]!)) & 0xff); // C stores into a uint8_t first
    lm[j] = Math.min(63, nearestInt(f(invMin * mins[j]!)) & 0xff);
  }
  packScalesMins(dst, base + 4, ls, lm);
  const dBits = f32ToF16(f(maxScale / 63));
  const dminBits = f32ToF16(f(maxMin / 63));
  view.setUint16(base, dBits, true);
  view.setUint16(base + 2, dminBits, true);
  const d = f16ToF32(dBits);
  const dmin = f16ToF32(dminBits);
  for (let j = 0; j < 8; j++) {
    const dj = f(d * kScale(dst, base + 4, j));
    if (!dj) continue; // keeps the fit's L, as ggml does
    const mj = f(dmin * kMin(dst, base + 4, j));
    for (let i = 0; i < 32; i++) L[32 * j + i] = clamp(nearestInt(f(f(x[32 * j + i]! + mj) / dj)), 0, nmax);
  }
}

/** Quantize n floats (n a multiple of 256) into Q4_K blocks, as ggml's quantize_row_q4_K_ref. */
export function quantizeQ4_K(src: ArrayLike<number>, n: number, dst: Uint8Array): void {
  const view = new DataView(dst.buffer, dst.byteOffset, dst.byteLength);
  const x = new Float32Array(QK_K);
  const L = new Uint8Array(QK_K);
  for (let b = 0; b < n / QK_K; b++) {
    for (let i = 0; i < QK_K; i++) x[i] = src[b * QK_K + i]!;
    const base = b * BLOCK_BYTES.q4_k;
    quantizeScaleMinBlock(x, 15, -1, 20, dst, view, base, L);
    for (let j = 0; j < 4; j++) {
      for (let l = 0; l < 32; l++) dst[base + 16 + 32 * j + l] = L[64 * j + l]! | (L[64 * j + l + 32]! << 4);
    }
  }
}

/** Quantize n floats (n a multiple of 256) into Q5_K blocks, as ggml's quantize_row_q5_K_ref. */
export function quantizeQ5_K(src: ArrayLike<number>, n: number, dst: Uint8Array): void {
  const view = new DataView(dst.buffer, dst.byteOffset, dst.byteLength);
  const x = new Float32Array(QK_K);
  const L = new Uint8Array(QK_K);
  for (let b = 0; b < n / QK_K; b++) {
    for (let i = 0; i < QK_K; i++) x[i] = src[b * QK_K + i]!;
    const base = b * BLOCK_BYTES.q5_k;
    quantizeScaleMinBlock(x, 31, -0.5, 15, dst, view, base, L);
    const qh = base + 16;
    const qs = base + 48;
    dst.fill(0, qh, qh + 32);
    for (let j = 0; j < 4; j++) {
      for (let l = 0; l < 32; l++) {
        const lo = L[64 * j + l]!;
        const hi = L[64 * j + l + 32]!;
        dst[qh + l]! |= ((lo >> 4) << (2 * j)) | ((hi >> 4) << (2 * j + 1));
        dst[qs + 32 * j + l] = (lo & 0xf) | ((hi & 0xf) << 4);
      }
    }
  }
}

/** Quantize n floats (n a multiple of 256) into Q6_K blocks, as ggml's quantize_row_q6_K_ref. */
export function quantizeQ6_K(src: ArrayLike<number>, n: number, dst: Uint8Array): void {
  const view = new DataView(dst.buffer, dst.byteOffset, dst.byteLength);
  const x = new Float32Array(QK_K);
  const L = new Uint8Array(QK_K);
  const scales = new Float32Array(16);
  for (let b = 0; b < n / QK_K; b++) {
    for (let i = 0; i < QK_K; i++) x[i] = src[b * QK_K + i]!;
    const base = b * BLOCK_BYTES.q6_k;
    let maxScale = 0;
    let maxAbsScale = 0;
    for (let ib = 0; ib < 16; ib++) {
      scales[ib] = makeQxQuants(16, 32, x, 16 * ib, L);
      const absScale = Math.abs(scales[ib]!);
      if (absScale > maxAbsScale) {
        maxAbsScale = absScale;
        maxScale = scales[ib]!;
      }
    }
    if (maxAbsScale < GROUP_MAX_EPS) {
      dst.fill(0, base, base + BLOCK_BYTES.q6_k);
      continue;
    }
    const iscale = f(-128 / maxScale);
    const dBits = f32ToF16(f(1 / iscale));
    view.setUint16(base + 208, dBits, true);
    for (let ib = 0; ib < 16; ib++) view.setInt8(base + 192 + ib, Math.min(127, nearestInt(f(iscale * scales[ib]!))));
    const d = f16ToF32(dBits);
    for (let j = 0; j < 16; j++) {
      const dj = f(d * view.getInt8(base + 192 + j));
      if (!dj) continue;
      for (let i = 0; i < 16; i++) L[16 * j + i] = clamp(nearestInt(f(x[16 * j + i]! / dj)), -32, 31) + 32;
    }
    for (let h = 0; h < 2; h++) {
      const ql = base + 64 * h;
      const qh = base + 128 + 32 * h;
      const v = 128 * h;
      for (let l = 0; l < 32; l++) {
        const [q1, q2, q3, q4] = [L[v + l]!, L[v + l + 32]!, L[v + l + 64]!, L[v + l + 96]!];
        dst[ql + l] = (q1 & 0xf) | ((q3 & 0xf) << 4);
        dst[ql + l + 32] = (q2 & 0xf) | ((q4 & 0xf) << 4);
        dst[qh + l] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6);
      }
    }
  }
}

/**
 * Quantize n floats (n a multiple of 256) into Q8_K blocks as ggml's CPU backend does for the
 * activations of a K-quant matmul (quantize_row_q8_K_ref): d = max / −127 where max is the first
 * value of largest magnitude, q = min(127, round-half-even(f32(x · (−127 / max)))), and the sums
 * of q over each 16. An all-zero block gets d = 0, q = 0 and zero sums.
 */
export function quantizeQ8_K(src: ArrayLike<number>, n: number, dst: Uint8Array): void {
  const view = new DataView(dst.buffer, dst.byteOffset, dst.byteLength);
  const x = new Float32Array(QK_K);
  for (let b = 0; b < n / QK_K; b++) {
    for (let i = 0; i < QK_K; i++) x[i] = src[b * QK_K + i]!;
    const base = b * BLOCK_BYTES.q8_k;
    let max = 0;
    let amax = 0;
    for (let j = 0; j < QK_K; j++) {
      const ax = Math.abs(x[j]!);
      if (ax > amax) {
        amax = ax;
        max = x[j]!;
      }
    }
    if (!amax) {
      dst.fill(0, base, base + BLOCK_BYTES.q8_k);
      continue;
    }
    const iscale = f(-127 / max);
    for (let j = 0; j < QK_K; j++) view.setInt8(base + 4 + j, Math.min(127, nearestInt(f(iscale * x[j]!))));
    for (let g = 0; g < 16; g++) {
      let sum = 0;
      for (let i = 0; i < 16; i++) sum += view.getInt8(base + 4 + 16 * g + i);
      view.setInt16(base + 260 + 2 * g, sum, true);
    }
    view.setFloat32(base, f(1 / iscale), true);
  }
}

// ---- dequantization ---------------------------------------------------------------------------

/** Decode one super-block of `dtype` at bytes[base..] into out[0..256), with ggml's f32 arithmetic. */
function dequantizeBlock(dtype: KQuantType | 'q8_k', bytes: Uint8Array, view: DataView, base: number, out: Float32Array, q: Int32Array): void {
  if (dtype === 'q8_k') {
    const d = view.getFloat32(base, true);
    for (let j = 0; j < QK_K; j++) out[j] = f(d * view.getInt8(base + 4 + j));
    return;
  }
  blockInts(dtype, bytes, base, q);
  if (dtype === 'q6_k') {
    const d = f16ToF32(view.getUint16(base + 208, true));
    for (let v = 0; v < QK_K; v++) out[v] = f(f(d * view.getInt8(base + 192 + (v >> 4))) * (q[v]! - 32));
    return;
  }
  const d = f16ToF32(view.getUint16(base, true));
  const dmin = f16ToF32(view.getUint16(base + 2, true));
  for (let j = 0; j < 8; j++) {
    const dj = f(d * kScale(bytes, base + 4, j));
    const mj = f(dmin * kMin(bytes, base + 4, j));
    for (let l = 0; l < 32; l++) out[32 * j + l] = f(f(dj * q[32 * j + l]!) - mj);
  }
}

/** Decode `count` values of a K-quant (or Q8_K) tensor starting at value `start` into out[outOffset..]. */
export function dequantizeK(dtype: KQuantType | 'q8_k', bytes: Uint8Array, start: number, count: number, out: Float32Array, outOffset = 0): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const block = new Float32Array(QK_K);
  const q = new Int32Array(QK_K);
  let i = 0;
  while (i < count) {
    const idx = start + i;
    const b = Math.floor(idx / QK_K);
    const from = idx - b * QK_K;
    const take = Math.min(QK_K - from, count - i);
    if (from === 0 && take === QK_K) {
      dequantizeBlock(dtype, bytes, view, b * BLOCK_BYTES[dtype], out.subarray(outOffset + i, outOffset + i + QK_K), q);
    } else {
      dequantizeBlock(dtype, bytes, view, b * BLOCK_BYTES[dtype], block, q);
      out.set(block.subarray(from, from + take), outOffset + i);
    }
    i += take;
  }
}

// ---- dot products against Q8_K activations ----------------------------------------------------

/**
 * Σ_k w[k]·x[k] over nb super-blocks, as ggml's ggml_vec_dot_q{4,5,6}_K_q8_K computes it, in exact
 * integer sums per super-block and float64 across them:
 *   Q4_K/Q5_K: d_w·d_x·Σ_j sc_j·Σ q·q8  −  dmin·d_x·Σ_j m_j·(the Q8_K sums of sub-block j)
 *   Q6_K:      d_w·d_x·Σ_j sc_j·Σ (q − 32)·q8
 * (the mins term is exact: the Q8_K sums are exact sums of q8, so this equals dequantized weights
 * times dequantized activations up to the final roundings). w at byte wOffset, x at byte xOffset.
 */
export function dotQ8_K(dtype: KQuantType, w: Uint8Array, wOffset: number, x: Uint8Array, xOffset: number, nb: number): number {
  const wv = new DataView(w.buffer, w.byteOffset, w.byteLength);
  const xv = new DataView(x.buffer, x.byteOffset, x.byteLength);
  const q = new Int32Array(QK_K);
  let sum = 0;
  for (let b = 0; b < nb; b++) {
    const wb = wOffset + b * BLOCK_BYTES[dtype];
    const xb = xOffset + b * BLOCK_BYTES.q8_k;
    const dx = xv.getFloat32(xb, true);
    blockInts(dtype, w, wb, q);
    if (dtype === 'q6_k') {
      let isum = 0;
      for (let j = 0; j < 16; j++) {
        let s = 0;
        for (let i = 0; i < 16; i++) s += (q[16 * j + i]! - 32) * xv.getInt8(xb + 4 + 16 * j + i);
        isum += wv.getInt8(wb + 192 + j) * s;
      }
      sum += f16ToF32(wv.getUint16(wb + 208, true)) * dx * isum;
    } else {
      let isum = 0;
      let msum = 0;
      for (let j = 0; j < 8; j++) {
        let s = 0;
        for (let i = 0; i < 32; i++) s += q[32 * j + i]! * xv.getInt8(xb + 4 + 32 * j + i);
        isum += kScale(w, wb + 4, j) * s;
        const bsum = xv.getInt16(xb + 260 + 4 * j, true) + xv.getInt16(xb + 262 + 4 * j, true);
        msum += kMin(w, wb + 4, j) * bsum;
      }
      const d = f16ToF32(wv.getUint16(wb, true));
      const dmin = f16ToF32(wv.getUint16(wb + 2, true));
      sum += d * dx * isum - dmin * dx * msum;
    }
  }
  return sum;
}

/** The unsigned integer quants (Q4_K 0..15, Q5_K 0..31, Q6_K 0..63) of the block at w[base..], in value order. */
export function blockInts(dtype: KQuantType, w: Uint8Array, base: number, q: Int32Array): void {
  if (dtype === 'q6_k') {
    for (let v = 0; v < QK_K; v++) {
      const h = v >> 7;
      const r = v & 127;
      const l = r & 31;
      const quarter = r >> 5;
      const qlByte = w[base + 64 * h + l + (quarter & 1) * 32]!;
      const low = quarter < 2 ? qlByte & 0xf : qlByte >> 4;
      q[v] = low | (((w[base + 128 + 32 * h + l]! >> (2 * quarter)) & 3) << 4);
    }
    return;
  }
  const qs = base + (dtype === 'q5_k' ? 48 : 16);
  for (let v = 0; v < QK_K; v++) {
    const j = v >> 5;
    const l = v & 31;
    const byte = w[qs + 32 * (j >> 1) + l]!;
    let value = j & 1 ? byte >> 4 : byte & 0xf;
    if (dtype === 'q5_k' && (w[base + 16 + l]! >> j) & 1) value += 16;
    q[v] = value;
  }
}
