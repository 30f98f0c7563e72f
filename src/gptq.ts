/**
 * GPTQ quantization (Frantar et al. 2022, "GPTQ: Accurate Post-Training Quantization for
 * Generative Pre-trained Transformers"), written as ordinary ggml blocks (Q4_0, Q8_0, Q4_K) so any GGUF
 * reader runs the result.
 *
 * Round-to-nearest (src/quantize.ts) rounds every weight on its own. GPTQ quantizes a weight
 * matrix W [N, K] one column at a time and pushes each column's rounding error onto the columns
 * not yet quantized, weighted by how the layer's inputs correlate, so that the layer's *output*
 * error ‖(W − Q)·X‖² stays small rather than the weights' own error. The correlations come from
 * running the model over calibration text: for each matrix, H = 2/n · Σ x xᵀ over the n input
 * rows x it multiplied.
 *
 * The file, top to bottom:
 *   1. the quantization grid of a block type (Q4_0, Q8_0, Q4_K);
 *   2. the linear algebra GPTQ needs (the Cholesky factor of H⁻¹);
 *   3. GPTQ on one matrix;
 *   4. calibration: a Backend wrapper that adds each matmul's input rows into a Hessian;
 *   5. the whole model, written through quantize.ts's per-tensor rules.
 */
import fs from 'node:fs';
import os from 'node:os';
import type { AttentionParams, Backend, RopeParams, TrainAttentionParams } from './backend/backend.js';
import { createBackend } from './backend/index.js';
import { WasmQuantizer } from './backend/wasm/quantizer.js';
import { ModelError, RequestError } from './errors.js';
import { describeIoError } from './formats/file.js';
import { GGUF_MAGIC, readGGUF, type GGUFFile } from './formats/gguf.js';
import { loadLlamaWeights, modelConfig, modelTokenizer, type ModelFile } from './loader.js';
import { LlamaModel, type LlamaWeights } from './models/llama.js';
import { convertTensor, planQuantization, tensorValues, writeQuantized, type QuantizeOptions, type QuantizeResult, type QuantizeType } from './quantize.js';
import { DTYPES, type DType } from './tensor/dtype.js';
import { blockInts, kMin, kScale, QK_K } from './tensor/quant-k.js';
import { encodeValues, roundEven } from './tensor/quant.js';
import { f16ToF32, f32ToF16 } from './tensor/f16.js';
import type { Shape, Tensor } from './tensor/tensor.js';
import { fileMagic } from './tokenizers/index.js';

// ───────────────────────────── 1. Quantization grids ─────────────────────────────

/**
 * One block of a block-quantized type, reused from block to block. GPTQ fits the block's grid
 * (its scales) once, when its column loop reaches the block's first column, from the weights as
 * they are then (already updated with the errors of earlier columns); then quantizes the block's
 * values one by one as the loop reaches them.
 */
export interface GridBlock {
  /** Choose the block's scales from its current values values[start .. start + blockSize). */
  fit(values: ArrayLike<number>, start: number): void;
  /** Quantize the block's value j (x, its current value): keep its code, return what the file will decode it to. */
  quantize(j: number, x: number): number;
  /** Write the block (scales and all codes) in the format's bytes at dst[offset ..]. */
  write(dst: Uint8Array, offset: number): void;
}

/**
 * The grid a block type puts values on. `blockSize` is the run of consecutive values along a row
 * whose grid is chosen at once: the block for Q4_0/Q8_0, the 256-value super-block for K-quants
 * (whose 32-value sub-block scales are all fitted when the super-block starts).
 */
export interface BlockGrid {
  readonly dtype: DType;
  readonly blockSize: number;
  readonly blockBytes: number;
  createBlock(): GridBlock;
}

const QK = 32;
const Q4_K_BYTES = DTYPES.q4_k.blockBytes;

/** Write f16 bits little-endian. */
function writeF16(dst: Uint8Array, offset: number, value: number): void {
  const bits = f32ToF16(value);
  dst[offset] = bits & 0xff;
  dst[offset + 1] = bits >> 8;
}

/**
 * Q4_0 exactly as the reference quantizer (tensor/quant.ts quantizeQ4_0) stores a block: the scale
 * d = max/−8 in f32 from the value of largest magnitude, codes trunc(x/d + 8.5) in 0..15, x ≈ f16(d)·(code − 8).
 * GPTQ's updated values may stray past the block's max; their codes are clamped to 0..15 (the
 * nearest point of the grid), where the reference never needs to clamp below.
 */
class Q4_0Block implements GridBlock {
  private d = 0;
  private id = 0;
  private stored = 0;
  private readonly codes = new Uint8Array(QK);

  fit(values: ArrayLike<number>, start: number): void {
    let amax = 0;
    let max = 0;
    for (let j = 0; j < QK; j++) {
      const v = Math.fround(values[start + j]!);
      if (Math.abs(v) > amax) {
        amax = Math.abs(v);
        max = v;
      }
    }
    this.d = Math.fround(max / -8);
    this.id = this.d ? Math.fround(1 / this.d) : 0;
    this.stored = f16ToF32(f32ToF16(this.d));
  }

  quantize(j: number, x: number): number {
    const code = Math.max(0, Math.min(15, Math.trunc(Math.fround(Math.fround(x) * this.id) + 8.5)));
    this.codes[j] = code;
    return this.stored * (code - 8);
  }

  write(dst: Uint8Array, offset: number): void {
    writeF16(dst, offset, this.d);
    for (let j = 0; j < QK / 2; j++) dst[offset + 2 + j] = this.codes[j]! | (this.codes[j + 16]! << 4);
  }
}

/**
 * Q8_0 as the reference quantizer stores it: d = amax/127, codes round-half-away(x/d). Codes are
 * clamped to ±127, never −128: SIMD dot products take |q| with a sign trick that −128 breaks.
 */
class Q8_0Block implements GridBlock {
  private d = 0;
  private id = 0;
  private stored = 0;
  private readonly codes = new Int8Array(QK);

  fit(values: ArrayLike<number>, start: number): void {
    let amax = 0;
    for (let j = 0; j < QK; j++) amax = Math.max(amax, Math.abs(Math.fround(values[start + j]!)));
    this.d = amax / 127;
    this.id = this.d ? 1 / this.d : 0;
    this.stored = f16ToF32(f32ToF16(this.d));
  }

  quantize(j: number, x: number): number {
    const v = Math.fround(Math.fround(x) * this.id);
    const code = Math.max(-127, Math.min(127, Math.sign(v) * Math.round(Math.abs(v)))) | 0; // | 0: no −0 code
    this.codes[j] = code;
    return this.stored * code;
  }

  write(dst: Uint8Array, offset: number): void {
    writeF16(dst, offset, this.d);
    dst.set(new Uint8Array(this.codes.buffer), offset + 2);
  }
}

/**
 * Q4_K: a 256-value super-block of 8 sub-blocks of 32, x ≈ d·sc_j·q − dmin·m_j with q in 0..15
 * and 6-bit sc_j, m_j. `fit` runs ggml's own quantizer (its iterative scale/min search, then the
 * 6-bit and f16 roundings; the wasm copy of quant-k.ts, same bytes) on the super-block's current
 * values, which fixes d, dmin and every sub-block's scale and min; `quantize` then rounds each
 * value as that quantizer's last step does, q = clamp(round((x + dmin·m_j) / (d·sc_j)), 0, 15),
 * from its error-updated value. A sub-block whose scale rounds to 0 keeps the fit's codes, as ggml.
 */
class Q4_KBlock implements GridBlock {
  private readonly fitted = new Uint8Array(Q4_K_BYTES);
  private readonly x = new Float32Array(QK_K);
  private readonly fitCodes = new Int32Array(QK_K);
  private readonly codes = new Uint8Array(QK_K);
  private readonly scales = new Float32Array(8);
  private readonly mins = new Float32Array(8);

  fit(values: ArrayLike<number>, start: number): void {
    for (let j = 0; j < QK_K; j++) this.x[j] = values[start + j]!;
    WasmQuantizer.get().quantize('q4_k', this.x, this.fitted);
    const d = f16ToF32(this.fitted[0]! | (this.fitted[1]! << 8));
    const dmin = f16ToF32(this.fitted[2]! | (this.fitted[3]! << 8));
    for (let j = 0; j < 8; j++) {
      this.scales[j] = Math.fround(d * kScale(this.fitted, 4, j));
      this.mins[j] = Math.fround(dmin * kMin(this.fitted, 4, j));
    }
    blockInts('q4_k', this.fitted, 0, this.fitCodes);
  }

  quantize(j: number, x: number): number {
    const dj = this.scales[j >> 5]!;
    const mj = this.mins[j >> 5]!;
    // ggml's nearest_int rounds half to even; clamping first only changes what it leaves undefined (|v| ≥ 2²²)
    const code = dj ? roundEven(Math.max(0, Math.min(15, Math.fround(Math.fround(Math.fround(x) + mj) / dj)))) : this.fitCodes[j]!;
    this.codes[j] = code;
    return Math.fround(Math.fround(dj * code) - mj);
  }

  write(dst: Uint8Array, offset: number): void {
    dst.set(this.fitted.subarray(0, 16), offset); // d, dmin, the 6-bit scales and mins
    for (let i = 0; i < 4; i++) {
      for (let l = 0; l < 32; l++) dst[offset + 16 + 32 * i + l] = this.codes[64 * i + l]! | (this.codes[64 * i + 32 + l]! << 4);
    }
  }
}

export const Q4_0_GRID: BlockGrid = { dtype: 'q4_0', blockSize: QK, blockBytes: 18, createBlock: () => new Q4_0Block() };
export const Q8_0_GRID: BlockGrid = { dtype: 'q8_0', blockSize: QK, blockBytes: 34, createBlock: () => new Q8_0Block() };
export const Q4_K_GRID: BlockGrid = { dtype: 'q4_k', blockSize: QK_K, blockBytes: Q4_K_BYTES, createBlock: () => new Q4_KBlock() };

/**
 * The grids GPTQ can write, by quantize type. The Q4_K file types are mixtures: GPTQ quantizes
 * the tensors their plan gives Q4_K, and the others (Q6_K, Q5_K, fallbacks) are rounded to nearest.
 */
export const GPTQ_GRIDS: Partial<Record<QuantizeType, BlockGrid>> = {
  q4_0: Q4_0_GRID, q8_0: Q8_0_GRID, q4_k_s: Q4_K_GRID, q4_k_m: Q4_K_GRID, q4_k: Q4_K_GRID,
};

// ───────────────────────────── 2. Linear algebra ─────────────────────────────

/**
 * The upper-triangular U with Uᵀ·U = H⁻¹ (H symmetric positive definite, n × n, row-major),
 * or undefined when H is not positive definite.
 *
 * Row i of U holds what GPTQ needs when it quantizes column i: U[i][i]² is the i-th diagonal
 * entry of the inverse of H restricted to columns i.. (the paper's [H_F⁻¹]_ii, by which the
 * error is divided), and U[i][j>i] / U[i][i] how that error spreads to the later columns. Rather
 * than invert H and factor the inverse, factor H from the bottom-right corner as H = R·Rᵀ with R
 * upper triangular; then H⁻¹ = R⁻ᵀ·R⁻¹, so U = R⁻¹ (one factorization and one triangular inverse,
 * and no explicit inverse of a possibly ill-conditioned H).
 */
export function inverseCholeskyUpper(h: Float64Array, n: number): Float64Array | undefined {
  // R: for j from the last column down, (R·Rᵀ)[i][j] = Σ_{k ≥ j} R[i][k]·R[j][k] for i ≤ j.
  const r = new Float64Array(n * n);
  for (let j = n - 1; j >= 0; j--) {
    let diag = h[j * n + j]!;
    for (let k = j + 1; k < n; k++) diag -= r[j * n + k]! ** 2;
    // A pivot lost to rounding (relative to H's own diagonal) means H is singular for our purposes.
    if (!(diag > 1e-12 * h[j * n + j]!) || !Number.isFinite(diag)) return undefined;
    const rjj = Math.sqrt(diag);
    r[j * n + j] = rjj;
    for (let i = 0; i < j; i++) {
      let s = h[i * n + j]!;
      for (let k = j + 1; k < n; k++) s -= r[i * n + k]! * r[j * n + k]!;
      r[i * n + j] = s / rjj;
    }
  }
  // U = R⁻¹, row by row: row i solves u·R = eᵢ, u[j] = (δᵢⱼ − Σ_{k<j} u[k]·R[k][j]) / R[j][j].
  const u = new Float64Array(n * n);
  const acc = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    acc.fill(0);
    for (let j = i; j < n; j++) {
      const uij = ((j === i ? 1 : 0) - acc[j]!) / r[j * n + j]!;
      u[i * n + j] = uij;
      for (let k = j + 1; k < n; k++) acc[k]! += uij * r[j * n + k]!;
    }
  }
  return u;
}

// ───────────────────────────── 3. GPTQ on one matrix ─────────────────────────────

/** What GPTQ needs from a Hessian, computed once for all the matrices that share it (q, k, v). */
export interface PreparedHessian {
  cols: number;
  /** The upper Cholesky factor of the damped H⁻¹ (cols × cols). */
  u: Float64Array;
  /** The dampening fraction used: the one asked for, or ×10 per retry when H was not positive definite. */
  dampening: number;
  /** Input columns that never saw a nonzero activation (H[i][i] = 0): their weights become 0. */
  deadColumns: number[];
}

/**
 * Damp H and factor its inverse. H [cols, cols] is float64, symmetric, not modified. Dead inputs
 * get H[i][i] = 1 (their weights are zeroed, so any value works); then dampening·mean(diag H) is
 * added to the diagonal, retried with 10× more (3 times) while H is not positive definite.
 */
export function prepareHessian(hessian: Float64Array, cols: number, dampening = 0.01): PreparedHessian {
  if (hessian.length !== cols * cols) throw new RequestError('invalid_shape', 'hessian', `expected ${cols}×${cols} values, got ${hessian.length}`);
  const h = Float64Array.from(hessian);
  const deadColumns: number[] = [];
  for (let i = 0; i < cols; i++) {
    if (h[i * cols + i] !== 0) continue;
    deadColumns.push(i);
    h[i * cols + i] = 1;
  }
  let meanDiag = 0;
  for (let i = 0; i < cols; i++) meanDiag += h[i * cols + i]!;
  meanDiag /= cols;
  for (let attempt = 0, damp = dampening; attempt < 4; attempt++, damp *= 10) {
    const damped = Float64Array.from(h);
    for (let i = 0; i < cols; i++) damped[i * cols + i]! += damp * meanDiag;
    const u = inverseCholeskyUpper(damped, cols);
    if (u) return { cols, u, dampening: damp, deadColumns };
  }
  throw new ModelError('gptq_not_positive_definite', `the ${cols}×${cols} Hessian is not positive definite even with dampening ${dampening * 1000}`);
}

export interface GptqMatrixResult {
  /** The matrix in the grid's format: rows × (cols / blockSize) blocks, row by row. */
  bytes: Uint8Array;
  /** What GPTQ wrote, decoded: the file's values (dequantize(bytes) gives exactly these). */
  values: Float32Array;
}

/**
 * GPTQ of W [rows, cols] (row-major f32) given its inputs' prepared Hessian. Columns are quantized
 * left to right; each block's grid is fitted when the loop enters the block (GPTQ's group-wise
 * mode with groups = the format's blocks), so the bytes are ordinary blocks. The columns keep
 * their order: act-order would visit a block's columns at scattered times, so its grid would have
 * to be fixed from the unupdated weights before the loop ("static groups"); tried on stories260K,
 * it was no better (see the README).
 *
 * Errors are applied in lazy batches of `lazyBatch` columns (default 128, rounded up to whole grid
 * blocks so a block's grid is always fitted from fully updated weights): within a batch at once,
 * to the columns past it in one pass per batch.
 */
export function gptqQuantizeMatrix(
  weights: Float32Array,
  rows: number,
  hessian: PreparedHessian,
  grid: BlockGrid,
  lazyBatch = 128,
): GptqMatrixResult {
  const { cols, u } = hessian;
  const bs = grid.blockSize;
  if (cols % bs !== 0) throw new RequestError('invalid_shape', 'cols', `${cols} is not a multiple of the ${grid.dtype} block size ${bs}`);
  if (weights.length !== rows * cols) throw new RequestError('invalid_shape', 'weights', `expected ${rows}×${cols} values, got ${weights.length}`);
  const w = Float64Array.from(weights); // updated in place as errors propagate
  for (const i of hessian.deadColumns) for (let r = 0; r < rows; r++) w[r * cols + i] = 0;

  const batch = Math.ceil(lazyBatch / bs) * bs;
  const bytes = new Uint8Array((rows * cols / bs) * grid.blockBytes);
  const values = new Float32Array(rows * cols);
  const blocks = Array.from({ length: rows }, () => grid.createBlock());
  const errors = new Float64Array(rows * batch); // (w − q) / U[i][i] of each row for the batch's columns

  for (let i1 = 0; i1 < cols; i1 += batch) {
    const i2 = Math.min(i1 + batch, cols);
    for (let i = i1; i < i2; i++) {
      const j = i % bs;
      const uRow = i * cols;
      const d = u[uRow + i]!;
      for (let r = 0; r < rows; r++) {
        const row = r * cols;
        const block = blocks[r]!;
        if (j === 0) block.fit(w, row + i);
        const x = w[row + i]!;
        const q = block.quantize(j, x);
        values[row + i] = q;
        const err = (x - q) / d;
        errors[r * batch + (i - i1)] = err;
        for (let k = i + 1; k < i2; k++) w[row + k]! -= err * u[uRow + k]!;
        if (j === bs - 1) block.write(bytes, ((row + i + 1) / bs - 1) * grid.blockBytes);
      }
    }
    // The lazy update: W[:, i2:] −= E · U[i1:i2, i2:], one pass over each row's tail.
    for (let r = 0; r < rows; r++) {
      const row = r * cols;
      for (let t = 0; t < i2 - i1; t++) {
        const err = errors[r * batch + t]!;
        if (err === 0) continue;
        const uRow = (i1 + t) * cols;
        for (let k = i2; k < cols; k++) w[row + k]! -= err * u[uRow + k]!;
      }
    }
  }
  return { bytes, values };
}

// ───────────────────────────── 4. Calibration ─────────────────────────────

/** Σ x xᵀ over input rows x of one width, in float64. */
export class HessianSum {
  readonly sum: Float64Array;
  rows = 0;

  constructor(readonly size: number) {
    this.sum = new Float64Array(size * size);
  }

  /** Add the Gram matrix Xᵀ·X (size × size) of `rows` input rows. */
  addGram(gram: ArrayLike<number>, rows: number): void {
    for (let i = 0; i < this.sum.length; i++) this.sum[i]! += gram[i]!;
    this.rows += rows;
  }

  /** H = 2/n · Σ x xᵀ. */
  hessian(): Float64Array {
    const scale = this.rows > 0 ? 2 / this.rows : 0;
    return this.sum.map((v) => v * scale);
  }
}

/**
 * A Backend that passes every kernel to `inner` and, for the weights it watches, adds the input
 * rows of each matmul into their HessianSum. The model code is untouched: it just runs on this.
 */
export class HessianRecorder implements Backend {
  private watched = new Map<Tensor, HessianSum>();

  constructor(private readonly inner: Backend) {}

  get name(): Backend['name'] {
    return this.inner.name;
  }

  get threads(): number {
    return this.inner.threads;
  }

  get memoryLimit(): number {
    return this.inner.memoryLimit;
  }

  /** Record the inputs of matmuls by these weights into their sums (and no others). */
  watch(watched: Map<Tensor, HessianSum>): void {
    this.watched = watched;
  }

  matmul(out: Tensor, x: Tensor, w: Tensor): void {
    const sum = this.watched.get(w);
    if (sum) this.accumulate(sum, x);
    this.inner.matmul(out, x, w);
  }

  /**
   * Add Xᵀ·X of this batch to `sum`. The product runs on the inner backend's matmul kernel as
   * out[i][j] = Σ_m xᵀ[i][m]·xᵀ[j][m] (f32, over one window of rows at most); the running sum over
   * windows is float64. In plain TS the K² work per token would cost more than the forward pass.
   */
  private accumulate(sum: HessianSum, x: Tensor): void {
    const [rows, k] = [x.rowCount, x.rowLength];
    const xt = this.inner.alloc('f32', [k, rows]);
    const gram = this.inner.alloc('f32', [k, k]);
    try {
      const src = x.f32();
      const dst = xt.f32();
      for (let m = 0; m < rows; m++) for (let i = 0; i < k; i++) dst[i * rows + m] = src[m * k + i]!;
      this.inner.matmul(gram, xt, xt);
      sum.addGram(gram.f32(), rows);
    } finally {
      this.inner.free(xt);
      this.inner.free(gram);
    }
  }

  alloc(dtype: DType, shape: Shape): Tensor { return this.inner.alloc(dtype, shape); }
  free(tensor: Tensor): void { this.inner.free(tensor); }
  dispose(): void { this.inner.dispose(); }
  getRows(out: Tensor, table: Tensor, ids: ArrayLike<number>): void { this.inner.getRows(out, table, ids); }
  rmsnorm(out: Tensor, x: Tensor, weight: Tensor, eps: number): void { this.inner.rmsnorm(out, x, weight, eps); }
  rope(x: Tensor, pos: number, params: RopeParams): void { this.inner.rope(x, pos, params); }
  softmax(x: Tensor): void { this.inner.softmax(x); }
  swiglu(out: Tensor, gate: Tensor, up: Tensor): void { this.inner.swiglu(out, gate, up); }
  gelu(out: Tensor, x: Tensor): void { this.inner.gelu(out, x); }
  add(out: Tensor, a: Tensor, b: Tensor): void { this.inner.add(out, a, b); }
  mul(out: Tensor, a: Tensor, b: Tensor): void { this.inner.mul(out, a, b); }
  setRows(dst: Tensor, start: number, src: Tensor): void { this.inner.setRows(dst, start, src); }
  attention(out: Tensor, q: Tensor, k: Tensor, v: Tensor, params: AttentionParams): void { this.inner.attention(out, q, k, v, params); }
  get allocatedBytes(): number { return this.inner.allocatedBytes; }
  layernorm(out: Tensor, x: Tensor, weight: Tensor, bias: Tensor, eps: number): void { this.inner.layernorm(out, x, weight, bias, eps); }
  addRows(out: Tensor, x: Tensor, row: Tensor): void { this.inner.addRows(out, x, row); }
  matmulInputGrad(dx: Tensor, dy: Tensor, w: Tensor): void { this.inner.matmulInputGrad(dx, dy, w); }
  matmulWeightGrad(dw: Tensor, dy: Tensor, x: Tensor): void { this.inner.matmulWeightGrad(dw, dy, x); }
  getRowsBackward(dtable: Tensor, dy: Tensor, ids: ArrayLike<number>): void { this.inner.getRowsBackward(dtable, dy, ids); }
  sumRows(out: Tensor, x: Tensor): void { this.inner.sumRows(out, x); }
  rmsnormBackward(dx: Tensor, dweight: Tensor, dy: Tensor, x: Tensor, weight: Tensor, eps: number): void { this.inner.rmsnormBackward(dx, dweight, dy, x, weight, eps); }
  layernormBackward(dx: Tensor, dweight: Tensor, dbias: Tensor, dy: Tensor, x: Tensor, weight: Tensor, eps: number): void { this.inner.layernormBackward(dx, dweight, dbias, dy, x, weight, eps); }
  ropeBackward(dx: Tensor, pos: number, params: RopeParams): void { this.inner.ropeBackward(dx, pos, params); }
  swigluBackward(dgate: Tensor, dup: Tensor, dy: Tensor, gate: Tensor, up: Tensor): void { this.inner.swigluBackward(dgate, dup, dy, gate, up); }
  geluBackward(dx: Tensor, dy: Tensor, x: Tensor): void { this.inner.geluBackward(dx, dy, x); }
  crossEntropy(losses: Tensor, dlogits: Tensor, logits: Tensor, targets: ArrayLike<number>, scale: number): void { this.inner.crossEntropy(losses, dlogits, logits, targets, scale); }
  attentionTrain(out: Tensor, lse: Tensor, q: Tensor, k: Tensor, v: Tensor, params: TrainAttentionParams): void { this.inner.attentionTrain(out, lse, q, k, v, params); }
  attentionBackward(dq: Tensor, dk: Tensor, dv: Tensor, dout: Tensor, out: Tensor, lse: Tensor, q: Tensor, k: Tensor, v: Tensor, params: TrainAttentionParams): void {
    this.inner.attentionBackward(dq, dk, dv, dout, out, lse, q, k, v, params);
  }
  dropout(out: Tensor, x: Tensor, p: number, seed: number): void { this.inner.dropout(out, x, p, seed); }
  sumSquares(x: Tensor): number { return this.inner.sumSquares(x); }
  scale(x: Tensor, s: number): void { this.inner.scale(x, s); }
}

/**
 * Matrices that multiply the same activations, so share one Hessian: q, k and v read the
 * normalized attention input, gate and up the normalized feed-forward input. `watched` is the
 * first of them (recording it alone adds each input row once). `layer` is the block index, or the
 * block count for the classifier.
 */
export interface InputGroup {
  layer: number;
  watched: Tensor;
  tensors: { name: string; tensor: Tensor }[];
}

/** The input groups of a Llama model. A classifier tied to the embedding has none (it is RTN'd as token_embd). */
function llamaInputGroups(weights: LlamaWeights): InputGroup[] {
  const groups: InputGroup[] = [];
  const group = (layer: number, tensors: [string, Tensor][]): void => {
    groups.push({ layer, watched: tensors[0]![1], tensors: tensors.map(([name, tensor]) => ({ name, tensor })) });
  };
  weights.layers.forEach((w, l) => {
    const blk = `blk.${l}`;
    group(l, [[`${blk}.attn_q.weight`, w.wq], [`${blk}.attn_k.weight`, w.wk], [`${blk}.attn_v.weight`, w.wv]]);
    group(l, [[`${blk}.attn_output.weight`, w.wo]]);
    group(l, [[`${blk}.ffn_gate.weight`, w.ffnGate], [`${blk}.ffn_up.weight`, w.ffnUp]]);
    group(l, [[`${blk}.ffn_down.weight`, w.ffnDown]]);
  });
  if (weights.output !== weights.tokenEmbd) group(weights.layers.length, [['output.weight', weights.output]]);
  return groups;
}

export interface CalibratorOptions {
  /** Tokens per window, BOS included (each window starts from an empty cache). */
  windowTokens: number;
  threads: number;
}

/**
 * The model loaded on a HessianRecorder over the wasm backend, and the calibration text cut into
 * windows: BOS + windowTokens − 1 tokens each (a partial last window is dropped).
 */
export class Calibrator {
  readonly groups: InputGroup[];
  readonly windows: number;

  private constructor(
    private readonly recorder: HessianRecorder,
    private readonly net: LlamaModel,
    private readonly bos: number,
    private readonly ids: number[],
    readonly windowTokens: number,
  ) {
    this.groups = llamaInputGroups(net.weights);
    this.windows = Math.floor(ids.length / (windowTokens - 1));
  }

  static async open(model: ModelFile, text: string, opts: CalibratorOptions): Promise<Calibrator> {
    const tokenizer = modelTokenizer(model);
    const config = modelConfig(model, tokenizer.vocabSize);
    const { windowTokens } = opts;
    if (windowTokens > config.context_length) {
      throw new RequestError('invalid_calib_ctx', 'calibCtx', `${windowTokens} tokens per window exceeds the model's context length ${config.context_length}`);
    }
    const ids = tokenizer.encode(text, { addSpecial: false });
    if (ids.length < windowTokens - 1) {
      throw new RequestError('calib_too_short', 'calib', `${ids.length} tokens of calibration text is less than one window of ${windowTokens - 1} (plus BOS); give more text or a smaller calibration window`);
    }
    const recorder = new HessianRecorder(await createBackend({ backend: 'wasm', threads: opts.threads }));
    try {
      const weights = loadLlamaWeights(recorder, model, config);
      const net = new LlamaModel(recorder, config, weights, { cacheType: 'f32', contextLength: windowTokens, maxBatch: windowTokens });
      return new Calibrator(recorder, net, tokenizer.bos, ids, windowTokens);
    } catch (err) {
      recorder.dispose();
      throw err;
    }
  }

  /** Tokens one pass runs (BOS included). */
  get tokens(): number {
    return this.windows * this.windowTokens;
  }

  /**
   * Run every window and return the Hessians of these groups, by tensor name (one array per group).
   * `onWindow` is called after each window.
   */
  run(groups: readonly InputGroup[], onWindow?: () => void): Map<string, Float64Array> {
    const sums = new Map(groups.map((g) => [g.watched, new HessianSum(g.watched.rowLength)]));
    this.recorder.watch(sums);
    // The classifier's input is every position's, so its pass asks for all logits (costly with a large vocabulary).
    const allLogits = groups.some((g) => g.layer === this.net.config.block_count);
    const perWindow = this.windowTokens - 1;
    for (let w = 0; w < this.windows; w++) {
      this.net.forward([this.bos, ...this.ids.slice(w * perWindow, (w + 1) * perWindow)], 0, allLogits);
      onWindow?.();
    }
    this.recorder.watch(new Map());
    const hessians = new Map<string, Float64Array>();
    for (const g of groups) {
      const h = sums.get(g.watched)!.hessian();
      for (const { name } of g.tensors) hessians.set(name, h);
    }
    return hessians;
  }

  /** Overwrite a weight with new values (encoded in its own dtype), for the passes that follow. */
  replace(tensor: Tensor, values: Float32Array): void {
    if (tensor.dtype === 'bf16') throw new RequestError('gptq_sequential_bf16', 'sequential', 'layer-sequential GPTQ cannot write its weights back into a bf16 model; convert it to f32 or f16 first');
    encodeValues(tensor.dtype, values, tensor.bytes);
  }

  dispose(): void {
    this.net.dispose();
    this.recorder.dispose();
  }
}

// ───────────────────────────── 5. The model ─────────────────────────────

export interface GptqQuantizeOptions extends Omit<QuantizeOptions, 'method'> {
  method: 'gptq';
  /** The calibration text file (text like what the model will see; not the evaluation text). */
  calib: string;
  /** Tokens per calibration window, BOS included (default min(256, the model's context length)). */
  calibCtx?: number;
  /** Dampening, as a fraction of the mean of H's diagonal (default 0.01). */
  dampening?: number;
  /** Values sharing one scale: fixed by the format (32 for q4_0/q8_0); accepted only if it equals that. */
  groupSize?: number;
  /**
   * false (default): one full-precision calibration pass gives every Hessian. true: layer by layer,
   * each layer's Hessians from a pass through the already-quantized layers before it (as the
   * paper); one pass per layer plus one for the classifier.
   */
  sequential?: boolean;
  /** Threads for the calibration forward passes (default: the available cores). */
  threads?: number;
  /** Called as calibration windows run: tokens done, tokens in all (all passes). */
  onCalibrationProgress?: (doneTokens: number, totalTokens: number) => void;
}

export interface GptqQuantizeResult extends QuantizeResult {
  method: 'gptq';
  calibration: { tokens: number; windows: number; windowTokens: number; passes: number; seconds: number };
  /** Tensors quantized by GPTQ (the rest follow the RTN rules: token_embd, norms, rows not in whole blocks). */
  gptqTensors: number;
  /** Hessians that needed more dampening than asked for to be positive definite: tensor name → dampening used. */
  extraDampening: Record<string, number>;
  /** Seconds spent in GPTQ proper (not calibration). */
  gptqSeconds: number;
}

/**
 * Quantize a GGUF model with GPTQ: calibrate, then write every tensor by quantize.ts's rules, the
 * matrices that have a Hessian quantized by GPTQ instead of rounded to nearest.
 */
export async function gptqQuantizeModel(opts: GptqQuantizeOptions): Promise<GptqQuantizeResult> {
  const grid = GPTQ_GRIDS[opts.type];
  if (!grid) {
    const types = Object.keys(GPTQ_GRIDS);
    throw new RequestError('gptq_unsupported_type', 'type', `GPTQ writes ${types.slice(0, -1).join(', ')} or ${types.at(-1)} (a grid to quantize to), got ${String(opts.type)}`);
  }
  if (opts.groupSize !== undefined && opts.groupSize !== grid.blockSize) {
    throw new RequestError('invalid_group_size', 'groupSize', `${grid.dtype} fixes the group size at its ${grid.blockSize}-value block (one scale each), got ${opts.groupSize}`);
  }
  const dampening = opts.dampening ?? 0.01;
  if (!(dampening > 0 && dampening <= 1)) throw new RequestError('invalid_dampening', 'dampening', `must be in (0, 1], got ${dampening}`);
  if (fileMagic(opts.input) !== GGUF_MAGIC) {
    throw new RequestError('not_gguf', 'input', `${opts.input} is not a GGUF file; GPTQ reads and writes GGUF models`);
  }
  const text = readCalibrationText(opts.calib);
  const file = readGGUF(opts.input);
  const contextLength = file.metadata.get('llama.context_length');
  const windowTokens = opts.calibCtx ?? Math.min(256, typeof contextLength === 'number' ? contextLength : 256);
  if (!Number.isInteger(windowTokens) || windowTokens < 2) {
    throw new RequestError('invalid_calib_ctx', 'calibCtx', `must be an integer ≥ 2 (BOS and one token), got ${windowTokens}`);
  }

  const model: ModelFile = { format: 'gguf', path: opts.input, fileSize: file.fileSize, file, tensors: file.tensors };
  const calibrator = await Calibrator.open(model, text, { windowTokens, threads: opts.threads ?? os.availableParallelism() });
  const quantizer = new TensorQuantizer(file, planQuantization(file, opts), grid, dampening);
  let hessians = new Map<string, Float64Array>(); // for the writer (one-pass mode)
  let passes: number;
  const calibStart = performance.now();
  try {
    const layers = calibrator.groups.map((g) => g.layer);
    passes = opts.sequential ? new Set(layers).size : 1;
    let done = 0;
    const onWindow = (): void => opts.onCalibrationProgress?.(++done * windowTokens, passes * calibrator.tokens);
    if (opts.sequential) {
      for (const layer of new Set(layers)) {
        const groups = calibrator.groups.filter((g) => g.layer === layer);
        const layerHessians = calibrator.run(groups, onWindow);
        // Quantize this layer now, and let the next passes run through its quantized weights.
        for (const { name, tensor } of groups.flatMap((g) => g.tensors)) {
          const values = quantizer.quantize(name, layerHessians.get(name)!)?.values;
          if (values) calibrator.replace(tensor, values);
        }
        quantizer.release(); // only one layer's Hessians are held at a time
      }
    } else {
      hessians = calibrator.run(calibrator.groups, onWindow);
    }
  } finally {
    calibrator.dispose();
  }
  const calibSeconds = (performance.now() - calibStart) / 1000 - quantizer.seconds;

  // In one-pass mode GPTQ runs here, tensor by tensor as the writer asks (sequential: already done).
  const result = writeQuantized(file, opts, (info, dtype) => {
    const done = quantizer.bytes.get(info.name);
    if (done) return done;
    const hessian = hessians.get(info.name);
    return (hessian && quantizer.quantize(info.name, hessian)?.bytes) ?? convertTensor(file, info, dtype);
  });
  return {
    ...result,
    method: 'gptq',
    calibration: { tokens: calibrator.tokens, windows: calibrator.windows, windowTokens, passes, seconds: calibSeconds },
    gptqTensors: quantizer.bytes.size,
    extraDampening: quantizer.extraDampening,
    gptqSeconds: quantizer.seconds,
  };
}

/**
 * GPTQ of the file's tensors, each once (its bytes kept for the writer), each shared Hessian
 * prepared once. Tensors the RTN rules keep out of the grid (rows not in whole blocks) get none.
 */
class TensorQuantizer {
  readonly bytes = new Map<string, Uint8Array>();
  readonly extraDampening: Record<string, number> = {};
  seconds = 0;
  private readonly prepared = new Map<Float64Array, PreparedHessian>();

  constructor(
    private readonly file: GGUFFile,
    /** The type the RTN rules give each tensor (by name). */
    private readonly planned: Map<string, DType>,
    private readonly grid: BlockGrid,
    private readonly dampening: number,
  ) {}

  /** The tensor's GPTQ result, or undefined when the RTN rules give it another type than the grid's. */
  quantize(name: string, hessian: Float64Array): GptqMatrixResult | undefined {
    const info = this.file.tensor(name);
    if (!info || this.planned.get(name) !== this.grid.dtype) return undefined;
    const start = performance.now();
    let prepared = this.prepared.get(hessian);
    if (!prepared) {
      prepared = prepareHessian(hessian, info.shape[1]!, this.dampening);
      this.prepared.set(hessian, prepared);
    }
    if (prepared.dampening !== this.dampening) this.extraDampening[name] = prepared.dampening;
    const result = gptqQuantizeMatrix(tensorValues(this.file, info), info.shape[0]!, prepared, this.grid);
    this.bytes.set(name, result.bytes);
    this.seconds += (performance.now() - start) / 1000;
    return result;
  }

  /** Forget the prepared Hessians (their tensors are done). */
  release(): void {
    this.prepared.clear();
  }
}

function readCalibrationText(file: string): string {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new RequestError('cannot_read_calib', 'calib', `${file}: ${describeIoError(err)}`);
  }
  if (text.trim() === '') throw new RequestError('empty_calib', 'calib', `${file} is empty`);
  return text;
}
