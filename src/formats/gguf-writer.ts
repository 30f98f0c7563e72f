/**
 * GGUF v3 writer. The header (metadata and tensor infos) is built in memory, the tensor data is
 * streamed to disk one tensor at a time, so a multi-GB model never sits in one buffer. A tensor's
 * bytes may be given lazily (a function called when its turn comes) to keep only one in memory.
 *
 * The output is written to `${path}.tmp-<pid>` and renamed over `path` once complete, so a crash
 * or an error never leaves a half-written model under the real name.
 *
 * Layout choices follow ggml's own writer: tensors in the order given, each at an offset that is a
 * multiple of the alignment, zero padding after the header and after every tensor (the last too).
 */
import { RequestError } from '../errors.js';
import { DTYPES, type DType } from '../tensor/dtype.js';
import { writeFileAtomicWith, writeFully } from './file.js';
import {
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  GGUF_MAX_DIMS,
  GGUF_TYPE_CODES,
  alignUp,
  type GGUFScalarType,
  type GGUFTypedArray,
  type GGUFTypedValue,
} from './gguf.js';

/** A metadata value with its GGUF type. `typedMetadata(readGGUF(p))` gives values of this form. */
export type GGUFWriteValue = GGUFTypedValue;

export type GGUFWriteMetadata =
  | ReadonlyMap<string, GGUFWriteValue>
  | Iterable<readonly [string, GGUFWriteValue]>
  | Readonly<Record<string, GGUFWriteValue>>;

export interface GGUFWriteTensor {
  name: string;
  dtype: DType;
  /** Row-major (our Tensor order); written to the file reversed, as ggml dims. */
  shape: number[];
  /** The tensor's bytes, or a function producing them when the writer reaches this tensor. */
  data: Uint8Array | (() => Uint8Array);
}

export interface GGUFWriteOptions {
  /** Data alignment (a power of two). Default: the metadata's general.alignment, else 32. */
  alignment?: number;
}

export const GGUF_WRITE_VERSION = 3;

export function writeGGUF(
  path: string,
  metadata: GGUFWriteMetadata,
  tensors: readonly GGUFWriteTensor[],
  opts: GGUFWriteOptions = {},
): void {
  const kv = metadataEntries(metadata);
  const alignment = chooseAlignment(kv, opts.alignment);
  if (alignment !== GGUF_DEFAULT_ALIGNMENT || kv.has('general.alignment')) {
    kv.set('general.alignment', { type: 'u32', value: alignment });
  }
  const layout = layOut(tensors, alignment);
  const header = encodeHeader(kv, layout, alignment);

  writeFileAtomicWith(path, (fd) => {
    writeFully(fd, header);
    for (const { tensor, byteLength, padding } of layout) {
      const data = typeof tensor.data === 'function' ? tensor.data() : tensor.data;
      if (data.byteLength !== byteLength) {
        throw new RequestError('bad_tensor', `tensor ${tensor.name}`, `shape [${tensor.shape}] ${tensor.dtype} needs ${byteLength} bytes, got ${data.byteLength}`);
      }
      writeFully(fd, data);
      writeFully(fd, new Uint8Array(padding));
    }
  });
}

function metadataEntries(metadata: GGUFWriteMetadata): Map<string, GGUFWriteValue> {
  const entries: Iterable<readonly [string, GGUFWriteValue]> =
    Symbol.iterator in metadata ? (metadata as Iterable<readonly [string, GGUFWriteValue]>) : Object.entries(metadata);
  const out = new Map<string, GGUFWriteValue>();
  for (const [key, value] of entries) {
    if (out.has(key)) throw new RequestError('duplicate_key', `metadata ${key}`, 'key given twice');
    out.set(key, value);
  }
  return out;
}

function chooseAlignment(kv: Map<string, GGUFWriteValue>, requested: number | undefined): number {
  const given = kv.get('general.alignment');
  if (given !== undefined && given.type !== 'u32') {
    throw new RequestError('bad_alignment', 'metadata general.alignment', `must be a u32, got ${given.type}`);
  }
  const alignment = requested ?? (given?.value as number | undefined) ?? GGUF_DEFAULT_ALIGNMENT;
  if (!Number.isInteger(alignment) || alignment <= 0 || alignment > 0x8000_0000 || (alignment & (alignment - 1)) !== 0) {
    throw new RequestError('bad_alignment', 'alignment', `${alignment} is not a power of two`);
  }
  return alignment;
}

interface Placed {
  tensor: GGUFWriteTensor;
  /** Relative to the data section. */
  offset: number;
  byteLength: number;
  padding: number;
}

function layOut(tensors: readonly GGUFWriteTensor[], alignment: number): Placed[] {
  const names = new Set<string>();
  let offset = 0;
  return tensors.map((tensor) => {
    const where = `tensor ${tensor.name}`;
    if (names.has(tensor.name)) throw new RequestError('duplicate_tensor', where, 'name given twice');
    names.add(tensor.name);
    const info = DTYPES[tensor.dtype];
    if (info === undefined) throw new RequestError('bad_tensor', where, `unknown dtype ${String(tensor.dtype)}`);
    const { shape } = tensor;
    if (shape.length < 1 || shape.length > GGUF_MAX_DIMS || shape.some((d) => !Number.isSafeInteger(d) || d <= 0)) {
      throw new RequestError('bad_tensor', where, `shape [${shape}] must have 1..${GGUF_MAX_DIMS} positive integer dimensions`);
    }
    const rowLength = shape[shape.length - 1]!;
    if (rowLength % info.blockSize !== 0) {
      throw new RequestError('bad_tensor', where, `rows of ${rowLength} values are not a multiple of the ${tensor.dtype} block size ${info.blockSize}`);
    }
    const numel = shape.reduce((a, b) => a * b, 1);
    const byteLength = (numel / info.blockSize) * info.blockBytes;
    const padding = alignUp(byteLength, alignment) - byteLength;
    const placed = { tensor, offset, byteLength, padding };
    offset += byteLength + padding;
    return placed;
  });
}

/** A growing little-endian byte buffer for the header. */
class ByteSink {
  private buf = Buffer.alloc(1 << 16);
  length = 0;

  private reserve(n: number): number {
    if (this.length + n > this.buf.byteLength) {
      const bigger = Buffer.alloc(Math.max(this.buf.byteLength * 2, this.length + n));
      this.buf.copy(bigger, 0, 0, this.length);
      this.buf = bigger;
    }
    const at = this.length;
    this.length += n;
    return at;
  }

  u8(v: number): void {
    const at = this.reserve(1); // reserve first: it may replace buf
    this.buf.writeUInt8(v, at);
  }
  i8(v: number): void {
    const at = this.reserve(1);
    this.buf.writeInt8(v, at);
  }
  u16(v: number): void {
    const at = this.reserve(2);
    this.buf.writeUInt16LE(v, at);
  }
  i16(v: number): void {
    const at = this.reserve(2);
    this.buf.writeInt16LE(v, at);
  }
  u32(v: number): void {
    const at = this.reserve(4);
    this.buf.writeUInt32LE(v, at);
  }
  i32(v: number): void {
    const at = this.reserve(4);
    this.buf.writeInt32LE(v, at);
  }
  f32(v: number): void {
    const at = this.reserve(4);
    this.buf.writeFloatLE(v, at);
  }
  f64(v: number): void {
    const at = this.reserve(8);
    this.buf.writeDoubleLE(v, at);
  }
  u64(v: bigint): void {
    const at = this.reserve(8);
    this.buf.writeBigUInt64LE(v, at);
  }
  i64(v: bigint): void {
    const at = this.reserve(8);
    this.buf.writeBigInt64LE(v, at);
  }

  bytes(b: Uint8Array): void {
    const at = this.reserve(b.byteLength);
    this.buf.set(b, at);
  }

  string(s: string): void {
    const encoded = Buffer.from(s, 'utf8');
    this.u64(BigInt(encoded.byteLength));
    this.bytes(encoded);
  }

  zeros(n: number): void {
    this.reserve(n); // Buffer.alloc zero-fills, and bytes past `length` are never written before
  }

  result(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }
}

function encodeHeader(kv: Map<string, GGUFWriteValue>, layout: Placed[], alignment: number): Uint8Array {
  const out = new ByteSink();
  out.bytes(Buffer.from(GGUF_MAGIC, 'latin1'));
  out.u32(GGUF_WRITE_VERSION);
  out.u64(BigInt(layout.length));
  out.u64(BigInt(kv.size));
  for (const [key, value] of kv) {
    out.string(key);
    encodeValue(out, key, value);
  }
  for (const { tensor, offset } of layout) {
    out.string(tensor.name);
    out.u32(tensor.shape.length);
    for (const d of [...tensor.shape].reverse()) out.u64(BigInt(d));
    out.u32(DTYPES[tensor.dtype].ggmlType);
    out.u64(BigInt(offset));
  }
  // The data section starts aligned. With no tensors there is no data section, and (like the
  // vocab-only files llama.cpp ships) no padding either.
  if (layout.length > 0) out.zeros(alignUp(out.length, alignment) - out.length);
  return out.result();
}

function encodeValue(out: ByteSink, key: string, v: GGUFWriteValue): void {
  const code = GGUF_TYPE_CODES[v.type];
  if (code === undefined) throw new RequestError('bad_metadata', `metadata ${key}`, `unknown value type ${String(v.type)}`);
  out.u32(code);
  if (v.type !== 'array') {
    encodeScalar(out, key, v.type, v.value);
    return;
  }
  const itemCode = GGUF_TYPE_CODES[v.itemType];
  if (itemCode === undefined || v.itemType === ('array' as string)) {
    throw new RequestError('bad_metadata', `metadata ${key}`, `unsupported array item type ${String(v.itemType)}`);
  }
  out.u32(itemCode);
  const items = v.value;
  out.u64(BigInt(items.length));
  const fixed = TYPED_ARRAY_OF[v.itemType];
  if (fixed !== undefined && items instanceof fixed) {
    // Fast path: a typed array of the item type is already the file's encoding (little-endian host).
    const typed = items as GGUFTypedArray;
    out.bytes(new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength));
    return;
  }
  for (let i = 0; i < items.length; i++) encodeScalar(out, `${key}[${i}]`, v.itemType, items[i]!);
}

const TYPED_ARRAY_OF: Partial<Record<GGUFScalarType, Function>> = {
  u8: Uint8Array, i8: Int8Array, u16: Uint16Array, i16: Int16Array,
  u32: Uint32Array, i32: Int32Array, f32: Float32Array, f64: Float64Array,
};

const INT_RANGES: Partial<Record<GGUFScalarType, [number, number]>> = {
  u8: [0, 0xff], i8: [-0x80, 0x7f], u16: [0, 0xffff], i16: [-0x8000, 0x7fff],
  u32: [0, 0xffff_ffff], i32: [-0x8000_0000, 0x7fff_ffff],
};

const BIG_RANGES: Partial<Record<GGUFScalarType, [bigint, bigint]>> = {
  u64: [0n, (1n << 64n) - 1n],
  i64: [-(1n << 63n), (1n << 63n) - 1n],
};

function encodeScalar(out: ByteSink, key: string, type: GGUFScalarType, value: unknown): void {
  const bad = (why: string): never => {
    throw new RequestError('bad_metadata', `metadata ${key}`, `${String(value)} is not a valid ${type}: ${why}`);
  };
  const intRange = INT_RANGES[type];
  if (intRange !== undefined) {
    if (typeof value !== 'number' || !Number.isInteger(value)) bad('not an integer number');
    const n = value as number;
    if (n < intRange[0] || n > intRange[1]) bad(`out of range [${intRange[0]}, ${intRange[1]}]`);
    out[type as 'u8'](n);
    return;
  }
  const bigRange = BIG_RANGES[type];
  if (bigRange !== undefined) {
    if (typeof value === 'number' && !Number.isInteger(value)) bad('not an integer');
    if (typeof value !== 'number' && typeof value !== 'bigint') bad('not a number or bigint');
    const b = BigInt(value as number | bigint);
    if (b < bigRange[0] || b > bigRange[1]) bad('out of range');
    if (type === 'u64') out.u64(b);
    else out.i64(b);
    return;
  }
  switch (type) {
    case 'f32':
    case 'f64':
      if (typeof value !== 'number') bad('not a number');
      out[type](value as number);
      return;
    case 'bool':
      if (typeof value !== 'boolean') bad('not a boolean');
      out.u8(value ? 1 : 0);
      return;
    case 'string':
      if (typeof value !== 'string') bad('not a string');
      out.string(value as string);
      return;
    default:
      bad('unknown type');
  }
}
