/**
 * SentencePiece (SPM) tokenization the way llama.cpp's llm_tokenizer_spm does it, so our token
 * ids equal llama.cpp's:
 *
 *   1. Split the text around special tokens written literally in it ("<s>", "</s>", "<unk>", and
 *      user-defined tokens), longest first. Each special becomes its id; each text fragment is
 *      tokenized on its own.
 *   2. A fragment at the start or right after a special token gets a leading space (when the
 *      vocabulary asks for a space prefix); spaces become U+2581.
 *   3. Start from one symbol per character and repeatedly merge the adjacent pair whose merged
 *      text is a token with the highest score (ties: the leftmost pair).
 *   4. Each final symbol is its token; a character the vocabulary lacks falls back to one
 *      <0xNN> byte token per UTF-8 byte (or to unk when the vocabulary has no byte tokens).
 *
 * Decoding turns U+2581 back into spaces and byte tokens into their bytes; control and unknown
 * tokens print as nothing unless asked for.
 */
import { EMPTY, TokenizerBase, utf8, wellFormed, type EncodeOptions } from './base.js';
import { PriorityQueue } from './heap.js';
import { checkVocab, SPACE_MARK, TokenType, type Vocab } from './vocab.js';

export { vocabFromGGUF, TokenType, type Vocab } from './vocab.js';

export type { DecodeOptions, EncodeOptions, StreamDecoder } from './base.js';

export class SpmTokenizer extends TokenizerBase {
  readonly vocab: Vocab;
  /** Token text -> id. Later ids win on duplicates, as in llama.cpp's token_to_id map. */
  private readonly ids = new Map<string, number>();
  /** The token for each byte value, used when a character is not in the vocabulary. */
  private readonly byteIds = new Int32Array(256);
  /**
   * Whether no token has a "▁" right after another character. Then no merge can cross the start
   * of a word (a "▁" after a non-"▁"), so each word can be encoded on its own, and remembered:
   * the same ids as merging the whole fragment at once, many times faster on real text.
   */
  private readonly wordsIndependent: boolean;
  /** Words remembered with their ids (when wordsIndependent); cleared when it grows past WORD_CACHE_LIMIT. */
  private readonly cache = new Map<string, number[]>();

  constructor(vocab: Vocab) {
    checkVocab(vocab, 'tokenizer');
    super(vocab);
    this.vocab = vocab;
    const { tokens } = vocab;
    for (let id = 0; id < tokens.length; id++) this.ids.set(tokens[id], id);
    this.wordsIndependent = !tokens.some((t) => WORD_INSIDE_TOKEN.test(t));

    for (let b = 0; b < 256; b++) {
      const hex = `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;
      // llama.cpp falls back to the byte as a one-character token; we end at unk rather than fail.
      this.byteIds[b] = this.ids.get(hex) ?? (b < 0x80 ? this.ids.get(String.fromCharCode(b)) : undefined) ?? vocab.unk;
    }
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    const addSpecial = opts.addSpecial ?? true;
    const parseSpecial = opts.parseSpecial ?? false;
    const out: number[] = [];
    if (addSpecial && this.vocab.addBos) out.push(this.vocab.bos);
    // A lone surrogate cannot be written as UTF-8; treat it as U+FFFD, as TextEncoder would.
    const clean = wellFormed(text);
    // The text at the start, and after each special token, gets its own space prefix.
    let afterSpecial = true;
    for (const part of this.splitSpecials(clean, parseSpecial)) {
      if (typeof part === 'number') {
        out.push(part);
        afterSpecial = true;
      } else {
        const prefixed = this.vocab.addSpacePrefix && afterSpecial ? ' ' + part : part;
        this.encodeText(prefixed.replaceAll(' ', SPACE_MARK), out);
        afterSpecial = false;
      }
    }
    if (addSpecial && this.vocab.addEos) out.push(this.vocab.eos);
    return out;
  }

  /** Decoding removes the space that encoding put in front of the text, so decode(encode(s)) === s; streams keep it. */
  protected override get stripsSpacePrefix(): boolean {
    return this.vocab.addSpacePrefix;
  }

  protected override pieceOf(id: number): Uint8Array {
    const text = this.vocab.tokens[id];
    switch (this.vocab.types[id]) {
      case TokenType.normal:
        return utf8.encode(text.replaceAll(SPACE_MARK, ' '));
      case TokenType.userDefined:
        return utf8.encode(text);
      case TokenType.byte: {
        const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(text);
        return m ? Uint8Array.of(parseInt(m[1], 16)) : EMPTY;
      }
      default:
        // Unused and undefined tokens print nothing, as in llama.cpp.
        return EMPTY;
    }
  }

  /** Encode a fragment whose spaces are already U+2581: word by word where that gives the same ids. */
  private encodeText(text: string, out: number[]): void {
    if (!this.wordsIndependent) {
      this.encodeFragment(text, out);
      return;
    }
    let from = 0;
    for (let at = 1; at <= text.length; at++) {
      if (at < text.length && !(text[at] === SPACE_MARK && text[at - 1] !== SPACE_MARK)) continue;
      const word = text.slice(from, at);
      from = at;
      let ids = this.cache.get(word);
      if (!ids) {
        ids = [];
        this.encodeFragment(word, ids);
        if (this.cache.size >= WORD_CACHE_LIMIT) this.cache.clear();
        this.cache.set(word, ids);
      }
      for (const id of ids) out.push(id);
    }
  }

  /** The SPM merge loop over one fragment whose spaces are already U+2581. */
  private encodeFragment(text: string, out: number[]): void {
    // One symbol per character: start offset and length in UTF-16 units, a linked list, and the
    // token it currently forms (-1: a character not in the vocabulary).
    const n = countCodePoints(text);
    if (n === 0) return;
    const start = new Int32Array(n);
    const len = new Int32Array(n);
    const prev = new Int32Array(n);
    const next = new Int32Array(n);
    const token = new Int32Array(n);
    for (let i = 0, at = 0; i < n; i++) {
      const width = isHighSurrogate(text.charCodeAt(at)) ? 2 : 1;
      start[i] = at;
      len[i] = width;
      prev[i] = i - 1;
      next[i] = i + 1 < n ? i + 1 : -1;
      token[i] = this.ids.get(text.slice(at, at + width)) ?? -1;
      at += width;
    }

    // candidate merges, highest score first, then the leftmost
    const queue = new PriorityQueue<Bigram>((a, b) => a.score > b.score || (a.score === b.score && a.left < b.left));
    const scores = this.vocab.scores;
    const tryPair = (left: number, right: number): void => {
      if (left < 0 || right < 0) return;
      const size = len[left] + len[right];
      const id = this.ids.get(text.slice(start[left], start[left] + size));
      if (id !== undefined) queue.push({ left, right, size, id, score: scores[id] });
    };
    for (let i = 1; i < n; i++) tryPair(i - 1, i);

    for (let b = queue.pop(); b; b = queue.pop()) {
      // Skip pairs whose symbols changed since the pair was queued (merged away or grown).
      if (len[b.left] === 0 || len[b.right] === 0 || len[b.left] + len[b.right] !== b.size) continue;
      len[b.left] = b.size;
      token[b.left] = b.id;
      len[b.right] = 0;
      next[b.left] = next[b.right];
      if (next[b.right] >= 0) prev[next[b.right]] = b.left;
      tryPair(prev[b.left], b.left);
      tryPair(b.left, next[b.left]);
    }

    for (let i = 0; i !== -1; i = next[i]) {
      if (token[i] >= 0) {
        out.push(token[i]);
      } else {
        // Only single characters can be unknown: every merge forms a vocabulary token.
        for (const byte of utf8.encode(text.slice(start[i], start[i] + len[i]))) out.push(this.byteIds[byte]);
      }
    }
  }
}

/** A "▁" after another character: a token holding one could span the start of a word. */
const WORD_INSIDE_TOKEN = /[^\u2581]\u2581/;

/** Words remembered with their ids; the cache is cleared when it grows past this. */
const WORD_CACHE_LIMIT = 50_000;

interface Bigram {
  left: number;
  right: number;
  /** Length of the merged text (UTF-16 units), to detect stale entries. */
  size: number;
  id: number;
  score: number;
}


function isHighSurrogate(c: number): boolean {
  return c >= 0xd800 && c <= 0xdbff;
}

function countCodePoints(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    if (isHighSurrogate(text.charCodeAt(i))) i++;
    n++;
  }
  return n;
}
