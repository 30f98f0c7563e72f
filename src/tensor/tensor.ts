/**
 * A tensor is a dtype, a shape and a byte view on storage owned by a backend. Row-major and
 * contiguous in its last dimension; `rows()` and `view()` make views that share the bytes.
 *
 * Ownership: whoever allocated a tensor through a backend frees it with `backend.free`; views
 * never own memory. For the wasm backend, `bytes.byteOffset` is the tensor's address in the
 * kernels' linear memory.
 */
import { byteSize, type DType } from './dtype.js';

export type Shape = readonly number[];

export function numel(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export class Tensor {
  constructor(
    readonly dtype: DType,
    readonly shape: Shape,
    /** The tensor's bytes: exactly byteSize(dtype, numel(shape)) long. */
    readonly bytes: Uint8Array,
  ) {
    const want = byteSize(dtype, numel(shape));
    if (bytes.byteLength !== want) {
      throw new RangeError(`tensor [${shape}] ${dtype} needs ${want} bytes, got ${bytes.byteLength}`);
    }
  }

  get numel(): number {
    return numel(this.shape);
  }

  /** Size of the last dimension (the length of one row). */
  get rowLength(): number {
    return this.shape[this.shape.length - 1] ?? 1;
  }

  /** Number of rows: the product of all but the last dimension. */
  get rowCount(): number {
    return this.numel / this.rowLength;
  }

  get rowBytes(): number {
    return byteSize(this.dtype, this.rowLength);
  }

  /** A view on rows [start, start + count), keeping the other dimensions flattened into rows. */
  rows(start: number, count: number): Tensor {
    if (start < 0 || count < 0 || start + count > this.rowCount) {
      throw new RangeError(`rows ${start}..${start + count} out of range for ${this.rowCount} rows`);
    }
    const rb = this.rowBytes;
    return new Tensor(this.dtype, [count, this.rowLength], this.bytes.subarray(start * rb, (start + count) * rb));
  }

  /** The same bytes under another shape with the same element count. */
  view(shape: Shape): Tensor {
    if (numel(shape) !== this.numel) throw new RangeError(`cannot view [${this.shape}] as [${shape}]`);
    return new Tensor(this.dtype, shape, this.bytes);
  }

  /** A Float32Array on the data (f32 tensors only; no copy). */
  f32(): Float32Array {
    if (this.dtype !== 'f32') throw new TypeError(`f32() on a ${this.dtype} tensor`);
    return new Float32Array(this.bytes.buffer, this.bytes.byteOffset, this.numel);
  }
}
