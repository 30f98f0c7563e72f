#!/usr/bin/env node
// GPTQ vs round-to-nearest Q4_0 on stories260K (needs `npm run build`: it imports dist/).
//
//   node bench/gptq.mjs [--threads 2] [--calib-stories 128] [--eval-stories 64] [--timing]
//
// 1. Samples TinyStories-like text from the F32 model itself (temperature 1, no truncation, from
//    BOS, ≤ 256 tokens a story): calibration text from seeds 1..N, held-out text from seeds
//    10001..10000+M (different stories, never used for calibration).
// 2. Quantizes to Q4_0 with RTN, GPTQ (one full-precision pass) and GPTQ --sequential.
// 3. Prints the perplexity (ctx 128, as the fixtures) of F32, RTN and both GPTQ files on
//    ../shared/fixtures/ppl-story.txt (human-written) and on the sampled held-out text.
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
