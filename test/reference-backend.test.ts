/** Hand-computed checks of the reference backend, the oracle the fast backends are tested against. */
import { describe, expect, it } from 'vitest';
import { ReferenceBackend } from '../src/backend/reference.js';
import { f32ToF16 } from '../src/tensor/f16.js';

const be = new ReferenceBackend();
const tensor = (shape: number[], values: number[]) => {
  const t = be.alloc('f32', shape);
  t.f32().set(values);
  return t;
};

describe('reference backend', () => {
  it('matmul computes x · wᵀ', () => {
    const x = tensor([2, 3], [1, 2, 3, 4, 5, 6]);
    const w = tensor([2, 3], [1, 0, -1, 0.5, 0.5, 0.5]);
    const out = be.alloc('f32', [2, 2]);
    be.matmul(out, x, w);
    expect(Array.from(out.f32())).toEqual([-2, 3, -2, 7.5]);
  });

  it('matmul with f16 weights rounds the activations to f16 first', () => {
    const w = be.alloc('f16', [1, 1]);
    new DataView(w.bytes.buffer).setUint16(0, f32ToF16(1), true);
    const x = tensor([1, 1], [1 + 2 ** -12]); // not representable in f16: rounds to 1
    const out = be.alloc('f32', [1, 1]);
    be.matmul(out, x, w);
    expect(out.f32()[0]).toBe(1);
  });

  it('rmsnorm scales rows to unit root-mean-square, then by the weight', () => {
    const x = tensor([1, 2], [3, 4]);
    const out = be.alloc('f32', [1, 2]);
    be.rmsnorm(out, x, tensor([2], [1, 2]), 0);
    const rms = Math.sqrt(12.5);
    expect(out.f32()[0]).toBeCloseTo(3 / rms, 6);
    expect(out.f32()[1]).toBeCloseTo((2 * 4) / rms, 6);
  });

  it('rope rotates adjacent pairs (normal) or half-split pairs (NeoX) by pos·θ^(−2i/n)', () => {
    const normal = tensor([1, 4], [1, 0, 1, 0]);
    be.rope(normal, 1, { nHead: 1, headDim: 4, nRot: 4, theta: 100, neox: false });
    // pair 0 turns by 1 radian, pair 1 by 1/10
    expect(Array.from(normal.f32())).toEqual([Math.cos(1), Math.sin(1), Math.cos(0.1), Math.sin(0.1)].map(Math.fround));
    const neox = tensor([1, 4], [1, 1, 0, 0]);
    be.rope(neox, 1, { nHead: 1, headDim: 4, nRot: 4, theta: 100, neox: true });
    expect(Array.from(neox.f32())).toEqual([Math.cos(1), Math.cos(0.1), Math.sin(1), Math.sin(0.1)].map(Math.fround));
  });

  it('attention is causal and shares KV heads across query heads (GQA)', () => {
    // 2 query heads share 1 KV head of size 1; keys 0 and 1; query at position 0 sees key 0 only
    const k = tensor([2, 1], [1, 2]);
    const v = tensor([2, 1], [10, 20]);
    const q = tensor([2, 2], [1, 1, 1, -1]);
    const out = be.alloc('f32', [2, 2]);
    be.attention(out, q, k, v, { nHead: 2, nKvHead: 1, headDim: 1, pos: 0, scale: 1 });
    const o = out.f32();
    expect(o[0]).toBe(10);
    expect(o[1]).toBe(10);
    // row 1 (position 1): softmax([1, 2]) and softmax([-1, -2]) over values 10, 20
    const p = 1 / (1 + Math.exp(-1));
    expect(o[2]).toBeCloseTo(10 * (1 - p) + 20 * p, 5);
    expect(o[3]).toBeCloseTo(10 * p + 20 * (1 - p), 5);
  });

  it('softmax, swiglu, gelu, add and mul', () => {
    const x = tensor([1, 2], [0, Math.log(3)]);
    be.softmax(x);
    expect(x.f32()[0]).toBeCloseTo(0.25, 7);
    expect(x.f32()[1]).toBeCloseTo(0.75, 7);
    const out = be.alloc('f32', [1, 2]);
    be.swiglu(out, tensor([1, 2], [0, 1]), tensor([1, 2], [5, 2]));
    expect(out.f32()[0]).toBe(0);
    expect(out.f32()[1]).toBeCloseTo(2 / (1 + Math.exp(-1)), 6);
    be.gelu(out, tensor([1, 2], [0, 10]));
    expect(Array.from(out.f32())).toEqual([0, 10]);
    be.add(out, tensor([1, 2], [1, 2]), tensor([1, 2], [3, 4]));
    expect(Array.from(out.f32())).toEqual([4, 6]);
    be.mul(out, tensor([1, 2], [1, 2]), tensor([1, 2], [3, 4]));
    expect(Array.from(out.f32())).toEqual([3, 8]);
  });
});
