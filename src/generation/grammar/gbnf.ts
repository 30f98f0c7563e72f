/**
 * A parser for llama.cpp's GBNF grammar format (grammars/README.md in llama.cpp), producing rules
 * whose alternatives are sequences of two kinds of element: a set of code points (a literal
 * character, a class like `[a-z]` or `[^"\\]`, or `.`) and a reference to another rule.
 *
 *   root  ::= "{" ws pair ("," ws pair)* "}"      # a rule: name, ::=, alternatives
 *   pair  ::= [a-z]+ ws ":" ws ("true" | "false")
 *   ws    ::= [ \t\n]{0,20}
 *
 * Everything else is rewritten into those two kinds, as llama.cpp does, so the matcher only ever
 * sees plain rules:
 *   - a literal "abc" is the characters a, b, c in sequence;
 *   - a group ( ... ) becomes a generated rule holding its alternatives;
 *   - X* becomes R ::= X R | (empty), X+ becomes X R, X? becomes R ::= X | (empty);
 *   - X{m,n} becomes m copies of X then a chain of n−m nested optionals, O(k) ::= X O(k−1) | ,
 *     so each extra copy can only follow the one before it (no ambiguity to blow up the matcher).
 * Generated rules are named `<rule>_<n>`; user rule names are [a-zA-Z0-9-]+, so they never clash.
 *
 * Layout follows llama.cpp too: a rule's sequence ends at a newline unless inside parentheses or
 * right after `|` or `::=`; `#` starts a comment. Errors name the line and column (1-based, in
 * code points). After parsing, every referenced rule must be defined, `root` (or the chosen start
 * rule) must exist, and no rule may be left-recursive: a pushdown matcher would grow its stack for
 * ever on `expr ::= expr "+" term`, so such grammars are rejected with the rule named, as
 * llama.cpp rejects them (write `expr ::= term ("+" term)*` instead).
 */
import { FormatError, RequestError } from '../../errors.js';

/** Code points `ranges` = [lo0, hi0, lo1, hi1, ...] (sorted, merged), or all others when negated. */
export interface GbnfCharSet {
  kind: 'chars';
  ranges: number[];
  negated: boolean;
}

export interface GbnfRuleRef {
  kind: 'rule';
  rule: number;
}

export type GbnfElement = GbnfCharSet | GbnfRuleRef;

export interface GbnfRule {
  name: string;
  /** Each alternative is a sequence of elements; an empty sequence matches the empty string. */
  alternatives: GbnfElement[][];
  /** Where the rule (or the group or repetition it was generated for) starts in the source. */
  line: number;
  column: number;
}

export interface GbnfGrammar {
  rules: GbnfRule[];
  /** Index of the start rule in `rules`. */
  root: number;
}

export interface ParseGbnfOptions {
  /** The start rule (default "root"). */
  root?: string;
  /**
   * The file the grammar came from: errors are then FormatErrors naming it. Without one the
   * grammar is a request argument and errors are RequestErrors for the parameter "grammar".
   */
  file?: string;
}

/** Repetition bounds above this are refused: each copy is an element, each optional a rule. */
export const MAX_REPETITION = 10_000;

const ANY_CHAR: GbnfCharSet = { kind: 'chars', ranges: [], negated: true };

/** Parse GBNF text into rules; throws FormatError / RequestError with line and column. */
export function parseGbnf(text: string, opts: ParseGbnfOptions = {}): GbnfGrammar {
  const parser = new GbnfParser(text, opts.file);
  parser.parseRules();
  const grammar = parser.finish(opts.root ?? 'root');
  checkLeftRecursion(grammar, parser);
  return grammar;
}

function isWordChar(c: string | undefined): boolean {
  return c !== undefined && /^[a-zA-Z0-9-]$/.test(c);
}

function isDigit(c: string | undefined): boolean {
  return c !== undefined && c >= '0' && c <= '9';
}

class GbnfParser {
  private pos = 0;
  readonly rules: GbnfRule[] = [];
  private readonly ids = new Map<string, number>();
  /** Where each rule was first referenced, for "undefined rule" errors. */
  private readonly firstUse = new Map<number, number>();
  /** Where each user rule was defined (UTF-16 offsets), for messages. */
  readonly definedAt = new Map<number, number>();

  constructor(
    private readonly src: string,
    private readonly file: string | undefined,
  ) {}

  // ── errors and positions ────────────────────────────────────────────────────────────────

  /** Offsets where each line starts, for turning offsets into line and column. */
  private lineStarts: number[] | undefined;

  lineColumn(offset: number): { line: number; column: number } {
    if (!this.lineStarts) {
      this.lineStarts = [0];
      for (let i = 0; i < this.src.length; i++) if (this.src[i] === '\n') this.lineStarts.push(i + 1);
    }
    const starts = this.lineStarts;
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (starts[mid] <= offset) lo = mid;
      else hi = mid - 1;
    }
    // Columns count code points, so a surrogate pair is one column.
    return { line: lo + 1, column: [...this.src.slice(starts[lo], offset)].length + 1 };
  }

  error(code: string, offset: number, message: string): Error {
    const { line, column } = this.lineColumn(offset);
    const text = `line ${line}, column ${column}: ${message}`;
    return this.file !== undefined ? new FormatError(code, this.file, text) : new RequestError(code, 'grammar', text);
  }

  private syntaxError(message: string, offset = this.pos): Error {
    return this.error('grammar_syntax', offset, message);
  }

  /** A short quote of what is at `offset`, for "expected X, found Y" messages. */
  private found(offset = this.pos): string {
    if (offset >= this.src.length) return 'end of grammar';
    const c = this.src[offset];
    if (c === '\n' || c === '\r') return 'end of line';
    return `'${String.fromCodePoint(this.src.codePointAt(offset)!)}'`;
  }

  // ── lexing helpers ──────────────────────────────────────────────────────────────────────

  private peek(ahead = 0): string | undefined {
    return this.src[this.pos + ahead];
  }

  /** Skip spaces, tabs and comments, and line breaks too when `newlineOk` (as llama.cpp's parse_space). */
  private skipSpace(newlineOk: boolean): void {
    for (;;) {
      const c = this.peek();
      if (c === ' ' || c === '\t' || (newlineOk && (c === '\n' || c === '\r'))) this.pos++;
      else if (c === '#') {
        while (this.pos < this.src.length && this.src[this.pos] !== '\n' && this.src[this.pos] !== '\r') this.pos++;
      } else return;
    }
  }

  private parseName(): string {
    const start = this.pos;
    while (isWordChar(this.peek())) this.pos++;
    if (this.pos === start) throw this.syntaxError(`expected a rule name, found ${this.found()}`);
    return this.src.slice(start, this.pos);
  }

  private parseInt(): number {
    const start = this.pos;
    while (isDigit(this.peek())) this.pos++;
    if (this.pos === start) throw this.syntaxError(`expected a number, found ${this.found()}`);
    return Number(this.src.slice(start, this.pos));
  }

  private parseHex(digits: number, escapeStart: number): number {
    const hex = this.src.slice(this.pos, this.pos + digits);
    if (hex.length !== digits || !/^[0-9a-fA-F]+$/.test(hex)) {
      throw this.syntaxError(`escape ${this.src.slice(escapeStart, this.pos)} needs ${digits} hex digits`, escapeStart);
    }
    this.pos += digits;
    const value = parseInt(hex, 16);
    if (value > 0x10ffff) throw this.syntaxError(`escape \\U${hex} is beyond the last Unicode code point U+10FFFF`, escapeStart);
    return value;
  }

  /** One character of a literal or class: an escape or a code point. */
  private parseChar(context: string): number {
    const start = this.pos;
    const c = this.peek();
    if (c === undefined) throw this.syntaxError(`unexpected end of grammar inside ${context}`);
    if (c === '\\') {
      const e = this.peek(1);
      this.pos += 2;
      switch (e) {
        case 'x':
          return this.parseHex(2, start);
        case 'u':
          return this.parseHex(4, start);
        case 'U':
          return this.parseHex(8, start);
        case 't':
          return 9;
        case 'r':
          return 13;
        case 'n':
          return 10;
        case '\\':
        case '"':
        case '[':
        case ']':
        case '-':
          return e.charCodeAt(0);
        default:
          throw this.syntaxError(`unknown escape '\\${e ?? ''}' (known: \\n \\t \\r \\\\ \\" \\[ \\] \\- \\xHH \\uHHHH \\UHHHHHHHH)`, start);
      }
    }
    const cp = this.src.codePointAt(this.pos)!;
    this.pos += cp > 0xffff ? 2 : 1;
    return cp;
  }

  // ── rules ───────────────────────────────────────────────────────────────────────────────

  /** The id for a rule name, creating an (as yet undefined) entry on first sight. */
  private ruleId(name: string, usedAt: number): number {
    let id = this.ids.get(name);
    if (id === undefined) {
      id = this.rules.length;
      this.ids.set(name, id);
      this.rules.push({ name, alternatives: [], line: 0, column: 0 });
      this.firstUse.set(id, usedAt);
    }
    return id;
  }

  /** A new rule for a group or repetition inside rule `parent`, starting at `offset`. */
  private generatedRule(parent: string, offset: number, alternatives: GbnfElement[][]): number {
    const id = this.rules.length;
    const name = `${parent}_${id}`;
    this.ids.set(name, id);
    this.rules.push({ name, alternatives, ...this.lineColumn(offset) });
    return id;
  }

  parseRules(): void {
    this.skipSpace(true);
    while (this.pos < this.src.length) this.parseRule();
  }

  private parseRule(): void {
    const start = this.pos;
    const name = this.parseName();
    this.skipSpace(false);
    if (!this.src.startsWith('::=', this.pos)) throw this.syntaxError(`expected '::=' after rule name '${name}', found ${this.found()}`);
    const id = this.ruleId(name, start);
    if (this.definedAt.has(id)) {
      const first = this.lineColumn(this.definedAt.get(id)!);
      throw this.error('grammar_duplicate_rule', start, `rule '${name}' is already defined on line ${first.line}`);
    }
    this.definedAt.set(id, start);
    Object.assign(this.rules[id], this.lineColumn(start));
    this.pos += 3;
    this.skipSpace(true);
    this.rules[id].alternatives = this.parseAlternatives(name, false);
    const c = this.peek();
    if (c === '\r') this.pos += this.peek(1) === '\n' ? 2 : 1;
    else if (c === '\n') this.pos++;
    else if (c !== undefined) throw this.syntaxError(`expected a new line or the end of rule '${name}', found ${this.found()}`);
    this.skipSpace(true);
  }

  private parseAlternatives(ruleName: string, nested: boolean): GbnfElement[][] {
    const alternatives = [this.parseSequence(ruleName, nested)];
    while (this.peek() === '|') {
      this.pos++;
      this.skipSpace(true);
      alternatives.push(this.parseSequence(ruleName, nested));
    }
    return alternatives;
  }

  /**
   * Elements up to `|`, `)` or the end of the line. `item` is the last element parsed (a literal
   * counts as one item), which a following `* + ? {m,n}` repeats.
   */
  private parseSequence(ruleName: string, nested: boolean): GbnfElement[] {
    const seq: GbnfElement[] = [];
    let item: GbnfElement[] | undefined;
    for (;;) {
      const start = this.pos;
      const c = this.peek();
      if (c === '"') {
        item = this.parseLiteral();
      } else if (c === '[') {
        item = [this.parseClass()];
      } else if (c === '.') {
        this.pos++;
        item = [ANY_CHAR];
      } else if (isWordChar(c)) {
        item = [{ kind: 'rule', rule: this.ruleId(this.parseName(), start) }];
      } else if (c === '(') {
        this.pos++;
        this.skipSpace(true);
        const alternatives = this.parseAlternatives(ruleName, true);
        if (this.peek() !== ')') throw this.syntaxError(`expected ')' to close the group opened at ${this.describe(start)}, found ${this.found()}`);
        this.pos++;
        item = [{ kind: 'rule', rule: this.generatedRule(ruleName, start, alternatives) }];
      } else if (c === '*' || c === '+' || c === '?' || c === '{') {
        if (!item) throw this.syntaxError(`'${c}' must follow something to repeat`);
        const [min, max] = this.parseRepetition();
        const repeated = this.repeat(ruleName, start, item, min, max);
        seq.splice(seq.length - item.length, item.length, ...repeated);
        item = repeated; // a further operator repeats the repetition, as in llama.cpp: "a"{2}? is ("a"{2})?
        this.skipSpace(nested);
        continue;
      } else if (c === '<' || c === '!') {
        throw this.syntaxError('token references (<...>, !<...>) are not supported; write the text as a literal');
      } else {
        return seq;
      }
      seq.push(...item);
      this.skipSpace(nested);
    }
  }

  private describe(offset: number): string {
    const { line, column } = this.lineColumn(offset);
    return `line ${line}, column ${column}`;
  }

  private parseLiteral(): GbnfElement[] {
    const start = this.pos;
    this.pos++;
    const out: GbnfElement[] = [];
    while (this.peek() !== '"') {
      if (this.pos >= this.src.length) throw this.syntaxError('unterminated string literal', start);
      const cp = this.parseChar('a string literal');
      out.push({ kind: 'chars', ranges: [cp, cp], negated: false });
    }
    this.pos++;
    return out;
  }

  private parseClass(): GbnfCharSet {
    const start = this.pos;
    this.pos++;
    const negated = this.peek() === '^';
    if (negated) this.pos++;
    const pairs: [number, number][] = [];
    while (this.peek() !== ']') {
      if (this.pos >= this.src.length) throw this.syntaxError('unterminated character class', start);
      const itemStart = this.pos;
      const lo = this.parseChar('a character class');
      let hi = lo;
      if (this.peek() === '-' && this.peek(1) !== ']' && this.peek(1) !== undefined) {
        this.pos++;
        hi = this.parseChar('a character class');
        if (hi < lo) throw this.syntaxError(`range ${this.src.slice(itemStart, this.pos)} ends before it starts`, itemStart);
      }
      pairs.push([lo, hi]);
    }
    this.pos++;
    if (pairs.length === 0) throw this.syntaxError(`empty character class ${negated ? '[^]' : '[]'} (use . for any character)`, start);
    return { kind: 'chars', ranges: mergeRanges(pairs), negated };
  }

  /** After the operator at this.pos: [min, max] with max Infinity for no limit. */
  private parseRepetition(): [number, number] {
    const c = this.peek()!;
    const start = this.pos;
    this.pos++;
    if (c === '*') return [0, Infinity];
    if (c === '+') return [1, Infinity];
    if (c === '?') return [0, 1];
    this.skipSpace(false);
    const min = this.parseInt();
    this.skipSpace(false);
    let max = min;
    if (this.peek() === ',') {
      this.pos++;
      this.skipSpace(false);
      max = isDigit(this.peek()) ? this.parseInt() : Infinity;
      this.skipSpace(false);
    }
    if (this.peek() !== '}') throw this.syntaxError(`expected '}' to close the repetition, found ${this.found()}`);
    this.pos++;
    if (max < min) throw this.syntaxError(`repetition {${min},${max}} has its maximum below its minimum`, start);
    if (min > MAX_REPETITION || (max !== Infinity && max > MAX_REPETITION)) {
      throw this.error('grammar_too_large', start, `repetition bounds above ${MAX_REPETITION} are not supported`);
    }
    return [min, max];
  }

  /** `item` repeated min..max times, as elements for the sequence (see the file comment). */
  private repeat(ruleName: string, at: number, item: GbnfElement[], min: number, max: number): GbnfElement[] {
    const unit: GbnfElement = item.length === 1 ? item[0] : { kind: 'rule', rule: this.generatedRule(ruleName, at, [item]) };
    const out: GbnfElement[] = new Array<GbnfElement>(min).fill(unit);
    if (max === Infinity) {
      const star = this.generatedRule(ruleName, at, []);
      this.rules[star].alternatives = [[unit, { kind: 'rule', rule: star }], []];
      out.push({ kind: 'rule', rule: star });
    } else if (max > min) {
      let optional = this.generatedRule(ruleName, at, [[unit], []]);
      for (let k = 2; k <= max - min; k++) optional = this.generatedRule(ruleName, at, [[unit, { kind: 'rule', rule: optional }], []]);
      out.push({ kind: 'rule', rule: optional });
    }
    return out;
  }

  /** Check every referenced rule is defined and the start rule exists; the grammar. */
  finish(rootName: string): GbnfGrammar {
    for (const [id, usedAt] of this.firstUse) {
      if (!this.definedAt.has(id)) throw this.error('grammar_undefined_rule', usedAt, `rule '${this.rules[id].name}' is used but never defined`);
    }
    const root = this.ids.get(rootName);
    if (root === undefined || !this.definedAt.has(root)) {
      throw this.error('grammar_no_root', this.src.length, `the grammar has no '${rootName}' rule to start from`);
    }
    return { rules: this.rules, root };
  }
}

/** Sort and merge overlapping or adjacent ranges into a flat [lo, hi, ...] list. */
function mergeRanges(pairs: [number, number][]): number[] {
  pairs.sort((a, b) => a[0] - b[0]);
  const out: number[] = [];
  for (const [lo, hi] of pairs) {
    const last = out.length - 1;
    if (last > 0 && lo <= out[last] + 1) out[last] = Math.max(out[last], hi);
    else out.push(lo, hi);
  }
  return out;
}

/** Whether code point `cp` is in the set. */
export function charSetHas(set: GbnfCharSet, cp: number): boolean {
  const r = set.ranges;
  let inside = false;
  for (let i = 0; i < r.length; i += 2) {
    if (cp < r[i]) break;
    if (cp <= r[i + 1]) {
      inside = true;
      break;
    }
  }
  return inside !== set.negated;
}

/** Whether the set holds any code point in [lo, hi]. */
export function charSetMeets(set: GbnfCharSet, lo: number, hi: number): boolean {
  const r = set.ranges;
  if (!set.negated) {
    for (let i = 0; i < r.length; i += 2) if (r[i] <= hi && lo <= r[i + 1]) return true;
    return false;
  }
  // Negated: some code point of [lo, hi] lies outside every range unless the ranges cover it all.
  let next = lo;
  for (let i = 0; i < r.length && next <= hi; i += 2) {
    if (r[i + 1] < next) continue;
    if (r[i] > next) return true;
    next = r[i + 1] + 1;
  }
  return next <= hi;
}

/** Which rules can match the empty string (a fixed point over the alternatives). */
export function nullableRules(grammar: GbnfGrammar): boolean[] {
  const nullable = grammar.rules.map(() => false);
  for (let changed = true; changed; ) {
    changed = false;
    grammar.rules.forEach((rule, id) => {
      if (nullable[id]) return;
      if (rule.alternatives.some((alt) => alt.every((e) => e.kind === 'rule' && nullable[e.rule]))) {
        nullable[id] = changed = true;
      }
    });
  }
  return nullable;
}

/**
 * Reject left recursion that would grow the matcher's stack without bound: a rule R reached again
 * from R through references at the left edge (only nullable elements before them), where some
 * reference on the way has something after it (so the matcher pushes a continuation each time).
 * Cycles through tail references only, as `("a"?)*` makes, revisit the same stack and are harmless.
 */
function checkLeftRecursion(grammar: GbnfGrammar, parser: GbnfParser): void {
  const nullable = nullableRules(grammar);
  // edges[a] = rules referenced at a's left edge, with whether the reference is followed by anything.
  const edges = grammar.rules.map((rule) => {
    const out: { to: number; grows: boolean }[] = [];
    for (const alt of rule.alternatives) {
      for (let i = 0; i < alt.length; i++) {
        const e = alt[i];
        if (e.kind !== 'rule') break;
        out.push({ to: e.rule, grows: i < alt.length - 1 });
        if (!nullable[e.rule]) break;
      }
    }
    return out;
  });
  const component = stronglyConnected(edges.map((out) => out.map((e) => e.to)));
  grammar.rules.forEach((rule, id) => {
    for (const { to, grows } of edges[id]) {
      if (grows && component[to] === component[id]) {
        const offending = userRuleName(grammar, parser, id);
        const at = parser.definedAt.get(offending.id) ?? 0;
        throw parser.error(
          'grammar_left_recursion',
          at,
          `rule '${offending.name}' is left-recursive (it can reach itself before matching any character), which a pushdown matcher cannot run; rewrite it with repetition, e.g. a ::= b ("op" b)*`,
        );
      }
    }
  });
}

/** The strongly connected component of each node (Tarjan's algorithm, iterative). */
function stronglyConnected(edges: number[][]): Int32Array {
  const n = edges.length;
  const index = new Int32Array(n).fill(-1);
  const low = new Int32Array(n);
  const component = new Int32Array(n).fill(-1);
  const onStack = new Uint8Array(n);
  const stack: number[] = [];
  let counter = 0;
  let components = 0;
  for (let start = 0; start < n; start++) {
    if (index[start] >= 0) continue;
    const work: [node: number, edge: number][] = [[start, 0]];
    index[start] = low[start] = counter++;
    stack.push(start);
    onStack[start] = 1;
    while (work.length) {
      const top = work[work.length - 1];
      const [v, i] = top;
      if (i < edges[v].length) {
        top[1]++;
        const w = edges[v][i];
        if (index[w] < 0) {
          index[w] = low[w] = counter++;
          stack.push(w);
          onStack[w] = 1;
          work.push([w, 0]);
        } else if (onStack[w]) low[v] = Math.min(low[v], index[w]);
        continue;
      }
      work.pop();
      if (work.length) low[work[work.length - 1][0]] = Math.min(low[work[work.length - 1][0]], low[v]);
      if (low[v] === index[v]) {
        for (let w = -1; w !== v; ) {
          w = stack.pop()!;
          onStack[w] = 0;
          component[w] = components;
        }
        components++;
      }
    }
  }
  return component;
}

/** The user-written rule a (possibly generated) rule belongs to: "expr_3" → "expr". */
function userRuleName(grammar: GbnfGrammar, parser: GbnfParser, id: number): { id: number; name: string } {
  if (parser.definedAt.has(id)) return { id, name: grammar.rules[id].name };
  const base = grammar.rules[id].name.replace(/_\d+$/, '');
  const baseId = grammar.rules.findIndex((r) => r.name === base);
  return { id: baseId, name: base };
}
