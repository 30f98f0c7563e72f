#!/usr/bin/env node
/**
 * Peak memory of loading and running a model (not a test):
 *
 *   npm run bench:memory -- MODEL.gguf [MODEL.gguf ...] [--threads 1] [--ctx 2048] [--cache-type f16] [-p 32] [-n 16] [--json]
 *
 * Each model runs in a fresh child process (this script with --child): it imports the library,
 * loads the model with the wasm backend, evaluates a p-token prompt and decodes n tokens, then
 * reports process.resourceUsage().maxRSS, the peak resident set. One more child only imports the
 * library: its peak is the Node baseline, subtracted from every model's.
 *
 * Columns: the file size; the KV cache's bytes (allocated in full, though pages no position has
 * been written to yet are not resident); the RSS right after loading and the peak; and
 *   peak/file = (peak − baseline) / file size: what the process holds per byte of model file;
 *   budget    = (peak − baseline − KV bytes) / file size: the goal is ≤ 1.2, i.e. peak ≤ baseline
 *               + 1.2 × file + KV cache.
 * The weights are read straight into wasm memory (no second copy), so for files of a few hundred
 * MB peak/file is close to 1; what is left is a fixed ~20-30 MB (tokenizer tables, scratch,
 * logits, V8 compiling the kernels), which dominates only for tiny files.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { die } from './common.mjs';

const SELF = fileURLToPath(import.meta.url);
const ROOT = path.dirname(path.dirname(SELF));
const LIBRARY = path.join(ROOT, 'dist', 'index.js');
const MiB = 2 ** 20;

if (process.argv[2] === '--child') await child(process.argv[3], JSON.parse(process.argv[4]));
else parent(parseArgs(process.argv.slice(2)));

/** In the child: load (or only import) and print one JSON line of measurements. */
async function child(mode, opts) {
  const { loadModel } = await import(LIBRARY);
  if (mode === 'baseline') {
    console.log(JSON.stringify({ peakRss: peakRss() }));
    return;
  }
  const model = await loadModel(opts.model, { backend: 'wasm', threads: opts.threads, contextLength: opts.ctx, cacheType: opts.cacheType });
  const loadedRss = process.memoryUsage().rss;
  const loadedPeak = peakRss();
  const vocab = model.info.tokenizer.vocabSize;
  const prompt = Array.from({ length: opts.p }, (_, i) => (i === 0 ? model.info.tokenizer.bos : (i * 7919) % vocab));
  model.network.forward(prompt, 0);
  for (let i = 0; i < opts.n; i++) model.network.forward([(i * 104729) % vocab], opts.p + i);
  console.log(JSON.stringify({
    fileSize: model.info.fileSize,
    kvBytes: model.network.cache.byteLength,
    loadedRss,
    loadedPeak,
    peakRss: peakRss(),
    wasmMemory: model.backend.memorySize,
    wasmUsed: model.backend.memoryUsed,
  }));
  model.dispose();
}

/** Peak resident set so far, in bytes (maxRSS is in KiB). */
function peakRss() {
  return process.resourceUsage().maxRSS * 1024;
}

function runChild(mode, opts) {
  const r = spawnSync(process.execPath, [SELF, '--child', mode, JSON.stringify(opts)], { encoding: 'utf8' });
  if (r.status !== 0) die(`${mode} ${opts.model ?? ''}: child failed (status ${r.status}):\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1));
}

function parent(args) {
  if (!fs.existsSync(LIBRARY)) die('dist/ is missing: run npm run build first');
  const common = { threads: args.threads, ctx: args.ctx, cacheType: args.cacheType, p: args.p, n: args.n };
  const baseline = runChild('baseline', common).peakRss;
  const rows = args.models.map((model) => {
    const m = runChild('load', { ...common, model });
    const extra = m.peakRss - baseline;
    return { model: path.basename(model), ...m, baseline, peakPerFile: extra / m.fileSize, budget: (extra - m.kvBytes) / m.fileSize };
  });
  if (args.json) {
    console.log(JSON.stringify({ settings: { ...common, node: process.version, cpu: os.cpus()[0]?.model }, rows }, null, 1));
    return;
  }
  console.log(`\n${args.threads} thread(s), ${args.cacheType} KV cache of ${args.ctx} positions, ${args.p}-token prompt + ${args.n} decode steps; node ${process.version}`);
  console.log(`baseline (node + import of the library): ${(baseline / MiB).toFixed(1)} MiB peak RSS\n`);
  const header = ['model', 'file MiB', 'KV MiB', 'loaded RSS', 'peak RSS', 'wasm mem', 'peak/file', 'budget'];
  console.log(header.map((h, i) => (i ? h.padStart(11) : h.padEnd(24))).join(''));
  for (const r of rows) {
    const cells = [r.fileSize, r.kvBytes, r.loadedRss, r.peakRss, r.wasmMemory].map((b) => (b / MiB).toFixed(1));
    cells.push(r.peakPerFile.toFixed(3), r.budget.toFixed(3));
    console.log(r.model.padEnd(24) + cells.map((c) => c.padStart(11)).join(''));
  }
  console.log('\npeak/file = (peak − baseline) / file; budget = (peak − baseline − KV) / file, goal ≤ 1.2. wasm mem: the memory\'s size (reserved; only touched pages are resident).');
}

function parseArgs(argv) {
  const args = { models: [], threads: 1, ctx: 2048, cacheType: 'f16', p: 32, n: 16, json: false };
  const int = (flag, v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) die(`${flag} takes a positive integer, got ${v}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--threads') args.threads = int(a, argv[++i]);
    else if (a === '--ctx') args.ctx = int(a, argv[++i]);
    else if (a === '-p') args.p = int(a, argv[++i]);
    else if (a === '-n') args.n = int(a, argv[++i]);
    else if (a === '--cache-type') args.cacheType = argv[++i];
    else if (a === '--json') args.json = true;
    else if (a.startsWith('-')) die(`unknown option ${a}`);
    else args.models.push(a);
  }
  if (!args.models.length) die('usage: npm run bench:memory -- MODEL.gguf [MODEL.gguf ...] [--threads N] [--ctx N] [--cache-type f32|f16|q8_0] [-p N] [-n N] [--json]');
  for (const m of args.models) if (!fs.existsSync(m)) die(`no such file: ${m}`);
  if (!['f32', 'f16', 'q8_0'].includes(args.cacheType)) die(`--cache-type takes f32, f16 or q8_0, got ${args.cacheType}`);
  if (args.p + args.n > args.ctx) die(`-p + -n (${args.p + args.n}) exceed --ctx ${args.ctx}`);
  return args;
}
