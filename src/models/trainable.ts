/**
 * What the two training graphs (gpt2-train.ts, llama-train.ts) share: the TrainableModel
 * interface the trainer drives, nanoGPT's initialisation, the row view of a fused weight,
 * dropout seeds per call site and position ids.
 */
import * as F from '../autograd/functions.js';
import { Parameter, Tape, type Var } from '../autograd/tape.js';
import type { Backend } from '../backend/backend.js';
import * as ops from '../ops/index.js';
import type { Shape, Tensor } from '../tensor/tensor.js';
import { NormalSource } from '../tensor/random.js';
import { defaultDecay } from '../train/optim.js';
import type { ArchConfig } from './index.js';

/** One forward over B sequences of T tokens. */
export interface ForwardOptions {
  /** Sequences in the batch (B); inputs hold B·T ids. */
  batch: number;
  /** Dropout seed for this micro-batch (dropout is off when the model's rate is 0 or in evaluation). */
  dropoutSeed?: number;
  /** false: evaluation (no dropout). Default true. */
  training?: boolean;
}

export interface TrainableModel {
  readonly arch: ArchConfig;
  /** Every parameter, in a fixed order (init order, optimizer order). */
  readonly params: readonly Parameter[];
  /** Logits [B·T, vocab] for B sequences of T tokens. */
  logits(tape: Tape, inputs: Int32Array, opts: ForwardOptions): Var;
  /** Mean cross-entropy of the next-token predictions against targets (B·T ids). */
  loss(tape: Tape, inputs: Int32Array, targets: Int32Array, opts: ForwardOptions): Var;
  dispose(): void;
}

export interface ModelOptions {
  dropout: number;
  /** GPT-2: biases in linear layers and LayerNorms (false: they stay zero and are not trained). */
  bias: boolean;
  seed: number;
  /** Recompute each block's activations in the backward pass instead of keeping them (checkpointed). */
  gradientCheckpointing?: boolean;
}

/**
 * Creates parameters in a fixed order with nanoGPT's initialisation: matrices and embeddings
 * normal(0, 0.02), residual projections normal(0, 0.02/√(2·n_layer)) (GPT-2's scaled init), biases
 * 0, norm gains 1. The values depend only on the seed and the order of calls.
 */
export class ParamFactory {
  readonly params: Parameter[] = [];
  private readonly normal: NormalSource;

  constructor(private readonly be: Backend, seed: number) {
    this.normal = new NormalSource(seed);
  }

  normalInit(name: string, shape: Shape, std: number): Parameter {
    const values = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < values.length; i++) values[i] = std * this.normal.next();
    return this.make(name, shape, values);
  }

  constant(name: string, shape: Shape, value: number, trainable = true): Parameter {
    return this.make(name, shape, new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(value), trainable);
  }

  private make(name: string, shape: Shape, values: Float32Array, trainable = true): Parameter {
    const p = Parameter.fromValues(this.be, name, shape, values, { decay: defaultDecay(name, shape), trainable });
    this.params.push(p);
    return p;
  }
}

/** The standard deviation nanoGPT gives everything but the residual projections. */
export const INIT_STD = 0.02;

/**
 * Rows [start, start + count) of a 2-D Var as a Var (a view: no copy). Its gradient goes into
 * those rows of x's gradient: how q, k and v use their thirds of GPT-2's fused attn_qkv weight.
 */
export function rowsOf(t: Tape, x: Var, start: number, count: number): Var {
  return t.record('rows', [x], x.value.rows(start, count), (dy, g) => {
    const rows: Tensor = g.acc(x).rows(start, count);
    ops.add(g.be, rows, rows, dy);
  });
}

/** Dropout whose seed differs per call site: `site` counts the dropouts of one forward. */
export function dropoutAt(t: Tape, x: Var, p: number, opts: ForwardOptions, site: number): Var {
  if (p === 0 || opts.training === false) return x;
  const seed = (Math.imul((opts.dropoutSeed ?? 0) | 0, 0x9e3779b1) ^ Math.imul(site + 1, 0x85ebca77)) >>> 0;
  return F.dropout(t, x, p, seed);
}

/** Positions 0..T−1 for each of B sequences. */
export function positionIds(batch: number, seqLen: number): Int32Array {
  const ids = new Int32Array(batch * seqLen);
  for (let i = 0; i < ids.length; i++) ids[i] = i % seqLen;
  return ids;
}


/**
 * Gradient checkpointing of one block: the forward runs on a scratch tape without recording and
 * keeps only the block's output; the backward runs the block again on a fresh tape, recording,
 * and backpropagates the output's gradient through it (parameter grads accumulate as usual, the
 * input's gradient goes on). Activation memory: one tensor per block instead of all of them.
 * `block` must compute the same values both times (dropout masks depend only on their seeds).
 */
export function checkpointed(t: Tape, x: Var, block: (t: Tape, x: Var) => Var): Var {
  if (!t.recording) return block(t, x);
  const scratch = new Tape(t.be);
  const y = t.alloc(x.shape);
  try {
    ops.setRows(t.be, y, 0, scratch.noGrad(() => block(scratch, scratch.input(x.value))).value);
  } finally {
    scratch.dispose();
  }
  return t.record('checkpoint', [x], y, (dy, g) => {
    const replay = new Tape(g.be);
    try {
      const input = replay.input(x.value, true);
      replay.backwardWith(block(replay, input), dy);
      if (input.grad) g.add(x, input.grad);
    } finally {
      replay.dispose();
    }
  });
}
