/** `smallmind quantize IN OUT --type T [--method gptq --calib FILE]`: rewrite a GGUF model's weights in another type (src/quantize.ts, src/gptq.ts). */
import os from 'node:os';
import { Command, Option } from 'commander';
import { RequestError } from '../errors.js';
import { QUANTIZE_TYPES, quantizeModel, type QuantizeOptions, type QuantizeResult, type QuantizeType } from '../quantize.js';
import { DTYPES, type DType } from '../tensor/dtype.js';
import type { CliIO } from './io.js';
import { integerIn, jsonOption, numberIn } from './options.js';
import { createProgress, formatBytes, progressMode, type Progress, type ProgressMode } from './progress.js';

interface QuantizeFlags {
  type: QuantizeType;
  outputTensorType?: DType;
  tokenEmbeddingType?: DType;
  pure?: boolean;
  method: 'rtn' | 'gptq';
  calib?: string;
  calibCtx?: number;
  damp?: number;
  groupSize?: number;
  sequential?: boolean;
  threads: number;
  json?: boolean;
}

export function quantizeCommand(io: CliIO): Command {
  return new Command('quantize')
    .description('rewrite a GGUF model\'s weights in a file type (q8_0, q4_0, q4_1, q5_0, q5_1, q4_k_s, q4_k_m, q5_k_s, q5_k_m, q6_k, f16, bf16, f32) with llama-quantize\'s per-tensor rules')
    .argument('<input>', 'the GGUF model to read')
    .argument('<output>', 'the GGUF file to write')
    .addOption(new Option('--type <type>', 'the file type (q4_k and q5_k mean q4_k_m and q5_k_m)').choices([...QUANTIZE_TYPES]).makeOptionMandatory())
    .addOption(new Option('--output-tensor-type <type>', 'type of output.weight instead of the mixture\'s choice').choices(WEIGHT_TYPES))
    .addOption(new Option('--token-embedding-type <type>', 'type of token_embd.weight instead of the mixture\'s choice').choices(WEIGHT_TYPES))
    .addOption(new Option('--pure', 'every quantizable tensor in the base type: no mixture, no output-tensor upgrade'))
    .addOption(new Option('--method <method>', 'rtn: round to nearest (as llama-quantize); gptq: calibrated, error-compensating (q4_0, q8_0, and the Q4_K tensors of q4_k_s/q4_k_m)').choices(['rtn', 'gptq']).default('rtn'))
    .addOption(new Option('--calib <file>', 'gptq: calibration text (like the text the model will see; not your evaluation text)'))
    .addOption(new Option('--calib-ctx <n>', 'gptq: tokens per calibration window, BOS included (default: 256, at most the model\'s context)').argParser(integerIn(2)))
    .addOption(new Option('--damp <x>', 'gptq: dampening added to the Hessian\'s diagonal, as a fraction of its mean (default 0.01)').argParser(numberIn(0, 1, true)))
    .addOption(new Option('--group-size <n>', 'gptq: values per scale; fixed by the type (32 for q4_0 and q8_0, 256 for q4_k)').argParser(integerIn(1)))
    .addOption(new Option('--sequential', 'gptq: calibrate layer by layer through the already-quantized layers (one pass per layer; slower, often better)'))
    .addOption(new Option('-t, --threads <n>', 'gptq: threads for the calibration passes').argParser(integerIn(1, 256)).default(os.availableParallelism()))
    .addOption(jsonOption())
    .action(async (input: string, output: string, flags: QuantizeFlags) => {
      const mode = progressMode(io.stderr, flags.json === true);
      const start = performance.now();
      const result = flags.method === 'gptq' ? await runGptq(io, input, output, flags, mode) : runRtn(io, input, output, flags, mode);
      const seconds = (performance.now() - start) / 1000;
      if (flags.json) {
        io.stdout.write(`${JSON.stringify({ ...result, type: flags.type, method: flags.method, seconds: Math.round(seconds * 1000) / 1000 })}\n`);
        return;
      }
      const types = Object.entries(result.tensorTypes).map(([t, n]) => `${n} ${t}`).join(', ');
      io.stdout.write(
        `wrote ${result.output}: ${formatBytes(result.inputBytes)} -> ${formatBytes(result.outputBytes)} of tensors, ` +
          `${result.bitsPerWeight.toFixed(2)} bits per weight (${types}), ${seconds.toFixed(1)} s\n`,
      );
    });
}

/** The weight types a tensor can be given (not q8_k: activations only). */
const WEIGHT_TYPES = (Object.keys(DTYPES) as DType[]).filter((t) => t !== 'q8_k');

function planFlags(flags: QuantizeFlags): Pick<QuantizeOptions, 'type' | 'outputTensorType' | 'tokenEmbeddingType' | 'pure'> {
  return { type: flags.type, outputTensorType: flags.outputTensorType, tokenEmbeddingType: flags.tokenEmbeddingType, pure: flags.pure };
}

function runRtn(io: CliIO, input: string, output: string, flags: QuantizeFlags, mode: ProgressMode): QuantizeResult {
  const gptqOnly = (['calib', 'calibCtx', 'damp', 'groupSize', 'sequential'] as const).find((name) => flags[name] !== undefined);
  if (gptqOnly) throw new RequestError('gptq_option', `--${gptqOnly.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`, 'only applies with --method gptq');
  const progress = createProgress(`quantizing to ${flags.type}`, io.stderr, mode);
  try {
    return quantizeModel({ input, output, ...planFlags(flags), onProgress: (done, total) => progress.update(done, total) });
  } finally {
    progress.finish();
  }
}

async function runGptq(io: CliIO, input: string, output: string, flags: QuantizeFlags, mode: ProgressMode): Promise<QuantizeResult> {
  if (flags.calib === undefined) throw new RequestError('missing_calib', '--calib', '--method gptq needs a calibration text file');
  const calibration = createProgress('calibrating', io.stderr, mode, undefined, 'tokens');
  // Started when calibration ends, so that its rate and ETA count the GPTQ work only.
  let quantizing: Progress | undefined;
  try {
    const result = await quantizeModel({
      method: 'gptq',
      input,
      output,
      ...planFlags(flags),
      calib: flags.calib,
      calibCtx: flags.calibCtx,
      dampening: flags.damp,
      groupSize: flags.groupSize,
      sequential: flags.sequential,
      threads: flags.threads,
      onCalibrationProgress: (done, total) => calibration.update(done, total),
      onProgress: (done, total) => {
        calibration.finish();
        quantizing ??= createProgress(`quantizing to ${flags.type} (gptq)`, io.stderr, mode);
        quantizing.update(done, total);
      },
    });
    quantizing?.finish();
    if (mode !== 'none') {
      const c = result.calibration;
      io.stderr.write(`gptq: ${result.gptqTensors} tensors from ${c.tokens} calibration tokens (${c.windows} windows of ${c.windowTokens}, ${c.passes} pass${c.passes > 1 ? 'es' : ''}, ${c.seconds.toFixed(1)} s), gptq ${result.gptqSeconds.toFixed(1)} s\n`);
    }
    return result;
  } finally {
    calibration.finish();
    quantizing?.finish();
  }
}
