/**
 * Finding, choosing and compiling the kernel modules. build/kernels-simd.wasm needs SIMD128 only;
 * build/kernels-relaxed.wasm also uses relaxed SIMD (fused multiply-add, i8 dot products), which
 * Node 22+ validates by default and Node 20 only with --experimental-wasm-relaxed-simd.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { RequestError, ResourceError } from '../../errors.js';
import { wasmApi, type WasmModule } from './wasm-api.js';

export type WasmVariant = 'simd' | 'relaxed';
export type WasmVariantOption = WasmVariant | 'auto';

/** The kernels' file: relative to this module, so it works from src/backend/wasm and dist/backend/wasm. */
export function kernelsUrl(variant: WasmVariant): URL {
  return new URL(`../../../build/kernels-${variant}.wasm`, import.meta.url);
}

const bytesCache = new Map<WasmVariant, Uint8Array>();
const moduleCache = new Map<WasmVariant, Promise<WasmModule>>();

function kernelBytes(variant: WasmVariant): Uint8Array {
  let bytes = bytesCache.get(variant);
  if (!bytes) {
    const file = fileURLToPath(kernelsUrl(variant));
    try {
      bytes = readFileSync(file);
    } catch (err) {
      throw new ResourceError('wasm_missing', `wasm backend: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? err}); build it with npm run build:wasm`);
    }
    bytesCache.set(variant, bytes);
  }
  return bytes;
}

/** Can this runtime run the relaxed-SIMD kernels? */
export function relaxedSupported(): boolean {
  return wasmApi.validate(kernelBytes('relaxed'));
}

/**
 * The variant to use: an explicit option wins, then SMALLMIND_WASM_VARIANT, then 'auto' (relaxed
 * when the runtime validates it, else simd).
 */
export function chooseVariant(option: WasmVariantOption | undefined, env = process.env['SMALLMIND_WASM_VARIANT']): WasmVariant {
  let wanted: string = option ?? 'auto';
  let source = 'variant';
  if (wanted === 'auto' && env) {
    wanted = env;
    source = 'SMALLMIND_WASM_VARIANT';
  }
  switch (wanted) {
    case 'auto':
      return relaxedSupported() ? 'relaxed' : 'simd';
    case 'simd':
      if (!wasmApi.validate(kernelBytes('simd'))) {
        throw new ResourceError('wasm_simd_unsupported', 'wasm backend: this runtime does not support WebAssembly SIMD128');
      }
      return 'simd';
    case 'relaxed':
      if (!relaxedSupported()) {
        throw new RequestError('unsupported_variant', source, `relaxed SIMD is not available in this runtime (use Node >= 22, or node --experimental-wasm-relaxed-simd)`);
      }
      return 'relaxed';
    default:
      throw new RequestError('invalid_variant', source, `expected 'auto', 'simd' or 'relaxed', got '${wanted}'`);
  }
}

/** The compiled module for a variant (compiled once per process). */
export function compileKernels(variant: WasmVariant): Promise<WasmModule> {
  const cached = moduleCache.get(variant);
  if (cached) return cached;
  const module = wasmApi.compile(kernelBytes(variant));
  moduleCache.set(variant, module);
  module.catch(() => moduleCache.delete(variant));
  return module;
}
