/**
 * A random Llama whose every matrix row is a multiple of 256 values, so every 2-D tensor can take
 * a K-quant: dim 256, ffn 512, 2 layers, 4 heads (2 KV heads), context 128, with stories260K's
 * 512-token vocabulary and tokenizer. The classifier is tied to the embedding (no output.weight).
 * Weights N(0, 0.08²) (wide enough that the logits are far from flat), norms 1.
 */
import { readGGUF, typedMetadata, type GGUFTypedValue } from '../../src/formats/gguf.js';
import { writeGGUF } from '../../src/formats/gguf-writer.js';
import { llamaTensorShapes, type LlamaConfig } from '../../src/models/llama.js';
import { NormalSource } from '../../src/tensor/random.js';
import { shared } from './vocab.js';

export const TINY_LLAMA_CONFIG: LlamaConfig = {
  context_length: 128, embedding_length: 256, block_count: 2, feed_forward_length: 512, head_count: 4,
  head_count_kv: 2, rope_dimension_count: 64, rope_freq_base: 10000, layer_norm_rms_epsilon: 1e-5, vocab_size: 512,
};

/** Write the tiny model, in F32, to `file` (weights from `seed`). */
export function writeTinyLlama(file: string, seed = 2024): void {
  const config = TINY_LLAMA_CONFIG;
  const metadata = typedMetadata(readGGUF(shared('models/stories260K/stories260K.gguf')));
  const u32 = (value: number): GGUFTypedValue => ({ type: 'u32', value });
  metadata.set('general.file_type', u32(0));
  metadata.set('llama.context_length', u32(config.context_length));
  metadata.set('llama.embedding_length', u32(config.embedding_length));
  metadata.set('llama.block_count', u32(config.block_count));
  metadata.set('llama.feed_forward_length', u32(config.feed_forward_length));
  metadata.set('llama.attention.head_count', u32(config.head_count));
  metadata.set('llama.attention.head_count_kv', u32(config.head_count_kv));
  metadata.set('llama.rope.dimension_count', u32(config.rope_dimension_count));
  const normal = new NormalSource(seed);
  const tensors = [...llamaTensorShapes(config)].filter(([name]) => name !== 'output.weight').map(([name, shape]) => {
    const count = shape.reduce((a, b) => a * b, 1);
    const values = new Float32Array(count);
    for (let i = 0; i < count; i++) values[i] = shape.length === 1 ? 1 : normal.next() * 0.08;
    return { name, dtype: 'f32' as const, shape, data: () => new Uint8Array(values.buffer) };
  });
  writeGGUF(file, metadata, tensors);
}
