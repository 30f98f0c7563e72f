/**
 * From a file on disk to a runnable model: detect the format, read the header, map the
 * hyper-parameters, check every tensor's name, dtype and shape, then read each tensor's bytes
 * once, straight into the backend's memory.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Backend } from './backend/backend.js';
import { FormatError, ModelError, ResourceError } from './errors.js';
import { GGUF_MAGIC, readGGUF, readTensorData, type GGUFFile, type GGUFTensorInfo } from './formats/gguf.js';
import { readLlama2c, type Llama2cFile } from './formats/llama2c.js';
import { isHfCheckpoint, openHfCheckpoint, readHfTensor, type HfCheckpoint } from './models/hf.js';
import { archConfigFromGGUF, createNetwork, OPTIONAL_TENSORS, tensorShapes, type ArchConfig } from './models/index.js';
import { llamaConfigFromLlama2c, llamaWeights, type LlamaConfig, type LlamaWeights } from './models/llama.js';
import type { DecoderOptions, Network } from './nn/decoder.js';
import { DTYPES, GGML_TYPE_NAMES } from './tensor/dtype.js';
import type { Tensor } from './tensor/tensor.js';
import { readLlama2cTokenizer } from './tokenizers/llama2c.js';
import { fileMagic, loadTokenizer, tokenizerFromGGUF, tokenizerFromVocab, type Tokenizer } from './tokenizers/index.js';
import { readTokenizerJson } from './formats/tokenizer-json.js';
import { charTokenizerFromJson } from './train/char-tokenizer.js';

export type ModelFile =
  | { format: 'gguf'; path: string; fileSize: number; file: GGUFFile; tensors: GGUFTensorInfo[] }
  | { format: 'llama2c'; path: string; fileSize: number; file: Llama2cFile; tensors: GGUFTensorInfo[] }
  /** A Hugging Face folder; `tensors` under their GGUF names, types and shapes. */
  | { format: 'hf'; path: string; fileSize: number; file: HfCheckpoint; tensors: GGUFTensorInfo[] };

/**
 * Read a model's header: a folder with config.json is a Hugging Face checkpoint, a file is GGUF by
 * its magic, llama2.c's legacy checkpoint otherwise.
 */
export function openModelFile(file: string): ModelFile {
  if (fs.existsSync(file) && fs.statSync(file).isDirectory()) {
    if (!isHfCheckpoint(file)) throw new FormatError('unknown_format', file, 'a folder without config.json (a Hugging Face checkpoint has config.json and model.safetensors)');
    const hf = openHfCheckpoint(file);
    const tensors = [...hf.tensors.values()].map((t): GGUFTensorInfo => ({
      name: t.name, dims: [...t.shape].reverse(), shape: t.shape, ggmlType: DTYPES[t.dtype].ggmlType, dtype: t.dtype, offset: t.source.offset, byteLength: t.byteLength,
    }));
    return { format: 'hf', path: file, fileSize: hf.weights.totalBytes, file: hf, tensors };
  }
  const magic = fileMagic(file);
  if (magic === GGUF_MAGIC) {
    const gguf = readGGUF(file);
    return { format: 'gguf', path: file, fileSize: gguf.fileSize, file: gguf, tensors: gguf.tensors };
  }
  if (file.endsWith('.bin')) {
    const bin = readLlama2c(file);
    return { format: 'llama2c', path: file, fileSize: bin.fileSize, file: bin, tensors: bin.tensors };
  }
  throw new FormatError('unknown_format', file, `not a GGUF file (magic ${JSON.stringify(magic)}) and not a llama2.c .bin checkpoint`);
}

/** The architecture and hyper-parameters of a model file (unknown architectures: ModelError naming it). */
export function modelArchConfig(model: ModelFile, vocabSize: number): ArchConfig {
  if (model.format === 'llama2c') return { architecture: 'llama', config: llamaConfigFromLlama2c(model.file.config, model.path) };
  if (model.format === 'hf') return model.file.arch;
  return archConfigFromGGUF((key) => model.file.metadata.get(key), vocabSize, model.path);
}

/** The hyper-parameters of a Llama-architecture model file (for Llama-only tools such as GPTQ). */
export function modelConfig(model: ModelFile, vocabSize: number): LlamaConfig {
  const arch = modelArchConfig(model, vocabSize);
  if (arch.architecture !== 'llama') {
    throw new ModelError('unsupported_architecture', `${model.path}: architecture '${arch.architecture}' is not supported here (supported: llama)`);
  }
  return arch.config;
}

/**
 * The model's tokenizer: GGUF files carry it (any family loadTokenizer reads); a llama2.c
 * checkpoint needs a tokenizer.bin, given or found beside the model (tokenizer.bin, or
 * tok<vocab>.bin as llama2.c names small ones).
 */
export function modelTokenizer(model: ModelFile, tokenizerPath?: string): Tokenizer {
  if (model.format === 'gguf') return tokenizerFromGGUF(model.file);
  if (model.format === 'hf') return trainedCharTokenizer(tokenizerPath ?? model.path) ?? loadTokenizer(tokenizerPath ?? model.path);
  const vocabSize = model.file.config.vocabSize;
  const dir = path.dirname(model.path);
  const candidates = tokenizerPath ? [tokenizerPath] : [path.join(dir, 'tokenizer.bin'), path.join(dir, `tok${vocabSize}.bin`)];
  const found = candidates.find((p) => fs.existsSync(p));
  if (!found) {
    throw new ModelError('missing_tokenizer', `${model.path}: a llama2.c checkpoint needs its tokenizer.bin; none found (looked for ${candidates.join(', ')}); pass one with --tokenizer`);
  }
  return tokenizerFromVocab(readLlama2cTokenizer(found, vocabSize));
}

/**
 * The character tokenizer of a model `smallmind train` wrote (a small tokenizer.json of
 * CharTokenizer's shape), which has no EOS: loadTokenizer would give it a default one (id 0) and
 * generation would stop at that character.
 */
function trainedCharTokenizer(dir: string): Tokenizer | undefined {
  const file = path.join(dir, 'tokenizer.json');
  if (!fs.existsSync(file) || fs.statSync(file).size > 1 << 16) return undefined;
  return charTokenizerFromJson(readTokenizerJson(file));
}

/** The tensors a model loads (output.weight only where the file has one: else it is tied), checked against the config. */
function wantedTensors(model: ModelFile, arch: ArchConfig): Map<string, GGUFTensorInfo> {
  const expected = tensorShapes(arch);
  const infos = new Map(model.tensors.map((t) => [t.name, t]));
  const wanted = [...expected.keys()].filter((name) => !OPTIONAL_TENSORS.has(name) || infos.has(name));
  for (const name of wanted) checkTensor(model.path, infos.get(name), name, expected.get(name)!);
  return new Map(wanted.map((name) => [name, infos.get(name)!]));
}

const size = (bytes: number): string => (bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(2)} GiB` : `${(bytes / 2 ** 20).toFixed(1)} MiB`);

/**
 * Fail before any weight is read when the weights and `also` (the KV cache) cannot fit in the
 * backend's memory: the wasm backend addresses 4 GiB at most (wasm32), so an F32 model of 1B
 * parameters cannot load there. The error names the file, its size and the limit.
 */
export function checkModelFits(be: Backend, model: ModelFile, arch: ArchConfig, also: { bytes: number; what: string }): void {
  const weights = [...wantedTensors(model, arch).values()].reduce((sum, t) => sum + t.byteLength, 0);
  if (weights + also.bytes <= be.memoryLimit) return;
  throw new ResourceError(
    'model_too_large',
    `${model.path}: the file is ${size(model.fileSize)}; its weights (${size(weights)}) and ${also.what} (${size(also.bytes)}) need ` +
      `${size(weights + also.bytes)}, over the ${size(be.memoryLimit)} the ${be.name} backend can address (wasm32 memory is limited to 4 GiB). ` +
      'Use a quantized file (smallmind quantize --type q8_0 or q4_0) or a shorter context',
  );
}

/** Check each tensor against the config and read it into backend memory, by GGUF name. */
export function loadTensors(
  be: Backend,
  model: ModelFile,
  arch: ArchConfig,
  onProgress?: (loadedBytes: number, totalBytes: number) => void,
): Map<string, Tensor> {
  const tensors = wantedTensors(model, arch);
  const total = [...tensors.values()].reduce((sum, t) => sum + t.byteLength, 0);
  const loaded = new Map<string, Tensor>();
  let done = 0;
  try {
    for (const [name, info] of tensors) {
      const tensor = be.alloc(info.dtype!, info.shape);
      loaded.set(name, tensor);
      if (model.format === 'hf') readHfTensor(model.file.tensors.get(name)!, tensor.bytes);
      else readTensorData(model.file, info, tensor.bytes);
      done += info.byteLength;
      onProgress?.(done, total);
    }
  } catch (err) {
    for (const t of loaded.values()) be.free(t);
    throw err;
  }
  return loaded;
}

/** A Llama model's weights in backend memory (see loadTensors). */
export function loadLlamaWeights(
  be: Backend,
  model: ModelFile,
  config: LlamaConfig,
  onProgress?: (loadedBytes: number, totalBytes: number) => void,
): LlamaWeights {
  const loaded = loadTensors(be, model, { architecture: 'llama', config }, onProgress);
  return llamaWeights(config, (name) => loaded.get(name)!, (name) => loaded.has(name));
}

/** Load the weights and build the network of the model's architecture. */
export function loadNetwork(
  be: Backend,
  model: ModelFile,
  arch: ArchConfig,
  options: DecoderOptions,
  onProgress?: (loadedBytes: number, totalBytes: number) => void,
): Network {
  const loaded = loadTensors(be, model, arch, onProgress);
  try {
    return createNetwork(be, arch, loaded, options);
  } catch (err) {
    for (const t of loaded.values()) be.free(t);
    throw err;
  }
}

function checkTensor(file: string, info: GGUFTensorInfo | undefined, name: string, shape: number[]): void {
  if (!info) throw new ModelError('missing_tensor', `${file}: missing tensor ${name}`);
  if (info.dtype === undefined) {
    const typeName = GGML_TYPE_NAMES[info.ggmlType] ?? `unknown type ${info.ggmlType}`;
    throw new FormatError('unknown_dtype', file, `tensor ${name} has type ${typeName}, which SmallMind cannot compute with yet (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K)`);
  }
  if (info.dtype === 'q8_k') {
    throw new FormatError('unsupported_dtype', file, `tensor ${name} has type Q8_K, an activation type that no weight can have (as in ggml)`);
  }
  if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i])) {
    throw new ModelError('shape_mismatch', `${file}: tensor ${name} has shape [${info.shape}], the config implies [${shape}]`);
  }
  if (shape.length === 1 && info.dtype !== 'f32') {
    throw new ModelError('unsupported_dtype', `${file}: norm tensor ${name} is ${info.dtype}; only f32 norms are supported`);
  }
}
