/**
 * The logits processors the sampler chains together, one small function per step, in llama.cpp's
 * default order (see sampler.ts for the chain). Two kinds:
 *
 * - Row processors change a full row of logits in place (the sampler hands them a copy): logit
 *   bias and the repetition / presence / frequency penalties.
 * - Candidate processors take a set of candidates (token ids with their logits) and return the
 *   survivors: top-k (which also turns the row into candidates), typical-p, top-p, min-p and
 *   temperature. `softmax` then turns candidates into the distribution the draw picks from.
 *
 * Candidates carry a `sorted` flag (most likely first, ties to the lower id). top-k and top-p
 * leave them sorted; typical-p leaves them in its own order; min-p and temperature keep the order
 * they were given. NaN logits count as -Infinity everywhere.
 */
import { RequestError } from '../errors.js';

/** A subset of the vocabulary: token ids and their logits. */
export interface Candidates {
  ids: Int32Array;
  logits: Float64Array;
  /** Most likely first, ties to the lower id. */
  sorted: boolean;
}

/** A distribution over tokens: ids with probabilities summing to 1, most likely first (ties: lower id). */
export interface Distribution {
  ids: Int32Array;
  probs: Float64Array;
}

// --- row processors ---------------------------------------------------------------------------

/** Add `bias[id]` to each listed token's logit; -Infinity bans a token. */
export function applyLogitBias(logits: Float32Array, bias: ReadonlyMap<number, number>): void {
  for (const [id, b] of bias) {
    if (id >= logits.length) {
      throw new RequestError('invalid_logit_bias', 'logitBias', `token id ${id} is outside the vocabulary of ${logits.length}`);
    }
    logits[id] += b;
  }
}

export interface Penalties {
  /** Divides positive and multiplies negative logits of tokens seen in the window (1 = off). */
  repeat: number;
  /** Subtracted once from the logit of every token seen in the window (0 = off). */
  presence: number;
  /** Subtracted per occurrence in the window (0 = off). */
  frequency: number;
}

/**
 * llama.cpp's penalties over `window` (the last tokens of prompt + output): for each token seen
 * c > 0 times, logit / repeat when positive (logit * repeat otherwise; the CTRL rule with
 * llama.cpp's fix for negative logits), then logit - c * frequency - presence.
 */
export function applyPenalties(logits: Float32Array, window: ArrayLike<number>, p: Penalties): void {
  if (window.length === 0 || (p.repeat === 1 && p.presence === 0 && p.frequency === 0)) return;
  const counts = new Map<number, number>();
  for (let i = 0; i < window.length; i++) counts.set(window[i], (counts.get(window[i]) ?? 0) + 1);
  for (const [id, count] of counts) {
    if (id < 0 || id >= logits.length) continue;
    let v = logits[id];
    v = v <= 0 ? v * p.repeat : v / p.repeat;
    logits[id] = v - count * p.frequency - p.presence;
  }
}

// --- candidate processors ---------------------------------------------------------------------

/** Every token of the row as a candidate, in id order. */
export function allCandidates(logits: Float32Array): Candidates {
  const ids = new Int32Array(logits.length);
  const vals = new Float64Array(logits.length);
  for (let i = 0; i < logits.length; i++) {
    ids[i] = i;
    vals[i] = logits[i] === logits[i] ? logits[i] : -Infinity;
  }
  return { ids, logits: vals, sorted: logits.length <= 1 };
}

/**
 * The k most likely tokens of the row, sorted (ties: lower id first); k = 0 or k ≥ the row means
 * all of them, unsorted. A min-heap of size k keeps the best so far: O(n log k), no full sort.
 */
export function topK(logits: Float32Array, k: number): Candidates {
  if (k <= 0 || k >= logits.length) return allCandidates(logits);
  const ids = new Int32Array(k);
  const vals = new Float64Array(k);
  let size = 0;
  // The heap's root is the worst kept: the lowest value, or on equal values the higher id.
  const worse = (a: number, b: number): boolean => vals[a] < vals[b] || (vals[a] === vals[b] && ids[a] > ids[b]);
  const siftDown = (): void => {
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= size) return;
      const c = l + 1 < size && worse(l + 1, l) ? l + 1 : l;
      if (!worse(c, i)) return;
      swap(ids, vals, i, c);
      i = c;
    }
  };
  for (let id = 0; id < logits.length; id++) {
    const v = logits[id] === logits[id] ? logits[id] : -Infinity;
    if (size < k) {
      ids[size] = id;
      vals[size] = v;
      for (let j = size++; j > 0 && worse(j, (j - 1) >> 1); j = (j - 1) >> 1) swap(ids, vals, j, (j - 1) >> 1);
    } else if (v > vals[0]) {
      // Strictly better than the worst kept; on a tie the kept (lower) id stays.
      ids[0] = id;
      vals[0] = v;
      siftDown();
    }
  }
  return sortCandidates({ ids, logits: vals, sorted: false });
}

/**
 * Locally typical sampling (Meister et al.): keep the tokens whose surprise -log p is closest to
 * the entropy H of the distribution, in that order, until their mass exceeds p. 1 = off.
 */
export function typicalP(c: Candidates, p: number): Candidates {
  if (p >= 1 || c.ids.length <= 1) return c;
  const probs = softmaxInOrder(c.logits);
  let entropy = 0;
  for (const q of probs) if (q > 0) entropy -= q * Math.log(q);
  const distance = probs.map((q) => Math.abs(-Math.log(q) - entropy));
  const order = Array.from(c.ids.keys()).sort((a, b) => distance[a] - distance[b] || c.ids[a] - c.ids[b]);
  let mass = 0;
  let keep = order.length;
  for (let i = 0; i < order.length; i++) {
    mass += probs[order[i]];
    if (mass > p) {
      keep = i + 1;
      break;
    }
  }
  const kept = order.slice(0, keep);
  return { ids: Int32Array.from(kept, (i) => c.ids[i]), logits: Float64Array.from(kept, (i) => c.logits[i]), sorted: false };
}

/**
 * Nucleus sampling: the smallest head of the candidates, most likely first, whose probability
 * (over the candidates) reaches p. 1 = off. Large unsorted sets are cut without a full sort.
 */
export function topP(c: Candidates, p: number): Candidates {
  if (p >= 1 || c.ids.length <= 1) return c;
  if (!c.sorted && c.ids.length > 256) return topPUnsorted(c, p);
  const s = sortCandidates(c);
  const max = s.logits[0];
  if (!Number.isFinite(max)) return s;
  let total = 0;
  for (const v of s.logits) total += Math.exp(v - max);
  let mass = 0;
  for (let i = 0; i < s.ids.length; i++) {
    mass += Math.exp(s.logits[i] - max);
    if (mass >= p * total) return { ids: s.ids.subarray(0, i + 1), logits: s.logits.subarray(0, i + 1), sorted: true };
  }
  return s; // rounding left the sum just under p: keep them all
}

/** Keep the tokens whose probability is at least p times the most likely one's. 0 = off. */
export function minP(c: Candidates, p: number): Candidates {
  if (p <= 0 || c.ids.length <= 1) return c;
  let max = -Infinity;
  for (const v of c.logits) if (v > max) max = v;
  if (!Number.isFinite(max)) return c;
  const threshold = max + Math.log(p);
  const keep: number[] = [];
  for (let i = 0; i < c.ids.length; i++) if (c.logits[i] >= threshold) keep.push(i);
  return { ids: Int32Array.from(keep, (i) => c.ids[i]), logits: Float64Array.from(keep, (i) => c.logits[i]), sorted: c.sorted };
}

/** Divide the logits by t; t = 0 keeps only the most likely candidate (greedy; ties: lower id). */
export function temperature(c: Candidates, t: number): Candidates {
  if (t === 0) {
    let best = 0;
    for (let i = 1; i < c.ids.length; i++) {
      if (c.logits[i] > c.logits[best] || (c.logits[i] === c.logits[best] && c.ids[i] < c.ids[best])) best = i;
    }
    return { ids: c.ids.slice(best, best + 1), logits: c.logits.slice(best, best + 1), sorted: true };
  }
  if (t === 1) return c;
  return { ids: c.ids, logits: c.logits.map((v) => v / t), sorted: c.sorted };
}

/**
 * The candidates' softmax, most likely first (ties: lower id), without the tokens whose
 * probability is 0. With nothing finite to weigh (every logit -Infinity) the first candidate gets
 * it all; +Infinity logits share the mass equally.
 */
export function softmax(c: Candidates): Distribution {
  const s = sortCandidates(c);
  const n = s.ids.length;
  if (n === 0) throw new RequestError('no_candidates', 'logits', 'no token is left to sample from');
  const max = s.logits[0];
  const weights = new Float64Array(n);
  if (max === -Infinity) weights[0] = 1;
  else if (max === Infinity) for (let i = 0; i < n; i++) weights[i] = s.logits[i] === Infinity ? 1 : 0;
  else for (let i = 0; i < n; i++) weights[i] = Math.exp(s.logits[i] - max);
  let total = 0;
  let kept = 0;
  for (let i = 0; i < n; i++) {
    total += weights[i];
    if (weights[i] > 0) kept = i + 1; // sorted, so the zeros are at the end
  }
  const probs = new Float64Array(kept);
  for (let i = 0; i < kept; i++) probs[i] = weights[i] / total;
  return { ids: s.ids.slice(0, kept), probs };
}

/**
 * Mirostat 2.0's truncation (Basu et al.): drop the tokens whose surprise -log2 p exceeds the
 * running target mu (keeping at least the most likely), renormalized.
 */
export function mirostatTruncate(d: Distribution, mu: number): Distribution {
  let keep = 0;
  while (keep < d.ids.length && -Math.log2(d.probs[keep]) <= mu) keep++;
  keep = Math.max(1, keep);
  let total = 0;
  for (let i = 0; i < keep; i++) total += d.probs[i];
  return { ids: d.ids.slice(0, keep), probs: d.probs.slice(0, keep).map((q) => q / total) };
}

/** The token a uniform number u in [0, 1) lands on, walking the distribution in its order. */
export function drawFrom(d: Distribution, u: number): number {
  let total = 0;
  for (const q of d.probs) total += q;
  const target = u * total;
  let mass = 0;
  for (let i = 0; i < d.ids.length; i++) {
    mass += d.probs[i];
    if (target < mass) return d.ids[i];
  }
  return d.ids[d.ids.length - 1]; // rounding: u * total fell on the very end
}

// ---------------------------------------------------------------------------------------------

function swap(ids: Int32Array, vals: Float64Array, a: number, b: number): void {
  const id = ids[a];
  ids[a] = ids[b];
  ids[b] = id;
  const v = vals[a];
  vals[a] = vals[b];
  vals[b] = v;
}

/** Most likely first, ties to the lower id. */
export function sortCandidates(c: Candidates): Candidates {
  if (c.sorted) return c;
  const order = Array.from(c.ids.keys()).sort((a, b) => c.logits[b] - c.logits[a] || c.ids[a] - c.ids[b]);
  return { ids: Int32Array.from(order, (i) => c.ids[i]), logits: Float64Array.from(order, (i) => c.logits[i]), sorted: true };
}

/** Softmax in the candidates' own order (float64). */
function softmaxInOrder(logits: Float64Array): Float64Array {
  let max = -Infinity;
  for (const v of logits) if (v > max) max = v;
  const out = logits.map((v) => Math.exp(v - max));
  let total = 0;
  for (const q of out) total += q;
  return out.map((q) => q / total);
}

/**
 * top-p over a large unsorted set (top-k off) without sorting it: bucket the candidates by how
 * far their logit lies below the maximum (1/16 nat per bucket), find the bucket where the running
 * mass reaches p, and sort only that bucket to place the cut. The same set as sorting everything.
 */
function topPUnsorted(c: Candidates, p: number): Candidates {
  const n = c.ids.length;
  let max = -Infinity;
  for (const v of c.logits) if (v > max) max = v;
  if (!Number.isFinite(max)) return c;
  const PER_NAT = 16;
  const BUCKETS = 40 * PER_NAT; // beyond 40 nats below the max a weight is < 5e-18: one last bucket
  const bucketOf = new Uint16Array(n);
  const mass = new Float64Array(BUCKETS);
  let total = 0;
  for (let i = 0; i < n; i++) {
    const w = Math.exp(c.logits[i] - max);
    const b = Math.min(BUCKETS - 1, Math.floor((max - c.logits[i]) * PER_NAT));
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
  inBucket.sort((a, b) => c.logits[b] - c.logits[a] || c.ids[a] - c.ids[b]);
  const keep = new Uint8Array(n);
  let acc = before;
  for (const i of inBucket) {
    keep[i] = 1;
    acc += Math.exp(c.logits[i] - max);
    if (acc >= need) break;
  }
  const kept: number[] = [];
  for (let i = 0; i < n; i++) if (keep[i] || bucketOf[i] < cross) kept.push(i);
  return { ids: Int32Array.from(kept, (i) => c.ids[i]), logits: Float64Array.from(kept, (i) => c.logits[i]), sorted: false };
}
