#!/usr/bin/env node
// GPTQ vs round-to-nearest Q4_0 on stories260K, and Q4_K on a 256-wide model (needs `npm run
// build`: it imports dist/).
//
//   node bench/gptq.mjs [--threads 2] [--calib-stories 128] [--eval-stories 64] [--timing] [--no-q4k]
//
// 1. Samples TinyStories-like text from the F32 model itself (temperature 1, no truncation, from
//    BOS, ≤ 256 tokens a story): calibration text from seeds 1..N, held-out text from seeds
//    10001..10000+M (different stories, never used for calibration).
// 2. Quantizes to Q4_0 with RTN, GPTQ (one full-precision pass) and GPTQ --sequential.
// 3. Prints the perplexity (ctx 128, as the fixtures) of F32, RTN and both GPTQ files on
//    ../shared/fixtures/ppl-story.txt (human-written) and on the sampled held-out text.
// 4. Q4_K needs rows of whole 256-value super-blocks, and stories260K's are 64 and 172 wide (no
//    trained model here has such rows), so the Q4_K comparison runs on a random Llama of dim 256
//    (ffn 512, 2 layers, stories260K's vocabulary; test/helpers/tiny-llama.ts's recipe) calibrated
//    on the same text: q4_k_m by RTN and by GPTQ, scored by how far each is from the F32 model on
//    the held-out text (mean KL divergence per token, relative RMS of the logits).
// With --timing it also times GPTQ on a random-weight stories15M shape (`smallmind init`).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { die } from './common.mjs';

const { values: opts } = parseArgs({
  options: {
    threads: { type: 'string', default: '2' },
    'calib-stories': { type: 'string', default: '128' },
    'eval-stories': { type: 'string', default: '64' },
    model: { type: 'string', default: new URL('../../shared/models/stories260K/stories260K.gguf', import.meta.url).pathname },
    story: { type: 'string', default: new URL('../../shared/fixtures/ppl-story.txt', import.meta.url).pathname },
    timing: { type: 'boolean', default: false },
    'no-q4k': { type: 'boolean', default: false },
  },
});
const dist = new URL('../dist/index.js', import.meta.url);
if (!fs.existsSync(dist)) die('run `npm run build` first (dist/ is missing)');
const { loadModel, quantizeModel, initModel } = await import(dist.href);
const threads = Number(opts.threads);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'smallmind-gptq-bench-'));
const file = (name) => path.join(dir, name);

async function sample(firstSeed, count) {
  const model = await loadModel(opts.model, { threads });
  const stories = [];
  for (let seed = firstSeed; seed < firstSeed + count; seed++) {
    const r = await model.generate([model.tokenizer.bos], { maxTokens: 256, temperature: 1, topK: 0, topP: 1, minP: 0, seed });
    stories.push(r.text.trim());
  }
  model.dispose();
  return `${stories.join('\n\n')}\n`;
}

async function perplexity(modelPath, text) {
  const model = await loadModel(modelPath, { threads });
  try {
    return (await model.perplexity(text, { ctxSize: 128 })).ppl;
  } finally {
    model.dispose();
  }
}

const seconds = (start) => ((performance.now() - start) / 1000).toFixed(1);

fs.writeFileSync(file('calib.txt'), await sample(1, Number(opts['calib-stories'])));
const heldOut = await sample(10001, Number(opts['eval-stories']));
const story = fs.readFileSync(opts.story, 'utf8').replace(/\n$/, '');

const variants = [['F32', opts.model]];
quantizeModel({ input: opts.model, output: file('rtn.gguf'), type: 'q4_0' });
variants.push(['Q4_0 RTN', file('rtn.gguf')]);
for (const sequential of [false, true]) {
  const name = `Q4_0 GPTQ${sequential ? ' --sequential' : ''}`;
  const output = file(sequential ? 'gptq-seq.gguf' : 'gptq.gguf');
  const start = performance.now();
  const r = await quantizeModel({ method: 'gptq', input: opts.model, output, type: 'q4_0', calib: file('calib.txt'), sequential, threads });
  console.error(`${name}: ${r.calibration.tokens} calibration tokens × ${r.calibration.passes} pass(es), ${seconds(start)} s`);
  variants.push([name, output]);
}

console.log('| model | ppl-story.txt | sampled held-out text |\n|---|--:|--:|');
for (const [name, modelPath] of variants) {
  console.log(`| ${name} | ${(await perplexity(modelPath, story)).toFixed(4)} | ${(await perplexity(modelPath, heldOut)).toFixed(4)} |`);
}

if (!opts['no-q4k']) {
  const { readGGUF, writeGGUF } = await import(dist.href);
  const { typedMetadata } = await import(new URL('../dist/formats/gguf.js', import.meta.url).href);
  const { NormalSource } = await import(new URL('../dist/tensor/random.js', import.meta.url).href);
  const tiny = file('tiny-f32.gguf');
  writeTinyLlama(tiny, { readGGUF, writeGGUF, typedMetadata, NormalSource });
  quantizeModel({ input: tiny, output: file('tiny-rtn.gguf'), type: 'q4_k_m' });
  const q4k = [['Q4_K_M RTN', file('tiny-rtn.gguf')]];
  for (const sequential of [false, true]) {
    const output = file(sequential ? 'tiny-gptq-seq.gguf' : 'tiny-gptq.gguf');
    await quantizeModel({ method: 'gptq', input: tiny, output, type: 'q4_k_m', calib: file('calib.txt'), sequential, threads });
    q4k.push([`Q4_K_M GPTQ${sequential ? ' --sequential' : ''}`, output]);
  }
  const want = await windowLogits(tiny, heldOut);
  console.log('\n| random 256-wide model, q4_k_m | KL to F32 (nats/token) | logit RMS error / F32 RMS |\n|---|--:|--:|');
  for (const [name, modelPath] of q4k) {
    const { kl, rms } = distance(await windowLogits(modelPath, heldOut), want);
    console.log(`| ${name} | ${kl.toFixed(5)} | ${rms.toFixed(4)} |`);
  }
}

if (opts.timing) {
  const big = file('stories15M.gguf');
  initModel({ shape: 'stories15M', dtype: 'f32', output: big, seed: 1 });
  for (const sequential of [false, true]) {
    const start = performance.now();
    const r = await quantizeModel({ method: 'gptq', input: big, output: file('g15.gguf'), type: 'q4_0', calib: file('calib.txt'), sequential, threads });
    console.log(`stories15M shape, GPTQ${sequential ? ' --sequential' : ''}: ${seconds(start)} s in all ` +
      `(calibration ${r.calibration.seconds.toFixed(1)} s over ${r.calibration.tokens} tokens × ${r.calibration.passes} pass(es), GPTQ ${r.gptqSeconds.toFixed(1)} s for ${r.gptqTensors} tensors)`);
  }
}
fs.rmSync(dir, { recursive: true, force: true });

/** The tiny model of test/helpers/tiny-llama.ts: dim 256, ffn 512, 2 layers, N(0, 0.08²) weights (seed 2024), tied classifier. */
function writeTinyLlama(output, { readGGUF, writeGGUF, typedMetadata, NormalSource }) {
  const metadata = typedMetadata(readGGUF(opts.model));
  const u32 = (value) => ({ type: 'u32', value });
  const [dim, ffn, layers, heads, kvHeads, vocab] = [256, 512, 2, 4, 2, 512];
  for (const [key, value] of [['general.file_type', 0], ['llama.context_length', 128], ['llama.embedding_length', dim], ['llama.block_count', layers],
    ['llama.feed_forward_length', ffn], ['llama.attention.head_count', heads], ['llama.attention.head_count_kv', kvHeads], ['llama.rope.dimension_count', dim / heads]]) {
    metadata.set(key, u32(value));
  }
  const kvDim = (dim / heads) * kvHeads;
  const shapes = [['token_embd.weight', [vocab, dim]], ['output_norm.weight', [dim]]];
  for (let l = 0; l < layers; l++) {
    shapes.push([`blk.${l}.attn_norm.weight`, [dim]], [`blk.${l}.attn_q.weight`, [dim, dim]], [`blk.${l}.attn_k.weight`, [kvDim, dim]], [`blk.${l}.attn_v.weight`, [kvDim, dim]],
      [`blk.${l}.attn_output.weight`, [dim, dim]], [`blk.${l}.ffn_norm.weight`, [dim]], [`blk.${l}.ffn_gate.weight`, [ffn, dim]], [`blk.${l}.ffn_up.weight`, [ffn, dim]], [`blk.${l}.ffn_down.weight`, [dim, ffn]]);
  }
  const normal = new NormalSource(2024);
  writeGGUF(output, metadata, shapes.map(([name, shape]) => {
    const values = Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => (shape.length === 1 ? 1 : normal.next() * 0.08));
    return { name, dtype: 'f32', shape, data: new Uint8Array(values.buffer) };
  }));
}

/** Teacher-forced logits of every position of `text`, in context windows of 128 (BOS first), at most 32 windows. */
async function windowLogits(modelPath, text) {
  const model = await loadModel(modelPath, { threads });
  try {
    const ids = model.tokenize(text, { addSpecial: false });
    const rows = [];
    for (let start = 0; start + 127 <= ids.length && rows.length < 32 * 128; start += 127) {
      [model.tokenizer.bos, ...ids.slice(start, start + 127)].forEach((t, pos) => rows.push(model.forward([t], pos)));
    }
    return rows;
  } finally {
    model.dispose();
  }
}

/** Mean KL(want ‖ got) per position and the RMS of the logit difference relative to want's RMS. */
function distance(got, want) {
  let kl = 0;
  let diff = 0;
  let norm = 0;
  const logSoftmax = (row) => {
    const max = Math.max(...row);
    const lse = max + Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0));
    return row.map((v) => v - lse);
  };
  want.forEach((row, p) => {
    const [lp, lq] = [logSoftmax(row), logSoftmax(got[p])];
    lp.forEach((v, i) => {
      kl += Math.exp(v) * (v - lq[i]);
      diff += (got[p][i] - row[i]) ** 2;
      norm += row[i] ** 2;
    });
  });
  return { kl: kl / want.length, rms: Math.sqrt(diff / norm) };
}
