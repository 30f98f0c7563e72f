/**
 * Byte-level BPE tokenization (the GPT-2 family, GGUF tokenizer.ggml.model = "gpt2") the way
 * llama.cpp's llm_tokenizer_bpe does it, so our token ids equal llama.cpp's:
 *
 *   1. Split the text around special tokens written literally in it (control tokens such as
 *      "<|endoftext|>" when parseSpecial is on, user-defined tokens always), longest first.
 *   2. Split each text fragment into words with the pre-tokenizer's regular expressions
 *      (tokenizer.ggml.pre; "gpt-2" and "default" are supported).
 *   3. Write each word's UTF-8 bytes as GPT-2's printable characters (one character per byte,
 *      the bytes→unicode table), start from one symbol per byte and repeatedly merge the adjacent
 *      pair with the lowest merge rank (tokenizer.ggml.merges order; ties: the leftmost pair).
 *   4. Each final symbol is its token.
 *
 * Decoding maps the printable characters back to bytes; control and unknown tokens print as
 * nothing unless asked for. Unlike llama.cpp's detokenizer we never "clean up" spaces, so
 * decode(encode(s)) === s.
 */
import { ModelError, RequestError } from '../errors.js';
import {
  getNumberArray,
  getOptionalBool,
  getOptionalNumber,
  getOptionalString,
  getStringArray,
  type GGUFFile,
} from '../formats/gguf.js';
import { EMPTY, TokenizerBase, utf8, type EncodeOptions } from './base.js';
import { PriorityQueue } from './heap.js';
import { checkTokenTable, optionalTokenId, TokenType } from './vocab.js';

export type { DecodeOptions, EncodeOptions, StreamDecoder } from './base.js';

/** The pre-tokenizers (tokenizer.ggml.pre) we implement. */
export const BPE_PRETOKENIZERS = ['gpt-2', 'default'] as const;
export type BpePreTokenizer = (typeof BPE_PRETOKENIZERS)[number];

export interface BpeVocab {
  /** tokenizer.ggml.model; only 'gpt2' (byte-level BPE) is supported here. */
  model: 'gpt2';
  /** tokenizer.ggml.pre ('default' when the file does not say). */
  pre: BpePreTokenizer;
  /** Token texts in GPT-2's byte alphabet (a space is "Ġ"). */
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

/** llama.cpp's defaults for a gpt2 vocabulary when the GGUF does not say otherwise. */
export const BPE_DEFAULTS = { bos: 11, eos: 11, addBos: false, addEos: false } as const;

/** Check a vocabulary's arrays and ids agree; `where` names the file in the message. */
export function checkBpeVocab(vocab: BpeVocab, where: string): void {
  const { bos, eos, unk, pad } = vocab;
  checkTokenTable(where, vocab.tokens, vocab.types, { bos, eos, unk, pad }, ['pad', 'unk']);
}

/** Build a byte-level BPE vocabulary from a GGUF file's tokenizer.ggml.* metadata. */
export function bpeVocabFromGGUF(file: GGUFFile): BpeVocab {
  const where = file.path;
  const model = getOptionalString(file, 'tokenizer.ggml.model');
  if (model === undefined) throw new ModelError('missing_key', `${where}: metadata key "tokenizer.ggml.model" is missing (the file has no tokenizer)`);
  if (model !== 'gpt2') {
    throw new ModelError('unsupported_tokenizer', `${where}: tokenizer.ggml.model "${model}" is not a byte-level BPE tokenizer (expected gpt2)`);
  }
  const pre = getOptionalString(file, 'tokenizer.ggml.pre') ?? 'default';
  if (!(BPE_PRETOKENIZERS as readonly string[]).includes(pre)) {
    throw new ModelError(
      'unsupported_pretokenizer',
      `${where}: tokenizer.ggml.pre "${pre}" is not supported (supported: ${BPE_PRETOKENIZERS.join(', ')})`,
    );
  }
  const tokens = getStringArray(file, 'tokenizer.ggml.tokens');
  const n = tokens.length;
  const types = file.metadata.has('tokenizer.ggml.token_type') ? getNumberArray(file, 'tokenizer.ggml.token_type') : undefined;
  if (!file.metadata.has('tokenizer.ggml.merges')) {
    throw new ModelError('missing_key', `${where}: metadata key "tokenizer.ggml.merges" is missing (a gpt2 tokenizer needs its merges)`);
  }
  const merges = getStringArray(file, 'tokenizer.ggml.merges');
  const vocab: BpeVocab = {
    model: 'gpt2',
    pre: pre as BpePreTokenizer,
    tokens,
    types: types ? Int32Array.from(types) : new Int32Array(n).fill(TokenType.normal),
    merges,
    bos: getOptionalNumber(file, 'tokenizer.ggml.bos_token_id') ?? BPE_DEFAULTS.bos,
    eos: getOptionalNumber(file, 'tokenizer.ggml.eos_token_id') ?? BPE_DEFAULTS.eos,
    addBos: getOptionalBool(file, 'tokenizer.ggml.add_bos_token') ?? BPE_DEFAULTS.addBos,
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
const BYTE_TO_CHAR: string[] = [];
/** Code point -> byte value, the inverse of BYTE_TO_CHAR. */
const CHAR_TO_BYTE = new Map<number, number>();
{
  const printable = (b: number): boolean => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const cp = printable(b) ? b : 256 + extra++;
    BYTE_TO_CHAR[b] = String.fromCharCode(cp);
    CHAR_TO_BYTE.set(cp, b);
  }
}

// ---------------------------------------------------------------------------------------------
// Pre-tokenizers. llama.cpp's whitespace is Python's str.isspace(), which differs from JS's \s
// (it includes U+001C..U+001F and U+0085, and not U+FEFF), so the class is spelled out.

const WS = '\\t\\n\\v\\f\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const GPT2_WORDS = `'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^${WS}\\p{L}\\p{N}]+|[${WS}]+(?![^${WS}])`;

/**
 * Each pre-tokenizer is a list of regular expressions applied in turn: every expression splits
 * each piece left by the previous one into its matches and the text between them (kept as pieces).
 */
const PRETOKENIZER_REGEXES: Record<BpePreTokenizer, RegExp[]> = {
  'gpt-2': [new RegExp(`${GPT2_WORDS}|[${WS}]+`, 'gu')],
  default: [
    new RegExp('[\\p{P}\\$\\+<=>\\^~\\|]+', 'gu'),
    new RegExp(GPT2_WORDS, 'gu'),
    new RegExp('\\p{N}+', 'gu'),
    new RegExp('[0-9][0-9][0-9]', 'gu'),
  ],
};

function splitWith(pieces: string[], re: RegExp): string[] {
  const out: string[] = [];
  for (const piece of pieces) {
    let from = 0;
    for (const m of piece.matchAll(re)) {
      if (m[0].length === 0) continue;
      const at = m.index!;
      if (at > from) out.push(piece.slice(from, at));
      out.push(m[0]);
      from = at + m[0].length;
    }
    if (from < piece.length) out.push(piece.slice(from));
  }
  return out;
}

/** The words the pre-tokenizer cuts `text` into (they concatenate back to `text`). */
export function preTokenize(text: string, pre: BpePreTokenizer): string[] {
  let pieces = text.length > 0 ? [text] : [];
  for (const re of PRETOKENIZER_REGEXES[pre]) pieces = splitWith(pieces, re);
  return pieces;
}

// ---------------------------------------------------------------------------------------------

/** Words remembered with their ids; cleared when it grows past this. */
const WORD_CACHE_LIMIT = 50_000;

export class BpeTokenizer extends TokenizerBase {
  readonly vocab: BpeVocab;
  /** Token text -> id. Later ids win on duplicates, as in llama.cpp's token_to_id map. */
  private readonly ids = new Map<string, number>();
  /** "left right" -> rank (index in the merges list; the first occurrence wins). */
  private readonly ranks = new Map<string, number>();
  private readonly cache = new Map<string, number[]>();

  constructor(vocab: BpeVocab) {
    checkBpeVocab(vocab, 'tokenizer');
    super(vocab);
    this.vocab = vocab;
    const { tokens, merges } = vocab;
    for (let id = 0; id < tokens.length; id++) this.ids.set(tokens[id], id);
    for (let r = 0; r < merges.length; r++) {
      const m = merges[r];
      const key = typeof m === 'string' ? m : `${m[0]} ${m[1]}`;
      if (!this.ranks.has(key)) this.ranks.set(key, r);
    }
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    const addSpecial = opts.addSpecial ?? true;
    const parseSpecial = opts.parseSpecial ?? false;
    const out: number[] = [];
    if (addSpecial && this.vocab.addBos) out.push(this.vocab.bos);
    for (const part of this.splitSpecials(wellFormed(text), parseSpecial)) {
      if (typeof part === 'number') {
        out.push(part);
        continue;
      }
      for (const word of preTokenize(part, this.vocab.pre)) this.encodeWord(word, out);
    }
    if (addSpecial && this.vocab.addEos) out.push(this.vocab.eos);
    return out;
  }

  protected override pieceOf(id: number): Uint8Array {
    const text = this.vocab.tokens[id];
    switch (this.vocab.types[id]) {
      case TokenType.normal: {
        const out: number[] = [];
        for (const ch of text) {
          const b = CHAR_TO_BYTE.get(ch.codePointAt(0)!);
          // A character outside the byte alphabet (llama.cpp would fail here): print it as is.
          if (b === undefined) out.push(...utf8.encode(ch));
          else out.push(b);
        }
        return Uint8Array.from(out);
      }
      case TokenType.userDefined:
        return utf8.encode(text);
      default:
        // Unused, undefined and byte tokens print nothing in a gpt2 vocabulary.
        return EMPTY;
    }
  }

  /** BPE over one pre-tokenized word: one symbol per UTF-8 byte, merged lowest rank first. */
  private encodeWord(word: string, out: number[]): void {
    const cached = this.cache.get(word);
    if (cached) {
      for (const id of cached) out.push(id);
      return;
    }
    const bytes = utf8.encode(word);
    const n = bytes.length;
    const sym: string[] = new Array(n);
    const prev = new Int32Array(n);
    const next = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      sym[i] = BYTE_TO_CHAR[bytes[i]];
      prev[i] = i - 1;
      next[i] = i + 1 < n ? i + 1 : -1;
    }

    // candidate merges, lowest rank first, then the leftmost
    const queue = new PriorityQueue<Merge>((a, b) => a.rank < b.rank || (a.rank === b.rank && a.left < b.left));
    const tryPair = (left: number, right: number): void => {
      if (left < 0 || right < 0) return;
      const text = sym[left] + sym[right];
      const rank = this.ranks.get(sym[left] + ' ' + sym[right]);
      if (rank !== undefined) queue.push({ left, right, text, rank });
    };
    for (let i = 1; i < n; i++) tryPair(i - 1, i);

    for (let m = queue.pop(); m; m = queue.pop()) {
      // Skip pairs whose symbols changed since the pair was queued (merged away or grown).
      if (sym[m.left] === '' || sym[m.right] === '' || next[m.left] !== m.right || sym[m.left] + sym[m.right] !== m.text) continue;
      sym[m.left] = m.text;
      sym[m.right] = '';
      next[m.left] = next[m.right];
      if (next[m.right] >= 0) prev[next[m.right]] = m.left;
      tryPair(prev[m.left], m.left);
      tryPair(m.left, next[m.left]);
    }

    const ids: number[] = [];
    for (let i = 0; i !== -1 && n > 0; i = next[i]) {
      const id = this.ids.get(sym[i]);
      if (id !== undefined) {
        ids.push(id);
        continue;
      }
      // A symbol that is not a token (a merge the vocabulary lacks, or a byte it lacks): one token
      // per byte character, skipping bytes that have none (or unk where the vocabulary has one).
      for (const ch of sym[i]) {
        const b = this.ids.get(ch) ?? this.vocab.unk;
        if (b !== undefined) ids.push(b);
      }
    }
    if (this.cache.size >= WORD_CACHE_LIMIT) this.cache.clear();
    this.cache.set(word, ids);
    for (const id of ids) out.push(id);
  }
}

interface Merge {
  left: number;
  right: number;
  /** The merged text, to detect stale entries. */
  text: string;
  rank: number;
}


/** Replace unpaired surrogates with U+FFFD so that every character has a UTF-8 form. */
function wellFormed(text: string): string {
  if (!/[\ud800-\udfff]/.test(text)) return text;
  return text.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');
}
