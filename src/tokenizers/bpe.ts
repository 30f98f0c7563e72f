/**
 * BPE tokenization the way llama.cpp's llm_tokenizer_bpe does it, so our token ids equal
 * llama.cpp's (GGUF tokenizer.ggml.model = "gpt2"), and the BPE model of Hugging Face
 * tokenizer.json files (byte-level like GPT-2, or on characters with byte fallback like Llama 2):
 *
 *   1. Split the text around special tokens written literally in it (control tokens such as
 *      "<|endoftext|>" when parseSpecial is on, user-defined tokens always), longest first.
 *   2. Normalize each text fragment (an optional hook) and split it into words: by the
 *      pre-tokenizer's regular expressions (tokenizer.ggml.pre, see pretokenizers.ts), or by a hook.
 *   3. A word that is itself a token is emitted whole when the vocabulary says ignore_merges.
 *   4. Otherwise start from one symbol per unit (byte-level: each UTF-8 byte, written as GPT-2's
 *      printable character for it; else: each Unicode character) and repeatedly merge the adjacent
 *      pair with the lowest merge rank (the merge list's order; ties: the leftmost pair).
 *   5. Each final symbol is its token. One that is not (a byte or character the vocabulary lacks)
 *      becomes byte tokens: GPT-2 characters, or "<0xXX>" with byte fallback; else unk.
 *
 * Symbols are numbers, not strings: every token text and every string a merge rule names gets an
 * id (token ids first), and the merge rules become a hash table from a pair of ids to the rank and
 * the merged id. Words are remembered with their ids, so real text mostly costs one lookup a word.
 *
 * Decoding maps GPT-2's characters back to bytes (byte-level), or "▁" to a space and "<0xXX>"
 * tokens to their byte (character level). Control and unknown tokens print as nothing unless
 * asked for. Unlike llama.cpp's detokenizer we never "clean up" spaces, so byte-level
 * decode(encode(s)) === s.
 */
import { ModelError } from '../errors.js';
import {
  getNumberArray,
  getOptionalBool,
  getOptionalNumber,
  getOptionalString,
  getStringArray,
  type GGUFFile,
} from '../formats/gguf.js';
import { EMPTY, TokenizerBase, utf8, wellFormed, type EncodeOptions } from './base.js';
import { PriorityQueue } from './heap.js';
import { checkPreTokenizer, forEachWord, preTokenizerDefaults, type BpePreTokenizer } from './pretokenizers.js';
import { checkTokenTable, optionalTokenId, SPACE_MARK, TokenType } from './vocab.js';

export type { DecodeOptions, EncodeOptions, StreamDecoder } from './base.js';
export { BPE_PRETOKENIZERS, preTokenize, type BpePreTokenizer } from './pretokenizers.js';

export interface BpeVocab {
  /** tokenizer.ggml.model: 'gpt2' for every BPE vocabulary. */
  model: 'gpt2';
  /** tokenizer.ggml.pre ('default' when the file does not say). */
  pre: BpePreTokenizer;
  /** Token texts: in GPT-2's byte alphabet (a space is "Ġ") when byte-level, else as they print ("▁" a space). */
  tokens: string[];
  /** 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte (see TokenType). */
  types: Int32Array;
  /** Merge rules "left right" (GGUF) or [left, right] (tokenizer.json), highest priority first (rank = index). */
  merges: (string | readonly [string, string])[];
  /**
   * true (default): a word is its UTF-8 bytes written in GPT-2's byte alphabet. false: a word is
   * its Unicode characters as they are (SentencePiece-style BPE from tokenizer.json, spaces "▁").
   */
  byteLevel?: boolean;
  /** With byteLevel false: a character that is not a token becomes its "<0xXX>" byte tokens. */
  byteFallback?: boolean;
  /** A word that is itself a token is emitted whole, without merging (Llama 3; HF ignore_merges). */
  ignoreMerges?: boolean;
  bos: number;
  eos: number;
  unk?: number;
  pad?: number;
  /** End of turn (tokenizer.ggml.eot_token_id), where the model has one. */
  eot?: number;
  addBos: boolean;
  addEos: boolean;
}

/** Hooks for vocabularies whose text handling is not a GGUF pre-tokenizer (tokenizer.json files). */
export interface BpeTokenizerOptions {
  /** Applied to each text fragment between special tokens before splitting (e.g. spaces to "▁"). */
  normalize?: (text: string) => string;
  /** Cuts a normalized fragment into words; replaces the regular expressions of vocab.pre. */
  split?: (text: string) => string[];
  /** decode drops one space at the start of the text (what a normalizer that prepends "▁" added). */
  stripsSpacePrefix?: boolean;
}

/** llama.cpp's defaults for a gpt2 vocabulary when the GGUF does not say otherwise. */
export const BPE_DEFAULTS = { bos: 11, eos: 11, addBos: false, addEos: false } as const;

/** Check a vocabulary's arrays and ids agree; `where` names the file in the message. */
export function checkBpeVocab(vocab: BpeVocab, where: string): void {
  const { bos, eos, unk, pad } = vocab;
  checkTokenTable(where, vocab.tokens, vocab.types, { bos, eos, unk, pad }, ['pad', 'unk']);
  checkPreTokenizer(vocab.pre, where);
}

/** Build a BPE vocabulary from a GGUF file's tokenizer.ggml.* metadata. */
export function bpeVocabFromGGUF(file: GGUFFile): BpeVocab {
  const where = file.path;
  const model = getOptionalString(file, 'tokenizer.ggml.model');
  if (model === undefined) throw new ModelError('missing_key', `${where}: metadata key "tokenizer.ggml.model" is missing (the file has no tokenizer)`);
  if (model !== 'gpt2') {
    throw new ModelError('unsupported_tokenizer', `${where}: tokenizer.ggml.model "${model}" is not a byte-level BPE tokenizer (expected gpt2)`);
  }
  const pre = checkPreTokenizer(getOptionalString(file, 'tokenizer.ggml.pre') ?? 'default', where);
  const defaults = preTokenizerDefaults(pre);
  const tokens = getStringArray(file, 'tokenizer.ggml.tokens');
  const n = tokens.length;
  const types = file.metadata.has('tokenizer.ggml.token_type') ? getNumberArray(file, 'tokenizer.ggml.token_type') : undefined;
  if (!file.metadata.has('tokenizer.ggml.merges')) {
    throw new ModelError('missing_key', `${where}: metadata key "tokenizer.ggml.merges" is missing (a gpt2 tokenizer needs its merges)`);
  }
  const merges = getStringArray(file, 'tokenizer.ggml.merges');
  const vocab: BpeVocab = {
    model: 'gpt2',
    pre,
    tokens,
    types: types ? Int32Array.from(types) : new Int32Array(n).fill(TokenType.normal),
    merges,
    ignoreMerges: defaults.ignoreMerges,
    bos: getOptionalNumber(file, 'tokenizer.ggml.bos_token_id') ?? BPE_DEFAULTS.bos,
    eos: getOptionalNumber(file, 'tokenizer.ggml.eos_token_id') ?? BPE_DEFAULTS.eos,
    addBos: getOptionalBool(file, 'tokenizer.ggml.add_bos_token') ?? defaults.addBos,
    addEos: getOptionalBool(file, 'tokenizer.ggml.add_eos_token') ?? BPE_DEFAULTS.addEos,
  };
  vocab.unk = optionalTokenId(file, 'tokenizer.ggml.unknown_token_id', n);
  vocab.pad = optionalTokenId(file, 'tokenizer.ggml.padding_token_id', n);
  vocab.eot = optionalTokenId(file, 'tokenizer.ggml.eot_token_id', n);
  checkBpeVocab(vocab, where);
  return vocab;
}

// ---------------------------------------------------------------------------------------------
// GPT-2's byte alphabet: printable bytes stand for themselves, the other 68 become U+0100...

/** The character standing for each byte value. */
export const BYTE_TO_CHAR: string[] = [];
/** Code point -> byte value, the inverse of BYTE_TO_CHAR. */
export const CHAR_TO_BYTE = new Map<number, number>();
{
  const printable = (b: number): boolean => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const cp = printable(b) ? b : 256 + extra++;
    BYTE_TO_CHAR[b] = String.fromCharCode(cp);
    CHAR_TO_BYTE.set(cp, b);
  }
}

/** "<0xXX>", SentencePiece's name for a byte token. */
const byteTokenText = (b: number): string => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;
const BYTE_TOKEN = /^<0x([0-9A-Fa-f]{2})>$/;

// ---------------------------------------------------------------------------------------------

/**
 * The merge rules as a hash table from a pair of symbol ids to the rule's rank and the id of the
 * merged symbol (open addressing, linear probing; the first rule for a pair wins, as in llama.cpp).
 */
class MergeTable {
  private readonly left: Int32Array;
  private readonly right: Int32Array;
  readonly rank: Int32Array;
  readonly merged: Int32Array;
  private readonly mask: number;

  constructor(capacity: number) {
    let size = 16;
    while (size < capacity * 1.5) size *= 2; // at most 2/3 full: short probes
    this.left = new Int32Array(size).fill(-1);
    this.right = new Int32Array(size);
    this.rank = new Int32Array(size);
    this.merged = new Int32Array(size);
    this.mask = size - 1;
  }

  /** The slot holding (left, right), or the empty slot where it would go. */
  private slot(left: number, right: number): number {
    let h = Math.imul(left, 0x9e3779b1) ^ right;
    h = Math.imul(h ^ (h >>> 15), 0x85ebca6b);
    h = (h ^ (h >>> 13)) & this.mask;
    while (this.left[h] !== -1 && (this.left[h] !== left || this.right[h] !== right)) h = (h + 1) & this.mask;
    return h;
  }

  add(left: number, right: number, rank: number, merged: number): void {
    const h = this.slot(left, right);
    if (this.left[h] !== -1) return;
    this.left[h] = left;
    this.right[h] = right;
    this.rank[h] = rank;
    this.merged[h] = merged;
  }

  /** The slot of the rule for (left, right), or -1 when there is none. */
  find(left: number, right: number): number {
    const h = this.slot(left, right);
    return this.left[h] === -1 ? -1 : h;
  }
}

/** A symbol merged into its left neighbour. */
const GONE = -2;
/** A character that is no token and no merge operand (it can only fall back to bytes or unk). */
const NO_SYMBOL = -1;
/** Queue keys are rank * 2^32 + position: lowest rank first, then leftmost. */
const RANK_SCALE = 2 ** 32;
/** Words remembered with their ids; cleared when it grows past this. */
const WORD_CACHE_LIMIT = 50_000;
/** Longer words (whole texts, when nothing splits them) are not remembered. */
const WORD_CACHE_MAX_LENGTH = 128;

export class BpeTokenizer extends TokenizerBase {
  readonly vocab: BpeVocab;
  private readonly byteLevel: boolean;
  private readonly normalize?: (text: string) => string;
  /** Calls its visitor with each word of a normalized fragment. */
  private readonly forEachWord: (text: string, visit: (word: string) => void) => void;
  private readonly stripsPrefix: boolean;
  /** Symbol text -> symbol id: token ids (later ids win on duplicates, as llama.cpp), then other strings merges name. */
  private readonly symbols = new Map<string, number>();
  private readonly merges: MergeTable;
  /** Byte-level: the symbol of each byte's character. */
  private readonly byteSymbols = new Int32Array(256);
  /** What a byte of a symbol that is no token becomes: a token id, or -1 for nothing. */
  private readonly byteFallbackIds = new Int32Array(256);
  private readonly cache = new Map<string, number[]>();

  constructor(vocab: BpeVocab, opts: BpeTokenizerOptions = {}) {
    checkBpeVocab(vocab, 'tokenizer');
    super(vocab);
    this.vocab = vocab;
    this.byteLevel = vocab.byteLevel ?? true;
    this.normalize = opts.normalize;
    const split = opts.split;
    this.forEachWord = split
      ? (text, visit) => {
          for (const word of split(text)) visit(word);
        }
      : (text, visit) => forEachWord(text, vocab.pre, visit);
    this.stripsPrefix = opts.stripsSpacePrefix ?? false;

    const { tokens } = vocab;
    for (let id = 0; id < tokens.length; id++) this.symbols.set(tokens[id], id);
    this.merges = new MergeTable(vocab.merges.length);
    for (let rank = 0; rank < vocab.merges.length; rank++) {
      const [left, right] = splitMerge(vocab.merges[rank]);
      this.merges.add(this.symbolOf(left), this.symbolOf(right), rank, this.symbolOf(left + right));
    }

    const unk = vocab.unk ?? -1;
    for (let b = 0; b < 256; b++) {
      if (this.byteLevel) {
        this.byteSymbols[b] = this.symbolOf(BYTE_TO_CHAR[b]);
        this.byteFallbackIds[b] = this.tokenId(BYTE_TO_CHAR[b]) ?? unk;
      } else {
        this.byteFallbackIds[b] = (vocab.byteFallback ? this.tokenId(byteTokenText(b)) : undefined) ?? unk;
      }
    }
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    const addSpecial = opts.addSpecial ?? true;
    const parseSpecial = opts.parseSpecial ?? false;
    const out: number[] = [];
    if (addSpecial && this.vocab.addBos) out.push(this.vocab.bos);
    const encodeWord = (word: string): void => this.encodeWord(word, out);
    for (const part of this.splitSpecials(wellFormed(text), parseSpecial)) {
      if (typeof part === 'number') out.push(part);
      else this.forEachWord(this.normalize ? this.normalize(part) : part, encodeWord);
    }
    if (addSpecial && this.vocab.addEos) out.push(this.vocab.eos);
    return out;
  }

  protected override get stripsSpacePrefix(): boolean {
    return this.stripsPrefix;
  }

  protected override pieceOf(id: number): Uint8Array {
    const text = this.vocab.tokens[id];
    const type = this.vocab.types[id];
    if (type === TokenType.userDefined) return utf8.encode(text);
    if (this.byteLevel) return type === TokenType.normal ? gpt2Bytes(text) : EMPTY; // unused, undefined and byte tokens print nothing
    const byte = BYTE_TOKEN.exec(text);
    if (byte && (type === TokenType.byte || this.vocab.byteFallback)) return Uint8Array.of(parseInt(byte[1], 16));
    return type === TokenType.normal ? utf8.encode(text.replaceAll(SPACE_MARK, ' ')) : EMPTY;
  }

  /** The id of token `text`, if it is one. */
  private tokenId(text: string): number | undefined {
    const id = this.symbols.get(text);
    return id !== undefined && id < this.vocab.tokens.length ? id : undefined;
  }

  /** The symbol id of `text`, given a new one past the tokens when it is not a token. */
  private symbolOf(text: string): number {
    let id = this.symbols.get(text);
    if (id === undefined) {
      id = this.vocab.tokens.length + this.symbols.size;
      this.symbols.set(text, id);
    }
    return id;
  }

  /** The ids of one pre-tokenized word, appended to `out`. */
  private encodeWord(word: string, out: number[]): void {
    const cached = this.cache.get(word);
    if (cached) {
      for (const id of cached) out.push(id);
      return;
    }
    const ids = this.byteLevel ? this.encodeBytes(word) : this.encodeChars(word);
    if (word.length <= WORD_CACHE_MAX_LENGTH) {
      if (this.cache.size >= WORD_CACHE_LIMIT) this.cache.clear();
      this.cache.set(word, ids);
    }
    for (const id of ids) out.push(id);
  }

  /** Byte-level BPE: one symbol per UTF-8 byte. */
  private encodeBytes(word: string): number[] {
    const bytes = utf8.encode(word);
    if (this.vocab.ignoreMerges) {
      let text = '';
      for (const b of bytes) text += BYTE_TO_CHAR[b];
      const id = this.tokenId(text);
      if (id !== undefined) return [id];
    }
    const sym = new Int32Array(bytes.length);
    for (let i = 0; i < bytes.length; i++) sym[i] = this.byteSymbols[bytes[i]];
    // A symbol that is not a token (a merge whose result the vocabulary lacks, or a byte it lacks): byte by byte.
    return this.mergedIds(sym, (from, to, ids) => {
      for (let b = from; b < to; b++) this.pushFallback(bytes[b], ids);
    });
  }

  /** Character-level BPE: one symbol per Unicode character. */
  private encodeChars(word: string): number[] {
    if (this.vocab.ignoreMerges) {
      const id = this.tokenId(word);
      if (id !== undefined) return [id];
    }
    const chars = Array.from(word);
    const sym = new Int32Array(chars.length);
    for (let i = 0; i < chars.length; i++) sym[i] = this.symbols.get(chars[i]) ?? NO_SYMBOL;
    // A symbol that is not a token: its UTF-8 bytes as byte tokens (byte fallback), else unk.
    return this.mergedIds(sym, (from, to, ids) => {
      if (this.vocab.byteFallback) for (const b of utf8.encode(chars.slice(from, to).join(''))) this.pushFallback(b, ids);
      else if (this.vocab.unk !== undefined) ids.push(this.vocab.unk);
    });
  }

  /**
   * Merge the symbols, then read off the ids: each final symbol that is a token is its id; the
   * others (spanning initial symbols [from, to)) go to `fallback`.
   */
  private mergedIds(sym: Int32Array, fallback: (from: number, to: number, ids: number[]) => void): number[] {
    const ids: number[] = [];
    if (sym.length === 0) return ids;
    const next = this.mergeSymbols(sym);
    for (let i = 0; i !== -1; i = next[i]) {
      if (this.isToken(sym[i])) ids.push(sym[i]);
      else fallback(i, next[i] === -1 ? sym.length : next[i], ids);
    }
    return ids;
  }

  private isToken(symbol: number): boolean {
    return symbol >= 0 && symbol < this.vocab.tokens.length;
  }

  private pushFallback(byte: number, ids: number[]): void {
    const id = this.byteFallbackIds[byte];
    if (id >= 0) ids.push(id);
  }

  /**
   * Merge adjacent symbols in place, lowest rank first (ties: leftmost), until no pair has a rule.
   * Returns the chain of survivors: next[i] is the symbol after i (-1 at the end), starting at 0.
   */
  private mergeSymbols(sym: Int32Array): Int32Array {
    const n = sym.length;
    const prev = new Int32Array(n);
    const next = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      prev[i] = i - 1;
      next[i] = i + 1 < n ? i + 1 : -1;
    }
    const merges = this.merges;
    const queue = new PriorityQueue<number>((a, b) => a < b);
    const consider = (left: number): void => {
      const right = next[left];
      if (right < 0 || sym[left] < 0 || sym[right] < 0) return;
      const slot = merges.find(sym[left], sym[right]);
      if (slot >= 0) queue.push(merges.rank[slot] * RANK_SCALE + left);
    };
    for (let i = 0; i + 1 < n; i++) consider(i);

    for (let key = queue.pop(); key !== undefined; key = queue.pop()) {
      const left = key % RANK_SCALE;
      const right = next[left];
      if (sym[left] < 0 || right < 0 || sym[right] < 0) continue;
      // A queued pair is stale when either symbol has grown since; ranks name pairs uniquely, so
      // the pair now at `left` is the queued one exactly when its rule has the queued rank.
      const slot = merges.find(sym[left], sym[right]);
      if (slot < 0 || merges.rank[slot] !== (key - left) / RANK_SCALE) continue;
      sym[left] = merges.merged[slot];
      sym[right] = GONE;
      next[left] = next[right];
      if (next[right] >= 0) prev[next[right]] = left;
      if (prev[left] >= 0) consider(prev[left]);
      consider(left);
    }
    return next;
  }
}

/** A merge rule's two sides: [left, right] as given, or "left right" split at the first space after the first character. */
function splitMerge(merge: string | readonly [string, string]): readonly [string, string] {
  if (typeof merge !== 'string') return merge;
  const at = merge.indexOf(' ', 1);
  return at < 0 ? [merge, ''] : [merge.slice(0, at), merge.slice(at + 1)];
}

/** The bytes a token written in GPT-2's byte alphabet stands for. */
function gpt2Bytes(text: string): Uint8Array {
  const out: number[] = [];
  for (const ch of text) {
    const b = CHAR_TO_BYTE.get(ch.codePointAt(0)!);
    // A character outside the byte alphabet (llama.cpp would fail here): print it as is.
    if (b === undefined) out.push(...utf8.encode(ch));
    else out.push(b);
  }
  return Uint8Array.from(out);
}
