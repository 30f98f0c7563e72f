/**
 * Every error the server answers with, mapped in one place to an HTTP status and OpenAI's error
 * body { error: { message, type, param, code } }. Bugs become a 500 with a generic message: no
 * stack trace leaves the server.
 */
import { RequestError, ResourceError, SmallMindError, TemplateError } from '../errors.js';

export interface ApiError {
  status: number;
  body: { error: { message: string; type: string; param: string | null; code: string | null } };
  /** Seconds, for 429 and 503. */
  retryAfter?: number;
}

export function apiError(status: number, type: string, message: string, code: string | null, param: string | null = null, retryAfter?: number): ApiError {
  return { status, body: { error: { message, type, param, code } }, ...(retryAfter !== undefined && { retryAfter }) };
}

/** A fastify error (bad JSON, body too large, schema validation) or ours, as the API answers it. */
export function toApiError(err: unknown): ApiError {
  if (err instanceof RequestError) {
    const status = err.code === 'model_not_found' ? 404 : 400;
    return apiError(status, 'invalid_request_error', err.message, err.code, err.parameter);
  }
  if (err instanceof TemplateError) return apiError(400, 'invalid_request_error', err.message, err.code, 'messages');
  if (err instanceof ResourceError) {
    if (err.code === 'queue_full') return apiError(429, 'rate_limit_error', err.message, err.code, null, 1);
    if (err.code === 'timeout') return apiError(504, 'timeout_error', err.message, err.code);
    return apiError(503, 'server_error', err.message, err.code, null, 1);
  }
  if (err instanceof SmallMindError) return apiError(500, 'server_error', 'the server could not run the request', err.code);
  const fastifyError = err as {
    statusCode?: number; code?: string; message?: string;
    validation?: { instancePath: string; message?: string; params?: { missingProperty?: string } }[];
  };
  if (fastifyError.validation) {
    const first = fastifyError.validation[0];
    const path = [first?.instancePath.replace(/^\//, '').replaceAll('/', '.'), first?.params?.missingProperty].filter(Boolean).join('.');
    const param = path || null;
    // The first failure, as "max_tokens: must be integer" (anyOf alternatives would add noise).
    return apiError(400, 'invalid_request_error', `${param ?? 'body'}: ${first?.message ?? 'invalid value'}`, 'invalid_value', param);
  }
  const status = fastifyError.statusCode;
  if (status !== undefined && status >= 400 && status < 500) {
    return apiError(status, 'invalid_request_error', fastifyError.message ?? 'invalid request', fastifyError.code ?? null);
  }
  return apiError(500, 'server_error', 'internal server error', 'internal_error');
}
