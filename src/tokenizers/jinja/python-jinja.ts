/**
 * Jinja templates rendered the way Python's jinja2 renders them in Hugging Face's
 * apply_chat_template (an ImmutableSandboxedEnvironment with trim_blocks, lstrip_blocks and loop
 * controls), on top of @huggingface/jinja.
 *
 * The library lexes and parses the template (with trim_blocks/lstrip_blocks) and runs the
 * statements whose meaning is the same in both languages: if, set, macro, call blocks, scoping,
 * literals. `PythonInterpreter` subclasses its Interpreter and takes over every node where a
 * JavaScript reading differs from Python's (its `evaluate` is the one entry point every node goes
 * through, so an override there sees the whole tree):
 *   - printing: the parsed tree is rewritten so that each `{{ expr }}` becomes an output node, which
 *     prints Python's str() of the value (None, True, ['a'], {'k': 1});
 *   - names, member access and slices (python-builtins.ts's getAttr / getItem / getSlice);
 *   - operators (`+` typed, `==` Python equality, `~`, `in`, `%` formatting);
 *   - filters and tests (jinja2's, with transformers' tojson);
 *   - for loops (strings, dicts, iterators, undefined; loop.*; break/continue; `if` filters).
 * Unknown filter and test names fail when the template is compiled, as in jinja2.
 */
import { FILTERS, GLOBALS, TESTS, binaryOp, callFilter, getAttr, getItem, getSlice } from './python-builtins.js';
import {
  PythonError, PyUndefined, V, bool, func, int, isDict, isNone, isUndefined, iterate, library, none, pyStr, str, truthy,
  typeError, type Scope, type SyntaxTree, type Value,
} from './python-values.js';

/** The parts of the library's syntax tree we read (its classes are exported as types only). */
interface Node {
  type: string;
}
interface IdentifierNode extends Node { value: string }
interface LiteralNode extends Node { value: unknown }
interface MemberNode extends Node { object: Node; property: Node; computed: boolean }
interface SliceNode extends Node { start?: Node; stop?: Node; step?: Node }
interface BinaryNode extends Node { operator: { value: string }; left: Node; right: Node }
interface CallNode extends Node { callee: Node; args: Node[] }
interface FilterNode extends Node { operand: Node; filter: Node }
interface FilterStatementNode extends Node { filter: Node; body: Node[] }
interface TestNode extends Node { operand: Node; negate: boolean; test: IdentifierNode }
interface ForNode extends Node { loopvar: Node; iterable: Node; body: Node[]; defaultBlock: Node[] }
interface SelectNode extends Node { lhs: Node; test: Node }
interface TupleNode extends Node { value: Node[] }
interface KeywordNode extends Node { key: IdentifierNode; value: Node }
interface SpreadNode extends Node { argument: Node }
interface OutputNode extends Node { expression: Node }

/** Statement kinds (everything else in a block is an expression to print). */
const STATEMENTS = new Set(['Program', 'If', 'For', 'Break', 'Continue', 'Set', 'Macro', 'Comment', 'CallStatement', 'FilterStatement']);
const BLOCK_FIELDS = ['body', 'alternate', 'defaultBlock'] as const;

/** Thrown by a template syntax error or an unknown filter/test name. */
export class TemplateSyntaxError extends Error {}

/** The template called raise_exception(message). */
export class RaisedException extends Error {}

/** Deepest nesting of calls (macros calling macros): about where Python's recursion limit stops a jinja2 macro. */
const MAX_CALL_DEPTH = 200;

class BreakLoop {}
class ContinueLoop {}

/** A parsed template, ready to render. */
export interface CompiledTemplate {
  readonly program: SyntaxTree;
}

/** Parse a template with trim_blocks and lstrip_blocks and prepare it for Python-style rendering. */
export function compileTemplate(source: string): CompiledTemplate {
  let program: SyntaxTree;
  try {
    program = library.parse(library.tokenize(source, { lstrip_blocks: true, trim_blocks: true }));
  } catch (err) {
    throw new TemplateSyntaxError((err as Error).message);
  }
  // Output nodes share the library's Statement prototype: its macro code walks only Statements
  // when it looks for `kwargs` / `varargs` in a macro body.
  const statementPrototype = Object.getPrototypeOf(Object.getPrototypeOf(program)) as object;
  prepare(program as unknown as Node, (expression) => Object.assign(Object.create(statementPrototype) as OutputNode, { type: 'Output', expression }));
  return { program };
}

/**
 * Walk the tree once: wrap each printed expression in an output node, and check filter and test
 * names (jinja2 rejects unknown ones at compile time, even in branches that never run).
 */
function prepare(node: Node, output: (expression: Node) => OutputNode): void {
  if (STATEMENTS.has(node.type)) {
    const fields = node as unknown as Record<string, unknown>;
    for (const field of BLOCK_FIELDS) {
      const block = fields[field];
      if (!Array.isArray(block)) continue;
      fields[field] = block.map((child: Node) => (STATEMENTS.has(child.type) ? child : output(child)));
    }
  }
  if (node.type === 'FilterExpression' || node.type === 'FilterStatement') checkFilterName((node as FilterNode).filter);
  if (node.type === 'TestExpression' && !Object.hasOwn(TESTS, (node as TestNode).test.value)) {
    throw new TemplateSyntaxError(`No test named '${(node as TestNode).test.value}'.`);
  }
  for (const child of Object.values(node)) {
    if (Array.isArray(child)) child.forEach((c) => isNode(c) && prepare(c, output));
    else if (child instanceof Map) for (const [k, v] of child) [k, v].forEach((c) => isNode(c) && prepare(c, output));
    else if (isNode(child)) prepare(child, output);
  }
}

const isNode = (x: unknown): x is Node => typeof x === 'object' && x !== null && typeof (x as Node).type === 'string';

function filterName(filter: Node): string {
  const named = filter.type === 'CallExpression' ? (filter as CallNode).callee : filter;
  if (named.type !== 'Identifier') throw new TemplateSyntaxError(`a filter must be a name, not a ${named.type}`);
  return (named as IdentifierNode).value;
}

function checkFilterName(filter: Node): void {
  const name = filterName(filter);
  if (!Object.hasOwn(FILTERS, name)) throw new TemplateSyntaxError(`No filter named '${name}'.`);
}

/** Render a compiled template with these variables (already template values) on top of jinja2's globals. */
export function renderTemplate(template: CompiledTemplate, variables: ReadonlyMap<string, Value>): string {
  const env = new library.Environment();
  for (const [name, value] of Object.entries(GLOBALS)) env.setVariable(name, value);
  for (const [name, value] of [['true', bool(true)], ['false', bool(false)], ['none', none()], ['True', bool(true)], ['False', bool(false)], ['None', none()]] as const) {
    env.setVariable(name, value);
  }
  for (const [name, value] of variables) env.setVariable(name, value);
  return pyStr(new PythonInterpreter(env).run(template.program));
}

/** A global function that raises (raise_exception), for the caller to convert into its own error. */
export const raiseException = func((args) => {
  throw new RaisedException(args.length ? pyStr(args[0]) : '');
});

export class PythonInterpreter extends library.Interpreter {
  override evaluate(node: unknown, scope: Scope): Value {
    return this.eval(node as Node | undefined, scope);
  }

  /** One node, Python's way where it differs; the library's way elsewhere. */
  private eval(node: Node | undefined, env: Scope): Value {
    if (!node) return new PyUndefined('missing expression');
    switch (node.type) {
      case 'Output': return str(pyStr(this.eval((node as OutputNode).expression, env)));
      case 'Identifier': return this.identifier(node as IdentifierNode, env);
      case 'MemberExpression': return this.member(node as MemberNode, env);
      case 'BinaryExpression': return this.binary(node as BinaryNode, env);
      case 'FilterExpression': return this.applyFilterNode(this.eval((node as FilterNode).operand, env), (node as FilterNode).filter, env);
      case 'FilterStatement': return this.applyFilterNode(str(this.block((node as FilterStatementNode).body, env)), (node as FilterStatementNode).filter, env);
      case 'TestExpression': return this.test(node as TestNode, env);
      case 'CallExpression': return this.call(node, env);
      case 'For': return this.forLoop(node as ForNode, env);
      case 'Break': throw new BreakLoop();
      case 'Continue': throw new ContinueLoop();
      default: return super.evaluate(node, env);
    }
  }

  /** Nested calls in flight: a macro that recurses without end fails like Python's, not with a JS stack overflow. */
  private depth = 0;

  private call(node: Node, env: Scope): Value {
    if (this.depth >= MAX_CALL_DEPTH) throw new PythonError('RecursionError', 'maximum recursion depth exceeded');
    this.depth++;
    try {
      return super.evaluate(node, env);
    } finally {
      this.depth--;
    }
  }

  private block(statements: Node[], env: Scope): string {
    let out = '';
    for (const statement of statements) {
      const v = this.eval(statement, env);
      if (!isNone(v) && !isUndefined(v)) out += pyStr(v); // statements (set, macro, comments) give None
    }
    return out;
  }

  /** A name, looked up scope by scope (a loop, not the library's recursion: a stack overflow must not read as undefined). */
  private identifier(node: IdentifierNode, env: Scope): Value {
    for (let scope: Scope | undefined = env; scope; scope = scope.parent) {
      const v = scope.variables.get(node.value);
      if (v !== undefined) return v;
    }
    return new PyUndefined(`'${node.value}' is undefined`);
  }

  private member(node: MemberNode, env: Scope): Value {
    const object = this.eval(node.object, env);
    if (!node.computed) {
      // `foo.0` is an item lookup; `foo.name` prefers the attribute.
      if (node.property.type === 'IntegerLiteral') return getItem(object, int((node.property as LiteralNode).value as number));
      return getAttr(object, (node.property as IdentifierNode).value);
    }
    if (node.property.type === 'SliceExpression') {
      const slice = node.property as SliceNode;
      const bound = (n?: Node): Value => (n ? this.eval(n, env) : none());
      return getSlice(object, bound(slice.start), bound(slice.stop), bound(slice.step));
    }
    return getItem(object, this.eval(node.property, env));
  }

  private binary(node: BinaryNode, env: Scope): Value {
    const op = node.operator.value;
    const left = this.eval(node.left, env);
    if (op === 'and') return truthy(left) ? this.eval(node.right, env) : left;
    if (op === 'or') return truthy(left) ? left : this.eval(node.right, env);
    return binaryOp(op, left, this.eval(node.right, env));
  }

  private test(node: TestNode, env: Scope): Value {
    const result = TESTS[node.test.value](this.eval(node.operand, env));
    return bool(node.negate ? !result : result);
  }

  /** Evaluate call arguments: positional, name=value, *list and **dict. */
  private args(nodes: Node[], env: Scope): [Value[], Map<string, Value>] {
    const positional: Value[] = [];
    const keywords = new Map<string, Value>();
    for (const node of nodes) {
      if (node.type === 'KeywordArgumentExpression') {
        keywords.set((node as KeywordNode).key.value, this.eval((node as KeywordNode).value, env));
      } else if (node.type === 'SpreadExpression') {
        positional.push(...iterate(this.eval((node as SpreadNode).argument, env)));
      } else if (node.type === 'KeywordSpreadExpression') {
        const mapping = this.eval((node as SpreadNode).argument, env);
        if (!isDict(mapping)) throw typeError(`argument after ** must be a mapping, not ${mapping.type}`);
        for (const [k, v] of mapping.value) keywords.set(k, v);
      } else {
        positional.push(this.eval(node, env));
      }
    }
    return [positional, keywords];
  }

  private applyFilterNode(value: Value, filter: Node, env: Scope): Value {
    const name = filterName(filter);
    const [args, kwargs] = filter.type === 'CallExpression' ? this.args((filter as CallNode).args, env) : [[], new Map<string, Value>()];
    return callFilter(name, value, args, kwargs);
  }

  /** jinja2's for loop: the items (filtered by an `if`), loop.*, tuple unpacking, else when nothing was iterated. */
  private forLoop(node: ForNode, env: Scope): Value {
    const scope = new library.Environment(env);
    const select = node.iterable.type === 'SelectExpression' ? (node.iterable as SelectNode) : undefined;
    let items = iterate(this.eval(select ? select.lhs : node.iterable, scope));
    if (select) {
      items = items.filter((item) => {
        const filterScope = new library.Environment(scope);
        this.bindTarget(node.loopvar, item, filterScope);
        return truthy(this.eval(select.test, filterScope));
      });
    }
    if (items.length === 0) return str(this.block(node.defaultBlock, scope));
    let out = '';
    for (let i = 0; i < items.length; i++) {
      scope.setVariable('loop', loopObject(items, i));
      this.bindTarget(node.loopvar, items[i], scope);
      try {
        out += this.block(node.body, scope);
      } catch (err) {
        if (err instanceof ContinueLoop) continue;
        if (err instanceof BreakLoop) break;
        throw err;
      }
    }
    return str(out);
  }

  private bindTarget(target: Node, item: Value, scope: Scope): void {
    if (target.type === 'Identifier') {
      scope.setVariable((target as IdentifierNode).value, item);
      return;
    }
    const names = (target as TupleNode).value;
    const parts = iterate(item);
    if (parts.length !== names.length) {
      throw new PythonError('ValueError', parts.length < names.length
        ? `not enough values to unpack (expected ${names.length}, got ${parts.length})`
        : `too many values to unpack (expected ${names.length})`);
    }
    names.forEach((name, j) => this.bindTarget(name, parts[j], scope));
  }
}

/** jinja2's `loop`: index, index0, revindex, revindex0, first, last, length, previtem, nextitem, depth, cycle(). */
function loopObject(items: Value[], i: number): Value {
  const n = items.length;
  const fields: [string, Value][] = [
    ['index', int(i + 1)], ['index0', int(i)], ['revindex', int(n - i)], ['revindex0', int(n - i - 1)],
    ['first', bool(i === 0)], ['last', bool(i === n - 1)], ['length', int(n)], ['depth', int(1)], ['depth0', int(0)],
    ['previtem', i > 0 ? items[i - 1] : new PyUndefined('there is no previous item')],
    ['nextitem', i < n - 1 ? items[i + 1] : new PyUndefined('there is no next item')],
    ['cycle', func((args) => {
      if (args.length === 0) throw typeError('no items for cycling given');
      return args[i % args.length];
    })],
  ];
  return new V.Namespace(new Map(fields));
}
