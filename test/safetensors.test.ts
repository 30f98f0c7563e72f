/**
 * safetensors: the spec's layout written by hand (no Python package here), our writer's output read
 * back, sharded checkpoints, and corrupt or truncated files failing with errors that name the file
 * and the tensor.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FormatError } from '../src/errors.js';
import {
  openSafetensorsCheckpoint, parseSafetensors, readSafetensors, readSafetensorsData, writeSafetensors, SAFETENSORS_INDEX_FILE,
} from '../src/formats/safetensors.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'smallmind-safetensors-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A file as the spec lays it out: u64 header length, the JSON header, then the data. */
function specFile(header: string, data: Uint8Array): Uint8Array {
  const json = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

const f32Bytes = (values: number[]): Uint8Array => new Uint8Array(new Float32Array(values).buffer);

describe('safetensors', () => {
  it('reads the spec example written by hand (unaligned header: a copy, not a view)', () => {
    const data = new Uint8Array([...f32Bytes([1, 2, 3, 4]), 0x00, 0x3c, 0x00, 0x40]); // F32 [2,2], then F16 [2] = 1, 2
    const header = '{"weight":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"half":{"dtype":"F16","shape":[2],"data_offsets":[16,20]},"__metadata__":{"format":"pt"}}';
    const file = path.join(dir, 'spec.safetensors');
    fs.writeFileSync(file, specFile(header, data));
    const st = readSafetensors(file);
    expect(st.metadata).toEqual({ format: 'pt' });
    expect(st.tensors.map((t) => [t.name, t.dtype, t.shape])).toEqual([['weight', 'F32', [2, 2]], ['half', 'F16', [2]]]);
    expect([...new Float32Array(readSafetensorsData(st.tensors[0]!).slice().buffer)]).toEqual([1, 2, 3, 4]);
    const mem = parseSafetensors(fs.readFileSync(file), file);
    expect([...mem.f32('weight')]).toEqual([1, 2, 3, 4]);
    expect([...mem.bytes('half')]).toEqual([0x00, 0x3c, 0x00, 0x40]);
  });

  it('writes an 8-byte aligned header (space padded) and data that round-trips, with zero-copy views', () => {
    const file = path.join(dir, 'written.safetensors');
    const a = new Float32Array([0.5, -1, 3.25]);
    writeSafetensors(file, [
      { name: 'a', dtype: 'F32', shape: [3], data: new Uint8Array(a.buffer) },
      { name: 'b', dtype: 'BF16', shape: [1, 2], data: () => new Uint8Array([0x80, 0x3f, 0x00, 0xc0]) },
    ], { note: 'hi' });
    const bytes = fs.readFileSync(file);
    const n = Number(bytes.readBigUInt64LE(0));
    expect((8 + n) % 8).toBe(0);
    const header = bytes.subarray(8, 8 + n).toString();
    expect(header.trimEnd().length).toBeGreaterThan(n - 8); // at most 7 bytes of padding, all spaces
    expect(JSON.parse(header).a).toEqual({ dtype: 'F32', shape: [3], data_offsets: [0, 12] });
    const mem = parseSafetensors(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), file);
    expect(mem.metadata).toEqual({ note: 'hi' });
    const view = mem.f32('a');
    expect([...view]).toEqual([0.5, -1, 3.25]);
    expect(view.buffer).toBe(bytes.buffer); // aligned: a view on the file's bytes
    expect(fs.readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });

  it('reads sharded checkpoints through model.safetensors.index.json', () => {
    const shards = path.join(dir, 'sharded');
    fs.mkdirSync(shards);
    writeSafetensors(path.join(shards, 'model-00001-of-00002.safetensors'), [{ name: 'x', dtype: 'F32', shape: [1], data: f32Bytes([7]) }]);
    writeSafetensors(path.join(shards, 'model-00002-of-00002.safetensors'), [{ name: 'y', dtype: 'F32', shape: [2], data: f32Bytes([8, 9]) }]);
    const index = { metadata: {}, weight_map: { x: 'model-00001-of-00002.safetensors', y: 'model-00002-of-00002.safetensors' } };
    fs.writeFileSync(path.join(shards, SAFETENSORS_INDEX_FILE), JSON.stringify(index));
    const ckpt = openSafetensorsCheckpoint(shards);
    expect(ckpt.files).toHaveLength(2);
    expect([...new Float32Array(readSafetensorsData(ckpt.tensors.get('y')!).slice().buffer)]).toEqual([8, 9]);
    fs.writeFileSync(path.join(shards, SAFETENSORS_INDEX_FILE), JSON.stringify({ weight_map: { ...index.weight_map, z: 'model-00001-of-00002.safetensors' } }));
    expect(() => openSafetensorsCheckpoint(shards)).toThrow(/weight_map lists z in model-00001-of-00002.safetensors, which does not hold it/);
    expect(() => openSafetensorsCheckpoint(dir)).toThrow(/no model.safetensors or model.safetensors.index.json/);
  });

  const corrupt: [string, Uint8Array, RegExp][] = [
    ['a file shorter than the length prefix', new Uint8Array(5), /8-byte header length; the file has 5 bytes/],
    ['a header length past the end', specFile('{}', new Uint8Array()).map((b, i) => (i === 0 ? 200 : b)), /header length 200 runs past the end/],
    ['a header that is not JSON', specFile('{"a":', new Uint8Array()), /not valid UTF-8 JSON/],
    ['an unknown dtype', specFile('{"w":{"dtype":"F12","shape":[1],"data_offsets":[0,4]}}', new Uint8Array(4)), /tensor w: dtype "F12" is not one of/],
    ['a negative dimension', specFile('{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}', new Uint8Array(4)), /tensor w: shape \[-1\]/],
    ['offsets that disagree with the shape', specFile('{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}', new Uint8Array(4)), /tensor w: data_offsets \[0,4\] hold 4 bytes; F32 \[2\] needs 8/],
    ['overlapping tensors', specFile('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', new Uint8Array(8)), /tensor b: data_offsets \[4, 8\] overlaps the tensor before it/],
    ['a gap between tensors', specFile('{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', new Uint8Array(8)), /tensor a: .* leaves a gap of 4 bytes/],
    ['a truncated data section', specFile('{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', new Uint8Array(10)), /truncated: the tensors need 16 bytes of data, it has 10/],
    ['metadata that is not strings', specFile('{"__metadata__":{"n":1}}', new Uint8Array()), /__metadata__.n must be a string/],
  ];
  it.each(corrupt)('rejects %s with a FormatError naming the file', (_, bytes, message) => {
    const file = path.join(dir, 'bad.safetensors');
    fs.writeFileSync(file, bytes);
    let error: unknown;
    try {
      readSafetensors(file);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(FormatError);
    expect((error as FormatError).message).toContain(file);
    expect((error as FormatError).message).toMatch(message);
  });
});
