import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ModelError } from '../src/errors.js';
import { readGGUF, typedMetadata, type GGUFTypedValue } from '../src/formats/gguf.js';
import { writeGGUF } from '../src/formats/gguf-writer.js';
import { BpeTokenizer, bpeVocabFromGGUF, preTokenize, type BpeVocab } from '../src/tokenizers/bpe.js';
import { BPE_PRETOKENIZERS } from '../src/tokenizers/pretokenizers.js';
import { TokenType } from '../src/tokenizers/vocab.js';
import { llamaCppCases } from './helpers/vocab.js';

const shared = (p: string): string => fileURLToPath(new URL(`../../shared/${p}`, import.meta.url));
const vocabPath = (name: string): string => shared(`models/llamacpp-vocab/ggml-vocab-${name}.gguf`);
const base = vocabPath('gpt-2');
const file = readGGUF(base);
const tok = new BpeTokenizer(bpeVocabFromGGUF(file));


/** Write a copy of `from` with metadata keys changed, for loader tests. */
function withMetadata(dir: string, name: string, from: typeof file, changes: Record<string, GGUFTypedValue>): string {
  const out = path.join(dir, name);
  const meta = typedMetadata(from);
  for (const [key, value] of Object.entries(changes)) meta.set(key, value);
  writeGGUF(out, meta, []);
  return out;
}

describe('byte-level BPE (gpt2)', () => {
  it('reads the vocabulary', () => {
    const v = tok.vocab;
    expect(v.model).toBe('gpt2');
    expect(v.pre).toBe('gpt-2');
    expect(v.tokens.length).toBe(50257);
    expect(v.merges.length).toBe(50000);
    expect(v.addBos).toBe(false);
    expect(v.ignoreMerges).toBe(false);
    expect(v.tokens[v.eos]).toBe('<|endoftext|>');
  });

  // Pass counts per file: every one of the 46 cases, byte for byte.
  it.each([
    ['gpt-2', 'gpt-2'],
    ['deepseek-coder', 'deepseek-coder'],
    ['falcon', 'falcon'],
    ['mpt', 'mpt'],
  ])("passes llama.cpp's own test: ggml-vocab-%s.gguf .inp/.out (pre %s)", (name, pre) => {
    const bpe = new BpeTokenizer(bpeVocabFromGGUF(readGGUF(vocabPath(name))));
    expect(bpe.vocab.pre).toBe(pre);
    const all = llamaCppCases(vocabPath(name));
    expect(all.length).toBe(46);
    let passed = 0;
    for (const { text, ids } of all) {
      expect(bpe.encode(text, { addSpecial: false }), JSON.stringify(text)).toEqual(ids);
      passed++;
    }
    expect(passed).toBe(46);
    // Byte-level BPE loses nothing: every case decodes back to its text (BOS, where added, prints nothing).
    for (const { text } of all) expect(bpe.decode(bpe.encode(text)), JSON.stringify(text)).toBe(text);
  });

  it('adds BOS where the file asks (deepseek-coder: add_bos_token true)', () => {
    const bpe = new BpeTokenizer(bpeVocabFromGGUF(readGGUF(vocabPath('deepseek-coder'))));
    expect(bpe.encode('Hello')).toEqual([32013, 17535]);
    expect(bpe.encode('Hello', { addSpecial: false })).toEqual([17535]);
  });

  it('round-trips every test string through encode and decode', () => {
    for (const { text } of llamaCppCases(base)) expect(tok.decode(tok.encode(text)), JSON.stringify(text)).toBe(text);
    expect(tok.decode(tok.encode('lone \ud800 surrogate'))).toBe('lone \ufffd surrogate');
  });

  it('splits words like the GPT-2 regex, keeping one space for the next word', () => {
    expect(preTokenize("Hello   world's 123!!\n\n  x  ", 'gpt-2')).toEqual(
      ['Hello', '  ', ' world', "'s", ' 123', '!!', '\n\n ', ' x', '  '],
    );
    expect(preTokenize('', 'gpt-2')).toEqual([]);
    // llama.cpp's whitespace (Unicode White_Space) includes U+0085, not U+FEFF nor U+001C.
    expect(preTokenize('a\u0085b\ufeffc\u001cd', 'gpt-2')).toEqual(['a', '\u0085', 'b', '\ufeff', 'c', '\u001c', 'd']);
    // 'default': punctuation runs first, then the GPT-2 words, then numbers in threes.
    expect(preTokenize('Hi, 12345 there!', 'default')).toEqual(['Hi', ',', ' ', '123', '45', ' there', '!']);
  });

  it('handles special tokens', () => {
    const eot = tok.vocab.eos;
    expect(tok.vocab.types[eot]).toBe(TokenType.control);
    const ids = tok.encode('a<|endoftext|>b', { parseSpecial: true });
    expect(ids).toEqual([...tok.encode('a'), eot, ...tok.encode('b')]);
    expect(tok.encode('a<|endoftext|>b')).not.toContain(eot); // plain text unless asked
    expect(tok.decode(ids)).toBe('ab');
    expect(tok.decode(ids, { skipSpecial: false })).toBe('a<|endoftext|>b');
    expect(tok.piece(eot).length).toBe(0);
    expect(tok.encode('hi', { addSpecial: false })).toEqual(tok.encode('hi')); // gpt-2 adds no BOS
    expect(() => tok.decode([50257])).toThrow(/outside the vocabulary/);
  });

  it('streams an emoji split across byte tokens', () => {
    const text = 'I ❤️ 🦙!';
    const ids = tok.encode(text);
    // The emoji's four bytes do not all sit in one token.
    const llamaBytes = new TextEncoder().encode('🦙');
    expect(ids.some((id) => tok.piece(id).length > 0 && tok.piece(id).length < llamaBytes.length && tok.piece(id)[0] >= 0x80)).toBe(true);
    const dec = tok.createStreamDecoder();
    const parts = ids.map((id) => dec.push(id));
    expect(parts.join('') + dec.flush()).toBe(text);
    expect(parts).toContain('');
    expect(parts.every((p) => !p.includes('\ufffd'))).toBe(true);
    // An unfinished sequence comes out as U+FFFD on flush.
    const cut = tok.createStreamDecoder();
    const emojiIds = tok.encode('🦙');
    expect(emojiIds.length).toBeGreaterThan(1);
    expect(cut.push(emojiIds[0])).toBe('');
    expect(cut.flush()).toBe('\ufffd');
  });

  it('reads the Llama 3 flags from the pre-tokenizer name; the file overrides them', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'smallmind-bpe-'));
    try {
      const llama3 = bpeVocabFromGGUF(readGGUF(withMetadata(dir, 'llama-bpe.gguf', file, { 'tokenizer.ggml.pre': { type: 'string', value: 'llama-bpe' } })));
      expect(llama3.pre).toBe('llama-bpe');
      expect(llama3.ignoreMerges).toBe(true);
      expect(llama3.addBos).toBe(true);
      const noBos = bpeVocabFromGGUF(
        readGGUF(
          withMetadata(dir, 'no-bos.gguf', file, {
            'tokenizer.ggml.pre': { type: 'string', value: 'llama3' },
            'tokenizer.ggml.add_bos_token': { type: 'bool', value: false },
          }),
        ),
      );
      expect(noBos.addBos).toBe(false);
      expect(noBos.ignoreMerges).toBe(true);
      const qwen = bpeVocabFromGGUF(readGGUF(withMetadata(dir, 'qwen2.gguf', file, { 'tokenizer.ggml.pre': { type: 'string', value: 'qwen2' } })));
      expect([qwen.ignoreMerges, qwen.addBos]).toEqual([false, false]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('rejects an unsupported pre-tokenizer, naming the file, the value and what is supported', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'smallmind-bpe-'));
    try {
      const out = withMetadata(dir, 'bad-pre.gguf', file, { 'tokenizer.ggml.pre': { type: 'string', value: 'kimi-k2' } });
      let err: unknown;
      try {
        bpeVocabFromGGUF(readGGUF(out));
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ModelError);
      expect((err as ModelError).code).toBe('unsupported_pretokenizer');
      expect((err as ModelError).message).toContain(out);
      expect((err as ModelError).message).toContain('"kimi-k2"');
      expect((err as ModelError).message).toContain('supported: default, llama3, llama-v3, llama-bpe');

      const spm = withMetadata(dir, 'spm.gguf', file, { 'tokenizer.ggml.model': { type: 'string', value: 'llama' } });
      expect(() => bpeVocabFromGGUF(readGGUF(spm))).toThrow(/tokenizer.ggml.model "llama"/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('pre-tokenizers (tokenizer.ggml.pre)', () => {
  it('knows every name of the brief, each lossless on mixed text', () => {
    const names = [
      'llama3', 'llama-v3', 'llama-bpe', 'falcon3', 'dbrx', 'smaug-bpe', 'deepseek-llm', 'deepseek-coder', 'deepseek-v3',
      'falcon', 'mpt', 'starcoder', 'gpt-2', 'refact', 'command-r', 'qwen2', 'stablelm2', 'olmo', 'jais', 'tekken', 'smollm',
      'codeshell', 'bloom', 'gpt3-finnish', 'exaone', 'chameleon', 'minerva-7b', 'gpt-4o', 'poro-chat', 'chatglm-bpe', 'viking', 'default',
    ];
    for (const name of names) expect(BPE_PRETOKENIZERS, name).toContain(name);
    const text = "I'M here,\tthey'RE 1234567 £9 ~x\n\n  naïve 你好 Привет 🦙\u00a0\u3000end  ";
    for (const name of BPE_PRETOKENIZERS) {
      const words = preTokenize(text, name);
      expect(words.join(''), name).toBe(text);
      expect(words.every((w) => w.length > 0), name).toBe(true);
    }
  });

  it('llama3: case-blind contractions, digits in groups of 1 to 3, newlines with their leading whitespace', () => {
    expect(preTokenize("HE'S 1234567 ok\n\n  x", 'llama3')).toEqual(['HE', "'S", ' ', '123', '456', '7', ' ok', '\n\n', ' ', ' x']);
    expect(preTokenize("I'M she'll WE'VE", 'llama-bpe')).toEqual(['I', "'M", ' she', "'ll", ' WE', "'VE"]);
    // One non-letter, non-digit character leads a word; punctuation takes the newlines after it.
    expect(preTokenize('(hello) world!\r\n', 'llama3')).toEqual(['(hello', ')', ' world', '!\r\n']);
  });

  it('qwen2 and tekken: single digits', () => {
    expect(preTokenize('abc 2024', 'qwen2')).toEqual(['abc', ' ', '2', '0', '2', '4']);
    expect(preTokenize('abc 2024', 'tekken')).toEqual(['abc', ' ', '2', '0', '2', '4']);
  });

  it('gpt-4o and tekken split at case changes as llama.cpp does (every non-ASCII letter counts as both cases)', () => {
    expect(preTokenize("camelCase I'M", 'gpt-4o')).toEqual(['camel', 'Case', " I'M"]);
    expect(preTokenize('camelCase ÉCOLEécole', 'tekken')).toEqual(['camel', 'Case', ' ÉCOLEécole']);
  });

  it('deepseek-v3: digits by three, CJK runs apart; ASCII "~" is neither punctuation nor symbol', () => {
    expect(preTokenize('x 12345 你好abc', 'deepseek-v3')).toEqual(['x', ' ', '123', '45', ' ', '你好', 'abc']);
    expect(preTokenize('a ~ b', 'deepseek-v3')).toEqual(['a', ' ', '~', ' b']);
    expect(preTokenize('a ! b', 'deepseek-v3')).toEqual(['a', ' !', ' b']);
  });

  it('deepseek-llm and deepseek-coder: newlines alone, letters, punctuation, CJK, numbers', () => {
    expect(preTokenize('Hi!!\n\n你好 123', 'deepseek-coder')).toEqual(['Hi', '!!', '\n', '\n', '你好', ' ', '1', '2', '3']);
    expect(preTokenize('Hi!!\n\n你好 123', 'deepseek-llm')).toEqual(['Hi', '!!', '\n', '\n', '你好', ' ', '123']);
  });

  it('bloom: words with their leading space, sentence punctuation and whitespace apart', () => {
    expect(preTokenize('Hello, world! (x)', 'bloom')).toEqual(['Hello', ',', ' world', '! (', 'x', ')']);
  });

  it('superbpe cuts digit runs where a multiple of three digits is left', () => {
    expect(preTokenize('a1234567', 'superbpe')).toEqual(['a', '1', '234', '567']);
  });
});

/** A byte-level vocabulary of single characters and a few merges, for unit tests. */
function tinyByteLevel(extra: Partial<BpeVocab>): BpeVocab {
  const tokens = ['a', 'b', 'c', 'bc', 'abc', '<|end|>'];
  const types = Int32Array.from(tokens.map((t) => (t === '<|end|>' ? TokenType.control : TokenType.normal)));
  return { model: 'gpt2', pre: 'gpt-2', tokens, types, merges: ['b c'], bos: 5, eos: 5, addBos: false, addEos: false, ...extra };
}

describe('ignore_merges', () => {
  it('emits a word that is itself a token whole, where merging would not reach it', () => {
    const merging = new BpeTokenizer(tinyByteLevel({}));
    expect(merging.encode('abc')).toEqual([0, 3]); // a + (b c)
    const whole = new BpeTokenizer(tinyByteLevel({ ignoreMerges: true }));
    expect(whole.encode('abc')).toEqual([4]);
    expect(whole.encode('bca')).toEqual([3, 0]); // not a token: merged as usual
    expect(whole.decode(whole.encode('abc'))).toBe('abc');
  });
});

/**
 * A character-level vocabulary in the style of Llama 2's tokenizer.json: "<unk>", "<s>", "</s>",
 * the 256 byte tokens, then characters and merges given as pairs (tokens contain spaces).
 */
function tinyCharLevel(byteFallback: boolean): BpeVocab {
  const tokens = ['<unk>', '<s>', '</s>'];
  for (let b = 0; b < 256; b++) tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
  const pieces = ['a', 'b', 'c', 'd', ' ', '▁', 'h', 'i', 'b ', 'b c', 'b cd', 'ab c', '▁h', '▁hi'];
  tokens.push(...pieces);
  const types = Int32Array.from(tokens.map((_, id) => (id === 0 ? TokenType.unknown : id < 3 ? TokenType.control : id < 259 ? TokenType.byte : TokenType.normal)));
  const merges: [string, string][] = [
    ['a b', 'c'], // never applies; joined with a space it reads like the last rule below
    ['b', ' '],
    ['b ', 'c'],
    ['b c', 'd'],
    ['a', 'b c'],
    ['▁', 'h'],
    ['▁h', 'i'],
  ];
  return { model: 'gpt2', pre: 'default', tokens, types, merges, byteLevel: false, byteFallback, bos: 1, eos: 2, unk: 0, addBos: true, addEos: false };
}

const id = (vocab: BpeVocab, text: string): number => vocab.tokens.indexOf(text);

describe('character-level BPE (byteLevel false)', () => {
  const whole = { split: (text: string) => (text.length > 0 ? [text] : []) };

  it('merges characters by rank, telling pairs apart even when their sides contain spaces', () => {
    const vocab = tinyCharLevel(true);
    const bpe = new BpeTokenizer(vocab, whole);
    // (b " "), (b" " c), then (b" c" d) at rank 3 beats (a, "b c") at rank 4. A table keyed by
    // "left right" strings would take ("a", "b c") for the decoy "a b"+"c" at rank 0 instead.
    expect(bpe.encode('ab cd', { addSpecial: false })).toEqual([id(vocab, 'a'), id(vocab, 'b cd')]);
    expect(bpe.encode('ab c', { addSpecial: false })).toEqual([id(vocab, 'ab c')]);
  });

  it('falls back to <0xXX> byte tokens for characters the vocabulary lacks, or to unk without byte fallback', () => {
    const vocab = tinyCharLevel(true);
    const bpe = new BpeTokenizer(vocab, whole);
    const e = 'é'; // C3 A9
    expect(bpe.encode(`a${e}`, { addSpecial: false })).toEqual([id(vocab, 'a'), 3 + 0xc3, 3 + 0xa9]);
    expect(bpe.encode('🦙', { addSpecial: false })).toEqual([3 + 0xf0, 3 + 0x9f, 3 + 0xa6, 3 + 0x99]);
    const noFallback = new BpeTokenizer(tinyCharLevel(false), whole);
    expect(noFallback.encode(`a${e}b`, { addSpecial: false })).toEqual([id(vocab, 'a'), 0, id(vocab, 'b')]);
  });

  it('normalizes fragments between special tokens and decodes "▁" as a space and byte tokens as bytes', () => {
    const vocab = tinyCharLevel(true);
    const bpe = new BpeTokenizer(vocab, {
      normalize: (text) => '▁' + text.replaceAll(' ', '▁'),
      split: whole.split,
      stripsSpacePrefix: true,
    });
    const ids = bpe.encode('hi é</s>hi', { parseSpecial: true });
    const hi = id(vocab, '▁hi');
    expect(ids).toEqual([1, hi, id(vocab, '▁'), 3 + 0xc3, 3 + 0xa9, 2, hi]);
    expect(bpe.decode(ids)).toBe('hi é hi');
    expect(bpe.decode(bpe.encode('hi héé 🦙 abcd'))).toBe('hi héé 🦙 abcd');
    expect(new TextDecoder().decode(bpe.piece(3 + 0xc3))).toBe('\ufffd');
    expect([...bpe.piece(3 + 0xc3)]).toEqual([0xc3]);
  });
});
