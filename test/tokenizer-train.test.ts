/**
 * The BPE trainer (src/train/tokenizer-trainer.ts): exact merges on tiny corpora, the vocabulary
 * layout of both types, tokenizer.json files that load in our engine and in @huggingface/tokenizers
 * with the same ids, and `smallmind tokenizer train` end to end.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { afterAll, describe, expect, it } from 'vitest';
import { FormatError, RequestError } from '../src/errors.js';
import { writeTokenizerJson } from '../src/formats/tokenizer-json.js';
import { tokenizerJsonFromVocab } from '../src/tokenizers/hf.js';
import { loadTokenizer } from '../src/tokenizers/index.js';
import { TokenType } from '../src/tokenizers/vocab.js';
import { learnMerges, trainTokenizer, trainTokenizerFromFiles, type TokenizerTrainType } from '../src/train/tokenizer-trainer.js';
import { run } from './helpers/cli.js';

const shared = (p: string): string => fileURLToPath(new URL(`../../shared/${p}`, import.meta.url));
const shakespeareFile = shared('data/tinyshakespeare/input.txt');
const shakespeare = fs.readFileSync(shakespeareFile, 'utf8');

/** learnMerges on words given as strings over an alphabet of their characters (code point order, no specials). */
function mergesOf(wordCounts: [string, number][], minFrequency: number, vocabSize = 1000) {
  const alphabet = [...new Set(wordCounts.flatMap(([w]) => [...w]))].sort();
  const words = wordCounts.map(([w]) => [...w].map((c) => alphabet.indexOf(c)));
  return learnMerges({ tokens: alphabet, words, counts: wordCounts.map(([, n]) => n), vocabSize, minFrequency });
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'smallmind-train-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function caught(f: () => unknown): unknown {
  try {
    f();
  } catch (err) {
    return err;
  }
  throw new Error('expected an error');
}

describe('learnMerges', () => {
  it("gives Hugging Face BpeTrainer's own unit-test result (ties: smallest pair ids)", () => {
    const corpus: [string, number][] = [
      ['roses', 1], ['are', 2], ['red', 1], ['voilets', 1], ['blue', 1], ['BERT', 1],
      ['is', 2], ['big', 1], ['and', 1], ['so', 1], ['GPT-2', 1],
    ];
    const { tokens, merges } = mergesOf(corpus, 2);
    expect(tokens).toEqual([
      '-', '2', 'B', 'E', 'G', 'P', 'R', 'T', 'a', 'b', 'd', 'e', 'g', 'i', 'l', 'n', 'o', 'r', 's', 't', 'u', 'v',
      're', 'are', 'is',
    ]);
    expect(merges).toEqual([['r', 'e'], ['a', 're'], ['i', 's']]);
  });

  it('merges "aaabdaaabac" as the textbook does: aa, ab, then aa+ab', () => {
    const { tokens, merges } = mergesOf([['aaabdaaabac', 1]], 2);
    expect(merges).toEqual([['a', 'a'], ['a', 'b'], ['aa', 'ab']]);
    expect(tokens.slice(4)).toEqual(['aa', 'ab', 'aaab']);
  });

  it('merges overlapping pairs left to right and keeps counts exact ("aaaa" → aa aa → aaaa)', () => {
    const { merges } = mergesOf([['aaaa', 3], ['ab', 1]], 1);
    expect(merges).toEqual([['a', 'a'], ['aa', 'aa'], ['a', 'b']]);
  });

  it('never produces a reserved (special) token text: that pair is dropped', () => {
    const { tokens, merges } = learnMerges({ tokens: ['<', '>', 's'], words: [[0, 2, 1]], counts: [3], vocabSize: 10, minFrequency: 1, reserved: new Set(['<s>']) });
    expect(merges).toEqual([['<', 's']]);
    expect(tokens).toEqual(['<', '>', 's', '<s']);
  });

  it('stops at vocabSize', () => {
    const { tokens, merges } = mergesOf([['aaabdaaabac', 1]], 1, 6);
    expect(tokens.length).toBe(6);
    expect(merges).toEqual([['a', 'a'], ['a', 'b']]);
  });
});

describe('trainTokenizer', () => {
  const text = 'the cat sat on the mat. the cat ate the rat; that is that.\n';

  it('byte-bpe: <|endoftext|>, the specials, the 256 byte characters, then the merges', () => {
    const { vocab, merges, alphabet, words } = trainTokenizer([text, text], { type: 'byte-bpe', vocabSize: 266, specialTokens: ['<pad>'] });
    expect(vocab.tokens.slice(0, 3)).toEqual(['<|endoftext|>', '<pad>', '!']);
    expect(vocab.tokens[2 + 255]).toBe('\u0143'); // the last byte character, for byte 0xAD
    expect([alphabet, merges, words]).toEqual([256, 8, 13]);
    // "at" (16 times), "th" (12), "Ġ th" (10), "Ġth e" (6); then four pairs of 4, smallest ids first.
    expect(vocab.merges).toEqual([['a', 't'], ['t', 'h'], ['Ġ', 'th'], ['Ġth', 'e'], ['c', 'at'], ['Ġ', 'cat'], ['Ġth', 'at'], ['i', 's']]);
    expect(vocab.tokens.slice(258)).toEqual(['at', 'th', 'Ġth', 'Ġthe', 'cat', 'Ġcat', 'Ġthat', 'is']);
    expect([...vocab.types.slice(0, 3)]).toEqual([TokenType.control, TokenType.control, TokenType.normal]);
    expect(vocab).toMatchObject({ model: 'gpt2', byteLevel: true, pre: 'gpt-2', bos: 0, eos: 0, addBos: false, addEos: false });
  });

  it('bpe: <unk> <s> </s>, the specials, 256 byte tokens, the characters, then merges within "▁" words', () => {
    const { vocab, merges, alphabet } = trainTokenizer([text, text], { type: 'bpe', vocabSize: 284, specialTokens: ['<pad>'] });
    expect(vocab.tokens.slice(0, 5)).toEqual(['<unk>', '<s>', '</s>', '<pad>', '<0x00>']);
    expect(vocab.tokens[259]).toBe('<0xFF>');
    expect([alphabet, merges]).toEqual([15, 9]);
    // Line breaks stand alone (no merge holds one); punctuation stays with its word.
    expect(vocab.tokens.slice(260, 275).join('')).toBe('\n.;acehimnorst▁');
    expect(vocab.merges).toEqual([['a', 't'], ['t', 'h'], ['▁', 'th'], ['▁th', 'e'], ['c', 'at'], ['▁', 'cat'], ['at', '.'], ['i', 's'], ['m', 'at.']]);
    expect([...vocab.types.slice(0, 5)]).toEqual([TokenType.unknown, TokenType.control, TokenType.control, TokenType.control, TokenType.byte]);
    expect(vocab.types[260]).toBe(TokenType.normal);
    expect(vocab).toMatchObject({ byteLevel: false, byteFallback: true, unk: 0, bos: 1, eos: 2, addBos: true, addEos: false });
  });

  it('keeps the most frequent characters when the alphabet is limited; the others split their words', () => {
    const { vocab, alphabet } = trainTokenizer(['aé aé aé xyz'], { type: 'bpe', vocabSize: 262, limitAlphabet: 3, minFrequency: 1 });
    expect(alphabet).toBe(3);
    expect(vocab.tokens.slice(259, 262)).toEqual(['a', 'é', '▁']); // x, y, z (once each) left out
  });

  it('is deterministic', () => {
    const slice = shakespeare.slice(0, 50_000);
    const a = trainTokenizer([slice], { type: 'bpe', vocabSize: 600 });
    const b = trainTokenizer([slice], { type: 'bpe', vocabSize: 600 });
    expect(b.vocab.tokens).toEqual(a.vocab.tokens);
    expect(b.vocab.merges).toEqual(a.vocab.merges);
  });

  it('cuts a long document into chunks without changing its words', () => {
    // Over 1 MiB (the chunk size): the words counted must be those of the text taken whole.
    const big = shakespeare.repeat(2);
    const whole = trainTokenizer([shakespeare], { type: 'byte-bpe', vocabSize: 400, minFrequency: 1 });
    const twice = trainTokenizer([big], { type: 'byte-bpe', vocabSize: 400, minFrequency: 1 });
    expect(twice.words).toBe(whole.words);
    expect(twice.vocab.merges).toEqual(whole.vocab.merges);
  });

  it('trains 4096 tokens on the whole of tinyshakespeare in seconds', () => {
    for (const type of ['byte-bpe', 'bpe'] as const) {
      const start = performance.now();
      const { vocab, merges } = trainTokenizerFromFiles([shakespeareFile], { type, vocabSize: 4096 });
      const seconds = (performance.now() - start) / 1000;
      expect(vocab.tokens.length).toBe(4096);
      expect(merges).toBe(type === 'byte-bpe' ? 3839 : 3772);
      expect(new Set(vocab.tokens).size).toBe(4096);
      expect(seconds).toBeLessThan(10);
    }
  });

  it('reports progress for counting (bytes) and merging (tokens)', () => {
    const seen: string[] = [];
    trainTokenizer([text], { type: 'byte-bpe', vocabSize: 259, minFrequency: 1, onProgress: (phase, done, total) => seen.push(`${phase} ${done}/${total}`) });
    expect(seen).toEqual([`count ${text.length}/${text.length}`, 'merge 1/2', 'merge 2/2']);
  });
});

describe('trainTokenizer errors', () => {
  it('a vocabulary smaller than the base alphabet names vocabSize and the base', () => {
    const err = caught(() => trainTokenizer([shakespeare.slice(0, 10_000)], { type: 'bpe', vocabSize: 300 }));
    expect(err).toBeInstanceOf(RequestError);
    expect(err).toMatchObject({ code: 'vocab_size_too_small', parameter: 'vocabSize' });
    expect((err as Error).message).toMatch(/300 is less than the base vocabulary of \d+ tokens \(3 special, 256 byte fallback, \d+ characters\)/);
  });

  it('a vocabulary larger than the text allows says how many merges were possible', () => {
    const err = caught(() => trainTokenizer(['the cat sat on the mat'], { type: 'byte-bpe', vocabSize: 1000 }));
    expect(err).toMatchObject({ code: 'vocab_size_too_large', parameter: 'vocabSize' });
    expect((err as Error).message).toContain('only 3 merges were possible with pairs seen at least 2 times (the minimum frequency), for a vocabulary of 260 tokens');
  });

  it('a missing file is a FormatError naming it; empty text and bad specials are request errors', () => {
    const err = caught(() => trainTokenizerFromFiles(['/nonexistent/corpus.txt'], { type: 'bpe', vocabSize: 500 }));
    expect(err).toBeInstanceOf(FormatError);
    expect(err).toMatchObject({ code: 'cannot_open', file: '/nonexistent/corpus.txt' });
    expect(caught(() => trainTokenizer([''], { type: 'bpe', vocabSize: 500 }))).toMatchObject({ code: 'empty_text' });
    expect(caught(() => trainTokenizer(['x'], { type: 'bpe', vocabSize: 500, specialTokens: ['<s>'] }))).toMatchObject({ code: 'invalid_special', parameter: 'specialTokens' });
    expect(caught(() => trainTokenizer(['x'], { type: 'bpe', vocabSize: 500, specialTokens: ['<a>', '<a>'] }))).toMatchObject({ code: 'invalid_special' });
    expect(caught(() => trainTokenizer(['x'], { type: 'bpe', vocabSize: 0 }))).toMatchObject({ code: 'invalid_vocab_size' });
    expect(caught(() => trainTokenizer(['x'], { type: 'byte-bpe', vocabSize: 500, specialTokens: ['Ġ'] }))).toMatchObject({
      code: 'invalid_special',
      message: 'specialTokens: "Ġ" is already in the alphabet (a byte character)',
    });
  });
});

const SPECIALS_AS_TEXT = '<s> and </s> and <|endoftext|> written as text, and <|im_start|>';

/** Texts the training slice never saw: other Shakespeare, accents, CJK, emoji, digits, odd spacing. */
const UNSEEN = [
  shakespeare.slice(600_000, 610_000),
  'Héllo wörld — naïve café, façade; Ærøskøbing',
  '東京は日本の首都です。北京是中国的首都。서울은 한국의 수도입니다.',
  'emoji 🎉👍🏽 and a family 👨‍👩‍👧 ✨',
  'digits 1234567890, 3.14159 and 2^64 = 18446744073709551616',
  '  two leading spaces,\ttabs\t\tand\r\nCRLF   trailing   ',
  "it's what we've done, they'll say; I'm sure he'd agree",
  SPECIALS_AS_TEXT,
  '',
];

describe('trained tokenizer.json: our loader and @huggingface/tokenizers agree', () => {
  const training = shakespeare.slice(0, 100_000);
  for (const [type, vocabSize] of [['byte-bpe', 600], ['bpe', 600]] as [TokenizerTrainType, number][]) {
    it(`${type}: same ids on the training text and unseen text, and decode gives the text back`, () => {
      const { vocab } = trainTokenizer([training], { type, vocabSize, specialTokens: ['<|im_start|>'] });
      const file = path.join(tmp, `${type}.json`);
      writeTokenizerJson(file, tokenizerJsonFromVocab(vocab));
      const ours = loadTokenizer(file);
      const hf = new HfTokenizer(JSON.parse(fs.readFileSync(file, 'utf8')), {});
      expect(ours.vocabSize).toBe(vocabSize);
      for (const text of [training, ...UNSEEN]) {
        // Hugging Face always matches special tokens in the text: compare with parseSpecial on.
        const ids = ours.encode(text, { addSpecial: false, parseSpecial: true });
        expect(ids, JSON.stringify(text.slice(0, 40))).toEqual(hf.encode(text, { add_special_tokens: false }).ids);
        expect(ours.decode(ours.encode(text, { addSpecial: false }))).toBe(text);
        // Hugging Face decodes plain text back too (without a tokenizer_config.json saying
        // otherwise, transformers' decode "cleans up" spaces, as in " 's"; it refuses no ids).
        if (ids.length > 0 && text !== SPECIALS_AS_TEXT) expect(hf.decode(ids, { clean_up_tokenization_spaces: false })).toBe(text);
      }
      // BOS as the vocabulary says (Llama style adds <s>), and the special token parsed when asked.
      const withSpecials = ours.encode('<|im_start|>Hi', { parseSpecial: true });
      expect(withSpecials).toEqual(hf.encode('<|im_start|>Hi').ids);
      expect(withSpecials.slice(0, type === 'bpe' ? 2 : 1)).toEqual(type === 'bpe' ? [1, 3] : [1]);
    });
  }
});

describe('smallmind tokenizer train', () => {
  it('trains, writes tokenizer.json and prints a --json summary', async () => {
    const corpus = path.join(tmp, 'corpus.txt');
    fs.writeFileSync(corpus, shakespeare.slice(0, 100_000));
    const out = path.join(tmp, 'cli.json');
    const r = await run(['tokenizer', 'train', '--type', 'byte-bpe', '--vocab-size', '500', '-f', corpus, '-o', out, '--special', '<|a|>', '<|b|>', '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const summary = JSON.parse(r.stdout);
    expect(summary).toMatchObject({ path: out, type: 'byte-bpe', vocabSize: 500, merges: 500 - 259, alphabet: 256 });
    expect(summary.seconds).toBeGreaterThan(0);
    const tok = loadTokenizer(out);
    expect(tok.vocabSize).toBe(500);
    expect([tok.tokenText(1), tok.tokenText(2)]).toEqual(['<|a|>', '<|b|>']);
    // The same as the library gives.
    const lib = trainTokenizer([shakespeare.slice(0, 100_000)], { type: 'byte-bpe', vocabSize: 500, specialTokens: ['<|a|>', '<|b|>'] });
    const text = 'First Citizen: we are accounted poor citizens';
    expect(tok.encode(text)).toEqual(loadTokenizerOf(lib.vocab, 'lib').encode(text));
  });

  it('takes several files (-f a -f b), reports progress lines on stderr and a line on stdout', async () => {
    const a = path.join(tmp, 'a.txt');
    const b = path.join(tmp, 'b.txt');
    fs.writeFileSync(a, shakespeare.slice(0, 60_000));
    fs.writeFileSync(b, shakespeare.slice(60_000, 120_000));
    const out = path.join(tmp, 'two.json');
    const r = await run(['tokenizer', 'train', '--type', 'bpe', '--vocab-size', '700', '-f', a, '-f', b, '-o', out, '--min-frequency', '3']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^wrote ${out}: bpe, 700 tokens \\(\\d+ merges, alphabet of \\d+, \\d+ distinct words\\) in \\d`));
    expect(r.stderr).toMatch(/^counting words: 100% /m);
    expect(r.stderr).toMatch(/^merging: 100% \(\d+\/\d+ merges/m);
    expect(loadTokenizer(out).encode('Hi')[0]).toBe(1);
  });

  it('reports errors naming the file or the flag', async () => {
    const corpus = path.join(tmp, 'small.txt');
    fs.writeFileSync(corpus, 'the cat sat on the mat');
    const out = path.join(tmp, 'err.json');
    const base = ['tokenizer', 'train', '--type', 'byte-bpe', '-o', out];

    let r = await run([...base, '--vocab-size', '500', '-f', '/nonexistent/text.txt']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('error: /nonexistent/text.txt: no such file\n');

    r = await run([...base, '--vocab-size', '100', '-f', corpus, '--json']);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout).error).toEqual({
      code: 'vocab_size_too_small',
      message: '--vocab-size: 100 is less than the base vocabulary of 257 tokens (1 special, 256 byte characters)',
    });

    r = await run([...base, '--vocab-size', '1000', '-f', corpus]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: --vocab-size: 1000 is more than this text gives: only 3 merges were possible/m);

    r = await run(['tokenizer', 'train', '--type', 'bpe', '--vocab-size', '500', '-f', corpus, '-o', '/nonexistent/dir/tok.json']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('error: /nonexistent/dir/tok.json: its folder does not exist\n');

    r = await run([...base, '--vocab-size', '500', '-f', corpus, '--special', '<|endoftext|>']);
    expect(r.stderr).toMatch(/^error: --special: "<\|endoftext\|>" is already a base special token/);

    r = await run(['tokenizer', 'train', '--type', 'wordpiece', '--vocab-size', '500', '-f', corpus, '-o', out]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("'--type <type>' argument 'wordpiece' is invalid");
    r = await run(['tokenizer', 'train', '--type', 'bpe', '-f', corpus, '-o', out]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("required option '--vocab-size <n>' not specified");
    expect(fs.existsSync(out)).toBe(false);
  });
});

/** A Tokenizer for a trained vocabulary, through the same tokenizer.json path as the CLI. */
function loadTokenizerOf(vocab: Parameters<typeof tokenizerJsonFromVocab>[0], name: string) {
  const file = path.join(tmp, `${name}.json`);
  writeTokenizerJson(file, tokenizerJsonFromVocab(vocab));
  return loadTokenizer(file);
}
