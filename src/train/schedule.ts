/**
 * Learning-rate schedules: the learning rate for step `it` (0-based, the step about to be taken).
 *
 *   constant  warmup, then learning_rate
 *   linear    warmup, then a straight line from learning_rate at warmup_iters down to min_lr at
 *             lr_decay_iters, then min_lr
 *   cosine    nanoGPT's get_lr: warmup, then half a cosine from learning_rate down to min_lr at
 *             lr_decay_iters, then min_lr
 *   onecycle  PyTorch's OneCycleLR (two phases, cos annealing) over lr_decay_iters steps: from
 *             learning_rate / div_factor up to learning_rate over the first pct_start of the steps,
 *             then down to learning_rate / div_factor / final_div_factor; warmup_iters and min_lr
 *             do not apply. Past the last step it stays at the final value (PyTorch raises).
 *
 * Warmup is nanoGPT's: learning_rate · (it + 1) / (warmup_iters + 1) for it < warmup_iters, so the
 * first step is not taken at 0.
 */
import { RequestError } from '../errors.js';

export const SCHEDULES = ['constant', 'linear', 'cosine', 'onecycle'] as const;
export type ScheduleName = (typeof SCHEDULES)[number];

export interface ScheduleOptions {
  schedule: ScheduleName;
  learningRate: number;
  /** linear, cosine: the rate reached at lrDecayIters (default 0). */
  minLr?: number;
  /** constant, linear, cosine (default 0). */
  warmupIters?: number;
  /** linear, cosine: where the decay ends; onecycle: the total number of steps. */
  lrDecayIters: number;
  /** onecycle (PyTorch's defaults): 0.3, 25, 1e4. */
  pctStart?: number;
  divFactor?: number;
  finalDivFactor?: number;
}

/** The learning rate for step `it`. */
export function learningRateAt(it: number, opts: ScheduleOptions): number {
  if (!Number.isInteger(it) || it < 0) throw new RequestError('invalid_option', 'step', `must be an integer ≥ 0, got ${it}`);
  const lr = opts.learningRate;
  if (opts.schedule === 'onecycle') return oneCycle(it, opts);
  const warmup = opts.warmupIters ?? 0;
  if (it < warmup) return (lr * (it + 1)) / (warmup + 1);
  if (opts.schedule === 'constant') return lr;
  const minLr = opts.minLr ?? 0;
  if (it >= opts.lrDecayIters) return minLr;
  const ratio = (it - warmup) / (opts.lrDecayIters - warmup); // in [0, 1): lrDecayIters > it ≥ warmup
  const coeff = opts.schedule === 'cosine' ? 0.5 * (1 + Math.cos(Math.PI * ratio)) : 1 - ratio;
  return minLr + coeff * (lr - minLr);
}

function oneCycle(it: number, opts: ScheduleOptions): number {
  const total = opts.lrDecayIters;
  const peak = opts.learningRate;
  const initial = peak / (opts.divFactor ?? 25);
  const final = initial / (opts.finalDivFactor ?? 1e4);
  const peakStep = (opts.pctStart ?? 0.3) * total - 1;
  const lastStep = total - 1;
  if (it <= peakStep) return cosineAnneal(initial, peak, it / peakStep);
  return cosineAnneal(peak, final, Math.min(1, (it - peakStep) / (lastStep - peakStep)));
}

/** From `start` at pct 0 to `end` at pct 1 along half a cosine (PyTorch's _annealing_cos). */
function cosineAnneal(start: number, end: number, pct: number): number {
  return end + ((start - end) / 2) * (Math.cos(Math.PI * pct) + 1);
}

/** Errors for options no schedule can follow; `key` names the options as the configuration does. */
export function checkSchedule(opts: ScheduleOptions): void {
  const fail = (key: string, why: string): never => {
    throw new RequestError('invalid_config', key, why);
  };
  if (!(opts.learningRate >= 0)) fail('learning_rate', `must be ≥ 0, got ${opts.learningRate}`);
  if ((opts.schedule === 'linear' || opts.schedule === 'cosine') && opts.lrDecayIters <= (opts.warmupIters ?? 0)) {
    fail('lr_decay_iters', `must be greater than warmup_iters (${opts.warmupIters ?? 0}) for the ${opts.schedule} schedule, got ${opts.lrDecayIters}`);
  }
  if (opts.schedule === 'onecycle') {
    const pct = opts.pctStart ?? 0.3;
    if (!(pct > 0 && pct < 1)) fail('pct_start', `must be in (0, 1), got ${pct}`);
    // PyTorch needs both phases to be at least one step long.
    if (!(pct * opts.lrDecayIters - 1 > 0 && opts.lrDecayIters - 1 > pct * opts.lrDecayIters - 1)) {
      fail('lr_decay_iters', `${opts.lrDecayIters} steps are too few for a one-cycle schedule with pct_start ${pct}`);
    }
  }
}
