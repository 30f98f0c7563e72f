/**
 * Autograd: a tape over the one op set (tape.ts: Var, Parameter, Tape and the ownership rules;
 * functions.ts: the differentiable functions, each with its backward).
 */
export { Parameter, Tape, Var, type Backward, type Grads, type OptimParam, type ParameterOptions } from './tape.js';
export * from './functions.js';
