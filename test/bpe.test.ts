import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ModelError } from '../src/errors.js';
import { readGGUF, typedMetadata } from '../src/formats/gguf.js';
import { writeGGUF } from '../src/formats/gguf-writer.js';
import { BpeTokenizer, bpeVocabFromGGUF, preTokenize } from '../src/tokenizers/bpe.js';
import { TokenType } from '../src/tokenizers/vocab.js';

const shared = (p: string): string => fileURLToPath(new URL(`../../shared/${p}`, import.meta.url));
const base = shared('models/llamacpp-vocab/ggml-vocab-gpt-2.gguf');
const file = readGGUF(base);
const tok = new BpeTokenizer(bpeVocabFromGGUF(file));

// Each input is followed by "\n__ggml_vocab_test__\n"; the last split piece is the empty tail.
const inputs = fs.readFileSync(`${base}.inp`, 'utf8').split('\n__ggml_vocab_test__\n');
inputs.pop();
// One line per input: the ids without BOS, each preceded by a space; the file ends with a newline.
const lines = fs.readFileSync(`${base}.out`, 'utf8').split('\n');
lines.pop();

describe('byte-level BPE (gpt2)', () => {
  it('reads the vocabulary', () => {
    const v = tok.vocab;
    expect(v.model).toBe('gpt2');
    expect(v.pre).toBe('gpt-2');
    expect(v.tokens.length).toBe(50257);
    expect(v.merges.length).toBe(50000);
    expect(v.addBos).toBe(false);
    expect(v.tokens[v.eos]).toBe('<|endoftext|>');
  });

  it("passes llama.cpp's own test: ggml-vocab-gpt-2.gguf .inp/.out", () => {
    expect(inputs.length).toBe(46);
    expect(lines.length).toBe(46);
    let passed = 0;
    for (let i = 0; i < inputs.length; i++) {
      const want = lines[i].trim() === '' ? [] : lines[i].trim().split(' ').map(Number);
      expect(tok.encode(inputs[i]), JSON.stringify(inputs[i])).toEqual(want);
      passed++;
    }
    expect(passed).toBe(46);
  });

  it('round-trips every test string through encode and decode', () => {
    for (const s of inputs) expect(tok.decode(tok.encode(s)), JSON.stringify(s)).toBe(s);
    expect(tok.decode(tok.encode('lone \ud800 surrogate'))).toBe('lone \ufffd surrogate');
  });

  it('splits words like the GPT-2 regex, keeping one space for the next word', () => {
    expect(preTokenize("Hello   world's 123!!\n\n  x  ", 'gpt-2')).toEqual(
      ['Hello', '  ', ' world', "'s", ' 123', '!!', '\n\n ', ' x', '  '],
    );
    expect(preTokenize('', 'gpt-2')).toEqual([]);
    // llama.cpp's whitespace (Python's isspace) includes U+0085 and not U+FEFF.
    expect(preTokenize('a\u0085b\ufeffc', 'gpt-2')).toEqual(['a', '\u0085', 'b', '\ufeff', 'c']);
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

  it('rejects an unsupported pre-tokenizer, naming the file and the value', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'smallmind-bpe-'));
    try {
      const out = path.join(dir, 'bad-pre.gguf');
      const meta = typedMetadata(file);
      meta.set('tokenizer.ggml.pre', { type: 'string', value: 'llama-bpe' });
      writeGGUF(out, meta, []);
      const bad = readGGUF(out);
      let err: unknown;
      try {
        bpeVocabFromGGUF(bad);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ModelError);
      expect((err as ModelError).code).toBe('unsupported_pretokenizer');
      expect((err as ModelError).message).toContain(out);
      expect((err as ModelError).message).toContain('llama-bpe');

      const spm = path.join(dir, 'spm.gguf');
      meta.set('tokenizer.ggml.model', { type: 'string', value: 'llama' });
      writeGGUF(spm, meta, []);
      expect(() => bpeVocabFromGGUF(readGGUF(spm))).toThrow(/tokenizer.ggml.model "llama"/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
