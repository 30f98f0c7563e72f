#!/usr/bin/env node
/**
 * Tokenizer encode throughput: SmallMind vs @huggingface/tokenizers (tokenizers.js, the tokenizer
 * of transformers.js) on the same vocabularies and the same text.
 *
 *   npm run bench:tokenizers -- [--rounds 7] [--text FILE] [--out FILE]
 *
 * The vocabularies are llama.cpp's vocab-only GGUFs for the Llama SentencePiece tokenizer and the
 * GPT-2 byte-level BPE. tokenizers.js reads Hugging Face's tokenizer.json, so each GGUF is turned
 * into one with our exporter (the same file `smallmind tokenizer export` writes); the bench checks
 * whether both libraries give identical ids, and says so in the table.
 *
 * Two workloads: the whole text in one encode call, and the text line by line (one call per
 * non-empty line). Timing: one untimed warm-up pass each (it also checks the ids), then `rounds`
 * rounds alternating the two libraries (ours, peer, ours, peer, ...). Each library keeps its
 * tokenizer (and whatever it caches) across rounds, as a real program would. Medians and the
 * ours/peer ratio are reported; the JSON keeps every run.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { die, median } from './common.mjs';

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.dirname(BENCH_DIR);
const SHARED = path.join(ROOT, '..', 'shared');

const args = parseArgs(process.argv.slice(2));
if (!fs.existsSync(path.join(ROOT, 'dist', 'tokenizers', 'index.js'))) die('dist/ is missing: run `npm run build` first');
const { ggufVocab, loadTokenizer } = await import(path.join(ROOT, 'dist', 'tokenizers', 'index.js'));
const { tokenizerConfigFromVocab, tokenizerJsonFromVocab } = await import(path.join(ROOT, 'dist', 'tokenizers', 'hf-export.js'));
const { readGGUF } = await import(path.join(ROOT, 'dist', 'formats', 'gguf.js'));
let HfTokenizer;
try {
  ({ Tokenizer: HfTokenizer } = await import('@huggingface/tokenizers'));
} catch {
  die('@huggingface/tokenizers is missing: it is a devDependency, run `npm install` first');
}

const text = fs.readFileSync(args.text, 'utf8');
const megabytes = Buffer.byteLength(text) / 1e6;
const VOCABS = [
  { name: 'llama SPM (32000)', file: 'ggml-vocab-llama-spm.gguf' },
  { name: 'GPT-2 byte-BPE (50257)', file: 'ggml-vocab-gpt-2.gguf' },
];

// Two workloads: the whole file in one encode call, and the file line by line (one call per line,
// as when encoding many short documents or chat messages).
const lines = text.split('\n').filter((line) => line.length > 0);
const WORKLOADS = [
  { name: 'whole text', run: (encode) => encode(text) },
  { name: 'line by line', run: (encode) => lines.flatMap((line) => encode(line)) },
];

const results = [];
for (const v of VOCABS) {
  const gguf = path.join(SHARED, 'models', 'llamacpp-vocab', v.file);
  const ours = loadTokenizer(gguf);
  const vocab = ggufVocab(readGGUF(gguf));
  const peer = new HfTokenizer(tokenizerJsonFromVocab(vocab), tokenizerConfigFromVocab(vocab));
  const encoders = {
    smallmind: (s) => ours.encode(s, { addSpecial: false }),
    'tokenizers.js': (s) => peer.encode(s, { add_special_tokens: false }).ids,
  };
  for (const w of WORKLOADS) {
    const a = w.run(encoders.smallmind);
    const b = w.run(encoders['tokenizers.js']);
    const firstDiff = a.findIndex((id, i) => id !== b[i]);
    const identical = a.length === b.length && firstDiff === -1;
    if (!identical) process.stderr.write(`${v.name}, ${w.name}: ids differ (${a.length} vs ${b.length} tokens, first at ${firstDiff})\n`);
    const runs = { smallmind: [], 'tokenizers.js': [] };
    for (let round = 0; round < args.rounds; round++) {
      for (const [engine, encode] of Object.entries(encoders)) {
        const start = performance.now();
        w.run(encode);
        const mbs = megabytes / ((performance.now() - start) / 1000);
        runs[engine].push(mbs);
        process.stderr.write(`${v.name}, ${w.name}, round ${round + 1}/${args.rounds} ${engine.padEnd(14)} ${mbs.toFixed(2)} MB/s\n`);
      }
    }
    results.push({
      vocab: v.name, file: v.file, workload: w.name, tokens: a.length, identical_ids: identical,
      smallmind_mb_s: median(runs.smallmind), peer_mb_s: median(runs['tokenizers.js']), runs,
    });
  }
}

console.log(`\nencode throughput on ${path.basename(args.text)} (${megabytes.toFixed(2)} MB), medians of ${args.rounds} rounds\n`);
console.log('| vocabulary | workload | tokens | identical ids | SmallMind MB/s | tokenizers.js MB/s | ratio |');
console.log('|---|---|---:|:---:|---:|---:|---:|');
for (const r of results) {
  console.log(`| ${r.vocab} | ${r.workload} | ${r.tokens} | ${r.identical_ids ? 'yes' : 'NO'} | ${r.smallmind_mb_s.toFixed(2)} | ${r.peer_mb_s.toFixed(2)} | ${(r.smallmind_mb_s / r.peer_mb_s).toFixed(2)}× |`);
}
const peerVersion = JSON.parse(fs.readFileSync(path.join(ROOT, 'node_modules', '@huggingface', 'tokenizers', 'package.json'), 'utf8')).version;
const out = {
  date: new Date().toISOString(),
  machine: { cpu: os.cpus()[0]?.model, cores: os.availableParallelism(), node: process.version, platform: `${process.platform}-${process.arch}` },
  settings: { text: path.relative(ROOT, args.text), megabytes, rounds: args.rounds, peer: `@huggingface/tokenizers ${peerVersion}`, add_special: false },
  results,
};
fs.writeFileSync(args.out, `${JSON.stringify(out, null, 2)}\n`);
console.log(`\nwrote ${path.relative(process.cwd(), args.out) || args.out}`);

function parseArgs(argv) {
  const a = { rounds: 7, text: path.join(SHARED, 'data', 'tinyshakespeare', 'input.txt'), out: path.join(BENCH_DIR, 'tokenizers-results.json') };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[++i];
    if (value === undefined) die(`${flag} needs a value`);
    if (flag === '--rounds') {
      a.rounds = Number(value);
      if (!Number.isInteger(a.rounds) || a.rounds < 1) die(`--rounds: expected a positive integer, got '${value}'`);
    } else if (flag === '--text') a.text = path.resolve(value);
    else if (flag === '--out') a.out = path.resolve(value);
    else die(`unknown option ${flag} (options: --rounds N, --text FILE, --out FILE)`);
  }
  return a;
}
