/**
 * `smallmind chat`: talk with a model, one user turn per line of stdin (typed, or piped), each
 * reply streamed as it is generated. The conversation so far is rendered by the model's chat
 * template (or --chat-template; chatml for a model without one, as llama.cpp does) and the whole
 * prompt is run again each turn.
 *
 * Lines starting with a slash are commands: /reset clears the history, /system TEXT sets the
 * system prompt (/system alone removes it), /exit ends the chat.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Command, Option } from 'commander';
import { RequestError } from '../errors.js';
import type { Model } from '../model.js';
import { chooseChatTemplate, checkChatTemplate, renderConversation, type ChatMessage, type ChosenChatTemplate } from '../tokenizers/chat-template.js';
import type { CliIO } from './io.js';
import {
  decodingFromFlags, decodingOptions, jsonOption, loadDraft, loadWithProgress, modelOption, runtimeOptions, samplingFromFlags,
  samplingOptions, tokenizerOption, type DecodingFlags, type LoadFlags, type SamplingFlags,
} from './options.js';

interface ChatFlags extends LoadFlags, SamplingFlags, DecodingFlags {
  system?: string;
  chatTemplate?: string;
  printPrompt?: boolean;
  ctxSize?: number;
}

const COMMANDS_HELP = '/reset clears the history, /system TEXT sets the system prompt, /exit ends the chat';

export function chatCommand(io: CliIO): Command {
  const command = new Command('chat')
    .description(`chat with a model, one user turn per line of stdin (${COMMANDS_HELP})`)
    .addOption(modelOption())
    .addOption(tokenizerOption())
    .addOption(new Option('--system <text>', 'system prompt'))
    .addOption(new Option('--chat-template <name|file>', 'a built-in template (chatml, llama2, llama3, mistral, phi3, gemma, zephyr) or a Jinja file; default: the model\'s own, else chatml'))
    .addOption(new Option('--print-prompt', 'print each turn\'s rendered prompt instead of generating a reply'));
  for (const option of [...samplingOptions(), ...decodingOptions(), ...runtimeOptions()]) command.addOption(option);
  return command
    .addOption(jsonOption())
    .action(async (flags: ChatFlags) => {
      // A bad --chat-template fails before the model loads.
      const requested = flags.chatTemplate === undefined ? undefined : templateArgument(flags.chatTemplate);
      if (requested) checkChatTemplate(chooseChatTemplate(requested.text, undefined, '', '--chat-template', requested.name));
      const { model } = await loadWithProgress(io, flags, { contextLength: flags.ctxSize });
      let draft: Model | undefined;
      try {
        draft = await loadDraft(io, flags, model);
        const template = chooseChatTemplate(requested?.text, model.tokenizer.chatTemplate, `${model.path}: tokenizer.chat_template`, '--chat-template', requested?.name);
        checkChatTemplate(template);
        if (template.fallback && !flags.json) {
          io.stderr.write(`${path.basename(model.path)} has no chat template: using the built-in "chatml" (as llama.cpp does)\n`);
        }
        await new ChatSession(io, flags, model, template, draft).run();
      } finally {
        draft?.dispose();
        model.dispose();
      }
    });
}

/** --chat-template's value: a file's Jinja text when it names a file, else a built-in's name (or Jinja text). */
function templateArgument(value: string): { text: string; name?: string } {
  if (fs.existsSync(value) && fs.statSync(value).isFile()) return { text: fs.readFileSync(value, 'utf8'), name: value };
  return { text: value };
}

class ChatSession {
  private system: string | undefined;
  private history: ChatMessage[] = [];

  constructor(
    private readonly io: CliIO,
    private readonly flags: ChatFlags,
    private readonly model: Model,
    private readonly template: ChosenChatTemplate,
    private readonly draft: Model | undefined,
  ) {
    this.system = flags.system;
  }

  async run(): Promise<void> {
    const interactive = this.io.stdout.isTTY === true && !this.flags.json;
    if (interactive) this.io.stderr.write(`${COMMANDS_HELP}\n`);
    if (interactive) this.io.stdout.write('> ');
    for await (const rawLine of userLines(this.io)) {
      const line = rawLine.replace(/\r$/, '');
      if (line.trim() !== '') {
        if (!(await this.handle(line))) break;
      }
      if (interactive) this.io.stdout.write('> ');
    }
  }

  /** One line: a command or a user turn. False when the chat should end. */
  private async handle(line: string): Promise<boolean> {
    const command = /^\/(\w+)\b\s*(.*)$/s.exec(line.trim());
    if (command) {
      const [, name, argument] = command;
      if (name === 'exit' || name === 'quit') return false;
      if (name === 'reset') {
        this.history = [];
        this.note('history cleared');
      } else if (name === 'system') {
        this.system = argument === '' ? undefined : argument;
        this.note(argument === '' ? 'system prompt removed' : 'system prompt set');
      } else {
        this.note(`unknown command /${name} (${COMMANDS_HELP})`);
      }
      return true;
    }
    await this.turn(line);
    return true;
  }

  private note(text: string): void {
    if (!this.flags.json) this.io.stderr.write(`(${text})\n`);
  }

  /** Render the conversation with the new user line, then print the prompt or stream the reply. */
  private async turn(user: string): Promise<void> {
    this.history.push({ role: 'user', content: user });
    const messages: ChatMessage[] = this.system === undefined ? this.history : [{ role: 'system', content: this.system }, ...this.history];
    const prompt = renderConversation(this.model.tokenizer, this.template, messages, { addGenerationPrompt: true });
    if (this.flags.printPrompt) {
      this.io.stdout.write(this.flags.json ? `${JSON.stringify({ user, prompt })}\n` : prompt.endsWith('\n') ? prompt : `${prompt}\n`);
      this.history.push({ role: 'assistant', content: '' }); // keep the roles alternating for the next turn
      return;
    }
    let reply: string;
    try {
      reply = await this.generate(user, prompt);
    } catch (err) {
      // A conversation grown past the context: drop this turn, say how to go on, and go on.
      if (!(err instanceof RequestError && err.code === 'prompt_too_long')) throw err;
      this.history.pop();
      this.io.stderr.write(`error: ${err.message} (use /reset to clear the history)\n`);
      return;
    }
    this.history.push({ role: 'assistant', content: reply });
  }

  private async generate(user: string, prompt: string): Promise<string> {
    const ids = this.model.chatPromptTokens(prompt);
    const abort = new AbortController();
    const untrap = this.io.trapInterrupt?.(() => abort.abort());
    try {
      const stream = this.model.stream(ids, { ...samplingFromFlags(this.flags), ...decodingFromFlags(this.flags, this.draft), signal: abort.signal });
      let next = await stream.next();
      for (; !next.done; next = await stream.next()) {
        if (!this.flags.json) this.io.stdout.write(next.value.text);
      }
      const result = next.value;
      if (this.flags.json) {
        this.io.stdout.write(`${JSON.stringify({
          user, reply: result.text, stopReason: result.stopReason, promptTokens: ids.length, tokens: result.tokens.length,
          ...(result.logprobs && { logprobs: result.logprobs }),
        })}\n`);
      } else if (!result.text.endsWith('\n')) {
        this.io.stdout.write('\n');
      }
      return result.text;
    } finally {
      untrap?.();
    }
  }
}

/** Stdin's lines: as they come when the CLI can read them so, else the piped text split into lines. */
async function* userLines(io: CliIO): AsyncIterable<string> {
  if (io.readLines) {
    yield* io.readLines();
    return;
  }
  const text = await io.readStdin();
  if (text === undefined) return;
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  yield* lines;
}
