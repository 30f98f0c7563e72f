/**
 * The training kernels on the reference backend: fused attention (forward and backward) against
 * the unfused composition, the fused cross-entropy, dropout's mask, and what accumulates.
 * (Every backward kernel is also checked against finite differences through its autograd
 * function in autograd.test.ts.)
 */
import { describe, expect, it } from 'vitest';
import type { TrainAttentionParams } from '../src/backend/backend.js';
import { ReferenceBackend } from '../src/backend/reference.js';
import { dropoutKeep } from '../src/backend/train-kernels.js';
import * as ops from '../src/ops/index.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { expectClose, randomValues } from './helpers/kernels.js';

const be = new ReferenceBackend();

function tensor(shape: number[], values: ArrayLike<number>): Tensor {
  const t = be.alloc('f32', shape);
  t.f32().set(values);
  return t;
}

const random = (shape: number[], seed: number, scale = 1): Tensor => tensor(shape, randomValues(shape.reduce((a, b) => a * b, 1), seed, scale));

/** Columns [col, col + width) of rows [row, row + count) of x, as a new [count, width] tensor. */
function block(x: Tensor, row: number, count: number, col: number, width: number): Tensor {
  const out = be.alloc('f32', [count, width]);
  for (let r = 0; r < count; r++) out.f32().set(x.f32().subarray((row + r) * x.rowLength + col, (row + r) * x.rowLength + col + width), r * width);
  return out;
}

/** Add the [count, width] tensor b into columns [col, …) of rows [row, …) of x. */
function addBlock(x: Tensor, b: Tensor, row: number, col: number): void {
  for (let r = 0; r < b.rowCount; r++) {
    for (let c = 0; c < b.rowLength; c++) x.f32()[(row + r) * x.rowLength + col + c] += b.f32()[r * b.rowLength + c]!;
  }
}

/**
 * Attention and its backward composed from unfused pieces, per (sequence, head): S = scale·Q·Kᵀ
 * (matmul), causal mask, P = softmax(S) (the softmax kernel), O = P·V (matmulInputGrad's product);
 * backward dV = Pᵀ·dO, dP = dO·Vᵀ, dS = P ∘ (dP − rowsum(P ∘ dP)), dQ = scale·dS·K,
 * dK = scale·dSᵀ·Q (matmulWeightGrad accumulates over the heads sharing a KV head).
 */
function unfusedAttention(q: Tensor, k: Tensor, v: Tensor, dout: Tensor, p: TrainAttentionParams) {
  const { seqLen: T, headDim: hd } = p;
  const out = be.alloc('f32', q.shape);
  const dq = be.alloc('f32', q.shape);
  const dk = be.alloc('f32', k.shape);
  const dv = be.alloc('f32', v.shape);
  const group = p.nHead / p.nKvHead;
  for (let row = 0; row < q.rowCount; row += T) {
    for (let h = 0; h < p.nHead; h++) {
      const kvCol = Math.floor(h / group) * hd;
      const [Q, K, V, dO] = [block(q, row, T, h * hd, hd), block(k, row, T, kvCol, hd), block(v, row, T, kvCol, hd), block(dout, row, T, h * hd, hd)];
      const P = be.alloc('f32', [T, T]);
      ops.matmul(be, P, Q, K);
      P.f32().forEach((s, i) => (P.f32()[i] = i % T > Math.floor(i / T) ? -Infinity : s * p.scale));
      ops.softmax(be, P);
      const O = be.alloc('f32', [T, hd]);
      ops.matmulInputGrad(be, O, P, V);
      addBlock(out, O, row, h * hd);

      const dV = be.alloc('f32', [T, hd]);
      ops.matmulWeightGrad(be, dV, P, dO);
      const dS = be.alloc('f32', [T, T]);
      ops.matmul(be, dS, dO, V);
      for (let i = 0; i < T; i++) {
        let dot = 0;
        for (let j = 0; j < T; j++) dot += P.f32()[i * T + j]! * dS.f32()[i * T + j]!;
        for (let j = 0; j < T; j++) dS.f32()[i * T + j] = P.f32()[i * T + j]! * (dS.f32()[i * T + j]! - dot) * p.scale;
      }
      const dQ = be.alloc('f32', [T, hd]);
      ops.matmulInputGrad(be, dQ, dS, K);
      const dK = be.alloc('f32', [T, hd]);
      ops.matmulWeightGrad(be, dK, dS, Q);
      addBlock(dq, dQ, row, h * hd);
      addBlock(dk, dK, row, kvCol);
      addBlock(dv, dV, row, kvCol);
    }
  }
  return { out, dq, dk, dv };
}

describe('training attention', () => {
  it('forward and backward match the unfused composition (GQA 4 heads / 2 KV heads, B = 2, T = 5, head 3)', () => {
    const p: TrainAttentionParams = { nHead: 4, nKvHead: 2, headDim: 3, seqLen: 5, scale: 1 / Math.sqrt(3) };
    const [q, k, v, dout] = [random([10, 12], 1, 2), random([10, 6], 2, 2), random([10, 6], 3), random([10, 12], 4)];
    const want = unfusedAttention(q, k, v, dout, p);
    const out = be.alloc('f32', [10, 12]);
    const lse = be.alloc('f32', [10, 4]);
    ops.attentionTrain(be, out, lse, q, k, v, p);
    const tol = () => 2e-6;
    expectClose(out.f32(), want.out.f32(), tol, 'out');
    // the first row of each sequence attends to itself alone: lse is its one scaled score
    let s = 0;
    for (let i = 0; i < 3; i++) s += q.f32()[i]! * k.f32()[i]!;
    expect(lse.f32()[0]).toBeCloseTo(s * p.scale, 6);
    const [dq, dk, dv] = [be.alloc('f32', [10, 12]), be.alloc('f32', [10, 6]), be.alloc('f32', [10, 6])];
    ops.attentionBackward(be, dq, dk, dv, dout, out, lse, q, k, v, p);
    expectClose(dq.f32(), want.dq.f32(), tol, 'dq');
    expectClose(dk.f32(), want.dk.f32(), tol, 'dk');
    expectClose(dv.f32(), want.dv.f32(), tol, 'dv');
  });

  it('rejects rows that are not whole sequences', () => {
    const p: TrainAttentionParams = { nHead: 1, nKvHead: 1, headDim: 2, seqLen: 3, scale: 1 };
    const x = be.alloc('f32', [4, 2]);
    expect(() => ops.attentionTrain(be, be.alloc('f32', [4, 2]), be.alloc('f32', [4, 1]), x, x, x, p)).toThrow(/attentionTrain: 4 rows are not whole sequences of seqLen 3/);
  });
});

describe('cross-entropy', () => {
  it('gives log-sum-exp − logit[target] per row and (softmax − onehot)·scale; −1 rows are zero', () => {
    const logits = tensor([3, 3], [1, 2, 3, 0, 0, 0, 5, -5, 0]);
    const losses = be.alloc('f32', [3]);
    const d = be.alloc('f32', [3, 3]);
    ops.crossEntropy(be, losses, d, logits, [2, -1, 1], 0.5);
    const lse0 = Math.log(Math.exp(1) + Math.exp(2) + Math.exp(3));
    const lse2 = Math.log(Math.exp(5) + Math.exp(-5) + 1);
    expectClose(losses.f32(), new Float32Array([lse0 - 3, 0, lse2 + 5]), () => 1e-6, 'losses');
    const soft = (l: number, lse: number) => Math.exp(l - lse) * 0.5;
    const want = [soft(1, lse0), soft(2, lse0), soft(3, lse0) - 0.5, 0, 0, 0, soft(5, lse2), soft(-5, lse2) - 0.5, soft(0, lse2)];
    expectClose(d.f32(), new Float32Array(want), () => 1e-7, 'dlogits');
    // in place: the gradient overwrites the logits
    ops.crossEntropy(be, losses, logits, logits, [2, -1, 1], 0.5);
    expect(Array.from(logits.f32())).toEqual(Array.from(d.f32()));
  });

  it('rejects targets outside [−1, V)', () => {
    const logits = be.alloc('f32', [1, 3]);
    expect(() => ops.crossEntropy(be, be.alloc('f32', [1]), logits, logits, [3], 1)).toThrow(/crossEntropy: target 3 \(row 0\)/);
  });
});

describe('dropout', () => {
  it('keeps 1 − p of the elements, scaled by f32(1/(1 − p)), as a pure function of (seed, index)', () => {
    const n = 20000;
    const x = random([n], 5);
    const a = be.alloc('f32', [n]);
    ops.dropout(be, a, x, 0.3, 42);
    const scale = Math.fround(1 / 0.7);
    let kept = 0;
    let wrong = 0;
    for (let i = 0; i < n; i++) {
      const keep = dropoutKeep(42, i, 0.3);
      if (a.f32()[i] !== (keep ? Math.fround(x.f32()[i]! * scale) : 0)) wrong++;
      if (keep) kept++;
    }
    expect(wrong).toBe(0);
    expect(Math.abs(kept / n - 0.7)).toBeLessThan(0.01);
    // the same seed gives the same mask (so the backward recomputes it); another seed another mask
    const again = be.alloc('f32', [n]);
    ops.dropout(be, again, x, 0.3, 42);
    expect(again.f32()).toEqual(a.f32());
    ops.dropout(be, again, x, 0.3, 43);
    expect(again.f32()).not.toEqual(a.f32());
  });

  it('pins the mask bits every backend must reproduce', () => {
    const bits = (seed: number) => Array.from({ length: 32 }, (_, i) => (dropoutKeep(seed, i, 0.5) ? '1' : '0')).join('');
    expect(bits(0)).toBe(PINNED_SEED_0);
    expect(bits(0xdeadbeef)).toBe(PINNED_SEED_DEADBEEF);
  });
});

describe('accumulating kernels', () => {
  it('matmulWeightGrad, getRowsBackward and sumRows add to what is there', () => {
    const dy = random([4, 3], 6);
    const x = random([4, 5], 7);
    const dw = be.alloc('f32', [3, 5]);
    ops.matmulWeightGrad(be, dw, dy, x);
    const once = Float32Array.from(dw.f32());
    ops.matmulWeightGrad(be, dw, dy, x);
    expectClose(dw.f32(), once.map((g) => 2 * g), () => 1e-6, 'dw');
    expect(once[0]).toBeCloseTo([0, 1, 2, 3].reduce((s, m) => s + dy.f32()[m * 3]! * x.f32()[m * 5]!, 0), 6);

    const table = tensor([4, 3], new Float32Array(12).fill(1));
    ops.getRowsBackward(be, table, dy, [2, 0, 2, 3]);
    const t = table.f32();
    for (let c = 0; c < 3; c++) {
      expect(t[c]).toBeCloseTo(1 + dy.f32()[3 + c]!, 6);
      expect(t[3 + c]).toBe(1);
      expect(t[6 + c]).toBeCloseTo(1 + dy.f32()[c]! + dy.f32()[6 + c]!, 6);
    }

    const sums = tensor([3], [10, 20, 30]);
    ops.sumRows(be, sums, dy);
    for (let c = 0; c < 3; c++) expect(sums.f32()[c]).toBeCloseTo(10 * (c + 1) + [0, 1, 2, 3].reduce((s, r) => s + dy.f32()[r * 3 + c]!, 0), 5);
  });

  it('sumSquares and scale', () => {
    const x = tensor([3], [1, -2, 3]);
    expect(ops.sumSquares(be, x)).toBe(14);
    ops.scale(be, x, -0.5);
    expect(Array.from(x.f32())).toEqual([-0.5, 1, -1.5]);
  });
});

describe('GPT-2 layers', () => {
  it('layernorm normalises each row (biased variance), then weight and bias; addRows adds a row', () => {
    const x = tensor([2, 4], [1, 2, 3, 4, -1, -1, 1, 1]);
    const out = be.alloc('f32', [2, 4]);
    ops.layernorm(be, out, x, tensor([4], [1, 2, 1, 1]), tensor([4], [0, 0, 0, 10]), 0);
    const r = 1 / Math.sqrt(1.25);
    expectClose(out.f32(), new Float32Array([-1.5 * r, -1 * r, 0.5 * r, 1.5 * r + 10, -1, -2, 1, 11]), () => 1e-6, 'layernorm');
    ops.addRows(be, out, x, tensor([4], [1, 0, 0, -1]));
    expect(Array.from(out.f32())).toEqual([2, 2, 3, 3, 0, -1, 1, 0]);
  });
});

/** Keep bits of elements 0..31 at p = 0.5 (computed independently from the definition, in Python). */
const PINNED_SEED_0 = '00101011101010110000001000001110';
const PINNED_SEED_DEADBEEF = '00001111110000110110110010010101';
