/**
 * A SentencePiece-style vocabulary as GGUF stores it (tokenizer.ggml.*): the token strings with
 * spaces written as U+2581, one score per token (higher merges first), one type per token, and
 * the special ids and flags that steer encoding.
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

/** Token types, as GGUF's tokenizer.ggml.token_type (and llama.cpp's llama_token_type) number them. */
export const TokenType = {
  undefined: 0,
  normal: 1,
  unknown: 2,
  control: 3,
  userDefined: 4,
  unused: 5,
  byte: 6,
} as const;

export interface Vocab {
  /** tokenizer.ggml.model; only 'llama' (SentencePiece BPE-with-scores) is supported. */
  model: 'llama';
  tokens: string[];
  scores: Float32Array;
  /** 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte (see TokenType). */
  types: Int32Array;
  bos: number;
  eos: number;
  unk: number;
  pad?: number;
  /** End of turn (tokenizer.ggml.eot_token_id), where the model has one. */
  eot?: number;
  addBos: boolean;
  addEos: boolean;
  addSpacePrefix: boolean;
}

/** SentencePiece's visible space. */
export const SPACE_MARK = '\u2581';

/** llama.cpp's defaults for an SPM vocabulary when the GGUF does not say otherwise. */
export const SPM_DEFAULTS = { bos: 1, eos: 2, unk: 0, addBos: true, addEos: false, addSpacePrefix: true } as const;

/**
 * Check what every vocabulary shares: some tokens, one type per token, and special-token ids inside
 * the vocabulary (those named in `optional` may be absent). `where` names the file in messages.
 */
export function checkTokenTable(
  where: string,
  tokens: readonly string[],
  types: Int32Array,
  ids: Record<string, number | undefined>,
  optional: readonly string[],
): void {
  const n = tokens.length;
  if (n === 0) throw new ModelError('invalid_vocab', `${where}: the vocabulary has no tokens`);
  if (types.length !== n) {
    throw new ModelError('invalid_vocab', `${where}: ${types.length} token types for ${n} tokens`);
  }
  for (const [name, id] of Object.entries(ids)) {
    if (id === undefined && optional.includes(name)) continue;
    if (!Number.isInteger(id) || id! < 0 || id! >= n) {
      throw new ModelError('invalid_vocab', `${where}: ${name} token id ${id} is outside the vocabulary of ${n} tokens`);
    }
  }
}

/** Check a vocabulary's arrays and ids agree; `where` names the file in the message. */
export function checkVocab(vocab: Vocab, where: string): void {
  const { bos, eos, unk, pad } = vocab;
  checkTokenTable(where, vocab.tokens, vocab.types, { bos, eos, unk, pad }, ['pad']);
  if (vocab.scores.length !== vocab.tokens.length) {
    throw new ModelError('invalid_vocab', `${where}: ${vocab.scores.length} scores for ${vocab.tokens.length} tokens`);
  }
}

/**
 * An optional special-token id. Converters write -1 (or 2^32-1) for "none", so an id outside the
 * vocabulary reads as absent.
 */
export function optionalTokenId(file: GGUFFile, key: string, vocabSize: number): number | undefined {
  const id = getOptionalNumber(file, key);
  return id !== undefined && id >= 0 && id < vocabSize ? id : undefined;
}

/** Build the vocabulary from a GGUF file's tokenizer.ggml.* metadata. */
export function vocabFromGGUF(file: GGUFFile): Vocab {
  const where = file.path;
  const model = getOptionalString(file, 'tokenizer.ggml.model');
  if (model === undefined) throw new ModelError('missing_key', `${where}: metadata key "tokenizer.ggml.model" is missing (the file has no tokenizer)`);
  if (model !== 'llama') {
    throw new ModelError('unsupported_tokenizer', `${where}: tokenizer.ggml.model "${model}" is not supported (supported: llama, SentencePiece)`);
  }
  const tokens = getStringArray(file, 'tokenizer.ggml.tokens');
  const n = tokens.length;
  const scores = file.metadata.has('tokenizer.ggml.scores') ? getNumberArray(file, 'tokenizer.ggml.scores') : undefined;
  const types = file.metadata.has('tokenizer.ggml.token_type') ? getNumberArray(file, 'tokenizer.ggml.token_type') : undefined;
  const vocab: Vocab = {
    model: 'llama',
    tokens,
    // Absent scores and types mean what llama.cpp assumes: score 0, normal token.
    scores: scores ? Float32Array.from(scores) : new Float32Array(n),
    types: types ? Int32Array.from(types) : new Int32Array(n).fill(TokenType.normal),
    bos: getOptionalNumber(file, 'tokenizer.ggml.bos_token_id') ?? SPM_DEFAULTS.bos,
    eos: getOptionalNumber(file, 'tokenizer.ggml.eos_token_id') ?? SPM_DEFAULTS.eos,
    unk: getOptionalNumber(file, 'tokenizer.ggml.unknown_token_id') ?? SPM_DEFAULTS.unk,
    addBos: getOptionalBool(file, 'tokenizer.ggml.add_bos_token') ?? SPM_DEFAULTS.addBos,
    addEos: getOptionalBool(file, 'tokenizer.ggml.add_eos_token') ?? SPM_DEFAULTS.addEos,
    addSpacePrefix: getOptionalBool(file, 'tokenizer.ggml.add_space_prefix') ?? SPM_DEFAULTS.addSpacePrefix,
  };
  vocab.pad = optionalTokenId(file, 'tokenizer.ggml.padding_token_id', n);
  vocab.eot = optionalTokenId(file, 'tokenizer.ggml.eot_token_id', n);
  checkVocab(vocab, where);
  return vocab;
}
