/**
 * Beam search, with Hugging Face transformers' scoring and stopping rules:
 *
 *   - Each of `numBeams` running beams has a score: the sum of its tokens' log-probabilities
 *     (log-softmax of the raw logits).
 *   - A step extends every beam by every token and keeps the best 2·numBeams candidates overall
 *     (score desc; ties: lower beam index, then lower token id, so runs are deterministic). At
 *     the first step only beam 0 exists, so the beams do not start as copies of each other.
 *   - Candidates are taken in that order. An end-of-generation token among the first numBeams
 *     candidates finishes a hypothesis (its tokens without the EOS, its score including the EOS's
 *     log-probability); other candidates become the next running beams until numBeams are found.
 *   - A finished hypothesis is ranked by score / generatedLength^lengthPenalty (the length counts
 *     the EOS); only the numBeams best are kept. lengthPenalty > 0 favours longer outputs.
 *   - Early stopping, once numBeams hypotheses are finished: `true` stops at once; `false` (HF's
 *     default heuristic) stops when the worst kept hypothesis beats the best candidate's score
 *     divided by the current length^lengthPenalty; 'never' divides by the longest possible length
 *     when lengthPenalty > 0 (the true bound), so it stops only when nothing can do better.
 *   - At maxTokens (or a full context) the running beams count as hypotheses of their length.
 *
 * The selection logic lives in BeamSearch (pure: logits in, beams out), so it can be checked by
 * hand on small tables; `beamSearch` drives it with a Network (any architecture), one KV cache per beam. When a
 * beam has several children, the first keeps its cache and the others copy the shared prefix
 * into caches whose beams died (KVCache.copyFrom), so no prefix is ever run twice.
 */
import { RequestError } from '../errors.js';
import type { Network } from '../nn/decoder.js';
import type { KVCache } from '../nn/kv-cache.js';
import { topLogprobs } from './sampler.js';

export type EarlyStopping = boolean | 'never';

export interface BeamSearchOptions {
  /** Beams kept at each step (≥ 1; 1 is greedy decoding). */
  numBeams: number;
  /** Tokens to generate at most (default 128). */
  maxTokens?: number;
  /** Exponent on the length a finished hypothesis's score is divided by (default 1, as HF). */
  lengthPenalty?: number;
  /** When to stop once numBeams hypotheses are finished (default false, HF's heuristic). */
  earlyStopping?: EarlyStopping;
  /** Stop early when aborted; the best running beams are returned as they stand. */
  signal?: AbortSignal;
}

/** A finished (or, at the length limit, unfinished) sequence of generated tokens. */
export interface BeamHypothesis {
  /** Generated tokens, without the end-of-generation token. */
  tokens: number[];
  /** Sum of the tokens' log-probabilities (the EOS's included when it ended with one). */
  logprob: number;
  /** logprob / length^lengthPenalty: what hypotheses are ranked by. */
  score: number;
  /** Whether it ended with an end-of-generation token (else it hit the length limit). */
  eos: boolean;
}

export interface BeamSearchResult {
  /** The best hypothesis's tokens. */
  tokens: number[];
  finishReason: 'eos' | 'length' | 'abort';
  /** All kept hypotheses, best first. */
  hypotheses: BeamHypothesis[];
  /** Decoding steps run (each one forward per live beam). */
  steps: number;
}

/** A running beam: its generated tokens, log-probability sum, and the beam it was extended from. */
export interface Beam {
  tokens: number[];
  logprob: number;
  parent: number;
}

/** The selection rules, independent of any model: feed it each step's logits per running beam. */
export class BeamSearch {
  readonly numBeams: number;
  readonly lengthPenalty: number;
  readonly earlyStopping: EarlyStopping;
  readonly maxTokens: number;
  running: Beam[] = [{ tokens: [], logprob: 0, parent: 0 }];
  /** Finished hypotheses, best first, at most numBeams. */
  readonly finished: BeamHypothesis[] = [];
  done = false;

  constructor(opts: BeamSearchOptions, private readonly stopTokens: ReadonlySet<number>) {
    const { numBeams, maxTokens = 128, lengthPenalty = 1, earlyStopping = false } = opts;
    if (!Number.isSafeInteger(numBeams) || numBeams < 1) {
      throw new RequestError('invalid_num_beams', 'numBeams', `must be an integer ≥ 1, got ${String(numBeams)}`);
    }
    if (!Number.isSafeInteger(maxTokens) || maxTokens < 0) {
      throw new RequestError('invalid_max_tokens', 'maxTokens', `must be a non-negative integer, got ${String(maxTokens)}`);
    }
    if (typeof lengthPenalty !== 'number' || !Number.isFinite(lengthPenalty)) {
      throw new RequestError('invalid_length_penalty', 'lengthPenalty', `must be a finite number, got ${String(lengthPenalty)}`);
    }
    if (earlyStopping !== true && earlyStopping !== false && earlyStopping !== 'never') {
      throw new RequestError('invalid_early_stopping', 'earlyStopping', `must be true, false or 'never', got ${String(earlyStopping)}`);
    }
    this.numBeams = numBeams;
    this.maxTokens = maxTokens;
    this.lengthPenalty = lengthPenalty;
    this.earlyStopping = earlyStopping;
    if (maxTokens === 0) this.done = true;
  }

  /**
   * One step: `logitsOf(i)` is the next-token logits after running beam i. Replaces `running`
   * with the next beams (each naming its parent), records finished hypotheses, sets `done`.
   */
  step(logitsOf: (beam: number) => Float32Array): void {
    const candidates = this.candidates(logitsOf);
    const generated = this.running[0]!.tokens.length + 1; // length of every candidate, EOS included
    const next: Beam[] = [];
    for (let rank = 0; rank < candidates.length && next.length < this.numBeams; rank++) {
      const c = candidates[rank]!;
      const tokens = this.running[c.beam]!.tokens;
      if (this.stopTokens.has(c.id)) {
        // HF: an EOS outside the top numBeams candidates does not count.
        if (rank < this.numBeams) this.addHypothesis({ tokens: [...tokens], logprob: c.logprob, score: this.scoreOf(c.logprob, generated), eos: true });
      } else {
        next.push({ tokens: [...tokens, c.id], logprob: c.logprob, parent: c.beam });
      }
    }
    this.running = next;
    const best = candidates[0]?.logprob ?? -Infinity;
    if (this.isDone(best, generated) || next.length === 0) this.done = true;
    else if (generated >= this.maxTokens) this.finish();
  }

  /** Count the running beams as hypotheses (the length limit) and stop. */
  finish(): void {
    if (this.done) return;
    for (const beam of this.running) {
      this.addHypothesis({ tokens: [...beam.tokens], logprob: beam.logprob, score: this.scoreOf(beam.logprob, beam.tokens.length), eos: false });
    }
    this.done = true;
  }

  private scoreOf(logprob: number, length: number): number {
    return logprob / Math.max(length, 1) ** this.lengthPenalty;
  }

  /** The best 2·numBeams (beam, token) extensions, best first; ties: lower beam, then lower id. */
  private candidates(logitsOf: (beam: number) => Float32Array): { beam: number; id: number; logprob: number }[] {
    const width = 2 * this.numBeams;
    const all: { beam: number; id: number; logprob: number }[] = [];
    this.running.forEach((beam, b) => {
      // topLogprobs orders ties by lower id, and no beam can place more than `width` in the top.
      for (const t of topLogprobs(logitsOf(b), width)) all.push({ beam: b, id: t.id, logprob: beam.logprob + t.logprob });
    });
    all.sort((x, y) => y.logprob - x.logprob || x.beam - y.beam || x.id - y.id);
    return all.slice(0, width);
  }

  /** Keep the numBeams best hypotheses; an equal score does not displace an earlier one. */
  private addHypothesis(h: BeamHypothesis): void {
    if (h.score !== h.score) return; // NaN never ranks
    let at = this.finished.length;
    while (at > 0 && this.finished[at - 1]!.score < h.score) at--;
    this.finished.splice(at, 0, h);
    if (this.finished.length > this.numBeams) this.finished.pop();
  }

  /** HF's is_done: can any running beam still beat the worst kept hypothesis? */
  private isDone(bestLogprob: number, generated: number): boolean {
    if (this.finished.length < this.numBeams) return false;
    if (this.earlyStopping === true) return true;
    const worst = this.finished[this.finished.length - 1]!.score;
    const length = this.earlyStopping === 'never' && this.lengthPenalty > 0 ? this.maxTokens : generated;
    return worst >= this.scoreOf(bestLogprob, length);
  }

  /** The hypotheses, best first (running beams count only once finish() added them). */
  result(): BeamHypothesis[] {
    return [...this.finished];
  }
}

/**
 * Beam search on a model from `promptTokens` (non-empty). `stopTokens` are the end-of-generation
 * ids (a tokenizer's endOfGeneration). Uses numBeams fresh KV caches, freed before returning.
 */
export async function beamSearch(
  network: Network,
  tokenizer: { readonly endOfGeneration: ReadonlySet<number> },
  promptTokens: readonly number[],
  opts: BeamSearchOptions,
): Promise<BeamSearchResult> {
  if (promptTokens.length === 0) throw new RequestError('empty_prompt', 'prompt', 'no tokens to start from (empty prompt without BOS)');
  const contextLength = network.cache.length;
  if (promptTokens.length >= contextLength) {
    throw new RequestError('prompt_too_long', 'prompt', `${promptTokens.length} tokens do not fit the context of ${contextLength}`);
  }
  const search = new BeamSearch(opts, tokenizer.endOfGeneration);
  // The last generated token is never run, so the context holds prompt + maxTokens - 1 positions.
  const maxTokens = Math.min(search.maxTokens, contextLength - promptTokens.length + 1);
  const caches: KVCache[] = [];
  let aborted = false;
  let steps = 0;
  try {
    for (let i = 0; i < search.numBeams; i++) caches.push(network.createCache());
    let logits = [network.forward(promptTokens, 0, false, caches[0]).f32().slice()];
    while (!search.done) {
      if (opts.signal?.aborted) {
        aborted = true;
        break;
      }
      search.step((b) => logits[b]!);
      steps++;
      const length = search.running[0]?.tokens.length ?? 0;
      if (!search.done && length >= maxTokens) search.finish();
      if (search.done) break;
      const beamCaches = reassignCaches(caches, search.running.map((b) => b.parent), promptTokens.length + length - 1);
      logits = search.running.map((beam, b) => network.forward([beam.tokens[length - 1]!], promptTokens.length + length - 1, false, beamCaches[b]).f32().slice());
      caches.splice(0, caches.length, ...beamCaches, ...caches.filter((c) => !beamCaches.includes(c)));
      await new Promise((resolve) => setImmediate(resolve)); // let timers and I/O run between steps
    }
  } finally {
    for (const c of caches) c.free();
  }
  if (aborted) search.finish();
  const hypotheses = search.result();
  return {
    tokens: hypotheses[0]?.tokens ?? [],
    finishReason: aborted ? 'abort' : hypotheses[0]?.eos ? 'eos' : 'length',
    hypotheses,
    steps,
  };
}

/**
 * Caches for the next beams: beam i continues the cache of its parent `parents[i]`. The first
 * child of a parent takes the parent's cache; later children get a cache whose beam has no child,
 * with the parent's first `positions` rows copied in. Returns one cache per new beam.
 */
function reassignCaches(caches: readonly KVCache[], parents: readonly number[], positions: number): KVCache[] {
  const taken = new Set<number>(parents);
  const spare = caches.map((_, i) => i).filter((i) => !taken.has(i));
  const claimed = new Set<number>();
  return parents.map((parent) => {
    if (!claimed.has(parent)) {
      claimed.add(parent);
      return caches[parent]!;
    }
    const cache = caches[spare.shift()!]!;
    cache.copyFrom(caches[parent]!, positions);
    return cache;
  });
}
