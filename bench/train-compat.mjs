#!/usr/bin/env node
/**
 * Does a model trained by `smallmind train` run in llama.cpp as it runs in SmallMind? Converts a
 * checkpoint folder to GGUF with our converter, then compares n greedy tokens after a prompt from
 * node-llama-cpp (llama.cpp's prebuilt CPU binary) on the GGUF with ours on the GGUF and on the
 * folder itself.
 *
 *   npm run bench:train-compat -- OUT/best [--prompt "ROMEO:"] [-n 40]
 *
 * Not a test: node-llama-cpp (~700 MB) lives in bench/node_modules only (`npm run bench` installs it).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { die } from './common.mjs';

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.dirname(BENCH_DIR);
const args = parseArgs(process.argv.slice(2));
if (!fs.existsSync(path.join(BENCH_DIR, 'node_modules', 'node-llama-cpp'))) die('run `npm run bench` once first (it installs node-llama-cpp into bench/node_modules)');
const { loadModel, convertModel } = await import(path.join(ROOT, 'dist', 'index.js'));

const gguf = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'smallmind-train-compat-')), 'model.gguf');
convertModel({ input: args.folder, output: gguf });

/** Our greedy continuation of the prompt (wasm kernels, 1 thread). */
async function ours(file) {
  const model = await loadModel(file, { backend: 'wasm', threads: 1 });
  const prompt = model.tokenize(args.prompt);
  const out = [];
  let logits = model.forward(prompt, 0);
  for (let i = 0; i < args.n; i++) {
    let best = 0;
    for (let j = 1; j < logits.length; j++) if (logits[j] > logits[best]) best = j;
    out.push(best);
    logits = model.forward([best], prompt.length + i);
  }
  const text = model.detokenize(out);
  model.dispose();
  return { prompt: [...prompt], out, text };
}

async function llamaCpp(file, contextSize) {
  const { getLlama } = await import(path.join(BENCH_DIR, 'node_modules', 'node-llama-cpp', 'dist', 'index.js'));
  const llama = await getLlama({ build: 'never', gpu: false, logLevel: 'error', maxThreads: 1 });
  const model = await llama.loadModel({ modelPath: file, gpuLayers: 0 });
  const prompt = model.tokenize(args.prompt);
  const context = await model.createContext({ contextSize, threads: 1 });
  const steps = context.getSequence().evaluate(prompt, { temperature: 0 });
  const out = [];
  for (let i = 0; i < args.n; i++) out.push((await steps.next()).value);
  await steps.return();
  const text = model.detokenize(out);
  await context.dispose();
  await model.dispose();
  await llama.dispose();
  return { prompt: [...prompt], out, text };
}

const fromGguf = await ours(gguf);
const fromFolder = await ours(args.folder);
const peer = await llamaCpp(gguf, fromGguf.prompt.length + args.n);
const agree = (a, b) => a.out.filter((t, i) => t === b.out[i]).length;
console.log(`prompt ${JSON.stringify(args.prompt)}: ids ours ${JSON.stringify(fromGguf.prompt)}, llama.cpp ${JSON.stringify(peer.prompt)}`);
console.log(`greedy tokens agreeing with llama.cpp: GGUF ${agree(fromGguf, peer)}/${args.n}, folder ${agree(fromFolder, peer)}/${args.n}`);
console.log(`ours:      ${JSON.stringify(fromGguf.text)}`);
console.log(`llama.cpp: ${JSON.stringify(peer.text)}`);
fs.rmSync(path.dirname(gguf), { recursive: true, force: true });

function parseArgs(argv) {
  const out = { prompt: 'ROMEO:', n: 40, folder: undefined };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--prompt') out.prompt = argv[++i];
    else if (a === '-n') out.n = Number(argv[++i]);
    else if (!a.startsWith('-') && !out.folder) out.folder = a;
    else die(`unknown argument ${a}`);
  }
  if (!out.folder) die('usage: npm run bench:train-compat -- CHECKPOINT_FOLDER [--prompt TEXT] [-n N]');
  if (!Number.isInteger(out.n) || out.n < 1) die('-n must be a positive integer');
  return out;
}
