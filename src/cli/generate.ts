/** `smallmind generate`: complete a prompt, streaming tokens to stdout as they come. */
import { Command, Option } from 'commander';
import type { GenerateChoice, GenerateResult, Model, TokenLogprobs } from '../model.js';
import type { CliIO } from './io.js';
import {
  decodingFromFlags, decodingOptions, integerIn, jsonOption, loadDraft, loadWithProgress, modelOption, runtimeOptions, samplingFromFlags, samplingOptions, tokenizerOption,
  type DecodingFlags, type LoadFlags, type SamplingFlags,
} from './options.js';

interface GenerateFlags extends LoadFlags, SamplingFlags, DecodingFlags {
  ctxSize?: number;
  displayPrompt: boolean;
  nSamples?: number;
}

export function generateCommand(io: CliIO): Command {
  const command = new Command('generate')
    .description('generate text from a prompt (no prompt: read stdin when piped, else start from BOS alone)')
    .argument('[prompt]', 'the text to continue')
    .addOption(modelOption())
    .addOption(tokenizerOption());
  for (const option of [...samplingOptions(), ...decodingOptions(), ...runtimeOptions()]) command.addOption(option);
  return command
    .addOption(new Option('--n-samples <n>', 'independent samples sharing one prompt prefill, sample i seeded with seed + i (default 1)').argParser(integerIn(1, 64)))
    .addOption(new Option('--no-display-prompt', 'do not echo the prompt before the generated text'))
    .addOption(jsonOption())
    .action(async (promptArg: string | undefined, flags: GenerateFlags) => {
      // Piped text loses one trailing newline, as llama.cpp's -f does.
      const prompt = promptArg ?? (await io.readStdin())?.replace(/\n$/, '') ?? '';
      const { model, loadMs } = await loadWithProgress(io, flags, { contextLength: flags.ctxSize });
      let draft: Model | undefined;
      const abort = new AbortController();
      const untrap = io.trapInterrupt?.(() => abort.abort());
      try {
        draft = await loadDraft(io, flags, model);
        const stream = model.stream(prompt, { ...samplingFromFlags(flags), ...decodingFromFlags(flags, draft), n: flags.nSamples, signal: abort.signal });
        // Several samples are printed one after another once done; one is streamed as it comes.
        const streaming = !flags.json && (flags.nSamples ?? 1) === 1;
        // The prompt is echoed once the first event comes, so that a rejected option prints only its error.
        let next = await stream.next();
        if (streaming && flags.displayPrompt) io.stdout.write(prompt);
        for (; !next.done; next = await stream.next()) {
          if (streaming) io.stdout.write(next.value.text);
        }
        const result = next.value;
        if (flags.json) {
          io.stdout.write(`${JSON.stringify(generateJson(result, loadMs, model))}\n`);
        } else if (!streaming) {
          for (const choice of result.choices) {
            const text = `${flags.displayPrompt ? prompt : ''}${choice.text}`;
            io.stdout.write(`--- sample ${choice.index} (seed ${choice.seed}, ${choice.stopReason}) ---\n${text}${text.endsWith('\n') ? '' : '\n'}`);
          }
          io.stderr.write(timingLines(result, loadMs));
        } else {
          if (!`${prompt}${result.text}`.endsWith('\n')) io.stdout.write('\n');
          io.stderr.write(timingLines(result, loadMs));
        }
      } finally {
        untrap?.();
        draft?.dispose();
        model.dispose();
      }
    });
}

/** The result as JSON: the first sample's fields on top, every sample in `choices`, logprobs with each token's text. */
function generateJson(result: GenerateResult, loadMs: number, model: Model): object {
  const choice = (c: GenerateChoice): object => ({
    text: c.text,
    tokens: c.tokens,
    stopReason: c.stopReason,
    ...(c.stopSequence !== undefined && { stopSequence: c.stopSequence }),
    seed: c.seed,
    ...(c.logprobs && { logprobs: c.logprobs.map((lp) => logprobsJson(lp, model)) }),
  });
  return {
    ...choice(result.choices[0]),
    promptTokens: result.promptTokens,
    ...(result.choices.length > 1 && { choices: result.choices.map(choice) }),
    ...(result.speculative && { speculative: roundAll(result.speculative) }),
    ...(result.beams && { beams: result.beams.map((b) => ({ tokens: b.tokens, logprob: round(b.logprob), score: round(b.score), eos: b.eos })) }),
    timings: { loadMs: round(loadMs), ...roundAll(result.timings) },
  };
}

/** One token's logprobs with the vocabulary text of each id (-Infinity, outside the processed distribution, is null). */
function logprobsJson(lp: TokenLogprobs, model: Model): object {
  const entry = (t: { id: number; logprob: number }): object => ({ id: t.id, token: model.tokenizer.tokenText(t.id), logprob: finite(t.logprob) });
  const side = (s: TokenLogprobs['raw']): object => ({ logprob: finite(s.logprob), top: s.top.map(entry) });
  return { id: lp.id, token: model.tokenizer.tokenText(lp.id), raw: side(lp.raw), processed: side(lp.processed) };
}

const finite = (x: number): number | null => (Number.isFinite(x) ? x : null);

/** llama.cpp-style summary: load, prompt eval and eval times with tok/s. */
export function timingLines(result: GenerateResult, loadMs: number): string {
  const t = result.timings;
  // Decode steps are timed per forward call; generation can stop (EOS, length) on either side of one.
  const decodeRuns = t.decodeMs > 0 ? Math.round((t.decodeTokS * t.decodeMs) / 1000) : 0;
  const line = (name: string, ms: number, count: number, unit: string, perSecond: number): string =>
    `${name.padStart(11)}: ${ms.toFixed(2).padStart(10)} ms / ${String(count).padStart(5)} ${unit} ` +
    `(${count ? (ms / count).toFixed(2).padStart(8) : '     n/a'} ms per token, ${perSecond.toFixed(2).padStart(9)} tokens per second)\n`;
  return (
    `\n${'load time'.padStart(11)}: ${loadMs.toFixed(2).padStart(10)} ms\n` +
    line('prompt eval', t.promptMs, t.promptTokens, 'tokens', t.prefillTokS) +
    line('eval', t.decodeMs, decodeRuns, 'runs  ', t.decodeTokS) +
    `${'stop'.padStart(11)}: ${result.stopReason} after ${t.generatedTokens} tokens\n` +
    (result.speculative
      ? `${'speculative'.padStart(11)}: ${result.speculative.accepted}/${result.speculative.drafted} drafted tokens accepted ` +
        `(${(result.speculative.acceptanceRate * 100).toFixed(1)}%) in ${result.speculative.rounds} rounds\n`
      : '')
  );
}

const round = (x: number): number => Math.round(x * 1000) / 1000;

function roundAll<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, typeof v === 'number' ? round(v) : v])) as T;
}
