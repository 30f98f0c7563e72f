/**
 * Hugging Face checkpoints (config.json + model.safetensors, or shards) as our architectures:
 * config.json keys ↔ our configs, HF tensor names ↔ GGUF names, and the layout changes between
 * them — as llama.cpp's convert_hf_to_gguf.py maps them, so a converted file equals theirs.
 *
 * - Llama: q_proj and k_proj rows are permuted. HF applies RoPE to the two halves of each head
 *   (rotate_half: dimension i pairs with i + d/2); GGUF's `llama` RoPE turns adjacent pairs
 *   (2i, 2i+1). Reordering each head's rows from [first half | second half] to interleaved pairs
 *   makes one equal the other, so HF checkpoints run on the unchanged Llama forward. A permutation
 *   moves rows without arithmetic: weights stay bit-identical, and converting back is exact.
 * - GPT-2: Conv1D weights (c_attn, c_proj, c_fc) are stored [in, out]; GGUF wants [out, in], so
 *   they are transposed. Checkpoints name tensors with or without the `transformer.` prefix.
 * - 1-D tensors (norms, biases) become f32 in GGUF (the kernels take f32 norms and biases).
 */
import fs from 'node:fs';
import path from 'node:path';
import { FormatError, ModelError } from '../errors.js';
import { readJsonFile } from '../formats/tokenizer-json.js';
import { openSafetensorsCheckpoint, readSafetensorsData, type SafetensorsCheckpoint, type SafetensorsDType, type SafetensorsTensorInfo } from '../formats/safetensors.js';
import type { DType } from '../tensor/dtype.js';
import { bf16ToF32, f16ToF32 } from '../tensor/f16.js';
import { validateGpt2Config, type Gpt2Config } from './gpt2.js';
import { tensorShapes, type ArchConfig } from './index.js';
import { validateLlamaConfig, type LlamaConfig } from './llama.js';

export const HF_CONFIG_FILE = 'config.json';

/** How a tensor's HF layout differs from its GGUF layout. */
export type HfLayout = { kind: 'same' } | { kind: 'transposed' } | { kind: 'permuted'; heads: number };

export interface HfTensorName {
  gguf: string;
  hf: string;
  layout: HfLayout;
}

const SAME: HfLayout = { kind: 'same' };
const TRANSPOSED: HfLayout = { kind: 'transposed' };

/** The HF `architectures` entry and `model_type` of each architecture. */
export const HF_ARCHITECTURES = {
  llama: { class: 'LlamaForCausalLM', modelType: 'llama' },
  gpt2: { class: 'GPT2LMHeadModel', modelType: 'gpt2' },
} as const;

// ---------------------------------------------------------------------------------------------
// config.json

/** Our architecture and config from a parsed config.json; errors name the file and the key. */
export function archConfigFromHf(json: unknown, file: string, vocabSize?: number): ArchConfig & { tied: boolean } {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new ModelError('bad_config', `${file}: not a JSON object`);
  const o = json as Record<string, unknown>;
  const arch = hfArchitecture(o, file);
  const number = (key: string, fallback?: number): number => {
    const value = o[key];
    if ((value === undefined || value === null) && fallback !== undefined) return fallback;
    if (value === undefined || value === null) throw new ModelError('missing_key', `${file}: missing required key ${key}`);
    if (typeof value !== 'number' || !Number.isFinite(value)) throw new ModelError('bad_config', `${file}: ${key} should be a number, got ${JSON.stringify(value)}`);
    return value;
  };
  const vocab = number('vocab_size', vocabSize);
  if (arch === 'llama') {
    const act = o.hidden_act ?? 'silu';
    if (act !== 'silu') throw new ModelError('unsupported_config', `${file}: hidden_act ${JSON.stringify(act)} is not supported (Llama uses silu)`);
    if (o.rope_scaling !== undefined && o.rope_scaling !== null) {
      throw new ModelError('unsupported_config', `${file}: rope_scaling ${JSON.stringify(o.rope_scaling)} is not supported yet`);
    }
    const dim = number('hidden_size');
    const heads = number('num_attention_heads');
    const headDim = number('head_dim', dim / heads);
    if (headDim * heads !== dim) throw new ModelError('unsupported_config', `${file}: head_dim ${headDim} × num_attention_heads ${heads} is not hidden_size ${dim}`);
    const config: LlamaConfig = {
      context_length: number('max_position_embeddings'),
      embedding_length: dim,
      block_count: number('num_hidden_layers'),
      feed_forward_length: number('intermediate_size'),
      head_count: heads,
      head_count_kv: number('num_key_value_heads', heads),
      rope_dimension_count: headDim,
      rope_freq_base: number('rope_theta', 10000),
      layer_norm_rms_epsilon: number('rms_norm_eps', 1e-6),
      vocab_size: vocab,
    };
    validateLlamaConfig(config, file);
    return { architecture: arch, config, tied: flag(o, 'tie_word_embeddings', false, file) };
  }
  const act = o.activation_function ?? 'gelu_new';
  if (act !== 'gelu_new' && act !== 'gelu_pytorch_tanh') {
    throw new ModelError('unsupported_config', `${file}: activation_function ${JSON.stringify(act)} is not supported (GPT-2 uses gelu_new, the tanh approximation)`);
  }
  const dim = number('n_embd');
  const config: Gpt2Config = {
    context_length: number('n_positions', typeof o.n_ctx === 'number' ? o.n_ctx : undefined),
    embedding_length: dim,
    block_count: number('n_layer'),
    feed_forward_length: number('n_inner', 4 * dim),
    head_count: number('n_head'),
    layer_norm_epsilon: number('layer_norm_epsilon', 1e-5),
    vocab_size: vocab,
  };
  validateGpt2Config(config, file);
  return { architecture: arch, config, tied: flag(o, 'tie_word_embeddings', true, file) };
}

function flag(o: Record<string, unknown>, key: string, fallback: boolean, file: string): boolean {
  const value = o[key] ?? fallback;
  if (typeof value !== 'boolean') throw new ModelError('bad_config', `${file}: ${key} should be true or false, got ${JSON.stringify(value)}`);
  return value;
}

function hfArchitecture(o: Record<string, unknown>, file: string): ArchConfig['architecture'] {
  const classes = Array.isArray(o.architectures) ? o.architectures : [];
  for (const [arch, names] of Object.entries(HF_ARCHITECTURES) as [ArchConfig['architecture'], (typeof HF_ARCHITECTURES)[keyof typeof HF_ARCHITECTURES]][]) {
    if (classes.includes(names.class) || (classes.length === 0 && o.model_type === names.modelType)) return arch;
  }
  const what = classes.length ? `architectures ${JSON.stringify(classes)}` : o.model_type !== undefined ? `model_type ${JSON.stringify(o.model_type)}` : 'no architectures or model_type key';
  const known = Object.values(HF_ARCHITECTURES).map((a) => a.class).join(', ');
  throw new ModelError('unsupported_architecture', `${file}: ${what} is not supported (supported: ${known})`);
}

/** config.json for our model (the keys transformers writes for these classes). */
export function hfConfigJson(a: ArchConfig, extra: { tied: boolean; bos?: number; eos?: number; dtype: string }): Record<string, unknown> {
  const names = HF_ARCHITECTURES[a.architecture];
  const common = { architectures: [names.class], model_type: names.modelType, bos_token_id: extra.bos, eos_token_id: extra.eos, tie_word_embeddings: extra.tied, torch_dtype: extra.dtype };
  if (a.architecture === 'llama') {
    const c = a.config;
    if (c.rope_dimension_count !== c.embedding_length / c.head_count) {
      throw new ModelError('unsupported_config', `partial RoPE (rope.dimension_count ${c.rope_dimension_count} of head size ${c.embedding_length / c.head_count}) has no LlamaForCausalLM config`);
    }
    return {
      ...common,
      hidden_act: 'silu',
      hidden_size: c.embedding_length,
      intermediate_size: c.feed_forward_length,
      num_hidden_layers: c.block_count,
      num_attention_heads: c.head_count,
      num_key_value_heads: c.head_count_kv,
      max_position_embeddings: c.context_length,
      rms_norm_eps: c.layer_norm_rms_epsilon,
      rope_theta: c.rope_freq_base,
      vocab_size: c.vocab_size,
    };
  }
  const c = a.config;
  return {
    ...common,
    activation_function: 'gelu_new',
    n_embd: c.embedding_length,
    n_layer: c.block_count,
    n_head: c.head_count,
    n_inner: c.feed_forward_length,
    n_positions: c.context_length,
    n_ctx: c.context_length,
    layer_norm_epsilon: c.layer_norm_epsilon,
    vocab_size: c.vocab_size,
  };
}

// ---------------------------------------------------------------------------------------------
// tensor names

/** Every tensor's HF name and layout, by GGUF name (output.weight only when not tied). */
export function hfTensorNames(a: ArchConfig, tied: boolean): HfTensorName[] {
  const names: HfTensorName[] = [];
  const add = (gguf: string, hf: string, layout = SAME): void => {
    names.push({ gguf, hf, layout });
  };
  if (a.architecture === 'llama') {
    const c = a.config;
    add('token_embd.weight', 'model.embed_tokens.weight');
    for (let l = 0; l < c.block_count; l++) {
      const [blk, hf] = [`blk.${l}`, `model.layers.${l}`];
      add(`${blk}.attn_norm.weight`, `${hf}.input_layernorm.weight`);
      add(`${blk}.attn_q.weight`, `${hf}.self_attn.q_proj.weight`, { kind: 'permuted', heads: c.head_count });
      add(`${blk}.attn_k.weight`, `${hf}.self_attn.k_proj.weight`, { kind: 'permuted', heads: c.head_count_kv });
      add(`${blk}.attn_v.weight`, `${hf}.self_attn.v_proj.weight`);
      add(`${blk}.attn_output.weight`, `${hf}.self_attn.o_proj.weight`);
      add(`${blk}.ffn_norm.weight`, `${hf}.post_attention_layernorm.weight`);
      add(`${blk}.ffn_gate.weight`, `${hf}.mlp.gate_proj.weight`);
      add(`${blk}.ffn_up.weight`, `${hf}.mlp.up_proj.weight`);
      add(`${blk}.ffn_down.weight`, `${hf}.mlp.down_proj.weight`);
    }
    add('output_norm.weight', 'model.norm.weight');
  } else {
    const t = 'transformer.';
    add('token_embd.weight', `${t}wte.weight`);
    add('position_embd.weight', `${t}wpe.weight`);
    for (let l = 0; l < a.config.block_count; l++) {
      const [blk, hf] = [`blk.${l}`, `${t}h.${l}`];
      for (const p of ['weight', 'bias']) {
        add(`${blk}.attn_norm.${p}`, `${hf}.ln_1.${p}`);
        add(`${blk}.attn_qkv.${p}`, `${hf}.attn.c_attn.${p}`, p === 'weight' ? TRANSPOSED : SAME);
        add(`${blk}.attn_output.${p}`, `${hf}.attn.c_proj.${p}`, p === 'weight' ? TRANSPOSED : SAME);
        add(`${blk}.ffn_norm.${p}`, `${hf}.ln_2.${p}`);
        add(`${blk}.ffn_up.${p}`, `${hf}.mlp.c_fc.${p}`, p === 'weight' ? TRANSPOSED : SAME);
        add(`${blk}.ffn_down.${p}`, `${hf}.mlp.c_proj.${p}`, p === 'weight' ? TRANSPOSED : SAME);
      }
    }
    add('output_norm.weight', `${t}ln_f.weight`);
    add('output_norm.bias', `${t}ln_f.bias`);
  }
  if (!tied) add('output.weight', 'lm_head.weight');
  return names;
}

/** The HF shape of a tensor whose GGUF (row-major) shape is `shape`. */
export function hfShape(shape: readonly number[], layout: HfLayout): number[] {
  return layout.kind === 'transposed' ? [...shape].reverse() : [...shape];
}

// ---------------------------------------------------------------------------------------------
// layouts: whole rows or elements moved, never rounded

/** bytes [rows, cols] of `size`-byte elements → [cols, rows]. */
function transpose(src: Uint8Array, rows: number, cols: number, size: number, dst: Uint8Array): void {
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const from = (r * cols + c) * size;
      const to = (c * rows + r) * size;
      for (let b = 0; b < size; b++) dst[to + b] = src[from + b]!;
    }
  }
}

/**
 * Rows of each head between HF's half-split order (row j·d/2 + i of a head holds pair i's j-th
 * value) and GGUF's interleaved order (row 2i + j). `toGguf` picks the direction.
 */
function permuteHeads(src: Uint8Array, rowBytes: number, rows: number, heads: number, toGguf: boolean, dst: Uint8Array): void {
  const d = rows / heads;
  if (!Number.isInteger(d) || d % 2 !== 0) throw new ModelError('shape_mismatch', `cannot split ${rows} rows into ${heads} heads of an even size`);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < d / 2; i++) {
      for (let j = 0; j < 2; j++) {
        const interleaved = h * d + 2 * i + j;
        const halves = h * d + j * (d / 2) + i;
        const [from, to] = toGguf ? [halves, interleaved] : [interleaved, halves];
        dst.set(src.subarray(from * rowBytes, (from + 1) * rowBytes), to * rowBytes);
      }
    }
  }
}

/**
 * A tensor's bytes moved between layouts. `shape` is the GGUF shape; `size` the element size
 * (row permutation also works on quantized rows: pass size 0 and rowBytes).
 */
export function relayout(src: Uint8Array, shape: readonly number[], layout: HfLayout, size: number, toGguf: boolean, rowBytes = size * shape[shape.length - 1]!): Uint8Array {
  if (layout.kind === 'same') return src;
  const dst = new Uint8Array(src.byteLength);
  if (layout.kind === 'permuted') {
    permuteHeads(src, rowBytes, shape[0]!, layout.heads, toGguf, dst);
  } else {
    const [rows, cols] = shape as [number, number]; // GGUF [out, in]; HF [in, out]
    if (toGguf) transpose(src, cols, rows, size, dst);
    else transpose(src, rows, cols, size, dst);
  }
  return dst;
}

// ---------------------------------------------------------------------------------------------
// reading a checkpoint folder

/** Our dtype for a stored safetensors dtype (1-D tensors always f32). */
function ggufDType(t: SafetensorsTensorInfo): DType {
  if (t.shape.length === 1) {
    if (t.dtype === 'F32' || t.dtype === 'F16' || t.dtype === 'BF16' || t.dtype === 'F64') return 'f32';
  } else if (t.dtype === 'F32' || t.dtype === 'F16' || t.dtype === 'BF16') {
    return t.dtype.toLowerCase() as DType;
  } else if (t.dtype === 'F64') {
    return 'f32';
  }
  throw new FormatError('unsupported_dtype', t.file, `tensor ${t.name} is ${t.dtype}; model weights must be F32, F16, BF16 or F64`);
}

/** One tensor of a checkpoint under its GGUF name, dtype and shape. */
export interface HfTensor {
  name: string;
  dtype: DType;
  shape: number[];
  byteLength: number;
  source: SafetensorsTensorInfo;
  layout: HfLayout;
}

export interface HfCheckpoint {
  dir: string;
  arch: ArchConfig;
  tied: boolean;
  /** config.json as read. */
  json: Record<string, unknown>;
  weights: SafetensorsCheckpoint;
  /** The model's tensors by GGUF name, checked against the config. */
  tensors: Map<string, HfTensor>;
}

export function isHfCheckpoint(dir: string): boolean {
  return fs.existsSync(path.join(dir, HF_CONFIG_FILE)) && fs.statSync(dir).isDirectory();
}

/**
 * Open a checkpoint folder: config.json mapped to our config, the safetensors headers read, every
 * tensor the config implies found (with or without GPT-2's `transformer.` prefix) and its shape
 * checked. Data stays on disk until readHfTensor.
 */
export function openHfCheckpoint(dir: string, vocabSize?: number): HfCheckpoint {
  const file = path.join(dir, HF_CONFIG_FILE);
  const json = readJsonFile(file) as Record<string, unknown>;
  const arch = archConfigFromHf(json, file, vocabSize);
  const weights = openSafetensorsCheckpoint(dir);
  const shapes = tensorShapes(arch);
  const tensors = new Map<string, HfTensor>();
  for (const { gguf, hf, layout } of hfTensorNames(arch, arch.tied)) {
    const source = weights.tensors.get(hf) ?? weights.tensors.get(hf.replace(/^transformer\./, ''));
    if (!source) throw new ModelError('missing_tensor', `${dir}: missing tensor ${hf} (for ${gguf})`);
    const shape = shapes.get(gguf)!;
    const want = hfShape(shape, layout);
    if (source.shape.length !== want.length || source.shape.some((d, i) => d !== want[i])) {
      throw new ModelError('shape_mismatch', `${source.file}: tensor ${source.name} has shape [${source.shape}], ${file} implies [${want}]`);
    }
    const dtype = ggufDType(source);
    const count = shape.reduce((a, b) => a * b, 1);
    tensors.set(gguf, { name: gguf, dtype, shape, byteLength: count * (dtype === 'f32' ? 4 : 2), source, layout });
  }
  const { tied, ...archConfig } = arch;
  return { dir, arch: archConfig as ArchConfig, tied, json, weights, tensors };
}

/** Element size in bytes of a float safetensors dtype. */
const FLOAT_SIZE: Partial<Record<SafetensorsDType, number>> = { F32: 4, F16: 2, BF16: 2, F64: 8 };

/** A tensor's data in GGUF layout and dtype, into `dest` (its byteLength) or a new buffer. */
export function readHfTensor(t: HfTensor, dest: Uint8Array<ArrayBufferLike> = new Uint8Array(t.byteLength)): Uint8Array<ArrayBufferLike> {
  const size = FLOAT_SIZE[t.source.dtype]!;
  // Same layout and dtype: straight into dest. Otherwise read, move and widen.
  if (t.layout.kind === 'same' && t.source.byteLength === t.byteLength) return readSafetensorsData(t.source, dest);
  const raw = relayout(readSafetensorsData(t.source), t.shape, t.layout, size, true);
  if (t.source.byteLength === t.byteLength) {
    dest.set(raw);
    return dest;
  }
  const out = new Float32Array(dest.buffer, dest.byteOffset, dest.byteLength / 4); // widening to f32
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  for (let i = 0; i < out.length; i++) {
    out[i] = size === 8 ? view.getFloat64(i * 8, true) : t.source.dtype === 'BF16' ? bf16ToF32(view.getUint16(i * 2, true)) : f16ToF32(view.getUint16(i * 2, true));
  }
  return dest;
}
