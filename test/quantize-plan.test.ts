/**
 * llama-quantize's per-tensor types for the file types (src/quantize-plan.ts), on the tensor list
 * of a Llama-2-7B-shaped model (32 layers, 4096 wide, 11008-wide FFN).
 */
import { describe, expect, it } from 'vitest';
import { parseFileType, planTensorTypes, useMoreBits, type PlanTensor } from '../src/quantize-plan.js';

function llamaTensors(layers: number, dim: number, ffn: number, tied = false): PlanTensor[] {
  const t = (name: string, ...shape: number[]): PlanTensor => ({ name, shape, dtype: 'f32' });
  const list = [t('token_embd.weight', 32000, dim), t('output_norm.weight', dim)];
  if (!tied) list.push(t('output.weight', 32000, dim));
  for (let l = 0; l < layers; l++) {
    list.push(
      t(`blk.${l}.attn_norm.weight`, dim), t(`blk.${l}.attn_q.weight`, dim, dim), t(`blk.${l}.attn_k.weight`, dim, dim),
      t(`blk.${l}.attn_v.weight`, dim, dim), t(`blk.${l}.attn_output.weight`, dim, dim), t(`blk.${l}.ffn_norm.weight`, dim),
      t(`blk.${l}.ffn_gate.weight`, ffn, dim), t(`blk.${l}.ffn_up.weight`, ffn, dim), t(`blk.${l}.ffn_down.weight`, dim, ffn),
    );
  }
  return list;
}

function typesOf(tensors: PlanTensor[], fileType: string, extra = {}): Map<string, string> {
  const types = planTensorTypes(tensors, { fileType: parseFileType(fileType), ...extra });
  return new Map(tensors.map((t, i) => [t.name, types[i]!]));
}

/** Layers whose `role` tensor has type `type`. */
function layersWith(types: Map<string, string>, role: string, type: string): number[] {
  return [...types].filter(([name, t]) => name.endsWith(`.${role}.weight`) && t === type).map(([name]) => Number(name.split('.')[1]));
}

describe('planTensorTypes', () => {
  const llama7b = llamaTensors(32, 4096, 11008);
  const favoured = [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31];

  it('q4_k_m: Q6_K for the output, and attn_v / ffn_down of the favoured layers; norms stay', () => {
    const types = typesOf(llama7b, 'q4_k_m');
    expect(types.get('output.weight')).toBe('q6_k');
    expect(types.get('token_embd.weight')).toBe('q4_k');
    expect(types.get('blk.0.attn_norm.weight')).toBe('f32');
    expect(layersWith(types, 'attn_v', 'q6_k')).toEqual(favoured);
    expect(layersWith(types, 'ffn_down', 'q6_k')).toEqual(favoured);
    expect(layersWith(types, 'attn_q', 'q4_k')).toHaveLength(32);
    expect(layersWith(types, 'ffn_down', 'q6_k').length + layersWith(types, 'ffn_down', 'q4_k').length).toBe(32);
  });

  it('q4_k_s gives the first layers Q5_K; q5_k_m is the q4_k_m pattern one step up', () => {
    const s = typesOf(llama7b, 'q4_k_s');
    expect(layersWith(s, 'attn_v', 'q5_k')).toEqual([0, 1, 2, 3]);
    expect(layersWith(s, 'ffn_down', 'q5_k')).toEqual([0, 1, 2, 3]);
    const m5 = typesOf(llama7b, 'q5_k');
    expect(layersWith(m5, 'attn_v', 'q6_k')).toEqual(favoured);
    expect(layersWith(m5, 'attn_q', 'q5_k')).toHaveLength(32);
  });

  it('tied embeddings take the output\'s type; 32-block types get a Q6_K output unless q8_0', () => {
    const tied = typesOf(llamaTensors(32, 4096, 11008, true), 'q4_0');
    expect(tied.get('token_embd.weight')).toBe('q6_k');
    expect(typesOf(llama7b, 'q4_0').get('token_embd.weight')).toBe('q4_0');
    expect(typesOf(llama7b, 'q8_0').get('output.weight')).toBe('q8_0');
    expect(typesOf(llama7b, 'f16').get('output.weight')).toBe('f16');
  });

  it('rows that do not split fall back (Q4_K → Q5_0, Q6_K → Q8_0, else F16); overrides and --pure win', () => {
    const narrow = llamaTensors(4, 288, 768); // stories15M widths: 288 is not a multiple of 256
    const types = planTensorTypes(narrow, { fileType: 'q4_k_m' });
    const byName = new Map(narrow.map((t, i) => [t.name, types[i]]));
    expect(byName.get('blk.1.attn_q.weight')).toBe('q5_0');
    expect(byName.get('blk.2.attn_v.weight')).toBe('q8_0'); // favoured: Q6_K → Q8_0
    expect(byName.get('output.weight')).toBe('q8_0');
    const odd = planTensorTypes([{ name: 'blk.0.ffn_down.weight', shape: [64, 172], dtype: 'f32' }], { fileType: 'q4_0' });
    expect(odd).toEqual(['f16']);
    const pure = typesOf(llama7b, 'q4_k_m', { pure: true, tokenEmbeddingType: 'q8_0' });
    expect(new Set([...pure].filter(([n]) => !n.includes('norm') && n !== 'token_embd.weight').map(([, t]) => t))).toEqual(new Set(['q4_k']));
    expect(pure.get('token_embd.weight')).toBe('q8_0');
    expect(typesOf(llama7b, 'q4_k_m', { outputTensorType: 'f16' }).get('output.weight')).toBe('f16');
  });

  it('names the parameter for an unknown type', () => {
    expect(() => parseFileType('q3_k')).toThrow(/type: must be one of .*q4_k_m.*"q3_k"/);
    expect(parseFileType('Q4_K')).toBe('q4_k_m');
    expect([0, 1, 2, 3, 4].map((l) => useMoreBits(l, 5))).toEqual([false, false, true, false, true]);
  });
});
