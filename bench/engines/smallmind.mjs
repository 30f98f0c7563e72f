/**
 * One SmallMind benchmark run in its own process (so RSS is ours alone): load the model, then
 * time prefill and decode with runBench, the function behind `smallmind bench`.
 * argv[2]: JSON {model, threads, p, n, inner, cacheType}; prints one JSON line: the timings, or
 * {error: {code, message}} when SmallMind refuses the model (a dtype it cannot compute with, a
 * model over wasm32's 4 GiB), which the matrix reports as n/a rather than stopping.
 */
import { loadModel, SmallMindError } from '../../dist/index.js';
import { median, peakRssMb, runBench } from '../../dist/cli/bench.js';

const { model: modelPath, threads, p, n, inner, cacheType } = JSON.parse(process.argv[2]);

let model;
const start = performance.now();
try {
  model = await loadModel(modelPath, { threads, cacheType, contextLength: p + n, batchSize: p });
} catch (err) {
  if (!(err instanceof SmallMindError)) throw err;
  console.log(JSON.stringify({ error: { code: err.code, message: err.message } }));
  process.exit(0);
}
const loadMs = performance.now() - start;
const runs = runBench(model, { prompt: p, generate: n, repetitions: inner });
const backend = model.backend.variant ? `${model.backend.name} (${model.backend.variant})` : model.backend.name;
model.dispose();

console.log(JSON.stringify({
  load_ms: loadMs,
  prefill_tok_s: median(runs.prefill),
  decode_tok_s: median(runs.decode),
  peak_rss_mb: peakRssMb(),
  backend,
}));
