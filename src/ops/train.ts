/**
 * Ops for training: the backward kernels, the fused loss, training attention and dropout, and
 * the tensor-wide helpers optimizers need. As in index.ts, each checks shapes and dtypes once and
 * calls the backend's kernel. Gradients of activations are overwritten, gradients of parameters
 * accumulated (backend.ts states the convention).
 */
import type { Backend, RopeParams, TrainAttentionParams } from '../backend/backend.js';
import type { Tensor } from '../tensor/tensor.js';
import { expectF32, expectRope, expectSameSize, fail } from './check.js';

/** dx[M, K] = dy[M, N] · w[N, K] */
export function matmulInputGrad(be: Backend, dx: Tensor, dy: Tensor, w: Tensor): void {
  expectF32('matmulInputGrad', dx, dy);
  if (dy.rowLength !== w.rowCount) fail('matmulInputGrad', `dy [${dy.shape}] and w [${w.shape}] differ in N`);
  if (dx.rowCount !== dy.rowCount || dx.rowLength !== w.rowLength) {
    fail('matmulInputGrad', `dx [${dx.shape}] should be [${dy.rowCount}, ${w.rowLength}]`);
  }
  be.matmulInputGrad(dx, dy, w);
}

/** dw[N, K] += dy[M, N]ᵀ · x[M, K] */
export function matmulWeightGrad(be: Backend, dw: Tensor, dy: Tensor, x: Tensor): void {
  expectF32('matmulWeightGrad', dw, dy, x);
  if (dy.rowCount !== x.rowCount) fail('matmulWeightGrad', `dy [${dy.shape}] and x [${x.shape}] differ in M`);
  if (dw.rowCount !== dy.rowLength || dw.rowLength !== x.rowLength) {
    fail('matmulWeightGrad', `dw [${dw.shape}] should be [${dy.rowLength}, ${x.rowLength}]`);
  }
  be.matmulWeightGrad(dw, dy, x);
}

/** dtable[ids[i], :] += dy[i, :] */
export function getRowsBackward(be: Backend, dtable: Tensor, dy: Tensor, ids: ArrayLike<number>): void {
  expectF32('getRowsBackward', dtable, dy);
  if (dy.rowCount !== ids.length || dy.rowLength !== dtable.rowLength) {
    fail('getRowsBackward', `dy [${dy.shape}] should be [${ids.length}, ${dtable.rowLength}]`);
  }
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    if (!Number.isInteger(id) || id < 0 || id >= dtable.rowCount) fail('getRowsBackward', `id ${id} out of range [0, ${dtable.rowCount})`);
  }
  be.getRowsBackward(dtable, dy, ids);
}

/** out[c] += Σ_r x[r, c] */
export function sumRows(be: Backend, out: Tensor, x: Tensor): void {
  expectF32('sumRows', out, x);
  if (out.numel !== x.rowLength) fail('sumRows', `out [${out.shape}] should have ${x.rowLength} values`);
  be.sumRows(out, x);
}

function expectNormShapes(op: string, dx: Tensor, dy: Tensor, x: Tensor, ...perColumn: Tensor[]): void {
  expectF32(op, dx, dy, x, ...perColumn);
  expectSameSize(op, dx, x);
  expectSameSize(op, dy, x);
  for (const t of perColumn) if (t.numel !== x.rowLength) fail(op, `[${t.shape}] should have ${x.rowLength} values`);
}

export function rmsnormBackward(be: Backend, dx: Tensor, dweight: Tensor, dy: Tensor, x: Tensor, weight: Tensor, eps: number): void {
  expectNormShapes('rmsnormBackward', dx, dy, x, dweight, weight);
  be.rmsnormBackward(dx, dweight, dy, x, weight, eps);
}

export function layernormBackward(be: Backend, dx: Tensor, dweight: Tensor, dbias: Tensor, dy: Tensor, x: Tensor, weight: Tensor, eps: number): void {
  expectNormShapes('layernormBackward', dx, dy, x, dweight, dbias, weight);
  be.layernormBackward(dx, dweight, dbias, dy, x, weight, eps);
}

/** Backward of rope, in place: dx rotated by −angle. */
export function ropeBackward(be: Backend, dx: Tensor, pos: number, p: RopeParams): void {
  expectF32('ropeBackward', dx);
  expectRope('ropeBackward', dx, p);
  be.ropeBackward(dx, pos, p);
}

export function swigluBackward(be: Backend, dgate: Tensor, dup: Tensor, dy: Tensor, gate: Tensor, up: Tensor): void {
  expectF32('swigluBackward', dgate, dup, dy, gate, up);
  for (const t of [dgate, dup, gate, up]) expectSameSize('swigluBackward', t, dy);
  be.swigluBackward(dgate, dup, dy, gate, up);
}

export function geluBackward(be: Backend, dx: Tensor, dy: Tensor, x: Tensor): void {
  expectF32('geluBackward', dx, dy, x);
  expectSameSize('geluBackward', dx, x);
  expectSameSize('geluBackward', dy, x);
  be.geluBackward(dx, dy, x);
}

/** Per-row softmax cross-entropy and its gradient · scale; targets of −1 are ignored. */
export function crossEntropy(be: Backend, losses: Tensor, dlogits: Tensor, logits: Tensor, targets: ArrayLike<number>, scale: number): void {
  expectF32('crossEntropy', losses, dlogits, logits);
  expectSameSize('crossEntropy', dlogits, logits);
  const M = logits.rowCount;
  const V = logits.rowLength;
  if (losses.numel !== M || targets.length !== M) {
    fail('crossEntropy', `${M} rows of logits need ${M} losses and targets, got ${losses.numel} and ${targets.length}`);
  }
  for (let i = 0; i < M; i++) {
    const t = targets[i]!;
    if (!Number.isInteger(t) || t < -1 || t >= V) fail('crossEntropy', `target ${t} (row ${i}) is not −1 or in [0, ${V})`);
  }
  if (!Number.isFinite(scale)) fail('crossEntropy', `scale ${scale} is not finite`);
  be.crossEntropy(losses, dlogits, logits, targets, scale);
}

function expectAttention(op: string, q: Tensor, k: Tensor, v: Tensor, lse: Tensor, p: TrainAttentionParams): void {
  expectF32(op, q, k, v, lse);
  if (p.nHead % p.nKvHead !== 0) fail(op, `${p.nHead} heads is not a multiple of ${p.nKvHead} KV heads`);
  if (q.rowLength !== p.nHead * p.headDim) fail(op, `q rows of ${q.rowLength} are not ${p.nHead} × ${p.headDim}`);
  if (k.rowLength !== p.nKvHead * p.headDim) fail(op, `k rows of ${k.rowLength} are not ${p.nKvHead} × ${p.headDim}`);
  expectSameSize(op, k, v);
  if (k.rowCount !== q.rowCount) fail(op, `q [${q.shape}] and k [${k.shape}] differ in rows`);
  if (!Number.isInteger(p.seqLen) || p.seqLen < 1 || q.rowCount % p.seqLen !== 0) {
    fail(op, `${q.rowCount} rows are not whole sequences of seqLen ${p.seqLen}`);
  }
  if (lse.numel !== q.rowCount * p.nHead) fail(op, `lse [${lse.shape}] should be [${q.rowCount}, ${p.nHead}]`);
}

/** Causal attention of B sequences (TrainAttentionParams), also writing each (row, head)'s log-sum-exp. */
export function attentionTrain(be: Backend, out: Tensor, lse: Tensor, q: Tensor, k: Tensor, v: Tensor, p: TrainAttentionParams): void {
  expectAttention('attentionTrain', q, k, v, lse, p);
  expectF32('attentionTrain', out);
  expectSameSize('attentionTrain', out, q);
  be.attentionTrain(out, lse, q, k, v, p);
}

export function attentionBackward(
  be: Backend, dq: Tensor, dk: Tensor, dv: Tensor, dout: Tensor, out: Tensor, lse: Tensor, q: Tensor, k: Tensor, v: Tensor, p: TrainAttentionParams,
): void {
  expectAttention('attentionBackward', q, k, v, lse, p);
  expectF32('attentionBackward', dq, dk, dv, dout, out);
  for (const t of [dq, dout, out]) expectSameSize('attentionBackward', t, q);
  expectSameSize('attentionBackward', dk, k);
  expectSameSize('attentionBackward', dv, v);
  be.attentionBackward(dq, dk, dv, dout, out, lse, q, k, v, p);
}

/** Inverted dropout with a mask that is a pure function of (seed, element index). */
export function dropout(be: Backend, out: Tensor, x: Tensor, p: number, seed: number): void {
  expectF32('dropout', out, x);
  expectSameSize('dropout', out, x);
  if (!(p >= 0 && p < 1)) fail('dropout', `p ${p} is not in [0, 1)`);
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) fail('dropout', `seed ${seed} is not a 32-bit unsigned integer`);
  be.dropout(out, x, p, seed);
}

/** Σ x² */
export function sumSquares(be: Backend, x: Tensor): number {
  expectF32('sumSquares', x);
  return be.sumSquares(x);
}

/** x ·= s, in place. */
export function scale(be: Backend, x: Tensor, s: number): void {
  expectF32('scale', x);
  be.scale(x, s);
}
