/**
 * The HTTP layer of `smallmind serve`: fastify routes with schema-checked bodies, API keys, CORS,
 * body limit, per-request timeout, client disconnects, SSE streaming, one JSON log line per
 * request and /metrics. It calls the engine (engine.ts) and maps shapes with openai.ts.
 */
import crypto from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { RequestError, ResourceError } from '../errors.js';
import type { GenerateOptions, GenerateResult, Model } from '../model.js';
import { SerialEngine, type Engine, type ServedModel } from './engine.js';
import { apiError, toApiError, type ApiError } from './errors.js';
import { ServerMetrics } from './metrics.js';
import {
  chatChunks, chatCompletion, completionChunks, pieceText, prepareChat, prepareCompletion, textCompletion, usageOf,
  type ChatBody, type ChunkWriter, type CompletionBody, type ResponseIds,
} from './openai.js';
import { chatBodySchema, completionBodySchema, detokenizeBodySchema, tokenizeBodySchema } from './schemas.js';

export interface ServerOptions {
  /** The models to serve, by name (the API's `model` field). */
  models: readonly ServedModel[];
  /** Run requests on this engine instead of a SerialEngine over `models`. */
  engine?: Engine;
  /** Accepted bearer keys; none: no authentication. */
  apiKeys?: readonly string[];
  /** Requests admitted to run at once (this phase's engine still runs them one at a time; default 1). */
  parallel?: number;
  /** Requests that may wait at most (default 64); more get 429. */
  maxQueue?: number;
  /** Largest request body in bytes (default 1 MiB); more get 413. */
  bodyLimit?: number;
  /** A request still generating after this long is stopped with 504 (default 600 000 ms). */
  timeoutMs?: number;
  /** Access-Control-Allow-Origin for browsers (e.g. '*'); default: no CORS headers. */
  corsOrigin?: string;
  /** Where the per-request JSON log lines go (default: stderr). */
  log?: (line: string) => void;
}

export interface SmallMindServer {
  app: FastifyInstance;
  engine: Engine;
  metrics: ServerMetrics;
  /** Start listening; resolves to the base URL (port 0: a free port). */
  listen(opts?: { host?: string; port?: number }): Promise<string>;
  /** Stop accepting requests, let running ones finish, close. */
  close(): Promise<void>;
}

/** What the request's log line reports besides method, path, status and latency. */
interface LogFields {
  model?: string;
  promptTokens?: number;
  completionTokens?: number;
  error?: string;
}

export async function createServer(opts: ServerOptions): Promise<SmallMindServer> {
  const engine = opts.engine ?? new SerialEngine(opts.models, { maxQueue: opts.maxQueue });
  const metrics = new ServerMetrics();
  const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const timeoutMs = opts.timeoutMs ?? 600_000;
  const keyDigests = (opts.apiKeys ?? []).map(digest);
  const logFields = new WeakMap<FastifyRequest, LogFields>();

  const app = Fastify({
    logger: false,
    bodyLimit: opts.bodyLimit ?? 1024 * 1024,
    return503OnClosing: true,
    genReqId: () => crypto.randomUUID(),
    // Reject wrong types instead of coercing "1" to 1 or dropping unknown fields.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: false } },
  });

  app.addHook('onRequest', async (request, reply) => {
    const start = performance.now();
    logFields.set(request, {});
    reply.raw.once('close', () => {
      const fields = logFields.get(request) ?? {};
      const status = reply.raw.headersSent ? reply.raw.statusCode : 499;
      const endpoint = request.routeOptions.url ?? 'unknown';
      metrics.countRequest(endpoint, status);
      log(JSON.stringify({
        time: new Date().toISOString(), id: request.id, method: request.method, path: request.url.split('?')[0], status,
        model: fields.model, prompt_tokens: fields.promptTokens, completion_tokens: fields.completionTokens,
        latency_ms: Math.round(performance.now() - start), ...(fields.error && { error: fields.error }),
      }));
    });
    if (opts.corsOrigin) {
      reply.raw.setHeader('access-control-allow-origin', opts.corsOrigin);
      reply.raw.setHeader('access-control-allow-headers', 'authorization, content-type');
      reply.raw.setHeader('access-control-allow-methods', 'GET, POST, OPTIONS');
    }
    if (request.method === 'OPTIONS' || request.routeOptions.url === '/health' || keyDigests.length === 0) return;
    if (!authorized(request.headers.authorization, keyDigests)) {
      return sendError(reply, apiError(401, 'authentication_error', 'a valid API key is required (Authorization: Bearer KEY)', 'invalid_api_key'));
    }
  });

  app.setErrorHandler((err, request, reply) => {
    const api = toApiError(err);
    const fields = logFields.get(request);
    if (fields) fields.error = api.status >= 500 ? `${err instanceof Error ? err.message : String(err)}` : api.body.error.code ?? undefined;
    return sendError(reply, api);
  });
  app.setNotFoundHandler((request, reply) =>
    sendError(reply, apiError(404, 'invalid_request_error', `no route ${request.method} ${request.url.split('?')[0]}`, 'not_found')));
  if (opts.corsOrigin) app.options('*', async (_request, reply) => reply.code(204).send());

  const context: RouteContext = { engine, metrics, timeoutMs, logFields };
  app.get('/health', async () => ({ status: 'ok', parallel: opts.parallel ?? 1, ...engine.stats() }));
  app.get('/metrics', async (_request, reply) => reply.type('text/plain; version=0.0.4').send(metrics.render(engine.stats())));
  app.get('/v1/models', async () => ({ object: 'list', data: engine.models.map(modelObject) }));
  app.get<{ Params: { model: string } }>('/v1/models/:model', async (request) => {
    engine.model(request.params.model);
    return modelObject(engine.models.find((m) => m.name === request.params.model)!);
  });
  app.post<{ Body: ChatBody }>('/v1/chat/completions', { schema: { body: chatBodySchema } }, (request, reply) => chatRoute(context, request, reply));
  app.post<{ Body: CompletionBody }>('/v1/completions', { schema: { body: completionBodySchema } }, (request, reply) => completionRoute(context, request, reply));
  app.post<{ Body: { content: string; model?: string; add_special?: boolean; with_pieces?: boolean } }>('/tokenize', { schema: { body: tokenizeBodySchema } }, async (request) => {
    const model = defaultModel(engine, request.body.model);
    const ids = model.tokenize(request.body.content, { addSpecial: request.body.add_special ?? false, parseSpecial: true });
    if (!request.body.with_pieces) return { tokens: ids };
    return { tokens: ids.map((id) => ({ id, piece: pieceText(model, id) })) };
  });
  app.post<{ Body: { tokens: number[]; model?: string } }>('/detokenize', { schema: { body: detokenizeBodySchema } }, async (request) => {
    const model = defaultModel(engine, request.body.model);
    const bad = request.body.tokens.find((id) => id >= model.tokenizer.vocabSize);
    if (bad !== undefined) throw new RequestError('invalid_value', 'tokens', `token id ${bad} is not below the vocabulary size ${model.tokenizer.vocabSize}`);
    return { content: model.detokenize(request.body.tokens) };
  });

  return {
    app,
    engine,
    metrics,
    listen: async ({ host = '127.0.0.1', port = 8080 } = {}) => {
      await app.listen({ host, port });
      const address = app.server.address();
      const actualPort = typeof address === 'object' && address ? address.port : port;
      return `http://${host.includes(':') ? `[${host}]` : host}:${actualPort}`;
    },
    close: async () => {
      await app.close();
      await engine.drain();
    },
  };
}

interface RouteContext {
  engine: Engine;
  metrics: ServerMetrics;
  timeoutMs: number;
  logFields: WeakMap<FastifyRequest, LogFields>;
}

function modelObject(served: ServedModel): unknown {
  return { id: served.name, object: 'model', created: 0, owned_by: 'smallmind' };
}

/** /tokenize and /detokenize: the named model, or the first one. */
function defaultModel(engine: Engine, name: string | undefined): Model {
  return name === undefined ? engine.models[0].model : engine.model(name);
}

function digest(key: string): Buffer {
  return crypto.createHash('sha256').update(key).digest();
}

/** Compare digests in constant time, against every key (no early exit that would tell which). */
function authorized(header: string | undefined, keyDigests: readonly Buffer[]): boolean {
  const match = /^Bearer\s+(.+)$/i.exec(header ?? '');
  const given = digest(match ? match[1].trim() : '');
  let ok = false;
  for (const key of keyDigests) ok = crypto.timingSafeEqual(given, key) || ok;
  return ok;
}

function sendError(reply: FastifyReply, error: ApiError): FastifyReply {
  if (error.retryAfter !== undefined) reply.header('retry-after', String(error.retryAfter));
  return reply.code(error.status).type('application/json').send(error.body);
}

/** Fields of OpenAI's API this server does not implement yet: rejected rather than ignored. */
function rejectUnsupported(body: object, fields: readonly string[]): void {
  for (const field of fields) {
    const value = (body as Record<string, unknown>)[field];
    if (value !== undefined && value !== null && !(Array.isArray(value) && value.length === 0)) {
      throw new RequestError('unsupported_parameter', field, 'not supported by this server yet');
    }
  }
}

async function chatRoute(context: RouteContext, request: FastifyRequest<{ Body: ChatBody }>, reply: FastifyReply): Promise<unknown> {
  const body = request.body;
  rejectUnsupported(body, ['tools', 'functions', 'tool_choice', 'function_call', 'audio', 'modalities', 'prediction']);
  const model = context.engine.model(body.model);
  const prepared = prepareChat(body, model);
  const ids: ResponseIds = { id: `chatcmpl-${request.id}`, created: Math.floor(Date.now() / 1000), model: body.model };
  const writer = body.stream ? chatChunks(ids, model, body.stream_options?.include_usage === true) : undefined;
  const results = await runGeneration(context, request, reply, { name: body.model, prompts: prepared.prompts, options: prepared.options, includeUsage: body.stream_options?.include_usage === true }, writer);
  if (!results) return reply;
  return chatCompletion(ids, model, results[0]);
}

async function completionRoute(context: RouteContext, request: FastifyRequest<{ Body: CompletionBody }>, reply: FastifyReply): Promise<unknown> {
  const body = request.body;
  rejectUnsupported(body, ['suffix', 'best_of']);
  const model = context.engine.model(body.model);
  const prepared = prepareCompletion(body, model);
  const ids: ResponseIds = { id: `cmpl-${request.id}`, created: Math.floor(Date.now() / 1000), model: body.model };
  const echo = body.echo === true;
  const promptTexts = prepared.prompts.map((p) => model.detokenize(p));
  const writer = body.stream ? completionChunks(ids, model, body.stream_options?.include_usage === true) : undefined;
  // With echo, a stream starts each choice with its prompt's text.
  const echoChunks = echo && writer ? promptTexts.map((text) => writer.event({ index: 0, id: null, text }, 0)[0]) : [];
  const results = await runGeneration(context, request, reply, { name: body.model, prompts: prepared.prompts, options: prepared.options, includeUsage: body.stream_options?.include_usage === true }, writer, echoChunks);
  if (!results) return reply;
  const n = prepared.options.n ?? 1;
  const choices = results.flatMap((result, p) => result.choices.map((choice) => ({ index: p * n + choice.index, choice, promptText: promptTexts[p] })));
  const promptTokens = prepared.prompts.reduce((sum, p) => sum + p.length, 0);
  return textCompletion(ids, model, choices, usageOf(promptTokens, results), echo);
}

interface Generation {
  name: string;
  /** stream_options.include_usage: a usage chunk before [DONE]. */
  includeUsage?: boolean;
  prompts: number[][];
  options: GenerateOptions;
}

/**
 * Run a request's prompts one after the other. Without a writer: resolves to the results. With
 * one: streams SSE chunks (headers go out with the first one, so errors before it are ordinary
 * error responses) and resolves to undefined. Client disconnects and the timeout cancel the job.
 */
async function runGeneration(
  context: RouteContext, request: FastifyRequest, reply: FastifyReply, generation: Generation, writer: ChunkWriter | undefined, echoChunks: unknown[] = [],
): Promise<GenerateResult[] | undefined> {
  const fields = context.logFields.get(request) ?? {};
  fields.model = generation.name;
  fields.promptTokens = generation.prompts.reduce((sum, p) => sum + p.length, 0);
  fields.completionTokens = 0;
  const abort = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    abort.abort();
  }, context.timeoutMs);
  const onClose = (): void => {
    if (!reply.raw.writableEnded) abort.abort();
  };
  reply.raw.once('close', onClose);
  const n = generation.options.n ?? 1;
  const sse = writer ? new SseWriter(reply) : undefined;
  const results: GenerateResult[] = [];
  try {
    for (const [p, prompt] of generation.prompts.entries()) {
      const job = context.engine.submit({ model: generation.name, prompt, options: generation.options, signal: abort.signal });
      const submitted = performance.now();
      let last: number | undefined;
      let next = await job.events.next();
      for (; !next.done; next = await job.events.next()) {
        const event = next.value;
        if (event.id !== null) {
          const now = performance.now();
          if (last === undefined) context.metrics.timeToFirstToken.observe((now - submitted) / 1000);
          else context.metrics.interTokenLatency.observe((now - last) / 1000);
          last = now;
          context.metrics.generatedTokens++;
          fields.completionTokens++;
        }
        if (sse && writer) {
          sse.open(p, writer, n, echoChunks[p]);
          for (const chunk of writer.event(event, p * n + event.index)) sse.send(chunk);
        }
      }
      if (timedOut) throw new ResourceError('timeout', `the request ran longer than ${context.timeoutMs} ms`);
      const result = next.value;
      results.push(result);
      context.metrics.promptTokens += prompt.length;
      if (sse && writer) {
        sse.open(p, writer, n, echoChunks[p]);
        for (const choice of result.choices) sse.send(writer.finish(p * n + choice.index, choice.stopReason));
      }
    }
    if (!sse || !writer) return results;
    const promptTokens = generation.prompts.reduce((sum, p) => sum + p.length, 0);
    if (generation.includeUsage) sse.send(writer.usage(usageOf(promptTokens, results)));
    sse.done();
    return undefined;
  } catch (caught) {
    // Timed out while queued, the engine says 'cancelled': the client should hear 'timeout'.
    const err = timedOut ? new ResourceError('timeout', `the request ran longer than ${context.timeoutMs} ms`) : caught;
    if (!sse?.started) throw err;
    // Headers are out: the error goes in the stream, as OpenAI's does.
    sse.send(toApiError(err).body);
    sse.done();
    return undefined;
  } finally {
    clearTimeout(timer);
    reply.raw.removeListener('close', onClose);
  }
}

/** Server-sent events on a hijacked reply: `data: JSON\n\n` per chunk, `data: [DONE]` at the end. */
class SseWriter {
  started = false;
  /** The last prompt whose choices have their opening chunks out. */
  private opened = -1;

  constructor(private readonly reply: FastifyReply) {}

  /** Before prompt p's first chunk: the headers (once), then each of its choices' opening chunk and echoed prompt. */
  open(p: number, writer: ChunkWriter, n: number, echo: unknown): void {
    if (!this.started) {
      this.reply.hijack();
      this.reply.raw.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive' });
      this.started = true;
    }
    if (this.opened >= p) return;
    this.opened = p;
    for (let i = 0; i < n; i++) {
      if (writer.start) this.send(writer.start(p * n + i));
      if (echo) this.send({ ...(echo as object), choices: (echo as { choices: object[] }).choices.map((c) => ({ ...c, index: p * n + i })) });
    }
  }

  send(chunk: unknown): void {
    if (!this.reply.raw.writableEnded) this.reply.raw.write(`data: ${JSON.stringify(chunk)}\n\n`);
  }

  done(): void {
    if (this.reply.raw.writableEnded) return;
    this.reply.raw.end('data: [DONE]\n\n');
  }
}
