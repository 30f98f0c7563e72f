/**
 * Next-token sampling: a chain of small processors (processors.ts) in llama.cpp's default order
 * (common/sampling.cpp builds the same chain from the same defaults):
 *
 *   logit bias -> penalties (repeat, presence, frequency over the last repeatLastN tokens)
 *     -> constraint mask (grammars, schemas) -> top-k -> typical-p -> top-p -> min-p
 *     -> temperature -> draw
 *
 * With `mirostat: 2` the steps from top-k to the draw are replaced, as in llama.cpp, by
 * temperature -> Mirostat 2.0 (truncate where the surprise -log2 p exceeds the running target mu,
 * start mu = 2 tau, draw, then mu -= eta * (surprise of the drawn token - tau)).
 *
 * Every filtering step works on the untempered logits (temperature comes last, as in llama.cpp);
 * temperature 0 keeps only the most likely token left (greedy, ties to the lower id), so greedy
 * decoding is argmax of the biased, penalized, masked logits. `distribution()` gives the
 * candidates and probabilities after every step but the draw (speculative decoding's acceptance
 * rule needs them); `sample()` is distribution + draw + accept.
 *
 * The generator is xoshiro128** (Blackman & Vigna), its 128-bit state filled from the seed by a
 * splitmix-style 32-bit mixer; the draw walks the distribution most-likely-first, which does not
 * depend on how the candidates were found: the same seed and logits give the same tokens on every
 * platform and thread count.
 */
import { RequestError } from '../errors.js';
import { Xoshiro128 } from '../tensor/random.js';
import type { TokenConstraint } from './constraint.js';
import {
  applyLogitBias, applyPenalties, drawFrom, minP, mirostatTruncate, softmax, sortCandidates, temperature, topK, topP, typicalP,
  type Candidates, type Distribution, allCandidates,
} from './processors.js';

export type { Distribution } from './processors.js';

export interface SamplingOptions {
  /** Divides the logits before the draw; 0 = greedy (default 0.8). */
  temperature?: number;
  /** Keep only the k most likely tokens; 0 = off (default 40). */
  topK?: number;
  /** Keep the smallest set of tokens whose probability mass is >= p; 1 = off (default 0.95). */
  topP?: number;
  /** Keep tokens at least this likely relative to the most likely one; 0 = off (default 0.05). */
  minP?: number;
  /** Locally typical sampling's mass; 1 = off (default 1). */
  typicalP?: number;
  /** Repetition penalty on tokens in the window; 1 = off (default 1). */
  repeatPenalty?: number;
  /** The penalty window: the last N tokens of prompt + output; 0 = off, -1 = all of them (default 64). */
  repeatLastN?: number;
  /** Subtracted from the logit of every token present in the window (default 0). */
  presencePenalty?: number;
  /** Subtracted from a token's logit once per occurrence in the window (default 0). */
  frequencyPenalty?: number;
  /** 0 = off, 2 = Mirostat 2.0 in place of top-k, typical-p, top-p and min-p (default 0). */
  mirostat?: 0 | 2;
  /** Mirostat's target surprise, in bits (default 5). */
  mirostatTau?: number;
  /** Mirostat's learning rate (default 0.1). */
  mirostatEta?: number;
  /** Added to the logits of the listed token ids; -Infinity bans a token. */
  logitBias?: Readonly<Record<number, number>>;
  /** Seed for the draws, an integer 0 ≤ seed < 2^53 (default: random). */
  seed?: number;
  /** What may come next (a grammar, schema or regex); the sampler masks with it and advances it. */
  constraint?: TokenConstraint;
}

/** llama.cpp's defaults. */
export const SAMPLING_DEFAULTS = {
  temperature: 0.8,
  topK: 40,
  topP: 0.95,
  minP: 0.05,
  typicalP: 1,
  repeatPenalty: 1,
  repeatLastN: 64,
  presencePenalty: 0,
  frequencyPenalty: 0,
  mirostat: 0,
  mirostatTau: 5,
  mirostatEta: 0.1,
} as const;

/** What the sampler knows of the model: end-of-generation tokens (for the constraint) and the vocabulary size. */
export interface SamplerContext {
  eog?: ReadonlySet<number>;
  vocabSize?: number;
}

export class Sampler {
  readonly temperature: number;
  readonly topK: number;
  readonly topP: number;
  readonly minP: number;
  readonly typicalP: number;
  readonly repeatPenalty: number;
  readonly repeatLastN: number;
  readonly presencePenalty: number;
  readonly frequencyPenalty: number;
  readonly mirostat: 0 | 2;
  readonly mirostatTau: number;
  readonly mirostatEta: number;
  /** The seed in use (drawn at random when none was given), so a run can be repeated. */
  readonly seed: number;
  readonly constraint: TokenConstraint | undefined;
  /** Mirostat's running surprise target, in bits. */
  mu: number;
  private readonly logitBias: ReadonlyMap<number, number>;
  private readonly eog: ReadonlySet<number>;
  private readonly rng: Xoshiro128;
  private last: Distribution | undefined;

  constructor(opts: SamplingOptions = {}, context: SamplerContext = {}) {
    const d = SAMPLING_DEFAULTS;
    this.temperature = check(opts.temperature, d.temperature, 'temperature', (v) => Number.isFinite(v) && v >= 0, 'a number ≥ 0 (0 = greedy)');
    this.topK = check(opts.topK, d.topK, 'topK', (v) => Number.isSafeInteger(v) && v >= 0, 'an integer ≥ 0 (0 = off)');
    this.topP = check(opts.topP, d.topP, 'topP', (v) => v > 0 && v <= 1, 'in (0, 1] (1 = off)');
    this.minP = check(opts.minP, d.minP, 'minP', (v) => v >= 0 && v <= 1, 'in [0, 1] (0 = off)');
    this.typicalP = check(opts.typicalP, d.typicalP, 'typicalP', (v) => v > 0 && v <= 1, 'in (0, 1] (1 = off)');
    this.repeatPenalty = check(opts.repeatPenalty, d.repeatPenalty, 'repeatPenalty', (v) => Number.isFinite(v) && v > 0, 'a number > 0 (1 = off)');
    this.repeatLastN = check(opts.repeatLastN, d.repeatLastN, 'repeatLastN', (v) => Number.isSafeInteger(v) && v >= -1, 'an integer ≥ -1 (0 = off, -1 = all)');
    this.presencePenalty = check(opts.presencePenalty, d.presencePenalty, 'presencePenalty', Number.isFinite, 'a finite number (0 = off)');
    this.frequencyPenalty = check(opts.frequencyPenalty, d.frequencyPenalty, 'frequencyPenalty', Number.isFinite, 'a finite number (0 = off)');
    this.mirostat = check(opts.mirostat, d.mirostat, 'mirostat', (v) => v === 0 || v === 2, '0 (off) or 2 (Mirostat 2.0; version 1 is not supported)') as 0 | 2;
    this.mirostatTau = check(opts.mirostatTau, d.mirostatTau, 'mirostatTau', (v) => Number.isFinite(v) && v >= 0, 'a number ≥ 0');
    this.mirostatEta = check(opts.mirostatEta, d.mirostatEta, 'mirostatEta', (v) => Number.isFinite(v) && v >= 0, 'a number ≥ 0');
    this.seed = opts.seed === undefined ? randomSeed() : check(opts.seed, 0, 'seed', (v) => Number.isSafeInteger(v) && v >= 0, 'an integer in [0, 2^53)');
    if (this.mirostat === 2) {
      for (const name of ['topK', 'topP', 'minP', 'typicalP'] as const) {
        if (opts[name] !== undefined) {
          throw new RequestError('conflicting_options', name, 'has no effect with mirostat 2, which replaces top-k, typical-p, top-p and min-p: leave it unset');
        }
      }
    }
    this.logitBias = checkLogitBias(opts.logitBias, context.vocabSize);
    this.constraint = checkConstraint(opts.constraint);
    this.eog = context.eog ?? new Set();
    this.mu = 2 * this.mirostatTau;
    this.rng = Xoshiro128.fromSeed(this.seed);
  }

  /** Pick the next token id from a row of logits (not modified), given the tokens so far (prompt + output). */
  sample(logits: Float32Array, history: ArrayLike<number> = []): number {
    const id = this.draw(this.distribution(logits, history));
    this.accept(id);
    return id;
  }

  /**
   * The distribution the next token is drawn from: every step of the chain but the draw, most
   * likely first. Greedy (temperature 0) gives the one token it would pick, with probability 1.
   */
  distribution(logits: Float32Array, history: ArrayLike<number> = []): Distribution {
    checkLogits(logits);
    let row = this.processRow(logits, history);
    const greedy = this.temperature === 0 && (this.mirostat === 2 || this.typicalP >= 1);
    // With a constraint, top-k (greedy: top-1) can pick from the best candidates the constraint
    // allows; otherwise, or when they are too rare among the best, the whole row is masked.
    const best = this.mirostat === 2 ? undefined : this.bestAllowed(row, greedy ? 1 : this.topK);
    if (this.constraint && !best) row = this.masked(row, logits, this.constraint);
    let d: Distribution;
    if (greedy) {
      // top-k, top-p and min-p all keep the most likely token: greedy is the argmax of the row.
      d = { ids: Int32Array.of(best ? best.ids[0] : argmax(row)), probs: Float64Array.of(1) };
    } else if (this.mirostat === 2) {
      d = mirostatTruncate(softmax(temperature(allCandidates(row), this.temperature)), this.mu);
    } else {
      let c = best ?? topK(row, this.topK);
      c = typicalP(c, this.typicalP);
      c = topP(c, this.topP);
      c = minP(c, this.minP);
      d = softmax(temperature(c, this.temperature));
    }
    this.last = d;
    return d;
  }

  /** One seeded draw from a distribution. */
  draw(d: Distribution): number {
    return drawFrom(d, this.rng.nextFloat());
  }

  /** A uniform number in [0, 1) from this sampler's generator (for acceptance tests that need their own draws). */
  random(): number {
    return this.rng.nextFloat();
  }

  /**
   * Record the chosen token: the constraint advances past it and Mirostat moves its target by
   * the token's surprise in the last distribution.
   */
  accept(id: number): void {
    this.constraint?.accept(id);
    if (this.mirostat === 2 && this.last) {
      const i = this.last.ids.indexOf(id);
      const surprise = i >= 0 ? -Math.log2(this.last.probs[i]) : Infinity;
      if (Number.isFinite(surprise)) this.mu -= this.mirostatEta * (surprise - this.mirostatTau);
    }
  }

  /** Bias and penalties, on a copy of the row (the original is left alone). */
  private processRow(logits: Float32Array, history: ArrayLike<number>): Float32Array {
    const window = this.penaltyWindow(history);
    const penalize = window.length > 0 && (this.repeatPenalty !== 1 || this.presencePenalty !== 0 || this.frequencyPenalty !== 0);
    if (this.logitBias.size === 0 && !penalize) return logits;
    const row = logits.slice();
    applyLogitBias(row, this.logitBias);
    if (penalize) applyPenalties(row, window, { repeat: this.repeatPenalty, presence: this.presencePenalty, frequency: this.frequencyPenalty });
    return row;
  }

  /** The row with the constraint's mask applied (copied first if it is still the caller's logits). */
  private masked(row: Float32Array, logits: Float32Array, constraint: TokenConstraint): Float32Array {
    const out = row === logits ? row.slice() : row;
    constraint.mask(out, this.eog);
    return out;
  }

  /**
   * The k best tokens the constraint allows, best first, when one batch of the best 2k (at least
   * 32) candidates holds them, or holds every finite logit: exactly the top k of the masked row.
   * Undefined without a constraint that answers `allows`, with top-k off, or when allowed tokens
   * are rarer than that (a narrow grammar state, whose mask is cheap and then cached).
   */
  private bestAllowed(row: Float32Array, k: number): Candidates | undefined {
    const constraint = this.constraint;
    if (!constraint || k <= 0) return undefined;
    const allowed = constraint.allowedIds?.(this.eog);
    if (allowed) return allowed.length === 0 ? undefined : topKAmong(row, allowed, k);
    if (!constraint.allows) return undefined;
    const batch = Math.min(row.length, Math.max(32, 2 * k));
    const best = sortCandidates(topK(row, batch));
    const ids: number[] = [];
    const values: number[] = [];
    let exhausted = batch === row.length;
    for (let i = 0; i < best.ids.length && ids.length < k; i++) {
      if (best.logits[i] === -Infinity) {
        exhausted = true;
        break;
      }
      if (constraint.allows(best.ids[i], this.eog)) {
        ids.push(best.ids[i]);
        values.push(best.logits[i]);
      }
    }
    if (ids.length < k && !exhausted) return undefined;
    if (ids.length === 0) return undefined; // nothing allowed: let mask() say so (every logit -Infinity)
    return { ids: Int32Array.from(ids), logits: Float64Array.from(values), sorted: true };
  }

  private penaltyWindow(history: ArrayLike<number>): ArrayLike<number> {
    if (this.repeatLastN === 0) return [];
    const from = this.repeatLastN < 0 ? 0 : Math.max(0, history.length - this.repeatLastN);
    return Array.prototype.slice.call(history, from) as number[];
  }
}

/**
 * The k best of the listed ids (ascending), best first, ties to the lower id as topK breaks them;
 * tokens whose logit is -Infinity (or NaN) are left out, as the masked path would give them no mass.
 */
function topKAmong(row: Float32Array, ids: Int32Array, k: number): Candidates | undefined {
  const values = new Float32Array(ids.length);
  ids.forEach((id, i) => (values[i] = row[id]));
  const best = sortCandidates(topK(values, Math.min(k, ids.length)));
  let n = 0;
  while (n < best.ids.length && best.logits[n] > -Infinity) n++;
  if (n === 0) return undefined;
  return { ids: Int32Array.from(best.ids.subarray(0, n), (i) => ids[i]), logits: best.logits.slice(0, n), sorted: true };
}

/** A random seed with room for `n` consecutive seeds after it (n samples use seed, seed + 1, ...). */
export function randomSeed(room = 1 << 20): number {
  const words = new Uint32Array(2);
  globalThis.crypto.getRandomValues(words);
  const seed = (words[0] & 0x1fffff) * 2 ** 32 + words[1]; // 53 random bits
  return seed % (2 ** 53 - room);
}

/**
 * The tokens top-k and top-p leave to draw from, in ascending id order (for inspection and tests;
 * the sampler draws from the same set). topK 0 and topP 1 mean off.
 */
export function survivingTokens(logits: Float32Array, k: number, p: number): number[] {
  checkLogits(logits);
  return Array.from(topP(topK(logits, k), p).ids).sort((a, b) => a - b);
}

/** The index of the largest logit (the first one on ties; NaN never wins). */
export function argmax(logits: Float32Array): number {
  checkLogits(logits);
  let best = 0;
  let bestValue = -Infinity;
  for (let i = 0; i < logits.length; i++) {
    if (logits[i] > bestValue) {
      bestValue = logits[i];
      best = i;
    }
  }
  return best;
}

/** log(softmax(logits)) in float64. */
export function logSoftmax(logits: Float32Array): Float64Array {
  checkLogits(logits);
  const logZ = logSumExp(logits);
  const out = new Float64Array(logits.length);
  for (let i = 0; i < logits.length; i++) out[i] = logits[i] - logZ;
  return out;
}

/** The n most likely tokens with their log-probabilities, most likely first (ties: lower id first). */
export function topLogprobs(logits: Float32Array, n: number): { id: number; logprob: number }[] {
  checkLogits(logits);
  if (!Number.isSafeInteger(n) || n < 0) throw new RequestError('invalid_n', 'n', `must be an integer ≥ 0, got ${n}`);
  if (n === 0) return [];
  const logZ = logSumExp(logits);
  const top = sortCandidates(topK(logits, Math.min(n, logits.length)));
  return Array.from(top.ids.subarray(0, n), (id, i) => ({ id, logprob: top.logits[i] - logZ }));
}

/** The log-probability of one token under softmax(logits). */
export function logprobOf(logits: Float32Array, id: number): number {
  return logits[id] - logSumExp(logits);
}

// ---------------------------------------------------------------------------------------------

/** An option's value or its default, rejected with a RequestError naming it unless `ok`. */
function check(value: unknown, fallback: number, name: string, ok: (v: number) => boolean, what: string): number {
  const v = value === undefined ? fallback : value;
  if (typeof v !== 'number' || !ok(v)) {
    throw new RequestError(`invalid_${snake(name)}`, name, `must be ${what}, got ${String(value)}`);
  }
  return v;
}

const snake = (name: string): string => name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

function checkLogitBias(bias: SamplingOptions['logitBias'], vocabSize: number | undefined): ReadonlyMap<number, number> {
  const map = new Map<number, number>();
  if (bias === undefined) return map;
  if (typeof bias !== 'object' || bias === null) {
    throw new RequestError('invalid_logit_bias', 'logitBias', 'must be an object from token id to bias');
  }
  for (const [key, value] of Object.entries(bias)) {
    const id = Number(key);
    if (!/^\d+$/.test(key) || (vocabSize !== undefined && id >= vocabSize)) {
      throw new RequestError('invalid_logit_bias', 'logitBias', `"${key}" is not a token id${vocabSize === undefined ? '' : ` below the vocabulary size ${vocabSize}`}`);
    }
    if (typeof value !== 'number' || !(Number.isFinite(value) || value === -Infinity)) {
      throw new RequestError('invalid_logit_bias', 'logitBias', `token ${key}: the bias must be a finite number or -Infinity, got ${String(value)}`);
    }
    map.set(id, value);
  }
  return map;
}

function checkConstraint(constraint: TokenConstraint | undefined): TokenConstraint | undefined {
  if (constraint === undefined) return undefined;
  if (typeof constraint !== 'object' || constraint === null || typeof constraint.mask !== 'function' || typeof constraint.accept !== 'function') {
    throw new RequestError('invalid_constraint', 'constraint', 'must be a TokenConstraint (mask, accept, complete, finished, clone)');
  }
  return constraint;
}

function checkLogits(logits: Float32Array): void {
  if (!(logits instanceof Float32Array) || logits.length === 0) {
    throw new RequestError('invalid_logits', 'logits', 'must be a non-empty Float32Array');
  }
}

function logSumExp(logits: Float32Array): number {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  if (!Number.isFinite(max)) return max;
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  return max + Math.log(sum);
}
