#!/usr/bin/env node
/**
 * The training peer for issue 6: nanoGPT's baby GPT on Shakespeare characters, trained with
 * TensorFlow.js (4.x) on its pure-JS `cpu` backend or its `wasm` backend (XNNPACK kernels).
 *
 *   npm run bench:train-tfjs -- [--backend cpu,wasm] [--steps N] [--warmup N] [--threads N] [--seed 1337] [--data FILE]
 *                               [--no-bias] [--plain-grads] [--json]
 *
 * Model (config/train_shakespeare_char.py with the README's CPU settings): 4 layers, 4 heads, width
 * 128, block 64, batch 12, dropout 0, the 65-character vocabulary of tinyshakespeare. GPT-2 blocks
 * as in nanoGPT's model.py: pre-LayerNorm (eps 1e-5), causal self-attention (fused q,k,v
 * projection, additive mask), exact-erf GELU MLP 4×, learned positions, the token embedding tied
 * to the classifier; biases in the linears and LayerNorms (`--no-bias` drops them, as nanoGPT's
 * train.py default does). Init as nanoGPT: N(0, 0.02), the two residual projections
 * N(0, 0.02/√(2·layers)), biases 0, LayerNorm weights 1. Optimiser: AdamW (lr 1e-3 constant here,
 * β 0.9/0.99, eps 1e-8, decoupled weight decay 0.1 on the 2-D weights only) after clipping the
 * gradients to global norm 1.
 *
 * Batches: random windows of the first 90% of the text (seeded). A step is one forward, backward
 * and optimiser update of one batch (12 × 64 = 768 tokens), ended by reading the loss back; the
 * figure is the median tokens/s over the timed steps that follow the warm-up steps. Defaults: 5
 * warm-up + 20 timed steps on wasm; 1 + 4 on cpu, whose steps take tens of seconds each.
 *
 * Threads: tfjs-backend-wasm 4.x only loads its multi-threaded build in browsers (its
 * WASM_HAS_MULTITHREAD_SUPPORT flag is false under Node; forcing it fails, as its pthread workers
 * are blob: URLs that Node's Worker refuses), so in Node it runs one thread whatever setThreadsCount
 * asks; the result reports the count the backend says it uses. `cpu` is one thread.
 *
 * Matmul gradients multiply explicitly transposed copies (see matMulExplicitTransposes; steps ran
 * 1.6-3.8× faster on tfjs-backend-wasm in our runs); `--plain-grads` keeps tfjs's own. Embedding lookups are
 * one-hot matmuls: tfjs-backend-wasm has no UnsortedSegmentSum kernel, the gradient of tf.gather;
 * with 65 characters that is 768 × 65 × 128 multiply-adds, noise here.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { die, ensureBenchPackage, median } from './common.mjs';

const ROOT = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
export const SHAKESPEARE = path.join(ROOT, '..', 'shared', 'data', 'tinyshakespeare', 'input.txt');
export const BABY_GPT = Object.freeze({ nLayer: 4, nHead: 4, nEmbd: 128, blockSize: 64, batchSize: 12, bias: true });
export const ADAMW = Object.freeze({ lr: 1e-3, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1, gradClip: 1.0 });
const LN_EPS = 1e-5;
const TFJS_BACKENDS = ['cpu', 'wasm'];
/** Warm-up and timed steps when not given: a cpu step takes tens of seconds, a wasm step 1-2 s. */
export const DEFAULT_STEPS = Object.freeze({ cpu: { warmup: 1, steps: 4 }, wasm: { warmup: 5, steps: 20 } });

/** The tfjs module (imported on first use, so a missing bench install can be installed first) and the matmul the model uses. */
let tf;
let matMul;

/**
 * Train the baby GPT for `warmup + steps` steps on one tfjs backend and time the last `steps`.
 * @returns {Promise<{ engine: string, version: string, backend: string, threadsAsked: number, threads: number,
 *   params: number, matmulGrads: string, tokensPerStep: number, tokensPerSecond: number, stepMs: number[], losses: number[] }>}
 */
export async function trainTfjs({ backend = 'wasm', threads = os.availableParallelism(), warmup = DEFAULT_STEPS[backend]?.warmup, steps = DEFAULT_STEPS[backend]?.steps, seed = 1337, data = SHAKESPEARE, model = BABY_GPT, adamw = ADAMW, plainGrads = false } = {}) {
  if (!TFJS_BACKENDS.includes(backend)) die(`backend: unknown tfjs backend '${backend}' (expected ${TFJS_BACKENDS.join(', ')})`);
  await loadTfjs(backend, threads);
  matMul = plainGrads ? tf.matMul : matMulExplicitTransposes();
  const { Xoshiro128 } = await loadOurRandom();
  const text = readText(data);
  const { vocab, train } = charDataset(text);
  const rng = Xoshiro128.fromSeed(seed);
  const params = initParams(model, vocab.length, seed);
  const optimizer = adamW(params, adamw);
  const mask = tf.tidy(() => causalMask(model.blockSize));
  const tokensPerStep = model.batchSize * model.blockSize;
  const losses = [];
  const stepMs = [];
  try {
    for (let step = 0; step < warmup + steps; step++) {
      const batch = sampleBatch(train, model.batchSize, model.blockSize, rng);
      const start = performance.now();
      losses.push(trainStep(params, optimizer, model, vocab.length, batch, mask));
      if (step >= warmup) stepMs.push(performance.now() - start);
    }
  } finally {
    mask.dispose();
    optimizer.dispose();
    for (const v of params.values()) v.dispose();
  }
  return {
    engine: '@tensorflow/tfjs',
    version: tf.version.tfjs,
    backend,
    threadsAsked: threads,
    threads: backend === 'wasm' ? (await import('@tensorflow/tfjs-backend-wasm')).getThreadsCount() : 1,
    params: countParams(model, vocab.length),
    matmulGrads: plainGrads ? 'tfjs' : 'explicit transposes',
    tokensPerStep,
    tokensPerSecond: median(stepMs.map((ms) => (tokensPerStep * 1000) / ms)),
    stepMs,
    losses,
  };
}

/** Parameters of the baby GPT (all of them; nanoGPT's printed count leaves out the positions: subtract blockSize × nEmbd). */
export function countParams({ nLayer, nEmbd: c, blockSize, bias }, vocabSize) {
  const b = bias ? 1 : 0;
  const perLayer = 2 * (c + b * c) + (c * 3 * c + b * 3 * c) + (c * c + b * c) + (c * 4 * c + b * 4 * c) + (4 * c * c + b * c);
  return vocabSize * c + blockSize * c + nLayer * perLayer + (c + b * c);
}

/** nanoGPT's prepare.py for shakespeare_char: the sorted distinct characters are the vocabulary; the first 90% trains. */
export function charDataset(text) {
  const vocab = [...new Set(text)].sort();
  const index = new Map(vocab.map((ch, i) => [ch, i]));
  const ids = Int32Array.from(text, (ch) => index.get(ch));
  const nTrain = Math.floor(ids.length * 0.9);
  return { vocab, train: ids.subarray(0, nTrain), val: ids.subarray(nTrain) };
}

// --- tfjs set-up ----------------------------------------------------------------------------------

/** Import tfjs (installing the bench package on first use) and switch to `backend`. */
async function loadTfjs(backend, threads) {
  ensureBenchPackage('@tensorflow/tfjs', 'tfjs and tfjs-backend-wasm, with node-llama-cpp ~700 MB');
  tf = await import('@tensorflow/tfjs');
  if (backend === 'wasm') {
    const wasm = await import('@tensorflow/tfjs-backend-wasm');
    wasm.setThreadsCount(threads); // read when the backend first starts; Node gets the single-threaded build anyway
  }
  if (!(await tf.setBackend(backend))) die(`tfjs could not start its '${backend}' backend`);
  await tf.ready();
}

/** Our seeded generator (dist/), so the batches are the same sequence our trainer can draw. */
async function loadOurRandom() {
  const file = path.join(ROOT, 'dist', 'tensor', 'random.js');
  if (!fs.existsSync(file)) die('dist/ is missing: run `npm run build` first');
  return import(file);
}

function readText(file) {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    return die(`--data ${file}: ${err instanceof Error ? err.message : err}`);
  }
}

// --- the model ------------------------------------------------------------------------------------

/** name → tf.Variable, in a fixed order; 2-D weights get weight decay, vectors do not. */
function initParams({ nLayer, nEmbd: c, blockSize, bias }, vocabSize, seed) {
  const params = new Map();
  let nextSeed = seed;
  const add = (name, init) => params.set(name, tf.variable(init, true, name));
  const normal = (name, shape, std) => add(name, tf.randomNormal(shape, 0, std, 'float32', nextSeed++));
  const layerNormParams = (name) => {
    add(`${name}.w`, tf.ones([c]));
    if (bias) add(`${name}.b`, tf.zeros([c]));
  };
  const linearParams = (name, nIn, nOut, std) => {
    normal(`${name}.w`, [nIn, nOut], std);
    if (bias) add(`${name}.b`, tf.zeros([nOut]));
  };
  const residualStd = 0.02 / Math.sqrt(2 * nLayer);
  normal('wte', [vocabSize, c], 0.02);
  normal('wpe', [blockSize, c], 0.02);
  for (let l = 0; l < nLayer; l++) {
    layerNormParams(`h${l}.ln1`);
    linearParams(`h${l}.attn`, c, 3 * c, 0.02);
    linearParams(`h${l}.attn.proj`, c, c, residualStd);
    layerNormParams(`h${l}.ln2`);
    linearParams(`h${l}.mlp.fc`, c, 4 * c, 0.02);
    linearParams(`h${l}.mlp.proj`, 4 * c, c, residualStd);
  }
  layerNormParams('lnf');
  return params;
}

/** [T, T]: 0 on and below the diagonal, −1e9 above it (added to the scores, so softmax gives those 0). */
function causalMask(t) {
  const allowed = tf.linalg.bandPart(tf.ones([t, t]), -1, 0);
  return tf.sub(1, allowed).mul(-1e9);
}

/** Mean cross-entropy of the next characters: x, y int32 [B, T]. */
function lossOf(p, { nLayer, nHead, nEmbd: c }, vocabSize, x, y, mask) {
  const [b, t] = x.shape;
  const tokens = matMul(tf.cast(tf.oneHot(x.flatten(), vocabSize), 'float32'), p.get('wte')); // [B·T, C]
  let h = tokens.reshape([b, t, c]).add(p.get('wpe')).reshape([b * t, c]);
  for (let l = 0; l < nLayer; l++) {
    h = h.add(attention(layerNorm(h, p, `h${l}.ln1`), p, `h${l}`, b, t, nHead, mask));
    h = h.add(mlp(layerNorm(h, p, `h${l}.ln2`), p, `h${l}.mlp`));
  }
  const logits = matMul(layerNorm(h, p, 'lnf'), tf.transpose(p.get('wte'))); // tied classifier: [B·T, V]
  return tf.losses.softmaxCrossEntropy(tf.cast(tf.oneHot(y.flatten(), vocabSize), 'float32'), logits);
}

/**
 * a · b whose gradients multiply explicitly transposed copies (dA = dY · transpose(B),
 * dB = transpose(A) · dY) instead of tfjs's own gradient, which asks BatchMatMul for transposed
 * operands: tfjs-backend-wasm sends those to a scalar loop about 10× slower than its XNNPACK
 * path (measured on the baby GPT's backward matmuls), while a transpose costs little. This is the
 * peer at its best; `plainGrads` keeps tfjs's own gradient.
 */
function matMulExplicitTransposes() {
  return tf.customGrad((a, b, save) => {
    save([a, b]);
    return { value: tf.matMul(a, b), gradFunc: (dy, [a, b]) => [tf.matMul(dy, swapLastTwo(b)), tf.matMul(swapLastTwo(a), dy)] };
  });
}

/** The tensor with its last two axes swapped (a matrix transpose, batched over the leading axes). */
function swapLastTwo(x) {
  const perm = [...Array(x.rank).keys()];
  [perm[x.rank - 2], perm[x.rank - 1]] = [perm[x.rank - 1], perm[x.rank - 2]];
  return tf.transpose(x, perm);
}

function linear(x, p, name) {
  const y = matMul(x, p.get(`${name}.w`));
  return p.has(`${name}.b`) ? y.add(p.get(`${name}.b`)) : y;
}

function layerNorm(x, p, name) {
  const { mean, variance } = tf.moments(x, -1, true);
  const y = x.sub(mean).mul(tf.rsqrt(variance.add(LN_EPS))).mul(p.get(`${name}.w`));
  return p.has(`${name}.b`) ? y.add(p.get(`${name}.b`)) : y;
}

/** Causal multi-head self-attention on x [B·T, C]. */
function attention(x, p, layer, b, t, nHead, mask) {
  const c = x.shape[1];
  const hd = c / nHead;
  const heads = (m) => m.reshape([b, t, nHead, hd]).transpose([0, 2, 1, 3]); // [B, H, T, hd]
  const [q, k, v] = tf.split(linear(x, p, `${layer}.attn`), 3, 1).map(heads);
  const scores = matMul(q, swapLastTwo(k)).mul(1 / Math.sqrt(hd)).add(mask);
  const y = matMul(tf.softmax(scores), v).transpose([0, 2, 1, 3]).reshape([b * t, c]);
  return linear(y, p, `${layer}.attn.proj`);
}

function mlp(x, p, name) {
  const u = linear(x, p, `${name}.fc`);
  const gelu = u.mul(0.5).mul(tf.erf(u.mul(Math.SQRT1_2)).add(1));
  return linear(gelu, p, `${name}.proj`);
}

// --- training -------------------------------------------------------------------------------------

/** `batch` random windows of `t + 1` characters: x = the first t, y = the last t. */
function sampleBatch(ids, batch, t, rng) {
  const x = new Int32Array(batch * t);
  const y = new Int32Array(batch * t);
  for (let i = 0; i < batch; i++) {
    const start = Math.floor(rng.nextFloat() * (ids.length - t));
    x.set(ids.subarray(start, start + t), i * t);
    y.set(ids.subarray(start + 1, start + t + 1), i * t);
  }
  return { x, y, shape: [batch, t] };
}

/** One forward + backward + AdamW update; returns the batch loss (reading it waits for the step). */
function trainStep(params, optimizer, model, vocabSize, batch, mask) {
  const loss = tf.tidy(() => {
    const x = tf.tensor2d(batch.x, batch.shape, 'int32');
    const y = tf.tensor2d(batch.y, batch.shape, 'int32');
    const { value, grads } = tf.variableGrads(() => lossOf(params, model, vocabSize, x, y, mask), [...params.values()]);
    optimizer.step(grads);
    return value;
  });
  const value = loss.dataSync()[0];
  loss.dispose();
  return value;
}

/**
 * AdamW as PyTorch's (decoupled decay: p ← p·(1 − lr·wd) − lr·m̂/(√v̂ + eps)), after clipping the
 * gradients to a global L2 norm of `gradClip` (scale min(1, clip/(norm + 1e-6)), as clip_grad_norm_).
 * tfjs has no AdamW, and its Adam cannot skip decay per variable, so the update is written out.
 */
function adamW(params, { lr, beta1, beta2, eps, weightDecay, gradClip }) {
  const moments = new Map([...params].map(([name, v]) => [name, { m: tf.variable(tf.zerosLike(v), false), v: tf.variable(tf.zerosLike(v), false) }]));
  let t = 0;
  return {
    step(grads) {
      t++;
      const norm = tf.sqrt(tf.addN(Object.values(grads).map((g) => tf.sum(tf.square(g)))));
      const scale = tf.minimum(1, tf.div(gradClip, norm.add(1e-6)));
      const stepSize = lr / (1 - beta1 ** t);
      const bias2 = Math.sqrt(1 - beta2 ** t);
      for (const [name, param] of params) {
        const g = grads[name].mul(scale);
        const s = moments.get(name);
        s.m.assign(s.m.mul(beta1).add(g.mul(1 - beta1)));
        s.v.assign(s.v.mul(beta2).add(g.square().mul(1 - beta2)));
        const decayed = param.rank >= 2 ? param.mul(1 - lr * weightDecay) : param;
        param.assign(decayed.sub(s.m.div(s.v.sqrt().div(bias2).add(eps)).mul(stepSize)));
      }
    },
    dispose() {
      for (const s of moments.values()) {
        s.m.dispose();
        s.v.dispose();
      }
    },
  };
}

// --- CLI ------------------------------------------------------------------------------------------

function parseArgs(argv) {
  const a = { backends: TFJS_BACKENDS, steps: undefined, warmup: undefined, threads: os.availableParallelism(), seed: 1337, data: SHAKESPEARE, plainGrads: false, model: BABY_GPT, json: false };
  const count = (v, name, min) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) die(`${name}: expected an integer ≥ ${min}, got '${v}'`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = () => argv[++i] ?? die(`${flag} needs a value`);
    switch (flag) {
      case '--backend': case '--backends':
        a.backends = value().split(',');
        for (const b of a.backends) if (!TFJS_BACKENDS.includes(b)) die(`${flag}: unknown tfjs backend '${b}' (expected ${TFJS_BACKENDS.join(', ')})`);
        break;
      case '--steps': a.steps = count(value(), flag, 1); break;
      case '--warmup': a.warmup = count(value(), flag, 0); break;
      case '--threads': case '-t': a.threads = count(value(), flag, 1); break;
      case '--seed': a.seed = count(value(), flag, 0); break;
      case '--data': a.data = path.resolve(value()); break;
      case '--plain-grads': a.plainGrads = true; break;
      case '--no-bias': a.model = { ...BABY_GPT, bias: false }; break;
      case '--json': a.json = true; break;
      case '--help': case '-h':
        console.log(fs.readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').slice(2, 7).join('\n').replace(/^ \*\/?/gm, ''));
        process.exit(0);
        break;
      default: die(`unknown option ${flag} (see --help)`);
    }
  }
  return a;
}

function describe(r) {
  const steps = r.losses.length;
  return `tfjs ${r.version} ${r.backend} (${r.threads} thread${r.threads > 1 ? 's' : ''}${r.threads !== r.threadsAsked ? `, ${r.threadsAsked} asked` : ''}): ` +
    `${r.tokensPerSecond.toFixed(0)} tokens/s (median of ${r.stepMs.length} steps, ${median(r.stepMs).toFixed(0)} ms/step of ${r.tokensPerStep} tokens), ` +
    `6·params·tokens/s = ${((6 * r.params * r.tokensPerSecond) / 1e9).toFixed(2)} GFLOP/s, ` +
    `loss ${r.losses[0].toFixed(3)} → ${r.losses[steps - 1].toFixed(3)} after ${steps} steps`;
}

if (process.argv[1] && fs.realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = parseArgs(process.argv.slice(2));
  const results = [];
  for (const backend of args.backends) {
    const r = await trainTfjs({ backend, threads: args.threads, warmup: args.warmup, steps: args.steps, seed: args.seed, data: args.data, model: args.model, plainGrads: args.plainGrads });
    results.push(r);
    if (!args.json) console.log(describe(r));
  }
  if (args.json) console.log(JSON.stringify({ date: new Date().toISOString(), model: args.model, adamw: ADAMW, results }, null, 2));
}
