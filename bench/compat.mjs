#!/usr/bin/env node
/**
 * Do files written by `smallmind quantize` load in llama.cpp (node-llama-cpp's prebuilt CPU
 * binary), and do both engines pick the same greedy tokens from them?
 *
 *   npm run bench:compat -- [--types q8_0,q4_0,...] [--model F32.gguf] [-n 32]
 *
 * For each type: our quantizer writes MODEL-T.gguf; then, from the token ids of each fixture
 * prompt (../shared/fixtures/generation-stories260K-f32.json), n greedy tokens from SmallMind
 * (wasm kernels, f16 KV cache) and from node-llama-cpp (each in its own child process). Prints how
 * many tokens agree and where the first difference is, with our top-2 logit gap there: a
 * difference at a near tie is rounding, anything else a bug.
 *
 * The default model is stories260K, a model trained for real; its 64-wide rows do not split into
 * 256-value K-quant blocks, so the K-quant types fall back there (Q4_K → Q5_0, Q6_K → Q8_0). Pass
 * a model with 256-multiple rows (e.g. bench/models/stories110M-f32.gguf, random weights) to check
 * real K-quant blocks.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { die } from './common.mjs';

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.dirname(BENCH_DIR);
const SHARED = path.join(ROOT, '..', 'shared');

const args = parseArgs(process.argv.slice(2));
if (process.env.COMPAT_CHILD) {
  await child(JSON.parse(process.env.COMPAT_CHILD));
  process.exit(0);
}
if (!fs.existsSync(path.join(BENCH_DIR, 'node_modules', 'node-llama-cpp'))) die('run `npm run bench` once first (it installs node-llama-cpp into bench/node_modules)');
const { quantizeModel } = await import(path.join(ROOT, 'dist', 'index.js'));
const fixture = JSON.parse(fs.readFileSync(path.join(SHARED, 'fixtures', 'generation-stories260K-f32.json'), 'utf8'));
const prompts = fixture.cases.map((c) => c.prompt_tokens);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'smallmind-compat-'));

const rows = [];
for (const type of args.types) {
  const file = path.join(dir, `${path.basename(args.model, '.gguf')}-${type}.gguf`);
  const q = quantizeModel({ input: args.model, output: file, type });
  const ours = runChild({ engine: 'smallmind', file, prompts, n: args.n });
  const peer = runChild({ engine: 'node-llama-cpp', file, prompts, n: args.n });
  let same = 0;
  const firstDiffs = [];
  prompts.forEach((_, i) => {
    const a = ours.tokens[i];
    const b = peer.tokens[i];
    const k = a.findIndex((t, j) => t !== b[j]);
    same += k < 0 ? a.length : k;
    if (k >= 0) firstDiffs.push(`prompt ${i}: step ${k} (our top-2 logit gap there ${ours.gaps[i][k].toFixed(3)})`);
  });
  const types = Object.entries(q.tensorTypes).map(([t, c]) => `${c} ${t}`).join(', ');
  rows.push({ type, tensorTypes: q.tensorTypes, agree: same, total: prompts.length * args.n, firstDiffs });
  console.log(`${type.padEnd(7)} ${String(same).padStart(4)}/${prompts.length * args.n} greedy tokens agree  [${types}]${firstDiffs.length ? `\n        first differences: ${firstDiffs.join('; ')}` : ''}`);
}
fs.rmSync(dir, { recursive: true, force: true });
if (args.json) console.log(JSON.stringify(rows));

function runChild(job) {
  const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url)], {
    env: { ...process.env, COMPAT_CHILD: JSON.stringify(job) }, encoding: 'utf8', maxBuffer: 64 << 20,
  });
  if (r.status !== 0) die(`${job.engine} failed on ${job.file}:\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1));
}

/** Greedy tokens (and the top-2 logit gap at each step) for every prompt, in one engine. */
async function child({ engine, file, prompts, n }) {
  const tokens = [];
  const gaps = [];
  if (engine === 'smallmind') {
    const { loadModel } = await import(path.join(ROOT, 'dist', 'index.js'));
    for (const prompt of prompts) {
      const model = await loadModel(file, { backend: 'wasm', threads: 1, cacheType: 'f16' });
      const out = [];
      const gap = [];
      let logits = model.forward(prompt, 0);
      for (let i = 0; i < n; i++) {
        const next = argmax(logits);
        out.push(next);
        gap.push(logits[next] - Math.max(...logits.filter((_, j) => j !== next)));
        logits = model.forward([next], prompt.length + i);
      }
      tokens.push(out);
      gaps.push(gap);
      model.dispose();
    }
  } else {
    const { getLlama } = await import(path.join(BENCH_DIR, 'node_modules', 'node-llama-cpp', 'dist', 'index.js'));
    const llama = await getLlama({ build: 'never', gpu: false, logLevel: 'error', maxThreads: 1 });
    const model = await llama.loadModel({ modelPath: file, gpuLayers: 0 });
    for (const prompt of prompts) {
      const context = await model.createContext({ contextSize: prompt.length + n + 1, threads: 1 });
      const sequence = context.getSequence();
      const out = [];
      const steps = sequence.evaluate(prompt, { temperature: 0 });
      for (let i = 0; i < n; i++) {
        const r = await steps.next();
        out.push(r.value);
      }
      await steps.return();
      tokens.push(out);
      await context.dispose();
    }
    await model.dispose();
    await llama.dispose();
  }
  console.log(JSON.stringify({ tokens, gaps }));
}

function argmax(values) {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

function parseArgs(argv) {
  const a = {
    types: ['q8_0', 'q4_0', 'q4_1', 'q5_0', 'q5_1', 'q4_k_s', 'q4_k_m', 'q5_k_m', 'q6_k'],
    model: path.join(SHARED, 'models', 'stories260K', 'stories260K.gguf'),
    n: 32,
    json: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = () => argv[++i] ?? die(`${flag} needs a value`);
    if (flag === '--types') a.types = value().split(',');
    else if (flag === '--model') a.model = value();
    else if (flag === '-n') a.n = Number(value());
    else if (flag === '--json') a.json = true;
    else die(`unknown option ${flag}`);
  }
  return a;
}
