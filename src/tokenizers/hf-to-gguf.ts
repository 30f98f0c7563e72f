/**
 * A Hugging Face tokenizer (tokenizer.json + tokenizer_config.json) as GGUF tokenizer.ggml.*
 * metadata, the inverse of hf-export.ts for the BPE families, as llama.cpp's converter maps them:
 *
 *   byte-level BPE (ByteLevel pre-tokenizer)     model "gpt2": tokens, merges, token types, and
 *                                                `pre` named from the pre-tokenizer ("gpt-2" for
 *                                                plain ByteLevel; our own exports by their Splits)
 *   BPE with byte fallback (SentencePiece style) model "llama": tokens, token types and scores.
 *                                                SentencePiece merges the adjacent pair whose
 *                                                concatenation scores highest; BPE the pair of
 *                                                lowest merge rank. A token's score is minus the
 *                                                rank of the first merge that makes it, so both
 *                                                orders agree
 *
 * Token types: special added tokens are control (3), other added tokens user-defined (4), the
 * unknown token unknown (2), "<0xXX>" byte tokens with byte fallback byte (6), the rest normal.
 * A vocabulary shorter than the model's is padded with "[PAD<i>]" user-defined tokens (as
 * llama.cpp pads). WordPiece and other models are refused with a ModelError naming the file.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ModelError } from '../errors.js';
import type { GGUFTypedValue } from '../formats/gguf.js';
import { readTokenizerConfig, readTokenizerJson, type BpeModelJson, type PreTokenizerJson, type TokenizerJson } from '../formats/tokenizer-json.js';
import { charTokenizerFromJson } from '../train/char-tokenizer.js';
import { BYTE_TO_CHAR } from './bpe.js';
import { jsToOniguruma } from './hf-regex.js';
import { BPE_PRETOKENIZERS, preTokenizerRegexes } from './pretokenizers.js';
import { SPACE_MARK, TokenType } from './vocab.js';

/** tokenizer.ggml.* entries for the tokenizer in `dir`, padded to `vocabSize` tokens. */
export function ggufTokenizerMetadata(dir: string, vocabSize: number, config: { bos_token_id?: unknown; eos_token_id?: unknown }): [string, GGUFTypedValue][] {
  const file = path.join(dir, 'tokenizer.json');
  if (!fs.existsSync(file)) throw new ModelError('missing_tokenizer', `${dir}: no tokenizer.json`);
  const json = readTokenizerJson(file);
  const configFile = path.join(dir, 'tokenizer_config.json');
  const tc = fs.existsSync(configFile) ? readTokenizerConfig(configFile) : {};
  if (json.model.type !== 'BPE') throw new ModelError('unsupported_tokenizer', `${file}: converting a ${json.model.type} tokenizer to GGUF is not supported (BPE only)`);
  const model = json.model;

  const tokens = tokenTable(json, vocabSize, file);
  // The character tokenizer (src/train/char-tokenizer.ts) of an ASCII corpus: every token is one
  // byte, so a byte-level BPE without merges splits text into exactly these tokens.
  const asciiChars = !hasByteLevel(json.pre_tokenizer) && charTokenizerFromJson(json)?.chars.every((ch) => ch.charCodeAt(0) < 0x80) === true;
  if (asciiChars) tokens.forEach((t, id) => (tokens[id] = BYTE_TO_CHAR[t!.charCodeAt(0)]));
  const types = new Int32Array(tokens.length).fill(TokenType.normal);
  for (let id = 0; id < tokens.length; id++) if (tokens[id] === undefined) [tokens[id], types[id]] = [`[PAD${id}]`, TokenType.userDefined];
  for (const t of json.added_tokens) types[t.id] = t.special ? TokenType.control : TokenType.userDefined;
  const idOf = new Map(tokens.map((t, id) => [t, id]));
  if (model.unk_token !== null && idOf.has(model.unk_token)) types[idOf.get(model.unk_token)!] = TokenType.unknown;

  const byteLevel = hasByteLevel(json.pre_tokenizer) || asciiChars;
  const out: [string, GGUFTypedValue][] = [];
  const str = (key: string, value: string): void => void out.push([`tokenizer.ggml.${key}`, { type: 'string', value }]);
  const u32 = (key: string, value: number): void => void out.push([`tokenizer.ggml.${key}`, { type: 'u32', value }]);
  const bool = (key: string, value: boolean): void => void out.push([`tokenizer.ggml.${key}`, { type: 'bool', value }]);
  const merges = model.merges.map((m) => (typeof m === 'string' ? m : `${m[0]} ${m[1]}`));
  if (byteLevel) {
    str('model', 'gpt2');
    str('pre', asciiChars ? 'default' : preTokenizerName(json.pre_tokenizer!, file));
  } else if (model.byte_fallback) {
    str('model', 'llama');
    tokens.forEach((t, id) => {
      if (/^<0x[0-9A-F]{2}>$/.test(t!) && types[id] === TokenType.normal) types[id] = TokenType.byte;
    });
  } else {
    throw new ModelError('unsupported_tokenizer', `${file}: a BPE tokenizer without ByteLevel or byte_fallback has no GGUF equivalent`);
  }
  out.push(['tokenizer.ggml.tokens', { type: 'array', itemType: 'string', value: tokens as string[] }]);
  if (!byteLevel) out.push(['tokenizer.ggml.scores', { type: 'array', itemType: 'f32', value: mergeScores(tokens as string[], model) }]);
  out.push(['tokenizer.ggml.token_type', { type: 'array', itemType: 'i32', value: types }]);
  if (byteLevel) out.push(['tokenizer.ggml.merges', { type: 'array', itemType: 'string', value: merges }]);

  const special = (name: string | undefined, fallback: unknown): number | undefined => {
    if (name !== undefined && idOf.has(name)) return idOf.get(name);
    return typeof fallback === 'number' ? fallback : Array.isArray(fallback) && typeof fallback[0] === 'number' ? fallback[0] : undefined;
  };
  const bos = special(tc.bos_token, config.bos_token_id);
  const eos = special(tc.eos_token, config.eos_token_id);
  if (bos !== undefined) u32('bos_token_id', bos);
  if (eos !== undefined) u32('eos_token_id', eos);
  if (model.unk_token !== null && idOf.has(model.unk_token)) u32('unknown_token_id', idOf.get(model.unk_token)!);
  const pad = special(tc.pad_token, undefined);
  if (pad !== undefined) u32('padding_token_id', pad);
  bool('add_bos_token', tc.add_bos_token ?? templateAdds(json, 'first'));
  bool('add_eos_token', tc.add_eos_token ?? templateAdds(json, 'last'));
  if (!byteLevel) bool('add_space_prefix', prependsSpace(json));
  if (tc.chat_template !== undefined) out.push(['tokenizer.chat_template', { type: 'string', value: tc.chat_template }]);
  return out;
}

/** Token texts by id (model vocabulary and added tokens), undefined where no token has that id. */
function tokenTable(json: TokenizerJson, vocabSize: number, file: string): (string | undefined)[] {
  const tokens: (string | undefined)[] = [];
  const put = (text: string, id: number): void => {
    if (id >= vocabSize) throw new ModelError('vocab_mismatch', `${file}: token ${JSON.stringify(text)} has id ${id}, past the model's vocab_size ${vocabSize}`);
    tokens[id] = text;
  };
  for (const [text, id] of Object.entries(json.model.vocab)) put(text, id);
  for (const t of json.added_tokens) put(t.content, t.id);
  tokens.length = vocabSize;
  return tokens;
}

function hasByteLevel(p: PreTokenizerJson | null): boolean {
  if (!p) return false;
  return p.type === 'ByteLevel' || (p.type === 'Sequence' && p.pretokenizers.some(hasByteLevel));
}

/** llama.cpp's `pre` name for a byte-level pre-tokenizer: plain ByteLevel is GPT-2's; Splits are matched against every known name's regexes. */
function preTokenizerName(p: PreTokenizerJson, file: string): string {
  if (p.type === 'ByteLevel' && p.use_regex) return 'gpt-2';
  const steps = p.type === 'Sequence' ? p.pretokenizers : [p];
  const splits = steps.filter((s) => s.type === 'Split').map((s) => ('Regex' in s.pattern ? s.pattern.Regex : s.pattern.String));
  const last = steps[steps.length - 1];
  if (splits.length === steps.length - 1 && last?.type === 'ByteLevel') {
    if (splits.length === 0 && last.use_regex) return 'gpt-2';
    for (const name of BPE_PRETOKENIZERS) {
      const patterns = preTokenizerRegexes(name).map((re) => jsToOniguruma(re.source));
      if (patterns.length === splits.length && patterns.every((re, i) => re === splits[i])) return name;
    }
  }
  throw new ModelError('unsupported_tokenizer', `${file}: its pre_tokenizer matches none of llama.cpp's named pre-tokenizers, so it has no tokenizer.ggml.pre`);
}

/** Scores that make SentencePiece merge in BPE rank order: −rank of the first merge making a token. */
function mergeScores(tokens: readonly string[], model: BpeModelJson): Float32Array {
  const scores = new Float32Array(tokens.length);
  const rank = new Map<string, number>();
  model.merges.forEach((m, i) => {
    const [left, right] = typeof m === 'string' ? [m.slice(0, m.indexOf(' ', 1)), m.slice(m.indexOf(' ', 1) + 1)] : m;
    const merged = left + right;
    if (!rank.has(merged)) rank.set(merged, i);
  });
  tokens.forEach((t, id) => {
    const r = rank.get(t);
    // a token no merge makes is never formed by merging: only its length-1 pieces matter
    scores[id] = r === undefined ? (Array.from(t).length > 1 ? -1e9 : 0) : -r;
  });
  return scores;
}

/** Whether the post-processor's single-sequence template adds a special token first / last. */
function templateAdds(json: TokenizerJson, where: 'first' | 'last'): boolean {
  const p = json.post_processor;
  if (!p || p.type !== 'TemplateProcessing' || p.single.length === 0) return false;
  const piece = where === 'first' ? p.single[0]! : p.single[p.single.length - 1]!;
  return 'SpecialToken' in piece;
}

/** SentencePiece's "▁" in front of the text: a Prepend normalizer, or a Metaspace that prepends. */
function prependsSpace(json: TokenizerJson): boolean {
  const n = json.normalizer;
  const normalizers = n === null ? [] : n.type === 'Sequence' ? n.normalizers : [n];
  if (normalizers.some((x) => x.type === 'Prepend' && x.prepend === SPACE_MARK)) return true;
  const p = json.pre_tokenizer;
  const steps = p === null ? [] : p.type === 'Sequence' ? p.pretokenizers : [p];
  return steps.some((s) => s.type === 'Metaspace' && s.prepend_scheme !== 'never');
}
