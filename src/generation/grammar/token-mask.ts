/**
 * Grammar-constrained decoding over a whole vocabulary: which tokens may come next.
 *
 * Checking 32k–50k tokens one by one against the grammar at every step is what makes guided
 * decoding slow. Instead:
 *
 *   1. A trie over every token's bytes (`tokenizer.piece(id)`), built once per tokenizer. Tokens
 *      sharing a prefix share the path, so "▁the", "▁then", "▁there" cost one walk of "▁the".
 *   2. One depth-first walk of the trie per distinct grammar state, carrying the automaton state
 *      and the UTF-8 decoder state down each edge. A subtree is cut off as soon as its prefix
 *      leaves the grammar (most of the vocabulary, in structured positions), or its pending
 *      bytes cannot become any character the grammar accepts. Every token at a node reached is
 *      allowed. Transitions are memoized in the automaton, so the walk is mostly table lookups.
 *   3. The resulting mask is cached by (automaton state, pending UTF-8 bytes): states are
 *      interned integers, so a state that comes back (the inside of a JSON string, the spot
 *      after a comma) costs a map lookup. Masks are stored as the shorter of the allowed and
 *      the disallowed id lists.
 *
 * Tokens with no bytes (control tokens, BOS, unknown) can never be chosen, since they would not
 * move the grammar; end-of-generation tokens are allowed exactly when the text is a complete
 * match, as llama.cpp does. Clones share the trie, automaton and mask cache.
 */
import { RequestError } from '../../errors.js';
import type { Tokenizer } from '../../tokenizers/index.js';
import type { TokenConstraint } from '../constraint.js';
import { parseGbnf, type GbnfGrammar, type ParseGbnfOptions } from './gbnf.js';
import { DEAD_STATE, GrammarAutomaton, GrammarMatcher, partialRange, UTF8_INVALID, utf8Step } from './matcher.js';

/** Every token's bytes as a trie, in flat arrays (children of a node are contiguous). */
export class VocabTrie {
  /** Children of node n: edges childStart[n] .. childStart[n+1]−1, with their byte and node. */
  readonly childStart: Int32Array;
  readonly childByte: Uint8Array;
  readonly childNode: Int32Array;
  /** Tokens ending at node n: tokenIds[tokenStart[n] .. tokenStart[n+1]−1]. */
  readonly tokenStart: Int32Array;
  readonly tokenIds: Int32Array;
  readonly vocabSize: number;

  constructor(pieces: readonly Uint8Array[]) {
    this.vocabSize = pieces.length;
    // Build with per-node maps, then lay nodes out breadth-first in flat arrays.
    const children: Map<number, number>[] = [new Map()];
    const tokensAt: number[][] = [[]];
    pieces.forEach((bytes, id) => {
      if (bytes.length === 0) return; // empty pieces are never allowed
      let node = 0;
      for (const b of bytes) {
        let child = children[node].get(b);
        if (child === undefined) {
          child = children.push(new Map()) - 1;
          tokensAt.push([]);
          children[node].set(b, child);
        }
        node = child;
      }
      tokensAt[node].push(id);
    });
    const n = children.length;
    this.childStart = new Int32Array(n + 1);
    this.childByte = new Uint8Array(n - 1);
    this.childNode = new Int32Array(n - 1);
    this.tokenStart = new Int32Array(n + 1);
    const ids: number[] = [];
    let edge = 0;
    for (let node = 0; node < n; node++) {
      this.childStart[node] = edge;
      for (const [b, child] of [...children[node]].sort((x, y) => x[0] - y[0])) {
        this.childByte[edge] = b;
        this.childNode[edge++] = child;
      }
      this.tokenStart[node] = ids.length;
      ids.push(...tokensAt[node]);
    }
    this.childStart[n] = edge;
    this.tokenStart[n] = ids.length;
    this.tokenIds = Int32Array.from(ids);
  }

  get nodeCount(): number {
    return this.childStart.length - 1;
  }

  /** The trie of a tokenizer's pieces, built once per tokenizer object. */
  static of(tokenizer: Tokenizer): VocabTrie {
    let trie = trieCache.get(tokenizer);
    if (!trie) {
      const pieces: Uint8Array[] = [];
      for (let id = 0; id < tokenizer.vocabSize; id++) pieces.push(tokenizer.piece(id));
      trie = new VocabTrie(pieces);
      trieCache.set(tokenizer, trie);
    }
    return trie;
  }

  /**
   * The ids of every token that keeps the grammar alive from (state, pending): the walk of
   * step 2 in the file comment.
   */
  allowedTokens(automaton: GrammarAutomaton, state: number, pending: number): number[] {
    const out: number[] = [];
    this.visit(automaton, 0, state, pending, out); // the root holds no tokens (empty pieces are left out)
    return out;
  }

  private visit(automaton: GrammarAutomaton, node: number, state: number, pending: number, out: number[]): void {
    for (let k = this.tokenStart[node], end = this.tokenStart[node + 1]; k < end; k++) out.push(this.tokenIds[k]);
    for (let e = this.childStart[node], end = this.childStart[node + 1]; e < end; e++) {
      const byte = this.childByte[e];
      if (pending === 0 && byte < 0x80) {
        // ASCII on a character boundary, the common case: straight to the automaton.
        const next = automaton.advance(state, byte);
        if (next !== DEAD_STATE) this.visit(automaton, this.childNode[e], next, 0, out);
        continue;
      }
      const r = utf8Step(pending, byte);
      if (r === UTF8_INVALID) continue;
      if (r < 0) {
        const next = automaton.advance(state, -r - 1);
        if (next !== DEAD_STATE) this.visit(automaton, this.childNode[e], next, 0, out);
      } else {
        const [lo, hi] = partialRange(r);
        if (automaton.couldMatchRange(state, lo, hi)) this.visit(automaton, this.childNode[e], state, r, out);
      }
    }
  }
}

const trieCache = new WeakMap<Tokenizer, VocabTrie>();

/** A cached mask: the listed ids (ascending) are the allowed ones, or (inverted) the disallowed ones. */
interface CachedMask {
  ids: Int32Array;
  inverted: boolean;
}

/** Counters for benchmarks and tests. */
export interface GrammarMaskStats {
  /** Masks computed by walking the trie, and how long those walks took in total. */
  walks: number;
  walkMs: number;
  /** Masks served from the cache. */
  cacheHits: number;
}

export interface GrammarConstraintOptions extends ParseGbnfOptions {
  /** Masks kept in the cache before the oldest are dropped (default 512). */
  maxCachedMasks?: number;
}

/** Whether the ascending list `ids` holds `id` (binary search). */
function sortedHas(ids: Int32Array, id: number): boolean {
  let lo = 0;
  let hi = ids.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (ids[mid] === id) return true;
    if (ids[mid] < id) lo = mid + 1;
    else hi = mid - 1;
  }
  return false;
}

/** The mask cache's key for a matcher position (pending < 2^20, see utf8Step). */
const maskKey = (state: number, pending: number): number => state * 2 ** 21 + pending;

/** What clones share: the automaton, the trie and the mask cache. */
class MaskContext {
  readonly masks = new Map<number, CachedMask>();
  readonly stats: GrammarMaskStats = { walks: 0, walkMs: 0, cacheHits: 0 };

  constructor(
    readonly automaton: GrammarAutomaton,
    readonly trie: VocabTrie,
    readonly tokenizer: Tokenizer,
    readonly maxCachedMasks: number,
  ) {}

  cachedMask(state: number, pending: number): CachedMask | undefined {
    return this.masks.get(maskKey(state, pending));
  }

  mask(state: number, pending: number): CachedMask {
    const key = maskKey(state, pending);
    const hit = this.masks.get(key);
    if (hit) {
      this.stats.cacheHits++;
      return hit;
    }
    const start = performance.now();
    const allowed = this.trie.allowedTokens(this.automaton, state, pending);
    const mask = this.compact(allowed);
    this.stats.walks++;
    this.stats.walkMs += performance.now() - start;
    if (this.masks.size >= this.maxCachedMasks) this.masks.delete(this.masks.keys().next().value!);
    this.masks.set(key, mask);
    return mask;
  }

  /** The shorter of the allowed list and its complement. */
  private compact(allowed: number[]): CachedMask {
    const n = this.trie.vocabSize;
    if (allowed.length <= n / 2) return { ids: Int32Array.from(allowed).sort(), inverted: false }; // ascending, for allows()
    const isAllowed = new Uint8Array(n);
    for (const id of allowed) isAllowed[id] = 1;
    const disallowed = new Int32Array(n - allowed.length);
    let k = 0;
    for (let id = 0; id < n; id++) if (!isAllowed[id]) disallowed[k++] = id;
    return { ids: disallowed, inverted: true };
  }
}

/** A TokenConstraint that keeps generated text inside a GBNF grammar. */
export class GrammarConstraint implements TokenConstraint {
  private matcher: GrammarMatcher;
  /** An end-of-generation token has been accepted. */
  private ended = false;
  /** The end-of-generation ids the last mask call was given (accept knows them from there). */
  private lastEog: ReadonlySet<number> | undefined;

  constructor(
    private readonly context: MaskContext,
    matcher?: GrammarMatcher,
    ended = false,
  ) {
    this.matcher = matcher ?? new GrammarMatcher(context.automaton);
    this.ended = ended;
  }

  get automaton(): GrammarAutomaton {
    return this.context.automaton;
  }

  get stats(): Readonly<GrammarMaskStats> {
    return this.context.stats;
  }

  get complete(): boolean {
    return this.ended || this.matcher.complete;
  }

  get finished(): boolean {
    return this.ended || this.matcher.finished;
  }

  mask(logits: Float32Array, eog: ReadonlySet<number>): void {
    this.lastEog = eog;
    const eogLogits = [...eog].map((id) => [id, logits[id]] as const);
    if (this.finished) {
      logits.fill(-Infinity);
    } else {
      this.applyMask(logits, this.context.mask(this.matcher.state, this.matcher.pending));
    }
    const complete = this.complete;
    for (const [id, logit] of eogLogits) if (id < logits.length) logits[id] = complete ? logit : -Infinity;
  }

  /** What mask() would leave of token `id`: from the cached mask when there is one, else through a copy of the matcher. */
  allows(id: number, eog: ReadonlySet<number>): boolean {
    this.lastEog = eog;
    if (eog.has(id)) return this.complete;
    const { tokenizer } = this.context;
    if (this.finished || !(id >= 0 && id < tokenizer.vocabSize)) return false;
    const cached = this.context.cachedMask(this.matcher.state, this.matcher.pending);
    if (cached) return sortedHas(cached.ids, id) !== cached.inverted;
    const bytes = tokenizer.piece(id);
    return bytes.length > 0 && this.matcher.clone().acceptBytes(bytes);
  }

  /** The cached mask's allowed list when it is a short one (not inverted), with the end-of-generation ids mask() would leave. */
  allowedIds(eog: ReadonlySet<number>): Int32Array | undefined {
    this.lastEog = eog;
    const complete = this.complete;
    if (this.finished) return Int32Array.from([...eog].filter((id) => complete && id < this.context.tokenizer.vocabSize)).sort();
    const cached = this.context.cachedMask(this.matcher.state, this.matcher.pending);
    if (!cached || cached.inverted) return undefined;
    if (eog.size === 0) return cached.ids;
    const ids = [...cached.ids].filter((id) => !eog.has(id));
    if (complete) for (const id of eog) if (id < this.context.tokenizer.vocabSize) ids.push(id);
    return Int32Array.from(ids).sort();
  }

  private applyMask(logits: Float32Array, mask: CachedMask): void {
    if (mask.inverted) {
      for (const id of mask.ids) if (id < logits.length) logits[id] = -Infinity;
      if (logits.length > this.context.trie.vocabSize) logits.fill(-Infinity, this.context.trie.vocabSize);
      return;
    }
    const kept = new Float32Array(mask.ids.length);
    mask.ids.forEach((id, i) => (kept[i] = logits[id]));
    logits.fill(-Infinity);
    mask.ids.forEach((id, i) => (logits[id] = kept[i]));
  }

  accept(id: number): void {
    const tokenizer = this.context.tokenizer;
    const known = id >= 0 && id < tokenizer.vocabSize;
    if (known && (this.lastEog ?? tokenizer.endOfGeneration).has(id) && this.complete) {
      this.ended = true;
      return;
    }
    const next = this.matcher.clone();
    const bytes = known ? tokenizer.piece(id) : undefined;
    if (this.ended || bytes === undefined || bytes.length === 0 || !next.acceptBytes(bytes)) {
      const text = known ? JSON.stringify(tokenizer.tokenText(id)) : 'not in the vocabulary';
      throw new RequestError('grammar_rejected_token', 'token', `token ${id} (${text}) cannot continue the grammar here`);
    }
    this.matcher = next;
  }

  clone(): GrammarConstraint {
    return new GrammarConstraint(this.context, this.matcher.clone(), this.ended);
  }
}

/**
 * A constraint that keeps generation inside a GBNF grammar (text, parsed rules, or an automaton
 * to share between constraints) over `tokenizer`'s vocabulary.
 */
export function grammarConstraint(
  grammar: string | GbnfGrammar | GrammarAutomaton,
  tokenizer: Tokenizer,
  opts: GrammarConstraintOptions = {},
): GrammarConstraint {
  const maxCachedMasks = opts.maxCachedMasks ?? 512;
  if (!Number.isSafeInteger(maxCachedMasks) || maxCachedMasks < 1) {
    throw new RequestError('invalid_cache_size', 'maxCachedMasks', `must be an integer ≥ 1, got ${String(opts.maxCachedMasks)}`);
  }
  if (typeof grammar !== 'string') {
    const automaton = grammar instanceof GrammarAutomaton ? grammar : new GrammarAutomaton(grammar);
    return new GrammarConstraint(new MaskContext(automaton, VocabTrie.of(tokenizer), tokenizer, maxCachedMasks));
  }
  // Grammar text: reuse the compiled grammar and its masks from earlier requests with the same
  // text, so a schema used again (a server's typical case) pays for each grammar state only once.
  let compiled = compiledGrammars.get(tokenizer);
  if (!compiled) compiledGrammars.set(tokenizer, (compiled = new Map()));
  const key = `${opts.root ?? 'root'}\u0000${maxCachedMasks}\u0000${grammar}`;
  let context = compiled.get(key);
  if (context) {
    compiled.delete(key); // most recently used last
  } else {
    context = new MaskContext(new GrammarAutomaton(parseGbnf(grammar, opts)), VocabTrie.of(tokenizer), tokenizer, maxCachedMasks);
    if (compiled.size >= COMPILED_GRAMMARS_KEPT) compiled.delete(compiled.keys().next().value!);
  }
  compiled.set(key, context);
  return new GrammarConstraint(context);
}

/** Compiled grammars (automaton + mask cache) per tokenizer, by grammar text; the least recently used go first. */
const compiledGrammars = new WeakMap<Tokenizer, Map<string, MaskContext>>();
const COMPILED_GRAMMARS_KEPT = 16;
