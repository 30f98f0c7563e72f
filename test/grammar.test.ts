import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { FormatError, RequestError } from '../src/errors.js';
import { GrammarAutomaton, GrammarMatcher, grammarConstraint, parseGbnf, type GrammarConstraint } from '../src/generation/grammar/index.js';
import { utf8Step, UTF8_INVALID } from '../src/generation/grammar/matcher.js';
import { Sampler } from '../src/generation/sampler.js';
import { DEFAULT_MODEL_PATH, loadModel } from '../src/model.js';
import { Xoshiro128 } from '../src/tensor/random.js';
import { loadTokenizer, type Tokenizer } from '../src/tokenizers/index.js';

const shared = (p: string): string => fileURLToPath(new URL(`../../shared/${p}`, import.meta.url));
const llamaTokenizer = loadTokenizer(shared('models/llama-2-tiny-random/llama-2-tiny-random.gguf'));

// ── Example grammars, in the style of llama.cpp's grammars/ folder ─────────────────────────

const ARITHMETIC = String.raw`
# arithmetic with precedence: sums of products of factors
root   ::= expr
expr   ::= term (ws [+-] ws term)*
term   ::= factor (ws [*/] ws factor)*
factor ::= number | "(" ws expr ws ")" | "-" factor
number ::= [0-9]+ ("." [0-9]+)?
ws     ::= " "*
`;

const JSON_GRAMMAR = String.raw`
root   ::= value
value  ::= object | array | string | number | ("true" | "false" | "null") ws

object ::=
  "{" ws (
            string ":" ws value
    ("," ws string ":" ws value)*
  )? "}" ws

array  ::= "[" ws ( value ("," ws value)* )? "]" ws

string ::= "\"" (
    [^"\\\x7F\x00-\x1F] |
    "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4}) # escapes
  )* "\"" ws

number ::= "-"? ("0" | [1-9] [0-9]*) ("." [0-9]+)? ([eE] [-+]? [0-9]+)? ws
ws     ::= [ \t\n]{0,20}
`;

const LIST = String.raw`
root ::= item{1,5}
item ::= "- " [^\n]+ "\n"
`;

const CHESS = String.raw`
# a few moves of a game in standard algebraic notation
root    ::= "1. " pair ("\n" [1-9] [0-9]? ". " pair)*
pair    ::= move " " move
move    ::= (pawn | piece | castle) [+#]?
pawn    ::= ([a-h] "x")? [a-h] [1-8] ("=" [QRBN])?
piece   ::= [KQRBN] [a-h]? [1-8]? "x"? [a-h] [1-8]
castle  ::= "O-O" "-O"?
`;

/** JSON with every repetition bounded, so any path through it ends: for random-logit walks. */
const SMALL_JSON = String.raw`
root   ::= "{" ws (member ("," ws member){0,2})? "}"
member ::= key ":" ws inner
inner  ::= scalar | "[" ws (scalar ("," ws scalar){0,3})? "]"
scalar ::= key | "-"? [0-9]{1,4} | "true" | "false" | "null"
key    ::= "\"" [a-zA-Z0-9 _.é€]{0,8} "\""
ws     ::= " "?
`;

function grammarError(fn: () => unknown): { code: string; message: string; error: unknown } {
  try {
    fn();
  } catch (error) {
    return { code: (error as RequestError).code, message: (error as Error).message, error };
  }
  throw new Error('expected the grammar to be rejected');
}

describe('GBNF parsing', () => {
  it('parses the example grammars, with groups and repetitions rewritten into rules', () => {
    for (const text of [ARITHMETIC, JSON_GRAMMAR, LIST, CHESS, SMALL_JSON]) expect(() => parseGbnf(text)).not.toThrow();
    const g = parseGbnf('root ::= "ab" [c-e^]* | .\n');
    expect(g.rules.map((r) => r.name)).toEqual(['root', 'root_1']);
    expect(g.rules[0].alternatives).toEqual([
      [
        { kind: 'chars', ranges: [97, 97], negated: false },
        { kind: 'chars', ranges: [98, 98], negated: false },
        { kind: 'rule', rule: 1 },
      ],
      [{ kind: 'chars', ranges: [], negated: true }],
    ]);
    expect(g.rules[1].alternatives).toEqual([[{ kind: 'chars', ranges: [94, 94, 99, 101], negated: false }, { kind: 'rule', rule: 1 }], []]);
  });

  it('reads escapes, unicode and ranges in literals and classes', () => {
    const g = parseGbnf(String.raw`root ::= "\x41\u00e9\U0001F600\n\t\r\\\"\]\[\-" [\x00-\x1F\]é-ë😀]`);
    const chars = g.rules[0].alternatives[0].map((e) => (e.kind === 'chars' ? e.ranges : []));
    expect(chars.slice(0, -1).map((r) => r[0])).toEqual([0x41, 0xe9, 0x1f600, 10, 9, 13, 92, 34, 93, 91, 45]);
    expect(chars.at(-1)).toEqual([0, 0x1f, 0x5d, 0x5d, 0xe9, 0xeb, 0x1f600, 0x1f600]);
  });

  it('ends a sequence at a line break except inside groups and after | or ::=', () => {
    const a = new GrammarAutomaton(parseGbnf('root ::=\n  "a" |\n  "b" # comment\nother ::= ( "c"\n "d" )\n'));
    expect(['a', 'b'].map((s) => a.accepts(s))).toEqual([true, true]);
    expect(() => parseGbnf('root ::= "a"\n  "b"\n')).toThrow(/line 2, column 3: expected a rule name, found '"'/);
    expect(() => parseGbnf('root ::= "a"\n  | "b"\n')).toThrow(/line 2, column 3: expected a rule name, found '\|'/);
  });

  it('rejects malformed grammars with the line and column', () => {
    const cases: [string, string, string][] = [
      ['root ::= "abc', 'grammar_syntax', 'grammar: line 1, column 10: unterminated string literal'],
      ['root ::= "a"\nitem = "b"\n', 'grammar_syntax', "grammar: line 2, column 6: expected '::=' after rule name 'item', found '='"],
      ['root ::= item\nitem ::= "x" foo\n', 'grammar_undefined_rule', "grammar: line 2, column 14: rule 'foo' is used but never defined"],
      ['root ::= "\\q"', 'grammar_syntax', "grammar: line 1, column 11: unknown escape '\\q'"],
      ['root ::= ("a" | "b"\n', 'grammar_syntax', "grammar: line 2, column 1: expected ')' to close the group opened at line 1, column 10, found end of grammar"],
      ['root ::= "a" "b" )', 'grammar_syntax', "grammar: line 1, column 18: expected a new line or the end of rule 'root', found ')'"],
      ['\n\nroot ::= [z-a]', 'grammar_syntax', 'grammar: line 3, column 11: range z-a ends before it starts'],
      ['root ::= "a"{3,1}', 'grammar_syntax', 'grammar: line 1, column 13: repetition {3,1} has its maximum below its minimum'],
      ['root ::= * "a"', 'grammar_syntax', "grammar: line 1, column 10: '*' must follow something to repeat"],
      ['root ::= []', 'grammar_syntax', 'grammar: line 1, column 10: empty character class []'],
      ['root ::= "\\x4"', 'grammar_syntax', 'grammar: line 1, column 11: escape \\x needs 2 hex digits'],
      ['root ::= "a"{20000}', 'grammar_too_large', 'grammar: line 1, column 13: repetition bounds above 10000'],
      ['root ::= <[12]>', 'grammar_syntax', 'grammar: line 1, column 10: token references'],
      ['root ::= "a"\nroot ::= "b"', 'grammar_duplicate_rule', "grammar: line 2, column 1: rule 'root' is already defined on line 1"],
      ['item ::= "a"\n', 'grammar_no_root', "grammar: line 2, column 1: the grammar has no 'root' rule"],
      [
        'root ::= expr\nexpr ::= expr "+" num | num\nnum ::= [0-9]+\n',
        'grammar_left_recursion',
        "grammar: line 2, column 1: rule 'expr' is left-recursive",
      ],
      ['root ::= a\na ::= "x"? b "y"\nb ::= a? "z"\n', 'grammar_left_recursion', "grammar: line 2, column 1: rule 'a' is left-recursive"],
    ];
    for (const [text, code, start] of cases) {
      const e = grammarError(() => parseGbnf(text));
      expect(e.error).toBeInstanceOf(RequestError);
      expect([e.code, e.message.slice(0, start.length)]).toEqual([code, start]);
    }
  });

  it('names the file in errors for grammars read from a file, and takes another start rule', () => {
    const e = grammarError(() => parseGbnf('root ::= (', { file: 'moves.gbnf' }));
    expect(e.error).toBeInstanceOf(FormatError);
    expect(e.message).toBe("moves.gbnf: line 1, column 11: expected ')' to close the group opened at line 1, column 10, found end of grammar");
    expect(new GrammarAutomaton(parseGbnf('a ::= "x"\nb ::= "y"\n', { root: 'b' })).accepts('y')).toBe(true);
  });

  it('allows cycles through tail references, which do not grow the stack', () => {
    const a = GrammarAutomaton.fromGbnf('root ::= ("a"?)* "b"');
    expect(['b', 'ab', 'aaab', 'a', 'ba'].map((s) => a.accepts(s))).toEqual([true, true, true, false, false]);
  });
});

describe('the matcher accepts exactly the language', () => {
  const check = (grammar: string, good: string[], bad: string[]): void => {
    const a = GrammarAutomaton.fromGbnf(grammar);
    for (const s of good) expect([s, a.accepts(s)]).toEqual([s, true]);
    for (const s of bad) expect([s, a.accepts(s)]).toEqual([s, false]);
  };

  it('arithmetic', () => {
    check(ARITHMETIC, ['1', '1 + 2', '(1+2)*3', '-(4.5 / 2) - --7', '((((0))))', '12 *  3'], ['', '1 +', '(1', '1 2', '1.', '+1', '1 + (2 * 3']);
  });

  it('JSON', () => {
    const good = [{ a: [1, 2.5, -3e10, true, null], 'b"c': { d: 'é\n€😀' } }, [], {}, 'x', 0, -0.25, [[[]]]].map((v) => JSON.stringify(v));
    good.push('{ "a" : 1 }'.replace(' :', ':'), '[1,\n  2]', '"\\u00e9\\/"');
    check(JSON_GRAMMAR, good, ['{"a":1,}', '[1 2]', '"abc', '01', "{'a':1}", 'tru', '{"a"}', '"\\x"', '"a\nb"', '[1]]', '-', '1.e5']);
  });

  it('lists and bounded repetition', () => {
    check(LIST, ['- a\n', '- milk\n- eggs\n- 🍞 bread\n', '- 1\n- 2\n- 3\n- 4\n- 5\n'], ['', '- \n', '- a', 'a\n', '- 1\n- 2\n- 3\n- 4\n- 5\n- 6\n']);
    check('root ::= [ab]{2,4} "c"{3} "d"{1,}', ['abcccd', 'babacccddd'], ['acccd', 'abababcccd', 'abccd', 'abccc']);
    check('root ::= "x"{0} "y"{0,1} "z"{0,}', ['', 'y', 'zzz', 'yz'], ['x', 'yy']);
  });

  it('chess moves', () => {
    check(CHESS, ['1. e4 e5\n2. Nf3 Nc6\n3. Bb5 a6', '1. O-O O-O-O', '1. exd5 Qxd5+\n2. e8=Q# Kd7'], ['1. e4', '1. e9 e5', '1. Zf3 e5', '2. e4 e5', '1. e4 e5\n2. O-O-O-O e5']);
  });

  it('unicode classes and negation', () => {
    check('root ::= "héllo " [α-ω]+ " " [^a-z\\u0000-\\u001f]', ['héllo αβγ 😀', 'héllo ω Z'], ['hello αβγ 😀', 'héllo αβγ a', 'héllo A 😀']);
  });

  it('reports prefixes that can still become a match', () => {
    const a = GrammarAutomaton.fromGbnf(JSON_GRAMMAR);
    expect(['{"a": [1, ', '"abc', '', '[tr'].map((s) => a.acceptsPrefix(s))).toEqual([true, true, true, true]);
    expect(['{"a" 1', '[tx', '}'].map((s) => a.acceptsPrefix(s))).toEqual([false, false, false]);
  });
});

describe('bytes and UTF-8', () => {
  it('decodes byte by byte and rejects ill-formed sequences', () => {
    const decode = (bytes: number[]): number => bytes.reduce((p, b) => (p < 0 ? p : utf8Step(p, b)), 0);
    expect(decode([0x41])).toBe(-(0x41 + 1));
    expect(decode([0xf0, 0x9f, 0x98, 0x80])).toBe(-(0x1f600 + 1));
    for (const bad of [[0x80], [0xc0, 0x80], [0xe0, 0x80], [0xed, 0xa0, 0x80], [0xf4, 0x90], [0xf5], [0xc3, 0x41]]) {
      expect([bad, decode(bad)]).toEqual([bad, UTF8_INVALID]);
    }
  });

  it('matches characters split across tokens, and cuts prefixes no character can complete', () => {
    const m = new GrammarMatcher(GrammarAutomaton.fromGbnf('root ::= "é" [α-ω]'));
    expect(m.acceptBytes(Uint8Array.of(0xc3))).toBe(true); // first byte of é
    expect(m.complete).toBe(false);
    expect(m.acceptBytes(Uint8Array.of(0xa9, 0xce))).toBe(true); // rest of é, first byte of α..ο
    expect(m.clone().acceptByte(0xb1)).toBe(true); // α
    expect(m.clone().acceptByte(0x91)).toBe(false); // Α (capital): not in the class
    const n = new GrammarMatcher(GrammarAutomaton.fromGbnf('root ::= "é" [α-ω]'));
    expect(n.acceptByte(0xc4)).toBe(false); // U+0100..U+013F: none is é
  });
});

// ── Masking over a real 32000-token vocabulary ──────────────────────────────────────────────

/** Ids whose logit the constraint left finite. */
function unmasked(constraint: GrammarConstraint, vocabSize: number, eog: ReadonlySet<number>): number[] {
  const logits = new Float32Array(vocabSize);
  constraint.mask(logits, eog);
  const out: number[] = [];
  for (let id = 0; id < vocabSize; id++) if (logits[id] !== -Infinity) out.push(id);
  return out;
}

/** The vocabulary's byte tokens ("<0x7B>") spelling `text`'s UTF-8: a way to reach any text token by token. */
function byteTokens(tok: Tokenizer, text: string): number[] {
  const byId = new Map<string, number>();
  for (let id = 0; id < tok.vocabSize; id++) byId.set(tok.tokenText(id), id);
  return [...new TextEncoder().encode(text)].map((b) => byId.get(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`)!);
}

/** Random logits from a seeded generator. */
function randomLogits(rng: Xoshiro128, n: number): Float32Array {
  return Float32Array.from({ length: n }, () => rng.nextFloat() * 10);
}

function argmaxOf(logits: Float32Array): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  return best;
}

/** Greedy walk on random logits through the mask; returns the bytes produced and how it ended. */
function randomWalk(constraint: GrammarConstraint, tok: Tokenizer, seed: number, budget: number): { text: string; tokens: number; ended: string } {
  const rng = Xoshiro128.fromSeed(seed);
  const bytes: number[] = [];
  for (let n = 0; n < budget; n++) {
    if (constraint.finished) return { text: new TextDecoder().decode(Uint8Array.from(bytes)), tokens: n, ended: 'finished' };
    const logits = randomLogits(rng, tok.vocabSize);
    constraint.mask(logits, tok.endOfGeneration);
    const id = argmaxOf(logits);
    if (logits[id] === -Infinity) throw new Error(`seed ${seed}: every token masked after ${JSON.stringify(new TextDecoder().decode(Uint8Array.from(bytes)))}`);
    constraint.accept(id);
    if (tok.endOfGeneration.has(id)) return { text: new TextDecoder().decode(Uint8Array.from(bytes)), tokens: n + 1, ended: 'eog' };
    bytes.push(...tok.piece(id));
  }
  return { text: new TextDecoder().decode(Uint8Array.from(bytes)), tokens: budget, ended: 'budget' };
}

describe('token masks on the 32000-token llama vocabulary', () => {
  const tok = llamaTokenizer;
  const eog = tok.endOfGeneration;

  it('allows exactly the tokens whose bytes keep the text a valid prefix', () => {
    const automaton = GrammarAutomaton.fromGbnf(JSON_GRAMMAR);
    const prefixes = ['', '{', '{"a', '{"a":', '{"a": [1', '{"a": [1, tr', '"caf', '{"k": "\\', '{"k": "\\u00', '[-', '[1.5e', '{}', '[[]] '];
    for (const prefix of prefixes) {
      const constraint = grammarConstraint(automaton, tok);
      const start = new GrammarMatcher(automaton);
      expect(start.acceptText(prefix)).toBe(true);
      // Put the constraint at the same state as the prefix (its bytes go through accept token by token).
      for (const id of byteTokens(tok, prefix)) constraint.accept(id);
      const allowed = new Set(unmasked(constraint, tok.vocabSize, eog));
      for (let id = 0; id < tok.vocabSize; id++) {
        const piece = tok.piece(id);
        const expected = eog.has(id) ? start.complete : piece.length > 0 && start.clone().acceptBytes(piece);
        if (allowed.has(id) !== expected) throw new Error(`prefix ${JSON.stringify(prefix)}: token ${id} ${JSON.stringify(tok.tokenText(id))} allowed=${allowed.has(id)}`);
      }
      expect(allowed.size).toBeGreaterThan(0);
    }
  });

  it('allows() answers what mask() leaves, before and after the state\'s mask is cached', () => {
    const automaton = GrammarAutomaton.fromGbnf(JSON_GRAMMAR);
    const rng = Xoshiro128.fromSeed(11);
    for (const prefix of ['', '{"a', '{"a": [1', '"caf', '{"k": "\\u00', '{}']) {
      const c = grammarConstraint(automaton, tok);
      for (const id of byteTokens(tok, prefix)) c.accept(id);
      const ids = [...eog, ...Array.from({ length: 400 }, () => rng.nextU32() % tok.vocabSize)];
      const before = ids.map((id) => c.allows(id, eog)); // through the matcher
      const row = new Float32Array(tok.vocabSize);
      c.mask(row, eog);
      const want = ids.map((id) => row[id] === 0);
      expect([prefix, before]).toEqual([prefix, want]);
      expect([prefix, ids.map((id) => c.allows(id, eog))]).toEqual([prefix, want]); // from the cached mask
    }
  });

  it('allowedIds() lists what mask() leaves once a narrow state\'s mask is cached, and nothing for wide or uncached states', () => {
    const automaton = GrammarAutomaton.fromGbnf(JSON_GRAMMAR);
    for (const [prefix, narrow] of [['{"a": [1, tr', true], ['{}', true], ['"caf', false]] as const) {
      const c = grammarConstraint(automaton, tok);
      for (const id of byteTokens(tok, prefix)) c.accept(id);
      const fresh = c.clone();
      expect(c.allowedIds(eog)).toBeUndefined(); // nothing cached yet
      const allowed = unmasked(c, tok.vocabSize, eog); // caches this state's mask
      const listed = c.allowedIds(eog);
      expect([prefix, listed && [...listed]]).toEqual([prefix, narrow ? allowed : undefined]);
      if (narrow) expect(allowed.length).toBeGreaterThan(0);
      expect(fresh.allowedIds(eog) === undefined).toBe(!narrow); // clones share the cache
    }
  });

  it('a sampler picking from the best allowed candidates draws exactly as with the whole row masked', () => {
    const automaton = GrammarAutomaton.fromGbnf(JSON_GRAMMAR);
    const ctx = { eog, vocabSize: tok.vocabSize };
    const rng = Xoshiro128.fromSeed(5);
    for (const opts of [{ temperature: 1, topK: 40 }, { temperature: 0.7, topK: 5, topP: 0.9 }, { temperature: 0 }]) {
      const quick = grammarConstraint(automaton, tok);
      const full = grammarConstraint(automaton, tok);
      const maskOnly = { ...full, mask: full.mask.bind(full), accept: full.accept.bind(full), clone: () => full.clone(), allows: undefined };
      Object.defineProperties(maskOnly, { complete: { get: () => full.complete }, finished: { get: () => full.finished } });
      const a = new Sampler({ ...opts, seed: 3, constraint: quick }, ctx);
      const b = new Sampler({ ...opts, seed: 3, constraint: maskOnly as unknown as GrammarConstraint }, ctx);
      for (let step = 0; step < 30 && !quick.finished; step++) {
        const logits = Float32Array.from({ length: tok.vocabSize }, () => rng.nextFloat() * 8);
        const da = a.distribution(logits);
        const db = b.distribution(logits);
        expect([...da.ids]).toEqual([...db.ids]);
        expect([...da.probs]).toEqual([...db.probs]);
        const id = a.draw(da);
        expect(b.draw(db)).toBe(id);
        a.accept(id);
        b.accept(id);
      }
    }
  });

  it('lets split UTF-8 through: byte tokens that start a wanted character', () => {
    const constraint = grammarConstraint('root ::= "€"', tok);
    const allowed = unmasked(constraint, tok.vocabSize, eog).map((id) => tok.tokenText(id));
    expect(allowed).toContain('<0xE2>');
    expect(allowed).toContain('€');
    expect(allowed).not.toContain('<0xC3>');
    constraint.accept(byteTokens(tok, '€')[0]);
    expect(constraint.complete).toBe(false);
    expect(unmasked(constraint, tok.vocabSize, eog).map((id) => tok.tokenText(id))).toEqual(['<0x82>']);
  });

  it('ends every greedy walk on random logits with a complete match within the budget', () => {
    const automaton = GrammarAutomaton.fromGbnf(SMALL_JSON);
    const shared = grammarConstraint(automaton, tok);
    for (let seed = 1; seed <= 40; seed++) {
      const constraint = shared.clone();
      const { text, ended, tokens } = randomWalk(constraint, tok, seed, 200);
      expect([seed, ended === 'budget', automaton.accepts(text), constraint.complete]).toEqual([seed, false, true, true]);
      expect(tokens).toBeLessThan(200);
    }
  });

  it('refuses tokens the mask forbids, and EOG before the match is complete', () => {
    const constraint = grammarConstraint('root ::= "ab"', tok);
    expect(() => constraint.accept(tok.eos)).toThrow(RequestError);
    expect(() => constraint.accept(byteTokens(tok, 'b')[0])).toThrow(/cannot continue the grammar here/);
    for (const id of byteTokens(tok, 'ab')) constraint.accept(id);
    expect([constraint.complete, constraint.finished]).toEqual([true, true]);
    expect(unmasked(constraint, tok.vocabSize, eog)).toEqual([...eog]);
    constraint.accept(tok.eos);
    expect(constraint.finished).toBe(true);
  });

  it('keeps every token of a real JSON document allowed, and serves repeated states from the cache', () => {
    // The tokens a model would produce for this document; SPM puts a space in front of the first.
    // (Mask timings are measured by npm run bench:constrained, not here.)
    const automaton = GrammarAutomaton.fromGbnf(`${JSON_GRAMMAR}\nspaced ::= " " value\n`, { root: 'spaced' });
    const doc = JSON.stringify({ name: 'Ada Lovelace', born: 1815, tags: ['math', 'poetry', { nested: [1, 2.5, null] }], notes: 'wrote the "first" program é€' }, null, 1);
    const ids = tok.encode(doc, { addSpecial: false });
    const root = grammarConstraint(automaton, tok);
    const logits = new Float32Array(tok.vocabSize);
    const pass = (): void => {
      const c = root.clone();
      for (const id of ids) {
        c.mask(logits.fill(0), eog);
        expect(logits[id], `token ${id}`).toBe(0);
        c.accept(id);
      }
      expect(c.complete).toBe(true);
    };
    pass();
    const walks = root.stats.walks;
    expect(walks).toBeLessThan(ids.length); // states repeat within the document
    pass();
    expect(root.stats.walks).toBe(walks); // the second pass is all cache hits
  });
});

// ── Generation with a real model ────────────────────────────────────────────────────────────

describe('constrained generation on stories260K', () => {
  it('generates text that matches the grammar, greedy and sampled', async () => {
    const model = await loadModel(DEFAULT_MODEL_PATH, { threads: 1 });
    const tok = model.tokenizer;
    const grammar = String.raw`
root  ::= " " answer ", said " name "." ("\n" line){0,2}
answer ::= "Yes" | "No" | "Maybe"
name  ::= [A-Z] [a-z]{1,8}
line  ::= [A-Za-z ,]{1,30} [.!?]
`;
    const automaton = GrammarAutomaton.fromGbnf(grammar);
    const prompt = tok.encode('Once upon a time', { addSpecial: true });
    for (const seed of [0, 1, 2, 3]) {
      const constraint = grammarConstraint(automaton, tok);
      const rng = Xoshiro128.fromSeed(seed);
      let logits = model.network.forward(prompt, 0).f32().slice();
      let pos = prompt.length;
      const out: number[] = [];
      for (let n = 0; n < 120 && !constraint.finished; n++) {
        constraint.mask(logits, tok.endOfGeneration);
        const id = seed === 0 ? argmaxOf(logits) : drawSoftmax(logits, rng);
        constraint.accept(id);
        if (tok.endOfGeneration.has(id)) break;
        out.push(id);
        logits = model.network.forward([id], pos++).f32().slice();
      }
      const text = new TextDecoder().decode(Uint8Array.from(out.flatMap((id) => [...tok.piece(id)])));
      expect([seed, text, automaton.accepts(text)]).toEqual([seed, text, true]);
      expect(constraint.complete).toBe(true);
    }
  });
});

/** A seeded draw from softmax(logits) (masked logits are -Infinity and get no mass). */
function drawSoftmax(logits: Float32Array, rng: Xoshiro128): number {
  let max = -Infinity;
  for (const l of logits) if (l > max) max = l;
  let sum = 0;
  const weights = Float64Array.from(logits, (l) => Math.exp(l - max));
  for (const w of weights) sum += w;
  let u = rng.nextFloat() * sum;
  for (let i = 0; i < weights.length; i++) if ((u -= weights[i]) <= 0 && weights[i] > 0) return i;
  return argmaxOf(logits);
}
