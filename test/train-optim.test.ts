/**
 * Optimizers, gradient clipping and learning-rate schedules (src/train/optim.ts, schedule.ts):
 * three steps of each optimizer on a 3-vector that does not decay and a 2×3 matrix that does,
 * against PyTorch's numbers (test/data/optim-reference.py prints them; Lion and Adafactor from
 * their published rules), first steps also worked by hand; the decay rule; state save/restore.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { RequestError } from '../src/errors.js';
import {
  Adafactor,
  AdamW,
  clipGradNorm,
  createOptimizer,
  defaultDecay,
  loadOptimizerState,
  saveOptimizerState,
  zeroGrads,
  type OptimizerName,
  type OptimizerOptions,
  type TrainParam,
} from '../src/train/optim.js';
import { checkSchedule, learningRateAt, type ScheduleOptions } from '../src/train/schedule.js';
import { readTensorFile, writeTensorFile } from '../src/train/tensor-file.js';
import { expectClose } from './helpers/kernels.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'smallmind-optim-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const A0 = [1.0, -2.0, 0.5];
const B0 = [0.3, -0.7, 1.1, -1.2, 0.4, 0.9];
const GRADS: [number[], number[]][] = [
  [[0.5, -1.0, 0.25], [0.1, 0.2, -0.3, 0.4, -0.5, 0.6]],
  [[-0.3, 0.8, 0.1], [-0.2, 0.1, 0.05, 0.3, 0.3, -0.4]],
  [[0.2, 0.2, -0.6], [0.05, -0.15, 0.25, -0.35, 0.45, 0.0]],
];
const LRS = [1e-2, 5e-3, 2e-3];

function problem(): [TrainParam, TrainParam] {
  return [
    { name: 'a', shape: [3], data: Float32Array.from(A0), grad: new Float32Array(3), decay: false },
    { name: 'b', shape: [2, 3], data: Float32Array.from(B0), grad: new Float32Array(6), decay: true },
  ];
}

type Trace = [a: number[], b: number[]][];

/** Three steps with GRADS and LRS; the parameters after each. */
function trace(name: OptimizerName, opts: OptimizerOptions): Trace {
  const [a, b] = problem();
  const optimizer = createOptimizer(name, [a, b], opts);
  return GRADS.map(([ga, gb], i) => {
    a.grad.set(ga);
    b.grad.set(gb);
    optimizer.step(LRS[i]);
    return [Array.from(a.data), Array.from(b.data)];
  });
}

/** PyTorch keeps f32 intermediates, we keep f64 ones: agreement to a few f32 ulps of values near 1. */
const TOL = 3e-7;

function expectTrace(actual: Trace, expected: Trace, what: string): void {
  expected.forEach(([a, b], i) => {
    expectClose(Float32Array.from(actual[i][0]), Float32Array.from(a), () => TOL, `${what} step ${i + 1} a`);
    expectClose(Float32Array.from(actual[i][1]), Float32Array.from(b), () => TOL, `${what} step ${i + 1} b`);
  });
}

describe('optimizers against PyTorch', () => {
  it('AdamW (betas 0.9/0.95, eps 1e-8, weight decay 0.1 on the matrix only)', () => {
    const t = trace('adamw', { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 });
    // Step 1 by hand, a[0]: m = 0.1·0.5 = 0.05, v = 0.05·0.25 = 0.0125; lr / (1 − 0.9) = 0.1;
    // sqrt(v) / sqrt(1 − 0.95) = 0.5; a = 1 − 0.1·0.05 / 0.5 = 0.99. b[0] decays first: 0.3·(1 − 0.01·0.1) − 0.01.
    expect(t[0][0][0]).toBeCloseTo(0.99, 7);
    expect(t[0][1][0]).toBeCloseTo(0.3 * (1 - 0.001) - 0.01, 7);
    expectTrace(t, [
      [[0.99000001, -1.99000001, 0.49000001], [0.289700031, -0.709299982, 1.10890007, -1.20880008, 0.40959999, 0.889100015]],
      [[0.989036798, -1.98970854, 0.485465646], [0.291372031, -0.713641822, 1.11107099, -1.21312594, 0.410358399, 0.88792932]],
      [[0.988332152, -1.98981869, 0.48605296], [0.291588217, -0.713986337, 1.11067927, -1.21339571, 0.409728467, 0.887524366]],
    ], 'adamw');
  });

  it('SGD with momentum 0.9 (L2 weight decay 0.1 on the matrix only), plain and Nesterov', () => {
    const plain = trace('sgd', { momentum: 0.9, weightDecay: 0.1 });
    // Step 1 by hand, b[0]: d = 0.1 + 0.1·0.3 = 0.13; buffer = d; b = 0.3 − 0.01·0.13 = 0.2987.
    expect(plain[0][1][0]).toBeCloseTo(0.2987, 7);
    expectTrace(plain, [
      [[0.995000005, -1.99000001, 0.497500002], [0.298700005, -0.701299965, 1.10189998, -1.20280004, 0.404599994, 0.893099964]],
      [[0.99425, -1.98950005, 0.495875001], [0.298965663, -0.702034295, 1.10195398, -1.20495868, 0.404967695, 0.891548395]],
      [[0.993579984, -1.98971999, 0.496490002], [0.298901498, -0.701858282, 1.10125303, -1.20479476, 0.404119074, 0.890811503]],
    ], 'sgd');
    const nesterov = trace('sgd', { momentum: 0.9, weightDecay: 0.1, nesterov: true });
    // Nesterov step 1, a[0]: d = 0.5, buffer = 0.5, d + 0.9·buffer = 0.95; a = 1 − 0.01·0.95.
    expect(nesterov[0][0][0]).toBeCloseTo(0.9905, 7);
    expectTrace(nesterov, [
      [[0.990499973, -1.98099995, 0.495249987], [0.297530025, -0.702470005, 1.10361004, -1.20532, 0.408740014, 0.886889994]],
      [[0.991324961, -1.98455, 0.493287474], [0.29862088, -0.703279138, 1.10285616, -1.20815897, 0.407364696, 0.887052953]],
      [[0.990321934, -1.98514795, 0.495040983], [0.298403651, -0.702679634, 1.10150433, -1.2070688, 0.40561837, 0.886214197]],
    ], 'sgd nesterov');
  });

  it('Lion (betas 0.9/0.99, decoupled weight decay 0.1 on the matrix only)', () => {
    const t = trace('lion', { beta1: 0.9, beta2: 0.99, weightDecay: 0.1 });
    // Step 2, a[0]: m = 0.01·0.5 = 0.005; sign(0.9·0.005 + 0.1·(−0.3)) = −1; a = 0.99 + 0.005.
    expect(t[1][0][0]).toBeCloseTo(0.995, 7);
    expectTrace(t, [
      [[0.99000001, -1.99000001, 0.49000001], [0.289700031, -0.709299982, 1.10890007, -1.20880008, 0.40959999, 0.889100015]],
      [[0.995000005, -1.995, 0.485000014], [0.294555157, -0.713945329, 1.10334563, -1.21319568, 0.404395193, 0.893655419]],
      [[0.993000031, -1.99699998, 0.487000018], [0.292496264, -0.711802602, 1.101125, -1.21095312, 0.402314335, 0.89147675]],
    ], 'lion');
  });

  it('Adafactor (factored second moment for the matrix, update clipped to RMS 1, decay 0.1 on the matrix only)', () => {
    const t = trace('adafactor', { weightDecay: 0.1 });
    // Step 1 of the vector: β2_1 = 0, v = g², update g/|g| = ±1, RMS 1 (no clipping): a = a0 − 0.01·sign(g).
    expect(t[0][0]).toEqual(Array.from(Float32Array.from([0.99, -1.99, 0.49])));
    expectTrace(t, [
      [[0.99000001, -1.99000001, 0.49000001], [0.293516546, -0.708768606, 1.11030185, -1.20934665, 0.409693599, 0.889376581]],
      [[0.993772447, -1.99449122, 0.48721993], [0.300184548, -0.71148628, 1.10852277, -1.21297634, 0.405671149, 0.892987788]],
      [[0.992561221, -1.99506831, 0.490144134], [0.299466848, -0.709702551, 1.10551846, -1.21066737, 0.403379679, 0.892809212]],
    ], 'adafactor');
  });

  it('Adafactor keeps one row and one column statistic per matrix of a 3-D parameter', () => {
    const p: TrainParam = { name: 'w', shape: [2, 3, 4], data: new Float32Array(24).fill(1), grad: new Float32Array(24), decay: false };
    p.grad.forEach((_, i) => (p.grad[i] = ((i * 7) % 5) - 2));
    const optimizer = new Adafactor([p]);
    optimizer.step(0.01);
    const shapes = Object.fromEntries(optimizer.stateTensors().map((t) => [t.name, t.shape]));
    expect(shapes).toEqual({ 'w.exp_avg_sq_row': [2, 3], 'w.exp_avg_sq_col': [2, 4] });
    // Each 3×4 matrix has its own statistics: the second matrix alone gets the same ones. (The
    // update is clipped by the RMS over the whole parameter, as in transformers, so it differs.)
    const second: TrainParam = { name: 'w', shape: [3, 4], data: new Float32Array(12).fill(1), grad: p.grad.slice(12), decay: false };
    const alone = new Adafactor([second]);
    alone.step(0.01);
    const stats = (o: Adafactor, key: string): number[] => Array.from(o.stateTensors().find((t) => t.name === key)!.data);
    expect(stats(optimizer, 'w.exp_avg_sq_row').slice(3)).toEqual(stats(alone, 'w.exp_avg_sq_row'));
    expect(stats(optimizer, 'w.exp_avg_sq_col').slice(4)).toEqual(stats(alone, 'w.exp_avg_sq_col'));
  });
});

describe('parameter groups and clipping', () => {
  it('decays matrices but not norms, biases or embeddings', () => {
    expect(defaultDecay('blk.0.attn_q.weight', [64, 64])).toBe(true);
    expect(defaultDecay('output.weight', [65, 64])).toBe(true);
    expect(defaultDecay('blk.0.attn_norm.weight', [64])).toBe(false);
    expect(defaultDecay('blk.0.attn_q.bias', [64])).toBe(false);
    for (const name of ['token_embd.weight', 'transformer.wte.weight', 'transformer.wpe.weight', 'model.embed_tokens.weight', 'tok_embeddings.weight']) {
      expect(defaultDecay(name, [65, 64]), name).toBe(false);
    }
  });

  it('applies weight decay only where decay is true', () => {
    const [a, b] = problem();
    a.decay = true;
    b.decay = false;
    // Zero gradients: AdamW's update is 0/(0 + eps) = 0, so only the decay moves a parameter.
    new AdamW([a, b], { weightDecay: 0.5 }).step(0.1);
    expect(Array.from(a.data)).toEqual(Array.from(Float32Array.from(A0.map((x) => x * 0.95))));
    expect(Array.from(b.data)).toEqual(Array.from(Float32Array.from(B0)));
  });

  it('clips the global norm as clip_grad_norm_ and returns the norm before clipping', () => {
    const [a, b] = problem();
    a.grad.set(GRADS[0][0]);
    b.grad.set(GRADS[0][1]);
    const norm = clipGradNorm([a, b], 1.0);
    // The f32 gradients are not exactly these decimals: equal to ~1e-8.
    expect(norm).toBeCloseTo(Math.sqrt(0.25 + 1 + 0.0625 + 0.01 + 0.04 + 0.09 + 0.16 + 0.25 + 0.36), 7);
    expect(norm).toBeCloseTo(1.4908051490783691, 6); // PyTorch
    expectClose(a.grad, Float32Array.from([0.33538901805877686, -0.6707780361175537, 0.16769450902938843]), () => 1e-7, 'a.grad');
    expectClose(b.grad, Float32Array.from([0.06707780808210373, 0.13415561616420746, -0.2012334167957306, 0.2683112323284149, -0.33538901805877686, 0.4024668335914612]), () => 1e-7, 'b.grad');
    // Under the limit nothing changes; a NaN gradient is reported and left for the caller.
    expect(clipGradNorm([a, b], 10)).toBeCloseTo(1, 5);
    expect(a.grad[0]).toBeCloseTo(0.33538901805877686, 7);
    b.grad[0] = NaN;
    expect(clipGradNorm([a, b], 1)).toBeNaN();
    expect(a.grad[0]).toBeCloseTo(0.33538901805877686, 7);
    zeroGrads([a, b]);
    expect([...a.grad, ...b.grad].every((g) => g === 0)).toBe(true);
  });

  it('rejects duplicate names, mismatched sizes and bad learning rates', () => {
    const [a] = problem();
    expect(() => new AdamW([a, { ...a }])).toThrow(/parameter "a" given twice/);
    expect(() => new AdamW([{ ...a, shape: [4] }])).toThrow(/shape \[4\] holds 4 values, data 3, grad 3/);
    expect(() => new AdamW([a]).step(NaN)).toThrow(RequestError);
    expect(() => createOptimizer('adam' as OptimizerName, [a])).toThrow(/unknown optimizer "adam" \(supported: adamw, sgd, lion, adafactor\)/);
  });
});

describe('optimizer state', () => {
  for (const name of ['adamw', 'sgd', 'lion', 'adafactor'] as const) {
    it(`${name}: saved after two steps and restored into a fresh optimizer, the third step is identical`, () => {
      const [a, b] = problem();
      const first = createOptimizer(name, [a, b], { weightDecay: 0.1 });
      for (let i = 0; i < 2; i++) {
        a.grad.set(GRADS[i][0]);
        b.grad.set(GRADS[i][1]);
        first.step(LRS[i]);
      }
      const file = path.join(tmp, `${name}.safetensors`);
      saveOptimizerState(file, first);
      const [a2, b2] = problem();
      a2.data.set(a.data);
      b2.data.set(b.data);
      const second = createOptimizer(name, [a2, b2], { weightDecay: 0.1 });
      loadOptimizerState(file, second);
      expect(second.stepCount).toBe(2);
      for (const [p, q] of [[a, a2], [b, b2]]) {
        p.grad.set(p === a ? GRADS[2][0] : GRADS[2][1]);
        q.grad.set(p.grad);
      }
      first.step(LRS[2]);
      second.step(LRS[2]);
      expect(Array.from(a2.data)).toEqual(Array.from(a.data));
      expect(Array.from(b2.data)).toEqual(Array.from(b.data));
    });
  }

  it('refuses state from another optimizer or other parameters', () => {
    const [a, b] = problem();
    const adam = new AdamW([a, b]);
    adam.step(0.01);
    const file = path.join(tmp, 'adam.safetensors');
    saveOptimizerState(file, adam);
    expect(() => loadOptimizerState(file, createOptimizer('lion', problem()))).toThrow(/saved by adamw, the run uses lion/);
    const [a2] = problem();
    expect(() => loadOptimizerState(file, new AdamW([a2]))).toThrow(/has b\.exp_avg, which no parameter of this model has/);
    const wider: TrainParam = { name: 'b', shape: [2, 4], data: new Float32Array(8), grad: new Float32Array(8), decay: true };
    expect(() => loadOptimizerState(file, new AdamW([a2, wider]))).toThrow(/b\.exp_avg: saved 6 values, this model needs 8/);
  });

  it('writes a safetensors layout: 8-byte header length, JSON header, aligned f32 data', () => {
    const file = path.join(tmp, 'plain.safetensors');
    writeTensorFile(file, [{ name: 'x', shape: [2], data: Float32Array.from([1.5, -2]) }], { note: 'hi' });
    const bytes = fs.readFileSync(file);
    const headerLength = Number(bytes.readBigUInt64LE(0));
    expect((8 + headerLength) % 8).toBe(0);
    expect(JSON.parse(bytes.toString('utf8', 8, 8 + headerLength))).toEqual({ __metadata__: { note: 'hi' }, x: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } });
    expect(bytes.readFloatLE(8 + headerLength)).toBe(1.5);
    const back = readTensorFile(file);
    expect(back.metadata).toEqual({ note: 'hi' });
    expect(Array.from(back.tensors.get('x')!.data)).toEqual([1.5, -2]);
    fs.writeFileSync(file, bytes.subarray(0, bytes.length - 2));
    expect(() => readTensorFile(file)).toThrow(/tensor x ends at byte \d+, past the end of the file/);
  });
});

describe('learning-rate schedules', () => {
  const nano: ScheduleOptions = { schedule: 'cosine', learningRate: 1e-3, minLr: 1e-4, warmupIters: 100, lrDecayIters: 2000 };

  it("cosine is nanoGPT's get_lr: warmup (it+1)/(warmup+1), cosine to min_lr at lr_decay_iters, then min_lr", () => {
    expect(learningRateAt(0, nano)).toBeCloseTo(1e-3 / 101, 15);
    expect(learningRateAt(99, nano)).toBeCloseTo((1e-3 * 100) / 101, 15);
    expect(learningRateAt(100, nano)).toBe(1e-3);
    // Halfway through the decay the cosine is 0: the mean of the two rates.
    expect(learningRateAt(1050, nano)).toBeCloseTo(5.5e-4, 15);
    expect(learningRateAt(2000, nano)).toBe(1e-4);
    expect(learningRateAt(5000, nano)).toBe(1e-4);
    // A quarter of the way: min + (1 + cos(π/4))/2 · (max − min).
    expect(learningRateAt(575, nano)).toBeCloseTo(1e-4 + ((1 + Math.SQRT1_2) / 2) * 9e-4, 15);
  });

  it('linear and constant share the warmup', () => {
    const linear = { ...nano, schedule: 'linear' as const };
    expect(learningRateAt(0, linear)).toBe(learningRateAt(0, nano));
    expect(learningRateAt(1050, linear)).toBeCloseTo(5.5e-4, 15);
    expect(learningRateAt(1525, linear)).toBeCloseTo(1e-4 + 0.25 * 9e-4, 15);
    expect(learningRateAt(2500, linear)).toBe(1e-4);
    const constant = { ...nano, schedule: 'constant' as const };
    expect(learningRateAt(50, constant)).toBeCloseTo((1e-3 * 51) / 101, 15);
    expect(learningRateAt(100, constant)).toBe(1e-3);
    expect(learningRateAt(1e6, constant)).toBe(1e-3);
    expect(learningRateAt(0, { ...constant, warmupIters: 0 })).toBe(1e-3);
  });

  it("onecycle equals PyTorch's OneCycleLR(max_lr=1e-3, total_steps=100)", () => {
    const oneCycle: ScheduleOptions = { schedule: 'onecycle', learningRate: 1e-3, lrDecayIters: 100 };
    const torch: Record<number, number> = {
      0: 3.9999999999999996e-5, 1: 4.281378056590743e-5, 15: 0.0005459866761210004, 29: 0.001, 30: 0.0009994965352845243,
      31: 0.0009979871550490316, 64: 0.0005000019999999999, 98: 5.074647154757879e-7, 99: 4e-9,
    };
    for (const [step, lr] of Object.entries(torch)) expect(learningRateAt(Number(step), oneCycle), `step ${step}`).toBeCloseTo(lr, 17);
    expect(learningRateAt(150, oneCycle)).toBeCloseTo(4e-9, 20);
  });

  it('refuses schedules that cannot run, naming the key', () => {
    expect(() => checkSchedule({ ...nano, lrDecayIters: 100 })).toThrow(/lr_decay_iters: must be greater than warmup_iters \(100\) for the cosine schedule, got 100/);
    expect(() => checkSchedule({ schedule: 'onecycle', learningRate: 1e-3, lrDecayIters: 3 })).toThrow(/lr_decay_iters: 3 steps are too few/);
    expect(() => learningRateAt(-1, nano)).toThrow(/step: must be an integer ≥ 0/);
    expect(() => checkSchedule(nano)).not.toThrow();
  });
});
