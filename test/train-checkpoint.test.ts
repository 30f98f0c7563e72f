/**
 * Checkpoints and resume (src/train/checkpoint-state.ts), with every building block in one real
 * training loop: a character bigram model (one 65×65 table of logits, its gradient written out)
 * trained on tinyshakespeare with the shakespeare-char configuration's AdamW, cosine schedule,
 * clipping and gradient accumulation. A run interrupted between checkpoints and resumed writes
 * the same metrics and ends with the same weights, bit for bit, as one that never stopped; a NaN
 * loss stops the run and leaves the last good checkpoint in place.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { FormatError, ModelError, RequestError } from '../src/errors.js';
import {
  BEST_FILE,
  LATEST_FILE,
  MODEL_FILE,
  OPTIMIZER_FILE,
  TRAINER_STATE_FILE,
  loadCheckpoint,
  lossNotFiniteError,
  parseTrainerState,
  prepareOutDir,
  saveCheckpoint,
} from '../src/train/checkpoint-state.js';
import { optimizerOptions, resolveConfig, scheduleOptions, type TrainConfig } from '../src/train/config.js';
import { BatchSampler, prepareData, type Batch, type PreparedData } from '../src/train/data.js';
import { MetricsWriter, readMetrics, truncateMetrics, writeLossCurve } from '../src/train/metrics.js';
import { clipGradNorm, createOptimizer, defaultDecay, loadOptimizerState, zeroGrads, type TrainParam } from '../src/train/optim.js';
import { learningRateAt } from '../src/train/schedule.js';
import { readTensorFile, writeTensorFile } from '../src/train/tensor-file.js';
import { NormalSource } from '../src/tensor/random.js';

const shakespeareFile = fileURLToPath(new URL('../../shared/data/tinyshakespeare/input.txt', import.meta.url));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'smallmind-ckpt-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const cacheDir = path.join(tmp, 'cache');
let data: PreparedData | undefined;
function shakespeare(): PreparedData {
  data ??= prepareData({ data: shakespeareFile, tokenizer: 'char', cacheDir });
  return data;
}

function configFor(outDir: string): TrainConfig {
  return resolveConfig({
    preset: 'shakespeare-char',
    overrides: {
      data: shakespeareFile, out_dir: outDir, max_iters: 40, lr_decay_iters: 40, warmup_iters: 5, eval_interval: 10, eval_iters: 2,
      batch_size: 4, block_size: 16, gradient_accumulation_steps: 2, learning_rate: 0.3, min_lr: 0.03,
    },
  });
}

/** Mean cross-entropy of the bigram logits W[x] against y over the batch; adds d(loss)/dW · scale into `grad`. */
function bigramLoss(w: TrainParam, vocab: number, batch: Batch, gradScale = 0): number {
  let total = 0;
  const n = batch.inputs.length;
  const probs = new Float64Array(vocab);
  for (let i = 0; i < n; i++) {
    const row = batch.inputs[i] * vocab;
    let max = -Infinity;
    for (let v = 0; v < vocab; v++) max = Math.max(max, w.data[row + v]);
    let sum = 0;
    for (let v = 0; v < vocab; v++) sum += probs[v] = Math.exp(w.data[row + v] - max);
    total -= Math.log(probs[batch.targets[i]] / sum);
    if (gradScale === 0) continue;
    for (let v = 0; v < vocab; v++) w.grad[row + v] += ((probs[v] / sum - (v === batch.targets[i] ? 1 : 0)) / n) * gradScale;
  }
  return total / n;
}

interface RunOptions {
  /** Stop (as if killed) when this step is about to start. */
  stopAt?: number;
  /** Continue the run saved in outDir. */
  resume?: boolean;
  /** Put a NaN into the weights before this step. */
  poisonAt?: number;
}

/** A nanoGPT-shaped training loop over the building blocks; returns the weights when it ends. */
function train(outDir: string, opts: RunOptions = {}): Float32Array {
  const config = configFor(outDir);
  prepareOutDir(outDir);
  const { train: trainTokens, val: valTokens, tokenizer, cachePath, tokens } = shakespeare();
  const vocab = tokenizer.tokenizer.vocabSize;
  const w: TrainParam = { name: 'bigram.weight', shape: [vocab, vocab], data: new Float32Array(vocab * vocab), grad: new Float32Array(vocab * vocab), decay: defaultDecay('bigram.weight', [vocab, vocab]) };
  const init = new NormalSource(config.seed);
  for (let i = 0; i < w.data.length; i++) w.data[i] = 0.02 * init.next();
  const optimizer = createOptimizer(config.optimizer, [w], optimizerOptions(config));
  const batches = { batchSize: config.batch_size, blockSize: config.block_size };
  const samplers = {
    train: new BatchSampler(trainTokens, { ...batches, seed: config.seed, split: 'train' }),
    eval_train: new BatchSampler(trainTokens, { ...batches, seed: config.seed + 1, split: 'train' }),
    val: new BatchSampler(valTokens, { ...batches, seed: config.seed + 2, split: 'val' }),
  };
  let step = 0;
  let seen = 0;
  let best: number | null = null;
  const metricsPath = path.join(outDir, 'metrics.jsonl');
  if (opts.resume) {
    const { dir, state } = loadCheckpoint(outDir);
    w.data.set(readTensorFile(path.join(dir, MODEL_FILE)).tensors.get(w.name)!.data);
    loadOptimizerState(path.join(dir, OPTIMIZER_FILE), optimizer);
    for (const [role, sampler] of Object.entries(samplers)) sampler.setState(state.samplers[role]);
    ({ step, tokens: seen, best_val_loss: best } = state);
    truncateMetrics(metricsPath, step);
  }
  const metrics = new MetricsWriter(metricsPath);
  try {
    for (; step <= config.max_iters; step++) {
      if (step === opts.stopAt) return w.data;
      if (step === opts.poisonAt) w.data[7] = NaN;
      // The state at the start of this step, before its evaluation (see checkpoint-state.ts).
      const snapshot = { tokens: seen, best_val_loss: best, samplers: Object.fromEntries(Object.entries(samplers).map(([role, s]) => [role, s.getState()])) };
      if (step % config.eval_interval === 0) {
        const mean = (s: BatchSampler): number => {
          let sum = 0;
          for (let k = 0; k < config.eval_iters; k++) sum += bigramLoss(w, vocab, s.next());
          return sum / config.eval_iters;
        };
        const record = { step, train_loss: mean(samplers.eval_train), val_loss: mean(samplers.val) };
        metrics.write(record);
        const improved = best === null || record.val_loss < best;
        if (improved) best = record.val_loss;
        if (step > 0 && (improved || config.always_save_checkpoint)) {
          saveCheckpoint(outDir, {
            state: { ...snapshot, step, rng: {}, data: { cache: path.basename(cachePath), tokens: tokens.length }, elapsed_s: 0, config },
            optimizer,
            writeModel: (dir) => writeTensorFile(path.join(dir, MODEL_FILE), [w]),
            isBest: improved,
            valLoss: record.val_loss,
          });
        }
        writeLossCurve(path.join(outDir, 'loss.svg'), readMetrics(metricsPath));
      }
      if (step === config.max_iters) break;
      const lr = learningRateAt(step, scheduleOptions(config));
      zeroGrads([w]);
      let loss = 0;
      for (let micro = 0; micro < config.gradient_accumulation_steps; micro++) {
        loss += bigramLoss(w, vocab, samplers.train.next(), 1 / config.gradient_accumulation_steps) / config.gradient_accumulation_steps;
      }
      if (!Number.isFinite(loss)) throw lossNotFiniteError(step, loss, outDir);
      const gradNorm = clipGradNorm([w], config.grad_clip);
      optimizer.step(lr);
      seen += config.gradient_accumulation_steps * config.batch_size * config.block_size;
      metrics.write({ step, loss, lr, grad_norm: gradNorm, tokens: seen });
    }
  } finally {
    metrics.close();
  }
  return w.data;
}

describe('resume', () => {
  const straightDir = path.join(tmp, 'straight');
  let straight: Float32Array;

  it('a run learns: val loss falls from ln(65) towards the bigram entropy, and it keeps the best checkpoint', () => {
    straight = train(straightDir);
    const records = readMetrics(path.join(straightDir, 'metrics.jsonl'));
    const evals = records.filter((r) => r.val_loss !== undefined);
    expect(evals.map((r) => r.step)).toEqual([0, 10, 20, 30, 40]);
    expect(evals[0].val_loss).toBeCloseTo(Math.log(65), 1);
    expect(evals[4].val_loss!).toBeLessThan(3.3);
    expect(records.filter((r) => r.loss !== undefined).map((r) => r.step)).toEqual(Array.from({ length: 40 }, (_, i) => i));
    // Only checkpoints that improved val loss were saved (always_save_checkpoint is off in the preset); latest is the last one.
    const latest = JSON.parse(fs.readFileSync(path.join(straightDir, LATEST_FILE), 'utf8'));
    const best = JSON.parse(fs.readFileSync(path.join(straightDir, BEST_FILE), 'utf8'));
    const bestEval = evals.slice(1).reduce((a, b) => (b.val_loss! < a.val_loss! ? b : a));
    expect(best).toEqual({ checkpoint: `checkpoint-${bestEval.step}`, step: bestEval.step, val_loss: bestEval.val_loss });
    expect(fs.readdirSync(straightDir).filter((f) => f.startsWith('checkpoint-')).sort()).toEqual([...new Set([latest.checkpoint, best.checkpoint])].sort());
    expect(fs.readFileSync(path.join(straightDir, 'loss.svg'), 'utf8')).toContain('>val loss</text>');
  });

  it('an interrupted run resumed from its last checkpoint writes the same metrics and ends with the same weights', () => {
    const dir = path.join(tmp, 'interrupted');
    train(dir, { stopAt: 25 });
    // Killed after step 24: metrics ran ahead of the checkpoint of step 20.
    expect(readMetrics(path.join(dir, 'metrics.jsonl')).at(-1)!.step).toBe(24);
    expect(loadCheckpoint(dir).state.step).toBe(20);
    const resumed = train(dir, { resume: true });
    const strip = (file: string): string => fs.readFileSync(file, 'utf8');
    expect(strip(path.join(dir, 'metrics.jsonl'))).toBe(strip(path.join(straightDir, 'metrics.jsonl')));
    expect(Buffer.from(resumed.buffer).equals(Buffer.from(straight.buffer))).toBe(true);
  });

  it('a NaN loss stops the run with an error naming the step and the last good checkpoint, which still loads', () => {
    const dir = path.join(tmp, 'diverged');
    let err: unknown;
    try {
      train(dir, { poisonAt: 33 });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ModelError);
    expect((err as ModelError).code).toBe('loss_not_finite');
    const latest = loadCheckpoint(dir);
    expect((err as Error).message).toBe(
      `step 33: the loss is NaN; training stopped, the last good checkpoint is ${latest.dir} (step ${latest.state.step}); resume from it with --resume ${dir}, perhaps with a lower learning_rate`,
    );
    expect(latest.state.step).toBeLessThanOrEqual(30);
    expect(readTensorFile(path.join(latest.dir, MODEL_FILE)).tensors.get('bigram.weight')!.data.every(Number.isFinite)).toBe(true);
  });
});

describe('checkpoint files', () => {
  it('loads from an output folder or a checkpoint folder, and checks trainer_state.json', () => {
    const dir = path.join(tmp, 'straight');
    const { dir: ckpt, state } = loadCheckpoint(dir);
    expect(loadCheckpoint(ckpt).state).toEqual(state);
    expect(state.config.n_layer).toBe(4);
    expect(state.samplers.train.mode).toBe('random');
    const file = path.join(ckpt, TRAINER_STATE_FILE);
    const json = JSON.parse(fs.readFileSync(file, 'utf8'));
    expect(() => parseTrainerState({ ...json, version: 2 }, file)).toThrow(/version 2 \(supported: 1\)/);
    expect(() => parseTrainerState({ ...json, step: -1 }, file)).toThrow(/step is not a count/);
    expect(() => parseTrainerState({ ...json, samplers: { train: { mode: 'random', rng: [0, 0, 0, 0] } } }, file)).toThrow(/samplers\.train is not a valid state/);
    expect(() => parseTrainerState({ ...json, config: { ...json.config, n_layers: 3 } }, file)).toThrow(/config: n_layers: unknown training configuration key/);
    const none = path.join(tmp, 'empty-out');
    fs.mkdirSync(none);
    expect(() => loadCheckpoint(none)).toThrow(FormatError);
    expect(() => loadCheckpoint(none)).toThrow(/neither a checkpoint folder \(trainer_state\.json\) nor an output folder with a latest\.json/);
  });

  it('fails early on an output folder that cannot be written', () => {
    const file = path.join(tmp, 'a-file');
    fs.writeFileSync(file, '');
    const notFolder = (() => {
      try {
        prepareOutDir(file);
      } catch (err) {
        return err as RequestError;
      }
      throw new Error('expected an error');
    })();
    expect(notFolder).toBeInstanceOf(RequestError);
    expect(notFolder.message).toBe(`out_dir: ${file}: is not a folder`);
    expect(() => prepareOutDir(path.join(file, 'sub'))).toThrow(/out_dir: .*a-file\/sub: (is not a folder|cannot create it)/);
    const ok = path.join(tmp, 'new', 'nested', 'out');
    prepareOutDir(ok);
    expect(fs.readdirSync(ok)).toEqual([]);
  });
});
