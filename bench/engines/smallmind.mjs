/**
 * One SmallMind benchmark run in its own process (so RSS is ours alone): load the model, then
 * time prefill and decode with runBench, the function behind `smallmind bench`.
 * argv[2]: JSON {model, threads, p, n, inner, cacheType}; prints one JSON line.
 */
import { loadModel } from '../../dist/index.js';
import { median, peakRssMb, runBench } from '../../dist/cli/bench.js';

const { model: modelPath, threads, p, n, inner, cacheType } = JSON.parse(process.argv[2]);

const start = performance.now();
const model = await loadModel(modelPath, { threads, cacheType, contextLength: p + n, batchSize: p });
const loadMs = performance.now() - start;
const runs = runBench(model, { prompt: p, generate: n, repetitions: inner });
model.dispose();

console.log(JSON.stringify({
  load_ms: loadMs,
  prefill_tok_s: median(runs.prefill),
  decode_tok_s: median(runs.decode),
  peak_rss_mb: peakRssMb(),
}));
