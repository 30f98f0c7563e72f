import { describe, expect, it } from 'vitest';
import { RequestError } from '../src/errors.js';
import type { TokenConstraint } from '../src/generation/constraint.js';
import {
  applyLogitBias, applyPenalties, drawFrom, minP, mirostatTruncate, softmax, temperature, topK, topP, typicalP,
  type Candidates, type Distribution,
} from '../src/generation/processors.js';
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
    expect([s.temperature, s.topK, s.topP, s.minP, s.typicalP, s.repeatPenalty, s.repeatLastN, s.seed]).toEqual([0.8, 40, 0.95, 0.05, 1, 1, 64, 1]);
    expect([s.presencePenalty, s.frequencyPenalty, s.mirostat, s.mirostatTau, s.mirostatEta, s.mu]).toEqual([0, 0, 0, 5, 0.1, 10]);
    expect(SAMPLING_DEFAULTS).toEqual({
      temperature: 0.8, topK: 40, topP: 0.95, minP: 0.05, typicalP: 1, repeatPenalty: 1, repeatLastN: 64,
      presencePenalty: 0, frequencyPenalty: 0, mirostat: 0, mirostatTau: 5, mirostatEta: 0.1,
    });
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
    const c = counts(new Sampler({ temperature: 1, topK: 0, topP: 1, minP: 0, seed: 2024 }), logits, n);
    const p = logSoftmax(logits).map(Math.exp);
    const chi2 = c.reduce((acc, o, i) => acc + (o - n * p[i]) ** 2 / (n * p[i]), 0);
    // 3 degrees of freedom: chi² < 11.34 holds with probability 0.99 for a correct sampler.
    expect(chi2).toBeLessThan(11.34);
    expect(c).toEqual([12230, 4465, 2693, 612]);
  });

  it('applies the temperature to the survivors: T = 2 draws from softmax(logits / 2)', () => {
    const logits = Float32Array.of(2, 1, 0.5, -1);
    const n = 20000;
    const c = counts(new Sampler({ temperature: 2, topK: 0, topP: 1, minP: 0, seed: 77 }), logits, n);
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

  it('rejects every bad new option, and mirostat with the filters it replaces, naming the parameter', () => {
    const bad: [object, string, string][] = [
      [{ minP: -0.1 }, 'minP', 'invalid_min_p'],
      [{ minP: 1.5 }, 'minP', 'invalid_min_p'],
      [{ minP: NaN }, 'minP', 'invalid_min_p'],
      [{ typicalP: 0 }, 'typicalP', 'invalid_typical_p'],
      [{ typicalP: 2 }, 'typicalP', 'invalid_typical_p'],
      [{ repeatPenalty: 0 }, 'repeatPenalty', 'invalid_repeat_penalty'],
      [{ repeatPenalty: -1 }, 'repeatPenalty', 'invalid_repeat_penalty'],
      [{ repeatLastN: -2 }, 'repeatLastN', 'invalid_repeat_last_n'],
      [{ repeatLastN: 1.5 }, 'repeatLastN', 'invalid_repeat_last_n'],
      [{ presencePenalty: NaN }, 'presencePenalty', 'invalid_presence_penalty'],
      [{ frequencyPenalty: Infinity }, 'frequencyPenalty', 'invalid_frequency_penalty'],
      [{ mirostat: 1 }, 'mirostat', 'invalid_mirostat'],
      [{ mirostatTau: -1 }, 'mirostatTau', 'invalid_mirostat_tau'],
      [{ mirostatEta: NaN }, 'mirostatEta', 'invalid_mirostat_eta'],
      [{ mirostat: 2, topK: 40 }, 'topK', 'conflicting_options'],
      [{ mirostat: 2, minP: 0.1 }, 'minP', 'conflicting_options'],
      [{ logitBias: { '-1': 1 } }, 'logitBias', 'invalid_logit_bias'],
      [{ logitBias: { 3: NaN } }, 'logitBias', 'invalid_logit_bias'],
      [{ logitBias: { 3: Infinity } }, 'logitBias', 'invalid_logit_bias'],
      [{ logitBias: { 600: 1 } }, 'logitBias', 'invalid_logit_bias'], // beyond vocabSize 512
      [{ constraint: { mask: 1 } }, 'constraint', 'invalid_constraint'],
    ];
    for (const [opts, parameter, code] of bad) {
      let caught: unknown;
      try {
        new Sampler(opts as never, { vocabSize: 512 });
      } catch (err) {
        caught = err;
      }
      expect(caught, JSON.stringify(opts)).toBeInstanceOf(RequestError);
      expect((caught as RequestError).parameter, JSON.stringify(opts)).toBe(parameter);
      expect((caught as RequestError).code, JSON.stringify(opts)).toBe(code);
    }
    // A bias on a token past the row fails at sampling time when the vocabulary size was not given.
    expect(() => new Sampler({ logitBias: { 9: 1 }, seed: 1 }).sample(Float32Array.of(0, 1))).toThrow(/logitBias: token id 9 is outside/);
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

// ---------------------------------------------------------------------------------------------

const row = (...v: number[]): Float32Array => Float32Array.from(v);
const cands = (logits: number[], sorted = false): Candidates => ({
  ids: Int32Array.from(logits.keys()),
  logits: Float64Array.from(logits),
  sorted,
});
const idsOf = (c: Candidates | Distribution): number[] => Array.from(c.ids);
/** Softmax of plain numbers, for the expected values. */
const softmaxOf = (v: number[]): number[] => {
  const m = Math.max(...v);
  const e = v.map((x) => Math.exp(x - m));
  const t = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / t);
};

describe('logits processors (hand-computed)', () => {
  it('logit bias adds, and -Infinity bans', () => {
    const logits = row(1, 2, 3);
    applyLogitBias(logits, new Map([[0, 1], [2, -Infinity]]));
    expect(Array.from(logits)).toEqual([2, 2, -Infinity]);
  });

  it("penalties: llama.cpp's divide-positive / multiply-negative repeat rule, then frequency per count and presence once", () => {
    const logits = row(2, -1, 0.5, 3);
    applyPenalties(logits, [0, 1, 1, 3], { repeat: 2, presence: 0.5, frequency: 0.25 });
    // id 0 (once): 2/2 - 0.25 - 0.5; id 1 (twice): -1*2 - 0.5 - 0.5; id 2 unseen; id 3 (once): 3/2 - 0.25 - 0.5.
    expect(Array.from(logits)).toEqual([0.25, -3, 0.5, 0.75]);
    const off = row(2, -1);
    applyPenalties(off, [0, 1], { repeat: 1, presence: 0, frequency: 0 });
    expect(Array.from(off)).toEqual([2, -1]);
  });

  it('the penalty window is the last repeatLastN tokens of the history (0 = off, -1 = all)', () => {
    const logits = row(2, -1, 0.5, 3);
    const history = [2, 0, 1, 1, 3]; // with repeatLastN 4, id 2 falls outside the window
    const dist = (repeatLastN: number): number[] => {
      const s = new Sampler({ temperature: 1, topK: 0, topP: 1, minP: 0, repeatPenalty: 2, presencePenalty: 0.5, frequencyPenalty: 0.25, repeatLastN, seed: 1 });
      const d = s.distribution(logits, history);
      return Array.from(logits.keys(), (id) => d.probs[d.ids.indexOf(id)]);
    };
    const close = (got: number[], want: number[]): void => got.forEach((g, i) => expect(g).toBeCloseTo(want[i], 12));
    close(dist(4), softmaxOf([0.25, -3, 0.5, 0.75]));
    close(dist(-1), softmaxOf([0.25, -3, -0.5, 0.75])); // id 2 seen once: 0.5/2 - 0.25 - 0.5
    close(dist(0), softmaxOf([2, -1, 0.5, 3]));
  });

  it('top-k keeps the k largest, sorted, ties to the lower id; 0 = all', () => {
    const c = topK(row(1, 3, 3, 2), 2);
    expect(idsOf(c)).toEqual([1, 2]);
    expect(Array.from(c.logits)).toEqual([3, 3]);
    expect(c.sorted).toBe(true);
    expect(idsOf(topK(row(1, 3, 3, 2), 0))).toEqual([0, 1, 2, 3]);
    expect(idsOf(topK(row(NaN, 1, -1), 2))).toEqual([1, 2]); // NaN counts as -Infinity
  });

  it('typical-p keeps tokens by closeness of their surprise to the entropy until the mass exceeds p', () => {
    // p = 1/2, 1/4, 1/8, 1/8: H = 1.75 ln 2; surprises 1, 2, 3, 3 (× ln 2); distances 0.75, 0.25, 1.25, 1.25.
    const c = cands([Math.log(0.5), Math.log(0.25), Math.log(0.125), Math.log(0.125)], true);
    expect(idsOf(typicalP(c, 0.2))).toEqual([1]); // 0.25 > 0.2
    expect(idsOf(typicalP(c, 0.5))).toEqual([1, 0]); // 0.25 is not > 0.5; 0.75 is
    expect(idsOf(typicalP(c, 0.8))).toEqual([1, 0, 2]);
    expect(typicalP(c, 1)).toBe(c);
  });

  it('top-p keeps the smallest most-likely head reaching p, over the current candidates', () => {
    const c = cands([Math.log(0.5), Math.log(0.25), Math.log(0.125), Math.log(0.125)]);
    expect(idsOf(topP(c, 0.4))).toEqual([0]);
    expect(idsOf(topP(c, 0.7))).toEqual([0, 1]);
    expect(idsOf(topP(c, 0.8))).toEqual([0, 1, 2]);
    expect(idsOf(topP(c, 0.9))).toEqual([0, 1, 2, 3]);
    // Over the first two only, id 0 has 2/3 of the mass.
    expect(idsOf(topP(cands([Math.log(0.5), Math.log(0.25)]), 0.6))).toEqual([0]);
  });

  it('min-p keeps tokens at least p times as likely as the best', () => {
    const c = cands([0, Math.log(0.5), Math.log(0.1), Math.log(0.04)]);
    expect(idsOf(minP(c, 0.05))).toEqual([0, 1, 2]);
    expect(idsOf(minP(c, 0.2))).toEqual([0, 1]);
    expect(idsOf(minP(c, 0.6))).toEqual([0]);
    expect(minP(c, 0)).toBe(c);
  });

  it('temperature divides the logits; 0 keeps the single best (ties: lower id)', () => {
    expect(Array.from(temperature(cands([2, 1]), 2).logits)).toEqual([1, 0.5]);
    const greedy = temperature(cands([1, 3, 3]), 0);
    expect([idsOf(greedy), Array.from(greedy.logits)]).toEqual([[1], [3]]);
  });

  it('softmax sorts most likely first and drops impossible tokens', () => {
    const d = softmax(cands([0, Math.log(3), -Infinity]));
    expect(idsOf(d)).toEqual([1, 0]);
    expect(d.probs[0]).toBeCloseTo(0.75, 15);
    expect(d.probs[1]).toBeCloseTo(0.25, 15);
    const banned = softmax(cands([-Infinity, -Infinity]));
    expect([idsOf(banned), Array.from(banned.probs)]).toEqual([[0], [1]]);
  });

  it('Mirostat 2 truncation drops tokens whose surprise (bits) exceeds mu, keeping at least one, renormalized', () => {
    const d: Distribution = { ids: Int32Array.of(4, 5, 6, 7), probs: Float64Array.of(0.5, 0.25, 0.125, 0.125) };
    const t = mirostatTruncate(d, 2.5); // surprises 1, 2, 3, 3 bits
    expect(idsOf(t)).toEqual([4, 5]);
    expect(Array.from(t.probs)).toEqual([2 / 3, 1 / 3]);
    expect(idsOf(mirostatTruncate(d, 0.5))).toEqual([4]);
    expect(idsOf(mirostatTruncate(d, 3))).toEqual([4, 5, 6, 7]);
  });

  it('Mirostat 2 moves mu by eta × (surprise - tau) after each draw', () => {
    const s = new Sampler({ mirostat: 2, mirostatTau: 5, mirostatEta: 0.1, temperature: 1, seed: 3 });
    expect(s.mu).toBe(10);
    s.sample(row(0, 0)); // either token: 1 bit of surprise
    expect(s.mu).toBeCloseTo(10 - 0.1 * (1 - 5), 12);
    // Once mu falls below 1 bit, only the most likely token survives.
    const low = new Sampler({ mirostat: 2, mirostatTau: 0.2, mirostatEta: 1, temperature: 1, seed: 3 });
    low.mu = 0.5;
    const d = low.distribution(row(0, Math.log(3), -5));
    expect([idsOf(d), Array.from(d.probs)]).toEqual([[1], [1]]);
  });

  it('the draw walks the distribution most likely first', () => {
    const d: Distribution = { ids: Int32Array.of(5, 7), probs: Float64Array.of(0.75, 0.25) };
    expect([drawFrom(d, 0), drawFrom(d, 0.7499), drawFrom(d, 0.75), drawFrom(d, 0.9999)]).toEqual([5, 5, 7, 7]);
  });
});

describe('the pipeline', () => {
  it("composes the processors in llama.cpp's order: bias, penalties, top-k, typical-p, top-p, min-p, temperature", () => {
    const logits = gridLogits(3000, 17).map((v) => v / 3);
    const history = [5, 9, 9, 120, 2999, 7];
    const opts = { temperature: 0.7, topK: 200, typicalP: 0.97, topP: 0.9, minP: 0.02, repeatPenalty: 1.3, repeatLastN: 5, presencePenalty: 0.2, frequencyPenalty: 0.1, logitBias: { 11: 2, 12: -Infinity } };
    const got = new Sampler({ ...opts, seed: 1 }).distribution(logits, history);
    const r = logits.slice();
    applyLogitBias(r, new Map([[11, 2], [12, -Infinity]]));
    applyPenalties(r, history.slice(-5), { repeat: 1.3, presence: 0.2, frequency: 0.1 });
    const want = softmax(temperature(minP(topP(typicalP(topK(r, 200), 0.97), 0.9), 0.02), 0.7));
    expect(idsOf(got)).toEqual(idsOf(want));
    expect(Array.from(got.probs)).toEqual(Array.from(want.probs));
    expect(got.ids.length).toBeGreaterThan(3);
  });

  it('filters see the untempered logits: top-p before temperature', () => {
    // Untempered p = 0.6, 0.3, 0.1: top-p 0.85 keeps two; at T = 2 they weigh sqrt(0.6) : sqrt(0.3).
    // Tempering first would have left all three inside the nucleus.
    const d = new Sampler({ temperature: 2, topK: 0, topP: 0.85, minP: 0, seed: 1 }).distribution(row(Math.log(0.6), Math.log(0.3), Math.log(0.1)));
    expect(idsOf(d)).toEqual([0, 1]);
    expect(d.probs[0]).toBeCloseTo(Math.sqrt(0.6) / (Math.sqrt(0.6) + Math.sqrt(0.3)), 6);
  });

  it('bias comes before the penalties, and both before top-k', () => {
    // id 0: 1 + (-2) = -1, then × 2 (negative, seen) = -2; penalty first would give 1/2 - 2 = -1.5.
    const s = new Sampler({ temperature: 1, topK: 0, topP: 1, minP: 0, repeatPenalty: 2, logitBias: { 0: -2 }, seed: 1 });
    const d = s.distribution(row(1, 0), [0]);
    expect(d.probs[d.ids.indexOf(0)]).toBeCloseTo(softmaxOf([-2, 0])[0], 12);
    // The repeat penalty drops id 0 (3 -> 0.3) below id 1 before top-k 1 chooses.
    expect(new Sampler({ topK: 1, repeatPenalty: 10, seed: 1 }).sample(row(3, 2, 1), [0])).toBe(1);
  });

  it('greedy (temperature 0) is the argmax of the processed row, with probability 1', () => {
    const s = new Sampler({ temperature: 0, logitBias: { 1: -1 } });
    const d = s.distribution(row(0.5, 1, 0.9));
    expect([idsOf(d), Array.from(d.probs)]).toEqual([[2], [1]]);
  });

  it('masks with the constraint after the penalties, passes the end-of-generation set, and advances it on accept', () => {
    /** A real (tiny) constraint: only even ids, at most `left` more tokens. */
    class EvenOnly implements TokenConstraint {
      seen: Float32Array[] = [];
      accepted: number[] = [];
      constructor(private left: number) {}
      mask(logits: Float32Array, eog: ReadonlySet<number>): void {
        this.seen.push(logits.slice());
        for (let i = 0; i < logits.length; i++) if (i % 2 === 1 && !eog.has(i)) logits[i] = -Infinity;
      }
      accept(id: number): void {
        this.accepted.push(id);
        this.left--;
      }
      get complete(): boolean { return true; }
      get finished(): boolean { return this.left <= 0; }
      clone(): TokenConstraint { return new EvenOnly(this.left); }
    }
    const constraint = new EvenOnly(3);
    const s = new Sampler({ temperature: 1, topK: 0, topP: 1, minP: 0, repeatPenalty: 2, constraint, seed: 5 }, { eog: new Set([3]) });
    const logits = row(1, 2, 3, 4, 5, 6);
    const d = s.distribution(logits, [4]);
    expect(idsOf(d)).toEqual([3, 2, 4, 0]); // 3 is end-of-generation; 4's logit 5 was halved to 2.5
    expect(Array.from(constraint.seen[0])).toEqual([1, 2, 3, 4, 2.5, 6]);
    const id = s.draw(d);
    s.accept(id);
    expect(constraint.accepted).toEqual([id]);
    expect(Array.from(logits)).toEqual([1, 2, 3, 4, 5, 6]); // the caller's row is left alone
  });
});
