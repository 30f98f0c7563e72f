import { describe, expect, it } from 'vitest';
import { RequestError } from '../src/errors.js';
import { argmax, logSoftmax, Sampler, SAMPLING_DEFAULTS, survivingTokens, topLogprobs } from '../src/generation/sampler.js';
import { Xoshiro128 } from '../src/tensor/random.js';

/** Draw `n` tokens and count how often each id came out. */
function counts(sampler: Sampler, logits: Float32Array, n: number): number[] {
  const c = new Array<number>(logits.length).fill(0);
  for (let i = 0; i < n; i++) c[sampler.sample(logits)]++;
  return c;
}

/** A deterministic pseudo-random row of logits (values on a 0.125 grid, so there are ties). */
function gridLogits(n: number, seed: number): Float32Array {
  const rng = Xoshiro128.fromSeed(seed);
  return Float32Array.from({ length: n }, () => Math.floor(rng.nextFloat() * 160) / 8 - 10);
}

const ln = Math.log;

describe('Xoshiro128', () => {
  it('gives the published xoshiro128** outputs for state (1, 2, 3, 4)', () => {
    const rng = Xoshiro128.fromState(1, 2, 3, 4);
    expect(Array.from({ length: 6 }, () => rng.nextU32())).toEqual([11520, 0, 5927040, 70819200, 2031721883, 1637235492]);
  });

  it('seeds reproducibly, and both halves of a 53-bit seed matter', () => {
    const first = (seed: number): number[] => {
      const rng = Xoshiro128.fromSeed(seed);
      return Array.from({ length: 4 }, () => rng.nextU32());
    };
    expect(first(42)).toEqual(first(42));
    expect(first(42)).not.toEqual(first(43));
    expect(first(42)).not.toEqual(first(42 + 2 ** 32));
    const rng = Xoshiro128.fromSeed(7);
    for (let i = 0; i < 1000; i++) {
      const u = rng.nextFloat();
      expect(u >= 0 && u < 1).toBe(true);
    }
  });
});

describe('Sampler', () => {
  it("uses llama.cpp's defaults", () => {
    const s = new Sampler({ seed: 1 });
    expect([s.temperature, s.topK, s.topP, s.seed]).toEqual([0.8, 40, 0.95, 1]);
    expect(SAMPLING_DEFAULTS).toEqual({ temperature: 0.8, topK: 40, topP: 0.95 });
    expect(Number.isSafeInteger(new Sampler().seed)).toBe(true);
  });

  it('is greedy at temperature 0 (first index on ties)', () => {
    const s = new Sampler({ temperature: 0 });
    expect(s.sample(Float32Array.of(0.1, 2.5, -1, 2.4))).toBe(1);
    expect(s.sample(Float32Array.of(-3, 7, 7, 1))).toBe(1);
    expect(s.sample(Float32Array.of(-Infinity, -Infinity))).toBe(0);
    expect(argmax(Float32Array.of(NaN, -5, NaN, -4))).toBe(3);
  });

  it('with topK = 1 always picks the argmax, at any temperature', () => {
    const logits = gridLogits(32000, 3);
    const best = argmax(logits);
    const s = new Sampler({ topK: 1, temperature: 5, topP: 1, seed: 9 });
    for (let i = 0; i < 20; i++) expect(s.sample(logits)).toBe(best);
  });

  it('keeps only the k most likely tokens (ties to the lower id)', () => {
    // Probabilities 0.4, 0.2, 0.2, 0.2: top-2 keeps ids 0 and 1 (1 wins the three-way tie).
    const logits = Float32Array.of(ln(0.4), ln(0.2), ln(0.2), ln(0.2));
    const c = counts(new Sampler({ topK: 2, topP: 1, temperature: 1, seed: 5 }), logits, 3000);
    expect(c[2] + c[3]).toBe(0);
    expect(c[0] + c[1]).toBe(3000);
    expect(c[0]).toBeGreaterThan(1800); // 2/3 of 3000 expected
  });

  it('top-p keeps the smallest set whose mass reaches p', () => {
    // Probabilities 0.5, 0.25, 0.125, 0.125 (ids 2 and 3 tie).
    const logits = Float32Array.of(ln(0.5), ln(0.25), ln(0.125), ln(0.125));
    const seen = (topP: number): number[] => {
      const c = counts(new Sampler({ topK: 0, topP, temperature: 1, seed: 11 }), logits, 2000);
      return c.flatMap((n, id) => (n > 0 ? [id] : []));
    };
    expect(seen(0.45)).toEqual([0]);
    expect(seen(0.7)).toEqual([0, 1]);
    expect(seen(0.8)).toEqual([0, 1, 2]); // 0.875 with the first tie-winner
    expect(seen(0.87)).toEqual([0, 1, 2]);
    expect(seen(0.9)).toEqual([0, 1, 2, 3]);
    expect(seen(1)).toEqual([0, 1, 2, 3]);
  });

  it('top-p after top-k measures mass over the k survivors', () => {
    // Over all four tokens id 0 has 0.5 < 0.6, so top-p alone keeps ids 0 and 1; after top-2 the
    // survivors renormalize to 2/3 and 1/3, and id 0 alone reaches 0.6.
    const logits = Float32Array.of(ln(0.5), ln(0.25), ln(0.125), ln(0.125));
    const alone = counts(new Sampler({ topK: 0, topP: 0.6, temperature: 1, seed: 4 }), logits, 1000);
    expect(alone[1]).toBeGreaterThan(0);
    expect(alone[0] + alone[1]).toBe(1000);
    const afterTopK = counts(new Sampler({ topK: 2, topP: 0.6, temperature: 1, seed: 4 }), logits, 1000);
    expect(afterTopK[0]).toBe(1000);
  });

  it('top-p over a large flat vocabulary keeps exactly the first half (partial selection past 64 candidates)', () => {
    const logits = new Float32Array(1000); // uniform
    const c = counts(new Sampler({ topK: 0, topP: 0.5, temperature: 0.7, seed: 21 }), logits, 1500);
    expect(c.slice(500).every((n) => n === 0)).toBe(true);
    expect(c.slice(0, 500).filter((n) => n > 0).length).toBeGreaterThan(420); // about 475 expected
  });

  it('leaves the same survivors as a brute-force sort (top-k, top-p, both)', () => {
    const logits = gridLogits(5000, 31).map((v) => v / 4); // flatter: hundreds of tokens in the nucleus
    const order = Array.from(logits.keys()).sort((a, b) => logits[b] - logits[a] || a - b);
    const reference = (topK: number, topP: number): number[] => {
      const head = topK > 0 ? order.slice(0, topK) : order;
      const w = head.map((id) => Math.exp(logits[id] - logits[head[0]]));
      const total = w.reduce((a, b) => a + b, 0);
      let acc = 0;
      let keep = head.length;
      for (let i = 0; i < head.length; i++) {
        acc += w[i];
        if (acc >= topP * total) {
          keep = i + 1;
          break;
        }
      }
      return head.slice(0, keep).sort((a, b) => a - b);
    };
    for (const [topK, topP] of [[0, 0.5], [0, 0.9], [0, 0.95], [40, 1], [40, 0.95], [300, 0.5], [0, 1]]) {
      const got = survivingTokens(logits, topK, topP);
      expect(got, `topK ${topK} topP ${topP}`).toEqual(reference(topK, topP));
      if (topK === 0 && topP < 1) expect(got.length).toBeGreaterThan(64);
    }
  });

  it('approaches greedy as the temperature goes to 0', () => {
    const logits = Float32Array.of(1, 1.01, 0.5, -2);
    const s = new Sampler({ temperature: 1e-4, topK: 0, topP: 1, seed: 3 });
    for (let i = 0; i < 500; i++) expect(s.sample(logits)).toBe(1);
  });

  it('gives the same tokens for the same seed', () => {
    const logits = gridLogits(5000, 8);
    const run = (seed: number): number[] => {
      const s = new Sampler({ seed });
      return Array.from({ length: 100 }, () => s.sample(logits));
    };
    const a = run(1234);
    expect(run(1234)).toEqual(a);
    expect(run(1235)).not.toEqual(a);
    expect(new Set(a).size).toBeGreaterThan(5);
  });

  it('draws in proportion to the softmax (4 tokens, fixed seed, exact counts)', () => {
    const logits = Float32Array.of(2, 1, 0.5, -1);
    const n = 20000;
    const c = counts(new Sampler({ temperature: 1, topK: 0, topP: 1, seed: 2024 }), logits, n);
    const p = logSoftmax(logits).map(Math.exp);
    const chi2 = c.reduce((acc, o, i) => acc + (o - n * p[i]) ** 2 / (n * p[i]), 0);
    // 3 degrees of freedom: chi² < 11.34 holds with probability 0.99 for a correct sampler.
    expect(chi2).toBeLessThan(11.34);
    expect(c).toEqual([12230, 4465, 2693, 612]);
  });

  it('applies the temperature to the survivors: T = 2 draws from softmax(logits / 2)', () => {
    const logits = Float32Array.of(2, 1, 0.5, -1);
    const n = 20000;
    const c = counts(new Sampler({ temperature: 2, topK: 0, topP: 1, seed: 77 }), logits, n);
    const p = logSoftmax(logits.map((v) => v / 2)).map(Math.exp);
    const chi2 = c.reduce((acc, o, i) => acc + (o - n * p[i]) ** 2 / (n * p[i]), 0);
    expect(chi2).toBeLessThan(11.34);
  });

  it('never modifies the logits', () => {
    const logits = gridLogits(2000, 5);
    const before = logits.slice();
    const s = new Sampler({ seed: 1 });
    for (let i = 0; i < 10; i++) s.sample(logits);
    new Sampler({ topK: 0, topP: 0.9, seed: 1 }).sample(logits);
    expect(logits).toEqual(before);
  });

  it('rejects bad options with a RequestError naming the parameter', () => {
    const bad: [object, string][] = [
      [{ temperature: -0.1 }, 'temperature'],
      [{ temperature: NaN }, 'temperature'],
      [{ temperature: Infinity }, 'temperature'],
      [{ topK: -1 }, 'topK'],
      [{ topK: 2.5 }, 'topK'],
      [{ topP: 0 }, 'topP'],
      [{ topP: 1.01 }, 'topP'],
      [{ topP: NaN }, 'topP'],
      [{ seed: -1 }, 'seed'],
      [{ seed: 0.5 }, 'seed'],
      [{ seed: 2 ** 53 }, 'seed'],
    ];
    for (const [opts, parameter] of bad) {
      let caught: unknown;
      try {
        new Sampler(opts);
      } catch (err) {
        caught = err;
      }
      expect(caught, JSON.stringify(opts)).toBeInstanceOf(RequestError);
      expect((caught as RequestError).parameter).toBe(parameter);
      expect((caught as RequestError).message).toMatch(new RegExp(`^${parameter}: `));
    }
    expect(() => new Sampler({ seed: 1 }).sample(new Float32Array(0))).toThrow(RequestError);
  });
});

describe('log-probabilities', () => {
  it('logSoftmax gives exact simple values', () => {
    const lp = logSoftmax(Float32Array.of(0, 0, 0, 0));
    for (const v of lp) expect(v).toBeCloseTo(-Math.log(4), 14);
    // Large logits must not overflow; the second is 1000 - ln 3 rounded to f32.
    const x = Float32Array.of(1000, 1000 - Math.log(3));
    const big = logSoftmax(x);
    const d = x[1] - x[0];
    expect(d).toBeCloseTo(-Math.log(3), 4);
    expect(big[0]).toBeCloseTo(-Math.log1p(Math.exp(d)), 12);
    expect(big[1]).toBeCloseTo(d - Math.log1p(Math.exp(d)), 12);
    expect(logSoftmax(Float32Array.of(0, -Infinity))[1]).toBe(-Infinity);
  });

  it('topLogprobs matches a full sort, ties to the lower id', () => {
    const logits = gridLogits(32000, 12);
    const lp = logSoftmax(logits);
    const order = Array.from(logits.keys()).sort((a, b) => logits[b] - logits[a] || a - b);
    const top = topLogprobs(logits, 50);
    expect(top.map((t) => t.id)).toEqual(order.slice(0, 50));
    top.forEach((t) => expect(t.logprob).toBeCloseTo(lp[t.id], 10));
    expect(topLogprobs(Float32Array.of(1, 3, 3), 5)).toEqual([
      { id: 1, logprob: expect.closeTo(Math.log(Math.exp(3) / (Math.exp(1) + 2 * Math.exp(3))), 10) },
      { id: 2, logprob: expect.closeTo(Math.log(Math.exp(3) / (Math.exp(1) + 2 * Math.exp(3))), 10) },
      { id: 0, logprob: expect.closeTo(Math.log(Math.exp(1) / (Math.exp(1) + 2 * Math.exp(3))), 10) },
    ]);
    expect(topLogprobs(logits, 0)).toEqual([]);
  });

  it('topK selection with 128000 logits agrees with the full sort', () => {
    const logits = gridLogits(128000, 99);
    const order = Array.from(logits.keys()).sort((a, b) => logits[b] - logits[a] || a - b);
    expect(topLogprobs(logits, 40).map((t) => t.id)).toEqual(order.slice(0, 40));
    expect(new Sampler({ topK: 1, seed: 1 }).sample(logits)).toBe(order[0]);
  });
});
