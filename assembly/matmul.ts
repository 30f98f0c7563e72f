// Matrix products out[m, n] = Σ_k x[m, k] · w[n, k] for f32, f16, bf16, q8_0 and q4_0 weights.
//
// Threads split the output columns n (weight rows); every kernel takes the slice [n0, n1) and a
// thread id for its own scratch. Each output element is computed with one fixed sequence of
// operations whatever the slice, the row grouping or M, so 1 and 2 threads (and a prompt batch
// versus one token at a time) give identical bits:
//   float weights: one 4-lane accumulator over k in steps of 4, the lanes summed as hsum does,
//                  then the k % 4 tail added in order;
//   q8_0 / q4_0:   per 32-block the exact integer dot product, times (d_w · d_x) (exact in f32),
//                  added to a running f32 sum block by block.
// The relaxed build fuses the float multiply-adds, so its float results differ from the SIMD
// build's in the last bits; quantized results are the same bits in both (integer sums are exact).
//
// Weight kinds are compile-time type parameters: f32 = f32, i16 = f16, u16 = bf16 for the float
// kernels; i8 = q8_0, u8 = q4_0 for the quantized ones.
import { f16, f16bits, f16HasInfNan, f16InfNanMax, f16x4, f16x8Scaled, hsum, hsum4, hsum4i, hsumi, load1, madd, roundBf16x4, roundF16x4, store1 } from './simd';

/** Bytes of x rows one m-block keeps hot in L2 while the weight rows stream past. */
const X_BLOCK_BYTES: i32 = 256 * 1024;
/** Up to this many x rows, float matmuls stream each weight row once (see matmulFloat). */
const FEW_ROWS: i32 = 8;

// @ts-ignore: decorator
@inline function elemBytes<W>(): usize {
  return isFloat<W>() ? 4 : 2;
}

// The inner loops walk pointers forward so loads use immediate offsets (wasm addresses are 32-bit
// sums the engine cannot fold into the load). They are not unrolled: V8 then hoists the loads of
// several steps together and spills registers, which measured slower.

/** Four weights as f32 from p (step 0) or from one step (four weights) further (step 1). */
// @ts-ignore: decorator
@inline function loadW<W>(p: usize, step: i32): v128 {
  if (isFloat<W>()) return step ? v128.load(p, 16) : v128.load(p);
  if (isSigned<W>()) return f16x4(step ? v128.load16x4_s(p, 8) : v128.load16x4_s(p));
  return i32x4.shl(step ? v128.load16x4_u(p, 8) : v128.load16x4_u(p), 16);
}

/** One weight at p as f32. */
// @ts-ignore: decorator
@inline function loadW1<W>(p: usize): f32 {
  if (isFloat<W>()) return load<f32>(p);
  if (isSigned<W>()) return f16(load<u16>(p));
  return reinterpret<f32>(<u32>load<u16>(p) << 16);
}

/** Σ_k w[k]·x[k] for one weight row: the reference sequence every float kernel reproduces. */
// @ts-ignore: decorator
@inline function dot<W>(w: usize, x: usize, K: i32): f32 {
  const eb = elemBytes<W>();
  let acc = f32x4.splat(0);
  let k = 0;
  for (; k + 4 <= K; k += 4) {
    acc = madd(loadW<W>(w, 0), v128.load(x), acc);
    w += eb << 2;
    x += 16;
  }
  let s = hsum(acc);
  for (; k < K; k++) {
    s += loadW1<W>(w) * load<f32>(x);
    w += eb;
    x += 4;
  }
  return s;
}

/** out[0..4] = four consecutive weight rows (stride apart) · x. */
// @ts-ignore: decorator
@inline function rows4<W>(out: usize, x: usize, w: usize, stride: usize, K: i32): void {
  const eb = elemBytes<W>();
  let w0 = w;
  let w1 = w + stride;
  let w2 = w1 + stride;
  let w3 = w2 + stride;
  let a0 = f32x4.splat(0);
  let a1 = a0;
  let a2 = a0;
  let a3 = a0;
  let k = 0;
  for (; k + 4 <= K; k += 4) {
    const xv = v128.load(x);
    a0 = madd(loadW<W>(w0, 0), xv, a0);
    a1 = madd(loadW<W>(w1, 0), xv, a1);
    a2 = madd(loadW<W>(w2, 0), xv, a2);
    a3 = madd(loadW<W>(w3, 0), xv, a3);
    x += 16;
    w0 += eb << 2;
    w1 += eb << 2;
    w2 += eb << 2;
    w3 += eb << 2;
  }
  finishRows4<W>(out, hsum4(a0, a1, a2, a3), x, w0, w1, w2, w3, k, K);
}

/**
 * Store four rows' dot products: `s` holds their sums over columns [0, k); columns k..K (fewer
 * than a vector) are added one at a time, the exact way, from x and the rows' pointers at k.
 */
// @ts-ignore: decorator
@inline function finishRows4<W>(out: usize, s: v128, x: usize, w0: usize, w1: usize, w2: usize, w3: usize, k: i32, K: i32): void {
  if (k == K) {
    v128.store(out, s);
    return;
  }
  const eb = elemBytes<W>();
  let s0 = f32x4.extract_lane(s, 0);
  let s1 = f32x4.extract_lane(s, 1);
  let s2 = f32x4.extract_lane(s, 2);
  let s3 = f32x4.extract_lane(s, 3);
  for (; k < K; k++) {
    const xk = load<f32>(x);
    s0 += loadW1<W>(w0) * xk;
    s1 += loadW1<W>(w1) * xk;
    s2 += loadW1<W>(w2) * xk;
    s3 += loadW1<W>(w3) * xk;
    x += 4;
    w0 += eb;
    w1 += eb;
    w2 += eb;
    w3 += eb;
  }
  store<f32>(out, s0);
  store<f32>(out, s1, 4);
  store<f32>(out, s2, 8);
  store<f32>(out, s3, 12);
}

/**
 * rows4 for f16 weights, fast: eight weights per load, converted by f16x8Scaled against xs = x ·
 * 2^112, so every product (hence every bit of the result) equals rows4<i16>'s. The k % 8 ≥ 4 step
 * and the tail go the exact way; rows holding inf/NaN weights are redone by rows4<i16>.
 */
// @ts-ignore: decorator
@inline function rows4F16(out: usize, x: usize, xs: usize, w: usize, stride: usize, K: i32): void {
  let w0 = w;
  let w1 = w + stride;
  let w2 = w1 + stride;
  let w3 = w2 + stride;
  let xp = xs;
  let a0 = f32x4.splat(0);
  let a1 = a0;
  let a2 = a0;
  let a3 = a0;
  let check = a0;
  let k = 0;
  for (; k + 8 <= K; k += 8) {
    const xa = v128.load(xp);
    const xb = v128.load(xp, 16);
    let h = v128.load(w0);
    check = f16InfNanMax(check, h);
    a0 = madd(f16x8Scaled(h, false), xa, a0);
    a0 = madd(f16x8Scaled(h, true), xb, a0);
    h = v128.load(w1);
    check = f16InfNanMax(check, h);
    a1 = madd(f16x8Scaled(h, false), xa, a1);
    a1 = madd(f16x8Scaled(h, true), xb, a1);
    h = v128.load(w2);
    check = f16InfNanMax(check, h);
    a2 = madd(f16x8Scaled(h, false), xa, a2);
    a2 = madd(f16x8Scaled(h, true), xb, a2);
    h = v128.load(w3);
    check = f16InfNanMax(check, h);
    a3 = madd(f16x8Scaled(h, false), xa, a3);
    a3 = madd(f16x8Scaled(h, true), xb, a3);
    xp += 32;
    w0 += 16;
    w1 += 16;
    w2 += 16;
    w3 += 16;
  }
  if (f16HasInfNan(check)) {
    rows4<i16>(out, x, w, stride, K);
    return;
  }
  let xk = x + (<usize>k << 2);
  if (k + 4 <= K) {
    const xv = v128.load(xk);
    a0 = madd(loadW<i16>(w0, 0), xv, a0);
    a1 = madd(loadW<i16>(w1, 0), xv, a1);
    a2 = madd(loadW<i16>(w2, 0), xv, a2);
    a3 = madd(loadW<i16>(w3, 0), xv, a3);
    xk += 16;
    w0 += 8;
    w1 += 8;
    w2 += 8;
    w3 += 8;
    k += 4;
  }
  finishRows4<i16>(out, hsum4(a0, a1, a2, a3), xk, w0, w1, w2, w3, k, K);
}

/**
 * Eight weight rows · x at a time (f32 weights only: f16 conversion needs registers that eight
 * rows would spill), the eight spread across the range: row i of each of eight equal parts
 * [w + j·E rows, …), j < 8, for i < E. Eight streams a whole part apart rather than eight adjacent
 * rows keep more hardware prefetch streams busy on matrices that do not fit in cache (decode's
 * case: ~8.5 → ~11 GB/s at K = 768 on one thread). One k-step per iteration: eight accumulators
 * are already enough in flight. Per row: one accumulator, hsum, then the tail, as dot.
 */
// @ts-ignore: decorator
@inline function rows8Spread(out: usize, x: usize, w: usize, stride: usize, K: i32, E: i32): void {
  const part = <usize>E * stride;
  const s1 = part;
  const s2 = part * 2;
  const s3 = part * 3;
  const eo = <usize>E << 2;
  for (let i = 0; i < E; i++) {
    let w0 = w + <usize>i * stride;
    let w4 = w0 + (part << 2);
    let xx = x;
    let a0 = f32x4.splat(0);
    let a1 = a0;
    let a2 = a0;
    let a3 = a0;
    let a4 = a0;
    let a5 = a0;
    let a6 = a0;
    let a7 = a0;
    let k = 0;
    for (; k + 4 <= K; k += 4) {
      const xv = v128.load(xx);
      a0 = madd(v128.load(w0), xv, a0);
      a1 = madd(v128.load(w0 + s1), xv, a1);
      a2 = madd(v128.load(w0 + s2), xv, a2);
      a3 = madd(v128.load(w0 + s3), xv, a3);
      a4 = madd(v128.load(w4), xv, a4);
      a5 = madd(v128.load(w4 + s1), xv, a5);
      a6 = madd(v128.load(w4 + s2), xv, a6);
      a7 = madd(v128.load(w4 + s3), xv, a7);
      xx += 16;
      w0 += 16;
      w4 += 16;
    }
    const h0 = hsum4(a0, a1, a2, a3);
    const h1 = hsum4(a4, a5, a6, a7);
    const o = out + (<usize>i << 2);
    store<f32>(o, f32x4.extract_lane(h0, 0));
    store<f32>(o + eo, f32x4.extract_lane(h0, 1));
    store<f32>(o + 2 * eo, f32x4.extract_lane(h0, 2));
    store<f32>(o + 3 * eo, f32x4.extract_lane(h0, 3));
    store<f32>(o + 4 * eo, f32x4.extract_lane(h1, 0));
    store<f32>(o + 5 * eo, f32x4.extract_lane(h1, 1));
    store<f32>(o + 6 * eo, f32x4.extract_lane(h1, 2));
    store<f32>(o + 7 * eo, f32x4.extract_lane(h1, 3));
    for (; k < K; k++) {
      const xk = load<f32>(xx);
      for (let r: usize = 0; r < 8; r++) {
        const d = o + r * eo;
        store<f32>(d, load<f32>(d) + load<f32>(w0 + r * part) * xk);
      }
      xx += 4;
      w0 += 4;
    }
  }
}

// ---- prompts (M > 1): packed panels -------------------------------------------------------------
// For M > 1 the x rows are packed in pairs and each group of four weight rows in this thread's
// scratch, k-step-major, so the tile kernel walks two pointers with immediate offsets. The
// per-element sequence is unchanged (an accumulator over k-steps of 4, hsum, the tail in order).

/** Pack x row pairs (2p, 2p+1) for p in [p0, p1): per k-step the pair's two vectors; then the tail, two values per k. */
export function pack_x2(dst: usize, x: usize, K: i32, p0: i32, p1: i32): void {
  const rowBytes = <usize>K << 2;
  for (let p = p0; p < p1; p++) {
    let a = x + <usize>(2 * p) * rowBytes;
    let b = a + rowBytes;
    let d = dst + <usize>p * (rowBytes << 1);
    let k = 0;
    for (; k + 4 <= K; k += 4) {
      v128.store(d, v128.load(a));
      v128.store(d, v128.load(b), 16);
      a += 16;
      b += 16;
      d += 32;
    }
    for (; k < K; k++) {
      store<f32>(d, load<f32>(a));
      store<f32>(d, load<f32>(b), 4);
      a += 4;
      b += 4;
      d += 8;
    }
  }
}

/** Pack weight rows [n, n+4) as f32 (exact): per k-step the four rows' vectors; then the tail, four values per k. */
// @ts-ignore: decorator
@inline function packW4<W>(dst: usize, w: usize, stride: usize, K: i32): void {
  const eb = elemBytes<W>();
  let w0 = w;
  let w1 = w + stride;
  let w2 = w1 + stride;
  let w3 = w2 + stride;
  let k = 0;
  for (; k + 4 <= K; k += 4) {
    v128.store(dst, loadW<W>(w0, 0));
    v128.store(dst, loadW<W>(w1, 0), 16);
    v128.store(dst, loadW<W>(w2, 0), 32);
    v128.store(dst, loadW<W>(w3, 0), 48);
    w0 += eb << 2;
    w1 += eb << 2;
    w2 += eb << 2;
    w3 += eb << 2;
    dst += 64;
  }
  for (; k < K; k++) {
    store<f32>(dst, loadW1<W>(w0));
    store<f32>(dst, loadW1<W>(w1), 4);
    store<f32>(dst, loadW1<W>(w2), 8);
    store<f32>(dst, loadW1<W>(w3), 12);
    w0 += eb;
    w1 += eb;
    w2 += eb;
    w3 += eb;
    dst += 16;
  }
}

/** out[m, n..n+4] and out[m+1, n..n+4] from a packed x pair and packed weights. */
// @ts-ignore: decorator
@inline function tile2x4p(out: usize, ldo: usize, xp: usize, wp: usize, K: i32): void {
  let a0 = f32x4.splat(0);
  let a1 = a0;
  let a2 = a0;
  let a3 = a0;
  let b0 = a0;
  let b1 = a0;
  let b2 = a0;
  let b3 = a0;
  let k = 0;
  for (; k + 4 <= K; k += 4) {
    const xa = v128.load(xp);
    const xb = v128.load(xp, 16);
    let wv = v128.load(wp);
    a0 = madd(wv, xa, a0);
    b0 = madd(wv, xb, b0);
    wv = v128.load(wp, 16);
    a1 = madd(wv, xa, a1);
    b1 = madd(wv, xb, b1);
    wv = v128.load(wp, 32);
    a2 = madd(wv, xa, a2);
    b2 = madd(wv, xb, b2);
    wv = v128.load(wp, 48);
    a3 = madd(wv, xa, a3);
    b3 = madd(wv, xb, b3);
    xp += 32;
    wp += 64;
  }
  let sa = hsum4(a0, a1, a2, a3);
  let sb = hsum4(b0, b1, b2, b3);
  for (; k < K; k++) {
    const wv = v128.load(wp);
    sa = f32x4.add(sa, f32x4.mul(wv, v128.load32_splat(xp)));
    sb = f32x4.add(sb, f32x4.mul(wv, v128.load32_splat(xp, 4)));
    xp += 8;
    wp += 16;
  }
  v128.store(out, sa);
  v128.store(out + ldo, sb);
}

/** out[m, n..n+4] for a lone x row (row-major) and packed weights. */
// @ts-ignore: decorator
@inline function tile1x4p(out: usize, x: usize, wp: usize, K: i32): void {
  let a0 = f32x4.splat(0);
  let a1 = a0;
  let a2 = a0;
  let a3 = a0;
  let k = 0;
  for (; k + 4 <= K; k += 4) {
    const xv = v128.load(x);
    a0 = madd(v128.load(wp), xv, a0);
    a1 = madd(v128.load(wp, 16), xv, a1);
    a2 = madd(v128.load(wp, 32), xv, a2);
    a3 = madd(v128.load(wp, 48), xv, a3);
    x += 16;
    wp += 64;
  }
  let s = hsum4(a0, a1, a2, a3);
  for (; k < K; k++) {
    s = f32x4.add(s, f32x4.mul(v128.load(wp), v128.load32_splat(x)));
    x += 4;
    wp += 16;
  }
  v128.store(out, s);
}

/**
 * The float-weight matmul. M = 1 streams weight rows eight (f32, spread apart: rows8Spread) or four
 * at a time straight from the weights. M > 1 walks x in blocks of rows that fit L2; for each group of four weight rows,
 * packed (and widened to f32) in this thread's scratch, 2 × 4 register tiles run down the block
 * over the packed x pairs xp (see pack_x2), so each weight load serves two x rows and each x load
 * four weight rows.
 */
// @ts-ignore: decorator
@inline function matmulFloat<W>(out: usize, x: usize, xs: usize, xp: usize, w: usize, M: i32, N: i32, K: i32, scratch: usize, n0: i32, n1: i32, tid: i32): void {
  const stride = <usize>K * elemBytes<W>();
  const xStride = <usize>K << 2;
  const ldo = <usize>N << 2;
  if (M == 1) {
    let n = n0;
    if (isFloat<W>()) {
      const E = (n1 - n) >> 3;
      if (E > 0) rows8Spread(out + (<usize>n << 2), x, w + <usize>n * stride, stride, K, E);
      n += E << 3;
    }
    if (isSigned<W>()) for (; n + 4 <= n1; n += 4) rows4F16(out + (<usize>n << 2), x, xs, w + <usize>n * stride, stride, K);
    for (; n + 4 <= n1; n += 4) rows4<W>(out + (<usize>n << 2), x, w + <usize>n * stride, stride, K);
    for (; n < n1; n++) store<f32>(out + (<usize>n << 2), dot<W>(w + <usize>n * stride, x, K));
    return;
  }
  if (M <= FEW_ROWS) {
    // A few rows (speculative verification, short prompts): memory-bound like M = 1, so each group
    // of four weight rows is read from memory once and stays in L1/L2 while every x row passes it;
    // packing the weights would cost more than it saves here.
    let n = n0;
    for (; n + 4 <= n1; n += 4) {
      const wn = w + <usize>n * stride;
      for (let m = 0; m < M; m++) rows4<W>(out + <usize>m * ldo + (<usize>n << 2), x + <usize>m * xStride, wn, stride, K);
    }
    for (; n < n1; n++) {
      for (let m = 0; m < M; m++) store<f32>(out + <usize>m * ldo + (<usize>n << 2), dot<W>(w + <usize>n * stride, x + <usize>m * xStride, K));
    }
    return;
  }
  const wPack = scratch + <usize>tid * (<usize>K << 4);
  const mBlock = max(2, X_BLOCK_BYTES / max(1, K * 4)) & ~1;
  for (let m0 = 0; m0 < M; m0 += mBlock) {
    const m1 = min(M, m0 + mBlock);
    let n = n0;
    for (; n + 4 <= n1; n += 4) {
      packW4<W>(wPack, w + <usize>n * stride, stride, K);
      const o = out + (<usize>n << 2);
      let m = m0;
      for (; m + 2 <= m1; m += 2) tile2x4p(o + <usize>m * ldo, ldo, xp + <usize>m * xStride, wPack, K);
      if (m < m1) tile1x4p(o + <usize>m * ldo, x + <usize>m * xStride, wPack, K);
    }
    for (; n < n1; n++) {
      for (let m = m0; m < m1; m++) {
        store<f32>(out + <usize>m * ldo + (<usize>n << 2), dot<W>(w + <usize>n * stride, x + <usize>m * xStride, K));
      }
    }
  }
}

/**
 * x: the activations (for f16/bf16 weights rounded to their precision, see round_f16/round_bf16);
 * xs: for f16, x · 2^112 (M = 1); xp: for M > 1, x's row pairs packed by pack_x2. scratch: K·16
 * bytes per thread.
 */
export function matmul_f32(out: usize, x: usize, xs: usize, xp: usize, w: usize, M: i32, N: i32, K: i32, scratch: usize, n0: i32, n1: i32, tid: i32): void {
  matmulFloat<f32>(out, x, xs, xp, w, M, N, K, scratch, n0, n1, tid);
}

export function matmul_f16(out: usize, x: usize, xs: usize, xp: usize, w: usize, M: i32, N: i32, K: i32, scratch: usize, n0: i32, n1: i32, tid: i32): void {
  matmulFloat<i16>(out, x, xs, xp, w, M, N, K, scratch, n0, n1, tid);
}

export function matmul_bf16(out: usize, x: usize, xs: usize, xp: usize, w: usize, M: i32, N: i32, K: i32, scratch: usize, n0: i32, n1: i32, tid: i32): void {
  matmulFloat<u16>(out, x, xs, xp, w, M, N, K, scratch, n0, n1, tid);
}

// ---- activation preparation ------------------------------------------------------------------

/**
 * dst = x rounded to f16 (as f32), and scaled = that times 2^112 (exact: |x| ≤ 65504 after
 * rounding) for the f16x8Scaled kernels, for rows [m0, m1) of K values.
 */
export function round_f16(dst: usize, scaled: usize, x: usize, K: i32, m0: i32, m1: i32): void {
  const end = <usize>m1 * K << 2;
  const s = f32x4.splat(reinterpret<f32>(0x77800000)); // 2^112
  let i = <usize>m0 * K << 2;
  for (; i + 16 <= end; i += 16) {
    const r = roundF16x4(v128.load(x + i));
    v128.store(dst + i, r);
    v128.store(scaled + i, f32x4.mul(r, s));
  }
  for (; i < end; i += 4) {
    const r = roundF16x4(load1(x + i));
    store1(dst + i, r);
    store1(scaled + i, f32x4.mul(r, s));
  }
}

/** dst = x rounded to bf16 (as f32) for rows [m0, m1) of K values. */
export function round_bf16(dst: usize, x: usize, K: i32, m0: i32, m1: i32): void {
  const end = <usize>m1 * K << 2;
  let i = <usize>m0 * K << 2;
  for (; i + 16 <= end; i += 16) v128.store(dst + i, roundBf16x4(v128.load(x + i)));
  for (; i < end; i += 4) store1(dst + i, roundBf16x4(load1(x + i)));
}

/**
 * Quantize rows [m0, m1) of x (K a multiple of 32) to Q8_0 as ggml does for activations and
 * tensor/quant.ts quantizeQ8_0(..., activation = true) reproduces: per block of 32, d = amax/127
 * stored as f16, q = round-half-even(x · (127/amax)) with the scale and product taken in f64 and
 * the product rounded to f32 first. Each block is written in the forms the kernels read:
 *   q16: 32 × i16 in order (64 bytes)            q8: 32 × i8 (32 bytes)
 *   eo:  32 × i16 as q[0,2,..14] q[1,3,..15] q[16,18,..30] q[17,19,..31] (the Q4_0 nibble order)
 *   d:   the f16 scale as f32                    s: −8 · Σq (the Q4_0 offset correction)
 */
export function quantize_q8(q16: usize, q8: usize, eo: usize, d: usize, s: usize, x: usize, K: i32, m0: i32, m1: i32): void {
  const nb = K >> 5;
  for (let b = m0 * nb, end = m1 * nb; b < end; b++) {
    const src = x + (<usize>b << 7);
    let amaxv = f32x4.splat(0);
    for (let j = 0; j < 128; j += 16) amaxv = f32x4.max(amaxv, f32x4.abs(v128.load(src + j)));
    const amax = max(max(f32x4.extract_lane(amaxv, 0), f32x4.extract_lane(amaxv, 1)), max(f32x4.extract_lane(amaxv, 2), f32x4.extract_lane(amaxv, 3)));
    const dx = <f32>(<f64>amax / 127.0);
    const dbits = i32x4.extract_lane(f16bits(f32x4.splat(dx)), 0);
    store<f32>(d + (<usize>b << 2), f16(<u16>dbits));
    const id = f64x2.splat(amax != 0 ? 127.0 / <f64>amax : 0.0);
    let sum = i32x4.splat(0);
    const dst = q16 + (<usize>b << 6);
    for (let j = 0; j < 32; j += 8) {
      const lo = v128.load(src + (<usize>j << 2));
      const hi = v128.load(src + (<usize>j << 2), 16);
      const qlo = quant4(lo, id);
      const qhi = quant4(hi, id);
      sum = i32x4.add(sum, i32x4.add(qlo, qhi));
      const q16v = i16x8.narrow_i32x4_s(qlo, qhi);
      v128.store(dst + (<usize>j << 1), q16v);
      v128.store64_lane(q8 + (<usize>b << 5) + <usize>j, i8x16.narrow_i16x8_s(q16v, q16v), 0);
    }
    // even/odd order: from the halves q[0..16) = (a, b) and q[16..32) = (c, e) of i16 vectors
    const a = v128.load(dst);
    const bv = v128.load(dst, 16);
    const c = v128.load(dst, 32);
    const e = v128.load(dst, 48);
    const o = eo + (<usize>b << 6);
    v128.store(o, v128.shuffle<i16>(a, bv, 0, 2, 4, 6, 8, 10, 12, 14));
    v128.store(o, v128.shuffle<i16>(a, bv, 1, 3, 5, 7, 9, 11, 13, 15), 16);
    v128.store(o, v128.shuffle<i16>(c, e, 0, 2, 4, 6, 8, 10, 12, 14), 32);
    v128.store(o, v128.shuffle<i16>(c, e, 1, 3, 5, 7, 9, 11, 13, 15), 48);
    store<i32>(s + (<usize>b << 2), -8 * hsumi(sum));
  }
}

/** round-half-even(f32(x · id)) for four lanes, with the product in f64 as the reference takes it. */
// @ts-ignore: decorator
@inline export function quant4(x: v128, id: v128): v128 {
  const lo = f32x4.demote_f64x2_zero(f64x2.mul(f64x2.promote_low_f32x4(x), id));
  const hi = f32x4.demote_f64x2_zero(f64x2.mul(f64x2.promote_low_f32x4(v128.shuffle<f32>(x, x, 2, 3, 0, 1)), id));
  return i32x4.trunc_sat_f32x4_s(f32x4.nearest(v128.shuffle<i64>(lo, hi, 0, 2)));
}

// ---- quantized matmuls -------------------------------------------------------------------------

/** Integer partial sums (4 lanes) of one Q8_0 weight block (32 × i8 after a 2-byte scale) · x. */
// @ts-ignore: decorator
@inline export function blockQ8(wb: usize, x0: v128, x1: v128, x2: v128, x3: v128): v128 {
  const a = v128.load(wb, 2);
  const b = v128.load(wb, 18);
  let t = i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(a), x0);
  t = i32x4.add(t, i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(a), x1));
  t = i32x4.add(t, i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(b), x2));
  return i32x4.add(t, i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(b), x3));
}

/**
 * Integer partial sums of one Q4_0 weight block (16 bytes of nibbles after a 2-byte scale) · x,
 * the −8 offset included through corr (−8·Σx in lane 0). The nibbles (0..15) multiply as they are:
 * the relaxed build with i8 x (a nibble is a valid i7 operand); the SIMD build cuts them out of
 * 16-bit lanes, which gives them in even/odd order, against x stored in that order (x0..x3 = eo).
 */
// @ts-ignore: decorator
@inline function blockQ4(wb: usize, x0: v128, x1: v128, x2: v128, x3: v128, xa: v128, xb: v128, corr: v128): v128 {
  const n = v128.load(wb, 2);
  if (ASC_FEATURE_RELAXED_SIMD) {
    // i16 pair sums (|x·nibble| ≤ 1905, so the sum of both halves' pairs fits), then i32 lanes.
    // (Not i32x4.relaxed_dot_i8x16_i7x16_add_s: Node 20's V8 computes 2·dot and drops the addend.)
    const lo = v128.and(n, i8x16.splat(0x0f));
    const hi = i8x16.shr_u(n, 4);
    const pairs = i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(xa, lo), i16x8.relaxed_dot_i8x16_i7x16_s(xb, hi));
    return i32x4.add(i32x4.extadd_pairwise_i16x8_s(pairs), corr);
  } else {
    // 16-bit lane l holds bytes 2l and 2l+1: values 2l, 2l+16 (byte 2l) and 2l+1, 2l+17 (byte 2l+1)
    const mask = i16x8.splat(0x0f);
    const even = v128.and(n, mask);
    const odd = v128.and(i16x8.shr_u(n, 8), mask);
    const evenHi = v128.and(i16x8.shr_u(n, 4), mask);
    const oddHi = i16x8.shr_u(n, 12);
    let t = i32x4.add(i32x4.dot_i16x8_s(even, x0), corr);
    t = i32x4.add(t, i32x4.dot_i16x8_s(odd, x1));
    t = i32x4.add(t, i32x4.dot_i16x8_s(evenHi, x2));
    return i32x4.add(t, i32x4.dot_i16x8_s(oddHi, x3));
  }
}

/** The four rows' f16 block scales (at w0..w3) as f32 lanes. */
// @ts-ignore: decorator
@inline export function scales4(w0: usize, w1: usize, w2: usize, w3: usize): v128 {
  let v = v128.load16_lane(w0, i32x4.splat(0), 0);
  v = v128.load16_lane(w1, v, 1);
  v = v128.load16_lane(w2, v, 2);
  v = v128.load16_lane(w3, v, 3);
  return f16x4(i32x4.extend_low_i16x8_s(v));
}

/**
 * out[0..4] = four quantized weight rows (rowBytes apart) · one prepared x row. Q4 selects the
 * Q4_0 block kernel (18-byte blocks), else Q8_0 (34-byte blocks).
 */
// @ts-ignore: decorator
@inline function rows4Q<T>(out: usize, x16: usize, x8: usize, xd: usize, xs: usize, w: usize, rowBytes: usize, nb: i32): void {
  const Q4: bool = !isSigned<T>();
  const blockBytes: usize = Q4 ? 18 : 34;
  let w0 = w;
  let w1 = w + rowBytes;
  let w2 = w1 + rowBytes;
  let w3 = w2 + rowBytes;
  let acc = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    let t0 = i32x4.splat(0);
    let t1 = t0;
    let t2 = t0;
    let t3 = t0;
    if (Q4 && ASC_FEATURE_RELAXED_SIMD) {
      const xa = v128.load(x8);
      const xb = v128.load(x8, 16);
      const corr = v128.load32_zero(xs);
      const z = i32x4.splat(0);
      t0 = blockQ4(w0, z, z, z, z, xa, xb, corr);
      t1 = blockQ4(w1, z, z, z, z, xa, xb, corr);
      t2 = blockQ4(w2, z, z, z, z, xa, xb, corr);
      t3 = blockQ4(w3, z, z, z, z, xa, xb, corr);
    } else {
      const x0 = v128.load(x16);
      const x1 = v128.load(x16, 16);
      const x2 = v128.load(x16, 32);
      const x3 = v128.load(x16, 48);
      if (Q4) {
        const z = i32x4.splat(0);
        const corr = v128.load32_zero(xs);
        t0 = blockQ4(w0, x0, x1, x2, x3, z, z, corr);
        t1 = blockQ4(w1, x0, x1, x2, x3, z, z, corr);
        t2 = blockQ4(w2, x0, x1, x2, x3, z, z, corr);
        t3 = blockQ4(w3, x0, x1, x2, x3, z, z, corr);
      } else {
        t0 = blockQ8(w0, x0, x1, x2, x3);
        t1 = blockQ8(w1, x0, x1, x2, x3);
        t2 = blockQ8(w2, x0, x1, x2, x3);
        t3 = blockQ8(w3, x0, x1, x2, x3);
      }
    }
    const isum = f32x4.convert_i32x4_s(hsum4i(t0, t1, t2, t3));
    const d = f32x4.mul(scales4(w0, w1, w2, w3), v128.load32_splat(xd));
    acc = f32x4.add(acc, f32x4.mul(isum, d));
    w0 += blockBytes;
    w1 += blockBytes;
    w2 += blockBytes;
    w3 += blockBytes;
    x16 += 64;
    x8 += 32;
    xd += 4;
    xs += 4;
  }
  v128.store(out, acc);
}

/** One quantized weight row · one prepared x row, with rows4Q's per-lane arithmetic. */
// @ts-ignore: decorator
@inline function rowQ<T>(x16: usize, x8: usize, xd: usize, xs: usize, w: usize, nb: i32): f32 {
  const Q4: bool = !isSigned<T>();
  const blockBytes: usize = Q4 ? 18 : 34;
  let acc: f32 = 0;
  for (let b = 0; b < nb; b++) {
    let t = i32x4.splat(0);
    if (Q4 && ASC_FEATURE_RELAXED_SIMD) {
      const z = i32x4.splat(0);
      t = blockQ4(w, z, z, z, z, v128.load(x8), v128.load(x8, 16), v128.load32_zero(xs));
    } else if (Q4) {
      const z = i32x4.splat(0);
      t = blockQ4(w, v128.load(x16), v128.load(x16, 16), v128.load(x16, 32), v128.load(x16, 48), z, z, v128.load32_zero(xs));
    } else {
      t = blockQ8(w, v128.load(x16), v128.load(x16, 16), v128.load(x16, 32), v128.load(x16, 48));
    }
    acc += <f32>hsumi(t) * (f16(load<u16>(w)) * load<f32>(xd));
    w += blockBytes;
    x16 += 64;
    x8 += 32;
    xd += 4;
    xs += 4;
  }
  return acc;
}

/**
 * The quantized matmul over prepared activations (see quantize_q8): x16/x8/xd/xs hold M rows of
 * K/32 blocks (x16: the in-order i16 form for Q8_0, the even/odd form for Q4_0). For M > 1 each group of four weight rows stays in L1 while the x rows of an
 * L2-sized block go past it.
 */
// @ts-ignore: decorator
@inline function matmulQ<T>(out: usize, x16: usize, x8: usize, xd: usize, xs: usize, w: usize, M: i32, N: i32, K: i32, n0: i32, n1: i32): void {
  const Q4: bool = !isSigned<T>();
  const nb = K >> 5;
  const rowBytes = <usize>nb * (Q4 ? 18 : 34);
  const ldo = <usize>N << 2;
  const mBlock = max(1, X_BLOCK_BYTES / max(1, nb * 64));
  for (let m0 = 0; m0 < M; m0 += mBlock) {
    const m1 = min(M, m0 + mBlock);
    let n = n0;
    for (; n + 4 <= n1; n += 4) {
      const wn = w + <usize>n * rowBytes;
      for (let m = m0; m < m1; m++) {
        const b = <usize>m * nb;
        rows4Q<T>(out + <usize>m * ldo + (<usize>n << 2), x16 + (b << 6), x8 + (b << 5), xd + (b << 2), xs + (b << 2), wn, rowBytes, nb);
      }
    }
    for (; n < n1; n++) {
      const wn = w + <usize>n * rowBytes;
      for (let m = m0; m < m1; m++) {
        const b = <usize>m * nb;
        store<f32>(out + <usize>m * ldo + (<usize>n << 2), rowQ<T>(x16 + (b << 6), x8 + (b << 5), xd + (b << 2), xs + (b << 2), wn, nb));
      }
    }
  }
}

export function matmul_q8_0(out: usize, x16: usize, x8: usize, xd: usize, xs: usize, w: usize, M: i32, N: i32, K: i32, n0: i32, n1: i32): void {
  matmulQ<i8>(out, x16, x8, xd, xs, w, M, N, K, n0, n1);
}

export function matmul_q4_0(out: usize, x16: usize, x8: usize, xd: usize, xs: usize, w: usize, M: i32, N: i32, K: i32, n0: i32, n1: i32): void {
  matmulQ<u8>(out, x16, x8, xd, xs, w, M, N, K, n0, n1);
}
