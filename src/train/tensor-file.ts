/**
 * A plain file of named f32 tensors plus string metadata, for training state (optimizer moments).
 * The layout is safetensors' (an 8-byte little-endian header length, a JSON header naming each
 * tensor's dtype, shape and byte range, then the bytes), F32 only, so Hugging Face's `safetensors`
 * reads it too; a shared safetensors module can replace this one without changing the files.
 * Written atomically (temp file + rename), streaming tensor by tensor.
 */
import fs from 'node:fs';
import { FormatError } from '../errors.js';
import { describeIoError, openForRead, readFully, writeFully } from '../formats/file.js';

export interface NamedTensor {
  name: string;
  shape: readonly number[];
  data: Float32Array;
}

/** The header is padded with spaces to a multiple of this, so the data starts aligned. */
const ALIGN = 8;
const METADATA = '__metadata__';

function checkHost(file: string): void {
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) throw new FormatError('unsupported_platform', file, 'tensor files need a little-endian machine');
}

/** Write `tensors` (names unique) and `metadata` to `file`, atomically. */
export function writeTensorFile(file: string, tensors: readonly NamedTensor[], metadata: Record<string, string> = {}): void {
  checkHost(file);
  const header: Record<string, unknown> = { [METADATA]: metadata };
  let offset = 0;
  for (const t of tensors) {
    if (Object.hasOwn(header, t.name)) throw new FormatError('duplicate_tensor', file, `tensor ${JSON.stringify(t.name)} given twice`);
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) throw new FormatError('shape_mismatch', file, `tensor ${t.name}: shape [${t.shape}] holds ${count} values, the data ${t.data.length}`);
    header[t.name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + 4 * count] };
    offset += 4 * count;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((ALIGN - ((8 + Buffer.byteLength(json)) % ALIGN)) % ALIGN);
  const headerBytes = Buffer.from(json, 'utf8');
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(headerBytes.length));

  const tmp = `${file}.tmp-${process.pid}`;
  let fd: number | undefined;
  try {
    fd = fs.openSync(tmp, 'w');
    writeFully(fd, length);
    writeFully(fd, headerBytes);
    for (const t of tensors) writeFully(fd, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, file);
  } catch (err) {
    if (fd !== undefined) fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    if (err instanceof FormatError) throw err;
    throw new FormatError('cannot_write', file, describeIoError(err));
  }
}

export interface TensorFile {
  metadata: Record<string, string>;
  tensors: Map<string, NamedTensor>;
}

/** Read a file writeTensorFile wrote (or any safetensors file of F32 tensors). */
export function readTensorFile(file: string): TensorFile {
  checkHost(file);
  const { fd, size } = openForRead(file);
  try {
    if (size < 8) throw new FormatError('truncated', file, `${size} bytes: too short for a tensor file header`);
    const length = Buffer.alloc(8);
    readFully(fd, file, length, 0);
    const headerLength = Number(length.readBigUInt64LE());
    if (8 + headerLength > size) throw new FormatError('truncated', file, `the header needs ${headerLength} bytes, the file has ${size - 8} after its length`);
    const headerBytes = Buffer.alloc(headerLength);
    readFully(fd, file, headerBytes, 8);
    let header: unknown;
    try {
      header = JSON.parse(headerBytes.toString('utf8'));
    } catch (err) {
      throw new FormatError('bad_header', file, `the header is not valid JSON: ${(err as Error).message}`);
    }
    if (typeof header !== 'object' || header === null || Array.isArray(header)) throw new FormatError('bad_header', file, 'the header is not a JSON object');
    const dataStart = 8 + headerLength;
    const out: TensorFile = { metadata: {}, tensors: new Map() };
    for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
      if (name === METADATA) {
        out.metadata = readMetadata(file, entry);
        continue;
      }
      const { shape, begin, end } = readEntry(file, name, entry);
      if (dataStart + end > size) throw new FormatError('truncated', file, `tensor ${name} ends at byte ${dataStart + end}, past the end of the file (${size})`);
      const data = new Float32Array((end - begin) / 4);
      readFully(fd, file, new Uint8Array(data.buffer), dataStart + begin);
      out.tensors.set(name, { name, shape, data });
    }
    return out;
  } finally {
    fs.closeSync(fd);
  }
}

function readMetadata(file: string, entry: unknown): Record<string, string> {
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw new FormatError('bad_header', file, `${METADATA} is not an object`);
  for (const [key, value] of Object.entries(entry)) {
    if (typeof value !== 'string') throw new FormatError('bad_header', file, `${METADATA}.${key} is not a string`);
  }
  return entry as Record<string, string>;
}

function readEntry(file: string, name: string, entry: unknown): { shape: number[]; begin: number; end: number } {
  const bad = (what: string): FormatError => new FormatError('bad_header', file, `tensor ${JSON.stringify(name)}: ${what}`);
  if (typeof entry !== 'object' || entry === null) throw bad('not an object');
  const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;
  if (dtype !== 'F32') throw bad(`dtype ${JSON.stringify(dtype)} (only F32 is supported here)`);
  if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) throw bad('shape is not a list of sizes');
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isInteger(o) && o >= 0)) throw bad('data_offsets is not [begin, end]');
  const [begin, end] = offsets as number[];
  const count = (shape as number[]).reduce((a, b) => a * b, 1);
  if (end - begin !== 4 * count) throw bad(`data_offsets [${begin}, ${end}] do not hold shape [${shape}] of F32`);
  return { shape: shape as number[], begin, end };
}
