/**
 * Checkpoints: everything a resumed run needs to continue exactly as if it had never stopped.
 *
 *   out_dir/
 *     checkpoint-<step>/          one checkpoint; complete once it has this name
 *       model.safetensors         the weights (written by the caller's writeModel hook)
 *       optimizer.safetensors     optimizer moments + step count (saveOptimizerState)
 *       trainer_state.json        step, tokens seen, best val loss, sampler and RNG states,
 *                                 the data cache it read, the configuration
 *     latest.json                 {"checkpoint": "checkpoint-<step>", "step": ...}: where --resume continues
 *     best.json                   the same for the checkpoint with the lowest val loss
 *
 * A checkpoint of step S holds the state at the start of step S, before anything of that step ran
 * (its evaluation included): the weights and optimizer after S steps, and the samplers, generators,
 * tokens seen and best val loss as they were then. A resumed run truncates metrics.jsonl at S
 * (truncateMetrics) and replays step S whole, evaluation first, as nanoGPT's resumed loop does;
 * the evaluation draws the same batches again and logs the same numbers.
 *
 * A checkpoint is written into a temporary folder and renamed into place, then latest.json (and
 * best.json) are replaced atomically, then checkpoints that neither names are deleted. A crash at
 * any point leaves latest.json naming a complete checkpoint, so a run stopped for a NaN loss or
 * killed mid-save keeps its last good one.
 */
import fs from 'node:fs';
import path from 'node:path';
import { FormatError, ModelError, RequestError } from '../errors.js';
import { describeIoError, writeFileAtomic } from '../formats/file.js';
import { readJsonFile } from '../formats/tokenizer-json.js';
import { DEFAULT_CONFIG, parseConfigObject, type TrainConfig } from './config.js';
import type { SamplerState } from './data.js';
import { saveOptimizerState, type Optimizer } from './optim.js';

export const TRAINER_STATE_FILE = 'trainer_state.json';
export const OPTIMIZER_FILE = 'optimizer.safetensors';
export const MODEL_FILE = 'model.safetensors';
export const LATEST_FILE = 'latest.json';
export const BEST_FILE = 'best.json';

const STATE_FORMAT = 'smallmind-trainer-state';
const STATE_VERSION = 1;

type RngState = [number, number, number, number];

/** trainer_state.json. */
export interface TrainerState {
  format: typeof STATE_FORMAT;
  version: typeof STATE_VERSION;
  /** Optimizer steps taken: the resumed run's next step has this number. */
  step: number;
  /** Training tokens consumed. */
  tokens: number;
  /** Lowest val loss seen before this step; null before the first evaluation. */
  best_val_loss: number | null;
  /** Batch samplers by role (e.g. train, eval_train, val). */
  samplers: Record<string, SamplerState>;
  /** Other generators by role (e.g. dropout). */
  rng: Record<string, RngState>;
  /** The token cache this run reads (file name and token count), to refuse resuming on different data. */
  data: { cache: string; tokens: number };
  /** Seconds of training before this checkpoint (summed over resumed runs). */
  elapsed_s: number;
  config: TrainConfig;
}

export interface SaveCheckpointOptions {
  state: Omit<TrainerState, 'format' | 'version'>;
  optimizer: Optimizer;
  /** Writes the weights into the (temporary) checkpoint folder, as MODEL_FILE. */
  writeModel?: (dir: string) => void;
  /** This checkpoint has the best val loss so far (`valLoss`): best.json names it. */
  isBest: boolean;
  /** The val loss of the evaluation that made it the best, recorded in best.json. */
  valLoss?: number;
}

/** Create the output folder if needed and check that files can be written there: fails early, naming it. */
export function prepareOutDir(dir: string): void {
  const fail = (why: string): never => {
    throw new RequestError('out_dir_not_writable', 'out_dir', `${dir}: ${why}`);
  };
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    fail(code === 'EEXIST' || code === 'ENOTDIR' ? 'is not a folder' : `cannot create it: ${describeIoError(err)}`);
  }
  if (!fs.statSync(dir).isDirectory()) fail('is not a folder');
  const probe = path.join(dir, `.write-test-${process.pid}`);
  try {
    fs.writeFileSync(probe, '');
    fs.rmSync(probe);
  } catch (err) {
    fail(`cannot write files there: ${describeIoError(err)}`);
  }
}

function checkpointName(step: number): string {
  return `checkpoint-${step}`;
}

interface Pointer {
  checkpoint: string;
  step: number;
  val_loss?: number | null;
}

function readPointer(file: string): Pointer | undefined {
  if (!fs.existsSync(file)) return undefined;
  const json = readJsonFile(file) as Partial<Pointer> | null;
  if (typeof json !== 'object' || json === null || typeof json.checkpoint !== 'string' || !/^checkpoint-\d+$/.test(json.checkpoint) || !Number.isInteger(json.step)) {
    throw new FormatError('bad_checkpoint', file, 'expected {"checkpoint": "checkpoint-<step>", "step": <step>}');
  }
  return json as Pointer;
}

/**
 * Save a checkpoint of step `state.step` into outDir (see the file header for the order of
 * writes); returns its folder.
 */
export function saveCheckpoint(outDir: string, opts: SaveCheckpointOptions): string {
  const name = checkpointName(opts.state.step);
  const final = path.join(outDir, name);
  const tmp = path.join(outDir, `.${name}.tmp-${process.pid}`);
  fs.rmSync(tmp, { recursive: true, force: true });
  try {
    fs.mkdirSync(tmp);
    opts.writeModel?.(tmp);
    saveOptimizerState(path.join(tmp, OPTIMIZER_FILE), opts.optimizer);
    const state: TrainerState = { format: STATE_FORMAT, version: STATE_VERSION, ...opts.state };
    writeFileAtomic(path.join(tmp, TRAINER_STATE_FILE), `${JSON.stringify(state, null, 2)}\n`);
    // The same step saved again (a resumed run's first evaluation): swap the folders.
    const old = `${final}.old-${process.pid}`;
    if (fs.existsSync(final)) fs.renameSync(final, old);
    fs.renameSync(tmp, final);
    fs.rmSync(old, { recursive: true, force: true });
  } catch (err) {
    fs.rmSync(tmp, { recursive: true, force: true });
    if (err instanceof FormatError || err instanceof RequestError) throw err;
    throw new FormatError('cannot_write', final, describeIoError(err));
  }
  const pointer: Pointer = { checkpoint: name, step: opts.state.step };
  writeFileAtomic(path.join(outDir, LATEST_FILE), `${JSON.stringify(pointer)}\n`);
  if (opts.isBest) writeFileAtomic(path.join(outDir, BEST_FILE), `${JSON.stringify({ ...pointer, val_loss: opts.valLoss ?? null })}\n`);
  pruneCheckpoints(outDir);
  return final;
}

/** Delete checkpoint folders that neither latest.json nor best.json names, and leftovers of interrupted saves. */
export function pruneCheckpoints(outDir: string): void {
  const keep = new Set([readPointer(path.join(outDir, LATEST_FILE)), readPointer(path.join(outDir, BEST_FILE))].map((p) => p?.checkpoint));
  for (const entry of fs.readdirSync(outDir)) {
    const stale = /^checkpoint-\d+$/.test(entry) ? !keep.has(entry) : /^\.checkpoint-\d+\.tmp-\d+$|^checkpoint-\d+\.old-\d+$/.test(entry);
    if (stale) fs.rmSync(path.join(outDir, entry), { recursive: true, force: true });
  }
}

export interface LoadedCheckpoint {
  /** The checkpoint folder (model and optimizer files are in it). */
  dir: string;
  state: TrainerState;
}

/**
 * The checkpoint a --resume path names: an output folder (its latest.json) or one checkpoint
 * folder (its trainer_state.json). Errors name the path and what is missing.
 */
export function loadCheckpoint(resumePath: string): LoadedCheckpoint {
  if (!fs.existsSync(resumePath)) throw new FormatError('cannot_open', resumePath, 'no such folder');
  let dir = resumePath;
  if (!fs.existsSync(path.join(resumePath, TRAINER_STATE_FILE))) {
    const pointer = readPointer(path.join(resumePath, LATEST_FILE));
    if (!pointer) throw new FormatError('no_checkpoint', resumePath, `neither a checkpoint folder (${TRAINER_STATE_FILE}) nor an output folder with a ${LATEST_FILE}`);
    dir = path.join(resumePath, pointer.checkpoint);
    if (!fs.existsSync(path.join(dir, TRAINER_STATE_FILE))) throw new FormatError('no_checkpoint', dir, `${LATEST_FILE} names this checkpoint, but it has no ${TRAINER_STATE_FILE}`);
  }
  const stateFile = path.join(dir, TRAINER_STATE_FILE);
  return { dir, state: parseTrainerState(readJsonFile(stateFile), stateFile) };
}

function isRngState(v: unknown): v is RngState {
  return Array.isArray(v) && v.length === 4 && v.every((w) => Number.isInteger(w) && w >= -(2 ** 31) && w < 2 ** 32) && v.some((w) => w !== 0);
}

function isSamplerState(v: unknown): v is SamplerState {
  if (typeof v !== 'object' || v === null) return false;
  const s = v as Record<string, unknown>;
  if (s.mode === 'random') return isRngState(s.rng);
  return s.mode === 'shuffle' && [s.seed, s.epoch, s.index].every((n) => Number.isInteger(n) && (n as number) >= 0);
}

/** Check a parsed trainer_state.json field by field; `file` names it in errors. */
export function parseTrainerState(json: unknown, file: string): TrainerState {
  const bad = (what: string): never => {
    throw new FormatError('bad_checkpoint', file, what);
  };
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return bad('not a JSON object');
  const s = json as Record<string, unknown>;
  if (s.format !== STATE_FORMAT) bad(`format ${JSON.stringify(s.format)} is not ${STATE_FORMAT}`);
  if (s.version !== STATE_VERSION) bad(`version ${JSON.stringify(s.version)} (supported: ${STATE_VERSION})`);
  for (const key of ['step', 'tokens'] as const) if (!Number.isInteger(s[key]) || (s[key] as number) < 0) bad(`${key} is not a count`);
  if (s.best_val_loss !== null && typeof s.best_val_loss !== 'number') bad('best_val_loss is neither a number nor null');
  if (typeof s.elapsed_s !== 'number' || !(s.elapsed_s >= 0)) bad('elapsed_s is not a duration');
  const record = (key: string, check: (v: unknown) => boolean): void => {
    const value = s[key];
    if (typeof value !== 'object' || value === null || Array.isArray(value)) bad(`${key} is not an object`);
    for (const [name, entry] of Object.entries(value as object)) if (!check(entry)) bad(`${key}.${name} is not a valid state`);
  };
  record('samplers', isSamplerState);
  record('rng', isRngState);
  const data = s.data as Record<string, unknown> | undefined;
  if (typeof data !== 'object' || data === null || typeof data.cache !== 'string' || !Number.isInteger(data.tokens)) bad('data is not {"cache": name, "tokens": count}');
  let config: Partial<TrainConfig>;
  try {
    config = parseConfigObject(s.config, ` (in ${file})`);
  } catch (err) {
    if (err instanceof RequestError) return bad(`config: ${err.message}`);
    throw err;
  }
  return { ...(s as unknown as TrainerState), config: { ...DEFAULT_CONFIG, ...config } };
}

/**
 * The error that stops a run whose loss is NaN or infinite: names the step and the checkpoint
 * that is still good (latest.json was not touched).
 */
export function lossNotFiniteError(step: number, loss: number, outDir: string): ModelError {
  const latest = readPointer(path.join(outDir, LATEST_FILE));
  const keep = latest
    ? `the last good checkpoint is ${path.join(outDir, latest.checkpoint)} (step ${latest.step}); resume from it with --resume ${outDir}, perhaps with a lower learning_rate`
    : 'no checkpoint was saved yet';
  return new ModelError('loss_not_finite', `step ${step}: the loss is ${loss}; training stopped, ${keep}`);
}
