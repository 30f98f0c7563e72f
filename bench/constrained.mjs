#!/usr/bin/env node
/**
 * The cost of constrained decoding: per-token time of JSON-Schema-constrained generation against
 * unconstrained generation on the same model, prompt and sampler settings.
 *
 *   npm run bench:constrained -- [--rounds 7] [-n 64] [--model FILE]
 *
 * Default model: the random-weight Llama-2 GGUF with the 32000-token vocabulary (../shared), whose
 * forward pass is tiny, so the grammar's share of each token shows plainly. Each round runs
 * unconstrained then constrained (alternating, fresh seeds per round, the same seed for both),
 * timing whole `generate` calls; per-token time = (wall time − prompt evaluation) / tokens
 * generated, so that a constrained run that ends early (its JSON is complete) is not charged the
 * prompt over fewer tokens. The schema's strings are long enough that most runs use the budget. The first
 * constrained call in the process also builds the vocabulary trie (once per tokenizer) and pays
 * for each new grammar state's mask: reported separately as "first call".
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { die, median } from './common.mjs';

const ROOT = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const args = parseArgs(process.argv.slice(2));
const { loadModel } = await import(path.join(ROOT, 'dist', 'model.js'));
const { VocabTrie } = await import(path.join(ROOT, 'dist', 'generation', 'grammar', 'index.js'));

const SCHEMA = {
  type: 'object',
  properties: {
    name: { type: 'string', maxLength: 200 },
    age: { type: 'integer', minimum: 0, maximum: 120 },
    tags: { type: 'array', items: { type: 'string', maxLength: 12 }, maxItems: 4 },
    address: { type: 'object', properties: { city: { type: 'string' }, zip: { type: 'string', pattern: '^[0-9]{5}$' } }, required: ['city', 'zip'] },
  },
  required: ['name', 'age', 'tags', 'address'],
};

const model = await loadModel(args.model, { threads: 1 });
const prompt = 'The record:';
const settings = { temperature: 1, maxTokens: args.n };

let start = performance.now();
VocabTrie.of(model.tokenizer);
const trieMs = performance.now() - start;

start = performance.now();
const first = await model.generate(prompt, { ...settings, seed: 1000, jsonSchema: SCHEMA });
const firstMs = performance.now() - start - first.timings.promptMs;

const perToken = { plain: [], constrained: [] };
for (let round = 0; round < args.rounds; round++) {
  for (const mode of ['plain', 'constrained']) {
    const t0 = performance.now();
    const r = await model.generate(prompt, { ...settings, seed: round, ...(mode === 'constrained' && { jsonSchema: SCHEMA }) });
    const ms = (performance.now() - t0 - r.timings.promptMs) / Math.max(1, r.tokens.length);
    perToken[mode].push(ms);
    process.stderr.write(`round ${round + 1}/${args.rounds} ${mode.padEnd(12)} ${r.tokens.length} tokens, ${ms.toFixed(3)} ms/token\n`);
  }
}
const plain = median(perToken.plain);
const constrained = median(perToken.constrained);
console.log(`\nmodel ${path.basename(args.model)} (vocab ${model.tokenizer.vocabSize}), ${args.n} tokens, temperature 1, top-k 40, 1 thread, median of ${args.rounds}\n`);
console.log('| | ms/token |');
console.log('|---|--:|');
console.log(`| unconstrained | ${plain.toFixed(3)} |`);
console.log(`| JSON Schema | ${constrained.toFixed(3)} |`);
console.log(`| overhead | ${(((constrained - plain) / plain) * 100).toFixed(1)}% |`);
console.log(`\nvocabulary trie, built once per tokenizer: ${trieMs.toFixed(1)} ms`);
console.log(`first constrained call (new grammar states): ${(firstMs / Math.max(1, first.tokens.length)).toFixed(3)} ms/token over ${first.tokens.length} tokens`);
model.dispose();

function parseArgs(argv) {
  const a = { rounds: 7, n: 64, model: path.join(ROOT, '..', 'shared', 'models', 'llama-2-tiny-random', 'llama-2-tiny-random.gguf') };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (value === undefined) die(`${flag} needs a value`);
    if (flag === '--rounds' || flag === '-n') {
      const n = Number(value);
      if (!Number.isInteger(n) || n < 1) die(`${flag}: expected a positive integer, got '${value}'`);
      a[flag === '-n' ? 'n' : 'rounds'] = n;
    } else if (flag === '--model') a.model = path.resolve(value);
    else die(`unknown option ${flag} (options: --rounds N, -n N, --model FILE)`);
  }
  return a;
}
