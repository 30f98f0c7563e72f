#!/usr/bin/env node
/**
 * SmallMind vs node-llama-cpp (llama.cpp's prebuilt CPU binary) on the same GGUF files.
 *
 *   npm run bench -- [--threads 1,2] [--rounds 5] [-p 128] [-n 128] [--models stories15M,stories110M]
 *                    [--flash-attention auto|on|off] [--engines smallmind,node-llama-cpp] [--out FILE]
 *
 * For each model and thread count it runs the two engines ALTERNATELY (ours, peer, ours, peer,
 * ...) `rounds` times each, every run a fresh child process that loads the model, does one
 * untimed warm-up repetition and then one timed one: prefill = p prompt tokens as one batch from
 * position 0; decode = n single-token steps continuing after the prompt. Both engines get the
 * same token ids, threads, batch size (p) and an F16 KV cache. The table shows medians over the
 * rounds and our/peer ratios; bench/results.json keeps every run.
 *
 * The models are random-weight F32 GGUFs of the real TinyStories shapes, made on first use with
 * our `init` command (speed does not depend on the weights' values).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { die, median } from './common.mjs';

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.dirname(BENCH_DIR);
const CLI = path.join(ROOT, 'dist', 'cli', 'main.js');

const args = parseArgs(process.argv.slice(2));
ensureBuilt();
ensurePeerInstalled(args.engines);
const { benchTokens } = await import(path.join(ROOT, 'dist', 'cli', 'bench.js'));
const { inspectModel } = await import(path.join(ROOT, 'dist', 'cli', 'inspect.js'));

const results = [];
for (const shape of args.models) {
  const modelPath = ensureModel(shape);
  const info = inspectModel(modelPath);
  const tokens = benchTokens(args.p + args.n, info.config.vocab_size, info.tokenizer.bos);
  for (const threads of args.threads) {
    const runs = Object.fromEntries(args.engines.map((e) => [e, []]));
    for (let round = 0; round < args.rounds; round++) {
      for (const engine of args.engines) {
        const run = runEngine(engine, { model: modelPath, threads, p: args.p, n: args.n, inner: 1, tokens });
        runs[engine].push(run);
        process.stderr.write(
          `${shape} t=${threads} round ${round + 1}/${args.rounds} ${engine.padEnd(14)} ` +
          `pp ${run.prefill_tok_s.toFixed(1)} tok/s, tg ${run.decode_tok_s.toFixed(1)} tok/s\n`,
        );
      }
    }
    const summary = Object.fromEntries(args.engines.map((e) => [e, summarise(runs[e])]));
    results.push({ model: path.basename(modelPath), shape, parameters: info.parameterCount, threads, ...summary, runs });
  }
}

printTable(results, args);
const out = {
  date: new Date().toISOString(),
  machine: { cpu: os.cpus()[0]?.model, cores: os.availableParallelism(), node: process.version, platform: `${process.platform}-${process.arch}` },
  settings: {
    n_prompt: args.p, n_gen: args.n, rounds: args.rounds, kv_cache: 'f16 (both engines)',
    peer: 'node-llama-cpp, getLlama({ build: "never", gpu: false }), prebuilt CPU binary',
    peer_flash_attention: args.flashAttention,
    method: 'alternating child processes; each loads, warms up once, times one prefill (one batch) and n single-token decodes; medians over rounds',
  },
  results,
};
fs.writeFileSync(args.out, `${JSON.stringify(out, null, 2)}\n`);
console.log(`\nwrote ${path.relative(process.cwd(), args.out) || args.out}`);

// ---------------------------------------------------------------------------------------------

function parseArgs(argv) {
  const a = {
    threads: [1], rounds: 5, p: 128, n: 128, models: ['stories15M', 'stories110M'],
    flashAttention: 'auto', engines: ['smallmind', 'node-llama-cpp'], out: path.join(BENCH_DIR, 'results.json'),
  };
  const positiveInts = (v, name) => v.split(',').map((x) => {
    const n = Number(x);
    if (!Number.isInteger(n) || n < 1) die(`${name}: expected positive integers, got '${v}'`);
    return n;
  });
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = () => argv[++i] ?? die(`${flag} needs a value`);
    switch (flag) {
      case '--threads': case '-t': a.threads = positiveInts(value(), flag); break;
      case '--rounds': case '-r': a.rounds = positiveInts(value(), flag)[0]; break;
      case '-p': case '--n-prompt': a.p = positiveInts(value(), flag)[0]; break;
      case '-n': case '--n-gen': a.n = positiveInts(value(), flag)[0]; break;
      case '--models': a.models = value().split(','); break;
      case '--engines': a.engines = value().split(','); break;
      case '--flash-attention': a.flashAttention = value(); break;
      case '--out': a.out = path.resolve(value()); break;
      case '--help': case '-h':
        console.log(fs.readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').slice(2, 17).join('\n').replace(/^ \*\/?/gm, ''));
        process.exit(0);
        break;
      default: die(`unknown option ${flag} (see --help)`);
    }
  }
  for (const m of a.models) if (!['stories15M', 'stories110M', 'smollm-135m', 'llama-1b'].includes(m)) die(`--models: unknown shape ${m}`);
  for (const e of a.engines) if (!['smallmind', 'node-llama-cpp'].includes(e)) die(`--engines: unknown engine ${e}`);
  if (!['auto', 'on', 'off'].includes(a.flashAttention)) die(`--flash-attention: expected auto, on or off`);
  return a;
}

function ensureBuilt() {
  if (fs.existsSync(path.join(ROOT, 'dist', 'index.js')) && fs.existsSync(CLI)) return;
  console.error('bench: dist/ is missing, running npm run build');
  const r = spawnSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'inherit' });
  if (r.status !== 0) die('npm run build failed');
}

function ensurePeerInstalled(engines) {
  if (!engines.includes('node-llama-cpp')) return;
  if (fs.existsSync(path.join(BENCH_DIR, 'node_modules', 'node-llama-cpp'))) return;
  console.error('bench: installing node-llama-cpp into bench/node_modules (first run; ~700 MB, takes a few minutes)');
  const r = spawnSync('npm', ['install', '--prefix', BENCH_DIR, '--no-audit', '--no-fund'], { stdio: 'inherit' });
  if (r.status !== 0) die('npm install --prefix bench failed');
}

/** bench/models/<shape>-f32.gguf, written by our `init` on first use. */
function ensureModel(shape) {
  const file = path.join(BENCH_DIR, 'models', `${shape}-f32.gguf`);
  if (fs.existsSync(file)) return file;
  fs.mkdirSync(path.dirname(file), { recursive: true });
  console.error(`bench: creating ${path.relative(ROOT, file)} with smallmind init`);
  const r = spawnSync(process.execPath, [CLI, 'init', '--shape', shape, '--dtype', 'f32', '-o', file], { stdio: 'inherit' });
  if (r.status !== 0) die(`smallmind init --shape ${shape} failed`);
  return file;
}

function runEngine(engine, job) {
  const script = path.join(BENCH_DIR, 'engines', `${engine}.mjs`);
  const payload = engine === 'smallmind'
    ? { model: job.model, threads: job.threads, p: job.p, n: job.n, inner: job.inner, cacheType: 'f16' }
    : { ...job, flashAttention: args.flashAttention };
  const r = spawnSync(process.execPath, [script, JSON.stringify(payload)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 24 });
  if (r.status !== 0) die(`${engine} run failed (exit ${r.status})\n${r.stdout}`);
  const last = r.stdout.trim().split('\n').pop();
  return JSON.parse(last);
}

function summarise(runs) {
  const pick = (key) => median(runs.map((r) => r[key]));
  return { load_ms: pick('load_ms'), prefill_tok_s: pick('prefill_tok_s'), decode_tok_s: pick('decode_tok_s'), peak_rss_mb: pick('peak_rss_mb') };
}

function printTable(rows, a) {
  const header = ['model', 'threads', 'engine', 'load ms', `pp${a.p} t/s`, `tg${a.n} t/s`, 'peak RSS MB'];
  const lines = [];
  for (const r of rows) {
    for (const e of a.engines) {
      const s = r[e];
      lines.push([r.model, String(r.threads), e, s.load_ms.toFixed(0), s.prefill_tok_s.toFixed(1), s.decode_tok_s.toFixed(1), s.peak_rss_mb.toFixed(0)]);
    }
    if (r.smallmind && r['node-llama-cpp']) {
      const ours = r.smallmind;
      const peer = r['node-llama-cpp'];
      lines.push([r.model, String(r.threads), 'ours / peer', '',
        `${(ours.prefill_tok_s / peer.prefill_tok_s).toFixed(2)}×`, `${(ours.decode_tok_s / peer.decode_tok_s).toFixed(2)}×`,
        `${(ours.peak_rss_mb / peer.peak_rss_mb).toFixed(2)}×`]);
    }
  }
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const fmt = (cells) => `| ${cells.map((c, i) => (i < 3 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(' | ')} |`;
  console.log(`\nmedians of ${a.rounds} alternating runs; KV cache f16 for both; peer flash attention: ${a.flashAttention}`);
  console.log(fmt(header));
  console.log(`| ${widths.map((w, i) => (i < 3 ? '-'.repeat(w) : `${'-'.repeat(w - 1)}:`)).join(' | ')} |`);
  for (const l of lines) console.log(fmt(l));
}
