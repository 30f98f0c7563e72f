/**
 * K-quants (Q4_K, Q5_K, Q6_K, with Q8_K activations) against ggml itself: test/data/ggml-quant-k.bin
 * holds ggml's quantized bytes, dequantized values and dot products (see test/data/README.md).
 */
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DTYPES, dtypeFromGgml, type DType } from '../src/tensor/dtype.js';
import { dequantize, encodeValues } from '../src/tensor/quant.js';
import { f16ToF32 } from '../src/tensor/f16.js';
import { blockInts, dotQ8_K, kMin, kScale, quantizeQ8_K, type KQuantType } from '../src/tensor/quant-k.js';

const K_TYPES = ['q4_k', 'q5_k', 'q6_k'] as const;

// ---- the reference data file --------------------------------------------------------------------

interface QuantCase {
  kind: number;
  x: Float32Array;
  /** Per type (q4_k, q5_k, q6_k, q8_k): ggml's bytes and its dequantized values. */
  out: Map<DType, { bytes: Uint8Array; values: Float32Array }>;
}

interface DotCase {
  dtype: KQuantType;
  K: number;
  rows: number;
  x: Float32Array;
  /** ggml's Q8_K quantization of x. */
  xq: Uint8Array;
  /** rows × K weights, as ggml quantized them. */
  w: Uint8Array;
  /** ggml's vec_dot of each row with xq. */
  results: Float32Array;
}

/** The names of the data kinds in the file, by kind number (gen.c's make()). */
const KINDS = ['gaussian', 'small uniform', 'zeros', 'huge outliers', 'all negative', 'tiny (1e-8)', 'constant blocks', 'mixed sub-block scales', 'all positive', 'sparse'];

function readReference(): { quant: QuantCase[]; dots: DotCase[] } {
  const buf = fs.readFileSync(new URL('./data/ggml-quant-k.bin', import.meta.url));
  let at = 0;
  const u32 = (): number => {
    const v = buf.readUInt32LE(at);
    at += 4;
    return v;
  };
  const bytes = (n: number): Uint8Array => {
    const out = new Uint8Array(buf.subarray(at, at + n));
    at += n;
    return out;
  };
  const floats = (n: number): Float32Array => new Float32Array(bytes(4 * n).buffer);
  const dtypeOf = (ggml: number): DType => dtypeFromGgml(ggml) ?? (() => { throw new Error(`ggml type ${ggml}`); })();
  if (buf.toString('latin1', 0, 4) !== 'GQK1') throw new Error('ggml-quant-k.bin: bad magic');
  at = 4;
  const quant: QuantCase[] = [];
  for (let c = u32(); c > 0; c--) {
    const kind = u32();
    const n = u32();
    const x = floats(n);
    const out = new Map<DType, { bytes: Uint8Array; values: Float32Array }>();
    for (let t = 0; t < 4; t++) {
      const dtype = dtypeOf(u32());
      out.set(dtype, { bytes: bytes((n / 256) * DTYPES[dtype].blockBytes), values: floats(n) });
    }
    quant.push({ kind, x, out });
  }
  const dots: DotCase[] = [];
  for (let c = u32(); c > 0; c--) {
    const dtype = dtypeOf(u32()) as KQuantType;
    const K = u32();
    const rows = u32();
    const x = floats(K);
    const xq = bytes((K / 256) * DTYPES.q8_k.blockBytes);
    const w = bytes(((rows * K) / 256) * DTYPES[dtype].blockBytes);
    dots.push({ dtype, K, rows, x, xq, w, results: floats(rows) });
  }
  if (at !== buf.length) throw new Error(`ggml-quant-k.bin: ${buf.length - at} bytes left over`);
  return { quant, dots };
}

const reference = readReference();

const U = 2 ** -24;

/**
 * S = Σ_k |x_k|·(|d·sc·q_k| + |dmin·m|) (Q6_K: |d·sc·(q_k − 32)|) over nb super-blocks: the
 * magnitude of the terms a K-quant dot product adds, which bounds its f32 rounding error.
 */
function dotMagnitude(dtype: KQuantType, w: Uint8Array, wOffset: number, xq: Uint8Array, nb: number): number {
  const wv = new DataView(w.buffer, w.byteOffset, w.byteLength);
  const xv = new DataView(xq.buffer, xq.byteOffset, xq.byteLength);
  const q = new Int32Array(256);
  let s = 0;
  for (let b = 0; b < nb; b++) {
    const wb = wOffset + b * DTYPES[dtype].blockBytes;
    const xb = b * DTYPES.q8_k.blockBytes;
    const dx = Math.abs(xv.getFloat32(xb, true));
    blockInts(dtype, w, wb, q);
    for (let k = 0; k < 256; k++) {
      const x = dx * Math.abs(xv.getInt8(xb + 4 + k));
      const j = k >> 5;
      const term = dtype === 'q6_k'
        ? Math.abs(f16ToF32(wv.getUint16(wb + 208, true)) * wv.getInt8(wb + 192 + (k >> 4)) * (q[k]! - 32))
        : Math.abs(f16ToF32(wv.getUint16(wb, true)) * kScale(w, wb + 4, j) * q[k]!) + Math.abs(f16ToF32(wv.getUint16(wb + 2, true)) * kMin(w, wb + 4, j));
      s += x * term;
    }
  }
  return s;
}

function firstDifference(a: Uint8Array, b: Uint8Array): string {
  const i = a.findIndex((v, j) => v !== b[j]);
  return `byte ${i}: ${a[i]} vs ggml's ${b[i]}`;
}

// ---- 1. byte identity with ggml -------------------------------------------------------------------

describe('K-quant reference quantizers match ggml', () => {
  it('the data file covers every kind at 256 and 512 values', () => {
    expect(reference.quant.length).toBe(2 * KINDS.length);
    expect(new Set(reference.quant.map((c) => `${c.kind}/${c.x.length}`)).size).toBe(2 * KINDS.length);
  });

  describe.each([...K_TYPES, 'q8_k'] as const)('%s', (dtype) => {
    it.each(reference.quant.map((c) => [`${KINDS[c.kind]} × ${c.x.length}`, c] as const))('%s: same bytes, same dequantized values', (_name, c) => {
      const want = c.out.get(dtype)!;
      const got = new Uint8Array(want.bytes.length);
      encodeValues(dtype, c.x, got);
      if (Buffer.compare(got, want.bytes) !== 0) throw new Error(`${dtype}: ${firstDifference(got, want.bytes)}`);
      const values = new Float32Array(c.x.length);
      dequantize(dtype, want.bytes, 0, c.x.length, values);
      for (let i = 0; i < values.length; i++) {
        if (!Object.is(values[i], want.values[i])) throw new Error(`${dtype} value ${i}: ${values[i]} vs ggml ${want.values[i]}`);
      }
    });
  });

  it('dequantizes any value range, not just whole blocks', () => {
    const c = reference.quant.find((q) => q.kind === 0 && q.x.length === 512)!;
    for (const dtype of K_TYPES) {
      const want = c.out.get(dtype)!;
      const part = new Float32Array(300);
      dequantize(dtype, want.bytes, 100, 300, part);
      expect(part).toEqual(want.values.subarray(100, 400));
    }
  });
});

// ---- 3. dot products: the reference against ggml's vec_dot --------------------------------------

describe('K-quant dot products match ggml\'s vec_dot', () => {
  it.each(reference.dots.map((d) => [`${d.dtype} K=${d.K}`, d] as const))('%s', (_name, d) => {
    const xq = new Uint8Array(d.xq.length);
    quantizeQ8_K(d.x, d.K, xq);
    expect(Buffer.compare(xq, d.xq)).toBe(0);
    const rowBytes = (d.K / 256) * DTYPES[d.dtype].blockBytes;
    for (let r = 0; r < d.rows; r++) {
      const got = dotQ8_K(d.dtype, d.w, r * rowBytes, xq, 0, d.K / 256);
      // ggml sums in f32 (block by block, vector lanes): |Δ| ≤ (nb + 4)·u·S
      const tol = (d.K / 256 + 4) * U * dotMagnitude(d.dtype, d.w, r * rowBytes, xq, d.K / 256);
      expect(Math.abs(got - d.results[r]!)).toBeLessThanOrEqual(tol);
    }
  });
});
