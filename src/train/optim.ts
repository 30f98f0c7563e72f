/**
 * Optimizers over flat f32 parameters and their gradients, with PyTorch's update rules so that
 * numbers can be checked against torch.optim (and Hugging Face's Adafactor):
 *
 *   adamw      AdamW: bias-corrected moments, eps added outside the square root, decoupled
 *              weight decay θ ← θ·(1 − lr·wd) before the update.
 *   sgd        SGD with momentum (dampening 0): d = g + wd·θ (L2, coupled, as torch.optim.SGD),
 *              b ← μ·b + d, θ ← θ − lr·(nesterov ? d + μ·b : b).
 *   lion       Lion (Chen et al. 2023): θ ← θ·(1 − lr·wd), θ ← θ − lr·sign(β1·m + (1 − β1)·g),
 *              then m ← β2·m + (1 − β2)·g.
 *   adafactor  Adafactor (Shazeer & Stern 2018) as transformers implements it, with an external
 *              learning rate (relative_step off): second moments factored into row and column
 *              means for parameters of 2 or more dims (the last two), β2_t = 1 − t^decay_rate,
 *              update clipped to RMS ≤ clip_threshold, optional first moment (beta1), decay
 *              θ ← θ − wd·lr·θ. scale_parameter is off by default (lr is the step size itself, as
 *              with the other optimizers and our schedules); on, lr is scaled by max(eps2, RMS(θ)).
 *
 * Arithmetic is in float64 per element and moments are stored as f32, as PyTorch's f32 tensors
 * hold them. Parameters whose `decay` is false get no weight decay; `defaultDecay` is the usual
 * rule (see there).
 */
import { RequestError } from '../errors.js';
import { readTensorFile, writeTensorFile, type NamedTensor } from './tensor-file.js';

/** A trainable parameter: its values and gradient (the same length), as views the autograd layer exposes. */
export interface TrainParam {
  /** A unique name (the checkpoint's tensor name). */
  name: string;
  /** Dims, outermost first: a linear layer's weight is [out, in] (PyTorch and GGUF row order). */
  shape: readonly number[];
  data: Float32Array;
  grad: Float32Array;
  /** Whether weight decay applies. */
  decay: boolean;
}

/** Embedding tables by name, in our GGUF names, Hugging Face's and nanoGPT's. */
const EMBEDDING_NAME = /(^|\.)(token_embd|position_embd|wte|wpe|embed_tokens|embed_positions|tok_embeddings|word_embeddings|position_embeddings)(\.|$)/;

/**
 * The default rule for weight decay: none for parameters of fewer than 2 dims (norm gains,
 * biases) nor for embedding tables (by name); every other matrix decays. nanoGPT decays its
 * embedding too (it is tied to the output layer); Hugging Face's trainers and many recipes do not,
 * which is what the issue asks for.
 */
export function defaultDecay(name: string, shape: readonly number[]): boolean {
  return shape.length >= 2 && !EMBEDDING_NAME.test(name);
}

export const OPTIMIZERS = ['adamw', 'sgd', 'lion', 'adafactor'] as const;
export type OptimizerName = (typeof OPTIMIZERS)[number];

export interface OptimizerOptions {
  /** adamw/lion: first-moment decay (defaults 0.9); adafactor: first moment when > 0 (default 0: none). */
  beta1?: number;
  /** adamw: 0.999 (PyTorch), lion: 0.99 (the paper). */
  beta2?: number;
  /** adamw: 1e-8. */
  eps?: number;
  /** Decoupled for adamw, lion, adafactor; L2 for sgd (PyTorch's). Default 0. */
  weightDecay?: number;
  /** sgd: default 0.9 (PyTorch's default is 0; SGD without momentum: 0). */
  momentum?: number;
  /** sgd: Nesterov momentum (default false). */
  nesterov?: boolean;
  /** adafactor: eps1 added to g² (1e-30), eps2 the least parameter scale (1e-3). */
  eps1?: number;
  eps2?: number;
  /** adafactor: the update's RMS is clipped to this (1.0). */
  clipThreshold?: number;
  /** adafactor: β2_t = 1 − t^decayRate (−0.8). */
  decayRate?: number;
  /** adafactor: scale lr by max(eps2, RMS(θ)) (default false; transformers' default is true with relative steps). */
  scaleParameter?: boolean;
}

/** One state tensor of one parameter (e.g. AdamW's exp_avg of token_embd.weight). */
interface Slot {
  param: TrainParam;
  name: string;
  shape: readonly number[];
  data: Float32Array;
}

export abstract class Optimizer {
  abstract readonly name: OptimizerName;
  /** Steps taken (PyTorch's state['step']). */
  stepCount = 0;
  protected readonly slots = new Map<string, Slot>();

  constructor(readonly params: readonly TrainParam[]) {
    const names = new Set<string>();
    for (const p of params) {
      if (names.has(p.name)) throw new RequestError('duplicate_parameter', 'params', `parameter ${JSON.stringify(p.name)} given twice`);
      names.add(p.name);
      const count = p.shape.reduce((a, b) => a * b, 1);
      if (p.data.length !== count || p.grad.length !== count) {
        throw new RequestError('shape_mismatch', 'params', `${p.name}: shape [${p.shape}] holds ${count} values, data ${p.data.length}, grad ${p.grad.length}`);
      }
    }
  }

  /** The hyper-parameters, saved with the state so a restore can check them. */
  abstract options(): Record<string, number | boolean>;

  /** One update of every parameter from its gradient, at learning rate `lr`. */
  step(lr: number): void {
    if (!Number.isFinite(lr) || lr < 0) throw new RequestError('invalid_option', 'lr', `must be a finite number ≥ 0, got ${lr}`);
    this.stepCount++;
    for (const p of this.params) this.update(p, lr);
  }

  protected abstract update(p: TrainParam, lr: number): void;

  /** A zeroed state tensor `name` of parameter p, made on first use. */
  protected slot(p: TrainParam, name: string, shape: readonly number[] = p.shape): Float32Array {
    const key = `${p.name}.${name}`;
    let slot = this.slots.get(key);
    if (!slot) {
      slot = { param: p, name, shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) };
      this.slots.set(key, slot);
    }
    return slot.data;
  }

  /** Every state tensor, named "<parameter>.<slot>" (after at least one step; none before). */
  stateTensors(): NamedTensor[] {
    return [...this.slots].map(([name, s]) => ({ name, shape: s.shape, data: s.data }));
  }

  /**
   * Take over saved state: the step count and tensors as stateTensors() named them. Every tensor
   * must belong to a parameter of this optimizer, with the size this optimizer would give it.
   */
  loadState(stepCount: number, tensors: ReadonlyMap<string, NamedTensor>): void {
    // Make every slot a step would make, so that sizes can be checked and nothing is left out.
    const expected = this.expectedSlots();
    for (const [key, shape] of expected) {
      const saved = tensors.get(key);
      const size = shape.reduce((a, b) => a * b, 1);
      if (stepCount > 0 && !saved) throw new RequestError('invalid_state', 'optimizer', `the saved state has no ${key}`);
      if (saved && saved.data.length !== size) throw new RequestError('invalid_state', 'optimizer', `${key}: saved ${saved.data.length} values, this model needs ${size}`);
    }
    for (const key of tensors.keys()) {
      if (!expected.has(key)) throw new RequestError('invalid_state', 'optimizer', `the saved state has ${key}, which no parameter of this model has`);
    }
    this.slots.clear();
    for (const p of this.params) {
      for (const [name, shape] of this.slotShapes(p)) {
        const saved = tensors.get(`${p.name}.${name}`);
        if (saved) this.slot(p, name, shape).set(saved.data);
      }
    }
    this.stepCount = stepCount;
  }

  /** The state tensors a parameter gets, with their shapes. */
  protected abstract slotShapes(p: TrainParam): [name: string, shape: readonly number[]][];

  private expectedSlots(): Map<string, readonly number[]> {
    const out = new Map<string, readonly number[]>();
    for (const p of this.params) for (const [name, shape] of this.slotShapes(p)) out.set(`${p.name}.${name}`, shape);
    return out;
  }
}

export class AdamW extends Optimizer {
  readonly name = 'adamw';
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;

  constructor(params: readonly TrainParam[], opts: OptimizerOptions = {}) {
    super(params);
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.999;
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0;
  }

  options(): Record<string, number | boolean> {
    return { beta1: this.beta1, beta2: this.beta2, eps: this.eps, weightDecay: this.weightDecay };
  }

  protected slotShapes(p: TrainParam): [string, readonly number[]][] {
    return [['exp_avg', p.shape], ['exp_avg_sq', p.shape]];
  }

  protected update(p: TrainParam, lr: number): void {
    const { beta1, beta2, eps } = this;
    const m = this.slot(p, 'exp_avg');
    const v = this.slot(p, 'exp_avg_sq');
    const keep = 1 - lr * (p.decay ? this.weightDecay : 0);
    const stepSize = lr / (1 - beta1 ** this.stepCount);
    const bc2Sqrt = Math.sqrt(1 - beta2 ** this.stepCount);
    const { data, grad } = p;
    for (let i = 0; i < data.length; i++) {
      const g = grad[i];
      m[i] = beta1 * m[i] + (1 - beta1) * g;
      v[i] = beta2 * v[i] + (1 - beta2) * g * g;
      data[i] = data[i] * keep - (stepSize * m[i]) / (Math.sqrt(v[i]) / bc2Sqrt + eps);
    }
  }
}

export class SGD extends Optimizer {
  readonly name = 'sgd';
  readonly momentum: number;
  readonly nesterov: boolean;
  readonly weightDecay: number;

  constructor(params: readonly TrainParam[], opts: OptimizerOptions = {}) {
    super(params);
    this.momentum = opts.momentum ?? 0.9;
    this.nesterov = opts.nesterov ?? false;
    this.weightDecay = opts.weightDecay ?? 0;
    if (this.nesterov && this.momentum <= 0) throw new RequestError('invalid_option', 'nesterov', 'Nesterov momentum needs momentum > 0');
  }

  options(): Record<string, number | boolean> {
    return { momentum: this.momentum, nesterov: this.nesterov, weightDecay: this.weightDecay };
  }

  protected slotShapes(p: TrainParam): [string, readonly number[]][] {
    return this.momentum > 0 ? [['momentum_buffer', p.shape]] : [];
  }

  protected update(p: TrainParam, lr: number): void {
    const mu = this.momentum;
    const wd = p.decay ? this.weightDecay : 0;
    const { data, grad } = p;
    // With dampening 0, PyTorch's first step (buffer = d) equals μ·0 + d, so a zeroed buffer needs no special case.
    const buf = mu > 0 ? this.slot(p, 'momentum_buffer') : undefined;
    for (let i = 0; i < data.length; i++) {
      let d = grad[i] + wd * data[i];
      if (buf) {
        buf[i] = mu * buf[i] + d;
        d = this.nesterov ? d + mu * buf[i] : buf[i];
      }
      data[i] -= lr * d;
    }
  }
}

export class Lion extends Optimizer {
  readonly name = 'lion';
  readonly beta1: number;
  readonly beta2: number;
  readonly weightDecay: number;

  constructor(params: readonly TrainParam[], opts: OptimizerOptions = {}) {
    super(params);
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.99;
    this.weightDecay = opts.weightDecay ?? 0;
  }

  options(): Record<string, number | boolean> {
    return { beta1: this.beta1, beta2: this.beta2, weightDecay: this.weightDecay };
  }

  protected slotShapes(p: TrainParam): [string, readonly number[]][] {
    return [['exp_avg', p.shape]];
  }

  protected update(p: TrainParam, lr: number): void {
    const { beta1, beta2 } = this;
    const m = this.slot(p, 'exp_avg');
    const keep = 1 - lr * (p.decay ? this.weightDecay : 0);
    const { data, grad } = p;
    for (let i = 0; i < data.length; i++) {
      const g = grad[i];
      data[i] = data[i] * keep - lr * Math.sign(beta1 * m[i] + (1 - beta1) * g);
      m[i] = beta2 * m[i] + (1 - beta2) * g;
    }
  }
}

/** Root mean square of `values` (PyTorch's norm / sqrt(numel)). */
function rms(values: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i] * values[i];
  return Math.sqrt(sum / values.length);
}

export class Adafactor extends Optimizer {
  readonly name = 'adafactor';
  readonly beta1: number;
  readonly eps1: number;
  readonly eps2: number;
  readonly clipThreshold: number;
  readonly decayRate: number;
  readonly weightDecay: number;
  readonly scaleParameter: boolean;

  constructor(params: readonly TrainParam[], opts: OptimizerOptions = {}) {
    super(params);
    this.beta1 = opts.beta1 ?? 0;
    this.eps1 = opts.eps1 ?? 1e-30;
    this.eps2 = opts.eps2 ?? 1e-3;
    this.clipThreshold = opts.clipThreshold ?? 1;
    this.decayRate = opts.decayRate ?? -0.8;
    this.weightDecay = opts.weightDecay ?? 0;
    this.scaleParameter = opts.scaleParameter ?? false;
  }

  options(): Record<string, number | boolean> {
    const { beta1, eps1, eps2, clipThreshold, decayRate, weightDecay, scaleParameter } = this;
    return { beta1, eps1, eps2, clipThreshold, decayRate, weightDecay, scaleParameter };
  }

  /** Matrices of the last two dims, the dims before them a batch: [batches, rows, cols]; undefined when not factored. */
  private static factors(shape: readonly number[]): [number, number, number] | undefined {
    if (shape.length < 2) return undefined;
    const rows = shape[shape.length - 2];
    const cols = shape[shape.length - 1];
    return [shape.slice(0, -2).reduce((a, b) => a * b, 1), rows, cols];
  }

  protected slotShapes(p: TrainParam): [string, readonly number[]][] {
    const out: [string, readonly number[]][] = [];
    if (this.beta1 > 0) out.push(['exp_avg', p.shape]);
    if (Adafactor.factors(p.shape)) out.push(['exp_avg_sq_row', p.shape.slice(0, -1)], ['exp_avg_sq_col', [...p.shape.slice(0, -2), p.shape[p.shape.length - 1]]]);
    else out.push(['exp_avg_sq', p.shape]);
    return out;
  }

  protected update(p: TrainParam, lr: number): void {
    const { data, grad } = p;
    const stepLr = this.scaleParameter ? lr * Math.max(this.eps2, rms(data)) : lr;
    const beta2t = 1 - this.stepCount ** this.decayRate;
    const update = new Float64Array(data.length);
    const factors = Adafactor.factors(p.shape);
    if (factors) this.factoredUpdate(p, factors, beta2t, update);
    else {
      const v = this.slot(p, 'exp_avg_sq');
      for (let i = 0; i < data.length; i++) {
        v[i] = beta2t * v[i] + (1 - beta2t) * (grad[i] * grad[i] + this.eps1);
        update[i] = grad[i] / Math.sqrt(v[i]);
      }
    }
    const scale = stepLr / Math.max(1, rms(update) / this.clipThreshold);
    const m = this.beta1 > 0 ? this.slot(p, 'exp_avg') : undefined;
    const keep = 1 - (p.decay ? this.weightDecay : 0) * stepLr;
    for (let i = 0; i < data.length; i++) {
      let u = update[i] * scale;
      if (m) {
        m[i] = this.beta1 * m[i] + (1 - this.beta1) * u;
        u = m[i];
      }
      data[i] = data[i] * keep - u;
    }
  }

  /** Row and column means of g² + eps1 update the factored moments; the update is g / sqrt(their outer product / row mean). */
  private factoredUpdate(p: TrainParam, [batches, rows, cols]: [number, number, number], beta2t: number, update: Float64Array): void {
    const row = this.slot(p, 'exp_avg_sq_row', p.shape.slice(0, -1));
    const col = this.slot(p, 'exp_avg_sq_col', [...p.shape.slice(0, -2), cols]);
    const g = p.grad;
    for (let b = 0; b < batches; b++) {
      const base = b * rows * cols;
      const colSums = new Float64Array(cols);
      let rowMeanSum = 0;
      for (let r = 0; r < rows; r++) {
        let sum = 0;
        for (let c = 0; c < cols; c++) {
          const sq = g[base + r * cols + c] ** 2 + this.eps1;
          sum += sq;
          colSums[c] += sq;
        }
        const at = b * rows + r;
        row[at] = beta2t * row[at] + (1 - beta2t) * (sum / cols);
        rowMeanSum += row[at];
      }
      for (let c = 0; c < cols; c++) col[b * cols + c] = beta2t * col[b * cols + c] + (1 - beta2t) * (colSums[c] / rows);
      const rowMean = rowMeanSum / rows;
      for (let r = 0; r < rows; r++) {
        const rFactor = 1 / Math.sqrt(row[b * rows + r] / rowMean);
        for (let c = 0; c < cols; c++) update[base + r * cols + c] = rFactor * (1 / Math.sqrt(col[b * cols + c])) * g[base + r * cols + c];
      }
    }
  }
}

/** The optimizer of this name over `params`. */
export function createOptimizer(name: OptimizerName, params: readonly TrainParam[], opts: OptimizerOptions = {}): Optimizer {
  switch (name) {
    case 'adamw':
      return new AdamW(params, opts);
    case 'sgd':
      return new SGD(params, opts);
    case 'lion':
      return new Lion(params, opts);
    case 'adafactor':
      return new Adafactor(params, opts);
    default:
      throw new RequestError('invalid_option', 'optimizer', `unknown optimizer ${JSON.stringify(name)} (supported: ${OPTIMIZERS.join(', ')})`);
  }
}

/**
 * Scale all gradients together so that their global L2 norm is at most maxNorm (PyTorch's
 * clip_grad_norm_: factor maxNorm / (norm + 1e-6) when below 1). Returns the norm before
 * clipping; a non-finite norm is returned as it is and the gradients are left alone, for the
 * caller to stop on.
 */
export function clipGradNorm(params: readonly TrainParam[], maxNorm: number): number {
  let sum = 0;
  for (const p of params) for (let i = 0; i < p.grad.length; i++) sum += p.grad[i] * p.grad[i];
  const norm = Math.sqrt(sum);
  const factor = maxNorm / (norm + 1e-6);
  if (Number.isFinite(norm) && factor < 1) {
    for (const p of params) for (let i = 0; i < p.grad.length; i++) p.grad[i] *= factor;
  }
  return norm;
}

/** Zero every gradient (before a step's first micro-batch: gradients accumulate over micro-batches). */
export function zeroGrads(params: readonly TrainParam[]): void {
  for (const p of params) p.grad.fill(0);
}

// ---------------------------------------------------------------------------------------------
// Saving and restoring

const STATE_FORMAT = 'smallmind-optimizer-1';

/** Write the optimizer's step count, hyper-parameters and state tensors to `file` (a tensor file), atomically. */
export function saveOptimizerState(file: string, optimizer: Optimizer): void {
  writeTensorFile(file, optimizer.stateTensors(), {
    format: STATE_FORMAT,
    optimizer: optimizer.name,
    step: String(optimizer.stepCount),
    options: JSON.stringify(optimizer.options()),
  });
}

/** Restore what saveOptimizerState wrote into an optimizer of the same kind over the same parameters. */
export function loadOptimizerState(file: string, optimizer: Optimizer): void {
  const { metadata, tensors } = readTensorFile(file);
  const bad = (what: string): RequestError => new RequestError('invalid_state', 'optimizer', `${file}: ${what}`);
  if (metadata.format !== STATE_FORMAT) throw bad(`not an optimizer state (format ${JSON.stringify(metadata.format)})`);
  if (metadata.optimizer !== optimizer.name) throw bad(`saved by ${metadata.optimizer}, the run uses ${optimizer.name}`);
  const step = Number(metadata.step);
  if (!Number.isInteger(step) || step < 0) throw bad(`step ${JSON.stringify(metadata.step)} is not a count`);
  try {
    optimizer.loadState(step, tensors);
  } catch (err) {
    if (err instanceof RequestError) throw bad(err.message.replace(/^optimizer: /, ''));
    throw err;
  }
}
