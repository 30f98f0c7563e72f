/**
 * Option parsers and the options several commands share. A bad value fails at parse time with
 * commander's "option '--temp <T>' argument '-1' is invalid. <why>", which names the option.
 */
import os from 'node:os';
import path from 'node:path';
import { InvalidArgumentError, Option } from 'commander';
import { loadModel, type LoadOptions, type Model } from '../model.js';
import type { CliIO } from './io.js';
import { createProgress, progressMode } from './progress.js';

/** Strict decimal number: rejects '', '1x', '0x10', 'Infinity' (Number() would accept some). */
const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

function parseNumber(value: string): number {
  if (!NUMBER.test(value.trim())) throw new InvalidArgumentError('not a number.');
  return Number(value);
}

/** An integer in [min, max]. */
export function integerIn(min: number, max = Number.MAX_SAFE_INTEGER): (value: string) => number {
  return (value) => {
    const n = parseNumber(value);
    if (!Number.isInteger(n)) throw new InvalidArgumentError('must be an integer.');
    if (n < min || n > max) {
      throw new InvalidArgumentError(max === Number.MAX_SAFE_INTEGER ? `must be at least ${min}.` : `must be in ${min}..${max}.`);
    }
    return n;
  };
}

/** A number in [min, max], or (min, max] when `minExclusive`. */
export function numberIn(min: number, max: number, minExclusive = false): (value: string) => number {
  return (value) => {
    const n = parseNumber(value);
    const low = minExclusive ? n <= min : n < min;
    if (low || n > max) {
      const range = max === Infinity ? (minExclusive ? `> ${min}` : `≥ ${min}`) : `in ${minExclusive ? '(' : '['}${min}, ${max}]`;
      throw new InvalidArgumentError(`must be a number ${range}.`);
    }
    return n;
  };
}

export const modelOption = (required = false): Option => {
  const what = 'model file (.gguf, or a llama2.c .bin)';
  const option = new Option('-m, --model <file>', required ? what : `${what}; default: the embedded stories260K`);
  return required ? option.makeOptionMandatory() : option;
};

export const threadsOption = (): Option =>
  new Option('-t, --threads <n>', 'compute threads').argParser(integerIn(1, 256)).default(os.availableParallelism());

export const cacheTypeOption = (): Option =>
  new Option('--cache-type <type>', 'KV cache element type').choices(['f32', 'f16']).default('f16');

export const backendOption = (): Option =>
  new Option('--backend <name>', 'compute backend').choices(['wasm', 'reference']).default('wasm');

export const tokenizerOption = (): Option =>
  new Option('--tokenizer <file>', 'tokenizer.bin for a llama2.c checkpoint (default: found beside the model)');

export const jsonOption = (): Option => new Option('--json', 'print one JSON object instead of text');

/** How a generating command runs the model (generate, chat): threads, KV cache, backend, context. */
export const runtimeOptions = (): Option[] => [
  threadsOption(),
  cacheTypeOption(),
  backendOption(),
  new Option('-c, --ctx-size <n>', 'context positions to allocate (default: the model\'s, at most 4096)').argParser(integerIn(1)),
];

/** The options every model-loading command accepts. */
export interface LoadFlags {
  model?: string;
  threads: number;
  cacheType: 'f32' | 'f16';
  backend: 'wasm' | 'reference';
  tokenizer?: string;
  json?: boolean;
}

/** Load a model with a progress bar on stderr (none with --json); returns it and the load time. */
export async function loadWithProgress(
  io: CliIO,
  flags: LoadFlags,
  extra: Pick<LoadOptions, 'contextLength' | 'batchSize'> = {},
): Promise<{ model: Model; loadMs: number }> {
  const label = `loading ${flags.model ? path.basename(flags.model) : 'stories260K'}`;
  const progress = createProgress(label, io.stderr, progressMode(io.stderr, flags.json === true));
  const start = performance.now();
  try {
    const model = await loadModel(flags.model, {
      backend: flags.backend,
      threads: flags.threads,
      cacheType: flags.cacheType,
      tokenizer: flags.tokenizer,
      onProgress: (done, total) => progress.update(done, total),
      ...extra,
    });
    progress.finish();
    return { model, loadMs: performance.now() - start };
  } catch (err) {
    progress.finish();
    throw err;
  }
}

/** The sampling flags of commands that generate (generate, chat): llama.cpp's names and defaults. */
export interface SamplingFlags {
  nPredict: number;
  temp: number;
  topK: number;
  topP: number;
  seed?: number;
}

export const samplingOptions = (): Option[] => [
  new Option('-n, --n-predict <n>', 'tokens to generate at most').argParser(integerIn(0)).default(128),
  new Option('--temp <t>', 'temperature (0 = greedy)').argParser(numberIn(0, Infinity)).default(0.8),
  new Option('--top-k <k>', 'keep the k most likely tokens (0 = off)').argParser(integerIn(0)).default(40),
  new Option('--top-p <p>', 'keep the smallest set with this much probability (1 = off)').argParser(numberIn(0, 1, true)).default(0.95),
  new Option('--seed <s>', 'sampling seed (default: random)').argParser(integerIn(0, 2 ** 32 - 1)),
];

/** The model.stream options the sampling flags ask for. */
export const samplingFromFlags = (flags: SamplingFlags): { maxTokens: number; temperature: number; topK: number; topP: number; seed?: number } => ({
  maxTokens: flags.nPredict,
  temperature: flags.temp,
  topK: flags.topK,
  topP: flags.topP,
  seed: flags.seed,
});
