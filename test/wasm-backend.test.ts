/**
 * The wasm backend against the reference backend: every kernel on seeded random inputs at awkward
 * sizes, for 1 and 2 threads (which must agree bit for bit) and for both kernel builds (SIMD128 and
 * relaxed SIMD; Node 20 needs the V8 flag set below before anything is compiled). Then the heap
 * (alloc/free/reuse, growth, out of memory) and the thread pool's lifetime.
 *
 * Tolerances, with u = 2^-24 (f32 unit roundoff) and S = Σ_k |x_k·w_k| over the rounded/quantized
 * activations the reference uses:
 *   float matmuls:      |Δ| ≤ (K + 2)·u·S   (f32 accumulation vs the reference's f64)
 *   q8_0/q4_0 matmuls:  |Δ| ≤ (K/32 + 2)·u·S (exact integer block sums; one f32 rounding per block)
 *   getRows, rmsnorm, rope, add, mul, setRows: exact
 *   softmax:            |Δ| ≤ (1.5·|x − max| + 8)·u·|ref|  (x − max rounded to f32, f32 expf ~2 ulp)
 *   swiglu:             |Δ| ≤ 1e-6·|ref| (+1e-38)   (f32 expf vs f64 Math.exp)
 *   gelu:               |Δ| ≤ 2e-6·|ref| + 1e-7
 *   attention, f32 cache: |Δ| ≤ 1e-6·max|v|. f16 cache: |Δ| ≤ 1e-4·max|v| (the same arithmetic up
 *     to f32 rounding, but a probability within an f32 rounding of an f16 rounding boundary may
 *     round the other way, moving the output by up to 2^-11·p·|v|; the seeds here give < 1e-6)
 */
import v8 from 'node:v8';
v8.setFlagsFromString('--experimental-wasm-relaxed-simd');

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend } from '../src/backend/backend.js';
import { prepareActivations, ReferenceBackend } from '../src/backend/reference.js';
import { createWasmBackend, KERNELS, type WasmBackend } from '../src/backend/wasm/backend.js';
import { relaxedSupported } from '../src/backend/wasm/module.js';
import { RequestError, ResourceError } from '../src/errors.js';
import type { DType } from '../src/tensor/dtype.js';
import { dequantize } from '../src/tensor/quant.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { encode, expectClose, put, randomValues, rng } from './helpers/kernels.js';

const U = 2 ** -24;

const f32Bytes = (t: Tensor): Float32Array => new Float32Array(t.f32());

function expectSameBits(a: Tensor, b: Tensor, what: string): void {
  const x = new Uint8Array(a.bytes);
  const y = new Uint8Array(b.bytes);
  if (Buffer.compare(x, y) !== 0) {
    const fx = new Float32Array(x.buffer);
    const fy = new Float32Array(y.buffer);
    const i = fx.findIndex((v, j) => !Object.is(v, fy[j]));
    throw new Error(`${what}: 1 and 2 threads differ at element ${i}: ${fx[i]} vs ${fy[i]}`);
  }
}

const ref = new ReferenceBackend();
const variants = ['simd', ...(relaxedSupported() ? ['relaxed' as const] : [])] as const;

it('relaxed SIMD is enabled in this test process (both builds get tested)', () => {
  expect(relaxedSupported()).toBe(true);
});

describe.each(variants)('wasm backend (%s)', (variant) => {
  let one: WasmBackend;
  let two: WasmBackend;
  beforeAll(async () => {
    // minParallelWork 0: split every call across the threads, however small
    one = await createWasmBackend({ threads: 1, variant });
    two = await createWasmBackend({ threads: 2, variant, minParallelWork: 0 });
  });
  afterAll(() => {
    one.dispose();
    two.dispose();
  });

  it('reports its variant and threads', () => {
    expect(one.variant).toBe(variant);
    expect(one.name).toBe('wasm');
    expect(two.threads).toBe(2);
  });

  /** Run `op` on the reference and both wasm backends with the same inputs; returns the outputs. */
  function run3(
    inputs: { dtype: DType; shape: number[]; bytes: Uint8Array }[],
    outShape: number[],
    op: (be: Backend, out: Tensor, ins: Tensor[]) => void,
    what: string,
  ): { want: Float32Array; got: Float32Array } {
    const results: Tensor[] = [];
    for (const be of [ref, one, two] as Backend[]) {
      const ins = inputs.map((i) => put(be, i.dtype, i.shape, i.bytes));
      const out = be.alloc('f32', outShape);
      op(be, out, ins);
      results.push(out);
    }
    expectSameBits(results[1]!, results[2]!, what);
    return { want: f32Bytes(results[0]!), got: f32Bytes(results[1]!) };
  }

  const floatCases: [number, number, number][] = [
    [1, 1, 1], [1, 15, 7], [1, 29, 36], [1, 8, 4], [1, 37, 13], [2, 5, 3], [3, 13, 33], [5, 17, 20], [4, 4, 8], [7, 9, 61],
    // past FEW_ROWS (8): the packed 2×4 tiles
    [8, 9, 20], [9, 13, 33], [12, 6, 40], [17, 9, 21],
  ];
  const quantCases: [number, number, number][] = [[1, 1, 32], [1, 13, 64], [1, 37, 96], [3, 9, 32], [5, 15, 128], [2, 4, 64]];

  describe.each(['f32', 'f16', 'bf16', 'q8_0', 'q4_0'] as const)('matmul with %s weights', (dtype) => {
    const cases = dtype === 'q8_0' || dtype === 'q4_0' ? quantCases : floatCases;
    it.each(cases)('M=%i N=%i K=%i', (M, N, K) => {
      const seed = M * 1000003 + N * 1009 + K;
      const x = randomValues(M * K, seed, 2);
      const wBytes = encode(dtype, randomValues(N * K, seed + 1, 0.5));
      if (dtype === 'q8_0') wBytes[2] = 0x80; // −128, which ggml's quantizer never writes but files may hold
      const { want, got } = run3(
        [{ dtype: 'f32', shape: [M, K], bytes: encode('f32', x) }, { dtype, shape: [N, K], bytes: wBytes }],
        [M, N],
        (be, out, [xt, wt]) => be.matmul(out, xt!, wt!),
        `matmul ${dtype} ${M}x${N}x${K}`,
      );
      // S = Σ|x·w| with the activations and weights the reference multiplies
      const wd = new Float32Array(N * K);
      dequantize(dtype, wBytes, 0, N * K, wd);
      const blocks = dtype === 'q8_0' || dtype === 'q4_0' ? K / 32 : K;
      const tol = new Float32Array(M * N);
      for (let m = 0; m < M; m++) {
        const xr = prepareActivations(dtype, x.subarray(m * K, (m + 1) * K));
        for (let n = 0; n < N; n++) {
          let s = 0;
          for (let k = 0; k < K; k++) s += Math.abs(xr[k]! * wd[n * K + k]!);
          tol[m * N + n] = (blocks + 2) * U * s;
        }
      }
      expectClose(got, want, (i) => tol[i]!, `matmul ${dtype} ${M}x${N}x${K}`);
    });
  });

  it('matmul with f16 weights handles subnormal, infinite and NaN weights', () => {
    const [M, N, K] = [1, 6, 21];
    const bits = new Uint16Array(N * K);
    const r = rng(31);
    for (let i = 0; i < bits.length; i++) bits[i] = 0x3000 + Math.floor(r() * 0x1000) + (r() < 0.5 ? 0x8000 : 0);
    bits.set([0x0001, 0x8001, 0x03ff, 0x7bff, 0x0400, 0xfbff], 0); // subnormals, ±max, min normal
    bits[K + 9] = 0x7c00; // +inf in row 1 (inside the eight-at-a-time part)
    bits[2 * K + 3] = 0x7e00; // NaN in row 2
    bits[4 * K + 20] = 0xfc00; // -inf in row 4's tail
    const x = randomValues(M * K, 32, 1);
    const { want, got } = run3(
      [{ dtype: 'f32', shape: [M, K], bytes: encode('f32', x) }, { dtype: 'f16', shape: [N, K], bytes: new Uint8Array(bits.buffer) }],
      [M, N],
      (be, out, [xt, wt]) => be.matmul(out, xt!, wt!),
      'matmul f16 specials',
    );
    expect(Array.from(got, (v) => (Number.isFinite(v) ? 'finite' : String(v)))).toEqual(Array.from(want, (v) => (Number.isFinite(v) ? 'finite' : String(v))));
    expectClose(got, want, (i) => 1e-5 * Math.abs(want[i]!) + 1e-6, 'matmul f16 specials');
  });

  it.each(['f32', 'f16', 'bf16', 'q8_0', 'q4_0'] as const)('getRows from a %s table is exact', (dtype) => {
    const D = 64;
    const rows = 7;
    const table = randomValues(rows * D, 77, 3);
    if (dtype === 'f16') table.set([65504, -1e-7, 6e-8, 1e6], 0); // max, subnormals, overflow to inf
    const ids = [3, 0, 6, 3, 1];
    const { want, got } = run3(
      [{ dtype, shape: [rows, D], bytes: encode(dtype, table) }],
      [ids.length, D],
      (be, out, [t]) => be.getRows(out, t!, ids),
      `getRows ${dtype}`,
    );
    expect(got).toEqual(want);
  });

  it.each([[1, 1], [3, 7], [2, 64], [5, 291]])('rmsnorm of %i × %i is exact', (rows, D) => {
    const { want, got } = run3(
      [{ dtype: 'f32', shape: [rows, D], bytes: encode('f32', randomValues(rows * D, D, 4)) }, { dtype: 'f32', shape: [D], bytes: encode('f32', randomValues(D, 5)) }],
      [rows, D],
      (be, out, [x, w]) => be.rmsnorm(out, x!, w!, 1e-5),
      'rmsnorm',
    );
    expect(got).toEqual(want);
  });

  it.each([
    [false, 3, 2, 8, 8, 0],
    [false, 2, 3, 6, 4, 5],
    [true, 4, 2, 10, 10, 17],
    [true, 1, 5, 12, 6, 1000],
  ])('rope (neox %s, %i rows, %i heads, head %i, nRot %i, pos %i) is exact', (neox, rows, nHead, headDim, nRot, pos) => {
    const width = nHead * headDim;
    const x = randomValues(rows * width, rows + nHead + pos, 2);
    const results: Float32Array[] = [];
    for (const be of [ref, one, two] as Backend[]) {
      const t = put(be, 'f32', [rows, width], encode('f32', x));
      be.rope(t, pos, { nHead, headDim, nRot, theta: 10000, neox });
      results.push(f32Bytes(t));
    }
    expect(results[1]).toEqual(results[0]);
    expect(results[2]).toEqual(results[1]);
  });

  it.each([[1, 1], [2, 7], [3, 33], [2, 1000]])('softmax of %i × %i', (rows, D) => {
    const x = randomValues(rows * D, D + 3, 20);
    const results: Float32Array[] = [];
    for (const be of [ref, one, two] as Backend[]) {
      const t = put(be, 'f32', [rows, D], encode('f32', x));
      be.softmax(t);
      results.push(f32Bytes(t));
    }
    expect(results[2]).toEqual(results[1]);
    // x − max is taken in f32: its rounding (≤ u·|x − max|) carries into exp
    const tol = (i: number): number => {
      const r = Math.floor(i / D);
      const max = Math.max(...x.subarray(r * D, (r + 1) * D));
      return Math.abs(results[0]![i]!) * U * (1.5 * (max - x[i]!) + 8) + 1e-38;
    };
    expectClose(results[1]!, results[0]!, tol, 'softmax');
  });

  it.each([1, 7, 64, 1001])('swiglu, gelu, add and mul of %i values', (n) => {
    const a = randomValues(n, n, 12);
    const b = randomValues(n, n + 1, 3);
    if (n > 4) a.set([100, -100, 0, -0.5], 0);
    const inputs = [{ dtype: 'f32' as const, shape: [n], bytes: encode('f32', a) }, { dtype: 'f32' as const, shape: [n], bytes: encode('f32', b) }];
    const sw = run3(inputs, [n], (be, out, [g, u]) => be.swiglu(out, g!, u!), 'swiglu');
    expectClose(sw.got, sw.want, (i) => 1e-6 * Math.abs(sw.want[i]!) + 1e-38, 'swiglu');
    const ge = run3(inputs, [n], (be, out, [x]) => be.gelu(out, x!), 'gelu');
    expectClose(ge.got, ge.want, (i) => 2e-6 * Math.abs(ge.want[i]!) + 1e-7, 'gelu');
    const ad = run3(inputs, [n], (be, out, [x, y]) => be.add(out, x!, y!), 'add');
    expect(ad.got).toEqual(ad.want);
    const mu = run3(inputs, [n], (be, out, [x, y]) => be.mul(out, x!, y!), 'mul');
    expect(mu.got).toEqual(mu.want);
  });

  it.each(['f32', 'f16'] as const)('setRows into an %s cache is exact (specials included)', (dtype) => {
    const rows = 3;
    const D = 13;
    const src = randomValues(rows * D, 9, 50);
    src.set([65519, 65520, -1e9, NaN, Infinity, -0, 2 ** -25, 3 * 2 ** -26, 2 ** -24 * 1.5, 6.1e-5, 1e-10, 0.1, 2049], 0);
    const results: Uint8Array[] = [];
    for (const be of [ref, one, two] as Backend[]) {
      const dst = be.alloc(dtype, [8, D]);
      const s = put(be, 'f32', [rows, D], encode('f32', src));
      be.setRows(dst, 4, s);
      results.push(new Uint8Array(dst.bytes));
    }
    expect(Buffer.compare(results[1]!, results[0]!)).toBe(0);
    expect(Buffer.compare(results[2]!, results[0]!)).toBe(0);
  });

  describe.each(['f32', 'f16'] as const)('attention over an %s cache', (cache) => {
    it.each([
      // M, nHead, nKvHead, headDim, pos, ctx
      [1, 1, 1, 1, 0, 1],
      [1, 4, 2, 8, 40, 48],
      [3, 6, 3, 7, 70, 80],
      [5, 2, 1, 16, 0, 5],
      [2, 3, 3, 12, 100, 110],
    ])('M=%i heads=%i kv=%i dim=%i pos=%i', (M, nHead, nKvHead, headDim, pos, ctx) => {
      const qWidth = nHead * headDim;
      const kvWidth = nKvHead * headDim;
      const q = randomValues(M * qWidth, M + pos, 1.5);
      const k = randomValues(ctx * kvWidth, ctx, 1.5);
      const v = randomValues(ctx * kvWidth, ctx + 1, 2);
      const results: Float32Array[] = [];
      for (const be of [ref, one, two] as Backend[]) {
        const kt = be.alloc(cache, [ctx, kvWidth]);
        const vt = be.alloc(cache, [ctx, kvWidth]);
        be.setRows(kt, 0, put(be, 'f32', [ctx, kvWidth], encode('f32', k)));
        be.setRows(vt, 0, put(be, 'f32', [ctx, kvWidth], encode('f32', v)));
        const qt = put(be, 'f32', [M, qWidth], encode('f32', q));
        const out = be.alloc('f32', [M, qWidth]);
        be.attention(out, qt, kt, vt, { nHead, nKvHead, headDim, pos, scale: 1 / Math.sqrt(headDim) });
        results.push(f32Bytes(out));
      }
      expect(results[2]).toEqual(results[1]);
      const tol = (cache === 'f32' ? 1e-6 : 1e-4) * 2; // × max|v|
      expectClose(results[1]!, results[0]!, () => tol, `attention ${cache}`);
    });
  });

  it('attention over an f16 cache holding inf and NaN matches the reference', () => {
    const [M, nHead, headDim, ctx] = [2, 2, 16, 40];
    const q = randomValues(M * nHead * headDim, 3, 1);
    const k = randomValues(ctx * nHead * headDim, 4, 1);
    const v = randomValues(ctx * nHead * headDim, 5, 1);
    k[3 * nHead * headDim + 5] = 1e6; // f16 inf in key 3, head 0: that head's scores turn inf/NaN
    v[7 * nHead * headDim + headDim + 2] = NaN; // one NaN value in head 1
    const results: Float32Array[] = [];
    for (const be of [ref, one, two] as Backend[]) {
      const kt = be.alloc('f16', [ctx, nHead * headDim]);
      const vt = be.alloc('f16', [ctx, nHead * headDim]);
      be.setRows(kt, 0, put(be, 'f32', [ctx, nHead * headDim], encode('f32', k)));
      be.setRows(vt, 0, put(be, 'f32', [ctx, nHead * headDim], encode('f32', v)));
      const out = be.alloc('f32', [M, nHead * headDim]);
      be.attention(out, put(be, 'f32', [M, nHead * headDim], encode('f32', q)), kt, vt, { nHead, nKvHead: nHead, headDim, pos: 30, scale: 0.25 });
      results.push(f32Bytes(out));
    }
    expect(results[2]).toEqual(results[1]);
    const nan = (a: Float32Array) => Array.from(a, Number.isNaN);
    expect(nan(results[1]!)).toEqual(nan(results[0]!));
    expect(nan(results[1]!).filter(Boolean).length).toBeGreaterThan(0);
    expectClose(results[1]!, results[0]!, () => 1e-4, 'attention f16 specials');
  });

  it.each(['f32', 'f16', 'bf16', 'q8_0', 'q4_0'] as const)('a %s matmul of a batch equals its rows one at a time, bit for bit', (dtype) => {
    const [M, N, K] = [5, 13, 96];
    const x = randomValues(M * K, 11, 2);
    const w = put(two, dtype, [N, K], encode(dtype, randomValues(N * K, 12, 0.5)));
    const xt = put(two, 'f32', [M, K], encode('f32', x));
    const batch = two.alloc('f32', [M, N]);
    two.matmul(batch, xt, w);
    const row = two.alloc('f32', [1, N]);
    for (let m = 0; m < M; m++) {
      two.matmul(row, xt.rows(m, 1), w);
      expect(Buffer.compare(row.bytes, batch.rows(m, 1).bytes)).toBe(0);
    }
  });

  it.each(['f32', 'f16'] as const)('attention over a prompt equals its rows decoded one at a time (%s cache)', (cache) => {
    const [M, nHead, nKvHead, headDim, pos] = [21, 4, 2, 24, 50];
    const ctx = pos + M;
    const kt = two.alloc(cache, [ctx, nKvHead * headDim]);
    const vt = two.alloc(cache, [ctx, nKvHead * headDim]);
    two.setRows(kt, 0, put(two, 'f32', [ctx, nKvHead * headDim], encode('f32', randomValues(ctx * nKvHead * headDim, 21, 2))));
    two.setRows(vt, 0, put(two, 'f32', [ctx, nKvHead * headDim], encode('f32', randomValues(ctx * nKvHead * headDim, 22, 2))));
    const q = put(two, 'f32', [M, nHead * headDim], encode('f32', randomValues(M * nHead * headDim, 23, 2)));
    const params = { nHead, nKvHead, headDim, pos, scale: 0.2 };
    const batch = two.alloc('f32', [M, nHead * headDim]);
    two.attention(batch, q, kt, vt, params);
    const row = two.alloc('f32', [1, nHead * headDim]);
    for (let r = 0; r < M; r++) {
      two.attention(row, q.rows(r, 1), kt, vt, { ...params, pos: pos + r });
      expect(Buffer.compare(row.bytes, batch.rows(r, 1).bytes)).toBe(0);
    }
  });

  it('rejects tensors from another backend', () => {
    const x = ref.alloc('f32', [1, 4]);
    const w = one.alloc('f32', [2, 4]);
    const out = one.alloc('f32', [1, 2]);
    expect(() => one.matmul(out, x, w)).toThrow(/not in this backend's memory/);
    expect(() => two.add(out, out, out)).toThrow(/not in this backend's memory/);
  });
});

it('q8_0 and q4_0 matmuls give the same bits in the simd and relaxed builds', async () => {
  const simd = await createWasmBackend({ threads: 1, variant: 'simd' });
  const relaxed = await createWasmBackend({ threads: 1, variant: 'relaxed' });
  const [M, N, K] = [3, 11, 256];
  const x = randomValues(M * K, 5, 3);
  const w = randomValues(N * K, 6, 1);
  for (const dtype of ['q8_0', 'q4_0'] as const) {
    const outs = [simd, relaxed].map((be) => {
      const out = be.alloc('f32', [M, N]);
      be.matmul(out, put(be, 'f32', [M, K], encode('f32', x)), put(be, dtype, [N, K], encode(dtype, w)));
      return out;
    });
    expect(Buffer.compare(outs[0]!.bytes, outs[1]!.bytes)).toBe(0);
  }
  simd.dispose();
  relaxed.dispose();
});

describe('wasm heap', () => {
  let be: WasmBackend;
  beforeAll(async () => {
    be = await createWasmBackend({ threads: 2, variant: 'simd', initialMemory: 65536, minParallelWork: 0 });
  });
  afterAll(() => be.dispose());

  it('hands out zeroed, 64-byte aligned blocks and reuses freed ones', () => {
    const a = be.alloc('f32', [100]);
    const b = be.alloc('f16', [3]);
    expect(a.bytes.byteOffset % 64).toBe(0);
    expect(b.bytes.byteOffset % 64).toBe(0);
    a.f32().fill(7);
    const addr = a.bytes.byteOffset;
    be.free(a);
    const c = be.alloc('f32', [90]);
    expect(c.bytes.byteOffset).toBe(addr);
    expect(c.f32().every((v) => v === 0)).toBe(true);
    be.free(b);
    be.free(c);
  });

  it('merges neighbouring free blocks', () => {
    const a = be.alloc('f32', [1000]);
    const b = be.alloc('f32', [1000]);
    const guard = be.alloc('f32', [16]);
    be.free(a);
    be.free(b);
    const c = be.alloc('f32', [2000]);
    expect(c.bytes.byteOffset).toBe(a.bytes.byteOffset);
    be.free(c);
    be.free(guard);
  });

  it('allocates empty tensors and rejects bad shapes with RequestError', () => {
    const empty = be.alloc('f32', [0, 5]);
    expect(empty.bytes.byteLength).toBe(0);
    be.free(empty);
    expect(() => be.alloc('f32', [2, -1])).toThrow(RequestError);
    expect(() => be.alloc('f32', [1.5])).toThrow(/shape/);
    expect(() => be.alloc('q8_0', [3, 20])).toThrow(/block size 32/);
  });

  it('refuses to free views and double frees', () => {
    const a = be.alloc('f32', [4, 4]);
    expect(() => be.free(a.rows(0, 2))).toThrow(/did not return/);
    be.free(a);
    expect(() => be.free(a)).toThrow(/did not return/);
  });

  it('grows the memory; old views stay valid and threads see the new memory', () => {
    const before = be.alloc('f32', [16]);
    before.f32().fill(3);
    const size = be.memorySize;
    const n = 3_000_000; // 12 MB per tensor, far beyond the initial 64 KiB
    const a = be.alloc('f32', [n]);
    const b = be.alloc('f32', [n]);
    expect(be.memorySize).toBeGreaterThan(size);
    expect(before.f32().every((v) => v === 3)).toBe(true);
    a.f32().fill(1.5);
    b.f32().fill(2);
    be.add(a, a, b); // split across both threads
    expect(a.f32()[0]).toBe(3.5);
    expect(a.f32()[n - 1]).toBe(3.5);
    for (const t of [before, a, b]) be.free(t);
  });

  it('throws ResourceError out_of_memory past 4 GiB', () => {
    let err: unknown;
    try {
      be.alloc('f32', [2 ** 30]);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ResourceError);
    expect((err as ResourceError).code).toBe('out_of_memory');
    expect((err as Error).message).toMatch(/4096 MiB/);
  });
});

describe('wasm backend options and lifetime', () => {
  it('validates threads and variant', async () => {
    await expect(createWasmBackend({ threads: 0 })).rejects.toBeInstanceOf(RequestError);
    await expect(createWasmBackend({ threads: 1.5 })).rejects.toThrow(/threads/);
    await expect(createWasmBackend({ variant: 'fast' as never })).rejects.toBeInstanceOf(RequestError);
  });

  it('takes the variant from SMALLMIND_WASM_VARIANT when not given', async () => {
    const saved = process.env['SMALLMIND_WASM_VARIANT'];
    process.env['SMALLMIND_WASM_VARIANT'] = 'simd';
    try {
      const be = await createWasmBackend({ threads: 1 });
      expect(be.variant).toBe('simd');
      be.dispose();
    } finally {
      if (saved === undefined) delete process.env['SMALLMIND_WASM_VARIANT'];
      else process.env['SMALLMIND_WASM_VARIANT'] = saved;
    }
  });

  it('a kernel that traps in a worker thread throws on the calling thread, and the pool keeps working', async () => {
    const be = await createWasmBackend({ threads: 2, minParallelWork: 0 });
    const n = 1024;
    // an add whose upper half (the worker's slice) writes past the end of memory
    const pool = (be as unknown as { pool: { run(op: number, args: number[], total: number, grain: number): void } }).pool;
    expect(() => pool.run(KERNELS.indexOf('add'), [be.memorySize - 2 * n, 1024, 1024], n, 64)).toThrow(/worker thread failed.*out of bounds/);
    const a = be.alloc('f32', [n]);
    a.f32().fill(1);
    be.add(a, a, a);
    expect(a.f32()[n - 1]).toBe(2);
    be.dispose();
  });

  it('dispose() ends the worker threads and the backend refuses further use', async () => {
    const be = await createWasmBackend({ threads: 3 });
    const t = be.alloc('f32', [4]);
    be.dispose();
    await be.workersExited;
    expect(() => be.alloc('f32', [1])).toThrow(/after dispose/);
    expect(() => be.add(t, t, t)).toThrow(/after dispose/);
  });
});
