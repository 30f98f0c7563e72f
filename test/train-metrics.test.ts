/**
 * Metrics (src/train/metrics.ts): the JSONL file written, read back, truncated for a resume; the
 * loss-curve SVG's structure; the progress display in its four modes.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FormatError } from '../src/errors.js';
import {
  MetricsWriter,
  createTrainProgress,
  formatRecordLine,
  lossCurveSvg,
  niceTicks,
  readMetrics,
  trainProgressMode,
  truncateMetrics,
  writeLossCurve,
  type MetricsRecord,
} from '../src/train/metrics.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'smallmind-metrics-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A loss curve like a real run's: a decaying training loss with noise, evaluations every 50 steps. */
function run(steps: number): MetricsRecord[] {
  const records: MetricsRecord[] = [];
  for (let step = 0; step < steps; step++) {
    if (step % 50 === 0) records.push({ step, train_loss: 1.5 + 2.7 * Math.exp(-step / 60), val_loss: 1.7 + 2.5 * Math.exp(-step / 70) });
    records.push({ step, loss: 1.5 + 2.7 * Math.exp(-step / 60) + 0.1 * Math.sin(step * 1.7), lr: 1e-3, grad_norm: 0.5, tokens_per_s: 5000, tokens: (step + 1) * 768 });
  }
  return records;
}

describe('metrics.jsonl', () => {
  it('appends records line by line, reads them back, and truncates from a step', () => {
    const file = path.join(tmp, 'metrics.jsonl');
    const writer = new MetricsWriter(file);
    const records = run(120);
    for (const r of records) writer.write(r);
    // Each line is in the file as soon as write returns.
    expect(fs.readFileSync(file, 'utf8').split('\n').length - 1).toBe(records.length);
    writer.close();
    expect(readMetrics(file)).toEqual(records);
    truncateMetrics(file, 100);
    expect(readMetrics(file)).toEqual(records.filter((r) => r.step < 100));
    // A resumed run appends after the kept lines.
    const again = new MetricsWriter(file);
    again.write({ step: 100, loss: NaN });
    again.close();
    const back = readMetrics(file);
    expect(back[back.length - 1].step).toBe(100);
    expect(back[back.length - 1].loss).toBeNaN(); // written as null: JSON has no NaN
    expect(readMetrics(path.join(tmp, 'none.jsonl'))).toEqual([]);
  });

  it('names a bad line', () => {
    const file = path.join(tmp, 'bad.jsonl');
    fs.writeFileSync(file, '{"step": 0, "loss": 4.2}\n{"step": 1, "loss": "high"}\n');
    expect(() => readMetrics(file)).toThrow(FormatError);
    expect(() => readMetrics(file)).toThrow(/bad\.jsonl: line 2: "loss" is not a number/);
    fs.writeFileSync(file, '{"loss": 4.2}\n');
    expect(() => readMetrics(file)).toThrow(/line 1: expected an object with an integer "step"/);
    expect(() => new MetricsWriter(path.join(tmp, 'missing-folder', 'm.jsonl'))).toThrow(/missing-folder.*no such file/);
  });
});

describe('loss curve', () => {
  it('ticks are round numbers covering the range', () => {
    expect(niceTicks(0, 2000)).toEqual([0, 500, 1000, 1500, 2000]);
    expect(niceTicks(1.35, 4.4)).toEqual([1.5, 2, 2.5, 3, 3.5, 4]);
    expect(niceTicks(0, 1)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(niceTicks(3, 3)).toEqual([3]);
  });

  it('draws train, evaluated train and val loss with axes, ticks and a legend, as a standalone SVG', () => {
    const svg = lossCurveSvg(run(2001), 'shakespeare-char');
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg" width="720" height="420"')).toBe(true);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    expect(svg).toContain('>shakespeare-char</text>');
    for (const label of ['train loss', 'train loss (eval)', 'val loss', 'step', 'loss']) expect(svg).toContain(`>${label}</text>`);
    for (const tick of ['0', '500', '1000', '1500', '2000', '2', '3', '4']) expect(svg).toContain(`>${tick}</text>`);
    const polylines = [...svg.matchAll(/<polyline [^>]*points="([^"]*)"/g)].map((m) => m[1].split(' ').length);
    // 2001 per-step losses averaged in groups of 3 (at most 1000 points); 41 evaluations each.
    expect(polylines).toEqual([667, 41, 41]);
    expect(svg.match(/<circle /g)?.length).toBe(82);
    expect(svg).not.toMatch(/NaN|undefined|<script/);
    // Diverged (NaN) losses are left out of the curve.
    expect(lossCurveSvg([{ step: 0, loss: 4 }, { step: 1, loss: NaN }, { step: 2, loss: 3 }])).not.toContain('NaN');
    expect(lossCurveSvg([])).toContain('no data yet');
    expect(lossCurveSvg([], 'a < b & c')).toContain('a &lt; b &amp; c');
  });

  it('writes the file atomically', () => {
    const file = path.join(tmp, 'loss.svg');
    writeLossCurve(file, run(300));
    expect(fs.readFileSync(file, 'utf8')).toBe(lossCurveSvg(run(300)));
    expect(fs.readdirSync(tmp).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });
});

describe('progress display', () => {
  function sink(isTTY = false): { text: string; write(s: string): void; isTTY: boolean } {
    return { text: '', isTTY, write(s: string) { this.text += s; } };
  }
  const step = (n: number, loss: number): MetricsRecord => ({ step: n, loss, lr: 1e-3, grad_norm: 0.8123, tokens_per_s: 5120.4 });

  it("prints nanoGPT-style lines when not on a terminal", () => {
    expect(formatRecordLine(step(12, 3.12345))).toBe('step 12: loss 3.1235, lr 1.00e-3, grad norm 0.812, 5120 tok/s');
    expect(formatRecordLine({ step: 250, train_loss: 2.01, val_loss: 2.05 })).toBe('step 250: train loss 2.0100, val loss 2.0500');
    const out = sink();
    const progress = createTrainProgress(out, trainProgressMode(out, false), { maxIters: 100, startStep: 0 });
    progress.update(step(0, 4.2));
    progress.note('saved checkpoint out/checkpoint-0');
    progress.finish();
    expect(out.text).toBe('step 0: loss 4.2000, lr 1.00e-3, grad norm 0.812, 5120 tok/s\nsaved checkpoint out/checkpoint-0\n');
  });

  it('redraws one line with bar, loss, val loss, tok/s and ETA on a terminal', () => {
    let clock = 0;
    const out = sink(true);
    const progress = createTrainProgress(out, trainProgressMode(out, false), { maxIters: 100, startStep: 50, now: () => clock });
    clock = 10_000; // 10 s for 10 steps: 1 s per step, 40 steps to go
    progress.update(step(60, 2.5));
    expect(out.text).toBe('\rstep 60/100 [##############..........]  60% loss 2.5000 5120 tok/s ETA 40s\x1b[K');
    clock = 10_050; // within 100 ms: not redrawn
    progress.update(step(61, 2.4));
    expect(out.text.split('\r').length).toBe(2);
    clock = 11_000;
    progress.update({ step: 62, train_loss: 2.3, val_loss: 2.35 });
    expect(out.text).toContain('\rstep 62: train loss 2.3000, val loss 2.3500\x1b[K\nstep 62/100 ');
    expect(out.text.endsWith('loss 2.4000 val 2.3500 ETA 35s\x1b[K')).toBe(true); // 11 s for 12 steps, 38 to go
    progress.finish();
    expect(out.text.endsWith('\n')).toBe(true);
  });

  it('writes the records as JSON lines with --json', () => {
    const out = sink(true);
    const progress = createTrainProgress(out, trainProgressMode(out, true), { maxIters: 10, startStep: 0 });
    progress.update(step(1, 3));
    progress.note('ignored');
    progress.finish();
    expect(out.text).toBe(`${JSON.stringify(step(1, 3))}\n`);
  });
});
