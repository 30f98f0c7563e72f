/**
 * The wasm weight quantizers (src/backend/wasm/quantizer.ts, assembly/quantize.ts) against the TS
 * reference quantizers they copy (src/tensor/quant-k.ts, quant.ts: bit-exact with ggml, tested in
 * quant-k.test.ts and quantize.test.ts): byte-identical output on awkward data, across the chunks
 * the values pass through the wasm memory in.
 */
import { describe, expect, it } from 'vitest';
import { encodeWeights, hasFastQuantizer } from '../src/backend/wasm/quantizer.js';
import { DTYPES, type DType } from '../src/tensor/dtype.js';
import { encodeValues } from '../src/tensor/quant.js';
import { NormalSource } from '../src/tensor/random.js';

/** 300 × 1024 values (more than one 256 Ki-value chunk), a different awkward kind every 1024. */
function awkwardValues(seed: number): Float32Array {
  const g = new NormalSource(seed);
  const x = new Float32Array(300 * 1024);
  for (let block = 0; block < x.length / 1024; block++) {
    const kind = block % 10;
    for (let i = block * 1024; i < (block + 1) * 1024; i++) {
      const v = g.next();
      x[i] = [
        v * 0.02, // typical weights
        v * 0.02 * (i % 97 === 0 ? 50 : 1), // outliers
        0, // all zero
        Math.abs(v), // all positive
        -Math.abs(v) * 3, // all negative
        v * 1e-8, // tiny
        Math.floor(i / 32) % 2 ? 0.5 : -0.25, // constant 32-value runs
        v * 10 ** ((Math.floor(i / 32) % 8) - 4), // sub-blocks of very different scales
        i % 13 === 0 ? v : 0, // sparse
        v * 1e4, // large
      ][kind]!;
    }
  }
  x[5] = -x[6]!; // extremes of equal magnitude and opposite sign
  return x;
}

describe('wasm weight quantizers', () => {
  const types: DType[] = ['q4_k', 'q5_k', 'q6_k', 'q8_0', 'q4_0'];

  it.each(types)('%s: the reference quantizer\'s bytes', (dtype) => {
    expect(hasFastQuantizer(dtype)).toBe(true);
    const x = awkwardValues(17);
    const size = (x.length / DTYPES[dtype].blockSize) * DTYPES[dtype].blockBytes;
    const want = new Uint8Array(size);
    const got = new Uint8Array(size);
    encodeValues(dtype, x, want);
    encodeWeights(dtype, x, got);
    expect(Buffer.compare(got, want)).toBe(0);
  });

  it('passes other types to the reference encoder', () => {
    expect(hasFastQuantizer('q5_1')).toBe(false);
    const x = awkwardValues(3).subarray(0, 4096);
    const want = new Uint8Array((4096 / 32) * 24);
    const got = new Uint8Array(want.length);
    encodeValues('q5_1', x, want);
    encodeWeights('q5_1', x, got);
    expect(Buffer.compare(got, want)).toBe(0);
  });
});
