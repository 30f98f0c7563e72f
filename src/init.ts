/**
 * Random-weight Llama and GPT-2 models of real shapes, written as GGUF: for benchmarks and tests that need
 * a model of a given size but not a trained one.
 *
 * Weights (and GPT-2's biases) are normal(0, 0.02) from a seeded PRNG (each tensor seeded from
 * the seed and its name, so a tensor's values do not depend on which other tensors the file
 * holds); norms are 1.0. The
 * tokenizer is the 32000-token Llama SentencePiece vocabulary copied from a GGUF file; shapes with
 * a larger vocabulary pad it with unused "<extra_N>" tokens so the tensor shapes stay real.
 *
 * Tensors are produced one at a time when the writer reaches them, so memory holds one tensor
 * (the largest, token_embd of llama-1b in f32, is 1 GB), never the whole model.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { RequestError } from './errors.js';
import { readGGUF, typedValue, type GGUFTypedValue } from './formats/gguf.js';
import { writeGGUF, type GGUFWriteTensor } from './formats/gguf-writer.js';
import { byteSize, DTYPES, type DType } from './tensor/dtype.js';
import { encodeValues, GGUF_FILE_TYPE } from './tensor/quant.js';
import { NormalSource } from './tensor/random.js';
import type { Gpt2Config } from './models/gpt2.js';
import { tensorShapes, type ArchConfig } from './models/index.js';
import type { LlamaConfig } from './models/llama.js';

/** Hyper-parameters of the shapes `init` knows, from the published models. */
export const INIT_SHAPES = {
  stories15M: { dim: 288, ffn: 768, layers: 6, heads: 6, kvHeads: 6, vocab: 32000, ctx: 256, ropeTheta: 10000 },
  stories110M: { dim: 768, ffn: 2048, layers: 12, heads: 12, kvHeads: 12, vocab: 32000, ctx: 1024, ropeTheta: 10000 },
  'smollm-135m': { dim: 576, ffn: 1536, layers: 30, heads: 9, kvHeads: 3, vocab: 49152, ctx: 2048, ropeTheta: 10000 },
  // Llama-3.2-1B trains to 131072 positions; 8192 keeps default KV caches of sane size.
  'llama-1b': { dim: 2048, ffn: 8192, layers: 16, heads: 32, kvHeads: 8, vocab: 128256, ctx: 8192, ropeTheta: 500000 },
} as const;

/** GPT-2 shapes (GPT-2's own 50257-token byte-level BPE vocabulary by default). */
export const GPT2_INIT_SHAPES = {
  'gpt2-tiny': { dim: 64, ffn: 256, layers: 2, heads: 4, vocab: 50257, ctx: 128 },
  gpt2: { dim: 768, ffn: 3072, layers: 12, heads: 12, vocab: 50257, ctx: 1024 },
} as const;

/** Every shape `init` writes, Llama and GPT-2. */
export const ALL_INIT_SHAPES: readonly string[] = [...Object.keys(INIT_SHAPES), ...Object.keys(GPT2_INIT_SHAPES)];

export type InitShape = keyof typeof INIT_SHAPES | keyof typeof GPT2_INIT_SHAPES;
export type InitDType = 'f32' | 'f16' | 'q8_0' | 'q4_0';
export const INIT_DTYPES: readonly InitDType[] = ['f32', 'f16', 'q8_0', 'q4_0'];

/** The Llama vocabulary `init` copies: llama-2-tiny-random from the shared data beside the repo. */
export const DEFAULT_VOCAB_PATH = fileURLToPath(
  new URL('../../shared/models/llama-2-tiny-random/llama-2-tiny-random.gguf', import.meta.url),
);
/** The GPT-2 vocabulary `init` copies for GPT-2 shapes: llama.cpp's ggml-vocab-gpt-2.gguf. */
export const DEFAULT_GPT2_VOCAB_PATH = fileURLToPath(new URL('../../shared/models/llamacpp-vocab/ggml-vocab-gpt-2.gguf', import.meta.url));

export interface InitOptions {
  shape: InitShape;
  dtype: InitDType;
  /** Output .gguf path (written atomically). */
  output: string;
  seed?: number;
  /** A GGUF file whose tokenizer.ggml.* metadata (a 'llama' SPM vocabulary) is copied. */
  vocab?: string;
  /** Fewer (or more) layers than the shape has: small files of real widths for tests. */
  layers?: number;
  /**
   * Standard deviation of the weights (default 0.02). Test fixtures use larger ones: at 0.02 the
   * residual stream is mostly the token embedding and a tied model just repeats its input.
   */
  std?: number;
  onProgress?: (writtenBytes: number, totalBytes: number) => void;
}

export interface InitResult {
  path: string;
  config: LlamaConfig | Gpt2Config;
  architecture: ArchConfig['architecture'];
  tensorCount: number;
  parameterCount: number;
  /** Bytes of tensor data (the file adds the header and padding). */
  dataBytes: number;
}

/** llama.cpp's llama_ftype for general.file_type: the type most weights have. */

const STD = 0.02;

/** The architecture and hyper-parameters of a shape (`layers` overrides its layer count). */
export function initArchConfig(shape: InitShape, layers?: number): ArchConfig {
  if (!Object.hasOwn(GPT2_INIT_SHAPES, shape)) return { architecture: 'llama', config: initConfig(shape as keyof typeof INIT_SHAPES, layers) };
  checkLayers(layers);
  const s = GPT2_INIT_SHAPES[shape as keyof typeof GPT2_INIT_SHAPES];
  const config: Gpt2Config = {
    context_length: s.ctx,
    embedding_length: s.dim,
    block_count: layers ?? s.layers,
    feed_forward_length: s.ffn,
    head_count: s.heads,
    layer_norm_epsilon: 1e-5,
    vocab_size: s.vocab,
  };
  return { architecture: 'gpt2', config };
}

function checkLayers(layers: number | undefined): void {
  if (layers !== undefined && (!Number.isInteger(layers) || layers < 1 || layers > 1024)) {
    throw new RequestError('invalid_layers', 'layers', `must be an integer in 1..1024, got ${layers}`);
  }
}

/** The hyper-parameters of a Llama shape. */
export function initConfig(shape: keyof typeof INIT_SHAPES, layers?: number): LlamaConfig {
  const s = INIT_SHAPES[shape];
  if (!s) throw new RequestError('unknown_shape', 'shape', `unknown shape '${String(shape)}' (known: ${ALL_INIT_SHAPES.join(', ')})`);
  checkLayers(layers);
  return {
    context_length: s.ctx,
    embedding_length: s.dim,
    block_count: layers ?? s.layers,
    feed_forward_length: s.ffn,
    head_count: s.heads,
    head_count_kv: s.kvHeads,
    rope_dimension_count: s.dim / s.heads,
    rope_freq_base: s.ropeTheta,
    layer_norm_rms_epsilon: 1e-5,
    vocab_size: s.vocab,
  };
}

/** Write a random-weight model; returns what was written. */
export function initModel(opts: InitOptions): InitResult {
  const { dtype } = opts;
  if (!INIT_DTYPES.includes(dtype)) {
    throw new RequestError('invalid_dtype', 'dtype', `must be one of ${INIT_DTYPES.join(', ')}, got '${String(dtype)}'`);
  }
  const seed = opts.seed ?? 0;
  if (!Number.isSafeInteger(seed) || seed < 0) throw new RequestError('invalid_seed', 'seed', `must be a non-negative integer, got ${seed}`);
  const std = opts.std ?? STD;
  if (!(std > 0 && std <= 10)) throw new RequestError('invalid_std', 'std', `must be in (0, 10], got ${std}`);
  const arch = initArchConfig(opts.shape, opts.layers);
  const { config } = arch;
  const outDir = path.dirname(path.resolve(opts.output));
  if (!fs.existsSync(outDir)) throw new RequestError('no_such_directory', 'output', `directory ${outDir} does not exist`);

  const defaultVocab = arch.architecture === 'gpt2' ? DEFAULT_GPT2_VOCAB_PATH : DEFAULT_VOCAB_PATH;
  const metadata = new Map<string, GGUFTypedValue>([
    ['general.architecture', { type: 'string', value: arch.architecture }],
    ['general.name', { type: 'string', value: `${opts.shape} (random init, seed ${seed})` }],
    ['general.file_type', { type: 'u32', value: GGUF_FILE_TYPE[dtype] }],
    ...archMetadata(arch),
    ...vocabMetadata(opts.vocab ?? defaultVocab, config.vocab_size, opts.vocab === undefined),
  ]);

  // Tied classifier: no output.weight, as the real models.
  const shapes = [...tensorShapes(arch)].filter(([name]) => name !== 'output.weight');
  const specs = shapes.map(([name, shape]) => {
    const type: DType = shape.length === 1 ? 'f32' : dtype; // norms stay f32
    const count = shape.reduce((a, b) => a * b, 1);
    if (count % DTYPES[type].blockSize !== 0 || shape[shape.length - 1]! % DTYPES[type].blockSize !== 0) {
      throw new RequestError('invalid_dtype', 'dtype', `${name} rows of ${shape[shape.length - 1]} values cannot be split into ${type} blocks`);
    }
    return { name, shape, dtype: type, bytes: byteSize(type, count) };
  });
  const totalBytes = specs.reduce((sum, s) => sum + s.bytes, 0);

  let written = 0;
  const tensors: GGUFWriteTensor[] = specs.map((spec) => ({
    name: spec.name,
    dtype: spec.dtype,
    shape: spec.shape,
    data: () => {
      const base = written;
      const bytes = spec.shape.length === 1 && !spec.name.endsWith('.bias')
        ? encodeOnes(spec.bytes)
        : randomTensor(spec.dtype, spec.shape, tensorSeed(seed, spec.name), (done) => opts.onProgress?.(base + done, totalBytes), std);
      written += spec.bytes;
      opts.onProgress?.(written, totalBytes);
      return bytes;
    },
  }));
  writeGGUF(opts.output, metadata, tensors);
  opts.onProgress?.(totalBytes, totalBytes);

  return {
    path: opts.output,
    config,
    architecture: arch.architecture,
    tensorCount: specs.length,
    parameterCount: specs.reduce((sum, s) => sum + s.shape.reduce((a, b) => a * b, 1), 0),
    dataBytes: totalBytes,
  };
}

/** The `<arch>.*` hyper-parameter keys, as llama.cpp's converters write them. */
export function archMetadata(arch: ArchConfig): [string, GGUFTypedValue][] {
  const u32 = (key: string, value: number): [string, GGUFTypedValue] => [`${arch.architecture}.${key}`, { type: 'u32', value }];
  const f32 = (key: string, value: number): [string, GGUFTypedValue] => [`${arch.architecture}.${key}`, { type: 'f32', value }];
  const c = arch.config;
  const common = [
    u32('context_length', c.context_length),
    u32('embedding_length', c.embedding_length),
    u32('block_count', c.block_count),
    u32('feed_forward_length', c.feed_forward_length),
    u32('attention.head_count', c.head_count),
  ];
  if (arch.architecture === 'gpt2') return [...common, f32('attention.layer_norm_epsilon', arch.config.layer_norm_epsilon)];
  const l = arch.config;
  return [
    ...common,
    u32('attention.head_count_kv', l.head_count_kv),
    u32('rope.dimension_count', l.rope_dimension_count),
    f32('rope.freq_base', l.rope_freq_base),
    f32('attention.layer_norm_rms_epsilon', l.layer_norm_rms_epsilon),
  ];
}

/**
 * The tokenizer.ggml.* keys of a GGUF file with a 'llama' or 'gpt2' vocabulary, padded to `vocabSize`
 * tokens with unused "<extra_N>" tokens (type 5, score 0).
 */
function vocabMetadata(file: string, vocabSize: number, isDefault: boolean): [string, GGUFTypedValue][] {
  if (!fs.existsSync(file)) {
    const why = isDefault ? `the default vocabulary ${file} is not there (it ships with the repository's shared data)` : `${file}: no such file`;
    throw new RequestError('missing_vocab', 'vocab', `${why}; pass a GGUF file with a Llama vocabulary with --vocab`);
  }
  const gguf = readGGUF(file);
  const model = gguf.metadata.get('tokenizer.ggml.model');
  if (model !== 'llama' && model !== 'gpt2') {
    throw new RequestError('unsupported_vocab', 'vocab', `${file}: tokenizer.ggml.model is '${String(model)}', init needs a 'llama' (SentencePiece) or 'gpt2' (BPE) vocabulary`);
  }
  const tokens = gguf.metadata.get('tokenizer.ggml.tokens');
  if (!Array.isArray(tokens)) throw new RequestError('unsupported_vocab', 'vocab', `${file}: tokenizer.ggml.tokens is missing or not an array of strings`);
  if (tokens.length > vocabSize) {
    throw new RequestError('unsupported_vocab', 'vocab', `${file}: its ${tokens.length} tokens do not fit the shape's vocabulary of ${vocabSize}`);
  }
  const base = tokens.length;
  const out: [string, GGUFTypedValue][] = [];
  for (const key of gguf.metadata.keys()) {
    if (!key.startsWith('tokenizer.ggml.')) continue;
    const value = typedValue(gguf, key)!;
    if (key === 'tokenizer.ggml.tokens') {
      const padded = [...(tokens as string[])];
      for (let id = base; id < vocabSize; id++) padded.push(`<extra_${id - base}>`);
      out.push([key, { type: 'array', itemType: 'string', value: padded }]);
    } else if (key === 'tokenizer.ggml.scores' || key === 'tokenizer.ggml.token_type') {
      const items = value.type === 'array' ? value.value : [];
      if (items.length !== base) {
        throw new RequestError('unsupported_vocab', 'vocab', `${file}: ${key} has ${items.length} entries for ${base} tokens`);
      }
      const isScores = key === 'tokenizer.ggml.scores';
      const padded = isScores ? new Float32Array(vocabSize) : new Int32Array(vocabSize).fill(5); // 5 = unused
      for (let i = 0; i < base; i++) padded[i] = Number(items[i]);
      out.push([key, { type: 'array', itemType: isScores ? 'f32' : 'i32', value: padded }]);
    } else {
      out.push([key, value]);
    }
  }
  return out;
}

/** Norm weights: f32 ones. */
function encodeOnes(bytes: number): Uint8Array {
  const out = new Uint8Array(bytes);
  new Float32Array(out.buffer).fill(1);
  return out;
}

/** Values generated (and encoded) per step: bounds the f32 scratch and paces progress reports. */
const CHUNK_VALUES = 1 << 16;

/** A tensor of normal(0, std) values encoded as `dtype`, produced a few rows at a time. */
export function randomTensor(dtype: DType, shape: readonly number[], seed: number, onProgress?: (bytesDone: number) => void, std = STD): Uint8Array {
  const rowLength = shape[shape.length - 1]!;
  const rowCount = shape.reduce((a, b) => a * b, 1) / rowLength;
  const rowBytes = byteSize(dtype, rowLength);
  const rowsPerChunk = Math.max(1, Math.floor(CHUNK_VALUES / rowLength));
  const out = new Uint8Array(rowBytes * rowCount);
  const scratch = new Float32Array(rowsPerChunk * rowLength);
  const normal = new NormalSource(seed);
  for (let row = 0; row < rowCount; row += rowsPerChunk) {
    const rows = Math.min(rowsPerChunk, rowCount - row);
    const n = rows * rowLength;
    const values = scratch.subarray(0, n);
    for (let i = 0; i < n; i++) values[i] = normal.next() * std;
    encodeValues(dtype, values, out.subarray(row * rowBytes, (row + rows) * rowBytes));
    onProgress?.((row + rows) * rowBytes);
  }
  return out;
}


// ---------------------------------------------------------------------------------------------
// Deterministic per-tensor seeds (the generator itself is in tensor/random.ts).

/** A tensor's seed: the user's seed mixed with an FNV-1a hash of the tensor's name. */
export function tensorSeed(seed: number, name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  // Fold in both halves of a seed up to 2^53.
  return (h ^ Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(Math.floor(seed / 2 ** 32), 0x85ebca6b)) >>> 0;
}
