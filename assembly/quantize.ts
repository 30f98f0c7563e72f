// Weight quantizers for `smallmind quantize` (src/backend/wasm/quantizer.ts): Q4_K, Q5_K, Q6_K,
// and Q8_0, Q4_0. The K-quants follow src/tensor/quant-k.ts (which reproduces ggml's
// quantize_row_q{4,5,6}_K_ref) operation for operation, in native f32 arithmetic: the TS version
// rounds every operation with Math.fround and emulates C's nearest_int; here an f32 operation is
// one instruction and nearest_int is C's own trick (add 1.5·2^23, read the mantissa). The scale
// searches, which are most of the work, fit four sub-blocks at once, one per SIMD lane: per lane
// the same f32 operations in the same order, the scalar code's branches turned into per-lane
// selects. No fused multiply-add anywhere, so the bytes are quant-k.ts's (and ggml's).
//
// Each kernel quantizes blocks [b0, b1) of f32 values at src into blocks at dst, using
// QUANT_SCRATCH bytes of scratch per thread at scratch + tid·QUANT_SCRATCH (the module has no
// static data and no allocator, so scratch is the caller's).
import { f16, f16bits } from './simd';

/** Scratch bytes one thread needs (see the layout below). */
const QUANT_SCRATCH: usize = 4096;
// scratch layout, in bytes. The K-quant fit runs on four sub-blocks at once, one per SIMD lane:
// its arrays hold, for each of the 32 positions i, the four sub-blocks' values at i (one v128).
const XT: usize = 0; // v128[32]: the four sub-blocks' values
const WT: usize = 512; // v128[32]: their fitting weights
const XMT: usize = 1024; // v128[32]: x − min
const LT: usize = 1536; // v128[32]: the best quants so far (i32 lanes)
const LAUXT: usize = 2048; // v128[32]: a trial's quants (i32 lanes)
const L: usize = 2560; // u8[256]: the super-block's quants, in value order
const SCALES: usize = 2816; // f32[16]: per sub-block scales
const MINS: usize = 2880; // f32[8]: per sub-block mins

/** ggml's GROUP_MAX_EPS: below it a group counts as all zero. */
const GROUP_MAX_EPS: f32 = 1e-15;

/** Scratch bytes per thread the quantizers need. */
export function quantize_scratch_bytes(): i32 {
  return <i32>QUANT_SCRATCH;
}

/** C's nearest_int: fval + 1.5·2^23 in f32, its low mantissa bits read back as an integer. */
// @ts-ignore: decorator
@inline function nearestInt(v: f32): i32 {
  return (reinterpret<i32>(v + <f32>12582912.0) & 0x007fffff) - 0x00400000;
}

/** nearestInt in each lane. */
// @ts-ignore: decorator
@inline function nearestInt4(v: v128): v128 {
  const bits = f32x4.add(v, f32x4.splat(12582912.0));
  return i32x4.sub(v128.and(bits, i32x4.splat(0x007fffff)), i32x4.splat(0x00400000));
}

// @ts-ignore: decorator
@inline function clampi(v: i32, lo: i32, hi: i32): i32 {
  return v < lo ? lo : v > hi ? hi : v;
}

// @ts-ignore: decorator
@inline function f32ToF16(v: f32): u16 {
  return <u16>i32x4.extract_lane(f16bits(f32x4.splat(v)), 0);
}

/**
 * ggml's make_qkx2_quants for four sub-blocks of 32 at once, sub-block l in lane l (values at
 * s + XT, weights at s + WT): x ≈ scale·L − min with L in 0..nmax, weighted least squares over
 * nstep + 1 trial scales. Each lane takes exactly the scalar algorithm's steps (an f32 operation
 * per lane is the same f32 operation; the branches become per-lane selects), so the result is
 * the scalar fit's. Writes the quants at s + LT and the four scales and mins (−min: subtracted)
 * at scales and mins.
 */
function makeQkx2Quants4(nmax: i32, s: usize, rmin: f32, rdelta: f32, nstep: i32, scales: usize, mins: usize): void {
  const xt = s + XT;
  const wt = s + WT;
  const xmt = s + XMT;
  const lt = s + LT;
  const lauxt = s + LAUXT;
  const zero = f32x4.splat(0);
  const top = i32x4.splat(nmax);
  let min = v128.load(xt);
  let max = min;
  let sumW = v128.load(wt);
  let sumX = f32x4.mul(sumW, min);
  for (let i: usize = 16; i < 512; i += 16) {
    const x = v128.load(xt + i);
    const w = v128.load(wt + i);
    min = v128.bitselect(x, min, f32x4.lt(x, min));
    max = v128.bitselect(x, max, f32x4.gt(x, max));
    sumW = f32x4.add(sumW, w);
    sumX = f32x4.add(sumX, f32x4.mul(w, x));
  }
  min = v128.bitselect(zero, min, f32x4.gt(min, zero));
  // A constant sub-block (max == min) gets L = 0, scale 0 and its min; its lane computes
  // meaningless numbers below, which cannot reach the other lanes and are replaced at the end.
  const flat = f32x4.eq(max, min);
  const flatMin = min;
  for (let i: usize = 0; i < 512; i += 16) v128.store(xmt + i, f32x4.sub(v128.load(xt + i), min));
  const fmax = f32x4.splat(<f32>nmax);
  let iscale = f32x4.div(fmax, f32x4.sub(max, min));
  let scale = f32x4.div(f32x4.splat(1), iscale);
  let bestError = zero;
  for (let i: usize = 0; i < 512; i += 16) {
    const q = i32x4.max_s(i32x4.min_s(nearestInt4(f32x4.mul(iscale, v128.load(xmt + i))), top), i32x4.splat(0));
    v128.store(lt + i, q);
    const diff = f32x4.sub(f32x4.add(f32x4.mul(scale, f32x4.convert_i32x4_s(q)), min), v128.load(xt + i));
    bestError = f32x4.add(bestError, f32x4.mul(v128.load(wt + i), f32x4.mul(diff, diff)));
  }
  for (let is = 0; is <= nstep; is++) {
    // min is the best fit so far, not the data's minimum, once a trial has won (as in ggml)
    iscale = f32x4.div(f32x4.add(f32x4.splat(rmin + rdelta * <f32>is), fmax), f32x4.sub(max, min));
    let sumL = zero;
    let sumL2 = zero;
    let sumXL = zero;
    for (let i: usize = 0; i < 512; i += 16) {
      const q = i32x4.max_s(i32x4.min_s(nearestInt4(f32x4.mul(iscale, v128.load(xmt + i))), top), i32x4.splat(0));
      v128.store(lauxt + i, q);
      const fq = f32x4.convert_i32x4_s(q);
      const wl = f32x4.mul(v128.load(wt + i), fq);
      sumL = f32x4.add(sumL, wl);
      sumL2 = f32x4.add(sumL2, f32x4.mul(wl, fq));
      sumXL = f32x4.add(sumXL, f32x4.mul(wl, v128.load(xt + i)));
    }
    const D = f32x4.sub(f32x4.mul(sumW, sumL2), f32x4.mul(sumL, sumL));
    const solvable = f32x4.gt(D, zero);
    if (!v128.any_true(solvable)) continue;
    let thisScale = f32x4.div(f32x4.sub(f32x4.mul(sumW, sumXL), f32x4.mul(sumX, sumL)), D);
    let thisMin = f32x4.div(f32x4.sub(f32x4.mul(sumL2, sumX), f32x4.mul(sumL, sumXL)), D);
    const positive = f32x4.gt(thisMin, zero);
    thisMin = v128.bitselect(zero, thisMin, positive);
    thisScale = v128.bitselect(f32x4.div(sumXL, sumL2), thisScale, positive);
    let curError = zero;
    for (let i: usize = 0; i < 512; i += 16) {
      const diff = f32x4.sub(f32x4.add(f32x4.mul(thisScale, f32x4.convert_i32x4_s(v128.load(lauxt + i))), thisMin), v128.load(xt + i));
      curError = f32x4.add(curError, f32x4.mul(v128.load(wt + i), f32x4.mul(diff, diff)));
    }
    const better = v128.and(solvable, f32x4.lt(curError, bestError));
    if (!v128.any_true(better)) continue;
    for (let i: usize = 0; i < 512; i += 16) v128.store(lt + i, v128.bitselect(v128.load(lauxt + i), v128.load(lt + i), better));
    bestError = v128.bitselect(curError, bestError, better);
    scale = v128.bitselect(thisScale, scale, better);
    // x − min again where min changed (recomputing it where it did not gives the same values)
    min = v128.bitselect(thisMin, min, better);
    for (let i: usize = 0; i < 512; i += 16) v128.store(xmt + i, f32x4.sub(v128.load(xt + i), min));
  }
  for (let i: usize = 0; i < 512; i += 16) v128.store(lt + i, v128.andnot(v128.load(lt + i), flat));
  v128.store(scales, v128.bitselect(zero, scale, flat));
  v128.store(mins, f32x4.neg(v128.bitselect(flatMin, min, flat)));
}

/** Sub-block j's 6-bit scale from the 12 scale bytes at q. */
// @ts-ignore: decorator
@inline function kScale(q: usize, j: usize): i32 {
  return j < 4 ? load<u8>(q + j) & 63 : (load<u8>(q + j + 4) & 0xf) | ((load<u8>(q + j - 4) >> 6) << 4);
}

/** Sub-block j's 6-bit min from the 12 scale bytes at q. */
// @ts-ignore: decorator
@inline function kMin(q: usize, j: usize): i32 {
  return j < 4 ? load<u8>(q + j + 4) & 63 : (load<u8>(q + j + 4) >> 4) | ((load<u8>(q + j) >> 6) << 4);
}

/**
 * The shared part of Q4_K and Q5_K (quant-k.ts quantizeScaleMinBlock): per sub-block of 32 a
 * scale/min fit, 6-bit scales and mins against two f16 super-block scales, then the values
 * requantized with the rounded scales. Writes d, dmin and the scale bytes at dst, the quants at s + L.
 */
function scaleMinBlock(x: usize, nmax: i32, rmin: f32, nstep: i32, dst: usize, s: usize): void {
  const l = s + L;
  for (let g: usize = 0; g < 8; g += 4) {
    // sub-blocks g..g+3 into the lanes, each with its weights avX + |x|, avX = √(Σx²/32)
    let sumX2 = f32x4.splat(0);
    for (let i: usize = 0; i < 32; i++) {
      const v = f32x4(load<f32>(x + (g << 7) + (i << 2)), load<f32>(x + ((g + 1) << 7) + (i << 2)), load<f32>(x + ((g + 2) << 7) + (i << 2)), load<f32>(x + ((g + 3) << 7) + (i << 2)));
      v128.store(s + XT + (i << 4), v);
      sumX2 = f32x4.add(sumX2, f32x4.mul(v, v));
    }
    const avX = f32x4.sqrt(f32x4.div(sumX2, f32x4.splat(32)));
    for (let i: usize = 0; i < 32; i++) v128.store(s + WT + (i << 4), f32x4.add(avX, f32x4.abs(v128.load(s + XT + (i << 4)))));
    makeQkx2Quants4(nmax, s, rmin, 0.1, nstep, s + SCALES + (g << 2), s + MINS + (g << 2));
    for (let i: usize = 0; i < 32; i++) {
      const q = v128.load(s + LT + (i << 4));
      store<u8>(l + (g << 5) + i, <u8>i32x4.extract_lane(q, 0));
      store<u8>(l + ((g + 1) << 5) + i, <u8>i32x4.extract_lane(q, 1));
      store<u8>(l + ((g + 2) << 5) + i, <u8>i32x4.extract_lane(q, 2));
      store<u8>(l + ((g + 3) << 5) + i, <u8>i32x4.extract_lane(q, 3));
    }
  }
  let maxScale: f32 = 0;
  let maxMin: f32 = 0;
  for (let j: usize = 0; j < 8; j++) {
    const scale = load<f32>(s + SCALES + (j << 2));
    const min = load<f32>(s + MINS + (j << 2));
    if (scale > maxScale) maxScale = scale;
    if (min > maxMin) maxMin = min;
  }
  const invScale: f32 = maxScale > 0 ? <f32>63.0 / maxScale : 0;
  const invMin: f32 = maxMin > 0 ? <f32>63.0 / maxMin : 0;
  const sc = dst + 4;
  for (let j: usize = 0; j < 8; j++) {
    // C stores nearest_int into a uint8_t first, then takes MIN(63, ·)
    const ls = min<i32>(63, nearestInt(invScale * load<f32>(s + SCALES + (j << 2))) & 0xff);
    const lm = min<i32>(63, nearestInt(invMin * load<f32>(s + MINS + (j << 2))) & 0xff);
    if (j < 4) {
      store<u8>(sc + j, <u8>ls);
      store<u8>(sc + j + 4, <u8>lm);
    } else {
      store<u8>(sc + j + 4, <u8>((ls & 0xf) | ((lm & 0xf) << 4)));
      store<u8>(sc + j - 4, load<u8>(sc + j - 4) | <u8>((ls >> 4) << 6));
      store<u8>(sc + j, load<u8>(sc + j) | <u8>((lm >> 4) << 6));
    }
  }
  const dBits = f32ToF16(maxScale / 63);
  const dminBits = f32ToF16(maxMin / 63);
  store<u16>(dst, dBits);
  store<u16>(dst + 2, dminBits);
  const d = f16(dBits);
  const dmin = f16(dminBits);
  for (let j: usize = 0; j < 8; j++) {
    const dj: f32 = d * <f32>kScale(sc, j);
    if (dj == 0) continue; // keeps the fit's L, as ggml does
    const mj: f32 = dmin * <f32>kMin(sc, j);
    for (let i: usize = 0; i < 32; i++) {
      const v = load<f32>(x + (j << 7) + (i << 2));
      store<u8>(l + (j << 5) + i, <u8>clampi(nearestInt((v + mj) / dj), 0, nmax));
    }
  }
}

/** Super-blocks [b0, b1) of src as Q4_K (144 bytes each) at dst, as quant-k.ts quantizeQ4_K. */
export function quantize_q4_k(dst: usize, src: usize, scratch: usize, b0: i32, b1: i32, tid: i32): void {
  const s = scratch + <usize>tid * QUANT_SCRATCH;
  const l = s + L;
  for (let b = b0; b < b1; b++) {
    const x = src + (<usize>b << 10);
    const out = dst + <usize>b * 144;
    scaleMinBlock(x, 15, -1, 20, out, s);
    for (let j: usize = 0; j < 4; j++) {
      for (let i: usize = 0; i < 32; i++) {
        store<u8>(out + 16 + (j << 5) + i, load<u8>(l + (j << 6) + i) | (load<u8>(l + (j << 6) + i + 32) << 4));
      }
    }
  }
}

/** Super-blocks [b0, b1) of src as Q5_K (176 bytes each) at dst, as quant-k.ts quantizeQ5_K. */
export function quantize_q5_k(dst: usize, src: usize, scratch: usize, b0: i32, b1: i32, tid: i32): void {
  const s = scratch + <usize>tid * QUANT_SCRATCH;
  const l = s + L;
  for (let b = b0; b < b1; b++) {
    const x = src + (<usize>b << 10);
    const out = dst + <usize>b * 176;
    scaleMinBlock(x, 31, -0.5, 15, out, s);
    const qh = out + 16;
    const qs = out + 48;
    memory.fill(qh, 0, 32);
    for (let j: usize = 0; j < 4; j++) {
      for (let i: usize = 0; i < 32; i++) {
        const lo = load<u8>(l + (j << 6) + i);
        const hi = load<u8>(l + (j << 6) + i + 32);
        store<u8>(qh + i, load<u8>(qh + i) | ((lo >> 4) << <u8>(2 * j)) | ((hi >> 4) << <u8>(2 * j + 1)));
        store<u8>(qs + (j << 5) + i, (lo & 0xf) | ((hi & 0xf) << 4));
      }
    }
  }
}

/**
 * ggml's make_qx_quants (rmse_type 1, no importance weights) for four sub-blocks of 16, one per
 * lane (values at s + XT, 16 positions): x ≈ scale·(L − 32), L in 0..63, weighted by x², refined
 * over 18 trial scales. Per lane exactly the scalar steps, as makeQkx2Quants4. Writes the quants
 * (i32 lanes) at s + LT and the four scales at scales.
 */
function makeQxQuants4(s: usize, scales: usize): void {
  const xt = s + XT;
  const lt = s + LT;
  const zero = f32x4.splat(0);
  const lo = i32x4.splat(-32);
  const hi = i32x4.splat(31);
  let max = zero;
  let amax = zero;
  for (let i: usize = 0; i < 256; i += 16) {
    const x = v128.load(xt + i);
    const larger = f32x4.gt(f32x4.abs(x), amax);
    amax = v128.bitselect(f32x4.abs(x), amax, larger);
    max = v128.bitselect(x, max, larger);
  }
  const empty = f32x4.lt(amax, f32x4.splat(GROUP_MAX_EPS)); // L = 0 and scale 0, replaced at the end
  let iscale = f32x4.div(f32x4.splat(-32), max);
  let sumLX = zero;
  let sumL2 = zero;
  for (let i: usize = 0; i < 256; i += 16) {
    const x = v128.load(xt + i);
    const q = i32x4.max_s(i32x4.min_s(nearestInt4(f32x4.mul(iscale, x)), hi), lo);
    v128.store(lt + i, i32x4.add(q, i32x4.splat(32)));
    const fq = f32x4.convert_i32x4_s(q);
    const w = f32x4.mul(x, x);
    sumLX = f32x4.add(sumLX, f32x4.mul(f32x4.mul(w, x), fq));
    sumL2 = f32x4.add(sumL2, f32x4.mul(f32x4.mul(w, fq), fq));
  }
  let scale = v128.bitselect(f32x4.div(sumLX, sumL2), zero, f32x4.ne(sumL2, zero));
  let best = f32x4.mul(scale, sumLX);
  for (let is = -9; is <= 9; is++) {
    if (is == 0) continue;
    iscale = f32x4.div(f32x4.splat(-(<f32>32 + <f32>0.1 * <f32>is)), max);
    sumLX = zero;
    sumL2 = zero;
    for (let i: usize = 0; i < 256; i += 16) {
      const x = v128.load(xt + i);
      const fq = f32x4.convert_i32x4_s(i32x4.max_s(i32x4.min_s(nearestInt4(f32x4.mul(iscale, x)), hi), lo));
      const w = f32x4.mul(x, x);
      sumLX = f32x4.add(sumLX, f32x4.mul(f32x4.mul(w, x), fq));
      sumL2 = f32x4.add(sumL2, f32x4.mul(f32x4.mul(w, fq), fq));
    }
    const better = v128.and(f32x4.gt(sumL2, zero), f32x4.gt(f32x4.mul(sumLX, sumLX), f32x4.mul(best, sumL2)));
    if (!v128.any_true(better)) continue;
    for (let i: usize = 0; i < 256; i += 16) {
      const q = i32x4.max_s(i32x4.min_s(nearestInt4(f32x4.mul(iscale, v128.load(xt + i))), hi), lo);
      v128.store(lt + i, v128.bitselect(i32x4.add(q, i32x4.splat(32)), v128.load(lt + i), better));
    }
    const trialScale = f32x4.div(sumLX, sumL2);
    scale = v128.bitselect(trialScale, scale, better);
    best = v128.bitselect(f32x4.mul(trialScale, sumLX), best, better);
  }
  for (let i: usize = 0; i < 256; i += 16) v128.store(lt + i, v128.andnot(v128.load(lt + i), empty));
  v128.store(scales, v128.bitselect(zero, scale, empty));
}

/** Super-blocks [b0, b1) of src as Q6_K (210 bytes each) at dst, as quant-k.ts quantizeQ6_K. */
export function quantize_q6_k(dst: usize, src: usize, scratch: usize, b0: i32, b1: i32, tid: i32): void {
  const s = scratch + <usize>tid * QUANT_SCRATCH;
  const l = s + L;
  const scales = s + SCALES;
  for (let b = b0; b < b1; b++) {
    const x = src + (<usize>b << 10);
    const out = dst + <usize>b * 210;
    let maxScale: f32 = 0;
    let maxAbsScale: f32 = 0;
    for (let g: usize = 0; g < 16; g += 4) {
      // sub-blocks g..g+3 of 16 into the lanes
      for (let i: usize = 0; i < 16; i++) {
        const at = x + (i << 2);
        v128.store(s + XT + (i << 4), f32x4(load<f32>(at + (g << 6)), load<f32>(at + ((g + 1) << 6)), load<f32>(at + ((g + 2) << 6)), load<f32>(at + ((g + 3) << 6))));
      }
      makeQxQuants4(s, scales + (g << 2));
      for (let i: usize = 0; i < 16; i++) {
        const q = v128.load(s + LT + (i << 4));
        store<u8>(l + (g << 4) + i, <u8>i32x4.extract_lane(q, 0));
        store<u8>(l + ((g + 1) << 4) + i, <u8>i32x4.extract_lane(q, 1));
        store<u8>(l + ((g + 2) << 4) + i, <u8>i32x4.extract_lane(q, 2));
        store<u8>(l + ((g + 3) << 4) + i, <u8>i32x4.extract_lane(q, 3));
      }
    }
    for (let ib: usize = 0; ib < 16; ib++) {
      const scale = load<f32>(scales + (ib << 2));
      const absScale = Mathf.abs(scale);
      if (absScale > maxAbsScale) {
        maxAbsScale = absScale;
        maxScale = scale;
      }
    }
    if (maxAbsScale < GROUP_MAX_EPS) {
      memory.fill(out, 0, 210);
      continue;
    }
    const iscale: f32 = <f32>-128.0 / maxScale;
    const dBits = f32ToF16(<f32>1.0 / iscale);
    store<u16>(out + 208, dBits);
    for (let ib: usize = 0; ib < 16; ib++) store<i8>(out + 192 + ib, <i8>min<i32>(127, nearestInt(iscale * load<f32>(scales + (ib << 2)))));
    const d = f16(dBits);
    for (let j: usize = 0; j < 16; j++) {
      const dj: f32 = d * <f32>load<i8>(out + 192 + j);
      if (dj == 0) continue;
      for (let i: usize = 0; i < 16; i++) {
        const v = load<f32>(x + (j << 6) + (i << 2));
        store<u8>(l + (j << 4) + i, <u8>(clampi(nearestInt(v / dj), -32, 31) + 32));
      }
    }
    for (let h: usize = 0; h < 2; h++) {
      const ql = out + (h << 6);
      const qh = out + 128 + (h << 5);
      const v = l + (h << 7);
      for (let i: usize = 0; i < 32; i++) {
        const q1 = load<u8>(v + i);
        const q2 = load<u8>(v + i + 32);
        const q3 = load<u8>(v + i + 64);
        const q4 = load<u8>(v + i + 96);
        store<u8>(ql + i, (q1 & 0xf) | ((q3 & 0xf) << 4));
        store<u8>(ql + i + 32, (q2 & 0xf) | ((q4 & 0xf) << 4));
        store<u8>(qh + i, (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
      }
    }
  }
}

// ---- Q8_0 and Q4_0 weights -------------------------------------------------------------------
// As src/tensor/quant.ts quantizeQ8_0 / quantizeQ4_0 (whose output is byte-identical to
// llama-quantize's files), in the same f64/f32 mix: blocks [b0, b1) of 32 values.

/** Round half away from zero (JS: Math.sign(v)·Math.round(|v|); exact for an f32 v). */
// @ts-ignore: decorator
@inline function roundAway(v: f64): i32 {
  const r = <i32>Math.floor(Math.abs(v) + 0.5);
  return v < 0 ? -r : r;
}

/** Blocks [b0, b1) of src as Q8_0 (34 bytes each): d = amax/127, codes round-half-away(x/d). */
export function quantize_q8_0(dst: usize, src: usize, scratch: usize, b0: i32, b1: i32, tid: i32): void {
  for (let b = b0; b < b1; b++) {
    const x = src + (<usize>b << 7);
    const out = dst + <usize>b * 34;
    let amax: f64 = 0;
    for (let j: usize = 0; j < 32; j++) amax = Math.max(amax, Math.abs(<f64>load<f32>(x + (j << 2))));
    const d = amax / 127;
    const id: f64 = d != 0 && d == d ? 1 / d : 0;
    store<u16>(out, f32ToF16(<f32>d));
    for (let j: usize = 0; j < 32; j++) {
      store<i8>(out + 2 + j, <i8>roundAway(<f32>(<f64>load<f32>(x + (j << 2)) * id)));
    }
  }
}

/** Blocks [b0, b1) of src as Q4_0 (18 bytes each): d = max/−8 (max: the value of largest magnitude). */
export function quantize_q4_0(dst: usize, src: usize, scratch: usize, b0: i32, b1: i32, tid: i32): void {
  for (let b = b0; b < b1; b++) {
    const x = src + (<usize>b << 7);
    const out = dst + <usize>b * 18;
    let amax: f32 = 0;
    let max: f32 = 0;
    for (let j: usize = 0; j < 32; j++) {
      const v = load<f32>(x + (j << 2));
      if (Mathf.abs(v) > amax) {
        amax = Mathf.abs(v);
        max = v;
      }
    }
    const d: f32 = max / -8;
    const id: f64 = d != 0 && d == d ? <f64>(<f32>1.0 / d) : 0;
    store<u16>(out, f32ToF16(d));
    for (let j: usize = 0; j < 16; j++) {
      const x0 = min<i32>(15, <i32>(<f64><f32>(<f64>load<f32>(x + (j << 2)) * id) + 8.5));
      const x1 = min<i32>(15, <i32>(<f64><f32>(<f64>load<f32>(x + ((j + 16) << 2)) * id) + 8.5));
      store<u8>(out + 2 + j, <u8>(x0 | (x1 << 4)));
    }
  }
}
