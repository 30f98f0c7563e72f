// The Q8_0 KV cache's quantizer. Cache rows are written, and query heads prepared for Q·K, with
// ggml's run-time (activation) Q8_0 quantizer, exactly as tensor/quant.ts quantizeQ8_0(..., true)
// and quantize_q8 in matmul.ts do: per block of 32, d = amax/127 stored as f16, and
// q = round-half-even(x · (127/amax)) with the scale and product in f64, rounded to f32 first.
import { quant4 } from './matmul';
import { f16, f16bits } from './simd';

/**
 * Quantize the 32 f32 values at src as one Q8_0 block: the ggml block (f16 scale, then 32 × i8)
 * goes to blk unless blk is 0, the 32 values as i16 to q16 unless q16 is 0. Returns the scale.
 */
// @ts-ignore: decorator
@inline export function quantizeBlockQ8(src: usize, blk: usize, q16: usize): f32 {
  let amaxv = f32x4.splat(0);
  for (let j = 0; j < 128; j += 16) amaxv = f32x4.max(amaxv, f32x4.abs(v128.load(src + j)));
  const amax = max(max(f32x4.extract_lane(amaxv, 0), f32x4.extract_lane(amaxv, 1)), max(f32x4.extract_lane(amaxv, 2), f32x4.extract_lane(amaxv, 3)));
  const dbits = <u16>i32x4.extract_lane(f16bits(f32x4.splat(<f32>(<f64>amax / 127.0))), 0);
  const id = f64x2.splat(amax != 0 ? 127.0 / <f64>amax : 0.0);
  if (blk) store<u16>(blk, dbits);
  for (let j = 0; j < 32; j += 8) {
    const qlo = quant4(v128.load(src + (<usize>j << 2)), id);
    const qhi = quant4(v128.load(src + (<usize>j << 2), 16), id);
    const q16v = i16x8.narrow_i32x4_s(qlo, qhi);
    if (q16) v128.store(q16 + (<usize>j << 1), q16v);
    if (blk) v128.store64_lane(blk + 2 + <usize>j, i8x16.narrow_i16x8_s(q16v, q16v), 0);
  }
  return f16(dbits);
}

/** KV cache write: the f32 values at src as Q8_0 blocks at dst, blocks [b0, b1) (rows are contiguous). */
export function f32_to_q8_0(dst: usize, src: usize, b0: i32, b1: i32): void {
  for (let b = b0; b < b1; b++) quantizeBlockQ8(src + (<usize>b << 7), dst + <usize>b * 34, 0);
}
