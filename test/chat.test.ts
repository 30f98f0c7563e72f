/**
 * `smallmind chat` run in-process with piped stdin: one user turn per line, /reset, /system,
 * --print-prompt, --chat-template (name or file), the model's own template, streamed replies,
 * and the errors for a bad template.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readGGUF, readTensorData, typedMetadata } from '../src/formats/gguf.js';
import { writeGGUF } from '../src/formats/gguf-writer.js';
import { DEFAULT_MODEL_PATH, loadModel } from '../src/model.js';
import { run } from './helpers/cli.js';

const shared = (p: string): string => fileURLToPath(new URL(`../../shared/${p}`, import.meta.url));
const CHATML_NOTE = 'stories260K.gguf has no chat template: using the built-in "chatml" (as llama.cpp does)\n';

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'smallmind-chat-cli-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** stories260K with a chat template written into its GGUF metadata. */
function storiesWithTemplate(template: string): string {
  const file = readGGUF(DEFAULT_MODEL_PATH);
  const meta = typedMetadata(file);
  meta.set('tokenizer.chat_template', { type: 'string', value: template });
  const out = path.join(tmp, 'stories-chat.gguf');
  writeGGUF(out, meta, file.tensors.map((t) => ({
    name: t.name, dtype: t.dtype!, shape: t.shape,
    data: () => {
      const bytes = new Uint8Array(t.byteLength);
      readTensorData(file, t, bytes);
      return bytes;
    },
  })));
  return out;
}

/** stderr without the load progress lines (a slow load prints more than one). */
const notes = (stderr: string): string => stderr.replace(/^loading .*\n/gm, '');

describe('smallmind chat --print-prompt', () => {
  it('renders each piped line as a user turn with chatml for a model without a template, and says so', async () => {
    const r = await run(['chat', '--print-prompt'], 'Hello\nHow are you?\n');
    expect(r.code).toBe(0);
    expect(notes(r.stderr)).toBe(CHATML_NOTE);
    expect(r.stdout).toBe(
      '<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n' +
      // The second turn carries the first (its reply, not generated here, is empty).
      '<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n<|im_end|>\n<|im_start|>user\nHow are you?<|im_end|>\n<|im_start|>assistant\n',
    );
  });

  it('/system sets the system prompt, /reset clears the history, /exit ends; blank lines are skipped', async () => {
    const r = await run(['chat', '--print-prompt', '--system', 'Be brief.'], 'One\n\n/system Be kind.\nTwo\n/reset\nThree\n/system\nFour\n/exit\nFive\n');
    expect(r.code).toBe(0);
    expect(notes(r.stderr)).toBe(`${CHATML_NOTE}(system prompt set)\n(history cleared)\n(system prompt removed)\n`);
    expect(r.stdout).toBe([
      '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nOne<|im_end|>\n<|im_start|>assistant\n',
      '<|im_start|>system\nBe kind.<|im_end|>\n<|im_start|>user\nOne<|im_end|>\n<|im_start|>assistant\n<|im_end|>\n<|im_start|>user\nTwo<|im_end|>\n<|im_start|>assistant\n',
      '<|im_start|>system\nBe kind.<|im_end|>\n<|im_start|>user\nThree<|im_end|>\n<|im_start|>assistant\n',
      '<|im_start|>user\nThree<|im_end|>\n<|im_start|>assistant\n<|im_end|>\n<|im_start|>user\nFour<|im_end|>\n<|im_start|>assistant\n',
    ].join(''));
  });

  it('takes a built-in template by name, with the vocabulary\'s BOS text', async () => {
    const r = await run(['chat', '--print-prompt', '--chat-template', 'llama3', '--system', 'S'], 'Hi\n');
    expect(r.code).toBe(0);
    expect(notes(r.stderr)).toBe('');
    expect(r.stdout).toBe('<s><|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n');
  });

  it('takes a Jinja file, and prints JSON lines with --json', async () => {
    const file = path.join(tmp, 'mine.jinja');
    fs.writeFileSync(file, "{% for m in messages %}[{{ m.role | upper }}] {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}[ASSISTANT]{% endif %}");
    const r = await run(['chat', '--print-prompt', '--json', '--chat-template', file], 'Hi there\n');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${JSON.stringify({ user: 'Hi there', prompt: '[USER] Hi there\n[ASSISTANT]' })}\n`);
  });

  it("uses the model's own tokenizer.chat_template", async () => {
    const model = storiesWithTemplate(fs.readFileSync(shared('chat-templates/google-gemma-2-2b-it.jinja'), 'utf8'));
    const r = await run(['chat', '--print-prompt', '-m', model], 'Hi\n');
    expect(r.code).toBe(0);
    expect(notes(r.stderr)).toBe('');
    expect(r.stdout).toBe('<s><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n');
    // The template's own raise_exception stops the turn with its message, naming the model's template.
    const raised = await run(['chat', '--print-prompt', '-m', model, '--system', 'S'], 'Hi\n');
    expect(raised.code).toBe(1);
    expect(notes(raised.stderr)).toBe(`error: ${model}: tokenizer.chat_template: System role not supported\n`);
  });
});

describe('smallmind chat (generating)', () => {
  it('streams a greedy reply per line, the same tokens as generating from the chat prompt (BOS added as the vocabulary asks)', async () => {
    const r = await run(['chat', '--temp', '0', '-n', '12', '-t', '1'], 'Once upon a time\n');
    expect(r.code).toBe(0);
    expect(notes(r.stderr)).toBe(CHATML_NOTE);
    const model = await loadModel(DEFAULT_MODEL_PATH, { threads: 1 });
    try {
      const prompt = model.applyChatTemplate([{ role: 'user', content: 'Once upon a time' }]);
      expect(prompt).toBe('<|im_start|>user\nOnce upon a time<|im_end|>\n<|im_start|>assistant\n');
      const ids = [model.tokenizer.bos, ...model.tokenize(prompt, { addSpecial: false, parseSpecial: true })];
      const want = await model.generate(ids, { maxTokens: 12, temperature: 0 });
      expect(want.tokens.length).toBe(12);
      expect(r.stdout).toBe(`${want.text}\n`);
    } finally {
      model.dispose();
    }
  });

  it('keeps the history: the second turn sees the first reply (--json reports each turn)', async () => {
    const r = await run(['chat', '--json', '--temp', '0', '-n', '6', '-t', '1'], 'Hi\nAnd then?\n');
    expect(r.code).toBe(0);
    const turns = r.stdout.trim().split('\n').map((line) => JSON.parse(line));
    expect(turns.map((t) => t.user)).toEqual(['Hi', 'And then?']);
    const model = await loadModel(DEFAULT_MODEL_PATH, { threads: 1 });
    try {
      const second = model.applyChatTemplate([
        { role: 'user', content: 'Hi' },
        { role: 'assistant', content: turns[0].reply },
        { role: 'user', content: 'And then?' },
      ]);
      const ids = [model.tokenizer.bos, ...model.tokenize(second, { addSpecial: false, parseSpecial: true })];
      expect(turns[1].promptTokens).toBe(ids.length);
      expect(turns[1].reply).toBe((await model.generate(ids, { maxTokens: 6, temperature: 0 })).text);
    } finally {
      model.dispose();
    }
  });
});

describe('smallmind chat errors', () => {
  it('drops a turn that no longer fits the context, says so, and goes on', async () => {
    // "Hi" in chatml is 42 tokens with BOS; the second turn repeats it and does not fit 48 positions.
    const r = await run(['chat', '--temp', '0', '-n', '2', '-t', '1', '-c', '48', '--json'], 'Hi\nHi\n/reset\nHi\n');
    expect(r.code).toBe(0);
    const turns = r.stdout.trim().split('\n').map((line) => JSON.parse(line));
    expect(turns.map((t) => [t.user, t.promptTokens])).toEqual([['Hi', 42], ['Hi', 42]]);
    expect(turns[1].reply).toBe(turns[0].reply);
    expect(r.stderr).toMatch(/^error: prompt: \d+ tokens do not fit the context of 48 \(use \/reset to clear the history\)\n$/m);
  });

  it('rejects an unknown template name before loading the model', async () => {
    const r = await run(['chat', '--chat-template', 'chatgpt'], 'Hi\n');
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('error: --chat-template: "chatgpt" is not a built-in chat template (chatml, llama2, llama3, mistral, phi3, gemma, zephyr) nor Jinja text\n');
  });

  it('rejects a template file that does not parse, naming the file', async () => {
    const file = path.join(tmp, 'broken.jinja');
    fs.writeFileSync(file, '{% for m in messages %}{{ m.content }');
    const r = await run(['chat', '--chat-template', file], 'Hi\n');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^error: ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: does not parse: `));
  });

  it('reports errors as JSON with --json', async () => {
    const r = await run(['chat', '--json', '--chat-template', 'nope'], 'Hi\n');
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout).error.code).toBe('unknown_chat_template');
  });
});
