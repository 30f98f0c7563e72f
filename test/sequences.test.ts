/** Several sequences on one model: each with its own KV cache, sharing a prefix by copying rows. */
import { afterAll, describe, expect, it } from 'vitest';
import { loadModel } from '../src/model.js';

const model = await loadModel(undefined, { threads: 1, cacheType: 'f16' });
afterAll(() => model.dispose());

describe('per-sequence KV caches', () => {
  it('a copied prefix continues exactly like the original sequence, and stepping back overwrites', () => {
    const net = model.network;
    const prompt = model.tokenize('Once upon a time');
    net.forward(prompt, 0);
    const other = net.createCache();
    try {
      other.copyFrom(net.cache, prompt.length);
      const a = net.forward([403], prompt.length).f32().slice();
      const b = net.forward([403], prompt.length, false, other).f32().slice();
      expect(b).toEqual(a);
      // Step back: a different token at the same position replaces the first one.
      const c1 = net.forward([261], prompt.length, false, other).f32().slice();
      const fresh = net.createCache();
      try {
        fresh.copyFrom(net.cache, prompt.length);
        expect(net.forward([261], prompt.length, false, fresh).f32().slice()).toEqual(c1);
      } finally {
        fresh.free();
      }
    } finally {
      other.free();
    }
    expect(() => other.copyFrom(net.cache, 1)).toThrow(/differ/);
  });
});
