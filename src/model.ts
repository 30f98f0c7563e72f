/**
 * The public model object: a loaded network plus its tokenizer, with generation, streaming,
 * perplexity and low-level forward calls.
 */
import { fileURLToPath } from 'node:url';
import { createBackend } from './backend/index.js';
import type { Backend, BackendChoice } from './backend/backend.js';
import { RequestError } from './errors.js';
import { perplexity, type PerplexityResult } from './generation/perplexity.js';
import { logprobOf, randomSeed, Sampler, topLogprobs, type Distribution, type SamplingOptions } from './generation/sampler.js';
import { beamSearch, type BeamHypothesis, type EarlyStopping } from './generation/beam.js';
import { speculativeStream, type PromptLookupOptions, type SpeculativeStats } from './generation/speculative.js';
import { checkStops, StopMatcher } from './generation/stop.js';
import type { TokenConstraint } from './generation/constraint.js';
import { grammarConstraint, JSON_OBJECT_GBNF, jsonSchemaToGbnf, regexToGbnf } from './generation/grammar/index.js';
import { checkModelFits, loadNetwork, modelArchConfig, modelTokenizer, openModelFile, type ModelFile } from './loader.js';
import { kvWidth, type ArchConfig } from './models/index.js';
import type { Network } from './nn/decoder.js';
import { checkCacheType, kvCacheBytes, type CacheType, type KVCache } from './nn/kv-cache.js';
import type { EncodeOptions, StreamDecoder, Tokenizer } from './tokenizers/index.js';
import { applyChatTemplate, type ApplyChatTemplateOptions, type ChatMessage } from './tokenizers/chat-template.js';

/** The embedded default model: stories260K (a real TinyStories model, ~1 MB, MIT). */
export const DEFAULT_MODEL_PATH = fileURLToPath(new URL('../models/stories260K.gguf', import.meta.url));

export interface LoadOptions {
  /**
   * 'auto' (default: 'native' where its addon is built and the CPU has AVX2 + FMA, else 'wasm';
   * SMALLMIND_BACKEND overrides it), 'native', 'wasm' or 'reference' (slow plain TypeScript, for checking).
   */
  backend?: BackendChoice;
  /** Threads for the wasm and native backends; default: the available cores. */
  threads?: number;
  /** tokenizer.bin for llama2.c checkpoints (default: tokenizer.bin or tok<vocab>.bin beside the model). */
  tokenizer?: string;
  /** KV cache element type: 'f16' (default, as llama.cpp) halves its memory, 'q8_0' takes 53% of that. */
  cacheType?: CacheType;
  /** Positions the KV cache holds; default min(the model's context length, 4096). */
  contextLength?: number;
  /** Most tokens evaluated in one batch (default 512). */
  batchSize?: number;
  /** Called as tensor bytes are read. */
  onProgress?: (loadedBytes: number, totalBytes: number) => void;
}

export interface GenerateOptions extends SamplingOptions {
  /** Tokens to generate at most, per sample (default 128). Generation also stops at EOS or a full context. */
  maxTokens?: number;
  /** Stop early when aborted; the result then has stopReason 'abort'. */
  signal?: AbortSignal;
  /**
   * End a sample where its text contains one of these (at most 16). The text stops before the
   * stop string; `tokens` keeps every token generated, including those that spelled it.
   */
  stop?: readonly string[];
  /** Per generated token, its log-probability and the N most likely alternatives (0..100), raw and processed. */
  logprobs?: number;
  /**
   * Independent samples of one prompt (1..64, default 1), sharing its prefill: sample i draws with
   * seed + i and its own copy of the constraint, so it equals a single run with that seed.
   */
  n?: number;
  /** Constrain the output to a GBNF grammar (llama.cpp's syntax; the rule `root` is the start). */
  grammar?: string;
  /** Constrain the output to JSON valid under this JSON Schema (unsupported keywords are rejected up front). */
  jsonSchema?: unknown;
  /** Constrain the output to any JSON object (OpenAI's json_object mode). */
  jsonObject?: boolean;
  /** Constrain the whole output to match this regular expression (a documented subset). */
  regex?: string;
  /**
   * Speculative decoding with a draft model: another loaded Model with the same vocabulary
   * (e.g. a quantized copy) proposes up to `draftMax` tokens per step and this model checks them
   * in one batch. The output follows this model's distribution exactly (greedy: the same tokens).
   */
  draftModel?: Model;
  /** Speculative decoding without a draft model: proposals copied from earlier text (n-gram lookup). */
  promptLookup?: boolean | PromptLookupOptions;
  /** Tokens proposed per speculative step at most (default 8). */
  draftMax?: number;
  /** Beam search with this many beams (> 1): deterministic, on the model's raw log-probabilities. */
  numBeams?: number;
  /** Beam scores are logprob / length^lengthPenalty (default 1, as in Hugging Face). */
  lengthPenalty?: number;
  /** Beam search stops when numBeams hypotheses are done (true), by HF's heuristic (false, default), or at maxTokens ('never'). */
  earlyStopping?: EarlyStopping;
}

/** Options of `model.chat`: generation options plus what the chat template reads. */
export interface ChatOptions extends GenerateOptions, Pick<ApplyChatTemplateOptions, 'tools' | 'documents' | 'template' | 'now'> {}

export interface GenerateTimings {
  promptTokens: number;
  promptMs: number;
  prefillTokS: number;
  /** Over all samples. */
  generatedTokens: number;
  decodeMs: number;
  decodeTokS: number;
}

/** eos: an end-of-generation token (or a finished constraint); stop: a stop string; length: maxTokens or the context; abort: the signal. */
export type StopReason = 'eos' | 'length' | 'stop' | 'abort';

export interface TokenLogprob {
  id: number;
  logprob: number;
}

/**
 * One generated token's log-probabilities. `raw`: under softmax of the model's logits. `processed`:
 * under the distribution the token was drawn from (after bias, penalties, constraint, truncation
 * and temperature; greedy: the chosen token with logprob 0); tokens outside it have -Infinity
 * (null in JSON). `top`: the N most likely tokens of that distribution, most likely first.
 */
export interface TokenLogprobs {
  id: number;
  raw: { logprob: number; top: TokenLogprob[] };
  processed: { logprob: number; top: TokenLogprob[] };
}

/** One sample's outcome. */
export interface GenerateChoice {
  index: number;
  /** The seed its sampler drew with. */
  seed: number;
  text: string;
  tokens: number[];
  stopReason: StopReason;
  /** The stop string that ended it (stopReason 'stop'). */
  stopSequence?: string;
  /** One entry per token in `tokens` (with the `logprobs` option). */
  logprobs?: TokenLogprobs[];
}

/** The first sample's fields at the top level, every sample (n of them) in `choices`. */
export interface GenerateResult extends Omit<GenerateChoice, 'index'> {
  promptTokens: number[];
  choices: GenerateChoice[];
  timings: GenerateTimings;
  /** With speculative decoding: rounds, drafted and accepted tokens, acceptance rate. */
  speculative?: SpeculativeStats;
  /** With beam search: the finished and running hypotheses, best first. */
  beams?: BeamHypothesis[];
}

export interface TokenEvent {
  /** Which sample (0 with n = 1). */
  index: number;
  /** The token generated; null for a last event that only releases text held back at the end. */
  id: number | null;
  /**
   * The text released now: empty while a multi-byte character is incomplete or while the text
   * may still become a stop string. The events' texts of a sample add up to its final text.
   */
  text: string;
  /** With the `logprobs` option. */
  logprobs?: TokenLogprobs;
}

export interface ModelInfo {
  format: ModelFile['format'];
  architecture: ArchConfig['architecture'];
  fileSize: number;
  parameterCount: number;
  config: ArchConfig['config'];
  tensors: { name: string; dtype: string; shape: number[] }[];
  tokenizer: { model: string; vocabSize: number; bos: number; eos: number; addBos: boolean };
}

export async function loadModel(path: string = DEFAULT_MODEL_PATH, opts: LoadOptions = {}): Promise<Model> {
  const cacheType = opts.cacheType ?? 'f16';
  checkCacheType(cacheType);
  const file = openModelFile(path);
  const tokenizer = modelTokenizer(file, opts.tokenizer);
  const arch = modelArchConfig(file, tokenizer.vocabSize);
  const { config } = arch;
  checkCacheType(cacheType, kvWidth(arch), path);
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
    const kvBytes = kvCacheBytes(cacheType, config.block_count, contextLength, kvWidth(arch));
    checkModelFits(backend, file, arch, { bytes: kvBytes, what: `the ${cacheType} KV cache of ${contextLength} positions` });
    const net = loadNetwork(backend, file, arch, { cacheType, contextLength, maxBatch: batchSize }, opts.onProgress);
    return new Model(path, file, arch, net, tokenizer, backend);
  } catch (err) {
    backend.dispose();
    throw err;
  }
}

export class Model {
  readonly info: ModelInfo;
  /** Draft models whose vocabulary was found equal to this model's. */
  private readonly sameVocabulary = new WeakSet<Model>();

  constructor(
    readonly path: string,
    file: ModelFile,
    arch: ArchConfig,
    private readonly net: Network,
    readonly tokenizer: Tokenizer,
    readonly backend: Backend,
  ) {
    this.info = {
      format: file.format,
      architecture: arch.architecture,
      fileSize: file.fileSize,
      parameterCount: file.tensors.reduce((sum, t) => sum + t.shape.reduce((a, b) => a * b, 1), 0),
      config: arch.config,
      tensors: file.tensors.map((t) => ({ name: t.name, dtype: t.dtype ?? `ggml type ${t.ggmlType}`, shape: t.shape })),
      tokenizer: { model: tokenizer.model, vocabSize: tokenizer.vocabSize, bos: tokenizer.bos, eos: tokenizer.eos, addBos: tokenizer.addBos },
    };
  }

  /** The network itself, for decoders that drive it directly (several sequences, beams, drafts). */
  get network(): Network {
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

  /**
   * Yield tokens as they are generated (with n samples, interleaved: one token of each in turn);
   * the generator's return value is the full result.
   */
  async *stream(prompt: string | readonly number[], opts: GenerateOptions = {}): AsyncGenerator<TokenEvent, GenerateResult> {
    const maxTokens = opts.maxTokens ?? 128;
    if (!Number.isInteger(maxTokens) || maxTokens < 0) {
      throw new RequestError('invalid_max_tokens', 'maxTokens', `must be a non-negative integer, got ${opts.maxTokens}`);
    }
    const stops = checkStops(opts.stop);
    const topN = checkIntegerOption(opts.logprobs, 'logprobs', 0, 100);
    const n = checkIntegerOption(opts.n, 'n', 1, 64) ?? 1;
    const seed = opts.seed ?? randomSeed();
    const context = { eog: this.tokenizer.endOfGeneration, vocabSize: this.net.config.vocab_size };
    const constraint = this.constraintFor(opts);
    // Clone the constraint for every sample before the first one advances it.
    const samplers = Array.from({ length: n }, (_, i) =>
      new Sampler({ ...opts, seed: seed + i, constraint: i === 0 ? constraint : constraint?.clone() }, context));
    // Prompts may hold special tokens written out (a rendered chat template does), so they are parsed.
    const promptTokens = typeof prompt === 'string' ? this.tokenize(prompt, { parseSpecial: true }) : [...prompt];
    if (promptTokens.length === 0) throw new RequestError('empty_prompt', 'prompt', 'no tokens to start from (empty prompt without BOS)');
    if (promptTokens.length >= this.contextLength) {
      throw new RequestError('prompt_too_long', 'prompt', `${promptTokens.length} tokens do not fit the context of ${this.contextLength}`);
    }

    if (opts.draftModel || opts.promptLookup) return yield* this.streamSpeculative(promptTokens, samplers[0], stops, maxTokens, opts);
    if (opts.numBeams !== undefined && opts.numBeams !== 1) return yield* this.streamBeams(promptTokens, samplers[0], stops, maxTokens, opts);

    let start = performance.now();
    const promptLogits = this.net.forward(promptTokens, 0).f32().slice();
    const promptMs = performance.now() - start;
    let decodeMs = 0;
    let decodeCalls = 0;
    const samples: SampleRun[] = [];
    try {
      for (const [i, sampler] of samplers.entries()) {
        // Sample 0 continues in the model's cache; the others in copies of its prompt rows.
        const cache = i === 0 ? this.net.cache : this.net.createCache();
        if (i > 0) cache.copyFrom(this.net.cache, promptTokens.length);
        samples.push(new SampleRun(i, sampler, cache, promptTokens, promptLogits, this.tokenizer.createStreamDecoder(), stops));
      }
      for (let active = samples; active.length > 0; active = samples.filter((s) => !s.stopReason)) {
        for (const s of active) {
          const tail = (reason: StopReason): TokenEvent[] => s.finish(reason);
          if (opts.signal?.aborted) {
            yield* tail('abort');
            continue;
          }
          if (s.tokens.length >= maxTokens) {
            yield* tail('length');
            continue;
          }
          const distribution = s.sampler.distribution(s.logits, s.history);
          const id = s.sampler.draw(distribution);
          if (this.tokenizer.endOfGeneration.has(id)) {
            yield* tail('eos');
            continue;
          }
          const event = s.push(id, topN === undefined ? undefined : tokenLogprobs(s.logits, distribution, id, topN));
          yield event;
          if (s.stopReason) continue; // a stop string
          if (s.sampler.constraint?.finished) {
            yield* tail('eos');
            continue;
          }
          if (s.tokens.length === maxTokens || s.pos >= this.contextLength) {
            yield* tail('length');
            continue;
          }
          start = performance.now();
          s.logits = this.net.forward([id], s.pos++, false, s.cache).f32().slice();
          decodeMs += performance.now() - start;
          decodeCalls++;
        }
        await new Promise((resolve) => setImmediate(resolve)); // let timers and I/O run between tokens
      }
    } finally {
      for (const s of samples) if (s.cache !== this.net.cache) s.cache.free();
    }
    const choices = samples.map((s) => s.choice(topN !== undefined));
    const { index: _first, ...first } = choices[0];
    const generatedTokens = choices.reduce((sum, c) => sum + c.tokens.length, 0);
    return {
      ...first,
      promptTokens,
      choices,
      timings: {
        promptTokens: promptTokens.length,
        promptMs,
        prefillTokS: (promptTokens.length / promptMs) * 1000,
        generatedTokens,
        decodeMs,
        decodeTokS: decodeCalls ? (decodeCalls / decodeMs) * 1000 : 0,
      },
    };
  }

  /** Speculative decoding (a draft model or prompt lookup) of one sample; see GenerateOptions.draftModel. */
  private async *streamSpeculative(
    promptTokens: number[], sampler: Sampler, stops: readonly string[], maxTokens: number, opts: GenerateOptions,
  ): AsyncGenerator<TokenEvent, GenerateResult> {
    rejectWith(opts, 'speculative decoding', ['n', 'logprobs', ...CONSTRAINT_OPTION_NAMES, 'mirostat', 'numBeams']);
    if (opts.draftModel && opts.promptLookup) {
      throw new RequestError('conflicting_options', 'promptLookup', 'give either draftModel or promptLookup, not both');
    }
    const draft = opts.draftModel ? this.checkDraft(opts.draftModel).net : { promptLookup: opts.promptLookup === true ? {} : (opts.promptLookup as PromptLookupOptions) };
    const run = new SampleRun(0, sampler, this.net.cache, promptTokens, new Float32Array(0), this.tokenizer.createStreamDecoder(), stops);
    const start = performance.now();
    const stats = {} as SpeculativeStats;
    const tokens = speculativeStream(this.net, draft, promptTokens, {
      stats,
      draftMax: opts.draftMax,
      maxTokens,
      distribution: (logits, history) => sampler.distribution(logits, history),
      rng: { nextFloat: () => sampler.random() },
      stopTokens: this.tokenizer.endOfGeneration,
      signal: opts.signal,
    });
    let next = await tokens.next();
    for (; !next.done; next = await tokens.next()) {
      yield run.push(next.value, undefined);
      if (run.stopReason) break; // a stop string
    }
    if (!next.done) await tokens.return(undefined as never);
    yield* run.finish(run.stopReason ?? (next.done ? next.value.stopReason : 'stop'));
    return this.singleResult(run, promptTokens, performance.now() - start, { speculative: stats });
  }

  /** Beam search; the best hypothesis is streamed once the search ends. */
  private async *streamBeams(
    promptTokens: number[], sampler: Sampler, stops: readonly string[], maxTokens: number, opts: GenerateOptions,
  ): AsyncGenerator<TokenEvent, GenerateResult> {
    rejectWith(opts, 'beam search', ['n', 'logprobs', ...CONSTRAINT_OPTION_NAMES, 'draftModel', 'promptLookup', ...SAMPLING_OPTION_NAMES]);
    const start = performance.now();
    const result = await beamSearch(this.net, this.tokenizer, promptTokens, {
      numBeams: opts.numBeams!,
      maxTokens,
      lengthPenalty: opts.lengthPenalty,
      earlyStopping: opts.earlyStopping,
      signal: opts.signal,
    });
    const run = new SampleRun(0, sampler, this.net.cache, promptTokens, new Float32Array(0), this.tokenizer.createStreamDecoder(), stops);
    for (const id of result.tokens) {
      if (this.tokenizer.endOfGeneration.has(id)) break;
      yield run.push(id, undefined);
      if (run.stopReason) break;
    }
    yield* run.finish(run.stopReason ?? result.finishReason);
    return this.singleResult(run, promptTokens, performance.now() - start, { beams: result.hypotheses });
  }

  /** The one output constraint the options ask for (grammar, jsonSchema, jsonObject, regex or a ready constraint), if any. */
  private constraintFor(opts: GenerateOptions): TokenConstraint | undefined {
    const given = CONSTRAINT_OPTION_NAMES.filter((name) => opts[name] !== undefined && opts[name] !== false);
    if (given.length > 1) throw new RequestError('conflicting_options', given[1], `cannot be combined with ${given[0]}: give one output constraint`);
    if (opts.constraint) return opts.constraint;
    const gbnf =
      opts.grammar ?? (opts.jsonSchema !== undefined ? jsonSchemaToGbnf(opts.jsonSchema) : opts.jsonObject ? JSON_OBJECT_GBNF : opts.regex !== undefined ? regexToGbnf(opts.regex) : undefined);
    return gbnf === undefined ? undefined : grammarConstraint(gbnf, this.tokenizer);
  }

  /** A draft model must share this model's vocabulary token for token (compared once per draft). */
  private checkDraft(draft: Model): Model {
    if (draft === this || draft.net === this.net) {
      throw new RequestError('invalid_draft', 'draftModel', 'the draft must be a separately loaded model (it needs its own KV cache)');
    }
    if (!this.sameVocabulary.has(draft)) {
      const a = this.tokenizer;
      const b = draft.tokenizer;
      const same = a.vocabSize === b.vocabSize && Array.from({ length: a.vocabSize }, (_, id) => id).every((id) => a.tokenText(id) === b.tokenText(id));
      if (!same) throw new RequestError('invalid_draft', 'draftModel', `${draft.path} has a different vocabulary from ${this.path}`);
      this.sameVocabulary.add(draft);
    }
    if (draft.contextLength < this.contextLength) {
      throw new RequestError('invalid_draft', 'draftModel', `${draft.path} holds ${draft.contextLength} positions, fewer than this model's ${this.contextLength}`);
    }
    return draft;
  }

  /** The result of a single-sample decoder (speculative, beams) that times the whole run. */
  private singleResult(run: SampleRun, promptTokens: number[], ms: number, extra: Pick<GenerateResult, 'speculative' | 'beams'>): GenerateResult {
    const choice = run.choice(false);
    const { index: _index, ...first } = choice;
    return {
      ...first,
      promptTokens,
      choices: [choice],
      timings: {
        promptTokens: promptTokens.length,
        promptMs: 0,
        prefillTokS: 0,
        generatedTokens: run.tokens.length,
        decodeMs: ms,
        decodeTokS: ms > 0 ? (run.tokens.length / ms) * 1000 : 0,
      },
      ...extra,
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

  /**
   * The ids of a rendered chat prompt. The template writes the special tokens (BOS included), so
   * none are added; a template without BOS (chatml) gets one where the vocabulary asks for it, as
   * llama.cpp tokenizes chat prompts.
   */
  chatPromptTokens(prompt: string): number[] {
    const ids = this.tokenizer.encode(prompt, { addSpecial: false, parseSpecial: true });
    if (this.tokenizer.addBos && ids[0] !== this.tokenizer.bos) ids.unshift(this.tokenizer.bos);
    return ids;
  }

  /** The assistant's reply to a conversation: rendered with the chat template, then generated with `opts`. */
  async chat(messages: readonly ChatMessage[], opts: ChatOptions = {}): Promise<GenerateResult> {
    const { tools, documents, template, now, ...generate } = opts;
    const prompt = this.applyChatTemplate(messages, { tools, documents, template, now, addGenerationPrompt: true });
    return this.generate(this.chatPromptTokens(prompt), generate);
  }
}

/** The options that constrain the output; at most one may be given. */
const CONSTRAINT_OPTION_NAMES = ['constraint', 'grammar', 'jsonSchema', 'jsonObject', 'regex'] as const;

/** Sampling options that beam search (deterministic, on raw log-probabilities) cannot honour. */
const SAMPLING_OPTION_NAMES = [
  'temperature', 'topK', 'topP', 'minP', 'typicalP', 'mirostat', 'repeatPenalty', 'presencePenalty', 'frequencyPenalty', 'logitBias',
] as const;

/** A clear error for options `mode` cannot combine with (given and not at their neutral value). */
function rejectWith(opts: GenerateOptions, mode: string, names: readonly string[]): void {
  const neutral: Record<string, unknown> = { n: 1, logprobs: 0, mirostat: 0, numBeams: 1, promptLookup: false, jsonObject: false };
  for (const name of names) {
    const value = (opts as Record<string, unknown>)[name];
    if (value !== undefined && value !== neutral[name]) {
      throw new RequestError('conflicting_options', name, `cannot be combined with ${mode}`);
    }
  }
}

/** One sample's state while generating: its sampler, cache, tokens, text and stop matching. */
class SampleRun {
  readonly tokens: number[] = [];
  /** Prompt + output, for the penalties. */
  readonly history: number[];
  readonly logprobs: TokenLogprobs[] = [];
  text = '';
  pos: number;
  stopReason: StopReason | undefined;
  stopSequence: string | undefined;
  private readonly stopMatcher: StopMatcher;

  constructor(
    readonly index: number,
    readonly sampler: Sampler,
    readonly cache: KVCache,
    promptTokens: readonly number[],
    /** The logits the next token is drawn from. */
    public logits: Float32Array,
    private readonly decoder: StreamDecoder,
    stops: readonly string[],
  ) {
    this.history = [...promptTokens];
    this.pos = promptTokens.length;
    this.stopMatcher = new StopMatcher(stops);
  }

  /** Take a drawn token: the sampler accepts it, its text goes through the stop matcher. */
  push(id: number, logprobs: TokenLogprobs | undefined): TokenEvent {
    this.sampler.accept(id);
    this.tokens.push(id);
    this.history.push(id);
    if (logprobs) this.logprobs.push(logprobs);
    const released = this.stopMatcher.push(this.decoder.push(id));
    this.text += released.text;
    if (released.stop !== undefined) {
      this.stopReason = 'stop';
      this.stopSequence = released.stop;
    }
    return { index: this.index, id, text: released.text, ...(logprobs && { logprobs }) };
  }

  /** End for `reason`: the decoder's and the matcher's held text, as a last event if any. */
  finish(reason: StopReason): TokenEvent[] {
    this.stopReason = reason;
    const released = this.stopMatcher.push(this.decoder.flush());
    let text = released.text;
    if (released.stop !== undefined) {
      this.stopReason = 'stop';
      this.stopSequence = released.stop;
    } else {
      text += this.stopMatcher.flush();
    }
    this.text += text;
    return text ? [{ index: this.index, id: null, text }] : [];
  }

  choice(withLogprobs: boolean): GenerateChoice {
    return {
      index: this.index,
      seed: this.sampler.seed,
      text: this.text,
      tokens: this.tokens,
      stopReason: this.stopReason ?? 'length',
      ...(this.stopSequence !== undefined && { stopSequence: this.stopSequence }),
      ...(withLogprobs && { logprobs: this.logprobs }),
    };
  }
}

/** A token's logprob and the top-N alternatives, raw and after the sampler's processing. */
function tokenLogprobs(raw: Float32Array, processed: Distribution, id: number, topN: number): TokenLogprobs {
  const at = processed.ids.indexOf(id);
  return {
    id,
    raw: { logprob: logprobOf(raw, id), top: topLogprobs(raw, topN) },
    processed: {
      logprob: at >= 0 ? Math.log(processed.probs[at]) : -Infinity,
      top: Array.from(processed.ids.subarray(0, topN), (alt, i) => ({ id: alt, logprob: Math.log(processed.probs[i]) })),
    },
  };
}

/** An optional integer option in [min, max]. */
function checkIntegerOption(value: number | undefined, name: string, min: number, max: number): number | undefined {
  if (value !== undefined && !(Number.isInteger(value) && value >= min && value <= max)) {
    throw new RequestError(`invalid_${name}`, name, `must be an integer in ${min}..${max}, got ${String(value)}`);
  }
  return value;
}
