/**
 * Fast weight quantizers for `smallmind quantize`: assembly/quantize.ts's kernels (Q4_K, Q5_K,
 * Q6_K, Q8_0, Q4_0), which give the bytes of src/tensor/quant-k.ts and quant.ts (the tested
 * references, bit-exact with ggml) in native f32 arithmetic, about 6-20× faster.
 *
 * Synchronous on purpose: quantizeModel is a synchronous function, and one compiled kernel module
 * instantiated on a private memory needs no backend, no worker threads and no await. Values pass
 * through that memory CHUNK_VALUES at a time, so a tensor of any size needs ~1.3 MiB of it.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ResourceError } from '../../errors.js';
import { DTYPES, type DType } from '../../tensor/dtype.js';
import { encodeValues } from '../../tensor/quant.js';
import { kernelsUrl } from './module.js';
import type { WasmMemory, WasmModule } from './wasm-api.js';

/** The types with a wasm quantizer, and its kernel. */
const KERNEL_NAMES = {
  q4_k: 'quantize_q4_k',
  q5_k: 'quantize_q5_k',
  q6_k: 'quantize_q6_k',
  q8_0: 'quantize_q8_0',
  q4_0: 'quantize_q4_0',
} as const;
type FastType = keyof typeof KERNEL_NAMES;

/** kernel(dst, src, scratch, firstBlock, endBlock, tid): blocks [firstBlock, endBlock) of src at dst. */
type QuantizeKernel = (dst: number, src: number, scratch: number, b0: number, b1: number, tid: number) => void;
type QuantizerExports = Record<(typeof KERNEL_NAMES)[FastType], QuantizeKernel> & { quantize_scratch_bytes(): number };

/** The synchronous constructors of the WebAssembly API (not in the project's lib typings). */
interface SyncWasmApi {
  Memory: new (descriptor: { initial: number; maximum: number; shared: boolean }) => WasmMemory;
  Module: new (bytes: Uint8Array) => WasmModule;
  Instance: new (module: WasmModule, imports: Record<string, Record<string, unknown>>) => { exports: Record<string, unknown> };
}
const wasm = (globalThis as unknown as { WebAssembly: SyncWasmApi }).WebAssembly;

/** Values per kernel call (a multiple of every block size): 1 MiB of f32 in. */
const CHUNK_VALUES = 256 * 1024;
const PAGE = 65536;
const align64 = (n: number): number => Math.ceil(n / 64) * 64;

export function hasFastQuantizer(dtype: DType): dtype is FastType {
  return dtype in KERNEL_NAMES;
}

export class WasmQuantizer {
  private static shared: WasmQuantizer | undefined;
  private readonly kernels: QuantizerExports;
  private readonly memory: WasmMemory;
  /** Addresses in the memory: the kernels' scratch, the input chunk, the output chunk. */
  private readonly scratch = 0;
  private readonly src: number;
  private readonly dst: number;

  private constructor(module: WasmModule) {
    // The kernels import a shared memory (the backend's threads share theirs); this one is private.
    this.memory = new wasm.Memory({ initial: 1, maximum: 65536, shared: true });
    this.kernels = new wasm.Instance(module, { env: { memory: this.memory } }).exports as unknown as QuantizerExports;
    this.src = align64(this.kernels.quantize_scratch_bytes());
    this.dst = this.src + CHUNK_VALUES * 4;
    const maxOutBytes = Math.max(...Object.keys(KERNEL_NAMES).map((t) => (CHUNK_VALUES / DTYPES[t as FastType].blockSize) * DTYPES[t as FastType].blockBytes));
    this.memory.grow(Math.ceil((this.dst + maxOutBytes) / PAGE) - this.memory.buffer.byteLength / PAGE);
  }

  /** The process's quantizer (compiled and instantiated on first use). */
  static get(): WasmQuantizer {
    WasmQuantizer.shared ??= new WasmQuantizer(new wasm.Module(kernelFile()));
    return WasmQuantizer.shared;
  }

  /** Quantize values (whole blocks of `dtype`) into dst, byte for byte as encodeValues does. */
  quantize(dtype: FastType, values: Float32Array, dst: Uint8Array): void {
    const kernel = this.kernels[KERNEL_NAMES[dtype]];
    const { blockSize, blockBytes } = DTYPES[dtype];
    const heap = this.memory.buffer;
    const input = new Float32Array(heap, this.src, CHUNK_VALUES);
    const output = new Uint8Array(heap, this.dst, (CHUNK_VALUES / blockSize) * blockBytes);
    for (let first = 0; first < values.length; first += CHUNK_VALUES) {
      const count = Math.min(CHUNK_VALUES, values.length - first);
      const blocks = count / blockSize;
      input.set(values.subarray(first, first + count));
      kernel(this.dst, this.src, this.scratch, 0, blocks, 0);
      dst.set(output.subarray(0, blocks * blockBytes), (first / blockSize) * blockBytes);
    }
  }
}

/** Write f32 `values` into `dst` as `dtype`: the bytes of encodeValues, on the wasm quantizer where it has the type. */
export function encodeWeights(dtype: DType, values: Float32Array, dst: Uint8Array): void {
  if (hasFastQuantizer(dtype)) WasmQuantizer.get().quantize(dtype, values, dst);
  else encodeValues(dtype, values, dst);
}

function kernelFile(): Uint8Array {
  // The quantizers are scalar code, the same in both builds; the SIMD128 one runs everywhere.
  const file = fileURLToPath(kernelsUrl('simd'));
  try {
    return readFileSync(file);
  } catch (err) {
    throw new ResourceError('wasm_missing', `quantize: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? err}); build it with npm run build:wasm`);
  }
}
