#!/usr/bin/env node
/**
 * Speculative decoding speed-up (not a test):
 *
 *   npm run bench:speculative -- [--threads N] [-n 128] [--draft-max 4,8] [--rounds 3] [--shape stories110M] [--draft-dtype q4_0|q8_0|f16]
 *
 * The target is a random-weight F32 model of the given shape, made with our `init`; the draft is
 * the same weights quantized to Q4_0 (`init` with the same --seed and --dtype q4_0: every tensor
 * is seeded from the seed and its name, so the two files hold the same weights). Two independent
 * random models would never agree; a quantized copy behaves like a real draft model.
 *
 * Each configuration decodes n tokens greedily after the same prompt, `rounds` times, alternating
 * with plain decoding (one forward per token): speculative with the Q4_0 draft for each
 * --draft-max, and prompt lookup; on a story prompt and on a prompt that repeats a passage. Every speculative run's
 * tokens are checked against plain decoding's (greedy speculative decoding is exact).
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
if (!fs.existsSync(path.join(ROOT, 'dist', 'generation', 'speculative.js'))) die('dist/ is missing or stale: run npm run build:ts first');
const { loadModel } = await import(path.join(ROOT, 'dist', 'model.js'));
const { argmax } = await import(path.join(ROOT, 'dist', 'generation', 'sampler.js'));
const { speculativeStream } = await import(path.join(ROOT, 'dist', 'generation', 'speculative.js'));

const targetPath = ensureModel(args.shape, 'f32');
const draftPath = ensureModel(args.shape, args.draftDtype);
const load = (file) => loadModel(file, { threads: args.threads, contextLength: 1024 });
const target = await load(targetPath);
const draft = await load(draftPath);

const story = 'Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her red ball.';
const prompts = {
  plain: target.tokenize(story),
  // The passage three times: prompt lookup finds the text it is asked to continue.
  repetitive: target.tokenize(`${story} ${story} ${story}`),
};

// Plain and speculative runs alternate round by round, so a busy machine slows both alike; the
// speed-up is the median of the per-round ratios.
const rows = [];
for (const [promptName, prompt] of Object.entries(prompts)) {
  const configs = [
    ...args.draftMax.map((k) => ({ method: `draft ${args.draftDtype.toUpperCase()}, k=${k}`, source: () => draft.network, k })),
    ...args.draftMax.map((k) => ({ method: `prompt lookup, k=${k}`, source: () => ({ promptLookup: { ngramMax: 3, ngramMin: 1 } }), k })),
  ];
  for (const c of configs) {
    const plainRuns = [];
    const specRuns = [];
    for (let round = 0; round < args.rounds; round++) {
      plainRuns.push(plainGreedy(target.network, prompt, args.n));
      specRuns.push(await speculative(c.source(), prompt, c.k));
      if (JSON.stringify(specRuns.at(-1).tokens) !== JSON.stringify(plainRuns.at(-1).tokens)) die(`${c.method}: tokens differ from plain greedy decoding`);
    }
    const last = specRuns.at(-1);
    rows.push({
      prompt: promptName, method: c.method, plainTokS: median(plainRuns.map(tokS)), tokS: median(specRuns.map(tokS)),
      acceptance: last.stats.acceptanceRate, perRound: (last.stats.accepted + last.stats.rounds) / last.stats.rounds,
      speedup: median(specRuns.map((r, i) => tokS(r) / tokS(plainRuns[i]))),
    });
    process.stderr.write(`${promptName} ${c.method}: ${rows.at(-1).speedup.toFixed(2)}×\n`);
  }
}

const machine = `${os.cpus()[0]?.model ?? 'cpu'}, ${args.threads} thread(s), node ${process.version}`;
console.log(`\n${args.shape} F32 target, ${args.draftDtype.toUpperCase()} draft; ${args.n} greedy tokens; median of ${args.rounds}; ${machine}\n`);
console.log('prompt      method                  plain tok/s  spec tok/s  accepted  tokens/round  speed-up');
for (const r of rows) {
  console.log(
    `${r.prompt.padEnd(11)} ${r.method.padEnd(22)} ${r.plainTokS.toFixed(1).padStart(11)} ${r.tokS.toFixed(1).padStart(11)} ` +
    `${(100 * r.acceptance).toFixed(1).padStart(8)}% ${r.perRound.toFixed(2).padStart(12)}  ${r.speedup.toFixed(2).padStart(7)}×`,
  );
}
target.dispose();
draft.dispose();

// ---------------------------------------------------------------------------------------------

/** Plain greedy decoding, as Model.stream does it: one forward per token. Timed without the prompt. */
function plainGreedy(net, prompt, n) {
  let logits = net.forward(prompt, 0).f32();
  const start = performance.now();
  const tokens = [];
  for (let pos = prompt.length; tokens.length < n; pos++) {
    tokens.push(argmax(logits));
    if (tokens.length < n) logits = net.forward([tokens[tokens.length - 1]], pos).f32();
  }
  return { tokens, ms: performance.now() - start };
}

/**
 * Speculative greedy decoding; timed from the first token on, so the prompt's prefill (which
 * plain decoding also does untimed) is left out. The draft's own prefill counts: it is overhead.
 */
async function speculative(source, prompt, k) {
  const stream = speculativeStream(target.network, source, prompt, { draftMax: k, maxTokens: args.n });
  let start;
  for (;;) {
    const next = await stream.next();
    start ??= performance.now();
    if (next.done) return { tokens: next.value.tokens, stats: next.value.stats, ms: performance.now() - start };
  }
}

/** Tokens per second after the first token (the first comes from the prompt's logits). */
function tokS(run) {
  return ((run.tokens.length - 1) / run.ms) * 1000;
}

/** bench/models/<shape>-<dtype>.gguf, written by our `init` (seed 0) on first use. */
function ensureModel(shape, dtype) {
  const file = path.join(BENCH_DIR, 'models', `${shape}-${dtype}.gguf`);
  if (fs.existsSync(file)) return file;
  fs.mkdirSync(path.dirname(file), { recursive: true });
  console.error(`bench: creating ${path.relative(ROOT, file)} with smallmind init`);
  const r = spawnSync(process.execPath, [CLI, 'init', '--shape', shape, '--dtype', dtype, '--seed', '0', '-o', file], { stdio: 'inherit' });
  if (r.status !== 0) die(`smallmind init --shape ${shape} --dtype ${dtype} failed`);
  return file;
}

function parseArgs(argv) {
  const a = { threads: os.availableParallelism(), n: 128, draftMax: [4, 8], rounds: 3, shape: 'stories110M', draftDtype: 'q4_0' };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[++i];
    if (value === undefined) die(`${flag} needs a value`);
    const int = (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1) die(`${flag}: expected a positive integer, got '${v}'`);
      return n;
    };
    if (flag === '--threads') a.threads = int(value);
    else if (flag === '-n') a.n = int(value);
    else if (flag === '--rounds') a.rounds = int(value);
    else if (flag === '--draft-max') a.draftMax = value.split(',').map(int);
    else if (flag === '--shape') a.shape = value;
    else if (flag === '--draft-dtype') {
      if (!['q4_0', 'q8_0', 'f16'].includes(value)) die(`--draft-dtype: expected q4_0, q8_0 or f16, got '${value}'`);
      a.draftDtype = value;
    }
    else die(`unknown option ${flag}`);
  }
  return a;
}
