/**
 * Conversions between GGUF files and Hugging Face checkpoint folders, for the llama and gpt2
 * architectures (names, layouts and config keys: models/hf.ts):
 *
 *   GGUF → folder   config.json, generation_config.json, model.safetensors (f32/f16/bf16 as
 *                   stored, quantized tensors dequantized to f32, or all in `type`),
 *                   tokenizer.json + tokenizer_config.json (tokenizers/hf-export.ts)
 *   folder → GGUF   the tensors as stored (1-D ones as f32), the `<arch>.*` keys and the tokenizer
 *                   as tokenizer.ggml.* (tokenizers/hf-to-gguf.ts); with `type`, requantized by
 *                   the quantize path
 *
 * A GGUF without output.weight becomes a tied checkpoint (tie_word_embeddings true, no lm_head)
 * and back; one with output.weight keeps it as lm_head.weight. So both round trips give back the
 * same tensors, bit for bit. `writeHfCheckpoint` is what a trainer calls to save in-memory weights.
 * Every file is written atomically.
 */
import fs from 'node:fs';
import path from 'node:path';
import { RequestError } from './errors.js';
import { writeFileAtomic } from './formats/file.js';
import { writeGGUF, type GGUFWriteTensor } from './formats/gguf-writer.js';
import { getOptionalString, readGGUF, readTensorData, type GGUFTensorInfo, type GGUFTypedValue } from './formats/gguf.js';
import { SAFETENSORS_FILE, writeSafetensors, type SafetensorsDType, type SafetensorsWriteTensor } from './formats/safetensors.js';
import { writeTokenizerConfig, writeTokenizerJson, type TokenizerJson } from './formats/tokenizer-json.js';
import { archMetadata } from './init.js';
import { HF_CONFIG_FILE, hfConfigJson, hfShape, hfTensorNames, openHfCheckpoint, readHfTensor, relayout } from './models/hf.js';
import { archConfigFromGGUF, tensorShapes, type ArchConfig } from './models/index.js';
import { quantizeModel, tensorValues, type QuantizeType } from './quantize.js';
import { byteSize, type DType } from './tensor/dtype.js';
import { bf16ToF32, f16ToF32 } from './tensor/f16.js';
import { encodeValues, GGUF_FILE_TYPE } from './tensor/quant.js';
import type { BpeVocab } from './tokenizers/bpe.js';
import { tokenizerConfigFromVocab, tokenizerJsonFromVocab } from './tokenizers/hf-export.js';
import { ggufTokenizerMetadata } from './tokenizers/hf-to-gguf.js';
import { ggufVocab } from './tokenizers/index.js';
import type { Vocab } from './tokenizers/vocab.js';
import type { WordPieceVocab } from './tokenizers/wordpiece.js';

/** The float types a checkpoint folder stores. */
export type HfDType = 'f32' | 'f16' | 'bf16';
export const HF_DTYPES: readonly HfDType[] = ['f32', 'f16', 'bf16'];
const SAFETENSORS_NAME: Record<HfDType, SafetensorsDType> = { f32: 'F32', f16: 'F16', bf16: 'BF16' };
const TORCH_DTYPE: Record<HfDType, string> = { f32: 'float32', f16: 'float16', bf16: 'bfloat16' };

export interface ConvertOptions {
  /** A .gguf file or a Hugging Face checkpoint folder. */
  input: string;
  /** The other kind: a folder (created if missing) for a GGUF input, a .gguf file for a folder. */
  output: string;
  /** Folder → GGUF: any quantize type; GGUF → folder: f32, f16 or bf16. Default: as stored. */
  type?: QuantizeType;
  onProgress?: (doneBytes: number, totalBytes: number) => void;
}

export interface ConvertResult {
  direction: 'hf-to-gguf' | 'gguf-to-hf';
  output: string;
  architecture: ArchConfig['architecture'];
  tensorCount: number;
}

/** Convert in whichever direction the input asks for (a folder is a checkpoint, a file a GGUF). */
export function convertModel(opts: ConvertOptions): ConvertResult {
  if (!fs.existsSync(opts.input)) throw new RequestError('no_such_file', 'input', `${opts.input} does not exist`);
  return fs.statSync(opts.input).isDirectory() ? hfToGGUF(opts) : ggufToHf(opts);
}

// ---------------------------------------------------------------------------------------------
// folder → GGUF

function hfToGGUF(opts: ConvertOptions): ConvertResult {
  const hf = openHfCheckpoint(opts.input);
  const vocabSize = hf.arch.config.vocab_size;
  const tensors = [...hf.tensors.values()];
  const stored = tensors.find((t) => t.shape.length > 1)?.dtype ?? 'f32';
  const metadata = new Map<string, GGUFTypedValue>([
    ['general.architecture', { type: 'string', value: hf.arch.architecture }],
    ['general.name', { type: 'string', value: path.basename(path.resolve(opts.input)) }],
    ['general.file_type', { type: 'u32', value: GGUF_FILE_TYPE[stored as HfDType] }],
    ...archMetadata(hf.arch),
    ...ggufTokenizerMetadata(opts.input, vocabSize, hf.json),
  ]);
  const total = tensors.reduce((sum, t) => sum + t.byteLength, 0);
  let done = 0;
  const write = (file: string): void => writeGGUF(file, metadata, tensors.map((t): GGUFWriteTensor => ({
    name: t.name,
    dtype: t.dtype,
    shape: t.shape,
    data: () => {
      const bytes = readHfTensor(t) as Uint8Array;
      done += t.byteLength;
      opts.onProgress?.(done, total);
      return bytes;
    },
  })));
  if (opts.type === undefined) {
    write(opts.output);
  } else {
    // requantize through the quantize path, from a temporary GGUF of the stored types
    const tmp = `${opts.output}.convert-${process.pid}.gguf`;
    try {
      write(tmp);
      quantizeModel({ input: tmp, output: opts.output, type: opts.type });
    } finally {
      fs.rmSync(tmp, { force: true });
    }
  }
  return { direction: 'hf-to-gguf', output: opts.output, architecture: hf.arch.architecture, tensorCount: tensors.length };
}

// ---------------------------------------------------------------------------------------------
// GGUF → folder

function ggufToHf(opts: ConvertOptions): ConvertResult {
  const type = opts.type;
  if (type !== undefined && !HF_DTYPES.includes(type as HfDType)) {
    throw new RequestError('invalid_type', 'type', `a checkpoint folder stores ${HF_DTYPES.join(', ')}; got ${type}`);
  }
  const file = readGGUF(opts.input);
  const vocab = ggufVocab(file);
  const arch = archConfigFromGGUF((key) => file.metadata.get(key), vocab.tokens.length, opts.input);
  const shapes = tensorShapes(arch);
  const infos = [...shapes.keys()].flatMap((name) => {
    const info = file.tensor(name);
    if (!info && name === 'output.weight') return [];
    if (!info) throw new RequestError('missing_tensor', 'input', `${opts.input}: missing tensor ${name}`);
    return [info];
  });
  const tensors = new Map(infos.map((info) => [info.name, {
    dtype: (type as HfDType | undefined) ?? (HF_DTYPES.includes(info.dtype as HfDType) ? (info.dtype as HfDType) : 'f32'),
    shape: info.shape,
    data: (): Float32Array | Uint8Array => (HF_DTYPES.includes(info.dtype as HfDType) ? tensorBytes(file, info) : tensorValues(file, info)),
    stored: info.dtype!,
  }]));
  writeHfCheckpoint(opts.output, arch, tensors, vocab, { chatTemplate: getOptionalString(file, 'tokenizer.chat_template'), onProgress: opts.onProgress });
  return { direction: 'gguf-to-hf', output: opts.output, architecture: arch.architecture, tensorCount: tensors.size };
}

function tensorBytes(file: { path: string }, info: GGUFTensorInfo): Uint8Array {
  const bytes = new Uint8Array(info.byteLength);
  readTensorData(file, info, bytes);
  return bytes;
}

/** A tensor to save: GGUF name → its type in the checkpoint, GGUF shape, and values. */
export interface CheckpointTensor {
  dtype: HfDType;
  /** GGUF (row-major) shape. */
  shape: readonly number[];
  /**
   * f32 values, or bytes already of type `stored` (f32/f16/bf16); a function is called when the
   * writer reaches the tensor, so only one is in memory at a time.
   */
  data: Float32Array | Uint8Array | (() => Float32Array | Uint8Array);
  /** The type of `data` when it is bytes (default: dtype). */
  stored?: DType;
}

/** A tokenizer given as its Hugging Face files (e.g. the character tokenizer's), not as a GGUF-style vocabulary. */
export interface TokenizerFiles {
  json: TokenizerJson;
  config: Record<string, unknown>;
  bos?: number;
  eos?: number;
}

export interface WriteCheckpointOptions {
  chatTemplate?: string;
  onProgress?: (doneBytes: number, totalBytes: number) => void;
}

/**
 * Write a Hugging Face checkpoint folder from in-memory weights (GGUF names and layouts: llama's
 * q/k rows interleaved, GPT-2's matrices [out, in]): config.json, generation_config.json,
 * model.safetensors, tokenizer.json, tokenizer_config.json. Tied when there is no output.weight.
 */
export function writeHfCheckpoint(
  dir: string,
  arch: ArchConfig,
  tensors: ReadonlyMap<string, CheckpointTensor>,
  tokenizer: Vocab | BpeVocab | WordPieceVocab | TokenizerFiles,
  opts: WriteCheckpointOptions = {},
): void {
  fs.mkdirSync(dir, { recursive: true });
  const tied = !tensors.has('output.weight');
  const names = hfTensorNames(arch, tied);
  const missing = names.find((n) => !tensors.has(n.gguf));
  if (missing) throw new RequestError('missing_tensor', 'tensors', `no tensor ${missing.gguf} (the ${arch.architecture} config needs it)`);
  const total = names.reduce((sum, n) => sum + tensors.get(n.gguf)!.shape.reduce((a, b) => a * b, 1), 0);
  let done = 0;
  const out: SafetensorsWriteTensor[] = names.map(({ gguf, hf, layout }) => {
    const t = tensors.get(gguf)!;
    return {
      name: hf,
      dtype: SAFETENSORS_NAME[t.dtype],
      shape: hfShape(t.shape, layout),
      data: () => {
        const bytes = encodeAs(t, gguf);
        done += t.shape.reduce((a, b) => a * b, 1);
        opts.onProgress?.(done, total);
        return relayout(bytes, t.shape, layout, t.dtype === 'f32' ? 4 : 2, false);
      },
    };
  });
  const dtype = tensors.get('token_embd.weight')?.dtype ?? 'f32';
  writeSafetensors(path.join(dir, SAFETENSORS_FILE), out, { format: 'pt' });
  const json = (name: string, value: unknown): void => writeFileAtomic(path.join(dir, name), `${JSON.stringify(value, null, 2)}\n`);
  const special = { bos: tokenizer.bos, eos: tokenizer.eos };
  json(HF_CONFIG_FILE, hfConfigJson(arch, { tied, ...special, dtype: TORCH_DTYPE[dtype] }));
  json('generation_config.json', { bos_token_id: special.bos, eos_token_id: special.eos });
  const files = 'json' in tokenizer;
  writeTokenizerJson(path.join(dir, 'tokenizer.json'), files ? tokenizer.json : tokenizerJsonFromVocab(tokenizer));
  writeTokenizerConfig(path.join(dir, 'tokenizer_config.json'), files ? tokenizer.config : tokenizerConfigFromVocab(tokenizer, opts.chatTemplate));
}

/** A tensor's bytes in its checkpoint dtype. */
function encodeAs(t: CheckpointTensor, name: string): Uint8Array {
  const data = typeof t.data === 'function' ? t.data() : t.data;
  const count = t.shape.reduce((a, b) => a * b, 1);
  if (data instanceof Float32Array) {
    if (data.length !== count) throw new RequestError('bad_tensor', name, `[${t.shape}] needs ${count} values, got ${data.length}`);
    if (t.dtype === 'f32') return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const out = new Uint8Array(byteSize(t.dtype, count));
    encodeValues(t.dtype, data, out);
    return out;
  }
  const stored = t.stored ?? t.dtype;
  if (data.byteLength !== byteSize(stored, count)) throw new RequestError('bad_tensor', name, `[${t.shape}] ${stored} needs ${byteSize(stored, count)} bytes, got ${data.byteLength}`);
  if (stored === t.dtype) return data;
  const values = new Float32Array(count);
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  for (let i = 0; i < count; i++) {
    values[i] = stored === 'f32' ? view.getFloat32(i * 4, true) : stored === 'bf16' ? bf16ToF32(view.getUint16(i * 2, true)) : f16ToF32(view.getUint16(i * 2, true));
  }
  return encodeAs({ ...t, data: values }, name);
}
