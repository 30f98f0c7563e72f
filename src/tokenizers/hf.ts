/**
 * A Tokenizer from Hugging Face files: tokenizer.json (+ tokenizer_config.json beside it), or a
 * GPT-2-style vocab.json + merges.txt. Encoding follows the `tokenizers` library's pipeline:
 *
 *   1. Added tokens whose `normalized` flag is off are found in the text as given (leftmost,
 *      longest; special ones only when parseSpecial is on) and become their ids.
 *   2. Each fragment between them is normalized (tokenizer.json "normalizer").
 *   3. Added tokens with `normalized` on are found in the normalized fragments.
 *   4. What is left is cut into words (the "pre_tokenizer"), and each word goes to our model:
 *      BpeTokenizer (byte-level when the pre-tokenizer includes ByteLevel, else on characters
 *      with byte fallback) or WordPieceTokenizer. The model never looks for added tokens again.
 *   5. With addSpecial, the ids the "post_processor" puts around a single text (BOS, CLS, SEP,
 *      EOS) are added; tokenizer_config.json's add_bos_token / add_eos_token override it.
 *
 * Decoding is the model's own (token pieces: GPT-2 bytes, or "▁" as a space and "<0xXX>" as a
 * byte, or WordPiece's "##" continuations); the "decoder" section is checked to be one these
 * pieces reproduce. Normalizers and pre-tokenizers are in hf-components.ts, the reverse direction
 * (our GGUF vocabularies written as tokenizer.json) in hf-export.ts.
 */
import fs from 'node:fs';
import nodePath from 'node:path';
import { FormatError, ModelError } from '../errors.js';
import { describeIoError } from '../formats/file.js';
import {
  badField,
  jsonChild,
  readMergesTxt,
  readTokenizerConfig,
  readTokenizerJson,
  readVocabJson,
  type AddedTokenJson,
  type BpeModelJson,
  type DecoderJson,
  type JsonPlace,
  type PostProcessorJson,
  type PreTokenizerJson,
  type TokenizerConfig,
  type TokenizerJson,
  type WordPieceModelJson,
} from '../formats/tokenizer-json.js';
import { publicTokenizer, utf8, type EncodeOptions } from './base.js';
import { BpeTokenizer, CHAR_TO_BYTE, type BpeVocab } from './bpe.js';
import { AddedTokenMatcher, buildNormalizer, buildPreTokenizer, type AddedTokenRule, type Normalizer } from './hf-components.js';
import { endOfGenerationIds, type Tokenizer } from './index.js';
import { TokenType } from './vocab.js';
import { WordPieceTokenizer, type WordPieceVocab } from './wordpiece.js';

export { tokenizerJsonFromVocab } from './hf-export.js';

// ---------------------------------------------------------------------------------------------
// Loading files

/**
 * The tokenizer in a folder (tokenizer.json, else vocab.json + merges.txt, with
 * tokenizer_config.json when present), a tokenizer.json file, or a vocab.json file.
 */
export function loadHfTokenizer(path: string): Tokenizer {
  let isFolder: boolean;
  try {
    isFolder = fs.statSync(path).isDirectory();
  } catch (err) {
    throw new FormatError('cannot_open', path, describeIoError(err));
  }
  const folder = isFolder ? path : nodePath.dirname(path);
  const configPath = nodePath.join(folder, 'tokenizer_config.json');
  const config = fs.existsSync(configPath) ? readTokenizerConfig(configPath) : {};
  if (isFolder) {
    const jsonPath = nodePath.join(folder, 'tokenizer.json');
    if (fs.existsSync(jsonPath)) return tokenizerFromHfJson(readTokenizerJson(jsonPath), jsonPath, config);
    if (fs.existsSync(nodePath.join(folder, 'vocab.json'))) return loadVocabAndMerges(nodePath.join(folder, 'vocab.json'), config);
    throw new FormatError('no_tokenizer', path, 'the folder has no tokenizer.json, and no vocab.json + merges.txt');
  }
  if (nodePath.basename(path) === 'vocab.json') return loadVocabAndMerges(path, config);
  return tokenizerFromHfJson(readTokenizerJson(path), path, config);
}

function loadVocabAndMerges(vocabPath: string, config: TokenizerConfig): Tokenizer {
  const mergesPath = nodePath.join(nodePath.dirname(vocabPath), 'merges.txt');
  if (!fs.existsSync(mergesPath)) throw new FormatError('cannot_open', mergesPath, 'no such file (vocab.json needs the merges.txt beside it)');
  const json = tokenizerJsonFromVocabFiles(readVocabJson(vocabPath), readMergesTxt(mergesPath), config);
  return tokenizerFromHfJson(json, vocabPath, config);
}

/**
 * The tokenizer.json that GPT-2-style vocab.json + merges.txt mean (transformers' GPT2Tokenizer):
 * byte-level BPE with GPT-2's split, no prefix space. The added tokens are tokenizer_config.json's
 * added_tokens_decoder; without one, "<|endoftext|>" (GPT-2's BOS, EOS and UNK) when the vocabulary has it.
 */
export function tokenizerJsonFromVocabFiles(vocab: Record<string, number>, merges: string[], config: TokenizerConfig = {}): TokenizerJson {
  const added: AddedTokenJson[] = [];
  if (config.added_tokens_decoder) {
    for (const [id, token] of config.added_tokens_decoder) added.push({ id, ...token });
  } else if (Object.hasOwn(vocab, '<|endoftext|>')) {
    added.push({ id: vocab['<|endoftext|>'], content: '<|endoftext|>', single_word: false, lstrip: false, rstrip: false, normalized: true, special: true });
  }
  const byteLevel = { add_prefix_space: false, trim_offsets: true, use_regex: true };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', ...byteLevel },
    post_processor: { type: 'ByteLevel', ...byteLevel },
    decoder: { type: 'ByteLevel', ...byteLevel },
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
      merges,
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Building the tokenizer

/** The token table both models share: text and type per id. */
interface TokenTable {
  tokens: string[];
  types: Int32Array;
  /** Text -> id (added tokens win over the model's vocabulary, as in the library). */
  ids: Map<string, number>;
}

/** A Tokenizer for a checked tokenizer.json; `file` names it in messages. */
export function tokenizerFromHfJson(json: TokenizerJson, file: string, config: TokenizerConfig = {}): Tokenizer {
  const root: JsonPlace = { file, path: '' };
  const vocab = json.model.vocab;
  const added = addedTokenIds(vocab, json.added_tokens);
  const table = tokenTable(vocab, added, root);
  const normalize = buildNormalizer(json.normalizer, jsonChild(root, 'normalizer'));
  const preTokenize = buildPreTokenizer(json.pre_tokenizer, jsonChild(root, 'pre_tokenizer'));
  const [raw, normalized] = addedTokenMatchers(added, normalize);

  // The model pre-tokenizes with our pipeline; `atStart` is set per fragment just before it runs.
  let atStart = false;
  const split = (text: string): string[] => preTokenize(text, atStart);
  const model = json.model.type === 'BPE'
    ? buildBpe(json, json.model, table, split, root)
    : buildWordPiece(json, json.model, table, split, root);

  const { prefix, suffix, bos, eos } = specialsAround(json.post_processor, config, table, jsonChild(root, 'post_processor'));
  const encode = (text: string, opts: EncodeOptions = {}): number[] => {
    const parseSpecial = opts.parseSpecial ?? false;
    const out: number[] = opts.addSpecial ?? true ? [...prefix] : [];
    for (const part of raw.split(text, parseSpecial)) {
      if (typeof part === 'number') {
        out.push(part);
        continue;
      }
      const fragment = normalize ? normalize(part.text) : part.text;
      for (const sub of normalized.split(fragment, parseSpecial)) {
        if (typeof sub === 'number') {
          out.push(sub);
          continue;
        }
        atStart = part.at === 0 && sub.at === 0;
        for (const id of model.inner.encode(sub.text, MODEL_ONLY)) out.push(id);
      }
    }
    if (opts.addSpecial ?? true) out.push(...suffix);
    return out;
  };

  return publicTokenizer(model.inner, table, {
    model: model.family,
    bos,
    eos,
    addBos: prefix.length > 0,
    addEos: suffix.length > 0,
    endOfGeneration: endOfGenerationIds(table.tokens, table.types, [eos]),
    chatTemplate: config.chat_template,
  }, encode);
}

/** The model sees text that the pipeline already split around added tokens and normalized. */
const MODEL_ONLY = { addSpecial: false, parseSpecial: false } as const;

/**
 * Our models under the pipeline: added tokens were found by the pipeline (with lstrip, rstrip,
 * single_word and normalized), so the model must not look for them again in its fragments.
 */
class PipelineBpe extends BpeTokenizer {
  /** The decoder turns "<0xXX>" tokens into bytes (ByteFallback); without it they print as written. */
  decodesByteTokens = true;

  protected override splitSpecials(text: string): (string | number)[] {
    return text.length > 0 ? [text] : [];
  }

  protected override pieceOf(id: number): Uint8Array {
    const text = this.vocab.tokens[id];
    const type = this.vocab.types[id];
    // The library runs added tokens through the decoder too: a byte-level one whose characters are
    // all in GPT-2's byte alphabet prints as those bytes ("ü" is byte 0xFC), as the ByteLevel decoder does.
    if (type === TokenType.userDefined && this.vocab.byteLevel) {
      const bytes = Array.from(text, (ch) => CHAR_TO_BYTE.get(ch.codePointAt(0)!));
      return bytes.every((b) => b !== undefined) ? Uint8Array.from(bytes as number[]) : utf8.encode(text);
    }
    if (type === TokenType.byte && !this.decodesByteTokens) return utf8.encode(text);
    return super.pieceOf(id);
  }
}

class PipelineWordPiece extends WordPieceTokenizer {
  /** The WordPiece decoder's `cleanup`: no space before ". , ! ?" (the library applies it token by token). */
  cleanup = false;

  protected override splitSpecials(text: string): (string | number)[] {
    return text.length > 0 ? [text] : [];
  }

  protected override pieceOf(id: number): Uint8Array {
    const piece = super.pieceOf(id);
    if (!this.cleanup || piece.length < 2 || piece[0] !== 0x20) return piece;
    const text = new TextDecoder().decode(piece);
    const cleaned = cleanupTokenizationSpaces(text);
    return cleaned === text ? piece : new TextEncoder().encode(cleaned);
  }
}

/** transformers' clean_up_tokenization: the spaces tokenization put before punctuation and contractions. */
function cleanupTokenizationSpaces(text: string): string {
  return text
    .replaceAll(' .', '.')
    .replaceAll(' ?', '?')
    .replaceAll(' !', '!')
    .replaceAll(' ,', ',')
    .replaceAll(" ' ", "'")
    .replaceAll(" n't", "n't")
    .replaceAll(" 'm", "'m")
    .replaceAll(' do not', " don't")
    .replaceAll(" 's", "'s")
    .replaceAll(" 've", "'ve")
    .replaceAll(" 're", "'re");
}

/**
 * Added tokens with the ids the library gives them when it loads a file: the model's id for a text
 * the model's vocabulary has, else the next id after the vocabulary's entries, in file order. For
 * a well-formed file these are the ids it lists; where they differ, the library's win.
 */
function addedTokenIds(vocab: Record<string, number>, added: readonly AddedTokenJson[]): AddedTokenJson[] {
  const assigned = new Map<string, number>();
  let next = Object.keys(vocab).length;
  return added.map((t) => {
    const id = assigned.get(t.content) ?? (Object.hasOwn(vocab, t.content) ? vocab[t.content] : next++);
    assigned.set(t.content, id);
    return { ...t, id };
  });
}

/** Token texts and types: the model's vocabulary, with added tokens as control (special) or user-defined tokens. */
function tokenTable(vocab: Record<string, number>, added: readonly AddedTokenJson[], root: JsonPlace): TokenTable {
  let size = 0;
  for (const id of Object.values(vocab)) size = Math.max(size, id + 1);
  for (const t of added) size = Math.max(size, t.id + 1);
  if (size === 0) throw badField(jsonChild(jsonChild(root, 'model'), 'vocab'), 'the vocabulary is empty');
  const tokens: string[] = new Array(size).fill('');
  // Ids no entry names print nothing.
  const types = new Int32Array(size).fill(TokenType.unused);
  const ids = new Map<string, number>();
  for (const [text, id] of Object.entries(vocab)) {
    tokens[id] = text;
    types[id] = TokenType.normal;
    ids.set(text, id);
  }
  for (const t of added) {
    tokens[t.id] = t.content;
    types[t.id] = t.special ? TokenType.control : TokenType.userDefined;
    ids.set(t.content, t.id);
  }
  return { tokens, types, ids };
}

/** Matchers for the added tokens looked for in the text as given, and in normalized text. */
function addedTokenMatchers(added: readonly AddedTokenJson[], normalize: Normalizer | undefined): [AddedTokenMatcher, AddedTokenMatcher] {
  const raw: AddedTokenRule[] = [];
  const normalized: AddedTokenRule[] = [];
  for (const t of added) {
    const rule = { id: t.id, text: t.content, special: t.special, singleWord: t.single_word, lstrip: t.lstrip, rstrip: t.rstrip };
    if (t.normalized && normalize) normalized.push({ ...rule, text: normalize(t.content) });
    else raw.push(rule);
  }
  return [new AddedTokenMatcher(raw), new AddedTokenMatcher(normalized.filter((r) => r.text.length > 0))];
}

interface BuiltModel {
  family: Tokenizer['model'];
  inner: PipelineBpe | PipelineWordPiece;
}

function buildBpe(json: TokenizerJson, model: BpeModelJson, table: TokenTable, split: (text: string) => string[], root: JsonPlace): BuiltModel {
  const place = jsonChild(root, 'model');
  for (const key of ['continuing_subword_prefix', 'end_of_word_suffix'] as const) {
    if (model[key] !== null && model[key] !== '') {
      throw new ModelError('unsupported_tokenizer', `${root.file}: ${place.path}.${key} ${JSON.stringify(model[key])} is not supported (BPE without word prefixes or suffixes only)`);
    }
  }
  if (model.dropout !== null && model.dropout > 0) {
    throw new ModelError('unsupported_tokenizer', `${root.file}: ${place.path}.dropout ${model.dropout} is not supported (BPE dropout is for training)`);
  }
  const byteLevel = usesByteLevel(json.pre_tokenizer, jsonChild(root, 'pre_tokenizer'));
  const unk = model.unk_token === null ? undefined : table.ids.get(model.unk_token);
  if (model.unk_token !== null && unk === undefined) throw badField(jsonChild(place, 'unk_token'), `${JSON.stringify(model.unk_token)} is not in the vocabulary`);
  const types = Int32Array.from(table.types);
  if (model.byte_fallback) {
    for (let id = 0; id < types.length; id++) if (types[id] === TokenType.normal && /^<0x[0-9A-F]{2}>$/.test(table.tokens[id])) types[id] = TokenType.byte;
  }
  const { stripsSpacePrefix, decodesByteTokens } = checkBpeDecoder(json.decoder, byteLevel, jsonChild(root, 'decoder'));
  const vocab: BpeVocab = {
    model: 'gpt2',
    pre: 'default', // unused: the pipeline splits
    tokens: table.tokens,
    types,
    merges: model.merges,
    byteLevel,
    byteFallback: model.byte_fallback,
    ignoreMerges: model.ignore_merges,
    unk,
    // The pipeline adds the post-processor's specials; these only satisfy the vocabulary's checks.
    bos: 0,
    eos: 0,
    addBos: false,
    addEos: false,
  };
  const inner = new PipelineBpe(vocab, { split, stripsSpacePrefix });
  inner.decodesByteTokens = decodesByteTokens;
  return { family: byteLevel ? 'gpt2' : 'llama', inner };
}

function buildWordPiece(json: TokenizerJson, model: WordPieceModelJson, table: TokenTable, split: (text: string) => string[], root: JsonPlace): BuiltModel {
  const place = jsonChild(root, 'model');
  const unk = table.ids.get(model.unk_token);
  if (unk === undefined) throw badField(jsonChild(place, 'unk_token'), `${JSON.stringify(model.unk_token)} is not in the vocabulary`);
  const cleanup = checkWordPieceDecoder(json.decoder, model.continuing_subword_prefix, jsonChild(root, 'decoder'));
  const vocab: WordPieceVocab = {
    model: 'bert',
    tokens: table.tokens,
    types: table.types,
    wordStartPrefix: '',
    continuationPrefix: model.continuing_subword_prefix,
    // The pipeline's normalizer and pre-tokenizer do BERT's text handling.
    lowercase: false,
    stripAccents: false,
    handleChineseChars: false,
    maxInputCharsPerWord: model.max_input_chars_per_word,
    bos: 0,
    eos: 0,
    unk,
    addBos: false,
    addEos: false,
  };
  const inner = new PipelineWordPiece(vocab, { split });
  inner.cleanup = cleanup;
  return { family: 'bert', inner };
}

/**
 * Whether BPE works on bytes: the pre-tokenizer includes ByteLevel. It must be the last step,
 * because our model writes the bytes as GPT-2's characters after all splitting.
 */
function usesByteLevel(json: PreTokenizerJson | null, place: JsonPlace): boolean {
  if (json === null) return false;
  if (json.type === 'ByteLevel') return true;
  if (json.type !== 'Sequence') return false;
  const steps = json.pretokenizers;
  steps.forEach((step, i) => {
    if (i < steps.length - 1 && usesByteLevel(step, jsonChild(jsonChild(place, 'pretokenizers'), i))) {
      throw new ModelError('unsupported_tokenizer', `${place.file}: ${place.path}.pretokenizers[${i}]: ByteLevel before other pre-tokenizers is not supported (it must come last)`);
    }
  });
  return steps.length > 0 && usesByteLevel(steps[steps.length - 1], jsonChild(jsonChild(place, 'pretokenizers'), steps.length - 1));
}

function flattenDecoders(json: DecoderJson | null): DecoderJson[] {
  if (json === null) return [];
  return json.type === 'Sequence' ? json.decoders.flatMap(flattenDecoders) : [json];
}

function unsupportedDecoder(place: JsonPlace, what: string, supported: string): ModelError {
  return new ModelError('unsupported_tokenizer', `${place.file}: ${place.path}: ${what} is not supported with this model (supported: ${supported})`);
}

/**
 * Check a BPE decoder is one our pieces reproduce; returns whether decoding drops the space at the
 * start of the text (Strip after Fuse, or Metaspace prepending "▁") and turns "<0xXX>" into bytes.
 */
function checkBpeDecoder(json: DecoderJson | null, byteLevel: boolean, place: JsonPlace): { stripsSpacePrefix: boolean; decodesByteTokens: boolean } {
  const steps = flattenDecoders(json);
  const decodesByteTokens = steps.some((d) => d.type === 'ByteFallback');
  if (byteLevel) {
    const other = steps.find((d) => d.type !== 'ByteLevel');
    if (other) throw unsupportedDecoder(place, `the decoder ${other.type}`, 'ByteLevel');
    return { stripsSpacePrefix: false, decodesByteTokens };
  }
  const supported = 'Replace "▁" -> " ", ByteFallback, Fuse, Strip of one leading space, Metaspace with "▁"';
  let strips = false;
  for (const d of steps) {
    if (d.type === 'Replace' && 'String' in d.pattern && d.pattern.String === '\u2581' && d.content === ' ') continue;
    if (d.type === 'ByteFallback' || d.type === 'Fuse') continue;
    if (d.type === 'Strip' && d.content === ' ' && d.start <= 1 && d.stop === 0) {
      strips = d.start === 1;
      continue;
    }
    if (d.type === 'Metaspace' && d.replacement === '\u2581') {
      strips = d.prepend_scheme !== 'never';
      continue;
    }
    throw unsupportedDecoder(place, `the decoder ${JSON.stringify(d)}`, supported);
  }
  return { stripsSpacePrefix: strips, decodesByteTokens };
}

/** Check a WordPiece decoder matches the model's prefix; returns its `cleanup` flag. */
function checkWordPieceDecoder(json: DecoderJson | null, prefix: string, place: JsonPlace): boolean {
  let cleanup = false;
  for (const d of flattenDecoders(json)) {
    if (d.type !== 'WordPiece' || d.prefix !== prefix) {
      throw unsupportedDecoder(place, `the decoder ${JSON.stringify(d)}`, `WordPiece with prefix ${JSON.stringify(prefix)}`);
    }
    cleanup = d.cleanup;
  }
  return cleanup;
}

// ---------------------------------------------------------------------------------------------
// Special tokens around the text

/** Well-known texts of BOS and EOS tokens, for files that do not name them. */
const BOS_TEXTS = ['<|begin_of_text|>', '<s>', '<bos>', '[CLS]', '<|startoftext|>', '<|endoftext|>'];
const EOS_TEXTS = ['<|end_of_text|>', '</s>', '<eos>', '[SEP]', '<|endoftext|>', '<|im_end|>'];

/**
 * The ids encode adds before and after a text, and the BOS and EOS ids: tokenizer_config.json's
 * bos_token / eos_token, else the post-processor's first and last, else well-known texts among the
 * special tokens, else the first special token (0 when there is none).
 */
function specialsAround(json: PostProcessorJson | null, config: TokenizerConfig, table: TokenTable, place: JsonPlace): { prefix: number[]; suffix: number[]; bos: number; eos: number } {
  let { prefix, suffix } = postProcessorSpecials(json, place);
  const idOf = (text: string | undefined, key: string): number | undefined => {
    if (text === undefined) return undefined;
    const id = table.ids.get(text);
    if (id === undefined) throw new ModelError('bad_tokenizer_config', `tokenizer_config.json: ${key} ${JSON.stringify(text)} is not a token of ${place.file}`);
    return id;
  };
  const specials = table.tokens.map((_, id) => id).filter((id) => table.types[id] === TokenType.control);
  const known = (texts: string[]): number | undefined => texts.map((t) => table.ids.get(t)).find((id) => id !== undefined && table.types[id] === TokenType.control);
  const bos = idOf(config.bos_token, 'bos_token') ?? prefix[0] ?? known(BOS_TEXTS) ?? specials[0] ?? 0;
  const eos = idOf(config.eos_token, 'eos_token') ?? suffix[suffix.length - 1] ?? known(EOS_TEXTS) ?? specials[0] ?? 0;
  // transformers rebuilds the post-processor from these flags when the config gives them.
  if (config.add_bos_token !== undefined && config.bos_token !== undefined) {
    prefix = prefix.filter((id) => id !== bos);
    if (config.add_bos_token) prefix = [bos, ...prefix];
  }
  if (config.add_eos_token !== undefined && config.eos_token !== undefined) {
    suffix = suffix.filter((id) => id !== eos);
    if (config.add_eos_token) suffix = [...suffix, eos];
  }
  return { prefix, suffix, bos, eos };
}

/** The special ids a post-processor puts before and after a single text. */
function postProcessorSpecials(json: PostProcessorJson | null, place: JsonPlace): { prefix: number[]; suffix: number[] } {
  if (json === null) return { prefix: [], suffix: [] };
  switch (json.type) {
    case 'ByteLevel':
      return { prefix: [], suffix: [] };
    case 'BertProcessing':
    case 'RobertaProcessing':
      return { prefix: [json.cls[1]], suffix: [json.sep[1]] };
    case 'TemplateProcessing': {
      const prefix: number[] = [];
      const suffix: number[] = [];
      let seenText = false;
      json.single.forEach((piece, i) => {
        if ('Sequence' in piece) {
          seenText = true;
          return;
        }
        const name = piece.SpecialToken.id;
        const special = json.special_tokens[name];
        if (!special) throw badField(jsonChild(jsonChild(jsonChild(place, 'single'), i), 'SpecialToken'), `${JSON.stringify(name)} is not in special_tokens`);
        (seenText ? suffix : prefix).push(...special.ids);
      });
      return { prefix, suffix };
    }
    case 'Sequence': {
      // Each processor wraps what the ones before it produced.
      let prefix: number[] = [];
      let suffix: number[] = [];
      json.processors.forEach((p, i) => {
        const inner = postProcessorSpecials(p, jsonChild(jsonChild(place, 'processors'), i));
        prefix = [...inner.prefix, ...prefix];
        suffix = [...suffix, ...inner.suffix];
      });
      return { prefix, suffix };
    }
  }
}
