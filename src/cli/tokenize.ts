/**
 * `smallmind tokenize`: the token ids of a text, like llama.cpp's llama-tokenize. Reads only the
 * tokenizer (no weights): from a GGUF model or vocab-only file, a llama2.c checkpoint's
 * tokenizer.bin, or a tokenizer file given alone.
 */
import { Command, Option } from 'commander';
import { openModelFile, modelTokenizer } from '../loader.js';
import { DEFAULT_MODEL_PATH } from '../model.js';
import { isGGUFFile, loadTokenizer, type Tokenizer } from '../tokenizers/index.js';
import type { CliIO } from './io.js';
import { jsonOption, modelOption } from './options.js';

interface TokenizeFlags {
  model?: string;
  tokenizer?: string;
  ids?: boolean;
  bos: boolean;
  parseSpecial?: boolean;
  json?: boolean;
}

/** The tokenizer the flags name: --tokenizer alone, else the model's (with --tokenizer for a llama2.c checkpoint). */
export function tokenizerForFlags(flags: { model?: string; tokenizer?: string }): Tokenizer {
  if (flags.tokenizer && !flags.model) return loadTokenizer(flags.tokenizer);
  const modelPath = flags.model ?? DEFAULT_MODEL_PATH;
  if (isGGUFFile(modelPath)) return loadTokenizer(flags.tokenizer ?? modelPath);
  // A llama2.c checkpoint: its tokenizer.bin (given, or found beside it) read with its vocab size.
  return modelTokenizer(openModelFile(modelPath), flags.tokenizer);
}

/** A token's text as llama-tokenize shows it: special tokens spelled out, bytes decoded (U+FFFD when partial). */
export function pieceText(tok: Tokenizer, id: number): string {
  // A fresh stream decoder per token: keeps the leading space that decode() drops at the start.
  const decoder = tok.createStreamDecoder({ skipSpecial: false });
  return decoder.push(id) + decoder.flush();
}

export function tokenizeCommand(io: CliIO): Command {
  return new Command('tokenize')
    .description('print the tokens of a text (no text: read stdin when piped)')
    .argument('[text]', 'the text to tokenize')
    .addOption(modelOption())
    .addOption(new Option('--tokenizer <file>', 'tokenizer: GGUF (model or vocab-only), llama2.c tokenizer.bin, or Hugging Face tokenizer.json / vocab.json / a folder with them; default: the model\'s'))
    .addOption(new Option('--ids', 'print only the ids, as a [1, 2, 3] list'))
    .addOption(new Option('--no-bos', 'add neither BOS nor EOS (default: as the vocabulary\'s add_bos/add_eos say)'))
    .addOption(new Option('--parse-special', 'turn special tokens written in the text (e.g. "<s>") into their ids (default: plain text)'))
    .addOption(jsonOption())
    .action(async (textArg: string | undefined, flags: TokenizeFlags) => {
      // Piped text loses one trailing newline, as in generate.
      const text = textArg ?? (await io.readStdin())?.replace(/\n$/, '') ?? '';
      const tok = tokenizerForFlags(flags);
      // --no-bos turns BOS/EOS off; otherwise the vocabulary's add_bos/add_eos flags decide.
      const ids = tok.encode(text, { addSpecial: flags.bos, parseSpecial: flags.parseSpecial });
      if (flags.json) {
        io.stdout.write(`${JSON.stringify({ ids, pieces: ids.map((id) => pieceText(tok, id)) })}\n`);
      } else if (flags.ids) {
        io.stdout.write(`[${ids.join(', ')}]\n`);
      } else {
        io.stdout.write(ids.map((id) => `${String(id).padStart(6)} -> '${pieceText(tok, id)}'\n`).join(''));
      }
    });
}
