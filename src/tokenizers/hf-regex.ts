/**
 * Regular expressions between tokenizer.json and JavaScript.
 *
 * tokenizer.json patterns (Split pre-tokenizers, Replace normalizers and decoders) are written for
 * Oniguruma in its Ruby syntax, which the Rust `tokenizers` library compiles them with. Most of
 * the syntax reads the same in a JavaScript `u`-mode RegExp, but the meanings differ in places
 * that matter for tokenization, so `onigurumaToJs` parses the pattern and writes each construct
 * with Oniguruma's meaning:
 *
 *   \s \S          Unicode White_Space (JS's \s adds U+FEFF and lacks U+0085)
 *   \d \w \b \h    Unicode digits / word characters / word boundary; \h is a hex digit
 *   .  ^  $        any character but "\n"; line anchors that know only "\n"
 *   \A \z \Z       string anchors
 *   (?i:...) (?i)  case-insensitive parts (Node 20 has no inline modifiers): every letter becomes
 *                  the class of the characters that fold to the same character
 *   (?m:...)       Ruby's "m": "." also matches "\n"
 *   (?>...) X*+    atomic groups and possessive quantifiers, as a lookahead that captures and a
 *                  backreference to the capture (lookaheads never backtrack into themselves)
 *   X{2}+          Ruby stacks quantifiers rather than making {n,m}+ possessive
 *   {,n} \x{HHHH} \p{Han} \p{^L} [[:alpha:]] identity escapes, literal "{" and "]"
 *
 * What cannot be written in JavaScript (\G, \K, \R, \X, subexpression calls, absent operators,
 * class intersections, conditionals, extended mode) is an error that names the construct.
 *
 * `jsToOniguruma` goes the other way for the regexes of our own pre-tokenizers, so that an
 * exported tokenizer.json means in the `tokenizers` library what it means here.
 */

/** Why a pattern could not be translated: malformed ('invalid') or valid but not expressible ('unsupported'). */
export class RegexTranslationError extends Error {
  constructor(
    readonly kind: 'invalid' | 'unsupported',
    message: string,
  ) {
    super(message);
  }
}

interface Flags {
  ignoreCase: boolean;
  dotAll: boolean;
}

/** Characters Oniguruma counts as word characters (Unicode), as class contents: with "²³¹¼½¾", which its Latin-1 table adds. */
const WORD = '\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\u00b2\\u00b3\\u00b9\\u00bc-\\u00be';
const WORD_CLASS = `[${WORD}]`;
const NOT_WORD_CLASS = `[^${WORD}]`;
const HEX = '0-9A-Fa-f';

/** An escape that names a set of characters: as class contents (null: only as a whole class) and on its own. */
interface CharSet {
  inClass: string | null;
  alone: string;
}

const SHORTHANDS: Record<string, CharSet> = {
  d: { inClass: '\\p{Nd}', alone: '\\p{Nd}' },
  D: { inClass: '\\P{Nd}', alone: '\\P{Nd}' },
  s: { inClass: '\\p{White_Space}', alone: '\\p{White_Space}' },
  S: { inClass: '\\P{White_Space}', alone: '\\P{White_Space}' },
  w: { inClass: WORD, alone: WORD_CLASS },
  W: { inClass: null, alone: NOT_WORD_CLASS },
  h: { inClass: HEX, alone: `[${HEX}]` },
  H: { inClass: null, alone: `[^${HEX}]` },
};

/** Oniguruma's POSIX bracket classes ([:name:]) in Unicode mode, as class contents. */
const POSIX_CLASSES: Record<string, string> = {
  alpha: '\\p{Alphabetic}',
  alnum: '\\p{Alphabetic}\\p{Nd}',
  digit: '\\p{Nd}',
  lower: '\\p{Lowercase}',
  upper: '\\p{Uppercase}',
  space: '\\p{White_Space}',
  blank: '\\t\\p{Zs}',
  punct: '\\p{P}\\p{S}',
  cntrl: '\\p{Cc}',
  word: WORD,
  xdigit: HEX,
  ascii: '\\0-\\x7f',
};

/** Zero-width assertions, written with lookarounds. */
const ANCHORS: Record<string, string> = {
  A: '(?<![^])',
  z: '(?![^])',
  Z: '(?=\\n?(?![^]))',
  b: `(?:(?<=${WORD_CLASS})(?!${WORD_CLASS})|(?<!${WORD_CLASS})(?=${WORD_CLASS}))`,
  B: `(?:(?<=${WORD_CLASS})(?=${WORD_CLASS})|(?<!${WORD_CLASS})(?!${WORD_CLASS}))`,
};

const UNSUPPORTED_ESCAPES: Record<string, string> = {
  G: '\\G (match start anchor)',
  K: '\\K (keep)',
  R: '\\R (general newline)',
  X: '\\X (extended grapheme cluster)',
  g: '\\g<...> (subexpression call)',
  y: '\\y (text segment boundary)',
  Y: '\\Y (text segment boundary)',
  N: '\\N (non-newline)',
  O: '\\O (true anychar)',
  c: '\\cX (control character)',
  C: '\\C-X (control character)',
  M: '\\M-X (meta character)',
};

const SIMPLE_ESCAPES: Record<string, number> = { t: 0x09, n: 0x0a, v: 0x0b, f: 0x0c, r: 0x0d, a: 0x07, e: 0x1b };

/** Characters that must be escaped to be literal in a JS u-mode pattern (outside / inside a class). */
const JS_SYNTAX = new Set('^$\\.*+?()[]{}|/');
const JS_CLASS_SYNTAX = new Set('\\]^-[');

/** Translate an Oniguruma (Ruby syntax) pattern into the source of an equivalent JS RegExp with flags 'gu'. */
export function onigurumaToJs(pattern: string): string {
  const source = new OnigTranslator(pattern).translate();
  try {
    new RegExp(source, 'gu');
  } catch (err) {
    throw new RegexTranslationError('invalid', (err as Error).message.replace(/^Invalid regular expression: /, ''));
  }
  return source;
}

class OnigTranslator {
  private i = 0;
  /** Names for the groups we write: plain captures become (?<gN>...) so that our own groups never renumber them. */
  private captures = 0;
  private atomics = 0;

  constructor(private readonly src: string) {}

  translate(): string {
    const out = this.alternation({ ignoreCase: false, dotAll: false });
    if (this.i < this.src.length) throw this.invalid(`unmatched ")"`);
    return out;
  }

  private invalid(what: string): RegexTranslationError {
    return new RegexTranslationError('invalid', `${what} at offset ${this.i}`);
  }

  private unsupported(what: string): RegexTranslationError {
    return new RegexTranslationError('unsupported', `${what} at offset ${this.i} has no JavaScript equivalent`);
  }

  private alternation(flags: Flags): string {
    const parts = [this.sequence(flags)];
    while (this.src[this.i] === '|') {
      this.i++;
      parts.push(this.sequence(flags));
    }
    return parts.join('|');
  }

  private sequence(flags: Flags): string {
    let out = '';
    while (this.i < this.src.length && this.src[this.i] !== '|' && this.src[this.i] !== ')') {
      const isolated = /^\(\?([imx]*)(?:-([imx]*))?\)/.exec(this.src.slice(this.i));
      if (isolated) {
        // An isolated option applies up to the end of the enclosing group, alternatives included:
        // Oniguruma reads "ab(?i)c|d" as "ab(?i:c|d)".
        this.i += isolated[0].length;
        return `${out}(?:${this.alternation(this.withOptions(flags, isolated[1], isolated[2] ?? ''))})`;
      }
      out += this.quantified(flags);
    }
    return out;
  }

  private withOptions(flags: Flags, on: string, off: string): Flags {
    if (on.includes('x') && !off.includes('x')) throw this.unsupported('extended mode (?x)');
    const next = { ...flags };
    if (on.includes('i')) next.ignoreCase = true;
    if (off.includes('i')) next.ignoreCase = false;
    if (on.includes('m')) next.dotAll = true;
    if (off.includes('m')) next.dotAll = false;
    return next;
  }

  /** An atom and the quantifiers after it. */
  private quantified(flags: Flags): string {
    let out = this.atom(flags);
    let quantified = false;
    for (let q = this.quantifier(); q !== null; q = this.quantifier()) {
      if (quantified) out = `(?:${out})`; // Ruby stacks quantifiers: a{2}+ is (?:a{2})+
      let mode: 'greedy' | 'lazy' | 'possessive' = 'greedy';
      if (this.src[this.i] === '?') mode = 'lazy';
      else if (this.src[this.i] === '+' && !q.braced) mode = 'possessive';
      if (mode !== 'greedy') this.i++;
      if (mode === 'possessive') {
        out = this.atomic(`${out}${q.text}`);
      } else {
        out = `${out}${q.text}${mode === 'lazy' ? '?' : ''}`;
      }
      quantified = true;
    }
    return out;
  }

  /** An atomic group: a lookahead captures what the group would match, then a backreference consumes exactly that. */
  private atomic(inner: string): string {
    const name = `a${++this.atomics}`;
    return `(?:(?=(?<${name}>${inner}))\\k<${name}>)`;
  }

  private quantifier(): { text: string; braced: boolean } | null {
    const c = this.src[this.i];
    if (c === '*' || c === '+' || c === '?') {
      this.i++;
      return { text: c, braced: false };
    }
    if (c === '{') {
      const m = /^\{(\d*)(?:(,)(\d*))?\}/.exec(this.src.slice(this.i));
      if (m && (m[1] !== '' || (m[2] && m[3] !== ''))) {
        this.i += m[0].length;
        const min = m[1] === '' ? '0' : m[1];
        return { text: m[2] ? `{${min},${m[3]}}` : `{${min}}`, braced: true };
      }
    }
    return null;
  }

  private atom(flags: Flags): string {
    const c = this.src[this.i];
    switch (c) {
      case '(':
        return this.group(flags);
      case '[':
        this.i++;
        return this.charClass(flags);
      case '\\':
        return this.escape(flags);
      case '.':
        this.i++;
        return flags.dotAll ? '[^]' : '[^\\n]';
      case '^':
        this.i++;
        return '(?<![^\\n])';
      case '$':
        this.i++;
        return '(?![^\\n])';
      case '*':
      case '+':
      case '?':
        throw this.invalid(`nothing to repeat before "${c}"`);
      case '{':
        if (this.quantifier() !== null) throw this.invalid('nothing to repeat before "{"');
        break;
    }
    const cp = this.src.codePointAt(this.i)!;
    this.i += cp > 0xffff ? 2 : 1;
    return literal(cp, flags.ignoreCase);
  }

  private group(flags: Flags): string {
    const rest = this.src.slice(this.i);
    let m: RegExpExecArray | null;
    if (rest.startsWith('(?#')) {
      const end = this.src.indexOf(')', this.i);
      if (end < 0) throw this.invalid('unterminated comment');
      this.i = end + 1;
      return '';
    }
    if (rest.startsWith('(?>')) {
      this.i += 3;
      const body = this.alternation(flags);
      this.close();
      return this.atomic(body);
    }
    // What opens the group in the source, what opens it in the output, and the flags inside.
    let opening: string;
    let head: string;
    let inner = flags;
    if ((m = /^\(\?(:|=|!|<=|<!)/.exec(rest))) {
      [opening, head] = [m[0], m[0]];
    } else if ((m = /^\(\?(?:<([A-Za-z_]\w*)>|'([A-Za-z_]\w*)')/.exec(rest))) {
      [opening, head] = [m[0], `(?<${m[1] ?? m[2]}>`];
    } else if ((m = /^\(\?([imx]*)(?:-([imx]*))?:/.exec(rest))) {
      [opening, head] = [m[0], '(?:'];
      inner = this.withOptions(flags, m[1], m[2] ?? '');
    } else if (rest.startsWith('(?')) {
      throw this.unsupported(`the group "${rest.slice(0, 3)}"`);
    } else {
      [opening, head] = ['(', `(?<g${++this.captures}>`];
    }
    this.i += opening.length;
    const body = this.alternation(inner);
    this.close();
    return `${head}${body})`;
  }

  private close(): void {
    if (this.src[this.i] !== ')') throw this.invalid('missing ")"');
    this.i++;
  }

  /** A backslash escape outside a class. */
  private escape(flags: Flags): string {
    const c = this.src[this.i + 1];
    if (c === undefined) throw this.invalid('trailing backslash');
    const set = this.charSetEscape();
    if (set) return set.alone;
    if (ANCHORS[c] !== undefined) {
      this.i += 2;
      return ANCHORS[c];
    }
    if (/[1-9]/.test(c)) {
      const m = /^\\(\d+)/.exec(this.src.slice(this.i))!;
      this.i += m[0].length;
      return `\\k<g${m[1]}>`;
    }
    if (c === 'k') {
      const m = /^\\k(?:<([A-Za-z_]\w*)>|'([A-Za-z_]\w*)')/.exec(this.src.slice(this.i));
      if (!m) throw this.unsupported('this \\k backreference');
      this.i += m[0].length;
      return `\\k<${m[1] ?? m[2]}>`;
    }
    return literal(this.charEscape(), flags.ignoreCase);
  }

  /** \d \w \s \h (and their negations) and \p{...}: a set of characters, or null when the escape is not one. */
  private charSetEscape(): CharSet | null {
    const c = this.src[this.i + 1];
    if (SHORTHANDS[c] !== undefined) {
      this.i += 2;
      return SHORTHANDS[c];
    }
    if (c === 'p' || c === 'P') {
      const m = /^\\[pP]\{(\^?)([^}]*)\}/.exec(this.src.slice(this.i));
      if (!m) throw this.invalid('malformed \\p{...}');
      this.i += m[0].length;
      return propertySet(m[2], (c === 'P') !== (m[1] === '^'), () => this.unsupported(`the property \\p{${m[2]}}`));
    }
    return null;
  }

  /** An escape that stands for one character (also inside classes); advances past it. */
  private charEscape(): number {
    const c = this.src[this.i + 1];
    if (UNSUPPORTED_ESCAPES[c] !== undefined) throw this.unsupported(UNSUPPORTED_ESCAPES[c]);
    if (SIMPLE_ESCAPES[c] !== undefined) {
      this.i += 2;
      return SIMPLE_ESCAPES[c];
    }
    const rest = this.src.slice(this.i);
    const hex = /^\\x\{([0-9A-Fa-f]{1,8})\}/.exec(rest) ?? /^\\x([0-9A-Fa-f]{1,2})/.exec(rest) ?? /^\\u([0-9A-Fa-f]{4})/.exec(rest);
    const octal = /^\\(0[0-7]{0,2})/.exec(rest);
    const m = hex ?? octal;
    if (m) {
      this.i += m[0].length;
      const cp = parseInt(m[1], hex ? 16 : 8);
      if (cp > 0x10ffff) throw this.invalid(`code point ${m[1]} is beyond U+10FFFF`);
      return cp;
    }
    if (/[A-Za-z0-9]/.test(c)) throw this.unsupported(`the escape \\${c}`);
    // Any other escaped character stands for itself.
    const cp = this.src.codePointAt(this.i + 1)!;
    this.i += cp > 0xffff ? 3 : 2;
    return cp;
  }

  /**
   * A bracket class, after its "[". Its parts are written as JS class contents where possible;
   * sets that only exist as whole classes (\W, nested classes) become alternatives around it.
   */
  private charClass(flags: Flags): string {
    const negated = this.src[this.i] === '^';
    if (negated) this.i++;
    let contents = '';
    const alternatives: string[] = [];
    let first = true;
    for (;;) {
      const c = this.src[this.i];
      if (c === undefined) throw this.invalid('unterminated character class');
      if (c === ']' && !first) {
        this.i++;
        break;
      }
      first = false;
      if (this.src.startsWith('&&', this.i)) throw this.unsupported('class intersection "&&"');
      if (c === '[') {
        const posix = /^\[:(\^?)([a-z]+):\]/.exec(this.src.slice(this.i));
        if (posix) {
          const set = POSIX_CLASSES[posix[2]];
          if (set === undefined) throw this.unsupported(`the POSIX class [:${posix[2]}:]`);
          this.i += posix[0].length;
          if (posix[1]) alternatives.push(`[^${set}]`);
          else contents += set;
          continue;
        }
        this.i++;
        alternatives.push(this.charClass(flags));
        continue;
      }
      if (c === '\\') {
        const set = this.charSetEscape();
        if (set) {
          if (set.inClass !== null) contents += set.inClass;
          else alternatives.push(set.alone);
          continue;
        }
      }
      const from = this.classChar();
      if (this.src[this.i] === '-' && this.src[this.i + 1] !== ']' && this.src[this.i + 1] !== undefined) {
        this.i++;
        if (this.src[this.i] === '[' || (this.src[this.i] === '\\' && /[dDsSwWhHpP]/.test(this.src[this.i + 1]))) {
          throw this.invalid('a range cannot end in a set of characters');
        }
        const to = this.classChar();
        if (to < from) throw this.invalid('range out of order in character class');
        contents += classRange(from, to, flags.ignoreCase);
      } else {
        contents += classRange(from, from, flags.ignoreCase);
      }
    }
    if (alternatives.length === 0) return `[${negated ? '^' : ''}${contents}]`;
    if (!negated) return `(?:${contents === '' ? '' : `[${contents}]|`}${alternatives.join('|')})`;
    return `(?:(?!${alternatives.join('|')})[^${contents}])`;
  }

  /** One character inside a class (literal or escaped). */
  private classChar(): number {
    if (this.src[this.i] === '\\') return this.charEscape();
    const cp = this.src.codePointAt(this.i)!;
    this.i += cp > 0xffff ? 2 : 1;
    return cp;
  }
}

/** \p{name}: JS knows general categories and binary properties by name, scripts as Script=name. */
function propertySet(name: string, negate: boolean, unsupported: () => Error): CharSet {
  const p = negate ? 'P' : 'p';
  const key = name.replace(/[\s_-]/g, '').toLowerCase();
  // The POSIX names work as properties too, except that \p{Punct} is only \p{P} where [[:punct:]] adds symbols.
  const posix = key === 'any' ? '\\0-\\u{10FFFF}' : key === 'punct' ? '\\p{P}' : Object.hasOwn(POSIX_CLASSES, key) ? POSIX_CLASSES[key] : undefined;
  if (posix !== undefined) return negate ? { inClass: null, alone: `[^${posix}]` } : { inClass: posix, alone: `[${posix}]` };
  // Oniguruma ignores case in property names; JS wants them as Unicode spells them ("Lu", "Han").
  const spellings = [name, name.charAt(0).toUpperCase() + name.slice(1).toLowerCase(), name.toUpperCase()];
  for (const candidate of spellings.flatMap((n) => [n, `Script=${n}`, `General_Category=${n}`])) {
    try {
      new RegExp(`\\p{${candidate}}`, 'u');
      return { inClass: `\\${p}{${candidate}}`, alone: `\\${p}{${candidate}}` };
    } catch {
      // not this spelling
    }
  }
  throw unsupported();
}

function literal(cp: number, ignoreCase: boolean): string {
  const variants = ignoreCase ? caseVariants(cp) : [cp];
  if (variants.length > 1) return `[${variants.map(classChar).join('')}]`;
  const ch = String.fromCodePoint(cp);
  return JS_SYNTAX.has(ch) ? `\\${ch}` : escapeControl(cp);
}

function classRange(from: number, to: number, ignoreCase: boolean): string {
  let out = from === to ? classChar(from) : `${classChar(from)}-${classChar(to)}`;
  if (ignoreCase) {
    if (to - from > 0x3000) throw new RegexTranslationError('unsupported', 'a case-insensitive range this large');
    for (let cp = from; cp <= to; cp++) {
      for (const v of caseVariants(cp)) if (v < from || v > to) out += classChar(v);
    }
  }
  return out;
}

function classChar(cp: number): string {
  const ch = String.fromCodePoint(cp);
  return JS_CLASS_SYNTAX.has(ch) ? `\\${ch}` : escapeControl(cp);
}

/** Control and invisible characters as \u{...}, so that the translated source stays readable. */
function escapeControl(cp: number): string {
  return cp < 0x20 || cp === 0x7f || (cp >= 0x80 && cp < 0xa0) ? `\\u{${cp.toString(16)}}` : String.fromCodePoint(cp);
}

// ---------------------------------------------------------------------------------------------
// Case folding: the characters that match `cp` case-insensitively.

/** Code points linked by toLowerCase/toUpperCase (single characters only), built on first use. */
let caseLinks: Map<number, number[]> | undefined;

function caseVariants(cp: number): number[] {
  if (!caseLinks) caseLinks = buildCaseLinks();
  // Walk the links, then keep what a case-insensitive JS match (simple case folding, as
  // Oniguruma uses) accepts: toUpperCase links "ı" to "I", but "ı" does not fold to "i".
  const seen = new Set([cp]);
  const todo = [cp];
  while (todo.length > 0) {
    for (const next of caseLinks.get(todo.pop()!) ?? []) {
      if (!seen.has(next)) {
        seen.add(next);
        todo.push(next);
      }
    }
  }
  const matcher = new RegExp(`^${literal(cp, false)}$`, 'iu');
  return [...seen].filter((v) => v === cp || matcher.test(String.fromCodePoint(v))).sort((a, b) => a - b);
}

function buildCaseLinks(): Map<number, number[]> {
  const links = new Map<number, number[]>();
  const link = (a: number, b: number): void => {
    links.set(a, [...(links.get(a) ?? []), b]);
    links.set(b, [...(links.get(b) ?? []), a]);
  };
  for (let cp = 0; cp < 0x20000; cp++) {
    if (cp >= 0xd800 && cp < 0xe000) continue;
    const ch = String.fromCodePoint(cp);
    for (const other of [ch.toLowerCase(), ch.toUpperCase()]) {
      const o = other.codePointAt(0)!;
      if (other !== ch && other.length === String.fromCodePoint(o).length) link(cp, o);
    }
  }
  return links;
}

// ---------------------------------------------------------------------------------------------
// JavaScript -> Oniguruma, for the pre-tokenizer regexes we export.

/** JS's own \s (u mode), spelled out: it is not Oniguruma's. */
const JS_WHITESPACE = '\\t\\n\\x{b}\\f\\r \\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}\\x{feff}';
const JS_SETS: Record<string, CharSet> = {
  d: { inClass: '0-9', alone: '[0-9]' },
  D: { inClass: null, alone: '[^0-9]' },
  w: { inClass: 'A-Za-z0-9_', alone: '[A-Za-z0-9_]' },
  W: { inClass: null, alone: '[^A-Za-z0-9_]' },
  s: { inClass: JS_WHITESPACE, alone: `[${JS_WHITESPACE}]` },
  S: { inClass: null, alone: `[^${JS_WHITESPACE}]` },
};

/**
 * Write a JS u-mode pattern (no flags besides g/u) in Oniguruma's syntax with the same meaning.
 * Covers what tokenizer regexes use: classes, \p{...}, escapes, groups and lookarounds, quantifiers.
 */
export function jsToOniguruma(source: string): string {
  let out = '';
  let inClass = false;
  for (let i = 0; i < source.length; ) {
    const c = source[i];
    if (c === '\\') {
      const [text, length] = jsEscapeToOnig(source, i, inClass);
      out += text;
      i += length;
      continue;
    }
    if (inClass) {
      if (c === ']') inClass = false;
      // Oniguruma reads "[" in a class as a nested class and "&&" as an intersection.
      out += c === '[' ? '\\[' : c === '&' && source[i + 1] === '&' ? '\\&' : c;
      i++;
      continue;
    }
    if (c === '[') {
      inClass = true;
      if (source.startsWith('[^]', i)) {
        out += '[\\x{0}-\\x{10ffff}]';
        i += 3;
        inClass = false;
        continue;
      }
      out += c;
      i++;
      if (source[i] === '^') out += source[i++];
      continue;
    }
    // JS without the m/s flags: ^ $ are string anchors, "." is anything but a line terminator.
    out += c === '^' ? '\\A' : c === '$' ? '\\z' : c === '.' ? '[^\\n\\r\\x{2028}\\x{2029}]' : c;
    i++;
  }
  return out;
}

function jsEscapeToOnig(source: string, i: number, inClass: boolean): [string, number] {
  const rest = source.slice(i);
  const c = source[i + 1];
  const set = JS_SETS[c];
  if (set) {
    if (inClass && set.inClass === null) throw new RegexTranslationError('unsupported', `\\${c} inside a class`);
    return [inClass ? set.inClass! : set.alone, 2];
  }
  let m = /^\\[pP]\{(?:Script|sc|General_Category|gc)=([^}]+)\}/.exec(rest);
  if (m) return [`\\${c}{${m[1]}}`, m[0].length];
  m = /^\\u\{([0-9A-Fa-f]+)\}/.exec(rest) ?? /^\\u([0-9A-Fa-f]{4})/.exec(rest) ?? /^\\x([0-9A-Fa-f]{2})/.exec(rest);
  if (m) return [`\\x{${parseInt(m[1], 16).toString(16)}}`, m[0].length];
  if (c === '0') return ['\\x{0}', 2];
  if (c === 'v') return ['\\x{b}', 2];
  if (c === 'b' && !inClass) throw new RegexTranslationError('unsupported', 'JS \\b (ASCII word boundary)');
  return [source.slice(i, i + 2), 2];
}
