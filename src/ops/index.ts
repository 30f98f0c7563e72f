/**
 * Ops: the one operation set that models (and, later, autograd) call. Each op checks shapes and
 * dtypes once, with a message that names the op and the shapes, then hands the work to the
 * backend's kernel, which may assume valid inputs.
 */
import type { AttentionParams, Backend, RopeParams } from '../backend/backend.js';
import type { Tensor } from '../tensor/tensor.js';
import { expectF32, expectRope, expectSameSize, fail } from './check.js';

/** out[M, N] = x[M, K] · w[N, K]ᵀ */
export function matmul(be: Backend, out: Tensor, x: Tensor, w: Tensor): void {
  expectF32('matmul', out, x);
  if (x.rowLength !== w.rowLength) fail('matmul', `x [${x.shape}] and w [${w.shape}] differ in K`);
  if (out.rowCount !== x.rowCount || out.rowLength !== w.rowCount) {
    fail('matmul', `out [${out.shape}] should be [${x.rowCount}, ${w.rowCount}]`);
  }
  be.matmul(out, x, w);
}

/** out[i, :] = table[ids[i], :] */
export function getRows(be: Backend, out: Tensor, table: Tensor, ids: ArrayLike<number>): void {
  expectF32('getRows', out);
  if (out.rowCount !== ids.length || out.rowLength !== table.rowLength) {
    fail('getRows', `out [${out.shape}] should be [${ids.length}, ${table.rowLength}]`);
  }
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    if (!Number.isInteger(id) || id < 0 || id >= table.rowCount) fail('getRows', `id ${id} out of range [0, ${table.rowCount})`);
  }
  be.getRows(out, table, ids);
}

export function rmsnorm(be: Backend, out: Tensor, x: Tensor, weight: Tensor, eps: number): void {
  expectF32('rmsnorm', out, x, weight);
  expectSameSize('rmsnorm', out, x);
  if (weight.numel !== x.rowLength) fail('rmsnorm', `weight [${weight.shape}] should have ${x.rowLength} values`);
  be.rmsnorm(out, x, weight, eps);
}

export function rope(be: Backend, x: Tensor, pos: number, p: RopeParams): void {
  expectF32('rope', x);
  expectRope('rope', x, p);
  be.rope(x, pos, p);
}

export function softmax(be: Backend, x: Tensor): void {
  expectF32('softmax', x);
  be.softmax(x);
}

export function swiglu(be: Backend, out: Tensor, gate: Tensor, up: Tensor): void {
  expectF32('swiglu', out, gate, up);
  expectSameSize('swiglu', out, gate);
  expectSameSize('swiglu', out, up);
  be.swiglu(out, gate, up);
}

export function gelu(be: Backend, out: Tensor, x: Tensor): void {
  expectF32('gelu', out, x);
  expectSameSize('gelu', out, x);
  be.gelu(out, x);
}

export function add(be: Backend, out: Tensor, a: Tensor, b: Tensor): void {
  expectF32('add', out, a, b);
  expectSameSize('add', out, a);
  expectSameSize('add', out, b);
  be.add(out, a, b);
}

export function mul(be: Backend, out: Tensor, a: Tensor, b: Tensor): void {
  expectF32('mul', out, a, b);
  expectSameSize('mul', out, a);
  expectSameSize('mul', out, b);
  be.mul(out, a, b);
}

/** Write src's rows into dst at row `start` (f32 → f32, f16 or q8_0). */
export function setRows(be: Backend, dst: Tensor, start: number, src: Tensor): void {
  expectF32('setRows', src);
  if (dst.dtype !== 'f32' && dst.dtype !== 'f16' && dst.dtype !== 'q8_0') fail('setRows', `destination dtype ${dst.dtype} is not f32, f16 or q8_0`);
  if (src.rowLength !== dst.rowLength) fail('setRows', `row length ${src.rowLength} vs ${dst.rowLength}`);
  if (start < 0 || start + src.rowCount > dst.rowCount) {
    fail('setRows', `rows ${start}..${start + src.rowCount} out of range for ${dst.rowCount}`);
  }
  be.setRows(dst, start, src);
}

export function attention(be: Backend, out: Tensor, q: Tensor, k: Tensor, v: Tensor, p: AttentionParams): void {
  expectF32('attention', out, q);
  expectSameSize('attention', out, q);
  if (p.nHead % p.nKvHead !== 0) fail('attention', `${p.nHead} heads is not a multiple of ${p.nKvHead} KV heads`);
  if (q.rowLength !== p.nHead * p.headDim) fail('attention', `q rows of ${q.rowLength} are not ${p.nHead} × ${p.headDim}`);
  if (k.rowLength !== p.nKvHead * p.headDim || v.rowLength !== k.rowLength) {
    fail('attention', `cache rows of ${k.rowLength}/${v.rowLength} are not ${p.nKvHead} × ${p.headDim}`);
  }
  if (k.dtype !== v.dtype) fail('attention', `k and v caches differ in dtype (${k.dtype} vs ${v.dtype})`);
  if (p.pos + q.rowCount > k.rowCount) fail('attention', `positions up to ${p.pos + q.rowCount} exceed the cache (${k.rowCount})`);
  be.attention(out, q, k, v, p);
}

/** LayerNorm of each row with a weight and a bias (GPT-2). */
export function layernorm(be: Backend, out: Tensor, x: Tensor, weight: Tensor, bias: Tensor, eps: number): void {
  expectF32('layernorm', out, x, weight, bias);
  expectSameSize('layernorm', out, x);
  if (weight.numel !== x.rowLength || bias.numel !== x.rowLength) {
    fail('layernorm', `weight [${weight.shape}] and bias [${bias.shape}] should have ${x.rowLength} values`);
  }
  be.layernorm(out, x, weight, bias, eps);
}

/** out[r, :] = x[r, :] + row[:] (a bias added to every row). */
export function addRows(be: Backend, out: Tensor, x: Tensor, row: Tensor): void {
  expectF32('addRows', out, x, row);
  expectSameSize('addRows', out, x);
  if (row.numel !== x.rowLength) fail('addRows', `row [${row.shape}] should have ${x.rowLength} values`);
  be.addRows(out, x, row);
}

export * from './train.js';
