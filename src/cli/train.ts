/**
 * `smallmind train`: train a GPT-2 or Llama model from scratch (src/train/trainer.ts).
 *
 *   smallmind train --preset shakespeare-char --data input.txt --out out-shakespeare
 *   smallmind train --config run.json --n_layer 6 --data corpus/ --out out
 *   smallmind train --resume out
 *
 * Every configuration key is a flag (docs/TRAINING.md): nanoGPT's (`--n_layer 4`,
 * `--learning_rate=1e-3`) and ours (`--data`, `--out`, `--resume`, `--backend`, `--threads`).
 * Ctrl-C saves a checkpoint of the step the run is at, so `--resume` continues it.
 */
import path from 'node:path';
import { Command } from 'commander';
import { parseTrainArgs, resolveConfig } from '../train/config.js';
import { createTrainProgress, trainProgressMode } from '../train/metrics.js';
import { BEST_LINK, train } from '../train/trainer.js';
import type { CliIO } from './io.js';

export function trainCommand(io: CliIO): Command {
  return new Command('train')
    .description('train a GPT-2 or Llama model (nanoGPT-style); every configuration key is a flag (docs/TRAINING.md)')
    .usage('[--preset NAME] [--config FILE.json] [--KEY VALUE ...] --data PATH --out DIR | --resume DIR')
    .helpOption('-h, --help')
    .allowUnknownOption()
    .allowExcessArguments()
    .argument('[flags...]', '--preset, --config, --data, --out, --resume, --json, and any configuration key as --key value')
    .action(async (flags: string[]) => {
      const json = flags.includes('--json');
      const config = resolveConfig(parseTrainArgs(flags.filter((f) => f !== '--json')));
      const progress = createTrainProgress(io.stdout, trainProgressMode(io.stdout, json), { maxIters: config.max_iters, startStep: 0 });
      const controller = new AbortController();
      const onSigint = (): void => controller.abort();
      process.once('SIGINT', onSigint);
      try {
        const result = await train({
          config,
          signal: controller.signal,
          onStep: (r) => progress.update(r),
          onEval: (r) => progress.update(r),
          onNote: (text) => progress.note(text),
          onCheckpoint: (e) => progress.note(`saved ${e.dir}${e.best ? ' (best so far)' : ''}`),
        });
        progress.finish();
        if (json) {
          io.stdout.write(`${JSON.stringify({ done: true, ...result })}\n`);
          return;
        }
        const why = result.stopped === 'aborted' ? `stopped at step ${result.step} (resume with: smallmind train --resume ${result.outDir})` : `finished ${result.step} steps`;
        io.stdout.write(`${why}; best val loss ${result.bestValLoss?.toFixed(4) ?? '-'}, ${Math.round(result.tokensPerSecond)} tok/s on ${result.backend} (${result.threads} threads)\n`);
        io.stdout.write(`model: ${path.join(result.outDir, BEST_LINK)} (try: smallmind generate --model ${path.join(result.outDir, BEST_LINK)} "ROMEO:")\n`);
      } finally {
        process.removeListener('SIGINT', onSigint);
      }
    });
}
