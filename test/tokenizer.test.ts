import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { FormatError, ModelError } from '../src/errors.js';
import { readGGUF } from '../src/formats/gguf.js';
import { writeGGUF, type GGUFWriteValue } from '../src/formats/gguf-writer.js';
import { readLlama2cTokenizer } from '../src/tokenizers/llama2c.js';
import { SpmTokenizer, TokenType, vocabFromGGUF, type Vocab } from '../src/tokenizers/spm.js';
import { llamaCppCases } from './helpers/vocab.js';

const shared = (p: string): string => fileURLToPath(new URL(`../../shared/${p}`, import.meta.url));

interface Case {
  text: string;
  ids: number[];
  ids_no_bos: number[];
  ids_no_bos_no_parse_special: number[];
}
const fixture = JSON.parse(fs.readFileSync(shared('fixtures/tokenization.json'), 'utf8')) as {
  tokenizers: Record<'llama-spm-32000' | 'stories260K-512', { cases: Case[] }>;
};

const tok512 = new SpmTokenizer(vocabFromGGUF(readGGUF(shared('models/stories260K/stories260K.gguf'))));
const tok32000 = new SpmTokenizer(vocabFromGGUF(readGGUF(shared('models/llama-2-tiny-random/llama-2-tiny-random.gguf'))));
const tok512bin = new SpmTokenizer(readLlama2cTokenizer(shared('models/stories260K/tok512.bin'), 512));
const tok32000bin = new SpmTokenizer(readLlama2cTokenizer(shared('models/llama2c-tokenizer/tokenizer.bin'), 32000));

function checkFixture(tok: SpmTokenizer, cases: Case[]): void {
  expect(cases.length).toBe(35);
  for (const c of cases) {
    expect(tok.encode(c.text, { parseSpecial: true }), JSON.stringify(c.text)).toEqual(c.ids);
    expect(tok.encode(c.text, { addSpecial: false, parseSpecial: true }), JSON.stringify(c.text)).toEqual(c.ids_no_bos);
    expect(tok.encode(c.text, { addSpecial: false }), JSON.stringify(c.text)).toEqual(c.ids_no_bos_no_parse_special);
  }
}

function firstDifference<T>(a: ArrayLike<T>, b: ArrayLike<T>): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

describe('GGUF vocabulary', () => {
  it('matches llama.cpp on the llama-spm-32000 fixture (llama-2-tiny-random.gguf)', () => {
    checkFixture(tok32000, fixture.tokenizers['llama-spm-32000'].cases);
  });

  it('matches llama.cpp on the stories260K-512 fixture (stories260K.gguf)', () => {
    checkFixture(tok512, fixture.tokenizers['stories260K-512'].cases);
  });

  it("passes llama.cpp's own test: ggml-vocab-llama-spm.gguf .inp/.out", () => {
    const base = shared('models/llamacpp-vocab/ggml-vocab-llama-spm.gguf');
    const tok = new SpmTokenizer(vocabFromGGUF(readGGUF(base)));
    const all = llamaCppCases(base);
    expect(all.length).toBe(46);
    expect(all[2].text).toBe('');
    expect(all[3].text).toBe(' ');
    for (const c of all) expect(tok.encode(c.text, { addSpecial: false }), JSON.stringify(c.text)).toEqual(c.ids);
  });

  it('reads the same vocabulary as the llama2.c files, with llama.cpp defaults for absent keys', () => {
    for (const [gguf, bin] of [[tok512, tok512bin], [tok32000, tok32000bin]]) {
      // (Compared by first difference: a deep equal of 32000 strings is slow in vitest.)
      expect(firstDifference(gguf.vocab.tokens, bin.vocab.tokens)).toBe(-1);
      expect(firstDifference(gguf.vocab.scores, bin.vocab.scores)).toBe(-1);
      expect(firstDifference(gguf.vocab.types, bin.vocab.types)).toBe(-1);
      expect([gguf.vocab.bos, gguf.vocab.eos, gguf.vocab.unk, gguf.vocab.addBos, gguf.vocab.addEos, gguf.vocab.addSpacePrefix])
        .toEqual([1, 2, 0, true, false, true]);
    }
    // stories260K.gguf writes padding_token_id 2^32-1, meaning none.
    expect(tok512.vocab.pad).toBeUndefined();
  });

  it('honours add_bos/add_eos/add_space_prefix and rejects other tokenizer models', () => {
    const dir = fs.mkdtempSync(`${fs.realpathSync('/tmp')}/smallmind-tok-`);
    try {
      const tokens = ['<unk>', '<s>', '</s>', '▁', 'a', 'b', '▁a', 'ab'];
      const base: Record<string, GGUFWriteValue> = {
        'general.architecture': { type: 'string', value: 'llama' },
        'tokenizer.ggml.model': { type: 'string', value: 'llama' },
        'tokenizer.ggml.tokens': { type: 'array', itemType: 'string', value: tokens },
        'tokenizer.ggml.scores': { type: 'array', itemType: 'f32', value: Float32Array.of(0, 0, 0, -1, -2, -2, -1.5, -0.5) },
        'tokenizer.ggml.token_type': { type: 'array', itemType: 'i32', value: Int32Array.of(2, 3, 3, 1, 1, 1, 1, 1) },
      };
      const write = (name: string, extra: Record<string, GGUFWriteValue>, drop: string[] = []): string => {
        const file = `${dir}/${name}.gguf`;
        const meta = { ...base, ...extra };
        for (const key of drop) delete meta[key];
        writeGGUF(file, meta, []);
        return file;
      };
      const plain = new SpmTokenizer(vocabFromGGUF(readGGUF(write('plain', {}))));
      // "▁ab": ab (-0.5) beats ▁a (-1.5) even though ▁a is further left.
      expect(plain.encode('ab')).toEqual([1, 3, 7]);
      expect(plain.encode('ab a')).toEqual([1, 3, 7, 6]);
      const flags = new SpmTokenizer(vocabFromGGUF(readGGUF(write('flags', {
        'tokenizer.ggml.add_bos_token': { type: 'bool', value: false },
        'tokenizer.ggml.add_eos_token': { type: 'bool', value: true },
        'tokenizer.ggml.add_space_prefix': { type: 'bool', value: false },
      }))));
      expect(flags.encode('ab a')).toEqual([7, 6, 2]);
      expect(flags.encode('ab', { addSpecial: false })).toEqual([7]);
      expect(flags.decode([4, 7, 6])).toBe('aab a'); // no space prefix: nothing stripped
      const untyped = vocabFromGGUF(readGGUF(write('untyped', {}, ['tokenizer.ggml.token_type', 'tokenizer.ggml.scores'])));
      expect([...untyped.types]).toEqual([1, 1, 1, 1, 1, 1, 1, 1]);
      expect([...untyped.scores]).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);

      const gpt2 = write('gpt2', { 'tokenizer.ggml.model': { type: 'string', value: 'gpt2' } });
      expect(() => vocabFromGGUF(readGGUF(gpt2))).toThrow(ModelError);
      expect(() => vocabFromGGUF(readGGUF(gpt2))).toThrow(/gpt2\.gguf: tokenizer\.ggml\.model "gpt2" is not supported/);
      try {
        vocabFromGGUF(readGGUF(gpt2));
      } catch (err) {
        expect((err as ModelError).code).toBe('unsupported_tokenizer');
      }
      const badBos = write('badbos', { 'tokenizer.ggml.bos_token_id': { type: 'u32', value: 99 } });
      expect(() => vocabFromGGUF(readGGUF(badBos))).toThrow(/badbos\.gguf: bos token id 99 is outside the vocabulary of 8 tokens/);
      const shortScores = write('short', { 'tokenizer.ggml.scores': { type: 'array', itemType: 'f32', value: Float32Array.of(0, 1) } });
      expect(() => vocabFromGGUF(readGGUF(shortScores))).toThrow(/short\.gguf: 2 scores for 8 tokens/);
      expect(() => vocabFromGGUF(readGGUF(write('notokens', {}, ['tokenizer.ggml.tokens'])))).toThrow(/notokens\.gguf: metadata key "tokenizer\.ggml\.tokens" is missing/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('llama2.c tokenizer.bin', () => {
  it('reads tok512.bin: BOS/EOS spelled back, spaces as U+2581, types derived', () => {
    const v = tok512bin.vocab;
    expect(v.tokens.length).toBe(512);
    expect(v.tokens.slice(0, 4)).toEqual(['<unk>', '<s>', '</s>', '<0x00>']);
    expect(v.tokens[410]).toBe('▁');
    expect([...v.types.slice(0, 4)]).toEqual([TokenType.unknown, TokenType.control, TokenType.control, TokenType.byte]);
    expect(v.types[258]).toBe(TokenType.byte);
    expect(v.types[259]).toBe(TokenType.normal);
    expect([v.bos, v.eos, v.unk, v.addBos, v.addEos, v.addSpacePrefix]).toEqual([1, 2, 0, true, false, true]);
  });

  it('matches llama.cpp on the stories260K-512 fixture (tok512.bin)', () => {
    checkFixture(tok512bin, fixture.tokenizers['stories260K-512'].cases);
  });

  it('matches llama.cpp on the llama-spm-32000 fixture (llama2.c tokenizer.bin)', () => {
    checkFixture(tok32000bin, fixture.tokenizers['llama-spm-32000'].cases);
  });

  it('rejects truncated and malformed files with a FormatError naming the file', () => {
    const dir = fs.mkdtempSync(`${fs.realpathSync('/tmp')}/smallmind-tok-`);
    try {
      const good = fs.readFileSync(shared('models/stories260K/tok512.bin'));
      const cut = `${dir}/cut.bin`;
      fs.writeFileSync(cut, good.subarray(0, 3000));
      expect(() => readLlama2cTokenizer(cut, 512)).toThrow(FormatError);
      expect(() => readLlama2cTokenizer(cut, 512)).toThrow(/cut\.bin: ends inside/);
      const badLen = `${dir}/badlen.bin`;
      const copy = Buffer.from(good);
      copy.writeInt32LE(-5, 4 + 4); // token 0's length
      fs.writeFileSync(badLen, copy);
      expect(() => readLlama2cTokenizer(badLen, 512)).toThrow(/badlen\.bin: token 0 has length -5/);
      expect(() => readLlama2cTokenizer(shared('models/stories260K/tok512.bin'), 500)).toThrow(/tok512\.bin: 115 bytes remain after 500 tokens/);
      expect(() => readLlama2cTokenizer(`${dir}/missing.bin`, 512)).toThrow(/missing\.bin: no such file/);
      fs.writeFileSync(`${dir}/tiny.bin`, Buffer.from([1, 0]));
      expect(() => readLlama2cTokenizer(`${dir}/tiny.bin`, 512)).toThrow(FormatError);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('SpmTokenizer', () => {
  it('round-trips every fixture string through decode (leading BOS and the added space removed)', () => {
    for (const tok of [tok512bin, tok32000bin]) {
      for (const c of fixture.tokenizers['llama-spm-32000'].cases) {
        // Special parsing off: "<s>" in the text stays text, so the round trip is exact.
        expect(tok.decode(tok.encode(c.text, { parseSpecial: false }))).toBe(c.text);
        expect(tok.decode(tok.encode(c.text, { addSpecial: false }))).toBe(c.text);
      }
    }
  });

  it('keeps a leading U+FEFF (a token of the 32000 vocabulary) and treats lone surrogates as U+FFFD', () => {
    const bom = tok32000.vocab.tokens.indexOf('\ufeff');
    expect(bom).toBeGreaterThan(0);
    expect(tok32000.encode('\ufeffhi', { addSpecial: false })).toEqual([29871, bom, 2918]);
    expect(tok32000.decode([1, bom, 2918])).toBe('\ufeffhi');
    expect(tok32000.encode('a\ud800b')).toEqual(tok32000.encode('a\ufffdb'));
  });

  it('decodes special tokens as nothing, or as their text on request', () => {
    const ids = fixture.tokenizers['llama-spm-32000'].cases.find((c) => c.text === 'Hello <s> world </s>')!.ids;
    expect(tok32000bin.decode(ids)).toBe('Hello   world ');
    expect(tok32000bin.decode(ids, { skipSpecial: false })).toBe('<s>Hello <s>  world </s>');
  });

  it('gives the bytes of each piece', () => {
    expect(Buffer.from(tok32000bin.piece(15043)).toString()).toBe(' Hello');
    expect([...tok32000bin.piece(1)]).toEqual([]); // <s>
    expect([...tok32000bin.piece(0)]).toEqual([]); // <unk>
    expect([...tok32000bin.piece(3 + 0xf0)]).toEqual([0xf0]); // <0xF0>
    expect(() => tok32000bin.piece(32000)).toThrow(/token id 32000 is outside the vocabulary/);
  });

  it('streams text only when a character is complete', () => {
    // "😀 smile" with 512 tokens: ▁, four byte tokens for the emoji, then ▁s m il e.
    const ids = tok512bin.encode('😀 smile', { addSpecial: false });
    expect(ids).toEqual([410, 243, 162, 155, 131, 262, 423, 290, 411]);
    const stream = tok512bin.createStreamDecoder();
    expect(ids.map((id) => stream.push(id))).toEqual([' ', '', '', '', '😀', ' s', 'm', 'il', 'e']);
    expect(stream.flush()).toBe('');
    // An unfinished character at the end comes out as U+FFFD on flush.
    const cut = tok512bin.createStreamDecoder();
    expect([243, 162].map((id) => cut.push(id))).toEqual(['', '']);
    expect(cut.flush()).toBe('\ufffd');
  });

  it('encodes the perplexity texts (20 KB of Shakespeare, a story) exactly as llama.cpp did', () => {
    const perplexity = JSON.parse(fs.readFileSync(shared('fixtures/perplexity.json'), 'utf8')) as {
      texts: Record<string, { file: string; tokens: Record<string, { ids: number[] }> }>;
    };
    for (const entry of Object.values(perplexity.texts)) {
      const text = fs.readFileSync(shared(`fixtures/${entry.file}`), 'utf8');
      for (const [name, tok] of [['llama-spm-32000', tok32000bin], ['stories260K-512', tok512bin]] as const) {
        const ids = tok.encode(text, { parseSpecial: false });
        expect(ids, `${entry.file} ${name}`).toEqual(entry.tokens[name].ids);
        expect(tok.decode(ids)).toBe(text);
      }
    }
  });

  it('rejects an inconsistent vocabulary', () => {
    const v: Vocab = { ...tok512bin.vocab, bos: 600 };
    expect(() => new SpmTokenizer(v)).toThrow(ModelError);
    expect(() => new SpmTokenizer({ ...tok512bin.vocab, scores: new Float32Array(3) })).toThrow(/3 scores for 512 tokens/);
  });
});
