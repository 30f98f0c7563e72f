/**
 * JSON Schemas of the request bodies, checked by fastify (ajv, no type coercion) before a route
 * runs: a wrong type or an out-of-range value is a 400 naming the field. Ranges are OpenAI's
 * where ours are as wide, else ours (n ≤ 64, top_logprobs ≤ 20). Unknown fields are ignored,
 * as OpenAI clients send some we do not use (user, store, metadata, ...).
 */
const nullable = (schema: object): object => ({ anyOf: [schema, { type: 'null' }] });

const stop = nullable({
  anyOf: [{ type: 'string', minLength: 1 }, { type: 'array', items: { type: 'string', minLength: 1 }, maxItems: 16 }],
});

/** The fields /v1/chat/completions and /v1/completions share. */
const samplingProperties = {
  model: { type: 'string', minLength: 1 },
  max_tokens: nullable({ type: 'integer', minimum: 0 }),
  temperature: nullable({ type: 'number', minimum: 0, maximum: 2 }),
  top_p: nullable({ type: 'number', exclusiveMinimum: 0, maximum: 1 }),
  n: nullable({ type: 'integer', minimum: 1, maximum: 64 }),
  stop,
  seed: nullable({ type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER }),
  presence_penalty: nullable({ type: 'number', minimum: -2, maximum: 2 }),
  frequency_penalty: nullable({ type: 'number', minimum: -2, maximum: 2 }),
  logit_bias: nullable({ type: 'object', additionalProperties: { type: 'number', minimum: -100, maximum: 100 } }),
  stream: nullable({ type: 'boolean' }),
  stream_options: nullable({ type: 'object', properties: { include_usage: { type: 'boolean' } } }),
  // llama.cpp's extras.
  top_k: { type: 'integer', minimum: 0 },
  min_p: { type: 'number', minimum: 0, maximum: 1 },
  repeat_penalty: { type: 'number', exclusiveMinimum: 0 },
  grammar: { type: 'string', minLength: 1 },
} as const;

const textPart = {
  type: 'object',
  required: ['type', 'text'],
  properties: { type: { const: 'text' }, text: { type: 'string' } },
};

const message = {
  type: 'object',
  required: ['role'],
  properties: {
    role: { enum: ['system', 'developer', 'user', 'assistant', 'tool'] },
    content: nullable({ anyOf: [{ type: 'string' }, { type: 'array', items: textPart }] }),
    name: { type: 'string' },
    tool_call_id: { type: 'string' },
  },
};

const responseFormat = {
  anyOf: [
    { type: 'object', required: ['type'], properties: { type: { enum: ['text', 'json_object'] } } },
    {
      type: 'object',
      required: ['type', 'json_schema'],
      properties: {
        type: { const: 'json_schema' },
        json_schema: {
          type: 'object',
          required: ['name'],
          properties: { name: { type: 'string', minLength: 1, maxLength: 64 }, schema: { type: 'object' }, strict: nullable({ type: 'boolean' }), description: { type: 'string' } },
        },
      },
    },
  ],
};

export const chatBodySchema = {
  type: 'object',
  required: ['model', 'messages'],
  properties: {
    ...samplingProperties,
    messages: { type: 'array', minItems: 1, items: message },
    max_completion_tokens: nullable({ type: 'integer', minimum: 0 }),
    logprobs: nullable({ type: 'boolean' }),
    top_logprobs: nullable({ type: 'integer', minimum: 0, maximum: 20 }),
    response_format: responseFormat,
  },
} as const;

export const completionBodySchema = {
  type: 'object',
  required: ['model', 'prompt'],
  properties: {
    ...samplingProperties,
    prompt: {
      anyOf: [
        { type: 'string' },
        { type: 'array', minItems: 1, items: { type: 'string' } },
        { type: 'array', minItems: 1, items: { type: 'integer', minimum: 0 } },
        { type: 'array', minItems: 1, items: { type: 'array', minItems: 1, items: { type: 'integer', minimum: 0 } } },
      ],
    },
    echo: nullable({ type: 'boolean' }),
    logprobs: nullable({ type: 'integer', minimum: 0, maximum: 5 }),
  },
} as const;

export const tokenizeBodySchema = {
  type: 'object',
  required: ['content'],
  properties: { content: { type: 'string' }, model: { type: 'string' }, add_special: { type: 'boolean' }, with_pieces: { type: 'boolean' } },
} as const;

export const detokenizeBodySchema = {
  type: 'object',
  required: ['tokens'],
  properties: { tokens: { type: 'array', items: { type: 'integer', minimum: 0 } }, model: { type: 'string' } },
} as const;
