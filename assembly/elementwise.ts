// Row-wise and element-wise kernels: rmsnorm, rope, softmax, swiglu, gelu, add, mul, the f16
// conversion for KV-cache writes and the conversions to f32 behind getRows. Row kernels take a row
// slice [r0, r1), element kernels an element slice [i0, i1).
import { expf4, f16, f16bits, load1, loadBf16x4, loadF16x4, store1 } from './simd';

/**
 * out = x / sqrt(mean(x²) + eps) · weight, as the reference computes it: the sum of squares in
 * f64 in order, the scale in f64, x · scale rounded to f32, then times the weight in f32.
 */
export function rmsnorm(out: usize, x: usize, w: usize, D: i32, eps: f64, r0: i32, r1: i32): void {
  const rowBytes = <usize>D << 2;
  for (let r = r0; r < r1; r++) {
    const xp = x + <usize>r * rowBytes;
    const op = out + <usize>r * rowBytes;
    let ss: f64 = 0;
    for (let i = 0; i < D; i++) {
      const v = <f64>load<f32>(xp + (<usize>i << 2));
      ss += v * v;
    }
    const scale = f64x2.splat(1.0 / Math.sqrt(ss / <f64>D + eps));
    let i = 0;
    for (; i + 4 <= D; i += 4) {
      const v = v128.load(xp + (<usize>i << 2));
      v128.store(op + (<usize>i << 2), f32x4.mul(scaleF64(v, scale), v128.load(w + (<usize>i << 2))));
    }
    for (; i < D; i++) {
      store1(op + (<usize>i << 2), f32x4.mul(scaleF64(load1(xp + (<usize>i << 2)), scale), load1(w + (<usize>i << 2))));
    }
  }
}

/** f32(x · s) per lane with the product in f64. */
// @ts-ignore: decorator
@inline export function scaleF64(x: v128, s: v128): v128 {
  const lo = f32x4.demote_f64x2_zero(f64x2.mul(f64x2.promote_low_f32x4(x), s));
  const hi = f32x4.demote_f64x2_zero(f64x2.mul(f64x2.promote_low_f32x4(v128.shuffle<f32>(x, x, 2, 3, 0, 1)), s));
  return v128.shuffle<i64>(lo, hi, 0, 2);
}

/**
 * Rotary embedding in place on rows [r0, r1) of x [rows, nHead·headDim]. table holds (cos, sin)
 * f64 pairs, nRot/2 per row, computed in JS exactly as the reference computes them; the rotation
 * is done in f64 and rounded once, so results equal the reference bit for bit.
 */
export function rope(x: usize, nHead: i32, headDim: i32, nRot: i32, neox: i32, table: usize, r0: i32, r1: i32): void {
  const half = nRot >> 1;
  const width = nHead * headDim;
  const step: usize = neox ? 1 : 2; // distance between the starts of consecutive pairs
  const partner: usize = neox ? <usize>half : 1; // distance from a pair's first value to its second
  for (let r = r0; r < r1; r++) {
    const cs = table + (<usize>(r * half) << 4);
    for (let h = 0; h < nHead; h++) {
      const base = x + (<usize>(r * width + h * headDim) << 2);
      for (let i = 0; i < half; i++) {
        const c = load<f64>(cs + (<usize>i << 4));
        const s = load<f64>(cs + (<usize>i << 4), 8);
        const a = base + (<usize>i * step << 2);
        const b = a + (partner << 2);
        const x0 = <f64>load<f32>(a);
        const x1 = <f64>load<f32>(b);
        store<f32>(a, <f32>(x0 * c - x1 * s));
        store<f32>(b, <f32>(x0 * s + x1 * c));
      }
    }
  }
}

/** Softmax of rows [r0, r1) of D values, in place (the sum in f64, the division in f64). */
export function softmax(x: usize, D: i32, r0: i32, r1: i32): void {
  const rowBytes = <usize>D << 2;
  for (let r = r0; r < r1; r++) {
    const p = x + <usize>r * rowBytes;
    let mv = f32x4.splat(-Infinity);
    let i = 0;
    for (; i + 4 <= D; i += 4) mv = f32x4.max(mv, v128.load(p + (<usize>i << 2)));
    let m = max(max(f32x4.extract_lane(mv, 0), f32x4.extract_lane(mv, 1)), max(f32x4.extract_lane(mv, 2), f32x4.extract_lane(mv, 3)));
    for (; i < D; i++) m = max(m, load<f32>(p + (<usize>i << 2)));
    const ms = f32x4.splat(m);
    let sum = f64x2.splat(0);
    i = 0;
    for (; i + 4 <= D; i += 4) {
      const e = expf4(f32x4.sub(v128.load(p + (<usize>i << 2)), ms));
      v128.store(p + (<usize>i << 2), e);
      sum = f64x2.add(sum, f64x2.add(f64x2.promote_low_f32x4(e), f64x2.promote_low_f32x4(v128.shuffle<f32>(e, e, 2, 3, 0, 1))));
    }
    let total = f64x2.extract_lane(sum, 0) + f64x2.extract_lane(sum, 1);
    for (; i < D; i++) {
      const e = expf4(f32x4.sub(load1(p + (<usize>i << 2)), ms));
      store1(p + (<usize>i << 2), e);
      total += <f64>f32x4.extract_lane(e, 0);
    }
    const t = f64x2.splat(total);
    i = 0;
    for (; i + 4 <= D; i += 4) v128.store(p + (<usize>i << 2), divF64(v128.load(p + (<usize>i << 2)), t));
    for (; i < D; i++) store1(p + (<usize>i << 2), divF64(load1(p + (<usize>i << 2)), t));
  }
}

/** f32(x / t) per lane with the division in f64. */
// @ts-ignore: decorator
@inline function divF64(x: v128, t: v128): v128 {
  const lo = f32x4.demote_f64x2_zero(f64x2.div(f64x2.promote_low_f32x4(x), t));
  const hi = f32x4.demote_f64x2_zero(f64x2.div(f64x2.promote_low_f32x4(v128.shuffle<f32>(x, x, 2, 3, 0, 1)), t));
  return v128.shuffle<i64>(lo, hi, 0, 2);
}

// @ts-ignore: decorator
@inline function swiglu4(g: v128, u: v128): v128 {
  const one = f32x4.splat(1);
  return f32x4.mul(f32x4.div(g, f32x4.add(one, expf4(f32x4.neg(g)))), u);
}

/** out = g · sigmoid(g) · u on elements [i0, i1). */
export function swiglu(out: usize, gate: usize, up: usize, i0: i32, i1: i32): void {
  let i = <usize>i0 << 2;
  const end = <usize>i1 << 2;
  for (; i + 16 <= end; i += 16) v128.store(out + i, swiglu4(v128.load(gate + i), v128.load(up + i)));
  for (; i < end; i += 4) store1(out + i, swiglu4(load1(gate + i), load1(up + i)));
}

/** gelu(x) = 0.5·x·(1 + tanh(y)) = x · sigmoid(2y) with y = sqrt(2/π)·(x + 0.044715·x³). */
// @ts-ignore: decorator
@inline function gelu4(x: v128): v128 {
  const x3 = f32x4.mul(f32x4.mul(x, x), x);
  const y = f32x4.mul(f32x4.splat(0.7978845608028654), f32x4.add(x, f32x4.mul(f32x4.splat(0.044715), x3)));
  const e = expf4(f32x4.mul(f32x4.splat(-2), y));
  return f32x4.div(x, f32x4.add(f32x4.splat(1), e));
}

export function gelu(out: usize, x: usize, i0: i32, i1: i32): void {
  let i = <usize>i0 << 2;
  const end = <usize>i1 << 2;
  for (; i + 16 <= end; i += 16) v128.store(out + i, gelu4(v128.load(x + i)));
  for (; i < end; i += 4) store1(out + i, gelu4(load1(x + i)));
}

export function add(out: usize, a: usize, b: usize, i0: i32, i1: i32): void {
  let i = <usize>i0 << 2;
  const end = <usize>i1 << 2;
  for (; i + 16 <= end; i += 16) v128.store(out + i, f32x4.add(v128.load(a + i), v128.load(b + i)));
  for (; i < end; i += 4) store<f32>(out + i, load<f32>(a + i) + load<f32>(b + i));
}

export function mul(out: usize, a: usize, b: usize, i0: i32, i1: i32): void {
  let i = <usize>i0 << 2;
  const end = <usize>i1 << 2;
  for (; i + 16 <= end; i += 16) v128.store(out + i, f32x4.mul(v128.load(a + i), v128.load(b + i)));
  for (; i < end; i += 4) store<f32>(out + i, load<f32>(a + i) * load<f32>(b + i));
}

// ---- conversions -------------------------------------------------------------------------------

/** dst (f16) = src (f32) on elements [i0, i1), round to nearest-even. */
export function f32_to_f16(dst: usize, src: usize, i0: i32, i1: i32): void {
  let i = i0;
  for (; i + 8 <= i1; i += 8) {
    const lo = f16bits(v128.load(src + (<usize>i << 2)));
    const hi = f16bits(v128.load(src + (<usize>i << 2), 16));
    v128.store(dst + (<usize>i << 1), i16x8.narrow_i32x4_u(lo, hi));
  }
  for (; i < i1; i++) store<u16>(dst + (<usize>i << 1), <u16>i32x4.extract_lane(f16bits(f32x4.splat(load<f32>(src + (<usize>i << 2)))), 0));
}

/** dst (f32) = n f16 values at src. */
export function f16_to_f32(dst: usize, src: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(dst + (<usize>i << 2), loadF16x4(src + (<usize>i << 1)));
  for (; i < n; i++) store<f32>(dst + (<usize>i << 2), f16(load<u16>(src + (<usize>i << 1))));
}

/** dst (f32) = n bf16 values at src. */
export function bf16_to_f32(dst: usize, src: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(dst + (<usize>i << 2), loadBf16x4(src + (<usize>i << 1)));
  for (; i < n; i++) store<u32>(dst + (<usize>i << 2), <u32>load<u16>(src + (<usize>i << 1)) << 16);
}

/** dst (f32) = nb Q8_0 blocks at src: d · q. */
export function q8_0_to_f32(dst: usize, src: usize, nb: i32): void {
  for (let b = 0; b < nb; b++) {
    const blk = src + <usize>b * 34;
    const d = f32x4.splat(f16(load<u16>(blk)));
    const o = dst + (<usize>b << 7);
    for (let j = 0; j < 32; j += 4) {
      const q = i32x4.extend_low_i16x8_s(i16x8.extend_low_i8x16_s(v128.load32_zero(blk + 2 + <usize>j)));
      v128.store(o + (<usize>j << 2), f32x4.mul(d, f32x4.convert_i32x4_s(q)));
    }
  }
}

/** dst (f32) = nb Q4_0 blocks at src: d · (nibble − 8), low nibbles first. */
export function q4_0_to_f32(dst: usize, src: usize, nb: i32): void {
  for (let b = 0; b < nb; b++) {
    const blk = src + <usize>b * 18;
    const d = f32x4.splat(f16(load<u16>(blk)));
    const o = dst + (<usize>b << 7);
    for (let j = 0; j < 16; j += 4) {
      const bytes = i32x4.extend_low_i16x8_u(i16x8.extend_low_i8x16_u(v128.load32_zero(blk + 2 + <usize>j)));
      const lo = i32x4.sub(v128.and(bytes, i32x4.splat(0xf)), i32x4.splat(8));
      const hi = i32x4.sub(i32x4.shr_u(bytes, 4), i32x4.splat(8));
      v128.store(o + (<usize>j << 2), f32x4.mul(d, f32x4.convert_i32x4_s(lo)));
      v128.store(o + (<usize>(j + 16) << 2), f32x4.mul(d, f32x4.convert_i32x4_s(hi)));
    }
  }
}

// ---- GPT-2 style layers --------------------------------------------------------------------------

/**
 * LayerNorm of rows [r0, r1): out = (x − mean) / sqrt(var + eps) · w + b, as the reference computes
 * it: the mean from an in-order f64 sum rounded to f32, the centred values in f32, the variance from
 * an in-order f64 sum of their squares, the scale in f64, then (x − mean)·scale rounded to f32, times
 * w in f32, plus b in f32 (ggml's norm → mul → add).
 */
export function layernorm(out: usize, x: usize, w: usize, b: usize, D: i32, eps: f64, r0: i32, r1: i32): void {
  const rowBytes = <usize>D << 2;
  for (let r = r0; r < r1; r++) {
    const xp = x + <usize>r * rowBytes;
    const op = out + <usize>r * rowBytes;
    let sum: f64 = 0;
    for (let i = 0; i < D; i++) sum += <f64>load<f32>(xp + (<usize>i << 2));
    const mean = <f32>(sum / <f64>D);
    let ss: f64 = 0;
    for (let i = 0; i < D; i++) {
      const v = <f64>(load<f32>(xp + (<usize>i << 2)) - mean);
      ss += v * v;
    }
    const scale = f64x2.splat(1.0 / Math.sqrt(ss / <f64>D + eps));
    const m4 = f32x4.splat(mean);
    let i = 0;
    for (; i + 4 <= D; i += 4) {
      const at = <usize>i << 2;
      const centred = f32x4.sub(v128.load(xp + at), m4);
      v128.store(op + at, f32x4.add(f32x4.mul(scaleF64(centred, scale), v128.load(w + at)), v128.load(b + at)));
    }
    for (; i < D; i++) {
      const at = <usize>i << 2;
      const centred = f32x4.sub(load1(xp + at), m4);
      store1(op + at, f32x4.add(f32x4.mul(scaleF64(centred, scale), load1(w + at)), load1(b + at)));
    }
  }
}

/** out[r, :] = x[r, :] + row[:] on rows [r0, r1) of D values (a bias added to every row). */
export function add_rows(out: usize, x: usize, row: usize, D: i32, r0: i32, r1: i32): void {
  const rowBytes = <usize>D << 2;
  for (let r = r0; r < r1; r++) {
    const xp = x + <usize>r * rowBytes;
    const op = out + <usize>r * rowBytes;
    let i: usize = 0;
    const end = rowBytes;
    for (; i + 16 <= end; i += 16) v128.store(op + i, f32x4.add(v128.load(xp + i), v128.load(row + i)));
    for (; i < end; i += 4) store<f32>(op + i, load<f32>(xp + i) + load<f32>(row + i));
  }
}
