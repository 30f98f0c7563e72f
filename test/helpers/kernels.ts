/** Shared pieces of the kernel tests: seeded data, weights encoded as ggml does, tensors on a backend, tolerances. */
import { expect } from 'vitest';
import type { Backend } from '../../src/backend/backend.js';
import { byteSize, type DType } from '../../src/tensor/dtype.js';
import { f32ToBf16 } from '../../src/tensor/f16.js';
import { encodeValues } from '../../src/tensor/quant.js';
import type { Tensor } from '../../src/tensor/tensor.js';

/** mulberry32: a small seeded generator, so failures reproduce. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** n seeded values in (offset − scale, offset + scale). */
export function randomValues(n: number, seed: number, scale = 1, offset = 0): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (r() * 2 - 1) * scale + offset;
  return out;
}

/** The bytes of `values` stored as `dtype` (weights quantized as ggml's reference quantizers do). */
export function encode(dtype: DType, values: Float32Array): Uint8Array {
  const out = new Uint8Array(byteSize(dtype, values.length));
  if (dtype === 'bf16') {
    const view = new DataView(out.buffer);
    values.forEach((v, i) => view.setUint16(2 * i, f32ToBf16(v), true));
  } else {
    encodeValues(dtype, values, out);
  }
  return out;
}

/** A tensor of `dtype` on `be` holding `bytes`. */
export function put(be: Backend, dtype: DType, shape: number[], bytes: Uint8Array): Tensor {
  const t = be.alloc(dtype, shape);
  t.bytes.set(bytes);
  return t;
}

/** Every element within tol(i) of the expected one (NaN matches NaN). */
export function expectClose(actual: Float32Array, expected: Float32Array, tol: (i: number) => number, what: string): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (a === e || (Number.isNaN(a) && Number.isNaN(e))) continue;
    if (!(Math.abs(a - e) <= tol(i))) throw new Error(`${what}: element ${i}: got ${a}, want ${e} (|Δ| = ${Math.abs(a - e)} > ${tol(i)})`);
  }
}

/**
 * The matmul of the activation rows `rows` (f32, K each) with random `dtype` weights [N, K] on
 * each backend, as arrays with NaN written 'NaN' (so toEqual compares them value by value).
 */
export function matmulOfRows(backends: Backend[], dtype: DType, rows: number[][], N: number): (number | 'NaN')[][] {
  const [M, K] = [rows.length, rows[0]!.length];
  const x = encode('f32', Float32Array.from(rows.flat()));
  const w = encode(dtype, randomValues(N * K, 3, 1));
  return backends.map((be) => {
    const out = be.alloc('f32', [M, N]);
    be.matmul(out, put(be, 'f32', [M, K], x), put(be, dtype, [N, K], w));
    return Array.from(out.f32(), (v) => (Number.isNaN(v) ? 'NaN' : v));
  });
}
