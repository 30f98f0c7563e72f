/**
 * Training a BPE tokenizer from text: the vocabulary `smallmind tokenizer train` writes as a
 * tokenizer.json.
 *
 *   1. Count words once. The text is cut into words the way the encoder will cut it, so that no
 *      merge is learned across a place where encoding never merges:
 *        byte-bpe – GPT-2's pre-tokenizer regex (the one BpeTokenizer encodes with);
 *        bpe      – SentencePiece style as in Llama 2: a "▁" before the text, every space a "▁",
 *                   a word starting at each "▁"; line breaks stand alone, as SentencePiece
 *                   trains on lines (they stay one-character tokens).
 *   2. The base vocabulary: the special tokens, then the initial alphabet in code point order
 *        byte-bpe – the 256 byte characters of GPT-2's byte alphabet (a word is its UTF-8 bytes);
 *        bpe      – the 256 "<0xXX>" byte-fallback tokens, then the characters seen, the most
 *                   frequent `limitAlphabet` of them (a rarer character is a boundary inside its
 *                   word, as the encoder writes it as bytes that never merge).
 *   3. Merge: count every adjacent pair of symbols (weighted by its word's count), then repeatedly
 *      take the most frequent pair, add the merged token and rewrite the words that hold the pair.
 *      Only those words are touched: each rewrite reports which pairs it removed and created, and
 *      the counts change by exactly that. A priority queue holds (count, pair) entries; an entry
 *      whose count went stale is put back with the current count when it comes out (counts of a
 *      pair only fall, except when a merge re-creates an existing token, and then a fresh entry is
 *      queued), so the queue always yields the true maximum. Ties go to the pair with the smallest
 *      (left id, right id), as Hugging Face's BpeTrainer breaks them, so its unit-test corpus gives
 *      the same merges here. Training stops at `vocabSize` tokens, or fails when no pair left
 *      occurs `minFrequency` times.
 *
 * Everything is deterministic: maps iterate in insertion order and every tie has a rule.
 */
import fs from 'node:fs';
import { FormatError, RequestError } from '../errors.js';
import { describeIoError } from '../formats/file.js';
import { utf8 } from '../tokenizers/base.js';
import { BYTE_TO_CHAR, preTokenize, type BpeVocab } from '../tokenizers/bpe.js';
import { PriorityQueue } from '../tokenizers/heap.js';
import { SPACE_MARK, TokenType } from '../tokenizers/vocab.js';

export const TOKENIZER_TRAIN_TYPES = ['bpe', 'byte-bpe'] as const;
export type TokenizerTrainType = (typeof TOKENIZER_TRAIN_TYPES)[number];

export type TrainPhase = 'count' | 'merge';

export interface TrainTokenizerOptions {
  /** 'byte-bpe' (GPT-2 style) or 'bpe' (SentencePiece/Llama style with byte fallback). */
  type: TokenizerTrainType;
  /** Tokens in the result: specials, alphabet and merged tokens together. */
  vocabSize: number;
  /** A pair is merged only if it occurs at least this often (default 2). */
  minFrequency?: number;
  /** Extra special (control) tokens, given ids right after the base specials. */
  specialTokens?: readonly string[];
  /** bpe: keep at most this many characters in the alphabet, the most frequent (default 1000). */
  limitAlphabet?: number;
  /** count: UTF-8 bytes of text done / total; merge: merged tokens done / wanted. */
  onProgress?: (phase: TrainPhase, done: number, total: number) => void;
}

export interface TrainedTokenizer {
  vocab: BpeVocab;
  /** Merge rules learned (vocab.merges.length). */
  merges: number;
  /** Size of the initial alphabet: 256 bytes (byte-bpe) or the characters kept (bpe). */
  alphabet: number;
  /** Distinct words counted. */
  words: number;
}

export const TRAIN_DEFAULTS = { minFrequency: 2, limitAlphabet: 1000 } as const;

/** Token ids must fit a pair key (left * MAX_VOCAB + right) below 2^53. */
export const MAX_TRAIN_VOCAB = 2 ** 21;

/** Train on texts already in memory; each text is one document (bpe puts a "▁" before each). */
export function trainTokenizer(texts: readonly string[], opts: TrainTokenizerOptions): TrainedTokenizer {
  checkOptions(opts);
  const style = STYLES[opts.type];
  const counter = new WordCounter(style, texts.reduce((sum, t) => sum + Buffer.byteLength(t), 0), opts.onProgress);
  for (const text of texts) counter.addDocument(text);
  return trainFromCounts(counter.counts, opts, 'texts');
}

/** Train on text files (UTF-8), one document each; a file that cannot be read is a FormatError naming it. */
export function trainTokenizerFromFiles(files: readonly string[], opts: TrainTokenizerOptions): TrainedTokenizer {
  checkOptions(opts);
  if (files.length === 0) throw new RequestError('no_text', 'files', 'no text file given');
  const sizes = files.map((file) => fileSize(file));
  const style = STYLES[opts.type];
  const counter = new WordCounter(style, sizes.reduce((a, b) => a + b, 0), opts.onProgress);
  for (const file of files) counter.addDocument(readText(file));
  return trainFromCounts(counter.counts, opts, 'files');
}

// ---------------------------------------------------------------------------------------------
// Options and files

function checkOptions(opts: TrainTokenizerOptions): void {
  if (!(TOKENIZER_TRAIN_TYPES as readonly string[]).includes(opts.type)) {
    throw new RequestError('invalid_type', 'type', `'${String(opts.type)}' is not a tokenizer type (expected ${TOKENIZER_TRAIN_TYPES.join(' or ')})`);
  }
  const { vocabSize } = opts;
  if (!Number.isInteger(vocabSize) || vocabSize < 1 || vocabSize > MAX_TRAIN_VOCAB) {
    throw new RequestError('invalid_vocab_size', 'vocabSize', `must be an integer in 1..${MAX_TRAIN_VOCAB}, got ${vocabSize}`);
  }
  const minFrequency = opts.minFrequency ?? TRAIN_DEFAULTS.minFrequency;
  if (!Number.isSafeInteger(minFrequency) || minFrequency < 1) {
    throw new RequestError('invalid_min_frequency', 'minFrequency', `must be an integer ≥ 1, got ${minFrequency}`);
  }
  const limit = opts.limitAlphabet ?? TRAIN_DEFAULTS.limitAlphabet;
  if (!Number.isSafeInteger(limit) || limit < 1) {
    throw new RequestError('invalid_limit_alphabet', 'limitAlphabet', `must be an integer ≥ 1, got ${limit}`);
  }
  const base = STYLES[opts.type].baseSpecials;
  const seen = new Set<string>();
  for (const token of opts.specialTokens ?? []) {
    if (typeof token !== 'string' || token.length === 0) throw new RequestError('invalid_special', 'specialTokens', 'a special token must be a non-empty string');
    if (base.includes(token)) throw new RequestError('invalid_special', 'specialTokens', `"${token}" is already a base special token (${base.join(', ')})`);
    if (seen.has(token)) throw new RequestError('invalid_special', 'specialTokens', `"${token}" is given twice`);
    seen.add(token);
  }
}

function fileSize(file: string): number {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(file);
  } catch (err) {
    throw new FormatError('cannot_open', file, describeIoError(err));
  }
  if (!stat.isFile()) throw new FormatError('cannot_open', file, 'not a regular file');
  return stat.size;
}

function readText(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new FormatError('cannot_open', file, describeIoError(err));
  }
}

// ---------------------------------------------------------------------------------------------
// Styles: how each type cuts text into words and what its base vocabulary is

interface TrainStyle {
  /** Specials every vocabulary of this type starts with (ids 0, 1, ...). */
  baseSpecials: readonly string[];
  /** Whether a document may be cut just before index `at` without changing its words. */
  isCut(text: string, at: number): boolean;
  /** Count the words of `chunk`; `startsDocument` for the first chunk of a document. */
  countWords(chunk: string, startsDocument: boolean, counts: Map<string, number>): void;
  /** The base vocabulary and each word as symbol ids (runs of two or more; single symbols never pair). */
  prepare(counts: ReadonlyMap<string, number>, specials: readonly string[], limitAlphabet: number): Prepared;
  /** The BpeVocab fields besides tokens, types and merges. */
  vocabFields: Omit<BpeVocab, 'tokens' | 'types' | 'merges'>;
}

interface Prepared {
  tokens: string[];
  types: number[];
  alphabet: number;
  words: number[][];
  counts: number[];
}

function increment(counts: Map<string, number>, word: string, by = 1): void {
  counts.set(word, (counts.get(word) ?? 0) + by);
}

/** A printable ASCII character (never whitespace, never part of a GPT-2 whitespace run). */
function isPrintableAscii(code: number): boolean {
  return code > 0x20 && code < 0x7f;
}

const BYTE_LEVEL: TrainStyle = {
  baseSpecials: ['<|endoftext|>'],
  // After a lone "\n" between printable characters: the regex matches that "\n" alone whether the
  // text goes on or ends there, and no other match reaches across it.
  isCut: (text, at) =>
    text.charCodeAt(at - 1) === 0x0a && isPrintableAscii(text.charCodeAt(at - 2)) && isPrintableAscii(text.charCodeAt(at)),
  countWords(chunk, _startsDocument, counts) {
    for (const word of preTokenize(chunk, 'gpt-2')) increment(counts, word);
  },
  prepare(counts, specials) {
    const tokens = [...this.baseSpecials, ...specials];
    const types: number[] = tokens.map(() => TokenType.control);
    // Code point order, as Hugging Face sorts an alphabet; for GPT-2's byte characters it is also
    // GPT-2's own vocabulary order.
    const chars = [...BYTE_TO_CHAR].sort((a, b) => a.charCodeAt(0) - b.charCodeAt(0));
    const idOfChar = new Map(chars.map((c, i) => [c, tokens.length + i]));
    const idOfByte = BYTE_TO_CHAR.map((c) => idOfChar.get(c)!);
    for (const c of chars) {
      tokens.push(c);
      types.push(TokenType.normal);
    }
    const words: number[][] = [];
    const wordCounts: number[] = [];
    for (const [word, count] of counts) {
      const bytes = utf8.encode(word);
      if (bytes.length < 2) continue;
      words.push(Array.from(bytes, (b) => idOfByte[b]!));
      wordCounts.push(count);
    }
    return { tokens, types, alphabet: chars.length, words, counts: wordCounts };
  },
  vocabFields: { model: 'gpt2', pre: 'gpt-2', byteLevel: true, bos: 0, eos: 0, addBos: false, addEos: false },
};

const SPACE = 0x20;

const SENTENCEPIECE: TrainStyle = {
  baseSpecials: ['<unk>', '<s>', '</s>'],
  // Just before a space: a word starts there whether or not the text was cut.
  isCut: (text, at) => text.charCodeAt(at) === SPACE,
  countWords(chunk, startsDocument, counts) {
    const pieces = chunk.split(' ');
    // The "▁" prepended to the document; a later chunk starts with its space (an empty piece).
    if (startsDocument) countLines(SPACE_MARK + pieces[0]!, counts);
    else if (pieces[0] !== '') countLines(pieces[0]!, counts);
    for (let i = 1; i < pieces.length; i++) countLines(SPACE_MARK + pieces[i]!, counts);
  },
  prepare(counts, specials, limitAlphabet) {
    const tokens = [...this.baseSpecials, ...specials];
    const types: number[] = [TokenType.unknown, ...tokens.slice(1).map(() => TokenType.control)];
    for (let b = 0; b < 256; b++) {
      tokens.push(byteToken(b));
      types.push(TokenType.byte);
    }
    const chars = keptCharacters(counts, limitAlphabet);
    const idOfChar = new Map<string, number>();
    for (const c of chars) {
      idOfChar.set(c, tokens.length);
      tokens.push(c);
      types.push(TokenType.normal);
    }
    const words: number[][] = [];
    const wordCounts: number[] = [];
    const keep = (run: number[], count: number): void => {
      if (run.length < 2) return;
      words.push(run);
      wordCounts.push(count);
    };
    for (const [word, count] of counts) {
      // A character left out of the alphabet splits its word: the encoder writes it as byte tokens.
      let run: number[] = [];
      for (const c of word) {
        const id = idOfChar.get(c);
        if (id !== undefined) {
          run.push(id);
        } else {
          keep(run, count);
          run = [];
        }
      }
      keep(run, count);
    }
    return { tokens, types, alphabet: chars.length, words, counts: wordCounts };
  },
  // `pre` is not used without byte level: tokenizer.json's normalizer says how text becomes words.
  vocabFields: { model: 'gpt2', pre: 'default', byteLevel: false, byteFallback: true, bos: 1, eos: 2, unk: 0, addBos: true, addEos: false },
};

const LINE_BREAK = /[\n\r]/;
const AROUND_LINE_BREAKS = /(?=[\n\r])|(?<=[\n\r])/;

/**
 * Count a word, with each line break on its own: like SentencePiece, which trains on lines, no
 * merge spans a line break (so no token holds one, and the words after it stay apart).
 */
function countLines(word: string, counts: Map<string, number>): void {
  if (!LINE_BREAK.test(word)) return increment(counts, word);
  for (const part of word.split(AROUND_LINE_BREAKS)) increment(counts, part);
}

const STYLES: Record<TokenizerTrainType, TrainStyle> = { bpe: SENTENCEPIECE, 'byte-bpe': BYTE_LEVEL };

/** SentencePiece's name for a byte-fallback token: "<0x0A>". */
function byteToken(b: number): string {
  return `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;
}

/** The `limit` most frequent characters of the words (ties: the lower code point), in code point order. */
function keptCharacters(counts: ReadonlyMap<string, number>, limit: number): string[] {
  const charCounts = new Map<string, number>();
  for (const [word, count] of counts) for (const c of word) increment(charCounts, c, count);
  const byCodePoint = (a: string, b: string): number => a.codePointAt(0)! - b.codePointAt(0)!;
  const chars = [...charCounts.keys()];
  if (chars.length > limit) {
    chars.sort((a, b) => charCounts.get(b)! - charCounts.get(a)! || byCodePoint(a, b));
    chars.length = limit;
  }
  return chars.sort(byCodePoint);
}

/** Cut documents into chunks (so huge files are pre-tokenized piecewise) and count their words. */
const CHUNK_CHARS = 1 << 20;

class WordCounter {
  readonly counts = new Map<string, number>();
  private bytesDone = 0;

  constructor(
    private readonly style: TrainStyle,
    private readonly totalBytes: number,
    private readonly onProgress?: TrainTokenizerOptions['onProgress'],
  ) {}

  addDocument(text: string): void {
    let from = 0;
    while (from < text.length) {
      const to = this.cutAfter(text, from + CHUNK_CHARS);
      const chunk = text.slice(from, to);
      this.style.countWords(chunk, from === 0, this.counts);
      this.bytesDone += Buffer.byteLength(chunk);
      this.onProgress?.('count', this.bytesDone, this.totalBytes);
      from = to;
    }
  }

  /** The first place at or after `at` where the style may cut the text (or its end). */
  private cutAfter(text: string, at: number): number {
    for (let i = at; i < text.length; i++) if (this.style.isCut(text, i)) return i;
    return text.length;
  }
}

// ---------------------------------------------------------------------------------------------
// From word counts to a vocabulary

/** `source` names the parameter the text came from, for the empty-text error. */
function trainFromCounts(counts: ReadonlyMap<string, number>, opts: TrainTokenizerOptions, source: 'texts' | 'files'): TrainedTokenizer {
  const style = STYLES[opts.type];
  const specials = opts.specialTokens ?? [];
  if (counts.size === 0) throw new RequestError('empty_text', source, 'the training text is empty');
  const prepared = style.prepare(counts, specials, opts.limitAlphabet ?? TRAIN_DEFAULTS.limitAlphabet);
  const base = prepared.tokens.length;
  const clash = specials.find((token) => prepared.tokens.indexOf(token) !== prepared.tokens.lastIndexOf(token));
  if (clash !== undefined) {
    throw new RequestError('invalid_special', 'specialTokens', `"${clash}" is already in the alphabet (${opts.type === 'bpe' ? 'a byte or a character' : 'a byte character'})`);
  }
  if (opts.vocabSize < base) {
    throw new RequestError(
      'vocab_size_too_small',
      'vocabSize',
      `${opts.vocabSize} is less than the base vocabulary of ${base} tokens (${describeBase(opts.type, style, specials, prepared.alphabet)})`,
    );
  }
  const minFrequency = opts.minFrequency ?? TRAIN_DEFAULTS.minFrequency;
  const learned = learnMerges({
    tokens: prepared.tokens,
    words: prepared.words,
    counts: prepared.counts,
    vocabSize: opts.vocabSize,
    minFrequency,
    reserved: new Set([...style.baseSpecials, ...specials]),
    onMerge: (size) => opts.onProgress?.('merge', size - base, opts.vocabSize - base),
  });
  if (learned.tokens.length < opts.vocabSize) {
    throw new RequestError(
      'vocab_size_too_large',
      'vocabSize',
      `${opts.vocabSize} is more than this text gives: only ${learned.merges.length} merges were possible with ` +
        `pairs seen at least ${minFrequency} times (the minimum frequency), for a vocabulary of ${learned.tokens.length} tokens`,
    );
  }
  // Merged tokens are normal tokens.
  const types = new Int32Array(learned.tokens.length).fill(TokenType.normal);
  types.set(prepared.types);
  const vocab: BpeVocab = { ...style.vocabFields, tokens: learned.tokens, types, merges: learned.merges };
  return { vocab, merges: learned.merges.length, alphabet: prepared.alphabet, words: counts.size };
}

function describeBase(type: TokenizerTrainType, style: TrainStyle, specials: readonly string[], alphabet: number): string {
  const specialCount = style.baseSpecials.length + specials.length;
  if (type === 'byte-bpe') return `${specialCount} special, 256 byte characters`;
  return `${specialCount} special, 256 byte fallback, ${alphabet} characters`;
}

// ---------------------------------------------------------------------------------------------
// The merge loop

export interface MergeTrainingInput {
  /** The base vocabulary (specials and alphabet); a symbol id is an index in it. Not modified. */
  tokens: readonly string[];
  /** Each distinct word as its symbol ids; rewritten in place as merges apply. */
  words: number[][];
  /** How often each word occurs. */
  counts: readonly number[];
  /** Stop when the vocabulary has this many tokens. */
  vocabSize: number;
  /** Stop when the most frequent pair occurs fewer times than this. */
  minFrequency: number;
  /** Texts no merge may produce (the special tokens): such a pair is dropped instead. */
  reserved?: ReadonlySet<string>;
  /** Called after each merge with the vocabulary's size. */
  onMerge?: (vocabSize: number) => void;
}

export interface LearnedMerges {
  /** The base tokens followed by the merged ones. */
  tokens: string[];
  /** Merge rules, first learned first (rank = index). */
  merges: [string, string][];
}

interface Candidate {
  left: number;
  right: number;
  /** The pair's count when queued; stale once the pair's words change. */
  count: number;
}

const pairKey = (left: number, right: number): number => left * MAX_TRAIN_VOCAB + right;

/** Most frequent first; ties: the smaller left id, then the smaller right id (Hugging Face's order). */
const comesFirst = (a: Candidate, b: Candidate): boolean =>
  a.count > b.count || (a.count === b.count && (a.left < b.left || (a.left === b.left && a.right < b.right)));

/** Learn merges on counted words (see the file header). */
export function learnMerges(input: MergeTrainingInput): LearnedMerges {
  const { words, counts, vocabSize, minFrequency } = input;
  const tokens = [...input.tokens];
  const idOf = new Map(tokens.map((t, id) => [t, id]));
  const merges: [string, string][] = [];
  const pairs = new PairTable(words, counts);
  const queue = new PriorityQueue<Candidate>(comesFirst);
  const enqueue = (key: number): void => {
    const count = pairs.count(key);
    if (count >= minFrequency) queue.push({ left: Math.floor(key / MAX_TRAIN_VOCAB), right: key % MAX_TRAIN_VOCAB, count });
  };
  for (const key of pairs.keys()) enqueue(key);
  const merged = new Set<number>();

  while (tokens.length < vocabSize) {
    const top = queue.pop();
    if (top === undefined) break;
    const key = pairKey(top.left, top.right);
    if (pairs.count(key) !== top.count) {
      enqueue(key); // stale: back in with its current count
      continue;
    }
    const text = tokens[top.left]! + tokens[top.right]!;
    if (input.reserved?.has(text)) {
      pairs.forget(key); // never turn ordinary text into a special token
      continue;
    }
    let id = idOf.get(text);
    if (id === undefined) {
      id = tokens.length;
      tokens.push(text);
      idOf.set(text, id);
    }
    // A pair merged again (its token re-created by another merge) needs no second rule.
    if (!merged.has(key)) merges.push([tokens[top.left]!, tokens[top.right]!]);
    merged.add(key);
    for (const grown of pairs.merge(top.left, top.right, id)) enqueue(grown);
    input.onMerge?.(tokens.length);
  }
  return { tokens, merges };
}

/**
 * Pair counts over the words, and for each pair the words that may hold it (a superset: a word
 * whose pair was merged away stays listed; rewriting it then finds nothing).
 */
class PairTable {
  private readonly counts = new Map<number, number>();
  private readonly where = new Map<number, Set<number>>();

  constructor(
    private readonly words: number[][],
    private readonly wordCounts: readonly number[],
  ) {
    for (let w = 0; w < words.length; w++) {
      const word = words[w]!;
      for (let i = 0; i + 1 < word.length; i++) this.add(pairKey(word[i]!, word[i + 1]!), wordCounts[w]!, w);
    }
  }

  keys(): IterableIterator<number> {
    return this.counts.keys();
  }

  count(key: number): number {
    return this.counts.get(key) ?? 0;
  }

  forget(key: number): void {
    this.counts.delete(key);
    this.where.delete(key);
  }

  /**
   * Replace every (left, right) in the words that hold it with `id`, left to right (in "aaa" the
   * first two a's merge). Returns the pairs whose counts grew, to be queued afresh.
   */
  merge(left: number, right: number, id: number): Set<number> {
    const key = pairKey(left, right);
    const holders = this.where.get(key) ?? new Set<number>();
    this.forget(key);
    const grown = new Set<number>();
    for (const w of holders) {
      const word = this.words[w]!;
      const count = this.wordCounts[w]!;
      let out = 0;
      for (let i = 0; i < word.length; ) {
        if (word[i] !== left || word[i + 1] !== right || i + 1 >= word.length) {
          word[out++] = word[i++]!;
          continue;
        }
        // The neighbours now pair with the merged token instead of its parts.
        if (out > 0) {
          const before = word[out - 1]!;
          this.add(pairKey(before, left), -count, w);
          grown.add(this.add(pairKey(before, id), count, w));
        }
        if (i + 2 < word.length) {
          const after = word[i + 2]!;
          this.add(pairKey(right, after), -count, w);
          grown.add(this.add(pairKey(id, after), count, w));
        }
        word[out++] = id;
        i += 2;
      }
      word.length = out;
    }
    // The merged pair itself was counted down where occurrences overlapped ("aaa"); it is gone now.
    this.forget(key);
    return grown;
  }

  /** Change a pair's count by `delta` (occurrences × word count) in word `w`; returns the key. */
  private add(key: number, delta: number, w: number): number {
    this.counts.set(key, (this.counts.get(key) ?? 0) + delta);
    if (delta > 0) {
      let set = this.where.get(key);
      if (set === undefined) this.where.set(key, (set = new Set()));
      set.add(w);
    }
    return key;
  }
}
