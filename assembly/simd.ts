// Vector helpers shared by the kernels: fused multiply-add, horizontal sums, f16/bf16 conversion
// and a vector expf. Everything here is inlined into the kernels.
//
// One source builds two modules: ASC_FEATURE_RELAXED_SIMD is a compile-time constant, so the
// `if` on it folds away and each module keeps only its own branch.

/** acc + a·b per lane. The relaxed build fuses (one rounding where the hardware has FMA). */
// @ts-ignore: decorator
@inline export function madd(a: v128, b: v128, acc: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, acc);
  return f32x4.add(acc, f32x4.mul(a, b));
}

/** Lane sum in the fixed order (l0 + l2) + (l1 + l3): the order hsum4 uses too. */
// @ts-ignore: decorator
@inline export function hsum(v: v128): f32 {
  const s = f32x4.add(v, v128.shuffle<f32>(v, v, 2, 3, 0, 1));
  return f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 1);
}

/** [hsum(a), hsum(b), hsum(c), hsum(d)], each lane summed in exactly hsum's order. */
// @ts-ignore: decorator
@inline export function hsum4(a: v128, b: v128, c: v128, d: v128): v128 {
  // ab = [a0+a2, b0+b2, a1+a3, b1+b3]
  const ab = f32x4.add(v128.shuffle<f32>(a, b, 0, 4, 1, 5), v128.shuffle<f32>(a, b, 2, 6, 3, 7));
  const cd = f32x4.add(v128.shuffle<f32>(c, d, 0, 4, 1, 5), v128.shuffle<f32>(c, d, 2, 6, 3, 7));
  return f32x4.add(v128.shuffle<i64>(ab, cd, 0, 2), v128.shuffle<i64>(ab, cd, 1, 3));
}

/** The same transpose-and-add for i32 lanes (exact, so the order does not matter). */
// @ts-ignore: decorator
@inline export function hsum4i(a: v128, b: v128, c: v128, d: v128): v128 {
  const ab = i32x4.add(v128.shuffle<i32>(a, b, 0, 4, 1, 5), v128.shuffle<i32>(a, b, 2, 6, 3, 7));
  const cd = i32x4.add(v128.shuffle<i32>(c, d, 0, 4, 1, 5), v128.shuffle<i32>(c, d, 2, 6, 3, 7));
  return i32x4.add(v128.shuffle<i64>(ab, cd, 0, 2), v128.shuffle<i64>(ab, cd, 1, 3));
}

// @ts-ignore: decorator
@inline export function hsumi(v: v128): i32 {
  return i32x4.extract_lane(v, 0) + i32x4.extract_lane(v, 1) + i32x4.extract_lane(v, 2) + i32x4.extract_lane(v, 3);
}

// ---- f16 / bf16 -------------------------------------------------------------------------------

/**
 * f16 -> f32 for four lanes holding sign-extended f16 bits (as v128.load16x4_s gives them).
 * Exponent and mantissa move to their f32 places and a multiply by 2^112 re-biases the exponent:
 * this is exact for normals and subnormals alike. Inf/NaN (exponent 31) get the f32 exponent 255.
 */
// @ts-ignore: decorator
@inline export function f16x4(e: v128): v128 {
  // e << 13 puts the sign (and its copies) in bits 28..31; keep bit 31 only
  const bits = v128.and(i32x4.shl(e, 13), i32x4.splat(0x8fffffff));
  const v = f32x4.mul(bits, f32x4.splat(reinterpret<f32>(0x77800000))); // 2^112
  const infNan = i32x4.eq(v128.and(e, i32x4.splat(0x7c00)), i32x4.splat(0x7c00));
  return v128.or(v, v128.and(infNan, i32x4.splat(0x7f800000)));
}

/** Four f16 values at p as f32. */
// @ts-ignore: decorator
@inline export function loadF16x4(p: usize): v128 {
  return f16x4(v128.load16x4_s(p));
}

/**
 * Eight f16 values (the bits in h) as f32 value · 2^-112, first four lanes (hi = false) or last
 * four (hi = true): 16-bit shifts put sign, exponent and mantissa where an f32 keeps them and an
 * interleave joins the halves. Scaling the other factor by 2^112 then gives exactly the products
 * of the true values, subnormals included, for a handful of instructions. Inf/NaN (exponent 31)
 * come out finite, so callers check f16InfNanMax and redo such rows with f16x4.
 */
// @ts-ignore: decorator
@inline export function f16x8Scaled(h: v128, hi: bool): v128 {
  const top = v128.and(i16x8.shr_s(h, 3), i16x8.splat(<i16>0x8fff)); // sign, exponent, mantissa bits 3..9
  const bottom = i16x8.shl(h, 13); // mantissa bits 0..2
  if (hi) return v128.shuffle<i16>(bottom, top, 4, 12, 5, 13, 6, 14, 7, 15);
  return v128.shuffle<i16>(bottom, top, 0, 8, 1, 9, 2, 10, 3, 11);
}

/** Fold eight f16 values into a running check: any lane of the result ≥ 0xf800 means inf/NaN. */
// @ts-ignore: decorator
@inline export function f16InfNanMax(m: v128, h: v128): v128 {
  return i16x8.max_u(m, i16x8.shl(h, 1));
}

// @ts-ignore: decorator
@inline export function f16HasInfNan(m: v128): bool {
  return v128.any_true(i16x8.ge_u(m, i16x8.splat(<i16>0xf800)));
}

/** Four bf16 values at p as f32: the top halves of f32s. */
// @ts-ignore: decorator
@inline export function loadBf16x4(p: usize): v128 {
  return i32x4.shl(v128.load16x4_u(p), 16);
}

/** One f16 value (bits) as f32. */
// @ts-ignore: decorator
@inline export function f16(h: u16): f32 {
  return f32x4.extract_lane(f16x4(i32x4.splat(<i32><i16>h)), 0);
}

/**
 * f32 -> f16 bits (in the low 16 bits of each i32 lane), round to nearest-even, overflow to inf,
 * NaN to the quiet NaN 0x7e00: bit for bit what tensor/f16.ts f32ToF16 gives.
 */
// @ts-ignore: decorator
@inline export function f16bits(x: v128): v128 {
  const sign = v128.and(i32x4.shr_u(x, 16), i32x4.splat(0x8000));
  const a = v128.and(x, i32x4.splat(0x7fffffff));
  // normal halves: re-bias the exponent (127 -> 15) and drop 13 mantissa bits, rounding half to
  // even; a carry out of the mantissa correctly bumps the exponent, up to inf
  const odd = v128.and(i32x4.shr_u(a, 13), i32x4.splat(1));
  let normal = i32x4.shr_u(i32x4.add(i32x4.add(a, i32x4.splat(0xfff - 0x38000000)), odd), 13);
  normal = i32x4.min_u(normal, i32x4.splat(0x7c00));
  // subnormal halves (|x| < 2^-14): adding 0.5 makes the hardware round to a multiple of 2^-24
  const sub = i32x4.sub(f32x4.add(a, f32x4.splat(0.5)), i32x4.splat(0x3f000000));
  let h = v128.bitselect(normal, sub, i32x4.ge_s(a, i32x4.splat(0x38800000)));
  h = v128.bitselect(i32x4.splat(0x7e00), h, i32x4.gt_s(a, i32x4.splat(0x7f800000)));
  return v128.or(h, sign);
}

/** Round each lane to the nearest f16 value (kept as f32). */
// @ts-ignore: decorator
@inline export function roundF16x4(x: v128): v128 {
  const h = f16bits(x);
  return f16x4(i32x4.shr_s(i32x4.shl(h, 16), 16));
}

/** Round each lane to the nearest bf16 value (kept as f32), as tensor/f16.ts f32ToBf16. */
// @ts-ignore: decorator
@inline export function roundBf16x4(x: v128): v128 {
  const odd = v128.and(i32x4.shr_u(x, 16), i32x4.splat(1));
  const rounded = v128.and(i32x4.add(i32x4.add(x, i32x4.splat(0x7fff)), odd), i32x4.splat(0xffff0000));
  const nan = v128.or(v128.and(x, i32x4.splat(0xffff0000)), i32x4.splat(0x400000));
  return v128.bitselect(nan, rounded, f32x4.ne(x, x));
}

// ---- exp --------------------------------------------------------------------------------------

/**
 * e^x per lane, relative error about 1e-7. x = n·ln2 + r with |r| ≤ ln2/2 (ln2 split in a short
 * high part, so n·hi is exact, and a low correction); e^r by its Taylor series to degree 7
 * (truncation error < 6e-9); 2^n applied as two factors so that results down to the subnormals
 * and up to overflow come out right. NaN stays NaN.
 */
// @ts-ignore: decorator
@inline export function expf4(x: v128): v128 {
  x = f32x4.max(f32x4.min(x, f32x4.splat(89.0)), f32x4.splat(-104.0));
  const n = f32x4.nearest(f32x4.mul(x, f32x4.splat(1.4426950408889634)));
  let r = f32x4.sub(x, f32x4.mul(n, f32x4.splat(0.693145751953125)));
  r = f32x4.sub(r, f32x4.mul(n, f32x4.splat(1.4286067653301870e-6)));
  let p = f32x4.splat(1.0 / 5040.0);
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.0 / 720.0));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.0 / 120.0));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.0 / 24.0));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.0 / 6.0));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(0.5));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.0));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.0));
  const ni = i32x4.trunc_sat_f32x4_s(n);
  const n1 = i32x4.shr_s(ni, 1);
  const n2 = i32x4.sub(ni, n1);
  const s1 = i32x4.shl(i32x4.add(n1, i32x4.splat(127)), 23);
  const s2 = i32x4.shl(i32x4.add(n2, i32x4.splat(127)), 23);
  return f32x4.mul(f32x4.mul(p, s1), s2);
}

/** Scalar e^x with exactly the vector's arithmetic. */
// @ts-ignore: decorator
@inline export function expf(x: f32): f32 {
  return f32x4.extract_lane(expf4(f32x4.splat(x)), 0);
}

// ---- one-lane loads for loop tails ------------------------------------------------------------
// Tails run the vector code on one lane (the others zero), so every element gets the same
// arithmetic wherever it sits.

// @ts-ignore: decorator
@inline export function load1(p: usize): v128 {
  return v128.load32_zero(p);
}

// @ts-ignore: decorator
@inline export function store1(p: usize, v: v128): void {
  v128.store32_lane(p, v, 0);
}
