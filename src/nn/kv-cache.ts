/**
 * The key/value cache: for each layer, one [contextLength, kvDim] tensor of keys and one of values,
 * in f32, f16 (llama.cpp's default; half the memory at a small cost in precision) or q8_0
 * (llama.cpp's `-ctk q8_0 -ctv q8_0`: 34 bytes per 32 values, 53% of f16, rows quantized as they
 * are written; see backend.ts for the arithmetic).
 */
import type { Backend } from '../backend/backend.js';
import { RequestError } from '../errors.js';
import { byteSize } from '../tensor/dtype.js';
import type { Tensor } from '../tensor/tensor.js';

export type CacheType = 'f32' | 'f16' | 'q8_0';

export const CACHE_TYPES: readonly CacheType[] = ['f32', 'f16', 'q8_0'];

/**
 * Check that `type` names a cache type and, given a model's KV row length (nKvHead · headDim),
 * that it can hold those rows: q8_0 stores each row as blocks of 32. `source` names the model.
 */
export function checkCacheType(type: unknown, rowLength?: number, source = 'the model'): asserts type is CacheType {
  if (!CACHE_TYPES.includes(type as CacheType)) {
    throw new RequestError('invalid_cache_type', 'cacheType', `must be ${CACHE_TYPES.join(', ')}, got ${String(type)}`);
  }
  if (type === 'q8_0' && rowLength !== undefined && rowLength % 32 !== 0) {
    throw new RequestError(
      'invalid_cache_type',
      'cacheType',
      `q8_0 stores each KV row in blocks of 32 values, but ${source} has KV rows of ${rowLength} values (head_count_kv × head size); use f16 or f32`,
    );
  }
}

/** Bytes of a cache: keys and values of `layers` layers, `length` positions of `rowLength` values. */
export function kvCacheBytes(type: CacheType, layers: number, length: number, rowLength: number): number {
  return 2 * layers * length * byteSize(type, rowLength);
}

export class KVCache {
  readonly keys: Tensor[] = [];
  readonly values: Tensor[] = [];

  constructor(
    private readonly backend: Backend,
    layers: number,
    /** Positions held. */
    readonly length: number,
    readonly rowLength: number,
    readonly dtype: CacheType,
  ) {
    checkCacheType(dtype, rowLength);
    for (let l = 0; l < layers; l++) {
      this.keys.push(backend.alloc(dtype, [length, rowLength]));
      this.values.push(backend.alloc(dtype, [length, rowLength]));
    }
  }

  get byteLength(): number {
    return this.keys.length * 2 * (this.keys[0]?.bytes.byteLength ?? 0);
  }

  /** Copy positions [0, positions) of every layer from `other` (a cache of the same shape): a shared prefix. */
  copyFrom(other: KVCache, positions: number): void {
    if (other.length !== this.length || other.rowLength !== this.rowLength || other.dtype !== this.dtype || other.keys.length !== this.keys.length) {
      throw new Error('KVCache.copyFrom: caches differ in shape or type');
    }
    if (!Number.isInteger(positions) || positions < 0 || positions > this.length) {
      throw new Error(`KVCache.copyFrom: ${positions} positions do not fit ${this.length}`);
    }
    for (let l = 0; l < this.keys.length; l++) {
      const bytes = positions * this.keys[l].rowBytes; // whole rows: q8_0 blocks never straddle rows
      this.keys[l].bytes.set(other.keys[l].bytes.subarray(0, bytes));
      this.values[l].bytes.set(other.values[l].bytes.subarray(0, bytes));
    }
  }

  free(): void {
    for (const t of [...this.keys, ...this.values]) this.backend.free(t);
    this.keys.length = 0;
    this.values.length = 0;
  }
}
