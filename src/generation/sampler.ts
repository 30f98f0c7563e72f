/**
 * Next-token sampling, as a chain of small steps in llama.cpp's default order:
 *
 *   top-k  ->  top-p  ->  temperature  ->  draw
 *
 * top-k keeps the k highest logits; top-p keeps the smallest head of those (by probability,
 * renormalized over the survivors) whose mass reaches p; temperature divides the surviving logits;
 * the draw takes a softmax over them and picks one with a seeded generator. Temperature 0 is
 * greedy (argmax). Note that top-p looks at the untempered probabilities, as llama.cpp's does.
 *
 * The generator is xoshiro128** (Blackman & Vigna), its 128-bit state filled from the seed by a
 * splitmix-style 32-bit mixer: the same seed gives the same tokens on every platform.
 */
import { RequestError } from '../errors.js';
import { Xoshiro128 } from '../tensor/random.js';

export interface SamplingOptions {
  /** Divides the logits before the draw; 0 = greedy (default 0.8). */
  temperature?: number;
  /** Keep only the k most likely tokens; 0 = off (default 40). */
  topK?: number;
  /** Keep the smallest set of tokens whose probability mass is >= p; 1 = off (default 0.95). */
  topP?: number;
  /** Seed for the draws, an integer 0 ≤ seed < 2^53 (default: random). */
  seed?: number;
}

/** llama.cpp's defaults. */
export const SAMPLING_DEFAULTS = { temperature: 0.8, topK: 40, topP: 0.95 } as const;

export class Sampler {
  readonly temperature: number;
  readonly topK: number;
  readonly topP: number;
  /** The seed in use (drawn at random when none was given), so a run can be repeated. */
  readonly seed: number;
  private readonly rng: Xoshiro128;

  constructor(opts: SamplingOptions = {}) {
    const { temperature = SAMPLING_DEFAULTS.temperature, topK = SAMPLING_DEFAULTS.topK, topP = SAMPLING_DEFAULTS.topP } = opts;
    if (typeof temperature !== 'number' || !Number.isFinite(temperature) || temperature < 0) {
      throw new RequestError('invalid_temperature', 'temperature', `must be a number ≥ 0, got ${String(temperature)}`);
    }
    if (typeof topK !== 'number' || !Number.isSafeInteger(topK) || topK < 0) {
      throw new RequestError('invalid_top_k', 'topK', `must be an integer ≥ 0 (0 = off), got ${String(topK)}`);
    }
    if (typeof topP !== 'number' || !(topP > 0 && topP <= 1)) {
      throw new RequestError('invalid_top_p', 'topP', `must be in (0, 1] (1 = off), got ${String(topP)}`);
    }
    const seed = opts.seed ?? randomSeed();
    if (typeof seed !== 'number' || !Number.isSafeInteger(seed) || seed < 0) {
      throw new RequestError('invalid_seed', 'seed', `must be an integer in [0, 2^53), got ${String(opts.seed)}`);
    }
    this.temperature = temperature;
    this.topK = topK;
    this.topP = topP;
    this.seed = seed;
    this.rng = Xoshiro128.fromSeed(seed);
  }

  /** Pick the next token id from a row of logits (which is not modified). */
  sample(logits: Float32Array): number {
    checkLogits(logits);
    if (this.temperature === 0) return argmax(logits);
    const kept = truncate(logits, this.topK, this.topP);
    return kept ? this.draw(kept.logits, kept.ids) : this.draw(logits, undefined);
  }

  /** Softmax of logits / temperature, then one draw; `ids` maps candidate i to its token (identity when absent). */
  private draw(logits: ArrayLike<number>, ids: Int32Array | undefined): number {
    const n = logits.length;
    let max = -Infinity;
    for (let i = 0; i < n; i++) if (logits[i] > max) max = logits[i];
    // Nothing finite to weigh (all -inf, or +inf present): fall back to the best candidate.
    if (!Number.isFinite(max)) {
      let best = 0;
      for (let i = 1; i < n; i++) if (logits[i] > logits[best]) best = i;
      return ids ? ids[best] : best;
    }
    const invT = 1 / this.temperature;
    const weights = new Float64Array(n);
    let total = 0;
    for (let i = 0; i < n; i++) {
      const v = logits[i];
      const w = v === v ? Math.exp((v - max) * invT) : 0; // NaN counts as impossible
      weights[i] = w;
      total += w;
    }
    const target = this.rng.nextFloat() * total;
    let acc = 0;
    let last = 0;
    for (let i = 0; i < n; i++) {
      if (weights[i] === 0) continue;
      acc += weights[i];
      last = i;
      if (target < acc) break;
    }
    return ids ? ids[last] : last;
  }
}

/**
 * The tokens top-k and top-p leave to draw from, in ascending id order (for inspection and tests;
 * `Sampler.sample` draws from the same set). topK 0 and topP 1 mean off.
 */
export function survivingTokens(logits: Float32Array, topK: number, topP: number): number[] {
  checkLogits(logits);
  const kept = truncate(logits, topK, topP);
  return kept ? Array.from(kept.ids).sort((a, b) => a - b) : Array.from(logits.keys());
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
  const logZ = logSumExp(logits);
  const top = topCandidates(logits, Math.min(n, logits.length));
  return Array.from(top.ids, (id, i) => ({ id, logprob: top.logits[i] - logZ }));
}

// ---------------------------------------------------------------------------------------------

/** A subset of the vocabulary: token ids and their logits (most likely first, except after topPOfAll). */
interface Candidates {
  ids: Int32Array;
  logits: Float64Array;
}

/** top-k then top-p; undefined when neither removes anything (draw from the whole row). */
function truncate(logits: Float32Array, topK: number, topP: number): Candidates | undefined {
  let kept: Candidates | undefined;
  if (topK > 0 && topK < logits.length) kept = topCandidates(logits, topK);
  if (topP < 1) kept = kept ? keepTopP(kept, topP) : topPOfAll(logits, topP);
  return kept;
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

/**
 * The k largest logits, sorted (ties: lower id first). A min-heap of size k keeps the best so far,
 * so this is O(n log k) rather than a full sort. NaN counts as -inf.
 */
function topCandidates(logits: Float32Array, k: number): Candidates {
  const ids = new Int32Array(k);
  const vals = new Float64Array(k);
  let size = 0;
  const siftDown = (i: number): void => {
    const id = ids[i];
    const v = vals[i];
    for (;;) {
      const l = 2 * i + 1;
      if (l >= size) break;
      const r = l + 1;
      // The worse child: lower value, or on equal values the higher id.
      const c = r < size && (vals[r] < vals[l] || (vals[r] === vals[l] && ids[r] > ids[l])) ? r : l;
      if (!(vals[c] < v || (vals[c] === v && ids[c] > id))) break;
      ids[i] = ids[c];
      vals[i] = vals[c];
      i = c;
    }
    ids[i] = id;
    vals[i] = v;
  };
  for (let i = 0; i < logits.length && k > 0; i++) {
    let v = logits[i];
    if (v !== v) v = -Infinity;
    if (size < k) {
      // Sift up past every better parent; a later id loses ties, so it also passes equal values.
      let j = size++;
      while (j > 0) {
        const p = (j - 1) >> 1;
        if (vals[p] < v) break;
        ids[j] = ids[p];
        vals[j] = vals[p];
        j = p;
      }
      ids[j] = i;
      vals[j] = v;
    } else if (v > vals[0]) {
      // Strictly better than the worst kept; on a tie the kept (earlier) id stays.
      ids[0] = i;
      vals[0] = v;
      siftDown(0);
    }
  }
  const order = Array.from({ length: size }, (_, i) => i).sort((a, b) => vals[b] - vals[a] || ids[a] - ids[b] || 0);
  return { ids: Int32Array.from(order, (i) => ids[i]), logits: Float64Array.from(order, (i) => vals[i]) };
}

/** The smallest head of sorted candidates whose softmax mass (over the candidates) is >= p. */
function keepTopP(c: Candidates, p: number): Candidates {
  const max = c.logits[0];
  if (!Number.isFinite(max)) return c;
  let total = 0;
  for (let i = 0; i < c.logits.length; i++) total += Math.exp(c.logits[i] - max);
  const need = p * total;
  let acc = 0;
  for (let i = 0; i < c.logits.length; i++) {
    acc += Math.exp(c.logits[i] - max);
    if (acc >= need) return { ids: c.ids.subarray(0, i + 1), logits: c.logits.subarray(0, i + 1) };
  }
  return c; // rounding left the sum just under p: keep them all
}

/**
 * top-p over the whole vocabulary (top-k off) without sorting it: bucket the tokens by how far
 * their logit lies below the maximum (1/16 nat per bucket), find the bucket where the running
 * mass reaches p, and sort only that bucket to place the cut. Survivors come out in id order.
 */
function topPOfAll(logits: Float32Array, p: number): Candidates {
  const n = logits.length;
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (logits[i] > max) max = logits[i];
  if (!Number.isFinite(max)) return topCandidates(logits, 1);
  const PER_NAT = 16;
  const BUCKETS = 40 * PER_NAT; // beyond 40 nats below the max a weight is < 5e-18: one last bucket
  const bucketOf = new Uint16Array(n);
  const mass = new Float64Array(BUCKETS);
  let total = 0;
  for (let i = 0; i < n; i++) {
    const v = logits[i];
    const w = v === v ? Math.exp(v - max) : 0;
    const b = v === v ? Math.min(BUCKETS - 1, Math.floor((max - v) * PER_NAT)) : BUCKETS - 1;
    bucketOf[i] = b;
    mass[b] += w;
    total += w;
  }
  const need = p * total;
  let before = 0; // mass of the buckets above the crossing one
  let cross = 0;
  while (cross < BUCKETS - 1 && before + mass[cross] < need) before += mass[cross++];

  // Inside the crossing bucket: best first (ties: lower id), until the mass is reached.
  const inBucket: number[] = [];
  for (let i = 0; i < n; i++) if (bucketOf[i] === cross) inBucket.push(i);
  inBucket.sort((a, b) => logits[b] - logits[a] || a - b);
  const keep = new Uint8Array(n);
  let acc = before;
  for (const i of inBucket) {
    keep[i] = 1;
    const v = logits[i];
    acc += v === v ? Math.exp(v - max) : 0;
    if (acc >= need) break;
  }
  let count = 0;
  for (let i = 0; i < n; i++) {
    if (bucketOf[i] < cross) keep[i] = 1;
    count += keep[i];
  }
  const ids = new Int32Array(count);
  const vals = new Float64Array(count);
  for (let i = 0, j = 0; i < n; i++) {
    if (keep[i]) {
      ids[j] = i;
      vals[j++] = logits[i];
    }
  }
  return { ids, logits: vals };
}

function randomSeed(): number {
  const words = new Uint32Array(2);
  globalThis.crypto.getRandomValues(words);
  return (words[0] & 0x1fffff) * 2 ** 32 + words[1]; // 53 random bits
}
