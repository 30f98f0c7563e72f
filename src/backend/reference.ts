/**
 * The reference backend: plain TypeScript, written for clarity, used as the oracle that every
 * fast kernel is tested against. Sums are taken in float64; results are stored as f32.
 */
import type { AttentionParams, Backend, RopeParams, TrainAttentionParams } from './backend.js';
import * as train from './train-kernels.js';
import { RequestError } from '../errors.js';
import { byteSize, type DType } from '../tensor/dtype.js';
import { f32ToBf16, bf16ToF32, f32ToF16, roundF16 } from '../tensor/f16.js';
import { dequantize, quantizeQ8_0 } from '../tensor/quant.js';
import { dotQ8_1, Q8_1_BLOCK_BYTES, quantizeQ8_1 } from '../tensor/quant-legacy.js';
import { dotQ8_K, isKQuant, quantizeQ8_K } from '../tensor/quant-k.js';
import { numel, Tensor, type Shape } from '../tensor/tensor.js';

/** Round an activation row the way ggml does before multiplying it with weights of `dtype`. */
export function prepareActivations(dtype: DType, x: Float32Array): Float32Array {
  switch (dtype) {
    case 'f32':
      return x;
    case 'f16':
      return x.map(roundF16);
    case 'bf16':
      return x.map((v) => bf16ToF32(f32ToBf16(v)));
    // Q8_1 activations (q4_1, q5_1) have Q8_0's d and q; their extra s term is in dotQ8_1.
    case 'q8_0':
    case 'q4_0':
    case 'q5_0':
    case 'q4_1':
    case 'q5_1': {
      const q = new Uint8Array(byteSize('q8_0', x.length));
      quantizeQ8_0(x, x.length, q, true);
      const out = new Float32Array(x.length);
      dequantize('q8_0', q, 0, x.length, out);
      return out;
    }
    case 'q4_k':
    case 'q5_k':
    case 'q6_k': {
      const q = new Uint8Array(byteSize('q8_k', x.length));
      quantizeQ8_K(x, x.length, q);
      const out = new Float32Array(x.length);
      dequantize('q8_k', q, 0, x.length, out);
      return out;
    }
    case 'q8_k':
      throw new RequestError('unsupported_dtype', 'w', 'q8_k is an activation type; no matmul takes q8_k weights (as in ggml)');
  }
}

export class ReferenceBackend implements Backend {
  readonly name = 'reference' as const;
  readonly threads = 1;
  readonly memoryLimit = Infinity;

  private readonly live = new WeakSet<Tensor>();
  allocatedBytes = 0;

  alloc(dtype: DType, shape: Shape): Tensor {
    const tensor = new Tensor(dtype, shape, new Uint8Array(byteSize(dtype, numel(shape))));
    this.live.add(tensor);
    this.allocatedBytes += tensor.bytes.byteLength;
    return tensor;
  }

  /** Memory is the garbage collector's; this only checks the call (as the wasm backend does) and counts. */
  free(tensor: Tensor): void {
    if (!this.live.delete(tensor)) {
      throw new Error(`reference backend: free() of a ${tensor.dtype} [${tensor.shape}] tensor that alloc() did not return (a view, or freed already)`);
    }
    this.allocatedBytes -= tensor.bytes.byteLength;
  }

  dispose(): void {}

  matmul(out: Tensor, x: Tensor, w: Tensor): void {
    const K = x.rowLength;
    const N = w.rowCount;
    const o = out.f32();
    const row = new Float32Array(K);
    const xs = x.f32();
    if (w.dtype === 'q4_1' || w.dtype === 'q5_1') {
      // ggml's d_w·d_x·Σ q_w·q_x + m_w·s_x per block, with the activation block's f16 s
      const xq = new Uint8Array((K / 32) * Q8_1_BLOCK_BYTES);
      for (let m = 0; m < x.rowCount; m++) {
        quantizeQ8_1(xs.subarray(m * K, (m + 1) * K), K, xq);
        for (let n = 0; n < N; n++) o[m * N + n] = dotQ8_1(w.dtype, w.bytes, n * w.rowBytes, xq, K);
      }
      return;
    }
    if (isKQuant(w.dtype)) {
      // ggml's K-quant dot product: integer sums per super-block against Q8_K activations
      const xq = new Uint8Array(byteSize('q8_k', K));
      for (let m = 0; m < x.rowCount; m++) {
        quantizeQ8_K(xs.subarray(m * K, (m + 1) * K), K, xq);
        for (let n = 0; n < N; n++) o[m * N + n] = dotQ8_K(w.dtype, w.bytes, n * w.rowBytes, xq, 0, K / 256);
      }
      return;
    }
    for (let m = 0; m < x.rowCount; m++) {
      // Dequantized activations: for quantized weights this equals the block-wise integer dot
      // product scaled by both block scales, since d_w·d_x·Σ qw·qx = Σ (d_w·qw)(d_x·qx).
      const xr = prepareActivations(w.dtype, xs.subarray(m * K, (m + 1) * K));
      for (let n = 0; n < N; n++) {
        dequantize(w.dtype, w.bytes, n * K, K, row);
        let sum = 0;
        for (let k = 0; k < K; k++) sum += row[k]! * xr[k]!;
        o[m * N + n] = sum;
      }
    }
  }

  getRows(out: Tensor, table: Tensor, ids: ArrayLike<number>): void {
    const D = table.rowLength;
    const o = out.f32();
    for (let i = 0; i < ids.length; i++) dequantize(table.dtype, table.bytes, ids[i]! * D, D, o, i * D);
  }

  rmsnorm(out: Tensor, x: Tensor, weight: Tensor, eps: number): void {
    const D = x.rowLength;
    const xs = x.f32();
    const ws = weight.f32();
    const o = out.f32();
    for (let r = 0; r < x.rowCount; r++) {
      let ss = 0;
      for (let i = 0; i < D; i++) ss += xs[r * D + i]! ** 2;
      const scale = 1 / Math.sqrt(ss / D + eps);
      for (let i = 0; i < D; i++) o[r * D + i] = Math.fround(xs[r * D + i]! * scale) * ws[i]!;
    }
  }

  rope(x: Tensor, pos: number, p: RopeParams): void {
    train.ropeRotate(x, pos, p, 1);
  }

  softmax(x: Tensor): void {
    const D = x.rowLength;
    const xs = x.f32();
    for (let r = 0; r < x.rowCount; r++) softmaxInPlace(xs.subarray(r * D, (r + 1) * D));
  }

  swiglu(out: Tensor, gate: Tensor, up: Tensor): void {
    const g = gate.f32();
    const u = up.f32();
    const o = out.f32();
    for (let i = 0; i < o.length; i++) o[i] = (g[i]! / (1 + Math.exp(-g[i]!))) * u[i]!;
  }

  gelu(out: Tensor, x: Tensor): void {
    const xs = x.f32();
    const o = out.f32();
    const c = Math.sqrt(2 / Math.PI);
    for (let i = 0; i < o.length; i++) {
      const v = xs[i]!;
      o[i] = 0.5 * v * (1 + Math.tanh(c * (v + 0.044715 * v * v * v)));
    }
  }

  add(out: Tensor, a: Tensor, b: Tensor): void {
    const as = a.f32();
    const bs = b.f32();
    const o = out.f32();
    for (let i = 0; i < o.length; i++) o[i] = as[i]! + bs[i]!;
  }

  mul(out: Tensor, a: Tensor, b: Tensor): void {
    const as = a.f32();
    const bs = b.f32();
    const o = out.f32();
    for (let i = 0; i < o.length; i++) o[i] = as[i]! * bs[i]!;
  }

  setRows(dst: Tensor, start: number, src: Tensor): void {
    const s = src.f32();
    if (dst.dtype === 'f32') {
      dst.rows(start, src.rowCount).f32().set(s);
      return;
    }
    if (dst.dtype === 'q8_0') {
      // ggml's set_rows quantizes with the type's run-time quantizer: the activation one
      quantizeQ8_0(s, s.length, dst.rows(start, src.rowCount).bytes, true);
      return;
    }
    const view = new DataView(dst.bytes.buffer, dst.bytes.byteOffset + start * dst.rowBytes);
    for (let i = 0; i < s.length; i++) view.setUint16(i * 2, f32ToF16(s[i]!), true);
  }

  attention(out: Tensor, q: Tensor, k: Tensor, v: Tensor, p: AttentionParams): void {
    const { nHead, headDim } = p;
    const group = nHead / p.nKvHead;
    const kvWidth = p.nKvHead * headDim;
    const half = k.dtype === 'f16';
    const qs = q.f32();
    const o = out.f32();
    const nKvMax = p.pos + q.rowCount;
    const keys = new Float32Array(nKvMax * kvWidth);
    const values = new Float32Array(nKvMax * kvWidth);
    dequantize(k.dtype, k.bytes, 0, keys.length, keys);
    dequantize(v.dtype, v.bytes, 0, values.length, values);
    const scores = new Float32Array(nKvMax); // one row of scores, not a matrix
    for (let r = 0; r < q.rowCount; r++) {
      const nKv = p.pos + r + 1;
      for (let h = 0; h < nHead; h++) {
        const qOff = r * nHead * headDim + h * headDim;
        const kvOff = Math.floor(h / group) * headDim;
        const qh = headQuery(k.dtype, qs.subarray(qOff, qOff + headDim), kvOff);
        for (let t = 0; t < nKv; t++) {
          let dot = 0;
          for (let i = 0; i < headDim; i++) dot += qh[i]! * keys[t * kvWidth + kvOff + i]!;
          scores[t] = dot * p.scale;
        }
        const probs = scores.subarray(0, nKv);
        softmaxInPlace(probs);
        for (let i = 0; i < headDim; i++) {
          let acc = 0;
          for (let t = 0; t < nKv; t++) acc += (half ? roundF16(probs[t]!) : probs[t]!) * values[t * kvWidth + kvOff + i]!;
          o[qOff + i] = acc;
        }
      }
    }
  }

  layernorm(out: Tensor, x: Tensor, weight: Tensor, bias: Tensor, eps: number): void {
    const D = x.rowLength;
    const xs = x.f32();
    const ws = weight.f32();
    const bs = bias.f32();
    const o = out.f32();
    for (let r = 0; r < x.rowCount; r++) {
      const row = xs.subarray(r * D, (r + 1) * D);
      let sum = 0;
      for (let i = 0; i < D; i++) sum += row[i]!;
      const mean = Math.fround(sum / D);
      let ss = 0;
      for (let i = 0; i < D; i++) ss += Math.fround(row[i]! - mean) ** 2;
      const scale = 1 / Math.sqrt(ss / D + eps);
      for (let i = 0; i < D; i++) {
        o[r * D + i] = Math.fround(Math.fround(Math.fround(row[i]! - mean) * scale) * ws[i]!) + bs[i]!;
      }
    }
  }

  addRows(out: Tensor, x: Tensor, row: Tensor): void {
    const D = x.rowLength;
    const xs = x.f32();
    const rs = row.f32();
    const o = out.f32();
    for (let i = 0; i < o.length; i++) o[i] = xs[i]! + rs[i % D]!;
  }

  // ---- training kernels: plain TS shared with the wasm backend (train-kernels.ts) ----
  matmulInputGrad(dx: Tensor, dy: Tensor, w: Tensor): void { train.matmulInputGrad(dx, dy, w); }
  matmulWeightGrad(dw: Tensor, dy: Tensor, x: Tensor): void { train.matmulWeightGrad(dw, dy, x); }
  getRowsBackward(dtable: Tensor, dy: Tensor, ids: ArrayLike<number>): void { train.getRowsBackward(dtable, dy, ids); }
  sumRows(out: Tensor, x: Tensor): void { train.sumRows(out, x); }
  rmsnormBackward(dx: Tensor, dweight: Tensor, dy: Tensor, x: Tensor, weight: Tensor, eps: number): void { train.rmsnormBackward(dx, dweight, dy, x, weight, eps); }
  layernormBackward(dx: Tensor, dweight: Tensor, dbias: Tensor, dy: Tensor, x: Tensor, weight: Tensor, eps: number): void { train.layernormBackward(dx, dweight, dbias, dy, x, weight, eps); }
  ropeBackward(dx: Tensor, pos: number, p: RopeParams): void { train.ropeBackward(dx, pos, p); }
  swigluBackward(dgate: Tensor, dup: Tensor, dy: Tensor, gate: Tensor, up: Tensor): void { train.swigluBackward(dgate, dup, dy, gate, up); }
  geluBackward(dx: Tensor, dy: Tensor, x: Tensor): void { train.geluBackward(dx, dy, x); }
  crossEntropy(losses: Tensor, dlogits: Tensor, logits: Tensor, targets: ArrayLike<number>, scale: number): void { train.crossEntropy(losses, dlogits, logits, targets, scale); }
  attentionTrain(out: Tensor, lse: Tensor, q: Tensor, k: Tensor, v: Tensor, p: TrainAttentionParams): void { train.attentionTrain(out, lse, q, k, v, p); }
  attentionBackward(dq: Tensor, dk: Tensor, dv: Tensor, dout: Tensor, out: Tensor, lse: Tensor, q: Tensor, k: Tensor, v: Tensor, p: TrainAttentionParams): void {
    train.attentionBackward(dq, dk, dv, dout, out, lse, q, k, v, p);
  }
  dropout(out: Tensor, x: Tensor, p: number, seed: number): void { train.dropout(out, x, p, seed); }
  sumSquares(x: Tensor): number { return train.sumSquares(x); }
  scale(x: Tensor, s: number): void { train.scale(x, s); }
}

/**
 * A query head as Q·K sees it with a `cache`-typed key cache whose head starts at value kvOff of
 * the row: rounded to f16 (f16 cache), or (q8_0 cache) quantized with the activation quantizer
 * on the key row's block grid (laid over the blocks the head spans, zeros elsewhere) and
 * dequantized, so that Σ q·k over the head is Σ over blocks of d_q·d_k·(integer dot product).
 */
function headQuery(cache: DType, q: Float32Array, kvOff: number): Float32Array {
  if (cache === 'f16') return q.map(roundF16);
  if (cache !== 'q8_0') return q;
  const first = Math.floor(kvOff / 32);
  const lead = kvOff - first * 32;
  const grid = new Float32Array(Math.ceil((lead + q.length) / 32) * 32);
  grid.set(q, lead);
  const blocks = new Uint8Array(byteSize('q8_0', grid.length));
  quantizeQ8_0(grid, grid.length, blocks, true);
  const out = new Float32Array(q.length);
  dequantize('q8_0', blocks, lead, q.length, out);
  return out;
}

function softmaxInPlace(row: Float32Array): void {
  let max = -Infinity;
  for (const v of row) max = Math.max(max, v);
  let sum = 0;
  for (let i = 0; i < row.length; i++) {
    row[i] = Math.exp(row[i]! - max);
    sum += row[i]!;
  }
  for (let i = 0; i < row.length; i++) row[i] = row[i]! / sum;
}
