/**
 * Progress reporting for long byte-counted jobs (loading a model, writing one with `init`).
 *
 * Three modes, chosen from where stderr goes:
 *   tty   – one line redrawn in place: label, bar, percent, rate (MB/s) and ETA;
 *   lines – a plain line each time another 10% is done (logs, CI, pipes), and one at the end;
 *   none  – nothing (--json: stdout and stderr stay machine-readable).
 */
import type { OutputStream } from './io.js';

export type ProgressMode = 'tty' | 'lines' | 'none';

export interface Progress {
  /** Report `done` of `total` bytes. Cheap to call often: tty redraws are throttled. */
  update(done: number, total: number): void;
  /** Draw the final state and end the line; nothing if update() was never called. Safe to call more than once. */
  finish(): void;
}

/** tty on a terminal, lines otherwise, none for machine-readable output. */
export function progressMode(stream: OutputStream, json: boolean): ProgressMode {
  if (json) return 'none';
  return stream.isTTY ? 'tty' : 'lines';
}

const REDRAW_MS = 100;
const BAR_WIDTH = 24;
/** lines mode: no step lines during the first half second. */
const QUIET_MS = 500;

export function createProgress(
  label: string,
  stream: OutputStream,
  mode: ProgressMode,
  now: () => number = () => performance.now(),
  /** Count these (e.g. "merges") instead of bytes. */
  unit?: string,
): Progress {
  const start = now();
  let done = 0;
  let total = 0;
  let lastDraw = -Infinity;
  let lastTenth = -1; // lines mode: the last 10% step printed
  let started = false;
  let finished = false;

  const line = (): string => {
    const fraction = total > 0 ? Math.min(1, done / total) : 1;
    const seconds = (now() - start) / 1000;
    const rate = seconds > 0 ? done / seconds : 0; // bytes per second
    const eta = rate > 0 && fraction < 1 ? (total - done) / rate : 0;
    const percent = `${String(Math.floor(fraction * 100)).padStart(3)}%`;
    const sizes = unit ? `${done}/${total} ${unit}` : `${formatBytes(done)}/${formatBytes(total)}`;
    const speed = unit ? `${Math.round(rate)} ${unit}/s` : `${(rate / 1e6).toFixed(1)} MB/s`;
    const timing = fraction < 1 ? `ETA ${formatDuration(eta)}` : `in ${formatDuration(seconds)}`;
    if (mode === 'tty') return `${label} ${bar(fraction)} ${percent} ${sizes} ${speed} ${timing}`;
    return `${label}: ${percent.trim()} (${sizes}, ${speed}, ${timing})`;
  };

  return {
    update(d, t) {
      if (finished || mode === 'none') return;
      started = true;
      done = d;
      total = t;
      if (mode === 'tty') {
        const time = now();
        if (time - lastDraw < REDRAW_MS && d < t) return;
        lastDraw = time;
        // \r back to column 0, ESC[K clears what a longer previous line left behind.
        stream.write(`\r${line()}\x1b[K`);
      } else {
        const tenth = t > 0 ? Math.floor((10 * d) / t) : 10;
        // A job done within a second gets only the final line from finish().
        if (tenth <= lastTenth || now() - start < QUIET_MS) return;
        lastTenth = tenth;
        stream.write(`${line()}\n`);
      }
    },
    finish() {
      if (finished || mode === 'none' || !started) return;
      if (mode === 'tty') {
        stream.write(`\r${line()}\x1b[K\n`);
      } else if (lastTenth < 10) {
        stream.write(`${line()}\n`);
      }
      finished = true;
    },
  };
}

export function bar(fraction: number): string {
  const filled = Math.round(fraction * BAR_WIDTH);
  return `[${'#'.repeat(filled)}${'.'.repeat(BAR_WIDTH - filled)}]`;
}

/** 1234567 → "1.2 MB" (decimal units, as the MB/s rate). */
export function formatBytes(bytes: number): string {
  if (bytes < 1e3) return `${bytes} B`;
  if (bytes < 1e6) return `${(bytes / 1e3).toFixed(1)} kB`;
  if (bytes < 1e9) return `${(bytes / 1e6).toFixed(1)} MB`;
  return `${(bytes / 1e9).toFixed(2)} GB`;
}

/** Seconds → "0.4s", "12s", "3m05s". */
export function formatDuration(seconds: number): string {
  if (seconds < 10) return `${seconds.toFixed(1)}s`;
  if (seconds < 60) return `${Math.round(seconds)}s`;
  const m = Math.floor(seconds / 60);
  const s = Math.round(seconds - m * 60);
  return `${m}m${String(s).padStart(2, '0')}s`;
}
