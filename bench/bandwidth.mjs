/**
 * Measured DRAM read bandwidth per thread count, for the "decode as % of bandwidth" column.
 *
 * bench/bandwidth.c is compiled with the system C compiler into bench/.cache/ on first use (a
 * dev-tool build, not part of SmallMind) and run once per thread count. Without a C compiler
 * the figures are null and the column says n/a.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
const SOURCE = path.join(BENCH_DIR, 'bandwidth.c');
const BINARY = path.join(BENCH_DIR, '.cache', 'bandwidth');

/**
 * { [threads]: { gb_s, buffer_mib, passes } | null, note? } — null (with a note) when the
 * program could not be built or run.
 */
export function measureBandwidth(threadCounts) {
  const built = buildProgram();
  const result = { byThreads: {}, note: built.note };
  for (const threads of threadCounts) {
    result.byThreads[threads] = built.ok ? runProgram(threads) : null;
    if (built.ok && !result.byThreads[threads]) result.note = `bandwidth run failed for ${threads} thread(s)`;
  }
  return result;
}

function buildProgram() {
  const stale = !fs.existsSync(BINARY) || fs.statSync(BINARY).mtimeMs < fs.statSync(SOURCE).mtimeMs;
  if (!stale) return { ok: true };
  fs.mkdirSync(path.dirname(BINARY), { recursive: true });
  const cc = process.env.CC || 'cc';
  const r = spawnSync(cc, ['-O3', '-march=native', '-pthread', '-o', BINARY, SOURCE], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    const why = r.error ? r.error.message : r.stderr.trim().split('\n')[0];
    process.stderr.write(`bench: cannot build ${path.relative(process.cwd(), SOURCE)} with ${cc} (${why}); bandwidth column will be n/a\n`);
    return { ok: false, note: `no bandwidth figure: ${cc} failed (${why})` };
  }
  return { ok: true };
}

function runProgram(threads) {
  const r = spawnSync(BINARY, [String(threads)], { encoding: 'utf8' });
  if (r.status !== 0) {
    process.stderr.write(`bench: ${BINARY} ${threads} failed: ${r.stderr}\n`);
    return null;
  }
  const { gb_s, buffer_mib, passes } = JSON.parse(r.stdout.trim());
  return { gb_s, buffer_mib, passes };
}
