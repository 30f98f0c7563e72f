/**
 * The character-level tokenizer of nanoGPT's shakespeare_char: the vocabulary is the sorted set of
 * characters (code points) in the corpus and a character's id is its place in that list, so
 * tinyshakespeare gives the same 65 ids as nanoGPT's prepare.py. There are no special tokens.
 *
 * Saved as a Hugging Face tokenizer.json that the `tokenizers` library (and our own loader) reads
 * with the same ids: a BPE model with one token per character and no merges, no normalizer, no
 * pre-tokenizer, no post-processor, and a Fuse decoder (which joins the pieces without spaces).
 * hf-export.ts's character-level BPE form does not fit: it turns spaces into "▁" first.
 * `charTokenizerFromJson` recognises that exact shape again, so a saved vocabulary comes back as
 * this class (fast encoding of whole corpora, no end-of-generation token) rather than as the
 * generic BPE pipeline.
 */
import { RequestError } from '../errors.js';
import type { TokenizerJson } from '../formats/tokenizer-json.js';
import { utf8, type DecodeOptions, type EncodeOptions, type StreamDecoder } from '../tokenizers/base.js';
import type { Tokenizer } from '../tokenizers/index.js';

/** No such token: the vocabulary has no BOS or EOS. */
const NONE = -1;

function codePointOrder(a: string, b: string): number {
  return a.codePointAt(0)! - b.codePointAt(0)!;
}

function describeChar(ch: string): string {
  const hex = ch.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0');
  return `U+${hex} ${JSON.stringify(ch)}`;
}

export class CharTokenizer implements Tokenizer {
  /** Not SentencePiece, but the family our loader gives a non-byte-level BPE tokenizer.json. */
  readonly model = 'llama' as const;
  readonly bos = NONE;
  readonly eos = NONE;
  readonly addBos = false;
  readonly addEos = false;
  readonly endOfGeneration: ReadonlySet<number> = new Set<number>();
  readonly chatTemplate = undefined;
  readonly vocabSize: number;
  /** Code point -> id. */
  private readonly ids = new Map<number, number>();
  private readonly pieces: Uint8Array[];

  /** `chars`: the vocabulary, one character (code point) per id, in code point order, no repeats. */
  constructor(readonly chars: readonly string[]) {
    if (chars.length === 0) throw new RequestError('empty_vocabulary', 'chars', 'a character vocabulary needs at least one character');
    chars.forEach((ch, id) => {
      if (Array.from(ch).length !== 1) throw new RequestError('invalid_vocabulary', 'chars', `entry ${id} ${JSON.stringify(ch)} is not one character`);
      if (id > 0 && codePointOrder(chars[id - 1], ch) >= 0) {
        throw new RequestError('invalid_vocabulary', 'chars', `entry ${id} ${describeChar(ch)} is not after ${describeChar(chars[id - 1])} in code point order`);
      }
      this.ids.set(ch.codePointAt(0)!, id);
    });
    this.vocabSize = chars.length;
    this.pieces = chars.map((ch) => utf8.encode(ch));
  }

  /** The vocabulary of these texts: every character in them, sorted (nanoGPT's `sorted(set(data))`). */
  static fromTexts(texts: Iterable<string>): CharTokenizer {
    const seen = new Set<string>();
    for (const text of texts) for (const ch of text) seen.add(ch);
    return new CharTokenizer([...seen].sort(codePointOrder));
  }

  /** One id per character; a character outside the vocabulary is an error naming it and where it is. */
  encode(text: string, _opts?: EncodeOptions): number[] {
    const out: number[] = [];
    let at = 0;
    for (const ch of text) {
      const id = this.ids.get(ch.codePointAt(0)!);
      if (id === undefined) {
        throw new RequestError('unknown_character', 'text', `character ${describeChar(ch)} at offset ${at} is not in the vocabulary of ${this.vocabSize} characters`);
      }
      out.push(id);
      at += ch.length;
    }
    return out;
  }

  decode(ids: readonly number[], _opts?: DecodeOptions): string {
    let text = '';
    for (const id of ids) text += this.tokenText(id);
    return text;
  }

  piece(id: number): Uint8Array {
    this.tokenText(id); // checks the id
    return this.pieces[id];
  }

  tokenText(id: number): string {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
      throw new RequestError('invalid_token', 'ids', `token id ${id} is outside the vocabulary of ${this.vocabSize} characters`);
    }
    return this.chars[id];
  }

  /** Every token is a whole character, so each push is complete text. */
  createStreamDecoder(_opts?: DecodeOptions): StreamDecoder {
    return { push: (id) => this.tokenText(id), flush: () => '' };
  }

  /** The tokenizer.json form (see the file header). */
  toTokenizerJson(): TokenizerJson {
    const vocab: Record<string, number> = Object.create(null);
    this.chars.forEach((ch, id) => (vocab[ch] = id));
    return {
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: [],
      normalizer: null,
      pre_tokenizer: null,
      post_processor: null,
      decoder: { type: 'Fuse' },
      model: {
        type: 'BPE',
        dropout: null,
        unk_token: null,
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: false,
        byte_fallback: false,
        ignore_merges: false,
        vocab,
        merges: [],
      },
    };
  }
}

/** The CharTokenizer a tokenizer.json of exactly toTokenizerJson()'s shape describes; undefined for any other file. */
export function charTokenizerFromJson(json: TokenizerJson): CharTokenizer | undefined {
  const { model } = json;
  const plain =
    model.type === 'BPE' &&
    model.merges.length === 0 &&
    model.unk_token === null &&
    !model.byte_fallback &&
    json.added_tokens.length === 0 &&
    json.normalizer === null &&
    json.pre_tokenizer === null &&
    json.post_processor === null &&
    json.decoder !== null &&
    json.decoder.type === 'Fuse';
  if (!plain) return undefined;
  const entries = Object.entries(model.vocab).sort((a, b) => a[1] - b[1]);
  const chars = entries.map(([ch]) => ch);
  const inOrder = entries.every(([ch, id], i) => id === i && Array.from(ch).length === 1 && (i === 0 || codePointOrder(chars[i - 1], ch) < 0));
  return inOrder ? new CharTokenizer(chars) : undefined;
}
