import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule, { type FormatsPlugin } from 'ajv-formats';
import { beforeAll, describe, expect, it } from 'vitest';
import { RequestError } from '../src/errors.js';
import { JSON_OBJECT_GBNF, jsonSchemaToGbnf } from '../src/generation/grammar/json-schema.js';
import { DEAD_STATE, GrammarAutomaton } from '../src/generation/grammar/matcher.js';
import { regexToGbnf } from '../src/generation/grammar/regex.js';
import { grammarConstraint, type GrammarConstraint } from '../src/generation/grammar/token-mask.js';
import { Sampler } from '../src/generation/sampler.js';
import { loadModel, type Model } from '../src/model.js';
import { Xoshiro128 } from '../src/tensor/random.js';

// ajv-formats is CommonJS: its function is the default export's default under NodeNext.
const addFormats = ((addFormatsModule as unknown as { default?: FormatsPlugin }).default ?? addFormatsModule) as FormatsPlugin;

const shared = (p: string): string => fileURLToPath(new URL(`../../shared/${p}`, import.meta.url));
const schemaDir = fileURLToPath(new URL('data/schemas/', import.meta.url));
const suite = fs
  .readdirSync(schemaDir)
  .filter((f) => f.endsWith('.json'))
  .sort()
  .map((f) => ({ name: f.replace(/\.json$/, ''), schema: JSON.parse(fs.readFileSync(schemaDir + f, 'utf8')) as unknown }));

function validator(schema: unknown): (value: unknown) => boolean {
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  addFormats(ajv);
  const validate = ajv.compile(schema as object);
  return (value) => validate(value) as boolean;
}

/** A seeded generator (the engine's xoshiro128**), so every walk can be replayed. */
function rng(seed: number): () => number {
  const generator = Xoshiro128.fromSeed(seed);
  return () => generator.nextFloat();
}

/** Characters the random walk tries: printable ASCII, tab, newline and a few beyond ASCII. */
const CANDIDATES = [9, 10, ...Array.from({ length: 95 }, (_, i) => 32 + i), ...[...'éαβω中😀'].map((c) => c.codePointAt(0)!)];

/**
 * A random walk through the grammar: at each step pick uniformly among the candidate characters
 * the automaton can take; stop with probability `stopChance` wherever the text is complete (and
 * always where nothing can follow). Returns undefined if it strays past `maxChars`.
 */
function randomWalk(automaton: GrammarAutomaton, seed: number, stopChance = 0.5, maxChars = 20_000): string | undefined {
  const random = rng(seed);
  let state = automaton.initial;
  let text = '';
  while (text.length < maxChars) {
    if (automaton.isComplete(state) && (!automaton.canContinue(state) || random() < stopChance)) return text;
    const next = CANDIDATES.map((cp) => [cp, automaton.advance(state, cp)]).filter(([, s]) => s !== DEAD_STATE);
    if (next.length === 0) throw new Error(`walk stuck after ${JSON.stringify(text)}`);
    const [cp, to] = next[Math.floor(random() * next.length)];
    text += String.fromCodePoint(cp);
    state = to;
  }
  return undefined;
}

function expectUnsupported(schema: unknown, message: RegExp): void {
  let error: unknown;
  try {
    jsonSchemaToGbnf(schema);
  } catch (err) {
    error = err;
  }
  expect(error).toBeInstanceOf(RequestError);
  expect((error as RequestError).code).toBe('unsupported_schema');
  expect((error as RequestError).parameter).toBe('jsonSchema');
  expect((error as Error).message).toMatch(message);
}

describe('jsonSchemaToGbnf: golden grammars', () => {
  it('writes an object with a required and an optional property', () => {
    const gbnf = jsonSchemaToGbnf({
      type: 'object',
      properties: { name: { type: 'string', maxLength: 8 }, ok: { type: 'boolean' } },
      required: ['name'],
    });
    expect(gbnf).toBe(
      [
        'root ::= "{" space root-name-kv ( "," space root-opt-0 )? "}" space',
        'root-name-kv ::= "\\"name\\"" space ":" space "\\"" char{0,8} "\\"" space',
        'root-ok-kv ::= "\\"ok\\"" space ":" space boolean',
        'root-opt-0 ::= root-ok-kv',
        'space ::= ( " " | "\\n"{1,2} [ \\t]{0,20} )?',
        'char ::= [^"\\\\\\x00-\\x1F] | "\\\\" ( ["\\\\/bfnrt] | "u" unicode-escape )',
        'unicode-escape ::= [0-9a-cA-C] hex{3} | [dD] [0-7] hex{2} | [eEfF] hex{3}',
        'hex ::= [0-9a-fA-F]',
        'boolean ::= ( "true" | "false" ) space',
        '',
      ].join('\n'),
    );
  });

  it('writes enums, bounded arrays and integer ranges', () => {
    expect(jsonSchemaToGbnf({ enum: ['a', 1, null] })).toBe('root ::= ( "\\"a\\"" | "1" | "null" ) space\nspace ::= ( " " | "\\n"{1,2} [ \\t]{0,20} )?\n');
    expect(jsonSchemaToGbnf({ type: 'array', items: { type: 'null' }, minItems: 1, maxItems: 3 }).split('\n')[0]).toBe(
      'root ::= "[" space null ( "," space null ){0,2} "]" space',
    );
    expect(jsonSchemaToGbnf({ type: 'integer', minimum: 15, maximum: 342 }).split('\n')[0]).toBe(
      'root ::= ( ( "1" [5-9] | [2-9] [0-9] ) | ( [1-2] [0-9]{2} | "3" ( [0-3] [0-9] | "4" [0-2] ) ) ) space',
    );
    expect(jsonSchemaToGbnf({ type: 'integer', minimum: -20, maximum: 5 }).split('\n')[0]).toBe(
      'root ::= ( "-" ( [1-9] | ( "1" [0-9] | "20" ) ) | [0-5] ) space',
    );
  });

  it('writes $refs as named rules, recursion included', () => {
    const gbnf = jsonSchemaToGbnf({
      $defs: { list: { type: 'object', properties: { next: { $ref: '#/$defs/list' } } } },
      $ref: '#/$defs/list',
    });
    expect(gbnf.split('\n').slice(0, 4)).toEqual([
      'root ::= list',
      'list ::= "{" space ( list-opt-0 )? "}" space',
      'list-next-kv ::= "\\"next\\"" space ":" space list',
      'list-opt-0 ::= list-next-kv',
    ]);
  });
});

describe('regexToGbnf', () => {
  it('writes the subset as GBNF', () => {
    expect(regexToGbnf('^ab+c?[x-z]{2,3}$')).toBe('root ::= "a" "b"+ "c"? [x-z]{2,3}\n');
    expect(regexToGbnf('(cat|dog)s\\d*')).toBe('root ::= ("cat" | "dog") "s" [0-9]*\n');
    expect(regexToGbnf('[^a-c]\\.')).toBe('root ::= [^a-c] "."\n');
    expect(regexToGbnf('a{3}(?:x|)')).toBe('root ::= "a"{3} ("x" | "")\n');
  });

  it('matches what JavaScript regexes match, whole strings only', () => {
    const cases: [string, string[], string[]][] = [
      ['\\d{3}-\\d{4}', ['555-1234'], ['5551234', '555-12345', 'x555-1234']],
      ['(ab|cd)+e?', ['ab', 'abcd', 'cdabe'], ['', 'e', 'abc']],
      ['[^\\s,]+(,[^\\s,]+)*', ['a,b', 'héllo'], ['a,', 'a b', ',']],
      ['.{2}\\w\\W', ['éx_!', '  a-'], ['\nxa!', 'abcd']],
      ['[\\-+]?\\u{1F600}|\\x41\\u0042', ['😀', '-😀', 'AB'], ['--😀', 'A']],
    ];
    for (const [pattern, good, bad] of cases) {
      const automaton = GrammarAutomaton.fromGbnf(regexToGbnf(pattern));
      const js = new RegExp(`^(?:${pattern})$`, 'u');
      for (const s of good) expect([pattern, s, automaton.accepts(s)]).toEqual([pattern, s, true]);
      for (const s of bad) expect([pattern, s, automaton.accepts(s)]).toEqual([pattern, s, false]);
      for (let seed = 0; seed < 30; seed++) {
        const walked = randomWalk(automaton, seed, 0.3);
        if (walked !== undefined) expect([pattern, walked, js.test(walked)]).toEqual([pattern, walked, true]);
      }
    }
  });

  it('rejects what is outside the subset, naming the construct', () => {
    const rejected: [string, RegExp][] = [
      ['(a)\\1', /backreference/],
      ['a(?=b)', /lookaround/],
      ['\\bword', /word boundary/],
      ['a^b', /anchor "\^"/],
      ['a$b', /anchor "\$"/],
      ['\\p{L}', /Unicode property/],
      ['(?i)a', /group modifier/],
      ['*a', /nothing to repeat/],
      ['(ab', /unclosed "\("/],
      ['[ab', /unclosed "\["/],
    ];
    for (const [pattern, message] of rejected) {
      expect(() => regexToGbnf(pattern, 'regex')).toThrow(message);
      try {
        regexToGbnf(pattern);
      } catch (err) {
        expect((err as RequestError).code).toBe('unsupported_regex');
      }
    }
  });
});

describe('jsonSchemaToGbnf: the schema suite', () => {
  it(`has at least 30 schemas (${suite.length})`, () => {
    expect(suite.length).toBeGreaterThanOrEqual(30);
  });

  for (const { name, schema } of suite) {
    it(`${name}: random walks through the grammar parse and validate`, () => {
      const automaton = GrammarAutomaton.fromGbnf(jsonSchemaToGbnf(schema));
      const validate = validator(schema);
      for (let seed = 0; seed < 40; seed++) {
        const text = randomWalk(automaton, seed);
        expect(text, `seed ${seed} ran past the character limit`).toBeDefined();
        let value: unknown;
        expect(() => (value = JSON.parse(text!)), text).not.toThrow();
        expect([text, validate(value)]).toEqual([text, true]);
      }
    });
  }
});

describe('jsonSchemaToGbnf: open schemas and json_object', () => {
  const open: [string, unknown][] = [
    ['any object', { type: 'object' }],
    ['any value', {}],
    ['extra keys of a schema', { type: 'object', properties: { a: { type: 'integer' }, ab: { type: 'null' } }, additionalProperties: { type: 'boolean' } }],
    ['extra keys of anything', { type: 'object', properties: { id: { type: 'string' } }, required: ['id'], additionalProperties: true }],
    ['a required key beyond properties', { type: 'object', required: ['x'], additionalProperties: { type: 'integer' } }],
    ['unbounded numbers', { type: 'array', items: { type: 'number' } }],
    ['an unanchored pattern', { type: 'string', pattern: 'x[0-9]' }],
    ['one-sided bounds', { type: 'array', items: { anyOf: [{ type: 'integer', minimum: 100 }, { type: 'number', maximum: -2 }] } }],
  ];
  for (const [label, schema] of open) {
    it(`${label}: random walks parse and validate`, () => {
      const automaton = GrammarAutomaton.fromGbnf(jsonSchemaToGbnf(schema));
      const validate = validator(schema);
      for (let seed = 0; seed < 40; seed++) {
        const text = randomWalk(automaton, seed, 0.9);
        if (text === undefined) continue;
        expect([text, validate(JSON.parse(text))]).toEqual([text, true]);
      }
    });
  }

  it('json_object: random walks are JSON objects; other JSON is not accepted', () => {
    const automaton = GrammarAutomaton.fromGbnf(JSON_OBJECT_GBNF);
    for (let seed = 0; seed < 40; seed++) {
      const text = randomWalk(automaton, seed, 0.9);
      if (text === undefined) continue;
      const value = JSON.parse(text) as unknown;
      expect(typeof value === 'object' && value !== null && !Array.isArray(value)).toBe(true);
    }
    expect(automaton.accepts('{"a": [1, -2.5e10, true, null, {"b": "\\u00e9\\n"}]}')).toBe(true);
    expect(automaton.accepts('[1]')).toBe(false);
    expect(automaton.accepts('{"a": 01}')).toBe(false);
    expect(automaton.accepts('{"a": "\\ud83d"}')).toBe(false);
  });

  it('keeps declared names out of extra keys, and dates exact', () => {
    const keys = GrammarAutomaton.fromGbnf(jsonSchemaToGbnf({ type: 'object', properties: { a: { type: 'integer' } }, additionalProperties: { type: 'boolean' } }));
    expect(keys.accepts('{"a": 1, "b": true}')).toBe(true);
    expect(keys.accepts('{"ab": true}')).toBe(true);
    expect(keys.accepts('{"a": true}')).toBe(false);
    const date = GrammarAutomaton.fromGbnf(jsonSchemaToGbnf({ type: 'string', format: 'date' }));
    for (const d of ['2024-02-29', '2000-02-29', '2023-04-30', '1999-12-31']) expect([d, date.accepts(`"${d}"`)]).toEqual([d, true]);
    for (const d of ['2023-02-29', '1900-02-29', '2023-04-31', '2023-13-01', '2023-00-10']) expect([d, date.accepts(`"${d}"`)]).toEqual([d, false]);
  });
});

describe('jsonSchemaToGbnf: rejected schemas', () => {
  it('names the unsupported keyword and where it is', () => {
    expectUnsupported({ type: 'object', properties: { a: { not: { type: 'string' } } } }, /keyword "not" is not supported at #\/properties\/a/);
    expectUnsupported({ type: 'array', uniqueItems: true }, /"uniqueItems"/);
    expectUnsupported({ type: 'object', patternProperties: { x: {} } }, /"patternProperties"/);
    expectUnsupported({ type: 'number', multipleOf: 3 }, /"multipleOf"/);
    expectUnsupported({ if: { type: 'string' }, then: {} }, /"if"/);
    expectUnsupported({ type: 'string', format: 'hostname' }, /"format" "hostname"/);
    expectUnsupported({ $ref: 'https://example.com/s.json' }, /only local/);
    expectUnsupported({ type: 'number', minimum: 0.5 }, /"minimum" 0.5 on a number/);
    expectUnsupported({ type: 'integer', exclusiveMinimum: true, minimum: 1 }, /draft-04/);
    expectUnsupported({ type: 'string', pattern: '^a$', maxLength: 3 }, /"pattern" with/);
    expectUnsupported({ oneOf: [{ type: 'integer' }, { type: 'number' }] }, /"oneOf" with branches 0 and 1/);
    expectUnsupported({ anyOf: [{ type: 'string' }], type: 'string' }, /"type" beside "anyOf"/);
    expectUnsupported({ allOf: [{ type: 'string' }] }, /"type" in an "allOf"/);
    expectUnsupported({ type: 'object', minProperties: 1 }, /"minProperties"/);
    expectUnsupported({ type: 'integer', minimum: 5, maximum: 4 }, /matches nothing/);
    expectUnsupported({ type: 'array', prefixItems: [{}], minItems: 2 }, /"minItems" beyond/);
    expectUnsupported({ type: 'string', pattern: '(a)\\1' }, /backreference/);
  });

  it('uses the name it is given', () => {
    expect(() => jsonSchemaToGbnf({ type: 'object', properties: { a: { contains: {} } } }, { where: 'schema.json' })).toThrow(
      /^schema\.json: keyword "contains" is not supported at #\/properties\/a$/,
    );
  });
});

/** Tokens generated at most per document: every suite schema is bounded well below this. */
const TOKEN_BUDGET = 1500;

/**
 * Generate under `constraint` at temperature 1 (no truncation), seeded: forward, mask, draw,
 * until an end-of-generation token or a grammar that cannot continue. Returns the text the
 * grammar saw (the tokens' bytes) and whether it ended within the budget.
 */
function generate(model: Model, constraint: GrammarConstraint, seed: number): { text: string; tokens: number; ended: boolean } {
  const { tokenizer } = model;
  const eog = tokenizer.endOfGeneration;
  const sampler = new Sampler({ temperature: 1, topK: 0, topP: 1, minP: 0, seed, constraint }, { eog, vocabSize: tokenizer.vocabSize });
  const bytes: number[] = [];
  let logits = model.network.forward([tokenizer.bos], 0).f32();
  for (let pos = 1; pos <= TOKEN_BUDGET; pos++) {
    const id = sampler.sample(logits);
    const done = eog.has(id);
    if (!done) bytes.push(...tokenizer.piece(id));
    if (done || constraint.finished) return { text: new TextDecoder().decode(Uint8Array.from(bytes)), tokens: pos, ended: true };
    logits = model.network.forward([id], pos).f32();
  }
  return { text: new TextDecoder().decode(Uint8Array.from(bytes)), tokens: TOKEN_BUDGET, ended: false };
}

describe.each([
  // Seeds per schema: masks over 32000 tokens cost most of this file's time.
  ['the random 32000-vocab model', shared('models/llama-2-tiny-random/llama-2-tiny-random.gguf'), 4],
  ['stories260K', undefined, 5],
])('jsonSchemaToGbnf: constrained generation on %s', (_label, modelPath, seeds) => {
  let model: Model;
  beforeAll(async () => {
    model = await loadModel(modelPath, { threads: 1 });
  });

  for (const { name, schema } of suite) {
    it(`${name}: every sample parses, validates and ends within ${TOKEN_BUDGET} tokens`, () => {
      const validate = validator(schema);
      const constraint = grammarConstraint(jsonSchemaToGbnf(schema), model.tokenizer);
      for (let seed = 1; seed <= seeds; seed++) {
        const { text, ended } = generate(model, constraint.clone(), seed);
        expect([seed, ended]).toEqual([seed, true]);
        let value: unknown;
        expect(() => (value = JSON.parse(text)), text).not.toThrow();
        expect([text, validate(value)]).toEqual([text, true]);
      }
    });
  }
});
