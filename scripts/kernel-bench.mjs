#!/usr/bin/env node
// Time the wasm (or native) backend's matmul kernels (needs `npm run build`: it imports dist/).
//
//   node scripts/kernel-bench.mjs [--threads 1,2] [--variant auto|simd|relaxed] [--seconds 0.5]
//                                 [--backend wasm|native] [--build auto|avx2|avx512|avx512vnni|scalar]
//                                 [--only M,N,K]
//
// Reports, per case (best of 10 trials): ms per call, weight GB/s (weight bytes / time: what bounds decode) and
// GFLOP/s (2·M·N·K / time). For scale it also times a big TypedArray copy (memory bandwidth,
// read + write bytes) and a naive JS loop doing the same M = 1 product.
import os from 'node:os';
import { parseArgs } from 'node:util';

const { values: opts } = parseArgs({
  options: {
    threads: { type: 'string', default: '1,2' },
    variant: { type: 'string', default: 'auto' },
    seconds: { type: 'string', default: '0.5' },
    dist: { type: 'string', default: new URL('../dist/', import.meta.url).href },
    backend: { type: 'string', default: 'wasm' },
    build: { type: 'string', default: 'auto' },
    only: { type: 'string' },
  },
});
const { createWasmBackend } = await import(new URL('backend/wasm/backend.js', opts.dist).href);
const { createNativeBackend } = await import(new URL('backend/native/backend.js', opts.dist).href);
const seconds = Number(opts.seconds);

/**
 * Seconds per call of fn: the best of several trials of at least `seconds`/10 each, after a
 * warm-up (the best, not the mean, because other processes on the machine only ever add time).
 */
function time(fn) {
  for (let i = 0; i < 3; i++) fn();
  let best = Infinity;
  for (let trial = 0; trial < 10; trial++) {
    let calls = 0;
    const start = process.hrtime.bigint();
    let elapsed = 0;
    do {
      fn();
      calls++;
      elapsed = Number(process.hrtime.bigint() - start) / 1e9;
    } while (elapsed < seconds / 10);
    best = Math.min(best, elapsed / calls);
  }
  return best;
}

const fmt = (v, d = 1) => v.toFixed(d).padStart(8);

function bandwidth() {
  const n = 64 * 2 ** 20; // 256 MiB of f32 each way
  const src = new Float32Array(n).fill(1);
  const dst = new Float32Array(n);
  const t = time(() => dst.set(src));
  console.log(`memory: TypedArray copy of 256 MiB: ${fmt((2 * n * 4) / t / 1e9)} GB/s (read + write)`);
}

function naiveJs(N, K) {
  const w = new Float32Array(N * K).map((_, i) => (i % 7) - 3);
  const x = new Float32Array(K).fill(0.5);
  const out = new Float32Array(N);
  const t = time(() => {
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += w[n * K + k] * x[k];
      out[n] = s;
    }
  });
  console.log(`naive JS loop  M=1 N=${N} K=${K} f32: ${fmt(t * 1e3, 3)} ms ${fmt((N * K * 4) / t / 1e9)} GB/s ${fmt((2 * N * K) / t / 1e9)} GFLOP/s`);
}

function randomFill(bytes) {
  // small random floats for f32 tensors; any bytes are valid f16 payloads except NaN/inf patterns,
  // so quantized and half tensors get their scales set to small values below
  const u32 = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >> 2);
  let s = 12345;
  for (let i = 0; i < u32.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    u32[i] = s;
  }
}

function makeWeights(be, dtype, N, K) {
  const w = be.alloc(dtype, [N, K]);
  randomFill(w.bytes);
  const view = new DataView(w.bytes.buffer, w.bytes.byteOffset, w.bytes.byteLength);
  if (dtype === 'f32') for (let i = 0; i < N * K; i++) view.setFloat32(i * 4, ((i % 13) - 6) / 8, true);
  if (dtype === 'f16') for (let i = 0; i < N * K; i++) view.setUint16(i * 2, 0x3000 + (i % 512), true);
  if (dtype === 'q8_0') for (let b = 0; b < (N * K) / 32; b++) view.setUint16(b * 34, 0x2000, true);
  if (dtype === 'q4_0') for (let b = 0; b < (N * K) / 32; b++) view.setUint16(b * 18, 0x2000, true);
  // Q4_1 / Q5_0 / Q5_1: d (and m) at the start of 20 / 22 / 24-byte blocks
  const legacyBytes = { q4_1: 20, q5_0: 22, q5_1: 24 }[dtype];
  if (legacyBytes) for (let b = 0; b < (N * K) / 32; b++) view.setUint32(b * legacyBytes, dtype === 'q5_0' ? 0x2000 : 0x20002000, true);
  const kScale = { q4_k: [144, 0, 2], q5_k: [176, 0, 2], q6_k: [210, 208] }[dtype]; // block bytes, f16 scale offsets
  if (kScale) for (let b = 0; b < (N * K) / 256; b++) for (const at of kScale.slice(1)) view.setUint16(b * kScale[0] + at, 0x2000, true);
  return w;
}

const cases = [
  { M: 1, N: 32000, K: 288, dtypes: ['f32', 'f16', 'q8_0', 'q4_0', 'q4_1', 'q5_0', 'q5_1'] },
  { M: 1, N: 768, K: 2048, dtypes: ['f32', 'f16', 'q8_0', 'q4_0', 'q4_1', 'q5_0', 'q5_1', 'q4_k', 'q5_k', 'q6_k'] },
  { M: 128, N: 768, K: 2048, dtypes: ['f32', 'f16', 'q8_0', 'q4_0', 'q4_1', 'q5_0', 'q5_1', 'q4_k', 'q5_k', 'q6_k'] },
  { M: 512, N: 768, K: 768, dtypes: ['f32', 'q8_0', 'q4_0', 'q4_k'] },
].filter(({ M, N, K }) => !opts.only || opts.only === `${M},${N},${K}`);

console.log(`node ${process.version}, ${os.cpus()[0]?.model}, ${os.availableParallelism()} cores`);
if (!opts.only) {
  bandwidth();
  naiveJs(768, 2048);
}
for (const threads of opts.threads.split(',').map(Number)) {
  const be = opts.backend === 'native'
    ? await createNativeBackend({ threads, variant: opts.variant, build: opts.build })
    : await createWasmBackend({ threads, variant: opts.variant });
  console.log(`\n${be.name} backend: ${be.name === 'native' ? `${be.build} kernels, ` : ''}wasm ${be.variant}, ${threads} thread(s)`);
  for (const { M, N, K, dtypes } of cases) {
    for (const dtype of dtypes) {
      const w = makeWeights(be, dtype, N, K);
      const x = be.alloc('f32', [M, K]);
      x.f32().forEach((_, i, a) => (a[i] = ((i % 11) - 5) / 7));
      const out = be.alloc('f32', [M, N]);
      const t = time(() => be.matmul(out, x, w));
      const gbs = w.bytes.byteLength / t / 1e9;
      const gflops = (2 * M * N * K) / t / 1e9;
      console.log(`M=${String(M).padEnd(4)}N=${String(N).padEnd(6)}K=${String(K).padEnd(5)}${dtype.padEnd(5)} ${fmt(t * 1e3, 3)} ms ${fmt(gbs)} GB/s ${fmt(gflops)} GFLOP/s`);
      be.free(w);
      be.free(x);
      be.free(out);
    }
  }
  be.dispose();
}
