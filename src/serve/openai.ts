/**
 * OpenAI's API shapes, mapped to and from the engine's: request bodies (already schema-checked,
 * see schemas.ts) to prompt tokens + GenerateOptions, results and token events to
 * chat.completion / text_completion objects and their streaming chunks. Nothing here does I/O.
 *
 * Unset sampling fields keep the library's defaults (llama.cpp's: temperature 0.8, top_k 40, ...),
 * as llama.cpp's server does, not OpenAI's temperature 1.
 */
import { RequestError } from '../errors.js';
import type { GenerateChoice, GenerateOptions, GenerateResult, Model, StopReason, TokenEvent, TokenLogprobs } from '../model.js';
import type { ChatMessage } from '../tokenizers/chat-template.js';

/** The sampling fields both endpoints share (OpenAI's names, plus llama.cpp's extras). */
export interface SamplingBody {
  model: string;
  max_tokens?: number | null;
  temperature?: number | null;
  top_p?: number | null;
  n?: number | null;
  stop?: string | string[] | null;
  seed?: number | null;
  presence_penalty?: number | null;
  frequency_penalty?: number | null;
  logit_bias?: Record<string, number> | null;
  stream?: boolean | null;
  stream_options?: { include_usage?: boolean } | null;
  top_k?: number;
  min_p?: number;
  repeat_penalty?: number;
  grammar?: string;
}

type ContentPart = { type: 'text'; text: string };

export interface ChatBody extends SamplingBody {
  messages: { role: string; content?: string | ContentPart[] | null; [field: string]: unknown }[];
  max_completion_tokens?: number | null;
  logprobs?: boolean | null;
  top_logprobs?: number | null;
  response_format?: { type: 'text' } | { type: 'json_object' } | { type: 'json_schema'; json_schema: { name: string; schema?: unknown; strict?: boolean | null } };
}

export interface CompletionBody extends SamplingBody {
  prompt: string | string[] | number[] | number[][];
  echo?: boolean | null;
  logprobs?: number | null;
}

/** What to run: the prompt(s) as tokens and the options for model.stream. */
export interface PreparedRequest {
  prompts: number[][];
  options: GenerateOptions;
}

/** The options both endpoints share; maxTokens defaults to what the context has left. */
function samplingOptions(body: SamplingBody, model: Model, maxTokens: number | null | undefined, promptLength: number, promptParam: string): GenerateOptions {
  const context = model.contextLength;
  if (promptLength >= context) {
    throw new RequestError('context_length_exceeded', promptParam, `the prompt's ${promptLength} tokens do not fit the context of ${context}`);
  }
  if (maxTokens != null && maxTokens > context) {
    throw new RequestError('invalid_max_tokens', 'max_tokens', `${maxTokens} is more than the context of ${context} tokens`);
  }
  const options: GenerateOptions = {
    maxTokens: maxTokens ?? context - promptLength,
    temperature: body.temperature ?? undefined,
    topP: body.top_p ?? undefined,
    topK: body.top_k,
    minP: body.min_p,
    repeatPenalty: body.repeat_penalty,
    presencePenalty: body.presence_penalty ?? undefined,
    frequencyPenalty: body.frequency_penalty ?? undefined,
    n: body.n ?? undefined,
    seed: body.seed ?? undefined,
    stop: body.stop == null ? undefined : typeof body.stop === 'string' ? [body.stop] : body.stop,
    logitBias: body.logit_bias ? logitBias(body.logit_bias, model.tokenizer.vocabSize) : undefined,
    grammar: body.grammar,
  };
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as GenerateOptions;
}

/** OpenAI's logit_bias: token ids as keys, -100..100 (the schema checks the range). */
function logitBias(bias: Record<string, number>, vocabSize: number): Record<number, number> {
  const out: Record<number, number> = {};
  for (const [key, value] of Object.entries(bias)) {
    const id = Number(key);
    if (!/^\d+$/.test(key) || id >= vocabSize) throw new RequestError('invalid_logit_bias', 'logit_bias', `"${key}" is not a token id below ${vocabSize}`);
    out[id] = value;
  }
  return out;
}

/** The text of a message's content: a string, or text parts joined. */
function contentText(content: ChatBody['messages'][number]['content']): string | null | undefined {
  if (!Array.isArray(content)) return content;
  return content.map((part) => part.text).join('');
}

export function prepareChat(body: ChatBody, model: Model): PreparedRequest {
  if (body.grammar !== undefined && body.response_format && body.response_format.type !== 'text') {
    throw new RequestError('conflicting_options', 'grammar', 'cannot be combined with response_format');
  }
  // Templates know system, user, assistant and tool; OpenAI's developer role is the system prompt.
  const messages: ChatMessage[] = body.messages.map((m) => ({ ...m, role: m.role === 'developer' ? 'system' : m.role, content: contentText(m.content) }));
  const prompt = model.chatPromptTokens(model.applyChatTemplate(messages, { addGenerationPrompt: true }));
  const options = samplingOptions(body, model, body.max_completion_tokens ?? body.max_tokens, prompt.length, 'messages');
  if (body.top_logprobs != null && !body.logprobs) throw new RequestError('invalid_top_logprobs', 'top_logprobs', 'needs logprobs: true');
  if (body.logprobs) options.logprobs = body.top_logprobs ?? 0;
  const format = body.response_format;
  if (format?.type === 'json_object') options.jsonObject = true;
  if (format?.type === 'json_schema') options.jsonSchema = format.json_schema.schema ?? {};
  return { prompts: [prompt], options };
}

export function prepareCompletion(body: CompletionBody, model: Model): PreparedRequest {
  const prompts = completionPrompts(body.prompt, model);
  const longest = Math.max(...prompts.map((p) => p.length));
  const options = samplingOptions(body, model, body.max_tokens, longest, 'prompt');
  if (body.logprobs != null) options.logprobs = body.logprobs;
  return { prompts, options };
}

/** A string, strings, token ids or lists of token ids: each a prompt of its own. */
function completionPrompts(prompt: CompletionBody['prompt'], model: Model): number[][] {
  const list: (string | number[])[] = typeof prompt === 'string' ? [prompt] : prompt.length > 0 && typeof prompt[0] === 'number' ? [prompt as number[]] : (prompt as (string | number[])[]);
  if (list.length === 0) throw new RequestError('empty_prompt', 'prompt', 'no prompt given');
  return list.map((p) => {
    const ids = typeof p === 'string' ? model.tokenize(p, { parseSpecial: true }) : p;
    const bad = ids.find((id) => id >= model.tokenizer.vocabSize);
    if (bad !== undefined) throw new RequestError('invalid_prompt', 'prompt', `token id ${bad} is not below the vocabulary size ${model.tokenizer.vocabSize}`);
    if (ids.length === 0) throw new RequestError('empty_prompt', 'prompt', 'a prompt has no tokens');
    return ids;
  });
}

export type FinishReason = 'stop' | 'length';

/** EOS, a finished constraint and a stop string are 'stop'; the token limit (and a cancelled run) 'length'. */
export function finishReason(reason: StopReason): FinishReason {
  return reason === 'eos' || reason === 'stop' ? 'stop' : 'length';
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export function usageOf(promptTokens: number, results: readonly GenerateResult[]): Usage {
  const completion = results.reduce((sum, r) => sum + r.choices.reduce((s, c) => s + c.tokens.length, 0), 0);
  return { prompt_tokens: promptTokens, completion_tokens: completion, total_tokens: promptTokens + completion };
}

/**
 * A token's own text, its leading space kept (decode() drops it at the start of a text; a fresh
 * stream decoder does not). A byte token alone is an unfinished character: U+FFFD.
 */
export function pieceText(model: Model, id: number): string {
  const decoder = model.tokenizer.createStreamDecoder();
  return decoder.push(id) + decoder.flush();
}

/** One token's text and UTF-8 bytes as OpenAI reports them. */
function tokenPiece(model: Model, id: number): { token: string; bytes: number[] } {
  const token = pieceText(model, id);
  return { token, bytes: [...Buffer.from(token, 'utf8')] };
}

/** Chat logprobs: the model's own log-probabilities (before sampling), as OpenAI reports them. */
export function chatLogprobs(model: Model, logprobs: readonly TokenLogprobs[]): { content: unknown[]; refusal: null } {
  return {
    content: logprobs.map((lp) => ({
      ...tokenPiece(model, lp.id),
      logprob: lp.raw.logprob,
      top_logprobs: lp.raw.top.map((alt) => ({ ...tokenPiece(model, alt.id), logprob: alt.logprob })),
    })),
    refusal: null,
  };
}

/** Legacy completions logprobs: parallel lists, alternatives as {token: logprob}. */
export function completionLogprobs(model: Model, logprobs: readonly TokenLogprobs[], startOffset: number): unknown {
  const tokens = logprobs.map((lp) => pieceText(model, lp.id));
  let offset = startOffset;
  const textOffset = tokens.map((t) => {
    const at = offset;
    offset += t.length;
    return at;
  });
  return {
    tokens,
    token_logprobs: logprobs.map((lp) => lp.raw.logprob),
    top_logprobs: logprobs.map((lp) => Object.fromEntries(lp.raw.top.map((alt) => [pieceText(model, alt.id), alt.logprob]))),
    text_offset: textOffset,
  };
}

export interface ResponseIds {
  id: string;
  created: number;
  model: string;
}

export function chatCompletion(ids: ResponseIds, model: Model, result: GenerateResult): unknown {
  return {
    id: ids.id,
    object: 'chat.completion',
    created: ids.created,
    model: ids.model,
    choices: result.choices.map((c) => ({
      index: c.index,
      message: { role: 'assistant', content: c.text, refusal: null },
      logprobs: c.logprobs ? chatLogprobs(model, c.logprobs) : null,
      finish_reason: finishReason(c.stopReason),
    })),
    usage: usageOf(result.promptTokens.length, [result]),
    system_fingerprint: null,
  };
}

export interface CompletionChoiceInput {
  /** Index across prompts: prompt p's sample i is p * n + i. */
  index: number;
  choice: GenerateChoice;
  promptText: string;
}

export function textCompletion(ids: ResponseIds, model: Model, choices: readonly CompletionChoiceInput[], usage: Usage, echo: boolean): unknown {
  return {
    id: ids.id,
    object: 'text_completion',
    created: ids.created,
    model: ids.model,
    choices: choices.map(({ index, choice, promptText }) => ({
      index,
      text: echo ? promptText + choice.text : choice.text,
      logprobs: choice.logprobs ? completionLogprobs(model, choice.logprobs, echo ? promptText.length : 0) : null,
      finish_reason: finishReason(choice.stopReason),
    })),
    usage,
    system_fingerprint: null,
  };
}

/** Streaming chunks, one builder per endpoint. */
export interface ChunkWriter {
  /** The chunks a token event makes (none when it releases no text and has no logprobs). */
  event(event: TokenEvent, index: number): unknown[];
  /** A choice's last chunk, with its finish reason. */
  finish(index: number, reason: StopReason): unknown;
  /** The usage chunk (stream_options.include_usage): no choices. */
  usage(usage: Usage): unknown;
  /** A chunk before any token (chat: the role). */
  start?(index: number): unknown;
}

export function chatChunks(ids: ResponseIds, model: Model, includeUsage: boolean): ChunkWriter {
  const chunk = (choices: unknown[], extra: object = {}): unknown => ({
    id: ids.id, object: 'chat.completion.chunk', created: ids.created, model: ids.model, system_fingerprint: null, choices,
    ...(includeUsage && { usage: null }), ...extra,
  });
  return {
    start: (index) => chunk([{ index, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }]),
    event: (event, index) => {
      if (event.text === '' && !event.logprobs) return [];
      const logprobs = event.logprobs ? chatLogprobs(model, [event.logprobs]) : null;
      return [chunk([{ index, delta: { content: event.text }, logprobs, finish_reason: null }])];
    },
    finish: (index, reason) => chunk([{ index, delta: {}, logprobs: null, finish_reason: finishReason(reason) }]),
    usage: (usage) => chunk([], { usage }),
  };
}

export function completionChunks(ids: ResponseIds, model: Model, includeUsage: boolean): ChunkWriter {
  const chunk = (choices: unknown[], extra: object = {}): unknown => ({
    id: ids.id, object: 'text_completion', created: ids.created, model: ids.model, system_fingerprint: null, choices,
    ...(includeUsage && { usage: null }), ...extra,
  });
  return {
    event: (event, index) => {
      if (event.text === '' && !event.logprobs) return [];
      const logprobs = event.logprobs ? completionLogprobs(model, [event.logprobs], 0) : null;
      return [chunk([{ index, text: event.text, logprobs, finish_reason: null }])];
    },
    finish: (index, reason) => chunk([{ index, text: '', logprobs: null, finish_reason: finishReason(reason) }]),
    usage: (usage) => chunk([], { usage }),
  };
}
