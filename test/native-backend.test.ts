/**
 * The native backend (C++ addon, native/) against the reference backend and the wasm backend:
 * every native kernel on seeded random inputs at awkward sizes, for every kernel build this CPU
 * runs (scalar; avx2, avx512, avx512vnni on x86-64; neon, neondot on arm64) and for 1 and 2
 * threads (which must agree bit for bit);
 * end-to-end greedy tokens against llama.cpp's fixtures; the `auto` choice and its fallback to
 * wasm; `smallmind doctor`.
 *
 * Tolerances, with u = 2^-24 and S = Σ_k |x_k·w_k| over the activations the reference uses:
 *   f32/f16/bf16 matmul: |Δ| ≤ (K + 2)·u·S (f32 accumulation in any order vs the reference's f64;
 *                      activations rounded to f16/bf16 first, as the reference does)
 *   q8_0/q4_0 matmul:  the wasm backend's bits exactly (same integer block sums, same f32 steps),
 *                      hence also its tolerance (K/32 + 2)·u·S
 *   attention:         as the wasm kernels: 2e-6 (f32 cache) and 2e-4 (f16 cache) absolute, values ≤ 2
 *
 * Without the addon (not built, or a CPU it cannot load on) the native-only tests are skipped with
 * the reason in their name; the fallback and doctor tests run either way.
 */
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Backend } from '../src/backend/backend.js';
import { createBackend } from '../src/backend/index.js';
import { loadNative, nativeAddonPath, type NativeBuild } from '../src/backend/native/addon.js';
import { createNativeBackend, type NativeBackend } from '../src/backend/native/backend.js';
import { prepareActivations, ReferenceBackend } from '../src/backend/reference.js';
import { createWasmBackend, type WasmBackend } from '../src/backend/wasm/backend.js';
import { RequestError, ResourceError } from '../src/errors.js';
import { topLogprobs } from '../src/generation/sampler.js';
import { loadModel, type Model } from '../src/index.js';
import type { DType } from '../src/tensor/dtype.js';
import { dequantize } from '../src/tensor/quant.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { run } from './helpers/cli.js';
import { encode, expectClose, put, randomValues, rng, matmulOfRows } from './helpers/kernels.js';

const U = 2 ** -24;
const native = loadNative();
const skipReason = native.loaded ? '' : ` (skipped: native addon ${native.built ? `failed to load: ${native.error}` : `not built at ${native.path}`})`;
const builds: NativeBuild[] = native.builds.map((b) => b.name);

const same = (a: Tensor, b: Tensor): boolean => Buffer.compare(a.bytes, b.bytes) === 0;

const ref = new ReferenceBackend();

describe.skipIf(!native.loaded)(`native kernels${skipReason}`, () => {
  let wasm: WasmBackend;
  beforeAll(async () => {
    wasm = await createWasmBackend({ threads: 1, variant: 'simd' });
  });
  afterAll(() => wasm.dispose());

  // M = 1 (decode), 2, 5 (prompt panels start at 4), 17, 64; N off every vector and tile width; K from one block to 4096.
  const cases: [number, number, number][] = [
    [1, 13, 32], [1, 37, 96], [1, 21, 4096], [2, 9, 96], [2, 37, 32], [5, 37, 96], [5, 13, 4096], [17, 13, 32], [17, 21, 96], [64, 33, 96], [64, 11, 4096],
  ];
  const dtypes = ['f32', 'f16', 'bf16', 'q8_0', 'q4_0'] as const;

  /** The reference result and the wasm backend's, per case and dtype (computed once for every build). */
  const expected = new Map<string, { x: Uint8Array; w: Uint8Array; want: Float32Array; tol: Float32Array; wasm: Uint8Array }>();
  function expectation(dtype: DType, M: number, N: number, K: number) {
    const key = `${dtype} ${M}x${N}x${K}`;
    let e = expected.get(key);
    if (!e) {
      const seed = M * 1000003 + N * 1009 + K;
      const xs = randomValues(M * K, seed, 2);
      const x = encode('f32', xs);
      const w = encode(dtype, randomValues(N * K, seed + 1, 0.5));
      if (dtype === 'q8_0') w[2] = 0x80; // −128, which ggml's quantizer never writes but files may hold
      const results = [ref, wasm].map((be) => {
        const out = be.alloc('f32', [M, N]);
        be.matmul(out, put(be, 'f32', [M, K], x), put(be, dtype, [N, K], w));
        return out;
      });
      const wd = new Float32Array(N * K);
      dequantize(dtype, w, 0, N * K, wd);
      const steps = dtype === 'q8_0' || dtype === 'q4_0' ? K / 32 : K;
      const tol = new Float32Array(M * N);
      for (let m = 0; m < M; m++) {
        const xr = prepareActivations(dtype, xs.subarray(m * K, (m + 1) * K));
        for (let n = 0; n < N; n++) {
          let s = 0;
          for (let k = 0; k < K; k++) s += Math.abs(xr[k]! * wd[n * K + k]!);
          tol[m * N + n] = (steps + 2) * U * s;
        }
      }
      e = { x, w, want: new Float32Array(results[0]!.f32()), tol, wasm: new Uint8Array(results[1]!.bytes) };
      expected.set(key, e);
    }
    return e;
  }

  describe.each(builds)('%s build', (build) => {
    let one: NativeBackend;
    let two: NativeBackend;
    beforeAll(async () => {
      one = await createNativeBackend({ threads: 1, build });
      // minParallelWork 0: split every call across the threads, however small
      two = await createNativeBackend({ threads: 2, build, minParallelWork: 0 });
    });
    afterAll(() => {
      one.dispose();
      two.dispose();
    });

    it('reports its name, build and threads', () => {
      expect(one.name).toBe('native');
      expect(one.build).toBe(build);
      expect(two.threads).toBe(2);
    });

    describe.each(dtypes)('matmul with %s weights', (dtype) => {
      it.each(cases)('M=%i N=%i K=%i', (M, N, K) => {
        const e = expectation(dtype, M, N, K);
        const [a, b] = [one, two].map((be) => {
          const out = be.alloc('f32', [M, N]);
          be.matmul(out, put(be, 'f32', [M, K], e.x), put(be, dtype, [N, K], e.w));
          return out;
        });
        expect(same(a!, b!), '1 and 2 threads give the same bits').toBe(true);
        if (dtype === 'q8_0' || dtype === 'q4_0') expect(Buffer.compare(a!.bytes, e.wasm), 'the wasm backend\'s bits').toBe(0);
        expectClose(new Float32Array(a!.f32()), e.want, (i) => e.tol[i]!, `${build} matmul ${dtype} ${M}x${N}x${K}`);
      });
    });

    it.each(dtypes)('a %s matmul of a batch equals its rows one at a time, bit for bit', (dtype) => {
      const [M, N, K] = [9, 21, 96];
      const w = put(two, dtype, [N, K], encode(dtype, randomValues(N * K, 12, 0.5)));
      const x = put(two, 'f32', [M, K], encode('f32', randomValues(M * K, 11, 2)));
      const batch = two.alloc('f32', [M, N]);
      two.matmul(batch, x, w);
      const row = two.alloc('f32', [1, N]);
      for (let m = 0; m < M; m++) {
        two.matmul(row, x.rows(m, 1), w);
        expect(same(row, batch.rows(m, 1)), `row ${m}`).toBe(true);
      }
    });

    it.each(['q8_0', 'q4_0'] as const)('a %s matmul quantizes awkward activations exactly as wasm (zeros, ties, subnormals, inf, NaN)', (dtype) => {
      const [N, K] = [19, 32];
      const rows: number[][] = [
        new Array(K).fill(0),
        Array.from({ length: K }, (_, i) => (i === 0 ? 127 : (i % 8) + 0.5 - 4)), // amax 127: x·127/amax = x, ties at .5
        Array.from({ length: K }, (_, i) => (i + 1) * 2 ** -140 * (i % 2 ? -1 : 1)), // subnormals
        Array.from({ length: K }, (_, i) => (i === 5 ? Infinity : i - 16)),
        Array.from({ length: K }, (_, i) => (i === 7 ? NaN : i / 3)),
        Array.from({ length: K }, (_, i) => (i % 3 ? -0 : 1e-3 * i)),
      ];
      const [nat, was] = matmulOfRows([two, wasm], dtype, rows, N);
      expect(nat).toEqual(was);
      expect(nat!.slice(3 * N, 5 * N).every((v) => v === 'NaN')).toBe(true); // inf and NaN rows
    });

    describe.each(['f32', 'f16'] as const)('attention over an %s cache', (cache) => {
      it.each([
        // M, nHead, nKvHead, headDim, pos, ctx
        [1, 1, 1, 1, 0, 1],
        [1, 4, 2, 8, 40, 48],
        [3, 6, 3, 7, 70, 80],
        [5, 2, 1, 16, 0, 5],
        [2, 3, 3, 12, 100, 110],
        [4, 4, 1, 72, 30, 34],
        [2, 2, 2, 128, 9, 11],
      ])('M=%i heads=%i kv=%i dim=%i pos=%i', (M, nHead, nKvHead, headDim, pos, ctx) => {
        const qWidth = nHead * headDim;
        const kvWidth = nKvHead * headDim;
        const q = encode('f32', randomValues(M * qWidth, M + pos, 1.5));
        const k = encode('f32', randomValues(ctx * kvWidth, ctx, 1.5));
        const v = encode('f32', randomValues(ctx * kvWidth, ctx + 1, 2));
        const results = [ref, one, two].map((be: Backend) => {
          const kt = be.alloc(cache, [ctx, kvWidth]);
          const vt = be.alloc(cache, [ctx, kvWidth]);
          be.setRows(kt, 0, put(be, 'f32', [ctx, kvWidth], k));
          be.setRows(vt, 0, put(be, 'f32', [ctx, kvWidth], v));
          const out = be.alloc('f32', [M, qWidth]);
          be.attention(out, put(be, 'f32', [M, qWidth], q), kt, vt, { nHead, nKvHead, headDim, pos, scale: 1 / Math.sqrt(headDim) });
          return out;
        });
        expect(same(results[1]!, results[2]!), '1 and 2 threads give the same bits').toBe(true);
        const tol = cache === 'f32' ? 2e-6 : 2e-4;
        expectClose(new Float32Array(results[1]!.f32()), new Float32Array(results[0]!.f32()), () => tol, `attention ${cache}`);
      });
    });

    it.each(['f32', 'f16'] as const)('attention over a prompt equals its rows decoded one at a time (%s cache)', (cache) => {
      const [M, nHead, nKvHead, headDim, pos] = [21, 4, 2, 24, 50];
      const ctx = pos + M;
      const kvWidth = nKvHead * headDim;
      const kt = two.alloc(cache, [ctx, kvWidth]);
      const vt = two.alloc(cache, [ctx, kvWidth]);
      two.setRows(kt, 0, put(two, 'f32', [ctx, kvWidth], encode('f32', randomValues(ctx * kvWidth, 21, 2))));
      two.setRows(vt, 0, put(two, 'f32', [ctx, kvWidth], encode('f32', randomValues(ctx * kvWidth, 22, 2))));
      const q = put(two, 'f32', [M, nHead * headDim], encode('f32', randomValues(M * nHead * headDim, 23, 2)));
      const params = { nHead, nKvHead, headDim, pos, scale: 0.2 };
      const batch = two.alloc('f32', [M, nHead * headDim]);
      two.attention(batch, q, kt, vt, params);
      const row = two.alloc('f32', [1, nHead * headDim]);
      for (let r = 0; r < M; r++) {
        two.attention(row, q.rows(r, 1), kt, vt, { ...params, pos: pos + r });
        expect(same(row, batch.rows(r, 1)), `row ${r}`).toBe(true);
      }
    });

    it('attention over an f16 cache holding inf and NaN gives NaN where the reference does', () => {
      const [M, nHead, headDim, ctx] = [2, 2, 16, 40];
      const width = nHead * headDim;
      const k = randomValues(ctx * width, 4, 1);
      const v = randomValues(ctx * width, 5, 1);
      k[3 * width + 5] = 1e6; // f16 inf in key 3, head 0: that head's scores turn inf/NaN
      v[7 * width + headDim + 2] = NaN; // one NaN value in head 1
      const results = [ref, one, two].map((be: Backend) => {
        const kt = be.alloc('f16', [ctx, width]);
        const vt = be.alloc('f16', [ctx, width]);
        be.setRows(kt, 0, put(be, 'f32', [ctx, width], encode('f32', k)));
        be.setRows(vt, 0, put(be, 'f32', [ctx, width], encode('f32', v)));
        const out = be.alloc('f32', [M, width]);
        be.attention(out, put(be, 'f32', [M, width], encode('f32', randomValues(M * width, 3, 1))), kt, vt, { nHead, nKvHead: nHead, headDim, pos: 30, scale: 0.25 });
        return new Float32Array(out.f32());
      });
      const nan = (a: Float32Array) => Array.from(a, Number.isNaN);
      expect(nan(results[1]!)).toEqual(nan(results[0]!));
      expect(nan(results[2]!)).toEqual(nan(results[0]!));
      expect(nan(results[1]!).filter(Boolean).length).toBeGreaterThan(0);
      expectClose(results[1]!, results[0]!, () => 1e-4, 'attention f16 specials');
    });

    it('matmul with f16 weights handles subnormal, infinite and NaN weights', () => {
      const [M, N, K] = [2, 6, 21];
      const bits = new Uint16Array(N * K);
      const r = rng(31);
      for (let i = 0; i < bits.length; i++) bits[i] = 0x3000 + Math.floor(r() * 0x1000) + (r() < 0.5 ? 0x8000 : 0);
      bits.set([0x0001, 0x8001, 0x03ff, 0x7bff, 0x0400, 0xfbff], 0); // subnormals, ±max, min normal
      bits[K + 9] = 0x7c00; // +inf in row 1
      bits[2 * K + 3] = 0x7e00; // NaN in row 2
      bits[4 * K + 20] = 0xfc00; // -inf in row 4's tail
      const x = encode('f32', randomValues(M * K, 32, 1));
      const [want, got] = [ref, one, two].map((be: Backend) => {
        const out = be.alloc('f32', [M, N]);
        be.matmul(out, put(be, 'f32', [M, K], x), put(be, 'f16', [N, K], new Uint8Array(bits.buffer)));
        return new Float32Array(out.f32());
      });
      const kind = (a: Float32Array) => Array.from(a, (v) => (Number.isFinite(v) ? 'finite' : String(v)));
      expect(kind(got!)).toEqual(kind(want!));
      expectClose(got!, want!, (i) => 1e-5 * Math.abs(want![i]!) + 1e-6, 'matmul f16 specials');
    });
  });

  it('keeps working on every thread after the wasm memory grows', async () => {
    const be = await createNativeBackend({ threads: 2, initialMemory: 65536, minParallelWork: 0 });
    try {
      const [M, N, K] = [3, 40, 64];
      const w = put(be, 'f32', [N, K], encode('f32', randomValues(N * K, 7)));
      const x = put(be, 'f32', [M, K], encode('f32', randomValues(M * K, 8)));
      const before = be.alloc('f32', [M, N]);
      be.matmul(before, x, w);
      const size = be.memorySize;
      const big = be.alloc('f32', [4_000_000]); // 16 MB: the memory grows
      expect(be.memorySize).toBeGreaterThan(size);
      const after = be.alloc('f32', [M, N]);
      be.matmul(after, x, w);
      expect(same(after, before)).toBe(true);
      // a product whose output lies in the new pages
      const far = put(be, 'f32', [M, K], x.bytes);
      const out = be.alloc('f32', [M, N]);
      expect(out.bytes.byteOffset).toBeGreaterThan(size);
      be.matmul(out, far, w);
      expect(same(out, before)).toBe(true);
      be.free(big);
    } finally {
      be.dispose();
    }
  });

  it('the addon refuses ranges outside the memory and memories not attached', async () => {
    const be = await createNativeBackend({ threads: 1 });
    const addon = native.addon!;
    const id = (be as unknown as { memoryId: number }).memoryId;
    const end = be.memorySize;
    // out would end 4 bytes past the memory
    expect(() => addon.matmul_f32(id, 0, end - 4, 1024, 2048, 1, 2, 4, 0, 2, 0)).toThrow(/lie outside the \d+-byte memory/);
    expect(() => addon.matmul_f32(id, 0, 1024, 2048, 4096, 1, 2, 4, 0, 3, 0)).toThrow(/argument 9 must be an integer in \[0, 2\]/);
    be.dispose();
    expect(() => addon.matmul_f32(id, 0, 1024, 2048, 4096, 1, 2, 4, 0, 2, 0)).toThrow(/not attached/);
  });

  it('rejects a build the CPU cannot run or that does not exist', async () => {
    await expect(createNativeBackend({ build: 'sse9' as NativeBuild })).rejects.toBeInstanceOf(RequestError);
    const saved = process.env['SMALLMIND_NATIVE_BUILD'];
    process.env['SMALLMIND_NATIVE_BUILD'] = 'nope';
    try {
      await expect(createNativeBackend({ threads: 1 })).rejects.toThrow(/SMALLMIND_NATIVE_BUILD: 'nope' is not a native build/);
    } finally {
      if (saved === undefined) delete process.env['SMALLMIND_NATIVE_BUILD'];
      else process.env['SMALLMIND_NATIVE_BUILD'] = saved;
    }
  });
});

// ---- end to end ---------------------------------------------------------------------------------

const shared = (p: string): string => fileURLToPath(new URL(`../../shared/${p}`, import.meta.url));
interface Case { name: string; prompt_tokens: number[]; generated_tokens: number[]; steps: { top: { id: number; logprob: number }[] }[] }
const fixture = (name: string): { cases: Case[] } => JSON.parse(fs.readFileSync(shared(`fixtures/${name}`), 'utf8'));

/** Free-running greedy decoding from the prompt, `count` tokens. */
function greedy(model: Model, c: Case, count: number): number[] {
  let logits = model.forward(c.prompt_tokens, 0);
  let pos = c.prompt_tokens.length;
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    const id = topLogprobs(logits, 1)[0]!.id;
    out.push(id);
    logits = model.forward([id], pos++);
  }
  return out;
}

/**
 * Greedy tokens equal llama.cpp's, all 64 of each case, except that a quantized model's text may
 * part at a near tie of llama.cpp's (top-2 logprobs within 0.05: one activation-rounding flip can
 * pick either token there; the fidelity tests teacher-force past such points), with our token one
 * of its top two. On these fixtures only Q8_0's long_prompt parts, at step 60 (gap 0.02), as the
 * wasm kernels' (same bits) does.
 */
describe.skipIf(!native.loaded)(`native backend end to end: greedy tokens equal llama.cpp's${skipReason}`, () => {
  // [label, model, fixture, KV cache, may part at a near tie (quantized: activation-rounding flips)]
  for (const [label, path, file, cacheType, mayPart] of [
    ['stories260K F32, f32 KV cache', 'models/stories260K/stories260K.gguf', 'generation-stories260K-f32-kvf32.json', 'f32', false],
    ['stories260K F32, f16 KV cache', 'models/stories260K/stories260K.gguf', 'generation-stories260K-f32.json', 'f16', false],
    ['stories260K Q8_0', 'fixtures/stories260K-q8_0.gguf', 'generation-stories260K-q8_0.json', 'f16', true],
    ['stories260K Q4_0', 'fixtures/stories260K-q4_0.gguf', 'generation-stories260K-q4_0.json', 'f16', true],
  ] as const) {
    describe(label, () => {
      let model: Model;
      beforeAll(async () => {
        model = await loadModel(shared(path), { backend: 'native', threads: 2, cacheType });
      });
      afterAll(() => model?.dispose());
      for (const c of fixture(file).cases) {
        it(c.name, () => {
          expect(model.backend.name).toBe('native');
          const ours = greedy(model, c, c.generated_tokens.length);
          const parted = ours.findIndex((id, i) => id !== c.generated_tokens[i]);
          if (!mayPart || parted < 0) {
            expect(ours).toEqual(c.generated_tokens);
            return;
          }
          const top = c.steps[parted]!.top;
          expect(top[0]!.logprob - top[1]!.logprob, `step ${parted}: ours ${ours[parted]}, llama.cpp ${top[0]!.id}: not a near tie`).toBeLessThan(0.05);
          expect([top[0]!.id, top[1]!.id]).toContain(ours[parted]);
        });
      }
    });
  }
});

// ---- choosing a backend ---------------------------------------------------------------------------

describe('backend choice', () => {
  const saved = { ...process.env };
  afterEach(() => {
    for (const key of ['SMALLMIND_BACKEND', 'SMALLMIND_NATIVE_PATH']) {
      if (saved[key] === undefined) delete process.env[key];
      else process.env[key] = saved[key];
    }
    vi.restoreAllMocks();
  });

  it('auto falls back to wasm with one notice on stderr when the addon is missing', async () => {
    process.env['SMALLMIND_NATIVE_PATH'] = fileURLToPath(new URL('./data/no-such-addon.node', import.meta.url));
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    const be = await createBackend({ threads: 1 });
    const again = await createBackend({ threads: 1, backend: 'auto' });
    try {
      expect(be.name).toBe('wasm');
      expect(again.name).toBe('wasm');
      const notices = stderr.mock.calls.map((c) => String(c[0])).filter((t) => t.startsWith('smallmind:'));
      expect(notices).toEqual([`smallmind: using the wasm backend: the native addon is not built (no ${nativeAddonPath()}; npm run build:native builds it)\n`]);
    } finally {
      be.dispose();
      again.dispose();
    }
  });

  it('auto falls back to wasm, saying why, when the addon fails to load', async () => {
    process.env['SMALLMIND_NATIVE_PATH'] = fileURLToPath(new URL('./native-backend.test.ts', import.meta.url)); // a file, but no addon
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    const be = await createBackend({ threads: 1 });
    try {
      expect(be.name).toBe('wasm');
      expect(stderr.mock.calls.map((c) => String(c[0])).join('')).toMatch(/^smallmind: using the wasm backend: the native addon failed to load: .*native-backend\.test\.ts/);
    } finally {
      be.dispose();
    }
  });

  it('an explicit native backend that cannot load is an error, not a fallback', async () => {
    process.env['SMALLMIND_NATIVE_PATH'] = '/nonexistent/smallmind.node';
    let err: unknown;
    await createBackend({ backend: 'native', threads: 1 }).catch((e: unknown) => (err = e));
    expect(err).toBeInstanceOf(ResourceError);
    expect((err as ResourceError).code).toBe('native_unavailable');
    expect((err as Error).message).toMatch(/cannot load \/nonexistent\/smallmind\.node: not built/);
  });

  it('SMALLMIND_BACKEND decides what auto means; an explicit option still wins', async () => {
    process.env['SMALLMIND_BACKEND'] = 'reference';
    const be = await createBackend({ threads: 1 });
    expect(be.name).toBe('reference');
    process.env['SMALLMIND_BACKEND'] = 'wasm';
    const explicit = await createBackend({ backend: 'reference' });
    expect(explicit.name).toBe('reference');
    const wasm = await createBackend({ threads: 1 });
    expect(wasm.name).toBe('wasm');
    wasm.dispose();
    process.env['SMALLMIND_BACKEND'] = 'gpu';
    await expect(createBackend({})).rejects.toThrow(/SMALLMIND_BACKEND: unknown backend 'gpu' \(expected auto, native, wasm, reference\)/);
  });

  it.skipIf(!native.accelerated)(`auto picks native where it is built and the CPU has the vector units${native.accelerated ? '' : ' (skipped: no vector build runs here)'}`, async () => {
    const be = await createBackend({ threads: 1 });
    expect(be.name).toBe('native');
    be.dispose();
  });
});

describe('smallmind doctor', () => {
  it('--json reports the machine, the addon, the wasm kernels and the backend auto picks, exit 0', async () => {
    const { code, stdout } = await run(['doctor', '--json']);
    expect(code).toBe(0);
    const r = JSON.parse(stdout);
    expect(r.node).toBe(process.version);
    expect(r.platform).toBe(process.platform);
    expect(r.arch).toBe(process.arch);
    expect(typeof r.cpu.model).toBe('string');
    for (const f of ['avx2', 'fma', 'f16c', 'avx512f', 'avx512bw', 'avx512vl', 'avx512_vnni', 'avx_vnni', 'amx_tile', 'neon']) {
      if (r.cpu.featureSource !== 'unknown') expect(typeof r.cpu.features[f], f).toBe('boolean');
    }
    expect(r.native).toMatchObject({ path: native.path, built: native.built, loaded: native.loaded, builds: builds });
    expect(r.native.build).toBe(native.loaded ? (process.env['SMALLMIND_NATIVE_BUILD'] ?? native.best) : null);
    expect(typeof r.wasm.relaxedSimd).toBe('boolean');
    expect(['simd', 'relaxed']).toContain(r.wasm.variant);
    expect(r.threads).toBeGreaterThanOrEqual(1);
    expect(r.backend.auto).toBe(native.accelerated ? 'native' : 'wasm');
    expect(r.backend.autoReason === null).toBe(native.accelerated);
  });

  it('prints a readable report without --json', async () => {
    const { code, stdout } = await run(['doctor']);
    expect(code).toBe(0);
    expect(stdout).toMatch(/^node +v\d+/m);
    expect(stdout).toMatch(/^native +(loaded|not built|failed to load)/m);
    expect(stdout).toMatch(/^backend +auto → (native|wasm)/m);
  });
});
