// K-quant matrix products out[m, n] = Σ_k x[m, k] · w[n, k] for Q4_K, Q5_K and Q6_K weights (the
// GGUF block layouts, see src/tensor/quant-k.ts), against activations quantized once per row to
// Q8_K by quantize_q8_k, as ggml's CPU backend does.
//
// Per 256-value super-block and weight row the kernels form ggml's integer sums exactly:
//   Q4_K / Q5_K: isum = Σ_j sc_j·Σ q·q8,  msum = Σ_j m_j·(Σ q8 over sub-block j)
//   Q6_K:        isum = Σ_j sc_j·Σ q·q8 − 32·Σ_j sc_j·(Σ q8 over sub-block j)   (q unsigned, 0..63)
// and add  f32(isum)·(d·dx) − f32(msum)·(dmin·dx)  to an f32 running sum, block after block. Four
// weight rows share each x block and take that float step as the four lanes of one vector; a lone
// row takes the same steps on scalars. So every output element has one fixed sequence whatever the
// thread split or M, and with no fused multiply-add in it, both builds give the same bits.
//
// The integer sums: the relaxed build multiplies i8 activations with the unsigned quants (0..63,
// valid i7 operands) by i16x8.relaxed_dot_i8x16_i7x16_s, sums a sub-block's products in i16 lanes
// (at most 2·2·127·31 or 2·127·63 = 16002) and scales them by one i32x4.dot_i16x8_s with the
// scale. The SIMD build cuts the quants out of 16-bit lanes, which yields even and odd values apart,
// multiplies them with i16 activations stored in that order by i32x4.dot_i16x8_s, and narrows two
// sub-blocks' i32 sums (at most 8·31·127 = 31496 or 4·63·127 = 32004) into one i16 vector that one
// more dot product scales. All integer arithmetic is exact.
//
// Weight kinds are compile-time type parameters: u8 = Q4_K, u16 = Q5_K, u32 = Q6_K.
import { f16, f16x4, hsum4i, hsumi } from './simd';

/** Bytes of x rows one m-block keeps hot in L2 while the weight rows stream past. */
const X_BLOCK_BYTES: i32 = 256 * 1024;

// Prepared activations, per 256-value block (quantize_q8_k writes them):
/** Quants: the relaxed build 256 × i8 in order, the SIMD build 256 × i16 in even/odd order per 16 values. */
const XQ_BYTES: usize = 512;
/** Sums of the quants: 16 × i16 over each 16 values, then 8 × i16 over each 32. */
const XS_BYTES: usize = 48;

// ---- activations -----------------------------------------------------------------------------

/**
 * Quantize rows [m0, m1) of x (K a multiple of 256) to Q8_K as ggml does for activations and
 * tensor/quant-k.ts quantizeQ8_K reproduces: per block of 256, max = the first value of largest
 * magnitude, iscale = −127/max (f32), q = min(127, round-half-even(f32(x · iscale))), d = 1/iscale.
 * Writes per block: the quants at xq (XQ_BYTES apart, in this build's form), d at xd (f32), and the
 * sums of the quants at xs (XS_BYTES apart). An all-zero block gets zeros everywhere.
 */
export function quantize_q8_k(xq: usize, xd: usize, xs: usize, x: usize, K: i32, m0: i32, m1: i32): void {
  const nb = K >> 8;
  for (let b = m0 * nb, end = m1 * nb; b < end; b++) {
    const src = x + (<usize>b << 10);
    const q = xq + <usize>b * XQ_BYTES;
    const bs = xs + <usize>b * XS_BYTES;
    let amaxv = f32x4.splat(0);
    for (let j: usize = 0; j < 1024; j += 16) amaxv = f32x4.max(amaxv, f32x4.abs(v128.load(src + j)));
    const amax = max(max(f32x4.extract_lane(amaxv, 0), f32x4.extract_lane(amaxv, 1)), max(f32x4.extract_lane(amaxv, 2), f32x4.extract_lane(amaxv, 3)));
    if (amax == 0) {
      memory.fill(q, 0, XQ_BYTES);
      memory.fill(bs, 0, XS_BYTES);
      store<f32>(xd + (<usize>b << 2), 0);
      continue;
    }
    const iscale: f32 = <f32>-127.0 / firstWithMagnitude(src, amax);
    store<f32>(xd + (<usize>b << 2), <f32>1.0 / iscale);
    const s = f32x4.splat(iscale);
    for (let k: usize = 0; k < 16; k += 4) {
      // groups of 16 values k..k+3: their quants, and their sums
      const sums = hsum4i(group16(src, q, k, s), group16(src, q, k + 1, s), group16(src, q, k + 2, s), group16(src, q, k + 3, s));
      v128.store64_lane(bs + (k << 1), i16x8.narrow_i32x4_s(sums, sums), 0);
      const pairs = i32x4.add(v128.shuffle<i32>(sums, sums, 0, 2, 0, 2), v128.shuffle<i32>(sums, sums, 1, 3, 1, 3));
      v128.store32_lane(bs + 32 + k, i16x8.narrow_i32x4_s(pairs, pairs), 0);
    }
  }
}

/**
 * Quantize group g (16 values) of the block at src with scale s and store its quants in the block
 * at q in this build's form; returns their sum as four i32 lanes to add up.
 */
// @ts-ignore: decorator
@inline function group16(src: usize, q: usize, g: usize, s: v128): v128 {
  const p = src + (g << 6);
  const lim = i16x8.splat(127);
  const a = i16x8.min_s(i16x8.narrow_i32x4_s(quant4(v128.load(p), s), quant4(v128.load(p, 16), s)), lim);
  const c = i16x8.min_s(i16x8.narrow_i32x4_s(quant4(v128.load(p, 32), s), quant4(v128.load(p, 48), s)), lim);
  if (ASC_FEATURE_RELAXED_SIMD) {
    v128.store(q + (g << 4), i8x16.narrow_i16x8_s(a, c));
  } else {
    const o = q + (g << 5);
    v128.store(o, v128.shuffle<i16>(a, c, 0, 2, 4, 6, 8, 10, 12, 14));
    v128.store(o, v128.shuffle<i16>(a, c, 1, 3, 5, 7, 9, 11, 13, 15), 16);
  }
  return i32x4.extadd_pairwise_i16x8_s(i16x8.add(a, c));
}

/** The first of the 256 values at src whose magnitude is amax (its sign sets the scale's sign). */
// @ts-ignore: decorator
@inline function firstWithMagnitude(src: usize, amax: f32): f32 {
  const av = f32x4.splat(amax);
  for (let j: usize = 0; j < 1024; j += 16) {
    if (v128.any_true(f32x4.eq(f32x4.abs(v128.load(src + j)), av))) {
      for (let i: usize = 0; i < 16; i += 4) {
        const v = load<f32>(src + j + i);
        if (abs(v) == amax) return v;
      }
    }
  }
  return amax; // not reached for finite values
}

/** round-half-even(f32(x · s)) for four lanes (the product rounded to f32, as C's float multiply). */
// @ts-ignore: decorator
@inline function quant4(x: v128, s: v128): v128 {
  return i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(x, s)));
}

// ---- scales ----------------------------------------------------------------------------------

/**
 * The 8 six-bit sub-block scales, then the 8 mins, of a Q4_K/Q5_K block (12 scale bytes at s) as
 * u8 lanes. Bytes 0..3 hold sc0..3 in their low 6 bits, bytes 4..7 m0..3; bytes 8..11 hold the low
 * 4 bits of sc4..7 (low nibbles) and m4..7 (high nibbles), whose top 2 bits are the top bits of
 * bytes 0..3 and 4..7.
 */
// @ts-ignore: decorator
@inline function scalesMinsK(s: usize): v128 {
  const a = load<u32>(s);
  const b = load<u32>(s, 4);
  const c = load<u32>(s, 8);
  let v = i32x4.splat(a & 0x3f3f3f3f);
  v = i32x4.replace_lane(v, 1, (c & 0x0f0f0f0f) | ((a >> 2) & 0x30303030));
  v = i32x4.replace_lane(v, 2, b & 0x3f3f3f3f);
  return i32x4.replace_lane(v, 3, ((c >> 4) & 0x0f0f0f0f) | ((b >> 2) & 0x30303030));
}

/** Four f16 values (at p0..p3) as f32 lanes. */
// @ts-ignore: decorator
@inline function f16Lanes(p0: usize, p1: usize, p2: usize, p3: usize): v128 {
  let v = v128.load16_lane(p0, i32x4.splat(0), 0);
  v = v128.load16_lane(p1, v, 1);
  v = v128.load16_lane(p2, v, 2);
  v = v128.load16_lane(p3, v, 3);
  return f16x4(i32x4.extend_low_i16x8_s(v));
}

// ---- integer sums of one super-block ---------------------------------------------------------
//
// V8 schedules a basic block's memory loads ahead of the arithmetic that uses them; with a whole
// super-block unrolled that is dozens of vectors at once, and it spills them. So the integer sums
// accumulate in memory (a few bytes of per-thread scratch): each step ends with a store, which
// later loads cannot move above, so each step's loads stay next to its arithmetic.

/** *acc += v (i32 lanes in memory). */
// @ts-ignore: decorator
@inline function addTo(acc: usize, v: v128): void {
  v128.store(acc, i32x4.add(v128.load(acc), v));
}

/** i16 pair sums of 16 activations (i8 at x) times 16 unsigned quants (bytes). */
// @ts-ignore: decorator
@inline function dot16(x: usize, q: v128): v128 {
  return i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(x), q);
}

/** Σ of four i16 vectors times the four i16 activation vectors at x, as i32 lanes. */
// @ts-ignore: decorator
@inline function dot4(a: v128, b: v128, c: v128, d: v128, x: usize): v128 {
  return i32x4.add(
    i32x4.add(i32x4.dot_i16x8_s(a, v128.load(x)), i32x4.dot_i16x8_s(b, v128.load(x, 16))),
    i32x4.add(i32x4.dot_i16x8_s(c, v128.load(x, 32)), i32x4.dot_i16x8_s(d, v128.load(x, 48))),
  );
}

/** Each 16-bit lane shifted so that bit `from` lands on bit `to` (constants: one shift or none). */
// @ts-ignore: decorator
@inline function moveBit(v: v128, from: i32, to: i32): v128 {
  if (from < to) return i16x8.shl(v, to - from);
  if (from > to) return i16x8.shr_u(v, from - to);
  return v;
}

/**
 * *acc += the scaled sums of a 64-value chunk of Q4_K/Q5_K: sub-block A (values 0..31) and B
 * (32..63), with 4-bit quants in the low (A) and high (B) nibbles of the 32 bytes at q and, for
 * Q5_K (five), their 5th bits in bits `shift` (A) and shift + 1 (B) of the 32 bytes at h. x: the
 * chunk's activations (relaxed: i8 in order; SIMD: i16 even/odd per 16). The two
 * scales: i32 lanes 0, 1 of s (each lane one scale in both i16 halves), or lanes 2, 3 if `upper`.
 * tmp: 16 bytes of scratch.
 */
// @ts-ignore: decorator
@inline function chunkQ45(acc: usize, q: usize, h: usize, shift: i32, five: bool, x: usize, s: v128, upper: bool, tmp: usize): void {
  const b0 = v128.load(q);
  const b1 = v128.load(q, 16);
  if (ASC_FEATURE_RELAXED_SIMD) {
    const m = i8x16.splat(0x0f);
    let a0 = v128.and(b0, m);
    let a1 = v128.and(b1, m);
    let c0 = v128.and(i16x8.shr_u(b0, 4), m); // (i8x16.shr_u costs V8 a mask of its own)
    let c1 = v128.and(i16x8.shr_u(b1, 4), m);
    if (five) {
      // bit `shift` (A) and shift + 1 (B) of each qh byte to bit 4: 16-bit shifts, then a byte mask
      const bit = i8x16.splat(0x10);
      const h0 = v128.load(h);
      const h1 = v128.load(h, 16);
      a0 = v128.or(a0, v128.and(moveBit(h0, shift, 4), bit));
      a1 = v128.or(a1, v128.and(moveBit(h1, shift, 4), bit));
      c0 = v128.or(c0, v128.and(moveBit(h0, shift + 1, 4), bit));
      c1 = v128.or(c1, v128.and(moveBit(h1, shift + 1, 4), bit));
    }
    const pA = i16x8.add(dot16(x, a0), dot16(x + 16, a1));
    const pB = i16x8.add(dot16(x + 32, c0), dot16(x + 48, c1));
    const sA = upper ? v128.shuffle<i32>(s, s, 2, 2, 2, 2) : v128.shuffle<i32>(s, s, 0, 0, 0, 0);
    const sB = upper ? v128.shuffle<i32>(s, s, 3, 3, 3, 3) : v128.shuffle<i32>(s, s, 1, 1, 1, 1);
    addTo(acc, i32x4.add(i32x4.dot_i16x8_s(pA, sA), i32x4.dot_i16x8_s(pB, sB)));
  } else {
    // 16-bit lane l holds bytes 2l and 2l+1: even value 2l in bits 0..3 (A) and 4..7 (B), odd
    // value 2l+1 in bits 8..11 (A) and 12..15 (B). The 5th bits (Q5_K): even values' in bits
    // shift (A) and shift + 1 (B) of the qh lane, odd values' in bits shift + 8 and shift + 9.
    const bit = i16x8.splat(0x10);
    let h0 = i32x4.splat(0);
    let h1 = h0;
    if (five) {
      h0 = v128.load(h);
      h1 = v128.load(h, 16);
    }
    const m = i16x8.splat(0x0f);
    let e0 = v128.and(b0, m);
    let o0 = v128.and(i16x8.shr_u(b0, 8), m);
    let e1 = v128.and(b1, m);
    let o1 = v128.and(i16x8.shr_u(b1, 8), m);
    if (five) {
      e0 = v128.or(e0, v128.and(moveBit(h0, shift, 4), bit));
      o0 = v128.or(o0, v128.and(moveBit(h0, shift + 8, 4), bit));
      e1 = v128.or(e1, v128.and(moveBit(h1, shift, 4), bit));
      o1 = v128.or(o1, v128.and(moveBit(h1, shift + 8, 4), bit));
    }
    // i32 sums of 8 products per lane (at most 8·31·127 = 31496); A's go through memory so that
    // B's loads stay after A's arithmetic (see above)
    v128.store(tmp, dot4(e0, o0, e1, o1, x));
    e0 = v128.and(i16x8.shr_u(b0, 4), m);
    o0 = i16x8.shr_u(b0, 12);
    e1 = v128.and(i16x8.shr_u(b1, 4), m);
    o1 = i16x8.shr_u(b1, 12);
    if (five) {
      e0 = v128.or(e0, v128.and(moveBit(h0, shift + 1, 4), bit));
      o0 = v128.or(o0, v128.and(moveBit(h0, shift + 9, 4), bit));
      e1 = v128.or(e1, v128.and(moveBit(h1, shift + 1, 4), bit));
      o1 = v128.or(o1, v128.and(moveBit(h1, shift + 9, 4), bit));
    }
    const tB = dot4(e0, o0, e1, o1, x + 64);
    // both narrowed to i16 without loss, so one dot product scales them: lanes 0..3 by sc_A, 4..7 by sc_B
    const sAB = upper ? v128.shuffle<i32>(s, s, 2, 2, 3, 3) : v128.shuffle<i32>(s, s, 0, 0, 1, 1);
    addTo(acc, i32x4.dot_i16x8_s(i16x8.narrow_i32x4_s(v128.load(tmp), tB), sAB));
  }
}

/** Bytes of prepared activations for `values` values (a multiple of 16). */
// @ts-ignore: decorator
@inline function xBytes(values: usize): usize {
  return ASC_FEATURE_RELAXED_SIMD ? values : values << 1;
}

/**
 * Scales as i32 lanes holding one scale in both i16 halves: pairScales(v, false) for i16 lanes
 * 0..3 of v, (v, true) for lanes 4..7. One pshufd then splats a scale, or spreads two over halves.
 */
// @ts-ignore: decorator
@inline function pairScales(v: v128, high: bool): v128 {
  return high ? v128.shuffle<i16>(v, v, 4, 4, 5, 5, 6, 6, 7, 7) : v128.shuffle<i16>(v, v, 0, 0, 1, 1, 2, 2, 3, 3);
}

/**
 * A Q4_K (five = false) or Q5_K block at w: Σ_j sc_j·Σ q·q8 at out and Σ_j m_j·(Σ q8 over
 * sub-block j) at out + 64, each as four i32 lanes to add up. tmp: 16 bytes of scratch.
 */
// @ts-ignore: decorator
@inline function blockQ45(w: usize, x: usize, xs: usize, five: bool, out: usize, tmp: usize): void {
  const sm = scalesMinsK(w + 4);
  const sc = i16x8.extend_low_i8x16_u(sm);
  v128.store(out, i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(sm), v128.load(xs, 32)), 64);
  const low = pairScales(sc, false);
  const high = pairScales(sc, true);
  const q = w + (five ? 48 : 16);
  const h = w + 16;
  v128.store(out, i32x4.splat(0));
  chunkQ45(out, q, h, 0, five, x, low, false, tmp);
  chunkQ45(out, q + 32, h, 2, five, x + xBytes(64), low, true, tmp);
  chunkQ45(out, q + 64, h, 4, five, x + xBytes(128), high, false, tmp);
  chunkQ45(out, q + 96, h, 6, five, x + xBytes(192), high, true, tmp);
}

/**
 * *acc += the scaled sums of two quarters of 16 values that share their quant bytes: A takes the
 * low nibbles of the 16 bytes at ql and bits hshift, hshift+1 of the qh bytes at qh as its top
 * bits; B the high nibbles and bits hshift+4, hshift+5. xA, xB: their activations. s: A's scale in
 * i32 lanes 0, 1 and B's in lanes 2, 3 (each lane the scale in both i16 halves).
 */
// @ts-ignore: decorator
@inline function pairQ6(acc: usize, ql: usize, qh: usize, hshift: i32, xA: usize, xB: usize, s: v128): void {
  const b = v128.load(ql);
  const h = moveBit(v128.load(qh), hshift, 0);
  if (ASC_FEATURE_RELAXED_SIMD) {
    // the top bits to bits 4..5 of each byte: 16-bit shifts, then a byte mask
    const m = i8x16.splat(0x0f);
    const top = i8x16.splat(0x30);
    const pA = dot16(xA, v128.or(v128.and(b, m), v128.and(i16x8.shl(h, 4), top)));
    const pB = dot16(xB, v128.or(v128.and(i16x8.shr_u(b, 4), m), v128.and(h, top)));
    addTo(acc, i32x4.add(i32x4.dot_i16x8_s(pA, v128.shuffle<i32>(s, s, 0, 0, 0, 0)), i32x4.dot_i16x8_s(pB, v128.shuffle<i32>(s, s, 2, 2, 2, 2))));
  } else {
    // even values from bytes 2l (bits 0..7 of lane l), odd values from bytes 2l+1 (bits 8..15)
    const m = i16x8.splat(0x0f);
    const top = i16x8.splat(0x30);
    const ae = v128.or(v128.and(b, m), v128.and(i16x8.shl(h, 4), top));
    const ao = v128.or(v128.and(i16x8.shr_u(b, 8), m), v128.and(i16x8.shr_u(h, 4), top));
    const be = v128.or(v128.and(i16x8.shr_u(b, 4), m), v128.and(h, top));
    const bo = v128.or(i16x8.shr_u(b, 12), v128.and(i16x8.shr_u(h, 8), top));
    // i32 sums of 4 products per lane (at most 4·63·127 = 32004), narrowed to i16 without loss
    // so that one dot product scales both quarters
    const tA = i32x4.add(i32x4.dot_i16x8_s(ae, v128.load(xA)), i32x4.dot_i16x8_s(ao, v128.load(xA, 16)));
    const tB = i32x4.add(i32x4.dot_i16x8_s(be, v128.load(xB)), i32x4.dot_i16x8_s(bo, v128.load(xB, 16)));
    addTo(acc, i32x4.dot_i16x8_s(i16x8.narrow_i32x4_s(tA, tB), s));
  }
}

/** Σ_j sc_j·Σ (q − 32)·q8 of a Q6_K block at w, at out as four i32 lanes to add up. */
// @ts-ignore: decorator
@inline function blockQ6(w: usize, x: usize, xs: usize, out: usize): void {
  const scv = v128.load(w, 192);
  const lo = i16x8.extend_low_i8x16_s(scv); // sub-blocks 0..7 (values 0..127)
  const hi = i16x8.extend_high_i8x16_s(scv); // 8..15
  // the −32 offset of every quant, through the sums of q8 over each 16
  const offset = i32x4.add(i32x4.dot_i16x8_s(lo, v128.load(xs)), i32x4.dot_i16x8_s(hi, v128.load(xs, 16)));
  v128.store(out, i32x4.sub(i32x4.splat(0), i32x4.shl(offset, 5)));
  // Per 128-value half: ql byte l (l < 32) holds values l (low nibble) and l + 64 (high), ql byte
  // l + 32 values l + 32 and l + 96; qh byte l their top bits in bit pairs 0..3. Values
  // 16c..16c+15 of quarter k are sub-block 8·half + 2k + c, whose scale is i32 lane c of a (k = 0),
  // c + 2 of a (k = 1), c of b (k = 2), c + 2 of b (k = 3).
  halfQ6(out, w, w + 128, x, pairScales(lo, false), pairScales(lo, true));
  halfQ6(out, w + 64, w + 160, x + xBytes(128), pairScales(hi, false), pairScales(hi, true));
}

/** The four pairQ6 steps of a 128-value half: 64 ql bytes at ql, 32 qh bytes at qh, activations at x. */
// @ts-ignore: decorator
@inline function halfQ6(out: usize, ql: usize, qh: usize, x: usize, a: v128, b: v128): void {
  pairQ6(out, ql, qh, 0, x, x + xBytes(64), v128.shuffle<i32>(a, b, 0, 0, 4, 4));
  pairQ6(out, ql + 16, qh + 16, 0, x + xBytes(16), x + xBytes(80), v128.shuffle<i32>(a, b, 1, 1, 5, 5));
  pairQ6(out, ql + 32, qh, 2, x + xBytes(32), x + xBytes(96), v128.shuffle<i32>(a, b, 2, 2, 6, 6));
  pairQ6(out, ql + 48, qh + 16, 2, x + xBytes(48), x + xBytes(112), v128.shuffle<i32>(a, b, 3, 3, 7, 7));
}

/**
 * The integer sums of one super-block for weight kind T, as i32 lanes to add up: isum at out and,
 * for Q4_K/Q5_K, msum at out + 64. tmp: 16 bytes of scratch.
 */
// @ts-ignore: decorator
@inline function blockK<T>(w: usize, x: usize, xs: usize, out: usize, tmp: usize): void {
  if (sizeof<T>() == 4) blockQ6(w, x, xs, out);
  else blockQ45(w, x, xs, sizeof<T>() == 2, out, tmp);
}

// ---- rows ------------------------------------------------------------------------------------

// @ts-ignore: decorator
@inline function blockBytes<T>(): usize {
  return sizeof<T>() == 4 ? 210 : sizeof<T>() == 2 ? 176 : 144;
}

/** Byte offset of the super-block scale d in a block (Q6_K keeps it last). */
// @ts-ignore: decorator
@inline function dOffset<T>(): usize {
  return sizeof<T>() == 4 ? 208 : 0;
}

/**
 * out[0..4] = four K-quant weight rows (rowBytes apart) · one prepared x row of nb blocks. Per
 * super-block the rows' integer sums go one row after the other into this thread's scratch at tmp
 * (isum lanes at tmp + 16r, msum lanes at tmp + 64 + 16r, 16 more bytes for blockK), then the four
 * rows take the float step together.
 */
// @ts-ignore: decorator
@inline function rows4K<T>(out: usize, xq: usize, xd: usize, xs: usize, w: usize, rowBytes: usize, nb: i32, tmp: usize): void {
  const Q6: bool = sizeof<T>() == 4;
  const dOff = dOffset<T>();
  const w1 = w + rowBytes;
  const w2 = w1 + rowBytes;
  const w3 = w2 + rowBytes;
  let acc = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    const o = <usize>b * blockBytes<T>();
    blockK<T>(w + o, xq, xs, tmp, tmp + 128);
    blockK<T>(w1 + o, xq, xs, tmp + 16, tmp + 128);
    blockK<T>(w2 + o, xq, xs, tmp + 32, tmp + 128);
    blockK<T>(w3 + o, xq, xs, tmp + 48, tmp + 128);
    const isum = hsum4i(v128.load(tmp), v128.load(tmp, 16), v128.load(tmp, 32), v128.load(tmp, 48));
    const dx = v128.load32_splat(xd);
    let y = f32x4.mul(f32x4.convert_i32x4_s(isum), f32x4.mul(f16Lanes(w + o + dOff, w1 + o + dOff, w2 + o + dOff, w3 + o + dOff), dx));
    if (!Q6) {
      const msum = hsum4i(v128.load(tmp, 64), v128.load(tmp, 80), v128.load(tmp, 96), v128.load(tmp, 112));
      y = f32x4.sub(y, f32x4.mul(f32x4.convert_i32x4_s(msum), f32x4.mul(f16Lanes(w + o + 2, w1 + o + 2, w2 + o + 2, w3 + o + 2), dx)));
    }
    acc = f32x4.add(acc, y);
    xq += XQ_BYTES;
    xd += 4;
    xs += XS_BYTES;
  }
  v128.store(out, acc);
}

/** One K-quant weight row · one prepared x row: rows4K's per-lane arithmetic on scalars. */
// @ts-ignore: decorator
@inline function rowK<T>(xq: usize, xd: usize, xs: usize, w: usize, nb: i32, tmp: usize): f32 {
  const Q6: bool = sizeof<T>() == 4;
  let acc: f32 = 0;
  for (let b = 0; b < nb; b++) {
    const dx = load<f32>(xd);
    blockK<T>(w, xq, xs, tmp, tmp + 128);
    let y = <f32>hsumi(v128.load(tmp)) * (f16(load<u16>(w + dOffset<T>())) * dx);
    if (!Q6) y -= <f32>hsumi(v128.load(tmp, 64)) * (f16(load<u16>(w + 2)) * dx);
    acc += y;
    w += blockBytes<T>();
    xq += XQ_BYTES;
    xd += 4;
    xs += XS_BYTES;
  }
  return acc;
}

/**
 * The K-quant matmul over prepared activations (quantize_q8_k): weight rows [n0, n1). For M > 1
 * each group of four weight rows stays in L1 while the x rows of an L2-sized block go past it.
 * scratch: 256 bytes per thread.
 */
// @ts-ignore: decorator
@inline function matmulK<T>(out: usize, xq: usize, xd: usize, xs: usize, w: usize, M: i32, N: i32, K: i32, scratch: usize, n0: i32, n1: i32, tid: i32): void {
  const nb = K >> 8;
  const tmp = scratch + (<usize>tid << 8);
  const rowBytes = <usize>nb * blockBytes<T>();
  const ldo = <usize>N << 2;
  const mBlock = max(1, X_BLOCK_BYTES / max(1, nb * <i32>(XQ_BYTES + XS_BYTES + 4)));
  for (let m0 = 0; m0 < M; m0 += mBlock) {
    const m1 = min(M, m0 + mBlock);
    let n = n0;
    for (; n + 4 <= n1; n += 4) {
      const wn = w + <usize>n * rowBytes;
      for (let m = m0; m < m1; m++) {
        const b = <usize>m * nb;
        rows4K<T>(out + <usize>m * ldo + (<usize>n << 2), xq + b * XQ_BYTES, xd + (b << 2), xs + b * XS_BYTES, wn, rowBytes, nb, tmp);
      }
    }
    for (; n < n1; n++) {
      const wn = w + <usize>n * rowBytes;
      for (let m = m0; m < m1; m++) {
        const b = <usize>m * nb;
        store<f32>(out + <usize>m * ldo + (<usize>n << 2), rowK<T>(xq + b * XQ_BYTES, xd + (b << 2), xs + b * XS_BYTES, wn, nb, tmp));
      }
    }
  }
}

export function matmul_q4_k(out: usize, xq: usize, xd: usize, xs: usize, w: usize, M: i32, N: i32, K: i32, scratch: usize, n0: i32, n1: i32, tid: i32): void {
  matmulK<u8>(out, xq, xd, xs, w, M, N, K, scratch, n0, n1, tid);
}

export function matmul_q5_k(out: usize, xq: usize, xd: usize, xs: usize, w: usize, M: i32, N: i32, K: i32, scratch: usize, n0: i32, n1: i32, tid: i32): void {
  matmulK<u16>(out, xq, xd, xs, w, M, N, K, scratch, n0, n1, tid);
}

export function matmul_q6_k(out: usize, xq: usize, xd: usize, xs: usize, w: usize, M: i32, N: i32, K: i32, scratch: usize, n0: i32, n1: i32, tid: i32): void {
  matmulK<u32>(out, xq, xd, xs, w, M, N, K, scratch, n0, n1, tid);
}

// ---- rows to f32 (getRows) -------------------------------------------------------------------

/** Four bytes at p as u32 lanes. */
// @ts-ignore: decorator
@inline function bytes4(p: usize): v128 {
  return i32x4.extend_low_i16x8_u(i16x8.extend_low_i8x16_u(v128.load32_zero(p)));
}

/** dst (f32) = nb Q4_K (five = false) or Q5_K blocks at src: (d·sc_j)·q − dmin·m_j, in f32 as ggml. */
// @ts-ignore: decorator
@inline function q45ToF32(dst: usize, src: usize, nb: i32, five: bool): void {
  const bb: usize = five ? 176 : 144;
  for (let b = 0; b < nb; b++) {
    const blk = src + <usize>b * bb;
    const d = f16(load<u16>(blk));
    const dmin = f16(load<u16>(blk, 2));
    const qs = blk + (five ? 48 : 16);
    const a = load<u32>(blk, 4);
    const bw = load<u32>(blk, 8);
    const c = load<u32>(blk, 12);
    const sc03 = a & 0x3f3f3f3f;
    const sc47 = (c & 0x0f0f0f0f) | ((a >> 2) & 0x30303030);
    const m03 = bw & 0x3f3f3f3f;
    const m47 = ((c >> 4) & 0x0f0f0f0f) | ((bw >> 2) & 0x30303030);
    const o = dst + (<usize>b << 10);
    for (let j = 0; j < 8; j++) {
      const shift = <u32>(j & 3) << 3;
      const sc = ((j < 4 ? sc03 : sc47) >> shift) & 0xff;
      const mn = ((j < 4 ? m03 : m47) >> shift) & 0xff;
      const dj = f32x4.splat(d * <f32>sc);
      const mj = f32x4.splat(dmin * <f32>mn);
      const q = qs + (<usize>(j >> 1) << 5);
      for (let l: usize = 0; l < 32; l += 4) {
        const bytes = bytes4(q + l);
        let v = j & 1 ? i32x4.shr_u(bytes, 4) : v128.and(bytes, i32x4.splat(0x0f));
        if (five) v = v128.or(v, i32x4.shl(v128.and(i32x4.shr_u(bytes4(blk + 16 + l), j), i32x4.splat(1)), 4));
        v128.store(o + ((<usize>(j << 5) + l) << 2), f32x4.sub(f32x4.mul(dj, f32x4.convert_i32x4_s(v)), mj));
      }
    }
  }
}

export function q4_k_to_f32(dst: usize, src: usize, nb: i32): void {
  q45ToF32(dst, src, nb, false);
}

export function q5_k_to_f32(dst: usize, src: usize, nb: i32): void {
  q45ToF32(dst, src, nb, true);
}

/** dst (f32) = nb Q6_K blocks at src: (d·sc_j)·(q − 32), in f32 as ggml. */
export function q6_k_to_f32(dst: usize, src: usize, nb: i32): void {
  for (let b = 0; b < nb; b++) {
    const blk = src + <usize>b * 210;
    const d = f16(load<u16>(blk, 208));
    const o = dst + (<usize>b << 10);
    for (let half: usize = 0; half < 2; half++) {
      const ql = blk + (half << 6);
      const qh = blk + 128 + (half << 5);
      for (let quarter: i32 = 0; quarter < 4; quarter++) {
        const qlq = ql + (<usize>(quarter & 1) << 5);
        for (let l: usize = 0; l < 32; l += 4) {
          const v = (half << 7) + (<usize>quarter << 5) + l; // the first of the four values
          const lowBytes = bytes4(qlq + l);
          const low = quarter < 2 ? v128.and(lowBytes, i32x4.splat(0x0f)) : i32x4.shr_u(lowBytes, 4);
          const high = v128.and(i32x4.shr_u(bytes4(qh + l), quarter << 1), i32x4.splat(3));
          const q = i32x4.sub(v128.or(low, i32x4.shl(high, 4)), i32x4.splat(32));
          const dsc = f32x4.splat(d * <f32>load<i8>(blk + 192 + (v >> 4)));
          v128.store(o + (v << 2), f32x4.mul(dsc, f32x4.convert_i32x4_s(q)));
        }
      }
    }
  }
}
