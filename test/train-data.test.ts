/**
 * The training data pipeline (src/train/data.ts, char-tokenizer.ts): nanoGPT's character
 * vocabulary and split of tinyshakespeare, the tokenizer.json round trip (our loader and
 * @huggingface/tokenizers), sources and their errors, the token cache, and both samplers
 * including their saved state.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { afterAll, describe, expect, it } from 'vitest';
import { FormatError, RequestError } from '../src/errors.js';
import { writeTokenizerJson } from '../src/formats/tokenizer-json.js';
import { loadTokenizer } from '../src/tokenizers/index.js';
import { CharTokenizer } from '../src/train/char-tokenizer.js';
import {
  BatchSampler,
  FileTokens,
  MemoryTokens,
  listDataFiles,
  loadTrainingTokenizer,
  prepareData,
  readDocuments,
  splitTokens,
  type SamplerOptions,
  type TokenStream,
} from '../src/train/data.js';

const shakespeareFile = fileURLToPath(new URL('../../shared/data/tinyshakespeare/input.txt', import.meta.url));
const shakespeare = fs.readFileSync(shakespeareFile, 'utf8');
const storiesModel = fileURLToPath(new URL('../models/stories260K.gguf', import.meta.url));

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'smallmind-data-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A fresh folder under tmp holding these files (relative path -> text). */
function folder(name: string, files: Record<string, string>): string {
  const dir = path.join(tmp, name);
  for (const [rel, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    fs.writeFileSync(path.join(dir, rel), text);
  }
  return dir;
}

function caught(f: () => unknown): Error {
  try {
    f();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected an error');
}

function all(stream: TokenStream): number[] {
  const out = new Int32Array(stream.length);
  stream.read(0, out);
  return Array.from(out);
}

describe('character tokenizer', () => {
  const tok = CharTokenizer.fromTexts([shakespeare]);

  it("has nanoGPT's shakespeare_char vocabulary: 65 sorted characters", () => {
    expect(tok.vocabSize).toBe(65);
    expect(tok.chars.join('')).toBe("\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz");
    expect(tok.encode('hii there')).toEqual([46, 47, 47, 1, 58, 46, 43, 56, 43]);
    expect(tok.decode(tok.encode('First Citizen:\n'))).toBe('First Citizen:\n');
    expect(tok.endOfGeneration.size).toBe(0);
    const stream = tok.createStreamDecoder();
    expect([20, 47].map((id) => stream.push(id)).join('')).toBe('Hi');
  });

  it('sorts by code point and names unknown characters and bad ids', () => {
    const wide = CharTokenizer.fromTexts(['b😀a\uff5e']);
    expect(wide.chars).toEqual(['a', 'b', '\uff5e', '😀']); // U+1F600 after U+FF5E (UTF-16 order would differ)
    expect(wide.encode('😀a')).toEqual([3, 0]);
    const err = caught(() => tok.encode('hi 😀'));
    expect(err).toBeInstanceOf(RequestError);
    expect(err.message).toBe('text: character U+1F600 "😀" at offset 3 is not in the vocabulary of 65 characters');
    expect(() => tok.decode([65])).toThrow(/token id 65 is outside the vocabulary of 65 characters/);
    expect(() => new CharTokenizer(['b', 'a'])).toThrow(/entry 1 U\+0061 "a" is not after U\+0062 "b"/);
  });

  it('saves as a tokenizer.json that our loader and @huggingface/tokenizers read with the same ids', async () => {
    const file = path.join(tmp, 'char-tokenizer.json');
    writeTokenizerJson(file, tok.toTokenizerJson());
    const sample = shakespeare.slice(0, 2000);
    const ids = tok.encode(sample);
    const ours = loadTokenizer(file);
    expect(ours.encode(sample)).toEqual(ids);
    expect(ours.decode(ids)).toBe(sample);
    const json = JSON.parse(fs.readFileSync(file, 'utf8'));
    const hf = new HfTokenizer(json, {});
    expect(hf.encode(sample).ids).toEqual(ids);
    expect(hf.decode(ids)).toBe(sample);
    // Loading it for training gives the character tokenizer back.
    const back = loadTrainingTokenizer(file);
    expect(back.tokenizer).toBeInstanceOf(CharTokenizer);
    expect((back.tokenizer as CharTokenizer).chars).toEqual(tok.chars);
  });
});

describe('sources', () => {
  it('reads a folder of .txt and .jsonl files recursively, in sorted path order', () => {
    const dir = folder('mixed', {
      'b.txt': 'second',
      'a/z.jsonl': '{"text": "first"}\n\n{"text": "also first", "id": 2}\n',
      'c.md': 'ignored',
      'd.jsonl': '{"text": "last"}',
    });
    const files = listDataFiles(dir);
    expect(files.map((f) => path.relative(dir, f))).toEqual([path.join('a', 'z.jsonl'), 'b.txt', 'd.jsonl']);
    expect(files.flatMap((f) => [...readDocuments(f)])).toEqual(['first', 'also first', 'second', 'last']);
    // A file named directly is read whatever its extension.
    expect(listDataFiles(path.join(dir, 'c.md'))).toEqual([path.join(dir, 'c.md')]);
  });

  it('names the line of a bad JSONL record', () => {
    const dir = folder('bad-jsonl', { 'x.jsonl': '{"text": "ok"}\n{"text": 3}\n', 'y.jsonl': '{"text": "ok"}\n\n{oops\n' });
    const e1 = caught(() => [...readDocuments(path.join(dir, 'x.jsonl'))]);
    expect(e1).toBeInstanceOf(FormatError);
    expect(e1.message).toBe(`${path.join(dir, 'x.jsonl')}: line 2: expected an object with a string field "text"`);
    expect(caught(() => [...readDocuments(path.join(dir, 'y.jsonl'))]).message).toMatch(/y\.jsonl: line 3: not valid JSON/);
  });

  it('fails clearly on a missing path, a folder without data files and an empty dataset', () => {
    const missing = caught(() => listDataFiles(path.join(tmp, 'nope.txt')));
    expect(missing).toBeInstanceOf(FormatError);
    expect(missing.message).toMatch(/nope\.txt: no such file/);
    const empty = folder('no-data', { 'readme.md': 'x' });
    expect(caught(() => listDataFiles(empty)).message).toMatch(/the folder has no \.txt or \.jsonl files/);
    const blank = folder('blank', { 'empty.txt': '' });
    const err = caught(() => prepareData({ data: blank, tokenizer: 'char', cacheDir: path.join(tmp, 'cache-blank') }));
    expect((err as RequestError).code).toBe('empty_dataset');
  });
});

describe('prepareData', () => {
  it("tokenizes tinyshakespeare once, with nanoGPT's split: 1,003,854 train and 111,540 val tokens", () => {
    const cacheDir = path.join(tmp, 'cache-shakespeare');
    const first = prepareData({ data: shakespeareFile, tokenizer: 'char', cacheDir });
    expect(first.reused).toBe(false);
    expect(first.train.length).toBe(1003854);
    expect(first.val.length).toBe(111540);
    expect(fs.statSync(first.cachePath).size).toBe(32 + 2 * shakespeare.length); // uint16 tokens
    const tok = first.tokenizer.tokenizer;
    const head = new Int32Array(13);
    first.train.read(0, head);
    expect(tok.decode(Array.from(head))).toBe('First Citizen');
    const valHead = new Int32Array(20);
    first.val.read(0, valHead);
    expect(tok.decode(Array.from(valHead))).toBe(shakespeare.slice(1003854, 1003874));

    const again = prepareData({ data: shakespeareFile, tokenizer: 'char', cacheDir });
    expect(again.reused).toBe(true);
    expect(again.cachePath).toBe(first.cachePath);
    // The file-backed stream (for corpora too large to hold) reads the same tokens.
    const file = new FileTokens(first.cachePath);
    const window = new Int32Array(100);
    const expected = new Int32Array(100);
    file.read(1003854 - 50, window);
    first.tokens.read(1003854 - 50, expected);
    expect(window).toEqual(expected);
    file.close();
  });

  it('tokenizes again when a source changes, and separates documents', () => {
    const dir = folder('docs', { 'a.txt': 'ab', 'b.jsonl': '{"text": "ba"}\n{"text": "c"}\n' });
    const cacheDir = path.join(tmp, 'cache-docs');
    const before = prepareData({ data: dir, tokenizer: 'char', cacheDir, valFraction: 0 });
    const tok = before.tokenizer.tokenizer;
    expect(tok.decode(all(before.tokens))).toBe('ab\nba\nc');
    expect(before.val.length).toBe(0);
    fs.writeFileSync(path.join(dir, 'a.txt'), 'abc');
    const after = prepareData({ data: dir, tokenizer: 'char', cacheDir, valFraction: 0 });
    expect(after.reused).toBe(false);
    expect(after.cachePath).not.toBe(before.cachePath);
    expect(after.tokenizer.tokenizer.decode(all(after.tokens))).toBe('abc\nba\nc');
  });

  it("puts a loaded tokenizer's EOS between documents", () => {
    const dir = folder('stories', { 'a.jsonl': '{"text": "Once upon a time"}\n{"text": "The end."}\n' });
    const data = prepareData({ data: dir, tokenizer: storiesModel, cacheDir: path.join(tmp, 'cache-stories'), valFraction: 0 });
    const tok = loadTokenizer(storiesModel);
    const opts = { addSpecial: false };
    expect(all(data.tokens)).toEqual([...tok.encode('Once upon a time', opts), tok.eos, ...tok.encode('The end.', opts)]);
    // A GGUF tokenizer is keyed by its tokenizer.* metadata: the same model reuses the cache.
    expect(prepareData({ data: dir, tokenizer: storiesModel, cacheDir: path.join(tmp, 'cache-stories'), valFraction: 0 }).reused).toBe(true);
    const charFile = path.join(tmp, 'abc-tokenizer.json');
    writeTokenizerJson(charFile, new CharTokenizer(['a', 'b', 'c']).toTokenizerJson());
    expect(loadTrainingTokenizer(storiesModel).key).not.toBe(loadTrainingTokenizer(charFile).key);
  });

  it('stores uint32 tokens when the vocabulary needs them', () => {
    const chars: string[] = [];
    for (let cp = 0x100; chars.length < 70000; cp++) if (cp < 0xd800 || cp > 0xdfff) chars.push(String.fromCodePoint(cp));
    const dir = folder('wide', { 'w.txt': chars.join('') });
    const data = prepareData({ data: dir, tokenizer: 'char', cacheDir: path.join(tmp, 'cache-wide'), valFraction: 0.5 });
    expect(fs.statSync(data.cachePath).size).toBe(32 + 4 * 70000);
    const tail = new Int32Array(3);
    data.val.read(data.val.length - 3, tail);
    expect(Array.from(tail)).toEqual([69997, 69998, 69999]);
  });

  it('rejects a damaged cache file', () => {
    const data = prepareData({ data: folder('small', { 's.txt': 'hello world' }), tokenizer: 'char', cacheDir: path.join(tmp, 'cache-small') });
    const bytes = fs.readFileSync(data.cachePath);
    const cut = path.join(tmp, 'cut.bin');
    fs.writeFileSync(cut, bytes.subarray(0, bytes.length - 1));
    expect(() => new FileTokens(cut)).toThrow(/the header says 11 tokens of 2 bytes, the file has 21 bytes of tokens/);
    fs.writeFileSync(cut, Buffer.from('not a cache at all, just text...'));
    expect(() => new FileTokens(cut)).toThrow(/not a token cache/);
  });
});

describe('batch sampler', () => {
  const tokens = new MemoryTokens(Int32Array.from({ length: 1000 }, (_, i) => i));
  const opts: SamplerOptions = { batchSize: 4, blockSize: 8, seed: 7 };

  it('draws random windows (nanoGPT get_batch): targets are inputs shifted by one, deterministic per seed', () => {
    const a = new BatchSampler(tokens, opts);
    const b = new BatchSampler(tokens, opts);
    for (let i = 0; i < 50; i++) {
      const batch = a.next();
      expect(batch).toEqual(b.next());
      for (let row = 0; row < 4; row++) {
        const start = batch.inputs[row * 8];
        expect(start).toBeGreaterThanOrEqual(0);
        expect(start).toBeLessThan(1000 - 8);
        expect(Array.from(batch.inputs.subarray(row * 8, row * 8 + 8))).toEqual(Array.from({ length: 8 }, (_, t) => start + t));
        expect(Array.from(batch.targets.subarray(row * 8, row * 8 + 8))).toEqual(Array.from({ length: 8 }, (_, t) => start + t + 1));
      }
    }
    expect(new BatchSampler(tokens, { ...opts, seed: 8 }).next()).not.toEqual(new BatchSampler(tokens, opts).next());
  });

  it('reaches every start, the last one included', () => {
    const small = new MemoryTokens(Int32Array.from({ length: 12 }, (_, i) => i));
    const sampler = new BatchSampler(small, { batchSize: 1, blockSize: 8, seed: 1 });
    const starts = new Set<number>();
    for (let i = 0; i < 200; i++) starts.add(sampler.next().inputs[0]);
    expect([...starts].sort((x, y) => x - y)).toEqual([0, 1, 2, 3]);
  });

  for (const mode of ['random', 'shuffle'] as const) {
    it(`${mode}: a sampler restored from a saved state continues the same sequence`, () => {
      const straight = new BatchSampler(tokens, { ...opts, mode });
      const interrupted = new BatchSampler(tokens, { ...opts, mode });
      for (let i = 0; i < 40; i++) expect(interrupted.next()).toEqual(straight.next());
      const state = JSON.parse(JSON.stringify(interrupted.getState()));
      const resumed = new BatchSampler(tokens, { ...opts, mode });
      resumed.setState(state);
      for (let i = 0; i < 60; i++) expect(resumed.next()).toEqual(straight.next());
    });
  }

  it('shuffle visits every non-overlapping window once per epoch, in a new order each epoch', () => {
    const sampler = new BatchSampler(tokens, { batchSize: 1, blockSize: 8, seed: 3, mode: 'shuffle' });
    const windows = Math.floor(999 / 8); // 124 windows of 9 tokens starting at multiples of 8
    const epoch = (): number[] => Array.from({ length: windows }, () => sampler.next().inputs[0]);
    const first = epoch();
    const second = epoch();
    const every = Array.from({ length: windows }, (_, i) => i * 8);
    expect([...first].sort((x, y) => x - y)).toEqual(every);
    expect([...second].sort((x, y) => x - y)).toEqual(every);
    expect(second).not.toEqual(first);
    expect(sampler.getState()).toEqual({ mode: 'shuffle', seed: 3, epoch: 1, index: windows });
  });

  it('refuses a split shorter than block_size + 1 and a state of the other mode', () => {
    const { val } = splitTokens(tokens, 0.05);
    expect(val.length).toBe(50);
    const err = caught(() => new BatchSampler(val, { batchSize: 2, blockSize: 64, seed: 1, split: 'val' }));
    expect(err.message).toBe('block_size: the val split has 50 tokens, fewer than block_size + 1 = 65');
    const random = new BatchSampler(tokens, opts);
    expect(() => random.setState({ mode: 'shuffle', seed: 7, epoch: 0, index: 0 })).toThrow(/the saved sampler is 'shuffle', this one 'random'/);
    expect(() => splitTokens(tokens, 1)).toThrow(/val_fraction: must be in \[0, 1\)/);
  });
});
