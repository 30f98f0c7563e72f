/**
 * `smallmind bench`: prefill and decode speed, as llama-bench measures them.
 *
 * One repetition = forward() of p prompt tokens as one batch from position 0, then n single-token
 * forward() calls continuing after it. One warm-up repetition is discarded; the medians of the
 * rest are reported. bench/run.mjs imports runBench from here, so the comparison with
 * node-llama-cpp measures exactly this code path.
 */
import path from 'node:path';
import { Command, Option } from 'commander';
import type { Model } from '../model.js';
import type { CliIO } from './io.js';
import {
  backendOption, cacheTypeOption, integerIn, jsonOption, loadWithProgress, modelOption, threadsOption,
  tokenizerOption, type LoadFlags,
} from './options.js';
import { formatBytes } from './progress.js';

export interface BenchOptions {
  /** Prompt tokens evaluated as one batch. */
  prompt: number;
  /** Decode steps of one token each. */
  generate: number;
  /** Timed repetitions after the warm-up. */
  repetitions: number;
}

export interface BenchRuns {
  /** Tokens per second of each timed repetition. */
  prefill: number[];
  decode: number[];
}

/** Token ids for benchmarks: BOS, then a fixed spread over the vocabulary (the ids do not change the work). */
export function benchTokens(count: number, vocabSize: number, bos: number): number[] {
  const ids = [bos];
  for (let i = 1; i < count; i++) ids.push((i * 7919 + 13) % vocabSize);
  return ids;
}

/** Time prefill and decode; the model's cache must hold prompt + generate positions. */
export function runBench(model: Model, opts: BenchOptions): BenchRuns {
  const { prompt: p, generate: n, repetitions } = opts;
  const tokens = benchTokens(p + n, model.info.config.vocab_size, model.info.tokenizer.bos);
  const runs: BenchRuns = { prefill: [], decode: [] };
  for (let rep = -1; rep < repetitions; rep++) {
    let start = performance.now();
    model.forward(tokens.slice(0, p), 0);
    const prefillMs = performance.now() - start;
    start = performance.now();
    for (let i = 0; i < n; i++) model.forward([tokens[p + i]!], p + i);
    const decodeMs = performance.now() - start;
    if (rep < 0) continue; // warm-up
    runs.prefill.push((p / prefillMs) * 1000);
    runs.decode.push((n / decodeMs) * 1000);
  }
  return runs;
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export function stdev(values: readonly number[]): number {
  if (values.length < 2) return 0;
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  return Math.sqrt(values.reduce((s, v) => s + (v - mean) ** 2, 0) / (values.length - 1));
}

/** Peak resident memory of this process so far (maxRSS is in KiB). */
export function peakRssMb(): number {
  return process.resourceUsage().maxRSS / 1024;
}

interface BenchFlags extends LoadFlags {
  nPrompt: number;
  nGen: number;
  repetitions: number;
}

export function benchCommand(io: CliIO): Command {
  return new Command('bench')
    .description('measure prefill and decode speed (medians over repetitions after one warm-up)')
    .addOption(modelOption())
    .addOption(tokenizerOption())
    .addOption(threadsOption())
    .addOption(new Option('-p, --n-prompt <n>', 'prompt tokens evaluated as one batch').argParser(integerIn(1)).default(128))
    .addOption(new Option('-n, --n-gen <n>', 'tokens decoded one at a time').argParser(integerIn(1)).default(128))
    .addOption(new Option('-r, --repetitions <n>', 'timed repetitions').argParser(integerIn(1)).default(5))
    .addOption(cacheTypeOption())
    .addOption(backendOption())
    .addOption(jsonOption())
    .action(async (flags: BenchFlags) => {
      const { model, loadMs } = await loadWithProgress(io, flags, {
        contextLength: flags.nPrompt + flags.nGen,
        batchSize: flags.nPrompt,
      });
      try {
        const runs = runBench(model, { prompt: flags.nPrompt, generate: flags.nGen, repetitions: flags.repetitions });
        const result = {
          load_ms: round(loadMs),
          prefill_tok_s: round(median(runs.prefill)),
          decode_tok_s: round(median(runs.decode)),
          peak_rss_mb: round(peakRssMb()),
          model: model.path,
          backend: model.backend.name,
          threads: flags.threads,
          cache_type: flags.cacheType,
          n_prompt: flags.nPrompt,
          n_gen: flags.nGen,
          repetitions: flags.repetitions,
          prefill_runs: runs.prefill.map(round),
          decode_runs: runs.decode.map(round),
        };
        if (flags.json) {
          io.stdout.write(`${JSON.stringify(result)}\n`);
          return;
        }
        const name = path.basename(model.path);
        const size = formatBytes(model.info.fileSize);
        const params = `${(model.info.parameterCount / 1e6).toFixed(2)} M`;
        const row = (test: string, values: number[]): string[] =>
          [name, size, params, model.backend.name, String(flags.threads), flags.cacheType, test, `${median(values).toFixed(2)} ± ${stdev(values).toFixed(2)}`];
        io.stdout.write(table(
          ['model', 'size', 'params', 'backend', 'threads', 'kv cache', 'test', 't/s (median ± sd)'],
          [row(`pp${flags.nPrompt}`, runs.prefill), row(`tg${flags.nGen}`, runs.decode)],
        ));
        io.stdout.write(`\nload ${loadMs.toFixed(1)} ms, peak RSS ${peakRssMb().toFixed(1)} MB, ${flags.repetitions} repetitions after 1 warm-up\n`);
      } finally {
        model.dispose();
      }
    });
}

/** A markdown table, columns padded; numbers (last column) right-aligned as llama-bench does. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string =>
    `| ${cells.map((c, i) => (i === cells.length - 1 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join(' | ')} |\n`;
  const rule = `| ${widths.map((w, i) => (i === widths.length - 1 ? `${'-'.repeat(w - 1)}:` : '-'.repeat(w))).join(' | ')} |\n`;
  return line(header) + rule + rows.map(line).join('');
}

const round = (x: number): number => Math.round(x * 100) / 100;
