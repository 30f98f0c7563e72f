/**
 * The key/value cache: for each layer, one [contextLength, kvDim] tensor of keys and one of values,
 * in f32 or f16 (llama.cpp's default; halves the memory at a small cost in precision).
 */
import type { Backend } from '../backend/backend.js';
import type { Tensor } from '../tensor/tensor.js';

export type CacheType = 'f32' | 'f16';

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
      const bytes = (positions * this.keys[l].bytes.byteLength) / this.length;
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
