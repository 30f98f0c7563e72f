/**
 * Reader for karpathy/llama2.c's legacy ("v0") checkpoint, the .bin that run.c loads.
 *
 * Layout: 7 × int32 header (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len),
 * then f32 arrays, each holding one weight for every layer back to back:
 *   token_embedding [vocab, dim]
 *   rms_att [L, dim]      wq [L, dim, dim]   wk [L, kv_dim, dim]   wv [L, kv_dim, dim]   wo [L, dim, dim]
 *   rms_ffn [L, dim]      w1 [L, hidden, dim]   w2 [L, dim, hidden]   w3 [L, hidden, dim]
 *   rms_final [dim]       freq_cis_real, freq_cis_imag [seq_len, head_size / 2] (unused: RoPE is recomputed)
 *   wcls [vocab, dim]     only when vocab_size is negative (classifier not shared with the embedding)
 * with kv_dim = dim · n_kv_heads / n_heads. The file has no magic, so the header is checked hard:
 * the file size must be exactly what it implies.
 *
 * Tensors are exposed under GGUF names with absolute offsets, so the loader and readTensorData
 * treat both formats alike.
 */
import fs from 'node:fs';
import { FormatError } from '../errors.js';
import { FileReader, openForRead } from './file.js';
import type { GGUFTensorInfo } from './gguf.js';

export interface Llama2cConfig {
  dim: number;
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  /** Always positive (the header's sign only says whether the classifier is shared). */
  vocabSize: number;
  seqLen: number;
  /** True when the output classifier is the token embedding (header vocab_size > 0). */
  sharedClassifier: boolean;
}

export interface Llama2cFile {
  path: string;
  fileSize: number;
  config: Llama2cConfig;
  tensors: GGUFTensorInfo[];
  tensor(name: string): GGUFTensorInfo | undefined;
}

export const LLAMA2C_HEADER_BYTES = 7 * 4;
/** llama2.c's export.py writes this u32 at the start of its versioned (v1, v2) formats. */
const LLAMA2C_VERSIONED_MAGIC = 0x616b3432;
const F32_BYTES = 4;

export function readLlama2c(path: string): Llama2cFile {
  const { fd, size } = openForRead(path);
  try {
    const r = new FileReader(fd, path, size);
    if (size < LLAMA2C_HEADER_BYTES) {
      throw new FormatError('truncated', path, `file is ${size} bytes, too short for a llama2.c header (${LLAMA2C_HEADER_BYTES} bytes)`);
    }
    const header = Array.from({ length: 7 }, (_, i) => r.i32(`llama2.c header field ${i}`));
    checkNotOtherFormat(path, header);
    const config = checkHeader(path, header);
    checkSize(path, size, config, header); // first: an absurd n_layers must not reach layOut's loops
    const tensors = layOut(config);
    const byName = new Map(tensors.map((t) => [t.name, t]));
    return { path, fileSize: size, config, tensors, tensor: (name) => byName.get(name) };
  } finally {
    fs.closeSync(fd);
  }
}

/** Friendlier errors for files that are something else. */
function checkNotOtherFormat(path: string, header: number[]): void {
  const first = header[0]! >>> 0;
  if (first === 0x46554747) {
    throw new FormatError('bad_header', path, 'this is a GGUF file, not a llama2.c checkpoint');
  }
  if (first === LLAMA2C_VERSIONED_MAGIC) {
    throw new FormatError('unsupported_version', path, `llama2.c version ${header[1]} export; only the legacy (v0) checkpoint format is supported`);
  }
}

function checkHeader(path: string, h: number[]): Llama2cConfig {
  const [dim, hiddenDim, nLayers, nHeads, nKvHeads, vocab, seqLen] = h as [number, number, number, number, number, number, number];
  const described = `dim=${dim} hidden_dim=${hiddenDim} n_layers=${nLayers} n_heads=${nHeads} n_kv_heads=${nKvHeads} vocab_size=${vocab} seq_len=${seqLen}`;
  const bad = (why: string): never => {
    throw new FormatError('bad_header', path, `not a valid llama2.c checkpoint header (${described}): ${why}`);
  };
  const positive: [string, number][] = [['dim', dim], ['hidden_dim', hiddenDim], ['n_layers', nLayers], ['n_heads', nHeads], ['n_kv_heads', nKvHeads], ['seq_len', seqLen]];
  for (const [name, value] of positive) if (value <= 0) bad(`${name} must be positive`);
  if (vocab === 0 || vocab === -0x8000_0000) bad('vocab_size must be nonzero');
  if (dim % nHeads !== 0) bad('n_heads must divide dim');
  if (nKvHeads > nHeads || nHeads % nKvHeads !== 0) bad('n_kv_heads must divide n_heads');
  if ((dim / nHeads) % 2 !== 0) bad('the head size dim / n_heads must be even (RoPE rotates pairs)');
  return { dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize: Math.abs(vocab), seqLen, sharedClassifier: vocab > 0 };
}

/** Every weight's place in the file, in file order. Offsets are plain numbers: checkSize bounds them. */
function layOut(c: Llama2cConfig): GGUFTensorInfo[] {
  const kvDim = (c.dim * c.nKvHeads) / c.nHeads;
  const headSize = c.dim / c.nHeads;
  const tensors: GGUFTensorInfo[] = [];
  let offset = LLAMA2C_HEADER_BYTES;
  const add = (name: string, shape: number[]) => {
    const byteLength = shape.reduce((a, b) => a * b, 1) * F32_BYTES;
    tensors.push({ name, dims: [...shape].reverse(), shape, ggmlType: 0, dtype: 'f32', offset, byteLength });
    offset += byteLength;
  };
  /** One weight stored for all layers back to back. */
  const perLayer = (suffix: string, shape: number[]) => {
    for (let l = 0; l < c.nLayers; l++) add(`blk.${l}.${suffix}`, shape);
  };
  add('token_embd.weight', [c.vocabSize, c.dim]);
  perLayer('attn_norm.weight', [c.dim]);
  perLayer('attn_q.weight', [c.dim, c.dim]);
  perLayer('attn_k.weight', [kvDim, c.dim]);
  perLayer('attn_v.weight', [kvDim, c.dim]);
  perLayer('attn_output.weight', [c.dim, c.dim]);
  perLayer('ffn_norm.weight', [c.dim]);
  perLayer('ffn_gate.weight', [c.hiddenDim, c.dim]); // w1
  perLayer('ffn_down.weight', [c.dim, c.hiddenDim]); // w2
  perLayer('ffn_up.weight', [c.hiddenDim, c.dim]); // w3
  add('output_norm.weight', [c.dim]);
  offset += 2 * c.seqLen * (headSize / 2) * F32_BYTES; // freq_cis_real, freq_cis_imag: skipped
  if (!c.sharedClassifier) add('output.weight', [c.vocabSize, c.dim]);
  return tensors;
}

/**
 * The size the header implies, computed exactly (BigInt: absurd headers overflow 2^53), must be
 * the file's size. This is the only real check a magic-less format allows.
 */
function checkSize(path: string, fileSize: number, c: Llama2cConfig, header: number[]): void {
  const [dim, hidden, layers, heads, kvHeads, vocab, seq] = [c.dim, c.hiddenDim, c.nLayers, c.nHeads, c.nKvHeads, c.vocabSize, c.seqLen].map(BigInt) as bigint[];
  const kvDim = (dim! * kvHeads!) / heads!;
  const headSize = dim! / heads!;
  const floats =
    vocab! * dim! +
    layers! * (2n * dim! + 2n * dim! * dim! + 2n * kvDim * dim! + 3n * hidden! * dim!) +
    dim! +
    seq! * headSize;
  const wcls = vocab! * dim!;
  const header_ = BigInt(LLAMA2C_HEADER_BYTES);
  const expected = header_ + 4n * (floats + (c.sharedClassifier ? 0n : wcls));
  const actual = BigInt(fileSize);
  // When the sizes agree, every offset layOut computes (plain numbers) is below the file size: exact.
  if (expected === actual) return;
  const withOther = header_ + 4n * (floats + (c.sharedClassifier ? wcls : 0n));
  const hint =
    withOther === actual
      ? c.sharedClassifier
        ? ' (the size fits an unshared classifier, but vocab_size is positive, which means shared)'
        : ' (the size fits a shared classifier, but vocab_size is negative, which means unshared)'
      : '';
  const summary = `dim=${header[0]} hidden_dim=${header[1]} n_layers=${header[2]} n_heads=${header[3]} n_kv_heads=${header[4]} vocab_size=${header[5]} seq_len=${header[6]}`;
  if (expected > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new FormatError('bad_header', path, `header (${summary}) implies an absurd size of ${expected} bytes; the file has ${fileSize}`);
  }
  const code = actual < expected ? 'truncated' : 'size_mismatch';
  throw new FormatError(code, path, `header (${summary}) implies a file of ${expected} bytes, but it has ${fileSize}${hint}`);
}
