/** GGUF reader and writer on the shared model files, hand-made files, and corrupted copies. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FormatError, ModelError, RequestError } from '../src/errors.js';
import {
  getArray,
  getBool,
  getNumber,
  getOptionalNumber,
  getOptionalString,
  getString,
  getStringArray,
  readGGUF,
  readTensorData,
  typedMetadata,
  type GGUFFile,
  type GGUFTensorInfo,
  type GGUFValue,
} from '../src/formats/gguf.js';
import { writeGGUF, type GGUFWriteTensor, type GGUFWriteValue } from '../src/formats/gguf-writer.js';
import { Xoshiro128 } from '../src/tensor/random.js';

const shared = (p: string) => fileURLToPath(new URL(`../../shared/${p}`, import.meta.url));
const STORIES = shared('models/stories260K/stories260K.gguf');
const VOCAB_SPM = shared('models/llamacpp-vocab/ggml-vocab-llama-spm.gguf');
const TINY_RANDOM = shared('models/llama-2-tiny-random/llama-2-tiny-random.gguf');
const STORIES_Q4 = shared('fixtures/stories260K-q4_0.gguf');
const STORIES_Q8 = shared('fixtures/stories260K-q8_0.gguf');

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'smallmind-gguf-'));
});
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

function tensorBytes(file: { path: string }, info: GGUFTensorInfo): Uint8Array {
  const dest = new Uint8Array(info.byteLength);
  readTensorData(file, info, dest);
  return dest;
}

/** Copy every tensor of a read file into writer input, bytes produced lazily. */
function copyTensors(file: GGUFFile): GGUFWriteTensor[] {
  return file.tensors.map((t) => ({ name: t.name, dtype: t.dtype!, shape: t.shape, data: () => tensorBytes(file, t) }));
}

// toEqual walks big arrays element by element through its generic matcher; these are much faster.
const sameBytes = (a: Uint8Array, b: Uint8Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);

function sameValue(a: GGUFValue, b: GGUFValue): boolean {
  if (ArrayBuffer.isView(a) && ArrayBuffer.isView(b)) {
    return a.constructor === b.constructor && sameBytes(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), new Uint8Array(b.buffer, b.byteOffset, b.byteLength));
  }
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => x === b[i]);
  return a === b;
}

/** The FormatError code a function throws (fails the test on any other outcome). */
function formatErrorCode(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof FormatError) return err.code;
    throw err;
  }
  throw new Error('expected a FormatError, but nothing was thrown');
}

describe('readGGUF on real files', () => {
  it('reads the stories260K header', () => {
    const f = readGGUF(STORIES);
    expect(f.version).toBe(3);
    expect(f.fileSize).toBe(1_185_376);
    expect(f.alignment).toBe(32);
    expect(f.dataOffset).toBe(14_176);
    expect(f.tensors).toHaveLength(48);
    expect(getString(f, 'general.architecture')).toBe('llama');
    expect(getNumber(f, 'llama.context_length')).toBe(2048);
    expect(getNumber(f, 'llama.embedding_length')).toBe(64);
    expect(getNumber(f, 'llama.feed_forward_length')).toBe(172);
    expect(getNumber(f, 'llama.attention.head_count')).toBe(8);
    expect(getNumber(f, 'llama.attention.head_count_kv')).toBe(4);
    expect(getNumber(f, 'llama.block_count')).toBe(5);
    expect(getNumber(f, 'llama.attention.layer_norm_rms_epsilon')).toBe(Math.fround(1e-5));
    expect(getNumber(f, 'tokenizer.ggml.padding_token_id')).toBe(0xffff_ffff);
    expect(f.metadataTypes.get('llama.block_count')).toEqual({ type: 'u32' });
    expect(f.metadataTypes.get('tokenizer.ggml.scores')).toEqual({ type: 'array', itemType: 'f32' });

    const tokens = getStringArray(f, 'tokenizer.ggml.tokens');
    expect(tokens).toHaveLength(512);
    expect(tokens.slice(0, 4)).toEqual(['<unk>', '<s>', '</s>', '<0x00>']);
    expect(tokens.slice(258, 262)).toEqual(['<0xFF>', '▁t', 'he', '▁a']);
    expect(getArray(f, 'tokenizer.ggml.scores')).toBeInstanceOf(Float32Array);
    expect((getArray(f, 'tokenizer.ggml.scores') as Float32Array)[300]).toBe(-41);

    expect(f.tensor('token_embd.weight')).toEqual({
      name: 'token_embd.weight', dims: [64, 512], shape: [512, 64], ggmlType: 0, dtype: 'f32', offset: 14_176, byteLength: 131_072,
    });
    const q = f.tensor('blk.0.attn_q.weight')!;
    expect(q).toMatchObject({ dims: [64, 64], shape: [64, 64], dtype: 'f32', offset: 276_576, byteLength: 16_384 });
    const values = new Float32Array(tensorBytes(f, q).buffer);
    expect(Array.from(values.slice(0, 3))).toEqual([0.04439278692007065, 0.07974770665168762, -0.008925346657633781]);
    const ffnDown = f.tensor('blk.0.ffn_down.weight')!;
    expect(ffnDown.shape).toEqual([64, 172]);
    const last = f.tensors[f.tensors.length - 1]!;
    expect(last.offset + last.byteLength).toBe(f.fileSize);
    expect(f.tensor('no.such.tensor')).toBeUndefined();
  });

  it('reads the 32000-token vocab-only file (no tensors, data offset past the end)', () => {
    const f = readGGUF(VOCAB_SPM);
    expect(f.tensors).toHaveLength(0);
    expect(f.fileSize).toBe(723_869);
    const tokens = getStringArray(f, 'tokenizer.ggml.tokens');
    expect(tokens).toHaveLength(32_000);
    expect([tokens[13], tokens[259], tokens[29871], tokens[31999]]).toEqual(['<0x0A>', '▁▁', '▁', '给']);
    const scores = getArray(f, 'tokenizer.ggml.scores') as Float32Array;
    expect(scores).toBeInstanceOf(Float32Array);
    expect([scores[259], scores[31999]]).toEqual([-1e9, -31740]);
    const types = getArray(f, 'tokenizer.ggml.token_type') as Int32Array;
    expect(types).toBeInstanceOf(Int32Array);
    expect(Array.from(types.slice(0, 4))).toEqual([2, 3, 3, 6]);
    expect(getBool(f, 'tokenizer.ggml.add_bos_token')).toBe(true);
    expect(getBool(f, 'tokenizer.ggml.add_eos_token')).toBe(false);
    expect(getString(f, 'tokenizer.ggml.pre')).toBe('default');
  });

  it('reads F16 and quantized tensor infos', () => {
    const tiny = readGGUF(TINY_RANDOM);
    expect(tiny.tensor('token_embd.weight')).toMatchObject({ dtype: 'f16', ggmlType: 1, shape: [32000, 8], byteLength: 512_000 });
    expect(tiny.tensor('output.weight')!.offset + 512_000).toBe(tiny.fileSize);
    const q4 = readGGUF(STORIES_Q4);
    expect(q4.tensor('output.weight')).toMatchObject({ dtype: 'q4_0', ggmlType: 2, shape: [512, 64], byteLength: 18_432 });
    const q8 = readGGUF(STORIES_Q8);
    expect(q8.tensor('blk.0.attn_q.weight')).toMatchObject({ dtype: 'q8_0', ggmlType: 8, byteLength: 64 * 2 * 34 });
  });

  it('metadata accessors name the file and key', () => {
    const f = readGGUF(STORIES);
    expect(getOptionalNumber(f, 'llama.rope.freq_base')).toBeUndefined();
    expect(getOptionalString(f, 'tokenizer.chat_template')).toBeUndefined();
    expect(() => getNumber(f, 'llama.rope.freq_base')).toThrow(ModelError);
    expect(() => getNumber(f, 'llama.rope.freq_base')).toThrow(`${STORIES}: metadata key "llama.rope.freq_base" is missing`);
    expect(() => getNumber(f, 'general.architecture')).toThrow(/"general.architecture" should be a number, found the string "llama"/);
    expect(() => getString(f, 'llama.block_count')).toThrow(/should be a string, found the number 5/);
    expect(() => getStringArray(f, 'tokenizer.ggml.scores')).toThrow(/should be an array of strings/);
  });

  it('readTensorData checks the destination size', () => {
    const f = readGGUF(STORIES);
    const info = f.tensor('output_norm.weight')!;
    expect(() => readTensorData(f, info, new Uint8Array(255))).toThrow(RequestError);
    const inWasmMemory = new Uint8Array(new WebAssembly.Memory({ initial: 1 }).buffer, 1024, info.byteLength);
    readTensorData(f, info, inWasmMemory);
    expect(new Float32Array(inWasmMemory.slice().buffer)[0]).toBe(2.4583089351654053);
  });

  it('names the file when it cannot be opened', () => {
    const missing = path.join(tmp, 'missing.gguf');
    expect(() => readGGUF(missing)).toThrow(`${missing}: no such file`);
    expect(formatErrorCode(() => readGGUF(tmp))).toBe('cannot_open');
  });
});

describe('writeGGUF', () => {
  it('writes back every shared GGUF byte for byte', () => {
    for (const src of [STORIES, VOCAB_SPM, TINY_RANDOM, STORIES_Q4]) {
      const f = readGGUF(src);
      const out = path.join(tmp, 'copy.gguf');
      writeGGUF(out, typedMetadata(f), copyTensors(f));
      expect(Buffer.compare(fs.readFileSync(out), fs.readFileSync(src))).toBe(0);
      const back = readGGUF(out);
      expect([...back.metadataTypes]).toEqual([...f.metadataTypes]);
      for (const [key, value] of f.metadata) expect(sameValue(back.metadata.get(key)!, value), key).toBe(true);
      for (const t of f.tensors) expect(sameBytes(tensorBytes(back, back.tensor(t.name)!), tensorBytes(f, t)), t.name).toBe(true);
    }
    expect(fs.readdirSync(tmp).filter((n) => n.includes('.tmp-'))).toEqual([]);
  });

  it('round-trips every value type and dtype, with a custom alignment', () => {
    const metadata: [string, GGUFWriteValue][] = [
      ['t.u8', { type: 'u8', value: 255 }],
      ['t.i8', { type: 'i8', value: -128 }],
      ['t.u16', { type: 'u16', value: 65535 }],
      ['t.i16', { type: 'i16', value: -32768 }],
      ['t.u32', { type: 'u32', value: 4_000_000_000 }],
      ['t.i32', { type: 'i32', value: -2_000_000_000 }],
      ['t.f32', { type: 'f32', value: 0.5 }],
      ['t.f64', { type: 'f64', value: Math.PI }],
      ['t.bool', { type: 'bool', value: true }],
      ['t.string', { type: 'string', value: 'héllo ▁ 给 \u{1F600}' }],
      ['t.u64.small', { type: 'u64', value: 2 ** 53 - 1 }],
      ['t.u64.big', { type: 'u64', value: 2n ** 64n - 1n }],
      ['t.i64', { type: 'i64', value: -(2n ** 63n) }],
      ['t.arr.str', { type: 'array', itemType: 'string', value: ['a', '', 'ü'] }],
      ['t.arr.f32', { type: 'array', itemType: 'f32', value: Float32Array.of(1.5, -2) }],
      ['t.arr.i32', { type: 'array', itemType: 'i32', value: [-1, 7] }],
      ['t.arr.u8', { type: 'array', itemType: 'u8', value: Uint8Array.of(1, 2, 3) }],
      ['t.arr.bool', { type: 'array', itemType: 'bool', value: [true, false] }],
      ['t.arr.u64', { type: 'array', itemType: 'u64', value: [1, 2n ** 60n] }],
      ['t.arr.empty', { type: 'array', itemType: 'f64', value: [] }],
    ];
    const bytes = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);
    const tensors: GGUFWriteTensor[] = [
      { name: 'a', dtype: 'f32', shape: [3, 5], data: bytes(60, 1) },
      { name: 'b', dtype: 'f16', shape: [7], data: () => bytes(14, 2) },
      { name: 'c', dtype: 'bf16', shape: [2, 1, 3, 1], data: bytes(12, 3) },
      { name: 'd', dtype: 'q8_0', shape: [2, 64], data: bytes(4 * 34, 4) },
      { name: 'e', dtype: 'q4_0', shape: [32], data: bytes(18, 5) },
    ];
    const out = path.join(tmp, 'all-types.gguf');
    writeGGUF(out, metadata, tensors, { alignment: 64 });
    const f = readGGUF(out);
    expect(f.alignment).toBe(64);
    expect(f.dataOffset % 64).toBe(0);
    expect(f.metadata.get('general.alignment')).toBe(64);
    const read = Object.fromEntries(f.metadata);
    expect(read['t.u32']).toBe(4_000_000_000);
    expect(read['t.f64']).toBe(Math.PI);
    expect(read['t.string']).toBe('héllo ▁ 给 \u{1F600}');
    expect(read['t.u64.small']).toBe(2 ** 53 - 1);
    expect(read['t.u64.big']).toBe(2n ** 64n - 1n);
    expect(read['t.i64']).toBe(-(2n ** 63n));
    expect(read['t.arr.str']).toEqual(['a', '', 'ü']);
    expect(read['t.arr.f32']).toEqual(Float32Array.of(1.5, -2));
    expect(read['t.arr.i32']).toEqual(Int32Array.of(-1, 7));
    expect(read['t.arr.bool']).toEqual([true, false]);
    expect(read['t.arr.u64']).toEqual([1, 2n ** 60n]);
    expect(read['t.arr.empty']).toEqual(new Float64Array(0));
    for (const [key, value] of metadata) expect(f.metadataTypes.get(key)).toEqual(value.type === 'array' ? { type: 'array', itemType: value.itemType } : { type: value.type });

    expect(f.tensors.map((t) => [t.name, t.dtype, t.dims, t.offset % 64])).toEqual([
      ['a', 'f32', [5, 3], 0], ['b', 'f16', [7], 0], ['c', 'bf16', [1, 3, 1, 2], 0], ['d', 'q8_0', [64, 2], 0], ['e', 'q4_0', [32], 0],
    ]);
    tensors.forEach((t, i) => {
      const data = typeof t.data === 'function' ? t.data() : t.data;
      expect(tensorBytes(f, f.tensors[i]!)).toEqual(data);
    });
    // Written again from what was read: the same bytes.
    const again = path.join(tmp, 'all-types-2.gguf');
    writeGGUF(again, typedMetadata(f), copyTensors(f));
    expect(Buffer.compare(fs.readFileSync(again), fs.readFileSync(out))).toBe(0);
  });

  it('copies the 32000-token vocab into a new model file', () => {
    const vocab = readGGUF(TINY_RANDOM);
    const kv = new Map([...typedMetadata(vocab)].filter(([key]) => key.startsWith('tokenizer.ggml.')));
    kv.set('general.architecture', { type: 'string', value: 'llama' });
    const out = path.join(tmp, 'init.gguf');
    writeGGUF(out, kv, [{ name: 'output_norm.weight', dtype: 'f32', shape: [8], data: new Uint8Array(32) }]);
    const f = readGGUF(out);
    expect(getStringArray(f, 'tokenizer.ggml.tokens')).toHaveLength(32_000);
    expect(sameValue(getStringArray(f, 'tokenizer.ggml.tokens'), getStringArray(vocab, 'tokenizer.ggml.tokens'))).toBe(true);
    expect(sameValue(getArray(f, 'tokenizer.ggml.scores'), getArray(vocab, 'tokenizer.ggml.scores'))).toBe(true);
    expect(f.metadataTypes.get('tokenizer.ggml.bos_token_id')).toEqual({ type: 'u32' });
  });

  it('rejects bad input with RequestError and leaves no file behind', () => {
    const out = path.join(tmp, 'bad.gguf');
    const f32 = (shape: number[], n: number): GGUFWriteTensor => ({ name: 'w', dtype: 'f32', shape, data: new Uint8Array(n) });
    const cases: [() => void, RegExp][] = [
      [() => writeGGUF(out, {}, [f32([2, 2], 15)]), /tensor w: shape \[2,2\] f32 needs 16 bytes, got 15/],
      [() => writeGGUF(out, {}, [{ ...f32([4], 16), data: () => new Uint8Array(3) }]), /needs 16 bytes, got 3/],
      [() => writeGGUF(out, {}, [f32([4], 16), f32([4], 16)]), /tensor w: name given twice/],
      [() => writeGGUF(out, {}, [f32([0, 4], 0)]), /positive integer dimensions/],
      [() => writeGGUF(out, {}, [{ name: 'q', dtype: 'q8_0', shape: [16], data: new Uint8Array(17) }]), /not a multiple of the q8_0 block size 32/],
      [() => writeGGUF(out, { k: { type: 'u8', value: 256 } }, []), /metadata k: 256 is not a valid u8/],
      [() => writeGGUF(out, { k: { type: 'i32', value: 1.5 } }, []), /not a valid i32/],
      [() => writeGGUF(out, { k: { type: 'u64', value: -1n } }, []), /not a valid u64/],
      [() => writeGGUF(out, { k: { type: 'string', value: 3 as unknown as string } }, []), /not a valid string/],
      [() => writeGGUF(out, { k: { type: 'array', itemType: 'i8', value: [1, 300] } }, []), /metadata k\[1\]: 300 is not a valid i8/],
      [() => writeGGUF(out, {}, [], { alignment: 48 }), /alignment: 48 is not a power of two/],
    ];
    for (const [write, message] of cases) {
      expect(write).toThrow(RequestError);
      expect(write).toThrow(message);
    }
    expect(fs.existsSync(out)).toBe(false);
    expect(fs.readdirSync(tmp).filter((n) => n.includes('.tmp-'))).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
// Corrupted copies. Every outcome must be a clean read or a FormatError, never a RangeError,
// TypeError or an attempt to allocate what a corrupt count claims.

/** Where a length-prefixed GGUF string (a key or a tensor name) ends in the file's bytes. */
function stringEnd(bytes: Buffer, s: string): number {
  const encoded = Buffer.from(s);
  const at = bytes.indexOf(encoded);
  expect(at, s).toBeGreaterThanOrEqual(8);
  expect(bytes.readBigUInt64LE(at - 8)).toBe(BigInt(encoded.length));
  return at + encoded.length;
}

/** Read the file and every tensor's data; returns 'ok' or the FormatError codes seen. */
function readAllOrFormatError(file: string): string {
  const codes: string[] = [];
  const attempt = (fn: () => void) => {
    try {
      fn();
    } catch (err) {
      if (!(err instanceof FormatError)) throw err;
      codes.push(err.code);
    }
  };
  attempt(() => {
    const f = readGGUF(file);
    for (const t of f.tensors) {
      // readGGUF guarantees this, so the allocation below is bounded by the file size.
      if (t.byteLength > f.fileSize - t.offset) throw new Error(`${t.name} lies outside the file`);
      attempt(() => readTensorData(f, t, new Uint8Array(t.byteLength)));
    }
  });
  return codes.length === 0 ? 'ok' : codes.join(',');
}

/** Uniform numbers in [0, 1) from a fixed seed, so every run fuzzes the same bytes. */
function prng(seed: number): () => number {
  const rng = Xoshiro128.fromSeed(seed);
  return () => rng.nextFloat();
}

/** A scratch copy of a file that can be patched in place and restored. */
class Scratch {
  readonly original: Buffer;
  readonly fd: number;
  constructor(
    readonly file: string,
    source: string,
  ) {
    this.original = fs.readFileSync(source);
    fs.writeFileSync(file, this.original);
    this.fd = fs.openSync(file, 'r+');
  }
  /** Overwrite bytes at `at`, run `fn`, restore. */
  with<T>(at: number, bytes: Uint8Array, fn: () => T): T {
    fs.writeSync(this.fd, bytes, 0, bytes.length, at);
    try {
      return fn();
    } finally {
      fs.writeSync(this.fd, this.original, at, bytes.length, at);
    }
  }
  close(): void {
    fs.closeSync(this.fd);
  }
}

const u32 = (v: number) => Buffer.from(Uint32Array.of(v).buffer);
const u64 = (v: bigint) => Buffer.from(BigUint64Array.of(v).buffer);

describe('readGGUF on corrupted files', () => {
  it('names what is wrong in targeted corruptions', () => {
    const s = new Scratch(path.join(tmp, 'targeted.gguf'), STORIES);
    try {
      const bytes = s.original;
      const code = (at: number, patch: Uint8Array) => s.with(at, patch, () => readAllOrFormatError(s.file));
      const message = (at: number, patch: Uint8Array) => s.with(at, patch, () => {
        try {
          readGGUF(s.file);
        } catch (err) {
          return (err as Error).message;
        }
        return 'ok';
      });
      const tokens = stringEnd(bytes, 'tokenizer.ggml.tokens'); // then value type, item type, count
      const bos = stringEnd(bytes, 'tokenizer.ggml.bos_token_id');
      const q = stringEnd(bytes, 'blk.0.attn_q.weight'); // then n_dims, 2 dims, type, offset
      const [nDims, dim0, dim1, type, offset] = [q, q + 4, q + 12, q + 20, q + 24];
      expect(bytes.readUInt32LE(nDims)).toBe(2);
      expect(bytes.readUInt32LE(type)).toBe(0);

      expect(code(0, Buffer.from('GGUG'))).toBe('bad_magic');
      expect(code(4, u32(1))).toBe('unsupported_version');
      expect(message(4, u32(1))).toMatch(/unsupported GGUF version 1 \(GGUF v1 used 32-bit counts/);
      expect(message(4, u32(0x0300_0000))).toMatch(/big-endian/);
      expect(code(8, u64(2n ** 60n))).toBe('absurd_count');
      expect(message(8, u64(2n ** 60n))).toMatch(/tensor_count is 1152921504606846976, but the \d+ bytes left/);
      expect(code(16, u64(2n ** 60n))).toBe('absurd_count');
      expect(code(16, u64(100_000n))).toBe('absurd_count');
      expect(code(24, u64(2n ** 40n))).toBe('truncated');
      expect(message(24, u64(2n ** 40n))).toMatch(/metadata key #0 at offset 24 claims 1099511627776 bytes/);
      expect(code(tokens, u32(13))).toBe('bad_value_type');
      expect(code(tokens + 4, u32(9))).toBe('bad_value_type');
      expect(code(tokens + 8, u64(2n ** 60n))).toBe('absurd_count');
      expect(code(tokens + 8, u64(2n ** 32n))).toBe('absurd_count');
      expect(code(tokens + 16, u64(2n ** 40n))).toBe('truncated'); // the first token's length
      expect(code(bos - 12, Buffer.from('e'))).toBe('duplicate_key'); // bos_token_id → eos_token_id
      expect(code(q - 8, Buffer.from('k'))).toBe('duplicate_tensor'); // attn_q → attn_k
      expect(code(nDims, u32(99))).toBe('bad_dims');
      expect(code(nDims, u32(0))).toBe('bad_dims');
      expect(code(dim0, u64(0n))).toBe('bad_dims');
      expect(code(dim0, u64(2n ** 50n))).toBe('bad_dims');
      expect(code(dim1, u64(2n ** 40n))).toBe('tensor_out_of_bounds');
      expect(message(dim1, u64(2n ** 40n))).toMatch(/tensor blk.0.attn_q.weight: data \[276576\.\.\d+\) extends past the end of the file \(size 1185376\)/);
      expect(code(offset, u64(2n ** 40n))).toBe('tensor_out_of_bounds');
      expect(code(offset, u64(2n ** 63n))).toBe('tensor_out_of_bounds');
      expect(code(offset, u64(BigInt(1_185_376 - 14_176)))).toBe('tensor_out_of_bounds');
      expect(code(offset, u64(BigInt(bytes.readUInt32LE(offset) + 4)))).toBe('bad_alignment');
      // Types we cannot compute with read fine; only reading their data fails.
      expect(code(type, u32(200))).toBe('unknown_dtype');
      expect(code(type, u32(11))).toBe('unknown_dtype'); // Q3_K
      s.with(type, u32(11), () => {
        const f = readGGUF(s.file);
        const t = f.tensor('blk.0.attn_q.weight')!;
        expect([t.dtype, t.byteLength]).toEqual([undefined, 0]);
        expect(() => readTensorData(f, t, new Uint8Array(0))).toThrow(/tensor blk.0.attn_q.weight has type Q3_K/);
      });
      expect(code(type, u32(12))).toBe('bad_shape'); // Q4_K: rows of 64 do not fill a 256-value super-block
      expect(code(type, u32(1))).toBe('ok'); // f16: half the bytes, still inside the file
      expect(code(dim0, u64(48n))).toBe('ok');
      expect(code(type, u32(2))).toBe('ok'); // q4_0, rows of 64
      s.with(dim0, u64(48n), () => expect(code(type, u32(2))).toBe('bad_shape')); // q4_0 rows of 48
    } finally {
      s.close();
    }
  });

  it('rejects bad alignments and bools', () => {
    const out = path.join(tmp, 'aligned.gguf');
    writeGGUF(out, { 'x.flag': { type: 'bool', value: true } }, [{ name: 'w', dtype: 'f32', shape: [4], data: new Uint8Array(16) }], { alignment: 64 });
    const s = new Scratch(path.join(tmp, 'aligned-patched.gguf'), out);
    try {
      const align = stringEnd(s.original, 'general.alignment') + 4;
      const flag = stringEnd(s.original, 'x.flag') + 4;
      expect(s.original.readUInt32LE(align)).toBe(64);
      const code = (at: number, patch: Uint8Array) => s.with(at, patch, () => readAllOrFormatError(s.file));
      expect(code(align, u32(48))).toBe('bad_alignment');
      expect(code(align, u32(0))).toBe('bad_alignment');
      expect(code(align, u32(32))).toBe('ok'); // still consistent: offset 0 and a header padded to 64
      expect(code(flag, Uint8Array.of(2))).toBe('bad_value');
      expect(code(flag, Uint8Array.of(0))).toBe('ok');
    } finally {
      s.close();
    }
  });

  it('survives truncation and random corruption of real files', () => {
    const rssBefore = process.memoryUsage().rss;
    const outcomes = new Map<string, number>();
    const tally = (o: string) => outcomes.set(o, (outcomes.get(o) ?? 0) + 1);
    const random = prng(7);

    for (const [source, flips] of [[STORIES, 400], [VOCAB_SPM, 80]] as const) {
      const original = fs.readFileSync(source);
      const headerEnd = readGGUF(source).tensors.length > 0 ? readGGUF(source).dataOffset : original.length;

      // Truncations, longest first so one copy is cut shorter and shorter.
      const file = path.join(tmp, `fuzz-${path.basename(source)}`);
      fs.writeFileSync(file, original);
      const cuts = new Set<number>();
      for (let at = 0; at < 2048; at += 7) cuts.add(at);
      for (let i = 0; i < 50; i++) cuts.add(Math.floor(((i + 0.5) / 50) * original.length));
      for (const at of [...cuts].sort((a, b) => b - a)) {
        fs.truncateSync(file, at);
        const outcome = readAllOrFormatError(file);
        expect(outcome, `${source} cut at ${at}`).not.toBe('ok');
        tally(outcome);
      }

      // Overwrites: every byte of the fixed header with a few values, then random header bytes
      // with random values, then random 8-byte words (as if a count or length were corrupt).
      const s = new Scratch(file, source);
      try {
        const patch = (at: number, bytes: Uint8Array) => tally(s.with(at, bytes, () => readAllOrFormatError(s.file)));
        for (let at = 0; at < 48; at++) for (const v of [0x00, 0x07, 0x80, 0xff]) patch(at, Uint8Array.of(v));
        for (let i = 0; i < flips; i++) patch(Math.floor(random() * headerEnd), Uint8Array.of(Math.floor(random() * 256)));
        for (let i = 0; i < flips / 4; i++) {
          const word = u64(BigInt(Math.floor(random() * 2 ** 32)) << BigInt(Math.floor(random() * 32)));
          patch(Math.floor(random() * (headerEnd - 8)), word);
        }
      } finally {
        s.close();
      }
      expect(readAllOrFormatError(file)).toBe('ok'); // every patch was undone
    }
    expect(outcomes.get('ok')).toBeGreaterThan(100);
    expect(outcomes.get('truncated')).toBeGreaterThan(100);
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(200 * 2 ** 20);
  });
});
