/**
 * A pool of worker threads that run kernel slices on the shared wasm memory.
 *
 * Each worker instantiates the same compiled module on the same memory and then sleeps in
 * Atomics.wait on a small control block (an Int32Array on a SharedArrayBuffer). To run a kernel the
 * calling thread writes the kernel's index and arguments, sets `pending` to the number of workers,
 * bumps the generation counter and notifies; every thread (the caller is thread 0) runs its slice
 * of the work range, the workers decrement `pending`, the last one notifies, and the caller,
 * after its own slice, waits for `pending` to reach 0. Nobody spins: the cores may be shared.
 *
 * Workers are created from a source string (eval), so the pool works the same from the TS sources
 * (vitest) and from the compiled dist/. They are unref'd, so they never keep a process alive.
 */
import { Worker } from 'node:worker_threads';
import type { WasmMemory, WasmModule } from './wasm-api.js';

// control block slots (Int32Array indices)
const GEN = 0;
const PENDING = 1;
const OP = 2;
const ARGC = 3;
const ERRORS = 4;
const ARGS_BYTE = 64;
const MAX_ARGS = 24;
/** Per-thread [start, end) pairs, written by the caller for each run. */
const SLICES = (ARGS_BYTE + MAX_ARGS * 8) / 4;
const MAX_THREADS = 256;
/** The first failing worker's error text: length (Int32 slot), then UTF-8 bytes. */
const ERROR_LENGTH = SLICES + 2 * MAX_THREADS;
const ERROR_TEXT_BYTE = (ERROR_LENGTH + 1) * 4;
const ERROR_TEXT_MAX = 1024;
const CONTROL_BYTES = ERROR_TEXT_BYTE + ERROR_TEXT_MAX;
const QUIT = -1;

/** The [start, end) slice of [0, total) that thread `tid` of `threads` runs, cut on grain boundaries. */
export function slice(total: number, grain: number, tid: number, threads: number): [number, number] {
  const grains = Math.ceil(total / grain);
  const start = Math.min(total, Math.floor((grains * tid) / threads) * grain);
  const end = Math.min(total, Math.floor((grains * (tid + 1)) / threads) * grain);
  return [start, end];
}

// The worker's whole program. It must stay plain CommonJS JavaScript (it is not compiled).
const WORKER_SOURCE = `
const { workerData, parentPort } = require('node:worker_threads');
const { module, memory, control, tid, names, addon } = workerData;
const { exports } = new WebAssembly.Instance(module, { env: { memory } });
const kernels = names.map((name) => exports[name]);
if (addon) {
  const native = { exports: {} };
  process.dlopen(native, addon.path);
  for (const name of addon.names) kernels.push(native.exports[name]);
}
const ctl = new Int32Array(control);
const args = new Float64Array(control, ${ARGS_BYTE}, ${MAX_ARGS});
parentPort.postMessage('ready');
let seen = 0;
for (;;) {
  Atomics.wait(ctl, ${GEN}, seen);
  const gen = Atomics.load(ctl, ${GEN});
  if (gen === seen) continue;
  seen = gen;
  const op = Atomics.load(ctl, ${OP});
  if (op === ${QUIT}) break;
  try {
    const start = ctl[${SLICES} + 2 * tid];
    const end = ctl[${SLICES} + 2 * tid + 1];
    if (start < end) {
      const argc = ctl[${ARGC}];
      const a = new Array(argc + 3);
      for (let i = 0; i < argc; i++) a[i] = args[i];
      a[argc] = start;
      a[argc + 1] = end;
      a[argc + 2] = tid;
      kernels[op].apply(null, a);
    }
  } catch (err) {
    if (Atomics.add(ctl, ${ERRORS}, 1) === 0) {
      const text = new TextEncoder().encode(String((err && err.message) || err)).subarray(0, ${ERROR_TEXT_MAX});
      new Uint8Array(control, ${ERROR_TEXT_BYTE}, text.length).set(text);
      ctl[${ERROR_LENGTH}] = text.length;
    }
  }
  if (Atomics.sub(ctl, ${PENDING}, 1) === 1) Atomics.notify(ctl, ${PENDING});
}
`;

type Kernel = (...args: number[]) => unknown;

/**
 * Kernels of a native addon the workers load (by path) and index after the wasm ones: the native
 * backend's kernels run on the same threads. `kernels` are the calling thread's copies.
 */
export interface PoolAddon {
  path: string;
  names: readonly string[];
  kernels: readonly Kernel[];
}

export class ThreadPool {
  private readonly control = new SharedArrayBuffer(CONTROL_BYTES);
  private readonly ctl = new Int32Array(this.control);
  private readonly args = new Float64Array(this.control, ARGS_BYTE, MAX_ARGS);
  private readonly workers: Worker[] = [];
  private exits: Promise<void> = Promise.resolve();
  private closed = false;

  private constructor(
    /** Threads that run kernels, the caller included. */
    readonly threads: number,
    private readonly kernels: readonly Kernel[],
  ) {}

  /** Start threads − 1 workers running `module` on `memory`; resolves when all are ready. */
  static async start(
    threads: number,
    module: WasmModule,
    memory: WasmMemory,
    names: readonly string[],
    kernels: readonly Kernel[],
    addon?: PoolAddon,
  ): Promise<ThreadPool> {
    const pool = new ThreadPool(threads, addon ? [...kernels, ...addon.kernels] : kernels);
    const ready: Promise<void>[] = [];
    const exits: Promise<void>[] = [];
    for (let tid = 1; tid < threads; tid++) {
      const worker = new Worker(WORKER_SOURCE, {
        eval: true,
        workerData: { module, memory, control: pool.control, tid, names, addon: addon && { path: addon.path, names: addon.names } },
      });
      worker.unref();
      pool.workers.push(worker);
      exits.push(new Promise((resolve) => worker.once('exit', () => resolve())));
      ready.push(
        new Promise((resolve, reject) => {
          worker.once('message', () => resolve());
          worker.once('error', reject);
        }),
      );
    }
    pool.exits = Promise.all(exits).then(() => undefined);
    try {
      await Promise.all(ready);
    } catch (err) {
      pool.close();
      throw err;
    }
    return pool;
  }

  /**
   * Run kernel `op` over the work range [0, total) split in grain-aligned slices, one per thread:
   * kernel(...args, start, end, tid). Returns when every slice is done. With parallel = false the
   * calling thread runs it all.
   */
  run(op: number, args: readonly number[], total: number, grain: number, parallel = true): void {
    if (this.closed) throw new Error('wasm backend: used after dispose()');
    const kernel = this.kernels[op]!;
    if (!parallel || this.workers.length === 0 || total <= grain) {
      kernel(...args, 0, total, 0);
      return;
    }
    const ctl = this.ctl;
    for (let i = 0; i < args.length; i++) this.args[i] = args[i]!;
    ctl[OP] = op;
    ctl[ARGC] = args.length;
    for (let tid = 1; tid < this.threads; tid++) {
      const [s, e] = slice(total, grain, tid, this.threads);
      ctl[SLICES + 2 * tid] = s;
      ctl[SLICES + 2 * tid + 1] = e;
    }
    Atomics.store(ctl, PENDING, this.workers.length);
    Atomics.add(ctl, GEN, 1);
    Atomics.notify(ctl, GEN);
    const [start, end] = slice(total, grain, 0, this.threads);
    let failure: unknown;
    try {
      if (start < end) kernel(...args, start, end, 0);
    } catch (err) {
      failure = err;
    }
    for (;;) {
      const pending = Atomics.load(ctl, PENDING);
      if (pending === 0) break;
      Atomics.wait(ctl, PENDING, pending);
    }
    if (failure) throw failure;
    if (Atomics.load(ctl, ERRORS) > 0) {
      const text = new TextDecoder().decode(new Uint8Array(this.control, ERROR_TEXT_BYTE, ctl[ERROR_LENGTH]).slice());
      Atomics.store(ctl, ERRORS, 0);
      throw new Error(`wasm backend: a worker thread failed in a kernel: ${text}`);
    }
  }

  /** Stop the workers; resolves when they have all exited. */
  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      Atomics.store(this.ctl, OP, QUIT);
      Atomics.add(this.ctl, GEN, 1);
      Atomics.notify(this.ctl, GEN);
      for (const worker of this.workers) void worker.terminate();
    }
    return this.exits;
  }

  /** Resolves when every worker has exited (after close). */
  get exited(): Promise<void> {
    return this.exits;
  }
}
