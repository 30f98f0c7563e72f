/**
 * The GPT-2 kernels (layernorm, addRows) of the wasm backend against the reference backend, on
 * seeded random rows of awkward lengths, for 1 and 2 threads and both kernel builds. Both kernels
 * are specified to the rounding (backend.ts), so the results must be identical bit for bit.
 */
import v8 from 'node:v8';
v8.setFlagsFromString('--experimental-wasm-relaxed-simd');

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend } from '../src/backend/backend.js';
import { ReferenceBackend } from '../src/backend/reference.js';
import { createWasmBackend, type WasmBackend } from '../src/backend/wasm/backend.js';
import { relaxedSupported } from '../src/backend/wasm/module.js';
import * as ops from '../src/ops/index.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { encode, put, randomValues } from './helpers/kernels.js';

const ref = new ReferenceBackend();
const variants = ['simd', ...(relaxedSupported() ? ['relaxed' as const] : [])] as const;
const shapes: [number, number][] = [[1, 1], [1, 3], [2, 7], [3, 64], [5, 33], [17, 100], [4, 768]];

describe.each(variants)('GPT-2 kernels (%s)', (variant) => {
  let one: WasmBackend;
  let two: WasmBackend;
  beforeAll(async () => {
    one = await createWasmBackend({ threads: 1, variant });
    two = await createWasmBackend({ threads: 2, variant, minParallelWork: 0 });
  });
  afterAll(() => {
    one.dispose();
    two.dispose();
  });

  /** The op's output on the reference, 1-thread and 2-thread backends, as plain arrays. */
  function outputs(inputs: { shape: number[]; values: Float32Array }[], op: (be: Backend, out: Tensor, ins: Tensor[]) => void): Float32Array[] {
    return ([ref, one, two] as Backend[]).map((be) => {
      const ins = inputs.map((i) => put(be, 'f32', i.shape, encode('f32', i.values)));
      const out = be.alloc('f32', inputs[0]!.shape);
      op(be, out, ins);
      return new Float32Array(out.f32());
    });
  }

  it.each(shapes)('layernorm of %i rows of %i equals the reference bit for bit', (rows, D) => {
    // an offset mean and mixed scales: the centring matters
    const x = randomValues(rows * D, rows * 1000 + D, 3, 0.7);
    const w = randomValues(D, D + 1, 1.5);
    const b = randomValues(D, D + 2, 0.5);
    const [want, got1, got2] = outputs([{ shape: [rows, D], values: x }, { shape: [D], values: w }, { shape: [D], values: b }],
      (be, out, [xt, wt, bt]) => ops.layernorm(be, out, xt!, wt!, bt!, 1e-5));
    expect(got1).toEqual(want);
    expect(got2).toEqual(want);
    // and it is a LayerNorm: with w = 1, b = 0 each row has mean ≈ 0 and variance ≈ 1
    if (D >= 64) {
      const [norm] = outputs([{ shape: [rows, D], values: x }, { shape: [D], values: new Float32Array(D).fill(1) }, { shape: [D], values: new Float32Array(D) }],
        (be, out, [xt, wt, bt]) => ops.layernorm(be, out, xt!, wt!, bt!, 1e-5));
      const row = norm!.subarray(0, D);
      const mean = row.reduce((a, v) => a + v, 0) / D;
      const variance = row.reduce((a, v) => a + (v - mean) ** 2, 0) / D;
      expect(Math.abs(mean)).toBeLessThan(1e-5);
      expect(Math.abs(variance - 1)).toBeLessThan(1e-3);
    }
  });

  it.each(shapes)('addRows of %i rows of %i equals the reference', (rows, D) => {
    const x = randomValues(rows * D, rows + D, 2);
    const bias = randomValues(D, 7 * D, 1);
    const [want, got1, got2] = outputs([{ shape: [rows, D], values: x }, { shape: [D], values: bias }],
      (be, out, [xt, bt]) => ops.addRows(be, out, xt!, bt!));
    expect(got1).toEqual(want);
    expect(got2).toEqual(want);
    expect(want[rows * D - 1]).toBe(Math.fround(x[rows * D - 1]! + bias[D - 1]!));
  });

  it('addRows works in place (out = x), as the GPT-2 forward uses it', () => {
    const x = one.alloc('f32', [3, 5]);
    x.f32().set(randomValues(15, 1));
    const before = new Float32Array(x.f32());
    const bias = put(one, 'f32', [5], encode('f32', randomValues(5, 2)));
    ops.addRows(one, x, x, bias);
    expect(x.f32()[7]).toBe(Math.fround(before[7]! + bias.f32()[2]!));
  });
});

it('ops reject mismatched shapes, naming the op', () => {
  const x = ref.alloc('f32', [2, 4]);
  const out = ref.alloc('f32', [2, 4]);
  expect(() => ops.layernorm(ref, out, x, ref.alloc('f32', [3]), ref.alloc('f32', [4]), 1e-5)).toThrow(/layernorm: weight \[3\]/);
  expect(() => ops.addRows(ref, out, x, ref.alloc('f32', [5]))).toThrow(/addRows: row \[5\]/);
});
