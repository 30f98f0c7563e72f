/**
 * The text side of a Hugging Face tokenizer.json, with the `tokenizers` library's semantics:
 * normalizers (text -> text), pre-tokenizers (text -> words), and the added-token matcher that
 * runs before both. The model (BPE, WordPiece) is not here: hf.ts hands the words to ours.
 *
 * Every pre-tokenizer is a split of each piece by a pattern, then one of five behaviors for the
 * matched delimiters (the library's SplitDelimiterBehavior):
 *
 *   Removed             delimiters dropped            "a, b" by "," -> "a", " b"
 *   Isolated            delimiters are pieces         -> "a", ",", " b"
 *   MergedWithPrevious  a delimiter joins the piece before it   -> "a,", " b"
 *   MergedWithNext      a delimiter joins the piece after it    -> "a", ", b"
 *   Contiguous          runs of delimiters are one piece
 *
 * `invert` swaps what counts as a delimiter (Whitespace keeps its regex's matches and removes the
 * rest). Predicates on characters (whitespace, punctuation, digits) match one character at a time,
 * so "!!" is two delimiters. Empty pieces are dropped. Character classes follow the Rust library:
 * its `char::is_whitespace` is Unicode White_Space, its regex crate's \w is Alphabetic, marks,
 * decimal digits, connector punctuation and Join_Control.
 */
import { ModelError } from '../errors.js';
import { badField, jsonChild, type JsonPlace, type NormalizerJson, type PatternJson, type PreTokenizerJson, type SplitBehavior } from '../formats/tokenizer-json.js';
import { onigurumaToJs, RegexTranslationError } from './hf-regex.js';

/** Text -> text, applied to each fragment between added tokens. */
export type Normalizer = (text: string) => string;

/**
 * Text -> words. `atStart` says the text begins the input (offset 0 of what was given to encode):
 * Metaspace's prepend_scheme "first" adds its "▁" only there.
 */
export type PreTokenizer = (text: string, atStart: boolean) => string[];

// ---------------------------------------------------------------------------------------------
// Patterns

/** A JS regex for a tokenizer.json pattern ({"String": literal} or {"Regex": Oniguruma}); errors name `place`. */
export function compilePattern(pattern: PatternJson, place: JsonPlace): RegExp {
  if ('String' in pattern) return new RegExp(escapeRegExp(pattern.String), 'gu');
  try {
    return new RegExp(onigurumaToJs(pattern.Regex), 'gu');
  } catch (err) {
    if (!(err instanceof RegexTranslationError)) throw err;
    const where = jsonChild(place, 'Regex');
    if (err.kind === 'invalid') throw badField(where, `bad regular expression ${JSON.stringify(pattern.Regex)}: ${err.message}`);
    throw new ModelError('unsupported_regex', `${where.file}: ${where.path}: the regular expression ${JSON.stringify(pattern.Regex)} cannot be run here: ${err.message}`);
  }
}

function escapeRegExp(text: string): string {
  return text.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&');
}

/** Pieces of `text`: [start, end, isDelimiter], covering it in order (Rust's Pattern::find_matches). */
function findMatches(text: string, re: RegExp, invert: boolean): [number, number, boolean][] {
  const out: [number, number, boolean][] = [];
  let from = 0;
  re.lastIndex = 0;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    const at = m.index;
    const end = at + m[0].length;
    if (m[0].length === 0) {
      // An empty match splits nothing; step over one character as the library's regex engines do.
      re.lastIndex = end + (text.codePointAt(end)! > 0xffff ? 2 : 1);
      if (at > from) out.push([from, at, invert]);
      out.push([at, at, !invert]);
      from = at;
      if (end >= text.length) break;
      continue;
    }
    if (at > from) out.push([from, at, invert]);
    out.push([at, end, !invert]);
    from = end;
  }
  if (from < text.length) out.push([from, text.length, invert]);
  return out;
}

/** The [start, end) ranges `text` splits into at the matches of `re`, with the given behavior (NormalizedString::split). */
function splitRanges(text: string, re: RegExp, behavior: SplitBehavior, invert: boolean): [number, number][] {
  if (text.length === 0) return [];
  const matches = findMatches(text, re, invert);
  const kept: [number, number][] = [];
  let previousMatch = false;
  switch (behavior) {
    case 'Isolated':
      for (const [s, e] of matches) kept.push([s, e]);
      break;
    case 'Removed':
      for (const [s, e, isMatch] of matches) if (!isMatch) kept.push([s, e]);
      break;
    case 'Contiguous':
      for (const [s, e, isMatch] of matches) {
        if (isMatch === previousMatch && kept.length > 0) kept[kept.length - 1][1] = e;
        else kept.push([s, e]);
        previousMatch = isMatch;
      }
      break;
    case 'MergedWithPrevious':
      for (const [s, e, isMatch] of matches) {
        if (isMatch && !previousMatch && kept.length > 0) kept[kept.length - 1][1] = e;
        else kept.push([s, e]);
        previousMatch = isMatch;
      }
      break;
    case 'MergedWithNext':
      for (let i = matches.length - 1; i >= 0; i--) {
        const [s, e, isMatch] = matches[i];
        if (isMatch && !previousMatch && kept.length > 0) kept[kept.length - 1][0] = s;
        else kept.push([s, e]);
        previousMatch = isMatch;
      }
      kept.reverse();
      break;
  }
  return kept.filter(([s, e]) => e > s);
}

/** Split `text` at the matches of `re` with the given behavior; empty pieces are dropped. */
export function splitText(text: string, re: RegExp, behavior: SplitBehavior, invert = false): string[] {
  return splitRanges(text, re, behavior, invert).map(([s, e]) => text.slice(s, e));
}

// ---------------------------------------------------------------------------------------------
// Character classes of the Rust library

/** The regex crate's \w (Unicode). */
const RUST_WORD = '\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\p{Join_Control}';
const WHITESPACE_CHAR = /\p{White_Space}/gu;
/** char::is_ascii_punctuation or a Unicode punctuation category (BertPreTokenizer, Punctuation). */
const PUNCTUATION_CHAR = /[!-/:-@[-`{-~\p{P}]/gu;
/** char::is_numeric: any Unicode number (Nd, Nl, No). */
const NUMERIC_CHAR = /\p{N}/gu;
/** The Whitespace pre-tokenizer's words: \w+|[^\w\s]+. */
const WHITESPACE_WORDS = new RegExp(`[${RUST_WORD}]+|[^${RUST_WORD}\\p{White_Space}]+`, 'gu');
/** The ByteLevel pre-tokenizer's GPT-2 regex, compiled by Oniguruma. */
const BYTE_LEVEL_REGEX = new RegExp(onigurumaToJs("'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"), 'gu');

const RUST_WORD_START = new RegExp(`^[${RUST_WORD}]`, 'u');
const RUST_WORD_END = new RegExp(`[${RUST_WORD}]$`, 'u');

// ---------------------------------------------------------------------------------------------
// Normalizers

/** The normalizer a tokenizer.json describes (null: none). */
export function buildNormalizer(json: NormalizerJson | null, place: JsonPlace): Normalizer | undefined {
  if (json === null) return undefined;
  switch (json.type) {
    case 'NFC':
    case 'NFD':
    case 'NFKC':
    case 'NFKD': {
      const form = json.type;
      return (t) => t.normalize(form);
    }
    case 'Lowercase':
      return lowercase;
    case 'StripAccents':
      return (t) => t.replace(/\p{M}/gu, '');
    case 'Strip': {
      const { strip_left: left, strip_right: right } = json;
      return (t) => t.replace(left ? /^\p{White_Space}+/u : /^$/u, '').replace(right ? /\p{White_Space}+$/u : /^$/u, '');
    }
    case 'Replace': {
      const re = compilePattern(json.pattern, jsonChild(place, 'pattern'));
      const content = json.content;
      return (t) => t.replace(re, () => content);
    }
    case 'Prepend': {
      const prefix = json.prepend;
      return (t) => (t.length > 0 ? prefix + t : t);
    }
    case 'BertNormalizer':
      return bertNormalizer(json.clean_text, json.handle_chinese_chars, json.strip_accents ?? json.lowercase, json.lowercase);
    case 'Sequence': {
      const steps = json.normalizers.map((n, i) => buildNormalizer(n, jsonChild(jsonChild(place, 'normalizers'), i))!);
      return (t) => steps.reduce((text, step) => step(text), t);
    }
  }
}

/** Lowercase one character at a time, as the library does (so a final "Σ" becomes "σ", not "ς"). */
function lowercase(text: string): string {
  // eslint-disable-next-line no-control-regex
  if (/^[\0-\x7f]*$/.test(text)) return text.toLowerCase();
  let out = '';
  for (const ch of text) out += ch.toLowerCase();
  return out;
}

/** CJK ideographs BERT surrounds with spaces. */
const CJK = /[\u{4E00}-\u{9FFF}\u{3400}-\u{4DBF}\u{20000}-\u{2A6DF}\u{2A700}-\u{2B73F}\u{2B740}-\u{2B81F}\u{2B920}-\u{2CEAF}\u{F900}-\u{FAFF}\u{2F800}-\u{2FA1F}]/gu;

function bertNormalizer(cleanText: boolean, chineseChars: boolean, stripAccents: boolean, lower: boolean): Normalizer {
  return (text) => {
    let t = text;
    // Clean: drop NUL, U+FFFD and control, format and private-use characters (tab, newline and
    // carriage return are whitespace); every whitespace character becomes a space. Unassigned
    // code points stay: the library's category tables do not list them as "other".
    if (cleanText) t = t.replace(/[\0\uFFFD]|(?![\t\n\r])[\p{Cc}\p{Cf}\p{Co}]/gu, '').replace(/[\t\n\r\p{White_Space}]/gu, ' ');
    if (chineseChars) t = t.replace(CJK, ' $& ');
    if (stripAccents) t = t.normalize('NFD').replace(/\p{Mn}/gu, '');
    if (lower) t = lowercase(t);
    return t;
  };
}

// ---------------------------------------------------------------------------------------------
// Pre-tokenizers

/** A piece of text being pre-tokenized, and whether it starts the input (offset 0). */
interface Piece {
  text: string;
  atStart: boolean;
}

/** One pre-tokenizer: a piece -> its pieces. */
type Step = (piece: Piece) => Piece[];

/** The pre-tokenizer a tokenizer.json describes (null: the whole fragment is one word). */
export function buildPreTokenizer(json: PreTokenizerJson | null, place: JsonPlace): PreTokenizer {
  if (json === null) return (text) => (text.length > 0 ? [text] : []);
  const step = buildStep(json, place);
  return (text, atStart) => step({ text, atStart }).map((p) => p.text);
}

/** Split a piece; a part starts the input when the piece did and the part is its beginning. */
function splitPiece(piece: Piece, re: RegExp, behavior: SplitBehavior, invert = false): Piece[] {
  return splitRanges(piece.text, re, behavior, invert).map(([s, e]) => ({ text: piece.text.slice(s, e), atStart: piece.atStart && s === 0 }));
}

function buildStep(json: PreTokenizerJson, place: JsonPlace): Step {
  switch (json.type) {
    case 'ByteLevel': {
      // Only the split: our byte-level BPE model writes the bytes as GPT-2's characters itself.
      const { add_prefix_space: addPrefix, use_regex: useRegex } = json;
      return (piece) => {
        const text = addPrefix && !piece.text.startsWith(' ') ? ' ' + piece.text : piece.text;
        if (useRegex) return splitPiece({ text, atStart: piece.atStart }, BYTE_LEVEL_REGEX, 'Isolated');
        return text.length > 0 ? [{ text, atStart: piece.atStart }] : [];
      };
    }
    case 'Split': {
      const re = compilePattern(json.pattern, jsonChild(place, 'pattern'));
      const { behavior, invert } = json;
      return (piece) => splitPiece(piece, re, behavior, invert);
    }
    case 'Metaspace': {
      const { replacement, prepend_scheme: scheme, split } = json;
      const marks = new RegExp(escapeRegExp(replacement), 'gu');
      return (piece) => {
        let text = piece.text.replaceAll(' ', replacement);
        if (!text.startsWith(replacement) && (scheme === 'always' || (scheme === 'first' && piece.atStart))) text = replacement + text;
        if (split) return splitPiece({ text, atStart: piece.atStart }, marks, 'MergedWithNext');
        return text.length > 0 ? [{ text, atStart: piece.atStart }] : [];
      };
    }
    case 'Whitespace':
      return (piece) => splitPiece(piece, WHITESPACE_WORDS, 'Removed', true);
    case 'WhitespaceSplit':
      return (piece) => splitPiece(piece, WHITESPACE_CHAR, 'Removed');
    case 'BertPreTokenizer':
      return (piece) => splitPiece(piece, WHITESPACE_CHAR, 'Removed').flatMap((p) => splitPiece(p, PUNCTUATION_CHAR, 'Isolated'));
    case 'Punctuation': {
      const behavior = json.behavior;
      return (piece) => splitPiece(piece, PUNCTUATION_CHAR, behavior);
    }
    case 'Digits': {
      const behavior = json.individual_digits ? 'Isolated' : 'Contiguous';
      return (piece) => splitPiece(piece, NUMERIC_CHAR, behavior);
    }
    case 'Sequence': {
      const steps = json.pretokenizers.map((p, i) => buildStep(p, jsonChild(jsonChild(place, 'pretokenizers'), i)));
      return (piece) => steps.reduce((pieces, step) => pieces.flatMap(step), [piece]);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Added tokens

export interface AddedTokenRule {
  id: number;
  /** The text matched: the token's content, or its normalized form for a normalized token. */
  text: string;
  special: boolean;
  singleWord: boolean;
  lstrip: boolean;
  rstrip: boolean;
}

interface TrieNode {
  next: Map<number, TrieNode>;
  rule?: AddedTokenRule;
}

/**
 * Finds added tokens in text as the library does: the leftmost match, the longest one there
 * (Aho-Corasick, leftmost-longest), scanning on after each match. A match that is not taken (a
 * single_word token touching a word, a special token when specials are plain text) is skipped
 * whole: the scan resumes after it, so no shorter token inside it is looked for.
 */
export class AddedTokenMatcher {
  private readonly root: TrieNode = { next: new Map() };
  readonly size: number;

  constructor(rules: readonly AddedTokenRule[]) {
    for (const rule of rules) {
      let node = this.root;
      for (let i = 0; i < rule.text.length; i++) {
        const c = rule.text.charCodeAt(i);
        let child = node.next.get(c);
        if (!child) {
          child = { next: new Map() };
          node.next.set(c, child);
        }
        node = child;
      }
      node.rule ??= rule;
    }
    this.size = rules.length;
  }

  /**
   * Split `text` into token ids and text fragments (with their offsets in `text`). Special tokens
   * are matched only when `parseSpecial`.
   */
  split(text: string, parseSpecial: boolean): (number | { text: string; at: number })[] {
    const out: (number | { text: string; at: number })[] = [];
    if (this.size === 0) {
      if (text.length > 0) out.push({ text, at: 0 });
      return out;
    }
    let from = 0; // start of the pending text fragment
    let at = 0;
    while (at < text.length) {
      const found = this.longestAt(text, at);
      if (!found) {
        at++;
        continue;
      }
      const { rule, end } = found;
      if ((rule.special && !parseSpecial) || (rule.singleWord && !this.isSingleWord(text, at, end))) {
        at = end;
        continue;
      }
      let start = at;
      let stop = end;
      if (rule.lstrip) start = Math.max(from, start - trailingSpace(text.slice(from, start)));
      if (rule.rstrip) stop += leadingSpace(text.slice(stop));
      if (start > from) out.push({ text: text.slice(from, start), at: from });
      out.push(rule.id);
      from = at = stop;
    }
    if (from < text.length) out.push({ text: text.slice(from), at: from });
    return out;
  }

  private longestAt(text: string, at: number): { rule: AddedTokenRule; end: number } | undefined {
    let node: TrieNode | undefined = this.root;
    let found: { rule: AddedTokenRule; end: number } | undefined;
    for (let i = at; i < text.length; i++) {
      node = node.next.get(text.charCodeAt(i));
      if (!node) break;
      if (node.rule) found = { rule: node.rule, end: i + 1 };
    }
    return found;
  }

  private isSingleWord(text: string, start: number, end: number): boolean {
    return !RUST_WORD_END.test(text.slice(Math.max(0, start - 2), start)) && !RUST_WORD_START.test(text.slice(end, end + 2));
  }
}

function trailingSpace(text: string): number {
  const m = /\p{White_Space}*$/u.exec(text);
  return m ? m[0].length : 0;
}

function leadingSpace(text: string): number {
  return /^\p{White_Space}*/u.exec(text)![0].length;
}
