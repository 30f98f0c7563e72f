/**
 * `smallmind serve` end to end: the real server on 127.0.0.1 port 0 over stories260K and the
 * random 32000-token Llama, driven by the official openai client (and fetch where the client
 * cannot send what we test: malformed JSON, oversized bodies).
 */
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import OpenAI, { AuthenticationError, BadRequestError, NotFoundError, RateLimitError } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_MODEL_PATH, loadModel, type Model } from '../src/model.js';
import { createServer, type SmallMindServer } from '../src/serve/http.js';

const RANDOM_MODEL = fileURLToPath(new URL('../../shared/models/llama-2-tiny-random/llama-2-tiny-random.gguf', import.meta.url));
const KEY = 'test-key-1';
/** stories260K's EOS: banned where a test needs a long generation. */
const EOS = 2;

let server: SmallMindServer;
let url: string;
let client: OpenAI;
const models: Model[] = [];
const logLines: string[] = [];

beforeAll(async () => {
  const stories = await loadModel(DEFAULT_MODEL_PATH, { threads: 1 });
  const random = await loadModel(RANDOM_MODEL, { threads: 1, contextLength: 256 });
  models.push(stories, random);
  server = await createServer({
    models: [{ name: 'stories260K', model: stories }, { name: 'tiny-random', model: random }],
    apiKeys: [KEY],
    maxQueue: 0, // a second request while one runs gets 429
    bodyLimit: 64 * 1024,
    log: (line) => logLines.push(line),
  });
  url = await server.listen({ port: 0 });
  client = new OpenAI({ baseURL: `${url}/v1`, apiKey: KEY, maxRetries: 0 });
});

afterAll(async () => {
  await server?.close();
  for (const m of models) m.dispose();
});

const ask = [{ role: 'user' as const, content: 'Once upon a time' }];

describe('chat completions', () => {
  it('answers with an OpenAI chat.completion: text, finish reason, usage', async () => {
    const completion = await client.chat.completions.create({ model: 'stories260K', messages: ask, max_tokens: 20, temperature: 0 });
    expect(completion.object).toBe('chat.completion');
    expect(completion.model).toBe('stories260K');
    expect(completion.choices).toHaveLength(1);
    const choice = completion.choices[0];
    expect(choice.message.role).toBe('assistant');
    expect(choice.message.content!.length).toBeGreaterThan(0);
    expect(['stop', 'length']).toContain(choice.finish_reason);
    const usage = completion.usage!;
    expect(usage.completion_tokens).toBeGreaterThan(0);
    expect(usage.completion_tokens).toBeLessThanOrEqual(20);
    expect(usage.total_tokens).toBe(usage.prompt_tokens + usage.completion_tokens);
  });

  it('streams the same text as the non-streaming greedy answer, then the usage chunk', async () => {
    const body = { model: 'stories260K', messages: ask, max_tokens: 30, temperature: 0, logit_bias: { [EOS]: -100 } };
    const whole = await client.chat.completions.create(body);
    const stream = await client.chat.completions.create({ ...body, stream: true, stream_options: { include_usage: true } });
    let text = '';
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | null | undefined;
    let roleSeen = false;
    for await (const chunk of stream) {
      expect(chunk.object).toBe('chat.completion.chunk');
      if (chunk.usage) usage = chunk.usage;
      for (const c of chunk.choices) {
        if (c.delta.role === 'assistant') roleSeen = true;
        text += c.delta.content ?? '';
        finish = c.finish_reason ?? finish;
      }
    }
    expect(roleSeen).toBe(true);
    expect(text).toBe(whole.choices[0].message.content);
    expect(finish).toBe('length');
    expect(usage).toEqual(whole.usage);
  });

  it('takes developer, tool and text-part messages', async () => {
    const completion = await client.chat.completions.create({
      model: 'stories260K', max_tokens: 4, temperature: 0,
      messages: [
        { role: 'developer', content: 'Be brief.' },
        { role: 'user', content: [{ type: 'text', text: 'Once upon' }, { type: 'text', text: ' a time' }] },
        { role: 'assistant', content: 'there was' },
        { role: 'tool', content: '42', tool_call_id: 'call_1' },
      ],
    });
    expect(completion.usage!.prompt_tokens).toBeGreaterThan(10);
  });

  it('runs the random 32000-token model too, with n samples', async () => {
    const completion = await client.chat.completions.create({ model: 'tiny-random', messages: ask, max_tokens: 8, n: 3, seed: 7 });
    expect(completion.choices.map((c) => c.index)).toEqual([0, 1, 2]);
    expect(completion.usage!.completion_tokens).toBeLessThanOrEqual(24);
  });

  it('gives logprobs in OpenAI\'s shape', async () => {
    const completion = await client.chat.completions.create({ model: 'stories260K', messages: ask, max_tokens: 5, temperature: 0, logprobs: true, top_logprobs: 3 });
    const content = completion.choices[0].logprobs!.content!;
    expect(content.length).toBe(completion.usage!.completion_tokens);
    for (const entry of content) {
      expect(typeof entry.token).toBe('string');
      expect(entry.bytes).toEqual([...Buffer.from(entry.token, 'utf8')]);
      expect(entry.logprob).toBeLessThanOrEqual(0);
      expect(entry.top_logprobs).toHaveLength(3);
      // Greedy: the chosen token is the most likely one.
      expect(entry.top_logprobs[0].logprob).toBeCloseTo(entry.logprob, 5);
    }
  });

  it('json_schema (strict) output parses and validates over several seeds', async () => {
    const schema = {
      type: 'object',
      properties: { name: { type: 'string', maxLength: 8 }, happy: { type: 'boolean' } },
      required: ['name', 'happy'],
      additionalProperties: false,
    };
    const validate = new Ajv().compile(schema);
    for (const seed of [1, 2, 3]) {
      const completion = await client.chat.completions.create({
        model: 'stories260K', messages: ask, max_tokens: 120, temperature: 1, seed,
        response_format: { type: 'json_schema', json_schema: { name: 'kid', schema, strict: true } },
      });
      const value: unknown = JSON.parse(completion.choices[0].message.content!);
      expect(validate(value), JSON.stringify(validate.errors)).toBe(true);
      expect(completion.choices[0].finish_reason).toBe('stop');
    }
  });
});

describe('completions, models, tokenize', () => {
  it('completes prompts, with echo, one choice per prompt', async () => {
    const completion = await client.completions.create({ model: 'stories260K', prompt: ['Once upon', 'The cat'], max_tokens: 6, temperature: 0, echo: true });
    expect(completion.object).toBe('text_completion');
    expect(completion.choices.map((c) => c.index)).toEqual([0, 1]);
    expect(completion.choices[0].text.startsWith('Once upon')).toBe(true);
    expect(completion.choices[1].text.startsWith('The cat')).toBe(true);
  });

  it('streams completions of several prompts, echo first, each choice finished', async () => {
    const stream = await client.completions.create({ model: 'stories260K', prompt: ['Once upon', 'The cat'], max_tokens: 5, temperature: 0, echo: true, stream: true });
    const texts = ['', ''];
    const finished: (string | null)[] = [null, null];
    for await (const chunk of stream) {
      for (const c of chunk.choices) {
        texts[c.index] += c.text;
        finished[c.index] = c.finish_reason ?? finished[c.index];
      }
    }
    const whole = await client.completions.create({ model: 'stories260K', prompt: ['Once upon', 'The cat'], max_tokens: 5, temperature: 0, echo: true });
    expect(texts).toEqual(whole.choices.map((c) => c.text));
    expect(finished).toEqual(whole.choices.map((c) => c.finish_reason));
  });

  it('gives legacy logprobs: tokens with their leading space, offsets into the text', async () => {
    const completion = await client.completions.create({ model: 'stories260K', prompt: 'Once', max_tokens: 3, temperature: 0, logprobs: 2 });
    const { text, logprobs } = completion.choices[0];
    expect(logprobs!.tokens!.join('')).toBe(text);
    expect(logprobs!.tokens![0]).toBe(' upon');
    expect(logprobs!.text_offset).toEqual([0, 5, 7]);
    expect(logprobs!.top_logprobs!.every((top) => Object.keys(top).length === 2)).toBe(true);
  });

  it('lists the models', async () => {
    const list = await client.models.list();
    expect(list.data.map((m) => m.id)).toEqual(['stories260K', 'tiny-random']);
    expect((await client.models.retrieve('tiny-random')).id).toBe('tiny-random');
  });

  it('tokenizes and detokenizes', async () => {
    const headers = { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' };
    const tokenized = await (await fetch(`${url}/tokenize`, { method: 'POST', headers, body: JSON.stringify({ content: 'Once upon a time' }) })).json() as { tokens: number[] };
    expect(tokenized.tokens).toEqual(models[0].tokenize('Once upon a time', { addSpecial: false }));
    const detokenized = await (await fetch(`${url}/detokenize`, { method: 'POST', headers, body: JSON.stringify({ tokens: tokenized.tokens }) })).json() as { content: string };
    expect(detokenized.content).toBe('Once upon a time');
  });
});

describe('errors and limits', () => {
  it('raises the client\'s typed errors: 401, 400, 404', async () => {
    const wrongKey = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'nope', maxRetries: 0 });
    await expect(wrongKey.models.list()).rejects.toBeInstanceOf(AuthenticationError);
    const badTemp = client.chat.completions.create({ model: 'stories260K', messages: ask, temperature: 5 });
    await expect(badTemp).rejects.toBeInstanceOf(BadRequestError);
    await expect(badTemp).rejects.toMatchObject({ param: 'temperature', type: 'invalid_request_error' });
    const missing = client.chat.completions.create({ model: 'stories260K' } as OpenAI.ChatCompletionCreateParamsNonStreaming);
    await expect(missing).rejects.toMatchObject({ status: 400, param: 'messages' });
    const badSchema = client.chat.completions.create({
      model: 'stories260K', messages: ask,
      response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'object', patternProperties: { '^a': {} } } } },
    });
    await expect(badSchema).rejects.toMatchObject({ status: 400, code: 'unsupported_schema' });
    const tools = client.chat.completions.create({ model: 'stories260K', messages: ask, tools: [{ type: 'function', function: { name: 'f' } }] });
    await expect(tools).rejects.toMatchObject({ status: 400, param: 'tools', code: 'unsupported_parameter' });
    const tooMany = client.chat.completions.create({ model: 'stories260K', messages: ask, max_tokens: 100_000 });
    await expect(tooMany).rejects.toMatchObject({ status: 400, param: 'max_tokens' });
    const unknown = client.chat.completions.create({ model: 'gpt-4o', messages: ask });
    await expect(unknown).rejects.toBeInstanceOf(NotFoundError);
    await expect(unknown).rejects.toMatchObject({ code: 'model_not_found' });
  });

  it('answers malformed JSON with 400 and an oversized body with 413, in OpenAI\'s error shape', async () => {
    const headers = { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' };
    const malformed = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers, body: '{"model": "stories260K", "messages": [' });
    expect(malformed.status).toBe(400);
    expect(await malformed.json()).toMatchObject({ error: { type: 'invalid_request_error' } });
    const huge = JSON.stringify({ model: 'stories260K', messages: [{ role: 'user', content: 'x'.repeat(100_000) }] });
    const oversized = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers, body: huge });
    expect(oversized.status).toBe(413);
    const body = await oversized.json() as { error: { message: string; type: string; param: unknown; code: unknown } };
    expect(Object.keys(body.error).sort()).toEqual(['code', 'message', 'param', 'type']);
  });

  it('answers 429 while the queue is full, and a disconnected stream frees the engine', async () => {
    const abort = new AbortController();
    const stream = await client.chat.completions.create(
      { model: 'stories260K', messages: ask, max_tokens: 400, temperature: 0, logit_bias: { [EOS]: -100 }, stream: true },
      { signal: abort.signal },
    );
    const iterator = stream[Symbol.asyncIterator]();
    await iterator.next(); // it runs now
    const second = client.chat.completions.create({ model: 'stories260K', messages: ask, max_tokens: 4 });
    await expect(second).rejects.toBeInstanceOf(RateLimitError);
    await expect(second).rejects.toMatchObject({ code: 'queue_full', type: 'rate_limit_error' });
    expect(((await second.catch((err: unknown) => err)) as RateLimitError).headers.get('retry-after')).toBe('1');
    abort.abort();
    await iterator.next().catch(() => undefined);
    // The engine notices the closed connection at its next token.
    for (let i = 0; i < 200 && server.engine.stats().running > 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(server.engine.stats()).toEqual({ queued: 0, running: 0 });
    const next = await client.chat.completions.create({ model: 'stories260K', messages: ask, max_tokens: 4 });
    expect(next.choices[0].message.content).toBeTypeOf('string');
  });

  it('a disconnected non-streaming request frees the engine too', async () => {
    const abort = new AbortController();
    const body = JSON.stringify({ model: 'stories260K', messages: ask, max_tokens: 500, temperature: 0, logit_bias: { [EOS]: -100 } });
    const pending = fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' }, body, signal: abort.signal });
    for (let i = 0; i < 200 && server.engine.stats().running === 0; i++) await new Promise((r) => setTimeout(r, 1));
    expect(server.engine.stats().running).toBe(1);
    abort.abort();
    await expect(pending).rejects.toThrow();
    for (let i = 0; i < 200 && server.engine.stats().running > 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(server.engine.stats()).toEqual({ queued: 0, running: 0 });
  });

  it('stops a request that runs past the timeout with 504', async () => {
    const quick = await createServer({ models: [{ name: 'stories260K', model: models[0] }], timeoutMs: 20, log: () => {} });
    try {
      const quickUrl = await quick.listen({ port: 0 });
      const response = await fetch(`${quickUrl}/v1/completions`, {
        method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'stories260K', prompt: 'Once', max_tokens: 510, n: 4, logit_bias: { [EOS]: -100 } }),
      });
      expect(response.status).toBe(504);
      expect(await response.json()).toMatchObject({ error: { type: 'timeout_error', code: 'timeout' } });
    } finally {
      await quick.close();
    }
  });

  it('serves /health without a key, /metrics with counters and histograms, and logs one JSON line per request', async () => {
    const health = await fetch(`${url}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: 'ok' });
    const metrics = await (await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${KEY}` } })).text();
    expect(metrics).toMatch(/smallmind_requests_total\{endpoint="\/v1\/chat\/completions",status="200"\} \d+/);
    expect(metrics).toMatch(/smallmind_generated_tokens_total [1-9]\d*/);
    expect(metrics).toMatch(/smallmind_time_to_first_token_seconds_count [1-9]/);
    expect(metrics).toMatch(/smallmind_inter_token_latency_seconds_bucket\{le="\+Inf"\} [1-9]/);
    expect(metrics).toContain('smallmind_queue_depth 0');
    const lines = logLines.map((line) => JSON.parse(line) as Record<string, unknown>);
    const chat = lines.find((l) => l.path === '/v1/chat/completions' && l.status === 200)!;
    expect(chat).toMatchObject({ model: 'stories260K', method: 'POST' });
    expect(chat.completion_tokens).toBeTypeOf('number');
    expect(chat.latency_ms).toBeTypeOf('number');
    expect(logLines.join('\n')).not.toContain(KEY);
  });
});
