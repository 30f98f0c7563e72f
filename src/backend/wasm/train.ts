/**
 * The wasm backend's training kernels (assembly/train.ts), run on its thread pool. The native
 * backend inherits them; their matmul gradients go through its matmul, so there they run on the
 * native GEMM.
 *
 * The matmul gradients are the forward matmul on transposed operands, so they share its tuned
 * kernels and its numerics (a fixed sequence per element, any thread count giving identical bits):
 *   dx[M, K] = dy[M, N] · w[N, K]      = matmul(out = dx, x = dy,  w = wᵀ [K, N])
 *   dw[N, K] += dy[M, N]ᵀ · x[M, K]    = matmul(out,      x = dyᵀ [N, M], w = xᵀ [K, M]), added to dw
 * A transpose costs one pass over an operand, against M·N·K multiply-adds for the product.
 *
 * Every kernel splits its work so that each output element is computed by one thread with one
 * sequence of operations (assembly/train.ts says how), so 1 and 2 threads give identical bits.
 * Results are f32 sums, within float rounding of the float64 reference (train-kernels.ts).
 */
import type { TrainAttentionParams } from '../backend.js';
import { dequantize } from '../../tensor/quant.js';
import { Tensor, type Shape } from '../../tensor/tensor.js';
import type { WasmHeap } from './memory.js';

/** The kernels of assembly/train.ts, in the order the pool indexes them (after the others). */
export const TRAIN_KERNELS = [
  'transpose', 'sum_rows', 'norm_weight_grad', 'norm_backward', 'gelu_backward', 'swiglu_backward', 'cross_entropy',
  'get_rows_backward', 'dropout', 'sum_squares', 'scale', 'attention_train', 'attention_backward',
] as const;
export type TrainKernelName = (typeof TRAIN_KERNELS)[number];

/** Elements per partial sum of sum_squares (SQUARES_CHUNK in assembly/train.ts). */
const SQUARES_CHUNK = 4096;
/** Columns the column-sum kernels keep in registers (COL_BLOCK in assembly/train.ts): their slice grain. */
const COL_BLOCK = 16;

/** What the training kernels need from the backend that owns them. */
export interface TrainHost {
  readonly heap: WasmHeap;
  readonly threads: number;
  run(op: TrainKernelName, args: number[], total: number, grain: number, work: number): void;
  addr(t: Tensor): number;
  matmul(out: Tensor, x: Tensor, w: Tensor): void;
  add(out: Tensor, a: Tensor, b: Tensor): void;
}

/** Scratch buffers, one per use, so a kernel's operands never share memory with the matmul's own scratch. */
const Slot = { A: 0, B: 1, Product: 2, Ints: 3, Stats: 4 } as const;
type Slot = (typeof Slot)[keyof typeof Slot];

export class WasmTrainKernels {
  private readonly buffers: { addr: number; bytes: number }[] = [];

  constructor(private readonly host: TrainHost) {}

  /** Scratch slot `slot` with room for `bytes` bytes (its contents are not kept between calls); its address. */
  private buffer(slot: Slot, bytes: number): number {
    const have = this.buffers[slot];
    if (have && have.bytes >= bytes) return have.addr;
    if (have) this.host.heap.release(have.addr);
    const size = Math.ceil(Math.max(bytes, 1.5 * (have?.bytes ?? 0), 256) / 64) * 64;
    this.buffers[slot] = { addr: this.host.heap.alloc(size), bytes: size };
    return this.buffers[slot]!.addr;
  }

  /** An f32 tensor of `shape` on scratch slot `slot`. */
  private f32Buffer(slot: Slot, shape: Shape): Tensor {
    const bytes = shape.reduce((a, b) => a * b, 1) * 4;
    return new Tensor('f32', shape, this.host.heap.view(this.buffer(slot, bytes), bytes));
  }

  /** srcᵀ [cols, rows] of the f32 rows at `src` ([rows, cols]) on scratch slot `slot`. */
  private transposed(slot: Slot, src: number, rows: number, cols: number): Tensor {
    const out = this.f32Buffer(slot, [cols, rows]);
    this.host.run('transpose', [this.host.addr(out), src, rows, cols], cols, 4, rows * cols * 4);
    return out;
  }

  /** `values` as i32 on scratch slot Ints; its address. */
  private ints(values: ArrayLike<number>): number {
    const addr = this.buffer(Slot.Ints, values.length * 4);
    new Int32Array(this.host.heap.view(addr, values.length * 4).buffer, addr, values.length).set(values);
    return addr;
  }

  matmulInputGrad(dx: Tensor, dy: Tensor, w: Tensor): void {
    const N = w.rowCount;
    const K = w.rowLength;
    let wp = this.host.addr(w);
    if (w.dtype !== 'f32') {
      // QLoRA's frozen quantized weights: dequantized once per call (ggml's to_float), then as f32
      const values = this.f32Buffer(Slot.Product, [N, K]);
      dequantize(w.dtype, w.bytes, 0, w.numel, values.f32());
      wp = this.host.addr(values);
    }
    this.host.matmul(dx, dy, this.transposed(Slot.A, wp, N, K));
  }

  matmulWeightGrad(dw: Tensor, dy: Tensor, x: Tensor): void {
    const M = dy.rowCount;
    const N = dy.rowLength;
    const K = x.rowLength;
    const product = this.f32Buffer(Slot.Product, [N, K]);
    this.host.matmul(product, this.transposed(Slot.A, this.host.addr(dy), M, N), this.transposed(Slot.B, this.host.addr(x), M, K));
    this.host.add(dw, dw, product);
  }

  getRowsBackward(dtable: Tensor, dy: Tensor, ids: ArrayLike<number>): void {
    const D = dy.rowLength;
    const args = [this.host.addr(dtable), this.host.addr(dy), this.ints(ids), ids.length, D];
    this.host.run('get_rows_backward', args, dtable.rowCount, 1, ids.length * D);
  }

  sumRows(out: Tensor, x: Tensor): void {
    this.host.run('sum_rows', [this.host.addr(out), this.host.addr(x), x.rowCount, x.rowLength], x.rowLength, COL_BLOCK, x.numel);
  }

  rmsnormBackward(dx: Tensor, dweight: Tensor, dy: Tensor, x: Tensor, weight: Tensor, eps: number): void {
    this.normBackward(dx, dweight, dy, x, weight, eps, true);
  }

  layernormBackward(dx: Tensor, dweight: Tensor, dbias: Tensor, dy: Tensor, x: Tensor, weight: Tensor, eps: number): void {
    this.normBackward(dx, dweight, dy, x, weight, eps, false);
    this.sumRows(dbias, dy);
  }

  /** dx row by row (writing each row's mean and rstd), then dweight column by column from them. */
  private normBackward(dx: Tensor, dweight: Tensor, dy: Tensor, x: Tensor, weight: Tensor, eps: number, rms: boolean): void {
    const { host } = this;
    const rows = x.rowCount;
    const D = x.rowLength;
    const stats = this.buffer(Slot.Stats, rows * 8);
    const [dyp, xp] = [host.addr(dy), host.addr(x)];
    host.run('norm_backward', [host.addr(dx), stats, dyp, xp, host.addr(weight), D, eps, rms ? 1 : 0], rows, 1, x.numel * 8);
    host.run('norm_weight_grad', [host.addr(dweight), dyp, xp, stats, rows, D], D, COL_BLOCK, x.numel * 2);
  }

  swigluBackward(dgate: Tensor, dup: Tensor, dy: Tensor, gate: Tensor, up: Tensor): void {
    const { host } = this;
    const args = [host.addr(dgate), host.addr(dup), host.addr(dy), host.addr(gate), host.addr(up)];
    host.run('swiglu_backward', args, dy.numel, 64, dy.numel * 16);
  }

  geluBackward(dx: Tensor, dy: Tensor, x: Tensor): void {
    this.host.run('gelu_backward', [this.host.addr(dx), this.host.addr(dy), this.host.addr(x)], dx.numel, 64, dx.numel * 16);
  }

  crossEntropy(losses: Tensor, dlogits: Tensor, logits: Tensor, targets: ArrayLike<number>, scale: number): void {
    const { host } = this;
    const args = [host.addr(losses), host.addr(dlogits), host.addr(logits), this.ints(targets), logits.rowLength, scale];
    host.run('cross_entropy', args, logits.rowCount, 1, logits.numel * 8);
  }

  attentionTrain(out: Tensor, lse: Tensor, q: Tensor, k: Tensor, v: Tensor, p: TrainAttentionParams): void {
    const { host } = this;
    const rows = q.rowCount;
    const scores = this.buffer(Slot.Stats, host.threads * Math.ceil(p.seqLen / 4) * 16); // whole vectors per thread
    const args = [host.addr(out), host.addr(lse), host.addr(q), host.addr(k), host.addr(v), p.nHead, p.nKvHead, p.headDim, p.seqLen, p.scale, scores];
    host.run('attention_train', args, rows * p.nHead, 1, rows * p.nHead * p.seqLen * p.headDim * 2);
  }

  attentionBackward(dq: Tensor, dk: Tensor, dv: Tensor, dout: Tensor, out: Tensor, lse: Tensor, q: Tensor, k: Tensor, v: Tensor, p: TrainAttentionParams): void {
    const { host } = this;
    const sequences = q.rowCount / p.seqLen;
    const scratch = this.buffer(Slot.Stats, host.threads * 32);
    const args = [
      host.addr(dq), host.addr(dk), host.addr(dv), host.addr(dout), host.addr(out), host.addr(lse), host.addr(q), host.addr(k), host.addr(v),
      p.nHead, p.nKvHead, p.headDim, p.seqLen, p.scale, scratch,
    ];
    host.run('attention_backward', args, sequences * p.nKvHead, 1, q.rowCount * p.nHead * p.seqLen * p.headDim * 5);
  }

  dropout(out: Tensor, x: Tensor, p: number, seed: number): void {
    // dropoutKeep's test u ≥ p with u = k / 2²⁴ (k an integer) is k ≥ ceil(p · 2²⁴), exactly
    const threshold = Math.ceil(p * 16777216);
    const args = [this.host.addr(out), this.host.addr(x), seed | 0, threshold, Math.fround(1 / (1 - p))];
    this.host.run('dropout', args, out.numel, 64, out.numel * 8);
  }

  sumSquares(x: Tensor): number {
    const chunks = Math.ceil(x.numel / SQUARES_CHUNK);
    const partials = this.buffer(Slot.Stats, chunks * 8);
    this.host.run('sum_squares', [partials, this.host.addr(x), x.numel], chunks, 1, x.numel * 2);
    const sums = new Float64Array(this.host.heap.view(partials, chunks * 8).buffer, partials, chunks);
    let total = 0;
    for (const s of sums) total += s;
    return total;
  }

  scale(x: Tensor, s: number): void {
    this.host.run('scale', [this.host.addr(x), s], x.numel, 64, x.numel * 2);
  }
}
