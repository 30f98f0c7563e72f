/**
 * The trainer: nanoGPT's train.py loop on our building blocks.
 *
 *   data (data.ts) → model (model.ts: init, or a checkpoint's weights) → for each step:
 *     evaluate every eval_interval steps (train and val loss, no gradients), save a checkpoint
 *     when val loss improved (or always_save_checkpoint) → lr from the schedule →
 *     gradient_accumulation_steps × (forward, backward with 1/accum) → clip → optimizer step →
 *     metrics line.
 *
 * Checkpoints follow checkpoint-state.ts: a checkpoint of step S is the state at the start of S.
 * The weights go in as a Hugging Face checkpoint (writeHfCheckpoint: config.json,
 * model.safetensors, tokenizer.json...), so every checkpoint folder is a model that
 * `smallmind generate --model` and `smallmind convert` take; `best` and `latest` links in the
 * output folder name the best and the last one. A resumed run restores weights, optimizer,
 * samplers and the dropout generator and replays step S whole: same metrics, same weights.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Tape } from '../autograd/tape.js';
import { createBackend } from '../backend/index.js';
import type { Backend } from '../backend/backend.js';
import { writeHfCheckpoint, type TokenizerFiles } from '../convert.js';
import { FormatError, RequestError } from '../errors.js';
import { readGGUF } from '../formats/gguf.js';
import { readJsonFile, readTokenizerJson } from '../formats/tokenizer-json.js';
import { openHfCheckpoint, readHfTensor } from '../models/hf.js';
import { Xoshiro128 } from '../tensor/random.js';
import { ggufVocab, isGGUFFile } from '../tokenizers/index.js';
import { CharTokenizer } from './char-tokenizer.js';
import { BEST_FILE, LATEST_FILE, OPTIMIZER_FILE, loadCheckpoint, lossNotFiniteError, prepareOutDir, saveCheckpoint, type TrainerState } from './checkpoint-state.js';
import { optimizerOptions, scheduleOptions, validateConfig, type TrainConfig } from './config.js';
import { BatchSampler, prepareData, type PreparedData } from './data.js';
import { MetricsWriter, readMetrics, truncateMetrics, writeLossCurve, type MetricsRecord } from './metrics.js';
import { archFromConfig, checkpointTensors, createTrainModel, loadParams, parameterCount, trainableParams, type TrainableModel } from './model.js';
import { clipGradNorm, createOptimizer, loadOptimizerState, zeroGrads, type Optimizer } from './optim.js';
import { learningRateAt } from './schedule.js';

export const METRICS_FILE = 'metrics.jsonl';
export const LOSS_CURVE_FILE = 'loss.svg';
/** Links in the output folder to the checkpoint with the lowest val loss and to the last one. */
export const BEST_LINK = 'best';
export const LATEST_LINK = 'latest';

export interface CheckpointEvent {
  dir: string;
  step: number;
  best: boolean;
}

export interface TrainOptions {
  /** A validated configuration (resolveConfig). With `resume` (or init_from 'resume') the saved run's configuration is used, except backend and threads. */
  config: TrainConfig;
  /** Run on this backend (the caller keeps it); default: createBackend from config.backend and config.threads. */
  backend?: Backend;
  /** Each logged training step (every log_interval steps). */
  onStep?: (record: MetricsRecord) => void;
  /** Each evaluation. */
  onEval?: (record: MetricsRecord) => void;
  onCheckpoint?: (event: CheckpointEvent) => void;
  /** Progress messages ("tokenizing ...", "resuming from ..."). */
  onNote?: (text: string) => void;
  /** Abort (Ctrl-C): the run saves a checkpoint at the step it is at and returns. */
  signal?: AbortSignal;
}

export interface TrainResult {
  outDir: string;
  /** Optimizer steps taken when the run returned. */
  step: number;
  stopped: 'finished' | 'aborted';
  bestValLoss: number | null;
  /** The last evaluation's val loss (null without one). */
  valLoss: number | null;
  /** The checkpoint saved last (the run's end state). */
  checkpoint: string;
  parameters: number;
  backend: string;
  threads: number;
  /** Training tokens per second over this process's steps. */
  tokensPerSecond: number;
}

/** Batch samplers by role: training, and one per split for evaluation, so evaluating never moves the training batches. */
interface Samplers {
  train: BatchSampler;
  eval_train: BatchSampler;
  val: BatchSampler;
}

/** The resume folder a configuration asks for, if any. */
function resumePath(config: TrainConfig): string | undefined {
  if (config.resume !== null) return config.resume;
  return config.init_from === 'resume' ? config.out_dir : undefined;
}

/** The output folder of a resumed run: the folder that holds the checkpoint. */
function resumeOutDir(resume: string): string {
  return fs.existsSync(path.join(resume, LATEST_FILE)) ? resume : path.dirname(path.resolve(resume));
}

/** Train a model as the configuration says (see the file header). */
export async function train(options: TrainOptions): Promise<TrainResult> {
  let config = options.config;
  const resume = resumePath(config);
  let saved: { dir: string; state: TrainerState } | undefined;
  if (resume !== undefined) {
    saved = loadCheckpoint(resume);
    // Continue exactly: the saved configuration; only where it runs may change.
    config = { ...saved.state.config, backend: config.backend, threads: config.threads, out_dir: resumeOutDir(resume), resume: null, init_from: 'scratch' };
  } else if (config.init_from !== 'scratch') {
    throw new RequestError('unsupported', 'init_from', `fine-tuning a model (${JSON.stringify(config.init_from)}) is not supported yet; use 'scratch' or 'resume'`);
  }
  validateConfig(config);
  if (config.data === null) throw new RequestError('missing_option', 'data', 'no training data: give --data PATH (a text file, a .jsonl file or a folder)');
  const outDir = config.out_dir;
  prepareOutDir(outDir);

  options.onNote?.(`reading ${config.data}`);
  const data = prepareData({ data: config.data, tokenizer: config.tokenizer, cacheDir: config.cache_dir ?? path.join(outDir, 'cache'), valFraction: config.val_fraction });
  const dataInfo = { cache: path.basename(data.cachePath), tokens: data.tokens.length };
  if (saved && (saved.state.data.cache !== dataInfo.cache || saved.state.data.tokens !== dataInfo.tokens)) {
    throw new RequestError('data_changed', 'data', `${config.data} is not the data the run in ${outDir} trained on (its tokens were ${saved.state.data.cache}, ${saved.state.data.tokens} tokens; now ${dataInfo.cache}, ${dataInfo.tokens})`);
  }

  const be = options.backend ?? (await createBackend({ backend: config.backend, threads: config.threads ?? undefined }));
  const arch = archFromConfig(config, data.tokenizer.tokenizer.vocabSize);
  const model = createTrainModel(be, arch, { dropout: config.dropout, bias: config.bias, seed: config.seed, gradientCheckpointing: config.gradient_checkpointing });
  try {
    const params = trainableParams(model);
    const optimizer = createOptimizer(config.optimizer, params.map((p) => ({ ...p.optimParam(), shape: p.value.shape })), optimizerOptions(config));
    const run = new Run(be, config, model, optimizer, data, dataInfo, options);
    if (saved) run.restore(saved.dir, saved.state);
    return await run.loop();
  } finally {
    model.dispose();
    if (!options.backend) be.dispose();
  }
}

/** One training run's state and loop. */
class Run {
  private readonly samplers: Samplers;
  private dropoutRng: Xoshiro128;
  private step = 0;
  private tokens = 0;
  private best: number | null = null;
  private lastVal: number | null = null;
  private elapsedBefore = 0;
  private lastCheckpoint = '';
  private readonly tape: Tape;
  private readonly outDir: string;
  private readonly metricsPath: string;

  constructor(
    private readonly be: Backend,
    private readonly config: TrainConfig,
    private readonly model: TrainableModel,
    private readonly optimizer: Optimizer,
    private readonly data: PreparedData,
    private readonly dataInfo: { cache: string; tokens: number },
    private readonly options: TrainOptions,
  ) {
    const batches = { batchSize: config.batch_size, blockSize: config.block_size, mode: config.sampling };
    this.samplers = {
      train: new BatchSampler(data.train, { ...batches, seed: config.seed, split: 'train' }),
      eval_train: new BatchSampler(data.train, { ...batches, seed: config.seed + 1, split: 'train' }),
      val: new BatchSampler(data.val, { ...batches, seed: config.seed + 2, split: 'val' }),
    };
    this.dropoutRng = Xoshiro128.fromSeed(config.seed + 3);
    this.tape = new Tape(be);
    this.outDir = config.out_dir;
    this.metricsPath = path.join(this.outDir, METRICS_FILE);
  }

  /** Continue from a checkpoint: weights, optimizer, samplers, generators, counters; metrics cut back to its step. */
  restore(dir: string, state: TrainerState): void {
    const hf = openHfCheckpoint(dir);
    loadParams(this.model, (name) => {
      const t = hf.tensors.get(name);
      if (!t) return undefined;
      const bytes = readHfTensor(t);
      return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
    }, dir);
    loadOptimizerState(path.join(dir, OPTIMIZER_FILE), this.optimizer);
    for (const [role, sampler] of Object.entries(this.samplers) as [keyof Samplers, BatchSampler][]) {
      const s = state.samplers[role];
      if (!s) throw new FormatError('bad_checkpoint', dir, `no state for the ${role} sampler`);
      sampler.setState(s);
    }
    const rng = state.rng.dropout;
    if (!rng) throw new FormatError('bad_checkpoint', dir, 'no state for the dropout generator');
    this.dropoutRng = Xoshiro128.fromState(...rng);
    this.step = state.step;
    this.tokens = state.tokens;
    this.best = state.best_val_loss;
    this.elapsedBefore = state.elapsed_s;
    truncateMetrics(this.metricsPath, state.step);
    this.options.onNote?.(`resuming from ${dir} at step ${state.step}`);
  }

  async loop(): Promise<TrainResult> {
    const { config, options } = this;
    const metrics = new MetricsWriter(this.metricsPath);
    const start = performance.now();
    const startTokens = this.tokens;
    let stepSeconds = 0;
    const elapsed = (): number => this.elapsedBefore + (performance.now() - start) / 1000;
    let stopped: TrainResult['stopped'] = 'finished';
    try {
      for (; ; this.step++) {
        const snapshot = this.snapshot(elapsed());
        if (options.signal?.aborted) {
          this.save(snapshot, false);
          stopped = 'aborted';
          break;
        }
        let savedHere = false;
        if (this.step % config.eval_interval === 0 || config.eval_only) {
          const record = { step: this.step, ...this.evaluate() };
          metrics.write(record);
          options.onEval?.(record);
          this.lastVal = record.val_loss;
          const improved = Number.isFinite(record.val_loss) && (this.best === null || record.val_loss < this.best);
          if (improved) this.best = record.val_loss;
          if (this.step > 0 && (improved || config.always_save_checkpoint)) {
            this.save(snapshot, improved, record.val_loss);
            savedHere = true;
          }
          writeLossCurve(path.join(this.outDir, LOSS_CURVE_FILE), readMetrics(this.metricsPath), `${config.arch} ${config.n_layer}×${config.n_embd}`);
          if (config.eval_only) break;
        }
        if (this.step >= config.max_iters) {
          // The run's end state is always saved, so `latest` is the finished model.
          if (!savedHere) this.save(snapshot, false, this.lastVal ?? undefined);
          break;
        }
        if (!savedHere && config.checkpoint_interval > 0 && this.step > 0 && this.step % config.checkpoint_interval === 0) this.save(snapshot, false);
        const t0 = performance.now();
        const record = this.trainStep();
        const seconds = (performance.now() - t0) / 1000;
        stepSeconds += seconds;
        if (this.step % config.log_interval === 0) {
          const full = { ...record, tokens_per_s: this.stepTokens() / seconds, tokens: this.tokens, elapsed_s: elapsed() };
          metrics.write(full);
          options.onStep?.(full);
        }
        // Let an abort (SIGINT) in: its handler runs between steps.
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    } finally {
      metrics.close();
    }
    return {
      outDir: this.outDir,
      step: this.step,
      stopped,
      bestValLoss: this.best,
      valLoss: this.lastVal,
      checkpoint: this.lastCheckpoint,
      parameters: parameterCount(this.model),
      backend: this.be.name,
      threads: this.be.threads,
      tokensPerSecond: stepSeconds > 0 ? (this.tokens - startTokens) / stepSeconds : 0,
    };
  }

  private stepTokens(): number {
    return this.config.gradient_accumulation_steps * this.config.batch_size * this.config.block_size;
  }

  /** One optimizer step: accumulate gradients over the micro-batches, clip, update. */
  private trainStep(): MetricsRecord {
    const { config, model, tape } = this;
    const lr = learningRateAt(this.step, scheduleOptions(config));
    const params = this.optimizer.params; // views on the parameters and their gradients
    const accum = config.gradient_accumulation_steps;
    zeroGrads(params);
    let loss = 0;
    for (let micro = 0; micro < accum; micro++) {
      const batch = this.samplers.train.next();
      const dropoutSeed = this.dropoutRng.nextU32();
      try {
        const l = model.loss(tape, batch.inputs, batch.targets, { batch: config.batch_size, dropoutSeed });
        loss += l.item() / accum;
        tape.backward(l, 1 / accum);
      } finally {
        tape.dispose();
      }
    }
    if (!Number.isFinite(loss)) throw lossNotFiniteError(this.step, loss, this.outDir);
    const gradNorm = clipGradNorm(params, config.grad_clip > 0 ? config.grad_clip : Infinity);
    this.optimizer.step(lr);
    this.tokens += this.stepTokens();
    return { step: this.step, loss, lr, grad_norm: gradNorm };
  }

  /** Mean loss over eval_iters batches of each split, without recording anything. */
  private evaluate(): { train_loss: number; val_loss: number } {
    const { config, model, tape } = this;
    const mean = (sampler: BatchSampler): number => {
      let sum = 0;
      for (let k = 0; k < config.eval_iters; k++) {
        const batch = sampler.next();
        try {
          sum += tape.noGrad(() => model.loss(tape, batch.inputs, batch.targets, { batch: config.batch_size, training: false }).item());
        } finally {
          tape.dispose();
        }
      }
      return sum / config.eval_iters;
    };
    return { train_loss: mean(this.samplers.eval_train), val_loss: mean(this.samplers.val) };
  }

  /** The state at the start of the current step (what a checkpoint of this step holds). */
  private snapshot(elapsedS: number): Omit<TrainerState, 'format' | 'version'> {
    return {
      step: this.step,
      tokens: this.tokens,
      best_val_loss: this.best,
      samplers: Object.fromEntries(Object.entries(this.samplers).map(([role, s]) => [role, (s as BatchSampler).getState()])),
      rng: { dropout: this.dropoutRng.getState() },
      data: this.dataInfo,
      elapsed_s: elapsedS,
      config: this.config,
    };
  }

  /** Save a checkpoint; the first one is also `best` until an evaluation improves (step 0's evaluation has no checkpoint). */
  private save(state: Omit<TrainerState, 'format' | 'version'>, improved: boolean, valLoss?: number): void {
    const isBest = improved || !fs.existsSync(path.join(this.outDir, BEST_FILE));
    const tokenizer = checkpointTokenizer(this.config.tokenizer, this.data);
    const dir = saveCheckpoint(this.outDir, {
      state,
      optimizer: this.optimizer,
      writeModel: (folder) => writeHfCheckpoint(folder, this.model.arch, checkpointTensors(this.model), tokenizer),
      isBest,
      valLoss,
    });
    this.lastCheckpoint = dir;
    linkAtomic(this.outDir, LATEST_LINK, path.basename(dir));
    if (isBest) linkAtomic(this.outDir, BEST_LINK, path.basename(dir));
    this.options.onCheckpoint?.({ dir, step: state.step, best: isBest });
  }
}

/** The tokenizer files a checkpoint carries: the character tokenizer's, or the files the run's tokenizer came from. */
function checkpointTokenizer(tokenizerPath: string, data: PreparedData): TokenizerFiles | ReturnType<typeof ggufVocab> {
  const tok = data.tokenizer.tokenizer;
  if (tok instanceof CharTokenizer) return { json: tok.toTokenizerJson(), config: { tokenizer_class: 'PreTrainedTokenizerFast', clean_up_tokenization_spaces: false } };
  if (!fs.statSync(tokenizerPath).isDirectory() && isGGUFFile(tokenizerPath)) return ggufVocab(readGGUF(tokenizerPath));
  const folder = fs.statSync(tokenizerPath).isDirectory() ? tokenizerPath : path.dirname(tokenizerPath);
  const jsonPath = tokenizerPath.endsWith('.json') ? tokenizerPath : path.join(folder, 'tokenizer.json');
  if (!fs.existsSync(jsonPath)) throw new RequestError('unsupported', 'tokenizer', `${tokenizerPath}: a checkpoint needs the tokenizer as tokenizer.json or GGUF`);
  const configPath = path.join(folder, 'tokenizer_config.json');
  const config = fs.existsSync(configPath) ? (readJsonFile(configPath) as Record<string, unknown>) : { tokenizer_class: 'PreTrainedTokenizerFast' };
  return { json: readTokenizerJson(jsonPath), config, bos: tok.bos >= 0 ? tok.bos : undefined, eos: tok.eos >= 0 ? tok.eos : undefined };
}

/** Point outDir/name at `target` (a sibling folder): a new link renamed over the old one, so it always names a complete checkpoint. */
function linkAtomic(outDir: string, name: string, target: string): void {
  const link = path.join(outDir, name);
  const tmp = `${link}.tmp-${process.pid}`;
  fs.rmSync(tmp, { force: true });
  fs.symlinkSync(target, tmp, 'dir');
  fs.renameSync(tmp, link);
}
