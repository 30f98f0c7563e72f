import { describe, expect, it } from 'vitest';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../src/tensor/f16.js';
import { dequantize, quantizeQ4_0, quantizeQ8_0, roundEven } from '../src/tensor/quant.js';
import { byteSize, dtypeFromGgml } from '../src/tensor/dtype.js';
import { Tensor } from '../src/tensor/tensor.js';

describe('f16', () => {
  it('converts known values both ways', () => {
    const cases: [number, number][] = [
      [0, 0x0000], [-0, 0x8000], [1, 0x3c00], [-2, 0xc000], [65504, 0x7bff], [0.5, 0x3800],
      [2 ** -14, 0x0400], [2 ** -24, 0x0001], [0.333251953125, 0x3555], [Infinity, 0x7c00], [-Infinity, 0xfc00],
    ];
    for (const [value, bits] of cases) {
      expect(f32ToF16(value)).toBe(bits);
      expect(Object.is(f16ToF32(bits), value)).toBe(true);
    }
    expect(Number.isNaN(f16ToF32(f32ToF16(NaN)))).toBe(true);
  });

  it('rounds to nearest-even, overflows to infinity, flushes tiny values to zero', () => {
    expect(f32ToF16(1 + 2 ** -11)).toBe(0x3c00); // tie: stays even
    expect(f32ToF16(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie: rounds up to even
    expect(f32ToF16(65520)).toBe(0x7c00);
    expect(f32ToF16(2 ** -26)).toBe(0);
    expect(f32ToF16(3 * 2 ** -26)).toBe(0x0001); // subnormal rounding
  });

  it('round-trips every finite f16 bit pattern', () => {
    for (let h = 0; h < 0x10000; h++) {
      if ((h & 0x7c00) === 0x7c00) continue;
      expect(f32ToF16(f16ToF32(h))).toBe(h);
    }
  });

  it('bf16 keeps the top half of an f32, rounding to nearest-even', () => {
    expect(f32ToBf16(1)).toBe(0x3f80);
    expect(bf16ToF32(0x3f80)).toBe(1);
    expect(f32ToBf16(1 + 2 ** -8)).toBe(0x3f80); // tie to even
    expect(f32ToBf16(1 + 3 * 2 ** -8)).toBe(0x3f82);
    expect(Number.isNaN(bf16ToF32(f32ToBf16(NaN)))).toBe(true);
  });
});

describe('ggml blocks', () => {
  const values = Array.from({ length: 64 }, (_, i) => Math.sin(i * 1.7) * (i + 1));

  it('Q8_0: 34-byte blocks, scale amax/127, values within half a step', () => {
    const bytes = new Uint8Array(byteSize('q8_0', 64));
    expect(bytes.length).toBe(68);
    quantizeQ8_0(values, 64, bytes);
    const out = new Float32Array(64);
    dequantize('q8_0', bytes, 0, 64, out);
    for (let b = 0; b < 2; b++) {
      const block = values.slice(b * 32, b * 32 + 32);
      const step = Math.max(...block.map(Math.abs)) / 127;
      for (let j = 0; j < 32; j++) expect(Math.abs(out[b * 32 + j]! - block[j]!)).toBeLessThanOrEqual(step * (0.5 + 127 * 2 ** -11)) // half a step, plus the f16 rounding of the scale;
    }
    // the largest magnitude maps to ±127
    const q = new Int8Array(bytes.buffer, 2, 32);
    expect(Math.max(...Array.from(q, Math.abs))).toBe(127);
  });

  it('Q4_0: 18-byte blocks, low nibbles hold values 0..15, high nibbles 16..31', () => {
    const bytes = new Uint8Array(byteSize('q4_0', 32));
    expect(bytes.length).toBe(18);
    const ramp = Array.from({ length: 32 }, (_, i) => i - 16); // max |x| = 16 at x = -16 → d = 2
    quantizeQ4_0(ramp, 32, bytes);
    expect(f16ToF32(bytes[0]! | (bytes[1]! << 8))).toBe(2);
    expect(bytes[2]! & 0xf).toBe(0); // -16 / 2 + 8 = 0
    expect(bytes[2]! >> 4).toBe(8); // 0 / 2 + 8 = 8
    const out = new Float32Array(32);
    dequantize('q4_0', bytes, 0, 32, out);
    for (let i = 0; i < 32; i++) expect(Math.abs(out[i]! - ramp[i]!)).toBeLessThanOrEqual(1);
  });

  it('roundEven matches round-half-to-even', () => {
    expect([0.5, 1.5, 2.5, -0.5, -1.5, 2.4, -2.6].map(roundEven)).toEqual([0, 2, 2, -0, -2, 2, -3]);
  });

  it('maps ggml type numbers', () => {
    expect(dtypeFromGgml(0)).toBe('f32');
    expect(dtypeFromGgml(8)).toBe('q8_0');
    expect(dtypeFromGgml(12)).toBe('q4_k');
    expect(dtypeFromGgml(11)).toBeUndefined(); // Q3_K: not supported
    expect(dtypeFromGgml(15)).toBe('q8_k');
  });
});

describe('Tensor', () => {
  it('makes row views that share bytes', () => {
    const t = new Tensor('f32', [3, 4], new Uint8Array(48));
    const r = t.rows(1, 2);
    r.f32()[0] = 5;
    expect(t.f32()[4]).toBe(5);
    expect(r.shape).toEqual([2, 4]);
    expect(() => t.rows(2, 2)).toThrow(/out of range/);
    expect(() => new Tensor('q8_0', [1, 33], new Uint8Array(34))).toThrow(/block size/);
  });
});
