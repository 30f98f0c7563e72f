/**
 * Grammar-constrained generation: GBNF parsing (gbnf.ts), the pushdown recognizer (matcher.ts)
 * and the vocabulary mask that turns a grammar into a TokenConstraint (token-mask.ts).
 */
export { parseGbnf, MAX_REPETITION, nullableRules } from './gbnf.js';
export type { GbnfGrammar, GbnfRule, GbnfElement, GbnfCharSet, GbnfRuleRef, ParseGbnfOptions } from './gbnf.js';
export { GrammarAutomaton, GrammarMatcher, DEAD_STATE } from './matcher.js';
export { grammarConstraint, GrammarConstraint, VocabTrie } from './token-mask.js';
export type { GrammarConstraintOptions, GrammarMaskStats } from './token-mask.js';
export { jsonSchemaToGbnf, JSON_OBJECT_GBNF } from './json-schema.js';
export type { JsonSchemaToGbnfOptions } from './json-schema.js';
export { regexToGbnf } from './regex.js';
