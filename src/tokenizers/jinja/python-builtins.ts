/**
 * What a chat template can call under Python's jinja2, written for the values of python-values.ts:
 * attribute and item lookup (with the sandbox's rules), the methods of str, dict and list,
 * the operators, jinja2's filters and tests, and the globals (range, dict, joiner, strftime).
 *
 * Lookup follows jinja2's sandbox: `x.name` tries the Python attribute first and the item second
 * (so `spec.items` on a dict is its `items` method), `x[key]` the item first; methods that mutate
 * a list or dict are "unsafe" (undefined); an attribute of an undefined value raises.
 */
import {
  PyIterator, PythonError, PyUndefined, Markup, bool, dict, escapeHtml, float, floatRepr, func, hashKey, int,
  isBool, isCallable, isDict, isFloat, isInt, isIterator, isListLike, isNamespace, isNone, isNumber, isSequence, isStr,
  isTuple, isUndefined, iterate, jsonDumps, list, none, numberOf, pyContains, pyEquals, pyLen, pyOrder, pyRepr,
  pyReplace, pyRsplit, pySplit, pySplitlines, pyStr, pyStrip, str, truthy, tuple, typeError, typeName, undefinedError,
  type Value,
} from './python-values.js';

type Args = Value[];
type Kwargs = Map<string, Value>;

/** Split the library's call arguments: positional values, then the keyword arguments it appends last. */
export function splitArgs(args: readonly Value[]): [Args, Kwargs] {
  const last = args.at(-1);
  if (last && last.type === 'KeywordArgumentsValue') return [args.slice(0, -1), (last as Value<Kwargs>).value];
  return [[...args], new Map()];
}

/** Bind arguments to parameters the way Python does; a parameter without default is required. */
export function bindArgs(name: string, args: Args, kwargs: Kwargs, params: readonly (readonly [string, Value?])[]): Value[] {
  if (args.length > params.length) {
    throw typeError(`${name}() takes at most ${params.length} argument${params.length === 1 ? '' : 's'} (${args.length} given)`);
  }
  for (const key of kwargs.keys()) {
    if (!params.some(([p]) => p === key)) throw typeError(`${name}() got an unexpected keyword argument '${key}'`);
  }
  return params.map(([param, fallback], i) => {
    if (i < args.length) {
      if (kwargs.has(param)) throw typeError(`${name}() got multiple values for argument '${param}'`);
      return args[i];
    }
    const given = kwargs.get(param) ?? fallback;
    if (given === undefined) throw typeError(`${name}() missing required argument '${param}'`);
    return given;
  });
}

const NONE = none();
const FALSE = bool(false);
const EMPTY = str('');

const textOf = (v: Value, what: string): string => {
  if (!isStr(v)) throw typeError(`${what} must be str, not ${typeName(v)}`);
  return v.value;
};
const intOf = (v: Value, what: string): number => {
  if (!isInt(v) && !isBool(v)) throw typeError(`${what} must be an integer, not ${typeName(v)}`);
  return numberOf(v);
};
const optionalText = (v: Value, what: string): string | null => (isNone(v) ? null : textOf(v, what));

// ---------------------------------------------------------------------------------------------
// Methods of str, dict, list

type Method = (self: Value, args: Args, kwargs: Kwargs) => Value;

/** Python's [start:end] bounds on a length (negative counts from the end). */
function bounds(length: number, start: Value, end: Value): [number, number] {
  const at = (v: Value, fallback: number): number => {
    if (isNone(v)) return fallback;
    const n = intOf(v, 'slice index');
    return n < 0 ? Math.max(0, n + length) : Math.min(n, length);
  };
  return [at(start, 0), at(end, length)];
}

/** startswith / endswith: a prefix or a tuple of them, within optional [start:end]. */
function affixMethod(name: string, test: (s: string, affix: string) => boolean): Method {
  return (self, args, kwargs) => {
    const [affix, start, end] = bindArgs(name, args, kwargs, [['prefix'], ['start', NONE], ['end', NONE]]);
    const chars = [...(self as Value<string>).value];
    const [from, to] = bounds(chars.length, start, end);
    const s = chars.slice(from, to).join('');
    const affixes = isTuple(affix) ? affix.value.map((a) => textOf(a, `${name} first arg`)) : [textOf(affix, `${name} first arg`)];
    return bool(affixes.some((a) => test(s, a)));
  };
}

/** find / rfind / index / rindex / count over code points. */
function searchMethod(name: string, fromRight: boolean, raise: boolean): Method {
  return (self, args, kwargs) => {
    const [sub, start, end] = bindArgs(name, args, kwargs, [['sub'], ['start', NONE], ['end', NONE]]);
    const chars = [...(self as Value<string>).value];
    const [from, to] = bounds(chars.length, start, end);
    const hay = chars.slice(from, to).join('');
    const needle = textOf(sub, `${name} argument`);
    const at = fromRight ? hay.lastIndexOf(needle) : hay.indexOf(needle);
    if (at < 0) {
      if (raise) throw new PythonError('ValueError', 'substring not found');
      return int(-1);
    }
    return int(from + [...hay.slice(0, at)].length);
  };
}

function stripMethod(name: string, left: boolean, right: boolean): Method {
  return (self, args, kwargs) => {
    const [chars] = bindArgs(name, args, kwargs, [['chars', NONE]]);
    return str(pyStrip((self as Value<string>).value, optionalText(chars, `${name} arg`), left, right));
  };
}

const text = (f: (s: string) => string): Method => (self) => str(f((self as Value<string>).value));
const predicate = (f: (s: string) => boolean): Method => (self) => bool(f((self as Value<string>).value));
const hasCased = (s: string): boolean => s.toLowerCase() !== s.toUpperCase();

/** Python's str.title(): upper case after any non-letter, lower case elsewhere. */
function strTitle(s: string): string {
  let previousIsLetter = false;
  let out = '';
  for (const ch of s) {
    const isLetter = /\p{L}/u.test(ch);
    out += isLetter ? (previousIsLetter ? ch.toLowerCase() : ch.toUpperCase()) : ch;
    previousIsLetter = isLetter;
  }
  return out;
}

const capitalize = (s: string): string => {
  const chars = [...s];
  return chars.length ? chars[0].toUpperCase() + chars.slice(1).join('').toLowerCase() : '';
};

/** str.center's padding split (Python puts the odd space left when the width is odd). */
function center(s: string, width: number, fill = ' '): string {
  const margin = width - [...s].length;
  if (margin <= 0) return s;
  const left = Math.floor(margin / 2) + (margin & width & 1);
  return fill.repeat(left) + s + fill.repeat(margin - left);
}

const STR_METHODS: Record<string, Method> = {
  upper: text((s) => s.toUpperCase()),
  lower: text((s) => s.toLowerCase()),
  casefold: text((s) => s.toLowerCase()),
  swapcase: text((s) => Array.from(s, (c) => (c === c.toUpperCase() ? c.toLowerCase() : c.toUpperCase())).join('')),
  title: text(strTitle),
  capitalize: text(capitalize),
  strip: stripMethod('strip', true, true),
  lstrip: stripMethod('lstrip', true, false),
  rstrip: stripMethod('rstrip', false, true),
  split: (self, args, kwargs) => {
    const [sep, maxsplit] = bindArgs('split', args, kwargs, [['sep', NONE], ['maxsplit', int(-1)]]);
    return list(pySplit((self as Value<string>).value, optionalText(sep, 'sep'), intOf(maxsplit, 'maxsplit')).map(str));
  },
  rsplit: (self, args, kwargs) => {
    const [sep, maxsplit] = bindArgs('rsplit', args, kwargs, [['sep', NONE], ['maxsplit', int(-1)]]);
    return list(pyRsplit((self as Value<string>).value, optionalText(sep, 'sep'), intOf(maxsplit, 'maxsplit')).map(str));
  },
  splitlines: (self, args, kwargs) => {
    const [keepends] = bindArgs('splitlines', args, kwargs, [['keepends', FALSE]]);
    return list(pySplitlines((self as Value<string>).value, truthy(keepends)).map(str));
  },
  startswith: affixMethod('startswith', (s, a) => s.startsWith(a)),
  endswith: affixMethod('endswith', (s, a) => s.endsWith(a)),
  replace: (self, args, kwargs) => {
    const [old, replacement, count] = bindArgs('replace', args, kwargs, [['old'], ['new'], ['count', int(-1)]]);
    return str(pyReplace((self as Value<string>).value, textOf(old, 'replace arg 1'), textOf(replacement, 'replace arg 2'), intOf(count, 'count')));
  },
  find: searchMethod('find', false, false),
  rfind: searchMethod('rfind', true, false),
  index: searchMethod('index', false, true),
  rindex: searchMethod('rindex', true, true),
  count: (self, args, kwargs) => {
    const [sub] = bindArgs('count', args, kwargs, [['sub']]);
    const needle = textOf(sub, 'count argument');
    const s = (self as Value<string>).value;
    return int(needle === '' ? [...s].length + 1 : s.split(needle).length - 1);
  },
  join: (self, args, kwargs) => {
    const [items] = bindArgs('join', args, kwargs, [['iterable']]);
    return str(iterate(items).map((item, i) => {
      if (!isStr(item)) throw typeError(`sequence item ${i}: expected str instance, ${typeName(item)} found`);
      return item.value;
    }).join((self as Value<string>).value));
  },
  format: (self, args, kwargs) => str(strFormat((self as Value<string>).value, args, kwargs)),
  isdigit: predicate((s) => s !== '' && /^\p{Nd}+$/u.test(s)),
  isdecimal: predicate((s) => s !== '' && /^\p{Nd}+$/u.test(s)),
  isnumeric: predicate((s) => s !== '' && /^\p{N}+$/u.test(s)),
  isalpha: predicate((s) => s !== '' && /^\p{L}+$/u.test(s)),
  isalnum: predicate((s) => s !== '' && /^[\p{L}\p{N}]+$/u.test(s)),
  isspace: predicate((s) => s !== '' && pyStrip(s, null) === ''),
  islower: predicate((s) => hasCased(s) && s === s.toLowerCase()),
  isupper: predicate((s) => hasCased(s) && s === s.toUpperCase()),
  zfill: (self, args, kwargs) => {
    const [width] = bindArgs('zfill', args, kwargs, [['width']]);
    const s = (self as Value<string>).value;
    const sign = /^[+-]/.test(s) ? s[0] : '';
    return str(sign + s.slice(sign.length).padStart(intOf(width, 'width') - sign.length, '0'));
  },
  center: (self, args, kwargs) => {
    const [width, fill] = bindArgs('center', args, kwargs, [['width'], ['fillchar', str(' ')]]);
    return str(center((self as Value<string>).value, intOf(width, 'width'), textOf(fill, 'fillchar')));
  },
  ljust: (self, args, kwargs) => {
    const [width, fill] = bindArgs('ljust', args, kwargs, [['width'], ['fillchar', str(' ')]]);
    const s = (self as Value<string>).value;
    return str(s + textOf(fill, 'fillchar').repeat(Math.max(0, intOf(width, 'width') - [...s].length)));
  },
  rjust: (self, args, kwargs) => {
    const [width, fill] = bindArgs('rjust', args, kwargs, [['width'], ['fillchar', str(' ')]]);
    const s = (self as Value<string>).value;
    return str(textOf(fill, 'fillchar').repeat(Math.max(0, intOf(width, 'width') - [...s].length)) + s);
  },
  removeprefix: (self, args, kwargs) => {
    const [prefix] = bindArgs('removeprefix', args, kwargs, [['prefix']]);
    const s = (self as Value<string>).value;
    const p = textOf(prefix, 'prefix');
    return str(p && s.startsWith(p) ? s.slice(p.length) : s);
  },
  removesuffix: (self, args, kwargs) => {
    const [suffix] = bindArgs('removesuffix', args, kwargs, [['suffix']]);
    const s = (self as Value<string>).value;
    const p = textOf(suffix, 'suffix');
    return str(p && s.endsWith(p) ? s.slice(0, -p.length) : s);
  },
  partition: (self, args, kwargs) => partition((self as Value<string>).value, bindArgs('partition', args, kwargs, [['sep']])[0], false),
  rpartition: (self, args, kwargs) => partition((self as Value<string>).value, bindArgs('rpartition', args, kwargs, [['sep']])[0], true),
};

function partition(s: string, sepValue: Value, fromRight: boolean): Value {
  const sep = textOf(sepValue, 'sep');
  if (sep === '') throw new PythonError('ValueError', 'empty separator');
  const at = fromRight ? s.lastIndexOf(sep) : s.indexOf(sep);
  if (at < 0) return tuple(fromRight ? [EMPTY, EMPTY, str(s)] : [str(s), EMPTY, EMPTY]);
  return tuple([str(s.slice(0, at)), str(sep), str(s.slice(at + sep.length))]);
}

const DICT_METHODS: Record<string, Method> = {
  get: (self, args, kwargs) => {
    const [key, fallback] = bindArgs('get', args, kwargs, [['key'], ['default', NONE]]);
    hashKey(key); // unhashable keys raise, as in Python
    return (isStr(key) && (self as Value<Map<string, Value>>).value.get(key.value)) || fallback;
  },
  items: (self) => list([...(self as Value<Map<string, Value>>).value].map(([k, v]) => tuple([str(k), v]))),
  keys: (self) => list([...(self as Value<Map<string, Value>>).value.keys()].map(str)),
  values: (self) => list([...(self as Value<Map<string, Value>>).value.values()]),
  copy: (self) => dict(new Map((self as Value<Map<string, Value>>).value)),
};

const SEQUENCE_METHODS: Record<string, Method> = {
  count: (self, args, kwargs) => {
    const [x] = bindArgs('count', args, kwargs, [['value']]);
    return int((self as Value<Value[]>).value.filter((item) => pyEquals(item, x)).length);
  },
  index: (self, args, kwargs) => {
    const [x] = bindArgs('index', args, kwargs, [['value']]);
    const at = (self as Value<Value[]>).value.findIndex((item) => pyEquals(item, x));
    if (at < 0) throw new PythonError('ValueError', `${pyRepr(x)} is not in list`);
    return int(at);
  },
  copy: (self) => list([...(self as Value<Value[]>).value]),
};

/** Python attribute names of each type that we do not implement, so `d.update` is never d['update']. */
const OTHER_ATTRIBUTES: Record<string, readonly string[]> = {
  str: ['encode', 'expandtabs', 'format_map', 'isascii', 'isidentifier', 'isprintable', 'istitle', 'maketrans', 'translate'],
  dict: ['fromkeys'],
  list: [],
  tuple: [],
};
/** Attributes the immutable sandbox refuses: calling them would modify the object. */
const UNSAFE_ATTRIBUTES: Record<string, readonly string[]> = {
  dict: ['clear', 'pop', 'popitem', 'setdefault', 'update'],
  list: ['append', 'clear', 'extend', 'insert', 'pop', 'remove', 'reverse', 'sort'],
};

/** The Python attribute `name` of `obj` if it has one: a bound method, or an undefined for the sandbox's refusals. */
function attributeOf(obj: Value, name: string): Value | undefined {
  const kind = isStr(obj) ? 'str' : isDict(obj) ? 'dict' : isTuple(obj) ? 'tuple' : isSequence(obj) ? 'list' : undefined;
  if (kind === undefined) return undefined;
  if (/^__.*__$/.test(name)) return new PyUndefined(`access to attribute '${name}' of '${kind}' object is unsafe.`);
  if (UNSAFE_ATTRIBUTES[kind]?.includes(name)) return new PyUndefined(`access to attribute '${name}' of '${kind}' object is unsafe.`);
  const table = kind === 'str' ? STR_METHODS : kind === 'dict' ? DICT_METHODS : SEQUENCE_METHODS;
  const method = Object.hasOwn(table, name) && (kind !== 'tuple' || name !== 'copy') ? table[name] : undefined;
  if (method) return func((args) => method(obj, ...splitArgs(args)));
  if (OTHER_ATTRIBUTES[kind].includes(name)) {
    return func(() => {
      throw new PythonError('NotImplementedError', `${kind}.${name}() is not supported in templates here`);
    });
  }
  return undefined;
}

const noAttribute = (obj: Value, name: string): PyUndefined => new PyUndefined(`'${typeName(obj)} object' has no attribute '${name}'`);

/** jinja2's `obj.name`: the attribute first, then the item. */
export function getAttr(obj: Value, name: string): Value {
  if (isUndefined(obj)) throw undefinedError(obj);
  const attribute = attributeOf(obj, name);
  if (attribute) return attribute;
  if ((isDict(obj) || isNamespace(obj)) && obj.value.has(name)) return obj.value.get(name)!;
  return noAttribute(obj, name);
}

/** jinja2's `obj[key]`: the item first, then (for a str key) the attribute. */
export function getItem(obj: Value, key: Value): Value {
  if (isUndefined(obj)) throw undefinedError(obj);
  if (isDict(obj) && isStr(key) && obj.value.has(key.value)) return obj.value.get(key.value)!;
  if ((isSequence(obj) || isStr(obj)) && (isInt(key) || isBool(key))) {
    const items = isStr(obj) ? [...obj.value] : obj.value;
    const n = numberOf(key);
    const at = n < 0 ? n + items.length : n;
    if (at >= 0 && at < items.length) {
      const item = items[at];
      return typeof item === 'string' ? str(item) : item;
    }
    return new PyUndefined(`${typeName(obj)} index out of range`);
  }
  if (isStr(key)) {
    const attribute = attributeOf(obj, key.value) ?? (isNamespace(obj) ? obj.value.get(key.value) : undefined);
    if (attribute) return attribute;
    return new PyUndefined(isDict(obj) ? `'dict object' has no attribute '${key.value}'` : `'${typeName(obj)} object' has no attribute '${key.value}'`);
  }
  return new PyUndefined(`'${typeName(obj)} object' has no item ${pyRepr(key)}`);
}

/** Python's obj[start:stop:step] on a list, tuple or str (code points); other values give undefined, as jinja2's getitem. */
export function getSlice(obj: Value, start: Value, stop: Value, step: Value): Value {
  if (isUndefined(obj)) throw undefinedError(obj);
  const index = (v: Value): number | undefined => (isNone(v) || isUndefined(v) ? undefined : intOf(v, 'slice indices'));
  const by = index(step) ?? 1;
  if (by === 0) throw new PythonError('ValueError', 'slice step cannot be zero');
  if (!isSequence(obj) && !isStr(obj)) return new PyUndefined(`'${typeName(obj)}' object is not subscriptable`);
  const items: (Value | string)[] = isStr(obj) ? [...obj.value] : obj.value;
  const picked = sliceIndices(items.length, index(start), index(stop), by).map((i) => items[i]);
  if (isStr(obj)) return obj instanceof Markup ? new Markup(picked.join('')) : str(picked.join(''));
  return isTuple(obj) ? tuple(picked as Value[]) : list(picked as Value[]);
}

function sliceIndices(length: number, start: number | undefined, stop: number | undefined, step: number): number[] {
  const clamp = (i: number, low: number, high: number): number => (i < 0 ? Math.max(i + length, low) : Math.min(i, high));
  const out: number[] = [];
  if (step > 0) {
    const from = start === undefined ? 0 : clamp(start, 0, length);
    const to = stop === undefined ? length : clamp(stop, 0, length);
    for (let i = from; i < to; i += step) out.push(i);
  } else {
    const from = start === undefined ? length - 1 : clamp(start, -1, length - 1);
    const to = stop === undefined ? -1 : clamp(stop, -1, length - 1);
    for (let i = from; i > to; i += step) out.push(i);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Operators

/** Python's binary operators (not `and`/`or`, which short-circuit in the interpreter). */
export function binaryOp(op: string, a: Value, b: Value): Value {
  switch (op) {
    case '==': return bool(pyEquals(a, b));
    case '!=': return bool(!pyEquals(a, b));
    case 'in': return bool(pyContains(b, a));
    case 'not in': return bool(!pyContains(b, a));
    case '~': return str(pyStr(a) + pyStr(b)); // jinja2 joins str()s; Undefined is ""
    case '<': return bool(pyOrder(a, b, op) < 0);
    case '<=': return bool(pyOrder(a, b, op) <= 0);
    case '>': return bool(pyOrder(a, b, op) > 0);
    case '>=': return bool(pyOrder(a, b, op) >= 0);
  }
  if (isUndefined(a)) throw undefinedError(a);
  if (isUndefined(b)) throw undefinedError(b);
  if (op === '+') return add(a, b);
  if (op === '*') return multiply(a, b);
  if (op === '%' && isStr(a)) return str(printf(a.value, b));
  if (isNumber(a) && isNumber(b)) return arithmetic(op, a, b);
  throw typeError(`unsupported operand type(s) for ${op}: '${typeName(a)}' and '${typeName(b)}'`);
}

function add(a: Value, b: Value): Value {
  if (isNumber(a) && isNumber(b)) return arithmetic('+', a, b);
  if (isStr(a) && isStr(b)) {
    // markupsafe: Markup + str escapes the str, and str + Markup too (Markup.__radd__).
    if (a instanceof Markup) return new Markup(a.value + escapeHtml(b));
    if (b instanceof Markup) return new Markup(escapeHtml(a) + b.value);
    return str(a.value + b.value);
  }
  if (isSequence(a) && isSequence(b) && isTuple(a) === isTuple(b)) {
    const items = [...a.value, ...b.value];
    return isTuple(a) ? tuple(items) : list(items);
  }
  if (isStr(a)) throw typeError(`can only concatenate str (not "${typeName(b)}") to str`);
  if (isSequence(a)) throw typeError(`can only concatenate ${typeName(a)} (not "${typeName(b)}") to ${typeName(a)}`);
  throw typeError(`unsupported operand type(s) for +: '${typeName(a)}' and '${typeName(b)}'`);
}

function multiply(a: Value, b: Value): Value {
  if (isNumber(a) && isNumber(b)) return arithmetic('*', a, b);
  const [seq, times] = isInt(b) || isBool(b) ? [a, numberOf(b)] : [b, isInt(a) || isBool(a) ? numberOf(a) : NaN];
  if (!Number.isNaN(times)) {
    const n = Math.max(0, times);
    if (isStr(seq)) return seq instanceof Markup ? new Markup(seq.value.repeat(n)) : str(seq.value.repeat(n));
    if (isSequence(seq)) {
      const items = Array.from({ length: n }, () => seq.value).flat();
      return isTuple(seq) ? tuple(items) : list(items);
    }
  }
  throw typeError(`can't multiply sequence by non-int of type '${typeName(isNumber(a) ? a : b)}'`);
}

function arithmetic(op: string, a: Value<number | boolean>, b: Value<number | boolean>): Value {
  const x = numberOf(a);
  const y = numberOf(b);
  const floats = isFloat(a) || isFloat(b);
  const number = (n: number): Value => (floats ? float(n) : int(n));
  const divisor = (): number => {
    if (y === 0) throw new PythonError('ZeroDivisionError', floats ? 'float division by zero' : 'division by zero');
    return y;
  };
  switch (op) {
    case '+': return number(x + y);
    case '-': return number(x - y);
    case '*': return number(x * y);
    case '/': return float(x / divisor());
    case '//': return number(Math.floor(x / divisor()));
    case '%': {
      const r = x % divisor();
      return number(r !== 0 && r < 0 !== y < 0 ? r + y : r); // Python: the sign of the divisor
    }
    case '**': {
      if (x === 0 && y < 0) throw new PythonError('ZeroDivisionError', '0.0 cannot be raised to a negative power');
      return floats || y < 0 ? float(x ** y) : int(x ** y);
    }
  }
  throw typeError(`unsupported operand type(s) for ${op}: '${typeName(a)}' and '${typeName(b)}'`);
}

/** Python's `format % args` (printf style): %s %r %d %i %f %e %g %x %o %c %%, flags, width, precision. */
export function printf(format: string, args: Value): string {
  const values = isTuple(args) ? [...args.value] : [args];
  const mapping = isDict(args) ? args : undefined;
  let used = 0;
  const out = format.replace(/%(\(([^)]*)\))?([-+ #0]*)(\*|\d+)?(?:\.(\*|\d+))?([diouxXeEfFgGcrsa%])/g,
    (_m, _k, key: string | undefined, flags: string, width: string | undefined, precision: string | undefined, conv: string) => {
      if (conv === '%') return '%';
      const next = (): Value => {
        if (key !== undefined) {
          if (!mapping) throw typeError('format requires a mapping');
          const v = mapping.value.get(key);
          if (v === undefined) throw new PythonError('KeyError', `'${key}'`);
          return v;
        }
        if (used >= values.length) throw typeError('not enough arguments for format string');
        return values[used++];
      };
      const w = width === '*' ? intOf(next(), '* width') : width === undefined ? 0 : Number(width);
      const p = precision === '*' ? intOf(next(), '* precision') : precision === undefined ? undefined : Number(precision);
      return pad(convert(conv, next(), p, flags), w, flags);
    });
  if (!mapping && used < values.length) throw typeError('not all arguments converted during string formatting');
  return out;
}

function convert(conv: string, v: Value, precision: number | undefined, flags: string): string {
  const sign = (n: number, text: string): string => (n >= 0 && flags.includes('+') ? '+' : n >= 0 && flags.includes(' ') ? ' ' : '') + text;
  const numeric = (): number => {
    if (!isNumber(v)) throw typeError(`%${conv} format: a real number is required, not ${typeName(v)}`);
    return numberOf(v);
  };
  switch (conv) {
    case 's': return precision === undefined ? pyStr(v) : [...pyStr(v)].slice(0, precision).join('');
    case 'r': case 'a': return pyRepr(v);
    case 'c': return isStr(v) ? v.value : String.fromCodePoint(numeric());
    case 'd': case 'i': case 'u': { const n = Math.trunc(numeric()); return sign(n, String(n)); }
    case 'x': case 'X': case 'o': {
      const n = Math.trunc(numeric());
      const digits = Math.abs(n).toString(conv === 'o' ? 8 : 16);
      return (n < 0 ? '-' : '') + (conv === 'X' ? digits.toUpperCase() : digits);
    }
    case 'f': case 'F': { const n = numeric(); return sign(n, n.toFixed(precision ?? 6)); }
    case 'e': case 'E': {
      const n = numeric();
      const t = n.toExponential(precision ?? 6).replace(/e([+-])(\d)$/, 'e$10$2');
      return sign(n, conv === 'E' ? t.toUpperCase() : t);
    }
    default: { const n = numeric(); return sign(n, floatRepr(Number(n.toPrecision(precision || 6))).replace(/\.0$/, '')); }
  }
}

function pad(s: string, width: number, flags: string): string {
  const length = [...s].length;
  if (length >= width) return s;
  if (flags.includes('-')) return s + ' '.repeat(width - length);
  if (flags.includes('0') && /^[+-]?\d/.test(s)) {
    const sign = /^[+-]/.test(s) ? s[0] : '';
    return sign + s.slice(sign.length).padStart(width - sign.length, '0');
  }
  return ' '.repeat(width - length) + s;
}

/** Python's str.format: {} {0} {name} fields with !r / !s and simple [[fill]align][width][.precision][f|d|s] specs. */
function strFormat(format: string, args: Args, kwargs: Kwargs): string {
  let auto = 0;
  return format.replace(/\{\{|\}\}|\{([^{}!:]*)(?:!([rsa]))?(?::([^{}]*))?\}/g, (m, field: string | undefined, conversion?: string, spec?: string) => {
    if (m === '{{') return '{';
    if (m === '}}') return '}';
    const name = field ?? '';
    let v: Value | undefined;
    if (name === '') v = args[auto++];
    else if (/^\d+$/.test(name)) v = args[Number(name)];
    else v = kwargs.get(name);
    if (v === undefined) throw new PythonError(name === '' || /^\d+$/.test(name) ? 'IndexError' : 'KeyError', `Replacement index ${name || auto - 1} out of range for positional args tuple`);
    const textValue = conversion === 'r' || conversion === 'a' ? pyRepr(v) : undefined;
    return formatSpec(textValue !== undefined ? str(textValue) : v, spec ?? '');
  });
}

function formatSpec(v: Value, spec: string): string {
  const m = /^(?:(.)?([<>^]))?(\d+)?(?:\.(\d+))?([sdf]?)$/.exec(spec);
  if (!m) throw new PythonError('ValueError', `format spec '${spec}' is not supported in templates here`);
  const [, fill = ' ', align, width, precision, kind] = m;
  let s = kind === 'f' || (precision !== undefined && isNumber(v) && !isInt(v)) ? numberOf(v as Value<number>).toFixed(Number(precision ?? 6)) : pyStr(v);
  if (kind === 's' && precision !== undefined) s = [...s].slice(0, Number(precision)).join('');
  const w = Number(width ?? 0);
  const length = [...s].length;
  if (length >= w) return s;
  const side = align ?? (isNumber(v) ? '>' : '<');
  if (side === '<') return s + fill.repeat(w - length);
  if (side === '>') return fill.repeat(w - length) + s;
  return center(s, w, fill);
}

// ---------------------------------------------------------------------------------------------
// Tests (`x is name`)

export type Test = (value: Value, ...args: Value[]) => boolean;

const comparisonTest = (op: string): Test => (a, b) => truthy(binaryOp(op, a, b));

export const TESTS: Record<string, Test> = {
  defined: (v) => !isUndefined(v),
  undefined: (v) => isUndefined(v),
  none: (v) => isNone(v),
  boolean: (v) => isBool(v),
  true: (v) => isBool(v) && v.value,
  false: (v) => isBool(v) && !v.value,
  integer: (v) => isInt(v),
  float: (v) => isFloat(v),
  number: (v) => isNumber(v),
  string: (v) => isStr(v),
  mapping: (v) => isDict(v),
  // Python: iter() works on strings, lists, dicts, iterators, and jinja2's Undefined.
  iterable: (v) => isStr(v) || isListLike(v) || isDict(v) || isUndefined(v),
  sequence: (v) => isStr(v) || isSequence(v) || isDict(v) || isUndefined(v),
  callable: (v) => isCallable(v) || isUndefined(v),
  odd: (v) => numberOf(binaryOp('%', v, int(2)) as Value<number>) === 1,
  even: (v) => numberOf(binaryOp('%', v, int(2)) as Value<number>) === 0,
  divisibleby: (v, n) => numberOf(binaryOp('%', v, n) as Value<number>) === 0,
  lower: (v) => hasCased(pyStr(v)) && pyStr(v) === pyStr(v).toLowerCase(),
  upper: (v) => hasCased(pyStr(v)) && pyStr(v) === pyStr(v).toUpperCase(),
  escaped: (v) => v instanceof Markup,
  in: (v, seq) => pyContains(seq, v),
  sameas: (a, b) => a === b || (isNone(a) && isNone(b)) || (isBool(a) && isBool(b) && a.value === b.value),
  filter: (v) => isStr(v) && Object.hasOwn(FILTERS, v.value),
  test: (v) => isStr(v) && Object.hasOwn(TESTS, v.value),
  eq: comparisonTest('=='), equalto: comparisonTest('=='), '==': comparisonTest('=='),
  ne: comparisonTest('!='), '!=': comparisonTest('!='),
  lt: comparisonTest('<'), lessthan: comparisonTest('<'), '<': comparisonTest('<'),
  le: comparisonTest('<='), '<=': comparisonTest('<='),
  gt: comparisonTest('>'), greaterthan: comparisonTest('>'), '>': comparisonTest('>'),
  ge: comparisonTest('>='), '>=': comparisonTest('>='),
};

function callTest(nameValue: Value, value: Value, args: Value[]): boolean {
  const name = textOf(nameValue, 'test name');
  if (!Object.hasOwn(TESTS, name)) throw new PythonError('TemplateRuntimeError', `No test named '${name}'.`);
  return TESTS[name](value, ...args);
}

// ---------------------------------------------------------------------------------------------
// Filters (`x | name(args)`)

export type Filter = (value: Value, args: Args, kwargs: Kwargs) => Value;

/** A filter with Python-bound parameters after the value. */
const filter = (name: string, params: readonly (readonly [string, Value?])[], body: (value: Value, ...args: Value[]) => Value): Filter =>
  (value, args, kwargs) => body(value, ...bindArgs(name, args, kwargs, params));

/** jinja2's soft_str: Markup stays Markup, anything else becomes str(). */
const softStr = (v: Value, f: (s: string) => string): Value => (v instanceof Markup ? new Markup(f(v.value)) : str(f(pyStr(v))));

/** jinja2's attribute getter for filters: dotted path, digit parts as indexes, item lookup first. */
function attrGetter(attribute: Value, fallback?: Value): (item: Value) => Value {
  if (isNone(attribute)) return (item) => item;
  const parts: Value[] = isStr(attribute) ? attribute.value.split('.').map((p) => (/^\d+$/.test(p) ? int(Number(p)) : str(p))) : [attribute];
  return (item) => {
    let v = item;
    for (const part of parts) {
      v = getItem(v, part);
      if (fallback !== undefined && !isNone(fallback) && isUndefined(v)) v = fallback;
    }
    return v;
  };
}

const lowerIfStr = (v: Value): Value => (isStr(v) ? softStr(v, (s) => s.toLowerCase()) : v);

/** Sort keys for sort/min/max/unique: the attribute(s), lower-cased unless case-sensitive. */
function sortKey(attribute: Value, caseSensitive: Value, multi: boolean): (item: Value) => Value {
  const post = truthy(caseSensitive) ? (v: Value) => v : lowerIfStr;
  if (multi && isStr(attribute) && attribute.value.includes(',')) {
    const getters = attribute.value.split(',').map((a) => attrGetter(str(a)));
    return (item) => list(getters.map((g) => post(g(item))));
  }
  const getter = attrGetter(attribute);
  return (item) => post(getter(item));
}

/** select / reject / selectattr / rejectattr: a one-shot iterator of the items whose test (or truth) is `keep`. */
function selectFilter(byAttribute: boolean, keep: boolean): Filter {
  return (value, args) => {
    if (!truthy(value)) return new PyIterator([]);
    let pick = (item: Value): Value => item;
    let rest = args;
    if (byAttribute) {
      if (args.length === 0) throw new PythonError('FilterArgumentError', 'Missing parameter for attribute name');
      pick = attrGetter(args[0]);
      rest = args.slice(1);
    }
    const test = rest.length ? (item: Value) => callTest(rest[0], item, rest.slice(1)) : truthy;
    return new PyIterator(iterate(value).filter((item) => test(pick(item)) === keep));
  };
}

function mapFilter(value: Value, args: Args, kwargs: Kwargs): Value {
  if (!truthy(value)) return new PyIterator([]);
  let apply: (item: Value) => Value;
  if (args.length === 0 && kwargs.has('attribute')) {
    const options = new Map(kwargs);
    const attribute = options.get('attribute')!;
    const fallback = options.get('default');
    options.delete('attribute');
    options.delete('default');
    if (options.size) throw new PythonError('FilterArgumentError', `Unexpected keyword argument '${[...options.keys()][0]}'`);
    apply = attrGetter(attribute, fallback);
  } else {
    if (args.length === 0) throw new PythonError('FilterArgumentError', 'map requires a filter argument');
    const name = textOf(args[0], 'filter name');
    apply = (item) => callFilter(name, item, args.slice(1), kwargs);
  }
  return new PyIterator(iterate(value).map(apply));
}

export function callFilter(name: string, value: Value, args: Args, kwargs: Kwargs): Value {
  if (!Object.hasOwn(FILTERS, name)) throw new PythonError('TemplateRuntimeError', `No filter named '${name}'.`);
  return FILTERS[name](value, args, kwargs);
}

function minMax(name: string, sign: number): Filter {
  return filter(name, [['case_sensitive', FALSE], ['attribute', NONE]], (value, caseSensitive, attribute) => {
    const items = iterate(value);
    if (items.length === 0) return new PyUndefined('No aggregated item, sequence was empty.');
    const key = sortKey(attribute, caseSensitive, false);
    return items.reduce((best, item) => (pyOrder(key(item), key(best)) * sign < 0 ? item : best));
  });
}

function toInt(value: Value, fallback: Value, base: Value): Value {
  if (isInt(value)) return value;
  if (isBool(value)) return int(Number(value.value));
  if (isFloat(value)) return Number.isFinite(value.value) ? int(Math.trunc(value.value)) : fallback;
  if (isStr(value)) {
    const text = value.value.trim().replace(/_/g, '');
    const radix = intOf(base, 'base');
    const digits = radix === 16 ? /^[+-]?(0x)?[0-9a-f]+$/i : radix === 8 ? /^[+-]?(0o)?[0-7]+$/i : radix === 2 ? /^[+-]?(0b)?[01]+$/i : /^[+-]?\d+$/;
    if (digits.test(text)) return int(parseInt(text.replace(/^([+-]?)0[xob]/i, '$1'), radix));
    const asFloat = toFloat(value, NONE);
    return isFloat(asFloat) && Number.isFinite(asFloat.value) ? int(Math.trunc(asFloat.value)) : fallback;
  }
  return fallback;
}

function toFloat(value: Value, fallback: Value): Value {
  if (isNumber(value)) return float(numberOf(value));
  if (isStr(value)) {
    const text = value.value.trim().replace(/_/g, '').toLowerCase();
    if (/^[+-]?(inf|infinity)$/.test(text)) return float(text.startsWith('-') ? -Infinity : Infinity);
    if (/^[+-]?nan$/.test(text)) return float(NaN);
    if (/^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/.test(text)) return float(Number(text));
  }
  return fallback;
}

/** Python's round(x, n): x's exact decimal value rounded at n digits after the point, a tie to the even digit. */
export function pyRound(x: number, digits: number): number {
  if (!Number.isFinite(x) || x === 0) return x;
  // toExponential(99) spells out the double's exact decimal expansion (up to 100 digits), so a
  // tie is judged on the true value, as Python does: 2.675 is 2.67499999... and rounds down.
  const [mantissa, expText] = Math.abs(x).toExponential(99).split('e');
  const all = mantissa.replace('.', '');
  const keep = Number(expText) + 1 + digits; // digits of `all` before the rounding position
  if (keep >= all.length) return x;
  if (keep < 0) return x < 0 ? -0 : 0;
  const kept = all.slice(0, keep) || '0';
  const rest = all.slice(keep);
  const tie = rest[0] === '5' && /^50*$/.test(rest);
  const up = rest[0] > '5' || (rest[0] === '5' && !tie) || (tie && Number(kept.at(-1)) % 2 === 1);
  const rounded = up ? (BigInt(kept) + 1n).toString() : kept;
  const result = Number(`${rounded}e${-digits}`);
  return x < 0 ? -result : result;
}

/** jinja2's indent: every line but the first (unless `first`) and blank ones (unless `blank`). */
function indent(value: Value, width: Value, first: Value, blank: Value): Value {
  const indention = isStr(width) ? width.value : ' '.repeat(Math.max(0, intOf(width, 'width')));
  const lines = pySplitlines(`${pyStr(value)}\n`);
  let out: string;
  if (truthy(blank)) out = lines.join(`\n${indention}`);
  else out = [lines[0], ...lines.slice(1).map((line) => (line ? indention + line : line))].join('\n');
  if (truthy(first)) out = indention + out;
  return value instanceof Markup ? new Markup(out) : str(out);
}

function tojson(value: Value, ensureAscii: Value, indentValue: Value, separators: Value, sortKeys: Value): Value {
  const indentText = isNone(indentValue) ? null : isStr(indentValue) ? indentValue.value : ' '.repeat(Math.max(0, intOf(indentValue, 'indent')));
  let [itemSeparator, keySeparator] = indentText === null ? [', ', ': '] : [',', ': '];
  if (!isNone(separators)) {
    if (!isSequence(separators) || separators.value.length !== 2) throw new PythonError('ValueError', 'separators must be a pair of strings');
    [itemSeparator, keySeparator] = separators.value.map((s) => textOf(s, 'separator'));
  }
  return str(jsonDumps(value, { ensureAscii: truthy(ensureAscii), indent: indentText, itemSeparator, keySeparator, sortKeys: truthy(sortKeys) }));
}

/** jinja2's title filter: capitalise each word, words starting after -, whitespace, ( { [ or <. */
function titleFilter(s: string): string {
  return s.split(/([-\s({[<]+)/u).filter((part) => part).map((part) => [...part][0].toUpperCase() + [...part].slice(1).join('').toLowerCase()).join('');
}

function truncate(value: Value, length: Value, killwords: Value, end: Value, leeway: Value): Value {
  const s = [...pyStr(value)];
  const n = intOf(length, 'length');
  const tail = pyStr(end);
  const slack = isNone(leeway) ? 5 : intOf(leeway, 'leeway');
  if (n < [...tail].length) throw new PythonError('AssertionError', `expected length >= ${[...tail].length}, got ${n}`);
  if (slack < 0) throw new PythonError('AssertionError', `expected leeway >= 0, got ${slack}`);
  if (s.length <= n + slack) return str(s.join(''));
  const cut = s.slice(0, n - [...tail].length).join('');
  if (truthy(killwords)) return str(cut + tail);
  const space = cut.lastIndexOf(' ');
  return str((space < 0 ? cut : cut.slice(0, space)) + tail);
}

function reverse(value: Value): Value {
  if (isStr(value)) return softStr(value, (s) => [...s].reverse().join(''));
  if (isIterator(value)) return list(value.take().reverse()); // reversed(generator) fails; jinja2 falls back to a list
  return new PyIterator(iterate(value).reverse(), isDict(value) ? 'dict_reversekeyiterator' : 'list_reverseiterator');
}

function unsupported(name: string): Filter {
  return () => {
    throw new PythonError('TemplateRuntimeError', `the '${name}' filter is not supported in templates here`);
  };
}

export const FILTERS: Record<string, Filter> = {
  abs: filter('abs', [], (v) => {
    if (!isNumber(v)) throw typeError(`bad operand type for abs(): '${typeName(v)}'`);
    return isFloat(v) ? float(Math.abs(v.value)) : int(Math.abs(numberOf(v)));
  }),
  attr: filter('attr', [['name']], (obj, name) => {
    const key = textOf(name, 'attribute name');
    const attribute = attributeOf(obj, key) ?? (isNamespace(obj) ? obj.value.get(key) : undefined);
    return attribute ?? noAttribute(obj, key);
  }),
  batch: filter('batch', [['linecount'], ['fill_with', NONE]], (value, linecount, fill) => {
    const size = intOf(linecount, 'linecount');
    const items = iterate(value);
    const rows: Value[] = [];
    for (let i = 0; i < items.length; i += size) {
      const row = items.slice(i, i + size);
      if (!isNone(fill)) while (row.length < size) row.push(fill);
      rows.push(list(row));
    }
    return new PyIterator(rows);
  }),
  capitalize: filter('capitalize', [], (v) => softStr(v, capitalize)),
  center: filter('center', [['width', int(80)]], (v, width) => str(center(pyStr(v), intOf(width, 'width')))),
  count: filter('count', [], (v) => int(pyLen(v))),
  d: filter('default', [['default_value', EMPTY], ['boolean', FALSE]], (v, fallback, boolean) => (isUndefined(v) || (truthy(boolean) && !truthy(v)) ? fallback : v)),
  default: filter('default', [['default_value', EMPTY], ['boolean', FALSE]], (v, fallback, boolean) => (isUndefined(v) || (truthy(boolean) && !truthy(v)) ? fallback : v)),
  dictsort: filter('dictsort', [['case_sensitive', FALSE], ['by', str('key')], ['reverse', FALSE]], (value, caseSensitive, by, reversed) => {
    if (!isDict(value)) throw typeError(`'${typeName(value)}' object has no attribute 'items'`);
    const position = pyStr(by) === 'key' ? 0 : pyStr(by) === 'value' ? 1 : -1;
    if (position < 0) throw new PythonError('FilterArgumentError', 'You can only sort by either "key" or "value"');
    const post = truthy(caseSensitive) ? (v: Value) => v : lowerIfStr;
    const pairs = [...value.value].map(([k, v]) => tuple([str(k), v]));
    const sign = truthy(reversed) ? -1 : 1;
    return list(pairs.sort((a, b) => sign * pyOrder(post((a as Value<Value[]>).value[position]), post((b as Value<Value[]>).value[position]))));
  }),
  e: filter('escape', [], (v) => new Markup(escapeHtml(v))),
  escape: filter('escape', [], (v) => new Markup(escapeHtml(v))),
  first: filter('first', [], (v) => {
    const items = isIterator(v) ? v.value.splice(0, 1) : iterate(v);
    return items.length ? items[0] : new PyUndefined('No first item, sequence was empty.');
  }),
  float: filter('float', [['default', float(0)]], (v, fallback) => toFloat(v, fallback)),
  forceescape: filter('forceescape', [], (v) => new Markup(escapeHtml(str(pyStr(v))))),
  format: (value, args, kwargs) => {
    if (args.length && kwargs.size) throw new PythonError('FilterArgumentError', "can't handle positional and keyword arguments at the same time");
    return softStr(value, (s) => printf(s, kwargs.size ? dict(kwargs) : tuple(args)));
  },
  indent: filter('indent', [['width', int(4)], ['first', FALSE], ['blank', FALSE]], indent),
  int: filter('int', [['default', int(0)], ['base', int(10)]], toInt),
  items: filter('items', [], (v) => {
    if (isUndefined(v)) return new PyIterator([]);
    if (!isDict(v)) throw typeError('Can only get item pairs from a mapping.');
    return new PyIterator([...v.value].map(([k, x]) => tuple([str(k), x])));
  }),
  join: filter('join', [['d', EMPTY], ['attribute', NONE]], (value, separator, attribute) => {
    const getter = attrGetter(attribute);
    return str(iterate(value).map((item) => pyStr(getter(item))).join(pyStr(separator)));
  }),
  last: filter('last', [], (v) => {
    if (isIterator(v)) throw typeError(`'${v.kind}' object is not reversible`);
    const items = iterate(v);
    return items.length ? items[items.length - 1] : new PyUndefined('No last item, sequence was empty.');
  }),
  length: filter('length', [], (v) => int(pyLen(v))),
  list: filter('list', [], (v) => list(iterate(v))),
  lower: filter('lower', [], (v) => softStr(v, (s) => s.toLowerCase())),
  map: mapFilter,
  max: minMax('max', -1),
  min: minMax('min', 1),
  pprint: filter('pprint', [], (v) => str(pyRepr(v))),
  reject: selectFilter(false, false),
  rejectattr: selectFilter(true, false),
  replace: filter('replace', [['old'], ['new'], ['count', NONE]], (v, old, replacement, count) =>
    str(pyReplace(pyStr(v), pyStr(old), pyStr(replacement), isNone(count) ? -1 : intOf(count, 'count')))),
  reverse: filter('reverse', [], reverse),
  round: filter('round', [['precision', int(0)], ['method', str('common')]], (v, precision, method) => {
    if (!isNumber(v)) throw typeError(`type ${typeName(v)} doesn't define __round__ method`);
    const digits = intOf(precision, 'precision');
    const scale = 10 ** digits;
    const how = pyStr(method);
    if (how === 'common') return isFloat(v) ? float(pyRound(v.value, digits)) : int(pyRound(numberOf(v), digits)); // round(int) stays an int
    if (how === 'ceil') return float(Math.ceil(numberOf(v) * scale) / scale);
    if (how === 'floor') return float(Math.floor(numberOf(v) * scale) / scale);
    throw new PythonError('FilterArgumentError', 'method must be common, ceil or floor');
  }),
  safe: filter('safe', [], (v) => (v instanceof Markup ? v : new Markup(pyStr(v)))),
  select: selectFilter(false, true),
  selectattr: selectFilter(true, true),
  sort: filter('sort', [['reverse', FALSE], ['case_sensitive', FALSE], ['attribute', NONE]], (value, reversed, caseSensitive, attribute) => {
    const key = sortKey(attribute, caseSensitive, true);
    const sign = truthy(reversed) ? -1 : 1;
    return list(iterate(value).sort((a, b) => sign * pyOrder(key(a), key(b))));
  }),
  string: filter('string', [], (v) => (v instanceof Markup ? v : str(pyStr(v)))),
  sum: filter('sum', [['attribute', NONE], ['start', int(0)]], (value, attribute, start) => {
    const getter = attrGetter(attribute);
    return iterate(value).reduce((total, item) => binaryOp('+', total, getter(item)), start);
  }),
  title: filter('title', [], (v) => softStr(v, titleFilter)),
  // transformers' tojson: json.dumps with its arguments, a plain str (no HTML escaping).
  tojson: filter('tojson', [['ensure_ascii', FALSE], ['indent', NONE], ['separators', NONE], ['sort_keys', FALSE]], tojson),
  trim: filter('trim', [['chars', NONE]], (v, chars) => softStr(v, (s) => pyStrip(s, isNone(chars) ? null : pyStr(chars)))),
  truncate: filter('truncate', [['length', int(255)], ['killwords', FALSE], ['end', str('...')], ['leeway', NONE]], truncate),
  unique: filter('unique', [['case_sensitive', FALSE], ['attribute', NONE]], (value, caseSensitive, attribute) => {
    const key = sortKey(attribute, caseSensitive, false);
    const seen = new Set<string>();
    return new PyIterator(iterate(value).filter((item) => {
      const k = hashKey(key(item));
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    }));
  }),
  upper: filter('upper', [], (v) => softStr(v, (s) => s.toUpperCase())),
  wordcount: filter('wordcount', [], (v) => int((pyStr(v).match(/[\p{L}\p{N}_]+/gu) ?? []).length)),
  filesizeformat: unsupported('filesizeformat'),
  groupby: unsupported('groupby'),
  random: unsupported('random'),
  slice: unsupported('slice'),
  striptags: unsupported('striptags'),
  urlencode: unsupported('urlencode'),
  urlize: unsupported('urlize'),
  wordwrap: unsupported('wordwrap'),
  xmlattr: unsupported('xmlattr'),
};

// ---------------------------------------------------------------------------------------------
// Globals

/** The sandbox's largest range(). */
const MAX_RANGE = 100_000;

/** jinja2's default globals besides namespace (which the library's Environment provides). */
export const GLOBALS: Record<string, Value> = {
  range: func((rawArgs) => {
    const [args, kwargs] = splitArgs(rawArgs);
    if (kwargs.size) throw typeError('range() takes no keyword arguments');
    const ns = args.map((a) => intOf(a, 'range() argument'));
    if (ns.length < 1 || ns.length > 3) throw typeError(`range expected 1 to 3 arguments, got ${ns.length}`);
    const [start, stop, step] = ns.length === 1 ? [0, ns[0], 1] : [ns[0], ns[1], ns[2] ?? 1];
    if (step === 0) throw new PythonError('ValueError', 'range() arg 3 must not be zero');
    const count = Math.max(0, Math.ceil((stop - start) / step));
    if (count > MAX_RANGE) throw new PythonError('OverflowError', `Range too big. The sandbox blocks ranges larger than MAX_RANGE (${MAX_RANGE}).`);
    return list(Array.from({ length: count }, (_, i) => int(start + i * step)));
  }),
  dict: func((rawArgs) => {
    const [args, kwargs] = splitArgs(rawArgs);
    const out = new Map<string, Value>();
    for (const arg of args) {
      if (isDict(arg)) for (const [k, v] of arg.value) out.set(k, v);
      else for (const pair of iterate(arg)) {
        const [k, v] = iterate(pair);
        out.set(textOf(k, 'dict key'), v);
      }
    }
    for (const [k, v] of kwargs) out.set(k, v);
    return dict(out);
  }),
  joiner: func((rawArgs) => {
    const [args, kwargs] = splitArgs(rawArgs);
    const [sep] = bindArgs('joiner', args, kwargs, [['sep', str(', ')]]);
    let used = false;
    return func(() => {
      if (!used) {
        used = true;
        return EMPTY;
      }
      return sep;
    });
  }),
};

const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];

/** C-locale strftime on local time: %a %A %b %B %d %H %I %j %m %M %p %S %w %y %Y %%, and glibc's %-d style unpadded forms. */
export function strftime(date: Date, format: string): string {
  const dayOfYear = Math.round((new Date(date.getFullYear(), date.getMonth(), date.getDate()).getTime() - new Date(date.getFullYear(), 0, 1).getTime()) / 86_400_000) + 1;
  const hour12 = date.getHours() % 12 || 12;
  const fields: Record<string, [number | string, number]> = {
    d: [date.getDate(), 2], m: [date.getMonth() + 1, 2], Y: [date.getFullYear(), 4], y: [date.getFullYear() % 100, 2],
    H: [date.getHours(), 2], I: [hour12, 2], M: [date.getMinutes(), 2], S: [date.getSeconds(), 2], j: [dayOfYear, 3],
    w: [date.getDay(), 1], e: [date.getDate(), 0],
    a: [DAYS[date.getDay()].slice(0, 3), 0], A: [DAYS[date.getDay()], 0], b: [MONTHS[date.getMonth()].slice(0, 3), 0],
    h: [MONTHS[date.getMonth()].slice(0, 3), 0], B: [MONTHS[date.getMonth()], 0], p: [date.getHours() < 12 ? 'AM' : 'PM', 0],
  };
  return format.replace(/%(-?)([a-zA-Z%])/g, (m, noPad: string, code: string) => {
    if (code === '%') return '%';
    const field = fields[code];
    if (!field) return m;
    const [v, width] = field;
    if (typeof v === 'string') return v;
    return code === 'e' ? String(v).padStart(2, ' ') : noPad ? String(v) : String(v).padStart(width, '0');
  });
}
