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
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend } from '../src/backend/backend.js';
import { prepareActivations, ReferenceBackend } from '../src/backend/reference.js';
import { createWasmBackend, type WasmBackend } from '../src/backend/wasm/backend.js';
import { readGGUF } from '../src/formats/gguf.js';
import { loadModel } from '../src/index.js';
import { quantizeModel } from '../src/quantize.js';
import { relaxedSupported } from '../src/backend/wasm/module.js';
import { f16ToF32 } from '../src/tensor/f16.js';
import { byteSize, DTYPES, dtypeFromGgml } from '../src/tensor/dtype.js';
import { dequantize, encodeValues, GGUF_FILE_TYPE, quantizeQ8_0 } from '../src/tensor/quant.js';
import { dotQ8_1, Q8_1_BLOCK_BYTES, quantizeLegacy, quantizeQ8_1, type LegacyType } from '../src/tensor/quant-legacy.js';
import { shared } from './helpers/vocab.js';
import { put, randomValues } from './helpers/kernels.js';

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

// ---- matmul: reference and wasm against ggml's vec_dot, then wasm against the reference ----------

function quantized(type: LegacyType, values: Float32Array): Uint8Array {
  const out = new Uint8Array(byteSize(type, values.length));
  quantizeLegacy(type, values, values.length, out);
  return out;
}

/**
 * S = Σ_k |x_k|·(|w_k| + |m_w|) + Σ_b |m_w·s_x| for weight row n against activation row x, over the
 * quantized activations and dequantized weights: a bound on the magnitudes of the terms ggml adds.
 */
function magnitude(type: LegacyType, w: Uint8Array, n: number, K: number, x: Float32Array): number {
  const wd = new Float32Array(K);
  dequantize(type, w, n * K, K, wd);
  const xr = prepareActivations(type, x);
  const xq = new Uint8Array((K / 32) * Q8_1_BLOCK_BYTES);
  quantizeQ8_1(x, K, xq);
  const view = new DataView(w.buffer, w.byteOffset + byteSize(type, n * K));
  let s = 0;
  for (let b = 0; b < K / 32; b++) {
    const m = type === 'q5_0' ? 0 : Math.abs(f16ToF32(view.getUint16(b * DTYPES[type].blockBytes + 2, true)));
    for (let j = 0; j < 32; j++) s += Math.abs(xr[b * 32 + j]!) * (Math.abs(wd[b * 32 + j]!) + m);
    s += m * Math.abs(f16ToF32(xq[b * 36 + 2]! | (xq[b * 36 + 3]! << 8)));
  }
  return s;
}

const tolerance = (type: LegacyType, w: Uint8Array, n: number, K: number, x: Float32Array): number => (K / 32 + 4) * U * magnitude(type, w, n, K, x);

/** out = x · wᵀ on `be` (x: f32 [M, K]; w: `type` bytes of N rows). */
function matmulOn(be: Backend, type: LegacyType, x: Float32Array, w: Uint8Array, M: number, N: number, K: number): Float32Array {
  const out = be.alloc('f32', [M, N]);
  be.matmul(out, put(be, 'f32', [M, K], new Uint8Array(x.buffer, x.byteOffset, x.byteLength)), put(be, type, [N, K], w));
  return new Float32Array(out.f32());
}

const ref = new ReferenceBackend();
const variants = ['simd', 'relaxed'] as const;
const backends = new Map<string, WasmBackend>();
beforeAll(async () => {
  for (const variant of variants) {
    backends.set(`${variant}/1`, await createWasmBackend({ threads: 1, variant }));
    backends.set(`${variant}/2`, await createWasmBackend({ threads: 2, variant, minParallelWork: 0 }));
  }
});
afterAll(() => {
  for (const be of backends.values()) be.dispose();
});

it('relaxed SIMD is enabled in this test process (both builds get tested)', () => {
  expect(relaxedSupported()).toBe(true);
});

describe.each(ggml.cases.map((c) => [c.type, c] as const))('%s dot products against ggml_vec_dot', (type, c) => {
  const { R, K, A } = ggml;
  const check = (got: Float32Array, what: string): void => {
    for (let a = 0; a < A; a++) {
      for (let r = 0; r < R; r++) {
        const want = c.dots[r * A + a]!;
        const tol = tolerance(type, c.quantized, r, K, ggml.x.subarray(a * K, (a + 1) * K));
        expect(Math.abs(got[a * R + r]! - want), `${what}: weight row ${r} · x row ${a}: ${got[a * R + r]} vs ${want}`).toBeLessThanOrEqual(tol);
      }
    }
  };

  it('the reference backend', () => {
    check(matmulOn(ref, type, ggml.x, c.quantized, A, R, K), 'reference');
    if (type !== 'q5_0') {
      // dotQ8_1 straight on ggml's own Q8_1 activation bytes
      for (let r = 0; r < R; r++) {
        const got = dotQ8_1(type, c.quantized, r * byteSize(type, K), c.activations.subarray(0, c.xRowBytes), K);
        expect(Math.abs(got - c.dots[r * A]!)).toBeLessThanOrEqual(tolerance(type, c.quantized, r, K, ggml.x.subarray(0, K)));
      }
    }
  });

  it.each(variants)('the wasm backend (%s)', (variant) => {
    check(matmulOn(backends.get(`${variant}/1`)!, type, ggml.x, c.quantized, A, R, K), variant);
  });
});

describe.each(TYPES)('%s wasm matmul against the reference', (type) => {
  const cases: [number, number, number][] = [[1, 7, 32], [3, 13, 64], [9, 6, 96], [17, 5, 4096], [1, 9, 4096], [17, 11, 96], [4, 8, 128]];
  it.each(cases)('M=%i N=%i K=%i: within tolerance, 1 and 2 threads and both builds the same bits', (M, N, K) => {
    const seed = M * 1000003 + N * 1009 + K;
    const x = randomValues(M * K, seed, 2);
    const w = quantized(type, randomValues(N * K, seed + 1, 0.5));
    const want = matmulOn(ref, type, x, w, M, N, K);
    const first = matmulOn(backends.get('simd/1')!, type, x, w, M, N, K);
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        const tol = tolerance(type, w, n, K, x.subarray(m * K, (m + 1) * K));
        expect(Math.abs(first[m * N + n]! - want[m * N + n]!), `[${m}, ${n}]`).toBeLessThanOrEqual(tol);
      }
    }
    for (const [name, be] of backends) expect(Buffer.from(matmulOn(be, type, x, w, M, N, K).buffer), name).toEqual(Buffer.from(first.buffer));
    // a batch gives the bits of one row at a time
    for (let m = 0; m < M; m++) {
      const one = matmulOn(backends.get('relaxed/2')!, type, x.subarray(m * K, (m + 1) * K), w, 1, N, K);
      expect(Buffer.from(one.buffer), `row ${m} alone`).toEqual(Buffer.from(first.slice(m * N, (m + 1) * N).buffer));
    }
  });

  it('getRows decodes exactly as dequantize', () => {
    const D = 96;
    const rows = 6;
    const table = randomValues(rows * D, 77, 3);
    table.fill(0.25, 32, 64); // a constant block
    const bytes = quantized(type, table);
    const ids = [3, 0, 5, 3, 1];
    const want = new Float32Array(ids.length * D);
    ids.forEach((id, i) => dequantize(type, bytes, id * D, D, want, i * D));
    for (const be of [ref, ...backends.values()] as Backend[]) {
      const out = be.alloc('f32', [ids.length, D]);
      be.getRows(out, put(be, type, [rows, D], bytes), ids);
      expect(new Float32Array(out.f32())).toEqual(want);
    }
  });
});

// ---- end to end: stories260K quantized to each type ---------------------------------------------

describe('stories260K quantized to q4_1, q5_0, q5_1', () => {
  const SOURCE = shared('models/stories260K/stories260K.gguf');
  const story = fs.readFileSync(shared('fixtures/ppl-story.txt'), 'utf8');
  const { cases } = JSON.parse(fs.readFileSync(shared('fixtures/generation-stories260K-f32.json'), 'utf8')) as { cases: { prompt: string; generated_tokens: number[] }[] };
  const prompt = cases.find((c) => c.prompt === 'Once upon a time')!;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'smallmind-legacy-'));
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
  let f32Ppl = 0;
  beforeAll(async () => {
    const model = await loadModel(SOURCE, { threads: 2 });
    f32Ppl = (await model.perplexity(story, { ctxSize: 128 })).ppl;
    model.dispose();
  });

  // PPL of the F32 model on ppl-story.txt (ctx 128) is 4.176; measured: q5_1 4.185 (+0.2%),
  // q5_0 4.360 (+4.4%), q4_1 4.527 (+8.4%) (q4_0: 4.737, +13%, as llama-perplexity's 4.7369).
  it.each([['q5_1', 0.02], ['q5_0', 0.07], ['q4_1', 0.11]] as const)('%s: loads, generates and keeps perplexity within %f of F32\'s', async (type, margin) => {
    const output = path.join(tmp, `stories260K-${type}.gguf`);
    const result = quantizeModel({ input: SOURCE, output, type, pure: true });
    // --pure: every quantizable tensor in the type (no Q8_0 classifier); 1-D norms stay f32; the 172-wide ffn_down rows do not split into 32-blocks and fall back to f16
    expect(result.tensorTypes).toEqual({ [type]: 32, f32: 11, f16: 5 });
    expect(readGGUF(output).metadata.get('general.file_type')).toBe(GGUF_FILE_TYPE[type]);

    const one = await loadModel(output, { threads: 1 });
    const two = await loadModel(output, { threads: 2 });
    try {
      const greedy = { maxTokens: 24, temperature: 0 };
      const a = await one.generate(prompt.prompt, greedy);
      const b = await two.generate(prompt.prompt, greedy);
      expect(b.tokens).toEqual(a.tokens); // thread count never changes the bits
      // a working quantized model continues as the F32 model does for a while (llama.cpp's tokens)
      expect(a.tokens.slice(0, 8)).toEqual(prompt.generated_tokens.slice(0, 8));
      const ppl = (await one.perplexity(story, { ctxSize: 128 })).ppl;
      expect(ppl / f32Ppl - 1).toBeLessThanOrEqual(margin);
      expect(ppl).toBeGreaterThan(f32Ppl * 0.98);
    } finally {
      one.dispose();
      two.dispose();
    }
  });
});
