// Weight quantizers for the K-quants (Q4_K, Q5_K, Q6_K): the same algorithm, operation for
// operation, as src/tensor/quant-k.ts (which reproduces ggml's quantize_row_q{4,5,6}_K_ref), but
// in native f32 arithmetic. The TS version has to round every operation with Math.fround and
// emulate C's nearest_int; here an f32 operation is one instruction and nearest_int is C's own
// trick (add 1.5·2^23, read the mantissa), so the bytes are the same and ~10× cheaper to get.
// Nothing here uses fused multiply-add: every product and sum is rounded to f32 as C does.
//
// Each kernel quantizes super-blocks [b0, b1) of 256 f32 values at src into blocks at dst, using
// QUANT_SCRATCH bytes of scratch per thread at scratch + tid·QUANT_SCRATCH (the module has no
// static data and no allocator, so scratch is the caller's).
import { f16, f16bits } from './simd';

/** Scratch bytes one thread needs (see the layout below). */
const QUANT_SCRATCH: usize = 1024;
// scratch layout, in bytes
const WEIGHTS: usize = 0; // f32[32]: one sub-block's fitting weights
const XM: usize = 128; // f32[32]: x − min of the sub-block being fitted
const LAUX: usize = 256; // u8[32]: a trial's quants
const L: usize = 288; // u8[256]: the super-block's quants
const SCALES: usize = 544; // f32[16]: per sub-block scales
const MINS: usize = 608; // f32[8]: per sub-block mins
const LS: usize = 640; // u8[8]: 6-bit scales
const LM: usize = 648; // u8[8]: 6-bit mins
const FIT: usize = 656; // f32[2]: a fit's scale and min

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

// @ts-ignore: decorator
@inline function clampi(v: i32, lo: i32, hi: i32): i32 {
  return v < lo ? lo : v > hi ? hi : v;
}

// @ts-ignore: decorator
@inline function f32ToF16(v: f32): u16 {
  return <u16>i32x4.extract_lane(f16bits(f32x4.splat(v)), 0);
}

/**
 * ggml's make_qkx2_quants for 32 values at x (weights at s + WEIGHTS): x ≈ scale·L − min with L in
 * 0..nmax, weighted least squares over nstep + 1 trial scales. Writes L at l, [scale, −min] at s + FIT.
 */
function makeQkx2Quants(nmax: i32, x: usize, s: usize, l: usize, rmin: f32, rdelta: f32, nstep: i32): void {
  const w = s + WEIGHTS;
  const xm = s + XM;
  const laux = s + LAUX;
  let min = load<f32>(x);
  let max = min;
  let sumW = load<f32>(w);
  let sumX: f32 = sumW * min;
  for (let i: usize = 1; i < 32; i++) {
    const xi = load<f32>(x + (i << 2));
    if (xi < min) min = xi;
    if (xi > max) max = xi;
    const wi = load<f32>(w + (i << 2));
    sumW += wi;
    sumX += wi * xi;
  }
  if (min > 0) min = 0;
  if (max == min) {
    memory.fill(l, 0, 32);
    store<f32>(s + FIT, 0);
    store<f32>(s + FIT, -min, 4);
    return;
  }
  for (let i: usize = 0; i < 32; i++) store<f32>(xm + (i << 2), load<f32>(x + (i << 2)) - min);
  const fmax = <f32>nmax;
  let iscale: f32 = fmax / (max - min);
  let scale: f32 = <f32>1.0 / iscale;
  let bestError: f32 = 0;
  for (let i: usize = 0; i < 32; i++) {
    const q = clampi(nearestInt(iscale * load<f32>(xm + (i << 2))), 0, nmax);
    store<u8>(l + i, <u8>q);
    const diff: f32 = scale * <f32>q + min - load<f32>(x + (i << 2));
    bestError += load<f32>(w + (i << 2)) * (diff * diff);
  }
  for (let is = 0; is <= nstep; is++) {
    // min is the best fit so far, not the data's minimum, once a trial has won (as in ggml)
    iscale = (rmin + rdelta * <f32>is + fmax) / (max - min);
    let sumL: f32 = 0;
    let sumL2: f32 = 0;
    let sumXL: f32 = 0;
    for (let i: usize = 0; i < 32; i++) {
      const q = clampi(nearestInt(iscale * load<f32>(xm + (i << 2))), 0, nmax);
      store<u8>(laux + i, <u8>q);
      const fq = <f32>q;
      const wl: f32 = load<f32>(w + (i << 2)) * fq;
      sumL += wl;
      sumL2 += wl * fq;
      sumXL += wl * load<f32>(x + (i << 2));
    }
    const D: f32 = sumW * sumL2 - sumL * sumL;
    if (D > 0) {
      let thisScale: f32 = (sumW * sumXL - sumX * sumL) / D;
      let thisMin: f32 = (sumL2 * sumX - sumL * sumXL) / D;
      if (thisMin > 0) {
        thisMin = 0;
        thisScale = sumXL / sumL2;
      }
      let curError: f32 = 0;
      for (let i: usize = 0; i < 32; i++) {
        const diff: f32 = thisScale * <f32>load<u8>(laux + i) + thisMin - load<f32>(x + (i << 2));
        curError += load<f32>(w + (i << 2)) * (diff * diff);
      }
      if (curError < bestError) {
        memory.copy(l, laux, 32);
        bestError = curError;
        scale = thisScale;
        if (thisMin != min) {
          min = thisMin;
          for (let i: usize = 0; i < 32; i++) store<f32>(xm + (i << 2), load<f32>(x + (i << 2)) - min);
        }
      }
    }
  }
  store<f32>(s + FIT, scale);
  store<f32>(s + FIT, -min, 4);
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
  let maxScale: f32 = 0;
  let maxMin: f32 = 0;
  for (let j: usize = 0; j < 8; j++) {
    const xj = x + (j << 7);
    let sumX2: f32 = 0;
    for (let i: usize = 0; i < 32; i++) {
      const v = load<f32>(xj + (i << 2));
      sumX2 += v * v;
    }
    const avX = Mathf.sqrt(sumX2 / 32);
    for (let i: usize = 0; i < 32; i++) store<f32>(s + WEIGHTS + (i << 2), avX + Mathf.abs(load<f32>(xj + (i << 2))));
    makeQkx2Quants(nmax, xj, s, l + (j << 5), rmin, 0.1, nstep);
    const scale = load<f32>(s + FIT);
    const min = load<f32>(s + FIT, 4);
    store<f32>(s + SCALES + (j << 2), scale);
    store<f32>(s + MINS + (j << 2), min);
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
 * ggml's make_qx_quants (rmse_type 1, no importance weights) for 16 values at x: x ≈ scale·(L − 32),
 * L in 0..63 written at l, weighted by x², refined over 18 trial scales. Returns the scale.
 */
function makeQxQuants16(x: usize, l: usize): f32 {
  const nmax: i32 = 32;
  let max: f32 = 0;
  let amax: f32 = 0;
  for (let i: usize = 0; i < 16; i++) {
    const v = load<f32>(x + (i << 2));
    const av = Mathf.abs(v);
    if (av > amax) {
      amax = av;
      max = v;
    }
  }
  if (amax < GROUP_MAX_EPS) {
    memory.fill(l, 0, 16);
    return 0;
  }
  let iscale: f32 = <f32>-nmax / max;
  let sumLX: f32 = 0;
  let sumL2: f32 = 0;
  for (let i: usize = 0; i < 16; i++) {
    const v = load<f32>(x + (i << 2));
    const q = clampi(nearestInt(iscale * v), -nmax, nmax - 1);
    store<u8>(l + i, <u8>(q + nmax));
    const fq = <f32>q;
    const w: f32 = v * v;
    sumLX += w * v * fq;
    sumL2 += w * fq * fq;
  }
  let scale: f32 = sumL2 != 0 ? sumLX / sumL2 : 0;
  let best: f32 = scale * sumLX;
  for (let is = -9; is <= 9; is++) {
    if (is == 0) continue;
    iscale = -(<f32>nmax + <f32>0.1 * <f32>is) / max;
    sumLX = 0;
    sumL2 = 0;
    for (let i: usize = 0; i < 16; i++) {
      const v = load<f32>(x + (i << 2));
      const fq = <f32>clampi(nearestInt(iscale * v), -nmax, nmax - 1);
      const w: f32 = v * v;
      sumLX += w * v * fq;
      sumL2 += w * fq * fq;
    }
    if (sumL2 > 0 && sumLX * sumLX > best * sumL2) {
      for (let i: usize = 0; i < 16; i++) {
        store<u8>(l + i, <u8>(nmax + clampi(nearestInt(iscale * load<f32>(x + (i << 2))), -nmax, nmax - 1)));
      }
      scale = sumLX / sumL2;
      best = scale * sumLX;
    }
  }
  return scale;
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
    for (let ib: usize = 0; ib < 16; ib++) {
      const scale = makeQxQuants16(x + (ib << 6), l + (ib << 4));
      store<f32>(scales + (ib << 2), scale);
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
