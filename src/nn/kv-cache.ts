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

  free(): void {
    for (const t of [...this.keys, ...this.values]) this.backend.free(t);
    this.keys.length = 0;
    this.values.length = 0;
  }
}
