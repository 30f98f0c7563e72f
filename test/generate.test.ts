/**
 * generate/stream on the embedded stories260K: seeded sampling across thread counts, stop strings
 * split across tokens (streaming never shows what becomes a stop), finish reasons, logprobs, n
 * samples against single runs, option errors; and the same through the CLI.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RequestError } from '../src/errors.js';
import { logSoftmax, topLogprobs } from '../src/generation/sampler.js';
import { loadModel, type GenerateOptions, type GenerateResult, type Model, type TokenEvent } from '../src/model.js';
import { run } from './helpers/cli.js';

const PROMPT = 'Once upon a time';
/** stories260K's greedy continuation; "girl" is three tokens: " g", "ir", "l". */
const GREEDY = ', there was a little girl named Lily.';

let one: Model; // 1 thread
let two: Model; // 2 threads
beforeAll(async () => {
  one = await loadModel(undefined, { threads: 1 });
  two = await loadModel(undefined, { threads: 2 });
});
afterAll(() => {
  one?.dispose();
  two?.dispose();
});

/** Run a stream to the end: its events and its result. */
async function streamAll(model: Model, prompt: string, opts: GenerateOptions): Promise<{ events: TokenEvent[]; result: GenerateResult }> {
  const events: TokenEvent[] = [];
  const stream = model.stream(prompt, opts);
  let next = await stream.next();
  for (; !next.done; next = await stream.next()) events.push(next.value);
  return { events, result: next.value };
}

describe('sampling with a seed', () => {
  it('gives the same tokens on 1 and 2 threads, for every sampler configuration', async () => {
    const configs: GenerateOptions[] = [
      { temperature: 1 },
      { temperature: 0.9, topK: 0, topP: 0.9, minP: 0 },
      { temperature: 1.2, typicalP: 0.8, repeatPenalty: 1.3, presencePenalty: 0.5, frequencyPenalty: 0.2 },
      { mirostat: 2, mirostatTau: 4, mirostatEta: 0.2, temperature: 1 },
    ];
    for (const config of configs) {
      const opts = { ...config, seed: 1234, maxTokens: 40 };
      const a = await one.generate(PROMPT, opts);
      const b = await two.generate(PROMPT, opts);
      expect(b.tokens, JSON.stringify(config)).toEqual(a.tokens);
      expect(a.seed).toBe(1234);
      expect((await one.generate(PROMPT, { ...opts, seed: 1235 })).tokens, JSON.stringify(config)).not.toEqual(a.tokens);
    }
  });

  it('keeps greedy decoding what it was', async () => {
    expect((await one.generate(PROMPT, { temperature: 0, maxTokens: 11 })).text).toBe(GREEDY);
  });

  it('applies the logit bias and the penalties while generating', async () => {
    const first = (await one.generate(PROMPT, { temperature: 0, maxTokens: 1 })).tokens[0];
    const banned = await one.generate(PROMPT, { temperature: 0, maxTokens: 1, logitBias: { [first]: -Infinity } });
    expect(banned.tokens[0]).not.toBe(first);
    // A strong repeat penalty over the whole history keeps greedy output from repeating any token.
    const penalized = await one.generate(PROMPT, { temperature: 0, maxTokens: 30, repeatPenalty: 100, repeatLastN: -1 });
    expect(new Set(penalized.tokens).size).toBe(penalized.tokens.length);
  });
});

describe('stop strings', () => {
  it('end at a stop string spread over three tokens, excluded from the text; streaming never shows any of it', async () => {
    const { events, result } = await streamAll(one, PROMPT, { temperature: 0, maxTokens: 30, stop: ['xyz', 'irl nam'] });
    expect(result.text).toBe(', there was a little g');
    expect(result.stopReason).toBe('stop');
    expect(result.stopSequence).toBe('irl nam');
    expect(result.tokens.length).toBe(9); // through " named", the token that completed the stop
    expect(events.map((e) => e.text).join('')).toBe(result.text);
    let shown = '';
    for (const e of events) {
      shown += e.text;
      expect(result.text.startsWith(shown)).toBe(true);
    }
    // " g" is held back until "ir" arrives ("g" could not start "irl nam"; " g" is released at once).
    expect(events.map((e) => e.text)).toEqual([',', ' there', ' was', ' a', ' little', ' g', '', '', '']);
  });

  it('release held text at the end when the stop never completes', async () => {
    const { events, result } = await streamAll(one, PROMPT, { temperature: 0, maxTokens: 8, stop: ['girl!!'] });
    expect(result.text).toBe(', there was a little girl');
    expect(result.stopReason).toBe('length');
    expect(events.at(-1)).toEqual({ index: 0, id: null, text: 'girl' });
    expect(events.map((e) => e.text).join('')).toBe(result.text);
  });

  it('match within one token too', async () => {
    const r = await one.generate(PROMPT, { temperature: 0, maxTokens: 30, stop: ['here'] });
    expect([r.text, r.stopReason]).toEqual([', t', 'stop']);
  });
});

describe('finish reasons', () => {
  it('length, eos and abort', async () => {
    expect((await one.generate(PROMPT, { temperature: 0, maxTokens: 3 })).stopReason).toBe('length');
    const eos = await one.generate(PROMPT, { temperature: 0, logitBias: { [one.tokenizer.eos]: 50 } });
    expect([eos.stopReason, eos.tokens, eos.text]).toEqual(['eos', [], '']);
    const abort = new AbortController();
    abort.abort();
    const aborted = await one.generate(PROMPT, { signal: abort.signal });
    expect([aborted.stopReason, aborted.tokens]).toEqual(['abort', []]);
    expect((await one.generate(PROMPT, { maxTokens: 0 })).stopReason).toBe('length');
  });
});

describe('logprobs', () => {
  it('give each token its raw and processed log-probability with the top alternatives', async () => {
    const greedy = await one.generate(PROMPT, { temperature: 0, maxTokens: 3, logprobs: 3 });
    const logits = one.forward(greedy.promptTokens, 0);
    const first = greedy.logprobs![0];
    expect(first.id).toBe(greedy.tokens[0]);
    expect(first.raw.top).toEqual(topLogprobs(logits, 3));
    expect(first.raw.logprob).toBeCloseTo(logSoftmax(logits)[first.id], 10);
    expect(first.processed).toEqual({ logprob: 0, top: [{ id: first.id, logprob: 0 }] }); // greedy: probability 1
    expect(greedy.logprobs!.length).toBe(3);

    const sampled = await one.generate(PROMPT, { temperature: 1.5, topK: 3, minP: 0, topP: 1, maxTokens: 20, logprobs: 5, seed: 9 });
    for (const [i, lp] of sampled.logprobs!.entries()) {
      expect(lp.id).toBe(sampled.tokens[i]);
      expect(lp.raw.top.length).toBe(5);
      expect(lp.processed.top.length).toBe(3); // top-k 3 leaves three
      const mass = lp.processed.top.reduce((sum, t) => sum + Math.exp(t.logprob), 0);
      expect(mass).toBeCloseTo(1, 12);
      expect(lp.processed.top.map((t) => t.id)).toEqual(lp.raw.top.slice(0, 3).map((t) => t.id));
      expect(lp.processed.top.some((t) => t.id === lp.id && t.logprob === lp.processed.logprob)).toBe(true);
    }
  });
});

describe('n samples', () => {
  it('share one prefill and equal single runs seeded seed + i', async () => {
    const opts = { temperature: 1, maxTokens: 25, seed: 77, stop: ['.'], logprobs: 1 };
    const { events, result } = await streamAll(one, PROMPT, { ...opts, n: 3 });
    expect(result.choices.length).toBe(3);
    for (const [i, choice] of result.choices.entries()) {
      const alone = await one.generate(PROMPT, { ...opts, seed: 77 + i });
      expect(choice.index).toBe(i);
      expect(choice.seed).toBe(77 + i);
      expect(choice.tokens).toEqual(alone.tokens);
      expect(choice.text).toBe(alone.text);
      expect(choice.stopReason).toBe(alone.stopReason);
      expect(choice.logprobs).toEqual(alone.logprobs);
      expect(events.filter((e) => e.index === i).map((e) => e.text).join('')).toBe(choice.text);
    }
    expect(new Set(result.choices.map((c) => c.text)).size).toBeGreaterThan(1); // independent draws
    expect(result.text).toBe(result.choices[0].text);
    expect(result.timings.generatedTokens).toBe(result.choices.reduce((s, c) => s + c.tokens.length, 0));
    // The model's own cache still continues the prompt like before.
    expect((await one.generate(PROMPT, { temperature: 0, maxTokens: 11 })).text).toBe(GREEDY);
  });
});

describe('option errors', () => {
  it('name the parameter', async () => {
    const bad: [GenerateOptions, string][] = [
      [{ n: 0 }, 'n'],
      [{ n: 1.5 }, 'n'],
      [{ n: 65 }, 'n'],
      [{ logprobs: -1 }, 'logprobs'],
      [{ stop: [''] }, 'stop'],
      [{ stop: 'x' as never }, 'stop'],
      [{ topP: 1.2 }, 'topP'],
      [{ minP: NaN }, 'minP'],
      [{ temperature: -1 }, 'temperature'],
      [{ mirostat: 2, topK: 10 }, 'topK'],
      [{ logitBias: { 512: 1 } }, 'logitBias'],
      [{ maxTokens: -1 }, 'maxTokens'],
    ];
    for (const [opts, parameter] of bad) {
      const err = await one.generate(PROMPT, opts).catch((e: unknown) => e);
      expect(err, JSON.stringify(opts)).toBeInstanceOf(RequestError);
      expect((err as RequestError).parameter, JSON.stringify(opts)).toBe(parameter);
    }
  });
});

describe('CLI generate', () => {
  it('--json shows logprobs with token texts, the stop string and the seed', async () => {
    const r = await run(['generate', PROMPT, '--json', '-n', '20', '--temp', '0', '-t', '1', '--logprobs', '2', '--stop', 'irl nam']);
    expect(r.stderr).toBe('');
    const j = JSON.parse(r.stdout);
    expect(j.text).toBe(', there was a little g');
    expect([j.stopReason, j.stopSequence]).toEqual(['stop', 'irl nam']);
    expect(j.logprobs.length).toBe(j.tokens.length);
    expect(j.logprobs[0].token).toBe(',');
    expect(j.logprobs[0].raw.top.length).toBe(2);
    expect(j.logprobs[0].processed).toEqual({ logprob: 0, top: [{ id: j.tokens[0], token: ',', logprob: 0 }] });
  });

  it('--n-samples prints each sample; the same seed gives the same samples', async () => {
    const args = ['generate', PROMPT, '-n', '12', '-t', '1', '--seed', '5', '--n-samples', '2', '--temp', '1', '--top-k', '0', '--min-p', '0.1', '--typical-p', '0.9', '--repeat-penalty', '1.1', '--repeat-last-n', '-1', '--presence-penalty', '0.1', '--frequency-penalty', '0.1', '--stop', '\\n'];
    const a = await run(args);
    expect(a.code).toBe(0);
    expect(a.stdout).toMatch(/^--- sample 0 \(seed 5, (length|stop)\) ---\nOnce upon a time[^\n]*\n--- sample 1 \(seed 6, (length|stop)\) ---\nOnce upon a time/);
    expect((await run(args)).stdout).toBe(a.stdout);
    const j = JSON.parse((await run([...args, '--json'])).stdout);
    expect(j.choices.map((c: { seed: number }) => c.seed)).toEqual([5, 6]);
    const m = JSON.parse((await run(['generate', PROMPT, '--json', '-n', '8', '-t', '1', '--seed', '3', '--mirostat', '2', '--mirostat-lr', '0.2', '--mirostat-ent', '3'])).stdout);
    expect(m.tokens.length).toBe(8);
  });

  it('rejects bad sampling flags, and mirostat with top-k', async () => {
    for (const [flag, value] of [['--min-p', '2'], ['--typical-p', '0'], ['--repeat-penalty', '0'], ['--repeat-last-n', '-2'], ['--mirostat', '3'], ['--logprobs', '-1'], ['--n-samples', '0'], ['--stop', '']]) {
      const r = await run(['generate', PROMPT, flag, value]);
      expect(r.code, flag).toBe(2);
      expect(r.stderr, flag).toContain(`option '${flag} <`);
    }
    const clash = await run(['generate', PROMPT, '--mirostat', '2', '--top-k', '10', '-n', '2']);
    expect(clash.code).toBe(1);
    expect(clash.stderr).toContain('topK: has no effect with mirostat 2');
  });
});

describe('speculative decoding and beam search through generate', () => {
  it('greedy with prompt lookup or a draft model gives plain greedy tokens, with acceptance statistics', async () => {
    const plain = await one.generate(PROMPT, { temperature: 0, maxTokens: 48 });
    const lookup = await one.generate(PROMPT, { temperature: 0, maxTokens: 48, promptLookup: true, draftMax: 4 });
    expect(lookup.tokens).toEqual(plain.tokens);
    expect(lookup.text).toBe(plain.text);
    expect(lookup.speculative!.rounds).toBeGreaterThan(0);
    const drafted = await one.generate(PROMPT, { temperature: 0, maxTokens: 48, draftModel: two, draftMax: 6 });
    expect(drafted.tokens).toEqual(plain.tokens);
    expect(drafted.speculative!.acceptanceRate).toBe(1); // the same weights: every proposal holds
  });

  it('stops on a stop string under speculation, as plain decoding does', async () => {
    const plain = await one.generate(PROMPT, { temperature: 0, maxTokens: 48, stop: ['Lily'] });
    const lookup = await one.generate(PROMPT, { temperature: 0, maxTokens: 48, stop: ['Lily'], promptLookup: true });
    expect([lookup.text, lookup.stopReason, lookup.stopSequence]).toEqual([plain.text, 'stop', 'Lily']);
  });

  it('beam search: one beam is greedy, several are deterministic and return their hypotheses', async () => {
    const plain = await one.generate(PROMPT, { temperature: 0, maxTokens: 24 });
    const a = await one.generate(PROMPT, { numBeams: 3, maxTokens: 24 });
    const b = await two.generate(PROMPT, { numBeams: 3, maxTokens: 24 });
    expect(a.tokens).toEqual(b.tokens);
    expect(a.beams!.length).toBeGreaterThan(0);
    expect(a.beams![0].tokens.slice(0, a.tokens.length)).toEqual(a.tokens);
    expect((await one.generate(PROMPT, { temperature: 0, numBeams: 1, maxTokens: 24 })).tokens).toEqual(plain.tokens);
  });

  it('rejects options that cannot be combined', async () => {
    await expect(one.generate(PROMPT, { numBeams: 2, temperature: 0.5 })).rejects.toThrow(/temperature.*beam search|cannot be combined with beam search/);
    await expect(one.generate(PROMPT, { promptLookup: true, n: 2 })).rejects.toMatchObject({ code: 'conflicting_options', parameter: 'n' });
    await expect(one.generate(PROMPT, { draftModel: one })).rejects.toMatchObject({ code: 'invalid_draft', parameter: 'draftModel' });
    await expect(one.generate(PROMPT, { draftModel: two, promptLookup: true })).rejects.toMatchObject({ code: 'conflicting_options' });
  });
});

describe('smallmind generate: speculative and beam flags', () => {
  it('--prompt-lookup and --draft-model keep greedy output and report acceptance; --beams returns beams', async () => {
    const plain = JSON.parse((await run(['generate', PROMPT, '-n', '24', '--temp', '0', '--json'])).stdout);
    const lookup = JSON.parse((await run(['generate', PROMPT, '-n', '24', '--temp', '0', '--prompt-lookup', '--draft-max', '3', '--json'])).stdout);
    expect(lookup.tokens).toEqual(plain.tokens);
    expect(lookup.speculative.rounds).toBeGreaterThan(0);
    const q8 = new URL('../../shared/fixtures/stories260K-q8_0.gguf', import.meta.url).pathname;
    const drafted = JSON.parse((await run(['generate', PROMPT, '-n', '24', '--temp', '0', '--draft-model', q8, '--json'])).stdout);
    expect(drafted.tokens).toEqual(plain.tokens);
    expect(drafted.speculative.acceptanceRate).toBeGreaterThan(0.5);
    const beams = JSON.parse((await run(['generate', PROMPT, '-n', '12', '--beams', '2', '--json'])).stdout);
    expect(beams.beams.length).toBeGreaterThan(0);
    const bad = await run(['generate', PROMPT, '--beams', '2', '--temp', '0.5']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/temperature: cannot be combined with beam search/);
  });
});

describe('constrained output through generate', () => {
  const schema = {
    type: 'object',
    properties: { name: { type: 'string', maxLength: 12 }, age: { type: 'integer', minimum: 0, maximum: 120 }, pet: { enum: ['cat', 'dog'] } },
    required: ['name', 'age', 'pet'],
    additionalProperties: false,
  };

  it('jsonSchema, jsonObject, regex and grammar outputs always match, at temperature 1', async () => {
    for (let seed = 0; seed < 4; seed++) {
      const json = await one.generate(PROMPT, { temperature: 1, seed, maxTokens: 300, jsonSchema: schema });
      expect(json.stopReason).toBe('eos');
      const value = JSON.parse(json.text);
      expect(Object.keys(value)).toEqual(['name', 'age', 'pet']);
      expect(value.age >= 0 && value.age <= 120 && ['cat', 'dog'].includes(value.pet) && value.name.length <= 12).toBe(true);
      const re = await one.generate(PROMPT, { temperature: 1, seed, maxTokens: 40, regex: '[0-9]{3}-[a-z]{2,4}' });
      expect(re.text).toMatch(/^[0-9]{3}-[a-z]{2,4}$/);
      const g = await one.generate(PROMPT, { temperature: 1, seed, maxTokens: 40, grammar: 'root ::= ("yes" | "no") "."' });
      expect(['yes.', 'no.']).toContain(g.text);
    }
    const obj = await one.generate(PROMPT, { temperature: 0, maxTokens: 400, jsonObject: true });
    if (obj.stopReason === 'eos') expect(typeof JSON.parse(obj.text)).toBe('object');
  });

  it('rejects two constraints at once, unsupported schema keywords and bad grammars, naming them', async () => {
    await expect(one.generate(PROMPT, { jsonObject: true, regex: 'a' })).rejects.toMatchObject({ code: 'conflicting_options', parameter: 'regex' });
    await expect(one.generate(PROMPT, { jsonSchema: { type: 'object', minProperties: 1 } })).rejects.toThrow(/minProperties/);
    await expect(one.generate(PROMPT, { grammar: 'root ::= "a" (' })).rejects.toThrow(/line 1, column \d+/);
    await expect(one.generate(PROMPT, { grammar: 'root ::= "a"', promptLookup: true })).rejects.toMatchObject({ code: 'conflicting_options', parameter: 'grammar' });
  });

  it('the CLI takes --json-schema (inline or a file), --grammar-file and --regex', async () => {
    const inline = await run(['generate', PROMPT, '--temp', '1', '--seed', '1', '-n', '300', '--json-schema', JSON.stringify(schema), '--json']);
    expect(Object.keys(JSON.parse(JSON.parse(inline.stdout).text))).toEqual(['name', 'age', 'pet']);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'smallmind-gen-'));
    try {
      fs.writeFileSync(path.join(dir, 'yn.gbnf'), 'root ::= answer "."\nanswer ::= "yes" | "no"\n');
      const g = await run(['generate', PROMPT, '--temp', '1', '--seed', '2', '--grammar-file', path.join(dir, 'yn.gbnf'), '--json']);
      expect(['yes.', 'no.']).toContain(JSON.parse(g.stdout).text);
      const missing = await run(['generate', PROMPT, '--grammar-file', path.join(dir, 'none.gbnf')]);
      expect(missing.stderr).toMatch(/none\.gbnf/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    const re = await run(['generate', PROMPT, '--temp', '1', '--seed', '3', '--regex', '[a-c]{4}', '--json']);
    expect(JSON.parse(re.stdout).text).toMatch(/^[a-c]{4}$/);
  });
});

describe('model.chat and smallmind chat with decoding flags', () => {
  it('model.chat renders the template, then generates (here greedy, constrained to JSON)', async () => {
    const messages = [{ role: 'user', content: 'Give me a name.' }];
    const prompt = one.applyChatTemplate(messages);
    const direct = await one.generate(one.chatPromptTokens(prompt), { temperature: 0, maxTokens: 16 });
    const chat = await one.chat(messages, { temperature: 0, maxTokens: 16 });
    expect(chat.tokens).toEqual(direct.tokens);
    expect(chat.promptTokens[0]).toBe(one.tokenizer.bos); // chatml writes no BOS; the vocabulary asks for one
    const json = await one.chat(messages, { temperature: 1, seed: 4, maxTokens: 200, jsonSchema: { type: 'object', properties: { name: { enum: ['Lily', 'Ben'] } }, required: ['name'] } });
    expect(['Lily', 'Ben']).toContain(JSON.parse(json.text).name);
  });

  it('smallmind chat takes --prompt-lookup and --json-schema', async () => {
    const r = await run(['chat', '--temp', '0', '-n', '12', '--prompt-lookup', '--json'], 'Hello\n');
    expect(r.code).toBe(0);
    const plain = await run(['chat', '--temp', '0', '-n', '12', '--json'], 'Hello\n');
    expect(JSON.parse(r.stdout).reply).toBe(JSON.parse(plain.stdout).reply);
    const json = await run(['chat', '--temp', '1', '--seed', '1', '-n', '100', '--json-object', '--json'], 'Hello\n');
    const reply = JSON.parse(json.stdout).reply;
    if (JSON.parse(json.stdout).stopReason === 'eos') expect(typeof JSON.parse(reply)).toBe('object');
  });
});
