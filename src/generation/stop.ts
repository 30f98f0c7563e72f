/**
 * Stop sequences matched on the generated text, safe for streaming: text is released only once
 * it can no longer turn out to be the start of a stop string. After each piece the matcher looks
 * for a whole stop string in what it holds (the earliest one wins; the text before it is released
 * and generation ends); otherwise it holds back the longest suffix that is a prefix of some stop
 * string and releases the rest. A match can never start in released text: it would have begun
 * inside that longest suffix.
 */
import { RequestError } from '../errors.js';

export class StopMatcher {
  private held = '';
  private readonly longest: number;

  constructor(private readonly stops: readonly string[]) {
    this.longest = Math.max(0, ...stops.map((s) => s.length));
  }

  /** Add generated text; returns the text now safe to release and the stop string found, if any. */
  push(piece: string): { text: string; stop?: string } {
    const buffer = this.held + piece;
    let at = -1;
    let found: string | undefined;
    for (const stop of this.stops) {
      const i = buffer.indexOf(stop);
      if (i >= 0 && (at < 0 || i < at)) {
        at = i;
        found = stop;
      }
    }
    if (found !== undefined) {
      this.held = '';
      return { text: buffer.slice(0, at), stop: found };
    }
    const keep = this.heldSuffix(buffer);
    this.held = buffer.slice(buffer.length - keep);
    return { text: buffer.slice(0, buffer.length - keep) };
  }

  /** The end of generation: whatever is held was not a stop string after all. */
  flush(): string {
    const rest = this.held;
    this.held = '';
    return rest;
  }

  /** The length of the longest suffix of `text` that some stop string starts with. */
  private heldSuffix(text: string): number {
    for (let k = Math.min(text.length, this.longest - 1); k > 0; k--) {
      const tail = text.slice(text.length - k);
      if (this.stops.some((s) => s.startsWith(tail))) return k;
    }
    return 0;
  }
}

/** `stop` as given to generate: an array of non-empty strings (at most 16). */
export function checkStops(stop: unknown): string[] {
  if (stop === undefined) return [];
  if (!Array.isArray(stop) || stop.length > 16 || !stop.every((s) => typeof s === 'string' && s.length > 0)) {
    throw new RequestError('invalid_stop', 'stop', 'must be an array of at most 16 non-empty strings');
  }
  return stop as string[];
}
