/** The shape and dtype checks ops make before calling a kernel; messages name the op and the shapes. */
import type { Tensor } from '../tensor/tensor.js';

export function fail(op: string, message: string): never {
  throw new Error(`${op}: ${message}`);
}

export function expectF32(op: string, ...tensors: Tensor[]): void {
  for (const t of tensors) if (t.dtype !== 'f32') fail(op, `expected an f32 tensor, got ${t.dtype} [${t.shape}]`);
}

export function expectSameSize(op: string, a: Tensor, b: Tensor): void {
  if (a.numel !== b.numel) fail(op, `size mismatch: [${a.shape}] vs [${b.shape}]`);
}

/** x's rows are nHead heads of headDim values, and nRot fits in a head. */
export function expectRope(op: string, x: Tensor, p: { nHead: number; headDim: number; nRot: number }): void {
  if (x.rowLength !== p.nHead * p.headDim) fail(op, `rows of ${x.rowLength} are not ${p.nHead} heads × ${p.headDim}`);
  if (p.nRot > p.headDim || p.nRot % 2 !== 0) fail(op, `nRot ${p.nRot} must be even and ≤ headDim ${p.headDim}`);
}
