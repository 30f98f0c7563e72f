/**
 * The native backend: the wasm backend with its heaviest kernels — matmuls (f32, f16, bf16, q8_0,
 * q4_0, q4_1, q5_0, q5_1, q4_k, q5_k and q6_k weights) and attention over f32/f16 caches — run by
 * the C++ addon (native/) instead of the wasm kernels; any other weight or cache type still goes
 * to the wasm kernels.
 *
 * It *is* a WasmBackend: tensors live in the same shared WebAssembly.Memory, loading and every
 * other kernel (norms, rope, activation rounding, ...) stay as they are, and the same thread pool
 * runs the native kernels: its workers load the addon and call it for their slice, reading the
 * memory by offset, exactly as they call the wasm kernels. One pool per backend, sleeping in
 * Atomics.wait between calls.
 *
 * Numerics (native/src/kernels.h): quantized matmuls give the wasm kernels' bits; float matmuls
 * and attention are within float rounding of the reference, and as in the wasm backend any
 * thread count, and a batch versus its rows one at a time, give identical bits.
 */
import { RequestError, ResourceError } from '../../errors.js';
import type { Tensor } from '../../tensor/tensor.js';
import type { AttentionParams } from '../backend.js';
import { KERNELS, MIN_PARALLEL_WORK, WasmBackend, type KernelExports, type WasmBackendOptions, type WasmVariant } from '../wasm/backend.js';
import type { WasmHeap } from '../wasm/memory.js';
import type { ThreadPool } from '../wasm/pool.js';
import { loadNative, NATIVE_KERNELS, type NativeAddon, type NativeBuild, type NativeKernelName } from './addon.js';

export interface NativeBackendOptions extends WasmBackendOptions {
  /**
   * Kernel build: 'auto' (default: the best this CPU runs), or one of 'scalar', 'avx2', 'avx512',
   * 'avx512vnni' (x86-64), 'neon', 'neondot' (arm64). SMALLMIND_NATIVE_BUILD sets it when this is 'auto' or unset.
   */
  build?: NativeBuild | 'auto';
  /** The addon file; default nativeAddonPath() (SMALLMIND_NATIVE_PATH, else build/native/smallmind.node). */
  addonPath?: string;
}

/** Pool index of each native kernel: after the wasm kernels. */
const OP = Object.fromEntries(NATIVE_KERNELS.map((name, i) => [name, KERNELS.length + i])) as Record<NativeKernelName, number>;

const align64 = (n: number): number => Math.ceil(n / 64) * 64;

export class NativeBackend extends WasmBackend {
  override readonly name = 'native' as const;
  /** The memory's id in the addon. */
  private readonly memoryId: number;
  /** The memory size the addon last recorded (it re-checks after growth). */
  private attachedBytes: number;
  private detached = false;

  private constructor(
    threads: number,
    variant: WasmVariant,
    heap: WasmHeap,
    pool: ThreadPool,
    k: KernelExports,
    minParallelWork: number,
    private readonly addon: NativeAddon,
    /** The instruction-set build the kernels run. */
    readonly build: NativeBuild,
    private readonly buildIndex: number,
  ) {
    super(threads, variant, heap, pool, k, minParallelWork);
    this.attachedBytes = heap.byteLength;
    this.memoryId = addon.attach(heap.view(0, heap.byteLength));
  }

  /** @internal use createNativeBackend */
  static async createNative(opts: NativeBackendOptions = {}): Promise<NativeBackend> {
    const status = loadNative(opts.addonPath);
    if (!status.loaded) {
      throw new ResourceError('native_unavailable', `native backend: cannot load ${status.path}: ${status.error}${status.built ? '' : ' (build it with npm run build:native)'}`);
    }
    const build = chooseBuild(opts.build, status.builds);
    const addon = status.addon!;
    const poolAddon = { path: status.path, names: NATIVE_KERNELS, kernels: NATIVE_KERNELS.map((name) => addon[name]) };
    const [threads, variant, heap, pool, k] = await WasmBackend.start(opts, poolAddon);
    return new NativeBackend(threads, variant, heap, pool, k, opts.minParallelWork ?? MIN_PARALLEL_WORK, addon, build.name, build.index);
  }

  override dispose(): void {
    super.dispose();
    if (this.detached) return;
    this.detached = true; // (a second detach could hit another backend's reuse of the id)
    this.addon.detach(this.memoryId);
  }

  /** Run a native kernel: (memory id, build, ...args) on the pool, after telling the addon of any growth. */
  private runNative(op: NativeKernelName, args: number[], total: number, grain: number, work: number): void {
    if (this.heap.byteLength !== this.attachedBytes) {
      this.attachedBytes = this.heap.byteLength;
      this.addon.attach(this.heap.view(0, this.attachedBytes), this.memoryId);
    }
    this.run(OP[op], [this.memoryId, this.buildIndex, ...args], total, grain, work);
  }

  override matmul(out: Tensor, x: Tensor, w: Tensor): void {
    const M = x.rowCount;
    const K = x.rowLength;
    const N = w.rowCount;
    const o = this.addr(out);
    const xp = this.addr(x);
    const wp = this.addr(w);
    const work = M * N * K;
    switch (w.dtype) {
      case 'f32':
        this.runNative('matmul_f32', [o, xp, wp, M, N, K], N, 8, work);
        return;
      case 'f16':
      case 'bf16': {
        // activations rounded to the weights' precision first (ggml), by the wasm kernels
        const rounded = this.scratch(2 * align64(M * K * 4));
        if (w.dtype === 'f16') this.run('round_f16', [rounded, rounded + align64(M * K * 4), xp, K], M, 1, M * K * 8);
        else this.run('round_bf16', [rounded, xp, K], M, 1, M * K * 8);
        this.runNative(w.dtype === 'f16' ? 'matmul_f16' : 'matmul_bf16', [o, rounded, wp, M, N, K], N, 8, work);
        return;
      }
      case 'q8_0':
      case 'q4_0': {
        // activations quantized to Q8_0 once: values, scales, sums
        const blocks = (M * K) / 32;
        const q = this.scratch(align64(blocks * 32) + 2 * align64(blocks * 4));
        const d = q + align64(blocks * 32);
        const sum = d + align64(blocks * 4);
        this.runNative('quantize_q8', [q, d, sum, xp, K], M, 1, M * K * 8);
        this.runNative(w.dtype === 'q8_0' ? 'matmul_q8_0' : 'matmul_q4_0', [o, q, d, sum, wp, M, N, K], N, 8, work);
        return;
      }
      case 'q4_1':
      case 'q5_0':
      case 'q5_1': {
        // activations quantized to Q8_0 with Q8_1's s (ggml pairs Q4_1/Q5_1 with Q8_1; Q5_0 ignores s)
        const blocks = (M * K) / 32;
        const q = this.scratch(align64(blocks * 32) + 3 * align64(blocks * 4));
        const d = q + align64(blocks * 32);
        const sum = d + align64(blocks * 4);
        const s = sum + align64(blocks * 4);
        this.runNative('quantize_q8_1', [q, d, sum, s, xp, K], M, 1, M * K * 8);
        this.runNative(`matmul_${w.dtype}`, [o, q, d, sum, s, wp, M, N, K], N, 8, work);
        return;
      }
      case 'q4_k':
      case 'q5_k':
      case 'q6_k': {
        // activations quantized to Q8_K once: per 256-block its quants, d and 24 i16 sums
        const blocks = (M * K) / 256;
        const q = this.scratch(align64(blocks * 256) + align64(blocks * 4) + align64(blocks * 48));
        const d = q + align64(blocks * 256);
        const sums = d + align64(blocks * 4);
        this.runNative('quantize_q8_k', [q, d, sums, xp, K], M, 1, M * K * 8);
        this.runNative(`matmul_${w.dtype}`, [o, q, d, sums, wp, M, N, K], N, 8, work);
        return;
      }
      default:
        super.matmul(out, x, w); // any other weight type: the wasm kernels
    }
  }

  override attention(out: Tensor, q: Tensor, k: Tensor, v: Tensor, p: AttentionParams): void {
    if (k.dtype !== 'f32' && k.dtype !== 'f16') {
      super.attention(out, q, k, v, p); // other cache types: the wasm kernels
      return;
    }
    const M = q.rowCount;
    const args = [this.addr(out), this.addr(q), this.addr(k), this.addr(v), p.nHead, p.nKvHead, p.headDim, p.pos, p.scale, k.dtype === 'f16' ? 1 : 0, M];
    const work = M * p.nHead * (p.pos + M) * p.headDim * 2;
    this.runNative('attention', args, M * p.nHead, 1, work);
  }
}

/** The build an option (or SMALLMIND_NATIVE_BUILD) asks for, among those this CPU runs. */
function chooseBuild(option: NativeBuild | 'auto' | undefined, runnable: { name: NativeBuild; index: number }[], env = process.env['SMALLMIND_NATIVE_BUILD']): { name: NativeBuild; index: number } {
  let wanted: string = option ?? 'auto';
  let source = 'build';
  if (wanted === 'auto' && env) {
    wanted = env;
    source = 'SMALLMIND_NATIVE_BUILD';
  }
  if (wanted === 'auto') return runnable[runnable.length - 1]!;
  const found = runnable.find((b) => b.name === wanted);
  if (!found) {
    throw new RequestError('unsupported_build', source, `'${wanted}' is not a native build this CPU runs (it runs: ${runnable.map((b) => b.name).join(', ')})`);
  }
  return found;
}

/** Load the addon and start the native backend; throws ResourceError native_unavailable if the addon is missing or does not load. */
export async function createNativeBackend(opts: NativeBackendOptions = {}): Promise<NativeBackend> {
  return NativeBackend.createNative(opts);
}
