/**
 * The architectures SmallMind runs, behind one switch: config, tensor names and shapes, the KV
 * row width and the network for each. GGUF names the architecture in `general.architecture`.
 */
import type { Backend } from '../backend/backend.js';
import { ModelError } from '../errors.js';
import type { DecoderOptions, Network } from '../nn/decoder.js';
import type { Tensor } from '../tensor/tensor.js';
import { Gpt2Model, gpt2ConfigFromGGUF, gpt2TensorShapes, gpt2Weights, type Gpt2Config } from './gpt2.js';
import { kvDim, LlamaModel, llamaConfigFromGGUF, llamaTensorShapes, llamaWeights, type LlamaConfig } from './llama.js';

export const ARCHITECTURES = ['llama', 'gpt2'] as const;
export type Architecture = (typeof ARCHITECTURES)[number];

/** An architecture with its hyper-parameters. */
export type ArchConfig = { architecture: 'llama'; config: LlamaConfig } | { architecture: 'gpt2'; config: Gpt2Config };

/** Tensors every model may lack: the classifier (then tied to the token embedding). */
export const OPTIONAL_TENSORS: ReadonlySet<string> = new Set(['output.weight']);

export function checkArchitecture(value: unknown, source: string): Architecture {
  if (!ARCHITECTURES.includes(value as Architecture)) {
    throw new ModelError('unsupported_architecture', `${source}: architecture '${String(value)}' is not supported (supported: ${ARCHITECTURES.join(', ')})`);
  }
  return value as Architecture;
}

/** Architecture and hyper-parameters from GGUF metadata (`general.architecture`, then `<arch>.*`). */
export function archConfigFromGGUF(get: (key: string) => unknown, vocabSize: number, source: string): ArchConfig {
  const architecture = checkArchitecture(get('general.architecture'), source);
  return architecture === 'llama'
    ? { architecture, config: llamaConfigFromGGUF(get, vocabSize, source) }
    : { architecture, config: gpt2ConfigFromGGUF(get, vocabSize, source) };
}

/** GGUF tensor names and row-major shapes (OPTIONAL_TENSORS may be absent). */
export function tensorShapes(a: ArchConfig): Map<string, number[]> {
  return a.architecture === 'llama' ? llamaTensorShapes(a.config) : gpt2TensorShapes(a.config);
}

/** Values per KV cache row. */
export function kvWidth(a: ArchConfig): number {
  return a.architecture === 'llama' ? kvDim(a.config) : a.config.embedding_length;
}

/** The network over loaded tensors (by GGUF name). */
export function createNetwork(be: Backend, a: ArchConfig, tensors: ReadonlyMap<string, Tensor>, options: DecoderOptions): Network {
  const get = (name: string): Tensor => {
    const t = tensors.get(name);
    if (!t) throw new ModelError('missing_tensor', `missing tensor ${name}`);
    return t;
  };
  const has = (name: string): boolean => tensors.has(name);
  if (a.architecture === 'llama') return new LlamaModel(be, a.config, llamaWeights(a.config, get, has), options);
  return new Gpt2Model(be, a.config, gpt2Weights(a.config, get, has), options);
}
