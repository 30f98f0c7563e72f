// Matrix products out[m, n] = Σ_k x[m, k] · w[n, k] for ggml's Q4_1, Q5_0 and Q5_1 weights (block
// layouts in src/tensor/quant-legacy.ts), and their rows decoded to f32 for getRows.
//
// The activations are prepared once per matmul by quantize_q8 (assembly/matmul.ts): Q5_0 multiplies
// with Q8_0 blocks as they are; Q4_1 and Q5_1 multiply with Q8_1 blocks, which are the same d and q
// plus s = f16(d·Σq) (q8_1_sums below). Per 32-block the kernels take the exact integer dot product
// Σ q_w·q_x and, as ggml does,
//   Q5_0:        acc += isum · (d_w · d_x)
//   Q4_1, Q5_1:  acc += isum · (d_w · d_x);  mins += m_w · s_x;   result = acc + mins
// block after block in f32, so every output element is one fixed sequence of operations whatever
// the thread split, the four-row grouping or M, and the SIMD and relaxed builds give the same bits.
import { f16, f16bits, f16x4, hsum4i, hsumi } from './simd';

/** Bytes of x rows (as 64-byte i16 blocks) one m-block keeps hot in L2 while weight rows stream past. */
const X_BLOCK_BYTES: i32 = 256 * 1024;

// The weight kinds (compile-time constants: after inlining, every branch on them folds away).
const Q4_1: i32 = 0;
const Q5_0: i32 = 1;
const Q5_1: i32 = 2;

// @ts-ignore: decorator
@inline function blockBytes(kind: i32): usize {
  return kind == Q4_1 ? 20 : kind == Q5_0 ? 22 : 24;
}

/** Q4_1 and Q5_1 blocks carry a min m (f16 at byte 2) and multiply with Q8_1 activations. */
// @ts-ignore: decorator
@inline function hasMin(kind: i32): bool {
  return kind != Q5_0;
}

// ---- activation preparation ------------------------------------------------------------------

/**
 * sx[b] = the Q8_1 s of block b for rows [m0, m1) of x (K a multiple of 32), as f32: f16(d · Σq)
 * with d = amax/127 in f32 before its f16 rounding, as ggml's quantize_row_q8_1 computes it. Σq
 * comes from quantize_q8's s (= −8·Σq, exact), so this runs after it on the same rows.
 */
export function q8_1_sums(sx: usize, s: usize, x: usize, K: i32, m0: i32, m1: i32): void {
  const nb = K >> 5;
  for (let b = m0 * nb, end = m1 * nb; b < end; b++) {
    const src = x + (<usize>b << 7);
    let amaxv = f32x4.splat(0);
    for (let j = 0; j < 128; j += 16) amaxv = f32x4.max(amaxv, f32x4.abs(v128.load(src + j)));
    const amax = max(max(f32x4.extract_lane(amaxv, 0), f32x4.extract_lane(amaxv, 1)), max(f32x4.extract_lane(amaxv, 2), f32x4.extract_lane(amaxv, 3)));
    const d = <f32>(<f64>amax / 127.0);
    const sum = load<i32>(s + (<usize>b << 2)) / -8;
    const bits = i32x4.extract_lane(f16bits(f32x4.splat(d * <f32>sum)), 0);
    store<f32>(sx + (<usize>b << 2), f16(<u16>bits));
  }
}

// ---- one block's integer dot product ---------------------------------------------------------

/**
 * Q4_1: Σ q·x over one block (16 bytes of nibbles at wb + 4), as four i32 partial sums. The relaxed
 * build multiplies the nibbles (valid i7 operands) with the i8 x (xa: values 0..15, xb: 16..31);
 * the SIMD build cuts the nibbles out of 16-bit lanes, which gives them in even/odd order, against
 * x in that order (x0..x3 = quantize_q8's eo form), as Q4_0 does.
 */
// @ts-ignore: decorator
@inline function dotQ4_1(wb: usize, x0: v128, x1: v128, x2: v128, x3: v128, xa: v128, xb: v128): v128 {
  const n = v128.load(wb, 4);
  if (ASC_FEATURE_RELAXED_SIMD) {
    // i16 pair sums (|x·q| ≤ 127·15, so both halves' pairs added still fit), then i32 lanes.
    // (Not i32x4.relaxed_dot_i8x16_i7x16_add_s: Node 20's V8 computes 2·dot and drops the addend.)
    const lo = v128.and(n, i8x16.splat(0x0f));
    const hi = i8x16.shr_u(n, 4);
    return i32x4.extadd_pairwise_i16x8_s(i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(xa, lo), i16x8.relaxed_dot_i8x16_i7x16_s(xb, hi)));
  } else {
    // 16-bit lane l holds bytes 2l and 2l+1: values 2l, 2l+16 (byte 2l) and 2l+1, 2l+17 (byte 2l+1)
    const mask = i16x8.splat(0x0f);
    let t = i32x4.dot_i16x8_s(v128.and(n, mask), x0);
    t = i32x4.add(t, i32x4.dot_i16x8_s(v128.and(i16x8.shr_u(n, 8), mask), x1));
    t = i32x4.add(t, i32x4.dot_i16x8_s(v128.and(i16x8.shr_u(n, 4), mask), x2));
    return i32x4.add(t, i32x4.dot_i16x8_s(i16x8.shr_u(n, 12), x3));
  }
}

/** Byte j of the result is 0xff where bit j (upper: bit 16 + j) of qh is set, else 0 (qh: the u32 in every lane). */
// @ts-ignore: decorator
@inline function highBits(qh: v128, upper: bool): v128 {
  const spread = upper
    ? v128.shuffle<u8>(qh, qh, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3)
    : v128.shuffle<u8>(qh, qh, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  const bit = i8x16(1, 2, 4, 8, 16, 32, 64, -128, 1, 2, 4, 8, 16, 32, 64, -128);
  return i8x16.eq(v128.and(spread, bit), bit);
}

/**
 * Q5_0 / Q5_1: Σ q·x over one block (qh at wb + qhAt, nibbles at wb + qsAt), four i32 partial
 * sums. The 32 quants are rebuilt as bytes in value order (the fifth bit from qh). The relaxed
 * build multiplies them unsigned (0..31, valid i7 operands) with the i8 x, Q5_0's −16 offset
 * coming back through corr (−16·Σx in lane 0); the SIMD build widens them to i16 (Q5_0 as the
 * signed q − 16) against x in order (x0..x3 = quantize_q8's q16 form).
 */
// @ts-ignore: decorator
@inline function dotQ5(kind: i32, wb: usize, x0: v128, x1: v128, x2: v128, x3: v128, xa: v128, xb: v128, corr: v128): v128 {
  const qhAt: usize = kind == Q5_0 ? 2 : 4;
  const n = v128.load(wb + qhAt + 4);
  const qh = v128.load32_splat(wb + qhAt);
  const low = v128.and(n, i8x16.splat(0x0f));
  const high = i8x16.shr_u(n, 4);
  const h0 = highBits(qh, false);
  const h1 = highBits(qh, true);
  if (ASC_FEATURE_RELAXED_SIMD) {
    // |x·q| ≤ 127·31: an i16 pair sum of both halves still fits (≤ 4·3937)
    const q0 = v128.or(low, v128.and(h0, i8x16.splat(0x10)));
    const q1 = v128.or(high, v128.and(h1, i8x16.splat(0x10)));
    const t = i32x4.extadd_pairwise_i16x8_s(i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(xa, q0), i16x8.relaxed_dot_i8x16_i7x16_s(xb, q1)));
    return kind == Q5_0 ? i32x4.add(t, corr) : t;
  } else {
    // Q5_0: q − 16 is the nibble with 0xf0 set where the fifth bit is clear (a negative i8)
    const q0 = kind == Q5_0 ? v128.or(low, v128.andnot(i8x16.splat(<i8>0xf0), h0)) : v128.or(low, v128.and(h0, i8x16.splat(0x10)));
    const q1 = kind == Q5_0 ? v128.or(high, v128.andnot(i8x16.splat(<i8>0xf0), h1)) : v128.or(high, v128.and(h1, i8x16.splat(0x10)));
    let t = i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(q0), x0);
    t = i32x4.add(t, i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(q0), x1));
    t = i32x4.add(t, i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(q1), x2));
    return i32x4.add(t, i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(q1), x3));
  }
}

// @ts-ignore: decorator
@inline function dotBlock(kind: i32, wb: usize, x0: v128, x1: v128, x2: v128, x3: v128, xa: v128, xb: v128, corr: v128): v128 {
  return kind == Q4_1 ? dotQ4_1(wb, x0, x1, x2, x3, xa, xb) : dotQ5(kind, wb, x0, x1, x2, x3, xa, xb, corr);
}

/** Four rows' f16 values at w0..w3 as f32 lanes (the blocks' d, or at + 2 their m). */
// @ts-ignore: decorator
@inline function halves4(w0: usize, w1: usize, w2: usize, w3: usize): v128 {
  let v = v128.load16_lane(w0, i32x4.splat(0), 0);
  v = v128.load16_lane(w1, v, 1);
  v = v128.load16_lane(w2, v, 2);
  v = v128.load16_lane(w3, v, 3);
  return f16x4(i32x4.extend_low_i16x8_s(v));
}

// ---- matmul ------------------------------------------------------------------------------------

/**
 * out[0..4] = four weight rows (rowBytes apart) · one prepared x row: x16 (i16, 64 bytes a block:
 * eo form for Q4_1, in order for Q5), x8 (i8, in order), xd (d_x), xs (−8·Σq_x), sx (s_x).
 */
// @ts-ignore: decorator
@inline function rows4L(kind: i32, out: usize, x16: usize, x8: usize, xd: usize, xs: usize, sx: usize, w: usize, rowBytes: usize, nb: i32): void {
  const bb = blockBytes(kind);
  let w0 = w;
  let w1 = w + rowBytes;
  let w2 = w1 + rowBytes;
  let w3 = w2 + rowBytes;
  let acc = f32x4.splat(0);
  let mins = acc;
  for (let b = 0; b < nb; b++) {
    let t0 = i32x4.splat(0);
    let t1 = t0;
    let t2 = t0;
    let t3 = t0;
    // Q5_0's offset: −16·Σx = 2·(−8·Σx)
    const corr = kind == Q5_0 && ASC_FEATURE_RELAXED_SIMD ? i32x4.shl(v128.load32_zero(xs), 1) : t0;
    if (ASC_FEATURE_RELAXED_SIMD) {
      const xa = v128.load(x8);
      const xb = v128.load(x8, 16);
      const z = i32x4.splat(0);
      t0 = dotBlock(kind, w0, z, z, z, z, xa, xb, corr);
      t1 = dotBlock(kind, w1, z, z, z, z, xa, xb, corr);
      t2 = dotBlock(kind, w2, z, z, z, z, xa, xb, corr);
      t3 = dotBlock(kind, w3, z, z, z, z, xa, xb, corr);
    } else {
      const x0 = v128.load(x16);
      const x1 = v128.load(x16, 16);
      const x2 = v128.load(x16, 32);
      const x3 = v128.load(x16, 48);
      const z = i32x4.splat(0);
      t0 = dotBlock(kind, w0, x0, x1, x2, x3, z, z, corr);
      t1 = dotBlock(kind, w1, x0, x1, x2, x3, z, z, corr);
      t2 = dotBlock(kind, w2, x0, x1, x2, x3, z, z, corr);
      t3 = dotBlock(kind, w3, x0, x1, x2, x3, z, z, corr);
    }
    const isum = f32x4.convert_i32x4_s(hsum4i(t0, t1, t2, t3));
    const d = f32x4.mul(halves4(w0, w1, w2, w3), v128.load32_splat(xd));
    acc = f32x4.add(acc, f32x4.mul(isum, d));
    if (hasMin(kind)) mins = f32x4.add(mins, f32x4.mul(halves4(w0 + 2, w1 + 2, w2 + 2, w3 + 2), v128.load32_splat(sx)));
    w0 += bb;
    w1 += bb;
    w2 += bb;
    w3 += bb;
    x16 += 64;
    x8 += 32;
    xd += 4;
    xs += 4;
    sx += 4;
  }
  v128.store(out, hasMin(kind) ? f32x4.add(acc, mins) : acc);
}

/** One weight row · one prepared x row, with rows4L's per-lane arithmetic. */
// @ts-ignore: decorator
@inline function rowL(kind: i32, x16: usize, x8: usize, xd: usize, xs: usize, sx: usize, w: usize, nb: i32): f32 {
  const bb = blockBytes(kind);
  let acc: f32 = 0;
  let mins: f32 = 0;
  for (let b = 0; b < nb; b++) {
    const z = i32x4.splat(0);
    const corr = kind == Q5_0 && ASC_FEATURE_RELAXED_SIMD ? i32x4.shl(v128.load32_zero(xs), 1) : z;
    let t = z;
    if (ASC_FEATURE_RELAXED_SIMD) t = dotBlock(kind, w, z, z, z, z, v128.load(x8), v128.load(x8, 16), corr);
    else t = dotBlock(kind, w, v128.load(x16), v128.load(x16, 16), v128.load(x16, 32), v128.load(x16, 48), z, z, corr);
    acc += <f32>hsumi(t) * (f16(load<u16>(w)) * load<f32>(xd));
    if (hasMin(kind)) mins += f16(load<u16>(w, 2)) * load<f32>(sx);
    w += bb;
    x16 += 64;
    x8 += 32;
    xd += 4;
    xs += 4;
    sx += 4;
  }
  return hasMin(kind) ? acc + mins : acc;
}

/**
 * The matmul over prepared activations (M rows of K/32 blocks; see rows4L for the forms). For
 * M > 1 each group of four weight rows stays in L1 while the x rows of an L2-sized block pass it.
 */
// @ts-ignore: decorator
@inline function matmulL(kind: i32, out: usize, x16: usize, x8: usize, xd: usize, xs: usize, sx: usize, w: usize, M: i32, N: i32, K: i32, n0: i32, n1: i32): void {
  const nb = K >> 5;
  const rowBytes = <usize>nb * blockBytes(kind);
  const ldo = <usize>N << 2;
  const mBlock = max(1, X_BLOCK_BYTES / max(1, nb * 64));
  for (let m0 = 0; m0 < M; m0 += mBlock) {
    const m1 = min(M, m0 + mBlock);
    let n = n0;
    for (; n + 4 <= n1; n += 4) {
      const wn = w + <usize>n * rowBytes;
      for (let m = m0; m < m1; m++) {
        const b = <usize>m * nb;
        rows4L(kind, out + <usize>m * ldo + (<usize>n << 2), x16 + (b << 6), x8 + (b << 5), xd + (b << 2), xs + (b << 2), sx + (b << 2), wn, rowBytes, nb);
      }
    }
    for (; n < n1; n++) {
      const wn = w + <usize>n * rowBytes;
      for (let m = m0; m < m1; m++) {
        const b = <usize>m * nb;
        store<f32>(out + <usize>m * ldo + (<usize>n << 2), rowL(kind, x16 + (b << 6), x8 + (b << 5), xd + (b << 2), xs + (b << 2), sx + (b << 2), wn, nb));
      }
    }
  }
}

/** x16: quantize_q8's eo form. sx: q8_1_sums. */
export function matmul_q4_1(out: usize, x16: usize, x8: usize, xd: usize, xs: usize, sx: usize, w: usize, M: i32, N: i32, K: i32, n0: i32, n1: i32): void {
  matmulL(Q4_1, out, x16, x8, xd, xs, sx, w, M, N, K, n0, n1);
}

/** x16: quantize_q8's q16 (in-order) form; sx unused. */
export function matmul_q5_0(out: usize, x16: usize, x8: usize, xd: usize, xs: usize, sx: usize, w: usize, M: i32, N: i32, K: i32, n0: i32, n1: i32): void {
  matmulL(Q5_0, out, x16, x8, xd, xs, sx, w, M, N, K, n0, n1);
}

/** x16: quantize_q8's q16 (in-order) form. sx: q8_1_sums. */
export function matmul_q5_1(out: usize, x16: usize, x8: usize, xd: usize, xs: usize, sx: usize, w: usize, M: i32, N: i32, K: i32, n0: i32, n1: i32): void {
  matmulL(Q5_1, out, x16, x8, xd, xs, sx, w, M, N, K, n0, n1);
}

// ---- rows to f32 (getRows) -------------------------------------------------------------------

/** dst (f32) = nb Q4_1 blocks at src: f32(d · nibble) + m, low nibbles first (ggml's dequantize_row_q4_1). */
export function q4_1_to_f32(dst: usize, src: usize, nb: i32): void {
  for (let b = 0; b < nb; b++) {
    const blk = src + <usize>b * 20;
    const d = f32x4.splat(f16(load<u16>(blk)));
    const m = f32x4.splat(f16(load<u16>(blk, 2)));
    const o = dst + (<usize>b << 7);
    for (let j = 0; j < 16; j += 4) {
      const bytes = i32x4.extend_low_i16x8_u(i16x8.extend_low_i8x16_u(v128.load32_zero(blk + 4 + <usize>j)));
      const lo = v128.and(bytes, i32x4.splat(0xf));
      const hi = i32x4.shr_u(bytes, 4);
      v128.store(o + (<usize>j << 2), f32x4.add(f32x4.mul(d, f32x4.convert_i32x4_s(lo)), m));
      v128.store(o + (<usize>(j + 16) << 2), f32x4.add(f32x4.mul(d, f32x4.convert_i32x4_s(hi)), m));
    }
  }
}

/** The five-bit quants j..j+3 (and j+16..j+19 when upper) of a block: nibbles | fifth bits from qh. */
// @ts-ignore: decorator
@inline function quants5x4(nibbles: v128, qh: v128, j: i32): v128 {
  const bit = i32x4.shl(i32x4(1, 2, 4, 8), j);
  return v128.or(nibbles, v128.and(i32x4.eq(v128.and(qh, bit), bit), i32x4.splat(0x10)));
}

/** Q5_0 / Q5_1 blocks to f32: d · (q − 16), or f32(d · q) + m (ggml's dequantize_row_q5_0 / _q5_1). */
// @ts-ignore: decorator
@inline function q5ToF32(kind: i32, dst: usize, src: usize, nb: i32): void {
  const bb = blockBytes(kind);
  const qhAt: usize = kind == Q5_0 ? 2 : 4;
  for (let b = 0; b < nb; b++) {
    const blk = src + <usize>b * bb;
    const d = f32x4.splat(f16(load<u16>(blk)));
    const m = f32x4.splat(kind == Q5_0 ? 0 : f16(load<u16>(blk, 2)));
    const qh = i32x4.splat(load<i32>(blk + qhAt));
    const o = dst + (<usize>b << 7);
    for (let j = 0; j < 16; j += 4) {
      const bytes = i32x4.extend_low_i16x8_u(i16x8.extend_low_i8x16_u(v128.load32_zero(blk + qhAt + 4 + <usize>j)));
      let lo = quants5x4(v128.and(bytes, i32x4.splat(0xf)), qh, j);
      let hi = quants5x4(i32x4.shr_u(bytes, 4), qh, j + 16);
      if (kind == Q5_0) {
        lo = i32x4.sub(lo, i32x4.splat(16));
        hi = i32x4.sub(hi, i32x4.splat(16));
        v128.store(o + (<usize>j << 2), f32x4.mul(d, f32x4.convert_i32x4_s(lo)));
        v128.store(o + (<usize>(j + 16) << 2), f32x4.mul(d, f32x4.convert_i32x4_s(hi)));
      } else {
        v128.store(o + (<usize>j << 2), f32x4.add(f32x4.mul(d, f32x4.convert_i32x4_s(lo)), m));
        v128.store(o + (<usize>(j + 16) << 2), f32x4.add(f32x4.mul(d, f32x4.convert_i32x4_s(hi)), m));
      }
    }
  }
}

export function q5_0_to_f32(dst: usize, src: usize, nb: i32): void {
  q5ToF32(Q5_0, dst, src, nb);
}

export function q5_1_to_f32(dst: usize, src: usize, nb: i32): void {
  q5ToF32(Q5_1, dst, src, nb);
}
