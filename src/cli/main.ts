#!/usr/bin/env node
/**
 * The `smallmind` command line: generate, chat, perplexity, bench, inspect, tokenize, init, doctor.
 *
 * `main(argv, io)` runs one command and resolves to its exit status, so tests call it in-process
 * with string sinks. Exit status: 0 ok, 1 a SmallMind error (bad file, bad model, bad request),
 * 2 a usage error (unknown option, bad option value).
 */
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError } from 'commander';
import { SmallMindError } from '../errors.js';
import { benchCommand } from './bench.js';
import { chatCommand } from './chat.js';
import { convertCommand } from './convert.js';
import { doctorCommand } from './doctor.js';
import { generateCommand } from './generate.js';
import { initCommand } from './init.js';
import { quantizeCommand } from './quantize.js';
import { serveCommand } from './serve.js';
import { inspectCommand } from './inspect.js';
import { processIO, type CliIO } from './io.js';
import { perplexityCommand } from './perplexity.js';
import { tokenizeCommand } from './tokenize.js';
import { tokenizerCommand } from './tokenizer.js';
import { trainCommand } from './train.js';

export type { CliIO, OutputStream } from './io.js';

const VERSION: string = JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version;

export async function main(argv: readonly string[], io: CliIO = processIO()): Promise<number> {
  // --json anywhere: errors too come out as one JSON object on stdout.
  const json = argv.includes('--json');
  const program = new Command('smallmind')
    .description('SmallMind: run Llama-family GGUF and llama2.c models in TypeScript')
    .version(VERSION, '-V, --version')
    .exitOverride()
    .showHelpAfterError(json ? false : '(add --help for usage)')
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
      outputError: (text, write) => {
        if (json) return; // reported below as JSON
        write(text);
      },
    });
  for (const make of [generateCommand, chatCommand, perplexityCommand, benchCommand, inspectCommand, tokenizeCommand, tokenizerCommand, initCommand, quantizeCommand, doctorCommand, convertCommand, trainCommand, serveCommand]) {
    program.addCommand(make(io));
  }
  // addCommand does not pass these settings on; each subcommand (and theirs: `tokenizer train`) needs them.
  for (const command of program.commands.flatMap((c) => [c, ...c.commands])) {
    command.exitOverride().showHelpAfterError(json ? false : '(add --help for usage)').configureOutput(program.configureOutput());
  }

  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    return reportError(err, io, json);
  }
}

function reportError(err: unknown, io: CliIO, json: boolean): number {
  if (err instanceof CommanderError) {
    // --help and --version end this way too, with exit code 0.
    if (err.exitCode === 0) return 0;
    if (json) writeJsonError(io, 'usage', err.message.replace(/^error: /, ''));
    return 2;
  }
  if (err instanceof SmallMindError || isSystemError(err)) {
    const code = err instanceof SmallMindError ? err.code : (err as NodeJS.ErrnoException).code!;
    if (json) writeJsonError(io, code, err.message);
    else io.stderr.write(`error: ${err.message}\n`);
    return 1;
  }
  // A bug: keep the stack.
  const message = err instanceof Error ? (err.stack ?? err.message) : String(err);
  if (json) writeJsonError(io, 'internal', message);
  else io.stderr.write(`internal error: ${message}\n`);
  return 1;
}

function writeJsonError(io: CliIO, code: string, message: string): void {
  io.stdout.write(`${JSON.stringify({ error: { code, message } })}\n`);
}

/** Errors from the OS (ENOENT, EACCES, ENOSPC, ...): the message says it all. */
function isSystemError(err: unknown): err is NodeJS.ErrnoException {
  return err instanceof Error && typeof (err as NodeJS.ErrnoException).syscall === 'string';
}

/** Run when executed as a program (also through npm's bin symlink), not when imported. */
function isEntryPoint(): boolean {
  if (!process.argv[1]) return false;
  try {
    return fs.realpathSync(process.argv[1]) === fs.realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  // `smallmind generate | head` closes stdout early: that is not an error.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
  process.exitCode = await main(process.argv.slice(2), processIO());
}
