#!/usr/bin/env node
/**
 * The measured peak f32 GEMM rate of our backends: the denominator of model FLOPs utilisation
 * (MFU = 6 × params × training tokens/s ÷ this rate, for the backend and thread count in use).
 *
 *   npm run bench:gemm -- [--backends wasm,native] [--threads 1,2] [--rounds 5] [--shapes 768x128x128,...] [--json]
 *
 * Each shape MxKxN is one `backend.matmul(out, x, w)` through the public Backend API: x [M, K] f32,
 * w [N, K] f32 (rows of K, as our weights are stored), out [M, N]; 2·M·N·K flops. The defaults are
 * the baby GPT's training matmuls (12 × 64 = 768 tokens of width 128, the 4× MLP, the attention
 * projections, a weight-gradient shape whose K is the 768 tokens) and one large square 1024³. A
 * round repeats the call until it has run for at least 50 ms; a shape's rate is the median of
 * `rounds` rounds; a backend's peak is its best shape. Inputs are random (fixed seed): speed does
 * not depend on the values (there are no denormals in them).
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { die, median } from './common.mjs';

const ROOT = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const DIST = path.join(ROOT, 'dist');

/** [M, K, N]: tokens × input width → output width. */
export const GEMM_SHAPES = [
  [768, 128, 128], // attention output projection
  [768, 128, 384], // fused q, k, v projection
  [768, 128, 512], // MLP up
  [768, 512, 128], // MLP down
  [512, 768, 128], // a weight gradient: K = the 768 tokens of the batch
  [1024, 1024, 1024],
];
const MIN_ROUND_MS = 50;

/**
 * Median GFLOP/s per shape and the peak (best shape) for each backend × thread count.
 * A backend that cannot start here (e.g. native without the addon) is reported with `error`.
 * @returns {Promise<Array<{ backend: string, threads: number, build?: string, error?: string,
 *   peakGflops?: number, peakShape?: number[], shapes?: Array<{ shape: number[], gflops: number }> }>>}
 */
export async function measureGemmPeak({ backends = ['wasm', 'native'], threads = [1, 2], shapes = GEMM_SHAPES, rounds = 5, seed = 1 } = {}) {
  if (!fs.existsSync(path.join(DIST, 'backend', 'index.js'))) die('dist/ is missing: run `npm run build` first');
  const { createBackend } = await import(path.join(DIST, 'backend', 'index.js'));
  const { Xoshiro128 } = await import(path.join(DIST, 'tensor', 'random.js'));
  const results = [];
  for (const name of backends) {
    for (const n of threads) {
      let backend;
      try {
        backend = await createBackend({ backend: name, threads: n });
      } catch (err) {
        results.push({ backend: name, threads: n, error: err instanceof Error ? err.message : String(err) });
        continue;
      }
      try {
        const cells = shapes.map((shape) => ({ shape, gflops: gemmRate(backend, Xoshiro128, shape, rounds, seed) }));
        const best = cells.reduce((a, b) => (b.gflops > a.gflops ? b : a));
        results.push({ backend: name, threads: n, build: buildName(backend), peakGflops: best.gflops, peakShape: best.shape, shapes: cells });
      } finally {
        backend.dispose();
      }
    }
  }
  return results;
}

/** Median GFLOP/s of out = x · wᵀ at [M, K, N] over `rounds` rounds, after one untimed call. */
function gemmRate(backend, Xoshiro128, [m, k, n], rounds, seed) {
  const x = randomTensor(backend, Xoshiro128, [m, k], seed);
  const w = randomTensor(backend, Xoshiro128, [n, k], seed + 1);
  const out = backend.alloc('f32', [m, n]);
  try {
    backend.matmul(out, x, w); // warm-up: first-touch of the output, lazy kernel set-up
    const flops = 2 * m * n * k;
    const rates = [];
    for (let r = 0; r < rounds; r++) {
      let calls = 0;
      const start = performance.now();
      let elapsed = 0;
      while (elapsed < MIN_ROUND_MS) {
        backend.matmul(out, x, w);
        calls++;
        elapsed = performance.now() - start;
      }
      rates.push((flops * calls) / (elapsed * 1e6));
    }
    return median(rates);
  } finally {
    for (const t of [x, w, out]) backend.free(t);
  }
}

/** An f32 tensor in the backend's memory with values uniform in [-1, 1) (our seeded generator). */
function randomTensor(backend, Xoshiro128, shape, seed) {
  const t = backend.alloc('f32', shape);
  const values = t.f32();
  const rng = Xoshiro128.fromSeed(seed);
  for (let i = 0; i < values.length; i++) values[i] = rng.nextFloat() * 2 - 1;
  return t;
}

/** Which kernel build ran: the native instruction-set build (avx2, avx512, ...) or the wasm variant (simd, relaxed). */
function buildName(backend) {
  return backend.name === 'native' ? backend.build : backend.variant;
}

// --- CLI ------------------------------------------------------------------------------------------

function parseArgs(argv) {
  const a = { backends: ['wasm', 'native'], threads: [1, 2], rounds: 5, shapes: GEMM_SHAPES, json: false };
  const positiveInts = (v, name) => v.split(',').map((s) => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < 1) die(`${name}: expected positive integers, got '${v}'`);
    return n;
  });
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = () => argv[++i] ?? die(`${flag} needs a value`);
    switch (flag) {
      case '--backends': a.backends = value().split(','); break;
      case '--threads': case '-t': a.threads = positiveInts(value(), flag); break;
      case '--rounds': a.rounds = positiveInts(value(), flag)[0]; break;
      case '--shapes': a.shapes = value().split(',').map((s) => {
        const dims = positiveInts(s.replaceAll('x', ','), flag);
        if (dims.length !== 3) die(`${flag}: expected MxKxN, got '${s}'`);
        return dims;
      }); break;
      case '--json': a.json = true; break;
      case '--help': case '-h':
        console.log(fs.readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').slice(2, 15).join('\n').replace(/^ \*\/?/gm, ''));
        process.exit(0);
        break;
      default: die(`unknown option ${flag} (see --help)`);
    }
  }
  for (const b of a.backends) if (!['wasm', 'native'].includes(b)) die(`--backends: unknown backend '${b}' (expected wasm, native)`);
  return a;
}

function printTable(results) {
  for (const r of results) {
    const head = `${r.backend} ${r.threads} thread${r.threads > 1 ? 's' : ''}`;
    if (r.error) {
      console.log(`${head}: n/a (${r.error})`);
      continue;
    }
    console.log(`${head} (${r.build}): peak ${r.peakGflops.toFixed(1)} GFLOP/s at ${r.peakShape.join('x')}`);
    for (const c of r.shapes) console.log(`  ${c.shape.join('x').padEnd(16)} ${c.gflops.toFixed(1).padStart(8)} GFLOP/s`);
  }
}

if (process.argv[1] && fs.realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = parseArgs(process.argv.slice(2));
  const results = await measureGemmPeak(args);
  if (args.json) console.log(JSON.stringify({ date: new Date().toISOString(), rounds: args.rounds, results }, null, 2));
  else printTable(results);
}
