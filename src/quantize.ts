/**
 * Requantize a GGUF model: read each tensor, decode it to f32 and write it again in the target
 * type, with llama-quantize's per-tensor rules for the plain types:
 *
 *   - 1-D tensors (norms, biases) stay F32;
 *   - 2-D tensors whose rows split into the type's blocks (32 values; 256 for the K-quants) take
 *     the target type;
 *   - 2-D tensors whose rows do not (stories260K's 172-wide ffn_down) fall back: K-quants to
 *     llama.cpp's substitute (Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0) when its 32-value blocks fit,
 *     everything else to F16.
 *
 * The K-quant types are plain: every 2-D tensor gets that type (llama.cpp's Q4_K_M-style mixtures,
 * which give some tensors more bits, are not applied).
 *
 * Metadata is copied with general.file_type set to the target. Quantized values use ggml's
 * rounding (src/tensor/quant.ts), so a Q8_0/Q4_0 file made from F32 weights is byte-identical to
 * llama-quantize's. The output is written atomically (temp file, then rename).
 */
import { RequestError } from './errors.js';
import { readGGUF, readTensorData, typedMetadata, type GGUFFile, type GGUFTensorInfo } from './formats/gguf.js';
import { writeGGUF, type GGUFWriteTensor } from './formats/gguf-writer.js';
import { byteSize, DTYPES, type DType } from './tensor/dtype.js';
import { dequantize, encodeValues, GGUF_FILE_TYPE } from './tensor/quant.js';

/** The types `quantize` writes. */
export const QUANTIZE_TYPES = ['q8_0', 'q4_0', 'q4_k', 'q5_k', 'q6_k', 'f16', 'f32'] as const;
export type QuantizeType = (typeof QUANTIZE_TYPES)[number];

export interface QuantizeOptions {
  input: string;
  output: string;
  type: QuantizeType;
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

/** Rewrite `input`'s tensors as `type` (see the rules above) into `output`. */
export function quantizeModel(opts: QuantizeOptions): QuantizeResult {
  if (!(QUANTIZE_TYPES as readonly string[]).includes(opts.type)) {
    throw new RequestError('invalid_type', 'type', `must be one of ${QUANTIZE_TYPES.join(', ')}, got ${String(opts.type)}`);
  }
  const file = readGGUF(opts.input);
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
      const bytes = convertTensor(file, info, dtype);
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

/**
 * llama.cpp's substitutes for K-quant rows that do not split into 256-value super-blocks
 * (llama-quant.cpp). Q5_0/Q5_1 are used once this build knows them; until then such rows take F16.
 */
const K_FALLBACK: Readonly<Record<string, string>> = { q4_k: 'q5_0', q5_k: 'q5_1', q6_k: 'q8_0' };

/** The type a tensor is written in: 1-D stays f32; rows that do not split into blocks fall back (see above). */
function targetType(info: GGUFTensorInfo, type: QuantizeType): DType {
  if (info.shape.length === 1) return 'f32';
  const rowLength = info.shape[info.shape.length - 1]!;
  if (rowLength % DTYPES[type].blockSize === 0) return type;
  const fallback = K_FALLBACK[type];
  if (fallback !== undefined && fallback in DTYPES && rowLength % DTYPES[fallback as DType].blockSize === 0) return fallback as DType;
  return 'f16';
}

/** A tensor's bytes in `dtype`: copied when it already has that type, else decoded to f32 and encoded. */
function convertTensor(file: GGUFFile, info: GGUFTensorInfo, dtype: DType): Uint8Array {
  const source = new Uint8Array(info.byteLength);
  readTensorData(file, info, source);
  if (info.dtype === dtype) return source;
  const count = info.shape.reduce((a, b) => a * b, 1);
  const values = new Float32Array(count);
  dequantize(info.dtype!, source, 0, count, values);
  const out = new Uint8Array(byteSize(dtype, count));
  encodeValues(dtype, values, out);
  return out;
}
