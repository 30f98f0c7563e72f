/** llama2.c legacy checkpoint reader: the real stories260K.bin, variants and corrupted copies. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FormatError } from '../src/errors.js';
import { readGGUF, readTensorData, type GGUFTensorInfo } from '../src/formats/gguf.js';
import { readLlama2c } from '../src/formats/llama2c.js';
import { Xoshiro128 } from '../src/tensor/random.js';

const shared = (p: string) => fileURLToPath(new URL(`../../shared/${p}`, import.meta.url));
const BIN = shared('models/stories260K/stories260K.bin');
const GGUF = shared('models/stories260K/stories260K.gguf');
const BIN_SIZE = 1_056_540;

let tmp: string;
let original: Buffer;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'smallmind-llama2c-'));
  original = fs.readFileSync(BIN);
});
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

function tensorBytes(file: { path: string }, info: GGUFTensorInfo): Buffer {
  const dest = Buffer.alloc(info.byteLength);
  readTensorData(file, info, dest);
  return dest;
}

/** Write a copy of stories260K.bin with its header fields replaced and bytes appended/removed. */
function variant(name: string, header: Partial<Record<number, number>>, tail: { cut?: number; append?: Uint8Array } = {}): string {
  const bytes = Buffer.concat([original.subarray(0, original.length - (tail.cut ?? 0)), tail.append ?? new Uint8Array(0)]);
  for (const [field, value] of Object.entries(header)) bytes.writeInt32LE(value!, Number(field) * 4);
  const p = path.join(tmp, name);
  fs.writeFileSync(p, bytes);
  return p;
}

function formatError(fn: () => unknown): FormatError {
  try {
    fn();
  } catch (err) {
    if (err instanceof FormatError) return err;
    throw err;
  }
  throw new Error('expected a FormatError, but nothing was thrown');
}

describe('readLlama2c', () => {
  it('reads the stories260K header and lays out every weight', () => {
    const f = readLlama2c(BIN);
    expect(f.fileSize).toBe(BIN_SIZE);
    expect(f.config).toEqual({ dim: 64, hiddenDim: 172, nLayers: 5, nHeads: 8, nKvHeads: 4, vocabSize: 512, seqLen: 512, sharedClassifier: true });
    expect(f.tensors).toHaveLength(1 + 5 * 9 + 1);
    expect(f.tensor('output.weight')).toBeUndefined();
    expect(f.tensor('token_embd.weight')).toEqual({
      name: 'token_embd.weight', dims: [64, 512], shape: [512, 64], ggmlType: 0, dtype: 'f32', offset: 28, byteLength: 131_072,
    });
    // rms_att for all layers follows the embedding, then wq for all layers.
    expect(f.tensor('blk.1.attn_norm.weight')!.offset).toBe(28 + 131_072 + 256);
    expect(f.tensor('blk.0.attn_q.weight')!.offset).toBe(28 + 131_072 + 5 * 256);
    expect(f.tensor('blk.0.attn_k.weight')!.shape).toEqual([32, 64]);
    expect(f.tensor('blk.0.ffn_gate.weight')!.shape).toEqual([172, 64]);
    expect(f.tensor('blk.0.ffn_down.weight')!.shape).toEqual([64, 172]);
    // After the final norm come the two freq_cis tables (2 × 512 × 4 floats), then the end of the file.
    const norm = f.tensor('output_norm.weight')!;
    expect(norm.offset + norm.byteLength + 2 * 512 * 4 * 4).toBe(BIN_SIZE);
  });

  it('matches stories260K.gguf tensor for tensor, byte for byte', () => {
    const bin = readLlama2c(BIN);
    const gguf = readGGUF(GGUF);
    for (const t of bin.tensors) {
      const g = gguf.tensor(t.name);
      expect(g, t.name).toBeDefined();
      expect(g!.shape, t.name).toEqual(t.shape);
      expect(tensorBytes(bin, t).equals(tensorBytes(gguf, g!)), t.name).toBe(true);
    }
    // The GGUF has all of these plus its own copy of the classifier, equal to the embedding.
    expect(gguf.tensors.map((t) => t.name).sort()).toEqual([...bin.tensors.map((t) => t.name), 'output.weight'].sort());
    const embd = tensorBytes(bin, bin.tensor('token_embd.weight')!);
    expect(embd.equals(tensorBytes(gguf, gguf.tensor('output.weight')!))).toBe(true);
  });

  it('reads an unshared classifier from the end of the file', () => {
    const wcls = Uint8Array.from({ length: 512 * 64 * 4 }, (_, i) => (i * 7) & 0xff);
    const p = variant('unshared.bin', { 5: -512 }, { append: wcls });
    const f = readLlama2c(p);
    expect(f.config.vocabSize).toBe(512);
    expect(f.config.sharedClassifier).toBe(false);
    const out = f.tensor('output.weight')!;
    expect(out).toMatchObject({ shape: [512, 64], offset: BIN_SIZE, byteLength: wcls.length });
    expect(tensorBytes(f, out).equals(wcls)).toBe(true);
  });

  it('rejects bad headers and wrong sizes with errors that say why', () => {
    const cases: [string, string, RegExp][] = [
      [variant('short.bin', {}, { cut: 4 }), 'truncated', /implies a file of 1056540 bytes, but it has 1056536/],
      [variant('long.bin', {}, { append: new Uint8Array(8) }), 'size_mismatch', /implies a file of 1056540 bytes, but it has 1056548/],
      [variant('wcls-but-shared.bin', {}, { append: new Uint8Array(512 * 64 * 4) }), 'size_mismatch', /fits an unshared classifier, but vocab_size is positive/],
      [variant('no-wcls.bin', { 5: -512 }), 'truncated', /fits a shared classifier, but vocab_size is negative/],
      [variant('dim0.bin', { 0: 0 }), 'bad_header', /dim must be positive/],
      [variant('neg-layers.bin', { 2: -5 }), 'bad_header', /n_layers must be positive/],
      [variant('vocab0.bin', { 5: 0 }), 'bad_header', /vocab_size must be nonzero/],
      [variant('heads7.bin', { 3: 7 }), 'bad_header', /n_heads must divide dim/],
      [variant('kv3.bin', { 4: 3 }), 'bad_header', /n_kv_heads must divide n_heads/],
      [variant('kv16.bin', { 4: 16 }), 'bad_header', /n_kv_heads must divide n_heads/],
      [variant('odd-head.bin', { 0: 72, 3: 8 }), 'bad_header', /head size .* must be even/],
      [variant('many-layers.bin', { 2: 0x7fff_ffff }), 'truncated', /implies a file of \d+ bytes/],
      [variant('absurd.bin', { 0: 1 << 30, 1: 1 << 30, 3: 2, 4: 2 }), 'bad_header', /absurd size/],
      [variant('versioned.bin', { 0: 0x616b3432, 1: 1 }), 'unsupported_version', /llama2.c version 1 export/],
      [GGUF, 'bad_header', /this is a GGUF file/],
      [variant('tiny.bin', {}, { cut: BIN_SIZE - 27 }), 'truncated', /too short for a llama2.c header/],
    ];
    for (const [file, code, message] of cases) {
      const err = formatError(() => readLlama2c(file));
      expect([path.basename(file), err.code]).toEqual([path.basename(file), code]);
      expect(err.message).toMatch(message);
      expect(err.message.startsWith(`${file}: `)).toBe(true);
    }
    expect(formatError(() => readLlama2c(path.join(tmp, 'none.bin'))).code).toBe('cannot_open');
  });
});

/** Uniform numbers in [0, 1) from a fixed seed, so every run fuzzes the same bytes. */
function prng(seed: number): () => number {
  const rng = Xoshiro128.fromSeed(seed);
  return () => rng.nextFloat();
}

/** Read a file as a checkpoint, then every tensor's data: only FormatError may come out. */
function readAllOrFormatError(file: string): 'ok' | string {
  try {
    const f = readLlama2c(file);
    for (const t of f.tensors) {
      if (t.byteLength > f.fileSize) throw new Error(`${t.name}: byteLength ${t.byteLength} exceeds the file`);
      readTensorData(f, t, new Uint8Array(t.byteLength));
    }
    return 'ok';
  } catch (err) {
    if (err instanceof FormatError) return err.code;
    throw err;
  }
}

describe('readLlama2c fuzz', () => {
  it('truncated and corrupted copies read fine or throw FormatError', () => {
    const rssBefore = process.memoryUsage().rss;
    const file = path.join(tmp, 'fuzz.bin');
    const outcomes = new Map<string, number>();
    const count = (o: string) => outcomes.set(o, (outcomes.get(o) ?? 0) + 1);

    // Truncations: every 7th offset in the first 2 KiB and 50 spread over the file, longest first,
    // so one copy can be cut shorter and shorter.
    const cuts = new Set<number>();
    for (let at = 0; at < 2048; at += 7) cuts.add(at);
    for (let i = 0; i < 50; i++) cuts.add(Math.floor(((i + 0.5) / 50) * BIN_SIZE));
    fs.writeFileSync(file, original);
    for (const at of [...cuts].sort((a, b) => b - a)) {
      fs.truncateSync(file, at);
      const outcome = readAllOrFormatError(file);
      expect(outcome, `cut at ${at}`).not.toBe('ok');
      count(outcome);
    }

    // Header corruption: every header byte set to several values, then random 4-byte patches of
    // a header field to random values (including negative and huge ones).
    fs.writeFileSync(file, original);
    const fd = fs.openSync(file, 'r+');
    try {
      const patch = (at: number, bytes: Uint8Array) => {
        fs.writeSync(fd, bytes, 0, bytes.length, at);
        count(readAllOrFormatError(file));
        fs.writeSync(fd, original, at, bytes.length, at); // restore
      };
      for (let at = 0; at < 28; at++) for (const v of [0x00, 0x01, 0x7f, 0x80, 0xff]) patch(at, Uint8Array.of(v));
      const random = prng(42);
      const word = Buffer.alloc(4);
      for (let i = 0; i < 200; i++) {
        word.writeUInt32LE(Math.floor(random() * 2 ** 32));
        patch(4 * Math.floor(random() * 7), word);
      }
      // Flips over the whole file: data bytes carry no structure, so these read fine.
      for (let i = 0; i < 50; i++) patch(28 + Math.floor(random() * (BIN_SIZE - 28)), Uint8Array.of(Math.floor(random() * 256)));
    } finally {
      fs.closeSync(fd);
    }
    expect(readAllOrFormatError(file)).toBe('ok'); // every patch was undone
    expect(outcomes.get('ok')).toBeGreaterThan(50);
    expect(outcomes.get('bad_header')).toBeGreaterThan(10);
    expect(outcomes.get('truncated')).toBeGreaterThan(300);
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(200 * 2 ** 20);
  });
});
