/** SmallMind's public API. */
export { loadModel, Model, DEFAULT_MODEL_PATH } from './model.js';
export type { LoadOptions, GenerateOptions, GenerateResult, GenerateTimings, TokenEvent, ModelInfo } from './model.js';
export type { PerplexityResult, PerplexityChunk } from './generation/perplexity.js';
export { SmallMindError, FormatError, ModelError, RequestError, ResourceError } from './errors.js';
export { createBackend } from './backend/index.js';
export type { Backend, BackendName } from './backend/backend.js';
export { Tensor } from './tensor/tensor.js';
export type { DType } from './tensor/dtype.js';
export { SpmTokenizer } from './tokenizers/spm.js';
export type { Vocab } from './tokenizers/vocab.js';
export { Sampler, argmax, topLogprobs, SAMPLING_DEFAULTS } from './generation/sampler.js';
export type { SamplingOptions } from './generation/sampler.js';
export { readGGUF, readTensorData } from './formats/gguf.js';
export type { GGUFFile, GGUFTensorInfo, GGUFValue } from './formats/gguf.js';
export { writeGGUF } from './formats/gguf-writer.js';
export type { GGUFWriteTensor } from './formats/gguf-writer.js';
export { readLlama2c } from './formats/llama2c.js';
export { initModel, INIT_SHAPES } from './init.js';
