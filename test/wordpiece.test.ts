import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ModelError } from '../src/errors.js';
import { readGGUF, typedMetadata } from '../src/formats/gguf.js';
import { writeGGUF } from '../src/formats/gguf-writer.js';
import { tokenizerFromGGUF, tokenizerFromVocab } from '../src/tokenizers/index.js';
import { TokenType } from '../src/tokenizers/vocab.js';
import { bertPreTokenize, WordPieceTokenizer, wordPieceVocabFromGGUF, type WordPieceVocab } from '../src/tokenizers/wordpiece.js';
import { llamaCppCases } from './helpers/vocab.js';

const shared = (p: string): string => fileURLToPath(new URL(`../../shared/${p}`, import.meta.url));
const base = shared('models/llamacpp-vocab/ggml-vocab-bert-bge.gguf');
const file = readGGUF(base);
const tok = new WordPieceTokenizer(wordPieceVocabFromGGUF(file));


const uncased = { lowercase: true, stripAccents: true, handleChineseChars: true };

describe('WordPiece (bert) from GGUF', () => {
  it('reads the vocabulary with llama.cpp\'s conventions', () => {
    const v = tok.vocab;
    expect(v.model).toBe('bert');
    expect(v.tokens.length).toBe(30522);
    expect([v.tokens[v.bos], v.tokens[v.eos], v.tokens[v.unk], v.tokens[v.pad!], v.tokens[v.mask!]]).toEqual(['[CLS]', '[SEP]', '[UNK]', '[PAD]', '[MASK]']);
    expect([v.wordStartPrefix, v.continuationPrefix]).toEqual(['▁', '']);
    expect([v.lowercase, v.stripAccents, v.handleChineseChars, v.addBos, v.addEos]).toEqual([true, true, true, true, true]);
  });

  it("passes llama.cpp's own test: ggml-vocab-bert-bge.gguf .inp/.out", () => {
    const all = llamaCppCases(base);
    expect(all.length).toBe(46);
    let passed = 0;
    for (const { text, ids } of all) {
      expect(tok.encode(text, { addSpecial: false }), JSON.stringify(text)).toEqual(ids);
      passed++;
    }
    expect(passed).toBe(46);
  });

  it('puts [CLS] first and [SEP] last, and parses them in text only when asked', () => {
    expect(tok.encode('Hello world')).toEqual([101, 7592, 2088, 102]);
    expect(tok.encode('a [SEP] b', { addSpecial: false, parseSpecial: true })).toEqual([1037, 102, 1038]);
    expect(tok.encode('a [SEP] b', { addSpecial: false })).toEqual([1037, 1031, 19802, 1033, 1038]);
  });

  it('decodes word starts with a space and continuations glued on', () => {
    const ids = tok.encode('Führer said: ok!');
    expect(ids.map((id) => tok.vocab.tokens[id])).toEqual(['[CLS]', '▁fu', 'hrer', '▁said', '▁:', '▁ok', '▁!', '[SEP]']);
    expect(tok.decode(ids)).toBe('fuhrer said : ok !');
    expect(tok.decode(ids, { skipSpecial: false })).toBe('[CLS]fuhrer said : ok ![SEP]');
    // Lowercase text without punctuation survives the round trip.
    expect(tok.decode(tok.encode('hello world of tokens'))).toBe('hello world of tokens');
  });

  it('is what tokenizerFromGGUF returns for tokenizer.ggml.model "bert"', () => {
    const t = tokenizerFromGGUF(file);
    expect(t.model).toBe('bert');
    expect(t.encode('Hello world')).toEqual([101, 7592, 2088, 102]);
    expect([t.bos, t.eos, t.addBos, t.addEos]).toEqual([101, 102, true, true]);
    expect(t.tokenText(7592)).toBe('▁hello');
  });

  it('reads the normalizer flags and rejects other tokenizer models', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'smallmind-wpm-'));
    try {
      const cased = path.join(dir, 'cased.gguf');
      const meta = typedMetadata(file);
      meta.set('tokenizer.ggml.normalizer.lowercase', { type: 'bool', value: false });
      writeGGUF(cased, meta, []);
      const v = wordPieceVocabFromGGUF(readGGUF(cased));
      expect([v.lowercase, v.stripAccents]).toEqual([false, false]); // strip_accents follows lowercase
      const gpt2 = path.join(dir, 'gpt2.gguf');
      meta.set('tokenizer.ggml.model', { type: 'string', value: 'gpt2' });
      writeGGUF(gpt2, meta, []);
      expect(() => wordPieceVocabFromGGUF(readGGUF(gpt2))).toThrow(ModelError);
      expect(() => wordPieceVocabFromGGUF(readGGUF(gpt2))).toThrow(/gpt2\.gguf: tokenizer\.ggml\.model "gpt2" is not a WordPiece tokenizer/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('BERT pre-tokenization', () => {
  it('lowercases, strips accents, isolates punctuation, ASCII symbols and CJK ideographs', () => {
    expect(bertPreTokenize('Héllo, Wörld! a+b=c 你好 x～y Ⅻ', uncased)).toEqual(
      ['hello', ',', 'world', '!', 'a', '+', 'b', '=', 'c', '你', '好', 'x～y', 'ⅻ'],
    );
  });

  it('drops control characters, NUL and U+FFFD; whitespace (Unicode White_Space) ends words', () => {
    expect(bertPreTokenize('a\u0000b\ufffdc\u200dd\u0085e\u00a0f\u3000g\ufeffh', uncased)).toEqual(['abcd', 'e', 'f', 'gh']);
    expect(bertPreTokenize('  \t\n ', uncased)).toEqual([]);
  });

  it('keeps case and accents when asked (cased models)', () => {
    const cased = { lowercase: false, stripAccents: false, handleChineseChars: false };
    expect(bertPreTokenize('Héllo 你好', cased)).toEqual(['Héllo', '你好']);
    // Combining marks stay unless accents are stripped.
    expect(bertPreTokenize('e\u0301', cased)).toEqual(['e\u0301']);
    expect(bertPreTokenize('e\u0301', uncased)).toEqual(['e']);
  });
});

/** An HF-style vocabulary: bare word starts, "##" continuations. */
function hfVocab(extra: Partial<WordPieceVocab> = {}): WordPieceVocab {
  const tokens = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', 'un', '##aff', '##able', 'hello', ',', '!', 'aff', '##a'];
  const types = Int32Array.from(tokens.map((t) => (t.startsWith('[') ? TokenType.control : TokenType.normal)));
  return {
    model: 'bert',
    tokens,
    types,
    wordStartPrefix: '',
    continuationPrefix: '##',
    lowercase: true,
    stripAccents: true,
    handleChineseChars: true,
    bos: 2,
    eos: 3,
    unk: 1,
    pad: 0,
    mask: 4,
    addBos: true,
    addEos: true,
    ...extra,
  };
}

describe('WordPiece with "##" continuations (tokenizer.json vocabularies)', () => {
  it('matches longest first, continuations with their prefix', () => {
    const wp = new WordPieceTokenizer(hfVocab());
    expect(wp.encode('Unaffable, hello!')).toEqual([2, 5, 6, 7, 9, 8, 10, 3]);
    expect(wp.decode(wp.encode('Unaffable, hello!'))).toBe('unaffable , hello !');
    // "aff" alone is a word start; inside a word only "##aff" fits.
    expect(wp.encode('aff unaff', { addSpecial: false })).toEqual([11, 5, 6]);
  });

  it('turns a word it cannot cover into one [UNK], whole', () => {
    const wp = new WordPieceTokenizer(hfVocab());
    expect(wp.encode('unaffx hello', { addSpecial: false })).toEqual([1, 8]);
    expect(wp.encode('affaa', { addSpecial: false })).toEqual([11, 12, 12]);
  });

  it('takes its words from a split hook instead of BERT pre-tokenization', () => {
    const wp = new WordPieceTokenizer(hfVocab({ lowercase: false }), { split: (text) => text.split('|') });
    expect(wp.encode('unaff|hello,', { addSpecial: false })).toEqual([5, 6, 1]);
  });

  it('makes over-long words [UNK] where max_input_chars_per_word says so', () => {
    const wp = new WordPieceTokenizer(hfVocab({ maxInputCharsPerWord: 5 }));
    expect(wp.encode('affaa affaaa', { addSpecial: false })).toEqual([11, 12, 12, 1]);
    const t = tokenizerFromVocab(hfVocab());
    expect(t.model).toBe('bert');
    expect(t.encode('hello')).toEqual([2, 8, 3]);
  });
});
