/** `smallmind quantize IN OUT --type T`: rewrite a GGUF model's weights in another type (src/quantize.ts). */
import { Command, Option } from 'commander';
import { QUANTIZE_TYPES, quantizeModel, type QuantizeType } from '../quantize.js';
import type { CliIO } from './io.js';
import { jsonOption } from './options.js';
import { createProgress, formatBytes, progressMode } from './progress.js';

export function quantizeCommand(io: CliIO): Command {
  return new Command('quantize')
    .description('rewrite a GGUF model\'s weights as q8_0, q4_0, q4_k, q5_k, q6_k, f16 or f32 (norms stay f32; rows that do not split into blocks fall back as llama-quantize does)')
    .argument('<input>', 'the GGUF model to read')
    .argument('<output>', 'the GGUF file to write')
    .addOption(new Option('--type <type>', 'the weight type').choices([...QUANTIZE_TYPES]).makeOptionMandatory())
    .addOption(jsonOption())
    .action((input: string, output: string, flags: { type: QuantizeType; json?: boolean }) => {
      const progress = createProgress(`quantizing to ${flags.type}`, io.stderr, progressMode(io.stderr, flags.json === true));
      const start = performance.now();
      let result;
      try {
        result = quantizeModel({ input, output, type: flags.type, onProgress: (done, total) => progress.update(done, total) });
      } finally {
        progress.finish();
      }
      const seconds = (performance.now() - start) / 1000;
      if (flags.json) {
        io.stdout.write(`${JSON.stringify({ ...result, type: flags.type, seconds: Math.round(seconds * 1000) / 1000 })}\n`);
        return;
      }
      const types = Object.entries(result.tensorTypes).map(([t, n]) => `${n} ${t}`).join(', ');
      io.stdout.write(
        `wrote ${result.output}: ${formatBytes(result.inputBytes)} -> ${formatBytes(result.outputBytes)} of tensors, ` +
          `${result.bitsPerWeight.toFixed(2)} bits per weight (${types}), ${seconds.toFixed(1)} s\n`,
      );
    });
}
