// Training kernels (src/backend/backend.ts defines them; src/backend/train-kernels.ts is the
// float64 oracle). f32 arithmetic in SIMD, with the reductions taken so that every output element
// has one fixed sequence of operations whatever the thread split:
//   - row kernels (norm backward, cross-entropy) write only their own rows;
//   - column sums (bias and norm-weight gradients, sumRows) split the COLUMNS across threads and
//     walk all rows in order, so no partial sums are merged;
//   - getRowsBackward splits the TABLE rows: each thread scans every id and adds the ones it owns;
//   - attention's backward splits by (sequence, KV head), so one thread owns each dk/dv row;
//   - sum_squares writes one f64 partial per fixed chunk, summed in order by the caller.
// The matmul gradients are the forward matmul kernels on transposed operands (transpose below).
import { expf4, hsum, hsum4, load1, madd, store1 } from './simd';
import { scaleF64 } from './elementwise';

// ---- transpose (for the matmul gradients) -------------------------------------------------------

/** dst[c, r] = src[r, c] for src [rows, cols] f32, dst rows c in [c0, c1); 4 × 4 blocks in registers. */
export function transpose(dst: usize, src: usize, rows: i32, cols: i32, c0: i32, c1: i32): void {
  const srcStride = <usize>cols << 2;
  const dstStride = <usize>rows << 2;
  let c = c0;
  for (; c + 4 <= c1; c += 4) {
    let r = 0;
    for (; r + 4 <= rows; r += 4) {
      const s = src + <usize>r * srcStride + (<usize>c << 2);
      const a = v128.load(s);
      const b = v128.load(s + srcStride);
      const e = v128.load(s + 2 * srcStride);
      const f = v128.load(s + 3 * srcStride);
      const ab0 = v128.shuffle<f32>(a, b, 0, 4, 1, 5);
      const ab1 = v128.shuffle<f32>(a, b, 2, 6, 3, 7);
      const ef0 = v128.shuffle<f32>(e, f, 0, 4, 1, 5);
      const ef1 = v128.shuffle<f32>(e, f, 2, 6, 3, 7);
      const d = dst + <usize>c * dstStride + (<usize>r << 2);
      v128.store(d, v128.shuffle<i64>(ab0, ef0, 0, 2));
      v128.store(d + dstStride, v128.shuffle<i64>(ab0, ef0, 1, 3));
      v128.store(d + 2 * dstStride, v128.shuffle<i64>(ab1, ef1, 0, 2));
      v128.store(d + 3 * dstStride, v128.shuffle<i64>(ab1, ef1, 1, 3));
    }
    for (; r < rows; r++) {
      for (let j = 0; j < 4; j++) store<f32>(dst + <usize>(c + j) * dstStride + (<usize>r << 2), load<f32>(src + <usize>r * srcStride + (<usize>(c + j) << 2)));
    }
  }
  for (; c < c1; c++) {
    for (let r = 0; r < rows; r++) store<f32>(dst + <usize>c * dstStride + (<usize>r << 2), load<f32>(src + <usize>r * srcStride + (<usize>c << 2)));
  }
}

// ---- vector helpers ------------------------------------------------------------------------------

/** Σ a[i]·b[i] over n values: one 4-lane accumulator, hsum, then the tail in order. */
// @ts-ignore: decorator
@inline function dot(a: usize, b: usize, n: i32): f32 {
  let acc = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) acc = madd(v128.load(a + (<usize>i << 2)), v128.load(b + (<usize>i << 2)), acc);
  let s = hsum(acc);
  for (; i < n; i++) s += load<f32>(a + (<usize>i << 2)) * load<f32>(b + (<usize>i << 2));
  return s;
}

/**
 * [a·b0, a·b1, a·b2, a·b3] over n values: one accumulator per key, reduced by hsum4 (each lane in
 * hsum's order), then the tail added in order, as dot does.
 */
// @ts-ignore: decorator
@inline function dots4(a: usize, b0: usize, b1: usize, b2: usize, b3: usize, n: i32): v128 {
  let s0 = f32x4.splat(0);
  let s1 = s0;
  let s2 = s0;
  let s3 = s0;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const at = <usize>i << 2;
    const av = v128.load(a + at);
    s0 = madd(av, v128.load(b0 + at), s0);
    s1 = madd(av, v128.load(b1 + at), s1);
    s2 = madd(av, v128.load(b2 + at), s2);
    s3 = madd(av, v128.load(b3 + at), s3);
  }
  let s = hsum4(s0, s1, s2, s3);
  for (; i < n; i++) {
    const at = <usize>i << 2;
    const bv = f32x4.replace_lane(f32x4.replace_lane(f32x4.replace_lane(f32x4.splat(load<f32>(b0 + at)), 1, load<f32>(b1 + at)), 2, load<f32>(b2 + at)), 3, load<f32>(b3 + at));
    s = f32x4.add(s, f32x4.mul(v128.load32_splat(a + at), bv));
  }
  return s;
}

/**
 * The scaled scores of query row qp against keys j0..j0+3 of a sequence (kvW bytes apart from k0),
 * only the first `valid` real: the others repeat the last real key and are the caller's to drop.
 */
// @ts-ignore: decorator
@inline function keyScores4(qp: usize, k0: usize, kvW: usize, j0: i32, valid: i32, hd: i32): v128 {
  const p0 = k0 + <usize>j0 * kvW;
  const p1 = p0 + (valid > 1 ? kvW : 0);
  const p2 = p0 + <usize>min(2, valid - 1) * kvW;
  const p3 = p0 + <usize>min(3, valid - 1) * kvW;
  return dots4(qp, p0, p1, p2, p3, hd);
}

/** y[i] += s·x[i] over n values (the tail with the vector arithmetic on one lane). */
// @ts-ignore: decorator
@inline function axpy(y: usize, s: f32, x: usize, n: i32): void {
  const sv = f32x4.splat(s);
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(y + (<usize>i << 2), madd(sv, v128.load(x + (<usize>i << 2)), v128.load(y + (<usize>i << 2))));
  for (; i < n; i++) store1(y + (<usize>i << 2), madd(sv, load1(x + (<usize>i << 2)), load1(y + (<usize>i << 2))));
}

/**
 * ln x for finite x > 0, to about 1e-16 relative. Not Math.log: AssemblyScript's brings a lookup
 * table as a data segment, and this module must have no static data (the heap owns all memory).
 * x = 2^e · m with m in [√½, √2), ln m = 2·atanh(s) with s = (m − 1)/(m + 1), |s| < 0.172.
 */
function log(x: f64): f64 {
  let bits = reinterpret<u64>(x);
  let e = <i32>(bits >> 52) - 1023;
  bits = (bits & 0x000fffffffffffff) | 0x3ff0000000000000;
  let m = reinterpret<f64>(bits);
  if (m > 1.4142135623730951) {
    m *= 0.5;
    e++;
  }
  const s = (m - 1) / (m + 1);
  const s2 = s * s;
  let p = 1.0 / 21;
  for (let k = 19; k >= 1; k -= 2) p = p * s2 + 1.0 / <f64>k;
  return <f64>e * 0.6931471805599453 + 2 * s * p;
}

/** 1 / (1 + e^−x) per lane. */
// @ts-ignore: decorator
@inline function sigmoid4(x: v128): v128 {
  return f32x4.div(f32x4.splat(1), f32x4.add(f32x4.splat(1), expf4(f32x4.neg(x))));
}

// ---- column sums -----------------------------------------------------------------------------------
// Columns [c0, c1) (the caller's grain keeps slices a multiple of 4 apart from the last), in blocks
// of COL_BLOCK held in registers while every row goes past, in order.

const COL_BLOCK: i32 = 16;

/** out[c] += Σ_r x[r, c] (f32 sums over the rows in order) for columns [c0, c1) of D. */
export function sum_rows(out: usize, x: usize, rows: i32, D: i32, c0: i32, c1: i32): void {
  colSums(out, x, 0, 0, rows, D, c0, c1);
}

/**
 * out[c] += Σ_r dy[r, c] · (x[r, c] − mean_r) · rstd_r for columns [c0, c1): the weight gradient
 * of layernorm and (mean 0) rmsnorm. stats: per row (mean, rstd) as f32 pairs.
 */
export function norm_weight_grad(out: usize, dy: usize, x: usize, stats: usize, rows: i32, D: i32, c0: i32, c1: i32): void {
  colSums(out, dy, x, stats, rows, D, c0, c1);
}

// @ts-ignore: decorator
@inline function colSums(out: usize, a: usize, x: usize, stats: usize, rows: i32, D: i32, c0: i32, c1: i32): void {
  const rowBytes = <usize>D << 2;
  let c = c0;
  for (; c + COL_BLOCK <= c1; c += COL_BLOCK) {
    let s0 = f32x4.splat(0);
    let s1 = s0;
    let s2 = s0;
    let s3 = s0;
    let p = a + (<usize>c << 2);
    let q = x + (<usize>c << 2);
    for (let r = 0; r < rows; r++) {
      if (x) {
        const m = v128.load32_splat(stats + (<usize>r << 3));
        const rs = v128.load32_splat(stats + (<usize>r << 3) + 4);
        s0 = madd(v128.load(p), f32x4.mul(f32x4.sub(v128.load(q), m), rs), s0);
        s1 = madd(v128.load(p, 16), f32x4.mul(f32x4.sub(v128.load(q, 16), m), rs), s1);
        s2 = madd(v128.load(p, 32), f32x4.mul(f32x4.sub(v128.load(q, 32), m), rs), s2);
        s3 = madd(v128.load(p, 48), f32x4.mul(f32x4.sub(v128.load(q, 48), m), rs), s3);
        q += rowBytes;
      } else {
        s0 = f32x4.add(s0, v128.load(p));
        s1 = f32x4.add(s1, v128.load(p, 16));
        s2 = f32x4.add(s2, v128.load(p, 32));
        s3 = f32x4.add(s3, v128.load(p, 48));
      }
      p += rowBytes;
    }
    const o = out + (<usize>c << 2);
    v128.store(o, f32x4.add(v128.load(o), s0));
    v128.store(o, f32x4.add(v128.load(o, 16), s1), 16);
    v128.store(o, f32x4.add(v128.load(o, 32), s2), 32);
    v128.store(o, f32x4.add(v128.load(o, 48), s3), 48);
  }
  // the rest one lane at a time, each column with the same arithmetic as in a block
  for (; c < c1; c++) {
    let s = f32x4.splat(0);
    let p = a + (<usize>c << 2);
    let q = x + (<usize>c << 2);
    for (let r = 0; r < rows; r++) {
      if (x) {
        const m = v128.load32_splat(stats + (<usize>r << 3));
        const rs = v128.load32_splat(stats + (<usize>r << 3) + 4);
        s = madd(load1(p), f32x4.mul(f32x4.sub(load1(q), m), rs), s);
        q += rowBytes;
      } else {
        s = f32x4.add(s, load1(p));
      }
      p += rowBytes;
    }
    const o = out + (<usize>c << 2);
    store1(o, f32x4.add(load1(o), s));
  }
}

// ---- norms ---------------------------------------------------------------------------------------

/**
 * dx for rows [r0, r1) of layernorm (rms = 0) or rmsnorm (rms = 1), and each row's (mean, rstd)
 * into stats for norm_weight_grad. With x̂ = (x − mean)·rstd and g = dy·w:
 * dx = rstd·(g − mean(g) − x̂·mean(g·x̂)) (rmsnorm: mean 0 and no mean(g) term). The moments are
 * taken in f64 as the forward kernels take them.
 */
export function norm_backward(dx: usize, stats: usize, dy: usize, x: usize, w: usize, D: i32, eps: f64, rms: i32, r0: i32, r1: i32): void {
  const rowBytes = <usize>D << 2;
  for (let r = r0; r < r1; r++) {
    const xp = x + <usize>r * rowBytes;
    const gp = dy + <usize>r * rowBytes;
    const op = dx + <usize>r * rowBytes;
    let mean: f32 = 0;
    if (!rms) {
      let sum: f64 = 0;
      for (let i = 0; i < D; i++) sum += <f64>load<f32>(xp + (<usize>i << 2));
      mean = <f32>(sum / <f64>D);
    }
    let ss: f64 = 0;
    for (let i = 0; i < D; i++) {
      const v = <f64>(load<f32>(xp + (<usize>i << 2)) - mean);
      ss += v * v;
    }
    const rstd = <f32>(1.0 / Math.sqrt(ss / <f64>D + eps));
    store<f32>(stats + (<usize>r << 3), mean);
    store<f32>(stats + (<usize>r << 3), rstd, 4);
    const mv = f32x4.splat(mean);
    const rv = f32x4.splat(rstd);
    // Σ g and Σ g·x̂
    let gs = f32x4.splat(0);
    let gx = gs;
    let i = 0;
    for (; i + 4 <= D; i += 4) {
      const at = <usize>i << 2;
      const g = f32x4.mul(v128.load(gp + at), v128.load(w + at));
      gs = f32x4.add(gs, g);
      gx = madd(g, f32x4.mul(f32x4.sub(v128.load(xp + at), mv), rv), gx);
    }
    for (; i < D; i++) {
      const at = <usize>i << 2;
      const g = f32x4.mul(load1(gp + at), load1(w + at));
      gs = f32x4.add(gs, g);
      gx = madd(g, f32x4.mul(f32x4.sub(load1(xp + at), mv), rv), gx);
    }
    const a = f32x4.splat(rms ? 0 : hsum(gs) / <f32>D);
    const b = f32x4.splat(hsum(gx) / <f32>D);
    i = 0;
    for (; i + 4 <= D; i += 4) {
      const at = <usize>i << 2;
      const xh = f32x4.mul(f32x4.sub(v128.load(xp + at), mv), rv);
      const g = f32x4.mul(v128.load(gp + at), v128.load(w + at));
      v128.store(op + at, f32x4.mul(rv, f32x4.sub(f32x4.sub(g, a), f32x4.mul(xh, b))));
    }
    for (; i < D; i++) {
      const at = <usize>i << 2;
      const xh = f32x4.mul(f32x4.sub(load1(xp + at), mv), rv);
      const g = f32x4.mul(load1(gp + at), load1(w + at));
      store1(op + at, f32x4.mul(rv, f32x4.sub(f32x4.sub(g, a), f32x4.mul(xh, b))));
    }
  }
}

// ---- activations -----------------------------------------------------------------------------------

/** gelu'(x)·dy with tanh(y) = 2s − 1, s = sigmoid(2y): gelu' = s + 2·x·s·(1 − s)·c·(1 + 3·0.044715·x²). */
// @ts-ignore: decorator
@inline function geluGrad4(d: v128, x: v128): v128 {
  const x2 = f32x4.mul(x, x);
  const c = f32x4.splat(0.7978845608028654);
  const y = f32x4.mul(c, madd(f32x4.mul(f32x4.splat(0.044715), x2), x, x));
  const s = sigmoid4(f32x4.add(y, y));
  const dy = f32x4.mul(c, madd(f32x4.splat(3 * 0.044715), x2, f32x4.splat(1)));
  const t = f32x4.mul(f32x4.mul(f32x4.add(x, x), f32x4.mul(s, f32x4.sub(f32x4.splat(1), s))), dy);
  return f32x4.mul(d, f32x4.add(s, t));
}

export function gelu_backward(dx: usize, dy: usize, x: usize, i0: i32, i1: i32): void {
  let i = <usize>i0 << 2;
  const end = <usize>i1 << 2;
  for (; i + 16 <= end; i += 16) v128.store(dx + i, geluGrad4(v128.load(dy + i), v128.load(x + i)));
  for (; i < end; i += 4) store1(dx + i, geluGrad4(load1(dy + i), load1(x + i)));
}

/** (dgate, dup) for four lanes: dup = dy·g·s, dgate = dy·u·s·(1 + g·(1 − s)), s = sigmoid(g). */
// @ts-ignore: decorator
@inline function swigluGrad4(dgate: usize, dup: usize, d: v128, g: v128, u: v128, lanes: i32): void {
  const s = sigmoid4(g);
  const du = f32x4.mul(f32x4.mul(d, g), s);
  const dg = f32x4.mul(f32x4.mul(f32x4.mul(d, u), s), madd(g, f32x4.sub(f32x4.splat(1), s), f32x4.splat(1)));
  if (lanes == 4) {
    v128.store(dup, du);
    v128.store(dgate, dg);
  } else {
    store1(dup, du);
    store1(dgate, dg);
  }
}

export function swiglu_backward(dgate: usize, dup: usize, dy: usize, gate: usize, up: usize, i0: i32, i1: i32): void {
  let i = <usize>i0 << 2;
  const end = <usize>i1 << 2;
  for (; i + 16 <= end; i += 16) swigluGrad4(dgate + i, dup + i, v128.load(dy + i), v128.load(gate + i), v128.load(up + i), 4);
  for (; i < end; i += 4) swigluGrad4(dgate + i, dup + i, load1(dy + i), load1(gate + i), load1(up + i), 1);
}

// ---- loss ----------------------------------------------------------------------------------------

/**
 * Rows [r0, r1) of the fused softmax + negative log-likelihood (targets: i32 per row, −1 ignored).
 * dlogits may be logits: the target's logit is read first, then each value before it is replaced.
 * The max and exp in f32, the sum and the log in f64.
 */
export function cross_entropy(losses: usize, dlogits: usize, logits: usize, targets: usize, V: i32, scale: f32, r0: i32, r1: i32): void {
  const rowBytes = <usize>V << 2;
  for (let r = r0; r < r1; r++) {
    const l = logits + <usize>r * rowBytes;
    const d = dlogits + <usize>r * rowBytes;
    const target = load<i32>(targets + (<usize>r << 2));
    if (target < 0) {
      store<f32>(losses + (<usize>r << 2), 0);
      memory.fill(d, 0, rowBytes);
      continue;
    }
    const picked = load<f32>(l + (<usize>target << 2));
    let mv = f32x4.splat(-Infinity);
    let i = 0;
    for (; i + 4 <= V; i += 4) mv = f32x4.max(mv, v128.load(l + (<usize>i << 2)));
    let m = max(max(f32x4.extract_lane(mv, 0), f32x4.extract_lane(mv, 1)), max(f32x4.extract_lane(mv, 2), f32x4.extract_lane(mv, 3)));
    for (; i < V; i++) m = max(m, load<f32>(l + (<usize>i << 2)));
    const ms = f32x4.splat(m);
    // e = exp(l − max) into d, summed in f64
    let sum: f64 = 0;
    i = 0;
    for (; i + 4 <= V; i += 4) {
      const e = expf4(f32x4.sub(v128.load(l + (<usize>i << 2)), ms));
      v128.store(d + (<usize>i << 2), e);
      sum += <f64>f32x4.extract_lane(e, 0) + <f64>f32x4.extract_lane(e, 1) + <f64>f32x4.extract_lane(e, 2) + <f64>f32x4.extract_lane(e, 3);
    }
    for (; i < V; i++) {
      const e = f32x4.extract_lane(expf4(f32x4.sub(load1(l + (<usize>i << 2)), ms)), 0);
      store<f32>(d + (<usize>i << 2), e);
      sum += <f64>e;
    }
    store<f32>(losses + (<usize>r << 2), <f32>(<f64>m + log(sum) - <f64>picked));
    const k = f32x4.splat(<f32>(<f64>scale / sum));
    i = 0;
    for (; i + 4 <= V; i += 4) v128.store(d + (<usize>i << 2), f32x4.mul(v128.load(d + (<usize>i << 2)), k));
    for (; i < V; i++) store<f32>(d + (<usize>i << 2), load<f32>(d + (<usize>i << 2)) * f32x4.extract_lane(k, 0));
    const t = d + (<usize>target << 2);
    store<f32>(t, load<f32>(t) - scale);
  }
}

// ---- embedding, dropout, tensor-wide helpers ----------------------------------------------------------

/**
 * dtable[ids[i], :] += dy[i, :] for the ids in table rows [t0, t1) (ids: n × i32): each thread
 * scans every id and adds the rows it owns, in order of i.
 */
export function get_rows_backward(dtable: usize, dy: usize, ids: usize, n: i32, D: i32, t0: i32, t1: i32): void {
  const rowBytes = <usize>D << 2;
  for (let i = 0; i < n; i++) {
    const id = load<i32>(ids + (<usize>i << 2));
    if (id < t0 || id >= t1) continue;
    const o = dtable + <usize>id * rowBytes;
    const s = dy + <usize>i * rowBytes;
    let c: usize = 0;
    for (; c + 16 <= rowBytes; c += 16) v128.store(o + c, f32x4.add(v128.load(o + c), v128.load(s + c)));
    for (; c < rowBytes; c += 4) store<f32>(o + c, load<f32>(o + c) + load<f32>(s + c));
  }
}

/** The 32-bit hash dropoutKeep uses (train-kernels.ts mix32), on four lanes. */
// @ts-ignore: decorator
@inline function mix32x4(x: v128): v128 {
  x = v128.xor(x, i32x4.shr_u(x, 16));
  x = i32x4.mul(x, i32x4.splat(0x7feb352d));
  x = v128.xor(x, i32x4.shr_u(x, 15));
  x = i32x4.mul(x, i32x4.splat(<i32>0x846ca68b));
  return v128.xor(x, i32x4.shr_u(x, 16));
}

/**
 * out[i] = keep ? x[i]·scale : 0 on elements [i0, i1), keep = (mix32(mix32(seed) ^ i) >>> 8) ≥
 * threshold, where threshold = ceil(p·2²⁴): dropoutKeep's u ≥ p in integers, the same mask.
 */
export function dropout(out: usize, x: usize, seed: i32, threshold: i32, scale: f32, i0: i32, i1: i32): void {
  const key = i32x4.splat(i32x4.extract_lane(mix32x4(i32x4.splat(seed)), 0));
  const th = i32x4.splat(threshold);
  const sv = f32x4.splat(scale);
  let idx = i32x4.add(i32x4.splat(i0), i32x4(0, 1, 2, 3));
  let i = i0;
  for (; i + 4 <= i1; i += 4) {
    const keep = i32x4.ge_u(i32x4.shr_u(mix32x4(v128.xor(key, idx)), 8), th);
    const at = <usize>i << 2;
    v128.store(out + at, v128.and(f32x4.mul(v128.load(x + at), sv), keep));
    idx = i32x4.add(idx, i32x4.splat(4));
  }
  for (; i < i1; i++) {
    const keep = i32x4.ge_u(i32x4.shr_u(mix32x4(v128.xor(key, i32x4.splat(i))), 8), th);
    const at = <usize>i << 2;
    store1(out + at, v128.and(f32x4.mul(load1(x + at), sv), keep));
  }
}

/** Elements per sum_squares chunk: each chunk's f64 partial is written to partials[chunk]. */
const SQUARES_CHUNK: i32 = 4096;

/** partials[c] = Σ x[i]² (f64) over chunk c of n values, for chunks [c0, c1). */
export function sum_squares(partials: usize, x: usize, n: i32, c0: i32, c1: i32): void {
  for (let c = c0; c < c1; c++) {
    const end = min(n, (c + 1) * SQUARES_CHUNK);
    let acc = f64x2.splat(0);
    let i = c * SQUARES_CHUNK;
    for (; i + 4 <= end; i += 4) {
      const v = v128.load(x + (<usize>i << 2));
      const lo = f64x2.promote_low_f32x4(v);
      const hi = f64x2.promote_low_f32x4(v128.shuffle<f32>(v, v, 2, 3, 0, 1));
      acc = f64x2.add(acc, f64x2.add(f64x2.mul(lo, lo), f64x2.mul(hi, hi)));
    }
    let s = f64x2.extract_lane(acc, 0) + f64x2.extract_lane(acc, 1);
    for (; i < end; i++) {
      const v = <f64>load<f32>(x + (<usize>i << 2));
      s += v * v;
    }
    store<f64>(partials + (<usize>c << 3), s);
  }
}

/** x[i] = f32(x[i] · s), the product in f64, on elements [i0, i1). */
export function scale(x: usize, s: f64, i0: i32, i1: i32): void {
  const sv = f64x2.splat(s);
  let i = <usize>i0 << 2;
  const end = <usize>i1 << 2;
  for (; i + 16 <= end; i += 16) v128.store(x + i, scaleF64(v128.load(x + i), sv));
  for (; i < end; i += 4) store1(x + i, scaleF64(load1(x + i), sv));
}

// ---- attention -------------------------------------------------------------------------------------
// Rows are B sequences of T tokens; q [B·T, nHead·hd], k and v [B·T, nKv·hd]. scores: per thread
// scratch of T floats (one row of scores at a time, never T × T).

/**
 * Forward over work items u = row · nHead + head in [u0, u1): scores over keys 0..t, softmax
 * (max and exp in f32, the sum in f32 in key order), out = Σ p·v / sum, lse = max + log(sum).
 */
export function attention_train(out: usize, lse: usize, q: usize, k: usize, v: usize, nHead: i32, nKv: i32, hd: i32, T: i32, scale: f32, scratch: usize, u0: i32, u1: i32, tid: i32): void {
  const scores = scratch + <usize>tid * (<usize>align4(T) << 2);
  const qW = <usize>(nHead * hd) << 2;
  const kvW = <usize>(nKv * hd) << 2;
  const group = nHead / nKv;
  for (let u = u0; u < u1; u++) {
    const row = u / nHead;
    const h = u % nHead;
    const t = row % T;
    const row0 = row - t;
    const kvCol = <usize>((h / group) * hd) << 2;
    const qp = q + <usize>row * qW + (<usize>(h * hd) << 2);
    const k0 = k + <usize>row0 * kvW + kvCol;
    const sv = f32x4.splat(scale);
    let mv = f32x4.splat(-Infinity);
    for (let j = 0; j <= t; j += 4) {
      const s = f32x4.mul(keyScores4(qp, k0, kvW, j, min(4, t + 1 - j), hd), sv);
      v128.store(scores + (<usize>j << 2), s); // (scores has room for whole vectors)
      mv = f32x4.max(mv, s); // the repeated last key changes no max
    }
    const m = max(max(f32x4.extract_lane(mv, 0), f32x4.extract_lane(mv, 1)), max(f32x4.extract_lane(mv, 2), f32x4.extract_lane(mv, 3)));
    const sum = expScores(scores, t + 1, m);
    const o = out + <usize>row * qW + (<usize>(h * hd) << 2);
    memory.fill(o, 0, <usize>hd << 2);
    for (let j = 0; j <= t; j++) axpy(o, load<f32>(scores + (<usize>j << 2)), v + <usize>(row0 + j) * kvW + kvCol, hd);
    const inv = f32x4.splat(1 / sum);
    let i = 0;
    for (; i + 4 <= hd; i += 4) v128.store(o + (<usize>i << 2), f32x4.mul(v128.load(o + (<usize>i << 2)), inv));
    for (; i < hd; i++) store<f32>(o + (<usize>i << 2), load<f32>(o + (<usize>i << 2)) * f32x4.extract_lane(inv, 0));
    store<f32>(lse + (<usize>(row * nHead + h) << 2), <f32>(<f64>m + log(<f64>sum)));
  }
}

// @ts-ignore: decorator
@inline function align4(n: i32): i32 {
  return (n + 3) & ~3;
}

/** scores[j] = exp(scores[j] − m) for j < n, in place; returns their sum (in order). */
// @ts-ignore: decorator
@inline function expScores(scores: usize, n: i32, m: f32): f32 {
  const mv = f32x4.splat(m);
  let sum: f32 = 0;
  let j = 0;
  for (; j + 4 <= n; j += 4) {
    const e = expf4(f32x4.sub(v128.load(scores + (<usize>j << 2)), mv));
    v128.store(scores + (<usize>j << 2), e);
    sum += hsum(e);
  }
  for (; j < n; j++) {
    const e = f32x4.extract_lane(expf4(f32x4.sub(load1(scores + (<usize>j << 2)), mv)), 0);
    store<f32>(scores + (<usize>j << 2), e);
    sum += e;
  }
  return sum;
}

/**
 * Backward over work items u = sequence · nKv + kvHead in [u0, u1): the item owns its dk and dv
 * rows (zeroed here) and writes dq for the query heads that read its KV head. Per query head (in
 * order) and row t (in order): P_j = exp(scale·q·k_j − lse), D = dout·out, dS_j = P_j·(dout·v_j −
 * D)·scale; dq = Σ dS_j·k_j, dk_j += dS_j·q, dv_j += P_j·dout.
 */
export function attention_backward(
  dq: usize, dk: usize, dv: usize, dout: usize, out: usize, lse: usize, q: usize, k: usize, v: usize,
  nHead: i32, nKv: i32, hd: i32, T: i32, scale: f32, scratch: usize, u0: i32, u1: i32, tid: i32,
): void {
  const pair = scratch + (<usize>tid << 5); // one block's p and dS (8 floats) per thread
  const sv = f32x4.splat(scale);
  const qW = <usize>(nHead * hd) << 2;
  const kvW = <usize>(nKv * hd) << 2;
  const group = nHead / nKv;
  const hdBytes = <usize>hd << 2;
  for (let u = u0; u < u1; u++) {
    const row0 = (u / nKv) * T;
    const g = u % nKv;
    const kvCol = <usize>(g * hd) << 2;
    for (let j = 0; j < T; j++) {
      memory.fill(dk + <usize>(row0 + j) * kvW + kvCol, 0, hdBytes);
      memory.fill(dv + <usize>(row0 + j) * kvW + kvCol, 0, hdBytes);
    }
    for (let h = g * group; h < (g + 1) * group; h++) {
      const qCol = <usize>(h * hd) << 2;
      for (let t = 0; t < T; t++) {
        const row = row0 + t;
        const qp = q + <usize>row * qW + qCol;
        const dop = dout + <usize>row * qW + qCol;
        const dqp = dq + <usize>row * qW + qCol;
        const rowLse = load<f32>(lse + (<usize>(row * nHead + h) << 2));
        const Dv = f32x4.splat(dot(dop, out + <usize>row * qW + qCol, hd));
        const lv = f32x4.splat(rowLse);
        memory.fill(dqp, 0, hdBytes);
        const k0 = k + <usize>row0 * kvW + kvCol;
        const v0 = v + <usize>row0 * kvW + kvCol;
        for (let j0 = 0; j0 <= t; j0 += 4) {
          // four keys' probabilities and score gradients at once
          const valid = min(4, t + 1 - j0);
          const p4 = expf4(f32x4.sub(f32x4.mul(keyScores4(qp, k0, kvW, j0, valid, hd), sv), lv));
          const dS4 = f32x4.mul(f32x4.mul(p4, f32x4.sub(keyScores4(dop, v0, kvW, j0, valid, hd), Dv)), sv);
          v128.store(pair, p4);
          v128.store(pair, dS4, 16);
          for (let j = 0; j < valid; j++) {
            const kvAt = <usize>(row0 + j0 + j) * kvW + kvCol;
            const p = load<f32>(pair + (<usize>j << 2));
            const dS = load<f32>(pair + (<usize>j << 2), 16);
            axpy(dqp, dS, k + kvAt, hd);
            axpy(dk + kvAt, dS, qp, hd);
            axpy(dv + kvAt, p, dop, hd);
          }
        }
      }
    }
  }
}
