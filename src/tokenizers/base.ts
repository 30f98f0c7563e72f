/**
 * What every tokenizer family shares: special tokens matched literally in text, and decoding
 * (whole texts, single pieces, and streams that hold back unfinished UTF-8 sequences). A family
 * says how one token prints (pieceOf) and encodes in its own way.
 */
import { RequestError } from '../errors.js';
import type { Tokenizer } from './index.js';
import { TokenType } from './vocab.js';

export interface EncodeOptions {
  /** Add BOS/EOS where the vocabulary's add_bos/add_eos flags say (default true); false adds neither. */
  addSpecial?: boolean;
  /** Turn control tokens written in the text (e.g. "<s>") into their ids (default false: plain text). */
  parseSpecial?: boolean;
}

export interface DecodeOptions {
  /** Control and unknown tokens print as '' (default true); false prints their text, e.g. "<s>". */
  skipSpecial?: boolean;
}

export interface StreamDecoder {
  /** The text that becomes complete with this token ('' while a UTF-8 sequence is unfinished). */
  push(id: number): string;
  /** Whatever is left: an unfinished UTF-8 sequence comes out as U+FFFD. */
  flush(): string;
}

export const utf8 = new TextEncoder();

/** Replace unpaired surrogates with U+FFFD (as TextEncoder would) so that every character has a UTF-8 form. */
export function wellFormed(text: string): string {
  if (!/[\ud800-\udfff]/.test(text)) return text;
  return text.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');
}
export const EMPTY = new Uint8Array(0);

export abstract class TokenizerBase {
  /** Tokens matched literally in the text, longest (in UTF-8 bytes) first. */
  private readonly specials: { id: number; text: string; control: boolean }[] = [];
  /** piece(id) for each token, built on first use. */
  private readonly pieces: (Uint8Array | undefined)[] = [];

  constructor(private readonly table: { tokens: string[]; types: Int32Array }) {
    const { tokens, types } = table;
    for (let id = 0; id < tokens.length; id++) {
      const t = types[id];
      if ((t === TokenType.control || t === TokenType.unknown || t === TokenType.userDefined) && tokens[id].length > 0) {
        this.specials.push({ id, text: tokens[id], control: t !== TokenType.userDefined });
      }
    }
    const bytes = new Map(this.specials.map((s) => [s.id, utf8.encode(s.text).length]));
    this.specials.sort((a, b) => bytes.get(b.id)! - bytes.get(a.id)! || a.id - b.id);
  }

  /** The bytes token `id` (a normal, user-defined or byte token) prints as. */
  protected abstract pieceOf(id: number): Uint8Array;

  /** Whether decode removes the one space encoding put in front of the text (SentencePiece). */
  protected get stripsSpacePrefix(): boolean {
    return false;
  }

  /** The whole text of `ids`. */
  decode(ids: readonly number[], opts: DecodeOptions = {}): string {
    const skipSpecial = opts.skipSpecial ?? true;
    const parts: Uint8Array[] = [];
    let total = 0;
    let atStart = this.stripsSpacePrefix;
    for (const id of ids) {
      let bytes = this.tokenBytes(id, skipSpecial);
      if (atStart && !this.isSpecial(id)) {
        if (bytes.length > 0 && bytes[0] === 0x20) bytes = bytes.subarray(1);
        atStart = false;
      }
      parts.push(bytes);
      total += bytes.length;
    }
    const all = new Uint8Array(total);
    let at = 0;
    for (const p of parts) {
      all.set(p, at);
      at += p.length;
    }
    return new TextDecoder('utf-8', { ignoreBOM: true }).decode(all);
  }

  /** The bytes a token contributes to printed text (control and unknown tokens: nothing). */
  piece(id: number): Uint8Array {
    return this.tokenBytes(id, true);
  }

  /** Decode a token stream piece by piece, holding back incomplete UTF-8 sequences between tokens. */
  createStreamDecoder(opts: DecodeOptions = {}): StreamDecoder {
    const skipSpecial = opts.skipSpecial ?? true;
    const decoder = new TextDecoder('utf-8', { ignoreBOM: true });
    return {
      push: (id) => decoder.decode(this.tokenBytes(id, skipSpecial), { stream: true }),
      flush: () => decoder.decode(),
    };
  }

  protected isSpecial(id: number): boolean {
    const t = this.table.types[id];
    return t === TokenType.control || t === TokenType.unknown;
  }

  private tokenBytes(id: number, skipSpecial: boolean): Uint8Array {
    const n = this.table.tokens.length;
    if (!Number.isInteger(id) || id < 0 || id >= n) {
      throw new RequestError('invalid_token', 'ids', `token id ${id} is outside the vocabulary of ${n} tokens`);
    }
    if (this.isSpecial(id)) return skipSpecial ? EMPTY : utf8.encode(this.table.tokens[id]);
    let bytes = this.pieces[id];
    if (!bytes) {
      bytes = this.pieceOf(id);
      this.pieces[id] = bytes;
    }
    return bytes;
  }

  /** Split text into text fragments and special-token ids, each special (longest first) at every occurrence. */
  protected splitSpecials(text: string, parseSpecial: boolean): (string | number)[] {
    let parts: (string | number)[] = text.length > 0 ? [text] : [];
    for (const special of this.specials) {
      // Without special parsing, user-defined tokens are still matched; control and unknown ones are plain text.
      if (special.control && !parseSpecial) continue;
      if (!parts.some((p) => typeof p === 'string' && p.includes(special.text))) continue;
      const next: (string | number)[] = [];
      for (const part of parts) {
        if (typeof part === 'number') {
          next.push(part);
          continue;
        }
        let from = 0;
        for (let at = part.indexOf(special.text); at >= 0; at = part.indexOf(special.text, from)) {
          if (at > from) next.push(part.slice(from, at));
          next.push(special.id);
          from = at + special.text.length;
        }
        if (from < part.length) next.push(part.slice(from));
      }
      parts = next;
    }
    return parts;
  }
}

/** What a Tokenizer says about itself beyond its algorithm. */
export type TokenizerFacts = Pick<Tokenizer, 'model' | 'bos' | 'eos' | 'addBos' | 'addEos' | 'endOfGeneration' | 'chatTemplate'>;

/**
 * The public Tokenizer over one of our tokenizers (`inner`) and its token table; `encode`
 * replaces the inner one where a pipeline wraps the model (Hugging Face files).
 */
export function publicTokenizer(
  inner: TokenizerBase & { encode(text: string, opts?: EncodeOptions): number[] },
  table: { tokens: string[] },
  facts: TokenizerFacts,
  encode: Tokenizer['encode'] = (text, opts) => inner.encode(text, opts),
): Tokenizer {
  return {
    ...facts,
    encode,
    decode: (ids, opts) => inner.decode(ids, opts),
    piece: (id) => inner.piece(id),
    tokenText: (id) => {
      inner.piece(id); // checks the id
      return table.tokens[id];
    },
    createStreamDecoder: (opts) => inner.createStreamDecoder(opts),
    vocabSize: table.tokens.length,
  };
}
