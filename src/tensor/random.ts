/**
 * Deterministic randomness, identical on every platform: xoshiro128** (Blackman & Vigna) in plain
 * 32-bit integer arithmetic, seeded through splitmix32, and normals by Box–Muller. Used by the
 * sampler and by random weight initialisation.
 */
import { RequestError } from '../errors.js';

/** One step of a splitmix-style 32-bit generator: advance by the golden-ratio increment, then mix. */
function splitmix32(state: number): [next: number, output: number] {
  const next = (state + 0x9e3779b9) | 0;
  let z = next;
  z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
  z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
  return [next, (z ^ (z >>> 15)) >>> 0];
}

/** xoshiro128**: 128 bits of state, 32-bit outputs. */
export class Xoshiro128 {
  private constructor(private s0: number, private s1: number, private s2: number, private s3: number) {}

  /** A generator with exactly this state (not all zero); for checking against published outputs. */
  static fromState(s0: number, s1: number, s2: number, s3: number): Xoshiro128 {
    if ((s0 | s1 | s2 | s3) === 0) throw new RequestError('invalid_seed', 'state', 'xoshiro128** state must not be all zero');
    return new Xoshiro128(s0 | 0, s1 | 0, s2 | 0, s3 | 0);
  }

  /** Fill the state from a seed below 2^53: one mixer stream per 32-bit half, xored together. */
  static fromSeed(seed: number): Xoshiro128 {
    let lo = seed >>> 0;
    let hi = Math.floor(seed / 2 ** 32) ^ 0x6a09e667; // a different start, so the two streams differ
    const words: number[] = [];
    for (let i = 0; i < 4; i++) {
      let a: number;
      let b: number;
      [lo, a] = splitmix32(lo);
      [hi, b] = splitmix32(hi);
      words.push(a ^ b);
    }
    if ((words[0] | words[1] | words[2] | words[3]) === 0) words[0] = 1;
    return new Xoshiro128(words[0] | 0, words[1] | 0, words[2] | 0, words[3] | 0);
  }

  /** The four state words, for saving; fromState(...getState()) continues the same sequence (resumed training). */
  getState(): [number, number, number, number] {
    return [this.s0, this.s1, this.s2, this.s3];
  }

  /** The next 32-bit output, as an unsigned number. */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** A uniform double in (0, 1): never 0, so its log is finite. */
  nextOpen01(): number {
    return (this.nextU32() + 0.5) / 2 ** 32;
  }

  /** A uniform double in [0, 1) with 53 random bits. */
  nextFloat(): number {
    const hi = this.nextU32() >>> 5; // 27 bits
    const lo = this.nextU32() >>> 6; // 26 bits
    return (hi * 2 ** 26 + lo) / 2 ** 53;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** Standard normals by Box–Muller: each pair of uniforms gives two values. */
export class NormalSource {
  private readonly rng: Xoshiro128;
  private spare = NaN;

  constructor(seed: number) {
    this.rng = Xoshiro128.fromSeed(seed);
  }

  next(): number {
    if (!Number.isNaN(this.spare)) {
      const v = this.spare;
      this.spare = NaN;
      return v;
    }
    const radius = Math.sqrt(-2 * Math.log(this.rng.nextOpen01()));
    const angle = 2 * Math.PI * this.rng.nextOpen01();
    this.spare = radius * Math.sin(angle);
    return radius * Math.cos(angle);
  }
}
