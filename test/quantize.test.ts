/**
 * smallmind quantize: stories260K's F32 weights requantized to Q8_0 and Q4_0 must be byte for byte
 * the tensors llama-quantize wrote in ../shared/fixtures (same types per tensor, same blocks).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readGGUF, readTensorData, type GGUFFile, type GGUFTensorInfo } from '../src/formats/gguf.js';
import { quantizeModel } from '../src/quantize.js';
import { run } from './helpers/cli.js';
import { shared } from './helpers/vocab.js';

const SOURCE = shared('models/stories260K/stories260K.gguf');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'smallmind-quantize-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function bytesOf(file: GGUFFile, info: GGUFTensorInfo): Uint8Array {
  const out = new Uint8Array(info.byteLength);
  readTensorData(file, info, out);
  return out;
}

describe('quantizeModel', () => {
  it.each(['q8_0', 'q4_0'] as const)('writes %s tensors identical to llama-quantize\'s', (type) => {
    const output = path.join(tmp, `stories260K-${type}.gguf`);
    const progress: number[] = [];
    // the fixtures were made with --output-tensor-type q4_0 / q8_0 (see fixtures/quantization.json)
    const result = quantizeModel({ input: SOURCE, output, type, outputTensorType: type, onProgress: (done) => progress.push(done) });
    expect(result.tensorTypes).toEqual({ [type]: 32, f32: 11, f16: 5 });
    expect(progress.at(-1)).toBe(result.inputBytes);
    const mine = readGGUF(output);
    const reference = readGGUF(shared(`fixtures/stories260K-${type}.gguf`));
    // llama-quantize writes the tensors sorted by name; we keep the source's order.
    expect(mine.tensors.map((t) => t.name).sort()).toEqual(reference.tensors.map((t) => t.name).sort());
    for (const t of reference.tensors) {
      const u = mine.tensor(t.name)!;
      expect([t.name, u.dtype]).toEqual([t.name, t.dtype]);
      expect(Buffer.compare(Buffer.from(bytesOf(mine, u)), Buffer.from(bytesOf(reference, t))), t.name).toBe(0);
    }
    expect(mine.metadata.get('general.file_type')).toBe(type === 'q8_0' ? 7 : 2);
    expect(result.bitsPerWeight).toBeCloseTo((result.outputBytes * 8) / result.parameterCount, 10);
  });

  it('requantizes a quantized model too (decoded to f32 first)', () => {
    const output = path.join(tmp, 'q8-to-f32.gguf');
    const result = quantizeModel({ input: shared('fixtures/stories260K-q8_0.gguf'), output, type: 'f32' });
    expect(result.tensorTypes).toEqual({ f32: 48 });
  });
});

describe('smallmind quantize', () => {
  it('prints a JSON summary and fails clearly on bad input', async () => {
    const output = path.join(tmp, 'cli-q4.gguf');
    const r = await run(['quantize', SOURCE, output, '--type', 'q4_0', '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ output, type: 'q4_0', tensorTypes: { q4_0: 31, q8_0: 1, f32: 11, f16: 5 } }); // output.weight: Q6_K, 64-wide rows → Q8_0
    const badType = await run(['quantize', SOURCE, output, '--type', 'q3_k']);
    expect(badType.code).not.toBe(0);
    expect(badType.stderr).toMatch(/--type/);
    const missing = await run(['quantize', path.join(tmp, 'none.gguf'), output, '--type', 'q8_0']);
    expect(missing.stderr).toMatch(/none\.gguf/);
    const notGguf = path.join(tmp, 'text.gguf');
    fs.writeFileSync(notGguf, 'hello');
    expect((await run(['quantize', notGguf, output, '--type', 'q8_0'])).stderr).toMatch(/text\.gguf/);
  });
});
