#!/usr/bin/env node
/**
 * Training speed: nanoGPT's baby GPT on Shakespeare characters (the shakespeare-char preset: 4
 * layers, 4 heads, width 128, block 64, batch 12 = 768 tokens a step) trained by our trainer
 * (train() from dist/, each backend and thread count) against TensorFlow.js on the same model
 * and batch (bench/train-tfjs.mjs: tfjs-backend-wasm, one thread under Node), and our model FLOPs
 * utilisation: MFU = 6 × params × tokens/s ÷ the measured peak f32 GEMM rate of the same backend
 * and thread count (bench/gemm-peak.mjs).
 *
 *   npm run bench:train -- [--backends native,wasm] [--threads 1,2] [--steps 20] [--warmup 5] [--no-tfjs] [--json]
 *
 * Both sides use biases (the tfjs peer's default) and AdamW with clipping; a step is forward,
 * backward and update of one batch. Figures are medians over the timed steps after the warm-up
 * steps (ours: the tokens_per_s of each step's metrics record, which excludes evaluation).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { die, median } from './common.mjs';
import { measureGemmPeak } from './gemm-peak.mjs';
import { SHAKESPEARE, trainTfjs } from './train-tfjs.mjs';

const ROOT = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const DIST = path.join(ROOT, 'dist');

function parseArgs(argv) {
  const opts = { backends: ['native', 'wasm'], threads: [1, 2], steps: 20, warmup: 5, tfjs: true, json: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => argv[++i] ?? die(`${a} needs a value`);
    if (a === '--backends') opts.backends = value().split(',');
    else if (a === '--threads') opts.threads = value().split(',').map(Number);
    else if (a === '--steps') opts.steps = Number(value());
    else if (a === '--warmup') opts.warmup = Number(value());
    else if (a === '--no-tfjs') opts.tfjs = false;
    else if (a === '--json') opts.json = true;
    else die(`unknown option ${a}`);
  }
  return opts;
}

/** Our trainer on one backend and thread count: median tokens/s over the timed steps. */
async function trainOurs({ backend, threads, steps, warmup }) {
  const { resolveConfig } = await import(path.join(DIST, 'train', 'config.js'));
  const { train } = await import(path.join(DIST, 'train', 'trainer.js'));
  const outDir = fs.mkdtempSync(path.join(os.tmpdir(), 'smallmind-bench-train-'));
  try {
    const iters = warmup + steps;
    const config = resolveConfig({
      preset: 'shakespeare-char',
      overrides: { data: SHAKESPEARE, out_dir: outDir, bias: true, max_iters: iters, lr_decay_iters: iters, warmup_iters: 1, eval_interval: iters, eval_iters: 1, backend, threads },
    });
    const rates = [];
    const result = await train({ config, onStep: (r) => r.step >= warmup && rates.push(r.tokens_per_s) });
    return { backend: result.backend, threads: result.threads, params: result.parameters, tokensPerSecond: median(rates) };
  } finally {
    fs.rmSync(outDir, { recursive: true, force: true });
  }
}

/**
 * Activation memory of one baby-GPT step (batch 12 × 64): the bytes the tape holds when the loss
 * is computed, i.e. what the backward pass will read, with and without gradient checkpointing.
 */
async function activationBytes(gradientCheckpointing) {
  const { createBackend } = await import(path.join(DIST, 'backend', 'index.js'));
  const { Tape } = await import(path.join(DIST, 'autograd', 'tape.js'));
  const { resolveConfig } = await import(path.join(DIST, 'train', 'config.js'));
  const { archFromConfig, createTrainModel } = await import(path.join(DIST, 'train', 'model.js'));
  const be = await createBackend({ backend: 'wasm', threads: 1 });
  const config = resolveConfig({ preset: 'shakespeare-char', overrides: { bias: true } });
  const model = createTrainModel(be, archFromConfig(config, 65), { dropout: 0, bias: true, seed: 1, gradientCheckpointing });
  const tape = new Tape(be);
  try {
    const tokens = Int32Array.from({ length: config.batch_size * config.block_size }, (_, i) => (i * 7) % 65);
    model.loss(tape, tokens, tokens, { batch: config.batch_size });
    return tape.ownedBytes;
  } finally {
    tape.dispose();
    model.dispose();
    be.dispose();
  }
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (!fs.existsSync(path.join(DIST, 'train', 'trainer.js'))) die('build first: npm run build');
  const ours = [];
  for (const backend of opts.backends) {
    for (const threads of opts.threads) ours.push(await trainOurs({ backend, threads, steps: opts.steps, warmup: opts.warmup }));
  }
  const peaks = await measureGemmPeak({ backends: opts.backends, threads: opts.threads, rounds: 3 });
  const tfjs = opts.tfjs ? await trainTfjs({ backend: 'wasm' }) : undefined;
  const rows = ours.map((r) => {
    const peak = peaks.find((p) => p.backend === r.backend && p.threads === r.threads);
    const mfu = peak ? (6 * r.params * r.tokensPerSecond) / (peak.peakGflops * 1e9) : NaN;
    return { ...r, peakGflops: peak?.peakGflops, mfu, vsTfjs: tfjs ? r.tokensPerSecond / tfjs.tokensPerSecond : undefined };
  });
  const memory = { activationBytes: await activationBytes(false), checkpointedActivationBytes: await activationBytes(true) };
  const report = { model: 'baby GPT (4×128, block 64, batch 12, biases)', ours: rows, memory, tfjs: tfjs && { backend: tfjs.backend, threads: tfjs.threads, params: tfjs.params, tokensPerSecond: tfjs.tokensPerSecond } };
  if (opts.json) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    return;
  }
  console.log(`training ${report.model}: tokens/s (median of ${opts.steps} steps after ${opts.warmup} warm-up)`);
  console.log('| engine | backend | threads | tokens/s | vs tfjs | peak GEMM GFLOP/s | MFU |');
  console.log('|---|---|---|---|---|---|---|');
  for (const r of rows) {
    console.log(`| SmallMind | ${r.backend} | ${r.threads} | ${Math.round(r.tokensPerSecond)} | ${r.vsTfjs ? `${r.vsTfjs.toFixed(1)}×` : '-'} | ${r.peakGflops?.toFixed(1) ?? '-'} | ${(100 * r.mfu).toFixed(1)}% |`);
  }
  if (tfjs) console.log(`| tfjs ${tfjs.version} | ${tfjs.backend} | ${tfjs.threads} | ${Math.round(tfjs.tokensPerSecond)} | 1.0× | - | - |`);
  const mib = (n) => `${(n / 2 ** 20).toFixed(1)} MiB`;
  console.log(`\nactivations held at the loss (one 768-token step): ${mib(memory.activationBytes)}; with gradient checkpointing ${mib(memory.checkpointedActivationBytes)}`);
}

await main();
