/**
 * The public model object: a loaded network plus its tokenizer, with generation, streaming,
 * perplexity and low-level forward calls.
 */
import { fileURLToPath } from 'node:url';
import { createBackend } from './backend/index.js';
import type { Backend, BackendName } from './backend/backend.js';
import { RequestError } from './errors.js';
import { perplexity, type PerplexityResult } from './generation/perplexity.js';
import { Sampler, type SamplingOptions } from './generation/sampler.js';
import { loadLlamaWeights, modelConfig, modelTokenizer, openModelFile, type ModelFile } from './loader.js';
import { LlamaModel, type LlamaConfig } from './models/llama.js';
import type { CacheType } from './nn/kv-cache.js';
import type { EncodeOptions, Tokenizer } from './tokenizers/index.js';
import { applyChatTemplate, type ApplyChatTemplateOptions, type ChatMessage } from './tokenizers/chat-template.js';

/** The embedded default model: stories260K (a real TinyStories model, ~1 MB, MIT). */
export const DEFAULT_MODEL_PATH = fileURLToPath(new URL('../models/stories260K.gguf', import.meta.url));

export interface LoadOptions {
  /** 'wasm' (default) or 'reference' (slow plain TypeScript, for checking). */
  backend?: BackendName;
  /** Threads for the wasm backend; default: the available cores. */
  threads?: number;
  /** tokenizer.bin for llama2.c checkpoints (default: tokenizer.bin or tok<vocab>.bin beside the model). */
  tokenizer?: string;
  /** KV cache element type; 'f16' (default, as llama.cpp) halves its memory. */
  cacheType?: CacheType;
  /** Positions the KV cache holds; default min(the model's context length, 4096). */
  contextLength?: number;
  /** Most tokens evaluated in one batch (default 512). */
  batchSize?: number;
  /** Called as tensor bytes are read. */
  onProgress?: (loadedBytes: number, totalBytes: number) => void;
}

export interface GenerateOptions extends SamplingOptions {
  /** Tokens to generate at most (default 128). Generation also stops at EOS or a full context. */
  maxTokens?: number;
  /** Stop early when aborted; the result then has stopReason 'abort'. */
  signal?: AbortSignal;
}

export interface GenerateTimings {
  promptTokens: number;
  promptMs: number;
  prefillTokS: number;
  generatedTokens: number;
  decodeMs: number;
  decodeTokS: number;
}

export interface GenerateResult {
  text: string;
  tokens: number[];
  promptTokens: number[];
  stopReason: 'eos' | 'length' | 'abort';
  timings: GenerateTimings;
}

export interface TokenEvent {
  id: number;
  /** The text this token completes (empty while a multi-byte character is still incomplete). */
  text: string;
}

export interface ModelInfo {
  format: ModelFile['format'];
  architecture: string;
  fileSize: number;
  parameterCount: number;
  config: LlamaConfig;
  tensors: { name: string; dtype: string; shape: number[] }[];
  tokenizer: { model: string; vocabSize: number; bos: number; eos: number; addBos: boolean };
}

export async function loadModel(path: string = DEFAULT_MODEL_PATH, opts: LoadOptions = {}): Promise<Model> {
  const cacheType = opts.cacheType ?? 'f16';
  if (cacheType !== 'f32' && cacheType !== 'f16') {
    throw new RequestError('invalid_cache_type', 'cacheType', `must be f32 or f16, got ${String(cacheType)}`);
  }
  const file = openModelFile(path);
  const tokenizer = modelTokenizer(file, opts.tokenizer);
  const config = modelConfig(file, tokenizer.vocabSize);
  const contextLength = opts.contextLength ?? Math.min(config.context_length, 4096);
  if (!Number.isInteger(contextLength) || contextLength < 1) {
    throw new RequestError('invalid_context_length', 'contextLength', `must be a positive integer, got ${opts.contextLength}`);
  }
  const batchSize = opts.batchSize ?? 512;
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new RequestError('invalid_batch_size', 'batchSize', `must be a positive integer, got ${opts.batchSize}`);
  }
  const backend = await createBackend({ backend: opts.backend, threads: opts.threads });
  try {
    const weights = loadLlamaWeights(backend, file, config, opts.onProgress);
    const net = new LlamaModel(backend, config, weights, { cacheType, contextLength, maxBatch: batchSize });
    return new Model(path, file, net, tokenizer, backend);
  } catch (err) {
    backend.dispose();
    throw err;
  }
}

export class Model {
  readonly info: ModelInfo;

  constructor(
    readonly path: string,
    file: ModelFile,
    private readonly net: LlamaModel,
    readonly tokenizer: Tokenizer,
    readonly backend: Backend,
  ) {
    this.info = {
      format: file.format,
      architecture: 'llama',
      fileSize: file.fileSize,
      parameterCount: file.tensors.reduce((sum, t) => sum + t.shape.reduce((a, b) => a * b, 1), 0),
      config: net.config,
      tensors: file.tensors.map((t) => ({ name: t.name, dtype: t.dtype ?? `ggml type ${t.ggmlType}`, shape: t.shape })),
      tokenizer: { model: tokenizer.model, vocabSize: tokenizer.vocabSize, bos: tokenizer.bos, eos: tokenizer.eos, addBos: tokenizer.addBos },
    };
  }

  /** The network itself, for decoders that drive it directly (several sequences, beams, drafts). */
  get network(): LlamaModel {
    return this.net;
  }

  /** Positions the KV cache holds: prompt plus generated tokens must fit. */
  get contextLength(): number {
    return this.net.cache.length;
  }

  tokenize(text: string, opts?: EncodeOptions): number[] {
    return this.tokenizer.encode(text, opts);
  }

  detokenize(ids: readonly number[]): string {
    return this.tokenizer.decode(ids);
  }

  /**
   * Run tokens at positions pos, pos+1, ... (filling the KV cache from pos on) and return a copy
   * of the last token's logits. Attention reads cache positions up to the current one only, so
   * starting again at 0 needs no reset.
   */
  forward(tokens: readonly number[], pos: number): Float32Array {
    return this.net.forward(tokens, pos).f32().slice();
  }

  async generate(prompt: string | readonly number[], opts: GenerateOptions = {}): Promise<GenerateResult> {
    const stream = this.stream(prompt, opts);
    for (;;) {
      const next = await stream.next();
      if (next.done) return next.value;
    }
  }

  /** Yield tokens as they are generated; the generator's return value is the full result. */
  async *stream(prompt: string | readonly number[], opts: GenerateOptions = {}): AsyncGenerator<TokenEvent, GenerateResult> {
    const maxTokens = opts.maxTokens ?? 128;
    if (!Number.isInteger(maxTokens) || maxTokens < 0) {
      throw new RequestError('invalid_max_tokens', 'maxTokens', `must be a non-negative integer, got ${opts.maxTokens}`);
    }
    const sampler = new Sampler(opts);
    // Prompts may hold special tokens written out (a rendered chat template does), so they are parsed.
    const promptTokens = typeof prompt === 'string' ? this.tokenize(prompt, { parseSpecial: true }) : [...prompt];
    if (promptTokens.length === 0) throw new RequestError('empty_prompt', 'prompt', 'no tokens to start from (empty prompt without BOS)');
    if (promptTokens.length >= this.contextLength) {
      throw new RequestError('prompt_too_long', 'prompt', `${promptTokens.length} tokens do not fit the context of ${this.contextLength}`);
    }
    const decoder = this.tokenizer.createStreamDecoder();
    const tokens: number[] = [];
    let text = '';
    let stopReason: GenerateResult['stopReason'] = 'length';

    let start = performance.now();
    let logits = this.net.forward(promptTokens, 0).f32();
    const promptMs = performance.now() - start;
    let decodeMs = 0;
    let decodeCalls = 0;
    let pos = promptTokens.length;
    while (tokens.length < maxTokens) {
      if (opts.signal?.aborted) {
        stopReason = 'abort';
        break;
      }
      const id = sampler.sample(logits);
      if (this.tokenizer.endOfGeneration.has(id)) {
        stopReason = 'eos';
        break;
      }
      tokens.push(id);
      const piece = decoder.push(id);
      text += piece;
      yield { id, text: piece };
      if (tokens.length === maxTokens || pos >= this.contextLength) break;
      start = performance.now();
      logits = this.net.forward([id], pos++).f32();
      decodeMs += performance.now() - start;
      decodeCalls++;
      await new Promise((resolve) => setImmediate(resolve)); // let timers and I/O run between tokens
    }
    text += decoder.flush();
    return {
      text,
      tokens,
      promptTokens,
      stopReason,
      timings: {
        promptTokens: promptTokens.length,
        promptMs,
        prefillTokS: (promptTokens.length / promptMs) * 1000,
        generatedTokens: tokens.length,
        decodeMs,
        decodeTokS: decodeCalls ? (decodeCalls / decodeMs) * 1000 : 0,
      },
    };
  }

  /** llama.cpp's perplexity over `text` (tokenized with BOS, special tokens not parsed). */
  async perplexity(
    text: string,
    opts: { ctxSize: number; onChunk?: (chunk: { index: number; nll: number; ppl: number }) => void },
  ): Promise<PerplexityResult> {
    const ctx = opts.ctxSize;
    if (!Number.isInteger(ctx) || ctx > this.contextLength) {
      throw new RequestError('invalid_ctx_size', 'ctxSize', `must be an integer ≤ the context length ${this.contextLength}, got ${ctx}`);
    }
    const tokens = this.tokenize(text);
    const vocab = this.net.config.vocab_size;
    const batch = this.net.options.maxBatch;
    return perplexity(tokens, ctx, this.tokenizer.bos, (chunk) => {
      const all = new Float32Array(chunk.length * vocab);
      for (let start = 0; start < chunk.length; start += batch) {
        const part = chunk.slice(start, start + batch);
        all.set(this.net.forward(part, start, true).f32(), start * vocab);
      }
      return all;
    }, (index, c) => opts.onChunk?.({ index, ...c }));
  }

  /** Free the weights, the cache and the backend's threads. */
  dispose(): void {
    this.net.dispose();
    this.backend.dispose();
  }

  /**
   * A conversation as prompt text, rendered by the model's chat template (GGUF
   * tokenizer.chat_template; chatml when it has none) or the one in `opts.template` (a built-in's
   * name or Jinja text). To generate from it, tokenize with { addSpecial: false, parseSpecial: true }:
   * the template writes BOS itself.
   */
  applyChatTemplate(messages: readonly ChatMessage[], opts: ApplyChatTemplateOptions = {}): string {
    return applyChatTemplate(this.tokenizer, messages, opts, this.path);
  }
}
