/**
 * The Llama family (Llama 1/2/3, TinyStories, SmolLM): token embedding → N × [RMSNorm → attention
 * with RoPE and a KV cache (MHA/GQA/MQA) → residual → RMSNorm → SwiGLU feed-forward → residual] →
 * RMSNorm → classifier (tied to the embedding or not).
 *
 * A prompt goes through as one batch of rows (matrix-matrix products); decoding is the same code
 * with one row.
 */
import type { Backend } from '../backend/backend.js';
import * as ops from '../ops/index.js';
import { Decoder, type DecoderOptions } from '../nn/decoder.js';
import type { KVCache } from '../nn/kv-cache.js';
import type { Tensor } from '../tensor/tensor.js';
import { ModelError } from '../errors.js';

/** Hyper-parameters, named after GGUF's `llama.*` keys. */
export interface LlamaConfig {
  context_length: number;
  embedding_length: number;
  block_count: number;
  feed_forward_length: number;
  head_count: number;
  head_count_kv: number;
  /** Rotated dimensions per head (rope.dimension_count); usually the head size. */
  rope_dimension_count: number;
  rope_freq_base: number;
  layer_norm_rms_epsilon: number;
  vocab_size: number;
}

export interface LlamaLayerWeights {
  attnNorm: Tensor;
  wq: Tensor;
  wk: Tensor;
  wv: Tensor;
  wo: Tensor;
  ffnNorm: Tensor;
  ffnGate: Tensor;
  ffnUp: Tensor;
  ffnDown: Tensor;
}

export interface LlamaWeights {
  tokenEmbd: Tensor;
  layers: LlamaLayerWeights[];
  outputNorm: Tensor;
  /** The classifier; the same tensor as tokenEmbd when the model ties them. */
  output: Tensor;
}

export const headDim = (c: LlamaConfig): number => c.embedding_length / c.head_count;
export const kvDim = (c: LlamaConfig): number => headDim(c) * c.head_count_kv;

/** The GGUF tensor names and row-major shapes of a Llama model (output.weight is optional: tied). */
export function llamaTensorShapes(c: LlamaConfig): Map<string, number[]> {
  const dim = c.embedding_length;
  const shapes = new Map<string, number[]>([
    ['token_embd.weight', [c.vocab_size, dim]],
    ['output_norm.weight', [dim]],
    ['output.weight', [c.vocab_size, dim]],
  ]);
  for (let l = 0; l < c.block_count; l++) {
    shapes.set(`blk.${l}.attn_norm.weight`, [dim]);
    shapes.set(`blk.${l}.attn_q.weight`, [dim, dim]);
    shapes.set(`blk.${l}.attn_k.weight`, [kvDim(c), dim]);
    shapes.set(`blk.${l}.attn_v.weight`, [kvDim(c), dim]);
    shapes.set(`blk.${l}.attn_output.weight`, [dim, dim]);
    shapes.set(`blk.${l}.ffn_norm.weight`, [dim]);
    shapes.set(`blk.${l}.ffn_gate.weight`, [c.feed_forward_length, dim]);
    shapes.set(`blk.${l}.ffn_up.weight`, [c.feed_forward_length, dim]);
    shapes.set(`blk.${l}.ffn_down.weight`, [dim, c.feed_forward_length]);
  }
  return shapes;
}

/** Check that the hyper-parameters describe a model we can run. */
export function validateLlamaConfig(c: LlamaConfig, source: string): void {
  const positive = ['context_length', 'embedding_length', 'block_count', 'feed_forward_length', 'head_count', 'head_count_kv', 'vocab_size'] as const;
  for (const key of positive) {
    if (!Number.isInteger(c[key]) || c[key] <= 0) throw new ModelError('bad_config', `${source}: ${key} must be a positive integer, got ${c[key]}`);
  }
  if (c.embedding_length % c.head_count !== 0) {
    throw new ModelError('bad_config', `${source}: embedding_length ${c.embedding_length} is not a multiple of head_count ${c.head_count}`);
  }
  if (c.head_count % c.head_count_kv !== 0) {
    throw new ModelError('bad_config', `${source}: head_count ${c.head_count} is not a multiple of head_count_kv ${c.head_count_kv}`);
  }
  const rot = c.rope_dimension_count;
  if (!Number.isInteger(rot) || rot <= 0 || rot > headDim(c) || rot % 2 !== 0) {
    throw new ModelError('bad_config', `${source}: rope.dimension_count ${rot} must be even and at most the head size ${headDim(c)}`);
  }
  if (!(c.rope_freq_base > 0)) throw new ModelError('bad_config', `${source}: rope.freq_base must be positive, got ${c.rope_freq_base}`);
  if (!(c.layer_norm_rms_epsilon > 0)) throw new ModelError('bad_config', `${source}: layer_norm_rms_epsilon must be positive`);
}

/** Activation buffers for a batch of up to `rows` tokens, reused across calls. */
class Scratch {
  constructor(
    readonly be: Backend,
    readonly rows: number,
    c: LlamaConfig,
    readonly x = be.alloc('f32', [rows, c.embedding_length]),
    readonly xb = be.alloc('f32', [rows, c.embedding_length]),
    readonly q = be.alloc('f32', [rows, c.embedding_length]),
    readonly k = be.alloc('f32', [rows, kvDim(c)]),
    readonly v = be.alloc('f32', [rows, kvDim(c)]),
    readonly att = be.alloc('f32', [rows, c.embedding_length]),
    readonly gate = be.alloc('f32', [rows, c.feed_forward_length]),
    readonly up = be.alloc('f32', [rows, c.feed_forward_length]),
  ) {}

  free(): void {
    for (const t of [this.x, this.xb, this.q, this.k, this.v, this.att, this.gate, this.up]) this.be.free(t);
  }
}

export type LlamaOptions = DecoderOptions;

export class LlamaModel extends Decoder<LlamaConfig> {
  private scratch: Scratch | undefined;

  constructor(backend: Backend, config: LlamaConfig, readonly weights: LlamaWeights, options: LlamaOptions) {
    super(backend, config, options, kvDim(config));
  }

  private scratchFor(rows: number): Scratch {
    if (!this.scratch || this.scratch.rows < rows) {
      this.scratch?.free();
      this.scratch = new Scratch(this.backend, Math.max(rows, this.scratch?.rows ?? 0), this.config);
    }
    return this.scratch;
  }

  /** One readable forward pass over a batch of n tokens. */
  protected override forwardBatch(tokens: ArrayLike<number>, pos: number, allLogits: boolean, cache: KVCache): Tensor {
    const be = this.backend;
    const c = this.config;
    const w = this.weights;
    const n = tokens.length;
    const s = this.scratchFor(n);
    const x = s.x.rows(0, n);
    const xb = s.xb.rows(0, n);
    const q = s.q.rows(0, n);
    const k = s.k.rows(0, n);
    const v = s.v.rows(0, n);
    const att = s.att.rows(0, n);
    const gate = s.gate.rows(0, n);
    const up = s.up.rows(0, n);
    const eps = c.layer_norm_rms_epsilon;
    const rope = { headDim: headDim(c), nRot: c.rope_dimension_count, theta: c.rope_freq_base, neox: false };
    const attention = { nHead: c.head_count, nKvHead: c.head_count_kv, headDim: headDim(c), pos, scale: 1 / Math.sqrt(headDim(c)) };

    ops.getRows(be, x, w.tokenEmbd, tokens);
    for (let l = 0; l < c.block_count; l++) {
      const layer = w.layers[l]!;
      // attention: q, k, v projections, rotate q and k by position, append k and v to the cache
      ops.rmsnorm(be, xb, x, layer.attnNorm, eps);
      ops.matmul(be, q, xb, layer.wq);
      ops.matmul(be, k, xb, layer.wk);
      ops.matmul(be, v, xb, layer.wv);
      ops.rope(be, q, pos, { ...rope, nHead: c.head_count });
      ops.rope(be, k, pos, { ...rope, nHead: c.head_count_kv });
      this.cachedAttention(att, q, k, v, cache, l, attention);
      ops.matmul(be, xb, att, layer.wo);
      ops.add(be, x, x, xb);
      // feed-forward: down(silu(gate(x)) · up(x))
      ops.rmsnorm(be, xb, x, layer.ffnNorm, eps);
      ops.matmul(be, gate, xb, layer.ffnGate);
      ops.matmul(be, up, xb, layer.ffnUp);
      ops.swiglu(be, gate, gate, up);
      ops.matmul(be, xb, gate, layer.ffnDown);
      ops.add(be, x, x, xb);
    }
    return this.classify(x, xb, allLogits, (out, last) => ops.rmsnorm(be, out, last, w.outputNorm, eps), w.output);
  }

  override dispose(): void {
    this.scratch?.free();
    this.scratch = undefined;
    super.dispose();
  }
}

/**
 * Hyper-parameters from GGUF metadata (`llama.*` keys). `get` returns a key's value or undefined.
 * Missing optional keys take llama.cpp's defaults.
 */
export function llamaConfigFromGGUF(get: (key: string) => unknown, vocabSize: number, source: string): LlamaConfig {
  const required = (key: string): number => {
    const value = get(`llama.${key}`);
    if (value === undefined) throw new ModelError('missing_key', `${source}: missing required metadata key llama.${key}`);
    if (typeof value !== 'number') throw new ModelError('bad_config', `${source}: llama.${key} should be a number, got ${typeof value}`);
    return value;
  };
  const optional = (key: string, fallback: number): number => {
    const value = get(`llama.${key}`);
    return typeof value === 'number' ? value : fallback;
  };
  const dim = required('embedding_length');
  const heads = required('attention.head_count');
  const config: LlamaConfig = {
    context_length: required('context_length'),
    embedding_length: dim,
    block_count: required('block_count'),
    feed_forward_length: required('feed_forward_length'),
    head_count: heads,
    head_count_kv: optional('attention.head_count_kv', heads),
    rope_dimension_count: optional('rope.dimension_count', dim / heads),
    rope_freq_base: optional('rope.freq_base', 10000),
    layer_norm_rms_epsilon: optional('attention.layer_norm_rms_epsilon', 1e-5),
    vocab_size: optional('vocab_size', vocabSize),
  };
  validateLlamaConfig(config, source);
  return config;
}

/** Hyper-parameters from a llama2.c checkpoint header (it always uses θ = 10000 and ε = 1e-5). */
export function llamaConfigFromLlama2c(h: {
  dim: number; hiddenDim: number; nLayers: number; nHeads: number; nKvHeads: number; vocabSize: number; seqLen: number;
}, source: string): LlamaConfig {
  const config: LlamaConfig = {
    context_length: h.seqLen,
    embedding_length: h.dim,
    block_count: h.nLayers,
    feed_forward_length: h.hiddenDim,
    head_count: h.nHeads,
    head_count_kv: h.nKvHeads,
    rope_dimension_count: h.dim / h.nHeads,
    rope_freq_base: 10000,
    layer_norm_rms_epsilon: 1e-5,
    vocab_size: h.vocabSize,
  };
  validateLlamaConfig(config, source);
  return config;
}

/** The weights from loaded tensors by GGUF name (`get` throws for a missing one; output.weight may be absent: tied). */
export function llamaWeights(c: LlamaConfig, get: (name: string) => Tensor, has: (name: string) => boolean): LlamaWeights {
  const layers = Array.from({ length: c.block_count }, (_, l) => ({
    attnNorm: get(`blk.${l}.attn_norm.weight`),
    wq: get(`blk.${l}.attn_q.weight`),
    wk: get(`blk.${l}.attn_k.weight`),
    wv: get(`blk.${l}.attn_v.weight`),
    wo: get(`blk.${l}.attn_output.weight`),
    ffnNorm: get(`blk.${l}.ffn_norm.weight`),
    ffnGate: get(`blk.${l}.ffn_gate.weight`),
    ffnUp: get(`blk.${l}.ffn_up.weight`),
    ffnDown: get(`blk.${l}.ffn_down.weight`),
  }));
  const tokenEmbd = get('token_embd.weight');
  return { tokenEmbd, layers, outputNorm: get('output_norm.weight'), output: has('output.weight') ? get('output.weight') : tokenEmbd };
}
