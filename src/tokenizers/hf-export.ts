/**
 * Our vocabularies written as a Hugging Face tokenizer.json that the `tokenizers` library (and
 * transformers, and @huggingface/tokenizers) loads with the same token ids:
 *
 *   byte-level BpeVocab (GPT-2 family)   our pre-tokenizer's regexes as Split steps (Isolated),
 *                                        then ByteLevel without its own regex; ByteLevel decoder
 *   character-level BpeVocab             SentencePiece-style, as trained by `tokenizer train`:
 *   SentencePiece Vocab (scores)         Prepend "▁" + Replace " " -> "▁" normalizer, no
 *                                        pre-tokenizer, BPE with byte fallback; decoder Replace
 *                                        "▁" -> " ", ByteFallback, Fuse, Strip the first space
 *   WordPieceVocab (BERT)                BertNormalizer, BertPreTokenizer, WordPiece with HF's
 *                                        convention: llama.cpp's "▁word" / "ing" become "word" /
 *                                        "##ing"; [CLS] text [SEP] as the vocabulary adds them
 *
 * A SentencePiece vocabulary has scores, not merges. Its BPE merges are derived as transformers'
 * LlamaConverter derives them: every way to cut a token into two tokens is a merge, ranked by the
 * token's score (highest first), then the longer left part, then the longer right part, then
 * vocabulary order. Merging by that rank reproduces SentencePiece's highest-score-first merging.
 *
 * Control and unknown tokens become special added tokens, user-defined ones non-special added
 * tokens; BOS/EOS follow the vocabulary's add flags in a TemplateProcessing post-processor.
 */
import { ModelError } from '../errors.js';
import type { AddedTokenJson, NormalizerJson, PostProcessorJson, TokenizerJson, DecoderJson, TemplatePieceJson } from '../formats/tokenizer-json.js';
import { type BpeVocab } from './bpe.js';
import { jsToOniguruma } from './hf-regex.js';
import { preTokenizerRegexes } from './pretokenizers.js';
import { SPACE_MARK, TokenType, type Vocab } from './vocab.js';
import type { WordPieceVocab } from './wordpiece.js';

/** A tokenizer.json for a GGUF-style vocabulary (see the file header for the mapping). */
export function tokenizerJsonFromVocab(vocab: Vocab | BpeVocab | WordPieceVocab): TokenizerJson {
  if (vocab.model === 'llama') return sentencePieceJson(vocab);
  if (vocab.model === 'bert') return wordPieceJson(vocab);
  return vocab.byteLevel ?? true ? byteLevelJson(vocab) : characterBpeJson(vocab);
}

/** tokenizer_config.json fields for the same vocabulary: its special tokens, add flags and chat template. */
export function tokenizerConfigFromVocab(vocab: Vocab | BpeVocab | WordPieceVocab, chatTemplate?: string): Record<string, unknown> {
  const config: Record<string, unknown> = {
    tokenizer_class: 'PreTrainedTokenizerFast',
    bos_token: vocab.tokens[vocab.bos],
    eos_token: vocab.tokens[vocab.eos],
    add_bos_token: vocab.addBos,
    add_eos_token: vocab.addEos,
    clean_up_tokenization_spaces: false,
  };
  if (vocab.unk !== undefined) config.unk_token = vocab.tokens[vocab.unk];
  if (vocab.pad !== undefined) config.pad_token = vocab.tokens[vocab.pad];
  if (chatTemplate !== undefined) config.chat_template = chatTemplate;
  return config;
}

function byteLevelJson(vocab: BpeVocab): TokenizerJson {
  const byteLevel = { add_prefix_space: false, trim_offsets: true, use_regex: false };
  const splits = preTokenizerRegexes(vocab.pre).map((re) => ({
    type: 'Split' as const,
    pattern: { Regex: jsToOniguruma(re.source) },
    behavior: 'Isolated' as const,
    invert: false,
  }));
  return {
    ...common(vocab),
    normalizer: null,
    pre_tokenizer: { type: 'Sequence', pretokenizers: [...splits, { type: 'ByteLevel', ...byteLevel }] },
    decoder: { type: 'ByteLevel', ...byteLevel, use_regex: true },
    model: bpeModel(vocab, mergeList(vocab.merges), false, vocab.ignoreMerges ?? false),
  };
}

function characterBpeJson(vocab: BpeVocab): TokenizerJson {
  return {
    ...common(vocab),
    ...sentencePieceText(true),
    model: bpeModel(vocab, mergeList(vocab.merges), vocab.byteFallback ?? false, vocab.ignoreMerges ?? false),
  };
}

function sentencePieceJson(vocab: Vocab): TokenizerJson {
  return {
    ...common(vocab),
    ...sentencePieceText(vocab.addSpacePrefix),
    model: bpeModel(vocab, mergeList(sentencePieceMerges(vocab)), true, false),
  };
}

/** HF's WordPiece text: word starts bare, continuations with "##". */
const CONTINUATION = '##';

function wordPieceJson(vocab: WordPieceVocab): TokenizerJson {
  const tokens = vocab.tokens.map((text, id) => {
    if (vocab.types[id] !== TokenType.normal) return text;
    if (vocab.wordStartPrefix !== '' && text.startsWith(vocab.wordStartPrefix)) return text.slice(vocab.wordStartPrefix.length);
    if (vocab.continuationPrefix === '' && vocab.wordStartPrefix !== '') return CONTINUATION + text;
    return vocab.continuationPrefix === CONTINUATION ? text : CONTINUATION + text.slice(vocab.continuationPrefix.length);
  });
  const hf: WordPieceVocab = { ...vocab, tokens };
  return {
    ...common(hf),
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: vocab.handleChineseChars, strip_accents: vocab.stripAccents, lowercase: vocab.lowercase },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    decoder: { type: 'WordPiece', prefix: CONTINUATION, cleanup: true },
    model: {
      type: 'WordPiece',
      unk_token: tokens[vocab.unk],
      continuing_subword_prefix: CONTINUATION,
      max_input_chars_per_word: vocab.maxInputCharsPerWord ?? 100,
      vocab: vocabObject(tokens),
    },
  };
}

/** Spaces as "▁" (one more in front when `prefixSpace`), and back. */
function sentencePieceText(prefixSpace: boolean): { normalizer: NormalizerJson; pre_tokenizer: null; decoder: DecoderJson } {
  const replace: NormalizerJson = { type: 'Replace', pattern: { String: ' ' }, content: SPACE_MARK };
  const decoders: DecoderJson[] = [{ type: 'Replace', pattern: { String: SPACE_MARK }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }];
  if (prefixSpace) decoders.push({ type: 'Strip', content: ' ', start: 1, stop: 0 });
  return {
    normalizer: prefixSpace ? { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: SPACE_MARK }, replace] } : replace,
    pre_tokenizer: null,
    decoder: { type: 'Sequence', decoders },
  };
}

/** The fields every export shares: added tokens and the post-processor. */
function common(vocab: Vocab | BpeVocab | WordPieceVocab): Pick<TokenizerJson, 'version' | 'truncation' | 'padding' | 'added_tokens' | 'post_processor'> {
  return { version: '1.0', truncation: null, padding: null, added_tokens: addedTokens(vocab), post_processor: template(vocab) };
}

function addedTokens(vocab: Vocab | BpeVocab | WordPieceVocab): AddedTokenJson[] {
  const added: AddedTokenJson[] = [];
  vocab.tokens.forEach((content, id) => {
    const type = vocab.types[id];
    if (content === '') return; // an empty text cannot be matched, and the model vocabulary holds it
    if (type === TokenType.control || type === TokenType.unknown || type === TokenType.userDefined) {
      added.push({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: type !== TokenType.userDefined });
    }
  });
  return added;
}

function bpeModel(vocab: Vocab | BpeVocab, merges: (string | [string, string])[], byteFallback: boolean, ignoreMerges: boolean): TokenizerJson['model'] {
  return {
    type: 'BPE',
    dropout: null,
    unk_token: vocab.unk === undefined ? null : vocab.tokens[vocab.unk],
    continuing_subword_prefix: null,
    end_of_word_suffix: null,
    fuse_unk: !(vocab.model === 'gpt2' && (vocab.byteLevel ?? true)),
    byte_fallback: byteFallback,
    ignore_merges: ignoreMerges,
    vocab: vocabObject(vocab.tokens),
    merges,
  };
}

/** Token -> id. tokenizer.json maps each text to one id, so a text at two ids cannot be written. */
function vocabObject(tokens: readonly string[]): Record<string, number> {
  const out: Record<string, number> = Object.create(null);
  tokens.forEach((text, id) => {
    if (Object.hasOwn(out, text)) {
      throw new ModelError('duplicate_token', `token ${JSON.stringify(text)} is at ids ${out[text]} and ${id}: tokenizer.json maps each token text to one id`);
    }
    out[text] = id;
  });
  return out;
}

/** Merges as "left right" strings, which every version of the library reads; as pairs when a part has a space. */
function mergeList(merges: readonly (string | readonly [string, string])[]): (string | [string, string])[] {
  const pairs = merges.map((m): [string, string] => {
    if (typeof m !== 'string') return [m[0], m[1]];
    const at = m.indexOf(' ', 1);
    return [m.slice(0, at), m.slice(at + 1)];
  });
  if (pairs.some(([l, r]) => l.includes(' ') || r.includes(' '))) return pairs;
  return pairs.map(([l, r]) => `${l} ${r}`);
}

/** BOS before and EOS after the text, as the vocabulary's add flags say. */
function template(vocab: Vocab | BpeVocab | WordPieceVocab): PostProcessorJson {
  const bos = vocab.tokens[vocab.bos];
  const eos = vocab.tokens[vocab.eos];
  const special = (id: string, typeId: number): TemplatePieceJson => ({ SpecialToken: { id, type_id: typeId } });
  const sequence = (id: 'A' | 'B', typeId: number): TemplatePieceJson => ({ Sequence: { id, type_id: typeId } });
  const around = (id: 'A' | 'B', typeId: number): TemplatePieceJson[] => [
    ...(vocab.addBos ? [special(bos, typeId)] : []),
    sequence(id, typeId),
    ...(vocab.addEos ? [special(eos, typeId)] : []),
  ];
  const special_tokens: Record<string, { id: string; ids: number[]; tokens: string[] }> = Object.create(null);
  if (vocab.addBos) special_tokens[bos] = { id: bos, ids: [vocab.bos], tokens: [bos] };
  if (vocab.addEos) special_tokens[eos] = { id: eos, ids: [vocab.eos], tokens: [eos] };
  return { type: 'TemplateProcessing', single: around('A', 0), pair: [...around('A', 0), ...around('B', 1)], special_tokens };
}

/**
 * Merges for a SentencePiece vocabulary (LlamaConverter's rule, see the file header): for each
 * token in vocabulary order, its cuts into two tokens (ordered by the parts' ids), then all of them
 * sorted by the token's score, longest left part, longest right part, stably.
 */
export function sentencePieceMerges(vocab: Vocab): [string, string][] {
  const ids = new Map<string, number>();
  vocab.tokens.forEach((text, id) => {
    if (!ids.has(text)) ids.set(text, id);
  });
  const merges: { left: string; right: string; score: number; leftLength: number; rightLength: number }[] = [];
  vocab.tokens.forEach((text, id) => {
    const chars = Array.from(text);
    const cuts: { left: string; right: string; leftLength: number; rightLength: number; leftId: number; rightId: number }[] = [];
    for (let at = 1; at < chars.length; at++) {
      const left = chars.slice(0, at).join('');
      const right = chars.slice(at).join('');
      const leftId = ids.get(left);
      const rightId = ids.get(right);
      if (leftId !== undefined && rightId !== undefined) cuts.push({ left, right, leftLength: at, rightLength: chars.length - at, leftId, rightId });
    }
    cuts.sort((a, b) => a.leftId - b.leftId || a.rightId - b.rightId);
    for (const c of cuts) merges.push({ ...c, score: vocab.scores[id] });
  });
  merges.sort((a, b) => b.score - a.score || b.leftLength - a.leftLength || b.rightLength - a.rightLength);
  return merges.map((m) => [m.left, m.right]);
}
