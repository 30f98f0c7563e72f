/**
 * Perplexity as llama.cpp's `llama-perplexity` computes it: split the tokens into chunks of
 * ctxSize, put BOS first in each chunk, evaluate each chunk from an empty cache, and score only
 * the second half (each token from at least ctxSize/2 tokens of context).
 */
import { RequestError } from '../errors.js';

export interface PerplexityChunk {
  /** Mean negative log-likelihood of the scored tokens of this chunk (nats). */
  nll: number;
  ppl: number;
}

export interface PerplexityResult {
  ppl: number;
  /** Standard error of the estimate, as llama.cpp prints after "+/-". */
  stderr: number;
  nTokens: number;
  chunks: PerplexityChunk[];
}

/**
 * `evaluate(chunk)` must return the logits of every position of the chunk, evaluated from an
 * empty cache, as one Float32Array of chunk.length × vocab values.
 */
export function perplexity(
  tokens: readonly number[],
  ctxSize: number,
  bos: number,
  evaluate: (chunk: number[]) => Float32Array,
  onChunk?: (index: number, chunk: PerplexityChunk) => void,
): PerplexityResult {
  if (!Number.isInteger(ctxSize) || ctxSize < 4) throw new RequestError('invalid_ctx_size', 'ctxSize', `must be an integer ≥ 4, got ${ctxSize}`);
  const nChunks = Math.floor(tokens.length / ctxSize);
  if (nChunks === 0) {
    throw new RequestError('text_too_short', 'text', `${tokens.length} tokens is less than one chunk of ${ctxSize}; use a smaller ctx size`);
  }
  const first = ctxSize / 2 | 0;
  let nllSum = 0;
  let nll2Sum = 0;
  let count = 0;
  const chunks: PerplexityChunk[] = [];
  for (let c = 0; c < nChunks; c++) {
    const chunk = tokens.slice(c * ctxSize, (c + 1) * ctxSize);
    chunk[0] = bos;
    const logits = evaluate(chunk);
    const vocab = logits.length / ctxSize;
    let chunkNll = 0;
    for (let j = first; j < ctxSize - 1; j++) {
      const nll = -logSoftmaxAt(logits.subarray(j * vocab, (j + 1) * vocab), chunk[j + 1]!);
      chunkNll += nll;
      nllSum += nll;
      nll2Sum += nll * nll;
      count++;
    }
    const mean = chunkNll / (ctxSize - 1 - first);
    const result = { nll: mean, ppl: Math.exp(mean) };
    chunks.push(result);
    onChunk?.(c, result);
  }
  const mean = nllSum / count;
  const variance = nll2Sum / count - mean * mean;
  const stderrNll = variance > 0 ? Math.sqrt(variance / (count - 1)) : 0;
  const ppl = Math.exp(mean);
  return { ppl, stderr: stderrNll * ppl, nTokens: tokens.length, chunks };
}

/** log softmax(row)[index], computed stably in float64. */
function logSoftmaxAt(row: Float32Array, index: number): number {
  let max = -Infinity;
  for (const v of row) if (v > max) max = v;
  let sum = 0;
  for (const v of row) sum += Math.exp(v - max);
  return row[index]! - max - Math.log(sum);
}
