// Causal attention with a tiled online softmax: keys go by in tiles of TILE; for each tile the
// scores are computed, the running maximum moves, the accumulator and the running sum are
// rescaled, and the tile's weights multiply V. No M × ctx score matrix exists: with an f32 cache
// there is only one tile of scores per thread.
//
// With an f16 cache the query is rounded to f16 before Q·K, and the probabilities are rounded to
// f16 before they multiply V, after normalising, as ggml does: the first pass over the tiles
// keeps each row's scores (one row of ctx floats per query row in flight, never M × ctx) and
// finds the row's max and sum; a second pass turns them into probabilities and multiplies V.
//
// f16 cache values are converted the fast way (f16x8Scaled: the query, or the weight, carries the
// 2^112 factor), which gives exactly the products of the exact conversion. Inf/NaN values would
// come out finite that way, so the fast loops also fold every value into `seen`, and a tile in
// which one turns up is redone with the exact conversion.
//
// The cache type is a compile-time parameter: T = f32 for an f32 cache, i16 for an f16 one.
// A q8_0 cache has its own loop (attendQ8, at the end): integer Q·K, the f32 cache's softmax.
import { q8_0_to_f32 } from './elementwise';
import { quantizeBlockQ8 } from './kv-q8';
import { blockQ8, scales4 } from './matmul';
import { expf, expf4, f16, f16HasInfNan, f16InfNanMax, f16x4, f16x8Scaled, hsum, hsum4, hsum4i, hsumi, load1, loadF16x4, madd, roundF16x4, store1 } from './simd';

const TILE: i32 = 32;
const TWO_112: f32 = reinterpret<f32>(0x77800000);

/** The fast f16 paths' inf/NaN check (a wasm global: one per instance, so one per thread). */
let seen: v128 = i32x4(0, 0, 0, 0);

/** Four cache values at index i of a row as f32 (the exact conversion for f16). */
// @ts-ignore: decorator
@inline function load4<T>(row: usize, i: i32): v128 {
  return isFloat<T>() ? v128.load(row + (<usize>i << 2)) : loadF16x4(row + (<usize>i << 1));
}

/** One cache value as f32 in every lane (a 2- or 4-byte load: it may be a tensor's last). */
// @ts-ignore: decorator
@inline function load1x4<T>(row: usize, i: i32): v128 {
  return isFloat<T>() ? v128.load32_splat(row + (<usize>i << 2)) : f16x4(i32x4.splat(<i32>load<i16>(row + (<usize>i << 1))));
}

/**
 * [q·k0, q·k1, q·k2, q·k3] for four keys kvStride apart, each lane the fixed sequence: one
 * accumulator over the values four at a time, lanes summed as hsum, then the tail in order.
 * With fast (f16 only) the values go eight at a time against qs = q · 2^112.
 */
// @ts-ignore: decorator
@inline function dotQK4<T>(q: usize, qs: usize, k: usize, kvStride: usize, headDim: i32, fast: bool): v128 {
  const k1 = k + kvStride;
  const k2 = k1 + kvStride;
  const k3 = k2 + kvStride;
  let a0 = f32x4.splat(0);
  let a1 = a0;
  let a2 = a0;
  let a3 = a0;
  let i = 0;
  if (fast) {
    let check = seen;
    for (; i + 8 <= headDim; i += 8) {
      const off = <usize>i << 1;
      const qa = v128.load(qs + (<usize>i << 2));
      const qb = v128.load(qs + (<usize>i << 2), 16);
      let h = v128.load(k + off);
      check = f16InfNanMax(check, h);
      a0 = madd(f16x8Scaled(h, true), qb, madd(f16x8Scaled(h, false), qa, a0));
      h = v128.load(k1 + off);
      check = f16InfNanMax(check, h);
      a1 = madd(f16x8Scaled(h, true), qb, madd(f16x8Scaled(h, false), qa, a1));
      h = v128.load(k2 + off);
      check = f16InfNanMax(check, h);
      a2 = madd(f16x8Scaled(h, true), qb, madd(f16x8Scaled(h, false), qa, a2));
      h = v128.load(k3 + off);
      check = f16InfNanMax(check, h);
      a3 = madd(f16x8Scaled(h, true), qb, madd(f16x8Scaled(h, false), qa, a3));
    }
    seen = check;
  }
  for (; i + 4 <= headDim; i += 4) {
    const qv = v128.load(q + (<usize>i << 2));
    a0 = madd(load4<T>(k, i), qv, a0);
    a1 = madd(load4<T>(k1, i), qv, a1);
    a2 = madd(load4<T>(k2, i), qv, a2);
    a3 = madd(load4<T>(k3, i), qv, a3);
  }
  let s = hsum4(a0, a1, a2, a3);
  for (; i < headDim; i++) {
    const qv = v128.load32_splat(q + (<usize>i << 2));
    const kv = v128.shuffle<f32>(v128.shuffle<f32>(load1x4<T>(k, i), load1x4<T>(k1, i), 0, 4, 0, 4), v128.shuffle<f32>(load1x4<T>(k2, i), load1x4<T>(k3, i), 0, 4, 0, 4), 0, 1, 4, 5);
    s = f32x4.add(s, f32x4.mul(qv, kv));
  }
  return s;
}

/** q·k for one key, lane 0 computed exactly as one lane of dotQK4. */
// @ts-ignore: decorator
@inline function dotQK<T>(q: usize, qs: usize, k: usize, headDim: i32, fast: bool): f32 {
  let acc = f32x4.splat(0);
  let i = 0;
  if (fast) {
    let check = seen;
    for (; i + 8 <= headDim; i += 8) {
      const h = v128.load(k + (<usize>i << 1));
      check = f16InfNanMax(check, h);
      acc = madd(f16x8Scaled(h, true), v128.load(qs + (<usize>i << 2), 16), madd(f16x8Scaled(h, false), v128.load(qs + (<usize>i << 2)), acc));
    }
    seen = check;
  }
  for (; i + 4 <= headDim; i += 4) acc = madd(load4<T>(k, i), v128.load(q + (<usize>i << 2)), acc);
  let s = hsum(acc);
  for (; i < headDim; i++) s += load<f32>(q + (<usize>i << 2)) * f32x4.extract_lane(load1x4<T>(k, i), 0);
  return s;
}

/** Scores of the tile's n keys times scale into probs; returns their maximum. */
// @ts-ignore: decorator
@inline function tileScores<T>(probs: usize, q: usize, qs: usize, k: usize, kvStride: usize, n: i32, headDim: i32, scale: f32, fast: bool): f32 {
  let maxv = f32x4.splat(-Infinity);
  const scalev = f32x4.splat(scale);
  let j = 0;
  for (; j + 4 <= n; j += 4) {
    const s = f32x4.mul(dotQK4<T>(q, qs, k, kvStride, headDim, fast), scalev);
    v128.store(probs + (<usize>j << 2), s);
    maxv = f32x4.max(maxv, s);
    k += kvStride << 2;
  }
  let m = max(max(f32x4.extract_lane(maxv, 0), f32x4.extract_lane(maxv, 1)), max(f32x4.extract_lane(maxv, 2), f32x4.extract_lane(maxv, 3)));
  for (; j < n; j++) {
    const s = dotQK<T>(q, qs, k, headDim, fast) * scale;
    store<f32>(probs + (<usize>j << 2), s);
    m = max(m, s);
    k += kvStride;
  }
  return m;
}

/**
 * acc[0..headDim) += Σ_j p_j · v_j over the tile's n value rows (vStride apart), key by key in
 * order for every element. The dimensions go in blocks of up to 32 so that eight independent
 * accumulators hide the add latency. With fast (f16 only) the values are converted eight at a
 * time against ps = p · 2^112.
 */
// @ts-ignore: decorator
@inline function accumulateV<T>(acc: usize, probs: usize, ps: usize, v: usize, vStride: usize, n: i32, headDim: i32, fast: bool): void {
  let i = 0;
  if (fast) {
    let check = seen;
    for (; i + 32 <= headDim; i += 32) {
      const ap = acc + (<usize>i << 2);
      let a0 = v128.load(ap);
      let a1 = v128.load(ap, 16);
      let a2 = v128.load(ap, 32);
      let a3 = v128.load(ap, 48);
      let a4 = v128.load(ap, 64);
      let a5 = v128.load(ap, 80);
      let a6 = v128.load(ap, 96);
      let a7 = v128.load(ap, 112);
      let vp = v + (<usize>i << 1);
      for (let j = 0; j < n; j++) {
        const p = v128.load32_splat(ps + (<usize>j << 2));
        let h = v128.load(vp);
        check = f16InfNanMax(check, h);
        a0 = madd(p, f16x8Scaled(h, false), a0);
        a1 = madd(p, f16x8Scaled(h, true), a1);
        h = v128.load(vp, 16);
        check = f16InfNanMax(check, h);
        a2 = madd(p, f16x8Scaled(h, false), a2);
        a3 = madd(p, f16x8Scaled(h, true), a3);
        h = v128.load(vp, 32);
        check = f16InfNanMax(check, h);
        a4 = madd(p, f16x8Scaled(h, false), a4);
        a5 = madd(p, f16x8Scaled(h, true), a5);
        h = v128.load(vp, 48);
        check = f16InfNanMax(check, h);
        a6 = madd(p, f16x8Scaled(h, false), a6);
        a7 = madd(p, f16x8Scaled(h, true), a7);
        vp += vStride;
      }
      v128.store(ap, a0);
      v128.store(ap, a1, 16);
      v128.store(ap, a2, 32);
      v128.store(ap, a3, 48);
      v128.store(ap, a4, 64);
      v128.store(ap, a5, 80);
      v128.store(ap, a6, 96);
      v128.store(ap, a7, 112);
    }
    for (; i + 8 <= headDim; i += 8) {
      const ap = acc + (<usize>i << 2);
      let a0 = v128.load(ap);
      let a1 = v128.load(ap, 16);
      let vp = v + (<usize>i << 1);
      for (let j = 0; j < n; j++) {
        const p = v128.load32_splat(ps + (<usize>j << 2));
        const h = v128.load(vp);
        check = f16InfNanMax(check, h);
        a0 = madd(p, f16x8Scaled(h, false), a0);
        a1 = madd(p, f16x8Scaled(h, true), a1);
        vp += vStride;
      }
      v128.store(ap, a0);
      v128.store(ap, a1, 16);
    }
    seen = check;
  }
  for (; i + 16 <= headDim; i += 16) {
    const ap = acc + (<usize>i << 2);
    let a0 = v128.load(ap);
    let a1 = v128.load(ap, 16);
    let a2 = v128.load(ap, 32);
    let a3 = v128.load(ap, 48);
    let vp = v;
    for (let j = 0; j < n; j++) {
      const p = v128.load32_splat(probs + (<usize>j << 2));
      a0 = madd(p, load4<T>(vp, i), a0);
      a1 = madd(p, load4<T>(vp, i + 4), a1);
      a2 = madd(p, load4<T>(vp, i + 8), a2);
      a3 = madd(p, load4<T>(vp, i + 12), a3);
      vp += vStride;
    }
    v128.store(ap, a0);
    v128.store(ap, a1, 16);
    v128.store(ap, a2, 32);
    v128.store(ap, a3, 48);
  }
  for (; i + 4 <= headDim; i += 4) {
    let a0 = v128.load(acc + (<usize>i << 2));
    let vp = v;
    for (let j = 0; j < n; j++) {
      a0 = madd(v128.load32_splat(probs + (<usize>j << 2)), load4<T>(vp, i), a0);
      vp += vStride;
    }
    v128.store(acc + (<usize>i << 2), a0);
  }
  for (; i < headDim; i++) {
    let a = load1(acc + (<usize>i << 2));
    let vp = v;
    for (let j = 0; j < n; j++) {
      a = madd(v128.load32_splat(probs + (<usize>j << 2)), load1x4<T>(vp, i), a);
      vp += vStride;
    }
    store1(acc + (<usize>i << 2), a);
  }
}

/**
 * Work items [u0, u1) are (block of query rows, head) pairs u = block · nHead + head, blocks of
 * rowBlock rows. q, out: [M, nHead·headDim] f32; k, v: [ctx, nKvHead·headDim] f32 (kind = 0),
 * f16 (kind = 1) or q8_0 (kind = 2). Query row r sits at position pos + r and sees cache rows 0..pos+r.
 * scratch + tid · scratchStride is this thread's scratch (attention_scratch_bytes).
 *
 * rowBlock = 1 (decoding) reads the cache directly, converting f16 on the fly. Larger blocks
 * (prompts) convert each f16 tile once per pass to f32 and run every row of the block against
 * it; each row's arithmetic is the same either way, so a prompt row equals the same row decoded
 * alone.
 */
export function attention(out: usize, q: usize, k: usize, v: usize, nHead: i32, nKvHead: i32, headDim: i32, pos: i32, scale: f32, kind: i32, M: i32, rowBlock: i32, scratch: usize, scratchStride: i32, u0: i32, u1: i32, tid: i32): void {
  const buf = scratch + <usize>tid * scratchStride;
  const half = kind == 1;
  for (let u = u0; u < u1; u++) {
    const h = u % nHead;
    const r0 = (u / nHead) * rowBlock;
    const r1 = min(M, r0 + rowBlock);
    if (kind == 2) {
      attendQ8(out, q, k, v, nHead, nKvHead, headDim, pos, scale, buf, r0, r1, h);
    } else if (rowBlock == 1) {
      if (half) attendRow<i16>(out, q, k, v, nHead, nKvHead, headDim, pos, scale, buf, r0, h);
      else attendRow<f32>(out, q, k, v, nHead, nKvHead, headDim, pos, scale, buf, r0, h);
    } else {
      if (half) attendBlock<i16>(out, q, k, v, nHead, nKvHead, headDim, pos, scale, buf, r0, r1, h);
      else attendBlock<f32>(out, q, k, v, nHead, nKvHead, headDim, pos, scale, buf, r0, r1, h);
    }
  }
}

/**
 * Bytes of per-thread scratch attention needs for a head size, a row block and the most keys a
 * row sees (an f16 cache keeps each row's scores between its two passes).
 */
export function attention_scratch_bytes(headDim: i32, rowBlock: i32, maxKeys: i32): i32 {
  const vec = (headDim + 7) & ~7;
  const keys = (maxKeys + 3) & ~3;
  const row = vec * 4 + TILE * 2 + keys; // attendRow: q, q·2^112, acc, saved acc, weights, weights·2^112, scores
  const block = rowBlock * (2 * vec + 2 + keys) + 2 * TILE * vec + TILE; // attendBlock
  const nb = (headDim + 62) >> 5; // most Q8_0 blocks a head can span
  const q8 = rowBlock * (nb * 49 + 2) + (TILE + 1) * nb * 32 + TILE; // attendQ8
  return max(max(row, block), q8) * 4;
}

/** Round a query row to f16 into dst, and dstScaled = dst · 2^112 (f16 cache); or use it as is. */
// @ts-ignore: decorator
@inline function prepareQuery<T>(dst: usize, dstScaled: usize, qp: usize, headDim: i32): usize {
  if (isFloat<T>()) return qp;
  const two112 = f32x4.splat(TWO_112);
  let i = 0;
  for (; i + 4 <= headDim; i += 4) {
    const x = roundF16x4(v128.load(qp + (<usize>i << 2)));
    v128.store(dst + (<usize>i << 2), x);
    if (dstScaled) v128.store(dstScaled + (<usize>i << 2), f32x4.mul(x, two112));
  }
  for (; i < headDim; i++) store1(dst + (<usize>i << 2), roundF16x4(load1(qp + (<usize>i << 2))));
  return dst;
}

/** Σ exp(s − max) over the tile's n scores in probs. */
// @ts-ignore: decorator
@inline function expSum(probs: usize, n: i32, max: f32): f32 {
  const mv = f32x4.splat(max);
  let sum: f32 = 0;
  let j = 0;
  for (; j + 4 <= n; j += 4) sum += hsum(expf4(f32x4.sub(v128.load(probs + (<usize>j << 2)), mv)));
  for (; j < n; j++) sum += f32x4.extract_lane(expf4(f32x4.sub(load1(probs + (<usize>j << 2)), mv)), 0);
  return sum;
}

/** Weights exp(s − max) in place of the tile's scores; returns their sum. */
// @ts-ignore: decorator
@inline function expInPlace(probs: usize, n: i32, max: f32): f32 {
  const mv = f32x4.splat(max);
  let sum: f32 = 0;
  let j = 0;
  for (; j + 4 <= n; j += 4) {
    const p = expf4(f32x4.sub(v128.load(probs + (<usize>j << 2)), mv));
    sum += hsum(p);
    v128.store(probs + (<usize>j << 2), p);
  }
  for (; j < n; j++) {
    const p = expf4(f32x4.sub(load1(probs + (<usize>j << 2)), mv));
    sum += f32x4.extract_lane(p, 0);
    store1(probs + (<usize>j << 2), p);
  }
  return sum;
}

/**
 * The f16 cache's second pass: the tile's scores become the final probabilities exp(s − max) /
 * sum rounded to f16, in place, with copies times 2^112 in ps (unless ps is 0).
 */
// @ts-ignore: decorator
@inline function tileWeights(probs: usize, ps: usize, n: i32, max: f32, sum: f32): void {
  const mv = f32x4.splat(max);
  const sv = f32x4.splat(sum);
  const two112 = f32x4.splat(TWO_112);
  let j = 0;
  for (; j + 4 <= n; j += 4) {
    const p = roundF16x4(f32x4.div(expf4(f32x4.sub(v128.load(probs + (<usize>j << 2)), mv)), sv));
    if (ps) v128.store(ps + (<usize>j << 2), f32x4.mul(p, two112));
    v128.store(probs + (<usize>j << 2), p);
  }
  for (; j < n; j++) {
    const p = roundF16x4(f32x4.div(expf4(f32x4.sub(load1(probs + (<usize>j << 2)), mv)), sv));
    if (ps) store1(ps + (<usize>j << 2), f32x4.mul(p, two112));
    store1(probs + (<usize>j << 2), p);
  }
}

/** acc · c over vec bytes. */
// @ts-ignore: decorator
@inline function rescale(acc: usize, vec: usize, c: f32): void {
  const cv = f32x4.splat(c);
  for (let i: usize = 0; i < vec; i += 16) v128.store(acc + i, f32x4.mul(v128.load(acc + i), cv));
}

/** out row = acc / sum (sum = 1: as is). */
// @ts-ignore: decorator
@inline function finish(op: usize, acc: usize, runSum: f32, headDim: i32): void {
  const sum = f32x4.splat(runSum);
  let i = 0;
  for (; i + 4 <= headDim; i += 4) v128.store(op + (<usize>i << 2), f32x4.div(v128.load(acc + (<usize>i << 2)), sum));
  for (; i < headDim; i++) store1(op + (<usize>i << 2), f32x4.div(load1(acc + (<usize>i << 2)), sum));
}

/**
 * One query row r, head h, reading the cache directly (f16 the fast way, checked).
 *
 * f32 cache: one pass, the online softmax proper (acc rescaled as the max moves, divided by the
 * sum at the end). f16 cache: ggml rounds the *normalised* probabilities to f16 before they
 * multiply V, so the first pass over the tiles keeps the row's scores and finds its max and sum
 * (online), and a second turns the kept scores into rounded probabilities and accumulates V.
 */
// @ts-ignore: decorator
@inline function attendRow<T>(out: usize, q: usize, k: usize, v: usize, nHead: i32, nKvHead: i32, headDim: i32, pos: i32, scale: f32, buf: usize, r: i32, h: i32): void {
  const half: bool = !isFloat<T>();
  const vec = <usize>((headDim + 7) & ~7) << 2;
  const qbuf = buf;
  const qsbuf = qbuf + vec;
  const acc = qsbuf + vec;
  const saved = acc + vec;
  const probs = saved + vec;
  const ps = probs + (<usize>TILE << 2);
  const scores = ps + (<usize>TILE << 2);
  const kvStride = <usize>(nKvHead * headDim) << (half ? 1 : 2);
  const headBytes = <usize>headDim << (half ? 1 : 2);
  const kvh = <usize>(h / (nHead / nKvHead));
  const qv = prepareQuery<T>(qbuf, qsbuf, q + (<usize>(r * nHead + h) * headDim << 2), headDim);
  memory.fill(acc, 0, vec);
  const kHead = k + kvh * headBytes;
  const vHead = v + kvh * headBytes;
  const nKv = pos + r + 1;
  let runMax: f32 = -Infinity;
  let runSum: f32 = 0;
  for (let t0 = 0; t0 < nKv; t0 += TILE) {
    const n = min(TILE, nKv - t0);
    const kTile = kHead + <usize>t0 * kvStride;
    const tile = half ? scores + (<usize>t0 << 2) : probs;
    seen = i32x4.splat(0);
    let tileMax = tileScores<T>(tile, qv, qsbuf, kTile, kvStride, n, headDim, scale, half);
    if (half && f16HasInfNan(seen)) tileMax = tileScores<T>(tile, qv, qsbuf, kTile, kvStride, n, headDim, scale, false);
    // move the running max; rescale what was summed (and accumulated) under the old one
    const newMax = max(runMax, tileMax);
    if (newMax > runMax && runSum != 0) {
      const c = expf(runMax - newMax);
      runSum *= c;
      if (!half) rescale(acc, vec, c);
    }
    runMax = newMax;
    if (half) {
      runSum += expSum(tile, n, runMax);
    } else {
      runSum += expInPlace(probs, n, runMax);
      accumulateV<T>(acc, probs, 0, vHead + <usize>t0 * kvStride, kvStride, n, headDim, false);
    }
  }
  if (half) {
    // second pass: the kept scores as rounded probabilities, times V
    for (let t0 = 0; t0 < nKv; t0 += TILE) {
      const n = min(TILE, nKv - t0);
      const tile = scores + (<usize>t0 << 2);
      const vTile = vHead + <usize>t0 * kvStride;
      tileWeights(tile, ps, n, runMax, runSum);
      memory.copy(saved, acc, vec);
      seen = i32x4.splat(0);
      accumulateV<T>(acc, tile, ps, vTile, kvStride, n, headDim, true);
      if (f16HasInfNan(seen)) {
        memory.copy(acc, saved, vec);
        accumulateV<T>(acc, tile, ps, vTile, kvStride, n, headDim, false);
      }
    }
    runSum = 1;
  }
  finish(out + (<usize>(r * nHead + h) * headDim << 2), acc, runSum, headDim);
}

/**
 * Rows [r0, r1) of head h against f32 tiles: the cache itself, or f16 tiles converted once and
 * shared by the block's rows. Per row, exactly attendRow's arithmetic.
 */
// @ts-ignore: decorator
@inline function attendBlock<T>(out: usize, q: usize, k: usize, v: usize, nHead: i32, nKvHead: i32, headDim: i32, pos: i32, scale: f32, buf: usize, r0: i32, r1: i32, h: i32): void {
  const half: bool = !isFloat<T>();
  const vec = <usize>((headDim + 7) & ~7) << 2;
  const rows = r1 - r0;
  const nKvMax = pos + r1;
  const keys = <usize>((nKvMax + 3) & ~3) << 2;
  // scratch: per row q and acc; running maxima and sums; the tile as f32; weights; kept scores
  const qbufs = buf;
  const accs = qbufs + <usize>rows * vec;
  const maxes = accs + <usize>rows * vec;
  const sums = maxes + (<usize>rows << 2);
  const kWide = sums + (<usize>rows << 2);
  const vWide = kWide + <usize>TILE * vec;
  const probs = vWide + <usize>TILE * vec;
  const scores = probs + (<usize>TILE << 2);
  const kvStride = <usize>(nKvHead * headDim) << (half ? 1 : 2);
  const headBytes = <usize>headDim << (half ? 1 : 2);
  const kvh = <usize>(h / (nHead / nKvHead));
  const kHead = k + kvh * headBytes;
  const vHead = v + kvh * headBytes;
  // tiles as the f32 code reads them: rows `stride` apart
  const stride: usize = half ? vec : kvStride;
  for (let r = r0; r < r1; r++) {
    const i = <usize>(r - r0);
    if (half) prepareQuery<T>(qbufs + i * vec, 0, q + (<usize>(r * nHead + h) * headDim << 2), headDim);
    memory.fill(accs + i * vec, 0, vec);
    store<f32>(maxes + (i << 2), -Infinity);
    store<f32>(sums + (i << 2), 0);
  }
  // pass 1 (the only one for an f32 cache)
  for (let t0 = 0; t0 < nKvMax; t0 += TILE) {
    const n = min(TILE, nKvMax - t0);
    let kTile = kHead + <usize>t0 * kvStride;
    const vTile = vHead + <usize>t0 * kvStride;
    if (half) {
      widenTile(kWide, kTile, kvStride, n, headDim, vec);
      kTile = kWide;
    }
    for (let r = r0; r < r1; r++) {
      const i = <usize>(r - r0);
      const nr = min(n, pos + r + 1 - t0);
      if (nr <= 0) continue;
      const qv = half ? qbufs + i * vec : q + (<usize>(r * nHead + h) * headDim << 2);
      const acc = accs + i * vec;
      const tile = half ? scores + i * keys + (<usize>t0 << 2) : probs;
      const tileMax = tileScores<f32>(tile, qv, 0, kTile, stride, nr, headDim, scale, false);
      const runMax = load<f32>(maxes + (i << 2));
      let runSum = load<f32>(sums + (i << 2));
      const newMax = max(runMax, tileMax);
      if (newMax > runMax && runSum != 0) {
        const c = expf(runMax - newMax);
        runSum *= c;
        if (!half) rescale(acc, vec, c);
      }
      store<f32>(maxes + (i << 2), newMax);
      if (half) {
        runSum += expSum(tile, nr, newMax);
      } else {
        runSum += expInPlace(probs, nr, newMax);
        accumulateV<f32>(acc, probs, 0, vTile, stride, nr, headDim, false);
      }
      store<f32>(sums + (i << 2), runSum);
    }
  }
  if (half) {
    // pass 2: the kept scores as rounded probabilities, times V
    for (let t0 = 0; t0 < nKvMax; t0 += TILE) {
      const n = min(TILE, nKvMax - t0);
      widenTile(vWide, vHead + <usize>t0 * kvStride, kvStride, n, headDim, vec);
      for (let r = r0; r < r1; r++) {
        const i = <usize>(r - r0);
        const nr = min(n, pos + r + 1 - t0);
        if (nr <= 0) continue;
        const tile = scores + i * keys + (<usize>t0 << 2);
        tileWeights(tile, 0, nr, load<f32>(maxes + (i << 2)), load<f32>(sums + (i << 2)));
        accumulateV<f32>(accs + i * vec, tile, 0, vWide, vec, nr, headDim, false);
      }
    }
  }
  for (let r = r0; r < r1; r++) {
    const i = <usize>(r - r0);
    finish(out + (<usize>(r * nHead + h) * headDim << 2), accs + i * vec, half ? 1 : load<f32>(sums + (i << 2)), headDim);
  }
}

/** Convert n f16 rows (stride apart) of headDim values to f32 rows vec bytes apart (exact). */
// @ts-ignore: decorator
@inline function widenTile(dst: usize, src: usize, stride: usize, n: i32, headDim: i32, vec: usize): void {
  for (let j = 0; j < n; j++) {
    let i = 0;
    for (; i + 4 <= headDim; i += 4) v128.store(dst + (<usize>i << 2), loadF16x4(src + (<usize>i << 1)));
    for (; i < headDim; i++) store1(dst + (<usize>i << 2), f16x4(i32x4.splat(<i32>load<i16>(src + (<usize>i << 1)))));
    dst += vec;
    src += stride;
  }
}

// ---- q8_0 cache --------------------------------------------------------------------------------
// Keys and values are Q8_0 blocks along each cache row (34 bytes per 32 values). A head need not
// start on a block (with headDim 8 four heads share one), so the query head is laid over the
// blocks its KV head spans, zeros elsewhere, and quantized there: Q·K is a sum over those blocks
// of an exact integer dot product times d_k·d_q (exact in f32), added in f32 block by block as
// the q8_0 matmul does. Nothing there is a float multiply-add, so both builds give the same
// scores. The softmax and the V sums are the f32 cache's, over values dequantized exactly (d·q):
// in registers when decoding, once per tile into f32 rows shared by a prompt block's rows.

/** [q·k0, .., q·k3] for four keys rowBytes apart, over nb blocks; lane j is exactly dotQ8(key j). */
// @ts-ignore: decorator
@inline function dotQ8x4(qq: usize, qd: usize, k: usize, rowBytes: usize, nb: i32): v128 {
  let k0 = k;
  let k1 = k0 + rowBytes;
  let k2 = k1 + rowBytes;
  let k3 = k2 + rowBytes;
  let acc = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    const x0 = v128.load(qq);
    const x1 = v128.load(qq, 16);
    const x2 = v128.load(qq, 32);
    const x3 = v128.load(qq, 48);
    const isum = f32x4.convert_i32x4_s(hsum4i(blockQ8(k0, x0, x1, x2, x3), blockQ8(k1, x0, x1, x2, x3), blockQ8(k2, x0, x1, x2, x3), blockQ8(k3, x0, x1, x2, x3)));
    acc = f32x4.add(acc, f32x4.mul(isum, f32x4.mul(scales4(k0, k1, k2, k3), v128.load32_splat(qd))));
    k0 += 34;
    k1 += 34;
    k2 += 34;
    k3 += 34;
    qq += 64;
    qd += 4;
  }
  return acc;
}

/** q·k for one key: Σ over nb blocks of isum · (d_k · d_q), in f32. */
// @ts-ignore: decorator
@inline function dotQ8(qq: usize, qd: usize, k: usize, nb: i32): f32 {
  let acc: f32 = 0;
  for (let b = 0; b < nb; b++) {
    const t = blockQ8(k, v128.load(qq), v128.load(qq, 16), v128.load(qq, 32), v128.load(qq, 48));
    acc += <f32>hsumi(t) * (f16(load<u16>(k)) * load<f32>(qd));
    k += 34;
    qq += 64;
    qd += 4;
  }
  return acc;
}

/** Scores of the tile's n keys (rowBytes apart) times scale into probs; returns their maximum. */
// @ts-ignore: decorator
@inline function tileScoresQ8(probs: usize, qq: usize, qd: usize, k: usize, rowBytes: usize, n: i32, nb: i32, scale: f32): f32 {
  let maxv = f32x4.splat(-Infinity);
  const scalev = f32x4.splat(scale);
  let j = 0;
  for (; j + 4 <= n; j += 4) {
    const s = f32x4.mul(dotQ8x4(qq, qd, k, rowBytes, nb), scalev);
    v128.store(probs + (<usize>j << 2), s);
    maxv = f32x4.max(maxv, s);
    k += rowBytes << 2;
  }
  let m = max(max(f32x4.extract_lane(maxv, 0), f32x4.extract_lane(maxv, 1)), max(f32x4.extract_lane(maxv, 2), f32x4.extract_lane(maxv, 3)));
  for (; j < n; j++) {
    const s = dotQ8(qq, qd, k, nb) * scale;
    store<f32>(probs + (<usize>j << 2), s);
    m = max(m, s);
    k += rowBytes;
  }
  return m;
}

/**
 * acc[0..nb·32) += Σ_j p_j · v_j over the tile's n value rows read as Q8_0 blocks (rowBytes
 * apart, from the head's first block): each value is converted exactly (d·q) in registers and
 * multiplied in as accumulateV does with rows widened to f32, key by key, so both give the same
 * bits. The accumulator spans the head's whole blocks; finish reads the head's part.
 */
// @ts-ignore: decorator
@inline function accumulateVQ8(acc: usize, probs: usize, v: usize, rowBytes: usize, n: i32, nb: i32): void {
  for (let b = 0; b < nb; b++) {
    const ap = acc + (<usize>b << 7);
    let a0 = v128.load(ap);
    let a1 = v128.load(ap, 16);
    let a2 = v128.load(ap, 32);
    let a3 = v128.load(ap, 48);
    let a4 = v128.load(ap, 64);
    let a5 = v128.load(ap, 80);
    let a6 = v128.load(ap, 96);
    let a7 = v128.load(ap, 112);
    let vp = v + <usize>b * 34;
    for (let j = 0; j < n; j++) {
      const p = v128.load32_splat(probs + (<usize>j << 2));
      const d = f16x4(i32x4.splat(<i32>load<i16>(vp)));
      const lo = v128.load(vp, 2);
      const hi = v128.load(vp, 18);
      let h = i16x8.extend_low_i8x16_s(lo);
      a0 = madd(p, f32x4.mul(d, f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(h))), a0);
      a1 = madd(p, f32x4.mul(d, f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(h))), a1);
      h = i16x8.extend_high_i8x16_s(lo);
      a2 = madd(p, f32x4.mul(d, f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(h))), a2);
      a3 = madd(p, f32x4.mul(d, f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(h))), a3);
      h = i16x8.extend_low_i8x16_s(hi);
      a4 = madd(p, f32x4.mul(d, f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(h))), a4);
      a5 = madd(p, f32x4.mul(d, f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(h))), a5);
      h = i16x8.extend_high_i8x16_s(hi);
      a6 = madd(p, f32x4.mul(d, f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(h))), a6);
      a7 = madd(p, f32x4.mul(d, f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(h))), a7);
      vp += rowBytes;
    }
    v128.store(ap, a0);
    v128.store(ap, a1, 16);
    v128.store(ap, a2, 32);
    v128.store(ap, a3, 48);
    v128.store(ap, a4, 64);
    v128.store(ap, a5, 80);
    v128.store(ap, a6, 96);
    v128.store(ap, a7, 112);
  }
}

/**
 * Rows [r0, r1) of head h over a q8_0 cache. Per row: the query quantized on the head's block
 * grid, then one pass of the online softmax over tiles of keys (the f32 cache's arithmetic), the
 * V sums kept for the head's whole blocks.
 * Each row's arithmetic is the same whatever the block, so a prompt row equals the row decoded
 * alone, and any thread split gives the same bits.
 */
function attendQ8(out: usize, q: usize, k: usize, v: usize, nHead: i32, nKvHead: i32, headDim: i32, pos: i32, scale: f32, buf: usize, r0: i32, r1: i32, h: i32): void {
  const rows = <usize>(r1 - r0);
  const rowBytes = <usize>((nKvHead * headDim) >> 5) * 34;
  const start = (h / (nHead / nKvHead)) * headDim; // the head's first value in a cache row
  const first = start >> 5;
  const lead = start - (first << 5); // values of the first block before the head
  const nb = (lead + headDim + 31) >> 5; // blocks the head spans
  const gridBytes = <usize>nb << 7; // those blocks as f32
  // scratch: per row the quantized query (32 × i16 per block) and its block scales, acc (over the
  // grid), running maximum and sum; the query laid over the grid; the tile's values as f32 grid
  // rows (prompt blocks: converted once for all rows); weights
  const qqs = buf;
  const qds = qqs + rows * (<usize>nb << 6);
  const accs = qds + rows * (<usize>nb << 2);
  const maxes = accs + rows * gridBytes;
  const sums = maxes + (rows << 2);
  const grid = sums + (rows << 2);
  const vWide = grid + gridBytes;
  const probs = vWide + <usize>TILE * gridBytes;
  const kHead = k + <usize>first * 34;
  const vHead = v + <usize>first * 34;
  for (let r = r0; r < r1; r++) {
    const i = <usize>(r - r0);
    memory.fill(grid, 0, gridBytes);
    memory.copy(grid + (<usize>lead << 2), q + (<usize>(r * nHead + h) * headDim << 2), <usize>headDim << 2);
    const qq = qqs + i * (<usize>nb << 6);
    const qd = qds + i * (<usize>nb << 2);
    for (let b = 0; b < nb; b++) store<f32>(qd + (<usize>b << 2), quantizeBlockQ8(grid + (<usize>b << 7), 0, qq + (<usize>b << 6)));
    memory.fill(accs + i * gridBytes, 0, gridBytes);
    store<f32>(maxes + (i << 2), -Infinity);
    store<f32>(sums + (i << 2), 0);
  }
  const nKvMax = pos + r1;
  for (let t0 = 0; t0 < nKvMax; t0 += TILE) {
    const n = min(TILE, nKvMax - t0);
    const kTile = kHead + <usize>t0 * rowBytes;
    const vTile = vHead + <usize>t0 * rowBytes;
    if (rows > 1) for (let j = 0; j < n; j++) q8_0_to_f32(vWide + <usize>j * gridBytes, vTile + <usize>j * rowBytes, nb);
    for (let r = r0; r < r1; r++) {
      const i = <usize>(r - r0);
      const nr = min(n, pos + r + 1 - t0);
      if (nr <= 0) continue;
      const acc = accs + i * gridBytes;
      const tileMax = tileScoresQ8(probs, qqs + i * (<usize>nb << 6), qds + i * (<usize>nb << 2), kTile, rowBytes, nr, nb, scale);
      const runMax = load<f32>(maxes + (i << 2));
      let runSum = load<f32>(sums + (i << 2));
      const newMax = max(runMax, tileMax);
      if (newMax > runMax && runSum != 0) {
        const c = expf(runMax - newMax);
        runSum *= c;
        rescale(acc, gridBytes, c);
      }
      store<f32>(maxes + (i << 2), newMax);
      runSum += expInPlace(probs, nr, newMax);
      if (rows > 1) accumulateV<f32>(acc, probs, 0, vWide, gridBytes, nr, nb << 5, false);
      else accumulateVQ8(acc, probs, vTile, rowBytes, nr, nb);
      store<f32>(sums + (i << 2), runSum);
    }
  }
  for (let r = r0; r < r1; r++) {
    const i = <usize>(r - r0);
    finish(out + (<usize>(r * nHead + h) * headDim << 2), accs + i * gridBytes + (<usize>lead << 2), load<f32>(sums + (i << 2)), headDim);
  }
}
