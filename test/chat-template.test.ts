/**
 * Chat templates: the golden renderings of real models' templates (made by Python's jinja2 the
 * way transformers' apply_chat_template renders them) reproduced byte for byte, the Python
 * semantics they rely on, the built-in templates, and the errors.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { RequestError, TemplateError } from '../src/errors.js';
import { DEFAULT_MODEL_PATH } from '../src/model.js';
import {
  BUILTIN_CHAT_TEMPLATES, applyChatTemplate, chooseChatTemplate, renderChatTemplate, type ChatMessage, type ChatTemplateContext,
} from '../src/tokenizers/chat-template.js';
import { readGGUF, typedMetadata } from '../src/formats/gguf.js';
import { writeGGUF } from '../src/formats/gguf-writer.js';
import { loadTokenizer } from '../src/tokenizers/index.js';

const shared = (p: string): string => fileURLToPath(new URL(`../../shared/${p}`, import.meta.url));
const fixtureDir = shared('fixtures/chat-templates');

interface FixtureCase {
  name: string;
  messages: ChatMessage[];
  tools?: unknown[];
  documents?: unknown[];
  extra_kwargs?: Record<string, unknown>;
  add_generation_prompt: boolean;
  expected?: string;
  expected_error?: string;
  error_type?: string;
}
interface Fixture {
  template_file: string;
  bos_token: string | null;
  eos_token: string | null;
  cases: FixtureCase[];
}

/** The fixtures' fixed clock, 2026-01-15 12:00:00 local time. */
const FIXED_NOW = new Date(2026, 0, 15, 12, 0, 0);

const fixtures = fs.readdirSync(fixtureDir).filter((f) => f.endsWith('.json')).sort();

function contextOf(fixture: Fixture, c: FixtureCase): ChatTemplateContext {
  return {
    messages: c.messages,
    tools: c.tools,
    documents: c.documents,
    add_generation_prompt: c.add_generation_prompt,
    ...(fixture.bos_token === null ? {} : { bos_token: fixture.bos_token }),
    ...(fixture.eos_token === null ? {} : { eos_token: fixture.eos_token }),
    ...c.extra_kwargs,
  };
}

function renderError(template: string, context: ChatTemplateContext, name?: string): TemplateError {
  try {
    renderChatTemplate(template, context, { now: FIXED_NOW, name });
  } catch (err) {
    if (err instanceof TemplateError) return err;
    throw err;
  }
  throw new Error('rendered without an error');
}

describe('golden renderings of real chat templates', () => {
  it('has the visible fixture set', () => {
    expect(fixtures.length).toBe(17);
  });

  for (const file of fixtures) {
    const fixture: Fixture = JSON.parse(fs.readFileSync(`${fixtureDir}/${file}`, 'utf8'));
    const template = fs.readFileSync(shared(fixture.template_file), 'utf8');
    describe(file.replace(/\.json$/, ''), () => {
      for (const c of fixture.cases) {
        it(c.name, () => {
          const context = contextOf(fixture, c);
          if (c.expected !== undefined) {
            expect(renderChatTemplate(template, context, { now: FIXED_NOW })).toBe(c.expected);
            return;
          }
          const err = renderError(template, context, fixture.template_file);
          if (c.error_type === 'TemplateError') {
            // The template's raise_exception: its message word for word.
            expect(err.code).toBe('template_raised');
            expect(err.detail).toBe(c.expected_error);
            expect(err.message).toBe(`${fixture.template_file}: ${c.expected_error}`);
          } else {
            expect(err.code).toBe('template_runtime');
          }
        });
      }
    });
  }
});

/** Render with the fixtures' environment (tools/documents None, the fixed clock); extra variables as given. */
const render = (template: string, vars: Record<string, unknown> = {}): string =>
  renderChatTemplate(template, { messages: [], ...vars }, { now: FIXED_NOW });

describe('Python semantics (values checked against Python jinja2 3.1.6)', () => {
  const vars = {
    spec: { type: 'array', items: { type: 'string' } },
    tools2: [{ function: { name: 'f' } }, { function: { name: 'g' } }],
    name: 'a<b>"c"',
    l: ['a', 'b'],
    d: { b: 1, a: [1.5, null, true], é: 'ü' },
  };

  it('prints values as Python str() does', () => {
    expect(render("{{ none }} {{ true }} {{ [none, false, 'x'] }} {{ {'k': none} }} {{ 1.0 }}")).toBe("None True [None, False, 'x'] {'k': None} 1.0");
    expect(render("{{ none | trim }}|{{ [1, 'a'] | string }}|{{ 'x' ~ none ~ 1 }}")).toBe("None|[1, 'a']|xNone1");
  });

  it('prefers a dict method to a key for x.name, and the key for x[name]', () => {
    expect(render("{{ spec['items'] }} {{ spec.type }} {{ spec.items is defined }} {{ spec.items.type is defined }}", vars))
      .toBe("{'type': 'string'} array True False");
  });

  it('makes map/select lazy one-shot iterators that tojson refuses', () => {
    expect(render("{{ (tools2 | map(attribute='function') | list) | tojson }}", vars)).toBe('[{"name": "f"}, {"name": "g"}]');
    const err = renderError("{{ tools2 | map(attribute='function') | tojson }}", { messages: [], ...vars });
    expect(err.code).toBe('template_runtime');
    expect(err.detail).toBe('TypeError: Object of type generator is not JSON serializable');
    expect(render("{% set g = tools2 | selectattr('function') %}{{ g is iterable }} {{ g is sequence }} {{ g | list | length }} {{ g | list | length }}", vars))
      .toBe('True False 2 0');
  });

  it('escapes a str added to a Markup (| safe)', () => {
    expect(render("{{ 'Use '|safe + name + '!'|safe }}", vars)).toBe('Use a&lt;b&gt;&#34;c&#34;!');
  });

  it('prints an undefined value as nothing and raises on its attributes', () => {
    expect(render('{{ undefined_thing }}|{{ undefined_thing is defined }}')).toBe('|False');
    const err = renderError('{{ undefined_thing.attr }}', { messages: [] });
    expect(err.detail).toBe("UndefinedError: 'undefined_thing' is undefined");
    expect(renderError("{{ 'a' + 1 }}", { messages: [] }).detail).toBe('TypeError: can only concatenate str (not "int") to str');
  });

  it('implements tojson with json.dumps arguments and spacing', () => {
    expect(render("{{ d | tojson }}|{{ d | tojson(indent=2) }}|{{ d | tojson(sort_keys=true, ensure_ascii=true) }}|{{ d | tojson(separators=(',', ':')) }}", vars))
      .toBe('{"b": 1, "a": [1.5, null, true], "é": "ü"}|{\n  "b": 1,\n  "a": [\n    1.5,\n    null,\n    true\n  ],\n  "é": "ü"\n}|{"a": [1.5, null, true], "b": 1, "\\u00e9": "\\u00fc"}|{"b":1,"a":[1.5,null,true],"é":"ü"}');
  });

  it('has Python methods, slices, loop variables, namespaces and loop controls', () => {
    expect(render("{{ d.get('b') }} {{ d.get('z', 'dflt') }} {{ 'a b  c'.split() }} {{ 'x.y'.split('.')[-1] }} {{ 'hello'.endswith('lo') }} {{ l[::-1] }}", vars))
      .toBe("1 dflt ['a', 'b', 'c'] y True ['b', 'a']");
    expect(render('{% for x in l %}{{ loop.previtem }}>{{ x }}<{{ loop.nextitem }};{% endfor %}', vars)).toBe('>a<b;a>b<;');
    expect(render('{% set ns = namespace(n=0) %}{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x > 4 %}{% break %}{% endif %}{% set ns.n = ns.n + x %}{% endfor %}{{ ns.n }}')).toBe('8');
  });

  it('passes tools and documents as None when absent, and strftime_now reads the given clock', () => {
    expect(render('{{ tools is none }} {{ tools is defined }} {{ documents }} {{ add_generation_prompt }} {{ bos_token is defined }}')).toBe('True True None False False');
    expect(render("{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%Y-%m-%d %H:%M:%S') }}")).toBe('15 Jan 2026|2026-01-15 12:00:00');
  });
});

describe('built-in chat templates', () => {
  const specials: Record<string, [string, string]> = {
    chatml: ['<s>', '</s>'], llama2: ['<s>', '</s>'], llama3: ['<|begin_of_text|>', '<|eot_id|>'], mistral: ['<s>', '</s>'],
    phi3: ['<s>', '<|endoftext|>'], gemma: ['<bos>', '<eos>'], zephyr: ['<s>', '</s>'],
  };
  const conversation: ChatMessage[] = [
    { role: 'system', content: 'You are a helpful assistant.' },
    { role: 'user', content: 'Hello!' },
    { role: 'assistant', content: 'Hi! How can I help?' },
    { role: 'user', content: 'Tell me a joke.' },
  ];
  // Content as parts (text parts joined, others skipped); a finished exchange without generation prompt.
  const parts: ChatMessage[] = [
    { role: 'user', content: [{ type: 'text', text: 'Describe ' }, { type: 'image', url: 'x.png' }, { type: 'text', text: 'this.' }] },
    { role: 'assistant', content: ' A cat. ' },
  ];
  // Each format's documented layout (and Python jinja2 renders these templates identically).
  const expected: Record<string, [string, string]> = {
    chatml: [
      '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\nHi! How can I help?<|im_end|>\n<|im_start|>user\nTell me a joke.<|im_end|>\n<|im_start|>assistant\n',
      '<|im_start|>user\nDescribe this.<|im_end|>\n<|im_start|>assistant\n A cat. <|im_end|>\n',
    ],
    llama2: [
      '<s>[INST] <<SYS>>\nYou are a helpful assistant.\n<</SYS>>\n\nHello! [/INST] Hi! How can I help? </s><s>[INST] Tell me a joke. [/INST]',
      '<s>[INST] Describe this. [/INST] A cat. </s>',
    ],
    llama3: [
      '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHi! How can I help?<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nTell me a joke.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n',
      '<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nDescribe this.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nA cat.<|eot_id|>',
    ],
    mistral: [
      '<s>[INST] You are a helpful assistant.\n\nHello! [/INST] Hi! How can I help?</s>[INST] Tell me a joke. [/INST]',
      '<s>[INST] Describe this. [/INST] A cat.</s>',
    ],
    phi3: [
      '<|system|>\nYou are a helpful assistant.<|end|>\n<|user|>\nHello!<|end|>\n<|assistant|>\nHi! How can I help?<|end|>\n<|user|>\nTell me a joke.<|end|>\n<|assistant|>\n',
      '<|user|>\nDescribe this.<|end|>\n<|assistant|>\n A cat. <|end|>\n<|endoftext|>',
    ],
    gemma: [
      '<bos><start_of_turn>user\nYou are a helpful assistant.\n\nHello!<end_of_turn>\n<start_of_turn>model\nHi! How can I help?<end_of_turn>\n<start_of_turn>user\nTell me a joke.<end_of_turn>\n<start_of_turn>model\n',
      '<bos><start_of_turn>user\nDescribe this.<end_of_turn>\n<start_of_turn>model\nA cat.<end_of_turn>\n',
    ],
    zephyr: [
      '<|system|>\nYou are a helpful assistant.</s>\n<|user|>\nHello!</s>\n<|assistant|>\nHi! How can I help?</s>\n<|user|>\nTell me a joke.</s>\n<|assistant|>\n',
      '<|user|>\nDescribe this.</s>\n<|assistant|>\n A cat. </s>\n',
    ],
  };

  it('has the seven named formats', () => {
    expect(Object.keys(BUILTIN_CHAT_TEMPLATES).sort()).toEqual(['chatml', 'gemma', 'llama2', 'llama3', 'mistral', 'phi3', 'zephyr']);
  });

  for (const [name, [bos, eos]] of Object.entries(specials)) {
    it(`${name} renders its documented layout`, () => {
      const template = BUILTIN_CHAT_TEMPLATES[name];
      expect(renderChatTemplate(template, { messages: conversation, add_generation_prompt: true, bos_token: bos, eos_token: eos })).toBe(expected[name][0]);
      expect(renderChatTemplate(template, { messages: parts, add_generation_prompt: false, bos_token: bos, eos_token: eos })).toBe(expected[name][1]);
    });
  }

  it('gemma and phi3 render the real Gemma 2 and Phi-3.5 fixtures the same where those accept the conversation', () => {
    for (const [builtin, file] of [['gemma', 'google-gemma-2-2b-it'], ['phi3', 'microsoft-Phi-3.5-mini-instruct']]) {
      const fixture: Fixture = JSON.parse(fs.readFileSync(`${fixtureDir}/${file}.json`, 'utf8'));
      const rendered = fixture.cases.filter((c) => c.expected !== undefined);
      expect(rendered.length).toBeGreaterThanOrEqual(5);
      for (const c of rendered) expect(renderChatTemplate(BUILTIN_CHAT_TEMPLATES[builtin], contextOf(fixture, c)), `${builtin} ${c.name}`).toBe(c.expected);
    }
  });
});

describe('choosing and applying a template', () => {
  const messages: ChatMessage[] = [{ role: 'user', content: 'Hi' }];

  it('falls back to chatml for a model without a template (stories260K)', () => {
    const tok = loadTokenizer(DEFAULT_MODEL_PATH);
    expect(tok.chatTemplate).toBeUndefined();
    expect(chooseChatTemplate(undefined, tok.chatTemplate, 'x').fallback).toBe(true);
    expect(applyChatTemplate(tok, messages)).toBe('<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n');
    expect(applyChatTemplate(tok, messages, { addGenerationPrompt: false })).toBe('<|im_start|>user\nHi<|im_end|>\n');
    // By name, with the vocabulary's BOS/EOS texts; or as Jinja text.
    expect(applyChatTemplate(tok, messages, { template: 'llama2' })).toBe('<s>[INST] Hi [/INST]');
    expect(applyChatTemplate(tok, messages, { template: '{{ bos_token }}|{{ eos_token }}|{{ messages[0].content }}' })).toBe('<s>|</s>|Hi');
  });

  it("uses the model's own tokenizer.chat_template from GGUF, with its BOS/EOS", () => {
    // llama.cpp's SentencePiece vocab (<s>, </s>) with Mistral Nemo's template written in: the fixture's cases come out.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'smallmind-chat-'));
    try {
      const vocab = readGGUF(shared('models/llamacpp-vocab/ggml-vocab-llama-spm.gguf'));
      const meta = typedMetadata(vocab);
      const template = fs.readFileSync(shared('chat-templates/mistralai-Mistral-Nemo-Instruct-2407.jinja'), 'utf8');
      meta.set('tokenizer.chat_template', { type: 'string', value: template });
      const file = path.join(dir, 'nemo-vocab.gguf');
      writeGGUF(file, meta, []);
      const tok = loadTokenizer(file);
      expect(tok.chatTemplate).toBe(template);
      const fixture: Fixture = JSON.parse(fs.readFileSync(`${fixtureDir}/mistralai-Mistral-Nemo-Instruct-2407.json`, 'utf8'));
      expect([fixture.bos_token, fixture.eos_token]).toEqual(['<s>', '</s>']);
      for (const c of fixture.cases.filter((x) => x.expected !== undefined)) {
        expect(applyChatTemplate(tok, c.messages, { tools: c.tools, addGenerationPrompt: c.add_generation_prompt }), c.name).toBe(c.expected);
      }
      const raising = fixture.cases.find((x) => x.name === 'roles_not_alternating')!;
      let err: unknown;
      try {
        applyChatTemplate(tok, raising.messages, {}, file);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(TemplateError);
      expect((err as TemplateError).message).toBe(`${file}: tokenizer.chat_template: ${raising.expected_error}`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('rejects an unknown template name, naming the parameter and the choices', () => {
    expect(() => chooseChatTemplate('chatgpt', undefined, 'x')).toThrow(RequestError);
    expect(() => chooseChatTemplate('chatgpt', undefined, 'x')).toThrow('template: "chatgpt" is not a built-in chat template (chatml, llama2, llama3, mistral, phi3, gemma, zephyr) nor Jinja text');
  });
});

describe('template errors', () => {
  it('reports a template that does not parse, with its name', () => {
    const err = renderError('{% for m in messages %}{{ m.content }', { messages: [] }, 'bad.jinja');
    expect(err.code).toBe('template_syntax');
    expect(err.source).toBe('bad.jinja');
    expect(err.message).toMatch(/^bad\.jinja: does not parse: /);
  });

  it('rejects unknown filters and tests when compiling, as jinja2 does (even in branches never taken)', () => {
    expect(renderError('{% if false %}{{ x | nosuchfilter }}{% endif %}', { messages: [] }).detail).toBe("does not parse: No filter named 'nosuchfilter'.");
    expect(renderError('{{ x is nosuchtest }}', { messages: [] }).detail).toBe("does not parse: No test named 'nosuchtest'.");
  });

  it("gives raise_exception's message word for word", () => {
    const err = renderError("{{ raise_exception('No ' ~ 'way') }}", { messages: [] }, 'model.gguf: tokenizer.chat_template');
    expect(err.code).toBe('template_raised');
    expect(err.detail).toBe('No way');
    expect(err.message).toBe('model.gguf: tokenizer.chat_template: No way');
  });

  it('stops a macro that recurses without end like Python (RecursionError), not with a stack overflow', () => {
    const err = renderError('{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}', { messages: [] });
    expect(err.detail).toBe('RecursionError: maximum recursion depth exceeded');
  });
});
