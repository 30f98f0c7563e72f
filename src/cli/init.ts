/** `smallmind init`: write a random-weight model of a real shape (see src/models/init.ts). */
import { Command, Option } from 'commander';
import { ALL_INIT_SHAPES, INIT_DTYPES, initModel, type InitDType, type InitShape } from '../init.js';
import type { CliIO } from './io.js';
import { integerIn, jsonOption } from './options.js';
import { createProgress, formatBytes, progressMode } from './progress.js';

interface InitFlags {
  shape: InitShape;
  dtype: InitDType;
  output: string;
  seed: number;
  vocab?: string;
  layers?: number;
  std?: number;
  json?: boolean;
}

export function initCommand(io: CliIO): Command {
  return new Command('init')
    .description('write a GGUF model of a real shape with random weights (normal(0, 0.02), norms 1), for benchmarks and tests')
    .addOption(new Option('--shape <name>', 'the model shape').choices([...ALL_INIT_SHAPES]).makeOptionMandatory())
    .addOption(new Option('--dtype <type>', 'weight type (norms stay f32)').choices([...INIT_DTYPES]).default('f32'))
    .addOption(new Option('-o, --output <file>', 'the .gguf file to write').makeOptionMandatory())
    .addOption(new Option('--seed <s>', 'random seed').argParser(integerIn(0)).default(0))
    .addOption(new Option('--vocab <file>', 'GGUF file whose vocabulary is copied (default: the shared llama-2-tiny-random; GPT-2 shapes: ggml-vocab-gpt-2)'))
    .addOption(new Option('--layers <n>', 'override the layer count (small files for tests)').argParser(integerIn(1, 1024)).hideHelp())
    .addOption(new Option('--std <x>', 'standard deviation of the weights (default 0.02; fixtures use larger)').argParser(Number).hideHelp())
    .addOption(jsonOption())
    .action(async (flags: InitFlags) => {
      const progress = createProgress(`writing ${flags.output}`, io.stderr, progressMode(io.stderr, flags.json === true));
      const start = performance.now();
      let result;
      try {
        result = initModel({
          shape: flags.shape,
          dtype: flags.dtype,
          output: flags.output,
          seed: flags.seed,
          vocab: flags.vocab,
          layers: flags.layers,
          std: flags.std,
          onProgress: (done, total) => progress.update(done, total),
        });
      } finally {
        progress.finish();
      }
      const ms = performance.now() - start;
      if (flags.json) {
        io.stdout.write(`${JSON.stringify({
          path: result.path, shape: flags.shape, dtype: flags.dtype, seed: flags.seed, config: result.config,
          tensorCount: result.tensorCount, parameterCount: result.parameterCount, dataBytes: result.dataBytes, ms: Math.round(ms),
        })}\n`);
      } else {
        io.stdout.write(
          `wrote ${result.path}: ${flags.shape} ${flags.dtype}, ${result.config.block_count} layers, ` +
          `${(result.parameterCount / 1e6).toFixed(2)} M parameters, ${formatBytes(result.dataBytes)} of tensors, ${(ms / 1000).toFixed(1)} s\n`,
        );
      }
    });
}
