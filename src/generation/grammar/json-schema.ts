/**
 * JSON Schema → GBNF, so that constrained decoding can only produce JSON that validates, and the
 * grammar for json_object mode (any JSON object).
 *
 * The schema is walked once, top down. Each sub-schema becomes a GBNF expression; object
 * properties, union branches and $ref targets become named rules (`root-name`, `address`, ...).
 * Shared pieces (string characters, numbers, whitespace, formats) are fixed rules added when first
 * used. The grammar produces a subset of the schema's valid documents — every output validates,
 * not every valid document can be output:
 *   - Whitespace as llama.cpp's json-schema-to-grammar: after every value and punctuation, none,
 *     one space, or one or two newlines and up to 20 spaces or tabs (a bounded amount).
 *   - Objects: required properties first, then optional ones, each group in schema order; each
 *     optional property may be left out. When `properties` is given and `additionalProperties` is
 *     absent, no other keys are written (as llama.cpp); `true` or a schema allows extra keys, other
 *     than the declared names, after the declared ones. `{"type": "object"}` alone is any object.
 *   - Numbers: integer part up to 16 digits, fraction up to 16, exponent up to 2 digits (so JSON
 *     parsing never overflows). Integer bounds (minimum, maximum, exclusive forms) compile to exact
 *     digit-range grammars; bounds on `number` must be integers (then exact, without exponents).
 *   - Strings: `\u` escapes never name a surrogate, so minLength/maxLength (counted in code
 *     points, as ajv does) are exact. `pattern` goes through regex.ts (its subset, with JSON
 *     escaping); `format` supports date, time, date-time (with a time zone, days per month and leap
 *     years exact), uuid and email (a bounded form of ajv-formats' pattern).
 *   - Arrays: items, prefixItems (or draft-07 array `items`), minItems, maxItems. With
 *     prefixItems, exactly min(prefixItems, maxItems) tuple items are written, then `items` ones.
 *   - enum/const: the values, compact JSON; combined with `type`, values of other types are dropped.
 *   - anyOf: any branch. oneOf: only where the branches cannot overlap (distinct JSON types,
 *     disjoint enum/const values, or objects told apart by a required const/enum property).
 *   - allOf: object schemas (and $refs to them) merged: properties and required united.
 *   - $ref: local JSON pointers ("#", "#/$defs/x", "#/definitions/x", ...), recursion included.
 *
 * Rejected up front, with the keyword and its #/path named (RequestError 'unsupported_schema'):
 *   not, if/then/else, dependentRequired, dependentSchemas, dependencies, patternProperties,
 *   propertyNames, unevaluatedProperties, unevaluatedItems, minProperties, maxProperties,
 *   uniqueItems: true, contains, minContains, maxContains, multipleOf, additionalItems (other than
 *   false), $dynamicRef, $recursiveRef, $anchor, contentEncoding, contentMediaType, contentSchema,
 *   formats other than the five above, remote $refs, non-integer bounds on `number`, boolean
 *   (draft-04) exclusiveMinimum/Maximum, pattern or format combined with length bounds, and any
 *   keyword this file does not know. Annotations (title, description, default, examples, ...) are
 *   ignored, as they do not constrain.
 */
import { RequestError } from '../../errors.js';
import { gbnfClassChar, gbnfLiteral, regexToGbnfExpression, repetition } from './regex.js';

type SchemaObject = Record<string, unknown>;

export interface JsonSchemaToGbnfOptions {
  /** Names the schema in error messages: a parameter or file (default "jsonSchema"). */
  where?: string;
}

/** Rules shared by all grammars: name → body. Names are reserved, so user rules never take them. */
const PRIMITIVES: Record<string, string> = {
  space: '( " " | "\\n"{1,2} [ \\t]{0,20} )?',
  value: 'object | array | string | number | boolean | null',
  object: '"{" space ( string ":" space value ( "," space string ":" space value )* )? "}" space',
  array: '"[" space ( value ( "," space value )* )? "]" space',
  string: '"\\"" char* "\\"" space',
  char: '[^"\\\\\\x00-\\x1F] | "\\\\" ( ["\\\\/bfnrt] | "u" unicode-escape )',
  // \uXXXX other than D800-DFFF: a lone or paired surrogate would not count as one code point.
  'unicode-escape': '[0-9a-cA-C] hex{3} | [dD] [0-7] hex{2} | [eEfF] hex{3}',
  hex: '[0-9a-fA-F]',
  number: '"-"? integral-part ( "." [0-9]{1,16} )? ( [eE] [-+]? [0-9]{1,2} )? space',
  integer: '"-"? integral-part space',
  'integral-part': '"0" | [1-9] [0-9]{0,15}',
  boolean: '( "true" | "false" ) space',
  null: '"null" space',
  date: 'year "-" ( "0" [13578] "-" day31 | "1" [02] "-" day31 | "0" [469] "-" day30 | "11-" day30 | "02-" day28 ) | leap-year "-02-29"',
  year: '[0-9]{4}',
  // Divisible by 4 and not by 100, or divisible by 400.
  'leap-year': '[0-9]{2} ( "0" [48] | [2468] [048] | [13579] [26] ) | ( "0" [048] | [2468] [048] | [13579] [26] ) "00"',
  day31: '"0" [1-9] | [12] [0-9] | "3" [01]',
  day30: '"0" [1-9] | [12] [0-9] | "30"',
  day28: '"0" [1-9] | "1" [0-9] | "2" [0-8]',
  time: 'hour ":" [0-5] [0-9] ":" [0-5] [0-9] ( "." [0-9]{1,9} )? ( "Z" | [+-] hour ":" [0-5] [0-9] )',
  hour: '[01] [0-9] | "2" [0-3]',
  'date-time': 'date "T" time',
  uuid: 'hex{8} "-" hex{4} "-" hex{4} "-" hex{4} "-" hex{12}',
  email: 'email-atom{1,20} ( "." email-atom{1,20} ){0,2} "@" email-label ( "." email-label ){1,3}',
  'email-atom': "[a-zA-Z0-9!#$%&'*+/=?\\x5E_`{|}~\\x2D]",
  'email-label': '[a-zA-Z0-9] ( [a-zA-Z0-9\\x2D]{0,20} [a-zA-Z0-9] )?',
};

/** Which primitives each primitive refers to. */
const PRIMITIVE_DEPS: Record<string, string[]> = {
  value: ['object', 'array', 'string', 'number', 'boolean', 'null'],
  object: ['space', 'string', 'value'],
  array: ['space', 'value'],
  string: ['char', 'space'],
  char: ['unicode-escape'],
  'unicode-escape': ['hex'],
  number: ['integral-part', 'space'],
  integer: ['integral-part', 'space'],
  boolean: ['space'],
  null: ['space'],
  date: ['year', 'leap-year', 'day31', 'day30', 'day28'],
  time: ['hour'],
  'date-time': ['date', 'time'],
  uuid: ['hex'],
  email: ['email-atom', 'email-label'],
};

const FORMATS = new Set(['date', 'time', 'date-time', 'uuid', 'email']);

/** Keywords that only annotate: they do not constrain, so ignoring them is exact. */
const ANNOTATIONS = new Set(['title', 'description', '$comment', 'examples', 'default', 'deprecated', 'readOnly', 'writeOnly', '$schema', '$id', '$defs', 'definitions']);

const TYPE_KEYWORDS: Record<string, string[]> = {
  object: ['properties', 'required', 'additionalProperties'],
  array: ['items', 'prefixItems', 'minItems', 'maxItems', 'uniqueItems', 'additionalItems'],
  string: ['minLength', 'maxLength', 'pattern', 'format'],
  number: ['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum'],
};
const COMBINATORS = ['$ref', 'allOf', 'anyOf', 'oneOf', 'enum', 'const'];
const KNOWN = new Set([...ANNOTATIONS, 'type', ...COMBINATORS, ...Object.values(TYPE_KEYWORDS).flat()]);
const JSON_TYPES = ['null', 'boolean', 'object', 'array', 'number', 'integer', 'string'];

/** Digits in an unbounded integer part (as the `integral-part` rule). */
const MAX_INT_DIGITS = 16;

/** Any valid JSON object, for json_object mode. */
export const JSON_OBJECT_GBNF = printRules(['root ::= object', ...primitiveRules(['object'])]);

/** A GBNF grammar whose language is (a subset of) the JSON documents valid under `schema`. */
export function jsonSchemaToGbnf(schema: unknown, opts: JsonSchemaToGbnfOptions = {}): string {
  return new SchemaConverter(schema, opts.where ?? 'jsonSchema').convert();
}

function primitiveRules(names: string[]): string[] {
  const seen = new Set<string>();
  const visit = (name: string): void => {
    if (seen.has(name)) return;
    seen.add(name);
    for (const dep of PRIMITIVE_DEPS[name] ?? []) visit(dep);
  };
  names.forEach(visit);
  return Object.keys(PRIMITIVES).filter((n) => seen.has(n)).map((n) => `${n} ::= ${PRIMITIVES[n]}`);
}

function printRules(lines: string[]): string {
  return `${lines.join('\n')}\n`;
}

function isObject(x: unknown): x is SchemaObject {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** The JSON Schema type names a value has ("integer" also counts as "number"). */
function typesOf(value: unknown): string[] {
  if (value === null) return ['null'];
  if (Array.isArray(value)) return ['array'];
  if (typeof value === 'number') return Number.isInteger(value) ? ['integer', 'number'] : ['number'];
  return [typeof value];
}

class SchemaConverter {
  /** Rule name → body, in the order they are created (root first). */
  private readonly rules = new Map<string, string>();
  private readonly taken = new Set(Object.keys(PRIMITIVES));
  private readonly usedPrimitives = new Set<string>();
  /** $ref pointer → the rule that holds its target. */
  private readonly refs = new Map<string, string>([['#', 'root']]);

  constructor(
    private readonly root: unknown,
    private readonly where: string,
  ) {}

  convert(): string {
    this.taken.add('root');
    this.rules.set('root', '');
    this.rules.set('root', this.visit(this.root, '#', 'root'));
    const lines = [...this.rules].map(([name, body]) => `${name} ::= ${body}`);
    return printRules([...lines, ...primitiveRules([...this.usedPrimitives])]);
  }

  private unsupported(path: string, message: string): RequestError {
    return new RequestError('unsupported_schema', this.where, `${message} at ${path}`);
  }

  private invalid(path: string, message: string): RequestError {
    return new RequestError('invalid_schema', this.where, `${message} at ${path}`);
  }

  private primitive(name: string): string {
    this.usedPrimitives.add(name);
    return name;
  }

  /** A fresh rule name from a hint: kebab-case, made unique with a number. */
  private reserve(hint: string): string {
    const base = hint.replace(/[^a-zA-Z0-9-]+/g, '-').replace(/^-+|-+$/g, '') || 'rule';
    let name = base;
    for (let i = 1; this.taken.has(name); i++) name = `${base}-${i}`;
    this.taken.add(name);
    return name;
  }

  private addRule(hint: string, body: string): string {
    const name = this.reserve(hint);
    this.rules.set(name, body);
    return name;
  }

  /** A GBNF expression (no top-level "|") for `schema` at JSON pointer `path`. */
  private visit(schema: unknown, path: string, name: string): string {
    if (schema === true) return this.primitive('value');
    if (schema === false) throw this.unsupported(path, 'schema false (matches nothing)');
    if (!isObject(schema)) throw this.invalid(path, 'a schema must be an object or a boolean');
    this.checkKeywords(schema, path);
    if ('$ref' in schema) return this.ref(schema, path);
    if ('allOf' in schema) return this.visit(this.mergeAllOf(schema, path), path, name);
    if ('anyOf' in schema || 'oneOf' in schema) return this.union(schema, path, name);
    if ('const' in schema || 'enum' in schema) return this.enumeration(schema, path);
    const types = this.types(schema, path);
    if (types === undefined) return this.primitive('value');
    const branches = types.map((type) => this.typed(type, schema, path, name));
    return branches.length === 1 ? branches[0] : `( ${branches.join(' | ')} )`;
  }

  private checkKeywords(schema: SchemaObject, path: string): void {
    for (const key of Object.keys(schema)) {
      if (!KNOWN.has(key)) throw this.unsupported(path, `keyword "${key}" is not supported`);
      if (key === '$id' && path !== '#') throw this.unsupported(path, 'keyword "$id" below the root is not supported');
    }
    // $ref, anyOf and oneOf stand alone; allOf merges its siblings (mergeAllOf checks them);
    // enum and const combine with each other and with type only.
    const constraints = Object.keys(schema).filter((k) => !ANNOTATIONS.has(k));
    const combinator = COMBINATORS.find((k) => k in schema);
    const allowedBeside = combinator === 'allOf' ? constraints : combinator === 'enum' || combinator === 'const' ? ['type', 'enum', 'const'] : [combinator];
    const other = combinator && constraints.find((k) => !allowedBeside.includes(k));
    if (other) throw this.unsupported(path, `keyword "${other}" beside "${combinator}" is not supported`);
    if (schema.uniqueItems === true) throw this.unsupported(path, 'keyword "uniqueItems" (true) is not supported');
    if ('additionalItems' in schema && schema.additionalItems !== false) throw this.unsupported(path, 'keyword "additionalItems" (other than false) is not supported');
    for (const key of ['exclusiveMinimum', 'exclusiveMaximum']) {
      if (typeof schema[key] === 'boolean') throw this.unsupported(path, `keyword "${key}" as a boolean (draft-04) is not supported`);
    }
  }

  /** The types to produce: `type` (one or a list), else those implied by the keywords, else undefined (any). */
  private types(schema: SchemaObject, path: string): string[] | undefined {
    const type = schema.type;
    let types: string[];
    if (type === undefined) {
      types = Object.keys(TYPE_KEYWORDS).filter((t) => TYPE_KEYWORDS[t].some((k) => k in schema));
      if (types.length === 0) return undefined;
    } else {
      types = Array.isArray(type) ? (type as string[]) : [type as string];
      for (const t of types) if (!JSON_TYPES.includes(t)) throw this.invalid(path, `unknown type ${JSON.stringify(t)}`);
    }
    // "number" already covers "integer".
    return types.includes('number') ? types.filter((t) => t !== 'integer') : types;
  }

  private typed(type: string, schema: SchemaObject, path: string, name: string): string {
    switch (type) {
      case 'null':
      case 'boolean':
        return this.primitive(type);
      case 'string':
        return this.string(schema, path);
      case 'integer':
        return this.integer(schema, path);
      case 'number':
        return this.number(schema, path);
      case 'object':
        return this.object(schema, path, name);
      default:
        return this.array(schema, path, name);
    }
  }

  // -- $ref, allOf, anyOf/oneOf, enum/const ---------------------------------------------------

  private ref(schema: SchemaObject, path: string): string {
    const pointer = schema.$ref;
    if (typeof pointer !== 'string') throw this.invalid(path, '"$ref" must be a string');
    const known = this.refs.get(pointer);
    if (known) return known;
    const target = this.resolve(pointer, path);
    const name = this.reserve(pointer.split('/').pop() || 'ref');
    this.refs.set(pointer, name);
    this.rules.set(name, ''); // keeps creation order; filled in below (the target may refer back)
    this.rules.set(name, this.visit(target, pointer, name));
    return name;
  }

  private resolve(pointer: string, path: string): unknown {
    if (!pointer.startsWith('#')) throw this.unsupported(path, `keyword "$ref" to ${JSON.stringify(pointer)} (only local "#/..." refs are supported)`);
    let node: unknown = this.root;
    for (const raw of pointer.slice(1).split('/').slice(1)) {
      const key = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~');
      if (!isObject(node) && !Array.isArray(node)) node = undefined;
      else node = (node as Record<string, unknown>)[key];
      if (node === undefined) throw this.invalid(path, `"$ref" ${JSON.stringify(pointer)} points at nothing`);
    }
    return node;
  }

  /** allOf of object schemas as one object schema: properties and required united. */
  private mergeAllOf(schema: SchemaObject, path: string): SchemaObject {
    const parts = schema.allOf;
    if (!Array.isArray(parts) || parts.length === 0) throw this.invalid(path, '"allOf" must be a non-empty array');
    const { allOf: _, ...rest } = schema;
    const merged: SchemaObject = { type: 'object', properties: {}, required: [] };
    const members = [rest, ...parts.map((p, i) => this.derefAll(p, `${path}/allOf/${i}`))];
    members.forEach((member, i) => {
      const where = i === 0 ? path : `${path}/allOf/${i - 1}`;
      for (const key of Object.keys(member)) {
        if (ANNOTATIONS.has(key)) continue;
        if (key === 'type' && member.type === 'object') continue;
        if (key !== 'properties' && key !== 'required') throw this.unsupported(where, `keyword "${key}" in an "allOf" (only object properties and required merge)`);
      }
      for (const [prop, sub] of Object.entries((member.properties as SchemaObject | undefined) ?? {})) {
        const props = merged.properties as SchemaObject;
        if (prop in props && JSON.stringify(props[prop]) !== JSON.stringify(sub)) {
          throw this.unsupported(where, `property "${prop}" with different schemas in an "allOf"`);
        }
        props[prop] = sub;
      }
      (merged.required as unknown[]).push(...((member.required as unknown[] | undefined) ?? []));
    });
    merged.required = [...new Set(merged.required as unknown[])];
    return merged;
  }

  /** A schema with $refs followed (for merging and overlap checks). */
  private derefAll(schema: unknown, path: string): SchemaObject {
    let node = schema;
    for (let hops = 0; isObject(node) && typeof node.$ref === 'string'; hops++) {
      if (hops > 64) throw this.invalid(path, '"$ref" chain does not end');
      node = this.resolve(node.$ref as string, path);
    }
    if (!isObject(node)) throw this.unsupported(path, 'a boolean schema here is not supported');
    if ('allOf' in node) return this.mergeAllOf(node, path);
    return node;
  }

  private union(schema: SchemaObject, path: string, name: string): string {
    const key = 'anyOf' in schema ? 'anyOf' : 'oneOf';
    const branches = schema[key];
    if (!Array.isArray(branches) || branches.length === 0) throw this.invalid(path, `"${key}" must be a non-empty array`);
    if (key === 'oneOf') this.checkDisjoint(branches, path);
    const exprs = branches.map((b, i) => this.addRule(`${name}-${i}`, this.visit(b, `${path}/${key}/${i}`, `${name}-${i}`)));
    return exprs.length === 1 ? exprs[0] : `( ${exprs.join(' | ')} )`;
  }

  /** oneOf is only sound when no document can match two branches: check the cases we can tell. */
  private checkDisjoint(branches: unknown[], path: string): void {
    const resolved = branches.map((b, i) => this.derefAll(b, `${path}/oneOf/${i}`));
    for (let i = 0; i < resolved.length; i++) {
      for (let j = i + 1; j < resolved.length; j++) {
        if (!this.disjoint(resolved[i], resolved[j])) {
          throw this.unsupported(path, `keyword "oneOf" with branches ${i} and ${j} that may both match (use anyOf, or tell them apart by type, enum/const or a required const property)`);
        }
      }
    }
  }

  private disjoint(a: SchemaObject, b: SchemaObject): boolean {
    const va = this.values(a);
    const vb = this.values(b);
    if (va && vb) return !va.some((x) => vb.some((y) => JSON.stringify(x) === JSON.stringify(y)));
    const ta = this.possibleTypes(a);
    const tb = this.possibleTypes(b);
    if (!ta.some((t) => tb.includes(t))) return true;
    if (!ta.every((t) => t === 'object') || !tb.every((t) => t === 'object')) return false;
    // Objects: a property both require, whose const/enum values never agree.
    const reqA = (a.required as string[] | undefined) ?? [];
    const reqB = (b.required as string[] | undefined) ?? [];
    return reqA.some((prop) => {
      if (!reqB.includes(prop)) return false;
      const pa = (a.properties as SchemaObject | undefined)?.[prop];
      const pb = (b.properties as SchemaObject | undefined)?.[prop];
      return isObject(pa) && isObject(pb) && this.disjoint(this.derefAll(pa, '#'), this.derefAll(pb, '#')) && this.values(this.derefAll(pa, '#')) !== undefined;
    });
  }

  /** The values an enum/const schema allows, else undefined. */
  private values(schema: SchemaObject): unknown[] | undefined {
    if ('const' in schema) return [schema.const];
    if (Array.isArray(schema.enum)) return schema.enum;
    return undefined;
  }

  /** The JSON types a schema's documents may have, "integer" folded into "number". */
  private possibleTypes(schema: SchemaObject): string[] {
    const values = this.values(schema);
    const types = values ? values.flatMap(typesOf) : (this.types(schema, '#') ?? JSON_TYPES);
    return [...new Set(types.map((t) => (t === 'integer' ? 'number' : t)))];
  }

  private enumeration(schema: SchemaObject, path: string): string {
    const values = 'const' in schema ? [schema.const] : schema.enum;
    if (!Array.isArray(values)) throw this.invalid(path, '"enum" must be an array');
    let allowed = values;
    if ('enum' in schema && 'const' in schema) {
      allowed = allowed.filter((v) => JSON.stringify(v) === JSON.stringify(schema.const));
    }
    const types = this.types(schema, path);
    if (types) allowed = allowed.filter((v) => typesOf(v).some((t) => types.includes(t)));
    if (allowed.length === 0) throw this.unsupported(path, `keyword "${'const' in schema ? 'const' : 'enum'}" with no value of the schema's type (matches nothing)`);
    const literals = allowed.map((v) => gbnfLiteral(JSON.stringify(v)));
    const alternatives = literals.length === 1 ? literals[0] : `( ${literals.join(' | ')} )`;
    return `${alternatives} ${this.primitive('space')}`;
  }

  // -- strings ----------------------------------------------------------------------------------

  private string(schema: SchemaObject, path: string): string {
    const minLength = this.count(schema, 'minLength', path) ?? 0;
    const maxLength = this.count(schema, 'maxLength', path) ?? null;
    const bounded = 'minLength' in schema || 'maxLength' in schema;
    const quote = gbnfLiteral('"');
    const space = this.primitive('space');
    if ('format' in schema) {
      const format = schema.format;
      if (typeof format !== 'string' || !FORMATS.has(format)) throw this.unsupported(path, `keyword "format" ${JSON.stringify(format)} is not supported (supported: ${[...FORMATS].join(', ')})`);
      if (bounded || 'pattern' in schema) throw this.unsupported(path, 'keyword "format" with "pattern", "minLength" or "maxLength" is not supported');
      return `${quote} ${this.primitive(format)} ${quote} ${space}`;
    }
    if ('pattern' in schema) {
      if (typeof schema.pattern !== 'string') throw this.invalid(path, '"pattern" must be a string');
      if (bounded) throw this.unsupported(path, 'keyword "pattern" with "minLength" or "maxLength" is not supported');
      this.primitive('char');
      const body = this.pattern(schema.pattern, path);
      return `${quote} ${body} ${quote} ${space}`;
    }
    if (maxLength !== null && maxLength < minLength) throw this.unsupported(path, 'keyword "maxLength" below "minLength" (matches nothing)');
    if (!bounded) return this.primitive('string');
    return `${quote} ${this.primitive('char')}${repetition(minLength, maxLength)} ${quote} ${space}`;
  }

  /** The pattern's GBNF; regex.ts's rejections restated as this schema's, with the path. */
  private pattern(pattern: string, path: string): string {
    try {
      return regexToGbnfExpression(pattern, 'json', this.where);
    } catch (err) {
      if (!(err instanceof RequestError)) throw err;
      throw this.unsupported(path, `keyword "pattern": ${err.message.slice(this.where.length + 2)}`);
    }
  }

  private count(schema: SchemaObject, key: string, path: string): number | undefined {
    const value = schema[key];
    if (value === undefined) return undefined;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) throw this.invalid(path, `"${key}" must be a non-negative integer`);
    return value;
  }

  // -- numbers ----------------------------------------------------------------------------------

  /** A numeric keyword's value, or undefined. */
  private bound(schema: SchemaObject, key: string, path: string): number | undefined {
    const value = schema[key];
    if (value === undefined) return undefined;
    if (typeof value !== 'number' || !Number.isFinite(value)) throw this.invalid(path, `"${key}" must be a finite number`);
    return value;
  }

  /** Integer bounds [lo, hi] (null: unbounded) implied by minimum/maximum and their exclusive forms. */
  private integerBounds(schema: SchemaObject, path: string): [bigint | null, bigint | null] {
    const lows: bigint[] = [];
    const highs: bigint[] = [];
    const min = this.bound(schema, 'minimum', path);
    const max = this.bound(schema, 'maximum', path);
    const xmin = this.bound(schema, 'exclusiveMinimum', path);
    const xmax = this.bound(schema, 'exclusiveMaximum', path);
    if (min !== undefined) lows.push(BigInt(Math.ceil(min)));
    if (xmin !== undefined) lows.push(BigInt(Math.floor(xmin)) + 1n);
    if (max !== undefined) highs.push(BigInt(Math.floor(max)));
    if (xmax !== undefined) highs.push(BigInt(Math.ceil(xmax)) - 1n);
    const lo = lows.length ? lows.reduce((a, b) => (a > b ? a : b)) : null;
    const hi = highs.length ? highs.reduce((a, b) => (a < b ? a : b)) : null;
    if (lo !== null && hi !== null && lo > hi) throw this.unsupported(path, 'keywords "minimum"/"maximum" leave no value (matches nothing)');
    return [lo, hi];
  }

  private hasBounds(schema: SchemaObject): boolean {
    return TYPE_KEYWORDS.number.some((k) => k in schema);
  }

  private integer(schema: SchemaObject, path: string): string {
    if (!this.hasBounds(schema)) return this.primitive('integer');
    const [lo, hi] = this.integerBounds(schema, path);
    return `${integerRange(lo, hi)} ${this.primitive('space')}`;
  }

  /**
   * Numbers between integer bounds, without exponents: whole numbers in range, then n.f with a
   * non-zero fraction where the open interval (n, n+1) — or (-n-1, -n) — lies within the bounds.
   */
  private number(schema: SchemaObject, path: string): string {
    if (!this.hasBounds(schema)) return this.primitive('number');
    for (const key of TYPE_KEYWORDS.number) {
      const value = this.bound(schema, key, path);
      if (value !== undefined && !Number.isInteger(value)) throw this.unsupported(path, `keyword "${key}" ${value} on a number (only integer bounds are supported)`);
    }
    const [lo, hi] = this.integerBounds(schema, path);
    // A fraction n.f lies strictly between n and n+1, so open and closed bounds count alike: a ≤ n, n + 1 ≤ b.
    const lows = ['minimum', 'exclusiveMinimum'].map((k) => this.bound(schema, k, path)).filter((v) => v !== undefined);
    const highs = ['maximum', 'exclusiveMaximum'].map((k) => this.bound(schema, k, path)).filter((v) => v !== undefined);
    const a = lows.length ? BigInt(Math.max(...lows)) : null;
    const b = highs.length ? BigInt(Math.min(...highs)) : null;
    const fraction = '"." [0-9]{0,15} [1-9]';
    const options = [integerRange(lo, hi)];
    const positive = naturalRange(a === null || a < 0n ? 0n : a, b === null ? null : b - 1n);
    if (positive) options.push(`${positive} ${fraction}`);
    const negative = naturalRange(b === null || b > 0n ? 0n : -b, a === null ? null : -a - 1n);
    if (negative) options.push(`"-" ${negative} ${fraction}`);
    return `( ${options.join(' | ')} ) ${this.primitive('space')}`;
  }

  // -- objects ----------------------------------------------------------------------------------

  private object(schema: SchemaObject, path: string, name: string): string {
    const additional = schema.additionalProperties;
    if (!('properties' in schema) && !('required' in schema) && additional === undefined) return this.primitive('object');
    const properties = (schema.properties ?? {}) as SchemaObject;
    if (!isObject(properties)) throw this.invalid(path, '"properties" must be an object');
    const required = (schema.required ?? []) as string[];
    if (!Array.isArray(required) || required.some((r) => typeof r !== 'string')) throw this.invalid(path, '"required" must be an array of strings');
    const space = this.primitive('space');
    const kv = (key: string, valueSchema: unknown, valuePath: string): string => {
      const ruleName = `${name}-${key}`;
      const value = this.visit(valueSchema, valuePath, ruleName);
      return this.addRule(`${ruleName}-kv`, `${gbnfLiteral(JSON.stringify(key))} ${space} ":" ${space} ${value}`);
    };
    const extraSchema = isObject(additional) || additional === true ? additional : undefined;
    const requiredKvs = [...new Set(required)].map((key) => {
      if (key in properties) return kv(key, properties[key], `${path}/properties/${key}`);
      if (additional === false) throw this.unsupported(path, `required property "${key}" is not in "properties" and additionalProperties is false (matches nothing)`);
      return kv(key, extraSchema ?? true, `${path}/additionalProperties`);
    });
    const optionalKvs = Object.keys(properties)
      .filter((key) => !required.includes(key))
      .map((key) => kv(key, properties[key], `${path}/properties/${key}`));
    const extraKv =
      extraSchema === undefined ? undefined : this.addRule(`${name}-additional-kv`, `${this.otherKey(Object.keys(properties).concat(required), name)} ${space} ":" ${space} ${this.visit(extraSchema, `${path}/additionalProperties`, `${name}-additional`)}`);

    const optional = optionalKvs.length ? this.optionalChain(optionalKvs, name) : undefined;
    const extras = extraKv ? `${extraKv} ( "," ${space} ${extraKv} )*` : undefined;
    let body: string;
    if (requiredKvs.length > 0) {
      body = requiredKvs.join(` "," ${space} `);
      if (optional) body += ` ( "," ${space} ${optional} )?`;
      if (extras) body += ` ( "," ${space} ${extras} )?`;
    } else {
      const rest = [optional && extras ? `${optional} ( "," ${space} ${extras} )?` : optional, extras].filter(Boolean);
      body = rest.length ? `( ${rest.join(' | ')} )?` : '';
    }
    return `"{" ${space} ${body}${body ? ' ' : ''}"}" ${space}`;
  }

  /**
   * Rules for a non-empty, in-order selection of the optional properties:
   *   opt-i ::= kv-i ( "," space opt-(i+1) )? | opt-(i+1)     (the last: kv-last)
   * Returns the first rule's name.
   */
  private optionalChain(kvs: string[], name: string): string {
    const names = kvs.map((_, i) => this.reserve(`${name}-opt-${i}`));
    kvs.forEach((kv, i) => {
      const next = names[i + 1];
      this.rules.set(names[i], next ? `${kv} ( "," ${this.primitive('space')} ${next} )? | ${next}` : kv);
    });
    return names[0];
  }

  /**
   * A JSON string key other than each of `declared`: walk the declared keys' characters as a trie;
   * at each point the key may end (if no declared key ends there) or take a character no declared
   * key continues with, after which anything goes. Escapes are used only after that point.
   */
  private otherKey(declared: string[], name: string): string {
    const char = this.primitive('char');
    const space = this.primitive('space');
    const walk = (keys: string[]): string => {
      const ends = keys.includes('');
      const next = new Map<string, string[]>();
      for (const key of keys) {
        if (key === '') continue;
        const ch = String.fromCodePoint(key.codePointAt(0)!);
        next.set(ch, [...(next.get(ch) ?? []), key.slice(ch.length)]);
      }
      const plain = [...next.keys()].filter((ch) => ch >= ' ' && ch !== '"' && ch !== '\\');
      const excluded = ['"', '\\', ...plain].map((ch) => gbnfClassChar(ch.codePointAt(0)!)).join('');
      const options = [`[^${excluded}\\x00-\\x1F] ${char}* "\\""`];
      if (!ends) options.unshift('"\\""');
      for (const ch of plain) options.push(`${gbnfLiteral(ch)} ${walk(next.get(ch)!)}`);
      return options.length === 1 ? options[0] : `( ${options.join(' | ')} )`;
    };
    return this.addRule(`${name}-other-key`, `"\\"" ${walk([...new Set(declared)])} ${space}`);
  }

  // -- arrays -----------------------------------------------------------------------------------

  private array(schema: SchemaObject, path: string, name: string): string {
    const minItems = this.count(schema, 'minItems', path) ?? 0;
    const maxItems = this.count(schema, 'maxItems', path) ?? null;
    if (maxItems !== null && maxItems < minItems) throw this.unsupported(path, 'keyword "maxItems" below "minItems" (matches nothing)');
    const tuple = (Array.isArray(schema.prefixItems) ? schema.prefixItems : Array.isArray(schema.items) ? schema.items : []) as unknown[];
    const tupleKey = Array.isArray(schema.prefixItems) ? 'prefixItems' : 'items';
    const itemSchema = Array.isArray(schema.items) ? false : tuple.length > 0 && schema.items === undefined ? false : (schema.items ?? true);
    const space = this.primitive('space');
    const tupleCount = maxItems === null ? tuple.length : Math.min(tuple.length, maxItems);
    const elements = tuple.slice(0, tupleCount).map((s, i) => this.visit(s, `${path}/${tupleKey}/${i}`, `${name}-${i}`));
    const restMin = Math.max(minItems - tupleCount, 0);
    const restMax = itemSchema === false ? 0 : maxItems === null ? null : maxItems - tupleCount;
    if (restMax !== null && restMax < restMin) throw this.unsupported(path, `keyword "minItems" beyond the ${tuple.length} tuple items with no "items" for the rest`);
    const sep = `"," ${space}`;
    let body = elements.join(` ${sep} `);
    if (restMax !== 0) {
      const item = this.visit(itemSchema, `${path}/items`, `${name}-item`);
      const itemRule = /^[a-zA-Z0-9-]+$/.test(item) ? item : this.addRule(`${name}-item`, item);
      if (elements.length > 0) {
        body += ` ( ${sep} ${itemRule} )${repetition(restMin, restMax)}`;
      } else {
        const list = `${itemRule} ( ${sep} ${itemRule} )${repetition(Math.max(restMin - 1, 0), restMax === null ? null : restMax - 1)}`;
        body = restMin === 0 ? `( ${list} )?` : list;
      }
    }
    return `"[" ${space} ${body}${body ? ' ' : ''}"]" ${space}`;
  }
}

// -- integer ranges -------------------------------------------------------------------------------

/** Decimal integers (no leading zeros, no "-0") in [lo, hi]; null: unbounded on that side. */
function integerRange(lo: bigint | null, hi: bigint | null): string {
  const options: string[] = [];
  const negative = naturalRange(hi === null || hi > -1n ? 1n : -hi, lo === null ? null : -lo);
  if (negative && (lo === null || lo < 0n)) options.push(`"-" ${negative}`);
  if (hi === null || hi >= 0n) {
    const nonNegative = naturalRange(lo === null || lo < 0n ? 0n : lo, hi);
    if (nonNegative) options.push(nonNegative);
  }
  return options.length === 1 ? options[0] : `( ${options.join(' | ')} )`;
}

/**
 * Natural numbers in [a, b] (b null: up to MAX_INT_DIGITS digits), written without leading zeros,
 * as one expression; undefined when the range is empty. Split by digit count, each count an exact
 * same-length range.
 */
function naturalRange(a: bigint, b: bigint | null): string | undefined {
  if (a < 0n) a = 0n;
  if (b !== null && b < a) return undefined;
  const lowDigits = a.toString().length;
  const highDigits = b === null ? Math.max(MAX_INT_DIGITS, lowDigits) : b.toString().length;
  const options: string[] = [];
  for (let digits = lowDigits; digits <= highDigits; digits++) {
    const first = digits === 1 ? 0n : 10n ** BigInt(digits - 1);
    const last = 10n ** BigInt(digits) - 1n;
    const from = a > first ? a : first;
    const to = b !== null && b < last ? b : last;
    if (b === null && digits > lowDigits) {
      // Every longer count, unbounded above: one option for all of them.
      options.push(`[1-9] [0-9]${repetition(digits - 1, highDigits - 1)}`);
      break;
    }
    options.push(sameLengthRange(from.toString(), to.toString()));
  }
  return options.length === 1 ? options[0] : `( ${options.join(' | ')} )`;
}

/** Digit strings of one length between x and y (x ≤ y), leading zeros allowed. */
function sameLengthRange(x: string, y: string): string {
  if (x === y) return gbnfLiteral(x);
  let common = 0;
  while (x[common] === y[common]) common++;
  const prefix = x.slice(0, common);
  const dx = Number(x[common]);
  const dy = Number(y[common]);
  const xRest = x.slice(common + 1);
  const yRest = y.slice(common + 1);
  const anyRest = xRest.length === 0 ? '' : ` [0-9]${xRest.length === 1 ? '' : `{${xRest.length}}`}`;
  const xFloor = /^0*$/.test(xRest);
  const yCeil = /^9*$/.test(yRest);
  const options: string[] = [];
  if (!xFloor) options.push(withPrefix(`${dx}`, sameLengthRange(xRest, '9'.repeat(xRest.length))));
  const midLo = xFloor ? dx : dx + 1;
  const midHi = yCeil ? dy : dy - 1;
  if (midLo <= midHi) options.push(`${midLo === midHi ? `"${midLo}"` : `[${midLo}-${midHi}]`}${anyRest}`);
  if (!yCeil) options.push(withPrefix(`${dy}`, sameLengthRange('0'.repeat(yRest.length), yRest)));
  return withPrefix(prefix, options.length === 1 ? options[0] : `( ${options.join(' | ')} )`);
}

/** Digits `prefix` then `expr`, merged into one literal when `expr` is a literal of digits. */
function withPrefix(prefix: string, expr: string): string {
  if (prefix === '') return expr;
  const digits = /^"([0-9]*)"$/.exec(expr);
  return digits ? gbnfLiteral(prefix + digits[1]) : `${gbnfLiteral(prefix)} ${expr}`;
}
