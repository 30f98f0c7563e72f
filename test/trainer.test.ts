/**
 * The trainer end to end: the training graphs compute what inference computes, train() learns
 * (a tiny text to near-zero loss; tinyshakespeare's loss falls), a resumed run is the
 * uninterrupted one bit for bit, checkpoints are models that loadModel, the GGUF converter and
 * `smallmind generate` take, and bad input fails with errors that name the key or file.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Tape } from '../src/autograd/tape.js';
import { createBackend } from '../src/backend/index.js';
import type { Backend } from '../src/backend/backend.js';
import { convertModel } from '../src/convert.js';
import { FormatError, ModelError, RequestError } from '../src/errors.js';
import { loadModel } from '../src/model.js';
import { openHfCheckpoint, readHfTensor } from '../src/models/hf.js';
import { createNetwork, type ArchConfig } from '../src/models/index.js';
import { loadCheckpoint } from '../src/train/checkpoint-state.js';
import { resolveConfig, type TrainConfig } from '../src/train/config.js';
import { readMetrics, type MetricsRecord } from '../src/train/metrics.js';
import { archFromConfig, createTrainModel, loadParams, type TrainableModel } from '../src/train/model.js';
import { train, type TrainOptions } from '../src/train/trainer.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { run } from './helpers/cli.js';
import { expectClose, randomValues } from './helpers/kernels.js';

const shakespeareFile = fileURLToPath(new URL('../../shared/data/tinyshakespeare/input.txt', import.meta.url));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'smallmind-trainer-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** The first `chars` characters of tinyshakespeare, as a file. */
function shakespeareSlice(chars: number): string {
  const file = path.join(tmp, `shakespeare-${chars}.txt`);
  if (!fs.existsSync(file)) fs.writeFileSync(file, fs.readFileSync(shakespeareFile, 'utf8').slice(0, chars));
  return file;
}

/** A small run's configuration: a 2-layer, 32-wide model on short windows. */
function tinyConfig(outDir: string, overrides: Partial<TrainConfig> = {}): TrainConfig {
  return resolveConfig({
    overrides: {
      data: shakespeareSlice(20000), out_dir: outDir, n_layer: 2, n_head: 2, n_embd: 32, block_size: 16, batch_size: 4,
      gradient_accumulation_steps: 1, max_iters: 12, lr_decay_iters: 12, warmup_iters: 2, learning_rate: 3e-3, min_lr: 3e-4,
      eval_interval: 4, eval_iters: 2, backend: 'wasm', threads: 1, ...overrides,
    },
  });
}

let be: Backend;
beforeAll(async () => {
  be = await createBackend({ backend: 'wasm', threads: 1 });
});
afterAll(() => be.dispose());

function quiet(config: TrainConfig, extra: Partial<TrainOptions> = {}): Promise<Awaited<ReturnType<typeof train>>> {
  return train({ config, backend: be, ...extra });
}

/** Inference logits of every position of each sequence, from weights by GGUF name. */
function inferenceLogits(arch: ArchConfig, tensors: Map<string, Tensor>, inputs: Int32Array, batch: number): Float32Array {
  const T = inputs.length / batch;
  const net = createNetwork(be, arch, tensors, { contextLength: T, maxBatch: T, cacheType: 'f32' });
  const vocab = arch.config.vocab_size;
  const out = new Float32Array(inputs.length * vocab);
  try {
    for (let b = 0; b < batch; b++) out.set(net.forward(inputs.subarray(b * T, (b + 1) * T), 0, true).f32().subarray(0, T * vocab), b * T * vocab);
  } finally {
    net.dispose();
  }
  return out;
}

function trainingLogits(model: TrainableModel, inputs: Int32Array, batch: number): Float32Array {
  const tape = new Tape(be);
  try {
    return tape.noGrad(() => model.logits(tape, inputs, { batch, training: false }).value.f32().slice());
  } finally {
    tape.dispose();
  }
}

describe('training graphs', () => {
  const cases: [string, Partial<TrainConfig>][] = [
    ['gpt2 with biases', { arch: 'gpt2', bias: true, n_head: 4 }],
    ['llama with GQA', { arch: 'llama', n_head: 4, n_kv_head: 2 }],
  ];
  for (const [name, overrides] of cases) {
    it(`${name}: the training forward gives the inference forward's logits`, () => {
      const config = tinyConfig(tmp, { n_embd: 32, n_layer: 2, block_size: 8, ...overrides });
      const arch = archFromConfig(config, 11);
      const model = createTrainModel(be, arch, { dropout: 0, bias: config.bias, seed: 5 });
      try {
        // Random values everywhere (biases and norms too), so every tensor's role is checked.
        model.params.forEach((p, i) => p.value.f32().set(randomValues(p.value.numel, 100 + i, 0.5, p.name.includes('norm.weight') ? 1 : 0)));
        const inputs = Int32Array.from({ length: 2 * 8 }, (_, i) => (i * 7 + 3) % 11);
        const tensors = new Map(model.params.map((p) => [p.name, p.value]));
        const want = inferenceLogits(arch, tensors, inputs, 2);
        const got = trainingLogits(model, inputs, 2);
        expectClose(got, want, (i) => 1e-4 * Math.max(1, Math.abs(want[i]!)), `${name} logits`);
      } finally {
        model.dispose();
      }
    });
  }

  it('parameters carry the GGUF names, with nanoGPT initialisation', () => {
    const config = tinyConfig(tmp, { n_layer: 4 });
    const model = createTrainModel(be, archFromConfig(config, 65), { dropout: 0, bias: false, seed: 1337 });
    try {
      const byName = new Map(model.params.map((p) => [p.name, p]));
      expect(model.params.map((p) => p.name).slice(0, 4)).toEqual(['token_embd.weight', 'position_embd.weight', 'blk.0.attn_norm.weight', 'blk.0.attn_norm.bias']);
      expect(byName.has('output.weight')).toBe(false); // tied
      const std = (name: string): number => {
        const v = byName.get(name)!.value.f32();
        return Math.sqrt(v.reduce((s, x) => s + x * x, 0) / v.length);
      };
      expect(std('blk.0.ffn_up.weight')).toBeCloseTo(0.02, 3);
      expect(std('blk.0.ffn_down.weight')).toBeCloseTo(0.02 / Math.sqrt(8), 3);
      expect(byName.get('blk.0.ffn_norm.weight')!.value.f32().every((x) => x === 1)).toBe(true);
      // bias off: the biases are zero and frozen
      expect(byName.get('blk.0.attn_qkv.bias')!.requiresGrad).toBe(false);
      expect(byName.get('blk.0.attn_qkv.bias')!.value.f32().every((x) => x === 0)).toBe(true);
    } finally {
      model.dispose();
    }
  });
});

describe('train()', () => {
  it('overfits a tiny repeating text to near-zero loss', async () => {
    const file = path.join(tmp, 'tiny.txt');
    fs.writeFileSync(file, 'the quick brown fox jumps over the lazy dog. '.repeat(40));
    const outDir = path.join(tmp, 'overfit');
    const result = await quiet(tinyConfig(outDir, { data: file, max_iters: 150, lr_decay_iters: 150, warmup_iters: 10, learning_rate: 1e-2, min_lr: 1e-3, eval_interval: 50, eval_iters: 4 }));
    const steps = readMetrics(path.join(outDir, 'metrics.jsonl')).filter((r) => r.loss !== undefined);
    expect(steps[0]!.loss!).toBeGreaterThan(2.5);
    expect(steps.at(-1)!.loss!).toBeLessThan(0.1);
    expect(result.valLoss!).toBeLessThan(0.1);
  });

  it('learns tinyshakespeare: val loss falls within 30 steps; writes metrics, the loss curve and checkpoints', async () => {
    const outDir = path.join(tmp, 'shakespeare');
    const result = await quiet(tinyConfig(outDir, { max_iters: 30, lr_decay_iters: 30, eval_interval: 15, eval_iters: 4, n_embd: 48, batch_size: 8, block_size: 32, learning_rate: 1e-2, min_lr: 1e-3 }));
    const evals = readMetrics(path.join(outDir, 'metrics.jsonl')).filter((r) => r.val_loss !== undefined);
    expect(evals.map((r) => r.step)).toEqual([0, 15, 30]);
    expect(evals[0]!.val_loss!).toBeCloseTo(Math.log(65), 0);
    expect(evals[1]!.val_loss!).toBeLessThan(evals[0]!.val_loss! - 0.5);
    expect(evals[2]!.val_loss!).toBeLessThan(evals[1]!.val_loss!);
    expect(result).toMatchObject({ step: 30, stopped: 'finished', checkpoint: path.join(outDir, 'checkpoint-30') });
    expect(fs.readFileSync(path.join(outDir, 'loss.svg'), 'utf8')).toContain('<svg');
    expect(fs.readlinkSync(path.join(outDir, 'latest'))).toBe('checkpoint-30');
    expect(fs.readdirSync(path.join(outDir, 'best')).sort()).toEqual(
      ['config.json', 'generation_config.json', 'model.safetensors', 'optimizer.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'trainer_state.json'],
    );
  });
});

describe('resume', () => {
  /** Metrics without the timing fields (which differ between any two runs). */
  const deterministic = (dir: string): MetricsRecord[] =>
    readMetrics(path.join(dir, 'metrics.jsonl')).map(({ tokens_per_s: _t, elapsed_s: _e, ...rest }) => rest);
  const weights = (dir: string): Buffer => fs.readFileSync(path.join(dir, 'latest', 'model.safetensors'));
  // dropout and gradient accumulation on, so the dropout generator and the samplers must resume too
  const settings: Partial<TrainConfig> = { arch: 'llama', n_kv_head: 1, dropout: 0.1, gradient_accumulation_steps: 2, max_iters: 12, always_save_checkpoint: true };

  it('N steps straight == K steps, abort, resume, N − K steps: the same metrics and weights, bit for bit', async () => {
    const straight = path.join(tmp, 'straight');
    await quiet(tinyConfig(straight, settings));
    const resumed = path.join(tmp, 'resumed');
    const controller = new AbortController();
    const first = await quiet(tinyConfig(resumed, settings), { signal: controller.signal, onStep: (r) => r.step === 6 && controller.abort() });
    expect(first).toMatchObject({ stopped: 'aborted', step: 7 });
    expect(loadCheckpoint(resumed).state.step).toBe(7);
    const second = await quiet({ ...tinyConfig(path.join(tmp, 'elsewhere')), resume: resumed });
    expect(second).toMatchObject({ stopped: 'finished', step: 12, outDir: resumed });
    expect(deterministic(resumed)).toEqual(deterministic(straight));
    expect(weights(resumed).equals(weights(straight))).toBe(true);
  });
});

describe('gradient checkpointing', () => {
  for (const arch of ['gpt2', 'llama'] as const) {
    it(`${arch}: recomputing each block in the backward pass trains to the same weights, holding less at the loss`, async () => {
      const settings: Partial<TrainConfig> = { arch, bias: true, dropout: 0.1, max_iters: 6, eval_interval: 6 };
      const plain = path.join(tmp, `gc-off-${arch}`);
      const recomputed = path.join(tmp, `gc-on-${arch}`);
      await quiet(tinyConfig(plain, settings));
      await quiet(tinyConfig(recomputed, { ...settings, gradient_checkpointing: true }));
      const read = (dir: string): Float32Array => {
        const bytes = fs.readFileSync(path.join(dir, 'latest', 'model.safetensors'));
        return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength).slice(8 + Number(bytes.readBigUInt64LE(0))));
      };
      const want = read(plain);
      expect(Buffer.from(read(recomputed).buffer).equals(Buffer.from(want.buffer))).toBe(true); // the same kernels on the same values
      // activations held when the loss is computed
      const held = (gradientCheckpointing: boolean): number => {
        const config = tinyConfig(tmp, { arch, n_layer: 4 });
        const model = createTrainModel(be, archFromConfig(config, 65), { dropout: 0, bias: true, seed: 1, gradientCheckpointing });
        const tape = new Tape(be);
        try {
          const inputs = Int32Array.from({ length: 4 * 16 }, (_, i) => i % 65);
          model.loss(tape, inputs, inputs, { batch: 4 });
          return tape.ownedBytes;
        } finally {
          tape.dispose();
          model.dispose();
        }
      };
      expect(held(true)).toBeLessThan(held(false) / 3);
    });
  }
});

describe('checkpoints are models', () => {
  let outDir: string;
  beforeAll(async () => {
    outDir = path.join(tmp, 'export');
    await quiet(tinyConfig(outDir, { max_iters: 8, lr_decay_iters: 8 }));
  });

  it('the HF folder reloads into the training graph and loadModel with the trained logits', async () => {
    const dir = path.join(outDir, 'best');
    const hf = openHfCheckpoint(dir);
    const model = createTrainModel(be, hf.arch, { dropout: 0, bias: false, seed: 0 });
    const loaded = await loadModel(dir, { backend: 'wasm', threads: 1 });
    try {
      loadParams(model, (name) => {
        const bytes = readHfTensor(hf.tensors.get(name)!);
        return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
      }, dir);
      const prompt = loaded.tokenize('ROMEO:\nWhat is');
      const want = trainingLogits(model, Int32Array.from(prompt), 1);
      const vocab = hf.arch.config.vocab_size;
      const got = loaded.forward(prompt, 0);
      expectClose(got, want.subarray((prompt.length - 1) * vocab), (i) => 1e-4 * Math.max(1, Math.abs(got[i]!)), 'reloaded logits');
    } finally {
      model.dispose();
      loaded.dispose();
    }
  });

  it('converts to GGUF; greedy tokens from the GGUF equal those from the HF folder', async () => {
    const gguf = path.join(tmp, 'trained.gguf');
    convertModel({ input: path.join(outDir, 'best'), output: gguf });
    // argmax decoding by hand: the readers give a tokenizer without EOS a default one, which would stop generate()
    const greedy = async (file: string): Promise<number[]> => {
      const m = await loadModel(file, { backend: 'wasm', threads: 1 });
      try {
        const tokens = m.tokenize('ROMEO:');
        const out: number[] = [];
        let logits = m.forward(tokens, 0);
        for (let i = 0; i < 8; i++) {
          const next = logits.indexOf(Math.max(...logits));
          out.push(next);
          logits = m.forward([next], tokens.length + i);
        }
        return out;
      } finally {
        m.dispose();
      }
    };
    const fromGguf = await greedy(gguf);
    expect(fromGguf).toHaveLength(8);
    expect(fromGguf).toEqual(await greedy(path.join(outDir, 'best')));
  });
});

describe('bad input', () => {
  const failure = async (config: TrainConfig): Promise<Error> => {
    try {
      await quiet(config);
    } catch (err) {
      return err as Error;
    }
    throw new Error('expected the run to fail');
  };

  it('a missing data file, an empty dataset, a window longer than the data', async () => {
    const missing = path.join(tmp, 'no-such.txt');
    const err = await failure(tinyConfig(path.join(tmp, 'bad1'), { data: missing }));
    expect(err).toBeInstanceOf(FormatError);
    expect(err.message).toContain(missing);
    const empty = path.join(tmp, 'empty.txt');
    fs.writeFileSync(empty, '');
    expect(await failure(tinyConfig(path.join(tmp, 'bad2'), { data: empty }))).toMatchObject({ code: 'empty_dataset' });
    const short = path.join(tmp, 'short.txt');
    fs.writeFileSync(short, 'to be or not to be, that is the question');
    const long = await failure(tinyConfig(path.join(tmp, 'bad3'), { data: short, block_size: 64 }));
    expect(long).toBeInstanceOf(RequestError);
    expect(long.message).toMatch(/^block_size: the train split has \d+ tokens, fewer than block_size \+ 1 = 65$/);
  });

  it('inconsistent dimensions and a non-writable output folder', async () => {
    expect(() => tinyConfig(tmp, { n_embd: 30, n_head: 4 })).toThrow(/^n_head: n_embd 30 is not a multiple of n_head 4/);
    const file = path.join(tmp, 'not-a-folder');
    fs.writeFileSync(file, '');
    const err = await failure(tinyConfig(file));
    expect(err).toMatchObject({ code: 'out_dir_not_writable' });
    expect(err.message).toBe(`out_dir: ${file}: is not a folder`);
  });

  it('a NaN loss stops the run naming the step, and the last good checkpoint still loads', async () => {
    const outDir = path.join(tmp, 'diverged');
    const err = await failure(tinyConfig(outDir, { learning_rate: 1e30, decay_lr: false, grad_clip: 0, optimizer: 'sgd', momentum: 0, checkpoint_interval: 1, max_iters: 20 }));
    expect(err).toBeInstanceOf(ModelError);
    expect((err as ModelError).code).toBe('loss_not_finite');
    const latest = loadCheckpoint(outDir);
    expect(err.message).toMatch(new RegExp(`^step \\d+: the loss is (NaN|Infinity); training stopped, the last good checkpoint is ${latest.dir.replaceAll('/', '\\/')}`));
    const model = await loadModel(path.join(outDir, 'latest'), { backend: 'wasm', threads: 1 });
    model.dispose();
  });
});

describe('smallmind train', () => {
  it('trains 5 steps from the command line, then generate runs the result', async () => {
    const outDir = path.join(tmp, 'cli');
    const trained = await run(['train', '--data', shakespeareSlice(20000), '--out', outDir, '--n_layer', '1', '--n_head', '2', '--n_embd', '16', '--block_size=16', '--batch_size', '2',
      '--max_iters', '5', '--eval_interval', '5', '--eval_iters', '1', '--backend', 'wasm', '--threads', '1']);
    expect(trained.stderr).toBe('');
    expect(trained.code).toBe(0);
    expect(trained.stdout).toContain('step 5: train loss');
    expect(trained.stdout).toContain(`model: ${path.join(outDir, 'best')}`);
    const generated = await run(['generate', '--model', path.join(outDir, 'best'), '--backend', 'wasm', '-n', '8', '--temp', '0', 'ROMEO:']);
    expect(generated.stderr).toContain('stop: length after 8 tokens');
    expect(generated.code).toBe(0);
    expect(generated.stdout.startsWith('ROMEO:')).toBe(true);
    const bad = await run(['train', '--data', shakespeareSlice(20000), '--n_layr', '2']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('n_layr: unknown training configuration key (flag --n_layr) (did you mean n_layer?)');
  });
});
