/**
 * Q4_1, Q5_0 and Q5_1 end to end: bytes identical to ggml's quantizers (test/data/ggml-quant-legacy.bin,
 * see test/data/README.md), dequantization identical to ggml's, dot products against ggml's CPU
 * vec_dot, the wasm kernels against the reference backend, and stories260K quantized to each type.
 *
 * Tolerances, with u = 2^-24 and S = Σ_k |x_k·w_k| over the quantized activations and dequantized
 * weights (for the Q8_1 types the per-block offset terms |m_w·s_x| are added to S):
 *   our reference vs ggml's vec_dot:  |Δ| ≤ (K/32 + 4)·u·S  (both sum exact block integer dots, ggml
 *                                      in f32 with FMA and an 8-lane tree, we in f64)
 *   wasm vs the reference:            |Δ| ≤ (K/32 + 4)·u·S  (f32 sums, one rounding per block term)
 */
import v8 from 'node:v8';
v8.setFlagsFromString('--experimental-wasm-relaxed-simd');

import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { f16ToF32 } from '../src/tensor/f16.js';
import { byteSize, DTYPES, dtypeFromGgml } from '../src/tensor/dtype.js';
import { dequantize, encodeValues, quantizeQ8_0 } from '../src/tensor/quant.js';
import { dotQ8_1, quantizeLegacy, quantizeQ8_1, type LegacyType } from '../src/tensor/quant-legacy.js';

const TYPES = ['q4_1', 'q5_0', 'q5_1'] as const;

interface GgmlCase {
  type: LegacyType;
  /** ggml's quantized weights, R rows. */
  quantized: Uint8Array;
  /** ggml's dequantize_row output for them. */
  dequantized: Float32Array;
  /** The activations as ggml's from_float of the vec_dot type wrote them (Q8_0 or Q8_1), A rows. */
  activations: Uint8Array;
  xRowBytes: number;
  /** ggml_vec_dot of weight row r with activation row a at r·A + a. */
  dots: Float32Array;
}

/** test/data/ggml-quant-legacy.bin: the layout is described in test/data/README.md. */
function readGgmlData(): { R: number; K: number; A: number; weights: Float32Array; x: Float32Array; cases: GgmlCase[] } {
  const buf = fs.readFileSync(fileURLToPath(new URL('data/ggml-quant-legacy.bin', import.meta.url)));
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  expect(buf.subarray(0, 4).toString('latin1')).toBe('GQLG');
  let at = 8;
  const u32 = (): number => {
    at += 4;
    return view.getUint32(at - 4, true);
  };
  const bytes = (n: number): Uint8Array => {
    at += n;
    return new Uint8Array(buf.subarray(at - n, at));
  };
  const floats = (n: number): Float32Array => new Float32Array(bytes(n * 4).buffer);
  const [R, K, A] = [u32(), u32(), u32()];
  const weights = floats(R * K);
  const x = floats(A * K);
  const cases: GgmlCase[] = [];
  for (let t = 0; t < TYPES.length; t++) {
    const type = dtypeFromGgml(u32()) as LegacyType;
    u32(); // vec_dot_type
    const rowBytes = u32();
    const xRowBytes = u32();
    cases.push({ type, quantized: bytes(R * rowBytes), dequantized: floats(R * K), activations: bytes(A * xRowBytes), xRowBytes, dots: floats(R * A) });
  }
  expect(at).toBe(buf.length);
  return { R, K, A, weights, x, cases };
}

const ggml = readGgmlData();
const U = 2 ** -24;

describe.each(ggml.cases.map((c) => [c.type, c] as const))('%s against ggml', (type, c) => {
  const { R, K, A } = ggml;

  it('quantizes to ggml\'s bytes exactly (zeros, outliers, negative, constant and tiny blocks)', () => {
    expect(c.quantized.length).toBe(byteSize(type, R * K));
    const mine = new Uint8Array(c.quantized.length);
    quantizeLegacy(type, ggml.weights, R * K, mine);
    const rowBytes = byteSize(type, K);
    for (let r = 0; r < R; r++) {
      expect(Buffer.from(mine.subarray(r * rowBytes, (r + 1) * rowBytes)), `row ${r}`).toEqual(Buffer.from(c.quantized.subarray(r * rowBytes, (r + 1) * rowBytes)));
    }
    // encodeValues dispatches to the same quantizer
    const viaEncode = new Uint8Array(mine.length);
    encodeValues(type, ggml.weights, viaEncode);
    expect(viaEncode).toEqual(mine);
  });

  it('dequantizes to ggml\'s values exactly', () => {
    const out = new Float32Array(R * K);
    dequantize(type, c.quantized, 0, R * K, out);
    expect(out).toEqual(c.dequantized);
    // a range that starts and ends inside blocks
    const part = new Float32Array(70);
    dequantize(type, c.quantized, 45, 70, part);
    expect(part).toEqual(c.dequantized.subarray(45, 115));
  });

  it('quantizes activations as ggml\'s CPU path does (Q8_0 for q5_0, Q8_1 with its s for q4_1/q5_1)', () => {
    const mine = new Uint8Array(c.xRowBytes);
    for (let a = 0; a < A; a++) {
      const row = ggml.x.subarray(a * K, (a + 1) * K);
      if (type === 'q5_0') quantizeQ8_0(row, K, mine, true);
      else quantizeQ8_1(row, K, mine);
      expect(Buffer.from(mine), `activation row ${a}`).toEqual(Buffer.from(c.activations.subarray(a * c.xRowBytes, (a + 1) * c.xRowBytes)));
    }
  });
});

/** How far f16 rounding may move a value: half an ulp, relative for normals, 2^-25 for subnormals. */
const f16RoundingError = (v: number): number => Math.max(Math.abs(v) * 2 ** -11, 2 ** -25);

describe.each(TYPES)('%s round trip', (type) => {
  it('dequantize(quantize(x)) is within half a step of x, plus the f16 rounding of d and m', () => {
    const { R, K, weights } = ggml;
    const bytes = new Uint8Array(byteSize(type, R * K));
    quantizeLegacy(type, weights, R * K, bytes);
    const out = new Float32Array(R * K);
    dequantize(type, bytes, 0, R * K, out);
    const view = new DataView(bytes.buffer);
    const levels = type === 'q4_1' ? 15 : 31;
    for (let b = 0; b < (R * K) / 32; b++) {
      const block = weights.subarray(b * 32, b * 32 + 32);
      const d = f16ToF32(view.getUint16(b * DTYPES[type].blockBytes, true));
      const min = Math.min(...block);
      const max = Math.max(...block);
      // the exact step (before f16 rounding) and how far the f16 d and m may move a value
      const amax = Math.max(...block.map(Math.abs));
      const step = type === 'q5_0' ? amax / 16 : (max - min) / levels;
      const f16Error = type === 'q5_0' ? 16 * f16RoundingError(d) : levels * f16RoundingError(d) + f16RoundingError(min);
      for (let j = 0; j < 32; j++) {
        // Q5_0 maps the extreme onto −16 steps but reaches only +15 on the other side: values past
        // 15.5 steps there are clamped, up to a whole step away
        const clamped = type === 'q5_0' && Math.abs(block[j]!) > 15.5 * step;
        const bound = (clamped ? step : step / 2) + f16Error + 1e-30;
        expect(Math.abs(out[b * 32 + j]! - block[j]!), `block ${b} value ${j}`).toBeLessThanOrEqual(bound);
      }
    }
  });
});
