/**
 * `smallmind serve`: an OpenAI-compatible HTTP server (src/serve/) over one or more models.
 * SIGTERM and SIGINT stop accepting requests, let running ones finish, and exit 0.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { FormatError } from '../errors.js';
import { describeIoError } from '../formats/file.js';
import type { Model } from '../model.js';
import { createServer } from '../serve/http.js';
import type { CliIO } from './io.js';
import { backendOption, cacheTypeOption, integerIn, loadWithProgress, threadsOption, type LoadFlags } from './options.js';

interface ServeFlags extends Omit<LoadFlags, 'model'> {
  model: string[];
  host: string;
  port: number;
  apiKey?: string[];
  apiKeyFile?: string;
  parallel: number;
  ctxSize?: number;
  maxQueue: number;
  corsOrigin?: string;
  timeout: number;
}

/** -m FILE (named after the file) or NAME=FILE, repeatable. */
function collectModel(value: string, previous: string[] | undefined): string[] {
  if (value === '') throw new InvalidArgumentError('must not be empty.');
  return [...(previous ?? []), value];
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** A served model's name and file: NAME=FILE, or the file's name without extension. */
function modelSpec(value: string): { name: string; file: string } {
  const eq = value.indexOf('=');
  if (eq > 0 && !fs.existsSync(value)) return { name: value.slice(0, eq), file: value.slice(eq + 1) };
  return { name: path.basename(value).replace(/\.(gguf|bin)$/i, ''), file: value };
}

function readKeys(file: string): string[] {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').map((line) => line.trim()).filter((line) => line !== '');
  } catch (err) {
    throw new FormatError('cannot_open', file, `--api-key-file: ${describeIoError(err)}`);
  }
}

export function serveCommand(io: CliIO): Command {
  return new Command('serve')
    .description('serve models over an OpenAI-compatible HTTP API (/v1/chat/completions, /v1/completions, /v1/models, ...)')
    .addOption(new Option('-m, --model <[name=]file>', 'a model to serve (repeatable); default: the embedded stories260K').argParser(collectModel))
    .addOption(new Option('--host <host>', 'address to listen on').default('127.0.0.1'))
    .addOption(new Option('--port <n>', 'port to listen on (0: any free port)').argParser(integerIn(0, 65535)).default(8080))
    .addOption(new Option('--api-key <key>', 'require this bearer key (repeatable)').argParser(collect))
    .addOption(new Option('--api-key-file <file>', 'require one of the keys in this file (one per line)'))
    .addOption(new Option('--parallel <n>', 'sequences admitted at once (this version runs them one at a time)').argParser(integerIn(1, 256)).default(1))
    .addOption(new Option('-c, --ctx-size <n>', 'context positions per model (default: the model\'s, at most 4096)').argParser(integerIn(1)))
    .addOption(new Option('--max-queue <n>', 'requests that may wait; more get 429').argParser(integerIn(0)).default(64))
    .addOption(new Option('--cors-origin <origin>', 'Access-Control-Allow-Origin for browsers (e.g. "*")'))
    .addOption(new Option('--timeout <s>', 'stop a request still running after this many seconds (504)').argParser(integerIn(1)).default(600))
    .addOption(threadsOption())
    .addOption(cacheTypeOption())
    .addOption(backendOption())
    .action(async (flags: ServeFlags) => {
      const specs = (flags.model ?? []).map(modelSpec);
      const apiKeys = [...(flags.apiKey ?? []), ...(flags.apiKeyFile ? readKeys(flags.apiKeyFile) : [])];
      const models: { name: string; model: Model }[] = [];
      try {
        for (const spec of specs.length > 0 ? specs : [{ name: 'stories260K', file: undefined }]) {
          const { model } = await loadWithProgress(io, { ...flags, model: spec.file }, { contextLength: flags.ctxSize });
          models.push({ name: spec.name, model });
        }
        const server = await createServer({
          models, apiKeys, parallel: flags.parallel, maxQueue: flags.maxQueue, corsOrigin: flags.corsOrigin, timeoutMs: flags.timeout * 1000,
          log: (line) => io.stderr.write(`${line}\n`),
        });
        const url = await server.listen({ host: flags.host, port: flags.port });
        io.stderr.write(`serving ${models.map((m) => m.name).join(', ')} on ${url}${apiKeys.length > 0 ? ' (API key required)' : ''}\n`);
        await new Promise<void>((resolve) => {
          const stop = (): void => {
            io.stderr.write('stopping: finishing running requests\n');
            server.close().then(resolve, resolve);
          };
          process.once('SIGTERM', stop);
          process.once('SIGINT', stop);
        });
      } finally {
        for (const { model } of models) model.dispose();
      }
    });
}
