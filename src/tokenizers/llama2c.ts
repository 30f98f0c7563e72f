/**
 * llama2.c's tokenizer.bin: i32 max_token_length, then for each of vocab_size tokens an f32
 * score, an i32 byte length and that many UTF-8 bytes. llama2.c's exporter wrote spaces instead
 * of U+2581 and BOS/EOS as "\n<s>\n" / "\n</s>\n", and kept no token types; we undo the first
 * two and derive the types, so the result tokenizes exactly like the same vocabulary in a GGUF.
 */
import fs from 'node:fs';
import { FormatError, RequestError } from '../errors.js';
import { SPACE_MARK, SPM_DEFAULTS, TokenType, type Vocab } from './vocab.js';

export function readLlama2cTokenizer(path: string, vocabSize: number): Vocab {
  if (!Number.isInteger(vocabSize) || vocabSize < 3) {
    throw new RequestError('invalid_vocab_size', 'vocabSize', `must be an integer ≥ 3 (unk, bos, eos), got ${vocabSize}`);
  }
  let data: Buffer;
  try {
    data = fs.readFileSync(path);
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message;
    throw new FormatError('cannot_open', path, reason);
  }
  if (data.length < 4) throw new FormatError('truncated', path, `${data.length} bytes is too short for a llama2.c tokenizer header`);
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const maxTokenLength = view.getInt32(0, true);
  if (maxTokenLength <= 0) throw new FormatError('invalid_header', path, `max_token_length is ${maxTokenLength}; not a llama2.c tokenizer.bin`);

  // ignoreBOM: the vocabulary has a U+FEFF token, which must not be eaten as a byte-order mark.
  const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  const tokens: string[] = new Array(vocabSize);
  const scores = new Float32Array(vocabSize);
  let at = 4;
  for (let i = 0; i < vocabSize; i++) {
    if (at + 8 > data.length) {
      throw new FormatError('truncated', path, `ends inside token ${i} of ${vocabSize} (byte ${at}); is the vocabulary size right?`);
    }
    scores[i] = view.getFloat32(at, true);
    const length = view.getInt32(at + 4, true);
    at += 8;
    if (length < 0 || length > maxTokenLength) {
      throw new FormatError('invalid_token', path, `token ${i} has length ${length}, outside 0..max_token_length ${maxTokenLength}`);
    }
    if (at + length > data.length) throw new FormatError('truncated', path, `ends inside the text of token ${i} of ${vocabSize}`);
    let text: string;
    try {
      text = decoder.decode(data.subarray(at, at + length));
    } catch {
      throw new FormatError('invalid_token', path, `token ${i} is not valid UTF-8`);
    }
    at += length;
    tokens[i] = unexport(text);
  }
  if (at !== data.length) {
    throw new FormatError('vocab_size_mismatch', path, `${data.length - at} bytes remain after ${vocabSize} tokens; the file holds a larger vocabulary than the model's`);
  }

  const types = new Int32Array(vocabSize);
  for (let i = 0; i < vocabSize; i++) {
    if (i === SPM_DEFAULTS.unk) types[i] = TokenType.unknown;
    else if (i === SPM_DEFAULTS.bos || i === SPM_DEFAULTS.eos) types[i] = TokenType.control;
    else if (/^<0x[0-9A-F]{2}>$/.test(tokens[i])) types[i] = TokenType.byte;
    else types[i] = TokenType.normal;
  }
  return { model: 'llama', tokens, scores, types, ...SPM_DEFAULTS };
}

/** Undo llama2.c's export: its BOS/EOS spellings, and spaces where SentencePiece had U+2581. */
function unexport(text: string): string {
  if (text === '\n<s>\n') return '<s>';
  if (text === '\n</s>\n') return '</s>';
  return text.replaceAll(' ', SPACE_MARK);
}
