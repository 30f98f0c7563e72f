/**
 * safetensors (Hugging Face's tensor file format), read and written.
 *
 *   8 bytes      N, the header length (u64 little-endian)
 *   N bytes      a UTF-8 JSON object: name -> {"dtype", "shape", "data_offsets": [begin, end]},
 *                plus an optional "__metadata__" object of string -> string; the writer pads it
 *                with spaces so that the data starts at a multiple of 8
 *   the data     every tensor's bytes, row-major little-endian, offsets relative to the data start;
 *                the tensors cover it exactly, with no gaps or overlaps
 *
 * The header is checked field by field (as the reference Rust library checks it) and every error
 * names the file and the tensor. Tensor data stays on disk until asked for, and is then read
 * straight into the caller's buffer (e.g. backend memory); `parseSafetensors` over bytes already
 * in memory gives zero-copy typed views where a tensor is aligned.
 *
 * A sharded checkpoint is model.safetensors.index.json ({"weight_map": name -> shard file}) beside
 * its shards; `openSafetensorsCheckpoint` reads either layout from a folder.
 */
import fs from 'node:fs';
import path from 'node:path';
import { FormatError } from '../errors.js';
import { openForRead, readFully, writeFileAtomicWith, writeFully } from './file.js';
import { readJsonFile } from './tokenizer-json.js';

/** Element types and their sizes in bytes (F8 types: one byte). */
export const SAFETENSORS_DTYPES = {
  BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1, I16: 2, U16: 2, F16: 2, BF16: 2, I32: 4, U32: 4, F32: 4, F64: 8, I64: 8, U64: 8,
} as const;
export type SafetensorsDType = keyof typeof SAFETENSORS_DTYPES;

export interface SafetensorsTensorInfo {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  /** The file holding the data. */
  file: string;
  /** ABSOLUTE byte offset of the data in the file. */
  offset: number;
  byteLength: number;
}

export interface SafetensorsFile {
  path: string;
  fileSize: number;
  /** Absolute offset of the data section: 8 + the header length. */
  dataOffset: number;
  /** The header's __metadata__ (empty when it has none). */
  metadata: Record<string, string>;
  /** In file order (by offset). */
  tensors: SafetensorsTensorInfo[];
}

/** The header is JSON held in memory: refuse absurd lengths (the Rust library's limit) before reading it. */
const MAX_HEADER_BYTES = 100_000_000;

/** Read a safetensors file's header; the tensor data stays on disk. */
export function readSafetensors(file: string): SafetensorsFile {
  const { fd, size } = openForRead(file);
  try {
    if (size < 8) throw new FormatError('truncated', file, `a safetensors file starts with an 8-byte header length; the file has ${size} bytes`);
    const lengthBytes = new Uint8Array(8);
    readFully(fd, file, lengthBytes, 0);
    const headerLength = checkHeaderLength(file, lengthBytes, size);
    const header = new Uint8Array(headerLength);
    readFully(fd, file, header, 8);
    return parseHeader(file, header, size);
  } finally {
    fs.closeSync(fd);
  }
}

function checkHeaderLength(file: string, lengthBytes: Uint8Array, size: number): number {
  const n = new DataView(lengthBytes.buffer, lengthBytes.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) throw new FormatError('bad_header', file, `header length ${n} is over the ${MAX_HEADER_BYTES}-byte limit (not a safetensors file?)`);
  if (Number(n) > size - 8) throw new FormatError('truncated', file, `header length ${n} runs past the end of the file (${size} bytes)`);
  return Number(n);
}

/** Check the header JSON and lay the tensors out in a file of `fileSize` bytes. */
function parseHeader(file: string, header: Uint8Array, fileSize: number): SafetensorsFile {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(header));
  } catch (err) {
    throw new FormatError('bad_header', file, `the header is not valid UTF-8 JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new FormatError('bad_header', file, 'the header is not a JSON object');
  const dataOffset = 8 + header.byteLength;
  const dataSize = fileSize - dataOffset;
  let metadata: Record<string, string> = {};
  const tensors: SafetensorsTensorInfo[] = [];
  for (const [name, entry] of Object.entries(json)) {
    if (name === '__metadata__') metadata = checkMetadata(file, entry);
    else tensors.push(checkEntry(file, name, entry, dataOffset));
  }
  // The tensors must tile the data exactly: sorted by offset, each starts where the last ended.
  tensors.sort((a, b) => a.offset - b.offset || a.byteLength - b.byteLength);
  let end = dataOffset;
  for (const t of tensors) {
    if (t.offset !== end) {
      const what = t.offset < end ? 'overlaps the tensor before it' : `leaves a gap of ${t.offset - end} bytes before it`;
      throw new FormatError('bad_offsets', file, `tensor ${t.name}: data_offsets [${t.offset - dataOffset}, ${t.offset - dataOffset + t.byteLength}] ${what}`);
    }
    end += t.byteLength;
  }
  if (end - dataOffset !== dataSize) {
    const problem = end - dataOffset > dataSize ? `the file is truncated: the tensors need ${end - dataOffset} bytes of data, it has ${dataSize}` : `${dataSize - (end - dataOffset)} bytes after the last tensor belong to none`;
    throw new FormatError(end - dataOffset > dataSize ? 'truncated' : 'bad_offsets', file, problem);
  }
  return { path: file, fileSize, dataOffset, metadata, tensors };
}

function checkMetadata(file: string, value: unknown): Record<string, string> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new FormatError('bad_header', file, '__metadata__ must be an object of strings');
  for (const [key, v] of Object.entries(value)) {
    if (typeof v !== 'string') throw new FormatError('bad_header', file, `__metadata__.${key} must be a string, got ${JSON.stringify(v)}`);
  }
  return value as Record<string, string>;
}

function checkEntry(file: string, name: string, entry: unknown, dataOffset: number): SafetensorsTensorInfo {
  const bad = (what: string): FormatError => new FormatError('bad_header', file, `tensor ${name}: ${what}`);
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw bad('its entry must be an object with dtype, shape and data_offsets');
  const { dtype, shape, data_offsets: offsets, ...rest } = entry as Record<string, unknown>;
  const extra = Object.keys(rest);
  if (extra.length) throw bad(`unknown field ${extra[0]}`);
  if (typeof dtype !== 'string' || !Object.hasOwn(SAFETENSORS_DTYPES, dtype)) {
    throw bad(`dtype ${JSON.stringify(dtype)} is not one of ${Object.keys(SAFETENSORS_DTYPES).join(', ')}`);
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw bad(`shape ${JSON.stringify(shape)} must be an array of non-negative integers`);
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) || offsets[0] > offsets[1]) {
    throw bad(`data_offsets ${JSON.stringify(offsets)} must be [begin, end] with 0 ≤ begin ≤ end`);
  }
  const type = dtype as SafetensorsDType;
  const count = (shape as number[]).reduce((a, b) => a * b, 1);
  const byteLength = count * SAFETENSORS_DTYPES[type];
  if (offsets[1] - offsets[0] !== byteLength) {
    throw bad(`data_offsets [${offsets}] hold ${offsets[1] - offsets[0]} bytes; ${dtype} [${shape}] needs ${byteLength}`);
  }
  return { name, dtype: type, shape: shape as number[], file, offset: dataOffset + offsets[0], byteLength };
}

/** Read a tensor's bytes into `dest` (its exact size; e.g. backend memory), or a new buffer. */
export function readSafetensorsData(info: SafetensorsTensorInfo, dest: Uint8Array<ArrayBufferLike> = new Uint8Array(info.byteLength)): Uint8Array<ArrayBufferLike> {
  if (dest.byteLength !== info.byteLength) {
    throw new FormatError('bad_buffer', info.file, `tensor ${info.name} has ${info.byteLength} bytes, the buffer ${dest.byteLength}`);
  }
  const { fd } = openForRead(info.file);
  try {
    readFully(fd, info.file, dest, info.offset);
  } finally {
    fs.closeSync(fd);
  }
  return dest;
}

/** A safetensors file already in memory: its header, and each tensor's bytes as a view (no copy). */
export interface SafetensorsBuffer extends SafetensorsFile {
  bytes(name: string): Uint8Array;
  /** F32 data as a Float32Array: a view on the buffer when 4-byte aligned, else a copy. */
  f32(name: string): Float32Array;
}

export function parseSafetensors(data: Uint8Array, name = '<buffer>'): SafetensorsBuffer {
  if (data.byteLength < 8) throw new FormatError('truncated', name, `a safetensors file starts with an 8-byte header length; got ${data.byteLength} bytes`);
  const headerLength = checkHeaderLength(name, data.subarray(0, 8), data.byteLength);
  const file = parseHeader(name, data.subarray(8, 8 + headerLength), data.byteLength);
  const byName = new Map(file.tensors.map((t) => [t.name, t]));
  const bytes = (tensor: string): Uint8Array => {
    const t = byName.get(tensor);
    if (!t) throw new FormatError('missing_tensor', name, `no tensor ${tensor}`);
    return data.subarray(t.offset, t.offset + t.byteLength);
  };
  const f32 = (tensor: string): Float32Array => {
    const t = byName.get(tensor);
    if (t && t.dtype !== 'F32') throw new FormatError('bad_dtype', name, `tensor ${tensor} is ${t.dtype}, not F32`);
    const b = bytes(tensor);
    if (b.byteOffset % 4 === 0) return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
    return new Float32Array(new Uint8Array(b).buffer); // unaligned: a copy
  };
  return { ...file, bytes, f32 };
}

export interface SafetensorsWriteTensor {
  name: string;
  dtype: SafetensorsDType;
  shape: readonly number[];
  /** The bytes, or a function producing them when the writer reaches this tensor (one in memory at a time). */
  data: Uint8Array | (() => Uint8Array);
}

/** The header bytes (length prefix included) for these tensors, padded with spaces to a multiple of 8. */
export function encodeSafetensorsHeader(tensors: readonly SafetensorsWriteTensor[], metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = Object.create(null);
  if (metadata && Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  for (const t of tensors) {
    if (t.name === '__metadata__' || Object.hasOwn(header, t.name)) throw new FormatError('bad_tensor', t.name, 'duplicate or reserved tensor name');
    const bytes = t.shape.reduce((a, b) => a * b, 1) * SAFETENSORS_DTYPES[t.dtype];
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.byteLength / 8) * 8; // 8 + padded is a multiple of 8
  const out = new Uint8Array(8 + padded).fill(0x20);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  return out;
}

/** Write a safetensors file atomically (temp file + rename), streaming one tensor at a time. */
export function writeSafetensors(file: string, tensors: readonly SafetensorsWriteTensor[], metadata?: Record<string, string>): void {
  const header = encodeSafetensorsHeader(tensors, metadata);
  writeFileAtomicWith(file, (fd) => {
    writeFully(fd, header);
    for (const t of tensors) {
      const data = typeof t.data === 'function' ? t.data() : t.data;
      const want = t.shape.reduce((a, b) => a * b, 1) * SAFETENSORS_DTYPES[t.dtype];
      if (data.byteLength !== want) throw new FormatError('bad_tensor', file, `tensor ${t.name}: ${t.dtype} [${t.shape}] needs ${want} bytes, got ${data.byteLength}`);
      writeFully(fd, data);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Checkpoint folders: model.safetensors, or shards listed by model.safetensors.index.json

export const SAFETENSORS_FILE = 'model.safetensors';
export const SAFETENSORS_INDEX_FILE = 'model.safetensors.index.json';

export interface SafetensorsCheckpoint {
  /** The shard files, in the order first met. */
  files: SafetensorsFile[];
  tensors: Map<string, SafetensorsTensorInfo>;
  totalBytes: number;
}

/** The tensors of a checkpoint folder (single file or sharded), each name found once. */
export function openSafetensorsCheckpoint(dir: string): SafetensorsCheckpoint {
  const single = path.join(dir, SAFETENSORS_FILE);
  const index = path.join(dir, SAFETENSORS_INDEX_FILE);
  let shardNames: string[];
  let weightMap: Map<string, string> | undefined;
  if (fs.existsSync(index)) {
    weightMap = readWeightMap(index);
    shardNames = [...new Set(weightMap.values())];
  } else if (fs.existsSync(single)) {
    shardNames = [SAFETENSORS_FILE];
  } else {
    throw new FormatError('missing_weights', dir, `no ${SAFETENSORS_FILE} or ${SAFETENSORS_INDEX_FILE} in this folder`);
  }
  const files = shardNames.map((name) => readSafetensors(path.join(dir, name)));
  const tensors = new Map<string, SafetensorsTensorInfo>();
  for (const f of files) {
    for (const t of f.tensors) {
      const other = tensors.get(t.name);
      if (other) throw new FormatError('duplicate_tensor', t.file, `tensor ${t.name} is also in ${other.file}`);
      if (weightMap && path.join(dir, weightMap.get(t.name) ?? '') !== t.file) {
        throw new FormatError('bad_index', index, `tensor ${t.name} is in ${path.basename(t.file)}, the weight_map says ${weightMap.get(t.name) ?? 'nothing'}`);
      }
      tensors.set(t.name, t);
    }
  }
  for (const [name, shard] of weightMap ?? []) {
    if (!tensors.has(name)) throw new FormatError('bad_index', index, `weight_map lists ${name} in ${shard}, which does not hold it`);
  }
  return { files, tensors, totalBytes: files.reduce((sum, f) => sum + f.fileSize, 0) };
}

function readWeightMap(index: string): Map<string, string> {
  const json = readJsonFile(index);
  const map = (json as { weight_map?: unknown } | null)?.weight_map;
  if (typeof map !== 'object' || map === null || Array.isArray(map)) throw new FormatError('bad_index', index, 'weight_map must be an object of tensor name -> shard file');
  const out = new Map<string, string>();
  for (const [name, shard] of Object.entries(map)) {
    if (typeof shard !== 'string' || shard.includes('/') || shard.includes('\\') || shard.startsWith('.')) {
      throw new FormatError('bad_index', index, `weight_map.${name} must be a file name in this folder, got ${JSON.stringify(shard)}`);
    }
    out.set(name, shard);
  }
  return out;
}
