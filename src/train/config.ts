/**
 * The training configuration. Keys are nanoGPT's (train.py) where nanoGPT has the setting, with
 * its defaults; the rest are ours (architecture choice, optimizer and schedule names, data and
 * tokenizer, checkpoints, threads). One table (CONFIG_KEYS) gives every key its type, default,
 * range and meaning: it drives defaults, flag parsing, validation and the docs/TRAINING.md table.
 *
 * A configuration is built in layers, later ones winning: defaults → a preset → a JSON file →
 * flags. Flags are `--key value`, `--key=value` (nanoGPT's form), with `_` or `-` in the key
 * (`--n_layer 4`, `--n-layer 4`); a boolean flag alone means true.
 */
import { RequestError } from '../errors.js';
import { readJsonFile } from '../formats/tokenizer-json.js';
import { SAMPLING_MODES } from './data.js';
import { OPTIMIZERS, type OptimizerOptions } from './optim.js';
import { SCHEDULES, checkSchedule, type ScheduleOptions } from './schedule.js';

export const ARCHITECTURES = ['gpt2', 'llama'] as const;
export const BACKENDS = ['auto', 'native', 'wasm', 'reference'] as const;

export interface TrainConfig {
  // I/O and evaluation
  out_dir: string;
  eval_interval: number;
  log_interval: number;
  eval_iters: number;
  eval_only: boolean;
  always_save_checkpoint: boolean;
  checkpoint_interval: number;
  init_from: string;
  resume: string | null;
  // data
  data: string | null;
  tokenizer: string;
  cache_dir: string | null;
  val_fraction: number;
  sampling: (typeof SAMPLING_MODES)[number];
  gradient_accumulation_steps: number;
  batch_size: number;
  block_size: number;
  // model
  arch: (typeof ARCHITECTURES)[number];
  n_layer: number;
  n_head: number;
  n_kv_head: number | null;
  n_embd: number;
  dropout: number;
  bias: boolean;
  // optimizer
  optimizer: (typeof OPTIMIZERS)[number];
  learning_rate: number;
  max_iters: number;
  weight_decay: number;
  beta1: number;
  beta2: number;
  eps: number;
  momentum: number;
  nesterov: boolean;
  grad_clip: number;
  // learning-rate schedule
  decay_lr: boolean;
  schedule: (typeof SCHEDULES)[number];
  warmup_iters: number;
  lr_decay_iters: number;
  min_lr: number;
  pct_start: number;
  div_factor: number;
  final_div_factor: number;
  // system
  seed: number;
  threads: number | null;
  backend: (typeof BACKENDS)[number];
  gradient_checkpointing: boolean;
}

export type ConfigKey = keyof TrainConfig;

type KeyType =
  | { kind: 'int'; min: number; max?: number }
  | { kind: 'number'; min: number; max?: number; maxExclusive?: boolean; minExclusive?: boolean }
  | { kind: 'bool' }
  | { kind: 'string' }
  | { kind: 'choice'; choices: readonly string[] };

export interface KeySpec {
  type: KeyType;
  /** null: unset (the meaning says what that means). */
  default: number | boolean | string | null;
  /** Whether nanoGPT's train.py has this key (with this default). */
  nanogpt: boolean;
  meaning: string;
}

const int = (min: number, max?: number): KeyType => ({ kind: 'int', min, max });
const num = (min: number, max?: number, opts: { minExclusive?: boolean; maxExclusive?: boolean } = {}): KeyType => ({ kind: 'number', min, max, ...opts });
const bool: KeyType = { kind: 'bool' };
const str: KeyType = { kind: 'string' };
const choice = (choices: readonly string[]): KeyType => ({ kind: 'choice', choices });

/** Every key: type, default, whether nanoGPT has it, meaning. Order is the documentation's. */
export const CONFIG_KEYS: { readonly [K in ConfigKey]: KeySpec } = {
  out_dir: { type: str, default: 'out', nanogpt: true, meaning: 'folder for checkpoints, metrics.jsonl, loss.svg and the token cache (flag alias: --out)' },
  eval_interval: { type: int(1), default: 2000, nanogpt: true, meaning: 'steps between evaluations of train and val loss' },
  log_interval: { type: int(1), default: 1, nanogpt: true, meaning: 'steps between metrics lines' },
  eval_iters: { type: int(1), default: 200, nanogpt: true, meaning: 'batches averaged per split in an evaluation' },
  eval_only: { type: bool, default: false, nanogpt: true, meaning: 'evaluate once and stop' },
  always_save_checkpoint: { type: bool, default: true, nanogpt: true, meaning: 'save at every evaluation, not only when val loss improves' },
  checkpoint_interval: { type: int(0), default: 0, nanogpt: false, meaning: 'also save every N steps (0: only at evaluations)' },
  init_from: { type: str, default: 'scratch', nanogpt: true, meaning: "'scratch', 'resume' (continue the run in out_dir), or a model file to fine-tune" },
  resume: { type: str, default: null, nanogpt: false, meaning: 'continue the run saved in this folder (an out_dir or one checkpoint folder), exactly' },
  data: { type: str, default: null, nanogpt: false, meaning: 'a text file, a .jsonl file ({"text": ...} per line) or a folder of .txt/.jsonl files (nanoGPT: dataset)' },
  tokenizer: { type: str, default: 'char', nanogpt: false, meaning: "'char' (the corpus's characters, as shakespeare_char) or a tokenizer file/folder loadTokenizer reads" },
  cache_dir: { type: str, default: null, nanogpt: false, meaning: 'where the tokenized data is cached (unset: out_dir/cache)' },
  val_fraction: { type: num(0, 1, { maxExclusive: true }), default: 0.1, nanogpt: false, meaning: 'the last fraction of the tokens held out for validation (nanoGPT: 0.1)' },
  sampling: { type: choice(SAMPLING_MODES), default: 'random', nanogpt: false, meaning: "'random' windows per batch (nanoGPT's get_batch) or 'shuffle' (each window once per epoch)" },
  gradient_accumulation_steps: { type: int(1), default: 40, nanogpt: true, meaning: 'micro-batches whose gradients add up to one step (nanoGPT: 5 * 8)' },
  batch_size: { type: int(1), default: 12, nanogpt: true, meaning: 'sequences per micro-batch' },
  block_size: { type: int(1), default: 1024, nanogpt: true, meaning: 'tokens per sequence (the context length)' },
  arch: { type: choice(ARCHITECTURES), default: 'gpt2', nanogpt: false, meaning: "'gpt2' (nanoGPT's model: learned positions, LayerNorm, GELU) or 'llama' (RoPE, RMSNorm, SwiGLU, GQA)" },
  n_layer: { type: int(1), default: 12, nanogpt: true, meaning: 'transformer blocks' },
  n_head: { type: int(1), default: 12, nanogpt: true, meaning: 'attention heads; must divide n_embd' },
  n_kv_head: { type: int(1), default: null, nanogpt: false, meaning: 'key/value heads (llama; must divide n_head; unset: n_head)' },
  n_embd: { type: int(1), default: 768, nanogpt: true, meaning: 'model width' },
  dropout: { type: num(0, 1, { maxExclusive: true }), default: 0, nanogpt: true, meaning: 'dropout probability' },
  bias: { type: bool, default: false, nanogpt: true, meaning: 'biases in linear layers and LayerNorms (gpt2)' },
  optimizer: { type: choice(OPTIMIZERS), default: 'adamw', nanogpt: false, meaning: "'adamw', 'sgd' (with momentum), 'lion' or 'adafactor'" },
  learning_rate: { type: num(0), default: 6e-4, nanogpt: true, meaning: 'peak learning rate' },
  max_iters: { type: int(0), default: 600000, nanogpt: true, meaning: 'optimizer steps in the run' },
  weight_decay: { type: num(0), default: 0.1, nanogpt: true, meaning: 'weight decay (decoupled; not on norms, biases, embeddings)' },
  beta1: { type: num(0, 1, { maxExclusive: true }), default: 0.9, nanogpt: true, meaning: 'AdamW/Lion first-moment decay (Adafactor keeps no first moment)' },
  beta2: { type: num(0, 1, { maxExclusive: true }), default: 0.95, nanogpt: true, meaning: 'AdamW/Lion second-moment decay' },
  eps: { type: num(0, undefined, { minExclusive: true }), default: 1e-8, nanogpt: false, meaning: 'AdamW epsilon' },
  momentum: { type: num(0, 1, { maxExclusive: true }), default: 0.9, nanogpt: false, meaning: 'SGD momentum (0: plain SGD)' },
  nesterov: { type: bool, default: false, nanogpt: false, meaning: 'SGD Nesterov momentum' },
  grad_clip: { type: num(0), default: 1.0, nanogpt: true, meaning: 'clip gradients to this global L2 norm (0: off)' },
  decay_lr: { type: bool, default: true, nanogpt: true, meaning: 'follow `schedule`; false: constant learning_rate, no warmup' },
  schedule: { type: choice(SCHEDULES), default: 'cosine', nanogpt: false, meaning: "'cosine' (nanoGPT's), 'linear', 'constant' (each with warmup) or 'onecycle' (PyTorch's OneCycleLR)" },
  warmup_iters: { type: int(0), default: 2000, nanogpt: true, meaning: 'steps of linear warmup' },
  lr_decay_iters: { type: int(0), default: 600000, nanogpt: true, meaning: 'step where the decay reaches min_lr (onecycle: its length); usually max_iters' },
  min_lr: { type: num(0), default: 6e-5, nanogpt: true, meaning: 'learning rate at the end of the decay (usually learning_rate / 10)' },
  pct_start: { type: num(0, 1, { minExclusive: true, maxExclusive: true }), default: 0.3, nanogpt: false, meaning: 'onecycle: fraction of the steps spent rising' },
  div_factor: { type: num(0, undefined, { minExclusive: true }), default: 25, nanogpt: false, meaning: 'onecycle: starting rate = learning_rate / div_factor' },
  final_div_factor: { type: num(0, undefined, { minExclusive: true }), default: 1e4, nanogpt: false, meaning: 'onecycle: final rate = starting rate / final_div_factor' },
  seed: { type: int(0, 2 ** 32 - 1), default: 1337, nanogpt: false, meaning: "seed of initialisation, dropout and batch sampling (nanoGPT's torch.manual_seed(1337))" },
  threads: { type: int(1, 256), default: null, nanogpt: false, meaning: 'compute threads (unset: all cores)' },
  backend: { type: choice(BACKENDS), default: 'auto', nanogpt: false, meaning: "compute backend, as loadModel's (nanoGPT's `backend` is the DDP one)" },
  gradient_checkpointing: { type: bool, default: false, nanogpt: false, meaning: 'recompute activations in the backward pass instead of keeping them (less memory, more compute)' },
};

/** Other names accepted for a key (in files and flags). */
const ALIASES: Record<string, ConfigKey> = { out: 'out_dir' };

export const DEFAULT_CONFIG: TrainConfig = Object.fromEntries(Object.entries(CONFIG_KEYS).map(([k, spec]) => [k, spec.default])) as unknown as TrainConfig;

/**
 * Named starting points. shakespeare-char is nanoGPT's "baby GPT" as its README runs it on a CPU:
 * config/train_shakespeare_char.py with --eval_iters=20 --log_interval=1 --block_size=64
 * --batch_size=12 --n_layer=4 --n_head=4 --n_embd=128 --max_iters=2000 --lr_decay_iters=2000
 * --dropout=0.0 (README: val loss ~1.88). Give it --data (tinyshakespeare's input.txt).
 */
export const PRESETS: Record<string, Partial<TrainConfig>> = {
  'shakespeare-char': {
    out_dir: 'out-shakespeare-char',
    eval_interval: 250,
    eval_iters: 20,
    log_interval: 1,
    always_save_checkpoint: false,
    tokenizer: 'char',
    gradient_accumulation_steps: 1,
    batch_size: 12,
    block_size: 64,
    n_layer: 4,
    n_head: 4,
    n_embd: 128,
    dropout: 0,
    learning_rate: 1e-3,
    max_iters: 2000,
    lr_decay_iters: 2000,
    min_lr: 1e-4,
    beta2: 0.99,
    warmup_iters: 100,
  },
};

function canonicalKey(name: string, where: string): ConfigKey {
  const key = name.replaceAll('-', '_');
  if (Object.hasOwn(ALIASES, key)) return ALIASES[key];
  if (Object.hasOwn(CONFIG_KEYS, key)) return key as ConfigKey;
  const near = Object.keys(CONFIG_KEYS).filter((k) => k.includes(key) || key.includes(k) || editDistance(k, key) <= 2);
  const hint = near.length > 0 ? ` (did you mean ${near.join(', ')}?)` : '';
  throw new RequestError('unknown_config_key', name, `unknown training configuration key${where}${hint}`);
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row.push(Math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1)));
    prev = row;
  }
  return prev[b.length];
}

/** A value from JSON checked against the key's type and range; `where` says where it came from. */
function checkValue(key: ConfigKey, value: unknown, where: string): TrainConfig[ConfigKey] {
  const spec = CONFIG_KEYS[key];
  const fail = (why: string): never => {
    throw new RequestError('invalid_config', key, `${why}${where}`);
  };
  if (value === null) {
    if (spec.default !== null) fail('must not be null');
    return null;
  }
  const t = spec.type;
  switch (t.kind) {
    case 'bool':
      if (typeof value !== 'boolean') fail(`must be true or false, got ${JSON.stringify(value)}`);
      return value as boolean;
    case 'string':
      if (typeof value !== 'string' || value === '') fail(`must be a non-empty string, got ${JSON.stringify(value)}`);
      return value as string;
    case 'choice':
      if (typeof value !== 'string' || !t.choices.includes(value)) fail(`must be one of ${t.choices.join(', ')}, got ${JSON.stringify(value)}`);
      return value as string;
    case 'int':
    case 'number': {
      if (typeof value !== 'number' || !Number.isFinite(value)) fail(`must be a number, got ${JSON.stringify(value)}`);
      const n = value as number;
      if (t.kind === 'int' && !Number.isInteger(n)) fail(`must be an integer, got ${n}`);
      const minExclusive = t.kind === 'number' && t.minExclusive;
      const maxExclusive = t.kind === 'number' && t.maxExclusive;
      const low = minExclusive ? n <= t.min : n < t.min;
      const high = t.max !== undefined && (maxExclusive ? n >= t.max : n > t.max);
      if (low || high) fail(`must be in ${minExclusive ? '(' : '['}${t.min}, ${t.max ?? '∞'}${maxExclusive || t.max === undefined ? ')' : ']'}, got ${n}`);
      return n;
    }
  }
}

/** Check a partial configuration from JSON (a file's contents or a preset): known keys, right types. */
export function parseConfigObject(json: unknown, where = ''): Partial<TrainConfig> {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new RequestError('invalid_config', 'config', `must be a JSON object${where}`);
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(json)) {
    const key = canonicalKey(name, where);
    out[key] = checkValue(key, value, where);
  }
  return out as Partial<TrainConfig>;
}

/** The configuration keys in a JSON file. */
export function readConfigFile(file: string): Partial<TrainConfig> {
  return parseConfigObject(readJsonFile(file), ` (in ${file})`);
}

/** A flag's text as the key's type: numbers strictly decimal, booleans true/false (any case), 1/0, or nothing. */
function parseFlagValue(key: ConfigKey, text: string | undefined, flag: string): unknown {
  const kind = CONFIG_KEYS[key].type.kind;
  const where = ` (flag ${flag})`;
  if (kind === 'bool') {
    if (text === undefined) return true;
    const lower = text.toLowerCase();
    if (lower === 'true' || lower === '1') return true;
    if (lower === 'false' || lower === '0') return false;
    throw new RequestError('invalid_config', key, `must be true or false, got ${JSON.stringify(text)}${where}`);
  }
  if (text === undefined) throw new RequestError('invalid_config', key, `needs a value${where}`);
  if (kind === 'int' || kind === 'number') {
    if (text === 'null' && CONFIG_KEYS[key].default === null) return null;
    if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(text.trim())) throw new RequestError('invalid_config', key, `must be a number, got ${JSON.stringify(text)}${where}`);
    return Number(text);
  }
  return text;
}

export interface TrainArgs {
  /** --config FILE */
  configFile?: string;
  /** --preset NAME */
  preset?: string;
  /** Every configuration flag, checked, under its canonical key. */
  overrides: Partial<TrainConfig>;
}

/**
 * Parse `train`'s arguments: --config FILE, --preset NAME and one flag per configuration key.
 * Anything else is an error naming it.
 */
export function parseTrainArgs(argv: readonly string[]): TrainArgs {
  const out: TrainArgs = { overrides: {} };
  const overrides: Record<string, unknown> = out.overrides;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--')) throw new RequestError('invalid_argument', arg, 'expected a --key flag');
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq >= 0 ? eq : undefined);
    let value: string | undefined = eq >= 0 ? arg.slice(eq + 1) : undefined;
    const takeValue = (): string | undefined => {
      if (value === undefined && i + 1 < argv.length && !argv[i + 1].startsWith('--')) value = argv[++i];
      return value;
    };
    if (name === 'config' || name === 'preset') {
      const v = takeValue();
      if (v === undefined) throw new RequestError('invalid_argument', arg, 'needs a value');
      if (name === 'config') out.configFile = v;
      else out.preset = v;
      continue;
    }
    const key = canonicalKey(name, ` (flag ${arg})`);
    // A boolean flag takes the next word only when it is a boolean, so `--bias --n_layer 2` works.
    const isBool = CONFIG_KEYS[key].type.kind === 'bool';
    if (isBool && value === undefined && i + 1 < argv.length && /^(true|false|1|0)$/i.test(argv[i + 1])) value = argv[++i];
    const text = isBool ? value : takeValue();
    overrides[key] = checkValue(key, parseFlagValue(key, text, arg), ` (flag ${arg})`);
  }
  return out;
}

export interface ValidateOptions {
  /** The context length of a model being fine-tuned: block_size may not exceed it. */
  modelContext?: number;
}

/** Errors for combinations no run can use, each naming the key to change. */
export function validateConfig(config: TrainConfig, opts: ValidateOptions = {}): void {
  const fail = (key: ConfigKey, why: string): never => {
    throw new RequestError('invalid_config', key, why);
  };
  for (const key of Object.keys(CONFIG_KEYS) as ConfigKey[]) checkValue(key, config[key], '');
  const { n_embd, n_head, arch } = config;
  if (n_embd % n_head !== 0) fail('n_head', `n_embd ${n_embd} is not a multiple of n_head ${n_head} (each head gets n_embd / n_head dims)`);
  const kvHeads = config.n_kv_head ?? n_head;
  if (n_head % kvHeads !== 0) fail('n_kv_head', `n_head ${n_head} is not a multiple of n_kv_head ${kvHeads} (each key/value head serves n_head / n_kv_head query heads)`);
  if (arch === 'gpt2' && kvHeads !== n_head) fail('n_kv_head', `the gpt2 architecture has one key/value head per head: n_kv_head must be unset or ${n_head}, got ${kvHeads}`);
  if (arch === 'llama' && (n_embd / n_head) % 2 !== 0) fail('n_head', `llama's rotary embeddings need an even head size, n_embd / n_head = ${n_embd / n_head}`);
  if (opts.modelContext !== undefined && config.block_size > opts.modelContext) {
    fail('block_size', `${config.block_size} is more than the model's context length ${opts.modelContext}`);
  }
  if (config.resume !== null && config.init_from !== 'scratch' && config.init_from !== 'resume') {
    fail('resume', `cannot resume a run and also start from init_from ${JSON.stringify(config.init_from)}`);
  }
  if (config.decay_lr) checkSchedule(scheduleOptions(config));
}

export interface ResolveOptions extends TrainArgs, ValidateOptions {}

/** defaults → preset → config file → flags, then validated. */
export function resolveConfig(opts: ResolveOptions): TrainConfig {
  let preset: Partial<TrainConfig> = {};
  if (opts.preset !== undefined) {
    if (!Object.hasOwn(PRESETS, opts.preset)) throw new RequestError('unknown_preset', 'preset', `unknown preset ${JSON.stringify(opts.preset)} (presets: ${Object.keys(PRESETS).join(', ')})`);
    preset = PRESETS[opts.preset];
  }
  const file = opts.configFile !== undefined ? readConfigFile(opts.configFile) : {};
  const config: TrainConfig = { ...DEFAULT_CONFIG, ...preset, ...file, ...opts.overrides };
  validateConfig(config, opts);
  return config;
}

/** The schedule the configuration describes (decay_lr false: constant learning_rate without warmup, as nanoGPT). */
export function scheduleOptions(config: TrainConfig): ScheduleOptions {
  return {
    schedule: config.decay_lr ? config.schedule : 'constant',
    learningRate: config.learning_rate,
    minLr: config.min_lr,
    warmupIters: config.decay_lr ? config.warmup_iters : 0,
    lrDecayIters: config.lr_decay_iters,
    pctStart: config.pct_start,
    divFactor: config.div_factor,
    finalDivFactor: config.final_div_factor,
  };
}

/** The optimizer options the configuration describes. */
export function optimizerOptions(config: TrainConfig): OptimizerOptions {
  const adafactor = config.optimizer === 'adafactor';
  return {
    // Adafactor runs without a first moment (its memory saving); nanoGPT's beta1 is for AdamW.
    beta1: adafactor ? 0 : config.beta1,
    beta2: config.beta2,
    eps: config.eps,
    weightDecay: config.weight_decay,
    momentum: config.momentum,
    nesterov: config.nesterov,
  };
}
