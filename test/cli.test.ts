/**
 * The smallmind CLI, run in-process through main(argv, io) with string sinks: real models and
 * fixture files, exact expected tokens and values.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProgress } from '../src/cli/progress.js';
import { readGGUF, readTensorData } from '../src/formats/gguf.js';
import { randomTensor, tensorSeed } from '../src/init.js';
import { DEFAULT_MODEL_PATH } from '../src/model.js';
import { run, type Run } from './helpers/cli.js';

const shared = (p: string): string => fileURLToPath(new URL(`../../shared/${p}`, import.meta.url));
const generation = JSON.parse(fs.readFileSync(shared('fixtures/generation-stories260K-f32.json'), 'utf8'));
const onceUponATime = generation.cases.find((c: { name: string }) => c.name === 'once_upon_a_time');
const bosOnly = generation.cases.find((c: { name: string }) => c.name === 'bos_only');
const perplexityRuns = JSON.parse(fs.readFileSync(shared('fixtures/perplexity.json'), 'utf8')).runs;
const storyF16 = perplexityRuns.find((r: { model_key: string; text: string }) => r.model_key === 'stories260K-f32' && r.text === 'story');


function json(r: Run): any {
  expect(r.stderr).toBe(''); // --json: nothing but the object
  return JSON.parse(r.stdout);
}

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'smallmind-cli-'));
});
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('generate', () => {
  it('--json -n 8 --temp 0 on the embedded model gives llama.cpp\'s first 8 greedy tokens', async () => {
    const r = json(await run(['generate', 'Once upon a time', '--json', '-n', '8', '--temp', '0', '-t', '1']));
    expect(r.promptTokens).toEqual(onceUponATime.prompt_tokens);
    expect(r.tokens).toEqual(onceUponATime.generated_tokens.slice(0, 8));
    expect(r.text).toBe(', there was a little girl');
    expect(r.stopReason).toBe('length');
    expect(r.timings.promptTokens).toBe(5);
    expect(r.timings.generatedTokens).toBe(8);
    expect(r.timings.prefillTokS).toBeGreaterThan(0);
  });

  it('streams the prompt and the completion to stdout, timings to stderr', async () => {
    const r = await run(['generate', 'Once upon a time', '-n', '8', '--temp', '0', '-t', '1']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('Once upon a time, there was a little girl\n');
    expect(r.stderr).toMatch(/prompt eval: +[\d.]+ ms \/ +5 tokens/);
    expect(r.stderr).toMatch(/eval: +[\d.]+ ms \/ +7 runs/);
    expect(r.stderr).toContain('stop: length after 8 tokens');
  });

  it('reads the prompt from stdin when none is given, and starts from BOS alone without one', async () => {
    const piped = json(await run(['generate', '--json', '-n', '4', '--temp', '0', '-t', '1'], 'Once upon a time\n'));
    expect(piped.promptTokens).toEqual(onceUponATime.prompt_tokens);
    expect(piped.tokens).toEqual(onceUponATime.generated_tokens.slice(0, 4));
    const empty = json(await run(['generate', '--json', '-n', '4', '--temp', '0', '-t', '1'], undefined));
    expect(empty.promptTokens).toEqual([1]);
    expect(empty.tokens).toEqual(bosOnly.generated_tokens.slice(0, 4));
  });

  it('reports a missing model file as an error naming it, without a stack trace', async () => {
    const missing = path.join(tmp, 'nope.gguf');
    const r = await run(['generate', 'hi', '-m', missing]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`error: ${missing}: no such file\n`);
    const j = await run(['generate', 'hi', '-m', missing, '--json']);
    expect(j.code).toBe(1);
    expect(JSON.parse(j.stdout)).toEqual({ error: { code: 'cannot_open', message: `${missing}: no such file` } });
  });

  it('rejects bad option values naming the option', async () => {
    const temp = await run(['generate', 'hi', '--temp', '-1']);
    expect(temp.code).toBe(2);
    expect(temp.stderr).toContain("option '--temp <t>' argument '-1' is invalid");
    const notNumber = await run(['generate', 'hi', '--temp', 'warm', '--json']);
    expect(notNumber.code).toBe(2);
    expect(JSON.parse(notNumber.stdout).error.message).toContain("'--temp <t>' argument 'warm' is invalid");
    const cache = await run(['generate', 'hi', '--cache-type', 'q2']);
    expect(cache.code).toBe(2);
    expect(cache.stderr).toContain("option '--cache-type <type>' argument 'q2' is invalid. Allowed choices are f32, f16, q8_0.");
    const topP = await run(['generate', 'hi', '--top-p', '1.5']);
    expect(topP.stderr).toContain("'--top-p <p>' argument '1.5' is invalid");
    const unknown = await run(['generate', '--temperature', '1']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("unknown option '--temperature'");
  });
});

describe('inspect', () => {
  it('--json describes stories260K.gguf from its header', async () => {
    const r = json(await run(['inspect', '--json', '-m', shared('models/stories260K/stories260K.gguf')]));
    expect(r.format).toBe('gguf');
    expect(r.version).toBe(3);
    expect(r.architecture).toBe('llama');
    expect(r.fileSize).toBe(1185376);
    expect(r.tensors).toHaveLength(48);
    expect(r.config).toMatchObject({
      embedding_length: 64, block_count: 5, feed_forward_length: 172, head_count: 8, head_count_kv: 4,
      context_length: 2048, rope_dimension_count: 8, vocab_size: 512,
    });
    expect(r.tokenizer).toEqual({ model: 'llama', vocabSize: 512, bos: 1, eos: 2 });
    expect(r.tensors.find((t: { name: string }) => t.name === 'blk.0.ffn_down.weight')).toEqual({ name: 'blk.0.ffn_down.weight', dtype: 'f32', shape: [64, 172] });
    expect(r.metadata['tokenizer.ggml.tokens']).toBe('[512 × string]');
    expect(r.metadata['tokenizer.ggml.scores']).toBe('[512 × f32]');
    expect(r.metadata['llama.attention.head_count_kv']).toBe(4);
    // 48 tensors, output.weight included: 512·64·2 + 64 + 5·(2·64 + 64·64·2 + 32·64·2 + 172·64·3)
    expect(r.parameterCount).toBe(292800);
  });

  it('reads a llama2.c checkpoint and the embedded model in text form', async () => {
    const bin = json(await run(['inspect', '--json', '-m', shared('models/stories260K/stories260K.bin')]));
    expect(bin.format).toBe('llama2c');
    expect(bin.tensors).toHaveLength(47); // no output.weight: shared classifier
    expect(bin.tokenizer).toMatchObject({ vocabSize: 512, bos: 1, eos: 2 });
    const text = await run(['inspect']);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(`file:          ${DEFAULT_MODEL_PATH}`);
    expect(text.stdout).toContain('tensors (48):');
    expect(text.stdout).toMatch(/token_embd\.weight +f32 +\[512, 64\]/);
    expect(text.stdout).toContain('layer_norm_rms_epsilon  0.00001');
  });
});

describe('init', () => {
  it('writes a stories15M-shaped q8_0 model that inspect reads back with the real shapes', async () => {
    const file = path.join(tmp, 's15-q8.gguf');
    const made = json(await run(['init', '--shape', 'stories15M', '--dtype', 'q8_0', '--layers', '1', '-o', file, '--seed', '7', '--json']));
    expect(made.tensorCount).toBe(11);
    const r = json(await run(['inspect', '--json', '-m', file]));
    const shapes = Object.fromEntries(r.tensors.map((t: { name: string; dtype: string; shape: number[] }) => [t.name, `${t.dtype} ${t.shape}`]));
    expect(shapes).toEqual({
      'token_embd.weight': 'q8_0 32000,288',
      'output_norm.weight': 'f32 288',
      'blk.0.attn_norm.weight': 'f32 288',
      'blk.0.attn_q.weight': 'q8_0 288,288',
      'blk.0.attn_k.weight': 'q8_0 288,288',
      'blk.0.attn_v.weight': 'q8_0 288,288',
      'blk.0.attn_output.weight': 'q8_0 288,288',
      'blk.0.ffn_norm.weight': 'f32 288',
      'blk.0.ffn_gate.weight': 'q8_0 768,288',
      'blk.0.ffn_up.weight': 'q8_0 768,288',
      'blk.0.ffn_down.weight': 'q8_0 288,768',
    });
    expect(r.config).toMatchObject({
      embedding_length: 288, feed_forward_length: 768, block_count: 1, head_count: 6, head_count_kv: 6,
      context_length: 256, rope_dimension_count: 48, rope_freq_base: 10000, vocab_size: 32000,
    });
    expect(r.metadata['general.file_type']).toBe(7);
    expect(r.tokenizer).toEqual({ model: 'llama', vocabSize: 32000, bos: 1, eos: 2 });
    // Norms are exactly 1.
    const gguf = readGGUF(file);
    const norm = gguf.tensor('output_norm.weight')!;
    const bytes = new Uint8Array(norm.byteLength);
    readTensorData(gguf, norm, bytes);
    expect(new Float32Array(bytes.buffer).every((v) => v === 1)).toBe(true);
    // It runs: the same tokenizer as llama-2 and a forward pass over random weights.
    const g = json(await run(['generate', 'Hello', '-m', file, '-n', '2', '--temp', '0', '-t', '1', '--json']));
    expect(g.promptTokens).toEqual([1, 15043]);
    expect(g.tokens).toHaveLength(2);
  });

  it('pads the vocabulary of larger shapes with unused <extra_N> tokens', async () => {
    const file = path.join(tmp, 'smollm-q4.gguf');
    expect((await run(['init', '--shape', 'smollm-135m', '--dtype', 'q4_0', '--layers', '1', '-o', file])).code).toBe(0);
    const gguf = readGGUF(file);
    const tokens = gguf.metadata.get('tokenizer.ggml.tokens') as string[];
    const types = gguf.metadata.get('tokenizer.ggml.token_type') as Int32Array;
    const scores = gguf.metadata.get('tokenizer.ggml.scores') as Float32Array;
    expect(tokens).toHaveLength(49152);
    expect([tokens[31999], tokens[32000], tokens[49151]]).toEqual(['给', '<extra_0>', '<extra_17151>']);
    expect([types[31999], types[32000], types[49151]]).toEqual([1, 5, 5]);
    expect([scores[32000], scores[49151]]).toEqual([0, 0]);
    expect(gguf.tensor('token_embd.weight')!.shape).toEqual([49152, 576]);
    expect(gguf.tensor('blk.0.attn_k.weight')!.shape).toEqual([192, 576]); // 3 kv heads of 64
    expect(gguf.metadata.get('llama.attention.head_count_kv')).toBe(3);
  });

  it('draws seeded normal(0, 0.02) weights, the same for the same seed and name', () => {
    const a = randomTensor('f32', [64, 1024], tensorSeed(0, 'blk.0.attn_q.weight'));
    const b = randomTensor('f32', [64, 1024], tensorSeed(0, 'blk.0.attn_q.weight'));
    const c = randomTensor('f32', [64, 1024], tensorSeed(1, 'blk.0.attn_q.weight'));
    const d = randomTensor('f32', [64, 1024], tensorSeed(0, 'blk.0.attn_k.weight'));
    expect(Buffer.compare(a, b)).toBe(0);
    expect(Buffer.compare(a, c)).not.toBe(0);
    expect(Buffer.compare(a, d)).not.toBe(0);
    const v = new Float32Array(a.buffer);
    const mean = v.reduce((s, x) => s + x, 0) / v.length;
    const std = Math.sqrt(v.reduce((s, x) => s + (x - mean) ** 2, 0) / v.length);
    expect(Math.abs(mean)).toBeLessThan(0.0005); // 4σ of the mean of 65536 draws is 0.0003
    expect(Math.abs(std - 0.02)).toBeLessThan(0.0005);
  });

  it('rejects unknown shapes and a missing output directory', async () => {
    const shape = await run(['init', '--shape', 'gpt-5', '-o', path.join(tmp, 'x.gguf')]);
    expect(shape.code).toBe(2);
    expect(shape.stderr).toContain("option '--shape <name>' argument 'gpt-5' is invalid");
    const dir = await run(['init', '--shape', 'stories15M', '-o', path.join(tmp, 'no', 'such', 'x.gguf')]);
    expect(dir.code).toBe(1);
    expect(dir.stderr).toMatch(/^error: output: directory .* does not exist\n$/);
  });
});

describe('perplexity', () => {
  it('matches llama-perplexity on the story text (ctx 128, f16 cache)', async () => {
    const text = await run(['perplexity', '-f', shared('fixtures/ppl-story.txt'), '-c', '128', '-t', '1']);
    expect(text.code).toBe(0);
    const printed = [...text.stdout.matchAll(/\[(\d+)\]([\d.]+),/g)].map((m) => Number(m[2]));
    expect(printed).toHaveLength(storyF16.n_chunks);
    printed.forEach((ppl, k) => expect(Math.abs(ppl - storyF16.cumulative_ppl[k])).toBeLessThan(2e-3 * ppl));
    expect(text.stdout).toMatch(/Final estimate: PPL = 4\.17\d\d \+\/- 0\.31\d+\n$/);
    const r = json(await run(['perplexity', '-f', shared('fixtures/ppl-story.txt'), '-c', '128', '-t', '1', '--json']));
    expect(r.chunks).toHaveLength(8);
    expect(Math.abs(r.ppl - storyF16.final_ppl)).toBeLessThan(2e-3);
    expect(Math.abs(r.stderr - storyF16.final_ppl_stderr)).toBeLessThan(2e-3);
  });

  it('names a missing text file', async () => {
    const missing = path.join(tmp, 'none.txt');
    const r = await run(['perplexity', '-f', missing]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`error: ${missing}: no such file\n`);
  });
});

describe('bench', () => {
  it('--json reports medians, load time and peak RSS', async () => {
    const r = json(await run(['bench', '-p', '16', '-n', '8', '-r', '2', '-t', '1', '--json']));
    expect(Object.keys(r).slice(0, 4)).toEqual(['load_ms', 'prefill_tok_s', 'decode_tok_s', 'peak_rss_mb']);
    expect(r.prefill_runs).toHaveLength(2);
    expect(r.decode_runs).toHaveLength(2);
    for (const key of ['load_ms', 'prefill_tok_s', 'decode_tok_s', 'peak_rss_mb']) expect(r[key]).toBeGreaterThan(0);
    // the median of two runs is their mean; every printed value is rounded to 0.01, so allow that twice
    expect(Math.abs(r.prefill_tok_s - (r.prefill_runs[0] + r.prefill_runs[1]) / 2)).toBeLessThanOrEqual(0.0101);
  });

  it('prints a llama-bench style table', async () => {
    const r = await run(['bench', '-p', '8', '-n', '4', '-r', '1', '-t', '1']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/\| stories260K\.gguf \| .* \| pp8 +\| +[\d.]+ ± 0\.00 \|/);
    expect(r.stdout).toMatch(/\| tg4 +\|/);
  });
});

describe('progress', () => {
  it('prints a line per 10% off a terminal (after the first half second), a bar in place on one', () => {
    let clock = 0;
    const lines = { text: '', write: (t: string) => (lines.text += t) };
    const p = createProgress('loading', lines, 'lines', () => clock);
    p.update(5e6, 1e7); // within the first 0.5 s: quiet
    clock = 1000;
    p.update(5.5e6, 1e7);
    p.update(5.9e6, 1e7); // same 10% step: nothing
    clock = 2000;
    p.update(1e7, 1e7);
    p.finish();
    expect(lines.text).toBe(
      'loading: 55% (5.5 MB/10.0 MB, 5.5 MB/s, ETA 0.8s)\n' +
      'loading: 100% (10.0 MB/10.0 MB, 5.0 MB/s, in 2.0s)\n',
    );
    clock = 0;
    const tty = { text: '', isTTY: true, write: (t: string) => (tty.text += t) };
    const bar = createProgress('writing', tty, 'tty', () => clock);
    clock = 500;
    bar.update(25e6, 1e8);
    bar.finish();
    expect(tty.text).toBe(
      '\rwriting [######..................]  25% 25.0 MB/100.0 MB 50.0 MB/s ETA 1.5s\x1b[K' +
      '\rwriting [######..................]  25% 25.0 MB/100.0 MB 50.0 MB/s ETA 1.5s\x1b[K\n',
    );
  });
});
