/**
 * Which type each tensor of a model gets when it is quantized to a file type: llama-quantize's
 * per-tensor rules, so a `q4_k_m` file made here has the tensor types a llama.cpp user expects.
 *
 *   - Only 2-D (or larger) `*.weight` tensors are quantized; norms and other 1-D tensors keep
 *     their type.
 *   - The output matrix (and the token embedding when it doubles as the output) gets more bits:
 *     Q6_K, or Q8_0 when its rows do not split into the type's blocks.
 *   - The `_m` ("medium") mixtures give attn_v and ffn_down of the first and last eighth of the
 *     layers, and of every third layer between, Q6_K; `_s` gives the first layers one step more.
 *   - A tensor whose rows do not split into the chosen type's blocks falls back: Q4_K → Q5_0,
 *     Q5_K → Q5_1, Q6_K → Q8_0, and to F16 when even that does not fit. (llama-quantize refuses
 *     such tensors for the 32-block types Q4_0..Q8_0; we write them as F16 instead.)
 */
import { RequestError } from './errors.js';
import { DTYPES, isQuantized, type DType } from './tensor/dtype.js';
import { GGUF_FILE_TYPE } from './tensor/quant.js';

/** A file type: the type most tensors get, and its GGUF general.file_type (llama.cpp's LLAMA_FTYPE_*, from GGUF_FILE_TYPE). */
interface FileTypeInfo {
  readonly base: DType;
  readonly ftype: number;
}

export const FILE_TYPES = {
  f32: { base: 'f32', ftype: GGUF_FILE_TYPE.f32 },
  f16: { base: 'f16', ftype: GGUF_FILE_TYPE.f16 },
  bf16: { base: 'bf16', ftype: GGUF_FILE_TYPE.bf16 },
  q8_0: { base: 'q8_0', ftype: GGUF_FILE_TYPE.q8_0 },
  q4_0: { base: 'q4_0', ftype: GGUF_FILE_TYPE.q4_0 },
  q4_1: { base: 'q4_1', ftype: GGUF_FILE_TYPE.q4_1 },
  q5_0: { base: 'q5_0', ftype: GGUF_FILE_TYPE.q5_0 },
  q5_1: { base: 'q5_1', ftype: GGUF_FILE_TYPE.q5_1 },
  q4_k_s: { base: 'q4_k', ftype: GGUF_FILE_TYPE.q4_k_s },
  q4_k_m: { base: 'q4_k', ftype: GGUF_FILE_TYPE.q4_k_m },
  q5_k_s: { base: 'q5_k', ftype: GGUF_FILE_TYPE.q5_k_s },
  q5_k_m: { base: 'q5_k', ftype: GGUF_FILE_TYPE.q5_k_m },
  q6_k: { base: 'q6_k', ftype: GGUF_FILE_TYPE.q6_k },
} as const satisfies Record<string, FileTypeInfo>;

export type FileType = keyof typeof FILE_TYPES;
export const FILE_TYPE_NAMES = Object.keys(FILE_TYPES) as FileType[];

/** llama-quantize's short names for the medium mixtures. */
const ALIASES: Readonly<Record<string, FileType>> = { q4_k: 'q4_k_m', q5_k: 'q5_k_m' };

/** The file type named `name` (case-insensitive; q4_k and q5_k mean the _m mixtures, as in llama-quantize). */
export function parseFileType(name: string, param = 'type'): FileType {
  const key = name.toLowerCase();
  const type = ALIASES[key] ?? key;
  if (!(type in FILE_TYPES)) {
    throw new RequestError('invalid_type', param, `must be one of ${FILE_TYPE_NAMES.join(', ')}, got ${JSON.stringify(name)}`);
  }
  return type as FileType;
}

export interface PlanTensor {
  readonly name: string;
  /** Row-major shape: the last dimension is the row length (ggml's ne[0]). */
  readonly shape: readonly number[];
  /** The tensor's type in the source file. */
  readonly dtype: DType;
}

export interface PlanOptions {
  fileType: FileType;
  /** Type of output.weight (llama-quantize --output-tensor-type); default: the rules above. */
  outputTensorType?: DType;
  /** Type of token_embd.weight (--token-embedding-type); default: the rules above. */
  tokenEmbeddingType?: DType;
  /** Every quantizable tensor takes the base type, no mixture (--pure); fallbacks still apply. */
  pure?: boolean;
}

type Role = 'output' | 'token_embd' | 'attn_v' | 'ffn_down' | 'other';

/** The type each tensor is written in, in the order given. */
export function planTensorTypes(tensors: readonly PlanTensor[], opts: PlanOptions): DType[] {
  const base = FILE_TYPES[opts.fileType].base;
  // the _m mixtures pick layers by position among all of them (llama.cpp's block_count)
  const layerCount = 1 + Math.max(-1, ...tensors.map((t) => layerOf(t.name) ?? -1));
  const tiedEmbeddings = !tensors.some((t) => roleOf(t.name) === 'output');
  return tensors.map((t) => {
    if (!quantizable(t)) return t.dtype;
    const role = roleOf(t.name);
    if (role === 'output' && opts.outputTensorType) return opts.outputTensorType;
    if (role === 'token_embd' && opts.tokenEmbeddingType) return opts.tokenEmbeddingType;
    if (!isQuantized(base)) return base;
    const chosen = opts.pure ? base : mixtureType(t, role, base, opts.fileType, layerCount, tiedEmbeddings);
    return fitRows(chosen, rowLength(t));
  });
}

/** llama-quantize quantizes 2-D+ tensors named *.weight, except norms. */
function quantizable(t: PlanTensor): boolean {
  return t.shape.length >= 2 && t.name.endsWith('weight') && !t.name.includes('_norm.weight');
}

function roleOf(name: string): Role {
  if (name === 'output.weight') return 'output';
  if (name === 'token_embd.weight') return 'token_embd';
  if (name.includes('attn_v.weight')) return 'attn_v';
  if (name.includes('ffn_down')) return 'ffn_down';
  return 'other';
}

function rowLength(t: PlanTensor): number {
  return t.shape[t.shape.length - 1]!;
}

/** The mixture's choice for one tensor before the row-length fallback. */
function mixtureType(t: PlanTensor, role: Role, base: DType, fileType: FileType, layerCount: number, tiedEmbeddings: boolean): DType {
  if (role === 'output' || (role === 'token_embd' && tiedEmbeddings)) {
    if (rowLength(t) % DTYPES[base].blockSize !== 0) return 'q8_0';
    return base === 'q8_0' ? 'q8_0' : 'q6_k';
  }
  const layer = layerOf(t.name);
  if (role === 'attn_v' && layer !== undefined) {
    if ((fileType === 'q4_k_m' || fileType === 'q5_k_m') && useMoreBits(layer, layerCount)) return 'q6_k';
    if (fileType === 'q4_k_s' && layer < 4) return 'q5_k';
  }
  if (role === 'ffn_down' && layer !== undefined) {
    if ((fileType === 'q4_k_m' || fileType === 'q5_k_m') && useMoreBits(layer, layerCount)) return 'q6_k';
    if (fileType === 'q4_k_s' && layer < Math.trunc(layerCount / 8)) return 'q5_k';
  }
  return base;
}

/** The layers the _m mixtures favour: the first and last eighth, and every third one between. */
export function useMoreBits(layer: number, layerCount: number): boolean {
  const eighth = Math.trunc(layerCount / 8);
  return layer < eighth || layer >= Math.trunc((7 * layerCount) / 8) || (layer - eighth) % 3 === 2;
}

function layerOf(name: string): number | undefined {
  const match = /^blk\.(\d+)\./.exec(name);
  return match ? Number(match[1]) : undefined;
}

/** K-quants that do not fit a row fall back to a 32-block type of similar size; anything else to F16. */
const FALLBACK: Partial<Record<DType, DType>> = { q4_k: 'q5_0', q5_k: 'q5_1', q6_k: 'q8_0' };

function fitRows(type: DType, rowLength: number): DType {
  const fits = (t: DType): boolean => rowLength % DTYPES[t].blockSize === 0;
  if (fits(type)) return type;
  const fallback = FALLBACK[type];
  return fallback && fits(fallback) ? fallback : 'f16';
}
