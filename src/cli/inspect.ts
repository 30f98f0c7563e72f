/**
 * `smallmind inspect`: what a model file holds, read from its header only (no weights loaded, so
 * it is instant even for multi-GB files and works on files SmallMind cannot run).
 */
import { Command } from 'commander';
import { SmallMindError } from '../errors.js';
import type { GGUFFile, GGUFValue } from '../formats/gguf.js';
import { modelConfig, modelTokenizer, openModelFile, type ModelFile } from '../loader.js';
import { DEFAULT_MODEL_PATH } from '../model.js';
import { llamaConfigFromLlama2c } from '../models/llama.js';
import { GGML_TYPE_NAMES } from '../tensor/dtype.js';
import type { CliIO } from './io.js';
import { jsonOption, modelOption, tokenizerOption } from './options.js';
import { formatBytes } from './progress.js';

export interface InspectReport {
  path: string;
  format: 'gguf' | 'llama2c' | 'hf';
  /** GGUF version (llama2.c checkpoints have none). */
  version?: number;
  architecture: string;
  fileSize: number;
  parameterCount: number;
  config: Record<string, number | string | boolean>;
  tokenizer: { model: string; vocabSize: number; bos?: number; eos?: number; addBos?: boolean } | null;
  /** Why the tokenizer could not be described, when it could not. */
  tokenizerNote?: string;
  tensors: { name: string; dtype: string; shape: number[] }[];
  /** GGUF only: every key with its value, arrays summarised as "[32000 × string]". */
  metadata?: Record<string, number | string | boolean>;
}

export function inspectModel(file: string, tokenizerPath?: string, stringLimit = 200): InspectReport {
  const model = openModelFile(file);
  const tensors = model.tensors.map((t) => ({
    name: t.name,
    dtype: t.dtype ?? (GGML_TYPE_NAMES[t.ggmlType]?.toLowerCase() ?? `ggml type ${t.ggmlType}`),
    shape: t.shape,
  }));
  const parameterCount = model.tensors.reduce((sum, t) => sum + t.shape.reduce((a, b) => a * b, 1), 0);
  const base = { path: file, fileSize: model.fileSize, parameterCount, tensors };

  if (model.format === 'llama2c') {
    const tokenizer = describeVocab(model, tokenizerPath);
    return {
      ...base,
      format: 'llama2c',
      architecture: 'llama',
      config: { ...llamaConfigFromLlama2c(model.file.config, file), shared_classifier: model.file.config.sharedClassifier },
      ...tokenizer,
    };
  }
  if (model.format === 'hf') {
    // a Hugging Face folder: tensors listed under their GGUF names, config.json under metadata
    const { architecture, config } = model.file.arch;
    return { ...base, format: 'hf', architecture, config: { ...config }, ...describeVocab(model, tokenizerPath), metadata: hfMetadata(model.file.json) };
  }
  const gguf = model.file;
  const architecture = String(gguf.metadata.get('general.architecture') ?? 'unknown');
  return {
    ...base,
    format: 'gguf',
    version: gguf.version,
    architecture,
    config: ggufConfig(model, architecture),
    tokenizer: ggufTokenizer(gguf),
    metadata: Object.fromEntries([...gguf.metadata.keys()].map((key) => [key, summarise(gguf, key, stringLimit)])),
  };
}

/** Llama hyper-parameters as the loader reads them (with defaults filled in), else the raw `<arch>.*` keys. */
function ggufConfig(model: ModelFile & { format: 'gguf' }, architecture: string): Record<string, number | string | boolean> {
  if (architecture === 'llama') {
    try {
      return { ...modelConfig(model, modelTokenizer(model).vocabSize) };
    } catch (err) {
      if (!(err instanceof SmallMindError)) throw err;
      // Fall through: show what the file has even when it would not load.
    }
  }
  const prefix = `${architecture}.`;
  const config: Record<string, number | string | boolean> = {};
  for (const [key, value] of model.file.metadata) {
    if (key.startsWith(prefix) && isScalar(value)) config[key.slice(prefix.length)] = typeof value === 'bigint' ? String(value) : value;
  }
  return config;
}

function ggufTokenizer(gguf: GGUFFile): InspectReport['tokenizer'] {
  const model = gguf.metadata.get('tokenizer.ggml.model');
  if (typeof model !== 'string') return null;
  const tokens = gguf.metadata.get('tokenizer.ggml.tokens');
  const id = (key: string): number | undefined => {
    const v = gguf.metadata.get(key);
    return typeof v === 'number' ? v : undefined;
  };
  const addBos = gguf.metadata.get('tokenizer.ggml.add_bos_token');
  return {
    model,
    vocabSize: Array.isArray(tokens) ? tokens.length : 0,
    bos: id('tokenizer.ggml.bos_token_id'),
    eos: id('tokenizer.ggml.eos_token_id'),
    addBos: typeof addBos === 'boolean' ? addBos : undefined,
  };
}

function describeVocab(model: ModelFile, tokenizerPath?: string): Pick<InspectReport, 'tokenizer' | 'tokenizerNote'> {
  try {
    const tok = modelTokenizer(model, tokenizerPath);
    return { tokenizer: { model: tok.model, vocabSize: tok.vocabSize, bos: tok.bos, eos: tok.eos, addBos: tok.addBos } };
  } catch (err) {
    if (!(err instanceof SmallMindError)) throw err;
    return { tokenizer: null, tokenizerNote: err.message };
  }
}

/** config.json's scalar keys as they are, other values as JSON. */
function hfMetadata(json: Record<string, unknown>): Record<string, number | string | boolean> {
  const scalar = (v: unknown): v is number | string | boolean => ['number', 'string', 'boolean'].includes(typeof v);
  return Object.fromEntries(Object.entries(json).map(([key, v]) => [key, scalar(v) ? v : JSON.stringify(v)]));
}

function isScalar(value: GGUFValue): value is number | bigint | boolean | string {
  return typeof value !== 'object';
}

/** A metadata value short enough to print: arrays as "[count × type]", long strings cut. */
function summarise(gguf: GGUFFile, key: string, stringLimit: number): number | string | boolean {
  const value = gguf.metadata.get(key)!;
  const type = gguf.metadataTypes.get(key);
  if (!isScalar(value)) return `[${value.length} × ${type?.type === 'array' ? type.itemType : 'value'}]`;
  if (typeof value === 'bigint') return String(value);
  if (typeof value === 'string' && value.length > stringLimit) {
    return `${value.slice(0, stringLimit - 1)}… (${value.length} chars)`;
  }
  return value;
}

export function inspectText(r: InspectReport): string {
  const lines: string[] = [];
  const field = (name: string, value: string): number => lines.push(`${`${name}:`.padEnd(14)} ${value}`);
  field('file', r.path);
  field('format', r.format === 'gguf' ? `GGUF v${r.version}` : 'llama2.c checkpoint');
  field('architecture', r.architecture);
  field('file size', `${formatBytes(r.fileSize)} (${r.fileSize} bytes)`);
  field('parameters', `${r.parameterCount.toLocaleString('en-US')} (${(r.parameterCount / 1e6).toFixed(2)} M)`);
  const t = r.tokenizer;
  field('tokenizer', t ? `${t.model}, ${t.vocabSize} tokens, bos ${t.bos ?? '-'}, eos ${t.eos ?? '-'}${t.addBos === undefined ? '' : `, add bos ${t.addBos}`}` : `none (${r.tokenizerNote ?? 'no tokenizer metadata'})`);
  lines.push('hyper-parameters:');
  const keyWidth = Math.max(0, ...Object.keys(r.config).map((k) => k.length));
  for (const [key, value] of Object.entries(r.config)) lines.push(`  ${key.padEnd(keyWidth)}  ${shown(value)}`);
  if (r.metadata) {
    lines.push(`metadata (${Object.keys(r.metadata).length} keys):`);
    for (const [key, value] of Object.entries(r.metadata)) lines.push(`  ${key} = ${shown(value)}`);
  }
  lines.push(`tensors (${r.tensors.length}):`);
  const nameWidth = Math.max(0, ...r.tensors.map((x) => x.name.length));
  for (const x of r.tensors) lines.push(`  ${x.name.padEnd(nameWidth)}  ${x.dtype.padEnd(5)}  [${x.shape.join(', ')}]`);
  return `${lines.join('\n')}\n`;
}

/** Text display: f32 values to the 7 digits they hold (1e-5, not 0.000009999999747378752), newlines escaped. */
function shown(value: number | string | boolean): string {
  if (typeof value === 'number' && !Number.isInteger(value)) return String(Number(value.toPrecision(7)));
  return typeof value === 'string' ? value.replace(/\n/g, '\\n') : String(value);
}

export function inspectCommand(io: CliIO): Command {
  return new Command('inspect')
    .description('show a model file\'s format, hyper-parameters, tokenizer, metadata and tensors (reads the header only)')
    .addOption(modelOption())
    .addOption(tokenizerOption())
    .addOption(jsonOption())
    .action(async (flags: { model?: string; tokenizer?: string; json?: boolean }) => {
      if (flags.json) {
        io.stdout.write(`${JSON.stringify(inspectModel(flags.model ?? DEFAULT_MODEL_PATH, flags.tokenizer))}\n`);
      } else {
        io.stdout.write(inspectText(inspectModel(flags.model ?? DEFAULT_MODEL_PATH, flags.tokenizer, 80)));
      }
    });
}
