/**
 * The GPT-2 architecture: greedy tokens against llama.cpp's on a random GPT-2 (test/data/
 * gpt2-tiny-llamacpp.json, made by bench/gpt2-fixture.mjs), GGUF ↔ Hugging Face round trips, the
 * folder loaded directly, and the errors for unknown architectures, missing keys and tensors and
 * wrong shapes.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { convertModel } from '../src/convert.js';
import { ModelError } from '../src/errors.js';
import { readGGUF, readTensorData } from '../src/formats/gguf.js';
import { writeGGUF } from '../src/formats/gguf-writer.js';
import { openSafetensorsCheckpoint, readSafetensorsData, writeSafetensors } from '../src/formats/safetensors.js';
import { initModel } from '../src/init.js';
import { modelArchConfig, openModelFile } from '../src/loader.js';
import { loadModel } from '../src/model.js';

const fixture = JSON.parse(fs.readFileSync(new URL('./data/gpt2-tiny-llamacpp.json', import.meta.url), 'utf8')) as {
  init: string[]; n: number; cases: { prompt_tokens: number[]; tokens: number[] }[];
};
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'smallmind-gpt2-'));
const gguf = path.join(dir, 'gpt2-tiny.gguf');
const hf = path.join(dir, 'gpt2-hf');
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

beforeAll(() => {
  // the fixture's model, from the same settings as its `smallmind init` command
  const flag = (name: string): number => Number(fixture.init[fixture.init.indexOf(name) + 1]);
  expect(fixture.init).toEqual(['--shape', 'gpt2-tiny', '--layers', '2', '--std', '0.3', '--seed', '7']);
  initModel({ shape: 'gpt2-tiny', dtype: 'f32', output: gguf, layers: flag('--layers'), std: flag('--std'), seed: flag('--seed') });
  convertModel({ input: gguf, output: hf });
});

async function greedy(model: string, backend: 'wasm' | 'reference', threads: number, cases = fixture.cases): Promise<number[][]> {
  const m = await loadModel(model, { backend, threads, cacheType: 'f32' });
  try {
    const out: number[][] = [];
    for (const c of cases) out.push((await m.generate(c.prompt_tokens, { maxTokens: fixture.n, temperature: 0 })).tokens);
    return out;
  } finally {
    m.dispose();
  }
}

describe('GPT-2', () => {
  it('greedy tokens equal llama.cpp\'s on the fixture (wasm, 1 and 2 threads)', async () => {
    const want = fixture.cases.map((c) => c.tokens);
    expect(await greedy(gguf, 'wasm', 1)).toEqual(want);
    expect(await greedy(gguf, 'wasm', 2)).toEqual(want);
  });

  it('the reference backend agrees on the first case', async () => {
    const [first] = fixture.cases;
    expect(await greedy(gguf, 'reference', 1, [first!])).toEqual([first!.tokens]);
  });

  it('GGUF → Hugging Face folder → GGUF gives identical tensors; the folder has the HF names and Conv1D layout', () => {
    const back = path.join(dir, 'back.gguf');
    convertModel({ input: hf, output: back });
    const [a, b] = [readGGUF(gguf), readGGUF(back)];
    expect(b.tensors.map((t) => t.name).sort()).toEqual(a.tensors.map((t) => t.name).sort());
    for (const t of a.tensors) {
      const u = b.tensor(t.name)!;
      const [x, y] = [new Uint8Array(t.byteLength), new Uint8Array(u.byteLength)];
      readTensorData(a, t, x);
      readTensorData(b, u, y);
      expect(Buffer.compare(x, y), t.name).toBe(0);
    }
    const config = JSON.parse(fs.readFileSync(path.join(hf, 'config.json'), 'utf8'));
    expect(config).toMatchObject({ architectures: ['GPT2LMHeadModel'], model_type: 'gpt2', n_embd: 64, n_layer: 2, n_head: 4, n_positions: 128, tie_word_embeddings: true });
    const st = openSafetensorsCheckpoint(hf);
    expect(st.tensors.get('transformer.h.0.attn.c_attn.weight')!.shape).toEqual([64, 192]); // [in, out]
    expect(st.tensors.has('lm_head.weight')).toBe(false);
    // Conv1D transposed: HF [in, out] element (i, o) is GGUF [out, in] element (o, i)
    const hfW = new Float32Array(readSafetensorsData(st.tensors.get('transformer.h.1.mlp.c_fc.weight')!).slice().buffer);
    const info = a.tensor('blk.1.ffn_up.weight')!;
    const ggW = new Float32Array(info.byteLength / 4);
    readTensorData(a, info, new Uint8Array(ggW.buffer));
    expect(hfW[3 * 256 + 17]).toBe(ggW[17 * 64 + 3]);
  });

  it('the folder loads directly and gives the GGUF\'s logits bit for bit', async () => {
    const prompt = fixture.cases[2]!.prompt_tokens;
    const logits = await Promise.all([gguf, hf].map(async (p) => {
      const m = await loadModel(p, { backend: 'wasm', threads: 1 });
      const out = m.forward(prompt, 0);
      expect(m.info.architecture).toBe('gpt2');
      m.dispose();
      return out;
    }));
    expect(logits[1]).toEqual(logits[0]);
  });

  describe('errors', () => {
    /** A copy of the folder with config.json edited. */
    function editedFolder(name: string, edit: (config: Record<string, unknown>) => void): string {
      const copy = path.join(dir, name);
      fs.cpSync(hf, copy, { recursive: true });
      const config = JSON.parse(fs.readFileSync(path.join(copy, 'config.json'), 'utf8'));
      edit(config);
      fs.writeFileSync(path.join(copy, 'config.json'), JSON.stringify(config));
      return copy;
    }

    it('an unknown architecture names config.json and the class', () => {
      const d = editedFolder('mamba', (c) => { c.architectures = ['MambaForCausalLM']; });
      expect(() => openModelFile(d)).toThrow(ModelError);
      expect(() => openModelFile(d)).toThrow(/config\.json: architectures \["MambaForCausalLM"\] is not supported \(supported: LlamaForCausalLM, GPT2LMHeadModel\)/);
    });

    it('a missing or bad config key names config.json and the key', () => {
      expect(() => openModelFile(editedFolder('no-embd', (c) => { delete c.n_embd; }))).toThrow(/config\.json: missing required key n_embd/);
      expect(() => openModelFile(editedFolder('bad-head', (c) => { c.n_head = 'four'; }))).toThrow(/config\.json: n_head should be a number, got "four"/);
    });

    it('a wrong shape names the tensor and both shapes', () => {
      const d = editedFolder('short-ctx', (c) => { c.n_positions = 64; });
      expect(() => openModelFile(d)).toThrow(/tensor transformer\.wpe\.weight has shape \[128,64\], .*config\.json implies \[64,64\]/);
    });

    it('a missing tensor is named', () => {
      const d = editedFolder('missing', () => {});
      const st = openSafetensorsCheckpoint(d);
      const kept = [...st.tensors.values()].filter((t) => t.name !== 'transformer.h.1.ln_2.bias');
      writeSafetensors(path.join(d, 'model.safetensors'), kept.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, data: readSafetensorsData(t) })));
      expect(() => openModelFile(d)).toThrow(/missing tensor transformer\.h\.1\.ln_2\.bias \(for blk\.1\.ffn_norm\.bias\)/);
    });

    it('a GGUF of an unknown architecture names it', () => {
      const file = path.join(dir, 'mamba.gguf');
      writeGGUF(file, { 'general.architecture': { type: 'string', value: 'mamba' } }, []);
      expect(() => modelArchConfig(openModelFile(file), 10)).toThrow(/architecture 'mamba' is not supported \(supported: llama, gpt2\)/);
    });

    it('a GGUF missing a gpt2.* key names it', () => {
      const file = path.join(dir, 'nokey.gguf');
      writeGGUF(file, { 'general.architecture': { type: 'string', value: 'gpt2' }, 'gpt2.block_count': { type: 'u32', value: 1 } }, []);
      expect(() => modelArchConfig(openModelFile(file), 10)).toThrow(/missing required metadata key gpt2\.context_length/);
    });
  });
});
