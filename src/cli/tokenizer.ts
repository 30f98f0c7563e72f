/**
 * `smallmind tokenizer`: tools for tokenizers themselves. `tokenizer train` learns a BPE vocabulary
 * from text files (src/train/tokenizer-trainer.ts) and writes it as a Hugging Face tokenizer.json,
 * which our loadTokenizer and Hugging Face's libraries both read. `tokenizer export` writes the
 * tokenizer of a GGUF file (or a llama2.c tokenizer.bin) as tokenizer.json + tokenizer_config.json.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Command, Option } from 'commander';
import { FormatError, RequestError } from '../errors.js';
import { describeIoError } from '../formats/file.js';
import { getOptionalString, readGGUF } from '../formats/gguf.js';
import { writeTokenizerConfig, writeTokenizerJson } from '../formats/tokenizer-json.js';
import type { BpeVocab } from '../tokenizers/bpe.js';
import { tokenizerConfigFromVocab, tokenizerJsonFromVocab } from '../tokenizers/hf-export.js';
import { ggufVocab, isGGUFFile, llama2cTokenCount } from '../tokenizers/index.js';
import { readLlama2cTokenizer } from '../tokenizers/llama2c.js';
import type { Vocab } from '../tokenizers/vocab.js';
import type { WordPieceVocab } from '../tokenizers/wordpiece.js';
import {
  MAX_TRAIN_VOCAB, TOKENIZER_TRAIN_TYPES, TRAIN_DEFAULTS, trainTokenizerFromFiles, type TokenizerTrainType,
} from '../train/tokenizer-trainer.js';
import type { CliIO } from './io.js';
import { integerIn, jsonOption } from './options.js';
import { createProgress, formatDuration, progressMode, type Progress } from './progress.js';

interface TrainFlags {
  vocabSize: number;
  type: TokenizerTrainType;
  file: string[];
  output: string;
  minFrequency: number;
  special?: string[];
  json?: boolean;
}

export function tokenizerCommand(io: CliIO): Command {
  return new Command('tokenizer').description('tokenizer tools (train, export)').addCommand(trainCommand(io)).addCommand(exportCommand(io));
}

function exportCommand(io: CliIO): Command {
  return new Command('export')
    .description('write the tokenizer of a GGUF file (model or vocab-only) or a llama2.c tokenizer.bin as Hugging Face files')
    .argument('<file>', 'a GGUF file or a llama2.c tokenizer.bin')
    .addOption(new Option('-o, --output <folder>', 'the folder for tokenizer.json and tokenizer_config.json (made if missing)').makeOptionMandatory())
    .addOption(jsonOption())
    .action((file: string, flags: { output: string; json?: boolean }) => {
      const { vocab, chatTemplate } = readVocabFile(file);
      fs.mkdirSync(flags.output, { recursive: true });
      const files = [path.join(flags.output, 'tokenizer.json'), path.join(flags.output, 'tokenizer_config.json')];
      writeTokenizerJson(files[0], tokenizerJsonFromVocab(vocab));
      writeTokenizerConfig(files[1], tokenizerConfigFromVocab(vocab, chatTemplate));
      const summary = { files, model: vocab.model, vocabSize: vocab.tokens.length, chatTemplate: chatTemplate !== undefined };
      io.stdout.write(flags.json ? `${JSON.stringify(summary)}\n` : `wrote ${files.join(' and ')}: ${vocab.model}, ${vocab.tokens.length} tokens\n`);
    });
}

/** The vocabulary (and chat template) of a GGUF file or a llama2.c tokenizer.bin. */
function readVocabFile(file: string): { vocab: Vocab | BpeVocab | WordPieceVocab; chatTemplate?: string } {
  if (!isGGUFFile(file)) return { vocab: readLlama2cTokenizer(file, llama2cTokenCount(file)) };
  const gguf = readGGUF(file);
  return { vocab: ggufVocab(gguf), chatTemplate: getOptionalString(gguf, 'tokenizer.chat_template') };
}

function trainCommand(io: CliIO): Command {
  return new Command('train')
    .description('train a BPE tokenizer on text files and write it as tokenizer.json')
    .addOption(new Option('--vocab-size <n>', 'tokens in the vocabulary (specials and alphabet included)').argParser(integerIn(1, MAX_TRAIN_VOCAB)).makeOptionMandatory())
    .addOption(new Option('--type <type>', 'byte-bpe: GPT-2 style byte-level BPE; bpe: SentencePiece/Llama style with byte fallback').choices([...TOKENIZER_TRAIN_TYPES]).makeOptionMandatory())
    .addOption(new Option('-f, --file <files...>', 'UTF-8 text files to train on (repeat -f or list several)').makeOptionMandatory())
    .addOption(new Option('-o, --output <file>', 'the tokenizer.json to write').makeOptionMandatory())
    .addOption(new Option('--min-frequency <k>', 'merge only pairs seen at least k times').argParser(integerIn(1)).default(TRAIN_DEFAULTS.minFrequency))
    .addOption(new Option('--special <tokens...>', 'extra special tokens, given the ids after the base specials'))
    .addOption(jsonOption())
    .action((flags: TrainFlags) => {
      // Fail before the work, not after it.
      checkWritable(flags.output);
      const mode = progressMode(io.stderr, flags.json === true);
      const counting = createProgress('counting words', io.stderr, mode);
      let merging: Progress | undefined;
      const start = performance.now();
      let trained;
      try {
        trained = withFlagNames(() =>
          trainTokenizerFromFiles(flags.file, {
            type: flags.type,
            vocabSize: flags.vocabSize,
            minFrequency: flags.minFrequency,
            specialTokens: flags.special,
            onProgress: (phase, done, total) => {
              if (phase === 'count') return counting.update(done, total);
              counting.finish();
              merging ??= createProgress('merging', io.stderr, mode, undefined, 'merges');
              merging.update(done, total);
            },
          }),
        );
      } finally {
        counting.finish();
        merging?.finish();
      }
      writeTokenizerJson(flags.output, tokenizerJsonFromVocab(trained.vocab));
      const seconds = (performance.now() - start) / 1000;
      const { vocab, merges, alphabet, words } = trained;
      if (flags.json) {
        const summary = { path: flags.output, type: flags.type, vocabSize: vocab.tokens.length, merges, alphabet, words, seconds: round(seconds) };
        io.stdout.write(`${JSON.stringify(summary)}\n`);
      } else {
        io.stdout.write(
          `wrote ${flags.output}: ${flags.type}, ${vocab.tokens.length} tokens (${merges} merges, ` +
            `alphabet of ${alphabet}, ${words} distinct words) in ${formatDuration(seconds)}\n`,
        );
      }
    });
}

/** The output's folder must exist and be writable, and the output must not be a folder. */
function checkWritable(output: string): void {
  const folder = path.dirname(path.resolve(output));
  try {
    fs.accessSync(folder, fs.constants.W_OK);
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
    throw new FormatError('cannot_write', output, missing ? 'its folder does not exist' : describeIoError(err));
  }
  if (fs.existsSync(output) && fs.statSync(output).isDirectory()) throw new FormatError('cannot_write', output, 'is a directory');
}

/** The trainer names its options; a CLI user knows the flags. */
const FLAG_OF: Record<string, string> = {
  vocabSize: '--vocab-size',
  minFrequency: '--min-frequency',
  specialTokens: '--special',
  files: '-f',
  type: '--type',
};

function withFlagNames<T>(run: () => T): T {
  try {
    return run();
  } catch (err) {
    const flag = err instanceof RequestError ? FLAG_OF[err.parameter] : undefined;
    if (flag === undefined) throw err;
    const request = err as RequestError;
    throw new RequestError(request.code, flag, request.message.slice(request.parameter.length + 2));
  }
}

function round(seconds: number): number {
  return Math.round(seconds * 1000) / 1000;
}
