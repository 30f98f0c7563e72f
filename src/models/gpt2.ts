/**
 * GPT-2: token embedding + learned position embedding → N × [LayerNorm → attention (fused q/k/v
 * projection with biases, no rotary embedding, a KV cache) → residual → LayerNorm → GELU MLP with
 * biases → residual] → LayerNorm → classifier (tied to the token embedding unless output.weight
 * is present). The graph is llama.cpp's `gpt2` (llm_build_gpt2), the tensor names its GGUF names.
 *
 * The fused attn_qkv weight [3·dim, dim] holds q's rows, then k's, then v's (and its bias the same
 * thirds), so q, k and v are row views on it: three products whose elements are exactly those of
 * the fused product, written where attention reads them, with no copy.
 */
import type { Backend } from '../backend/backend.js';
import { ModelError } from '../errors.js';
import { Decoder, type DecoderOptions } from '../nn/decoder.js';
import type { KVCache } from '../nn/kv-cache.js';
import * as ops from '../ops/index.js';
import type { Tensor } from '../tensor/tensor.js';

/** Hyper-parameters, named after GGUF's `gpt2.*` keys. */
export interface Gpt2Config {
  context_length: number;
  embedding_length: number;
  block_count: number;
  feed_forward_length: number;
  head_count: number;
  layer_norm_epsilon: number;
  vocab_size: number;
}

/** A weight and its bias. */
export interface Affine {
  weight: Tensor;
  bias: Tensor;
}

export interface Gpt2LayerWeights {
  attnNorm: Affine;
  q: Affine;
  k: Affine;
  v: Affine;
  attnOutput: Affine;
  ffnNorm: Affine;
  ffnUp: Affine;
  ffnDown: Affine;
}

export interface Gpt2Weights {
  tokenEmbd: Tensor;
  positionEmbd: Tensor;
  layers: Gpt2LayerWeights[];
  outputNorm: Affine;
  /** The classifier; the same tensor as tokenEmbd when the model ties them. */
  output: Tensor;
}

const headDim = (c: Gpt2Config): number => c.embedding_length / c.head_count;

/** The GGUF tensor names and row-major shapes of a GPT-2 model (output.weight is optional: tied). */
export function gpt2TensorShapes(c: Gpt2Config): Map<string, number[]> {
  const dim = c.embedding_length;
  const ff = c.feed_forward_length;
  const shapes = new Map<string, number[]>([
    ['token_embd.weight', [c.vocab_size, dim]],
    ['position_embd.weight', [c.context_length, dim]],
    ['output_norm.weight', [dim]],
    ['output_norm.bias', [dim]],
    ['output.weight', [c.vocab_size, dim]],
  ]);
  for (let l = 0; l < c.block_count; l++) {
    const blk = `blk.${l}`;
    shapes.set(`${blk}.attn_norm.weight`, [dim]);
    shapes.set(`${blk}.attn_norm.bias`, [dim]);
    shapes.set(`${blk}.attn_qkv.weight`, [3 * dim, dim]);
    shapes.set(`${blk}.attn_qkv.bias`, [3 * dim]);
    shapes.set(`${blk}.attn_output.weight`, [dim, dim]);
    shapes.set(`${blk}.attn_output.bias`, [dim]);
    shapes.set(`${blk}.ffn_norm.weight`, [dim]);
    shapes.set(`${blk}.ffn_norm.bias`, [dim]);
    shapes.set(`${blk}.ffn_up.weight`, [ff, dim]);
    shapes.set(`${blk}.ffn_up.bias`, [ff]);
    shapes.set(`${blk}.ffn_down.weight`, [dim, ff]);
    shapes.set(`${blk}.ffn_down.bias`, [dim]);
  }
  return shapes;
}

/** Check that the hyper-parameters describe a model we can run. */
export function validateGpt2Config(c: Gpt2Config, source: string): void {
  const positive = ['context_length', 'embedding_length', 'block_count', 'feed_forward_length', 'head_count', 'vocab_size'] as const;
  for (const key of positive) {
    if (!Number.isInteger(c[key]) || c[key] <= 0) throw new ModelError('bad_config', `${source}: ${key} must be a positive integer, got ${c[key]}`);
  }
  if (c.embedding_length % c.head_count !== 0) {
    throw new ModelError('bad_config', `${source}: embedding_length ${c.embedding_length} is not a multiple of head_count ${c.head_count}`);
  }
  if (!(c.layer_norm_epsilon > 0)) throw new ModelError('bad_config', `${source}: layer_norm_epsilon must be positive, got ${c.layer_norm_epsilon}`);
}

/** Hyper-parameters from GGUF metadata (`gpt2.*` keys, as llama.cpp reads them). */
export function gpt2ConfigFromGGUF(get: (key: string) => unknown, vocabSize: number, source: string): Gpt2Config {
  const number = (key: string, fallback?: number): number => {
    const value = get(`gpt2.${key}`);
    if (value === undefined && fallback !== undefined) return fallback;
    if (value === undefined) throw new ModelError('missing_key', `${source}: missing required metadata key gpt2.${key}`);
    if (typeof value !== 'number') throw new ModelError('bad_config', `${source}: gpt2.${key} should be a number, got ${typeof value}`);
    return value;
  };
  const config: Gpt2Config = {
    context_length: number('context_length'),
    embedding_length: number('embedding_length'),
    block_count: number('block_count'),
    feed_forward_length: number('feed_forward_length'),
    head_count: number('attention.head_count'),
    layer_norm_epsilon: number('attention.layer_norm_epsilon'),
    vocab_size: number('vocab_size', vocabSize),
  };
  validateGpt2Config(config, source);
  return config;
}

/** The weights from loaded tensors by GGUF name (`get` throws for a missing one; output.weight may be absent). */
export function gpt2Weights(c: Gpt2Config, get: (name: string) => Tensor, has: (name: string) => boolean): Gpt2Weights {
  const dim = c.embedding_length;
  const affine = (name: string): Affine => ({ weight: get(`${name}.weight`), bias: get(`${name}.bias`) });
  const layers = Array.from({ length: c.block_count }, (_, l): Gpt2LayerWeights => {
    const blk = `blk.${l}`;
    const qkv = affine(`${blk}.attn_qkv`);
    const bias = qkv.bias.view([3, dim]);
    const third = (i: number): Affine => ({ weight: qkv.weight.rows(i * dim, dim), bias: bias.rows(i, 1) });
    return {
      attnNorm: affine(`${blk}.attn_norm`),
      q: third(0),
      k: third(1),
      v: third(2),
      attnOutput: affine(`${blk}.attn_output`),
      ffnNorm: affine(`${blk}.ffn_norm`),
      ffnUp: affine(`${blk}.ffn_up`),
      ffnDown: affine(`${blk}.ffn_down`),
    };
  });
  const tokenEmbd = get('token_embd.weight');
  return {
    tokenEmbd,
    positionEmbd: get('position_embd.weight'),
    layers,
    outputNorm: affine('output_norm'),
    output: has('output.weight') ? get('output.weight') : tokenEmbd,
  };
}

/** Activation buffers for a batch of up to `rows` tokens, reused across calls. */
class Scratch {
  readonly tensors: Tensor[];
  constructor(
    readonly be: Backend,
    readonly rows: number,
    c: Gpt2Config,
    readonly x = be.alloc('f32', [rows, c.embedding_length]),
    readonly xb = be.alloc('f32', [rows, c.embedding_length]),
    readonly q = be.alloc('f32', [rows, c.embedding_length]),
    readonly k = be.alloc('f32', [rows, c.embedding_length]),
    readonly v = be.alloc('f32', [rows, c.embedding_length]),
    readonly att = be.alloc('f32', [rows, c.embedding_length]),
    readonly up = be.alloc('f32', [rows, c.feed_forward_length]),
  ) {
    this.tensors = [x, xb, q, k, v, att, up];
  }

  free(): void {
    for (const t of this.tensors) this.be.free(t);
  }
}

/** Learned positions: there is no embedding past the trained context, so the cache cannot be longer. */
function checkContext(c: Gpt2Config, options: DecoderOptions): DecoderOptions {
  if (options.contextLength > c.context_length) {
    throw new ModelError('context_too_long', `a GPT-2 model has position embeddings for ${c.context_length} positions; contextLength ${options.contextLength} is more`);
  }
  return options;
}

export class Gpt2Model extends Decoder<Gpt2Config> {
  private scratch: Scratch | undefined;

  constructor(backend: Backend, config: Gpt2Config, readonly weights: Gpt2Weights, options: DecoderOptions) {
    super(backend, config, checkContext(config, options), config.embedding_length);
  }

  private scratchFor(rows: number): Scratch {
    if (!this.scratch || this.scratch.rows < rows) {
      this.scratch?.free();
      this.scratch = new Scratch(this.backend, Math.max(rows, this.scratch?.rows ?? 0), this.config);
    }
    return this.scratch;
  }

  /** out = x · wᵀ + b */
  private linear(out: Tensor, x: Tensor, w: Affine): void {
    ops.matmul(this.backend, out, x, w.weight);
    ops.addRows(this.backend, out, out, w.bias);
  }

  /** One readable forward pass over a batch of n tokens. */
  protected override forwardBatch(tokens: ArrayLike<number>, pos: number, allLogits: boolean, cache: KVCache): Tensor {
    const be = this.backend;
    const c = this.config;
    const w = this.weights;
    const n = tokens.length;
    const s = this.scratchFor(n);
    const [x, xb, q, k, v, att, up] = s.tensors.map((t) => t.rows(0, n)) as [Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor];
    const eps = c.layer_norm_epsilon;
    const attention = { nHead: c.head_count, nKvHead: c.head_count, headDim: headDim(c), pos, scale: 1 / Math.sqrt(headDim(c)) };

    // input: token embedding + the embedding of each position
    ops.getRows(be, x, w.tokenEmbd, tokens);
    ops.getRows(be, xb, w.positionEmbd, Array.from({ length: n }, (_, i) => pos + i));
    ops.add(be, x, x, xb);
    for (let l = 0; l < c.block_count; l++) {
      const layer = w.layers[l]!;
      // attention
      ops.layernorm(be, xb, x, layer.attnNorm.weight, layer.attnNorm.bias, eps);
      this.linear(q, xb, layer.q);
      this.linear(k, xb, layer.k);
      this.linear(v, xb, layer.v);
      this.cachedAttention(att, q, k, v, cache, l, attention);
      this.linear(xb, att, layer.attnOutput);
      ops.add(be, x, x, xb);
      // feed-forward: down(gelu(up(x)))
      ops.layernorm(be, xb, x, layer.ffnNorm.weight, layer.ffnNorm.bias, eps);
      this.linear(up, xb, layer.ffnUp);
      ops.gelu(be, up, up);
      this.linear(xb, up, layer.ffnDown);
      ops.add(be, x, x, xb);
    }
    return this.classify(x, xb, allLogits, (out, last) => ops.layernorm(be, out, last, w.outputNorm.weight, w.outputNorm.bias, eps), w.output);
  }

  override dispose(): void {
    this.scratch?.free();
    this.scratch = undefined;
    super.dispose();
  }
}
