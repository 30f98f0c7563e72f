/**
 * Requantize a GGUF model: read each tensor, decode it to f32 and write it again in the type
 * llama-quantize would give it for the chosen file type (src/quantize-plan.ts: norms keep their
 * type, the output matrix gets more bits, the _m mixtures favour some attn_v/ffn_down layers,
 * rows that do not split into blocks fall back).
 *
 * Metadata is copied with general.file_type set to the file type. Quantized values use ggml's
 * rounding (src/tensor/quant.ts, quant-legacy.ts, quant-k.ts), so every block is byte-identical to
 * ggml's reference quantizer's (stories260K requantized to Q8_0 or Q4_0 is byte-identical to
 * llama-quantize's files in ../shared/fixtures). The output is written atomically (temp file, then
 * rename).
 *
 * `method: 'gptq'` routes to src/gptq.ts (calibrated, error-compensating; same rules, same blocks).
 */
import { encodeWeights } from './backend/wasm/quantizer.js';
import { RequestError } from './errors.js';
import { readGGUF, readTensorData, typedMetadata, type GGUFFile, type GGUFTensorInfo } from './formats/gguf.js';
import { writeGGUF, type GGUFWriteTensor } from './formats/gguf-writer.js';
import type { GptqQuantizeOptions, GptqQuantizeResult } from './gptq.js';
import { FILE_TYPE_NAMES, FILE_TYPES, parseFileType, planTensorTypes, type FileType } from './quantize-plan.js';
import { byteSize, type DType } from './tensor/dtype.js';
import { dequantize } from './tensor/quant.js';

/** The file types `quantize` writes, with llama-quantize's short names q4_k and q5_k for the _m mixtures. */
export const QUANTIZE_TYPES = [...FILE_TYPE_NAMES, 'q4_k', 'q5_k'] as const;
export type QuantizeType = (typeof QUANTIZE_TYPES)[number];

export interface QuantizeOptions {
  input: string;
  output: string;
  type: QuantizeType;
  /** 'rtn' (default): round to nearest, as llama-quantize. GPTQ takes GptqQuantizeOptions (method: 'gptq'). */
  method?: 'rtn';
  /** Type of output.weight, overriding the mixture (llama-quantize --output-tensor-type). */
  outputTensorType?: DType;
  /** Type of token_embd.weight, overriding the mixture (--token-embedding-type). */
  tokenEmbeddingType?: DType;
  /** Every quantizable tensor in the file type's base type, no mixture (--pure). */
  pure?: boolean;
  /** Called as tensors are written: input bytes done, input bytes in all. */
  onProgress?: (doneBytes: number, totalBytes: number) => void;
}

export interface QuantizeResult {
  output: string;
  /** Tensors written per type, e.g. { q8_0: 32, f32: 11, f16: 5 }. */
  tensorTypes: Record<string, number>;
  parameterCount: number;
  inputBytes: number;
  outputBytes: number;
  /** Tensor data bits per weight in the output. */
  bitsPerWeight: number;
}

/** Rewrite `input`'s tensors as `type` (see the rules above) into `output`; with method 'gptq', asynchronously by GPTQ. */
export function quantizeModel(opts: GptqQuantizeOptions): Promise<GptqQuantizeResult>;
export function quantizeModel(opts: QuantizeOptions): QuantizeResult;
export function quantizeModel(opts: QuantizeOptions | GptqQuantizeOptions): QuantizeResult | Promise<GptqQuantizeResult> {
  // GPTQ runs the model (backend start-up is asynchronous); loaded on demand, as RTN needs none of it.
  if (opts.method === 'gptq') return import('./gptq.js').then((gptq) => gptq.gptqQuantizeModel(opts));
  if (opts.method !== undefined && opts.method !== 'rtn') {
    throw new RequestError('invalid_method', 'method', `must be rtn or gptq, got ${String(opts.method)}`);
  }
  const file = readGGUF(opts.input);
  return writeQuantized(file, opts, (info, dtype) => convertTensor(file, info, dtype));
}

/** Write `file`'s tensors into opts.output by the rules above; `encode` gives a tensor's bytes in its target dtype. */
export function writeQuantized(
  file: GGUFFile,
  opts: PlanRequest & Pick<QuantizeOptions, 'output' | 'onProgress'>,
  encode: (info: GGUFTensorInfo, dtype: DType) => Uint8Array,
): QuantizeResult {
  const planned = planQuantization(file, opts);
  const metadata = typedMetadata(file);
  metadata.set('general.file_type', { type: 'u32', value: FILE_TYPES[parseFileType(opts.type)].ftype });

  const plan = file.tensors.map((info) => ({ info, dtype: planned.get(info.name)! }));
  const inputBytes = file.tensors.reduce((sum, t) => sum + t.byteLength, 0);
  let done = 0;
  const tensors: GGUFWriteTensor[] = plan.map(({ info, dtype }) => ({
    name: info.name,
    dtype,
    shape: info.shape,
    data: () => {
      const bytes = encode(info, dtype);
      done += info.byteLength;
      opts.onProgress?.(done, inputBytes);
      return bytes;
    },
  }));
  writeGGUF(opts.output, metadata, tensors);

  const tensorTypes: Record<string, number> = {};
  let outputBytes = 0;
  let parameterCount = 0;
  for (const { info, dtype } of plan) {
    const count = info.shape.reduce((a, b) => a * b, 1);
    tensorTypes[dtype] = (tensorTypes[dtype] ?? 0) + 1;
    outputBytes += byteSize(dtype, count);
    parameterCount += count;
  }
  return { output: opts.output, tensorTypes, parameterCount, inputBytes, outputBytes, bitsPerWeight: (outputBytes * 8) / parameterCount };
}

export type PlanRequest = Pick<QuantizeOptions, 'input' | 'type' | 'outputTensorType' | 'tokenEmbeddingType' | 'pure'>;

/** The type each of `file`'s tensors is written in (by name), for opts' file type and overrides. */
export function planQuantization(file: GGUFFile, opts: PlanRequest): Map<string, DType> {
  const fileType: FileType = parseFileType(String(opts.type));
  for (const t of file.tensors) {
    if (!t.dtype) throw new RequestError('unsupported_tensor_type', 'input', `${opts.input}: tensor ${t.name} has ggml type ${t.ggmlType}, which SmallMind cannot read`);
  }
  const tensors = file.tensors.map((t) => ({ name: t.name, shape: t.shape, dtype: t.dtype! }));
  const types = planTensorTypes(tensors, { ...opts, fileType });
  return new Map(tensors.map((t, i) => [t.name, types[i]!]));
}

/** A tensor's bytes in `dtype`: copied when it already has that type, else decoded to f32 and encoded. */
export function convertTensor(file: GGUFFile, info: GGUFTensorInfo, dtype: DType): Uint8Array {
  if (info.dtype === dtype) return tensorBytes(file, info);
  const values = tensorValues(file, info);
  const out = new Uint8Array(byteSize(dtype, values.length));
  encodeWeights(dtype, values, out);
  return out;
}

/** A tensor's values decoded to f32. */
export function tensorValues(file: GGUFFile, info: GGUFTensorInfo): Float32Array {
  const count = info.shape.reduce((a, b) => a * b, 1);
  const values = new Float32Array(count);
  dequantize(info.dtype!, tensorBytes(file, info), 0, count, values);
  return values;
}

function tensorBytes(file: GGUFFile, info: GGUFTensorInfo): Uint8Array {
  const bytes = new Uint8Array(info.byteLength);
  readTensorData(file, info, bytes);
  return bytes;
}
