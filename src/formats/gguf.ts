/**
 * GGUF reader (versions 2 and 3; little-endian).
 *
 * Layout:
 *   magic "GGUF" | u32 version | u64 tensor_count | u64 kv_count
 *   kv_count × (key: gguf string, value type: u32, value)
 *   tensor_count × (name: gguf string, n_dims: u32, dims: n_dims × u64, ggml type: u32, offset: u64)
 *   padding to `general.alignment` (default 32) | tensor data
 * A gguf string is a u64 byte length followed by UTF-8 bytes (no terminator). An array value is
 * an item type (u32), a count (u64) and the items. Tensor offsets are relative to the start of
 * the data section and must be multiples of the alignment.
 *
 * readGGUF reads only the header, through a bounds-checked reader: every count and length is
 * checked against the bytes left in the file before anything is allocated, and every tensor is
 * checked to lie inside the file, so later reads of tensor data cannot run off the end.
 *
 * Metadata values keep their GGUF type in `metadataTypes`, so a file's metadata can be written
 * back unchanged by writeGGUF (see `typedMetadata`).
 */
import fs from 'node:fs';
import { FormatError, ModelError, RequestError } from '../errors.js';
import { DTYPES, GGML_TYPE_NAMES, dtypeFromGgml, type DType } from '../tensor/dtype.js';
import { FileReader, openForRead, readFully } from './file.js';

/** GGUF scalar value types, indexed by their type code in the file (9 = array is not a scalar). */
export type GGUFScalarType =
  | 'u8' | 'i8' | 'u16' | 'i16' | 'u32' | 'i32' | 'f32' | 'bool' | 'string' | 'u64' | 'i64' | 'f64';

/** The type code of each value type as stored in the file. */
export const GGUF_TYPE_CODES: Readonly<Record<GGUFScalarType | 'array', number>> = {
  u8: 0, i8: 1, u16: 2, i16: 3, u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9, u64: 10, i64: 11, f64: 12,
};

const TYPE_BY_CODE = new Map<number, GGUFScalarType | 'array'>(
  Object.entries(GGUF_TYPE_CODES).map(([name, code]) => [code, name as GGUFScalarType | 'array']),
);

export type GGUFTypedArray =
  | Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Int32Array | Float32Array | Float64Array;

/**
 * A metadata value as read. Scalars: number (u64/i64 too, while |v| <= 2^53; beyond that bigint),
 * boolean, string. Arrays: fixed-size numeric items as the matching typed array (u8 → Uint8Array,
 * f32 → Float32Array, ...), strings as string[], bools as boolean[], u64/i64 as (number | bigint)[].
 * Arrays of arrays are rejected (llama.cpp does too).
 */
export type GGUFValue = number | bigint | boolean | string | GGUFValue[] | GGUFTypedArray;

/** The GGUF type of a metadata value: a scalar type, or an array and its item type. */
export type GGUFValueType = { type: GGUFScalarType } | { type: 'array'; itemType: GGUFScalarType };

/** A value together with its GGUF type: what writeGGUF takes, and what typedMetadata returns. */
export type GGUFTypedValue =
  | { type: 'u8' | 'i8' | 'u16' | 'i16' | 'u32' | 'i32' | 'f32' | 'f64'; value: number }
  | { type: 'u64' | 'i64'; value: number | bigint }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'array'; itemType: GGUFScalarType; value: GGUFArrayItems };

/** Items of an array value: a typed array or a plain array of the item type's JS values. */
export type GGUFArrayItems = GGUFTypedArray | readonly (number | bigint | boolean | string)[];

export interface GGUFTensorInfo {
  name: string;
  /** ggml order: dims[0] is the row length (innermost). */
  dims: number[];
  /** Row-major order for our Tensor: dims reversed. */
  shape: number[];
  ggmlType: number;
  /** undefined for types we cannot compute with (GGML_TYPE_NAMES has their names). */
  dtype: DType | undefined;
  /** ABSOLUTE byte offset in the file. */
  offset: number;
  /** Bytes of data; 0 when dtype is undefined (the size of unknown types is unknown). */
  byteLength: number;
}

export interface GGUFFile {
  path: string;
  version: number;
  fileSize: number;
  alignment: number;
  /** Absolute offset of the data section (tensor offsets already include it). */
  dataOffset: number;
  metadata: Map<string, GGUFValue>;
  /** The GGUF type of every metadata value, same keys as `metadata`. */
  metadataTypes: Map<string, GGUFValueType>;
  tensors: GGUFTensorInfo[];
  tensor(name: string): GGUFTensorInfo | undefined;
}

export const GGUF_MAGIC = 'GGUF';
export const GGUF_DEFAULT_ALIGNMENT = 32;
/** ggml tensors have at most 4 dimensions. */
export const GGUF_MAX_DIMS = 4;

/** Smallest possible encodings, used to reject counts the rest of the file cannot hold. */
const MIN_KV_BYTES = 8 + 4 + 1; // key length, value type, a 1-byte value
const MIN_TENSOR_INFO_BYTES = 8 + 4 + 8 + 4 + 8; // name length, n_dims, one dim, type, offset
const SCALAR_BYTES: Readonly<Record<GGUFScalarType, number>> = {
  u8: 1, i8: 1, u16: 2, i16: 2, u32: 4, i32: 4, f32: 4, bool: 1, string: 8, u64: 8, i64: 8, f64: 8,
};

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** Read a GGUF file's header (metadata and tensor infos); tensor data stays on disk. */
export function readGGUF(path: string): GGUFFile {
  const { fd, size } = openForRead(path);
  try {
    return parseHeader(new FileReader(fd, path, size));
  } finally {
    fs.closeSync(fd);
  }
}

function parseHeader(r: FileReader): GGUFFile {
  const path = r.path;
  if (r.size < 4) throw new FormatError('bad_magic', path, `file is ${r.size} bytes, too short for a GGUF header`);
  const magic = Buffer.from(r.bytes(4, 'magic')).toString('latin1');
  if (magic !== GGUF_MAGIC) {
    throw new FormatError('bad_magic', path, `not a GGUF file: magic is ${JSON.stringify(magic)}, expected "GGUF"`);
  }
  const version = r.u32('version');
  if (version !== 2 && version !== 3) {
    const swapped = Buffer.from(Uint32Array.of(version).buffer).readUInt32BE(0);
    const hint =
      version === 1 ? ' (GGUF v1 used 32-bit counts; re-convert the model)'
      : swapped === 2 || swapped === 3 ? ' (this looks like a big-endian GGUF, which is not supported)'
      : '';
    throw new FormatError('unsupported_version', path, `unsupported GGUF version ${version}${hint}; supported: 2, 3`);
  }
  const tensorCount = readCount(r, 'tensor_count', MIN_TENSOR_INFO_BYTES, 8 + 8);
  const kvCount = readCount(r, 'kv_count', MIN_KV_BYTES, 8);

  const metadata = new Map<string, GGUFValue>();
  const metadataTypes = new Map<string, GGUFValueType>();
  for (let i = 0; i < kvCount; i++) {
    const key = readString(r, `metadata key #${i}`);
    if (metadata.has(key)) throw new FormatError('duplicate_key', path, `metadata key "${key}" appears twice`);
    const { value, type } = readValue(r, key);
    metadata.set(key, value);
    metadataTypes.set(key, type);
  }

  const alignment = readAlignment(path, metadata, metadataTypes);
  const infos: RawTensorInfo[] = [];
  const names = new Set<string>();
  for (let i = 0; i < tensorCount; i++) {
    const info = readTensorInfo(r, i, alignment);
    if (names.has(info.name)) throw new FormatError('duplicate_tensor', path, `tensor "${info.name}" appears twice`);
    names.add(info.name);
    infos.push(info);
  }
  const dataOffset = alignUp(r.pos, alignment);
  const tensors = infos.map((info) => placeTensor(path, r.size, dataOffset, info));
  const byName = new Map(tensors.map((t) => [t.name, t]));
  return {
    path,
    version,
    fileSize: r.size,
    alignment,
    dataOffset,
    metadata,
    metadataTypes,
    tensors,
    tensor: (name: string) => byName.get(name),
  };
}

/**
 * A u64 count of items that each take at least `minItemBytes`, with `trailingBytes` of the
 * header still to come: more than the rest of the file can hold is absurd.
 */
function readCount(r: FileReader, what: string, minItemBytes: number, trailingBytes = 0): number {
  const count = r.u64(what);
  const room = Math.max(0, r.remaining - trailingBytes);
  if (count > BigInt(Math.floor(room / minItemBytes))) {
    throw new FormatError(
      'absurd_count',
      r.path,
      `${what} is ${count}, but the ${r.remaining} bytes left in the file (size ${r.size}) can hold at most ${Math.floor(room / minItemBytes)}`,
    );
  }
  return Number(count);
}

/** Strings longer than this are surely corrupt (the largest real ones are chat templates). */
const MAX_STRING_BYTES = 1 << 28;

/** A gguf string. `index` names an array item (kept apart so the hot path builds no message). */
function readString(r: FileReader, what: string, index = -1): string {
  const len = r.u64Number(what);
  if (len > r.remaining || len > MAX_STRING_BYTES) {
    const name = index < 0 ? what : `${what}[${index}]`;
    throw new FormatError(
      'truncated',
      r.path,
      `${name} at offset ${r.pos - 8} claims ${len} bytes but only ${r.remaining} remain (file size ${r.size})`,
    );
  }
  return r.utf8(len, what);
}

function bigToValue(v: bigint): number | bigint {
  return v <= MAX_SAFE && v >= -MAX_SAFE ? Number(v) : v;
}

function readValueType(r: FileReader, what: string): GGUFScalarType | 'array' {
  const code = r.u32(`value type of ${what}`);
  const type = TYPE_BY_CODE.get(code);
  if (type === undefined) {
    throw new FormatError('bad_value_type', r.path, `${what} has unknown value type ${code} (valid: 0..12)`);
  }
  return type;
}

function readValue(r: FileReader, key: string): { value: GGUFValue; type: GGUFValueType } {
  const what = `metadata "${key}"`;
  const type = readValueType(r, what);
  if (type !== 'array') return { value: readScalar(r, type, what), type: { type } };
  const itemType = readValueType(r, `items of ${what}`);
  if (itemType === 'array') {
    throw new FormatError('bad_value_type', r.path, `${what} is an array of arrays, which is not supported`);
  }
  const count = readCount(r, `item count of ${what}`, SCALAR_BYTES[itemType]);
  return { value: readArray(r, itemType, count, what), type: { type: 'array', itemType } };
}

function readScalar(r: FileReader, type: GGUFScalarType, what: string): number | bigint | boolean | string {
  switch (type) {
    case 'u8': return r.u8(what);
    case 'i8': return r.i8(what);
    case 'u16': return r.u16(what);
    case 'i16': return r.i16(what);
    case 'u32': return r.u32(what);
    case 'i32': return r.i32(what);
    case 'f32': return r.f32(what);
    case 'f64': return r.f64(what);
    case 'u64': return bigToValue(r.u64(what));
    case 'i64': return bigToValue(r.i64(what));
    case 'string': return readString(r, what);
    case 'bool': {
      const b = r.u8(what);
      if (b > 1) throw new FormatError('bad_value', r.path, `${what} is a bool stored as ${b} (must be 0 or 1)`);
      return b === 1;
    }
  }
}

const TYPED_ARRAYS = {
  u8: Uint8Array, i8: Int8Array, u16: Uint16Array, i16: Int16Array,
  u32: Uint32Array, i32: Int32Array, f32: Float32Array, f64: Float64Array,
} as const;

function readArray(r: FileReader, itemType: GGUFScalarType, count: number, what: string): GGUFValue {
  if (itemType in TYPED_ARRAYS) {
    const Ctor = TYPED_ARRAYS[itemType as keyof typeof TYPED_ARRAYS];
    // A fresh copy starts at offset 0 of its own buffer, so it is aligned for any item size.
    const bytes = r.bytes(count * Ctor.BYTES_PER_ELEMENT, what);
    return new Ctor(bytes.buffer as ArrayBuffer, 0, count);
  }
  const items: GGUFValue[] = new Array(count);
  if (itemType === 'string') {
    for (let i = 0; i < count; i++) items[i] = readString(r, what, i);
  } else {
    for (let i = 0; i < count; i++) items[i] = readScalar(r, itemType, what);
  }
  return items;
}

function readAlignment(path: string, metadata: Map<string, GGUFValue>, types: Map<string, GGUFValueType>): number {
  const value = metadata.get('general.alignment');
  if (value === undefined) return GGUF_DEFAULT_ALIGNMENT;
  const type = types.get('general.alignment')!.type;
  if (type !== 'u32') throw new FormatError('bad_alignment', path, `general.alignment must be a u32, found ${type}`);
  const a = value as number;
  if (a === 0 || (a & (a - 1)) !== 0) {
    throw new FormatError('bad_alignment', path, `general.alignment is ${a}, which is not a power of two`);
  }
  return a;
}

interface RawTensorInfo {
  name: string;
  dims: number[];
  ggmlType: number;
  /** Relative to the data section. */
  relOffset: number;
}

function readTensorInfo(r: FileReader, index: number, alignment: number): RawTensorInfo {
  const name = readString(r, `name of tensor #${index}`);
  const what = `tensor "${name}"`;
  const nDims = r.u32(`n_dims of ${what}`);
  if (nDims < 1 || nDims > GGUF_MAX_DIMS) {
    throw new FormatError('bad_dims', r.path, `${what} has ${nDims} dimensions (must be 1..${GGUF_MAX_DIMS})`);
  }
  const dims: number[] = [];
  let numel = 1n;
  for (let d = 0; d < nDims; d++) {
    const dim = r.u64(`dims of ${what}`);
    numel *= dim;
    if (dim === 0n || numel > MAX_SAFE) {
      throw new FormatError('bad_dims', r.path, `${what} has dimension ${d} = ${dim}${dim === 0n ? '' : ` (${numel}+ elements is absurd)`}`);
    }
    dims.push(Number(dim));
  }
  const ggmlType = r.u32(`type of ${what}`);
  const rel = r.u64(`offset of ${what}`);
  if (rel > MAX_SAFE) throw new FormatError('tensor_out_of_bounds', r.path, `${what} has an absurd offset ${rel}`);
  const relOffset = Number(rel);
  if (relOffset % alignment !== 0) {
    throw new FormatError('bad_alignment', r.path, `${what} has offset ${relOffset}, not a multiple of the alignment ${alignment}`);
  }
  return { name, dims, ggmlType, relOffset };
}

/** Resolve a tensor's absolute offset and byte length, and check it lies inside the file. */
function placeTensor(path: string, fileSize: number, dataOffset: number, raw: RawTensorInfo): GGUFTensorInfo {
  const dtype = dtypeFromGgml(raw.ggmlType);
  const offset = dataOffset + raw.relOffset;
  let byteLength = 0;
  if (dtype !== undefined) {
    const { blockSize, blockBytes } = DTYPES[dtype];
    if (raw.dims[0]! % blockSize !== 0) {
      throw new FormatError('bad_shape', path, `tensor "${raw.name}" has rows of ${raw.dims[0]} values, not a multiple of the ${dtype} block size ${blockSize}`);
    }
    const numel = raw.dims.reduce((a, b) => a * b, 1);
    byteLength = (numel / blockSize) * blockBytes;
  }
  if (offset > fileSize || byteLength > fileSize - offset) {
    throw new FormatError(
      'tensor_out_of_bounds',
      path,
      `tensor ${raw.name}: data [${offset}..${offset + byteLength}) extends past the end of the file (size ${fileSize})`,
    );
  }
  return { name: raw.name, dims: raw.dims, shape: [...raw.dims].reverse(), ggmlType: raw.ggmlType, dtype, offset, byteLength };
}

export function alignUp(n: number, alignment: number): number {
  return Math.ceil(n / alignment) * alignment;
}

/**
 * Read a tensor's bytes straight into `dest` (e.g. a view into a WebAssembly.Memory), with no
 * intermediate copy. Works for GGUF and llama2.c files alike: offsets are absolute.
 */
export function readTensorData(file: { path: string }, info: GGUFTensorInfo, dest: Uint8Array): void {
  if (info.dtype === undefined) {
    const typeName = GGML_TYPE_NAMES[info.ggmlType] ?? `unknown ggml type ${info.ggmlType}`;
    throw new FormatError('unknown_dtype', file.path, `tensor ${info.name} has type ${typeName}, whose data SmallMind cannot read`);
  }
  if (dest.byteLength !== info.byteLength) {
    throw new RequestError('bad_buffer', 'dest', `tensor ${info.name} needs ${info.byteLength} bytes, the buffer has ${dest.byteLength}`);
  }
  const { fd } = openForRead(file.path);
  try {
    readFully(fd, file.path, dest, info.offset);
  } finally {
    fs.closeSync(fd);
  }
}

// ---------------------------------------------------------------------------------------------
// Metadata accessors for the model loader. A missing key or a value of the wrong type is a model
// problem (the file is valid GGUF but not a runnable model), so these throw ModelError.

interface HasMetadata {
  path: string;
  metadata: Map<string, GGUFValue>;
}

function missing(file: HasMetadata, key: string): never {
  throw new ModelError('missing_key', `${file.path}: metadata key "${key}" is missing`);
}

function wrongType(file: HasMetadata, key: string, want: string, value: GGUFValue): never {
  throw new ModelError('bad_key_type', `${file.path}: metadata key "${key}" should be ${want}, found ${describeValue(value)}`);
}

function describeValue(value: GGUFValue): string {
  if (typeof value === 'string') return `the string ${JSON.stringify(value.length > 40 ? value.slice(0, 40) + '…' : value)}`;
  if (Array.isArray(value) || ArrayBuffer.isView(value)) return `an array of ${value.length} items`;
  return `the ${typeof value} ${String(value)}`;
}

export function getOptionalString(file: HasMetadata, key: string): string | undefined {
  const v = file.metadata.get(key);
  if (v === undefined) return undefined;
  if (typeof v !== 'string') wrongType(file, key, 'a string', v);
  return v;
}

export function getString(file: HasMetadata, key: string): string {
  return getOptionalString(file, key) ?? missing(file, key);
}

/** Any numeric scalar; u64/i64 values beyond 2^53 are rejected (they cannot be exact numbers). */
export function getOptionalNumber(file: HasMetadata, key: string): number | undefined {
  const v = file.metadata.get(key);
  if (v === undefined) return undefined;
  if (typeof v !== 'number') wrongType(file, key, 'a number', v);
  return v;
}

export function getNumber(file: HasMetadata, key: string): number {
  return getOptionalNumber(file, key) ?? missing(file, key);
}

export function getOptionalBool(file: HasMetadata, key: string): boolean | undefined {
  const v = file.metadata.get(key);
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean') wrongType(file, key, 'a bool', v);
  return v;
}

export function getBool(file: HasMetadata, key: string): boolean {
  return getOptionalBool(file, key) ?? missing(file, key);
}

/** An array value: string[], boolean[], a typed array for fixed-size numbers, or (number|bigint)[]. */
export function getOptionalArray(file: HasMetadata, key: string): GGUFValue[] | GGUFTypedArray | undefined {
  const v = file.metadata.get(key);
  if (v === undefined) return undefined;
  if (!Array.isArray(v) && !ArrayBuffer.isView(v)) wrongType(file, key, 'an array', v);
  return v as GGUFValue[] | GGUFTypedArray;
}

export function getArray(file: HasMetadata, key: string): GGUFValue[] | GGUFTypedArray {
  return getOptionalArray(file, key) ?? missing(file, key);
}

/** An array of strings (e.g. tokenizer.ggml.tokens). */
export function getStringArray(file: HasMetadata, key: string): string[] {
  const v = getArray(file, key);
  if (!Array.isArray(v) || (v.length > 0 && typeof v[0] !== 'string')) wrongType(file, key, 'an array of strings', v);
  return v as string[];
}

/** A numeric array as plain numbers (any item type but string and bool; a typed array is converted). */
export function getNumberArray(file: HasMetadata, key: string): ArrayLike<number> {
  const v = getArray(file, key);
  if (ArrayBuffer.isView(v)) return v;
  if (v.some((x) => typeof x !== 'number')) wrongType(file, key, 'an array of numbers', v);
  return v as number[];
}

/** A metadata value with its GGUF type, ready to be written back by writeGGUF. */
export function typedValue(file: GGUFFile, key: string): GGUFTypedValue | undefined {
  const value = file.metadata.get(key);
  const type = file.metadataTypes.get(key);
  if (value === undefined || type === undefined) return undefined;
  if (type.type === 'array') return { type: 'array', itemType: type.itemType, value: value as GGUFArrayItems };
  return { type: type.type, value } as GGUFTypedValue;
}

/** All of a file's metadata with types, in file order (keys can be filtered before writing). */
export function typedMetadata(file: GGUFFile): Map<string, GGUFTypedValue> {
  return new Map([...file.metadata.keys()].map((key) => [key, typedValue(file, key)!]));
}
