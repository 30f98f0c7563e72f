/** `smallmind perplexity`: llama.cpp's perplexity of a model over a text file. */
import fs from 'node:fs';
import { Command, Option } from 'commander';
import { FormatError } from '../errors.js';
import { describeIoError } from '../formats/file.js';
import type { CliIO } from './io.js';
import {
  backendOption, cacheTypeOption, integerIn, jsonOption, loadWithProgress, modelOption, threadsOption,
  tokenizerOption, type LoadFlags,
} from './options.js';

interface PerplexityFlags extends LoadFlags {
  file: string;
  ctxSize: number;
}

export function perplexityCommand(io: CliIO): Command {
  return new Command('perplexity')
    .description('perplexity over a text file, computed as llama.cpp\'s llama-perplexity does')
    .addOption(modelOption())
    .addOption(tokenizerOption())
    .addOption(new Option('-f, --file <text>', 'the text file to score').makeOptionMandatory())
    .addOption(new Option('-c, --ctx-size <n>', 'tokens per chunk (the second half of each is scored)').argParser(integerIn(4)).default(512))
    .addOption(threadsOption())
    .addOption(cacheTypeOption())
    .addOption(backendOption())
    .addOption(jsonOption())
    .action(async (flags: PerplexityFlags) => {
      const text = readText(flags.file);
      const { model, loadMs } = await loadWithProgress(io, flags, { contextLength: flags.ctxSize, batchSize: flags.ctxSize });
      try {
        let nllSum = 0;
        const start = performance.now();
        const result = await model.perplexity(text, {
          ctxSize: flags.ctxSize,
          onChunk: ({ index, nll }) => {
            if (flags.json) return;
            // Like llama.cpp: the running estimate after each chunk (all chunks score equally many tokens).
            nllSum += nll;
            io.stdout.write(`[${index + 1}]${Math.exp(nllSum / (index + 1)).toFixed(4)},`);
          },
        });
        const seconds = (performance.now() - start) / 1000;
        if (flags.json) {
          io.stdout.write(`${JSON.stringify({ ...result, ctxSize: flags.ctxSize, loadMs, seconds })}\n`);
        } else {
          io.stdout.write(`\nFinal estimate: PPL = ${result.ppl.toFixed(4)} +/- ${result.stderr.toFixed(5)}\n`);
          io.stderr.write(`${result.nTokens} tokens, ${result.chunks.length} chunks of ${flags.ctxSize}, ${seconds.toFixed(2)} s\n`);
        }
      } finally {
        model.dispose();
      }
    });
}

/** The text file, less one trailing newline (as llama.cpp's -f reads it). */
function readText(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').replace(/\n$/, '');
  } catch (err) {
    throw new FormatError('cannot_open', file, describeIoError(err));
  }
}
