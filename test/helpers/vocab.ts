/** Paths into ../shared and llama.cpp's own tokenizer test files (test-tokenizer-0's .inp/.out). */
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';

/** A path under the shared folder beside the checkout. */
export const shared = (p: string): string => fileURLToPath(new URL(`../../../shared/${p}`, import.meta.url));

/** One of llama.cpp's vocab-only GGUFs, e.g. vocabPath('gpt-2'). */
export const vocabPath = (name: string): string => shared(`models/llamacpp-vocab/ggml-vocab-${name}.gguf`);

/**
 * llama.cpp's test pairs beside a vocab GGUF: the inputs, each followed by
 * "\n__ggml_vocab_test__\n", and one line of ids per input (no BOS/EOS, each id after a space).
 */
export function llamaCppCases(gguf: string): { text: string; ids: number[] }[] {
  const inputs = fs.readFileSync(`${gguf}.inp`, 'utf8').split('\n__ggml_vocab_test__\n');
  if (inputs.pop() !== '') throw new Error(`${gguf}.inp does not end with the separator`);
  const lines = fs.readFileSync(`${gguf}.out`, 'utf8').split('\n');
  if (lines.pop() !== '') throw new Error(`${gguf}.out does not end with a newline`);
  if (lines.length !== inputs.length) throw new Error(`${gguf}: ${inputs.length} inputs but ${lines.length} outputs`);
  return inputs.map((text, i) => ({ text, ids: lines[i].trim() === '' ? [] : lines[i].trim().split(' ').map(Number) }));
}
