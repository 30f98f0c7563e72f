/**
 * Llama checkpoints as Hugging Face folders: stories260K GGUF → folder → GGUF gives identical
 * tensors, tokens and greedy output; the folder loads directly with the GGUF's logits; and the
 * q/k row permutation is checked against HF's own RoPE (rotate_half) computed independently here.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { convertModel } from '../src/convert.js';
import { readGGUF, readTensorData } from '../src/formats/gguf.js';
import { openSafetensorsCheckpoint, readSafetensorsData } from '../src/formats/safetensors.js';
import { loadModel } from '../src/model.js';
import { randomValues } from './helpers/kernels.js';

const STORIES = new URL('../../shared/models/stories260K/stories260K.gguf', import.meta.url).pathname;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'smallmind-hf-'));
const folder = path.join(dir, 'stories260K-hf');
const back = path.join(dir, 'back.gguf');
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
beforeAll(() => {
  convertModel({ input: STORIES, output: folder });
  convertModel({ input: folder, output: back });
});

const f32 = (bytes: Uint8Array): Float32Array => new Float32Array(bytes.slice().buffer);

describe('Hugging Face Llama folders', () => {
  it('write config.json, generation_config.json, tokenizer files and HF tensor names', () => {
    expect(fs.readdirSync(folder).sort()).toEqual(['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
    const config = JSON.parse(fs.readFileSync(path.join(folder, 'config.json'), 'utf8'));
    expect(config).toMatchObject({ architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: 64, num_hidden_layers: 5, num_attention_heads: 8, num_key_value_heads: 4, vocab_size: 512 });
    const names = [...openSafetensorsCheckpoint(folder).tensors.keys()];
    expect(names).toContain('model.layers.4.self_attn.q_proj.weight');
    expect(names).toContain('model.embed_tokens.weight');
  });

  it('GGUF → folder → GGUF: identical tensors', () => {
    const [a, b] = [readGGUF(STORIES), readGGUF(back)];
    expect(b.tensors.map((t) => t.name).sort()).toEqual(a.tensors.map((t) => t.name).sort());
    for (const t of a.tensors) {
      const u = b.tensor(t.name)!;
      const [x, y] = [new Uint8Array(t.byteLength), new Uint8Array(u.byteLength)];
      readTensorData(a, t, x);
      readTensorData(b, u, y);
      expect(Buffer.compare(x, y), t.name).toBe(0);
    }
  });

  it('the GGUF, the folder and the round-trip GGUF tokenize alike and give identical logits and greedy tokens', async () => {
    const texts = ['Once upon a time', 'Lily and Ben went to the park. They saw a big dog!', ' two  spaces, "quotes" and 123 numbers\nnewline'];
    const results = [];
    for (const p of [STORIES, folder, back]) {
      const m = await loadModel(p, { backend: 'wasm', threads: 1 });
      const ids = texts.map((t) => m.tokenize(t));
      const logits = m.forward(ids[1]!, 0);
      const tokens = (await m.generate('Once upon a time', { maxTokens: 32, temperature: 0 })).tokens;
      results.push({ format: m.info.format, ids, logits, tokens, text: m.detokenize(ids[2]!) });
      m.dispose();
    }
    expect(results.map((r) => r.format)).toEqual(['gguf', 'hf', 'gguf']);
    for (const r of results.slice(1)) {
      expect(r.ids).toEqual(results[0]!.ids);
      expect(r.logits).toEqual(results[0]!.logits); // the permutation only moves rows: exact
      expect(r.tokens).toEqual(results[0]!.tokens);
      expect(r.text).toEqual(results[0]!.text);
    }
  });

  it('q_proj in HF layout with HF RoPE (rotate_half) equals attn_q in GGUF layout with interleaved RoPE', () => {
    const gguf = readGGUF(STORIES);
    const info = gguf.tensor('blk.2.attn_q.weight')!;
    const wGguf = new Float32Array(info.byteLength / 4);
    readTensorData(gguf, info, new Uint8Array(wGguf.buffer));
    const wHf = f32(readSafetensorsData(openSafetensorsCheckpoint(folder).tensors.get('model.layers.2.self_attn.q_proj.weight')!));
    const [dim, heads, theta, pos] = [64, 8, 10000, 5];
    const d = dim / heads;
    const x = randomValues(dim, 11);
    const project = (w: Float32Array): Float64Array => Float64Array.from({ length: dim }, (_, r) => x.reduce((s, v, k) => s + w[r * dim + k]! * v, 0));
    const angle = (i: number): number => pos * theta ** ((-2 * i) / d);
    // HF: dimension i of a head pairs with i + d/2
    const qHf = project(wHf);
    const hfOut = new Float64Array(dim);
    // GGUF (llama.cpp's `llama` RoPE): dimension 2i pairs with 2i + 1
    const qGg = project(wGguf);
    const ggOut = new Float64Array(dim);
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < d / 2; i++) {
        const [c, s] = [Math.cos(angle(i)), Math.sin(angle(i))];
        const [a, b] = [h * d + i, h * d + i + d / 2];
        hfOut[a] = qHf[a]! * c - qHf[b]! * s;
        hfOut[b] = qHf[b]! * c + qHf[a]! * s;
        const [e, o] = [h * d + 2 * i, h * d + 2 * i + 1];
        ggOut[e] = qGg[e]! * c - qGg[o]! * s;
        ggOut[o] = qGg[o]! * c + qGg[e]! * s;
        // the same rotated values, at each layout's place
        expect(ggOut[e]).toBeCloseTo(hfOut[a]!, 12);
        expect(ggOut[o]).toBeCloseTo(hfOut[b]!, 12);
      }
    }
  });

  it('convert --type bf16 writes a bf16 folder that loads', async () => {
    const half = path.join(dir, 'bf16');
    convertModel({ input: STORIES, output: half, type: 'bf16' });
    const st = openSafetensorsCheckpoint(half);
    expect(st.tensors.get('model.embed_tokens.weight')!.dtype).toBe('BF16');
    const m = await loadModel(half, { backend: 'reference' });
    expect(m.info.tensors.find((t) => t.name === 'token_embd.weight')!.dtype).toBe('bf16');
    expect(m.info.tensors.find((t) => t.name === 'output_norm.weight')!.dtype).toBe('f32'); // 1-D as f32
    expect((await m.generate('Once', { maxTokens: 4, temperature: 0 })).tokens).toHaveLength(4);
    m.dispose();
  });
});
