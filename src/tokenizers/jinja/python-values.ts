/**
 * Python's values, as chat templates see them under Python's jinja2, built on @huggingface/jinja's
 * runtime values.
 *
 * The library represents a template value as one of its RuntimeValue classes (StringValue,
 * IntegerValue, ArrayValue, ObjectValue, ...), and its statements (if, set, macro, call) test them
 * with `instanceof`. So we keep its classes as the representation, and add here what a
 * JavaScript reading of them gets wrong and Python gets right:
 *   - str() and repr(): `None`, `True`, `1.0`, `['a', 'b']`, `{'k': 1}`;
 *   - equality and ordering (`[1] == [1]`, `1 == 1.0 == True`, lists compare item by item);
 *   - the types the library lacks: markupsafe's Markup (a str whose `+` HTML-escapes the other
 *     side), one-shot iterators (what jinja2's map/select/items return: truthy, no len(),
 *     emptied by a first pass, and not JSON-serialisable), and an Undefined that remembers why it
 *     is undefined (for the UndefinedError it raises when used);
 *   - len(), iteration, `in`, str methods' notion of whitespace, json.dumps.
 *
 * The library exports its runtime classes only as types, so `libraryClasses` takes each class
 * from a value the library itself made (and checks their names, so a library update that renames
 * them fails loudly here instead of silently rendering differently).
 */
import * as jinja from '@huggingface/jinja';

/** One of the library's runtime values: a type name, a JavaScript payload, Python truthiness. */
export interface Value<T = unknown> {
  readonly type: string;
  value: T;
  __bool__(): { value: boolean };
}

/** The library's variable scope (its Environment): variables here, the rest in the parent scopes. */
export interface Scope {
  readonly parent?: Scope;
  readonly variables: Map<string, Value>;
  set(name: string, value: unknown): Value;
  setVariable(name: string, value: Value): Value;
  lookupVariable(name: string): Value;
}

/** The library's parsed template: a Program node whose body holds statements and printed expressions. */
export interface SyntaxTree {
  type: 'Program';
  body: unknown[];
}

/**
 * The part of @huggingface/jinja we use, typed here: its declarations import their modules
 * without file extensions, which NodeNext resolution does not follow, so they arrive untyped.
 */
export const library = jinja as unknown as {
  Environment: new (parent?: Scope) => Scope;
  Interpreter: new (scope?: Scope) => { run(program: SyntaxTree): Value; evaluate(node: unknown, scope: Scope): Value };
  tokenize(source: string, options?: { lstrip_blocks?: boolean; trim_blocks?: boolean }): unknown[];
  parse(tokens: unknown[]): SyntaxTree;
};

/** The library's function payload: positional values (kwargs last, as a KeywordArgumentsValue) and the caller's scope. */
export type Callable = (args: Value[], scope: Scope) => Value;
type ValueClass<T> = new (value: T) => Value<T>;

function libraryClasses() {
  const env = new library.Environment();
  let probes = 0;
  const classOf = <T>(js: unknown, name: string): ValueClass<T> => checked<T>(env.set(`probe${probes++}`, js), name);
  const namespace = env.lookupVariable('namespace') as Value<Callable>;
  const tupleLiteral = library.parse(library.tokenize('{{ (1, 2) }}')).body[0];
  return {
    Str: classOf<string>('', 'StringValue'),
    Int: classOf<number>(1, 'IntegerValue'),
    Float: classOf<number>(0.5, 'FloatValue'),
    Bool: classOf<boolean>(true, 'BooleanValue'),
    None: classOf<null>(null, 'NullValue'),
    Undefined: classOf<undefined>(undefined, 'UndefinedValue'),
    List: classOf<Value[]>([], 'ArrayValue'),
    Dict: classOf<Map<string, Value>>({}, 'ObjectValue'),
    Function: classOf<Callable>(() => 0, 'FunctionValue'),
    Namespace: checked<Map<string, Value>>(namespace.value([], env), 'NamespaceValue'),
    Tuple: checked<Value[]>(new library.Interpreter(env).evaluate(tupleLiteral, env), 'TupleValue'),
  };
}

function checked<T>(made: Value, name: string): ValueClass<T> {
  if (made.type !== name) throw new Error(`@huggingface/jinja: expected a ${name}, got a ${made.type}`);
  return (made as object).constructor as ValueClass<T>;
}

export const V = libraryClasses();

/** markupsafe.Markup: a str marked safe; `Markup + str` escapes the str (what `"..." | safe` makes). */
export class Markup extends V.Str {}

/**
 * A one-shot Python iterator (a generator from map/select/items, a list_reverseiterator): always
 * truthy, no len(), not a sequence, emptied by the first pass over it.
 */
export class PyIterator extends V.List {
  constructor(items: Value[], readonly kind = 'generator') {
    super(items);
  }

  override __bool__(): { value: boolean } {
    return { value: true };
  }

  /** The items not yet consumed; the iterator is empty afterwards. */
  take(): Value[] {
    const items = this.value;
    this.value = [];
    return items;
  }
}

/** jinja2's Undefined, with the reason it is undefined for the UndefinedError it raises when used. */
export class PyUndefined extends V.Undefined {
  constructor(readonly hint: string) {
    super(undefined);
  }
}

/** A Python exception raised while rendering (TypeError, UndefinedError, ...). */
export class PythonError extends Error {
  constructor(readonly pythonType: string, message: string) {
    super(message);
  }
}

export const typeError = (message: string): PythonError => new PythonError('TypeError', message);

/** The UndefinedError using `v` raises (jinja2 raises it on anything but printing, testing and iterating). */
export function undefinedError(v: Value): PythonError {
  const hint = v instanceof PyUndefined ? v.hint : 'value is undefined';
  return new PythonError('UndefinedError', hint);
}

// ---------------------------------------------------------------------------------------------
// Making and recognising values

export const str = (s: string): Value<string> => new V.Str(s);
export const int = (n: number): Value<number> => new V.Int(n);
export const float = (n: number): Value<number> => new V.Float(n);
export const bool = (b: boolean): Value<boolean> => new V.Bool(b);
export const none = (): Value<null> => new V.None(null);
export const list = (items: Value[]): Value<Value[]> => new V.List(items);
export const tuple = (items: Value[]): Value<Value[]> => new V.Tuple(items);
export const dict = (entries: Map<string, Value>): Value<Map<string, Value>> => new V.Dict(entries);
export const func = (f: Callable): Value<Callable> => new V.Function(f);

export const isStr = (v: Value): v is Value<string> => v instanceof V.Str;
export const isInt = (v: Value): v is Value<number> => v instanceof V.Int;
export const isFloat = (v: Value): v is Value<number> => v instanceof V.Float;
export const isBool = (v: Value): v is Value<boolean> => v instanceof V.Bool;
/** int, float or bool: Python does arithmetic on all three. */
export const isNumber = (v: Value): v is Value<number | boolean> => isInt(v) || isFloat(v) || isBool(v);
export const isNone = (v: Value): v is Value<null> => v instanceof V.None;
export const isUndefined = (v: Value): v is Value<undefined> => v instanceof V.Undefined;
export const isIterator = (v: Value): v is PyIterator => v instanceof PyIterator;
/** A list, tuple or iterator. */
export const isListLike = (v: Value): v is Value<Value[]> => v instanceof V.List;
export const isTuple = (v: Value): v is Value<Value[]> => v instanceof V.Tuple;
/** A list or tuple (not an iterator). */
export const isSequence = (v: Value): v is Value<Value[]> => v instanceof V.List && !(v instanceof PyIterator);
export const isList = (v: Value): v is Value<Value[]> => isSequence(v) && !isTuple(v);
export const isDict = (v: Value): v is Value<Map<string, Value>> => v instanceof V.Dict;
export const isNamespace = (v: Value): v is Value<Map<string, Value>> => v instanceof V.Namespace;
export const isCallable = (v: Value): v is Value<Callable> => v instanceof V.Function;

/** The number in an int, float or bool (True is 1). */
export const numberOf = (v: Value<number | boolean>): number => Number(v.value);

/** Python's truthiness (the library's, except that NaN is true in Python). */
export function truthy(v: Value): boolean {
  if (isFloat(v)) return v.value !== 0;
  return v.__bool__().value;
}

/** Python's type name, as error messages and `'x object'` hints spell it. */
export function typeName(v: Value): string {
  if (v instanceof Markup) return 'Markup';
  if (isStr(v)) return 'str';
  if (isBool(v)) return 'bool';
  if (isInt(v)) return 'int';
  if (isFloat(v)) return 'float';
  if (isNone(v)) return 'NoneType';
  if (isUndefined(v)) return 'Undefined';
  if (isIterator(v)) return v.kind;
  if (isTuple(v)) return 'tuple';
  if (isSequence(v)) return 'list';
  if (isDict(v)) return 'dict';
  if (isNamespace(v)) return 'Namespace';
  if (isCallable(v)) return 'function';
  return v.type;
}

/** JSON-like JavaScript data (template variables) as template values: objects become dicts in key order. */
export function fromJS(js: unknown): Value {
  if (js === null) return none();
  if (js === undefined) return new PyUndefined('value is undefined');
  if (typeof js === 'string') return str(js);
  if (typeof js === 'boolean') return bool(js);
  if (typeof js === 'number') return Number.isInteger(js) ? int(js) : float(js);
  if (Array.isArray(js)) return list(js.map(fromJS));
  if (typeof js === 'function') return func((args) => fromJS(js(...args.map(toJS))));
  if (typeof js === 'object') {
    const entries = Object.entries(js as Record<string, unknown>).filter(([, v]) => v !== undefined);
    return dict(new Map(entries.map(([k, v]) => [k, fromJS(v)])));
  }
  throw new TypeError(`cannot pass a ${typeof js} to a template`);
}

/** A template value as plain JavaScript data (for functions given as template variables). */
export function toJS(v: Value): unknown {
  if (isNone(v) || isUndefined(v)) return isNone(v) ? null : undefined;
  if (isListLike(v)) return v.value.map(toJS);
  if (isDict(v) || isNamespace(v)) return Object.fromEntries([...v.value].map(([k, x]) => [k, toJS(x)]));
  return v.value;
}

// ---------------------------------------------------------------------------------------------
// str() and repr()

/** Python's str(v): what `{{ v }}`, `~` and `| string` produce. */
export function pyStr(v: Value): string {
  if (isStr(v)) return v.value;
  if (isBool(v)) return v.value ? 'True' : 'False';
  if (isInt(v)) return intText(v.value);
  if (isFloat(v)) return floatRepr(v.value);
  if (isNone(v)) return 'None';
  if (isUndefined(v)) return '';
  return pyRepr(v);
}

/** Python's repr(v): how items print inside a printed list or dict. */
export function pyRepr(v: Value): string {
  if (v instanceof Markup) return `Markup(${strRepr(v.value)})`;
  if (isStr(v)) return strRepr(v.value);
  if (isUndefined(v)) return 'Undefined';
  if (isIterator(v)) return `<${v.kind} object>`;
  if (isTuple(v)) return v.value.length === 1 ? `(${pyRepr(v.value[0])},)` : `(${v.value.map(pyRepr).join(', ')})`;
  if (isSequence(v)) return `[${v.value.map(pyRepr).join(', ')}]`;
  if (isDict(v)) return `{${[...v.value].map(([k, x]) => `${strRepr(k)}: ${pyRepr(x)}`).join(', ')}}`;
  if (isNamespace(v)) return `<Namespace {${[...v.value].map(([k, x]) => `${strRepr(k)}: ${pyRepr(x)}`).join(', ')}}>`;
  if (isCallable(v)) return '<function>';
  return pyStr(v);
}

/** An int's digits (Python never writes an int in exponent form, as String(1e21) would). */
const intText = (n: number): string => (Number.isSafeInteger(n) ? String(n) : BigInt(n).toString());

/** Python's float repr: shortest round-trip digits, exponent form below 1e-4 and from 1e16. */
export function floatRepr(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const [mantissa, expText] = x.toExponential().split('e'); // toExponential() gives the shortest digits
  const exp = Number(expText);
  const digits = mantissa.replace('-', '').replace('.', '');
  const sign = x < 0 ? '-' : '';
  if (exp < -4 || exp >= 16) {
    const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    return `${sign}${m}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  }
  if (exp < 0) return `${sign}0.${'0'.repeat(-exp - 1)}${digits}`;
  return `${sign}${digits.slice(0, exp + 1).padEnd(exp + 1, '0')}.${digits.slice(exp + 1) || '0'}`;
}

/** Characters repr() escapes: control, format, private-use, unassigned, separators other than space. */
const NOT_PRINTABLE = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}\p{Zs}]/u;

/** Python's repr of a str: single quotes unless it holds ' and no ", escapes for the unprintable. */
export function strRepr(s: string): string {
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of s) {
    if (ch === quote || ch === '\\') out += `\\${ch}`;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (ch !== ' ' && NOT_PRINTABLE.test(ch)) out += codePointEscape(ch.codePointAt(0)!);
    else out += ch;
  }
  return out + quote;
}

function codePointEscape(cp: number): string {
  if (cp < 0x100) return `\\x${cp.toString(16).padStart(2, '0')}`;
  if (cp < 0x10000) return `\\u${cp.toString(16).padStart(4, '0')}`;
  return `\\U${cp.toString(16).padStart(8, '0')}`;
}

/** markupsafe.escape's text: Markup as is, anything else as str() with & < > " ' escaped. */
export function escapeHtml(v: Value): string {
  if (v instanceof Markup) return v.value;
  return pyStr(v).replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]);
}
const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&#34;', "'": '&#39;' };

// ---------------------------------------------------------------------------------------------
// Equality, ordering, length, iteration, membership

/** Python's `a == b`. */
export function pyEquals(a: Value, b: Value): boolean {
  if (isNumber(a) && isNumber(b)) return numberOf(a) === numberOf(b);
  if (isStr(a) || isStr(b)) return isStr(a) && isStr(b) && a.value === b.value;
  if (isNone(a) || isNone(b)) return isNone(a) && isNone(b);
  if (isUndefined(a) || isUndefined(b)) return isUndefined(a) && isUndefined(b); // jinja2: same type
  if (isSequence(a) && isSequence(b)) {
    if (isTuple(a) !== isTuple(b) || a.value.length !== b.value.length) return false;
    return a.value.every((x, i) => pyEquals(x, b.value[i]));
  }
  if (isDict(a) && isDict(b)) {
    if (a.value.size !== b.value.size) return false;
    for (const [k, x] of a.value) {
      const y = b.value.get(k);
      if (y === undefined || !pyEquals(x, y)) return false;
    }
    return true;
  }
  return a === b;
}

/** Python's ordering of two values (<0, 0, >0); TypeError where Python has none, as `op` would raise. */
export function pyOrder(a: Value, b: Value, op = '<'): number {
  if (isUndefined(a)) throw undefinedError(a);
  if (isUndefined(b)) throw undefinedError(b);
  if (isNumber(a) && isNumber(b)) return Math.sign(numberOf(a) - numberOf(b));
  if (isStr(a) && isStr(b)) return compareCodePoints(a.value, b.value);
  if (isSequence(a) && isSequence(b) && isTuple(a) === isTuple(b)) {
    const n = Math.min(a.value.length, b.value.length);
    for (let i = 0; i < n; i++) {
      if (!pyEquals(a.value[i], b.value[i])) return pyOrder(a.value[i], b.value[i], op);
    }
    return Math.sign(a.value.length - b.value.length);
  }
  throw typeError(`'${op}' not supported between instances of '${typeName(a)}' and '${typeName(b)}'`);
}

/** Compare by code point, as Python orders str (JavaScript's < compares UTF-16 units). */
function compareCodePoints(a: string, b: string): number {
  const x = [...a];
  const y = [...b];
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) {
    if (x[i] !== y[i]) return x[i].codePointAt(0)! - y[i].codePointAt(0)!;
  }
  return x.length - y.length;
}

/** Python's len(); jinja2's Undefined has length 0. */
export function pyLen(v: Value): number {
  if (isStr(v)) return [...v.value].length;
  if (isSequence(v)) return v.value.length;
  if (isDict(v)) return v.value.size;
  if (isUndefined(v)) return 0;
  throw typeError(`object of type '${typeName(v)}' has no len()`);
}

/** The items a Python `for` sees: list items, dict keys, characters; an iterator is consumed; Undefined is empty. */
export function iterate(v: Value): Value[] {
  if (isIterator(v)) return v.take();
  if (isListLike(v)) return [...v.value];
  if (isDict(v)) return [...v.value.keys()].map(str);
  if (isStr(v)) return Array.from(v.value, str);
  if (isUndefined(v)) return [];
  throw typeError(`'${typeName(v)}' object is not iterable`);
}

/** Python's `item in container`. */
export function pyContains(container: Value, item: Value): boolean {
  if (isStr(container)) {
    if (!isStr(item)) throw typeError(`'in <string>' requires string as left operand, not ${typeName(item)}`);
    return container.value.includes(item.value);
  }
  if (isDict(container)) {
    if ((isSequence(item) && !isTuple(item)) || isDict(item)) throw typeError(`unhashable type: '${typeName(item)}'`);
    return isStr(item) && container.value.has(item.value);
  }
  if (isIterator(container)) {
    // Python stops consuming at the first match.
    const at = container.value.findIndex((x) => pyEquals(x, item));
    container.value = at < 0 ? [] : container.value.slice(at + 1);
    return at >= 0;
  }
  if (isListLike(container)) return container.value.some((x) => pyEquals(x, item));
  if (isUndefined(container)) return false;
  throw typeError(`argument of type '${typeName(container)}' is not iterable`);
}

/** The key a value has in a Python set or dict (1, 1.0 and True are one key); TypeError for unhashable values. */
export function hashKey(v: Value): string {
  if (isNumber(v)) return `n${numberOf(v)}`;
  if (isStr(v)) return `s${v.value}`;
  if (isNone(v)) return 'None';
  if (isTuple(v)) return `t(${v.value.map(hashKey).join(',')})`;
  if (isSequence(v) || isDict(v)) throw typeError(`unhashable type: '${typeName(v)}'`);
  return `o${typeName(v)}`;
}

// ---------------------------------------------------------------------------------------------
// Strings: Python's whitespace, strip and split

/** What str.isspace() accepts (JavaScript's \s adds U+FEFF and lacks U+001C..U+001F and U+0085). */
const PY_SPACE = '\\t\\n\\x0b\\x0c\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const LEADING_SPACE = new RegExp(`^[${PY_SPACE}]+`);
const TRAILING_SPACE = new RegExp(`[${PY_SPACE}]+$`);
const SPACE_RUN = new RegExp(`[${PY_SPACE}]+`);
const SPACE_RUNS = new RegExp(`[${PY_SPACE}]+`, 'g');

/** str.strip / lstrip / rstrip: whitespace, or any of `chars`. */
export function pyStrip(s: string, chars: string | null, left = true, right = true): string {
  if (chars === null) {
    if (left) s = s.replace(LEADING_SPACE, '');
    if (right) s = s.replace(TRAILING_SPACE, '');
    return s;
  }
  const set = new Set(chars);
  const cps = [...s];
  let start = 0;
  let end = cps.length;
  if (left) while (start < end && set.has(cps[start])) start++;
  if (right) while (end > start && set.has(cps[end - 1])) end--;
  return cps.slice(start, end).join('');
}

/** str.split(sep=None, maxsplit=-1); without sep, runs of whitespace split and the ends are dropped. */
export function pySplit(s: string, sep: string | null, maxsplit = -1): string[] {
  if (sep === '') throw new PythonError('ValueError', 'empty separator');
  if (sep !== null) {
    const parts = s.split(sep);
    if (maxsplit < 0 || parts.length <= maxsplit + 1) return parts;
    return [...parts.slice(0, maxsplit), parts.slice(maxsplit).join(sep)];
  }
  const out: string[] = [];
  let rest = s.replace(LEADING_SPACE, '');
  while (rest !== '') {
    const m = maxsplit >= 0 && out.length === maxsplit ? null : SPACE_RUN.exec(rest);
    if (!m) {
      out.push(rest); // the remainder keeps its trailing whitespace when maxsplit ran out
      break;
    }
    out.push(rest.slice(0, m.index));
    rest = rest.slice(m.index + m[0].length);
  }
  return out;
}

/** str.rsplit(sep=None, maxsplit=-1): split from the right. */
export function pyRsplit(s: string, sep: string | null, maxsplit = -1): string[] {
  if (maxsplit < 0) return pySplit(s, sep);
  if (sep === '') throw new PythonError('ValueError', 'empty separator');
  if (sep !== null) {
    const parts = s.split(sep);
    if (parts.length <= maxsplit + 1) return parts;
    return [parts.slice(0, parts.length - maxsplit).join(sep), ...parts.slice(parts.length - maxsplit)];
  }
  const out: string[] = [];
  let rest = s.replace(TRAILING_SPACE, '');
  while (rest !== '') {
    const runs = out.length === maxsplit ? [] : [...rest.matchAll(SPACE_RUNS)];
    const last = runs.at(-1);
    if (!last) {
      out.unshift(rest); // the remainder keeps its leading whitespace when maxsplit ran out
      break;
    }
    out.unshift(rest.slice(last.index! + last[0].length));
    rest = rest.slice(0, last.index);
  }
  return out;
}

/** str.splitlines(): on every line boundary Python knows, without the line ends. */
export function pySplitlines(s: string, keepends = false): string[] {
  const out: string[] = [];
  const boundary = /\r\n|[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]/g;
  let start = 0;
  for (let m = boundary.exec(s); m; m = boundary.exec(s)) {
    out.push(s.slice(start, keepends ? m.index + m[0].length : m.index));
    start = m.index + m[0].length;
  }
  if (start < s.length) out.push(s.slice(start));
  return out;
}

/** str.replace(old, new, count=-1), including Python's empty `old` (insert between characters). */
export function pyReplace(s: string, old: string, replacement: string, count = -1): string {
  const limit = count < 0 ? Infinity : count;
  if (old === '') {
    const chars = [...s];
    let out = '';
    let done = 0;
    for (let i = 0; i <= chars.length; i++) {
      if (done < limit) {
        out += replacement;
        done++;
      }
      if (i < chars.length) out += chars[i];
    }
    return out;
  }
  const parts = s.split(old);
  if (parts.length - 1 <= limit) return parts.join(replacement);
  return parts.slice(0, limit + 1).join(replacement) + old + parts.slice(limit + 1).join(old);
}

// ---------------------------------------------------------------------------------------------
// json.dumps (transformers' tojson)

export interface JsonOptions {
  ensureAscii: boolean;
  /** null: one line; otherwise newlines and this string per level (indent=0 gives newlines only). */
  indent: string | null;
  itemSeparator: string;
  keySeparator: string;
  sortKeys: boolean;
}

/** Python's json.dumps(v, ...): its spacing, key order, float repr and escapes; TypeError for what it cannot encode. */
export function jsonDumps(v: Value, opts: JsonOptions, depth = 0): string {
  if (isStr(v)) return jsonString(v.value, opts.ensureAscii);
  if (isBool(v)) return v.value ? 'true' : 'false';
  if (isInt(v)) return intText(v.value);
  if (isFloat(v)) return Number.isFinite(v.value) ? floatRepr(v.value) : Number.isNaN(v.value) ? 'NaN' : v.value > 0 ? 'Infinity' : '-Infinity';
  if (isNone(v)) return 'null';
  let items: string[];
  let open: string;
  let close: string;
  if (isSequence(v)) {
    items = v.value.map((x) => jsonDumps(x, opts, depth + 1));
    [open, close] = ['[', ']'];
  } else if (isDict(v)) {
    let entries = [...v.value];
    if (opts.sortKeys) entries = entries.sort(([a], [b]) => compareCodePoints(a, b));
    items = entries.map(([k, x]) => jsonString(k, opts.ensureAscii) + opts.keySeparator + jsonDumps(x, opts, depth + 1));
    [open, close] = ['{', '}'];
  } else {
    throw typeError(`Object of type ${typeName(v)} is not JSON serializable`);
  }
  if (items.length === 0) return open + close;
  if (opts.indent === null) return open + items.join(opts.itemSeparator) + close;
  const inner = `\n${opts.indent.repeat(depth + 1)}`;
  return open + inner + items.join(opts.itemSeparator + inner) + `\n${opts.indent.repeat(depth)}` + close;
}

const JSON_SHORT_ESCAPES: Record<string, string> = { '"': '\\"', '\\': '\\\\', '\b': '\\b', '\f': '\\f', '\n': '\\n', '\r': '\\r', '\t': '\\t' };

function jsonString(s: string, ensureAscii: boolean): string {
  const special = ensureAscii ? /[\\"]|[^ -~]/g : /[\\"\x00-\x1f]/g;
  return `"${s.replace(special, (c) => JSON_SHORT_ESCAPES[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)}"`;
}
