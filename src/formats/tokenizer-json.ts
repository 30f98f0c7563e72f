/**
 * Hugging Face tokenizer files, as pure I/O: tokenizer.json (the `tokenizers` library's format),
 * tokenizer_config.json (transformers' settings beside it), and the older vocab.json + merges.txt
 * pair of GPT-2-style repositories.
 *
 * tokenizer.json is a pipeline written as nested JSON objects, each with a "type":
 *
 *   added_tokens   tokens matched literally in the text before anything else
 *   normalizer     text -> text (NFC, Lowercase, Replace, Prepend, ...; Sequence of them)
 *   pre_tokenizer  text -> words (ByteLevel, Split by a regex, Metaspace, ...; Sequence)
 *   model          word -> token ids (BPE with merges, WordPiece)
 *   post_processor which special tokens surround the ids (TemplateProcessing, BertProcessing, ...)
 *   decoder        tokens -> text (ByteLevel, Metaspace, Replace + ByteFallback + Fuse + Strip, ...)
 *
 * The types below are the subset SmallMind supports. The reader checks every field it uses and
 * fills the defaults the `tokenizers` library assumes when a field is absent; a field of the wrong
 * kind is a FormatError naming the file and the field's JSON path (e.g. `model.merges[12]`), a
 * component type outside the subset is a ModelError naming the path and listing what is supported.
 * Writers are atomic (temp file + rename).
 */
import fs from 'node:fs';
import { FormatError, ModelError } from '../errors.js';
import { describeIoError, writeFileAtomic } from './file.js';

// ---------------------------------------------------------------------------------------------
// The supported subset of tokenizer.json

export interface AddedTokenJson {
  id: number;
  content: string;
  /** Match only where no word character touches the token on either side. */
  single_word: boolean;
  /** The match takes the whitespace on its left (right) with it. */
  lstrip: boolean;
  rstrip: boolean;
  /** Match in the normalized text (true) or in the text as given (false). */
  normalized: boolean;
  /** Skipped when decoding with skip_special_tokens (a control token). */
  special: boolean;
}

export type PatternJson = { String: string } | { Regex: string };

export type SplitBehavior = 'Removed' | 'Isolated' | 'MergedWithPrevious' | 'MergedWithNext' | 'Contiguous';
export const SPLIT_BEHAVIORS: readonly SplitBehavior[] = ['Removed', 'Isolated', 'MergedWithPrevious', 'MergedWithNext', 'Contiguous'];

export type PrependScheme = 'always' | 'first' | 'never';

export type NormalizerJson =
  | { type: 'NFC' | 'NFD' | 'NFKC' | 'NFKD' | 'Lowercase' | 'StripAccents' }
  | { type: 'Strip'; strip_left: boolean; strip_right: boolean }
  | { type: 'Replace'; pattern: PatternJson; content: string }
  | { type: 'Prepend'; prepend: string }
  | { type: 'BertNormalizer'; clean_text: boolean; handle_chinese_chars: boolean; strip_accents: boolean | null; lowercase: boolean }
  | { type: 'Sequence'; normalizers: NormalizerJson[] };

export type PreTokenizerJson =
  | { type: 'ByteLevel'; add_prefix_space: boolean; trim_offsets: boolean; use_regex: boolean }
  | { type: 'Split'; pattern: PatternJson; behavior: SplitBehavior; invert: boolean }
  | { type: 'Metaspace'; replacement: string; prepend_scheme: PrependScheme; split: boolean }
  | { type: 'Whitespace' | 'WhitespaceSplit' | 'BertPreTokenizer' }
  | { type: 'Punctuation'; behavior: SplitBehavior }
  | { type: 'Digits'; individual_digits: boolean }
  | { type: 'Sequence'; pretokenizers: PreTokenizerJson[] };

export type TemplatePieceJson = { SpecialToken: { id: string; type_id: number } } | { Sequence: { id: 'A' | 'B'; type_id: number } };

export type PostProcessorJson =
  | {
      type: 'TemplateProcessing';
      single: TemplatePieceJson[];
      pair: TemplatePieceJson[];
      special_tokens: Record<string, { id: string; ids: number[]; tokens: string[] }>;
    }
  | { type: 'BertProcessing'; sep: [string, number]; cls: [string, number] }
  | { type: 'RobertaProcessing'; sep: [string, number]; cls: [string, number]; trim_offsets: boolean; add_prefix_space: boolean }
  | { type: 'ByteLevel'; add_prefix_space: boolean; trim_offsets: boolean; use_regex: boolean }
  | { type: 'Sequence'; processors: PostProcessorJson[] };

export type DecoderJson =
  | { type: 'ByteLevel'; add_prefix_space: boolean; trim_offsets: boolean; use_regex: boolean }
  | { type: 'Metaspace'; replacement: string; prepend_scheme: PrependScheme; split: boolean }
  | { type: 'WordPiece'; prefix: string; cleanup: boolean }
  | { type: 'Replace'; pattern: PatternJson; content: string }
  | { type: 'ByteFallback' | 'Fuse' }
  | { type: 'Strip'; content: string; start: number; stop: number }
  | { type: 'Sequence'; decoders: DecoderJson[] };

export interface BpeModelJson {
  type: 'BPE';
  dropout: number | null;
  unk_token: string | null;
  continuing_subword_prefix: string | null;
  end_of_word_suffix: string | null;
  fuse_unk: boolean;
  byte_fallback: boolean;
  ignore_merges: boolean;
  /** Token -> id. Build it with Object.create(null) so that a token named "__proto__" is a key like any other. */
  vocab: Record<string, number>;
  /** Highest priority first: "left right" strings (older files) or [left, right] pairs. */
  merges: (string | [string, string])[];
}

export interface WordPieceModelJson {
  type: 'WordPiece';
  unk_token: string;
  continuing_subword_prefix: string;
  max_input_chars_per_word: number;
  vocab: Record<string, number>;
}

export type ModelJson = BpeModelJson | WordPieceModelJson;

export interface TokenizerJson {
  version: string;
  truncation: null;
  padding: null;
  added_tokens: AddedTokenJson[];
  normalizer: NormalizerJson | null;
  pre_tokenizer: PreTokenizerJson | null;
  post_processor: PostProcessorJson | null;
  decoder: DecoderJson | null;
  model: ModelJson;
}

/** The component types each section supports (the lists the errors print). */
export const SUPPORTED_TYPES = {
  model: ['BPE', 'WordPiece'],
  normalizer: ['NFC', 'NFD', 'NFKC', 'NFKD', 'Lowercase', 'StripAccents', 'Strip', 'Replace', 'Prepend', 'BertNormalizer', 'Sequence'],
  pre_tokenizer: ['ByteLevel', 'Split', 'Metaspace', 'Whitespace', 'WhitespaceSplit', 'BertPreTokenizer', 'Punctuation', 'Digits', 'Sequence'],
  post_processor: ['TemplateProcessing', 'BertProcessing', 'RobertaProcessing', 'ByteLevel', 'Sequence'],
  decoder: ['ByteLevel', 'Metaspace', 'WordPiece', 'Replace', 'ByteFallback', 'Fuse', 'Strip', 'Sequence'],
} as const;

// ---------------------------------------------------------------------------------------------
// tokenizer_config.json (transformers), the fields a tokenizer needs

export interface TokenizerConfig {
  /** Whether encoding adds BOS / EOS; when given, they override the post-processor's choice. */
  add_bos_token?: boolean;
  add_eos_token?: boolean;
  /** Special tokens by role (the file may give an AddedToken object; this is its content). */
  bos_token?: string;
  eos_token?: string;
  unk_token?: string;
  pad_token?: string;
  /** Added tokens by id, as transformers saves them. */
  added_tokens_decoder?: Map<number, Omit<AddedTokenJson, 'id'>>;
  /** The chat template: the string, or the one named "default" when the file gives a list. */
  chat_template?: string;
  /** Every named template when the file gives a list of {name, template}. */
  chat_templates?: Record<string, string>;
  tokenizer_class?: string;
}

// ---------------------------------------------------------------------------------------------
// Field checking: each check names the file and the JSON path of the field.

/** A place in a JSON file: the file and the path from the root, e.g. "model.merges[3]". */
export interface JsonPlace {
  file: string;
  path: string;
}

type JsonObject = Record<string, unknown>;

export function jsonChild(place: JsonPlace, key: string | number): JsonPlace {
  const path = typeof key === 'number' ? `${place.path}[${key}]` : place.path === '' ? key : `${place.path}.${key}`;
  return { file: place.file, path };
}

/** A FormatError for a malformed field at `place`. */
export function badField(place: JsonPlace, what: string): FormatError {
  return new FormatError('bad_tokenizer_json', place.file, `${place.path === '' ? 'the top level' : place.path}: ${what}`);
}

function unsupportedType(place: JsonPlace, section: keyof typeof SUPPORTED_TYPES, type: string): ModelError {
  return new ModelError(
    'unsupported_tokenizer',
    `${place.file}: ${place.path}.type "${type}" is not supported (supported ${section} types: ${SUPPORTED_TYPES[section].join(', ')})`,
  );
}

function kindOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `${typeof v} ${JSON.stringify(v)}`;
}

function asObject(place: JsonPlace, v: unknown): JsonObject {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw badField(place, `expected an object, found ${kindOf(v)}`);
  return v as JsonObject;
}

function asArray(place: JsonPlace, v: unknown): unknown[] {
  if (!Array.isArray(v)) throw badField(place, `expected an array, found ${kindOf(v)}`);
  return v;
}

function asString(place: JsonPlace, v: unknown): string {
  if (typeof v !== 'string') throw badField(place, `expected a string, found ${kindOf(v)}`);
  return v;
}

function asId(place: JsonPlace, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw badField(place, `expected a token id (an integer >= 0), found ${kindOf(v)}`);
  return v;
}

/** A field that must be there (`fallback` undefined) or defaults when absent or null. */
function field<T>(place: JsonPlace, o: JsonObject, key: string, check: (p: JsonPlace, v: unknown) => T, fallback?: T): T {
  const v = Object.hasOwn(o, key) ? o[key] : undefined;
  if (v === undefined || (v === null && fallback !== undefined)) {
    if (fallback === undefined) throw badField(jsonChild(place, key), 'missing');
    return fallback;
  }
  return check(jsonChild(place, key), v);
}

const asBool = (p: JsonPlace, v: unknown): boolean => {
  if (typeof v !== 'boolean') throw badField(p, `expected true or false, found ${kindOf(v)}`);
  return v;
};
const asInt = (p: JsonPlace, v: unknown): number => {
  if (typeof v !== 'number' || !Number.isInteger(v)) throw badField(p, `expected an integer, found ${kindOf(v)}`);
  return v;
};
const orNull =
  <T>(check: (p: JsonPlace, v: unknown) => T) =>
  (p: JsonPlace, v: unknown): T | null =>
    v === null ? null : check(p, v);
const asChar = (p: JsonPlace, v: unknown): string => {
  const s = asString(p, v);
  if ([...s].length !== 1) throw badField(p, `expected one character, found ${JSON.stringify(s)}`);
  return s;
};

function typeOf(place: JsonPlace, o: JsonObject): string {
  return field(place, o, 'type', asString);
}

// ---------------------------------------------------------------------------------------------
// Reading tokenizer.json

/** Read and check a tokenizer.json file. */
export function readTokenizerJson(path: string): TokenizerJson {
  return parseTokenizerJson(readJsonFile(path), path);
}

/** Check an already parsed tokenizer.json (`file` names it in messages). */
export function parseTokenizerJson(json: unknown, file: string): TokenizerJson {
  const root: JsonPlace = { file, path: '' };
  const o = asObject(root, json);
  const optional = <T>(key: string, read: (p: JsonPlace, v: unknown) => T): T | null =>
    o[key] === undefined || o[key] === null ? null : read(jsonChild(root, key), o[key]);
  return {
    version: field(root, o, 'version', asString, '1.0'),
    truncation: null,
    padding: null,
    added_tokens: field(root, o, 'added_tokens', (p, v) => asArray(p, v).map((t, i) => readAddedToken(jsonChild(p, i), t)), []),
    normalizer: optional('normalizer', readNormalizer),
    pre_tokenizer: optional('pre_tokenizer', readPreTokenizer),
    post_processor: optional('post_processor', readPostProcessor),
    decoder: optional('decoder', readDecoder),
    model: field(root, o, 'model', readModel),
  };
}

/** Read a JSON file: FormatError 'cannot_open' when unreadable, 'bad_json' when not JSON. */
export function readJsonFile(path: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch (err) {
    throw new FormatError('cannot_open', path, describeIoError(err));
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new FormatError('bad_json', path, `not valid JSON: ${(err as Error).message}`);
  }
}

function readAddedToken(p: JsonPlace, v: unknown): AddedTokenJson {
  const o = asObject(p, v);
  return { id: field(p, o, 'id', asId), ...readAddedTokenFlags(p, o) };
}

/** An added token's content and flags, with the `tokenizers` library's defaults. */
function readAddedTokenFlags(p: JsonPlace, o: JsonObject): Omit<AddedTokenJson, 'id'> {
  const content = field(p, o, 'content', asString);
  if (content === '') throw badField(jsonChild(p, 'content'), 'an added token cannot be empty');
  return {
    content,
    single_word: field(p, o, 'single_word', asBool, false),
    lstrip: field(p, o, 'lstrip', asBool, false),
    rstrip: field(p, o, 'rstrip', asBool, false),
    normalized: field(p, o, 'normalized', asBool, true),
    special: field(p, o, 'special', asBool, false),
  };
}

function readPattern(p: JsonPlace, v: unknown): PatternJson {
  const o = asObject(p, v);
  if (typeof o.Regex === 'string') return { Regex: o.Regex };
  if (typeof o.String === 'string') return { String: o.String };
  throw badField(p, 'expected {"Regex": "..."} or {"String": "..."}');
}

function readBehavior(p: JsonPlace, v: unknown): SplitBehavior {
  const s = asString(p, v);
  // Files spell the behaviors in PascalCase; the Python API's snake_case also occurs.
  const found = SPLIT_BEHAVIORS.find((b) => b === s || b.replace(/([a-z])([A-Z])/g, '$1_$2').toLowerCase() === s);
  if (!found) throw badField(p, `unknown split behavior ${JSON.stringify(s)} (expected one of ${SPLIT_BEHAVIORS.join(', ')})`);
  return found;
}

function readPrependScheme(p: JsonPlace, o: JsonObject): PrependScheme {
  const scheme = field(p, o, 'prepend_scheme', asString, 'always');
  if (scheme !== 'always' && scheme !== 'first' && scheme !== 'never') {
    throw badField(jsonChild(p, 'prepend_scheme'), `expected "always", "first" or "never", found ${JSON.stringify(scheme)}`);
  }
  // Files written before prepend_scheme existed say add_prefix_space instead.
  if (o.add_prefix_space === false) return 'never';
  return scheme;
}

function readNormalizer(p: JsonPlace, v: unknown): NormalizerJson {
  const o = asObject(p, v);
  const type = typeOf(p, o);
  switch (type) {
    case 'NFC':
    case 'NFD':
    case 'NFKC':
    case 'NFKD':
    case 'Lowercase':
    case 'StripAccents':
      return { type };
    case 'Strip':
      return { type, strip_left: field(p, o, 'strip_left', asBool, true), strip_right: field(p, o, 'strip_right', asBool, true) };
    case 'Replace':
      return { type, pattern: field(p, o, 'pattern', readPattern), content: field(p, o, 'content', asString) };
    case 'Prepend':
      return { type, prepend: field(p, o, 'prepend', asString) };
    case 'BertNormalizer':
      return {
        type,
        clean_text: field(p, o, 'clean_text', asBool, true),
        handle_chinese_chars: field(p, o, 'handle_chinese_chars', asBool, true),
        strip_accents: Object.hasOwn(o, 'strip_accents') ? orNull(asBool)(jsonChild(p, 'strip_accents'), o.strip_accents) : null,
        lowercase: field(p, o, 'lowercase', asBool, true),
      };
    case 'Sequence':
      return { type, normalizers: field(p, o, 'normalizers', (q, a) => asArray(q, a).map((n, i) => readNormalizer(jsonChild(q, i), n))) };
    default:
      throw unsupportedType(p, 'normalizer', type);
  }
}

function readByteLevel(p: JsonPlace, o: JsonObject): { add_prefix_space: boolean; trim_offsets: boolean; use_regex: boolean } {
  return {
    add_prefix_space: field(p, o, 'add_prefix_space', asBool, true),
    trim_offsets: field(p, o, 'trim_offsets', asBool, true),
    use_regex: field(p, o, 'use_regex', asBool, true),
  };
}

function readMetaspace(p: JsonPlace, o: JsonObject): { replacement: string; prepend_scheme: PrependScheme; split: boolean } {
  return { replacement: field(p, o, 'replacement', asChar, '\u2581'), prepend_scheme: readPrependScheme(p, o), split: field(p, o, 'split', asBool, true) };
}

function readPreTokenizer(p: JsonPlace, v: unknown): PreTokenizerJson {
  const o = asObject(p, v);
  const type = typeOf(p, o);
  switch (type) {
    case 'ByteLevel':
      return { type, ...readByteLevel(p, o) };
    case 'Split':
      return {
        type,
        pattern: field(p, o, 'pattern', readPattern),
        behavior: field(p, o, 'behavior', readBehavior),
        invert: field(p, o, 'invert', asBool, false),
      };
    case 'Metaspace':
      return { type, ...readMetaspace(p, o) };
    case 'Whitespace':
    case 'WhitespaceSplit':
    case 'BertPreTokenizer':
      return { type };
    case 'Punctuation':
      return { type, behavior: field(p, o, 'behavior', readBehavior, 'Isolated') };
    case 'Digits':
      return { type, individual_digits: field(p, o, 'individual_digits', asBool, false) };
    case 'Sequence':
      return {
        type,
        pretokenizers: field(p, o, 'pretokenizers', (q, a) => asArray(q, a).map((n, i) => readPreTokenizer(jsonChild(q, i), n))),
      };
    default:
      throw unsupportedType(p, 'pre_tokenizer', type);
  }
}

function readTokenAndId(p: JsonPlace, v: unknown): [string, number] {
  const a = asArray(p, v);
  if (a.length !== 2) throw badField(p, `expected ["token", id], found ${a.length} elements`);
  return [asString(jsonChild(p, 0), a[0]), asId(jsonChild(p, 1), a[1])];
}

function readTemplate(p: JsonPlace, v: unknown): TemplatePieceJson[] {
  return asArray(p, v).map((item, i) => {
    const q = jsonChild(p, i);
    const o = asObject(q, item);
    if (o.SpecialToken !== undefined) {
      const s = asObject(jsonChild(q, 'SpecialToken'), o.SpecialToken);
      return { SpecialToken: { id: field(jsonChild(q, 'SpecialToken'), s, 'id', asString), type_id: field(jsonChild(q, 'SpecialToken'), s, 'type_id', asInt, 0) } };
    }
    if (o.Sequence !== undefined) {
      const s = asObject(jsonChild(q, 'Sequence'), o.Sequence);
      const id = field(jsonChild(q, 'Sequence'), s, 'id', asString);
      if (id !== 'A' && id !== 'B') throw badField(jsonChild(jsonChild(q, 'Sequence'), 'id'), `expected "A" or "B", found ${JSON.stringify(id)}`);
      return { Sequence: { id, type_id: field(jsonChild(q, 'Sequence'), s, 'type_id', asInt, 0) } };
    }
    throw badField(q, 'expected {"SpecialToken": ...} or {"Sequence": ...}');
  });
}

function readPostProcessor(p: JsonPlace, v: unknown): PostProcessorJson {
  const o = asObject(p, v);
  const type = typeOf(p, o);
  switch (type) {
    case 'TemplateProcessing': {
      const specials = field(p, o, 'special_tokens', asObject, {});
      const special_tokens: Record<string, { id: string; ids: number[]; tokens: string[] }> = Object.create(null);
      for (const [name, entry] of Object.entries(specials)) {
        const q = jsonChild(jsonChild(p, 'special_tokens'), name);
        const s = asObject(q, entry);
        special_tokens[name] = {
          id: field(q, s, 'id', asString, name),
          ids: field(q, s, 'ids', (r, a) => asArray(r, a).map((x, i) => asId(jsonChild(r, i), x))),
          tokens: field(q, s, 'tokens', (r, a) => asArray(r, a).map((x, i) => asString(jsonChild(r, i), x)), []),
        };
      }
      return { type, single: field(p, o, 'single', readTemplate), pair: field(p, o, 'pair', readTemplate, []), special_tokens };
    }
    case 'BertProcessing':
      return { type, sep: field(p, o, 'sep', readTokenAndId), cls: field(p, o, 'cls', readTokenAndId) };
    case 'RobertaProcessing':
      return {
        type,
        sep: field(p, o, 'sep', readTokenAndId),
        cls: field(p, o, 'cls', readTokenAndId),
        trim_offsets: field(p, o, 'trim_offsets', asBool, true),
        add_prefix_space: field(p, o, 'add_prefix_space', asBool, true),
      };
    case 'ByteLevel':
      return { type, ...readByteLevel(p, o) };
    case 'Sequence':
      return { type, processors: field(p, o, 'processors', (q, a) => asArray(q, a).map((n, i) => readPostProcessor(jsonChild(q, i), n))) };
    default:
      throw unsupportedType(p, 'post_processor', type);
  }
}

function readDecoder(p: JsonPlace, v: unknown): DecoderJson {
  const o = asObject(p, v);
  const type = typeOf(p, o);
  switch (type) {
    case 'ByteLevel':
      return { type, ...readByteLevel(p, o) };
    case 'Metaspace':
      return { type, ...readMetaspace(p, o) };
    case 'WordPiece':
      return { type, prefix: field(p, o, 'prefix', asString, '##'), cleanup: field(p, o, 'cleanup', asBool, true) };
    case 'Replace':
      return { type, pattern: field(p, o, 'pattern', readPattern), content: field(p, o, 'content', asString) };
    case 'ByteFallback':
    case 'Fuse':
      return { type };
    case 'Strip':
      return { type, content: field(p, o, 'content', asChar, ' '), start: field(p, o, 'start', asInt, 0), stop: field(p, o, 'stop', asInt, 0) };
    case 'Sequence':
      return { type, decoders: field(p, o, 'decoders', (q, a) => asArray(q, a).map((n, i) => readDecoder(jsonChild(q, i), n))) };
    default:
      throw unsupportedType(p, 'decoder', type);
  }
}

/** A token -> id object, checked entry by entry. */
function readVocab(p: JsonPlace, v: unknown): Record<string, number> {
  const o = asObject(p, v);
  const vocab: Record<string, number> = Object.create(null);
  for (const [token, id] of Object.entries(o)) vocab[token] = asId(jsonChild(p, token), id);
  return vocab;
}

function readMerges(p: JsonPlace, v: unknown): (string | [string, string])[] {
  return asArray(p, v).map((m, i) => {
    const q = jsonChild(p, i);
    if (typeof m === 'string') {
      if (m.split(' ').length !== 2) throw badField(q, `a merge is "left right" with one space, found ${JSON.stringify(m)}`);
      return m;
    }
    const pair = asArray(q, m);
    if (pair.length !== 2) throw badField(q, `a merge is a pair [left, right], found ${pair.length} elements`);
    return [asString(jsonChild(q, 0), pair[0]), asString(jsonChild(q, 1), pair[1])];
  });
}

function readModel(p: JsonPlace, v: unknown): ModelJson {
  const o = asObject(p, v);
  // Old files leave the type out; the tokenizers library then tells the models apart by their fields.
  const type = Object.hasOwn(o, 'type') ? typeOf(p, o) : Object.hasOwn(o, 'merges') ? 'BPE' : Object.hasOwn(o, 'max_input_chars_per_word') ? 'WordPiece' : 'unknown';
  switch (type) {
    case 'BPE':
      return {
        type,
        dropout: field(p, o, 'dropout', orNull(asNumber), null),
        unk_token: field(p, o, 'unk_token', orNull(asString), null),
        continuing_subword_prefix: field(p, o, 'continuing_subword_prefix', orNull(asString), null),
        end_of_word_suffix: field(p, o, 'end_of_word_suffix', orNull(asString), null),
        fuse_unk: field(p, o, 'fuse_unk', asBool, false),
        byte_fallback: field(p, o, 'byte_fallback', asBool, false),
        ignore_merges: field(p, o, 'ignore_merges', asBool, false),
        vocab: field(p, o, 'vocab', readVocab),
        merges: field(p, o, 'merges', readMerges),
      };
    case 'WordPiece':
      return {
        type,
        unk_token: field(p, o, 'unk_token', asString, '[UNK]'),
        continuing_subword_prefix: field(p, o, 'continuing_subword_prefix', asString, '##'),
        max_input_chars_per_word: field(p, o, 'max_input_chars_per_word', asInt, 100),
        vocab: field(p, o, 'vocab', readVocab),
      };
    default:
      throw unsupportedType(p, 'model', type);
  }
}

function asNumber(p: JsonPlace, v: unknown): number {
  if (typeof v !== 'number') throw badField(p, `expected a number, found ${kindOf(v)}`);
  return v;
}

// ---------------------------------------------------------------------------------------------
// tokenizer_config.json

/** Read the fields of a tokenizer_config.json that a tokenizer needs (all optional). */
export function readTokenizerConfig(path: string): TokenizerConfig {
  const root: JsonPlace = { file: path, path: '' };
  const o = asObject(root, readJsonFile(path));
  const config: TokenizerConfig = {};
  const flag = (key: 'add_bos_token' | 'add_eos_token'): void => {
    if (o[key] !== undefined && o[key] !== null) config[key] = asBool(jsonChild(root, key), o[key]);
  };
  flag('add_bos_token');
  flag('add_eos_token');
  for (const key of ['bos_token', 'eos_token', 'unk_token', 'pad_token'] as const) {
    const token = specialTokenContent(jsonChild(root, key), o[key]);
    if (token !== undefined) config[key] = token;
  }
  if (o.added_tokens_decoder !== undefined && o.added_tokens_decoder !== null) {
    const q = jsonChild(root, 'added_tokens_decoder');
    config.added_tokens_decoder = new Map();
    for (const [key, entry] of Object.entries(asObject(q, o.added_tokens_decoder))) {
      const id = Number(key);
      if (!/^\d+$/.test(key)) throw badField(jsonChild(q, key), 'expected a token id as the key');
      config.added_tokens_decoder.set(id, readAddedTokenFlags(jsonChild(q, key), asObject(jsonChild(q, key), entry)));
    }
  }
  readChatTemplates(jsonChild(root, 'chat_template'), o.chat_template, config);
  if (typeof o.tokenizer_class === 'string') config.tokenizer_class = o.tokenizer_class;
  return config;
}

/** bos_token and the like: a string, an AddedToken object ({"content": ...}), or null. */
function specialTokenContent(p: JsonPlace, v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return v;
  return field(p, asObject(p, v), 'content', asString);
}

function readChatTemplates(p: JsonPlace, v: unknown, config: TokenizerConfig): void {
  if (v === undefined || v === null) return;
  if (typeof v === 'string') {
    config.chat_template = v;
    return;
  }
  const templates: Record<string, string> = Object.create(null);
  asArray(p, v).forEach((entry, i) => {
    const q = jsonChild(p, i);
    const o = asObject(q, entry);
    templates[field(q, o, 'name', asString)] = field(q, o, 'template', asString);
  });
  config.chat_templates = templates;
  if (Object.hasOwn(templates, 'default')) config.chat_template = templates.default;
}

// ---------------------------------------------------------------------------------------------
// vocab.json + merges.txt (GPT-2 style repositories)

/** A vocab.json: {"token": id, ...}. */
export function readVocabJson(path: string): Record<string, number> {
  return readVocab({ file: path, path: '' }, readJsonFile(path));
}

/** A merges.txt: one "left right" merge per line, highest priority first, after an optional "#version" line. */
export function readMergesTxt(path: string): string[] {
  let text: string;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch (err) {
    throw new FormatError('cannot_open', path, describeIoError(err));
  }
  const merges: string[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].endsWith('\r') ? lines[i].slice(0, -1) : lines[i];
    if (line === '' || (i === 0 && line.startsWith('#version'))) continue;
    if (line.split(' ').length !== 2) throw new FormatError('bad_merges', path, `line ${i + 1}: a merge is "left right" with one space, found ${JSON.stringify(line)}`);
    merges.push(line);
  }
  return merges;
}

// ---------------------------------------------------------------------------------------------
// Writing

/** Write a tokenizer.json (pretty-printed as the tokenizers library does), atomically. */
export function writeTokenizerJson(path: string, json: TokenizerJson): void {
  writeFileAtomic(path, JSON.stringify(json, null, 2) + '\n');
}

/** Write a tokenizer_config.json with the given fields, atomically. */
export function writeTokenizerConfig(path: string, config: Record<string, unknown>): void {
  writeFileAtomic(path, JSON.stringify(config, null, 2) + '\n');
}
