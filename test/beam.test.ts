/**
 * Beam search: HF's rules checked by hand on a three-token toy language model, then on
 * stories260K (one beam is greedy decoding; beams' scores match a fresh forward; runs repeat).
 */
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { BeamSearch, beamSearch, type BeamSearchOptions } from '../src/generation/beam.js';
import { logSoftmax } from '../src/generation/sampler.js';
import { loadModel } from '../src/model.js';

const shared = (p: string): string => fileURLToPath(new URL(`../../shared/${p}`, import.meta.url));
interface Case { name: string; prompt_tokens: number[]; generated_tokens: number[] }
const { cases } = JSON.parse(fs.readFileSync(shared('fixtures/generation-stories260K-f32.json'), 'utf8')) as { cases: Case[] };

/**
 * A toy language model over {0: EOS, 1: A, 2: B}. Greedy takes A (0.5) and then ends with
 * P = 0.5·0.4 = 0.2; B (0.4) then EOS (0.9) has P = 0.36: only a wider search finds it.
 */
const EOS = 0;
const A = 1;
const B = 2;
function toyNext(tokens: readonly number[]): number[] {
  if (tokens.length === 0) return [0.1, 0.5, 0.4];
  if (tokens.length === 1) return tokens[0] === A ? [0.4, 0.3, 0.3] : [0.9, 0.05, 0.05];
  return [0.8, 0.1, 0.1];
}
function runToy(opts: BeamSearchOptions): BeamSearch & { steps: number } {
  const search = Object.assign(new BeamSearch(opts, new Set([EOS])), { steps: 0 });
  while (!search.done) {
    search.step((b) => Float32Array.from(toyNext(search.running[b]!.tokens), Math.log));
    search.steps++;
  }
  return search;
}
const summary = (s: BeamSearch) => s.result().map((h) => ({ tokens: h.tokens, eos: h.eos }));

describe('beam search rules (toy model, by hand)', () => {
  it('one beam is greedy: A, then EOS', () => {
    const s = runToy({ numBeams: 1, maxTokens: 10 });
    expect(summary(s)).toEqual([{ tokens: [A], eos: true }]);
    expect(s.result()[0]!.logprob).toBeCloseTo(Math.log(0.2), 6);
  });

  it('two beams find B EOS; early stopping true stops after the second step', () => {
    const s = runToy({ numBeams: 2, maxTokens: 10, earlyStopping: true });
    expect(summary(s)).toEqual([{ tokens: [B], eos: true }, { tokens: [A], eos: true }]);
    expect(s.result()[0]!.score).toBeCloseTo(Math.log(0.36) / 2, 6); // length 2 counts the EOS
    expect(s.result()[1]!.score).toBeCloseTo(Math.log(0.2) / 2, 6);
  });

  it("early stopping false (HF's heuristic) searches one step more: A A EOS replaces A EOS", () => {
    // After step 2 the best candidate, B EOS at log(0.36)/2, beats the worst kept, log(0.2)/2: go on.
    // Step 3: A A EOS scores log(0.15·0.8)/3 = -0.7068 > log(0.2)/2 = -0.8047; A B EOS ties it and
    // does not displace it; the worst kept (-0.7068) now equals the best candidate's bound: done.
    const s = runToy({ numBeams: 2, maxTokens: 10, earlyStopping: false });
    expect(summary(s)).toEqual([{ tokens: [B], eos: true }, { tokens: [A, A], eos: true }]);
    expect(s.steps).toBe(3);
    expect(s.result()[1]!.score).toBeCloseTo(Math.log(0.12) / 3, 6);
  });

  it('length penalty 0 ranks by raw log-probability; a large one prefers long outputs', () => {
    expect(summary(runToy({ numBeams: 2, maxTokens: 10, lengthPenalty: 0 }))).toEqual([{ tokens: [B], eos: true }, { tokens: [A], eos: true }]);
    // lengthPenalty 3: log(0.12)/27 = -0.0785 beats log(0.36)/8 = -0.1277.
    expect(summary(runToy({ numBeams: 2, maxTokens: 10, lengthPenalty: 3 }))).toEqual([{ tokens: [A, A], eos: true }, { tokens: [A, B], eos: true }]);
  });

  it("'never' keeps searching while a longer hypothesis could still win", () => {
    // The bound divides the best candidate by maxTokens (10), not the current length: after step k
    // it is log(0.15·0.1^(k-3)·0.8)/10, which first falls below the worst kept (-0.7068) at k = 6.
    const s = runToy({ numBeams: 2, maxTokens: 10, earlyStopping: 'never' });
    expect(summary(s)).toEqual([{ tokens: [B], eos: true }, { tokens: [A, A], eos: true }]);
    expect(s.steps).toBe(6);
  });

  it('the length limit turns running beams into hypotheses', () => {
    const s = runToy({ numBeams: 2, maxTokens: 1 });
    expect(summary(s)).toEqual([{ tokens: [A], eos: false }, { tokens: [B], eos: false }]);
    expect(s.result()[0]!.score).toBeCloseTo(Math.log(0.5), 6);
  });

  it('rejects bad options', () => {
    const eos = new Set([EOS]);
    expect(() => new BeamSearch({ numBeams: 0 }, eos)).toThrow(/numBeams: must be an integer ≥ 1/);
    expect(() => new BeamSearch({ numBeams: 2.5 }, eos)).toThrow(/numBeams/);
    expect(() => new BeamSearch({ numBeams: 2, lengthPenalty: NaN }, eos)).toThrow(/lengthPenalty: must be a finite number/);
    expect(() => new BeamSearch({ numBeams: 2, maxTokens: -1 }, eos)).toThrow(/maxTokens/);
    expect(() => new BeamSearch({ numBeams: 2, earlyStopping: 'sometimes' as never }, eos)).toThrow(/earlyStopping/);
  });
});

describe('beam search on stories260K', async () => {
  const model = await loadModel(shared('models/stories260K/stories260K.gguf'), { threads: 1 });
  afterAll(() => model.dispose());
  const net = model.network;

  /** Sum of log-probabilities of `tokens` after `prompt`, from one fresh forward pass. */
  function sequenceLogprob(prompt: readonly number[], tokens: readonly number[], eos: boolean): number {
    return sequenceLogprobEnding(prompt, tokens, eos ? model.tokenizer.eos : undefined);
  }
  function sequenceLogprobEnding(prompt: readonly number[], tokens: readonly number[], end: number | undefined): number {
    const all = [...prompt, ...tokens];
    const vocab = net.config.vocab_size;
    const rows = net.forward(all, 0, true).f32();
    let sum = 0;
    const next = end === undefined ? tokens : [...tokens, end];
    next.forEach((id, i) => {
      sum += logSoftmax(rows.slice((prompt.length - 1 + i) * vocab, (prompt.length + i) * vocab))[id]!;
    });
    return sum;
  }

  it("numBeams 1 is greedy decoding: llama.cpp's tokens on every fixture prompt", async () => {
    for (const c of cases) {
      const r = await beamSearch(net, model.tokenizer, c.prompt_tokens, { numBeams: 1, maxTokens: 64 });
      expect(r.tokens, c.name).toEqual(c.generated_tokens);
      expect(r.finishReason).toBe('length');
    }
  });

  it('four beams: deterministic, scores equal a fresh forward over each hypothesis, better than greedy', async () => {
    for (const c of cases.slice(0, 4)) {
      const opts = { numBeams: 4, maxTokens: 24 };
      const first = await beamSearch(net, model.tokenizer, c.prompt_tokens, opts);
      const again = await beamSearch(net, model.tokenizer, c.prompt_tokens, opts);
      expect(again).toEqual(first);
      expect(first.hypotheses.length).toBe(4);
      for (const h of first.hypotheses) {
        // Caches were handed between beams and copied; a fresh pass must agree.
        expect(h.logprob).toBeCloseTo(sequenceLogprob(c.prompt_tokens, h.tokens, h.eos), 4);
        expect(h.score).toBeCloseTo(h.logprob / (h.tokens.length + (h.eos ? 1 : 0)), 10);
      }
      const greedy = c.generated_tokens.slice(0, 24);
      expect(first.hypotheses[0]!.score).toBeGreaterThanOrEqual(sequenceLogprob(c.prompt_tokens, greedy, false) / 24 - 1e-9);
    }
  });

  it('end-of-generation tokens finish hypotheses (here: a full stop ends a sentence)', async () => {
    const stop = Array.from({ length: model.tokenizer.vocabSize }, (_, id) => id).filter((id) => model.tokenizer.tokenText(id) === '.');
    expect(stop.length).toBe(1);
    const sentence = { endOfGeneration: new Set(stop) };
    for (const earlyStopping of [true, false, 'never'] as const) {
      const r = await beamSearch(net, sentence, cases[0]!.prompt_tokens, { numBeams: 3, maxTokens: 40, earlyStopping });
      expect(r.finishReason).toBe('eos');
      expect(r.hypotheses.length).toBe(3);
      for (const h of r.hypotheses) {
        expect(h.eos).toBe(true);
        expect(h.tokens).not.toContain(stop[0]);
        expect(h.logprob).toBeCloseTo(sequenceLogprobEnding(cases[0]!.prompt_tokens, h.tokens, stop[0]!), 4);
      }
      expect(model.detokenize(r.tokens)).toBe(', there was a little girl named Lily');
    }
  });

  it('rejects an empty or too long prompt', async () => {
    await expect(beamSearch(net, model.tokenizer, [], { numBeams: 2 })).rejects.toThrow(/empty/);
    await expect(beamSearch(net, model.tokenizer, new Array(net.cache.length).fill(1), { numBeams: 2 })).rejects.toThrow(/do not fit/);
  });
});
