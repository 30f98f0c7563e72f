/**
 * One interface over SmallMind's tokenizers, and `loadTokenizer(path)` to get one from a file on
 * its own (no weights): a GGUF file (a model, or one of llama.cpp's vocab-only files) by its
 * tokenizer.ggml.model, or a llama2.c tokenizer.bin.
 */
import fs from 'node:fs';
import { FormatError, ModelError } from '../errors.js';
import { GGUF_MAGIC, getOptionalString, readGGUF } from '../formats/gguf.js';
import { BpeTokenizer, bpeVocabFromGGUF, type BpeVocab } from './bpe.js';
import { readLlama2cTokenizer } from './llama2c.js';
import { SpmTokenizer, type DecodeOptions, type EncodeOptions, type StreamDecoder } from './spm.js';
import { vocabFromGGUF, type Vocab } from './vocab.js';

export type { DecodeOptions, EncodeOptions, StreamDecoder } from './spm.js';

export interface Tokenizer {
  /** 'llama' (SentencePiece) or 'gpt2' (byte-level BPE): tokenizer.ggml.model. */
  readonly model: 'llama' | 'gpt2';
  encode(text: string, opts?: EncodeOptions): number[];
  decode(ids: readonly number[], opts?: DecodeOptions): string;
  /** The bytes a token contributes to printed text (control and unknown tokens: nothing). */
  piece(id: number): Uint8Array;
  createStreamDecoder(opts?: DecodeOptions): StreamDecoder;
  readonly vocabSize: number;
  readonly bos: number;
  readonly eos: number;
}

export interface LoadTokenizerOptions {
  /** A llama2.c tokenizer.bin's token count (the file does not store it); default: every entry in the file. */
  vocabSize?: number;
}

/** A Tokenizer over a vocabulary already read (SPM for 'llama', byte-level BPE for 'gpt2'). */
export function tokenizerFromVocab(vocab: Vocab | BpeVocab): Tokenizer {
  const inner = vocab.model === 'gpt2' ? new BpeTokenizer(vocab) : new SpmTokenizer(vocab);
  return {
    model: vocab.model,
    encode: (text, opts) => inner.encode(text, opts),
    decode: (ids, opts) => inner.decode(ids, opts),
    piece: (id) => inner.piece(id),
    createStreamDecoder: (opts) => inner.createStreamDecoder(opts),
    vocabSize: vocab.tokens.length,
    bos: vocab.bos,
    eos: vocab.eos,
  };
}

/** Whether `path` starts with the GGUF magic; FormatError 'cannot_open' when it cannot be read. */
export function isGGUFFile(path: string): boolean {
  let fd: number;
  try {
    fd = fs.openSync(path, 'r');
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message;
    throw new FormatError('cannot_open', path, reason);
  }
  const magic = Buffer.alloc(4);
  let n: number;
  try {
    n = fs.readSync(fd, magic, 0, 4, 0);
  } finally {
    fs.closeSync(fd);
  }
  return n === 4 && magic.toString('latin1') === GGUF_MAGIC;
}

/** The tokenizer in a GGUF file (model or vocab-only) or a llama2.c tokenizer.bin. */
export function loadTokenizer(path: string, opts: LoadTokenizerOptions = {}): Tokenizer {
  if (isGGUFFile(path)) {
    const file = readGGUF(path);
    const model = getOptionalString(file, 'tokenizer.ggml.model');
    if (model === undefined || model === 'llama') return tokenizerFromVocab(vocabFromGGUF(file)); // missing: its missing_key error
    if (model === 'gpt2') return tokenizerFromVocab(bpeVocabFromGGUF(file));
    throw new ModelError('unsupported_tokenizer', `${path}: tokenizer.ggml.model "${model}" is not supported (supported: llama, gpt2)`);
  }
  return tokenizerFromVocab(readLlama2cTokenizer(path, opts.vocabSize ?? llama2cTokenCount(path)));
}

/**
 * How many entries a llama2.c tokenizer.bin holds: walk (f32 score, i32 length, bytes) records to
 * the end. Where the records break, the count includes the broken one, so readLlama2cTokenizer
 * reports what is wrong with it.
 */
function llama2cTokenCount(path: string): number {
  const data = fs.readFileSync(path);
  if (data.length < 4) return 3; // readLlama2cTokenizer reports the short header
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const maxTokenLength = view.getInt32(0, true);
  let count = 0;
  let at = 4;
  while (at < data.length) {
    if (at + 8 > data.length) return count + 1;
    const length = view.getInt32(at + 4, true);
    if (length < 0 || length > maxTokenLength || at + 8 + length > data.length) return count + 1;
    at += 8 + length;
    count++;
  }
  return Math.max(count, 3);
}
