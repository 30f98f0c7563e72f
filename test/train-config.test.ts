/**
 * The training configuration (src/train/config.ts): nanoGPT's defaults and baby-GPT preset, the
 * layering defaults → preset → file → flags, both flag spellings, and errors that name the key.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { RequestError } from '../src/errors.js';
import {
  CONFIG_KEYS,
  DEFAULT_CONFIG,
  PRESETS,
  optimizerOptions,
  parseTrainArgs,
  resolveConfig,
  scheduleOptions,
  validateConfig,
  type TrainConfig,
} from '../src/train/config.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'smallmind-config-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function caught(f: () => unknown): RequestError {
  try {
    f();
  } catch (err) {
    if (err instanceof RequestError) return err;
    throw err;
  }
  throw new Error('expected an error');
}

function configFile(name: string, json: unknown): string {
  const file = path.join(tmp, name);
  fs.writeFileSync(file, JSON.stringify(json));
  return file;
}

describe('defaults and presets', () => {
  it("has nanoGPT train.py's defaults for nanoGPT's keys", () => {
    expect(DEFAULT_CONFIG).toMatchObject({
      out_dir: 'out', eval_interval: 2000, log_interval: 1, eval_iters: 200, eval_only: false, always_save_checkpoint: true, init_from: 'scratch',
      gradient_accumulation_steps: 40, batch_size: 12, block_size: 1024, n_layer: 12, n_head: 12, n_embd: 768, dropout: 0, bias: false,
      learning_rate: 6e-4, max_iters: 600000, weight_decay: 0.1, beta1: 0.9, beta2: 0.95, grad_clip: 1.0, decay_lr: true,
      warmup_iters: 2000, lr_decay_iters: 600000, min_lr: 6e-5,
    });
    expect(() => validateConfig(DEFAULT_CONFIG)).not.toThrow();
    // Every key is documented in docs/TRAINING.md's table.
    const doc = fs.readFileSync(new URL('../docs/TRAINING.md', import.meta.url), 'utf8');
    for (const key of Object.keys(CONFIG_KEYS)) expect(doc, key).toContain(`| \`${key}\` |`);
  });

  it("shakespeare-char is nanoGPT's baby GPT as its README runs it on a CPU", () => {
    const config = resolveConfig({ preset: 'shakespeare-char', overrides: { data: 'input.txt' } });
    expect(config).toMatchObject({
      n_layer: 4, n_head: 4, n_embd: 128, block_size: 64, batch_size: 12, dropout: 0, max_iters: 2000, lr_decay_iters: 2000,
      learning_rate: 1e-3, beta2: 0.99, warmup_iters: 100, min_lr: 1e-4, weight_decay: 0.1, grad_clip: 1.0, gradient_accumulation_steps: 1,
      eval_interval: 250, eval_iters: 20, always_save_checkpoint: false, tokenizer: 'char', optimizer: 'adamw', schedule: 'cosine',
    });
    expect(scheduleOptions(config)).toEqual({
      schedule: 'cosine', learningRate: 1e-3, minLr: 1e-4, warmupIters: 100, lrDecayIters: 2000, pctStart: 0.3, divFactor: 25, finalDivFactor: 1e4,
    });
    expect(optimizerOptions(config)).toMatchObject({ beta1: 0.9, beta2: 0.99, weightDecay: 0.1 });
    expect(Object.keys(PRESETS)).toEqual(['shakespeare-char']);
  });

  it('decay_lr false is a constant learning rate without warmup, as in nanoGPT', () => {
    const config: TrainConfig = { ...DEFAULT_CONFIG, decay_lr: false };
    expect(scheduleOptions(config)).toMatchObject({ schedule: 'constant', warmupIters: 0 });
  });
});

describe('layers and flags', () => {
  it('applies defaults → preset → file → flags, later winning', () => {
    const file = configFile('run.json', { n_layer: 6, learning_rate: 3e-4, out: 'from-file' });
    const args = parseTrainArgs(['--preset', 'shakespeare-char', '--config', file, '--n_layer=2', '--data', 'x.txt']);
    expect(args).toEqual({ preset: 'shakespeare-char', configFile: file, overrides: { n_layer: 2, data: 'x.txt' } });
    const config = resolveConfig(args);
    expect(config.n_layer).toBe(2); // flag over file
    expect(config.learning_rate).toBe(3e-4); // file over preset
    expect(config.out_dir).toBe('from-file'); // alias
    expect(config.n_embd).toBe(128); // preset over default
    expect(config.seed).toBe(1337); // default
  });

  it('accepts --key value, --key=value, dashes or underscores, and bare booleans', () => {
    const { overrides } = parseTrainArgs([
      '--n-layer', '4', '--n_head=2', '--learning-rate', '1e-3', '--bias', '--always_save_checkpoint', 'false', '--eval-only=True',
      '--optimizer', 'lion', '--out', 'dir', '--n_kv_head', 'null', '--nesterov', '--seed', '42',
    ]);
    expect(overrides).toEqual({
      n_layer: 4, n_head: 2, learning_rate: 1e-3, bias: true, always_save_checkpoint: false, eval_only: true, optimizer: 'lion', out_dir: 'dir', n_kv_head: null, nesterov: true, seed: 42,
    });
  });
});

describe('errors name the key', () => {
  it('unknown keys, with a suggestion', () => {
    const err = caught(() => parseTrainArgs(['--n_layers', '4']));
    expect(err.code).toBe('unknown_config_key');
    expect(err.message).toBe('n_layers: unknown training configuration key (flag --n_layers) (did you mean n_layer?)');
    const file = configFile('typo.json', { learning_rat: 1 });
    expect(caught(() => resolveConfig({ configFile: file, overrides: {} })).message).toBe(`learning_rat: unknown training configuration key (in ${file}) (did you mean learning_rate?)`);
    expect(caught(() => parseTrainArgs(['data.txt'])).message).toMatch(/data\.txt: expected a --key flag/);
    expect(caught(() => resolveConfig({ preset: 'tiny', overrides: {} })).message).toMatch(/unknown preset "tiny" \(presets: shakespeare-char\)/);
  });

  it('wrong types and ranges', () => {
    expect(caught(() => parseTrainArgs(['--n_layer', 'four'])).message).toBe('n_layer: must be a number, got "four" (flag --n_layer)');
    expect(caught(() => parseTrainArgs(['--n_layer', '2.5'])).message).toBe('n_layer: must be an integer, got 2.5 (flag --n_layer)');
    expect(caught(() => parseTrainArgs(['--dropout', '1'])).message).toBe('dropout: must be in [0, 1), got 1 (flag --dropout)');
    expect(caught(() => parseTrainArgs(['--bias', 'yes'])).message).toBe('yes: expected a --key flag'); // a bare --bias is true; "yes" is left over
    expect(caught(() => parseTrainArgs(['--optimizer', 'adam'])).message).toBe('optimizer: must be one of adamw, sgd, lion, adafactor, got "adam" (flag --optimizer)');
    expect(caught(() => parseTrainArgs(['--batch_size'])).message).toBe('batch_size: needs a value (flag --batch_size)');
    const file = configFile('types.json', { batch_size: '12' });
    expect(caught(() => resolveConfig({ configFile: file, overrides: {} })).message).toBe(`batch_size: must be a number, got "12" (in ${file})`);
    const notObject = configFile('list.json', [1, 2]);
    expect(caught(() => resolveConfig({ configFile: notObject, overrides: {} })).message).toMatch(/config: must be a JSON object/);
  });

  it('inconsistent dimensions', () => {
    const base = { ...DEFAULT_CONFIG, n_embd: 128, n_head: 4 };
    expect(caught(() => validateConfig({ ...base, n_head: 3 })).message).toBe('n_head: n_embd 128 is not a multiple of n_head 3 (each head gets n_embd / n_head dims)');
    expect(caught(() => validateConfig({ ...base, arch: 'llama', n_kv_head: 3 })).message).toMatch(/^n_kv_head: n_head 4 is not a multiple of n_kv_head 3/);
    expect(caught(() => validateConfig({ ...base, n_kv_head: 2 })).message).toMatch(/^n_kv_head: the gpt2 architecture has one key\/value head per head/);
    expect(() => validateConfig({ ...base, arch: 'llama', n_kv_head: 2 })).not.toThrow();
    expect(caught(() => validateConfig({ ...base, arch: 'llama', n_embd: 12, n_head: 4 })).message).toMatch(/^n_head: llama's rotary embeddings need an even head size, n_embd \/ n_head = 3/);
  });

  it('a block size over the context of the model being fine-tuned, and schedules that cannot run', () => {
    const config = { ...DEFAULT_CONFIG, block_size: 512 };
    expect(caught(() => validateConfig(config, { modelContext: 256 })).message).toBe("block_size: 512 is more than the model's context length 256");
    expect(() => validateConfig(config, { modelContext: 512 })).not.toThrow();
    expect(caught(() => validateConfig({ ...DEFAULT_CONFIG, warmup_iters: 100, lr_decay_iters: 50 })).message).toMatch(/^lr_decay_iters: must be greater than warmup_iters/);
    // Without decay the schedule keys are not used, so they are not checked against each other.
    expect(() => validateConfig({ ...DEFAULT_CONFIG, decay_lr: false, warmup_iters: 100, lr_decay_iters: 50 })).not.toThrow();
    expect(caught(() => validateConfig({ ...DEFAULT_CONFIG, resume: 'out', init_from: 'model.gguf' })).message).toMatch(/^resume: cannot resume a run and also start from init_from "model\.gguf"/);
  });
});
