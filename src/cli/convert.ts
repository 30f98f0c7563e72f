/** `smallmind convert IN OUT [--type T]`: a Hugging Face checkpoint folder to GGUF, or a GGUF to a folder (src/convert.ts). */
import { Command, Option } from 'commander';
import { convertModel } from '../convert.js';
import { QUANTIZE_TYPES, type QuantizeType } from '../quantize.js';
import type { CliIO } from './io.js';
import { jsonOption } from './options.js';
import { createProgress, progressMode } from './progress.js';

interface ConvertFlags {
  type?: QuantizeType;
  json?: boolean;
}

export function convertCommand(io: CliIO): Command {
  return new Command('convert')
    .description('convert a Hugging Face checkpoint folder (config.json, model.safetensors, tokenizer.json) to GGUF, or a GGUF to such a folder (llama and gpt2)')
    .argument('<input>', 'a checkpoint folder or a .gguf file')
    .argument('<output>', 'the .gguf file (from a folder) or the folder (from a .gguf) to write')
    .addOption(new Option('--type <type>', 'to GGUF: requantize to this file type; to a folder: f32, f16 or bf16 (default: as stored; quantized tensors become f32)').choices([...QUANTIZE_TYPES]))
    .addOption(jsonOption())
    .action((input: string, output: string, flags: ConvertFlags) => {
      const progress = createProgress(`converting ${input}`, io.stderr, progressMode(io.stderr, flags.json === true));
      const start = performance.now();
      let result;
      try {
        result = convertModel({ input, output, type: flags.type, onProgress: (done, total) => progress.update(done, total) });
      } finally {
        progress.finish();
      }
      const seconds = Math.round(performance.now() - start) / 1000;
      if (flags.json) io.stdout.write(`${JSON.stringify({ ...result, seconds })}\n`);
      else io.stdout.write(`wrote ${result.output}: ${result.architecture}, ${result.tensorCount} tensors (${result.direction}), ${seconds.toFixed(1)} s\n`);
    });
}
