/**
 * The wasm backend: AssemblyScript SIMD kernels (assembly/, built to build/kernels-*.wasm) on one
 * shared WebAssembly.Memory, run by the calling thread plus a pool of worker threads.
 *
 * Every tensor lives in that memory: `bytes.byteOffset` is the kernels' pointer. Kernels split
 * their work (output columns, rows, elements, or (query rows, head) pairs) into one slice per
 * thread; small calls run on the calling thread alone, since waking the workers costs
 * microseconds. Each output element is computed the same way whatever the split, so any thread
 * count gives identical bits.
 *
 * Numerics follow backend.ts (and the reference backend): see assembly/matmul.ts and
 * assembly/attention.ts for the exact sequences and where they differ from the float64 reference.
 */
import os from 'node:os';
import type { AttentionParams, Backend, RopeParams, TrainAttentionParams } from '../backend.js';
import { RequestError } from '../../errors.js';
import { byteSize, DTYPES, type DType } from '../../tensor/dtype.js';
import { isLegacyType } from '../../tensor/quant-legacy.js';
import { isKQuant } from '../../tensor/quant-k.js';
import { numel, Tensor, type Shape } from '../../tensor/tensor.js';
import { MAX_BYTES, WasmHeap } from './memory.js';
import { chooseVariant, compileKernels, type WasmVariant, type WasmVariantOption } from './module.js';
import { ThreadPool, type PoolAddon } from './pool.js';
import { TRAIN_KERNELS, WasmTrainKernels } from './train.js';
import { wasmApi } from './wasm-api.js';

export type { WasmVariant } from './module.js';

export interface WasmBackendOptions {
  /** Threads running kernels, the calling thread included; default os.availableParallelism(). */
  threads?: number;
  /** Kernel build: 'auto' (default: relaxed SIMD when the runtime has it), 'simd' or 'relaxed'. */
  variant?: WasmVariantOption;
  /** Initial memory in bytes (it grows on demand up to 4 GiB); default 16 MiB. */
  initialMemory?: number;
  /**
   * Work (multiply-adds or element operations) from which a call is split across the threads;
   * smaller calls run on the calling thread alone. Default 2^17. Tests set 0 to split everything.
   */
  minParallelWork?: number;
}

/** The kernels, in the order the pool indexes them. */
export const KERNELS = [
  'matmul_f32', 'matmul_f16', 'matmul_bf16', 'matmul_q8_0', 'matmul_q4_0', 'round_f16', 'round_bf16', 'quantize_q8', 'pack_x2',
  'matmul_q4_1', 'matmul_q5_0', 'matmul_q5_1', 'q8_1_sums',
  'attention', 'rmsnorm', 'rope', 'softmax', 'swiglu', 'gelu', 'add', 'mul', 'f32_to_f16',
  'f32_to_q8_0',
  'quantize_q8_k', 'matmul_q4_k', 'matmul_q5_k', 'matmul_q6_k',
  'layernorm', 'add_rows',
  ...TRAIN_KERNELS,
] as const;
type KernelName = (typeof KERNELS)[number];
const OP = Object.fromEntries(KERNELS.map((name, i) => [name, i])) as Record<KernelName, number>;

export interface KernelExports {
  attention_scratch_bytes(headDim: number, rowBlock: number, maxKeys: number): number;
  f16_to_f32(dst: number, src: number, n: number): void;
  bf16_to_f32(dst: number, src: number, n: number): void;
  q8_0_to_f32(dst: number, src: number, nb: number): void;
  q4_0_to_f32(dst: number, src: number, nb: number): void;
  q4_1_to_f32(dst: number, src: number, nb: number): void;
  q5_0_to_f32(dst: number, src: number, nb: number): void;
  q5_1_to_f32(dst: number, src: number, nb: number): void;
  q4_k_to_f32(dst: number, src: number, nb: number): void;
  q5_k_to_f32(dst: number, src: number, nb: number): void;
  q6_k_to_f32(dst: number, src: number, nb: number): void;
}

/**
 * Work (multiply-adds or elements) below which a call runs on the calling thread alone. Waking
 * the workers and waiting for them costs some tens of microseconds; below this the work is cheaper.
 */
export const MIN_PARALLEL_WORK = 1 << 17;
/** Float matmuls with at most this many x rows stream the weights without packing x (FEW_ROWS in assembly/matmul.ts). */
const FEW_ROWS = 8;

const align64 = (n: number): number => Math.ceil(n / 64) * 64;

/** The attention kernel's cache kind argument (assembly/attention.ts): 0 f32, 1 f16, 2 q8_0. */
const cacheKind = (dtype: DType): number => (dtype === 'q8_0' ? 2 : dtype === 'f16' ? 1 : 0);

export class WasmBackend implements Backend {
  readonly name: 'wasm' | 'native' = 'wasm';
  readonly memoryLimit = MAX_BYTES;
  private readonly live = new Map<number, Tensor>();
  allocatedBytes = 0;
  private scratchAddr = 0;
  private scratchSize = 0;
  private readonly ropeTables = new Map<string, { addr: number; positions: number }>();
  private disposed = false;
  private readonly trainKernels: WasmTrainKernels;

  protected constructor(
    readonly threads: number,
    readonly variant: WasmVariant,
    protected readonly heap: WasmHeap,
    protected readonly pool: ThreadPool,
    private readonly k: KernelExports,
    private readonly minParallelWork: number,
  ) {
    this.trainKernels = new WasmTrainKernels({
      heap,
      threads,
      run: (op, args, total, grain, work) => this.run(op, args, total, grain, work),
      addr: (t) => this.addr(t),
      matmul: (out, x, w) => this.matmul(out, x, w),
      add: (out, a, b) => this.add(out, a, b),
    });
  }

  /** @internal use createWasmBackend */
  static async create(opts: WasmBackendOptions = {}): Promise<WasmBackend> {
    const [threads, variant, heap, pool, k] = await WasmBackend.start(opts);
    return new WasmBackend(threads, variant, heap, pool, k, opts.minParallelWork ?? MIN_PARALLEL_WORK);
  }

  /**
   * Compile and instantiate the kernels and start the thread pool; `addon`'s kernels (the native
   * backend's) run on the same threads, indexed after KERNELS.
   */
  protected static async start(opts: WasmBackendOptions, addon?: PoolAddon): Promise<[number, WasmVariant, WasmHeap, ThreadPool, KernelExports]> {
    const threads = opts.threads ?? os.availableParallelism();
    if (!Number.isInteger(threads) || threads < 1 || threads > 256) {
      throw new RequestError('invalid_threads', 'threads', `must be an integer in 1..256, got ${opts.threads}`);
    }
    const variant = chooseVariant(opts.variant);
    const module = await compileKernels(variant);
    const heap = new WasmHeap(opts.initialMemory);
    const instance = await wasmApi.instantiate(module, { env: { memory: heap.memory } });
    const exports = instance.exports as unknown as KernelExports & Record<KernelName, (...args: number[]) => void>;
    const pool = await ThreadPool.start(threads, module, heap.memory, KERNELS, KERNELS.map((name) => exports[name]), addon);
    return [threads, variant, heap, pool, exports];
  }

  /** Bytes of wasm memory in use by live tensors and scratch. */
  get memoryUsed(): number {
    return this.heap.usedBytes;
  }

  /** Bytes the wasm memory has grown to. */
  get memorySize(): number {
    return this.heap.byteLength;
  }

  /** Resolves when the worker threads have exited (after dispose). */
  get workersExited(): Promise<void> {
    return this.pool.exited;
  }

  // ---- memory ----------------------------------------------------------------------------------

  alloc(dtype: DType, shape: Shape): Tensor {
    this.checkLive();
    if (!(dtype in DTYPES)) throw new RequestError('invalid_dtype', 'dtype', `unknown dtype '${dtype}'`);
    if (!shape.every((d) => Number.isInteger(d) && d >= 0)) {
      throw new RequestError('invalid_shape', 'shape', `dimensions must be non-negative integers, got [${shape}]`);
    }
    const count = numel(shape);
    if (count % DTYPES[dtype].blockSize !== 0) {
      throw new RequestError('invalid_shape', 'shape', `${dtype} [${shape}] has ${count} values, not a multiple of the block size ${DTYPES[dtype].blockSize}`);
    }
    const bytes = byteSize(dtype, count);
    const addr = this.heap.alloc(bytes);
    const tensor = new Tensor(dtype, shape, this.heap.view(addr, bytes));
    this.live.set(addr, tensor);
    this.allocatedBytes += bytes;
    return tensor;
  }

  free(tensor: Tensor): void {
    this.checkLive();
    const addr = this.addr(tensor);
    if (this.live.get(addr) !== tensor) {
      throw new Error(`wasm backend: free() of a ${tensor.dtype} [${tensor.shape}] tensor that alloc() did not return (a view, or freed already)`);
    }
    this.live.delete(addr);
    this.allocatedBytes -= tensor.bytes.byteLength;
    this.heap.release(addr);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    void this.pool.close();
    this.live.clear();
  }

  private checkLive(): void {
    if (this.disposed) throw new Error('wasm backend: used after dispose()');
  }

  /** The kernels' pointer to a tensor, after checking that it lives in this backend's memory. */
  protected addr(t: Tensor): number {
    if (!this.heap.owns(t.bytes.buffer)) {
      throw new Error(`wasm backend: a ${t.dtype} [${t.shape}] tensor is not in this backend's memory (allocate tensors with this backend's alloc())`);
    }
    return t.bytes.byteOffset;
  }

  /** A scratch region of at least `bytes` bytes, reused across calls (its contents are not kept). */
  protected scratch(bytes: number): number {
    if (bytes > this.scratchSize) {
      if (this.scratchSize) this.heap.release(this.scratchAddr);
      this.scratchSize = align64(Math.max(bytes, this.scratchSize * 1.5));
      this.scratchAddr = this.heap.alloc(this.scratchSize);
    }
    return this.scratchAddr;
  }

  /**
   * Run a kernel (by name, or by pool index for the native backend's) over [0, total) on all
   * threads, or on this one when the work is small.
   */
  protected run(op: KernelName | number, args: number[], total: number, grain: number, work: number): void {
    this.checkLive();
    this.pool.run(typeof op === 'number' ? op : OP[op], args, total, grain, work >= this.minParallelWork);
  }

  // ---- kernels ---------------------------------------------------------------------------------

  matmul(out: Tensor, x: Tensor, w: Tensor): void {
    const M = x.rowCount;
    const K = x.rowLength;
    const N = w.rowCount;
    const o = this.addr(out);
    const xp = this.addr(x);
    const wp = this.addr(w);
    const work = M * N * K;
    const prepWork = M * K * 8;
    if (w.dtype === 'q8_0' || w.dtype === 'q4_0' || isLegacyType(w.dtype)) {
      // activations quantized to Q8_0 once, in the forms the kernels read (+ Q8_1's s: sx)
      const blocks = (M * K) / 32;
      const q16 = this.scratch(2 * align64(blocks * 64) + align64(blocks * 32) + 3 * align64(blocks * 4));
      const eo = q16 + align64(blocks * 64);
      const q8 = eo + align64(blocks * 64);
      const d = q8 + align64(blocks * 32);
      const s = d + align64(blocks * 4);
      const sx = s + align64(blocks * 4);
      this.run('quantize_q8', [q16, q8, eo, d, s, xp, K], M, 1, prepWork);
      if (isLegacyType(w.dtype)) {
        if (w.dtype !== 'q5_0') this.run('q8_1_sums', [sx, s, xp, K], M, 1, prepWork);
        this.run(`matmul_${w.dtype}` as const, [o, w.dtype === 'q4_1' ? eo : q16, q8, d, s, sx, wp, M, N, K], N, 4, work);
      } else if (w.dtype === 'q8_0') this.run('matmul_q8_0', [o, q16, q8, d, s, wp, M, N, K], N, 4, work);
      else this.run('matmul_q4_0', [o, eo, q8, d, s, wp, M, N, K], N, 4, work);
      return;
    }
    if (isKQuant(w.dtype)) {
      // activations quantized to Q8_K once: per 256-block 512 bytes of quants, f32 d, 48 bytes of sums (assembly/matmul-k.ts)
      // then 256 bytes per thread for the kernel
      const blocks = (M * K) / 256;
      const xq = this.scratch(align64(blocks * 512) + align64(blocks * 4) + align64(blocks * 48) + this.threads * 256);
      const xd = xq + align64(blocks * 512);
      const xs = xd + align64(blocks * 4);
      this.run('quantize_q8_k', [xq, xd, xs, xp, K], M, 1, prepWork);
      this.run(`matmul_${w.dtype}`, [o, xq, xd, xs, wp, M, N, K, xs + align64(blocks * 48)], N, 4, work);
      return;
    }
    if (w.dtype === 'q8_k') throw new RequestError('unsupported_dtype', 'w', 'q8_k is an activation type; no matmul takes q8_k weights (as in ggml)');
    // scratch: [x rounded (f16/bf16)] [x · 2^112 (f16, M = 1)] [x row pairs packed (M > 1)] [per thread: 4 packed weight rows]
    const xBytes = align64(M * K * 4);
    const rounded = w.dtype === 'f32' ? 0 : xBytes;
    const scaled = w.dtype === 'f16' ? xBytes : 0;
    // Up to FEW_ROWS rows the kernel streams the weights row by row and needs no packed x.
    const packed = M > FEW_ROWS ? xBytes : 0;
    const base = this.scratch(rounded + scaled + packed + (packed ? this.threads * K * 16 : 0));
    let xr = xp;
    if (w.dtype !== 'f32') {
      xr = base;
      if (w.dtype === 'f16') this.run('round_f16', [xr, base + rounded, xp, K], M, 1, prepWork);
      else this.run('round_bf16', [xr, xp, K], M, 1, prepWork);
    }
    const xs = scaled ? base + rounded : 0;
    const xPairs = packed ? base + rounded + scaled : 0;
    if (packed) this.run('pack_x2', [xPairs, xr, K], M >> 1, 1, prepWork);
    const kernel = w.dtype === 'f32' ? 'matmul_f32' : w.dtype === 'f16' ? 'matmul_f16' : 'matmul_bf16';
    this.run(kernel, [o, xr, xs, xPairs, wp, M, N, K, base + rounded + scaled + packed], N, 8, work);
  }

  getRows(out: Tensor, table: Tensor, ids: ArrayLike<number>): void {
    this.checkLive();
    const D = table.rowLength;
    const rowBytes = table.rowBytes;
    const o = this.addr(out);
    const t = this.addr(table);
    for (let i = 0; i < ids.length; i++) {
      const src = t + ids[i]! * rowBytes;
      const dst = o + i * D * 4;
      switch (table.dtype) {
        case 'f32':
          this.heap.copy(dst, src, rowBytes);
          break;
        case 'f16':
          this.k.f16_to_f32(dst, src, D);
          break;
        case 'bf16':
          this.k.bf16_to_f32(dst, src, D);
          break;
        case 'q8_0':
          this.k.q8_0_to_f32(dst, src, D / 32);
          break;
        case 'q4_0':
          this.k.q4_0_to_f32(dst, src, D / 32);
          break;
        case 'q4_1':
          this.k.q4_1_to_f32(dst, src, D / 32);
          break;
        case 'q5_0':
          this.k.q5_0_to_f32(dst, src, D / 32);
          break;
        case 'q5_1':
          this.k.q5_1_to_f32(dst, src, D / 32);
          break;
        case 'q4_k':
        case 'q5_k':
        case 'q6_k':
          this.k[`${table.dtype}_to_f32`](dst, src, D / 256);
          break;
        case 'q8_k':
          throw new RequestError('unsupported_dtype', 'table', 'q8_k is an activation type, not a table type');
      }
    }
  }

  rmsnorm(out: Tensor, x: Tensor, weight: Tensor, eps: number): void {
    this.run('rmsnorm', [this.addr(out), this.addr(x), this.addr(weight), x.rowLength, eps], x.rowCount, 1, x.numel * 4);
  }

  rope(x: Tensor, pos: number, p: RopeParams): void {
    const table = this.ropeTable(p.theta, p.nRot, pos + x.rowCount);
    const args = [this.addr(x), p.nHead, p.headDim, p.nRot, p.neox ? 1 : 0, table + pos * (p.nRot / 2) * 16];
    this.run('rope', args, x.rowCount, 1, x.numel * 4);
  }

  /**
   * (cos, sin) of pos · θ^(−2i/nRot) for positions [0, positions) as f64 pairs, computed exactly as
   * the reference does and kept per (θ, nRot), growing as positions are asked for. sign −1 negates
   * the sines: the inverse rotation (ropeBackward).
   */
  private ropeTable(theta: number, nRot: number, positions: number, sign: 1 | -1 = 1): number {
    const key = `${theta}/${nRot}/${sign}`;
    const have = this.ropeTables.get(key);
    if (have && have.positions >= positions) return have.addr;
    const n = Math.max(positions, 2 * (have?.positions ?? 0), 64);
    const half = nRot / 2;
    const addr = this.heap.alloc(n * half * 16);
    const table = new Float64Array(this.heap.view(addr, n * half * 16).buffer, addr, n * half * 2);
    for (let pos = 0; pos < n; pos++) {
      for (let i = 0; i < half; i++) {
        const angle = pos * Math.pow(theta, (-2 * i) / nRot);
        table[(pos * half + i) * 2] = Math.cos(angle);
        table[(pos * half + i) * 2 + 1] = sign * Math.sin(angle);
      }
    }
    if (have) this.heap.release(have.addr);
    this.ropeTables.set(key, { addr, positions: n });
    return addr;
  }

  softmax(x: Tensor): void {
    this.run('softmax', [this.addr(x), x.rowLength], x.rowCount, 1, x.numel * 8);
  }

  swiglu(out: Tensor, gate: Tensor, up: Tensor): void {
    this.run('swiglu', [this.addr(out), this.addr(gate), this.addr(up)], out.numel, 64, out.numel * 8);
  }

  gelu(out: Tensor, x: Tensor): void {
    this.run('gelu', [this.addr(out), this.addr(x)], out.numel, 64, out.numel * 8);
  }

  add(out: Tensor, a: Tensor, b: Tensor): void {
    this.run('add', [this.addr(out), this.addr(a), this.addr(b)], out.numel, 64, out.numel);
  }

  mul(out: Tensor, a: Tensor, b: Tensor): void {
    this.run('mul', [this.addr(out), this.addr(a), this.addr(b)], out.numel, 64, out.numel);
  }

  layernorm(out: Tensor, x: Tensor, weight: Tensor, bias: Tensor, eps: number): void {
    const args = [this.addr(out), this.addr(x), this.addr(weight), this.addr(bias), x.rowLength, eps];
    this.run('layernorm', args, x.rowCount, 1, x.numel * 6);
  }

  addRows(out: Tensor, x: Tensor, row: Tensor): void {
    this.run('add_rows', [this.addr(out), this.addr(x), this.addr(row), x.rowLength], x.rowCount, 1, x.numel);
  }

  setRows(dst: Tensor, start: number, src: Tensor): void {
    const d = this.addr(dst) + start * dst.rowBytes;
    const s = this.addr(src);
    if (dst.dtype === 'f32') {
      this.checkLive();
      this.heap.copy(d, s, src.numel * 4);
      return;
    }
    if (dst.dtype === 'q8_0') {
      this.run('f32_to_q8_0', [d, s], src.numel / 32, 1, src.numel * 4);
      return;
    }
    this.run('f32_to_f16', [d, s], src.numel, 64, src.numel * 2);
  }

  attention(out: Tensor, q: Tensor, k: Tensor, v: Tensor, p: AttentionParams): void {
    const M = q.rowCount;
    // a prompt's rows go in blocks that share each (f16-converted) tile of keys and values
    const rowBlock = M === 1 ? 1 : Math.min(16, M);
    const stride = align64(this.k.attention_scratch_bytes(p.headDim, rowBlock, p.pos + M));
    const s = this.scratch(this.threads * stride);
    const args = [
      this.addr(out), this.addr(q), this.addr(k), this.addr(v), p.nHead, p.nKvHead, p.headDim, p.pos, p.scale,
      cacheKind(k.dtype), M, rowBlock, s, stride,
    ];
    const work = M * p.nHead * (p.pos + M) * p.headDim * 2;
    this.run('attention', args, Math.ceil(M / rowBlock) * p.nHead, 1, work);
  }

  // ---- training kernels (train.ts; assembly/train.ts) ----
  matmulInputGrad(dx: Tensor, dy: Tensor, w: Tensor): void { this.trainKernels.matmulInputGrad(dx, dy, w); }
  matmulWeightGrad(dw: Tensor, dy: Tensor, x: Tensor): void { this.trainKernels.matmulWeightGrad(dw, dy, x); }
  getRowsBackward(dtable: Tensor, dy: Tensor, ids: ArrayLike<number>): void { this.trainKernels.getRowsBackward(dtable, dy, ids); }
  sumRows(out: Tensor, x: Tensor): void { this.trainKernels.sumRows(out, x); }
  rmsnormBackward(dx: Tensor, dweight: Tensor, dy: Tensor, x: Tensor, weight: Tensor, eps: number): void { this.trainKernels.rmsnormBackward(dx, dweight, dy, x, weight, eps); }
  layernormBackward(dx: Tensor, dweight: Tensor, dbias: Tensor, dy: Tensor, x: Tensor, weight: Tensor, eps: number): void { this.trainKernels.layernormBackward(dx, dweight, dbias, dy, x, weight, eps); }
  /** rope's kernel with a table of (cos, −sin): the inverse rotation, bit for bit the reference's. */
  ropeBackward(dx: Tensor, pos: number, p: RopeParams): void {
    const table = this.ropeTable(p.theta, p.nRot, pos + dx.rowCount, -1);
    const args = [this.addr(dx), p.nHead, p.headDim, p.nRot, p.neox ? 1 : 0, table + pos * (p.nRot / 2) * 16];
    this.run('rope', args, dx.rowCount, 1, dx.numel * 4);
  }
  swigluBackward(dgate: Tensor, dup: Tensor, dy: Tensor, gate: Tensor, up: Tensor): void { this.trainKernels.swigluBackward(dgate, dup, dy, gate, up); }
  geluBackward(dx: Tensor, dy: Tensor, x: Tensor): void { this.trainKernels.geluBackward(dx, dy, x); }
  crossEntropy(losses: Tensor, dlogits: Tensor, logits: Tensor, targets: ArrayLike<number>, scale: number): void { this.trainKernels.crossEntropy(losses, dlogits, logits, targets, scale); }
  attentionTrain(out: Tensor, lse: Tensor, q: Tensor, k: Tensor, v: Tensor, p: TrainAttentionParams): void { this.trainKernels.attentionTrain(out, lse, q, k, v, p); }
  attentionBackward(dq: Tensor, dk: Tensor, dv: Tensor, dout: Tensor, out: Tensor, lse: Tensor, q: Tensor, k: Tensor, v: Tensor, p: TrainAttentionParams): void {
    this.trainKernels.attentionBackward(dq, dk, dv, dout, out, lse, q, k, v, p);
  }
  dropout(out: Tensor, x: Tensor, p: number, seed: number): void { this.trainKernels.dropout(out, x, p, seed); }
  sumSquares(x: Tensor): number { return this.trainKernels.sumSquares(x); }
  scale(x: Tensor, s: number): void { this.trainKernels.scale(x, s); }
}

/** Compile (once per process) and start the wasm backend. */
export async function createWasmBackend(opts: WasmBackendOptions = {}): Promise<WasmBackend> {
  return WasmBackend.create(opts);
}
