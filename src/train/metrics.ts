/**
 * What a training run reports: metrics as JSON lines (one object per line, appended and written
 * through at once, so a crash loses nothing already logged), the loss curve as a self-contained
 * SVG, and the progress display (a redrawn bar on a terminal, nanoGPT-style lines otherwise,
 * the metrics objects themselves with --json).
 */
import fs from 'node:fs';
import { FormatError } from '../errors.js';
import { describeIoError, writeFileAtomic } from '../formats/file.js';
import type { OutputStream } from '../cli/io.js';
import { bar, formatDuration } from '../cli/progress.js';

/** One line of metrics.jsonl. A training step has `loss`; an evaluation has `train_loss` and `val_loss`. */
export interface MetricsRecord {
  /** The optimizer step: the number of steps taken before this one (nanoGPT's iter_num). */
  step: number;
  /** This step's training loss (the mean over its micro-batches). */
  loss?: number;
  /** Evaluation: the mean loss over eval_iters batches of each split. */
  train_loss?: number;
  val_loss?: number;
  lr?: number;
  /** Global gradient norm before clipping. */
  grad_norm?: number;
  tokens_per_s?: number;
  /** Training tokens consumed so far. */
  tokens?: number;
  /** Seconds since the run (or the resumed run) started. */
  elapsed_s?: number;
}

const NUMBER_FIELDS = ['loss', 'train_loss', 'val_loss', 'lr', 'grad_norm', 'tokens_per_s', 'tokens', 'elapsed_s'] as const;

/** Appends records to a metrics.jsonl file. */
export class MetricsWriter {
  private fd: number | undefined;

  constructor(readonly path: string) {
    try {
      this.fd = fs.openSync(path, 'a');
    } catch (err) {
      throw new FormatError('cannot_write', path, describeIoError(err));
    }
  }

  write(record: MetricsRecord): void {
    if (this.fd === undefined) throw new FormatError('closed', this.path, 'the metrics file is closed');
    // writeSync goes straight to the file: every line is on disk (in the OS's cache) when write returns.
    fs.writeSync(this.fd, `${JSON.stringify(record)}\n`);
  }

  close(): void {
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
  }
}

/** The records of a metrics.jsonl file; a bad line is an error naming its number. A missing file has none. */
export function readMetrics(path: string): MetricsRecord[] {
  let text: string;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new FormatError('cannot_open', path, describeIoError(err));
  }
  const records: MetricsRecord[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (err) {
      throw new FormatError('bad_jsonl', path, `line ${i + 1}: not valid JSON: ${(err as Error).message}`);
    }
    const record = value as Record<string, unknown>;
    if (typeof value !== 'object' || value === null || !Number.isInteger(record.step)) throw new FormatError('bad_jsonl', path, `line ${i + 1}: expected an object with an integer "step"`);
    for (const key of NUMBER_FIELDS) {
      // JSON has no NaN: a diverged loss is written as null, and read back as NaN.
      if (record[key] === null) record[key] = NaN;
      else if (record[key] !== undefined && typeof record[key] !== 'number') throw new FormatError('bad_jsonl', path, `line ${i + 1}: "${key}" is not a number`);
    }
    records.push(record as unknown as MetricsRecord);
  });
  return records;
}

/**
 * Drop the records of step `fromStep` and later (atomically), before a resumed run from that step
 * writes them again: the file then reads as if the run had never stopped.
 */
export function truncateMetrics(path: string, fromStep: number): void {
  if (!fs.existsSync(path)) return;
  const kept = readMetrics(path).filter((r) => r.step < fromStep);
  writeFileAtomic(path, kept.map((r) => `${JSON.stringify(r)}\n`).join(''));
}

// ---------------------------------------------------------------------------------------------
// Loss curve

interface Series {
  label: string;
  color: string;
  points: [x: number, y: number][];
  /** Draw a dot at each point (sparse series: evaluations). */
  dots: boolean;
}

const WIDTH = 720;
const HEIGHT = 420;
const MARGIN = { left: 64, right: 20, top: 40, bottom: 48 };
/** A per-step series longer than this is averaged over consecutive steps to this many points. */
const MAX_POINTS = 1000;

/** Round, readable tick values within [lo, hi]: steps of 1, 2 or 5 times a power of ten, about `target` intervals. */
export function niceTicks(lo: number, hi: number, target = 6): number[] {
  if (!(hi > lo)) return [lo];
  const range = hi - lo;
  const power = 10 ** Math.floor(Math.log10(range / target));
  const intervals = (s: number): number => Math.abs(range / s - target);
  const step = [1, 2, 5, 10].map((m) => m * power).reduce((best, s) => (intervals(s) < intervals(best) ? s : best));
  const ticks: number[] = [];
  for (let i = Math.ceil(lo / step); i * step <= hi + step * 1e-9; i++) ticks.push(Number((i * step).toPrecision(12)));
  return ticks;
}

function formatTick(value: number): string {
  const abs = Math.abs(value);
  if (abs >= 1e6 && value % 1e5 === 0) return `${value / 1e6}M`;
  if (abs >= 1e4 && value % 100 === 0) return `${value / 1e3}k`;
  return String(Number(value.toPrecision(6)));
}

/** Average consecutive points down to at most `max` (keeps a noisy per-step curve readable and the file small). */
function downsample(points: [number, number][], max: number): [number, number][] {
  if (points.length <= max) return points;
  const per = Math.ceil(points.length / max);
  const out: [number, number][] = [];
  for (let i = 0; i < points.length; i += per) {
    const group = points.slice(i, i + per);
    out.push([group.reduce((s, p) => s + p[0], 0) / group.length, group.reduce((s, p) => s + p[1], 0) / group.length]);
  }
  return out;
}

function escapeXml(text: string): string {
  return text.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
}

function seriesOf(records: readonly MetricsRecord[]): Series[] {
  const pick = (key: 'loss' | 'train_loss' | 'val_loss'): [number, number][] =>
    records.filter((r) => Number.isFinite(r[key])).map((r) => [r.step, r[key]!]);
  const all: Series[] = [
    { label: 'train loss', color: '#9ab8d8', points: downsample(pick('loss'), MAX_POINTS), dots: false },
    { label: 'train loss (eval)', color: '#1f5fa8', points: pick('train_loss'), dots: true },
    { label: 'val loss', color: '#d9631e', points: pick('val_loss'), dots: true },
  ];
  return all.filter((s) => s.points.length > 0);
}

/** The loss curves of these records as an SVG document: train (per step and evaluated) and validation loss against the step. */
export function lossCurveSvg(records: readonly MetricsRecord[], title = 'loss'): string {
  const series = seriesOf(records);
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = series.flatMap((s) => s.points.map((p) => p[1]));
  const xTicks = niceTicks(0, Math.max(1, ...xs));
  const yLo = ys.length > 0 ? Math.min(...ys) : 0;
  const yHi = ys.length > 0 ? Math.max(...ys) : 1;
  const pad = (yHi - yLo) * 0.05 || 0.5;
  let yTicks = niceTicks(yLo - pad, yHi + pad);
  const yMin = Math.min(yTicks[0], yLo - pad);
  const yMax = Math.max(yTicks[yTicks.length - 1], yHi + pad);
  yTicks = yTicks.filter((t) => t >= yMin && t <= yMax);
  const xMax = xTicks[xTicks.length - 1];

  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const px = (x: number): number => MARGIN.left + (x / xMax) * plotW;
  const py = (y: number): number => MARGIN.top + (1 - (y - yMin) / (yMax - yMin)) * plotH;
  const f = (v: number): string => v.toFixed(1);

  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="#ffffff"/>`,
    `<text x="${WIDTH / 2}" y="24" text-anchor="middle" font-size="15">${escapeXml(title)}</text>`,
  ];
  for (const t of xTicks) {
    parts.push(`<line x1="${f(px(t))}" y1="${MARGIN.top}" x2="${f(px(t))}" y2="${MARGIN.top + plotH}" stroke="#e4e4e4"/>`);
    parts.push(`<text x="${f(px(t))}" y="${MARGIN.top + plotH + 18}" text-anchor="middle" fill="#333">${formatTick(t)}</text>`);
  }
  for (const t of yTicks) {
    parts.push(`<line x1="${MARGIN.left}" y1="${f(py(t))}" x2="${MARGIN.left + plotW}" y2="${f(py(t))}" stroke="#e4e4e4"/>`);
    parts.push(`<text x="${MARGIN.left - 8}" y="${f(py(t) + 4)}" text-anchor="end" fill="#333">${formatTick(t)}</text>`);
  }
  parts.push(`<rect x="${MARGIN.left}" y="${MARGIN.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#444"/>`);
  parts.push(`<text x="${MARGIN.left + plotW / 2}" y="${HEIGHT - 10}" text-anchor="middle">step</text>`);
  parts.push(`<text transform="translate(16 ${MARGIN.top + plotH / 2}) rotate(-90)" text-anchor="middle">loss</text>`);
  for (const s of series) {
    const path = s.points.map((p) => `${f(px(p[0]))},${f(py(p[1]))}`).join(' ');
    parts.push(`<polyline fill="none" stroke="${s.color}" stroke-width="${s.dots ? 2 : 1.2}" points="${path}"/>`);
    if (s.dots) for (const p of s.points) parts.push(`<circle cx="${f(px(p[0]))}" cy="${f(py(p[1]))}" r="2.8" fill="${s.color}"/>`);
  }
  series.forEach((s, i) => {
    const y = MARGIN.top + 14 + i * 18;
    const x = MARGIN.left + plotW - 150;
    parts.push(`<line x1="${x}" y1="${y}" x2="${x + 22}" y2="${y}" stroke="${s.color}" stroke-width="3"/>`);
    parts.push(`<text x="${x + 28}" y="${y + 4}" fill="#222">${escapeXml(s.label)}</text>`);
  });
  if (series.length === 0) parts.push(`<text x="${MARGIN.left + plotW / 2}" y="${MARGIN.top + plotH / 2}" text-anchor="middle" fill="#888">no data yet</text>`);
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

/** Write the loss curve of these records to `path` (an .svg), atomically. */
export function writeLossCurve(path: string, records: readonly MetricsRecord[], title?: string): void {
  writeFileAtomic(path, lossCurveSvg(records, title));
}

// ---------------------------------------------------------------------------------------------
// Progress display

/** tty: one redrawn line; lines: a line per record (nanoGPT's wording); json: the records as JSON lines; none: nothing. */
export type TrainProgressMode = 'tty' | 'lines' | 'json' | 'none';

export function trainProgressMode(stream: OutputStream, json: boolean): TrainProgressMode {
  if (json) return 'json';
  return stream.isTTY ? 'tty' : 'lines';
}

export interface TrainProgress {
  /** Show a record (a step's or an evaluation's). */
  update(record: MetricsRecord): void;
  /** A message on its own line ("saved checkpoint ..."), without breaking the bar. */
  note(text: string): void;
  /** End the bar's line. */
  finish(): void;
}

function formatLr(lr: number): string {
  return lr.toExponential(2);
}

/** A plain line for one record: "step 250: train loss 2.0100, val loss 2.0500" or "step 12: loss 3.1234, lr 1.20e-4, grad norm 0.812, 5120 tok/s". */
export function formatRecordLine(r: MetricsRecord): string {
  if (r.val_loss !== undefined || r.train_loss !== undefined) {
    const parts = [r.train_loss !== undefined ? `train loss ${r.train_loss.toFixed(4)}` : '', r.val_loss !== undefined ? `val loss ${r.val_loss.toFixed(4)}` : ''];
    return `step ${r.step}: ${parts.filter(Boolean).join(', ')}`;
  }
  const parts: string[] = [];
  if (r.loss !== undefined) parts.push(`loss ${r.loss.toFixed(4)}`);
  if (r.lr !== undefined) parts.push(`lr ${formatLr(r.lr)}`);
  if (r.grad_norm !== undefined) parts.push(`grad norm ${r.grad_norm.toPrecision(3)}`);
  if (r.tokens_per_s !== undefined) parts.push(`${Math.round(r.tokens_per_s)} tok/s`);
  return `step ${r.step}: ${parts.join(', ')}`;
}

export interface TrainProgressOptions {
  /** The run's last step (max_iters). */
  maxIters: number;
  /** The step this process started at (0, or where a resumed run continues): the ETA counts from here. */
  startStep: number;
  now?: () => number;
}

const REDRAW_MS = 100;

export function createTrainProgress(stream: OutputStream, mode: TrainProgressMode, opts: TrainProgressOptions): TrainProgress {
  const now = opts.now ?? (() => performance.now());
  const start = now();
  let lastLoss: number | undefined;
  let lastVal: number | undefined;
  let lastLine = '';
  let lastDraw = -Infinity;

  const ttyLine = (r: MetricsRecord): string => {
    const fraction = opts.maxIters > 0 ? Math.min(1, r.step / opts.maxIters) : 1;
    const done = r.step - opts.startStep;
    const seconds = (now() - start) / 1000;
    const eta = done > 0 ? ((opts.maxIters - r.step) * seconds) / done : NaN;
    const parts = [`step ${r.step}/${opts.maxIters}`, bar(fraction), `${String(Math.floor(fraction * 100)).padStart(3)}%`];
    if (lastLoss !== undefined) parts.push(`loss ${lastLoss.toFixed(4)}`);
    if (lastVal !== undefined) parts.push(`val ${lastVal.toFixed(4)}`);
    if (r.tokens_per_s !== undefined) parts.push(`${Math.round(r.tokens_per_s)} tok/s`);
    parts.push(Number.isFinite(eta) ? `ETA ${formatDuration(eta)}` : 'ETA --');
    return parts.join(' ');
  };

  return {
    update(r) {
      if (r.loss !== undefined) lastLoss = r.loss;
      if (r.val_loss !== undefined) lastVal = r.val_loss;
      if (mode === 'none') return;
      if (mode === 'json') {
        stream.write(`${JSON.stringify(r)}\n`);
        return;
      }
      if (mode === 'lines') {
        stream.write(`${formatRecordLine(r)}\n`);
        return;
      }
      const evaluation = r.val_loss !== undefined;
      lastLine = ttyLine(r);
      const time = now();
      if (evaluation) {
        // Evaluations stay on screen as their own line, as in nanoGPT's log.
        stream.write(`\r${formatRecordLine(r)}\x1b[K\n${lastLine}\x1b[K`);
      } else if (time - lastDraw >= REDRAW_MS || r.step >= opts.maxIters) {
        stream.write(`\r${lastLine}\x1b[K`);
      } else {
        return;
      }
      lastDraw = time;
    },
    note(text) {
      if (mode === 'none' || mode === 'json') return;
      if (mode === 'lines') stream.write(`${text}\n`);
      else stream.write(`\r${text}\x1b[K\n${lastLine}\x1b[K`);
    },
    finish() {
      if (mode === 'tty' && lastLine !== '') stream.write(`\r${lastLine}\x1b[K\n`);
      lastLine = '';
    },
  };
}
