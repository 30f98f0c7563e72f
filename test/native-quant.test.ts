/**
 * The native kernels for Q4_1, Q5_0, Q5_1 (against Q8_0 / Q8_1 activations) and the K-quants
 * Q4_K, Q5_K, Q6_K (against Q8_K activations), for every kernel build this CPU runs and 1 and 2
 * threads, against the wasm backend and the reference backend; then end to end, greedy tokens of
 * quantized models on native and wasm.
 *
 * What is guaranteed (native/src/kernels.h): the wasm backend's bits exactly, in every build and
 * thread count, and a batch equal to its rows one at a time (same integer block sums, same f32
 * steps per output element). Against the reference backend, with u = 2^-24 and
 * S = Σ_k |x_k|·(|w_k| + |min_k|) over the quantized activations (min_k: the block's min term, the
 * value its quant 0 stands for), |Δ| ≤ (blocks + 4)·u·S, as test/quant-k.test.ts and
 * test/native-backend.test.ts state for the wasm kernels.
 *
 * Without the addon the tests are skipped with the reason in their name.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadNative, type NativeBuild } from '../src/backend/native/addon.js';
import { createNativeBackend, type NativeBackend } from '../src/backend/native/backend.js';
import { prepareActivations, ReferenceBackend } from '../src/backend/reference.js';
import { createWasmBackend, type WasmBackend } from '../src/backend/wasm/backend.js';
import { loadModel } from '../src/index.js';
import { quantizeModel } from '../src/quantize.js';
import { DTYPES } from '../src/tensor/dtype.js';
import { dequantize } from '../src/tensor/quant.js';
import { encode, expectClose, put, randomValues, matmulOfRows } from './helpers/kernels.js';
import { writeTinyLlama } from './helpers/tiny-llama.js';
import { shared } from './helpers/vocab.js';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const U = 2 ** -24;
const native = loadNative();
const skipReason = native.loaded ? '' : ` (skipped: native addon ${native.built ? `failed to load: ${native.error}` : `not built at ${native.path}`})`;
const builds: NativeBuild[] = native.builds.map((b) => b.name);

const LEGACY = ['q4_1', 'q5_0', 'q5_1'] as const;
const K_QUANTS = ['q4_k', 'q5_k', 'q6_k'] as const;
type NewType = (typeof LEGACY)[number] | (typeof K_QUANTS)[number];

// M = 1 (decode), 2, 5 (the four-row tiles start at 4), 17; N off every tile width; K from one block to 4096
const LEGACY_CASES: [number, number, number][] = [[1, 13, 32], [1, 37, 96], [1, 21, 4096], [2, 9, 96], [2, 37, 32], [5, 37, 96], [5, 13, 4096], [17, 21, 96], [17, 11, 32]];
const K_CASES: [number, number, number][] = [[1, 13, 256], [1, 37, 512], [1, 21, 4096], [2, 9, 512], [2, 37, 256], [5, 37, 256], [5, 13, 4096], [17, 21, 512], [17, 11, 256]];

/**
 * Where a block's quants sit (bytes [from, to) of each block): zeroing them leaves the value each
 * block's quant 0 stands for, its min term (Q4_1/Q5_1: m; Q4_K/Q5_K: −dmin·m_j).
 */
const QUANT_BYTES: Partial<Record<NewType, [number, number]>> = { q4_1: [4, 20], q5_1: [4, 24], q4_k: [16, 144], q5_k: [16, 176] };

function minTerms(dtype: NewType, w: Uint8Array, count: number): Float32Array {
  const out = new Float32Array(count);
  const span = QUANT_BYTES[dtype];
  if (!span) return out; // Q5_0 and Q6_K: no min term
  const zeroed = w.slice();
  const blockBytes = DTYPES[dtype].blockBytes;
  for (let b = 0; b < zeroed.length; b += blockBytes) zeroed.fill(0, b + span[0], b + span[1]);
  dequantize(dtype, zeroed, 0, count, out);
  return out;
}

const bitsOf = (t: { bytes: Uint8Array }): Buffer => Buffer.from(t.bytes);

describe.skipIf(!native.loaded)(`native Q4_1/Q5_0/Q5_1 and K-quant kernels${skipReason}`, () => {
  const ref = new ReferenceBackend();
  let wasm: WasmBackend;
  beforeAll(async () => {
    wasm = await createWasmBackend({ threads: 1, variant: 'simd' });
  });
  afterAll(() => wasm.dispose());

  /** The inputs, the reference result with its tolerance and the wasm backend's bits (once for every build). */
  const expected = new Map<string, { x: Uint8Array; w: Uint8Array; want: Float32Array; tol: Float32Array; wasm: Buffer }>();
  function expectation(dtype: NewType, M: number, N: number, K: number) {
    const key = `${dtype} ${M}x${N}x${K}`;
    let e = expected.get(key);
    if (e) return e;
    const seed = M * 1000003 + N * 1009 + K;
    const xs = randomValues(M * K, seed, 2);
    if (M > 1) xs.fill(0, K, K + Math.min(K, 256)); // an all-zero activation block (d = 0)
    const values = randomValues(N * K, seed + 1, 0.05, 0.01);
    values.fill(0, 0, K / 2); // a half row of zero weights (d = dmin = 0 blocks)
    const x = encode('f32', xs);
    const w = encode(dtype, values);
    const [want, viaWasm] = [ref, wasm].map((be) => {
      const out = be.alloc('f32', [M, N]);
      be.matmul(out, put(be, 'f32', [M, K], x), put(be, dtype, [N, K], w));
      return out;
    });
    const wd = new Float32Array(N * K);
    dequantize(dtype, w, 0, N * K, wd);
    const mins = minTerms(dtype, w, N * K);
    const blocks = K / DTYPES[dtype].blockSize;
    const tol = new Float32Array(M * N);
    for (let m = 0; m < M; m++) {
      const xr = prepareActivations(dtype, xs.subarray(m * K, (m + 1) * K));
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += Math.abs(xr[k]!) * (Math.abs(wd[n * K + k]!) + Math.abs(mins[n * K + k]!));
        tol[m * N + n] = (blocks + 4) * U * s;
      }
    }
    e = { x, w, want: new Float32Array(want!.f32()), tol, wasm: bitsOf(viaWasm!) };
    expected.set(key, e);
    return e;
  }

  describe.each(builds)('%s build', (build) => {
    let one: NativeBackend;
    let two: NativeBackend;
    beforeAll(async () => {
      one = await createNativeBackend({ threads: 1, build });
      two = await createNativeBackend({ threads: 2, build, minParallelWork: 0 }); // split every call
    });
    afterAll(() => {
      one.dispose();
      two.dispose();
    });

    const all = [...LEGACY.map((t) => [t, LEGACY_CASES] as const), ...K_QUANTS.map((t) => [t, K_CASES] as const)];
    describe.each(all)('matmul with %s weights', (dtype, cases) => {
      it.each(cases)('M=%i N=%i K=%i: the wasm bits with 1 and 2 threads; within tolerance of the reference', (M, N, K) => {
        const e = expectation(dtype, M, N, K);
        const [a, b] = [one, two].map((be) => {
          const out = be.alloc('f32', [M, N]);
          be.matmul(out, put(be, 'f32', [M, K], e.x), put(be, dtype, [N, K], e.w));
          return out;
        });
        expect(bitsOf(a!).equals(e.wasm), 'the wasm backend\'s bits (1 thread)').toBe(true);
        expect(bitsOf(b!).equals(e.wasm), 'the wasm backend\'s bits (2 threads)').toBe(true);
        expectClose(new Float32Array(a!.f32()), e.want, (i) => e.tol[i]!, `${build} matmul ${dtype} ${M}x${N}x${K}`);
      });
    });

    it.each([...LEGACY, ...K_QUANTS])('a %s matmul of a batch equals its rows one at a time, bit for bit', (dtype) => {
      const [M, N, K] = [9, 21, 512];
      const w = put(two, dtype, [N, K], encode(dtype, randomValues(N * K, 12, 0.5)));
      const x = put(two, 'f32', [M, K], encode('f32', randomValues(M * K, 11, 2)));
      const batch = two.alloc('f32', [M, N]);
      two.matmul(batch, x, w);
      const row = two.alloc('f32', [1, N]);
      for (let m = 0; m < M; m++) {
        two.matmul(row, x.rows(m, 1), w);
        expect(bitsOf(row).equals(bitsOf(batch.rows(m, 1))), `row ${m}`).toBe(true);
      }
    });

    it.each(['q4_1', 'q5_1', 'q4_k', 'q6_k'] as const)('a %s matmul quantizes awkward activations exactly as wasm (zeros, ties, subnormals, NaN)', (dtype) => {
      const N = 19;
      const K = 256;
      const rows: number[][] = [
        new Array(K).fill(0),
        Array.from({ length: K }, (_, i) => (i === 0 ? 127 : (i % 8) + 0.5 - 4)), // amax 127: ties at .5
        Array.from({ length: K }, (_, i) => (i === 3 ? -127 : (i % 8) + 0.5 - 4)), // the largest magnitude negative
        Array.from({ length: K }, (_, i) => (i + 1) * 2 ** -140 * (i % 2 ? -1 : 1)), // subnormals
        Array.from({ length: K }, (_, i) => (i === 7 ? NaN : i / 3)),
        Array.from({ length: K }, (_, i) => (i % 3 ? -0 : 1e-3 * i)),
      ];
      const [nat, was] = matmulOfRows([two, wasm], dtype, rows, N);
      expect(nat).toEqual(was);
      expect(nat!.slice(4 * N, 5 * N).every((v) => v === 'NaN')).toBe(true); // the NaN row
    });
  });
});

describe.skipIf(!native.loaded)(`native backend end to end: quantized models decode as on wasm${skipReason}`, () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'smallmind-native-quant-'));
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const tinyF32 = path.join(tmp, 'tiny-f32.gguf');
  beforeAll(() => writeTinyLlama(tinyF32));

  /** Greedy tokens of a prompt on the native and on the wasm backend (2 threads each). */
  async function greedyOnBoth(file: string): Promise<{ native: number[]; wasm: number[]; backend: string }> {
    const result = { native: [] as number[], wasm: [] as number[], backend: '' };
    for (const backend of ['native', 'wasm'] as const) {
      const model = await loadModel(file, { backend, threads: 2 });
      try {
        const { tokens } = await model.generate('Once upon a time', { maxTokens: 24, temperature: 0 });
        result[backend] = tokens;
        if (backend === 'native') result.backend = model.backend.name;
      } finally {
        model.dispose();
      }
    }
    return result;
  }

  // stories260K's 64-wide rows take the 32-block types; the tiny model's 256-multiple rows take the K-quants
  it.each([
    ['stories260K', 'q4_1'],
    ['stories260K', 'q5_0'],
    ['stories260K', 'q5_1'],
    ['tiny', 'q4_k'],
    ['tiny', 'q5_k'],
    ['tiny', 'q6_k'],
  ] as const)('%s %s: the same greedy tokens on native and wasm', async (source, type) => {
    const input = source === 'tiny' ? tinyF32 : shared('models/stories260K/stories260K.gguf');
    const output = path.join(tmp, `${source}-${type}.gguf`);
    const plan = quantizeModel({ input, output, type, pure: true });
    expect(plan.tensorTypes[type], `${type} tensors in the file`).toBeGreaterThan(0);
    const { native: ours, wasm: theirs, backend } = await greedyOnBoth(output);
    expect(backend).toBe('native');
    expect(ours.length).toBe(24);
    expect(ours).toEqual(theirs);
  });
});
