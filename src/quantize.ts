/**
 * Requantize a GGUF model: read each tensor, decode it to f32 and write it again in the target
 * type, with llama-quantize's per-tensor rules for the plain types:
 *
 *   - 1-D tensors (norms, biases) stay F32;
 *   - 2-D tensors whose rows split into the type's 32-value blocks take the target type;
 *   - 2-D tensors whose rows do not (stories260K's 172-wide ffn_down) fall back to F16.
 *
 * Metadata is copied with general.file_type set to the target. Quantized values use ggml's
 * rounding (src/tensor/quant.ts, quant-legacy.ts), so a Q8_0/Q4_0 file made from F32 weights is
 * byte-identical to llama-quantize's, and Q4_1/Q5_0/Q5_1 blocks are ggml's reference quantizer's.
 * The output is written atomically (temp file, then rename).
 *
 * `method: 'gptq'` routes to src/gptq.ts (calibrated, error-compensating; same rules, same blocks).
 */
import { RequestError } from './errors.js';
import { readGGUF, readTensorData, typedMetadata, type GGUFFile, type GGUFTensorInfo } from './formats/gguf.js';
import { writeGGUF, type GGUFWriteTensor } from './formats/gguf-writer.js';
import type { GptqQuantizeOptions, GptqQuantizeResult } from './gptq.js';
import { byteSize, DTYPES, type DType } from './tensor/dtype.js';
import { dequantize, encodeValues, GGUF_FILE_TYPE } from './tensor/quant.js';

/** The types `quantize` writes. */
export const QUANTIZE_TYPES = ['q8_0', 'q4_0', 'q4_1', 'q5_0', 'q5_1', 'f16', 'f32'] as const;
export type QuantizeType = (typeof QUANTIZE_TYPES)[number];

export interface QuantizeOptions {
  input: string;
  output: string;
  type: QuantizeType;
  /** 'rtn' (default): round to nearest, as llama-quantize. GPTQ takes GptqQuantizeOptions (method: 'gptq'). */
  method?: 'rtn';
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
  if (!(QUANTIZE_TYPES as readonly string[]).includes(opts.type)) {
    throw new RequestError('invalid_type', 'type', `must be one of ${QUANTIZE_TYPES.join(', ')}, got ${String(opts.type)}`);
  }
  const file = readGGUF(opts.input);
  return writeQuantized(file, opts, (info, dtype) => convertTensor(file, info, dtype));
}

/** Write `file`'s tensors into opts.output by the rules above; `encode` gives a tensor's bytes in its target dtype. */
export function writeQuantized(
  file: GGUFFile,
  opts: Pick<QuantizeOptions, 'input' | 'output' | 'type' | 'onProgress'>,
  encode: (info: GGUFTensorInfo, dtype: DType) => Uint8Array,
): QuantizeResult {
  for (const t of file.tensors) {
    if (!t.dtype) throw new RequestError('unsupported_tensor_type', 'input', `${opts.input}: tensor ${t.name} has ggml type ${t.ggmlType}, which SmallMind cannot read`);
  }
  const metadata = typedMetadata(file);
  metadata.set('general.file_type', { type: 'u32', value: GGUF_FILE_TYPE[opts.type] });

  const plan = file.tensors.map((info) => ({ info, dtype: targetType(info, opts.type) }));
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

/** The type a tensor is written in: 1-D stays f32; rows that do not split into blocks fall back to f16. */
export function targetType(info: GGUFTensorInfo, type: QuantizeType): DType {
  if (info.shape.length === 1) return 'f32';
  const rowLength = info.shape[info.shape.length - 1]!;
  return rowLength % DTYPES[type].blockSize === 0 ? type : 'f16';
}

/** A tensor's bytes in `dtype`: copied when it already has that type, else decoded to f32 and encoded. */
export function convertTensor(file: GGUFFile, info: GGUFTensorInfo, dtype: DType): Uint8Array {
  if (info.dtype === dtype) return tensorBytes(file, info);
  const values = tensorValues(file, info);
  const out = new Uint8Array(byteSize(dtype, values.length));
  encodeValues(dtype, values, out);
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
