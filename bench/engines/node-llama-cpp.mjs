/**
 * One node-llama-cpp benchmark run in its own process: the prebuilt CPU binary (no build, no
 * GPU), the same model, threads, batch size and token ids as the SmallMind run.
 *
 * Prefill: the first step of sequence.evaluate() over the p prompt tokens (one batch, since
 * batchSize = p), which decodes them and samples the next token greedily. Decode: n more steps,
 * each fed the next of our token ids (the generator's replacement-token input), so each step is
 * one single-token decode plus a greedy sample: the lowest-overhead per-token path the library
 * offers, comparable to our forward() returning logits.
 * argv[2]: JSON {model, threads, p, n, inner, tokens, flashAttention}; prints one JSON line.
 * argv[2] = --info: prints the versions and llama.cpp's system info string (its CPU features,
 * e.g. whether the loaded CPU variant uses AMX_INT8) instead.
 */
import fs from 'node:fs';
import { getLlama } from 'node-llama-cpp';

if (process.argv[2] === '--info') {
  const llama = await getLlama({ build: 'never', gpu: false, logLevel: 'error' });
  const pkg = JSON.parse(fs.readFileSync(new URL('../node_modules/node-llama-cpp/package.json', import.meta.url), 'utf8'));
  console.log(JSON.stringify({
    version: pkg.version,
    llamaCpp: llama.llamaCppRelease,
    buildType: llama.buildType,
    systemInfo: llama.systemInfo.trim(),
  }));
  await llama.dispose();
  process.exit(0);
}

const { model: modelPath, threads, p, n, inner, tokens, flashAttention } = JSON.parse(process.argv[2]);

const median = (values) => {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

const llama = await getLlama({ build: 'never', gpu: false, logLevel: 'error', maxThreads: threads });
const start = performance.now();
const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
// The KV cache stays at node-llama-cpp's default type, F16 (the run passes our cacheType 'f16').
const context = await model.createContext({
  contextSize: p + n,
  batchSize: p,
  threads: { ideal: threads, min: threads },
  flashAttention: flashAttention === 'auto' ? undefined : flashAttention === 'on',
});
const loadMs = performance.now() - start;
const sequence = context.getSequence();

const prefill = [];
const decode = [];
for (let rep = -1; rep < inner; rep++) {
  await sequence.clearHistory();
  const steps = sequence.evaluate(tokens.slice(0, p), { temperature: 0, yieldEogToken: true });
  let t = performance.now();
  await steps.next();
  const prefillMs = performance.now() - t;
  t = performance.now();
  for (let i = 0; i < n; i++) await steps.next(tokens[p + i]);
  const decodeMs = performance.now() - t;
  await steps.return();
  if (rep < 0) continue; // warm-up
  prefill.push((p / prefillMs) * 1000);
  decode.push((n / decodeMs) * 1000);
}
const usedFlashAttention = context.flashAttention;
await context.dispose();
await model.dispose();
await llama.dispose();

console.log(JSON.stringify({
  load_ms: loadMs,
  prefill_tok_s: median(prefill),
  decode_tok_s: median(decode),
  peak_rss_mb: process.resourceUsage().maxRSS / 1024,
  flash_attention: usedFlashAttention,
}));
