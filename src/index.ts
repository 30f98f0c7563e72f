/** SmallMind's public API. */
export { loadModel, Model, DEFAULT_MODEL_PATH } from './model.js';
export type { LoadOptions, GenerateOptions, GenerateResult, GenerateTimings, TokenEvent, ModelInfo } from './model.js';
export type { PerplexityResult, PerplexityChunk } from './generation/perplexity.js';
export { SmallMindError, FormatError, ModelError, RequestError, ResourceError } from './errors.js';
export { createBackend } from './backend/index.js';
export type { Backend, BackendName } from './backend/backend.js';
export { Tensor } from './tensor/tensor.js';
export type { DType } from './tensor/dtype.js';
