/**
 * Pick a backend by name. 'auto' (the default) takes the native kernels where the addon is built
 * and this CPU has the vector units they need, and the wasm kernels otherwise, saying why once on
 * stderr; SMALLMIND_BACKEND=wasm|native|reference overrides 'auto'. `reference` is the slow,
 * plain-TS oracle.
 */
import os from 'node:os';
import type { Backend, BackendChoice, BackendName } from './backend.js';
import { loadNative } from './native/addon.js';
import { ReferenceBackend } from './reference.js';
import { RequestError } from '../errors.js';

export type { Backend, BackendChoice, BackendName } from './backend.js';

export interface BackendOptions {
  /** Default 'auto'. */
  backend?: BackendChoice;
  /** Worker threads for the wasm and native backends; default: the available cores. */
  threads?: number;
}

const NAMES: readonly BackendChoice[] = ['auto', 'native', 'wasm', 'reference'];

/** What 'auto' picks here, and why it is not the native backend when it is not. */
export function autoBackend(): { name: 'native' | 'wasm'; reason?: string } {
  const native = loadNative();
  if (!native.built) return { name: 'wasm', reason: `the native addon is not built (no ${native.path}; npm run build:native builds it)` };
  if (!native.loaded) return { name: 'wasm', reason: `the native addon failed to load: ${native.error}` };
  if (!native.accelerated) {
    return { name: 'wasm', reason: `this CPU has no vector unit the native kernels use (they need AVX2 + FMA + F16C on x86-64, or arm64's NEON)` };
  }
  return { name: 'native' };
}

/** The backend a choice means: an explicit name, else SMALLMIND_BACKEND, else what 'auto' picks. */
export function resolveBackend(choice: BackendChoice | undefined, env: NodeJS.ProcessEnv = process.env): { name: BackendName; reason?: string } {
  let wanted: string = choice ?? 'auto';
  let source = 'backend';
  const fromEnv = env['SMALLMIND_BACKEND'];
  if (wanted === 'auto' && fromEnv) {
    wanted = fromEnv;
    source = 'SMALLMIND_BACKEND';
  }
  if (!NAMES.includes(wanted as BackendChoice)) {
    throw new RequestError('unknown_backend', source, `unknown backend '${wanted}' (expected ${NAMES.join(', ')})`);
  }
  return wanted === 'auto' ? autoBackend() : { name: wanted as BackendName };
}

/** Fallback notices already printed (each reason once per process). */
const noticed = new Set<string>();

export async function createBackend(opts: BackendOptions = {}): Promise<Backend> {
  const threads = opts.threads ?? os.availableParallelism();
  if (!Number.isInteger(threads) || threads < 1 || threads > 256) {
    throw new RequestError('invalid_threads', 'threads', `must be an integer in 1..256, got ${opts.threads}`);
  }
  const { name, reason } = resolveBackend(opts.backend);
  if (reason && !noticed.has(reason)) {
    noticed.add(reason);
    process.stderr.write(`smallmind: using the wasm backend: ${reason}\n`);
  }
  switch (name) {
    case 'reference':
      return new ReferenceBackend();
    case 'wasm': {
      // loaded on demand: the reference backend works without the compiled kernels
      const { createWasmBackend } = await import('./wasm/backend.js');
      return createWasmBackend({ threads });
    }
    case 'native': {
      const { createNativeBackend } = await import('./native/backend.js');
      return createNativeBackend({ threads });
    }
  }
}
