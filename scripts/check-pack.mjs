#!/usr/bin/env node
// The published package's round trip, as a user gets it: `npm pack` this (built) checkout, install
// the tarball into a fresh project (--prefer-offline: from npm's cache where it can; --offline: only
// from it), and run the CLI there: `smallmind doctor --json` and
// `smallmind generate "Once upon a time" -n 8`. The install runs
// the package's `install` script, so the native addon is built as on a user's machine (about a
// minute); --skip-native installs with SMALLMIND_SKIP_NATIVE=1 and checks the wasm fallback.
//
//   node scripts/check-pack.mjs [--skip-native] [--require-native] [--offline] [--keep]
//
// --require-native fails unless the installed addon loads and `auto` picks it; --keep leaves the
// temporary folder (printed) in place. Exits 1 on any failure. Run `npm run build` first.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const flags = new Set(process.argv.slice(2));
/** The temporary folder, once made: removed on the way out unless --keep. */
let tmp;
for (const flag of flags) {
  if (!['--skip-native', '--require-native', '--offline', '--keep'].includes(flag)) fail(`unknown option ${flag}`);
}

function fail(message) {
  console.error(`check-pack: ${message}`);
  cleanUp();
  process.exit(1);
}

function cleanUp() {
  if (!tmp) return;
  if (flags.has('--keep')) console.log(`check-pack: left ${tmp}`);
  else rmSync(tmp, { recursive: true, force: true });
}

/** Run a command, echoing it; its output is returned (and printed when it fails). */
function run(cwd, command, args, env = {}) {
  const started = Date.now();
  console.log(`$ ${[command, ...args].map((a) => (/\s/.test(a) ? JSON.stringify(a) : a)).join(' ')}`);
  const r = spawnSync(command, args, { cwd, encoding: 'utf8', env: { ...process.env, ...env } });
  if (r.status !== 0) fail(`${command} ${args[0]} exited with ${r.status ?? r.signal}\n${r.stdout}${r.stderr}`);
  console.log(`  (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  return r.stdout;
}

for (const file of ['dist/cli/main.js', 'build/kernels-simd.wasm', 'build/kernels-relaxed.wasm']) {
  if (!existsSync(path.join(root, file))) fail(`${file} is missing: run npm run build first`);
}

tmp = mkdtempSync(path.join(os.tmpdir(), 'smallmind-check-pack-'));
try {
  // --ignore-scripts: pack what is built instead of rebuilding everything through `prepare`
  run(root, 'npm', ['pack', '--ignore-scripts', '--pack-destination', tmp]);
  const tarball = readdirSync(tmp).find((f) => f.endsWith('.tgz'));
  if (!tarball) fail(`npm pack wrote no tarball into ${tmp}`);

  const app = path.join(tmp, 'app');
  mkdirSync(app);
  writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'pk-app', private: true, type: 'module' }, null, 2));
  const install = ['install', '--no-audit', '--no-fund', '--foreground-scripts', flags.has('--offline') ? '--offline' : '--prefer-offline', path.join(tmp, tarball)];
  const installed = run(app, 'npm', install, flags.has('--skip-native') ? { SMALLMIND_SKIP_NATIVE: '1' } : {});
  const buildLine = installed.split('\n').find((l) => l.startsWith('build-native:'));
  console.log(`  ${buildLine ?? '(no build-native line: npm did not run the install script)'}`);

  const doctor = JSON.parse(run(app, 'npx', ['smallmind', 'doctor', '--json']));
  console.log(`  native: ${doctor.native.loaded ? `loaded, kernels ${doctor.native.build}` : `not loaded (${doctor.native.error})`}; auto → ${doctor.backend.auto}${doctor.backend.autoReason ? ` (${doctor.backend.autoReason})` : ''}`);
  if (flags.has('--skip-native') && doctor.native.built) fail('SMALLMIND_SKIP_NATIVE=1 was set, yet an addon was built');
  if (flags.has('--require-native') && doctor.backend.auto !== 'native') fail('the installed addon is not what auto picks');

  const text = run(app, 'npx', ['smallmind', 'generate', 'Once upon a time', '-n', '8']);
  console.log(`  generated: ${JSON.stringify(text.trim())}`);
  if (!text.startsWith('Once upon a time') || text.trim().length <= 'Once upon a time'.length) fail('generate printed no continuation');
  console.log('check-pack: ok');
} finally {
  cleanUp();
}
