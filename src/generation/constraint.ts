/**
 * What constrained decoding plugs into the sampler: something that knows which tokens may come
 * next. The sampling pipeline calls `mask` on each step's logits (after penalties, before top-k
 * and friends, as llama.cpp applies its grammar), draws a token, then calls `accept` with it.
 * Grammars (GBNF), JSON Schemas, json_object mode and regexes all compile to one of these.
 */
export interface TokenConstraint {
  /**
   * Set the logit of every token that may not come next to -Infinity. End-of-generation tokens
   * (`eog`) stay allowed only where the output so far is complete.
   */
  mask(logits: Float32Array, eog: ReadonlySet<number>): void;
  /**
   * Whether one token may come next (what `mask` would leave it). Optional: with it, a sampler
   * that keeps only the top k checks the best candidates one by one instead of masking the whole
   * vocabulary, which is what pays in a grammar state not seen before.
   */
  allows?(id: number, eog: ReadonlySet<number>): boolean;
  /**
   * The ids `mask` would leave, ascending, when the constraint knows them without walking the
   * vocabulary and they are few (a cached mask of a narrow state); else undefined. Optional: with
   * it, a sampler ranks just those tokens instead of scanning and masking the whole row.
   */
  allowedIds?(eog: ReadonlySet<number>): Int32Array | undefined;
  /** Advance past the chosen token (which mask allowed). */
  accept(id: number): void;
  /** Whether the output so far is a complete match (generation may end here). */
  readonly complete: boolean;
  /** Whether no further token can be accepted (the match cannot grow): generation must end. */
  readonly finished: boolean;
  /** An independent copy at the same state, for beams and parallel samples. */
  clone(): TokenConstraint;
}
