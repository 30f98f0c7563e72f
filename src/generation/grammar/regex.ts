/**
 * Regular expressions → GBNF, for regex-constrained output and for JSON Schema `pattern`.
 *
 * The pattern is parsed (ECMAScript syntax with the `u` flag, as ajv compiles schema patterns) into
 * a small tree — alternation, sequence, repetition, character sets — and the tree is printed as one
 * GBNF expression. Character sets are kept as sorted code-point ranges, so negation (`[^...]`, `\D`,
 * `.`) is exact; a set that holds the last code point prints as a negated class.
 *
 * The subset (everything else is rejected with a RequestError naming the construct):
 *   - literals, `.` (any character but \n \r \u2028 \u2029), classes `[a-z_]` and `[^...]`,
 *   - escapes \d \D \w \W \s \S \t \n \r \f \v \0 \xHH \uHHHH \u{H...} and escaped metacharacters,
 *   - groups `(...)`, `(?:...)`, `(?<name>...)` (names are ignored: no backreferences), alternation,
 *   - quantifiers * + ? {n} {n,} {n,m}, greedy or lazy (laziness does not change what matches),
 *   - anchors `^` at the very start and `$` at the very end only.
 * Rejected: backreferences, lookaround, word boundaries \b \B, \p{...} classes, \cX, inline flags,
 * anchors anywhere else.
 *
 * Two contexts:
 *   - 'text' (regexToGbnf): the whole output must match, so a pattern is anchored at both ends
 *     whether or not it says ^...$.
 *   - 'json' (JSON Schema strings): each matched character is written as a JSON string character —
 *     `"` and `\` as \" and \\, \n \r \t as escapes; other control characters are left out (a
 *     subset, still valid). As in JSON Schema, a pattern matches anywhere in the string: without a
 *     leading ^ (trailing $), any characters may come before (after) the match.
 */
import { RequestError } from '../../errors.js';

/** A set of code points: sorted, non-overlapping, non-adjacent inclusive ranges. */
type CharSet = [number, number][];

type RegexNode =
  | { kind: 'set'; set: CharSet }
  | { kind: 'seq'; items: RegexNode[] }
  | { kind: 'alt'; options: RegexNode[] }
  | { kind: 'repeat'; node: RegexNode; min: number; max: number | null };

export type RegexContext = 'text' | 'json';

const MAX_CODE_POINT = 0x10ffff;
const DIGIT: CharSet = [[0x30, 0x39]];
const WORD: CharSet = normalize([[0x30, 0x39], [0x41, 0x5a], [0x5f, 0x5f], [0x61, 0x7a]]);
/** ECMAScript's \s: WhiteSpace and LineTerminator. */
const SPACE: CharSet = normalize([
  [0x09, 0x0d], [0x20, 0x20], [0xa0, 0xa0], [0x1680, 0x1680], [0x2000, 0x200a],
  [0x2028, 0x2029], [0x202f, 0x202f], [0x205f, 0x205f], [0x3000, 0x3000], [0xfeff, 0xfeff],
]);
const DOT: CharSet = complement(normalize([[0x0a, 0x0a], [0x0d, 0x0d], [0x2028, 0x2029]]));

/**
 * A GBNF grammar (`root ::= ...`) whose language is the strings the whole of `pattern` matches.
 * `parameter` names the pattern in error messages.
 */
export function regexToGbnf(pattern: string, parameter = 'regex'): string {
  return `root ::= ${regexToGbnfExpression(pattern, 'text', parameter)}\n`;
}

/**
 * One GBNF expression for `pattern` in a context (see the file header). In 'json' context the
 * expression covers the string's characters only, not its quotes; `anyJsonChar` is the GBNF for
 * one JSON string character, used for the unanchored ends.
 */
export function regexToGbnfExpression(pattern: string, context: RegexContext, parameter: string, anyJsonChar = 'char'): string {
  const { body, anchoredStart, anchoredEnd } = stripAnchors(pattern);
  const tree = new RegexParser(body, pattern, parameter).parse();
  const core = printNode(tree, context, 0);
  if (context === 'text') return core;
  const parts = [anchoredStart ? '' : `${anyJsonChar}*`, core, anchoredEnd ? '' : `${anyJsonChar}*`];
  return parts.filter((p) => p !== '').join(' ');
}

function stripAnchors(pattern: string): { body: string; anchoredStart: boolean; anchoredEnd: boolean } {
  let body = pattern;
  const anchoredStart = body.startsWith('^');
  if (anchoredStart) body = body.slice(1);
  // A final "$" is an anchor unless escaped, i.e. preceded by an odd number of backslashes.
  const trailingBackslashes = /\\*(?=\$$)/.exec(body)?.[0].length ?? 0;
  const anchoredEnd = body.endsWith('$') && trailingBackslashes % 2 === 0;
  if (anchoredEnd) body = body.slice(0, -1);
  return { body, anchoredStart, anchoredEnd };
}

// ---------------------------------------------------------------------------------------------
// Parsing

class RegexParser {
  private pos = 0;

  constructor(
    private readonly src: string,
    private readonly pattern: string,
    private readonly parameter: string,
  ) {}

  parse(): RegexNode {
    const node = this.alternation();
    if (this.pos < this.src.length) throw this.error(`unbalanced ")"`);
    return node;
  }

  private alternation(): RegexNode {
    const options = [this.sequence()];
    while (this.peek() === '|') {
      this.pos++;
      options.push(this.sequence());
    }
    return options.length === 1 ? options[0] : { kind: 'alt', options };
  }

  private sequence(): RegexNode {
    const items: RegexNode[] = [];
    while (this.pos < this.src.length && this.peek() !== '|' && this.peek() !== ')') {
      items.push(this.quantified(this.atom()));
    }
    return items.length === 1 ? items[0] : { kind: 'seq', items };
  }

  private quantified(atom: RegexNode): RegexNode {
    let node = atom;
    for (;;) {
      const bounds = this.quantifier();
      if (!bounds) return node;
      if (this.peek() === '?') this.pos++; // lazy: same language
      node = { kind: 'repeat', node, min: bounds[0], max: bounds[1] };
      const after = this.peek();
      if (after !== undefined && '*+?{'.includes(after)) throw this.error('a quantifier after a quantifier');
    }
  }

  private quantifier(): [number, number | null] | undefined {
    const c = this.peek();
    if (c === '*') return this.advance([0, null]);
    if (c === '+') return this.advance([1, null]);
    if (c === '?') return this.advance([0, 1]);
    if (c !== '{') return undefined;
    const m = /^\{(\d+)(,(\d*))?\}/.exec(this.src.slice(this.pos));
    if (!m) throw this.error('a "{" that does not start a {n,m} quantifier');
    this.pos += m[0].length;
    const min = Number(m[1]);
    const max = m[2] === undefined ? min : m[3] === '' ? null : Number(m[3]);
    if (max !== null && max < min) throw this.error(`quantifier ${m[0]} with max < min`);
    return [min, max];
  }

  private advance<T>(value: T): T {
    this.pos++;
    return value;
  }

  private atom(): RegexNode {
    const c = this.peek()!;
    if (c === '(') return this.group();
    if (c === '[') return { kind: 'set', set: this.charClass() };
    if (c === '.') return this.advance({ kind: 'set', set: DOT });
    if (c === '\\') return { kind: 'set', set: this.escape(false) };
    if (c === '^' || c === '$') throw this.error(`anchor "${c}" other than at the very start or end`);
    if ('*+?{'.includes(c)) throw this.error(`quantifier "${c}" with nothing to repeat`);
    if (c === ']' || c === '}') throw this.error(`unescaped "${c}"`);
    const cp = this.src.codePointAt(this.pos)!;
    this.pos += cp > 0xffff ? 2 : 1;
    return { kind: 'set', set: [[cp, cp]] };
  }

  private group(): RegexNode {
    this.pos++;
    if (this.peek() === '?') {
      const rest = this.src.slice(this.pos);
      const named = /^\?<([A-Za-z_$][\w$]*)>/.exec(rest);
      if (rest.startsWith('?:')) this.pos += 2;
      else if (named) this.pos += named[0].length;
      else if (/^\?<?[=!]/.test(rest)) throw this.error('lookaround assertion');
      else throw this.error('group modifier "(?"');
    }
    const inner = this.alternation();
    if (this.peek() !== ')') throw this.error('unclosed "("');
    this.pos++;
    return inner;
  }

  private charClass(): CharSet {
    this.pos++;
    const negated = this.peek() === '^';
    if (negated) this.pos++;
    const ranges: CharSet = [];
    while (this.peek() !== ']') {
      if (this.pos >= this.src.length) throw this.error('unclosed "["');
      const lo = this.classAtom();
      if (this.peek() === '-' && this.src[this.pos + 1] !== ']' && this.pos + 1 < this.src.length) {
        this.pos++;
        const hi = this.classAtom();
        if (lo.length !== 1 || hi.length !== 1 || lo[0][0] !== lo[0][1] || hi[0][0] !== hi[0][1]) {
          throw this.error('a class range with a class escape (\\d, \\w, \\s) at an end');
        }
        if (hi[0][0] < lo[0][0]) throw this.error('a class range out of order');
        ranges.push([lo[0][0], hi[0][0]]);
      } else {
        ranges.push(...lo);
      }
    }
    this.pos++;
    const set = normalize(ranges);
    return negated ? complement(set) : set;
  }

  private classAtom(): CharSet {
    if (this.peek() === '\\') return this.escape(true);
    const cp = this.src.codePointAt(this.pos)!;
    this.pos += cp > 0xffff ? 2 : 1;
    return [[cp, cp]];
  }

  /** An escape at pos (the backslash): a set of one code point or a class escape. */
  private escape(inClass: boolean): CharSet {
    this.pos++;
    const c = this.peek();
    if (c === undefined) throw this.error('a "\\" at the end');
    this.pos++;
    const single = (cp: number): CharSet => [[cp, cp]];
    switch (c) {
      case 'd': return DIGIT;
      case 'D': return complement(DIGIT);
      case 'w': return WORD;
      case 'W': return complement(WORD);
      case 's': return SPACE;
      case 'S': return complement(SPACE);
      case 't': return single(0x09);
      case 'n': return single(0x0a);
      case 'r': return single(0x0d);
      case 'f': return single(0x0c);
      case 'v': return single(0x0b);
      case 'x': return single(this.hex(/^[0-9a-fA-F]{2}/, '\\x'));
      case 'u': return single(this.unicodeEscape());
      case '0':
        if (/[0-9]/.test(this.peek() ?? '')) throw this.error('octal escape');
        return single(0);
    }
    if (c === 'b' && inClass) return single(0x08);
    if (c === '-' && inClass) return single(0x2d);
    if ('^$\\.*+?()[]{}|/'.includes(c)) return single(c.codePointAt(0)!);
    if (c === 'b' || c === 'B') throw this.error(`word boundary "\\${c}"`);
    if (/[1-9]/.test(c) || c === 'k') throw this.error('backreference');
    if (c === 'p' || c === 'P') throw this.error(`Unicode property class "\\${c}{...}"`);
    throw this.error(`escape "\\${c}"`);
  }

  private unicodeEscape(): number {
    if (this.peek() === '{') {
      const cp = this.hex(/^\{([0-9a-fA-F]{1,6})\}/, '\\u{...}');
      if (cp > MAX_CODE_POINT) throw this.error('\\u{...} beyond U+10FFFF');
      return cp;
    }
    return this.hex(/^[0-9a-fA-F]{4}/, '\\u');
  }

  private hex(form: RegExp, name: string): number {
    const m = form.exec(this.src.slice(this.pos));
    if (!m) throw this.error(`malformed ${name} escape`);
    this.pos += m[0].length;
    return parseInt(m[1] ?? m[0], 16);
  }

  private peek(): string | undefined {
    return this.src[this.pos];
  }

  private error(construct: string): RequestError {
    return new RequestError('unsupported_regex', this.parameter, `${construct} is not supported (pattern ${JSON.stringify(this.pattern)})`);
  }
}

// ---------------------------------------------------------------------------------------------
// Character sets

function normalize(ranges: CharSet): CharSet {
  const sorted = [...ranges].sort((a, b) => a[0] - b[0]);
  const out: CharSet = [];
  for (const [lo, hi] of sorted) {
    const last = out[out.length - 1];
    if (last && lo <= last[1] + 1) last[1] = Math.max(last[1], hi);
    else out.push([lo, hi]);
  }
  return out;
}

function complement(set: CharSet): CharSet {
  const out: CharSet = [];
  let next = 0;
  for (const [lo, hi] of set) {
    if (lo > next) out.push([next, lo - 1]);
    next = hi + 1;
  }
  if (next <= MAX_CODE_POINT) out.push([next, MAX_CODE_POINT]);
  return out;
}

function subtract(set: CharSet, remove: CharSet): CharSet {
  const kept = complement(remove);
  const out: CharSet = [];
  for (const [a, b] of set) {
    for (const [c, d] of kept) {
      const lo = Math.max(a, c);
      const hi = Math.min(b, d);
      if (lo <= hi) out.push([lo, hi]);
    }
  }
  return out;
}

function contains(set: CharSet, cp: number): boolean {
  return set.some(([lo, hi]) => lo <= cp && cp <= hi);
}

// ---------------------------------------------------------------------------------------------
// Printing GBNF

/** A GBNF string literal for `text`. */
export function gbnfLiteral(text: string): string {
  let out = '"';
  for (const ch of text) {
    const cp = ch.codePointAt(0)!;
    if (ch === '"' || ch === '\\') out += `\\${ch}`;
    else if (cp === 0x0a) out += '\\n';
    else if (cp === 0x0d) out += '\\r';
    else if (cp === 0x09) out += '\\t';
    else if (cp < 0x20 || cp === 0x7f) out += hexEscape(cp);
    else out += ch;
  }
  return `${out}"`;
}

/** A GBNF character class over `set`, negated when that is shorter (the set reaches U+10FFFF). */
export function gbnfClass(set: CharSet): string {
  const negate = set.length > 0 && set[set.length - 1][1] === MAX_CODE_POINT;
  const ranges = negate ? complement(set) : set;
  const body = ranges.map(([lo, hi]) => (lo === hi ? gbnfClassChar(lo) : `${gbnfClassChar(lo)}-${gbnfClassChar(hi)}`)).join('');
  return `[${negate ? '^' : ''}${body}]`;
}

/** One code point inside [...]: the class metacharacters escaped, "-" and "^" as hex (GBNF has no \- or \^). */
export function gbnfClassChar(cp: number): string {
  if (cp === 0x5d || cp === 0x5b || cp === 0x5c || cp === 0x22) return `\\${String.fromCodePoint(cp)}`;
  if (cp === 0x2d || cp === 0x5e || cp < 0x20 || cp === 0x7f) return hexEscape(cp);
  if (cp >= 0xd800 && cp <= 0xdfff) return hexEscape(cp);
  return String.fromCodePoint(cp);
}

function hexEscape(cp: number): string {
  if (cp <= 0xff) return `\\x${cp.toString(16).toUpperCase().padStart(2, '0')}`;
  if (cp <= 0xffff) return `\\u${cp.toString(16).toUpperCase().padStart(4, '0')}`;
  return `\\U${cp.toString(16).toUpperCase().padStart(8, '0')}`;
}

/** The GBNF repetition suffix for {min,max} (max null: unbounded). */
export function repetition(min: number, max: number | null): string {
  if (min === 0 && max === null) return '*';
  if (min === 1 && max === null) return '+';
  if (min === 0 && max === 1) return '?';
  if (max === null) return `{${min},}`;
  return min === max ? `{${min}}` : `{${min},${max}}`;
}

/** Characters a JSON string must escape, and the escapes we write for them (others are left out). */
const JSON_ESCAPED: CharSet = normalize([[0x00, 0x1f], [0x22, 0x22], [0x5c, 0x5c]]);
const JSON_ESCAPES: [number, string][] = [[0x22, '\\"'], [0x5c, '\\\\'], [0x0a, '\\n'], [0x0d, '\\r'], [0x09, '\\t']];

/** A set in context: a class, a literal, or (json) a class plus the escapes for its special characters. */
function printSet(set: CharSet, context: RegexContext): string {
  if (context === 'text') return printPlainSet(set);
  const plain = subtract(set, JSON_ESCAPED);
  const options = plain.length > 0 ? [printPlainSet(plain)] : [];
  for (const [cp, escape] of JSON_ESCAPES) if (contains(set, cp)) options.push(gbnfLiteral(escape));
  if (options.length === 0) return '[^\\x00-\\U0010FFFF]'; // a set with only left-out control characters: matches nothing
  return options.length === 1 ? options[0] : `(${options.join(' | ')})`;
}

function printPlainSet(set: CharSet): string {
  if (set.length === 1 && set[0][0] === set[0][1]) return gbnfLiteral(String.fromCodePoint(set[0][0]));
  return gbnfClass(set);
}

function isSingleChar(node: RegexNode): node is { kind: 'set'; set: CharSet } {
  return node.kind === 'set' && node.set.length === 1 && node.set[0][0] === node.set[0][1];
}

/** Print a node; `depth` > 0 means it is embedded, so alternations get parentheses. */
function printNode(node: RegexNode, context: RegexContext, depth: number): string {
  switch (node.kind) {
    case 'set':
      return printSet(node.set, context);
    case 'alt': {
      const body = node.options.map((o) => printNode(o, context, depth + 1)).join(' | ');
      return depth === 0 ? body : `(${body})`;
    }
    case 'seq':
      return printSequence(node.items, context, depth);
    case 'repeat': {
      const inner = printNode(node.node, context, depth + 1);
      // A set prints as one GBNF item (a literal, a class, or parenthesized alternatives).
      return `${node.node.kind === 'set' ? inner : `(${inner})`}${repetition(node.min, node.max)}`;
    }
  }
}

/** A sequence, with runs of single characters merged into one literal. */
function printSequence(items: RegexNode[], context: RegexContext, depth: number): string {
  if (items.length === 0) return '""';
  const parts: string[] = [];
  let run = '';
  const flush = (): void => {
    if (run !== '') parts.push(gbnfLiteral(run));
    run = '';
  };
  for (const item of items) {
    const cp = isSingleChar(item) ? item.set[0][0] : -1;
    if (cp >= 0 && (context === 'text' || !contains(JSON_ESCAPED, cp))) {
      run += String.fromCodePoint(cp);
    } else {
      flush();
      parts.push(printNode(item, context, depth + 1));
    }
  }
  flush();
  return parts.join(' ');
}
