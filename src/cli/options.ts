/**
 * Option parsers and the options several commands share. A bad value fails at parse time with
 * commander's "option '--temp <T>' argument '-1' is invalid. <why>", which names the option.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { InvalidArgumentError, Option } from 'commander';
import type { BackendChoice } from '../backend/backend.js';
import { FormatError, RequestError } from '../errors.js';
import { describeIoError } from '../formats/file.js';
import { SAMPLING_DEFAULTS } from '../generation/sampler.js';
import { loadModel, type GenerateOptions, type LoadOptions, type Model } from '../model.js';
import { CACHE_TYPES, type CacheType } from '../nn/kv-cache.js';
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
  new Option('--cache-type <type>', 'KV cache element type (q8_0: 53% of f16\'s memory)').choices(CACHE_TYPES).default('f16');

export const backendOption = (): Option =>
  new Option('--backend <name>', 'compute backend (auto: native where built and supported, else wasm; SMALLMIND_BACKEND overrides auto)')
    .choices(['auto', 'native', 'wasm', 'reference'])
    .default('auto');

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
  cacheType: CacheType;
  backend: BackendChoice;
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
  temp?: number;
  topK?: number;
  topP?: number;
  minP?: number;
  typicalP?: number;
  repeatPenalty?: number;
  repeatLastN?: number;
  presencePenalty?: number;
  frequencyPenalty?: number;
  mirostat?: number;
  mirostatLr?: number;
  mirostatEnt?: number;
  seed?: number;
  logprobs?: number;
  stop?: string[];
  grammar?: string;
  grammarFile?: string;
  jsonSchema?: string;
  jsonObject?: boolean;
  regex?: string;
}

const d = SAMPLING_DEFAULTS;

/**
 * The sampling flags. They carry no commander defaults (the help names the library's): an unset
 * flag leaves the option unset, so the library's defaults apply and --mirostat does not clash
 * with a top-k nobody asked for.
 */
export const samplingOptions = (): Option[] => [
  new Option('-n, --n-predict <n>', 'tokens to generate at most').argParser(integerIn(0)).default(128),
  new Option('--temp <t>', `temperature (0 = greedy; default ${d.temperature})`).argParser(numberIn(0, Infinity)),
  new Option('--top-k <k>', `keep the k most likely tokens (0 = off; default ${d.topK})`).argParser(integerIn(0)),
  new Option('--top-p <p>', `keep the smallest set with this much probability (1 = off; default ${d.topP})`).argParser(numberIn(0, 1, true)),
  new Option('--min-p <p>', `keep tokens at least p times as likely as the best (0 = off; default ${d.minP})`).argParser(numberIn(0, 1)),
  new Option('--typical-p <p>', `locally typical sampling (1 = off; default ${d.typicalP})`).argParser(numberIn(0, 1, true)),
  new Option('--repeat-penalty <x>', `penalize repeated tokens (1 = off; default ${d.repeatPenalty})`).argParser(numberIn(0, Infinity, true)),
  new Option('--repeat-last-n <n>', `tokens the penalties look back over (0 = off, -1 = context; default ${d.repeatLastN})`).argParser(integerIn(-1)),
  new Option('--presence-penalty <x>', `subtract from tokens present in that window (default ${d.presencePenalty})`).argParser(numberIn(-Infinity, Infinity)),
  new Option('--frequency-penalty <x>', `subtract per occurrence in that window (default ${d.frequencyPenalty})`).argParser(numberIn(-Infinity, Infinity)),
  new Option('--mirostat <v>', 'Mirostat sampling: 0 = off, 2 = Mirostat 2.0, replacing top-k, typical-p, top-p and min-p (default 0)').argParser(integerIn(0, 2)),
  new Option('--mirostat-lr <eta>', `Mirostat learning rate (default ${d.mirostatEta})`).argParser(numberIn(0, Infinity)),
  new Option('--mirostat-ent <tau>', `Mirostat target entropy, in bits (default ${d.mirostatTau})`).argParser(numberIn(0, Infinity)),
  new Option('--seed <s>', 'sampling seed (default: random)').argParser(integerIn(0, 2 ** 32 - 1)),
  new Option('--logprobs <n>', 'with --json: per token its log-probability and the n most likely alternatives').argParser(integerIn(0, 100)),
  new Option('--stop <text>', 'stop where the text contains this (repeatable; \\n, \\t, \\\\ are escapes)').argParser(collectStop),
  new Option('--grammar <gbnf>', 'constrain the output to this GBNF grammar (llama.cpp syntax, start rule root)'),
  new Option('--grammar-file <file>', 'constrain the output to the GBNF grammar in this file'),
  new Option('--json-schema <file|json>', 'constrain the output to JSON valid under this JSON Schema (a file, or the schema inline)'),
  new Option('--json-object', 'constrain the output to a JSON object'),
  new Option('--regex <pattern>', 'constrain the whole output to match this regular expression'),
];

/** A file a flag names, as text; a FormatError naming it when it cannot be read. */
function readFlagFile(file: string, flag: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new FormatError('cannot_open', file, `${flag}: ${describeIoError(err)}`);
  }
}

/** --json-schema takes a file or the schema itself (text starting with "{"). */
function parseSchemaFlag(value: string): unknown {
  const inline = value.trimStart().startsWith('{');
  const text = inline ? value : readFlagFile(value, '--json-schema');
  try {
    return JSON.parse(text);
  } catch (err) {
    const where = inline ? 'the inline schema' : value;
    throw new RequestError('invalid_schema', '--json-schema', `${where} is not valid JSON: ${(err as Error).message}`);
  }
}

/** --stop values add up, with llama.cpp's escapes processed (as its -r does). */
function collectStop(value: string, previous: string[] | undefined): string[] {
  const escapes: Record<string, string> = { n: '\n', t: '\t', r: '\r' };
  const text = value.replace(/\\([ntr\\'"])/g, (_, c: string) => escapes[c] ?? c);
  if (text === '') throw new InvalidArgumentError('must not be empty.');
  return [...(previous ?? []), text];
}

/** The model.stream options the sampling flags ask for (unset flags stay unset). */
export function samplingFromFlags(flags: SamplingFlags): GenerateOptions {
  const options: GenerateOptions = {
    maxTokens: flags.nPredict,
    temperature: flags.temp,
    topK: flags.topK,
    topP: flags.topP,
    minP: flags.minP,
    typicalP: flags.typicalP,
    repeatPenalty: flags.repeatPenalty,
    repeatLastN: flags.repeatLastN,
    presencePenalty: flags.presencePenalty,
    frequencyPenalty: flags.frequencyPenalty,
    mirostat: flags.mirostat as GenerateOptions['mirostat'],
    mirostatEta: flags.mirostatLr,
    mirostatTau: flags.mirostatEnt,
    seed: flags.seed,
    logprobs: flags.logprobs,
    stop: flags.stop,
    grammar: flags.grammarFile !== undefined ? readFlagFile(flags.grammarFile, '--grammar-file') : flags.grammar,
    jsonSchema: flags.jsonSchema !== undefined ? parseSchemaFlag(flags.jsonSchema) : undefined,
    jsonObject: flags.jsonObject,
    regex: flags.regex,
  };
  if (flags.grammarFile !== undefined && flags.grammar !== undefined) {
    throw new RequestError('conflicting_options', '--grammar-file', 'give --grammar or --grammar-file, not both');
  }
  return definedOnly(options);
}

/** How tokens are chosen beyond sampling: speculative decoding and beam search (generate, chat). */
export interface DecodingFlags {
  draftModel?: string;
  draftMax?: number;
  promptLookup?: boolean;
  beams?: number;
  lengthPenalty?: number;
}

export const decodingOptions = (): Option[] => [
  new Option('--draft-model <file>', 'speculative decoding: a smaller model with the same vocabulary proposes tokens (same output distribution)'),
  new Option('--draft-max <k>', 'tokens proposed per speculative step at most (default 8)').argParser(integerIn(1, 256)),
  new Option('--prompt-lookup', 'speculative decoding without a draft model: proposals copied from earlier text (n-gram lookup)'),
  new Option('--beams <n>', 'beam search with n beams (deterministic; no sampling flags)').argParser(integerIn(1, 64)),
  new Option('--length-penalty <x>', 'beam scores are logprob / length^x (default 1)').argParser(numberIn(-Infinity, Infinity)),
];

/** The draft model --draft-model names, loaded like the main one (the caller disposes of it). */
export async function loadDraft(io: CliIO, flags: LoadFlags & DecodingFlags, model: Model): Promise<Model | undefined> {
  if (!flags.draftModel) return undefined;
  return (await loadWithProgress(io, { ...flags, model: flags.draftModel, tokenizer: undefined }, { contextLength: model.contextLength })).model;
}

/** The model.stream options the decoding flags ask for. */
export function decodingFromFlags(flags: DecodingFlags, draft: Model | undefined): GenerateOptions {
  const options: GenerateOptions = {
    draftModel: draft,
    draftMax: flags.draftMax,
    promptLookup: flags.promptLookup,
    numBeams: flags.beams,
    lengthPenalty: flags.lengthPenalty,
  };
  return definedOnly(options);
}

/** The options that are set: an unset flag leaves the library's default in force. */
function definedOnly(options: GenerateOptions): GenerateOptions {
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as GenerateOptions;
}
