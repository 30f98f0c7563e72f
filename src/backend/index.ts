/** Pick a backend by name. `wasm` is the default; `reference` is the slow, plain-TS oracle. */
import os from 'node:os';
import type { Backend, BackendName } from './backend.js';
import { ReferenceBackend } from './reference.js';
import { RequestError } from '../errors.js';

export type { Backend, BackendName } from './backend.js';

export interface BackendOptions {
  backend?: BackendName;
  /** Worker threads for the wasm backend; default: the available cores. */
  threads?: number;
}

export async function createBackend(opts: BackendOptions = {}): Promise<Backend> {
  const name = opts.backend ?? 'wasm';
  const threads = opts.threads ?? os.availableParallelism();
  if (!Number.isInteger(threads) || threads < 1 || threads > 256) {
    throw new RequestError('invalid_threads', 'threads', `must be an integer in 1..256, got ${opts.threads}`);
  }
  switch (name) {
    case 'reference':
      return new ReferenceBackend();
    case 'wasm': {
      // loaded on demand: the reference backend works without the compiled kernels
      const { createWasmBackend } = await import('./wasm/backend.js');
      return createWasmBackend({ threads });
    }
    default:
      throw new RequestError('unknown_backend', 'backend', `unknown backend '${String(name)}' (expected wasm or reference)`);
  }
}
