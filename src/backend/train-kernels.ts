/**
 * The training kernels in plain TypeScript: the reference backend's
 * implementation, and for now also the wasm and native backends' (they call these on their own
 * memory: a kernel only reads and writes its tensors' bytes, so it works on any backend whose
 * tensors are host-visible). Semantics are defined in backend.ts.
 *
 * Written for clarity, as the oracle faster kernels are tested against: every sum and every
 * per-row statistic is taken in float64, and results are rounded to f32 once, when stored.
 */
import type { RopeParams, TrainAttentionParams } from './backend.js';
import { dequantize } from '../tensor/quant.js';
import type { Tensor } from '../tensor/tensor.js';

/** The mean and 1/sqrt(variance + eps) of one row (biased variance, as ggml's norm). */
function rowMoments(x: Float32Array, start: number, n: number, eps: number): { mean: number; rstd: number } {
  let sum = 0;
  for (let i = 0; i < n; i++) sum += x[start + i]!;
  const mean = sum / n;
  let ss = 0;
  for (let i = 0; i < n; i++) ss += (x[start + i]! - mean) ** 2;
  return { mean, rstd: 1 / Math.sqrt(ss / n + eps) };
}

// ---- matmul and embedding gradients -----------------------------------------------------------

/** w as f32 rows: the tensor's own array when it is f32, else a dequantized copy. */
function weightValues(w: Tensor): Float32Array {
  if (w.dtype === 'f32') return w.f32();
  const values = new Float32Array(w.numel);
  dequantize(w.dtype, w.bytes, 0, w.numel, values);
  return values;
}

export function matmulInputGrad(dx: Tensor, dy: Tensor, w: Tensor): void {
  const M = dy.rowCount;
  const N = dy.rowLength;
  const K = w.rowLength;
  const ws = weightValues(w);
  const dys = dy.f32();
  const o = dx.f32();
  const acc = new Float64Array(K);
  for (let m = 0; m < M; m++) {
    acc.fill(0);
    for (let n = 0; n < N; n++) {
      const g = dys[m * N + n]!;
      if (g === 0) continue;
      for (let k = 0; k < K; k++) acc[k] += g * ws[n * K + k]!;
    }
    o.set(acc, m * K);
  }
}

export function matmulWeightGrad(dw: Tensor, dy: Tensor, x: Tensor): void {
  const M = dy.rowCount;
  const N = dy.rowLength;
  const K = x.rowLength;
  const dys = dy.f32();
  const xs = x.f32();
  const o = dw.f32();
  const acc = new Float64Array(K);
  for (let n = 0; n < N; n++) {
    acc.fill(0);
    for (let m = 0; m < M; m++) {
      const g = dys[m * N + n]!;
      if (g === 0) continue;
      for (let k = 0; k < K; k++) acc[k] += g * xs[m * K + k]!;
    }
    for (let k = 0; k < K; k++) o[n * K + k] += acc[k]!;
  }
}

export function getRowsBackward(dtable: Tensor, dy: Tensor, ids: ArrayLike<number>): void {
  const D = dy.rowLength;
  const dys = dy.f32();
  const o = dtable.f32();
  // sum each id's rows in float64 first, so an id used many times rounds once
  const sums = new Map<number, Float64Array>();
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    let acc = sums.get(id);
    if (!acc) sums.set(id, (acc = new Float64Array(D)));
    for (let c = 0; c < D; c++) acc[c] += dys[i * D + c]!;
  }
  for (const [id, acc] of sums) for (let c = 0; c < D; c++) o[id * D + c] += acc[c]!;
}

export function sumRows(out: Tensor, x: Tensor): void {
  const D = x.rowLength;
  const xs = x.f32();
  const acc = new Float64Array(D);
  for (let r = 0; r < x.rowCount; r++) for (let c = 0; c < D; c++) acc[c] += xs[r * D + c]!;
  const o = out.f32();
  for (let c = 0; c < D; c++) o[c] += acc[c]!;
}

// ---- norms -----------------------------------------------------------------------------------

export function rmsnormBackward(dx: Tensor, dweight: Tensor, dy: Tensor, x: Tensor, weight: Tensor, eps: number): void {
  const D = x.rowLength;
  const xs = x.f32();
  const w = weight.f32();
  const dys = dy.f32();
  const dxs = dx.f32();
  const dw = new Float64Array(D);
  for (let r = 0; r < x.rowCount; r++) {
    const at = r * D;
    let ss = 0;
    for (let i = 0; i < D; i++) ss += xs[at + i]! ** 2;
    const rstd = 1 / Math.sqrt(ss / D + eps);
    // y = x·rstd·w: dx = rstd·(g − x·rstd²·mean(g·x)) with g = dy·w
    let gx = 0;
    for (let i = 0; i < D; i++) gx += dys[at + i]! * w[i]! * xs[at + i]!;
    const k = (rstd * rstd * gx) / D;
    for (let i = 0; i < D; i++) {
      dxs[at + i] = rstd * (dys[at + i]! * w[i]! - xs[at + i]! * k);
      dw[i] += dys[at + i]! * xs[at + i]! * rstd;
    }
  }
  const dws = dweight.f32();
  for (let i = 0; i < D; i++) dws[i] += dw[i]!;
}

export function layernormBackward(dx: Tensor, dweight: Tensor, dbias: Tensor, dy: Tensor, x: Tensor, weight: Tensor, eps: number): void {
  const D = x.rowLength;
  const xs = x.f32();
  const w = weight.f32();
  const dys = dy.f32();
  const dxs = dx.f32();
  const dw = new Float64Array(D);
  const db = new Float64Array(D);
  const xhat = new Float64Array(D);
  for (let r = 0; r < x.rowCount; r++) {
    const at = r * D;
    const { mean, rstd } = rowMoments(xs, at, D, eps);
    // y = x̂·w + b: dx = rstd·(g − mean(g) − x̂·mean(g·x̂)) with g = dy·w
    let gSum = 0;
    let gxSum = 0;
    for (let i = 0; i < D; i++) {
      xhat[i] = (xs[at + i]! - mean) * rstd;
      const g = dys[at + i]! * w[i]!;
      gSum += g;
      gxSum += g * xhat[i]!;
      dw[i] += dys[at + i]! * xhat[i]!;
      db[i] += dys[at + i]!;
    }
    for (let i = 0; i < D; i++) dxs[at + i] = rstd * (dys[at + i]! * w[i]! - gSum / D - (xhat[i]! * gxSum) / D);
  }
  const dws = dweight.f32();
  const dbs = dbias.f32();
  for (let i = 0; i < D; i++) {
    dws[i] += dw[i]!;
    dbs[i] += db[i]!;
  }
}

// ---- rotary embedding --------------------------------------------------------------------------

/**
 * Rotate each head's dimension pairs of x [rows, nHead·headDim] in place by `sign` · angle, row r
 * at position pos + r: sign 1 is rope's forward, −1 its backward (the inverse rotation).
 */
export function ropeRotate(x: Tensor, pos: number, p: RopeParams, sign: 1 | -1): void {
  const xs = x.f32();
  const width = p.nHead * p.headDim;
  for (let r = 0; r < x.rowCount; r++) {
    for (let h = 0; h < p.nHead; h++) {
      const base = r * width + h * p.headDim;
      for (let i = 0; i < p.nRot / 2; i++) {
        const angle = (pos + r) * Math.pow(p.theta, (-2 * i) / p.nRot);
        const cos = Math.cos(angle);
        const sin = sign * Math.sin(angle);
        const a = base + (p.neox ? i : 2 * i);
        const b = a + (p.neox ? p.nRot / 2 : 1);
        const x0 = xs[a]!;
        const x1 = xs[b]!;
        xs[a] = x0 * cos - x1 * sin;
        xs[b] = x0 * sin + x1 * cos;
      }
    }
  }
}

export function ropeBackward(dx: Tensor, pos: number, p: RopeParams): void {
  ropeRotate(dx, pos, p, -1);
}

// ---- activations -------------------------------------------------------------------------------

export function swigluBackward(dgate: Tensor, dup: Tensor, dy: Tensor, gate: Tensor, up: Tensor): void {
  const g = gate.f32();
  const u = up.f32();
  const d = dy.f32();
  const dg = dgate.f32();
  const du = dup.f32();
  for (let i = 0; i < d.length; i++) {
    const s = 1 / (1 + Math.exp(-g[i]!));
    du[i] = d[i]! * g[i]! * s;
    // silu'(g) = s·(1 + g·(1 − s))
    dg[i] = d[i]! * u[i]! * s * (1 + g[i]! * (1 - s));
  }
}

const GELU_C = Math.sqrt(2 / Math.PI);

export function geluBackward(dx: Tensor, dy: Tensor, x: Tensor): void {
  const xs = x.f32();
  const d = dy.f32();
  const o = dx.f32();
  for (let i = 0; i < o.length; i++) {
    const v = xs[i]!;
    const t = Math.tanh(GELU_C * (v + 0.044715 * v * v * v));
    // gelu = ½v(1 + t): gelu' = ½(1 + t) + ½v(1 − t²)·c(1 + 3·0.044715·v²)
    o[i] = d[i]! * (0.5 * (1 + t) + 0.5 * v * (1 - t * t) * GELU_C * (1 + 3 * 0.044715 * v * v));
  }
}

// ---- loss ------------------------------------------------------------------------------------

export function crossEntropy(losses: Tensor, dlogits: Tensor, logits: Tensor, targets: ArrayLike<number>, scale: number): void {
  const V = logits.rowLength;
  const l = logits.f32();
  const d = dlogits.f32(); // may be l itself: each element is read before it is written
  const out = losses.f32();
  for (let r = 0; r < logits.rowCount; r++) {
    const at = r * V;
    const target = targets[r]!;
    if (target === -1) {
      out[r] = 0;
      d.fill(0, at, at + V);
      continue;
    }
    let max = -Infinity;
    for (let i = 0; i < V; i++) max = Math.max(max, l[at + i]!);
    let sum = 0;
    for (let i = 0; i < V; i++) sum += Math.exp(l[at + i]! - max);
    const lse = max + Math.log(sum);
    out[r] = lse - l[at + target]!;
    for (let i = 0; i < V; i++) d[at + i] = (Math.exp(l[at + i]! - lse) - (i === target ? 1 : 0)) * scale;
  }
}

// ---- attention ---------------------------------------------------------------------------------

/** Σ_i a[aAt + i] · b[bAt + i] over n values, in float64. */
function dot(a: Float32Array, aAt: number, b: Float32Array, bAt: number, n: number): number {
  let s = 0;
  for (let i = 0; i < n; i++) s += a[aAt + i]! * b[bAt + i]!;
  return s;
}

/** Visit each (sequence b, query head h, KV head) with the row offsets of its q and kv heads. */
function forEachHead(rows: number, p: TrainAttentionParams, visit: (firstRow: number, qCol: number, kvCol: number) => void): void {
  const group = p.nHead / p.nKvHead;
  for (let b = 0; b < rows / p.seqLen; b++) {
    for (let h = 0; h < p.nHead; h++) visit(b * p.seqLen, h * p.headDim, Math.floor(h / group) * p.headDim);
  }
}

export function attentionTrain(out: Tensor, lse: Tensor, q: Tensor, k: Tensor, v: Tensor, p: TrainAttentionParams): void {
  const { headDim: hd, seqLen: T } = p;
  const qs = q.f32();
  const ks = k.f32();
  const vs = v.f32();
  const o = out.f32();
  const lses = lse.f32();
  const qW = q.rowLength;
  const kvW = k.rowLength;
  const probs = new Float64Array(T); // one row of scores at a time, never T × T
  const acc = new Float64Array(hd);
  forEachHead(q.rowCount, p, (row0, qCol, kvCol) => {
    const h = qCol / hd;
    for (let t = 0; t < T; t++) {
      const qAt = (row0 + t) * qW + qCol;
      let max = -Infinity;
      for (let j = 0; j <= t; j++) {
        probs[j] = dot(qs, qAt, ks, (row0 + j) * kvW + kvCol, hd) * p.scale;
        max = Math.max(max, probs[j]!);
      }
      let sum = 0;
      acc.fill(0);
      for (let j = 0; j <= t; j++) {
        const e = Math.exp(probs[j]! - max);
        sum += e;
        const vAt = (row0 + j) * kvW + kvCol;
        for (let i = 0; i < hd; i++) acc[i] += e * vs[vAt + i]!;
      }
      for (let i = 0; i < hd; i++) o[qAt + i] = acc[i]! / sum;
      lses[(row0 + t) * p.nHead + h] = max + Math.log(sum);
    }
  });
}

export function attentionBackward(
  dq: Tensor, dk: Tensor, dv: Tensor, dout: Tensor, out: Tensor, lse: Tensor, q: Tensor, k: Tensor, v: Tensor, p: TrainAttentionParams,
): void {
  const { headDim: hd, seqLen: T } = p;
  const qs = q.f32();
  const ks = k.f32();
  const vs = v.f32();
  const dos = dout.f32();
  const os = out.f32();
  const lses = lse.f32();
  const qW = q.rowLength;
  const kvW = k.rowLength;
  // dk, dv collect from every query head of their group: sum in float64, store once
  const dkAcc = new Float64Array(dk.numel);
  const dvAcc = new Float64Array(dv.numel);
  const dqAcc = new Float64Array(hd);
  const dqs = dq.f32();
  forEachHead(q.rowCount, p, (row0, qCol, kvCol) => {
    const h = qCol / hd;
    for (let t = 0; t < T; t++) {
      const qAt = (row0 + t) * qW + qCol;
      const rowLse = lses[(row0 + t) * p.nHead + h]!;
      const D = dot(dos, qAt, os, qAt, hd);
      dqAcc.fill(0);
      for (let j = 0; j <= t; j++) {
        const kvAt = (row0 + j) * kvW + kvCol;
        const prob = Math.exp(dot(qs, qAt, ks, kvAt, hd) * p.scale - rowLse);
        const dScore = prob * (dot(dos, qAt, vs, kvAt, hd) - D) * p.scale;
        for (let i = 0; i < hd; i++) {
          dvAcc[kvAt + i] += prob * dos[qAt + i]!;
          dkAcc[kvAt + i] += dScore * qs[qAt + i]!;
          dqAcc[i] += dScore * ks[kvAt + i]!;
        }
      }
      dqs.set(dqAcc, qAt);
    }
  });
  dk.f32().set(dkAcc);
  dv.f32().set(dvAcc);
}

// ---- dropout and tensor-wide helpers ------------------------------------------------------------

/** A 32-bit integer hash with good avalanche (two multiply-xorshift rounds). */
function mix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

/**
 * Whether dropout keeps element i under `seed`: u = (top 24 bits of mix32(mix32(seed) ^ i)) / 2²⁴,
 * kept when u ≥ p. A pure function of (seed, i), so the mask is never stored: the backward, any
 * backend and any thread split recompute the same one. Other backends must match this exactly.
 */
export function dropoutKeep(seed: number, i: number, p: number): boolean {
  const u = (mix32(mix32(seed >>> 0) ^ i) >>> 8) / 16777216;
  return u >= p;
}

export function dropout(out: Tensor, x: Tensor, p: number, seed: number): void {
  const xs = x.f32();
  const o = out.f32();
  const scale = Math.fround(1 / (1 - p));
  for (let i = 0; i < o.length; i++) o[i] = dropoutKeep(seed, i, p) ? xs[i]! * scale : 0;
}

export function sumSquares(x: Tensor): number {
  let s = 0;
  for (const v of x.f32()) s += v * v;
  return s;
}

export function scale(x: Tensor, s: number): void {
  const xs = x.f32();
  for (let i = 0; i < xs.length; i++) xs[i] = xs[i]! * s;
}
