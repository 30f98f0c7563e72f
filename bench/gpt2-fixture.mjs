#!/usr/bin/env node
/**
 * Reference outputs for the GPT-2 forward pass, from llama.cpp (node-llama-cpp's prebuilt CPU
 * binary): writes test/data/gpt2-tiny-llamacpp.json, which test/gpt2.test.ts checks our tokens against.
 *
 *   npm run build && node bench/gpt2-fixture.mjs
 *
 * The model is made by `smallmind init --shape gpt2-tiny --layers 2 --std 0.3 --seed 7` (random
 * weights; the wide std keeps the output from just repeating its input). For each prompt (token
 * ids) llama.cpp decodes greedily with an f32 KV cache; the fixture stores its tokens. The test
 * rebuilds the same model from the same command, so the fixture holds no weights.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { die } from './common.mjs';

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.dirname(BENCH_DIR);
export const INIT_ARGS = ['--shape', 'gpt2-tiny', '--layers', '2', '--std', '0.3', '--seed', '7'];
const PROMPTS = [[15496, 995], [464, 3290, 3332, 319, 262], [40, 1101, 257, 1332, 13, 314, 588, 284, 4483, 257, 1310, 11, 290], [50256]];
const N = 24;

if (!fs.existsSync(path.join(BENCH_DIR, 'node_modules', 'node-llama-cpp'))) die('run `npm run bench` once first (it installs node-llama-cpp into bench/node_modules)');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'smallmind-gpt2-fixture-'));
const model = path.join(dir, 'gpt2-tiny.gguf');
const init = spawnSync(process.execPath, [path.join(ROOT, 'dist', 'cli', 'main.js'), 'init', ...INIT_ARGS, '-o', model], { encoding: 'utf8' });
if (init.status !== 0) die(`smallmind init failed:\n${init.stderr}`);

const { getLlama } = await import(path.join(BENCH_DIR, 'node_modules', 'node-llama-cpp', 'dist', 'index.js'));
const llama = await getLlama({ build: 'never', gpu: false, logLevel: 'error', maxThreads: 1 });
const loaded = await llama.loadModel({ modelPath: model, gpuLayers: 0 });
const cases = [];
for (const prompt of PROMPTS) {
  const context = await loaded.createContext({ contextSize: prompt.length + N + 1, threads: 1, experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32' });
  const sequence = context.getSequence();
  const tokens = [];
  const steps = sequence.evaluate(prompt, { temperature: 0 });
  for (let i = 0; i < N; i++) tokens.push((await steps.next()).value);
  await steps.return();
  cases.push({ prompt_tokens: prompt, tokens });
  await context.dispose();
}
await loaded.dispose();
await llama.dispose();
fs.rmSync(dir, { recursive: true, force: true });

const out = path.join(ROOT, 'test', 'data', 'gpt2-tiny-llamacpp.json');
const pkg = JSON.parse(fs.readFileSync(path.join(BENCH_DIR, 'node_modules', 'node-llama-cpp', 'package.json'), 'utf8'));
fs.writeFileSync(out, `${JSON.stringify({ made_by: `bench/gpt2-fixture.mjs, node-llama-cpp ${pkg.version} (CPU, 1 thread, f32 KV cache)`, init: INIT_ARGS, n: N, cases }, null, 1)}\n`);
console.log(`wrote ${out}`);
for (const c of cases) console.log(JSON.stringify(c.prompt_tokens), '→', JSON.stringify(c.tokens));
