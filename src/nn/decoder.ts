/**
 * What every decoder-only architecture shares around its own forward pass: the KV cache (one per
 * sequence), splitting long inputs into batches, the logits buffer, and the cached-attention step.
 * An architecture (models/llama.ts, models/gpt2.ts) supplies `forwardBatch`, one batch of tokens
 * through its layers.
 */
import type { AttentionParams, Backend } from '../backend/backend.js';
import { ModelError } from '../errors.js';
import * as ops from '../ops/index.js';
import type { Tensor } from '../tensor/tensor.js';
import { KVCache, type CacheType } from './kv-cache.js';

/** The hyper-parameters the shared code reads (both architectures' configs have them). */
export interface DecoderConfig {
  context_length: number;
  block_count: number;
  vocab_size: number;
}

export interface DecoderOptions {
  cacheType: CacheType;
  /** Positions the KV cache holds (≤ context_length). */
  contextLength: number;
  /** Most tokens one forward call processes at once; longer inputs are split. */
  maxBatch: number;
}

export abstract class Decoder<C extends DecoderConfig = DecoderConfig> {
  readonly cache: KVCache;
  /** Logits rows, sized separately: a 128k vocabulary makes them the largest activation. */
  private logits: Tensor | undefined;

  constructor(
    readonly backend: Backend,
    readonly config: C,
    readonly options: DecoderOptions,
    /** Values per KV cache row: KV heads × head size. */
    readonly kvWidth: number,
  ) {
    this.cache = this.createCache();
  }

  /**
   * A KV cache for another sequence (a sample, a beam, a draft): sequences that share a prefix
   * copy its rows with KVCache.copyFrom instead of running it again. The caller frees it.
   */
  createCache(): KVCache {
    return new KVCache(this.backend, this.config.block_count, this.options.contextLength, this.kvWidth, this.options.cacheType);
  }

  /**
   * Run `tokens` at positions pos, pos+1, ... through the model, filling the KV cache (the model's
   * own, or `cache` for another sequence). Positions from `pos` on are overwritten, so a sequence
   * steps back by calling forward at an earlier position (speculative decoding rejects this way).
   * Returns the logits of the last token, or of every token with `allLogits` (as [n, vocab]).
   * The returned tensor is a view on scratch memory, valid until the next call.
   */
  forward(tokens: ArrayLike<number>, pos: number, allLogits = false, cache: KVCache = this.cache): Tensor {
    const n = tokens.length;
    if (n === 0) throw new ModelError('empty_input', 'forward: no tokens');
    if (pos < 0 || pos + n > cache.length) {
      throw new ModelError('context_overflow', `positions ${pos}..${pos + n} exceed the context length ${cache.length}`);
    }
    if (n > this.options.maxBatch) {
      if (allLogits) throw new ModelError('batch_too_large', `forward with all logits takes at most ${this.options.maxBatch} tokens`);
      for (let start = 0; start < n - 1; start += this.options.maxBatch) {
        const end = Math.min(start + this.options.maxBatch, n - 1);
        this.forwardBatch(Array.prototype.slice.call(tokens, start, end), pos + start, false, cache);
      }
      return this.forwardBatch([tokens[n - 1]!], pos + n - 1, false, cache);
    }
    return this.forwardBatch(tokens, pos, allLogits, cache);
  }

  /** One batch of at most maxBatch tokens through the layers; returns the wanted logits rows. */
  protected abstract forwardBatch(tokens: ArrayLike<number>, pos: number, allLogits: boolean, cache: KVCache): Tensor;

  /** The logits buffer for `rows` rows (grown when needed). */
  protected logitsFor(rows: number): Tensor {
    if (!this.logits || this.logits.rowCount < rows) {
      if (this.logits) this.backend.free(this.logits);
      this.logits = this.backend.alloc('f32', [rows, this.config.vocab_size]);
    }
    return this.logits.rows(0, rows);
  }

  /**
   * The classifier head: the final norm (`norm(out, x)`) and `output` on the last row of the
   * residual stream x, or on every row with allLogits (only the rows whose logits are wanted).
   * xb is scratch of x's shape.
   */
  protected classify(x: Tensor, xb: Tensor, allLogits: boolean, norm: (out: Tensor, x: Tensor) => void, output: Tensor): Tensor {
    const n = x.rowCount;
    const first = allLogits ? 0 : n - 1;
    const rows = n - first;
    const xbLast = xb.rows(first, rows);
    const logits = this.logitsFor(rows);
    norm(xbLast, x.rows(first, rows));
    ops.matmul(this.backend, logits, xbLast, output);
    return logits;
  }

  /** Append this batch's k and v rows to layer `layer` of the cache at p.pos, then attend over the cache. */
  protected cachedAttention(out: Tensor, q: Tensor, k: Tensor, v: Tensor, cache: KVCache, layer: number, p: AttentionParams): void {
    ops.setRows(this.backend, cache.keys[layer]!, p.pos, k);
    ops.setRows(this.backend, cache.values[layer]!, p.pos, v);
    ops.attention(this.backend, out, q, cache.keys[layer]!, cache.values[layer]!, p);
  }

  /** Free the logits and the cache; subclasses free their scratch first. */
  dispose(): void {
    if (this.logits) this.backend.free(this.logits);
    this.logits = undefined;
    this.cache.free();
  }
}

/** Any loaded architecture, as the decoders (sampling, beams, speculative) drive it. */
export type Network = Decoder<DecoderConfig>;
