/**
 * The serving engine: what the HTTP layer calls to run generations. A request (a model name,
 * prompt tokens, decoding options) is submitted and comes back as a job: an async iterator of
 * token events whose return value is the full result, and a cancel().
 *
 * This phase's implementation, SerialEngine, runs one sequence at a time through Model.stream
 * (each Model has a single KV cache) with a FIFO queue in front of it: `parallel` requests are
 * admitted as running at most but they take turns, so a request waits for those before it.
 * Continuous batching and a paged KV cache come next, behind this same interface.
 */
import { setImmediate as nextMacrotask } from 'node:timers/promises';
import { RequestError, ResourceError } from '../errors.js';
import type { GenerateOptions, GenerateResult, Model, TokenEvent } from '../model.js';

export interface EngineRequest {
  /** The name the model is served under. */
  model: string;
  prompt: readonly number[];
  /** Decoding options (the engine owns the abort signal: use cancel() or `signal`). */
  options: Omit<GenerateOptions, 'signal'>;
  /** Aborting it cancels the job (queued: it leaves the queue; running: it stops at the next token). */
  signal?: AbortSignal;
}

/**
 * A submitted request. Iterate `events` to its end (or call its return() once started): the
 * engine's turn is handed on when it finishes.
 */
export interface EngineJob {
  /** Token events as generated; the return value is the whole result (stopReason 'abort' when cancelled). */
  events: AsyncGenerator<TokenEvent, GenerateResult>;
  cancel(): void;
}

export interface EngineStats {
  /** Requests waiting for their turn. */
  queued: number;
  /** Requests generating now. */
  running: number;
}

export interface ServedModel {
  name: string;
  model: Model;
}

export interface Engine {
  readonly models: readonly ServedModel[];
  /** The model served under `name`; a RequestError 'model_not_found' otherwise. */
  model(name: string): Model;
  /** Queue a request; a ResourceError 'queue_full' at once when the queue holds maxQueue requests. */
  submit(request: EngineRequest): EngineJob;
  stats(): EngineStats;
  /** Resolve once nothing is queued or running. */
  drain(): Promise<void>;
}

export interface SerialEngineOptions {
  /** Requests that may wait for their turn at most (default 64); more get 'queue_full'. */
  maxQueue?: number;
}

/** A queued request's place: resolved true when its turn comes, false when it was cancelled first. */
interface Waiter {
  start(started: boolean): void;
}

export class SerialEngine implements Engine {
  private readonly byName: Map<string, Model>;
  private readonly maxQueue: number;
  private readonly waiting: Waiter[] = [];
  private busy = false;
  private idleWaiters: (() => void)[] = [];

  constructor(readonly models: readonly ServedModel[], opts: SerialEngineOptions = {}) {
    this.byName = new Map(models.map((m) => [m.name, m.model]));
    this.maxQueue = opts.maxQueue ?? 64;
  }

  model(name: string): Model {
    const model = this.byName.get(name);
    if (!model) throw new RequestError('model_not_found', 'model', `the model "${name}" does not exist (served: ${[...this.byName.keys()].join(', ')})`);
    return model;
  }

  submit(request: EngineRequest): EngineJob {
    const model = this.model(request.model);
    if (this.busy && this.waiting.length >= this.maxQueue) {
      throw new ResourceError('queue_full', `the queue holds ${this.maxQueue} requests already: try again later`);
    }
    const controller = new AbortController();
    const signal = request.signal ? AbortSignal.any([request.signal, controller.signal]) : controller.signal;
    const turn = this.takeTurn(signal);
    return { events: this.run(model, request, turn, signal), cancel: () => controller.abort() };
  }

  stats(): EngineStats {
    return { queued: this.waiting.length, running: this.busy ? 1 : 0 };
  }

  async drain(): Promise<void> {
    if (!this.busy && this.waiting.length === 0) return;
    await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  private async *run(model: Model, request: EngineRequest, turn: Promise<boolean>, signal: AbortSignal): AsyncGenerator<TokenEvent, GenerateResult> {
    if (!(await turn)) throw new ResourceError('cancelled', 'the request was cancelled before it started');
    const stream = model.stream(request.prompt, { ...request.options, signal });
    try {
      for (;;) {
        const next = await stream.next();
        if (next.done) return next.value;
        yield next.value;
        // Each token is computed synchronously: give sockets (writes, disconnects) a turn between tokens.
        await nextMacrotask();
      }
    } finally {
      await stream.return(undefined as never);
      this.release();
    }
  }

  /** Resolves true at once when idle, else when the requests before it are done; false when cancelled while waiting. */
  private takeTurn(signal: AbortSignal): Promise<boolean> {
    if (!this.busy) {
      this.busy = true;
      return Promise.resolve(true);
    }
    if (signal.aborted) return Promise.resolve(false);
    return new Promise<boolean>((resolve) => {
      const waiter: Waiter = {
        start: (started) => {
          signal.removeEventListener('abort', onAbort);
          resolve(started);
        },
      };
      const onAbort = (): void => {
        this.waiting.splice(this.waiting.indexOf(waiter), 1);
        waiter.start(false);
        if (!this.busy && this.waiting.length === 0) this.notifyIdle();
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(waiter);
    });
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next) {
      next.start(true);
      return;
    }
    this.busy = false;
    this.notifyIdle();
  }

  private notifyIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }
}
