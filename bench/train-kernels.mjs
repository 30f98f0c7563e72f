#!/usr/bin/env node
// Training-kernel speed for nanoGPT's baby GPT (n_layer 4, n_head 4, n_embd 128, block_size 64,
// batch_size 12, vocab 65): per kernel, the milliseconds of one step's shapes on the plain-TS
// oracle (the reference backend), wasm and native at 1 and 2 threads, with GFLOP/s for the
// matmuls and the forward matmul's rate as the yardstick; then one forward + backward step of a
// baby-GPT-shaped chain built from src/autograd, with the training kernels on plain TS ("before")
// and on the backend's own kernels ("after"), and its MFU against the backend's peak GEMM rate.
//
//   npm run build && npm run bench:train-kernels [-- --threads 1,2 --backends wasm,native --no-oracle]
import { parseArgs } from 'node:util';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { die, median } from './common.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = (file) => import(path.join(ROOT, 'dist', file));
const { values: opts } = parseArgs({
  options: { threads: { type: 'string', default: '1,2' }, backends: { type: 'string', default: 'wasm,native' }, 'no-oracle': { type: 'boolean', default: false } },
});
let wasmMod, nativeMod, refMod, oracle, ag, addonMod;
try {
  [wasmMod, nativeMod, refMod, oracle, ag, addonMod] = await Promise.all([
    dist('backend/wasm/backend.js'), dist('backend/native/backend.js'), dist('backend/reference.js'), dist('backend/train-kernels.js'), dist('autograd/index.js'), dist('backend/native/addon.js'),
  ]);
} catch (err) {
  die(`cannot load dist/ (run npm run build first): ${err.message}`);
}

// baby GPT
const B = 12, T = 64, C = 128, H = 4, L = 4, V = 65;
const BT = B * T;
const HD = C / H;
const attn = { nHead: H, nKvHead: H, headDim: HD, seqLen: T, scale: 1 / Math.sqrt(HD) };
/** [name, N, K] of each matmul per layer (and the classifier): M = B·T rows. */
const MATMULS = [['qkv', 3 * C, C], ['attn proj', C, C], ['fc', 4 * C, C], ['mlp proj', C, 4 * C], ['classifier', V, C]];

const TRAINING_KERNELS = ['matmulInputGrad', 'matmulWeightGrad', 'getRowsBackward', 'sumRows', 'rmsnormBackward', 'layernormBackward', 'ropeBackward',
  'swigluBackward', 'geluBackward', 'crossEntropy', 'attentionTrain', 'attentionBackward', 'dropout', 'sumSquares', 'scale'];

/** The backend with its training kernels replaced by the plain-TS oracle on its own memory (main before this work). */
function withOracleKernels(be) {
  for (const name of TRAINING_KERNELS) be[name] = (...args) => oracle[name](...args);
  return be;
}

function random(be, shape, seed = 1, scale = 1) {
  const t = be.alloc('f32', shape);
  const a = t.f32();
  let s = seed >>> 0;
  for (let i = 0; i < a.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = ((s / 4294967296) * 2 - 1) * scale;
  }
  return t;
}

/** Median ms of fn over enough runs (≥ `min`, ≥ ~0.3 s), after one warm-up. */
function time(fn, min = 3) {
  fn();
  const times = [];
  const start = performance.now();
  while (times.length < min || (performance.now() - start < 300 && times.length < 200)) {
    const t0 = performance.now();
    fn();
    times.push(performance.now() - t0);
  }
  return median(times);
}

/** Per kernel: [label, flops or 0, fn] on be. */
function kernelCases(be) {
  const cases = [];
  for (const [name, N, K] of MATMULS) {
    const x = random(be, [BT, K], 1), w = random(be, [N, K], 2, 0.1), y = random(be, [BT, N], 3), dw = be.alloc('f32', [N, K]);
    const flops = 2 * BT * N * K;
    cases.push([`matmul ${name} ${BT}×${N}×${K}`, flops, () => be.matmul(y, x, w)]);
    cases.push([`  inputGrad (${name})`, flops, () => be.matmulInputGrad(x, y, w)]);
    cases.push([`  weightGrad (${name})`, flops, () => be.matmulWeightGrad(dw, y, x)]);
  }
  const q = random(be, [BT, C], 4), k = random(be, [BT, C], 5), v = random(be, [BT, C], 6), out = be.alloc('f32', [BT, C]), lse = be.alloc('f32', [BT, H]);
  const dq = be.alloc('f32', [BT, C]), dk = be.alloc('f32', [BT, C]), dv = be.alloc('f32', [BT, C]);
  const attnFlops = 2 * 2 * B * H * ((T * (T + 1)) / 2) * HD;
  cases.push([`attentionTrain B${B} T${T} H${H} hd${HD}`, attnFlops, () => be.attentionTrain(out, lse, q, k, v, attn)]);
  cases.push([`attentionBackward`, 2.5 * attnFlops, () => be.attentionBackward(dq, dk, dv, q, out, lse, q, k, v, attn)]);
  const x = random(be, [BT, C], 7), g = random(be, [BT, C], 8), wC = random(be, [C], 9), bC = be.alloc('f32', [C]), dx = be.alloc('f32', [BT, C]);
  cases.push([`layernormBackward ${BT}×${C}`, 0, () => be.layernormBackward(dx, wC, bC, g, x, wC, 1e-5)]);
  const h = random(be, [BT, 4 * C], 10, 3), dh = be.alloc('f32', [BT, 4 * C]);
  cases.push([`geluBackward ${BT}×${4 * C}`, 0, () => be.geluBackward(dh, h, h)]);
  cases.push([`sumRows (bias grad) ${BT}×${4 * C}`, 0, () => be.sumRows(be.alloc('f32', [4 * C]), h)]);
  const logits = random(be, [BT, V], 11, 3), dl = be.alloc('f32', [BT, V]), losses = be.alloc('f32', [BT]);
  const targets = Array.from({ length: BT }, (_, i) => (i * 7) % V);
  cases.push([`crossEntropy ${BT}×${V}`, 0, () => be.crossEntropy(losses, dl, logits, targets, 1 / BT)]);
  const table = be.alloc('f32', [V, C]);
  cases.push([`getRowsBackward ${BT} ids → ${V}×${C}`, 0, () => be.getRowsBackward(table, x, targets)]);
  cases.push([`dropout ${BT}×${4 * C}`, 0, () => be.dropout(dh, h, 0.1, 42)]);
  cases.push([`sumSquares ${BT}×${4 * C}`, 0, () => be.sumSquares(h)]);
  cases.push([`scale ${BT}×${4 * C}`, 0, () => be.scale(dh, 0.5)]);
  return cases;
}

/** The baby GPT's parameters and one forward + backward step (no optimizer) on its tape. */
function babyGpt(be) {
  let seed = 1;
  const P = (shape, scale, offset = 0) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const values = new Float32Array(n);
    let s = seed++ * 7919;
    for (let i = 0; i < n; i++) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      values[i] = ((s / 4294967296) * 2 - 1) * scale + offset;
    }
    return ag.Parameter.fromValues(be, `p${seed}`, shape, values);
  };
  const wte = P([V, C], 0.02), wpe = P([T, C], 0.02);
  const blocks = Array.from({ length: L }, () => ({
    ln1w: P([C], 0, 1), ln1b: P([C], 0), wq: P([C, C], 0.02), wk: P([C, C], 0.02), wv: P([C, C], 0.02), bq: P([C], 0), bk: P([C], 0), bv: P([C], 0),
    wo: P([C, C], 0.02), bo: P([C], 0), ln2w: P([C], 0, 1), ln2b: P([C], 0), fc: P([4 * C, C], 0.02), bfc: P([4 * C], 0), proj: P([C, 4 * C], 0.02), bproj: P([C], 0),
  }));
  const lnfw = P([C], 0, 1), lnfb = P([C], 0);
  const tokens = Array.from({ length: BT }, (_, i) => (i * 31 + 7) % V);
  const targets = Array.from({ length: BT }, (_, i) => (i * 31 + 38) % V);
  const positions = Array.from({ length: BT }, (_, i) => i % T);
  const params = [wte, wpe, lnfw, lnfb, ...blocks.flatMap((b) => Object.values(b))];
  const tape = new ag.Tape(be);
  const step = () => {
    let x = ag.add(tape, ag.embedding(tape, wte, tokens), ag.embedding(tape, wpe, positions));
    for (const b of blocks) {
      const h = ag.layernorm(tape, x, b.ln1w, b.ln1b, 1e-5);
      const q = ag.addBias(tape, ag.matmul(tape, h, b.wq), b.bq);
      const k = ag.addBias(tape, ag.matmul(tape, h, b.wk), b.bk);
      const v = ag.addBias(tape, ag.matmul(tape, h, b.wv), b.bv);
      x = ag.add(tape, x, ag.addBias(tape, ag.matmul(tape, ag.attention(tape, q, k, v, attn), b.wo), b.bo));
      const f = ag.layernorm(tape, x, b.ln2w, b.ln2b, 1e-5);
      x = ag.add(tape, x, ag.addBias(tape, ag.matmul(tape, ag.gelu(tape, ag.addBias(tape, ag.matmul(tape, f, b.fc), b.bfc)), b.proj), b.bproj));
    }
    const logits = ag.matmul(tape, ag.layernorm(tape, x, lnfw, lnfb, 1e-5), wte); // tied
    const loss = ag.crossEntropy(tape, logits, targets);
    const value = loss.item();
    tape.backward(loss);
    tape.dispose();
    return value;
  };
  return { step, dispose: () => params.forEach((p) => p.dispose()), params: params.reduce((n, p) => n + p.value.numel, 0) };
}

/** Forward FLOPs of one step: the matmuls and attention's two products; a step is 3× that. */
const forwardFlops = L * MATMULS.slice(0, 4).reduce((s, [, N, K]) => s + 2 * BT * N * K, 0) + 2 * BT * V * C + L * 2 * 2 * B * H * ((T * (T + 1)) / 2) * HD;

const fmt = (ms) => (ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(3));
const threadList = opts.threads.split(',').map(Number);
const wanted = opts.backends.split(',');
const native = addonMod.loadNative();
const makers = [];
if (wanted.includes('wasm')) makers.push(['wasm', (threads) => wasmMod.createWasmBackend({ threads })]);
if (wanted.includes('native')) {
  if (native.loaded && native.accelerated) makers.push([`native (${native.best})`, (threads) => nativeMod.createNativeBackend({ threads })]);
  else console.log(`native: skipped (${native.error ?? 'no vector build for this CPU'})`);
}

// ---- per kernel ----
const columns = [];
if (!opts['no-oracle']) columns.push(['oracle', () => new refMod.ReferenceBackend()]);
for (const [name, make] of makers) for (const threads of threadList) columns.push([`${name} ${threads}T`, () => make(threads)]);
const table = new Map();
for (const [col, make] of columns) {
  const be = await make();
  for (const [label, flops, fn] of kernelCases(be)) {
    const ms = time(fn, col === 'oracle' ? 1 : 3);
    const row = table.get(label) ?? table.set(label, {}).get(label);
    row[col] = flops ? `${fmt(ms)} (${((flops / ms) * 1e-6).toFixed(1)})` : fmt(ms);
  }
  be.dispose();
}
console.log(`\nper kernel: ms (GFLOP/s), one baby-GPT step's shapes (B ${B}, T ${T}, C ${C}, H ${H}, V ${V}), median`);
console.log(['kernel', ...columns.map(([c]) => c)].join(' | '));
for (const [label, row] of table) console.log([label, ...columns.map(([c]) => row[c] ?? '')].join(' | '));

// ---- a forward + backward step ----
console.log(`\nbaby GPT forward + backward (no optimizer), ${BT} tokens per step, ${(3 * forwardFlops * 1e-9).toFixed(2)} GFLOP per step:`);
for (const [name, make] of makers) {
  for (const threads of threadList) {
    for (const kernels of ['plain TS', 'fast']) {
      const be = await make(threads);
      if (kernels === 'plain TS') withOracleKernels(be);
      // peak: the forward matmul's best rate on a large product, at this thread count
      const x = random(be, [BT, 512], 1), w = random(be, [512, 512], 2), y = be.alloc('f32', [BT, 512]);
      const peak = (2 * BT * 512 * 512) / time(() => be.matmul(y, x, w), 5) * 1e-6;
      const model = babyGpt(be);
      const ms = time(model.step, kernels === 'plain TS' ? 1 : 3);
      const tokS = BT / (ms / 1000);
      const gflops = (3 * forwardFlops) / ms * 1e-6;
      console.log(`${name} ${threads}T, training kernels ${kernels}: ${fmt(ms)} ms/step, ${tokS.toFixed(0)} tokens/s, ${gflops.toFixed(1)} GFLOP/s, MFU ${((100 * gflops) / peak).toFixed(0)}% of ${peak.toFixed(1)} GFLOP/s (its matmul ${BT}×512×512)`);
      model.dispose();
      be.dispose();
    }
  }
}
