/**
 * Speculative decoding: a cheap proposer guesses the next k tokens, the target model checks all
 * of them in one batched forward pass, and an acceptance rule keeps the output distributed
 * exactly as the target's own sampling would be (Leviathan et al. 2023; Chen et al. 2023).
 *
 * One round, with the sequence so far x₁..xₙ (the target's KV cache holds x₁..xₙ₋₁):
 *
 *   1. The proposer drafts d₁..d_k, each drawn from a distribution q_i it reports: a draft model
 *      (same vocabulary) samples its own processed distribution, or takes its argmax (q one-hot);
 *      prompt lookup copies the tokens that followed an earlier occurrence of the sequence's last
 *      n-gram (q one-hot on the copied token).
 *   2. The target runs [xₙ, d₁..d_k] at positions n-1.. in one forward with all logits, giving its
 *      processed distributions p₀..p_k (p_i is the next-token distribution after d_i).
 *   3. For i = 1..k: accept d_i with probability min(1, p_{i-1}(d_i) / q_i(d_i)). At the first
 *      rejection, draw the token from norm(max(0, p_{i-1} − q_i)) instead and end the round. If
 *      all k are accepted, draw a bonus token from p_k. Either way a round adds 1..k+1 tokens.
 *
 * Greedy (no distribution given): p and q are one-hot at their argmax, so a draft token is kept
 * exactly when it is the target's argmax and a rejection yields the target's argmax: the output
 * is token-identical to plain greedy decoding (the batched forward gives the same logits per row
 * as one-token forwards).
 *
 * Rejected positions need no cleanup: the next round writes its tokens over them (forward
 * overwrites a cache from its start position on). The draft model keeps its own cache and
 * re-runs only the tokens it has not seen (the accepted suffix, the corrected token).
 */
import { ModelError, RequestError } from '../errors.js';
import type { Network } from '../nn/decoder.js';
import { argmax } from './sampler.js';

/** A processed next-token distribution: the candidate ids and their probabilities (summing to 1). */
export interface TokenDistribution {
  ids: ArrayLike<number>;
  probs: ArrayLike<number>;
}

/**
 * The processed distribution the sampler would draw from, given a row of logits and the tokens
 * so far (for penalties). Must be a pure function of its arguments: speculative decoding calls it
 * for positions it may later discard.
 */
export type Distribution = (logits: Float32Array, history: readonly number[]) => TokenDistribution;

/** Uniform draws in [0, 1). */
export interface Uniform {
  nextFloat(): number;
}

export interface PromptLookupOptions {
  /** Longest n-gram searched for first (default 3). */
  ngramMax?: number;
  /** Shortest n-gram tried before giving up (default 1). */
  ngramMin?: number;
  /** Which earlier occurrence to copy from (default 'latest': recent text predicts best). */
  occurrence?: 'earliest' | 'latest';
}

export interface SpeculativeOptions {
  /** Tokens drafted per round at most (default 8). */
  draftMax?: number;
  /** Tokens to generate at most (default 128). */
  maxTokens?: number;
  /** The target's processed distribution; absent = greedy decoding. */
  distribution?: Distribution;
  /** The draft model's processed distribution (default: `distribution`). */
  draftDistribution?: Distribution;
  /** Uniform random source for draws and acceptance tests; required with `distribution`. */
  rng?: Uniform;
  /** End-of-generation ids (a tokenizer's endOfGeneration): generation stops after one. */
  stopTokens?: ReadonlySet<number>;
  signal?: AbortSignal;
  /** Filled in as rounds go (also when the caller stops early); default: a fresh object. */
  stats?: SpeculativeStats;
}

export interface SpeculativeStats {
  /** Verification rounds (target forward calls after the prompt). */
  rounds: number;
  /** Draft tokens proposed. */
  drafted: number;
  /** Draft tokens the target accepted. */
  accepted: number;
  /** accepted / drafted (0 when nothing was drafted). */
  acceptanceRate: number;
}

export interface SpeculativeResult {
  tokens: number[];
  stopReason: 'eos' | 'length' | 'abort';
  stats: SpeculativeStats;
}

/** Proposes draft tokens after a context; the i-th token was drawn from `dists[i]`. */
interface Proposer {
  propose(context: readonly number[], k: number): { tokens: number[]; dists: TokenDistribution[] };
}

export type DraftSource = Network | { promptLookup: PromptLookupOptions };

/**
 * Generate from `target` with speculative decoding, yielding each token as it is settled; the
 * return value has all tokens and the acceptance statistics. Uses the networks' own KV caches.
 */
export async function* speculativeStream(
  target: Network,
  draft: DraftSource,
  promptTokens: readonly number[],
  opts: SpeculativeOptions = {},
): AsyncGenerator<number, SpeculativeResult> {
  const { draftMax = 8, maxTokens = 128, distribution, rng, stopTokens = new Set<number>() } = opts;
  checkOptions(draftMax, maxTokens, distribution, rng);
  if (promptTokens.length === 0) throw new RequestError('empty_prompt', 'prompt', 'no tokens to start from (empty prompt without BOS)');
  const contextLength = target.cache.length;
  if (promptTokens.length >= contextLength) {
    throw new RequestError('prompt_too_long', 'prompt', `${promptTokens.length} tokens do not fit the context of ${contextLength}`);
  }
  const targetDist = distribution ?? greedy;
  const proposer = 'promptLookup' in draft
    ? new PromptLookup(draft.promptLookup)
    : new DraftModel(draft, target, opts.draftDistribution ?? targetDist, distribution ? rng! : undefined);

  const context = [...promptTokens];
  const stats: SpeculativeStats = Object.assign(opts.stats ?? {}, { rounds: 0, drafted: 0, accepted: 0, acceptanceRate: 0 });
  let generated = 0;
  let stopReason: SpeculativeResult['stopReason'] = 'length';
  if (context.length > 1) target.forward(context.slice(0, -1), 0);
  rounds: while (generated < maxTokens && context.length <= contextLength) {
    if (opts.signal?.aborted) {
      stopReason = 'abort';
      break;
    }
    // A round adds up to k + 1 tokens and runs positions n-1 .. n-1+k.
    const n = context.length;
    const k = Math.min(draftMax, maxTokens - generated - 1, contextLength - n, target.options.maxBatch - 1);
    const proposal = k > 0 ? proposer.propose(context, k) : { tokens: [], dists: [] };
    const rows = target.forward([context[n - 1]!, ...proposal.tokens], n - 1, true).f32();
    const settled = verify(rows, target.config.vocab_size, context, proposal, targetDist, rng);
    stats.rounds++;
    stats.drafted += proposal.tokens.length;
    stats.accepted += settled.length - 1;
    stats.acceptanceRate = stats.drafted ? stats.accepted / stats.drafted : 0;
    for (const id of settled) {
      if (stopTokens.has(id)) {
        stopReason = 'eos';
        break rounds;
      }
      context.push(id);
      generated++;
      yield id;
      if (generated >= maxTokens) break rounds;
    }
    await new Promise((resolve) => setImmediate(resolve)); // let timers and I/O run between rounds
  }
  stats.acceptanceRate = stats.drafted ? stats.accepted / stats.drafted : 0;
  return { tokens: context.slice(promptTokens.length), stopReason, stats };
}

/**
 * The acceptance rule over one round: `rows` holds the target's logits after xₙ, d₁, .., d_k.
 * Returns the accepted draft tokens followed by one more (the correction or the bonus).
 */
function verify(
  rows: Float32Array,
  vocab: number,
  context: readonly number[],
  proposal: { tokens: number[]; dists: TokenDistribution[] },
  targetDist: Distribution,
  rng: Uniform | undefined,
): number[] {
  const history = [...context];
  const settled: number[] = [];
  for (let i = 0; i <= proposal.tokens.length; i++) {
    const p = targetDist(rows.subarray(i * vocab, (i + 1) * vocab), history);
    if (i === proposal.tokens.length) {
      settled.push(draw(p, rng)); // every draft accepted: the bonus token
      break;
    }
    const token = proposal.tokens[i]!;
    const q = proposal.dists[i]!;
    const ratio = probabilityOf(p, token) / probabilityOf(q, token);
    if (ratio >= 1 || (ratio > 0 && rng !== undefined && rng.nextFloat() < ratio)) {
      settled.push(token);
      history.push(token);
      continue;
    }
    settled.push(draw(residual(p, q), rng));
    break;
  }
  return settled;
}

/** norm(max(0, p − q)): what a rejected position draws from; p itself if rounding left nothing. */
export function residual(p: TokenDistribution, q: TokenDistribution): TokenDistribution {
  const qOf = new Map<number, number>();
  for (let i = 0; i < q.ids.length; i++) qOf.set(q.ids[i]!, q.probs[i]!);
  const ids: number[] = [];
  const probs: number[] = [];
  let total = 0;
  for (let i = 0; i < p.ids.length; i++) {
    const excess = p.probs[i]! - (qOf.get(p.ids[i]!) ?? 0);
    if (excess > 0) {
      ids.push(p.ids[i]!);
      probs.push(excess);
      total += excess;
    }
  }
  if (!(total > 0)) return p;
  return { ids, probs: probs.map((x) => x / total) };
}

/** One draw from a distribution (its most likely token when there is no generator: greedy). */
export function draw(dist: TokenDistribution, rng: Uniform | undefined): number {
  if (dist.ids.length === 1 || rng === undefined) return mostLikely(dist);
  let total = 0;
  for (let i = 0; i < dist.probs.length; i++) total += dist.probs[i]!;
  const target = rng.nextFloat() * total;
  let acc = 0;
  let last = -1;
  for (let i = 0; i < dist.ids.length; i++) {
    if (!(dist.probs[i]! > 0)) continue;
    acc += dist.probs[i]!;
    last = i;
    if (target < acc) break;
  }
  return last >= 0 ? dist.ids[last]! : mostLikely(dist);
}

function mostLikely(dist: TokenDistribution): number {
  let best = 0;
  for (let i = 1; i < dist.ids.length; i++) if (dist.probs[i]! > dist.probs[best]!) best = i;
  return dist.ids[best]!;
}

function probabilityOf(dist: TokenDistribution, id: number): number {
  for (let i = 0; i < dist.ids.length; i++) if (dist.ids[i] === id) return dist.probs[i]!;
  return 0;
}

/** Greedy decoding as a distribution: all mass on the argmax (first on ties, as plain greedy). */
const greedy: Distribution = (logits) => oneHot(argmax(logits));

const oneHot = (id: number): TokenDistribution => ({ ids: [id], probs: [1] });

/** A smaller model with the same vocabulary drafts by sampling (or taking the argmax of) its distribution. */
class DraftModel implements Proposer {
  /** Tokens whose keys and values the draft's cache holds, in position order. */
  private seen: number[] = [];

  constructor(
    private readonly net: Network,
    target: Network,
    private readonly distribution: Distribution,
    private readonly rng: Uniform | undefined,
  ) {
    if (net === target) throw new RequestError('draft_is_target', 'draft', 'the draft must be a separate model instance (it needs its own KV cache and scratch)');
    if (net.config.vocab_size !== target.config.vocab_size) {
      throw new ModelError('vocab_mismatch', `draft model vocabulary (${net.config.vocab_size} tokens) differs from the target's (${target.config.vocab_size})`);
    }
    if (net.cache.length < target.cache.length) {
      throw new ModelError('context_mismatch', `draft model context (${net.cache.length}) is shorter than the target's (${target.cache.length})`);
    }
  }

  propose(context: readonly number[], k: number): { tokens: number[]; dists: TokenDistribution[] } {
    // Re-run what the cache lacks, and always the last token: its logits start the draft.
    const start = Math.min(commonPrefix(this.seen, context), context.length - 1);
    let logits = this.net.forward(context.slice(start), start).f32();
    this.seen = [...context];
    const tokens: number[] = [];
    const dists: TokenDistribution[] = [];
    const history = [...context];
    for (;;) {
      const dist = this.distribution(logits, history);
      const token = draw(dist, this.rng);
      tokens.push(token);
      dists.push(this.rng ? dist : oneHot(token));
      history.push(token);
      if (tokens.length === k) break;
      logits = this.net.forward([token], this.seen.length).f32();
      this.seen.push(token);
    }
    return { tokens, dists };
  }
}

function commonPrefix(a: readonly number[], b: readonly number[]): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

/**
 * Prompt lookup: find the sequence's last n-gram (n from ngramMax down to ngramMin) earlier in
 * the sequence and propose the tokens that followed it. Costs no model at all; pays off on text
 * that repeats its context (summaries, code edits, quoted passages).
 */
export class PromptLookup implements Proposer {
  readonly ngramMax: number;
  readonly ngramMin: number;
  readonly occurrence: 'earliest' | 'latest';

  constructor(opts: PromptLookupOptions = {}) {
    const { ngramMax = 3, ngramMin = 1, occurrence = 'latest' } = opts;
    if (!Number.isSafeInteger(ngramMin) || ngramMin < 1) {
      throw new RequestError('invalid_ngram_min', 'ngramMin', `must be an integer ≥ 1, got ${String(ngramMin)}`);
    }
    if (!Number.isSafeInteger(ngramMax) || ngramMax < ngramMin) {
      throw new RequestError('invalid_ngram_max', 'ngramMax', `must be an integer ≥ ngramMin (${ngramMin}), got ${String(ngramMax)}`);
    }
    if (occurrence !== 'earliest' && occurrence !== 'latest') {
      throw new RequestError('invalid_occurrence', 'occurrence', `must be 'earliest' or 'latest', got ${String(occurrence)}`);
    }
    this.ngramMax = ngramMax;
    this.ngramMin = ngramMin;
    this.occurrence = occurrence;
  }

  propose(context: readonly number[], k: number): { tokens: number[]; dists: TokenDistribution[] } {
    const tokens = this.lookup(context, k);
    return { tokens, dists: tokens.map(oneHot) };
  }

  /**
   * Up to k tokens that followed an earlier occurrence of the context's final n-gram; [] if none.
   * The copy may run on into its own output, as an LZ77 match does: a match d tokens back
   * predicts that the text repeats with period d (a loop "a b a b" continues "a b a b ...").
   */
  lookup(context: readonly number[], k: number): number[] {
    const len = context.length;
    for (let n = Math.min(this.ngramMax, len - 1); n >= this.ngramMin; n--) {
      const start = this.find(context, n);
      if (start < 0) continue;
      const draft: number[] = [];
      for (let i = start + n; draft.length < k; i++) draft.push(i < len ? context[i]! : draft[i - len]!);
      return draft;
    }
    return [];
  }

  /** Start of an occurrence of the last n tokens that ends before the context does; -1 if none. */
  private find(context: readonly number[], n: number): number {
    const len = context.length;
    const matches = (s: number): boolean => {
      for (let j = 0; j < n; j++) if (context[s + j] !== context[len - n + j]) return false;
      return true;
    };
    if (this.occurrence === 'earliest') {
      for (let s = 0; s + n < len; s++) if (matches(s)) return s;
    } else {
      for (let s = len - n - 1; s >= 0; s--) if (matches(s)) return s;
    }
    return -1;
  }
}

function checkOptions(draftMax: number, maxTokens: number, distribution: Distribution | undefined, rng: Uniform | undefined): void {
  if (!Number.isSafeInteger(draftMax) || draftMax < 0) {
    throw new RequestError('invalid_draft_max', 'draftMax', `must be a non-negative integer, got ${String(draftMax)}`);
  }
  if (!Number.isSafeInteger(maxTokens) || maxTokens < 0) {
    throw new RequestError('invalid_max_tokens', 'maxTokens', `must be a non-negative integer, got ${String(maxTokens)}`);
  }
  if (distribution !== undefined && rng === undefined) {
    throw new RequestError('missing_rng', 'rng', 'sampling (a distribution) needs a random source');
  }
}
