/**
 * BPE pre-tokenizers: how a text is cut into words before byte-pair merging, one entry per
 * tokenizer.ggml.pre value that llama.cpp knows as a plain sequence of regular expressions.
 *
 * A pre-tokenizer is a list of expressions applied in turn: each one splits every piece left by the
 * previous one into its matches and the text between them (kept as pieces of their own). The
 * expressions are the models' own (tokenizer.json) as llama.cpp adapts them; we write them for
 * JavaScript so that they split exactly as llama.cpp does, which means reproducing how llama.cpp
 * runs them:
 *
 *   - llama.cpp's "whitespace" is Unicode's White_Space property: \t \n \v \f \r, space, U+0085,
 *     U+00A0, U+1680, U+2000..U+200A, U+2028, U+2029, U+202F, U+205F, U+3000. JS's \s differs
 *     (it has U+FEFF and lacks U+0085), so the class is spelled out (WS) and \s / \S never appear.
 *   - The GPT-2 and Llama 3 expressions run as hand-written scanners over code point categories;
 *     the same expressions in JS (with WS) split identically.
 *   - Other expressions with \p{..} run through std::regex on a "collapsed" text, every non-ASCII
 *     code point replaced by a marker byte for its category. So \p{Lu}, \p{Ll}, ... all mean any
 *     letter; a class like [^a-z] matches every non-ASCII letter; and ASCII "~" is neither \p{P}
 *     nor \p{S} (llama.cpp's ASCII symbol list lacks it), which SYM below reproduces.
 *   - Expressions without \p{..} run through std::wregex with non-ASCII whitespace replaced by
 *     \v, so a literal whitespace character inside a class (U+3000) never matches as itself.
 *   - A match of length zero splits the piece at that point (superbpe's digit grouping).
 */
import { ModelError } from '../errors.js';

/** llama.cpp's whitespace (Unicode White_Space), as the body of a character class. */
export const WS = '\\t\\n\\v\\f\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const S = `[${WS}]`;
const NOT_S = `[^${WS}]`;
/** Whitespace runs, the tail of most expressions: \s+(?!\S)|\s+ */
const SPACES = `${S}+(?!${NOT_S})|${S}+`;

const CONTRACTIONS = "'s|'t|'re|'ve|'m|'ll|'d";
/** (?i:'s|'t|'re|'ve|'m|'ll|'d) without inline modifiers, as llama.cpp adapts it. */
const CONTRACTIONS_ANY_CASE = "'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD]";

/** [\p{P}\p{S}] with llama.cpp's \p{S}. */
const PUNCT_OR_SYM = `(?:(?!~)[\\p{P}\\p{S}])`;
/** [^\r\n\p{L}\p{P}\p{S}] with llama.cpp's \p{S} (so "~" is in it). */
const NOT_NL_LETTER_PUNCT_SYM = '(?:~|[^\\r\\n\\p{L}\\p{P}\\p{S}])';

/** GPT-2's expression (its scanner also takes a lone whitespace run, hence the final \s+). */
const GPT2 = `${CONTRACTIONS}| ?\\p{L}+| ?\\p{N}+| ?[^${WS}\\p{L}\\p{N}]+|${SPACES}`;

/** The Llama 3 family's expression with digits in groups of `digits` ("{1,3}" or ""). */
const llama3Like = (digits: string): string =>
  `(?:${CONTRACTIONS_ANY_CASE})|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}${digits}| ?[^${WS}\\p{L}\\p{N}]+[\\r\\n]*|${S}*[\\r\\n]+|${SPACES}`;
const LLAMA3 = llama3Like('{1,3}');
const QWEN2 = llama3Like('');

/**
 * Case-split words as llama.cpp adapts GPT-4o's and Tekken's expressions: "upper" is a letter
 * that is not a-z, "lower" a letter that is not A-Z (non-ASCII letters are both).
 */
const caseWords = (letter: string, suffix: string): string => {
  const upper = `(?:(?=${letter})[^a-z])`;
  const lower = `(?:(?=${letter})[^A-Z])`;
  return `[^\\r\\n\\p{L}\\p{N}]?${upper}*${lower}+${suffix}|[^\\r\\n\\p{L}\\p{N}]?${upper}+${lower}*${suffix}`;
};
const OPTIONAL_CONTRACTION = `(?:${CONTRACTIONS_ANY_CASE})?`;

/** CJK ideographs (U+4E00..U+9FA5), as DeepSeek writes them, with kana where named. */
const CJK_DEEPSEEK = '[\\u4e00-\\u9fa5\\u0800-\\u4e00\\uac00-\\ud7ff]+';
const CJK_KANA = '[\\u4e00-\\u9fa5\\u3040-\\u309f\\u30a0-\\u30ff]+';

/** DeepSeek LLM's letter class (cased letters of its Unicode version), from its tokenizer.json. */
const DEEPSEEK_LETTERS =
  'A-Za-z\\u00b5\\u00c0-\\u00d6\\u00d8-\\u00f6\\u00f8-\\u01ba\\u01bc-\\u01bf\\u01c4-\\u0293\\u0295-\\u02af' +
  '\\u0370-\\u0373\\u0376\\u0377\\u037b-\\u037d\\u037f\\u0386\\u0388-\\u038a\\u038c\\u038e-\\u03a1\\u03a3-\\u03f5' +
  '\\u03f7-\\u0481\\u048a-\\u052f\\u0531-\\u0556\\u10a0-\\u10c5\\u13a0-\\u13f5\\u13f8-\\u13fd\\u1c90-\\u1cba' +
  '\\u1cbd-\\u1cbf\\u1d00-\\u1d2b\\u1d6b-\\u1d77\\u1d79-\\u1d9a\\u1e00-\\u1f15\\u1f18-\\u1f1d\\u1f20-\\u1f45' +
  '\\u1f48-\\u1f4d\\u1f50-\\u1f57\\u1f59\\u1f5b\\u1f5d\\u1f5f-\\u1f7d\\u1f80-\\u1fb4\\u1fb6-\\u1fbc\\u1fbe' +
  '\\u1fc2-\\u1fc4\\u1fc6-\\u1fcc\\u1fd0-\\u1fd3\\u1fd6-\\u1fdb\\u1fe0-\\u1fec\\u1ff2-\\u1ff4\\u1ff6-\\u1ffc' +
  '\\u2102\\u2107\\u210a-\\u2113\\u2115\\u2119-\\u211d\\u2124\\u2126\\u2128\\u212a-\\u212d\\u212f-\\u2134' +
  '\\u2139\\u213c-\\u213f\\u2145-\\u2149\\u214e\\u2183\\u2184\\u2c00-\\u2c7b\\u2c7e-\\u2ce4\\u2ceb-\\u2cee' +
  '\\u2cf2\\u2cf3\\ua640-\\ua66d\\ua680-\\ua69b\\ua722-\\ua76f\\ua771-\\ua787\\ua78b-\\ua78e\\uab70-\\uabbf' +
  '\\ufb00-\\ufb06\\ufb13-\\ufb17\\uff21-\\uff3a\\uff41-\\uff5a\\u{10400}-\\u{1044f}\\u{104b0}-\\u{104d3}' +
  '\\u{104d8}-\\u{104fb}\\u{10c80}-\\u{10cb2}\\u{10cc0}-\\u{10cf2}\\u{118a0}-\\u{118df}\\u{1e900}-\\u{1e943}';

/** ASCII punctuation and symbols, then a run of ASCII letters (DeepSeek V3 and its kin). */
const ASCII_PUNCT_THEN_LETTERS = "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+";

/** BLOOM's expression: an optional space and a run of anything but whitespace and sentence punctuation. */
const BLOOM = ` ?[^(${WS}|.,!?\\u2026\\u3002\\uff0c\\u3001\\u0964\\u06d4\\u060c)]+`;

/** Each family's expressions, in order. */
const FAMILY_PATTERNS = {
  gpt2: [GPT2],
  llama3: [LLAMA3],
  jais2: [
    `(?:${CONTRACTIONS_ANY_CASE})|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^${WS}\\p{L}\\p{N}]+[\\r\\n]*|${S}*[\\r\\n]+|` +
      [512, 256, 128, 64, 32, 16, 8, 4].map((n) => `${S}{${n}}(?!${NOT_S})|`).join('') +
      `${S}{1,2}(?!${NOT_S})|${S}`,
  ],
  deepseekLlm: [
    '[\\r\\n]',
    `${S}?[${DEEPSEEK_LETTERS}]+`,
    // U+3000 is left out of the class: llama.cpp's std::wregex sees it as whitespace (\v).
    `${S}?[!-/:-~\\uff01-\\uff0f\\uff1a-\\uff5e\\u2018-\\u201f\\u3001-\\u3002]+`,
    `${S}+$`,
    CJK_DEEPSEEK,
    '\\p{N}+',
  ],
  deepseekV3: [
    '\\p{N}{1,3}',
    CJK_KANA,
    `${ASCII_PUNCT_THEN_LETTERS}|${NOT_NL_LETTER_PUNCT_SYM}?[\\p{L}\\p{M}]+| ?${PUNCT_OR_SYM}+[\\r\\n]*|${S}*[\\r\\n]+|${SPACES}`,
  ],
  spark25: [
    '\\p{N}{1,3}',
    CJK_KANA,
    `${ASCII_PUNCT_THEN_LETTERS}|${NOT_NL_LETTER_PUNCT_SYM}?[\\p{L}\\p{M}]+| ?${PUNCT_OR_SYM}+|[\\r\\n]|${SPACES}`,
    '\\p{N}',
  ],
  youtu: [
    '[\\uac00-\\ud7a3\\u3131-\\u318e]+|[\\uff01\\u2026\\u201c\\u201d\\u2018\\u2019\\u2014\\uff1a\\uff1b\\uff0c\\u3001-\\u303f\\ufe30-\\ufe4f]+|[\\u3105-\\u312f]+|[\\u4e00-\\u9fa5\\u3040-\\u309f\\u30a0-\\u30ff]+',
    // \p{Lu}, \p{Ll}, ... are all "a letter" in llama.cpp's collapsed matching.
    `[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]*[\\p{L}\\p{M}]+${OPTIONAL_CONTRACTION}|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+[\\p{L}\\p{M}]*${OPTIONAL_CONTRACTION}|\\p{N}| ?[^${WS}\\p{L}\\p{N}]+[\\r\\n/]*|${S}*[\\r\\n]+|${SPACES}`,
  ],
  deepseekCoder: ['[\\r\\n]', `${S}?\\p{L}+`, `${S}?\\p{P}+`, CJK_DEEPSEEK, '\\p{N}'],
  falcon: ['[\\p{P}$+<=>^~|`]+', GPT2, '[0-9][0-9][0-9]'],
  starcoder: ['\\p{N}', GPT2],
  qwen2: [QWEN2],
  qwen35: [
    `(?:${CONTRACTIONS_ANY_CASE})|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| ?[^${WS}\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|${S}*[\\r\\n]+|${SPACES}`,
  ],
  bloom: [BLOOM],
  viking: [BLOOM, '\\p{N}'],
  tekken: [`${caseWords('\\p{L}', '')}|\\p{N}| ?[^${WS}\\p{L}\\p{N}]+[\\r\\n/]*|${S}*[\\r\\n]+|${SPACES}`],
  chameleon: [
    '<sentinel:[0-9]+>',
    '(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z',
    '([\\t\\n]|    |  )',
    '\\p{N}',
    '[\\p{P}!-/:-@\\[-`{-~]',
    GPT2,
  ],
  gpt4o: [
    `${caseWords('\\p{L}', OPTIONAL_CONTRACTION)}|\\p{N}{1,3}| ?[^${WS}\\p{L}\\p{N}]+[\\r\\n/]*|${S}*[\\r\\n]+|${SPACES}`,
  ],
  graniteEmbedMulti: [
    `${caseWords('[\\p{L}\\p{M}]', OPTIONAL_CONTRACTION)}|\\p{N}{1,3}| ?[^${WS}\\p{L}\\p{N}]+[\\r\\n/]*|${S}*[\\r\\n]+|${SPACES}`,
  ],
  superbpe: ['\\p{N}+', '(?=(\\d{3})+(?!\\d))'],
  bailingmoe: [
    `'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^${WS}\\p{L}\\p{N}]+[\\r\\n]*|${S}*[\\r\\n]|${SPACES}`,
  ],
  seedCoder: [
    `(?:${CONTRACTIONS_ANY_CASE})|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^${WS}\\p{L}\\p{N}\\r\\n]+|${S}*[\\r\\n]+|${SPACES}`,
  ],
  ufakzeka: [`[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^${WS}\\p{L}\\p{N}]+[\\r\\n]*|${S}*[\\r\\n]+|${SPACES}`],
  laguna: ['[^\\n]+|[\\n]+', QWEN2],
  exaoneMoe: [
    `(?:${CONTRACTIONS_ANY_CASE})|[^\\r\\n\\p{L}\\p{N}]?(?:\\p{L}\\p{M}*(?: \\p{L}\\p{M}*)*)+|\\p{N}| ?[^${WS}\\p{L}\\p{N}]+[\\r\\n/]?|${S}*[\\r\\n]|${SPACES}`,
  ],
  minicpm5: [
    '\\p{N}{1,3}',
    `(?:${CONTRACTIONS_ANY_CASE})|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}+| ?[^${WS}\\p{L}\\p{N}]+[\\r\\n]*|${S}*[\\r\\n]+|${SPACES}`,
  ],
  default: ['[\\p{P}$+<=>^~|]+', GPT2, '\\p{N}+', '[0-9][0-9][0-9]'],
} as const satisfies Record<string, readonly string[]>;

type Family = keyof typeof FAMILY_PATTERNS;

/**
 * What a pre-tokenizer name selects: its expressions, and the vocabulary defaults llama.cpp ties
 * to the name (a word that is a token skips merging; BOS is added) unless the file says otherwise.
 */
interface PreTokenizerEntry {
  family: Family;
  ignoreMerges?: boolean;
  addBos?: boolean;
}

const LLAMA3_NAME: PreTokenizerEntry = { family: 'llama3', ignoreMerges: true, addBos: true };

/** Every tokenizer.ggml.pre value we support, as llama.cpp's vocabulary loader maps them. */
const PRETOKENIZER_NAMES = {
  default: { family: 'default' },
  llama3: LLAMA3_NAME,
  'llama-v3': LLAMA3_NAME,
  'llama-bpe': LLAMA3_NAME,
  falcon3: LLAMA3_NAME,
  'falcon-h1': LLAMA3_NAME,
  pixtral: LLAMA3_NAME,
  'midm-2.0': LLAMA3_NAME,
  lfm2: LLAMA3_NAME,
  'jina-v5-nano': LLAMA3_NAME,
  dbrx: { family: 'llama3' },
  'smaug-bpe': { family: 'llama3' },
  'chatglm-bpe': { family: 'llama3' },
  glm4: { family: 'llama3' },
  'jais-2': { family: 'jais2' },
  'deepseek-llm': { family: 'deepseekLlm' },
  'deepseek-coder': { family: 'deepseekCoder' },
  'deepseek-v3': { family: 'deepseekV3' },
  'hunyuan-dense': { family: 'deepseekV3' },
  'joyai-llm': { family: 'deepseekV3' },
  hy_v4: { family: 'deepseekV3' },
  spark2_5: { family: 'spark25' },
  youtu: { family: 'youtu', ignoreMerges: true },
  falcon: { family: 'falcon' },
  starcoder: { family: 'starcoder' },
  refact: { family: 'starcoder' },
  'command-r': { family: 'starcoder' },
  smollm: { family: 'starcoder' },
  codeshell: { family: 'starcoder' },
  exaone: { family: 'starcoder' },
  'minerva-7b': { family: 'starcoder' },
  mellum2: { family: 'starcoder' },
  'gpt-2': { family: 'gpt2' },
  mpt: { family: 'gpt2' },
  olmo: { family: 'gpt2' },
  jais: { family: 'gpt2' },
  trillion: { family: 'gpt2' },
  'granite-docling': { family: 'gpt2' },
  'phi-2': { family: 'gpt2' },
  'jina-es': { family: 'gpt2' },
  'jina-de': { family: 'gpt2' },
  gigachat: { family: 'gpt2' },
  'jina-v2-es': { family: 'gpt2' },
  'jina-v2-de': { family: 'gpt2' },
  'a.x-4.0': { family: 'gpt2' },
  mellum: { family: 'gpt2' },
  'modern-bert': { family: 'gpt2' },
  exaone4: { family: 'gpt2' },
  qwen2: { family: 'qwen2' },
  stablelm2: { family: 'qwen2' },
  'deepseek-r1-qwen': { family: 'qwen2' },
  kormo: { family: 'qwen2' },
  f2llmv2: { family: 'qwen2' },
  megrez: { family: 'qwen2' },
  hunyuan: { family: 'qwen2' },
  'solar-open': { family: 'qwen2' },
  'grok-2': { family: 'qwen2' },
  qwen35: { family: 'qwen35' },
  'poro-chat': { family: 'bloom' },
  bloom: { family: 'bloom' },
  'gpt3-finnish': { family: 'bloom' },
  viking: { family: 'viking' },
  tekken: { family: 'tekken', ignoreMerges: true, addBos: true },
  chameleon: { family: 'chameleon', addBos: true },
  'gpt-4o': { family: 'gpt4o' },
  llama4: { family: 'gpt4o' },
  kanana2: { family: 'gpt4o' },
  talkie: { family: 'gpt4o' },
  'minimax-m2': { family: 'gpt4o' },
  'granite-embed-multi-97m': { family: 'graniteEmbedMulti', ignoreMerges: true },
  superbpe: { family: 'superbpe' },
  bailingmoe: { family: 'bailingmoe' },
  bailingmoe2: { family: 'bailingmoe' },
  'llada-moe': { family: 'bailingmoe' },
  'seed-coder': { family: 'seedCoder' },
  ufakzeka: { family: 'ufakzeka' },
  laguna: { family: 'laguna' },
  'exaone-moe': { family: 'exaoneMoe' },
  minicpm5: { family: 'minicpm5', ignoreMerges: true },
} as const satisfies Record<string, PreTokenizerEntry>;

export type BpePreTokenizer = keyof typeof PRETOKENIZER_NAMES;

/** The pre-tokenizers (tokenizer.ggml.pre) we implement. */
export const BPE_PRETOKENIZERS = Object.keys(PRETOKENIZER_NAMES) as readonly BpePreTokenizer[];

const FAMILY_REGEXES = {} as Record<Family, readonly RegExp[]>;
for (const family of Object.keys(FAMILY_PATTERNS) as Family[]) {
  FAMILY_REGEXES[family] = FAMILY_PATTERNS[family].map((pattern) => new RegExp(pattern, 'gu'));
}

export function isBpePreTokenizer(name: string): name is BpePreTokenizer {
  return Object.hasOwn(PRETOKENIZER_NAMES, name);
}

/** `name` as a supported pre-tokenizer, or ModelError 'unsupported_pretokenizer' naming `where` and the supported list. */
export function checkPreTokenizer(name: string, where: string): BpePreTokenizer {
  if (isBpePreTokenizer(name)) return name;
  throw new ModelError(
    'unsupported_pretokenizer',
    `${where}: tokenizer.ggml.pre "${name}" is not supported (supported: ${BPE_PRETOKENIZERS.join(', ')})`,
  );
}

/** The vocabulary flags llama.cpp sets for this pre-tokenizer when the file does not say. */
export function preTokenizerDefaults(pre: BpePreTokenizer): { ignoreMerges: boolean; addBos: boolean } {
  const entry: PreTokenizerEntry = PRETOKENIZER_NAMES[pre];
  return { ignoreMerges: entry.ignoreMerges ?? false, addBos: entry.addBos ?? false };
}

/** The regular expressions of `pre`, in the order they apply (for writing them out, e.g. as tokenizer.json Split steps). */
export function preTokenizerRegexes(pre: BpePreTokenizer): readonly RegExp[] {
  return FAMILY_REGEXES[PRETOKENIZER_NAMES[pre].family];
}

/** The words the pre-tokenizer cuts `text` into (they concatenate back to `text`). */
export function preTokenize(text: string, pre: BpePreTokenizer): string[] {
  const words: string[] = [];
  forEachWord(text, pre, (word) => words.push(word));
  return words;
}

/** Calls `visit` with each word of `text` in order: preTokenize without building the list. */
export function forEachWord(text: string, pre: BpePreTokenizer, visit: (word: string) => void): void {
  if (text.length > 0) visitPieces(text, FAMILY_REGEXES[PRETOKENIZER_NAMES[pre].family], 0, visit);
}

/**
 * Split `text` by each expression in turn (global, unicode flags): every piece becomes its matches
 * and the text between them; an empty match only cuts the piece where it stands.
 */
export function splitByRegexes(text: string, regexes: readonly RegExp[]): string[] {
  const words: string[] = [];
  if (text.length > 0) visitPieces(text, regexes, 0, (word) => words.push(word));
  return words;
}

/** Split `piece` by regexes[level] and pass each part on to the next level; the last level visits. */
function visitPieces(piece: string, regexes: readonly RegExp[], level: number, visit: (word: string) => void): void {
  if (level === regexes.length) {
    visit(piece);
    return;
  }
  const re = regexes[level];
  let from = 0;
  re.lastIndex = 0;
  for (let m = re.exec(piece); m !== null; m = re.exec(piece)) {
    const at = m.index;
    const end = at + m[0].length;
    // Deeper levels use other RegExp objects, so this one's lastIndex survives them.
    if (at > from) visitPieces(piece.slice(from, at), regexes, level + 1, visit);
    if (end > at) {
      visitPieces(m[0], regexes, level + 1, visit);
    } else {
      // An empty match: step over one code point so that the scan moves on.
      const code = piece.charCodeAt(at);
      re.lastIndex = at + (code >= 0xd800 && code <= 0xdbff && at + 1 < piece.length ? 2 : 1);
    }
    from = end;
  }
  if (from < piece.length) visitPieces(from === 0 ? piece : piece.slice(from), regexes, level + 1, visit);
}
