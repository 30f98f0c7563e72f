/**
 * One error class per family, each with a stable `code` that programs (and the server, later) can
 * switch on. Messages name the file, field or parameter at fault.
 */
export type ErrorFamily = 'format' | 'model' | 'request' | 'resource' | 'template';

export class SmallMindError extends Error {
  constructor(
    readonly family: ErrorFamily,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** A file that cannot be read as what it claims to be: bad magic, truncated, corrupt, unknown type. */
export class FormatError extends SmallMindError {
  constructor(code: string, readonly file: string, message: string) {
    super('format', code, `${file}: ${message}`);
  }
}

/** A model whose contents do not make a runnable model: missing tensor or key, shape mismatch. */
export class ModelError extends SmallMindError {
  constructor(code: string, message: string) {
    super('model', code, message);
  }
}

/** A bad argument from the caller: an option out of range, an unsupported setting. */
export class RequestError extends SmallMindError {
  constructor(code: string, readonly parameter: string, message: string) {
    super('request', code, `${parameter}: ${message}`);
  }
}

/** Not enough of something: memory, context length, threads. */
export class ResourceError extends SmallMindError {
  constructor(code: string, message: string) {
    super('resource', code, message);
  }
}

/**
 * A chat template that does not parse ('template_syntax'), that stops the conversation with its
 * own raise_exception ('template_raised': `detail` is the template's message, word for word), or
 * that fails while rendering ('template_runtime': a Python TypeError, UndefinedError, ...).
 * `source` names the template: e.g. "model.gguf: tokenizer.chat_template".
 */
export class TemplateError extends SmallMindError {
  constructor(code: string, readonly source: string | undefined, readonly detail: string) {
    super('template', code, source ? `${source}: ${detail}` : detail);
  }
}
