/**
 * One interface over SmallMind's tokenizers, and `loadTokenizer(path)` to get one from a file on
 * its own (no weights): a GGUF file (a model, or one of llama.cpp's vocab-only files) by its
 * tokenizer.ggml.model, a llama2.c tokenizer.bin, or Hugging Face files (tokenizer.json, vocab.json).
 */
import fs from 'node:fs';
import { FormatError, ModelError } from '../errors.js';
import { describeIoError } from '../formats/file.js';
import { GGUF_MAGIC, getOptionalString, readGGUF, type GGUFFile } from '../formats/gguf.js';
import { publicTokenizer } from './base.js';
import { BpeTokenizer, bpeVocabFromGGUF, type BpeTokenizerOptions, type BpeVocab } from './bpe.js';
import { loadHfTokenizer } from './hf.js';
import { readLlama2cTokenizer } from './llama2c.js';
import { SpmTokenizer, type DecodeOptions, type EncodeOptions, type StreamDecoder } from './spm.js';
import { TokenType, vocabFromGGUF, type Vocab } from './vocab.js';
import { WordPieceTokenizer, wordPieceVocabFromGGUF, type WordPieceVocab } from './wordpiece.js';

export type { DecodeOptions, EncodeOptions, StreamDecoder } from './spm.js';

export interface Tokenizer {
  /**
   * The family: 'llama' (SentencePiece-style, spaces as "▁", byte fallback), 'gpt2' (byte-level
   * BPE) or 'bert' (WordPiece), as GGUF's tokenizer.ggml.model names them.
   */
  readonly model: 'llama' | 'gpt2' | 'bert';
  encode(text: string, opts?: EncodeOptions): number[];
  decode(ids: readonly number[], opts?: DecodeOptions): string;
  /** The bytes a token contributes to printed text (control and unknown tokens: nothing). */
  piece(id: number): Uint8Array;
  /** The token's entry in the vocabulary as stored (e.g. "<s>", "▁the", "Ġthe"). */
  tokenText(id: number): string;
  createStreamDecoder(opts?: DecodeOptions): StreamDecoder;
  readonly vocabSize: number;
  readonly bos: number;
  readonly eos: number;
  /** Whether encode adds BOS / EOS by default (the vocabulary's add_bos/add_eos flags). */
  readonly addBos: boolean;
  readonly addEos: boolean;
  /** Tokens that end a generated turn: EOS, EOT and the chat formats' end-of-turn tokens (llama.cpp's EOG set). */
  readonly endOfGeneration: ReadonlySet<number>;
  /** The model's own Jinja chat template (GGUF tokenizer.chat_template, tokenizer_config.json chat_template), if any. */
  readonly chatTemplate?: string;
}

export interface LoadTokenizerOptions {
  /** A llama2.c tokenizer.bin's token count (the file does not store it); default: every entry in the file. */
  vocabSize?: number;
}

/**
 * A Tokenizer over a vocabulary already read (SPM for 'llama', BPE for 'gpt2', WordPiece for
 * 'bert'); `bpeOptions` are a BPE vocabulary's normalize/split hooks (tokenizer.json files).
 */
export function tokenizerFromVocab(vocab: Vocab | BpeVocab | WordPieceVocab, chatTemplate?: string, bpeOptions?: BpeTokenizerOptions): Tokenizer {
  const inner =
    vocab.model === 'gpt2' ? new BpeTokenizer(vocab, bpeOptions) : vocab.model === 'bert' ? new WordPieceTokenizer(vocab) : new SpmTokenizer(vocab);
  return publicTokenizer(inner, vocab, {
    model: vocab.model,
    bos: vocab.bos,
    eos: vocab.eos,
    addBos: vocab.addBos,
    addEos: vocab.addEos,
    endOfGeneration: endOfGenerationIds(vocab.tokens, vocab.types, [vocab.eos, vocab.model === 'bert' ? undefined : vocab.eot]),
    chatTemplate,
  });
}

/** Texts of control tokens that end a turn in common chat formats, besides EOS (as llama.cpp lists them). */
const END_OF_TURN_TEXTS = new Set(['<|eot_id|>', '<|im_end|>', '<|end|>', '<end_of_turn>', '<|endoftext|>', '<EOT>', '_<EOT>', '<｜end▁of▁sentence｜>', '<|eom_id|>', '<|return|>', '<|call|>']);

/** The ids that end generation: the given ids (EOS, EOT) and control tokens with an end-of-turn text. */
export function endOfGenerationIds(tokens: readonly string[], types: Int32Array, ids: readonly (number | undefined)[]): Set<number> {
  const out = new Set<number>();
  for (const id of ids) if (id !== undefined && id >= 0 && id < tokens.length) out.add(id);
  for (let id = 0; id < tokens.length; id++) {
    if (types[id] === TokenType.control && END_OF_TURN_TEXTS.has(tokens[id])) out.add(id);
  }
  return out;
}

/** The first four bytes of a file as latin1 text (fewer for a shorter file); FormatError 'cannot_open' when it cannot be read. */
export function fileMagic(path: string): string {
  let fd: number;
  try {
    fd = fs.openSync(path, 'r');
  } catch (err) {
    throw new FormatError('cannot_open', path, describeIoError(err));
  }
  const magic = Buffer.alloc(4);
  let n: number;
  try {
    n = fs.readSync(fd, magic, 0, 4, 0);
  } finally {
    fs.closeSync(fd);
  }
  return magic.subarray(0, n).toString('latin1');
}

/** Whether `path` starts with the GGUF magic; FormatError 'cannot_open' when it cannot be read. */
export function isGGUFFile(path: string): boolean {
  return fileMagic(path) === GGUF_MAGIC;
}

/** Hugging Face files: a folder (tokenizer.json, or vocab.json + merges.txt) or a .json file. */
function isHfTokenizerPath(path: string): boolean {
  return path.endsWith('.json') || (fs.existsSync(path) && fs.statSync(path).isDirectory());
}

/**
 * The tokenizer in a GGUF file (model or vocab-only), a llama2.c tokenizer.bin, or Hugging Face
 * files: a folder with tokenizer.json (or vocab.json + merges.txt), a tokenizer.json, a vocab.json.
 */
export function loadTokenizer(path: string, opts: LoadTokenizerOptions = {}): Tokenizer {
  if (isHfTokenizerPath(path)) return loadHfTokenizer(path);
  if (isGGUFFile(path)) {
    const file = readGGUF(path);
    return tokenizerFromGGUF(file);
  }
  return tokenizerFromVocab(readLlama2cTokenizer(path, opts.vocabSize ?? llama2cTokenCount(path)));
}

/** The tokenizer a GGUF file's tokenizer.ggml.* metadata describes, with its chat template. */
export function tokenizerFromGGUF(file: GGUFFile): Tokenizer {
  return tokenizerFromVocab(ggufVocab(file), getOptionalString(file, 'tokenizer.chat_template'));
}

/** The vocabulary in a GGUF file, of the family its tokenizer.ggml.model names. */
export function ggufVocab(file: GGUFFile): Vocab | BpeVocab | WordPieceVocab {
  const model = getOptionalString(file, 'tokenizer.ggml.model');
  if (model === undefined || model === 'llama') return vocabFromGGUF(file); // missing: its missing_key error
  if (model === 'gpt2') return bpeVocabFromGGUF(file);
  if (model === 'bert') return wordPieceVocabFromGGUF(file);
  throw new ModelError('unsupported_tokenizer', `${file.path}: tokenizer.ggml.model "${model}" is not supported (supported: llama, gpt2, bert)`);
}

/**
 * How many entries a llama2.c tokenizer.bin holds: walk (f32 score, i32 length, bytes) records to
 * the end. Where the records break, the count includes the broken one, so readLlama2cTokenizer
 * reports what is wrong with it.
 */
export function llama2cTokenCount(path: string): number {
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
