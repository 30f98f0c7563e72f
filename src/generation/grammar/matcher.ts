/**
 * The incremental recognizer for parsed GBNF grammars: llama.cpp's set of pushdown stacks,
 * advanced one Unicode code point at a time, with every structure interned so that states can be
 * compared, cached and used as keys.
 *
 * The rules are flattened into one array of elements (a character set, a rule reference, or END
 * closing an alternative). A stack is a list of positions in that array: the top is the next
 * element to match, the ones below are where to continue when the rule above finishes. A state
 * is the set of stacks still alive — several, because the grammar may be ambiguous so far.
 *
 *   expand     replace a stack whose top is a rule reference by one stack per alternative of
 *              the rule (continuation pushed below), until every top is a character set; an
 *              empty stack means the text so far is a complete match.
 *   advance    keep the stacks whose top set holds the code point, pop that element (moving to
 *              the next element of its alternative, or returning to the continuation when the
 *              alternative ends), and expand again.
 *
 * Interning makes this cheap. Stacks are hash-consed linked lists (node = position + parent
 * node), so a stack is one integer and stacks share their bottoms. A state is the sorted list of
 * its stack ids, interned to an integer. `advance(state, cp)` is memoized per state (an array for
 * ASCII, a map for the rest), so walking a vocabulary trie, which asks the same few transitions
 * again and again, is mostly table lookups.
 *
 * Continuations are pushed only when something follows the reference, so right recursion
 * (`list ::= item list?`) does not grow the stack; the parser rejects left recursion, which would.
 *
 * Bytes come in through `utf8Step`, a decoder whose whole state is one integer, so a token may
 * end in the middle of a character: `partialRange` says which code points the pending bytes
 * could still become, and `couldMatchRange` whether the grammar accepts any of them.
 */
import { RequestError } from '../../errors.js';
import { charSetHas, charSetMeets, parseGbnf, type GbnfCharSet, type GbnfGrammar, type ParseGbnfOptions } from './gbnf.js';

const END = 0;
const CHARS = 1;
const RULE = 2;

/** The state id of "no stack left": the text cannot be continued into a match. */
export const DEAD_STATE = 0;
/** The stack id of the empty stack: the text so far is a complete match. */
const EMPTY_STACK = 0;
/**
 * More live stacks than this means a grammar ambiguous enough to make every step slow (a
 * huge alternation, as a long enum makes, stays well below): refuse it rather than crawl.
 */
export const MAX_STACKS = 65_536;

export class GrammarAutomaton {
  readonly grammar: GbnfGrammar;
  /** Per flattened element: END, CHARS or RULE, and the set index or rule id. */
  private readonly kind: Uint8Array;
  private readonly value: Int32Array;
  private readonly sets: GbnfCharSet[] = [];
  /** Per rule: the element index where each alternative starts. */
  private readonly altStarts: number[][] = [];

  /** Stack nodes: position and parent node; node 0 is the empty stack. */
  private readonly nodePos: number[] = [-1];
  private readonly nodeParent: number[] = [-1];
  private readonly nodeIds = new Map<number, number>();
  /** Terminal-topped stacks reachable from a node by expansion, memoized. */
  private readonly expanded = new Map<number, Int32Array>();

  /** States: sorted stack ids; state 0 is dead (no stacks). */
  private readonly stateStacks: Int32Array[] = [new Int32Array(0)];
  private readonly stateIds = new Map<string, number>([['', DEAD_STATE]]);
  private readonly asciiNext: (Int32Array | undefined)[] = [undefined];
  private readonly otherNext: (Map<number, number> | undefined)[] = [undefined];

  /** The state before any text. */
  readonly initial: number;

  constructor(grammar: GbnfGrammar) {
    this.grammar = grammar;
    const kinds: number[] = [];
    const values: number[] = [];
    const setIndex = new Map<GbnfCharSet, number>();
    for (const rule of grammar.rules) {
      const starts: number[] = [];
      for (const alt of rule.alternatives) {
        starts.push(kinds.length);
        for (const e of alt) {
          if (e.kind === 'rule') {
            kinds.push(RULE);
            values.push(e.rule);
          } else {
            if (!setIndex.has(e)) setIndex.set(e, this.sets.push(e) - 1);
            kinds.push(CHARS);
            values.push(setIndex.get(e)!);
          }
        }
        kinds.push(END);
        values.push(0);
      }
      this.altStarts.push(starts);
    }
    this.kind = Uint8Array.from(kinds);
    this.value = Int32Array.from(values);
    const stacks = new Set<number>();
    for (const start of this.altStarts[grammar.root]) {
      const node = this.kind[start] === END ? EMPTY_STACK : this.node(start, EMPTY_STACK);
      for (const s of this.expand(node)) stacks.add(s);
    }
    this.initial = this.intern([...stacks]);
  }

  /** Parse GBNF text and build its automaton. */
  static fromGbnf(text: string, opts?: ParseGbnfOptions): GrammarAutomaton {
    return new GrammarAutomaton(parseGbnf(text, opts));
  }

  /** How many distinct states have been reached so far (for statistics). */
  get stateCount(): number {
    return this.stateStacks.length;
  }

  // ── stacks ──────────────────────────────────────────────────────────────────────────────

  private node(pos: number, parent: number): number {
    const key = parent * this.kind.length + pos;
    let id = this.nodeIds.get(key);
    if (id === undefined) {
      id = this.nodePos.length;
      this.nodePos.push(pos);
      this.nodeParent.push(parent);
      this.nodeIds.set(key, id);
    }
    return id;
  }

  /** The stack after the element on top of `node` has been matched. */
  private pop(node: number): number {
    const next = this.nodePos[node] + 1;
    const parent = this.nodeParent[node];
    return this.kind[next] === END ? parent : this.node(next, parent);
  }

  /** The stacks with a character set (or nothing) on top that `node` expands to. */
  private expand(node: number): Int32Array {
    const memo = this.expanded.get(node);
    if (memo) return memo;
    const out: number[] = [];
    const seen = new Set<number>();
    const todo = [node];
    while (todo.length) {
      const s = todo.pop()!;
      if (seen.has(s)) continue; // a cycle through tail references revisits the same stack
      seen.add(s);
      const pos = this.nodePos[s];
      if (s === EMPTY_STACK || this.kind[pos] === CHARS) {
        out.push(s);
        continue;
      }
      const after = this.pop(s);
      for (const start of this.altStarts[this.value[pos]]) {
        todo.push(this.kind[start] === END ? after : this.node(start, after));
      }
    }
    const result = Int32Array.from(out);
    this.expanded.set(node, result);
    return result;
  }

  private intern(stacks: number[]): number {
    if (stacks.length > MAX_STACKS) {
      throw new RequestError(
        'grammar_too_ambiguous',
        'grammar',
        `more than ${MAX_STACKS} ways to read the text so far; simplify the grammar (often a repetition of something that can match nothing)`,
      );
    }
    stacks.sort((a, b) => a - b);
    const key = stacks.join(',');
    let id = this.stateIds.get(key);
    if (id === undefined) {
      id = this.stateStacks.length;
      this.stateStacks.push(Int32Array.from(stacks));
      this.asciiNext.push(undefined);
      this.otherNext.push(undefined);
      this.stateIds.set(key, id);
    }
    return id;
  }

  // ── states ──────────────────────────────────────────────────────────────────────────────

  /** The state after code point `cp`; DEAD_STATE when the grammar cannot take it. */
  advance(state: number, cp: number): number {
    if (cp < 128) {
      let table = this.asciiNext[state];
      if (!table) table = this.asciiNext[state] = new Int32Array(128).fill(-1);
      if (table[cp] < 0) table[cp] = this.computeAdvance(state, cp);
      return table[cp];
    }
    let map = this.otherNext[state];
    if (!map) map = this.otherNext[state] = new Map();
    let next = map.get(cp);
    if (next === undefined) map.set(cp, (next = this.computeAdvance(state, cp)));
    return next;
  }

  private computeAdvance(state: number, cp: number): number {
    const next = new Set<number>();
    for (const stack of this.stateStacks[state]) {
      if (stack === EMPTY_STACK) continue;
      if (!charSetHas(this.sets[this.value[this.nodePos[stack]]], cp)) continue;
      for (const s of this.expand(this.pop(stack))) next.add(s);
    }
    return next.size === 0 ? DEAD_STATE : this.intern([...next]);
  }

  /** Whether the text that led to `state` is a complete match. */
  isComplete(state: number): boolean {
    const stacks = this.stateStacks[state];
    return stacks.length > 0 && stacks[0] === EMPTY_STACK;
  }

  /** Whether some code point can follow in `state`. */
  canContinue(state: number): boolean {
    const stacks = this.stateStacks[state];
    return stacks.length > (this.isComplete(state) ? 1 : 0);
  }

  /** Whether some code point in [lo, hi] can follow in `state`. */
  couldMatchRange(state: number, lo: number, hi: number): boolean {
    for (const stack of this.stateStacks[state]) {
      if (stack !== EMPTY_STACK && charSetMeets(this.sets[this.value[this.nodePos[stack]]], lo, hi)) return true;
    }
    return false;
  }

  /** The state after a whole string (DEAD_STATE if it leaves the grammar). */
  advanceText(state: number, text: string): number {
    for (const ch of text) {
      state = this.advance(state, ch.codePointAt(0)!);
      if (state === DEAD_STATE) return DEAD_STATE;
    }
    return state;
  }

  /** Whether the whole of `text` matches the grammar. */
  accepts(text: string): boolean {
    return this.isComplete(this.advanceText(this.initial, text));
  }

  /** Whether `text` can be continued into a match (a prefix of some matching string). */
  acceptsPrefix(text: string): boolean {
    return this.advanceText(this.initial, text) !== DEAD_STATE;
  }
}

// ── UTF-8, one byte at a time ───────────────────────────────────────────────────────────────
//
// The decoder's state is one integer: 0 when no character is pending, else
// (bits so far << 5) | (sequence length << 2) | continuation bytes still to come.
// utf8Step returns the next pending state (> 0), a finished code point cp as −(cp + 1), or
// UTF8_INVALID for bytes no well-formed UTF-8 holds (stray continuation, overlong, surrogate).

export const UTF8_INVALID = -0x200000;
const MIN_FOR_LENGTH = [0, 0, 0x80, 0x800, 0x10000];

export function utf8Step(pending: number, byte: number): number {
  if (pending === 0) {
    if (byte < 0x80) return -(byte + 1);
    if (byte >= 0xc2 && byte <= 0xdf) return ((byte & 0x1f) << 5) | (2 << 2) | 1;
    if (byte >= 0xe0 && byte <= 0xef) return ((byte & 0x0f) << 5) | (3 << 2) | 2;
    if (byte >= 0xf0 && byte <= 0xf4) return ((byte & 0x07) << 5) | (4 << 2) | 3;
    return UTF8_INVALID;
  }
  if ((byte & 0xc0) !== 0x80) return UTF8_INVALID;
  const length = (pending >> 2) & 7;
  const remain = (pending & 3) - 1;
  const value = ((pending >> 5) << 6) | (byte & 0x3f);
  if (remain === 0) {
    const bad = value < MIN_FOR_LENGTH[length] || value > 0x10ffff || (value >= 0xd800 && value <= 0xdfff);
    return bad ? UTF8_INVALID : -(value + 1);
  }
  const next = (value << 5) | (length << 2) | remain;
  const [lo, hi] = partialRange(next);
  return lo > hi ? UTF8_INVALID : next; // no valid character starts this way (overlong, too large)
}

/** The code points a pending sequence can still become: [lo, hi] (lo > hi if none). */
export function partialRange(pending: number): [number, number] {
  const length = (pending >> 2) & 7;
  const remain = pending & 3;
  const lo = (pending >> 5) << (6 * remain);
  const hi = lo | ((1 << (6 * remain)) - 1);
  return [Math.max(lo, MIN_FOR_LENGTH[length]), Math.min(hi, 0x10ffff)];
}

/**
 * A grammar being matched against a growing text, fed bytes or strings: the state a generator
 * keeps. Bytes may stop in the middle of a character.
 */
export class GrammarMatcher {
  constructor(
    readonly automaton: GrammarAutomaton,
    /** Current state id (DEAD_STATE once something did not match). */
    public state: number = automaton.initial,
    /** Pending UTF-8 bytes (see utf8Step); 0 when on a character boundary. */
    public pending = 0,
  ) {}

  /** Feed one byte; false (and a dead matcher) if the grammar cannot take it. */
  acceptByte(byte: number): boolean {
    if (this.state === DEAD_STATE) return false;
    const r = utf8Step(this.pending, byte);
    if (r === UTF8_INVALID) return this.die();
    if (r > 0) {
      const [lo, hi] = partialRange(r);
      if (!this.automaton.couldMatchRange(this.state, lo, hi)) return this.die();
      this.pending = r;
      return true;
    }
    this.pending = 0;
    this.state = this.automaton.advance(this.state, -r - 1);
    return this.state !== DEAD_STATE;
  }

  acceptBytes(bytes: Uint8Array): boolean {
    for (const b of bytes) if (!this.acceptByte(b)) return false;
    return true;
  }

  acceptText(text: string): boolean {
    return this.acceptBytes(new TextEncoder().encode(text));
  }

  private die(): false {
    this.state = DEAD_STATE;
    this.pending = 0;
    return false;
  }

  /** The text so far is a complete match. */
  get complete(): boolean {
    return this.pending === 0 && this.automaton.isComplete(this.state);
  }

  /** Nothing more can be accepted. */
  get finished(): boolean {
    return this.pending === 0 && !this.automaton.canContinue(this.state);
  }

  clone(): GrammarMatcher {
    return new GrammarMatcher(this.automaton, this.state, this.pending);
  }
}
