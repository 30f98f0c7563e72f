/**
 * Building a trainable model from a training configuration, and moving its weights in and out
 * (checkpoints). The training graphs themselves live next to the inference code:
 * src/models/gpt2-train.ts and llama-train.ts, sharing src/models/trainable.ts.
 */
import type { Backend } from '../backend/backend.js';
import type { CheckpointTensor } from '../convert.js';
import { ModelError } from '../errors.js';
import { Gpt2TrainModel } from '../models/gpt2-train.js';
import type { ArchConfig } from '../models/index.js';
import { LlamaTrainModel } from '../models/llama-train.js';
import type { ModelOptions, TrainableModel } from '../models/trainable.js';
import type { Parameter } from '../autograd/tape.js';
import type { TrainConfig } from './config.js';

export type { ForwardOptions, ModelOptions, TrainableModel } from '../models/trainable.js';

/** Values per parameter (trainable or not): what the model is made of. */
export function parameterCount(model: TrainableModel): number {
  return model.params.reduce((n, p) => n + p.value.numel, 0);
}

/** The trainable parameters (frozen zero biases of a bias-free GPT-2 are not). */
export function trainableParams(model: TrainableModel): Parameter[] {
  return model.params.filter((p) => p.requiresGrad);
}

/** The weights as writeHfCheckpoint takes them (f32, GGUF names and shapes; tied: no output.weight). */
export function checkpointTensors(model: TrainableModel): Map<string, CheckpointTensor> {
  return new Map(model.params.map((p) => [p.name, { dtype: 'f32', shape: p.value.shape, data: p.value.f32() }]));
}

/** The inference-side architecture a training configuration describes (vocab from the tokenizer). */
export function archFromConfig(config: TrainConfig, vocabSize: number): ArchConfig {
  const dim = config.n_embd;
  if (config.arch === 'gpt2') {
    return {
      architecture: 'gpt2',
      config: { context_length: config.block_size, embedding_length: dim, block_count: config.n_layer, feed_forward_length: 4 * dim, head_count: config.n_head, layer_norm_epsilon: 1e-5, vocab_size: vocabSize },
    };
  }
  // Llama's SwiGLU width: 2/3 of 4·dim (same parameter count as a 4·dim GELU MLP), rounded up to 32.
  const ff = 32 * Math.ceil((8 * dim) / 3 / 32);
  return {
    architecture: 'llama',
    config: {
      context_length: config.block_size, embedding_length: dim, block_count: config.n_layer, feed_forward_length: ff, head_count: config.n_head,
      head_count_kv: config.n_kv_head ?? config.n_head, rope_dimension_count: dim / config.n_head, rope_freq_base: 10000, layer_norm_rms_epsilon: 1e-5, vocab_size: vocabSize,
    },
  };
}

/** A freshly initialised trainable model. */
export function createTrainModel(be: Backend, arch: ArchConfig, opts: ModelOptions): TrainableModel {
  if (arch.architecture === 'gpt2') return new Gpt2TrainModel(be, arch.config, opts);
  return new LlamaTrainModel(be, arch.config, opts);
}

/** Copy saved weights (GGUF names) into the model's parameters; a missing or misshapen one is an error naming it. */
export function loadParams(model: TrainableModel, get: (name: string) => Float32Array | undefined, source: string): void {
  for (const p of model.params) {
    const values = get(p.name);
    if (!values) throw new ModelError('missing_tensor', `${source}: no tensor ${p.name}`);
    if (values.length !== p.value.numel) throw new ModelError('shape_mismatch', `${source}: tensor ${p.name} has ${values.length} values, the model needs [${p.value.shape}]`);
    p.value.f32().set(values);
  }
}
