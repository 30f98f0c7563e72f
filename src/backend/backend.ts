/**
 * The kernel interface every backend implements (reference, wasm, native; later webgpu).
 *
 * Kernels take tensors that live in the backend's own memory (allocate them with `alloc`), write
 * into an `out` tensor the caller provides, and assume valid shapes: `ops` checks shapes once,
 * above this layer. Activations are f32; weights may be any DType.
 *
 * Numerics follow ggml's CPU backend so results match llama.cpp:
 * - f32 weights: f32 activations, f32 accumulation.
 * - f16 / bf16 weights: each activation row is rounded to f16 / bf16 first.
 * - q8_0 / q4_0 weights: each activation row is quantized to Q8_0 first (see tensor/quant.ts),
 *   then blocks are multiplied with integer dot products and scaled by both block scales.
 * - q5_0 weights: the same, with Q8_0 activations. q4_1 / q5_1 weights (d·q + m): Q8_1
 *   activations, and per block d_w·d_x·Σ q_w·q_x + m_w·s_x (see tensor/quant-legacy.ts).
 * - q4_k / q5_k / q6_k weights: each activation row is quantized to Q8_K first, then each
 *   256-value super-block gives ggml's integer sums (see tensor/quant-k.ts dotQ8_K), scaled by
 *   d·d_x (and dmin·d_x for the mins).
 * - f16 KV cache: the query is rounded to f16 for Q·K, and the softmax weights are rounded to
 *   f16 before they multiply V.
 * - q8_0 KV cache (llama.cpp `-ctk q8_0 -ctv q8_0`, which runs ggml's flash-attention kernel):
 *   each cache row (nKvHead·headDim values) is stored as Q8_0 blocks of 32 along the row,
 *   quantized with the activation quantizer (scale amax/127 stored as f16, round-half-even).
 *   For Q·K the query head is quantized with the same quantizer in blocks that line up with the
 *   key row's blocks (its values laid over the blocks its KV head spans, zeros elsewhere, which
 *   is ggml's per-head quantization whenever headDim is a multiple of 32); each block gives an
 *   exact integer dot product times d_k·d_q, summed in f32. The softmax is the f32 cache's
 *   (unnormalised f32 weights exp(s − max), nothing rounded to f16); V rows are dequantized to
 *   f32 (d·q, exact) and accumulated in f32, then divided by the sum.
 */
import type { DType } from '../tensor/dtype.js';
import type { Shape, Tensor } from '../tensor/tensor.js';

export type BackendName = 'reference' | 'wasm' | 'native';
/** What a caller may ask for: a backend, or 'auto' (native where it is built and fast here, else wasm). */
export type BackendChoice = BackendName | 'auto';

export interface RopeParams {
  nHead: number;
  headDim: number;
  /** Leading dimensions of each head that rotate (≤ headDim; the rest pass through). */
  nRot: number;
  /** Frequency base θ: dimension pair i turns at pos · θ^(−2i/nRot). */
  theta: number;
  /** false: rotate adjacent pairs (x[2i], x[2i+1]) (GGUF llama, llama2.c); true: NeoX halves (x[i], x[i+nRot/2]). */
  neox: boolean;
}

export interface AttentionParams {
  nHead: number;
  /** KV heads; nHead must be a multiple of it (GQA; MQA when 1). Query head h reads KV head h / (nHead / nKvHead). */
  nKvHead: number;
  headDim: number;
  /** Position of the first query row. Query row i sits at pos + i and attends to cache rows 0..pos+i (causal). */
  pos: number;
  /** Score scale, usually 1/sqrt(headDim). */
  scale: number;
}

/**
 * Attention for training: rows are B sequences of seqLen tokens laid end to end (q [B·seqLen,
 * nHead·headDim], k and v [B·seqLen, nKvHead·headDim], all f32), and each sequence attends
 * causally to itself from position 0 (row t of a sequence sees its rows 0..t).
 */
export interface TrainAttentionParams {
  nHead: number;
  /** KV heads; nHead must be a multiple of it (GQA). Query head h reads KV head h / (nHead / nKvHead). */
  nKvHead: number;
  headDim: number;
  /** Tokens per sequence; the row count is a multiple of it. */
  seqLen: number;
  /** Score scale, usually 1/sqrt(headDim). */
  scale: number;
}

export interface Backend {
  readonly name: BackendName;
  readonly threads: number;
  /** Most bytes of tensors this backend can hold (wasm32: 4 GiB; Infinity where only the machine limits it). */
  readonly memoryLimit: number;

  /** A zero-filled tensor in this backend's memory. */
  alloc(dtype: DType, shape: Shape): Tensor;
  /** Return a tensor made by `alloc` (views must not be freed). */
  free(tensor: Tensor): void;
  /** Release threads and memory; the backend is unusable afterwards. */
  dispose(): void;

  /** out[m, n] = Σ_k x[m, k] · w[n, k]. out, x: f32 [M, ·]; w: [N, K] of any DType (row-major, rows of K). */
  matmul(out: Tensor, x: Tensor, w: Tensor): void;
  /** out[i, :] = table[ids[i], :] converted to f32 (embedding lookup). */
  getRows(out: Tensor, table: Tensor, ids: ArrayLike<number>): void;
  /** out[r, :] = x[r, :] / sqrt(mean(x[r, :]²) + eps) · weight. */
  rmsnorm(out: Tensor, x: Tensor, weight: Tensor, eps: number): void;
  /** Rotary embedding in place on x [rows, nHead·headDim]; row r is at position pos + r. */
  rope(x: Tensor, pos: number, params: RopeParams): void;
  /** Softmax of each row, in place. */
  softmax(x: Tensor): void;
  /** out = silu(gate) · up, element-wise (the SwiGLU feed-forward's gate). */
  swiglu(out: Tensor, gate: Tensor, up: Tensor): void;
  /** out = gelu(x) (tanh approximation, as ggml). */
  gelu(out: Tensor, x: Tensor): void;
  /** out = a + b, element-wise (same shapes). */
  add(out: Tensor, a: Tensor, b: Tensor): void;
  /** out = a · b, element-wise (same shapes). */
  mul(out: Tensor, a: Tensor, b: Tensor): void;
  /** Write the f32 rows of src into dst (f32, f16 or q8_0) starting at row `start` (KV cache writes). */
  setRows(dst: Tensor, start: number, src: Tensor): void;
  /**
   * Causal attention of q [M, nHead·headDim] over the cache k, v [ctx, nKvHead·headDim] (f32, f16
   * or q8_0), into out [M, nHead·headDim]. A tiled online softmax: no M × ctx score matrix is formed.
   */
  attention(out: Tensor, q: Tensor, k: Tensor, v: Tensor, params: AttentionParams): void;
  // ---- GPT-2 style layers (also used by inference) ----
  /**
   * out[r, :] = (x[r, :] − mean) / sqrt(var + eps) · weight + bias (LayerNorm, GPT-2). The mean is
   * an f64 sum rounded to f32, centred values are f32, the variance an f64 sum; (x − mean)·scale is
   * rounded to f32, then times weight and plus bias in f32 (ggml's norm, mul, add).
   */
  layernorm(out: Tensor, x: Tensor, weight: Tensor, bias: Tensor, eps: number): void;
  /** out[r, :] = x[r, :] + row[:] (a bias added to every row). */
  addRows(out: Tensor, x: Tensor, row: Tensor): void;

  /** Bytes of the tensors `alloc` returned that are not freed yet (not counting a backend's own scratch). */
  readonly allocatedBytes: number;


  // ---- training kernels ----
  // All f32. Convention: gradients of activations (dx, dq, dgate, ...) are OVERWRITTEN; gradients
  // of parameters (dw, dweight, dbias, dtable) are ACCUMULATED (+=), so gradient accumulation over
  // micro-batches and weights used twice (tied embeddings) need no extra adds. Reductions are
  // exact sums in any order the backend likes (the reference takes them in float64); the backward
  // kernels differentiate the exact-math forward (the forward's f32 roundings are ignored).
  /** dx[M, K] = dy[M, N] · w[N, K] (the input gradient of matmul; w of any DType, dequantized). */
  matmulInputGrad(dx: Tensor, dy: Tensor, w: Tensor): void;
  /** dw[N, K] += dy[M, N]ᵀ · x[M, K] (the weight gradient of matmul). */
  matmulWeightGrad(dw: Tensor, dy: Tensor, x: Tensor): void;
  /** dtable[ids[i], :] += dy[i, :] (the gradient of getRows; repeated ids add up). */
  getRowsBackward(dtable: Tensor, dy: Tensor, ids: ArrayLike<number>): void;
  /** out[c] += Σ_r x[r, c] (column sums: the gradient of a bias added with addRows). */
  sumRows(out: Tensor, x: Tensor): void;
  /** Backward of rmsnorm: dx overwritten, dweight accumulated. */
  rmsnormBackward(dx: Tensor, dweight: Tensor, dy: Tensor, x: Tensor, weight: Tensor, eps: number): void;
  /** Backward of layernorm: dx overwritten, dweight and dbias accumulated. */
  layernormBackward(dx: Tensor, dweight: Tensor, dbias: Tensor, dy: Tensor, x: Tensor, weight: Tensor, eps: number): void;
  /** Backward of rope, in place on dx: the same rotation by −angle (rows at positions pos + r). */
  ropeBackward(dx: Tensor, pos: number, params: RopeParams): void;
  /** Backward of swiglu: dgate = dy · up · silu'(gate), dup = dy · silu(gate). */
  swigluBackward(dgate: Tensor, dup: Tensor, dy: Tensor, gate: Tensor, up: Tensor): void;
  /** Backward of gelu (the tanh form): dx = dy · gelu'(x). */
  geluBackward(dx: Tensor, dy: Tensor, x: Tensor): void;
  /**
   * Softmax + negative log-likelihood per row, fused: losses[r] = logsumexp(logits[r, :]) −
   * logits[r, targets[r]], and dlogits[r, :] = (softmax(logits[r, :]) − onehot(targets[r])) · scale.
   * A target of −1 is ignored: loss 0, gradient row 0. dlogits may be the logits tensor (in place).
   */
  crossEntropy(losses: Tensor, dlogits: Tensor, logits: Tensor, targets: ArrayLike<number>, scale: number): void;
  /**
   * Causal attention for training (see TrainAttentionParams) into out [B·T, nHead·headDim], also
   * writing lse [B·T, nHead]: each (row, head)'s log-sum-exp of its scaled scores (natural log),
   * which is all the backward needs to recompute the probabilities. No T × T matrix is stored.
   */
  attentionTrain(out: Tensor, lse: Tensor, q: Tensor, k: Tensor, v: Tensor, params: TrainAttentionParams): void;
  /**
   * Backward of attentionTrain (flash-attention 2): with P recomputed from lse and
   * D[row, head] = Σ dout·out, dS = P ∘ (dout·Vᵀ − D); dq = scale·dS·K, dk = scale·dSᵀ·Q (summed
   * over the query heads sharing a KV head), dv = Pᵀ·dout. dq, dk, dv are overwritten.
   */
  attentionBackward(dq: Tensor, dk: Tensor, dv: Tensor, dout: Tensor, out: Tensor, lse: Tensor, q: Tensor, k: Tensor, v: Tensor, params: TrainAttentionParams): void;
  /**
   * Inverted dropout: out[i] = keep ? f32(x[i] · f32(1 / (1 − p))) : 0, where keep is a pure
   * function of (seed, i) (dropoutKeep in train-kernels.ts: a 32-bit integer hash, the same on
   * every backend and thread count). The backward is the same call on the gradient.
   */
  dropout(out: Tensor, x: Tensor, p: number, seed: number): void;
  /** Σ x[i]² (in float64 where the backend can), e.g. for the global gradient norm. */
  sumSquares(x: Tensor): number;
  /** x[i] = f32(x[i] · s), in place. */
  scale(x: Tensor, s: number): void;
}
