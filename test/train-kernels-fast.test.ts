/**
 * The wasm (and, where the addon is built, native) training kernels against the float64 plain-TS
 * oracle (the reference backend), at awkward sizes: one row, odd widths, GQA, short and long
 * sequences. Tolerances are float32 rounding of the sums (stated per kernel); 1 and 2 threads must
 * give identical bits (work is split by output, never by partial sums). Dropout's mask and rope's
 * inverse rotation must be the reference's bit for bit.
 */
import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import type { Backend, RopeParams, TrainAttentionParams } from '../src/backend/backend.js';
import { loadNative } from '../src/backend/native/addon.js';
import { createNativeBackend } from '../src/backend/native/backend.js';
import { ReferenceBackend } from '../src/backend/reference.js';
import { createWasmBackend } from '../src/backend/wasm/backend.js';
import { kernelsUrl } from '../src/backend/wasm/module.js';
import type { DType } from '../src/tensor/dtype.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { encode, expectClose, put, randomValues } from './helpers/kernels.js';

const ref = new ReferenceBackend();
const native = loadNative();

// minParallelWork 0: every call is split across the threads, however small
const fast: { name: string; make: (threads: number) => Promise<Backend> }[] = [
  { name: 'wasm', make: (threads) => createWasmBackend({ threads, minParallelWork: 0 }) },
];
if (native.loaded && native.accelerated) fast.push({ name: 'native', make: (threads) => createNativeBackend({ threads, minParallelWork: 0 }) });

const backends = fast.map(({ name, make }) => ({ name, one: make(1), two: make(2) }));
afterAll(async () => {
  for (const b of backends) for (const be of [await b.one, await b.two]) be.dispose();
});

/** An input: shape, values (and for weights a dtype). */
interface Input {
  shape: number[];
  values: Float32Array;
  dtype?: DType;
}
const input = (shape: number[], seed: number, scale = 1, offset = 0): Input => ({ shape, values: randomValues(shape.reduce((a, b) => a * b, 1), seed, scale, offset) });

/**
 * Run `call` on backend `be` with the inputs put there, and return every input's values after
 * the call (outputs are inputs too: accumulating kernels add to what they hold).
 */
function runOn(be: Backend, inputs: Input[], call: (be: Backend, t: Tensor[]) => unknown): Float32Array[] {
  const tensors = inputs.map((i) => put(be, i.dtype ?? 'f32', i.shape, encode(i.dtype ?? 'f32', i.values)));
  const result = call(be, tensors);
  const out = tensors.map((t) => (t.dtype === 'f32' ? Float32Array.from(t.f32()) : new Float32Array(0)));
  if (typeof result === 'number') out.push(new Float32Array([result]));
  tensors.forEach((t) => be.free(t));
  return out;
}

/**
 * The kernel on the reference and on each fast backend at 1 and 2 threads: the outputs (the inputs
 * at `outputs`) within tol of the reference, and the two thread counts bit for bit equal.
 */
async function check(what: string, inputs: Input[], outputs: number[], call: (be: Backend, t: Tensor[]) => unknown, tol: (output: number, i: number, want: Float32Array) => number) {
  const want = runOn(ref, inputs, call);
  for (const b of backends) {
    const one = runOn(await b.one, inputs, call);
    const two = runOn(await b.two, inputs, call);
    for (const o of outputs) {
      expectClose(one[o]!, want[o]!, (i) => tol(o, i, want[o]!), `${b.name} ${what} output ${o}`);
      expect(Buffer.from(two[o]!.buffer).equals(Buffer.from(one[o]!.buffer)), `${b.name} ${what} output ${o}: 1 and 2 threads differ`).toBe(true);
    }
  }
}

/** f32 sums of n terms of size about `scale`: a relative-and-absolute bound. */
const sumTol = (n: number, scale = 1) => (_o: number, i: number, want: Float32Array) => 2e-7 * Math.sqrt(n) * scale * 4 + 2e-6 * Math.abs(want[i]!);

const SHAPES: [number, number, number][] = [
  [1, 5, 3],
  [5, 17, 7],
  [17, 13, 33],
  [64, 65, 20],
  [33, 130, 129],
];

describe('matmul gradients', () => {
  it.each(SHAPES)('matmulInputGrad M=%i N=%i K=%i (f32 weights)', async (M, N, K) => {
    await check('matmulInputGrad', [input([M, K], 1), input([M, N], 2), input([N, K], 3)], [0], (be, [dx, dy, w]) => be.matmulInputGrad(dx!, dy!, w!), sumTol(N));
  });

  it.each(['f16', 'q8_0', 'q4_k'] as DType[])('matmulInputGrad with %s weights (dequantized first)', async (dtype) => {
    const K = 256;
    await check('matmulInputGrad', [input([5, K], 1), input([5, 9], 2), { ...input([9, K], 3), dtype }], [0], (be, [dx, dy, w]) => be.matmulInputGrad(dx!, dy!, w!), sumTol(9));
  });

  it.each(SHAPES)('matmulWeightGrad M=%i N=%i K=%i accumulates', async (M, N, K) => {
    await check('matmulWeightGrad', [input([N, K], 4), input([M, N], 5), input([M, K], 6)], [0], (be, [dw, dy, x]) => be.matmulWeightGrad(dw!, dy!, x!), sumTol(M));
  });
});

describe('embedding, sums, norms', () => {
  it('getRowsBackward with repeated ids', async () => {
    const ids = [3, 0, 6, 3, 3, 1, 6, 0, 2, 5, 4, 3, 6, 6, 0, 1, 2];
    await check('getRowsBackward', [input([7, 13], 7), input([17, 13], 8)], [0], (be, [t, dy]) => be.getRowsBackward(t!, dy!, ids), sumTol(5));
  });

  it.each([[1, 5], [17, 37], [64, 128]])('sumRows %i × %i', async (rows, D) => {
    await check('sumRows', [input([D], 9), input([rows, D], 10)], [0], (be, [out, x]) => be.sumRows(out!, x!), sumTol(rows));
  });

  it.each([[1, 7], [5, 37], [17, 64]])('rmsnormBackward and layernormBackward %i × %i', async (rows, D) => {
    const inputs = [input([rows, D], 11), input([D], 12), input([D], 13), input([rows, D], 14), input([rows, D], 15, 2, 0.5), input([D], 16, 1, 1)];
    // dx: rstd·(a few f32 sums of D terms); dweight, dbias: sums over the rows
    await check('rmsnormBackward', inputs, [0, 1], (be, [dx, dw, , dy, x, w]) => be.rmsnormBackward(dx!, dw!, dy!, x!, w!, 1e-5), sumTol(Math.max(rows, D), 4));
    await check('layernormBackward', inputs, [0, 1, 2], (be, [dx, dw, db, dy, x, w]) => be.layernormBackward(dx!, dw!, db!, dy!, x!, w!, 1e-5), sumTol(Math.max(rows, D), 4));
  });

  it('ropeBackward is the reference inverse rotation bit for bit (adjacent and NeoX, partial rotation, pos > 0)', async () => {
    for (const neox of [false, true]) {
      const p: RopeParams = { nHead: 3, headDim: 6, nRot: 4, theta: 10000, neox };
      await check('ropeBackward', [input([5, 18], 17)], [0], (be, [dx]) => be.ropeBackward(dx!, 7, p), () => 0);
    }
  });
});

describe('activations, loss, dropout', () => {
  it('swigluBackward and geluBackward on 37 values (f32 within 2e-6 relative)', async () => {
    const tol = (_o: number, i: number, want: Float32Array) => 1e-6 + 2e-6 * Math.abs(want[i]!);
    await check('swigluBackward', [input([37], 18), input([37], 19), input([37], 20), input([37], 21, 6), input([37], 22, 2)], [0, 1], (be, [dg, du, dy, g, u]) => be.swigluBackward(dg!, du!, dy!, g!, u!), tol);
    await check('geluBackward', [input([37], 23), input([37], 24), input([37], 25, 6)], [0], (be, [dx, dy, x]) => be.geluBackward(dx!, dy!, x!), tol);
  });

  it('crossEntropy, also in place, with ignored rows', async () => {
    const targets = [0, 64, -1, 3, 17, 17, 2, -1, 63, 1, 5, 8, 13, 21, 34, 55, 0];
    const tol = (o: number, i: number, want: Float32Array) => (o === 0 ? 1e-5 : 1e-7) + 2e-6 * Math.abs(want[i]!);
    await check('crossEntropy', [input([17], 26), input([17, 65], 27), input([17, 65], 28, 4)], [0, 1], (be, [losses, d, logits]) => be.crossEntropy(losses!, d!, logits!, targets, 0.25), tol);
    await check('crossEntropy in place', [input([17], 26), input([17, 65], 28, 4)], [0, 1], (be, [losses, logits]) => be.crossEntropy(losses!, logits!, logits!, targets, 0.25), tol);
  });

  it('dropout gives the reference mask and values bit for bit', async () => {
    for (const [p, seed] of [[0.3, 42], [0.5, 0xdeadbeef], [0, 7], [1, 7]] as const) {
      await check('dropout', [input([1037], 29), input([1037], 30)], [0], (be, [out, x]) => be.dropout(out!, x!, p, seed), () => 0);
    }
  });

  it('sumSquares (f64 sums) and scale (bit for bit)', async () => {
    await check('sumSquares', [input([10007], 31)], [1], (be, [x]) => be.sumSquares(x!), (_o, i, want) => 1e-12 * want[i]!);
    await check('scale', [input([37], 32)], [0], (be, [x]) => be.scale(x!, 1 / 3), () => 0);
  });
});

describe('training attention', () => {
  it.each([
    [4, 2, 3, 5, 2],
    [4, 2, 8, 64, 2],
    [4, 4, 32, 17, 1],
    [2, 1, 5, 1, 3],
  ])('forward and backward: nHead %i, nKvHead %i, headDim %i, T %i, B %i', async (nHead, nKvHead, headDim, T, B) => {
    const p: TrainAttentionParams = { nHead, nKvHead, headDim, seqLen: T, scale: 1 / Math.sqrt(headDim) };
    const rows = B * T;
    const [qW, kvW] = [nHead * headDim, nKvHead * headDim];
    const q = input([rows, qW], 33, 2);
    const k = input([rows, kvW], 34, 2);
    const v = input([rows, kvW], 35);
    const dout = input([rows, qW], 36);
    // forward: out and lse are f32 sums over ≤ T keys of headDim products
    await check('attentionTrain', [input([rows, qW], 0), input([rows, nHead], 0), q, k, v], [0, 1], (be, [out, lse, qt, kt, vt]) => be.attentionTrain(out!, lse!, qt!, kt!, vt!, p), sumTol(T * headDim));
    // backward, from the reference forward's out and lse
    const fwd = runOn(ref, [input([rows, qW], 0), input([rows, nHead], 0), q, k, v], (be, [out, lse, qt, kt, vt]) => be.attentionTrain(out!, lse!, qt!, kt!, vt!, p));
    const out = { shape: [rows, qW], values: fwd[0]! };
    const lse = { shape: [rows, nHead], values: fwd[1]! };
    await check(
      'attentionBackward',
      [input([rows, qW], 37), input([rows, kvW], 38), input([rows, kvW], 39), dout, out, lse, q, k, v],
      [0, 1, 2],
      (be, [dq, dk, dv, d, o, l, qt, kt, vt]) => be.attentionBackward(dq!, dk!, dv!, d!, o!, l!, qt!, kt!, vt!, p),
      sumTol(T * headDim * nHead, 4),
    );
  });
});

describe('the kernel modules', () => {
  it('hold no static data (the heap owns all of memory: a data segment would be overwritten)', () => {
    for (const variant of ['simd', 'relaxed'] as const) {
      const bytes = readFileSync(kernelsUrl(variant));
      const sections: number[] = [];
      for (let at = 8; at < bytes.length; ) {
        sections.push(bytes[at]!);
        let size = 0;
        let shift = 0;
        for (at++; ; shift += 7) {
          const b = bytes[at++]!;
          size += (b & 0x7f) * 2 ** shift;
          if (!(b & 0x80)) break;
        }
        at += size;
      }
      expect(sections, variant).toContain(10); // (the walk found the code section)
      expect(sections, variant).not.toContain(11); // data
    }
  });
});
