/**
 * Chat templates: a conversation (messages, tools, documents) rendered into the prompt text a
 * model was trained on, exactly as Hugging Face transformers' `apply_chat_template` renders it.
 *
 * A model's template is Jinja written for Python's jinja2 (GGUF tokenizer.chat_template,
 * tokenizer_config.json chat_template). We render it with python-jinja.ts (@huggingface/jinja
 * with Python's semantics) in transformers' environment: trim_blocks + lstrip_blocks, loop
 * controls, `raise_exception(msg)`, `strftime_now(fmt)`, `tojson` = json.dumps with its
 * arguments, and the variables in transformers' order: messages, tools, documents (both always
 * passed, None when absent), add_generation_prompt, bos_token / eos_token, then any extras.
 *
 * Models without a template get a named built-in one (chatml, as llama.cpp falls back to, unless
 * another is asked for). The built-ins are our own Jinja, following each format's documented
 * layout; they accept content as a string or as a list of {type: 'text', text} parts.
 */
import { RequestError, TemplateError } from '../errors.js';
import type { Tokenizer } from './index.js';
import { compileTemplate, raiseException, renderTemplate, RaisedException, TemplateSyntaxError, type CompiledTemplate } from './jinja/python-jinja.js';
import { strftime } from './jinja/python-builtins.js';
import { PythonError, fromJS, func, pyStr, str, type Value } from './jinja/python-values.js';

/** One message of a conversation, OpenAI-style: role, content, and anything a template reads (tool_calls, name, ...). */
export interface ChatMessage {
  role: string;
  content?: unknown;
  [field: string]: unknown;
}

/** What a template is rendered with; extra fields are passed to the template too (e.g. date_string). */
export interface ChatTemplateContext {
  messages: readonly ChatMessage[];
  /** Tool definitions (OpenAI shape: {type: 'function', function: {name, description, parameters}}); None when absent. */
  tools?: readonly unknown[] | null;
  /** Documents for retrieval-augmented templates ({title, text}); None when absent. */
  documents?: readonly unknown[] | null;
  /** End with the header of an assistant turn (default false, as in transformers). */
  add_generation_prompt?: boolean;
  /** Special tokens' text; left undefined in the template when not given. */
  bos_token?: string;
  eos_token?: string;
  [extra: string]: unknown;
}

export interface RenderChatTemplateOptions {
  /** The clock strftime_now reads (default: the current time). */
  now?: Date;
  /** The template's name in errors (e.g. "model.gguf: tokenizer.chat_template"). */
  name?: string;
}

/** Compiled templates by source text: a chat renders the same template every turn. */
const compiled = new Map<string, CompiledTemplate>();
const COMPILED_KEPT = 32;

function compile(template: string, name: string | undefined): CompiledTemplate {
  let program = compiled.get(template);
  if (!program) {
    try {
      program = compileTemplate(template);
    } catch (err) {
      if (err instanceof TemplateSyntaxError) throw new TemplateError('template_syntax', name, `does not parse: ${err.message}`);
      throw err;
    }
    if (compiled.size >= COMPILED_KEPT) compiled.delete(compiled.keys().next().value!);
    compiled.set(template, program);
  }
  return program;
}

/** Render a Jinja chat template the way transformers' apply_chat_template(..., tokenize=False) does. */
export function renderChatTemplate(template: string, context: ChatTemplateContext, opts: RenderChatTemplateOptions = {}): string {
  const program = compile(template, opts.name);
  const { messages, tools, documents, add_generation_prompt, bos_token, eos_token, ...extra } = context;
  const variables = new Map<string, Value>([
    ['raise_exception', raiseException],
    ['strftime_now', func((args) => str(strftime(opts.now ?? new Date(), args.length ? pyStr(args[0]) : '')))],
    ['messages', fromJS(messages)],
    ['tools', fromJS(tools ?? null)],
    ['documents', fromJS(documents ?? null)],
    ['add_generation_prompt', fromJS(add_generation_prompt ?? false)],
  ]);
  if (bos_token !== undefined) variables.set('bos_token', fromJS(bos_token));
  if (eos_token !== undefined) variables.set('eos_token', fromJS(eos_token));
  for (const [key, value] of Object.entries(extra)) variables.set(key, fromJS(value));
  try {
    return renderTemplate(program, variables);
  } catch (err) {
    throw asTemplateError(err, opts.name);
  }
}

function asTemplateError(err: unknown, name: string | undefined): unknown {
  if (err instanceof RaisedException) return new TemplateError('template_raised', name, err.message);
  if (err instanceof PythonError) return new TemplateError('template_runtime', name, `${err.pythonType}: ${err.message}`);
  if (err instanceof RangeError) return new TemplateError('template_runtime', name, `RecursionError: ${err.message}`);
  // The library's own runtime errors (calling a non-function, unpacking a non-sequence...).
  if (err instanceof Error && !(err instanceof TemplateError)) return new TemplateError('template_runtime', name, err.message);
  return err;
}

// ---------------------------------------------------------------------------------------------
// Built-in templates

/**
 * Message content as text: a string as is; a list of parts, its text parts joined; anything else
 * (None, missing) as nothing. Shared by the built-ins below.
 */
const CONTENT_TEXT = String.raw`
{%- macro text(content) -%}
  {%- if content is string -%}{{ content }}
  {%- elif content is sequence and content is not mapping -%}
    {%- for part in content -%}
      {%- if part is mapping and part['type'] == 'text' -%}{{ part['text'] }}{%- endif -%}
    {%- endfor -%}
  {%- endif -%}
{%- endmacro -%}`;

/** Each built-in's Jinja, after the content macro. */
const BUILTIN_BODIES: Record<string, string> = {
  // <|im_start|>role\ncontent<|im_end|>\n per message (OpenAI's ChatML, Qwen, SmolLM...).
  chatml: String.raw`
{%- for message in messages -%}
  {{- '<|im_start|>' + message['role'] + '\n' + text(message['content']) + '<|im_end|>\n' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\n' -}}{%- endif -%}`,

  // Llama 2 chat: <s>[INST] <<SYS>>\nsystem\n<</SYS>>\n\nuser [/INST] answer </s><s>[INST] user [/INST]
  llama2: String.raw`
{%- if messages and messages[0]['role'] == 'system' -%}
  {%- set system = text(messages[0]['content']) | trim -%}
  {%- set turns = messages[1:] -%}
{%- else -%}
  {%- set system = '' -%}
  {%- set turns = messages -%}
{%- endif -%}
{%- for message in turns -%}
  {%- if message['role'] == 'user' -%}
    {%- set content = text(message['content']) | trim -%}
    {%- if loop.first and system -%}{%- set content = '<<SYS>>\n' + system + '\n<</SYS>>\n\n' + content -%}{%- endif -%}
    {{- bos_token + '[INST] ' + content + ' [/INST]' -}}
  {%- elif message['role'] == 'assistant' -%}
    {{- ' ' + text(message['content']) | trim + ' ' + eos_token -}}
  {%- endif -%}
{%- endfor -%}`,

  // Llama 3: <|begin_of_text|><|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>...
  llama3: String.raw`
{{- bos_token -}}
{%- for message in messages -%}
  {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + text(message['content']) | trim + '<|eot_id|>' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}{%- endif -%}`,

  // Mistral instruct (v1): <s>[INST] user [/INST] answer</s>[INST] user [/INST]; a system prompt
  // opens the next user turn.
  mistral: String.raw`
{{- bos_token -}}
{%- set ns = namespace(system='') -%}
{%- for message in messages -%}
  {%- if message['role'] == 'system' -%}
    {%- set ns.system = ns.system + text(message['content']) | trim + '\n\n' -%}
  {%- elif message['role'] == 'user' -%}
    {{- '[INST] ' + ns.system + text(message['content']) | trim + ' [/INST]' -}}
    {%- set ns.system = '' -%}
  {%- elif message['role'] == 'assistant' -%}
    {{- ' ' + text(message['content']) | trim + eos_token -}}
  {%- endif -%}
{%- endfor -%}`,

  // Phi-3 / Phi-3.5: <|role|>\ncontent<|end|>\n; EOS closes a conversation without a generation prompt.
  phi3: String.raw`
{%- for message in messages -%}
  {%- set content = text(message['content']) -%}
  {%- if message['role'] == 'system' and content -%}{{- '<|system|>\n' + content + '<|end|>\n' -}}
  {%- elif message['role'] == 'user' -%}{{- '<|user|>\n' + content + '<|end|>\n' -}}
  {%- elif message['role'] == 'assistant' -%}{{- '<|assistant|>\n' + content + '<|end|>\n' -}}
  {%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<|assistant|>\n' -}}{%- else -%}{{- eos_token -}}{%- endif -%}`,

  // Gemma: <bos><start_of_turn>user\ncontent<end_of_turn>\n<start_of_turn>model\n...; Gemma has no
  // system role, so a system prompt opens the next user turn.
  gemma: String.raw`
{{- bos_token -}}
{%- set ns = namespace(system='') -%}
{%- for message in messages -%}
  {%- if message['role'] == 'system' -%}
    {%- set ns.system = ns.system + text(message['content']) | trim + '\n\n' -%}
  {%- else -%}
    {%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}
    {{- '<start_of_turn>' + role + '\n' + ns.system + text(message['content']) | trim + '<end_of_turn>\n' -}}
    {%- set ns.system = '' -%}
  {%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<start_of_turn>model\n' -}}{%- endif -%}`,

  // Zephyr: <|role|>\ncontent</s>\n per message.
  zephyr: String.raw`
{%- for message in messages -%}
  {%- if message['role'] in ['system', 'user', 'assistant'] -%}
    {{- '<|' + message['role'] + '|>\n' + text(message['content']) + eos_token + '\n' -}}
  {%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<|assistant|>\n' -}}{%- endif -%}`,
};

/** The built-in templates by name (Jinja text, usable with any jinja2 too). */
export const BUILTIN_CHAT_TEMPLATES: Readonly<Record<string, string>> = Object.fromEntries(
  Object.entries(BUILTIN_BODIES).map(([name, body]) => [name, `${CONTENT_TEXT.trim()}\n${body.trim()}\n`]),
);

/** What llama.cpp uses for a model without a template. */
export const FALLBACK_CHAT_TEMPLATE = 'chatml';

/** A template chosen for a conversation: its Jinja text and the name errors and messages use. */
export interface ChosenChatTemplate {
  text: string;
  name: string;
  /** The model had no template of its own, so the fallback is used. */
  fallback: boolean;
}

/** Whether `template` is Jinja text rather than a built-in's name. */
const isJinja = (template: string): boolean => /\{[{%#]/.test(template);

/**
 * The template to use: the one requested (a built-in's name or Jinja text, named `requestedName`
 * when it came from a file), else the model's own, else chatml. RequestError
 * 'unknown_chat_template' (naming `parameter`) for an unknown name.
 */
export function chooseChatTemplate(
  requested: string | undefined,
  own: string | undefined,
  ownName: string,
  parameter = 'template',
  requestedName?: string,
): ChosenChatTemplate {
  if (requested !== undefined) {
    if (requestedName !== undefined || isJinja(requested)) return { text: requested, name: requestedName ?? `${parameter} (Jinja text)`, fallback: false };
    if (!Object.hasOwn(BUILTIN_CHAT_TEMPLATES, requested)) {
      throw new RequestError('unknown_chat_template', parameter,
        `"${requested}" is not a built-in chat template (${Object.keys(BUILTIN_CHAT_TEMPLATES).join(', ')}) nor Jinja text`);
    }
    return { text: BUILTIN_CHAT_TEMPLATES[requested], name: `built-in chat template "${requested}"`, fallback: false };
  }
  if (own !== undefined && own !== '') return { text: own, name: ownName, fallback: false };
  return { text: BUILTIN_CHAT_TEMPLATES[FALLBACK_CHAT_TEMPLATE], name: `built-in chat template "${FALLBACK_CHAT_TEMPLATE}"`, fallback: true };
}

/** Compile a chosen template now, so that one that does not parse fails before a conversation starts. */
export function checkChatTemplate(chosen: ChosenChatTemplate): void {
  compile(chosen.text, chosen.name);
}

export interface ApplyChatTemplateOptions {
  tools?: readonly unknown[] | null;
  documents?: readonly unknown[] | null;
  /** End with the header of the assistant's turn (default true: the prompt asks for a reply). */
  addGenerationPrompt?: boolean;
  /** A built-in's name or Jinja text instead of the model's own template. */
  template?: string;
  /** The clock strftime_now reads (default: now). */
  now?: Date;
}

/** A special token's text, or undefined where the vocabulary has no such token. */
function tokenTextOrUndefined(tokenizer: Tokenizer, id: number): string | undefined {
  if (!(id >= 0 && id < tokenizer.vocabSize)) return undefined;
  return tokenizer.tokenText(id);
}

/**
 * Render a conversation for a tokenizer's model: its own template (or the one asked for, or
 * chatml), with its BOS/EOS texts. `modelName` names the template in errors.
 */
export function applyChatTemplate(tokenizer: Tokenizer, messages: readonly ChatMessage[], opts: ApplyChatTemplateOptions = {}, modelName = 'model'): string {
  const chosen = chooseChatTemplate(opts.template, tokenizer.chatTemplate, `${modelName}: tokenizer.chat_template`);
  return renderConversation(tokenizer, chosen, messages, opts);
}

/** Render a conversation with a template already chosen, with the tokenizer's BOS/EOS texts. */
export function renderConversation(
  tokenizer: Tokenizer,
  chosen: ChosenChatTemplate,
  messages: readonly ChatMessage[],
  opts: Omit<ApplyChatTemplateOptions, 'template'> = {},
): string {
  return renderChatTemplate(chosen.text, {
    messages,
    tools: opts.tools,
    documents: opts.documents,
    add_generation_prompt: opts.addGenerationPrompt ?? true,
    bos_token: tokenTextOrUndefined(tokenizer, tokenizer.bos),
    eos_token: tokenTextOrUndefined(tokenizer, tokenizer.eos),
  }, { now: opts.now, name: chosen.name });
}
