/**
 * Autograd: every differentiable function's backward against central finite differences, the
 * engine's bookkeeping (accumulation, tied weights, noGrad, memory), and a tiny Llama-style model
 * overfitting one batch on the reference and wasm backends.
 *
 * Precision: the finite differences run on f32 tensors (there is no f64 DType: adding one would
 * reach the loaders and every backend for the sake of this test). The reference kernels sum in
 * float64 and the test's loss Σ r·y is taken in float64, so the differences carry only the f32
 * rounding of each stored activation: with steps of h = 1e-2 (the actual step is re-measured
 * after rounding to f32) the central difference is good to ~1e-4 relative, and the checks allow
 * 2e-3 of the largest gradient element plus 2e-3 relative.
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { Backend, RopeParams, TrainAttentionParams } from '../src/backend/backend.js';
import { ReferenceBackend } from '../src/backend/reference.js';
import { createWasmBackend } from '../src/backend/wasm/backend.js';
import * as ag from '../src/autograd/index.js';
import { Parameter, Tape, type Var } from '../src/autograd/index.js';
import { randomValues } from './helpers/kernels.js';

const ref = new ReferenceBackend();

interface InputSpec {
  shape: number[];
  /** 'param': a Parameter (grads accumulate); 'input': a tape leaf with requiresGrad. */
  kind: 'param' | 'input';
  scale?: number;
  offset?: number;
}

/**
 * Check d(Σ r·f(xs))/dxs from backward against central differences, for every element of every
 * input. f builds the function from Vars on a tape.
 */
function gradcheck(specs: InputSpec[], f: (t: Tape, xs: Var[]) => Var, seed = 1): void {
  const be = ref;
  const params: Parameter[] = [];
  const leaves = specs.map((s, i) => {
    const values = randomValues(s.shape.reduce((a, b) => a * b, 1), seed * 100 + i, s.scale ?? 1, s.offset ?? 0);
    if (s.kind === 'param') {
      const p = Parameter.fromValues(be, `p${i}`, s.shape, values);
      params.push(p);
      return { spec: s, tensor: p.value, param: p };
    }
    const t = be.alloc('f32', s.shape);
    t.f32().set(values);
    return { spec: s, tensor: t, param: undefined };
  });

  // analytic: backward of Σ r·y, the projection written as a [1, n] · [1, n]ᵀ matmul
  const tape = new Tape(be);
  const vars = leaves.map((l) => l.param ?? tape.input(l.tensor, true));
  const y = f(tape, vars);
  const n = y.value.numel;
  const r = be.alloc('f32', [1, n]);
  r.f32().set(randomValues(n, seed * 100 + 99));
  const loss = ag.matmul(tape, ag.reshape(tape, y, [1, n]), tape.input(r));
  tape.backward(loss);
  const analytic = vars.map((v) => Float64Array.from(v.grad!.f32()));
  tape.dispose();

  const objective = (): number => {
    const t = new Tape(be);
    const out = t.noGrad(() => f(t, vars)).value.f32();
    let s = 0;
    const rs = r.f32();
    for (let i = 0; i < n; i++) s += rs[i]! * out[i]!;
    t.dispose();
    return s;
  };
  leaves.forEach((leaf, li) => {
    const xs = leaf.tensor.f32();
    const fd = new Float64Array(xs.length);
    for (let i = 0; i < xs.length; i++) {
      const x0 = xs[i]!;
      xs[i] = x0 + 1e-2;
      const hi = xs[i]!;
      const up = objective();
      xs[i] = x0 - 1e-2;
      const lo = xs[i]!;
      const down = objective();
      xs[i] = x0;
      fd[i] = (up - down) / (hi - lo);
    }
    const g = analytic[li]!;
    const largest = Math.max(...fd.map(Math.abs));
    expect(largest, `input ${li} has a zero gradient (the check would be empty)`).toBeGreaterThan(0);
    for (let i = 0; i < fd.length; i++) {
      const tol = 2e-3 * largest + 2e-3 * Math.abs(fd[i]!);
      if (!(Math.abs(g[i]! - fd[i]!) <= tol)) {
        throw new Error(`input ${li} [${leaf.spec.shape}] element ${i}: backward ${g[i]}, finite difference ${fd[i]} (tolerance ${tol})`);
      }
    }
  });
  for (const p of params) p.dispose();
  for (const l of leaves) if (!l.param) be.free(l.tensor);
  be.free(r);
}

const x35: InputSpec = { shape: [3, 5], kind: 'input' };

describe('autograd: backward of every function against central finite differences', () => {
  it('matmul (x and w), reshape', () => {
    gradcheck([x35, { shape: [7, 5], kind: 'param' }], (t, [x, w]) => ag.matmul(t, x!, w!));
    gradcheck([{ shape: [2, 3, 5], kind: 'input' }, { shape: [4, 5], kind: 'param' }], (t, [x, w]) => ag.reshape(t, ag.matmul(t, x!, w!), [24]));
  });

  it('embedding, with a repeated id', () => {
    gradcheck([{ shape: [7, 5], kind: 'param' }], (t, [table]) => ag.embedding(t, table!, [1, 3, 1, 6]));
  });

  it('add, mul, addBias (and a Var used twice)', () => {
    gradcheck([x35, x35], (t, [a, b]) => ag.add(t, a!, b!));
    gradcheck([x35], (t, [a]) => ag.add(t, a!, a!));
    gradcheck([x35, x35], (t, [a, b]) => ag.mul(t, a!, b!));
    gradcheck([x35], (t, [a]) => ag.mul(t, a!, a!));
    gradcheck([x35, { shape: [5], kind: 'param' }], (t, [x, b]) => ag.addBias(t, x!, b!));
  });

  it('rmsnorm and layernorm (input, weight, bias)', () => {
    gradcheck([{ shape: [3, 7], kind: 'input' }, { shape: [7], kind: 'param', offset: 1 }], (t, [x, w]) => ag.rmsnorm(t, x!, w!, 1e-5));
    gradcheck(
      [{ shape: [3, 7], kind: 'input' }, { shape: [7], kind: 'param', offset: 1 }, { shape: [7], kind: 'param' }],
      (t, [x, w, b]) => ag.layernorm(t, x!, w!, b!, 1e-5),
    );
  });

  it('rope: adjacent pairs and NeoX halves, partial rotation, two sequences', () => {
    for (const neox of [false, true]) {
      const p: RopeParams = { nHead: 2, headDim: 6, nRot: 4, theta: 10000, neox };
      gradcheck([{ shape: [10, 12], kind: 'input' }], (t, [x]) => ag.rope(t, x!, p, 5));
    }
  });

  it('fused causal attention with GQA (4 heads, 2 KV heads, B = 2, T = 5)', () => {
    const p: TrainAttentionParams = { nHead: 4, nKvHead: 2, headDim: 3, seqLen: 5, scale: 1 / Math.sqrt(3) };
    gradcheck(
      [{ shape: [10, 12], kind: 'input' }, { shape: [10, 6], kind: 'input' }, { shape: [10, 6], kind: 'input' }],
      (t, [q, k, v]) => ag.attention(t, q!, k!, v!, p),
    );
  });

  it('swiglu, gelu, dropout', () => {
    gradcheck([x35, x35], (t, [g, u]) => ag.swiglu(t, g!, u!), 2);
    gradcheck([{ shape: [3, 5], kind: 'input', scale: 3 }], (t, [x]) => ag.gelu(t, x!));
    gradcheck([x35], (t, [x]) => ag.dropout(t, x!, 0.3, 12345));
  });

  it('cross-entropy (mean over the targets that are not −1)', () => {
    gradcheck([{ shape: [4, 7], kind: 'input', scale: 2 }], (t, [logits]) => ag.crossEntropy(t, logits!, [3, -1, 0, 6]));
  });

  it('a chain with a residual: rmsnorm → matmul → gelu → matmul, added back to its input', () => {
    gradcheck(
      [{ shape: [3, 6], kind: 'input' }, { shape: [6], kind: 'param', offset: 1 }, { shape: [5, 6], kind: 'param' }, { shape: [6, 5], kind: 'param' }],
      (t, [x, g, w1, w2]) => ag.add(t, x!, ag.matmul(t, ag.gelu(t, ag.matmul(t, ag.rmsnorm(t, x!, g!, 1e-5), w1!)), w2!)),
    );
  });
});

describe('autograd: the engine', () => {
  const ids = [2, 0, 4, 4, 1];
  const targets = [0, 4, -1, 2, 3];

  /** embedding → matmul by `out` → cross-entropy: tied when out is the table itself. */
  function lossOf(t: Tape, table: Parameter, out: Parameter): Var {
    return ag.crossEntropy(t, ag.matmul(t, ag.embedding(t, table, ids), out), targets);
  }

  it('two backward passes add their gradients; backward(root, scale) scales them', () => {
    const table = Parameter.fromValues(ref, 'table', [5, 3], randomValues(15, 1));
    const out = Parameter.fromValues(ref, 'out', [5, 3], randomValues(15, 2));
    const t = new Tape(ref);
    t.backward(lossOf(t, table, out));
    t.dispose();
    const once = Float32Array.from(out.grad!.f32());
    t.backward(lossOf(t, table, out));
    t.dispose();
    t.backward(lossOf(t, table, out), 0.5);
    t.dispose();
    out.grad!.f32().forEach((g, i) => expect(g).toBeCloseTo(2.5 * once[i]!, 6));
    out.zeroGrad();
    expect(out.grad!.f32().every((g) => g === 0)).toBe(true);
    table.dispose();
    out.dispose();
  });

  it('tied weights get the gradients of both uses', () => {
    const values = randomValues(15, 3);
    const tied = Parameter.fromValues(ref, 'tied', [5, 3], values);
    const a = Parameter.fromValues(ref, 'a', [5, 3], values);
    const b = Parameter.fromValues(ref, 'b', [5, 3], values);
    const t = new Tape(ref);
    const l1 = lossOf(t, tied, tied);
    const tiedLoss = l1.item();
    t.backward(l1);
    t.dispose();
    const l2 = lossOf(t, a, b);
    expect(l2.item()).toBe(tiedLoss);
    t.backward(l2);
    t.dispose();
    const sum = a.grad!.f32().map((g, i) => g + b.grad!.f32()[i]!);
    tied.grad!.f32().forEach((g, i) => expect(g).toBeCloseTo(sum[i]!, 6));
    expect(sum.some((g) => g !== 0)).toBe(true);
    for (const p of [tied, a, b]) p.dispose();
  });

  it('noGrad records nothing and saves nothing; backward then refuses', () => {
    const table = Parameter.fromValues(ref, 'table', [5, 3], randomValues(15, 1));
    const t = new Tape(ref);
    const loss = t.noGrad(() => lossOf(t, table, table));
    expect(t.size).toBe(0);
    expect(loss.requiresGrad).toBe(false);
    // left: the three results (embedding [5, 3], logits [5, 5], loss [1]), no saved gradient of the logits
    expect(t.ownedBytes).toBe(4 * (15 + 25 + 1));
    expect(() => t.backward(loss)).toThrow(/not recorded/);
    expect(t.recording).toBe(true);
    t.dispose();
    table.dispose();
  });

  it('frozen parameters get no gradient but pass it on', () => {
    const w = Parameter.fromValues(ref, 'w', [4, 3], randomValues(12, 4), { trainable: false });
    const x = ref.alloc('f32', [2, 3]);
    x.f32().set(randomValues(6, 5));
    const t = new Tape(ref);
    const xv = t.input(x, true);
    t.backward(ag.crossEntropy(t, ag.matmul(t, xv, w), [1, 2]));
    expect(w.grad).toBeNull();
    expect(xv.grad!.f32().some((g) => g !== 0)).toBe(true);
    t.dispose();
    expect(xv.grad).toBeNull();
    ref.free(x);
    w.dispose();
  });

  it('frees activations during backward and everything on dispose: memory returns to the parameters', () => {
    const be = new ReferenceBackend();
    const model = tinyModel(be, 7);
    const baseline = be.allocatedBytes;
    const t = new Tape(be);
    const hidden = model.hiddenOf(t);
    const logits = t.retain(ag.matmul(t, hidden, model.output));
    const loss = ag.crossEntropy(t, logits, model.targets);
    const recorded = t.ownedBytes;
    expect(t.size).toBeGreaterThan(20);
    t.backward(loss);
    // left: the loss and the retained logits
    expect(t.ownedBytes).toBe(4 * (1 + logits.value.numel));
    expect(t.ownedBytes).toBeLessThan(recorded / 10);
    expect(() => ag.gelu(t, hidden)).toThrow(/freed by backward/);
    expect(() => t.retain(ag.reshape(t, logits, [logits.value.numel]))).toThrow(/retain the Var it views/);
    t.dispose();
    expect(be.allocatedBytes).toBe(baseline);
    expect(() => t.backward(loss)).toThrow(/not recorded/);
    model.dispose();
    expect(be.allocatedBytes).toBe(0);
  });
});

// ---- a tiny Llama-style model, written with the autograd functions ----------------------------

const VOCAB = 11;
const DIM = 16;
const HIDDEN = 24;
const SEQ = 5;
const rope: RopeParams = { nHead: 4, headDim: 4, nRot: 4, theta: 10000, neox: false };
const attn: TrainAttentionParams = { nHead: 4, nKvHead: 2, headDim: 4, seqLen: SEQ, scale: 0.5 };

/** Two sequences of SEQ tokens, targets = the next token (the last one of each ignored). */
const TOKENS = [1, 5, 2, 9, 3, 7, 6, 0, 4, 10];
const TARGETS = [5, 2, 9, 3, -1, 6, 0, 4, 10, -1];

function tinyModel(be: Backend, seed: number) {
  let n = 0;
  const param = (name: string, shape: number[], scale: number, offset = 0, decay = true): Parameter =>
    Parameter.fromValues(be, name, shape, randomValues(shape.reduce((a, b) => a * b, 1), seed * 1000 + n++, scale, offset), { decay });
  const layers = [0, 1].map((l) => ({
    attnNorm: param(`blk.${l}.attn_norm`, [DIM], 0, 1, false),
    wq: param(`blk.${l}.wq`, [DIM, DIM], 0.25),
    wk: param(`blk.${l}.wk`, [DIM / 2, DIM], 0.25),
    wv: param(`blk.${l}.wv`, [DIM / 2, DIM], 0.25),
    wo: param(`blk.${l}.wo`, [DIM, DIM], 0.25),
    ffnNorm: param(`blk.${l}.ffn_norm`, [DIM], 0, 1, false),
    gate: param(`blk.${l}.gate`, [HIDDEN, DIM], 0.25),
    up: param(`blk.${l}.up`, [HIDDEN, DIM], 0.25),
    down: param(`blk.${l}.down`, [DIM, HIDDEN], 0.2),
  }));
  const embed = param('embed', [VOCAB, DIM], 1);
  const outNorm = param('out_norm', [DIM], 0, 1, false);
  const output = param('output', [VOCAB, DIM], 0.25);
  const params = [embed, outNorm, output, ...layers.flatMap((l) => Object.values(l))];

  const hiddenOf = (t: Tape): Var => {
    let x = ag.embedding(t, embed, TOKENS);
    for (const w of layers) {
      const h = ag.rmsnorm(t, x, w.attnNorm, 1e-5);
      const q = ag.rope(t, ag.matmul(t, h, w.wq), rope, SEQ);
      const k = ag.rope(t, ag.matmul(t, h, w.wk), { ...rope, nHead: 2 }, SEQ);
      const v = ag.matmul(t, h, w.wv);
      x = ag.add(t, x, ag.matmul(t, ag.attention(t, q, k, v, attn), w.wo));
      const f = ag.rmsnorm(t, x, w.ffnNorm, 1e-5);
      x = ag.add(t, x, ag.matmul(t, ag.swiglu(t, ag.matmul(t, f, w.gate), ag.matmul(t, f, w.up)), w.down));
    }
    return x;
  };
  return {
    params,
    output,
    targets: TARGETS,
    hiddenOf,
    forward: (t: Tape): Var => ag.matmul(t, ag.rmsnorm(t, hiddenOf(t), outNorm, 1e-5), output),
    dispose: () => params.forEach((p) => p.dispose()),
  };
}

/** Adam (no decay), written out: m, v per parameter element. */
function adam(params: Parameter[], lr: number) {
  const state = params.map((p) => ({ m: new Float32Array(p.value.numel), v: new Float32Array(p.value.numel) }));
  let step = 0;
  return () => {
    step++;
    params.forEach((p, i) => {
      const { data, grad } = p.optimParam();
      const { m, v } = state[i]!;
      for (let j = 0; j < data.length; j++) {
        m[j] = 0.9 * m[j]! + 0.1 * grad[j]!;
        v[j] = 0.999 * v[j]! + 0.001 * grad[j]! ** 2;
        data[j] = data[j]! - (lr * (m[j]! / (1 - 0.9 ** step))) / (Math.sqrt(v[j]! / (1 - 0.999 ** step)) + 1e-8);
      }
      p.zeroGrad();
    });
  };
}

/** Train the tiny model on its one batch; the losses of each step. */
function overfit(be: Backend, steps: number): number[] {
  const model = tinyModel(be, 3);
  const step = adam(model.params, 2e-2);
  const t = new Tape(be);
  const losses: number[] = [];
  for (let i = 0; i < steps; i++) {
    const loss = ag.crossEntropy(t, model.forward(t), model.targets);
    losses.push(loss.item());
    t.backward(loss);
    t.dispose();
    step();
  }
  model.dispose();
  return losses;
}

describe('autograd: a tiny two-layer Llama-style model overfits one batch', () => {
  const wasm = createWasmBackend({ threads: 1 });
  afterAll(async () => (await wasm).dispose());

  it('on the reference backend', () => {
    const losses = overfit(ref, 40);
    expect(losses[0]).toBeGreaterThan(1.5);
    expect(losses.at(-1)).toBeLessThan(0.05);
  });

  it('on the wasm backend (its SIMD training kernels), to the same losses', async () => {
    const be = await wasm;
    const baseline = be.allocatedBytes;
    const losses = overfit(be, 40);
    expect(losses.at(-1)).toBeLessThan(0.05);
    const reference = overfit(ref, 1);
    // the wasm kernels round differently (f32 sums): the runs agree closely, not bit for bit
    expect(Math.abs(losses[0]! - reference[0]!)).toBeLessThan(1e-4);
    expect(be.allocatedBytes).toBe(baseline);
  });
});
