/** What the bench scripts share: the median they report, how they stop on bad input, and installing their peers. */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));

export function median(values) {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Print `bench: message` and exit with status 2 (bad options or a missing build). */
export function die(message) {
  console.error(`bench: ${message}`);
  process.exit(2);
}

/**
 * Install bench/package.json's dependencies (the peers: node-llama-cpp, tfjs) into bench/node_modules
 * when `packageName` is not there yet, i.e. on a first run. npm's output goes to stderr so that
 * `--json` output on stdout stays clean.
 */
export function ensureBenchPackage(packageName, note = '') {
  if (fs.existsSync(path.join(BENCH_DIR, 'node_modules', ...packageName.split('/'), 'package.json'))) return;
  console.error(`bench: installing ${packageName} into bench/node_modules (first run${note ? `; ${note}` : ''})`);
  const r = spawnSync('npm', ['install', '--prefix', BENCH_DIR, '--no-audit', '--no-fund'], { stdio: ['ignore', process.stderr, 'inherit'] });
  if (r.status !== 0) die('npm install --prefix bench failed');
}
