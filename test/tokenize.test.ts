/**
 * loadTokenizer on GGUF vocab files (SPM and byte-level BPE) and llama2.c tokenizer.bin, and the
 * `smallmind tokenize` command run in-process.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ModelError } from '../src/errors.js';
import { readGGUF, typedMetadata } from '../src/formats/gguf.js';
import { writeGGUF } from '../src/formats/gguf-writer.js';
import { DEFAULT_MODEL_PATH } from '../src/model.js';
import { loadTokenizer } from '../src/tokenizers/index.js';
import { run } from './helpers/cli.js';
import { llamaCppCases } from './helpers/vocab.js';

const shared = (p: string): string => fileURLToPath(new URL(`../../shared/${p}`, import.meta.url));
const vocabFile = (name: string): string => shared(`models/llamacpp-vocab/ggml-vocab-${name}.gguf`);
const tok512 = shared('models/stories260K/tok512.bin');

/** A vocab file whose tokenizer.ggml.model ("t5") we do not support: bert-bge's, renamed. */
function unsupportedVocab(): string {
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'smallmind-t5-')), 'ggml-vocab-t5.gguf');
  const meta = typedMetadata(readGGUF(vocabFile('bert-bge')));
  meta.set('tokenizer.ggml.model', { type: 'string', value: 't5' });
  writeGGUF(out, meta, []);
  return out;
}



describe('loadTokenizer', () => {
  it('reads a SentencePiece vocab-only GGUF and passes the first llama.cpp test cases', () => {
    const base = vocabFile('llama-spm');
    const tok = loadTokenizer(base);
    expect(tok.model).toBe('llama');
    expect(tok.vocabSize).toBe(32000);
    expect([tok.bos, tok.eos]).toEqual([1, 2]);
    const all = llamaCppCases(base);
    expect(all.length).toBe(46);
    for (const c of all.slice(0, 12)) expect(tok.encode(c.text, { addSpecial: false, parseSpecial: true }), JSON.stringify(c.text)).toEqual(c.ids);
    expect(tok.encode('Hello world')[0]).toBe(1); // the vocabulary adds BOS
  });

  it('reads a gpt2 vocab-only GGUF as byte-level BPE and passes the first llama.cpp test cases', () => {
    const base = vocabFile('gpt-2');
    const tok = loadTokenizer(base);
    expect(tok.model).toBe('gpt2');
    expect(tok.vocabSize).toBe(50257);
    const all = llamaCppCases(base);
    expect(all.length).toBe(46);
    for (const c of all.slice(0, 12)) expect(tok.encode(c.text), JSON.stringify(c.text)).toEqual(c.ids);
    const ids = tok.encode('Hello world');
    expect(tok.decode(ids)).toBe('Hello world');
  });

  it('reads a llama2.c tokenizer.bin, with or without the vocab size, like the same vocabulary in GGUF', () => {
    const gguf = loadTokenizer(DEFAULT_MODEL_PATH);
    const want = gguf.encode('Once upon a time');
    expect(want).toEqual([1, 403, 407, 261, 378]);
    const bin = loadTokenizer(tok512, { vocabSize: 512 });
    expect(bin.vocabSize).toBe(512);
    expect(bin.encode('Once upon a time')).toEqual(want);
    const inferred = loadTokenizer(tok512);
    expect(inferred.vocabSize).toBe(512);
    expect(inferred.encode('Once upon a time')).toEqual(want);
    expect(inferred.decode(want)).toBe('Once upon a time');
  });

  it('rejects a wrong vocab size for tokenizer.bin', () => {
    expect(() => loadTokenizer(tok512, { vocabSize: 256 })).toThrow(/vocabulary/);
    expect(() => loadTokenizer(tok512, { vocabSize: 1000 })).toThrow(/truncated|ends inside/);
  });

  it('rejects an unsupported tokenizer model, naming file and model', () => {
    const file = unsupportedVocab();
    let err: unknown;
    try {
      loadTokenizer(file);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ModelError);
    expect((err as ModelError).code).toBe('unsupported_tokenizer');
    expect((err as ModelError).message).toContain('t5');
    expect((err as ModelError).message).toContain(file);
  });

  it('reports a missing file as cannot_open', () => {
    expect(() => loadTokenizer('/nonexistent/tok.bin')).toThrow(expect.objectContaining({ code: 'cannot_open' }));
  });
});

describe('smallmind tokenize', () => {
  it('--json gives ids and pieces from the embedded model', async () => {
    const r = await run(['tokenize', '--json', 'Once upon a time']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.ids).toEqual([1, 403, 407, 261, 378]);
    expect(out.pieces.length).toBe(5);
    expect(out.pieces[0]).toBe('<s>');
    expect(out.pieces.slice(1).join('')).toBe(' Once upon a time');
  });

  it('--ids prints a list; --no-bos leaves BOS out', async () => {
    expect((await run(['tokenize', '--ids', 'Once upon a time'])).stdout).toBe('[1, 403, 407, 261, 378]\n');
    expect((await run(['tokenize', '--ids', '--no-bos', 'Once upon a time'])).stdout).toBe('[403, 407, 261, 378]\n');
  });

  it('prints one line per token like llama-tokenize by default', async () => {
    const r = await run(['tokenize', 'Once upon a time']);
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines.pop()).toBe('');
    expect(lines.length).toBe(5);
    expect(lines[0]).toBe("     1 -> '<s>'");
    for (const line of lines) expect(line).toMatch(/^ *\d+ -> '.*'$/);
  });

  it('reads the text from stdin when none is given', async () => {
    expect((await run(['tokenize', '--ids'], 'Once upon a time\n')).stdout).toBe('[1, 403, 407, 261, 378]\n');
  });

  it('--parse-special decides whether "<s>" in the text is BOS (default: plain text)', async () => {
    const special = JSON.parse((await run(['tokenize', '--json', '--no-bos', '--parse-special', '<s>'])).stdout).ids;
    expect(special).toEqual([1]);
    const plain = JSON.parse((await run(['tokenize', '--json', '--no-bos', '<s>'])).stdout).ids;
    expect(plain).not.toContain(1);
    expect(plain.length).toBeGreaterThan(1);
  });

  it('--tokenizer takes a vocab file alone, GGUF or tokenizer.bin', async () => {
    expect((await run(['tokenize', '--ids', '--tokenizer', tok512, 'Once upon a time'])).stdout).toBe('[1, 403, 407, 261, 378]\n');
    expect((await run(['tokenize', '--ids', '--tokenizer', vocabFile('gpt-2'), 'Hello world'])).stdout).toBe('[15496, 995]\n');
  });

  it('-m takes a llama2.c checkpoint and finds its tokenizer.bin beside it', async () => {
    const r = await run(['tokenize', '--ids', '-m', shared('models/stories260K/stories260K.bin'), 'Once upon a time']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('[1, 403, 407, 261, 378]\n');
  });

  it('reports an unsupported tokenizer as a JSON error with exit status 1', async () => {
    const r = await run(['tokenize', '--json', '--tokenizer', unsupportedVocab(), 'hi']);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout).error.code).toBe('unsupported_tokenizer');
  });
});

describe('smallmind tokenizer export', () => {
  it('writes a GGUF vocabulary as tokenizer.json + tokenizer_config.json that tokenizes the same', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'smallmind-export-'));
    try {
      for (const name of ['gpt-2', 'llama-spm']) {
        const out = path.join(dir, name);
        const r = await run(['tokenizer', 'export', vocabFile(name), '-o', out, '--json']);
        expect(r.code).toBe(0);
        expect(JSON.parse(r.stdout)).toMatchObject({ files: [path.join(out, 'tokenizer.json'), path.join(out, 'tokenizer_config.json')], chatTemplate: false });
        const text = "Hello world, it's 2026! Ünïcödé 😀";
        const fromGGUF = JSON.parse((await run(['tokenize', '--tokenizer', vocabFile(name), '--json', text])).stdout).ids;
        const fromJson = JSON.parse((await run(['tokenize', '--tokenizer', out, '--json', text])).stdout).ids;
        expect(fromJson).toEqual(fromGGUF);
      }
      const bad = await run(['tokenizer', 'export', path.join(dir, 'missing.gguf'), '-o', path.join(dir, 'x')]);
      expect(bad.code).not.toBe(0);
      expect(bad.stderr).toMatch(/missing\.gguf/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
