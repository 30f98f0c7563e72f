#!/usr/bin/env node
/**
 * SmallMind vs node-llama-cpp (llama.cpp's prebuilt CPU binary) on the same GGUF files.
 *
 *   npm run bench -- [--models stories15M,stories110M,smollm-135m,llama-1b] [--types f32,q8_0,q4_0,q4_k_m]
 *                    [--threads 1,2] [--rounds 3] [-p N] [-n N] [--flash-attention auto|on|off]
 *                    [--engines smallmind,node-llama-cpp] [--out FILE] [--markdown FILE]
 *
 * For each shape × weight type × thread count it runs the two engines ALTERNATELY (ours, peer,
 * ours, peer, ...) `rounds` times each, every run a fresh child process that loads the model,
 * does one untimed warm-up repetition and then one timed one: prefill = p prompt tokens as one
 * batch from position 0; decode = n single-token steps continuing after the prompt. Both engines
 * get the same file, token ids, threads, batch size (p) and an F16 KV cache. Without -p/-n the
 * sizes are per shape (smaller for the big shapes, see TOKENS_PER_SHAPE) so the default matrix
 * fits in about 30 minutes on 2 cores. Decode is also shown as a % of the DRAM read bandwidth
 * measured at the start (bench/bandwidth.c). The table shows medians and our/peer ratios;
 * bench/results.json keeps every run; --markdown writes the table with its facts.
 *
 * Models are random-weight GGUFs of real shapes (speed does not depend on the weights' values),
 * made on first use in bench/models/ with our CLI: `init` writes the F32 file, `quantize` the
 * other types. A type our quantizer rejects, or our loader cannot compute with, is reported as
 * n/a; nothing is faked with another tool.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { measureBandwidth } from './bandwidth.mjs';
import { die, ensureBenchPackage, median } from './common.mjs';
import { markdownReport } from './markdown.mjs';

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.dirname(BENCH_DIR);
const CLI = path.join(ROOT, 'dist', 'cli', 'main.js');
const PEER = 'node-llama-cpp';
const SHAPES = ['stories15M', 'stories110M', 'smollm-135m', 'llama-1b'];
const TYPES = ['f32', 'q8_0', 'q4_0', 'q4_k_m'];
/**
 * Default prompt (p) and generated (n) tokens. A run costs two repetitions (warm-up + timed);
 * llama-1b decodes at a few tokens/s per thread, so its cells use short runs to keep the whole
 * default matrix near 30 minutes on 2 cores. -p / -n override these for every shape.
 */
const TOKENS_PER_SHAPE = {
  stories15M: { p: 128, n: 128 },
  stories110M: { p: 128, n: 64 },
  'smollm-135m': { p: 128, n: 64 },
  'llama-1b': { p: 32, n: 16 },
};

/** ggml's storage per type: [values per block, bytes per block]. */
const GGML_BLOCKS = {
  f32: [1, 4], f16: [1, 2], bf16: [1, 2], q8_0: [32, 34], q4_0: [32, 18], q4_1: [32, 20], q5_0: [32, 22], q5_1: [32, 24],
  q2_k: [256, 84], q3_k: [256, 110], q4_k: [256, 144], q5_k: [256, 176], q6_k: [256, 210], q8_k: [256, 292],
};

const startedAt = performance.now();
const args = parseArgs(process.argv.slice(2));
ensureBuilt();
ensurePeerInstalled(args.engines);
const { benchTokens } = await import(path.join(ROOT, 'dist', 'cli', 'bench.js'));
const { inspectModel } = await import(path.join(ROOT, 'dist', 'cli', 'inspect.js'));
const { initConfig } = await import(path.join(ROOT, 'dist', 'init.js'));
const { llamaTensorShapes } = await import(path.join(ROOT, 'dist', 'models', 'llama.js'));

const peerInfo = args.engines.includes(PEER) ? readPeerInfo() : null;
process.stderr.write(`bench: measuring DRAM read bandwidth (${args.threads.join(', ')} thread(s))\n`);
const bandwidth = measureBandwidth(args.threads);

const results = [];
let ourBackend = null;
for (const shape of args.models) {
  const f32File = ensureF32Model(shape);
  const { p, n } = tokensFor(shape);
  for (const type of args.types) {
    const made = ensureTypedModel(shape, type, f32File);
    if (made.na) {
      for (const threads of args.threads) results.push({ shape, type, threads, na: made.na });
      continue;
    }
    const info = inspectModel(made.file);
    const weightBytes = weightBytesPerToken(info);
    const tokens = benchTokens(p + n, info.config.vocab_size, info.tokenizer.bos);
    for (const threads of args.threads) {
      const cell = runCell({ shape, type, model: made.file, threads, p, n, tokens });
      results.push({ shape, type, model: path.basename(made.file), parameters: info.parameterCount, weight_bytes: weightBytes, threads, p, n, ...cell });
    }
  }
}

const report = {
  date: new Date().toISOString(),
  machine: machineFacts(),
  peer: peerInfo,
  smallmind: { backend: ourBackend, commit: gitCommit() },
  bandwidth,
  settings: {
    rounds: args.rounds,
    tokens_per_shape: Object.fromEntries(args.models.map((s) => [s, tokensFor(s)])),
    kv_cache: 'f16 (both engines)',
    peer_flash_attention: args.flashAttention,
    command: `npm run bench -- ${process.argv.slice(2).join(' ')}`.trim(),
    method: 'alternating child processes; each loads, warms up once, times one prefill (one batch) and n single-token decodes; medians over rounds; ' +
      'weight bytes per token = all 2-D weight tensors (token_embd only when it is also the classifier)',
  },
  elapsed_s: Math.round((performance.now() - startedAt) / 1000),
  results,
};
const markdown = markdownReport(report);
console.log(`\n${markdown}`);
console.log(`whole run: ${(report.elapsed_s / 60).toFixed(1)} min`);
fs.writeFileSync(args.out, `${JSON.stringify(report, null, 2)}\n`);
console.log(`wrote ${path.relative(process.cwd(), args.out) || args.out}`);
if (args.markdown) {
  fs.writeFileSync(args.markdown, markdown);
  console.log(`wrote ${path.relative(process.cwd(), args.markdown) || args.markdown}`);
}

// ---------------------------------------------------------------------------------------------

function parseArgs(argv) {
  const a = {
    threads: [1, 2], rounds: 3, p: undefined, n: undefined, models: SHAPES, types: TYPES,
    flashAttention: 'auto', engines: ['smallmind', PEER], out: path.join(BENCH_DIR, 'results.json'), markdown: undefined,
  };
  const positiveInts = (v, name) => v.split(',').map((x) => {
    const n = Number(x);
    if (!Number.isInteger(n) || n < 1) die(`${name}: expected positive integers, got '${v}'`);
    return n;
  });
  const listOf = (v, name, allowed) => {
    const items = v.split(',');
    for (const item of items) if (!allowed.includes(item)) die(`${name}: unknown value '${item}' (expected ${allowed.join(', ')})`);
    return items;
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = () => argv[++i] ?? die(`${flag} needs a value`);
    switch (flag) {
      case '--threads': case '-t': a.threads = positiveInts(value(), flag); break;
      case '--rounds': case '-r': a.rounds = positiveInts(value(), flag)[0]; break;
      case '-p': case '--n-prompt': a.p = positiveInts(value(), flag)[0]; break;
      case '-n': case '--n-gen': a.n = positiveInts(value(), flag)[0]; break;
      case '--models': a.models = listOf(value(), flag, SHAPES); break;
      case '--types': a.types = listOf(value(), flag, TYPES); break;
      case '--engines': a.engines = listOf(value(), flag, ['smallmind', PEER]); break;
      case '--flash-attention': a.flashAttention = listOf(value(), flag, ['auto', 'on', 'off'])[0]; break;
      case '--out': a.out = path.resolve(value()); break;
      case '--markdown': a.markdown = path.resolve(value()); break;
      case '--help': case '-h':
        console.log(fs.readFileSync(fileURLToPath(import.meta.url), 'utf8').split("\n").slice(2, 23).join('\n').replace(/^ \*\/?/gm, ''));
        process.exit(0);
        break;
      default: die(`unknown option ${flag} (see --help)`);
    }
  }
  return a;
}

function tokensFor(shape) {
  return { p: args.p ?? TOKENS_PER_SHAPE[shape].p, n: args.n ?? TOKENS_PER_SHAPE[shape].n };
}

function ensureBuilt() {
  if (fs.existsSync(path.join(ROOT, 'dist', 'index.js')) && fs.existsSync(CLI)) return;
  console.error('bench: dist/ is missing, running npm run build');
  const r = spawnSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'inherit' });
  if (r.status !== 0) die('npm run build failed');
}

function ensurePeerInstalled(engines) {
  if (!engines.includes(PEER)) return;
  ensureBenchPackage(PEER, '~700 MB, takes a few minutes');
}

// --- models --------------------------------------------------------------------------------------

/** bench/models/<shape>-f32.gguf, written by our `init` on first use. */
function ensureF32Model(shape) {
  const file = modelFile(shape, 'f32');
  if (fs.existsSync(file)) return file;
  const params = [...llamaTensorShapes(initConfig(shape))].reduce((sum, [, dims]) => sum + dims.reduce((a, b) => a * b, 1), 0);
  needDiskSpace(file, params * 4);
  const r = runCli(['init', '--shape', shape, '--dtype', 'f32', '-o', `${file}.tmp`]);
  if (r.status !== 0) die(`smallmind init --shape ${shape} failed: ${cliError(r)}`);
  fs.renameSync(`${file}.tmp`, file);
  return file;
}

/** The model in `type`: the F32 file itself, or our quantizer's output; {na} when it refuses the type. */
function ensureTypedModel(shape, type, f32File) {
  if (type === 'f32') return { file: f32File };
  const file = modelFile(shape, type);
  if (fs.existsSync(file)) return { file };
  needDiskSpace(file, fs.statSync(f32File).size * 0.3); // every quantized type is under 9 bits per weight
  const r = runCli(['quantize', f32File, `${file}.tmp`, '--type', type, '--json']);
  if (r.status !== 0) {
    fs.rmSync(`${file}.tmp`, { force: true });
    const message = cliError(r);
    // commander's choice check or the quantizer itself names the type it does not know.
    if (message.includes(`'${type}'`) || message.includes(` ${type} `)) {
      process.stderr.write(`bench: our quantizer rejects ${type} (${message}); ${shape} ${type} is n/a\n`);
      return { na: `n/a (our quantizer lacks ${type})` };
    }
    die(`smallmind quantize ${path.basename(f32File)} --type ${type} failed: ${message}`);
  }
  fs.renameSync(`${file}.tmp`, file);
  return { file };
}

function modelFile(shape, type) {
  return path.join(BENCH_DIR, 'models', `${shape}-${type}.gguf`);
}

function runCli(cliArgs) {
  fs.mkdirSync(path.join(BENCH_DIR, 'models'), { recursive: true });
  process.stderr.write(`bench: smallmind ${cliArgs.map((a) => (path.isAbsolute(a) ? path.relative(process.cwd(), a) : a)).join(' ')}\n`);
  return spawnSync(process.execPath, [CLI, ...cliArgs], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
}

/** The message of a failed CLI command run with --json (or its raw output). */
function cliError(r) {
  try {
    return JSON.parse(r.stdout.trim().split('\n').pop()).error.message;
  } catch {
    return r.stdout.trim() || `exit ${r.status}`;
  }
}

function needDiskSpace(file, bytes) {
  const dir = path.dirname(file);
  fs.mkdirSync(dir, { recursive: true });
  const { bavail, bsize } = fs.statfsSync(dir);
  const margin = 1 << 30;
  if (bavail * bsize < bytes + margin) {
    die(`${path.relative(ROOT, file)} needs ${(bytes / 2 ** 30).toFixed(1)} GiB but ${dir} has ${((bavail * bsize) / 2 ** 30).toFixed(1)} GiB free (keeping 1 GiB spare)`);
  }
}

/**
 * Bytes of weights one decode step reads: every 2-D tensor (the matmul weights and the
 * classifier). token_embd is only a row lookup unless it is also the classifier (no output.weight).
 */
function weightBytesPerToken(info) {
  const tied = !info.tensors.some((t) => t.name === 'output.weight');
  return info.tensors
    .filter((t) => t.shape.length === 2 && (t.name !== 'token_embd.weight' || tied))
    .reduce((sum, t) => sum + tensorBytes(t), 0);
}

function tensorBytes(t) {
  const block = GGML_BLOCKS[t.dtype];
  if (!block) die(`${t.name}: no byte size known for type ${t.dtype} (add it to GGML_BLOCKS in bench/run.mjs)`);
  return (t.shape.reduce((a, b) => a * b, 1) / block[0]) * block[1];
}

// --- runs ----------------------------------------------------------------------------------------

/** Alternating runs of every engine for one shape × type × threads; an engine that cannot run the file is n/a. */
function runCell({ shape, type, model, threads, p, n, tokens }) {
  const runs = Object.fromEntries(args.engines.map((e) => [e, []]));
  const na = {};
  for (let round = 0; round < args.rounds; round++) {
    for (const engine of args.engines) {
      if (na[engine]) continue; // the same file fails the same way every round
      const run = runEngine(engine, { model, threads, p, n, inner: 1, tokens });
      if (run.na) {
        na[engine] = run.na;
        process.stderr.write(`${shape} ${type} t=${threads} ${engine}: ${run.na}\n`);
        continue;
      }
      runs[engine].push(run);
      if (engine === 'smallmind') ourBackend ??= run.backend;
      process.stderr.write(
        `${shape} ${type} t=${threads} round ${round + 1}/${args.rounds} ${engine.padEnd(14)} ` +
        `pp ${run.prefill_tok_s.toFixed(1)} tok/s, tg ${run.decode_tok_s.toFixed(1)} tok/s, RSS ${run.peak_rss_mb.toFixed(0)} MB\n`,
      );
    }
  }
  const summary = Object.fromEntries(args.engines.map((e) => [e, na[e] ? { na: na[e] } : summarise(runs[e])]));
  return { ...summary, runs };
}

function runEngine(engine, job) {
  const script = path.join(BENCH_DIR, 'engines', `${engine}.mjs`);
  const payload = engine === 'smallmind'
    ? { model: job.model, threads: job.threads, p: job.p, n: job.n, inner: job.inner, cacheType: 'f16' }
    : { ...job, flashAttention: args.flashAttention };
  const r = spawnSync(process.execPath, [script, JSON.stringify(payload)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 24 });
  if (r.stderr) process.stderr.write(r.stderr);
  if (r.status !== 0) {
    const why = r.stderr.trim().split('\n').filter(Boolean).pop() ?? `exit ${r.status}`;
    return { na: `n/a (${engine === 'smallmind' ? 'failed' : 'peer failed'}: ${why.slice(0, 120)})` };
  }
  const result = JSON.parse(r.stdout.trim().split('\n').pop());
  return result.error ? { na: whyWeCannotRun(result.error, path.basename(job.model)) } : result;
}

/** Our engine's refusals that the matrix expects, worded for the table. */
function whyWeCannotRun({ code, message }, file) {
  if (code === 'out_of_memory' && message.includes('limit of wasm32')) return 'n/a (exceeds 4 GiB wasm memory)';
  if (code === 'unknown_dtype' || code === 'unsupported_dtype') {
    const type = /type (\S+),/.exec(message)?.[1] ?? file;
    return `n/a (our loader lacks ${type})`;
  }
  process.stderr.write(`bench: SmallMind cannot run ${file}: ${code}: ${message}\n`);
  return `n/a (${code})`;
}

function summarise(runs) {
  const pick = (key) => median(runs.map((r) => r[key]));
  return { load_ms: pick('load_ms'), prefill_tok_s: pick('prefill_tok_s'), decode_tok_s: pick('decode_tok_s'), peak_rss_mb: pick('peak_rss_mb') };
}

// --- facts for the header ------------------------------------------------------------------------

function readPeerInfo() {
  const r = spawnSync(process.execPath, [path.join(BENCH_DIR, 'engines', `${PEER}.mjs`), '--info'], { encoding: 'utf8' });
  if (r.status !== 0) die(`node-llama-cpp --info failed:\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

function machineFacts() {
  let flags = '';
  try {
    flags = /^flags\s*:(.*)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '';
  } catch {
    // not Linux: the flags stay unknown
  }
  const has = (flag) => flags.split(/\s+/).includes(flag);
  return {
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.availableParallelism(),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    cpuFlags: { avx512: has('avx512f'), amxInt8: has('amx_int8') },
  };
}

function gitCommit() {
  const r = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}
