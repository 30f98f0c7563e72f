/**
 * Speculative decoding on stories260K: greedy output is token-identical to plain greedy decoding
 * (draft model or prompt lookup), and sampled output follows the target's distribution.
 */
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { loadModel, type Model } from '../src/model.js';
import type { Network } from '../src/nn/decoder.js';
import { argmax } from '../src/generation/sampler.js';
import {
  draw,
  PromptLookup,
  residual,
  speculativeStream,
  type DraftSource,
  type Distribution,
  type SpeculativeOptions,
  type SpeculativeResult,
} from '../src/generation/speculative.js';
import { Xoshiro128 } from '../src/tensor/random.js';

const shared = (p: string): string => fileURLToPath(new URL(`../../shared/${p}`, import.meta.url));
interface Case { name: string; prompt_tokens: number[]; generated_tokens: number[] }
const { cases } = JSON.parse(fs.readFileSync(shared('fixtures/generation-stories260K-f32.json'), 'utf8')) as { cases: Case[] };

const target = await loadModel(shared('models/stories260K/stories260K.gguf'), { threads: 1 });
const sameAgain = await loadModel(shared('models/stories260K/stories260K.gguf'), { threads: 1 });
const q8 = await loadModel(shared('fixtures/stories260K-q8_0.gguf'), { threads: 1 });
const q4 = await loadModel(shared('fixtures/stories260K-q4_0.gguf'), { threads: 1 });
const models: Model[] = [target, sameAgain, q8, q4];
afterAll(() => models.forEach((m) => m.dispose()));

/** Plain greedy decoding, one token per forward: what speculative greedy must reproduce. */
function plainGreedy(net: Network, prompt: readonly number[], n: number): number[] {
  let logits = net.forward(prompt, 0).f32();
  const out: number[] = [];
  for (let pos = prompt.length; out.length < n; pos++) {
    out.push(argmax(logits));
    if (out.length < n) logits = net.forward([out[out.length - 1]!], pos).f32();
  }
  return out;
}

async function run(draft: DraftSource, prompt: readonly number[], opts: SpeculativeOptions): Promise<SpeculativeResult & { streamed: number[] }> {
  const stream = speculativeStream(target.network, draft, prompt, opts);
  const streamed: number[] = [];
  for (;;) {
    const next = await stream.next();
    if (next.done) return { ...next.value, streamed };
    streamed.push(next.value);
  }
}

describe('speculative decoding, greedy', () => {
  const drafts: [string, () => DraftSource][] = [
    ['the Q8_0 copy as draft', () => q8.network],
    ['the same model loaded again as draft', () => sameAgain.network],
    ['prompt lookup', () => ({ promptLookup: { ngramMax: 3, ngramMin: 1 } })],
  ];
  for (const [label, draft] of drafts) {
    it(`${label}: every fixture prompt gives plain greedy's 64 tokens`, async () => {
      let drafted = 0;
      let accepted = 0;
      for (const c of cases) {
        const expected = plainGreedy(target.network, c.prompt_tokens, 64);
        expect(expected, c.name).toEqual(c.generated_tokens); // our plain greedy is llama.cpp's
        for (const draftMax of [1, 4, 16]) {
          const r = await run(draft(), c.prompt_tokens, { draftMax, maxTokens: 64 });
          expect(r.tokens, `${c.name} k=${draftMax}`).toEqual(expected);
          expect(r.streamed).toEqual(expected);
          expect(r.stopReason).toBe('length');
          expect(r.stats.accepted).toBeLessThanOrEqual(r.stats.drafted);
          expect(r.stats.rounds).toBe(64 - r.stats.accepted);
          drafted += r.stats.drafted;
          accepted += r.stats.accepted;
        }
      }
      if (label.includes('same model')) expect(accepted).toBe(drafted); // identical draft: nothing rejected
      else expect(accepted / drafted).toBeGreaterThan(label.includes('lookup') ? 0.05 : 0.5);
    });
  }

  it('stops before an end-of-generation token and at maxTokens', async () => {
    const c = cases[0]!;
    const stop = c.generated_tokens[10]!;
    const cut = c.generated_tokens.indexOf(stop);
    const r = await run(q8.network, c.prompt_tokens, { draftMax: 8, maxTokens: 64, stopTokens: new Set([stop]) });
    expect(r.tokens).toEqual(c.generated_tokens.slice(0, cut));
    expect(r.stopReason).toBe('eos');
    const short = await run({ promptLookup: {} }, c.prompt_tokens, { draftMax: 8, maxTokens: 7 });
    expect(short.tokens).toEqual(c.generated_tokens.slice(0, 7));
  });

  it('stops when the context is full, as plain decoding does', async () => {
    const small = await loadModel(shared('models/stories260K/stories260K.gguf'), { threads: 1, contextLength: 12 });
    const draft = await loadModel(shared('fixtures/stories260K-q8_0.gguf'), { threads: 1, contextLength: 12 });
    try {
      const prompt = cases[0]!.prompt_tokens;
      const stream = speculativeStream(small.network, draft.network, prompt, { draftMax: 4, maxTokens: 64 });
      let next = await stream.next();
      while (!next.done) next = await stream.next();
      // 5 prompt tokens; positions 0..11 run; the token after position 11 is the last: 8 tokens.
      expect(next.value.tokens).toEqual(cases[0]!.generated_tokens.slice(0, 8));
    } finally {
      small.dispose();
      draft.dispose();
    }
  });
});

describe('the acceptance rule', () => {
  it('residual: norm(max(0, p − q)) by hand', () => {
    const p = { ids: [1, 2, 3], probs: [0.5, 0.3, 0.2] };
    const q = { ids: [1, 4], probs: [0.8, 0.2] };
    const r = residual(p, q);
    expect(r.ids).toEqual([2, 3]);
    expect(Array.from(r.probs)).toEqual([0.3 / 0.5, 0.2 / 0.5]);
    // p = q leaves nothing: fall back to p
    expect(residual(p, p)).toBe(p);
  });

  it('draw: greedy without a generator, cumulative with one', () => {
    const d = { ids: [7, 8, 9], probs: [0.2, 0.5, 0.3] };
    expect(draw(d, undefined)).toBe(8);
    expect(draw(d, { nextFloat: () => 0.1 })).toBe(7);
    expect(draw(d, { nextFloat: () => 0.69 })).toBe(8);
    expect(draw(d, { nextFloat: () => 0.7 })).toBe(9);
  });

  // Softmax over the k largest logits / temperature: a small support keeps the test fast, a high
  // temperature spreads the mass so that many cells are tested and many drafts are rejected.
  const topK = (k: number, temperature: number): Distribution => (logits) => {
    const ids = Array.from(logits.keys()).sort((a, b) => logits[b]! - logits[a]! || a - b).slice(0, k);
    const weights = ids.map((id) => Math.exp((logits[id]! - logits[ids[0]!]!) / temperature));
    const total = weights.reduce((a, b) => a + b, 0);
    return { ids, probs: weights.map((w) => w / total) };
  };

  /** Chi-square statistic of observed pair counts against the target's joint p(t1)·p(t2 | t1). */
  function chiSquare(prompt: number[], dist: Distribution, counts: Map<string, number>, trials: number): { stat: number; df: number } {
    const net = target.network;
    const first = dist(net.forward(prompt, 0).f32().slice(), prompt);
    const expected = new Map<string, number>();
    for (let i = 0; i < first.ids.length; i++) {
      const t1 = first.ids[i]!;
      const second = dist(net.forward([t1], prompt.length).f32().slice(), [...prompt, t1]);
      for (let j = 0; j < second.ids.length; j++) expected.set(`${t1},${second.ids[j]}`, first.probs[i]! * second.probs[j]! * trials);
    }
    for (const key of counts.keys()) expect(expected.has(key), `pair ${key} is outside the target's support`).toBe(true);
    // Cells expecting fewer than 5 draws are pooled into one.
    let stat = 0;
    let cells = 0;
    let pooledExpected = 0;
    let pooledObserved = 0;
    for (const [key, e] of expected) {
      const o = counts.get(key) ?? 0;
      if (e < 5) {
        pooledExpected += e;
        pooledObserved += o;
        continue;
      }
      stat += (o - e) ** 2 / e;
      cells++;
    }
    if (pooledExpected > 0) {
      stat += (pooledObserved - pooledExpected) ** 2 / pooledExpected;
      cells++;
    }
    return { stat, df: cells - 1 };
  }

  /** The chi-square value exceeded with probability 0.001 (Wilson–Hilferty). */
  const critical = (df: number): number => df * (1 - 2 / (9 * df) + 3.0902 * Math.sqrt(2 / (9 * df))) ** 3;

  const samplers: [string, () => DraftSource, number[]][] = [
    ['a Q4_0 draft with its own distribution', () => q4.network, cases[0]!.prompt_tokens],
    // A prompt that repeats itself, so lookup has something to propose.
    ['prompt lookup', () => ({ promptLookup: { ngramMax: 2 } }), target.tokenize('Once upon a time, there was a girl. Once upon a time, there')],
  ];
  for (const [label, draft, prompt] of samplers) {
    it(`sampling with ${label}: the first two tokens follow the target's distribution (chi-square)`, async () => {
      const dist = topK(6, 2.5);
      const draftDistribution = topK(4, 1); // the draft samples a different distribution: q ≠ p
      const trials = 3000;
      const counts = new Map<string, number>();
      let drafted = 0;
      let accepted = 0;
      for (let seed = 0; seed < trials; seed++) {
        const r = await run(draft(), prompt, { draftMax: 4, maxTokens: 3, distribution: dist, draftDistribution, rng: Xoshiro128.fromSeed(seed) });
        const key = `${r.tokens[0]},${r.tokens[1]}`;
        counts.set(key, (counts.get(key) ?? 0) + 1);
        drafted += r.stats.drafted;
        accepted += r.stats.accepted;
      }
      const { stat, df } = chiSquare(prompt, dist, counts, trials);
      expect(df).toBeGreaterThan(15);
      expect(stat).toBeLessThan(critical(df));
      expect(accepted).toBeGreaterThan(0); // drafts were accepted and rejected: both paths ran
      expect(accepted).toBeLessThan(drafted);
    });
  }
});

describe('prompt lookup', () => {
  it('copies what followed the last n-gram, longest n-gram first', () => {
    const ctx = [5, 6, 7, 8, 1, 2, 6, 7, 9, 3, 6, 7];
    expect(new PromptLookup({ ngramMax: 2 }).lookup(ctx, 3)).toEqual([9, 3, 6]); // latest "6 7"
    expect(new PromptLookup({ ngramMax: 2, occurrence: 'earliest' }).lookup(ctx, 3)).toEqual([8, 1, 2]);
    expect(new PromptLookup({ ngramMax: 3 }).lookup([1, 2, 3, 9, 2, 3, 4, 1, 2, 3], 2)).toEqual([9, 2]); // 3-gram "1 2 3"
    expect(new PromptLookup({ ngramMax: 3, ngramMin: 2 }).lookup([1, 2, 3, 4, 5, 3], 2)).toEqual([]); // only a 1-gram matches
    expect(new PromptLookup({ ngramMax: 3, ngramMin: 1 }).lookup([1, 2, 3, 4, 5, 3], 2)).toEqual([4, 5]);
    // A match d tokens back repeats with period d, the copy running on into itself.
    expect(new PromptLookup().lookup([4, 4], 5)).toEqual([4, 4, 4, 4, 4]);
    expect(new PromptLookup({ ngramMax: 2 }).lookup([9, 1, 2, 1, 2], 5)).toEqual([1, 2, 1, 2, 1]);
  });
});

describe('bad input', () => {
  it('rejects bad options and mismatched drafts with clear errors', async () => {
    const prompt = cases[0]!.prompt_tokens;
    const first = (draft: DraftSource, opts: SpeculativeOptions) => speculativeStream(target.network, draft, prompt, opts).next();
    await expect(first(q8.network, { draftMax: -1 })).rejects.toThrow(/draftMax: must be a non-negative integer/);
    await expect(first(q8.network, { maxTokens: 1.5 })).rejects.toThrow(/maxTokens/);
    await expect(first(q8.network, { distribution: topOne })).rejects.toThrow(/rng: sampling/);
    await expect(first(target.network, {})).rejects.toThrow(/separate model instance/);
    await expect(first({ promptLookup: { ngramMin: 0 } }, {})).rejects.toThrow(/ngramMin/);
    await expect(first({ promptLookup: { ngramMax: 1, ngramMin: 2 } }, {})).rejects.toThrow(/ngramMax/);
    await expect(speculativeStream(target.network, q8.network, [], {}).next()).rejects.toThrow(/empty/);
    const other = await loadModel(shared('models/llama-2-tiny-random/llama-2-tiny-random.gguf'), { threads: 1, contextLength: 64 });
    try {
      await expect(first(other.network, {})).rejects.toThrow(/vocabulary \(32000 tokens\) differs from the target's \(512\)/);
    } finally {
      other.dispose();
    }
  });
});

const topOne: Distribution = (logits) => ({ ids: [argmax(logits)], probs: [1] });
