/**
 * WordPiece tokenization (BERT and its embedding models: GGUF tokenizer.ggml.model = "bert") the
 * way llama.cpp's WPM tokenizer does it, so our ids equal llama.cpp's, and HF's BertNormalizer +
 * BertPreTokenizer + WordPiece where a tokenizer.json describes the same thing:
 *
 *   1. Split the text around special tokens written literally in it ("[CLS]", "[SEP]", ... when
 *      parseSpecial is on; user-defined tokens always).
 *   2. Cut each fragment into words, one code point at a time: when accents are stripped, each
 *      code point becomes the first code point of its canonical decomposition (NFD; llama.cpp keeps
 *      only that one) and combining marks are dropped; whitespace ends a word; control characters,
 *      NUL and U+FFFD vanish; letters are lowercased when asked; punctuation, ASCII symbols and CJK
 *      ideographs are words of their own.
 *   3. Cover each word greedily from the left with the longest token that fits, where a token at
 *      the start of a word and one that continues it are told apart by a prefix: llama.cpp's GGUF
 *      writes word starts as "▁word" and continuations bare, HF's vocab.txt writes word starts bare
 *      and continuations as "##ing". The vocabulary names its convention. A word that cannot be
 *      covered becomes one [UNK].
 *   4. With addSpecial, [CLS] goes first and [SEP] last (the vocabulary's bos and eos).
 *
 * Decoding prints word-start tokens with a space before them and continuations glued on, and drops
 * the space before the first word; lowercasing and accent stripping cannot be undone, and the
 * spaces around punctuation come out as separate words put them ("hello , world").
 */
import { ModelError } from '../errors.js';
import { getNumberArray, getOptionalBool, getOptionalNumber, getOptionalString, getStringArray, type GGUFFile } from '../formats/gguf.js';
import { EMPTY, TokenizerBase, utf8, type EncodeOptions } from './base.js';
import { WS } from './pretokenizers.js';
import { checkTokenTable, optionalTokenId, SPACE_MARK, TokenType } from './vocab.js';

export interface WordPieceVocab {
  model: 'bert';
  tokens: string[];
  /** 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte (see TokenType). */
  types: Int32Array;
  /** Prefix of tokens that begin a word: "▁" in llama.cpp's GGUF files, "" in HF vocabularies. */
  wordStartPrefix: string;
  /** Prefix of tokens that continue a word: "" in llama.cpp's GGUF files, "##" in HF (continuing_subword_prefix). */
  continuationPrefix: string;
  /** Lowercase letters (BertNormalizer lowercase). */
  lowercase: boolean;
  /** Reduce characters to their base letter and drop combining marks (BertNormalizer strip_accents). */
  stripAccents: boolean;
  /** CJK ideographs are words of their own (BertNormalizer handle_chinese_chars). */
  handleChineseChars: boolean;
  /** A word longer than this many characters is [UNK] whole (HF max_input_chars_per_word); absent: no limit, as llama.cpp. */
  maxInputCharsPerWord?: number;
  /** [CLS] */
  bos: number;
  /** [SEP] */
  eos: number;
  unk: number;
  pad?: number;
  mask?: number;
  addBos: boolean;
  addEos: boolean;
}

/** llama.cpp's defaults for a bert vocabulary when the GGUF does not say otherwise. */
export const WORDPIECE_DEFAULTS = { bos: 101, eos: 102, unk: 100, pad: 0, mask: 103 } as const;

/** Check a vocabulary's arrays and ids agree; `where` names the file in the message. */
export function checkWordPieceVocab(vocab: WordPieceVocab, where: string): void {
  const { bos, eos, unk, pad, mask } = vocab;
  checkTokenTable(where, vocab.tokens, vocab.types, { bos, eos, unk, pad, mask }, ['pad', 'mask']);
}

/** Build a WordPiece vocabulary from a GGUF file's tokenizer.ggml.* metadata (llama.cpp's "▁" word starts). */
export function wordPieceVocabFromGGUF(file: GGUFFile): WordPieceVocab {
  const where = file.path;
  const model = getOptionalString(file, 'tokenizer.ggml.model');
  if (model === undefined) throw new ModelError('missing_key', `${where}: metadata key "tokenizer.ggml.model" is missing (the file has no tokenizer)`);
  if (model !== 'bert') {
    throw new ModelError('unsupported_tokenizer', `${where}: tokenizer.ggml.model "${model}" is not a WordPiece tokenizer (expected bert)`);
  }
  const tokens = getStringArray(file, 'tokenizer.ggml.tokens');
  const n = tokens.length;
  const types = file.metadata.has('tokenizer.ggml.token_type') ? getNumberArray(file, 'tokenizer.ggml.token_type') : undefined;
  const lowercase = getOptionalBool(file, 'tokenizer.ggml.normalizer.lowercase') ?? true;
  const vocab: WordPieceVocab = {
    model: 'bert',
    tokens,
    types: types ? Int32Array.from(types) : new Int32Array(n).fill(TokenType.normal),
    wordStartPrefix: SPACE_MARK,
    continuationPrefix: '',
    lowercase,
    stripAccents: getOptionalBool(file, 'tokenizer.ggml.normalizer.strip_accents') ?? lowercase,
    handleChineseChars: true,
    bos: getOptionalNumber(file, 'tokenizer.ggml.bos_token_id') ?? getOptionalNumber(file, 'tokenizer.ggml.cls_token_id') ?? WORDPIECE_DEFAULTS.bos,
    // "seperator" is GGUF's spelling.
    eos: getOptionalNumber(file, 'tokenizer.ggml.seperator_token_id') ?? WORDPIECE_DEFAULTS.eos,
    unk: getOptionalNumber(file, 'tokenizer.ggml.unknown_token_id') ?? WORDPIECE_DEFAULTS.unk,
    pad: optionalTokenId(file, 'tokenizer.ggml.padding_token_id', n) ?? optionalDefault(WORDPIECE_DEFAULTS.pad, n),
    mask: optionalTokenId(file, 'tokenizer.ggml.mask_token_id', n) ?? optionalDefault(WORDPIECE_DEFAULTS.mask, n),
    // llama.cpp adds [CLS] and [SEP] whenever special tokens are asked for, whatever the add_* flags say.
    addBos: true,
    addEos: true,
  };
  checkWordPieceVocab(vocab, where);
  return vocab;
}

const optionalDefault = (id: number, n: number): number | undefined => (id < n ? id : undefined);

// ---------------------------------------------------------------------------------------------
// Code point properties, as llama.cpp's tables give them (Unicode categories; its whitespace).

const WHITESPACE = 1;
const CONTROL = 2;
const MARK = 4;
const PUNCTUATION = 8;
const SYMBOL = 16;
const KNOWN = 128;

const IS_WHITESPACE = new RegExp(`[${WS}]`, 'u');
const IS_CONTROL = /\p{C}/u;
const IS_MARK = /\p{M}/u;
const IS_PUNCTUATION = /\p{P}/u;
const IS_SYMBOL = /\p{S}/u;

/** Flags of the BMP's code points, filled in on first use (KNOWN marks a filled entry). */
const bmpFlags = new Uint8Array(0x10000);
/** Lowercase and NFD-base of the BMP's code points, filled in on first use (-1: not yet). */
const bmpLower = new Int32Array(0x10000).fill(-1);
const bmpBase = new Int32Array(0x10000).fill(-1);

function classify(cp: number): number {
  const ch = String.fromCodePoint(cp);
  return (
    (IS_WHITESPACE.test(ch) ? WHITESPACE : 0) |
    (IS_CONTROL.test(ch) ? CONTROL : 0) |
    (IS_MARK.test(ch) ? MARK : 0) |
    (IS_PUNCTUATION.test(ch) ? PUNCTUATION : 0) |
    (IS_SYMBOL.test(ch) ? SYMBOL : 0)
  );
}

function flagsOf(cp: number): number {
  if (cp >= 0x10000) return classify(cp);
  let flags = bmpFlags[cp];
  if (flags === 0) bmpFlags[cp] = flags = classify(cp) | KNOWN;
  return flags;
}

/** The first code point of the lowercase form (llama.cpp's table keeps only that one). */
function lowerOf(cp: number): number {
  if (cp < 0x80) return cp >= 0x41 && cp <= 0x5a ? cp + 0x20 : cp;
  const cached = cp < 0x10000 ? bmpLower[cp] : -1;
  if (cached >= 0) return cached;
  const lower = String.fromCodePoint(cp).toLowerCase().codePointAt(0)!;
  if (cp < 0x10000) bmpLower[cp] = lower;
  return lower;
}

/** The first code point of the canonical decomposition ("é" -> "e"), as llama.cpp's NFD table. */
function baseOf(cp: number): number {
  if (cp < 0xc0) return cp;
  const cached = cp < 0x10000 ? bmpBase[cp] : -1;
  if (cached >= 0) return cached;
  const base = String.fromCodePoint(cp).normalize('NFD').codePointAt(0)!;
  if (cp < 0x10000) bmpBase[cp] = base;
  return base;
}

/** CJK ideographs, as BERT lists them (0x2B920, not 0x2B820, as in HF's code). */
function isChineseChar(cp: number): boolean {
  return (
    (cp >= 0x4e00 && cp <= 0x9fff) ||
    (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0x20000 && cp <= 0x2a6df) ||
    (cp >= 0x2a700 && cp <= 0x2b73f) ||
    (cp >= 0x2b740 && cp <= 0x2b81f) ||
    (cp >= 0x2b920 && cp <= 0x2ceaf) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0x2f800 && cp <= 0x2fa1f)
  );
}

export interface BertNormalization {
  lowercase: boolean;
  stripAccents: boolean;
  handleChineseChars: boolean;
}

/** Step 2: the words of `text` after BERT's normalization (see the file header). */
export function bertPreTokenize(text: string, opts: BertNormalization): string[] {
  const words: string[] = [];
  let word = '';
  for (const ch of text) {
    let cp = ch.codePointAt(0)!;
    if (opts.stripAccents) cp = baseOf(cp);
    const flags = flagsOf(cp);
    if (flags & WHITESPACE) {
      if (word) words.push(word);
      word = '';
      continue;
    }
    if (cp === 0 || cp === 0xfffd || flags & CONTROL) continue;
    if (opts.stripAccents && flags & MARK) continue;
    const out = String.fromCodePoint(opts.lowercase ? lowerOf(cp) : cp);
    if (flags & PUNCTUATION || (cp < 0x7f && flags & SYMBOL) || (opts.handleChineseChars && isChineseChar(cp))) {
      if (word) words.push(word);
      words.push(out);
      word = '';
    } else {
      word += out;
    }
  }
  if (word) words.push(word);
  return words;
}

// ---------------------------------------------------------------------------------------------

/** Words remembered with their ids; cleared when it grows past this. */
const WORD_CACHE_LIMIT = 50_000;

export interface WordPieceTokenizerOptions {
  /** Cuts a text fragment into words; replaces BERT's pre-tokenization (bertPreTokenize with the vocabulary's flags). */
  split?: (text: string) => string[];
}

export class WordPieceTokenizer extends TokenizerBase {
  readonly vocab: WordPieceVocab;
  /** Token text -> id. Later ids win on duplicates, as in llama.cpp's token_to_id map. */
  private readonly ids = new Map<string, number>();
  /** The longest token, in UTF-16 units: no match can be longer. */
  private readonly maxTokenLength: number;
  private readonly cache = new Map<string, number[]>();
  private readonly split: (text: string) => string[];

  constructor(vocab: WordPieceVocab, opts: WordPieceTokenizerOptions = {}) {
    checkWordPieceVocab(vocab, 'tokenizer');
    super(vocab);
    this.vocab = vocab;
    this.split = opts.split ?? ((text) => bertPreTokenize(text, vocab));
    let longest = 0;
    for (let id = 0; id < vocab.tokens.length; id++) {
      this.ids.set(vocab.tokens[id], id);
      longest = Math.max(longest, vocab.tokens[id].length);
    }
    this.maxTokenLength = longest;
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    const addSpecial = opts.addSpecial ?? true;
    const parseSpecial = opts.parseSpecial ?? false;
    const out: number[] = [];
    if (addSpecial && this.vocab.addBos) out.push(this.vocab.bos);
    for (const part of this.splitSpecials(text, parseSpecial)) {
      if (typeof part === 'number') out.push(part);
      else for (const word of this.split(part)) this.encodeWord(word, out);
    }
    if (addSpecial && this.vocab.addEos) out.push(this.vocab.eos);
    return out;
  }

  /** Decoding starts at the first word, not at the space before it. */
  protected override get stripsSpacePrefix(): boolean {
    return true;
  }

  protected override pieceOf(id: number): Uint8Array {
    const text = this.vocab.tokens[id];
    const type = this.vocab.types[id];
    if (type === TokenType.userDefined) return utf8.encode(text);
    if (type !== TokenType.normal) return EMPTY;
    const { wordStartPrefix, continuationPrefix } = this.vocab;
    if (wordStartPrefix && text.startsWith(wordStartPrefix)) return utf8.encode(' ' + text.slice(wordStartPrefix.length));
    if (continuationPrefix && text.startsWith(continuationPrefix)) return utf8.encode(text.slice(continuationPrefix.length));
    // A bare token starts a word where continuations carry the prefix, and continues one otherwise.
    return utf8.encode(continuationPrefix ? ' ' + text : text);
  }

  private encodeWord(word: string, out: number[]): void {
    let ids = this.cache.get(word);
    if (!ids) {
      ids = this.matchWord(word);
      if (this.cache.size >= WORD_CACHE_LIMIT) this.cache.clear();
      this.cache.set(word, ids);
    }
    for (const id of ids) out.push(id);
  }

  /** Greedy longest-match-first cover of one word; [UNK] alone when some part has no token. */
  private matchWord(word: string): number[] {
    const { maxInputCharsPerWord, wordStartPrefix, continuationPrefix, unk } = this.vocab;
    if (maxInputCharsPerWord !== undefined && word.length > maxInputCharsPerWord && countCodePoints(word) > maxInputCharsPerWord) return [unk];
    // llama.cpp matches the "▁" as part of the first piece, so the word start is written into the text.
    const text = wordStartPrefix + word;
    const ids: number[] = [];
    for (let start = 0; start < text.length; ) {
      const prefix = start === 0 ? '' : continuationPrefix;
      let end = Math.min(text.length, start + this.maxTokenLength);
      let id: number | undefined;
      for (; end > start; end--) {
        if (isLowSurrogate(text.charCodeAt(end))) continue; // never cut a character in two
        id = this.ids.get(prefix + text.slice(start, end));
        if (id !== undefined) break;
      }
      if (id === undefined) return [unk];
      ids.push(id);
      start = end;
    }
    return ids;
  }
}

const isLowSurrogate = (unit: number): boolean => unit >= 0xdc00 && unit <= 0xdfff;

function countCodePoints(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) if (!isLowSurrogate(text.charCodeAt(i))) n++;
  return n;
}
