/**
 * Finding and loading the native addon (native/, built by scripts/build-native.mjs into
 * build/native/smallmind.node), and what it says about the CPU. Loading never throws: the result
 * says whether the addon is there, whether it loaded, and why not, so `auto` can fall back to
 * the wasm kernels with a reason and `smallmind doctor` can report it.
 */
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';

type Kernel = (...args: number[]) => void;

/** The instruction-set builds the addon may hold, worst to best (native/src/addon.cc kBuilds). */
export type NativeBuild = 'scalar' | 'avx2' | 'avx512' | 'avx512vnni' | 'neon' | 'neondot';

export interface CpuInfo {
  /** The CPU's brand string (cpuid; empty where the addon cannot read one). */
  brand: string;
  features: Record<'avx2' | 'fma' | 'f16c' | 'avx512f' | 'avx512bw' | 'avx512vl' | 'avx512dq' | 'avx512_vnni' | 'avx_vnni' | 'amx_tile' | 'amx_int8' | 'amx_bf16' | 'neon' | 'asimddp' | 'fphp', boolean>;
}

/** The addon's exports (native/src/addon.cc). Kernels take (memory id, build index, ...). */
export interface NativeAddon {
  attach(view: Uint8Array, id?: number): number;
  detach(id: number): void;
  cpuInfo(): CpuInfo;
  builds(): { name: NativeBuild; runs: boolean }[];
  matmul_f32: Kernel;
  matmul_f16: Kernel;
  matmul_bf16: Kernel;
  quantize_q8: Kernel;
  matmul_q8_0: Kernel;
  matmul_q4_0: Kernel;
  attention: Kernel;
  quantize_q8_1: Kernel;
  matmul_q4_1: Kernel;
  matmul_q5_0: Kernel;
  matmul_q5_1: Kernel;
  quantize_q8_k: Kernel;
  matmul_q4_k: Kernel;
  matmul_q5_k: Kernel;
  matmul_q6_k: Kernel;
}

/** The addon's kernels, in the order the thread pool indexes them (after the wasm ones). */
export const NATIVE_KERNELS = [
  'matmul_f32', 'matmul_f16', 'matmul_bf16', 'quantize_q8', 'matmul_q8_0', 'matmul_q4_0', 'attention',
  'quantize_q8_1', 'matmul_q4_1', 'matmul_q5_0', 'matmul_q5_1', 'quantize_q8_k', 'matmul_q4_k', 'matmul_q5_k', 'matmul_q6_k',
] as const;
export type NativeKernelName = (typeof NATIVE_KERNELS)[number];

export interface NativeStatus {
  /** The file looked for. */
  path: string;
  /** The file exists. */
  built: boolean;
  /** It loaded (then `addon` and `cpu` are set). */
  loaded: boolean;
  /** Why it did not load. */
  error?: string;
  addon?: NativeAddon;
  cpu?: CpuInfo;
  /** The builds this CPU can run, worst to best (with their index in the addon's list). */
  builds: { name: NativeBuild; index: number }[];
  /** The build `auto` uses: the last of `builds`. */
  best?: NativeBuild;
  /**
   * A vector build runs here (AVX2 + FMA + F16C or better on x86-64, NEON on arm64), so the native
   * kernels beat wasm's. The scalar build (any other CPU) does not.
   */
  accelerated: boolean;
}

/** Where the addon is: SMALLMIND_NATIVE_PATH, else build/native/smallmind.node in this package. */
export function nativeAddonPath(env: NodeJS.ProcessEnv = process.env): string {
  const override = env['SMALLMIND_NATIVE_PATH'];
  if (override) return override;
  // relative to this module: works from src/backend/native and dist/backend/native
  return fileURLToPath(new URL('../../../build/native/smallmind.node', import.meta.url));
}

const cache = new Map<string, NativeStatus>();

/** Load the addon at `path` (once per path per process) and describe the outcome. */
export function loadNative(path = nativeAddonPath()): NativeStatus {
  let status = cache.get(path);
  if (!status) {
    status = tryLoad(path);
    cache.set(path, status);
  }
  return status;
}

function tryLoad(path: string): NativeStatus {
  const built = fs.existsSync(path);
  const status: NativeStatus = { path, built, loaded: false, builds: [], accelerated: false };
  if (!built) {
    status.error = 'not built';
    return status;
  }
  try {
    // process.dlopen, not require: a path to a .js file must not run it
    const module = { exports: {} as NativeAddon };
    process.dlopen(module, path);
    const addon = module.exports;
    status.cpu = addon.cpuInfo();
    status.builds = addon
      .builds()
      .map((b, index) => ({ name: b.name, index, runs: b.runs }))
      .filter((b) => b.runs)
      .map(({ name, index }) => ({ name, index }));
    status.best = status.builds[status.builds.length - 1]?.name;
    status.addon = addon;
    status.loaded = true;
    status.accelerated = status.builds.some((b) => b.name !== 'scalar');
  } catch (err) {
    status.error = (err as Error).message.split('\n')[0];
  }
  return status;
}
