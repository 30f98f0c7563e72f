/**
 * Differentiable functions: each computes its forward with an op from src/ops (the op set
 * inference uses) and records its backward right next to it, tfjs-style, one gradient per op.
 * Every function takes the tape first (as ops take the backend first) and returns a new Var
 * whose value the tape owns (tape.ts states the ownership rules).
 *
 * Layout: activations are row-major [rows, features]; a batch of B sequences of T tokens is
 * B·T rows. Attention and RoPE take the sequence length to find sequence boundaries, so no
 * transposes or per-head reshapes are ever needed.
 */
import type { RopeParams, TrainAttentionParams } from '../backend/backend.js';
import * as ops from '../ops/index.js';
import type { Shape } from '../tensor/tensor.js';
import type { Tape, Var } from './tape.js';

/** The same values under another shape (a view: no copy, no memory). */
export function reshape(t: Tape, x: Var, shape: Shape): Var {
  return t.record('reshape', [x], x.value.view(shape), (dy, g) => g.add(x, dy));
}

/** a + b (same shapes): residual connections. */
export function add(t: Tape, a: Var, b: Var): Var {
  const y = t.alloc(a.shape);
  ops.add(t.be, y, a.value, b.value);
  return t.record('add', [a, b], y, (dy, g) => {
    g.add(b, dy);
    g.add(a, dy);
  });
}

/** a · b, element-wise (same shapes). */
export function mul(t: Tape, a: Var, b: Var): Var {
  const y = t.alloc(a.shape);
  ops.mul(t.be, y, a.value, b.value);
  return t.record('mul', [a, b], y, (dy, g) => {
    if (a.requiresGrad) ops.mul(g.be, g.fresh(a), dy, b.value);
    if (b.requiresGrad) ops.mul(g.be, g.fresh(b), dy, a.value);
  });
}

/** x[…, K] · w[N, K]ᵀ → […, N]: the inference layout (weights are rows of K). */
export function matmul(t: Tape, x: Var, w: Var): Var {
  const y = t.alloc([...x.shape.slice(0, -1), w.value.rowCount]);
  ops.matmul(t.be, y, x.value, w.value);
  return t.record('matmul', [x, w], y, (dy, g) => {
    if (w.requiresGrad) ops.matmulWeightGrad(g.be, g.acc(w), dy, x.value);
    if (x.requiresGrad) ops.matmulInputGrad(g.be, g.fresh(x), dy, w.value);
  });
}

/** Rows `ids` of table [V, D] → [ids.length, D] (token or position embeddings). */
export function embedding(t: Tape, table: Var, ids: ArrayLike<number>): Var {
  const rows = Int32Array.from(ids); // the backward reads them later: a copy the caller cannot change
  const y = t.alloc([rows.length, table.value.rowLength]);
  ops.getRows(t.be, y, table.value, rows);
  return t.record('embedding', [table], y, (dy, g) => ops.getRowsBackward(g.be, g.acc(table), dy, rows));
}

/** x[r, :] + bias (bias [D]). */
export function addBias(t: Tape, x: Var, bias: Var): Var {
  const y = t.alloc(x.shape);
  ops.addRows(t.be, y, x.value, bias.value);
  return t.record('addBias', [x, bias], y, (dy, g) => {
    if (bias.requiresGrad) ops.sumRows(g.be, g.acc(bias), dy);
    g.add(x, dy);
  });
}

export function rmsnorm(t: Tape, x: Var, weight: Var, eps: number): Var {
  const y = t.alloc(x.shape);
  ops.rmsnorm(t.be, y, x.value, weight.value, eps);
  return t.record('rmsnorm', [x, weight], y, (dy, g) => {
    ops.rmsnormBackward(g.be, g.fresh(x), g.acc(weight), dy, x.value, weight.value, eps);
  });
}

export function layernorm(t: Tape, x: Var, weight: Var, bias: Var, eps: number): Var {
  const y = t.alloc(x.shape);
  ops.layernorm(t.be, y, x.value, weight.value, bias.value, eps);
  return t.record('layernorm', [x, weight, bias], y, (dy, g) => {
    ops.layernormBackward(g.be, g.fresh(x), g.acc(weight), g.acc(bias), dy, x.value, weight.value, eps);
  });
}

/** Rotary embedding of x [B·seqLen, nHead·headDim]: each sequence's rows at positions 0..seqLen−1. */
export function rope(t: Tape, x: Var, p: RopeParams, seqLen: number): Var {
  const rows = x.value.rowCount;
  if (rows % seqLen !== 0) throw new Error(`rope: ${rows} rows are not whole sequences of ${seqLen}`);
  const y = t.alloc(x.shape);
  ops.setRows(t.be, y, 0, x.value); // the kernel rotates in place: rotate a copy
  for (let s = 0; s < rows; s += seqLen) ops.rope(t.be, y.rows(s, seqLen), 0, p);
  return t.record('rope', [x], y, (dy, g) => {
    const dx = g.fresh(x);
    ops.setRows(g.be, dx, 0, dy);
    for (let s = 0; s < rows; s += seqLen) ops.ropeBackward(g.be, dx.rows(s, seqLen), 0, p);
  });
}

/**
 * Fused causal self-attention with GQA over B sequences (TrainAttentionParams): q [B·T, H·hd],
 * k and v [B·T, Hkv·hd] → [B·T, H·hd]. Saves only the per-(row, head) log-sum-exp; the backward
 * recomputes the probabilities (flash-attention 2), so no T × T matrix is ever kept.
 */
export function attention(t: Tape, q: Var, k: Var, v: Var, p: TrainAttentionParams): Var {
  const y = t.alloc(q.shape);
  const lse = t.alloc([q.value.rowCount, p.nHead]);
  ops.attentionTrain(t.be, y, lse, q.value, k.value, v.value, p);
  return t.record('attention', [q, k, v], y, (dy, g) => {
    ops.attentionBackward(g.be, g.fresh(q), g.fresh(k), g.fresh(v), dy, y, lse, q.value, k.value, v.value, p);
  }, [lse]);
}

/** silu(gate) · up (the SwiGLU feed-forward). */
export function swiglu(t: Tape, gate: Var, up: Var): Var {
  const y = t.alloc(gate.shape);
  ops.swiglu(t.be, y, gate.value, up.value);
  return t.record('swiglu', [gate, up], y, (dy, g) => {
    ops.swigluBackward(g.be, g.fresh(gate), g.fresh(up), dy, gate.value, up.value);
  });
}

/** gelu(x), the tanh approximation (GPT-2). */
export function gelu(t: Tape, x: Var): Var {
  const y = t.alloc(x.shape);
  ops.gelu(t.be, y, x.value);
  return t.record('gelu', [x], y, (dy, g) => ops.geluBackward(g.be, g.fresh(x), dy, x.value));
}

/**
 * Inverted dropout with rate p. The mask is a pure function of (seed, element index), so nothing
 * is stored: the backward applies the same mask to dy. Give each call its own seed (e.g. from the
 * step and the layer). p = 0 (evaluation) returns x itself.
 */
export function dropout(t: Tape, x: Var, p: number, seed: number): Var {
  if (p === 0) return x;
  const y = t.alloc(x.shape);
  ops.dropout(t.be, y, x.value, p, seed);
  return t.record('dropout', [x], y, (dy, g) => ops.dropout(g.be, g.fresh(x), dy, p, seed));
}

/**
 * Mean softmax cross-entropy of logits [M, V] against targets (M token ids; −1 = ignored, e.g. a
 * prompt token in fine-tuning), as a one-value Var. The fused kernel computes the gradient in the
 * forward pass; it is kept (one logits-sized tensor) and handed to the logits as their gradient.
 */
export function crossEntropy(t: Tape, logits: Var, targets: ArrayLike<number>): Var {
  const M = logits.value.rowCount;
  let counted = 0;
  for (let i = 0; i < targets.length; i++) if (targets[i] !== -1) counted++;
  const dlogits = t.alloc(logits.shape);
  const losses = t.alloc([M]);
  ops.crossEntropy(t.be, losses, dlogits, logits.value, targets, counted ? 1 / counted : 0);
  let sum = 0;
  for (const l of losses.f32()) sum += l;
  t.release(losses);
  const loss = t.alloc([1]);
  loss.f32()[0] = counted ? sum / counted : 0;
  return t.record('crossEntropy', [logits], loss, (dy, g) => {
    const s = dy.f32()[0]!;
    if (s !== 1) ops.scale(g.be, dlogits, s);
    g.add(logits, dlogits);
  }, [dlogits]);
}
