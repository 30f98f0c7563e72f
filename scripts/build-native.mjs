#!/usr/bin/env node
// Build the native kernels addon (native/, C++ with node-addon-api) with node-gyp into
// build/native/smallmind.node. Run by the package's `install` script, which is what builds it for
// a user installing the published package (npm runs `prepare` only in a checkout), and by
// `npm run build` (so by `prepare` in a checkout, where the addon the `install` step just built is
// then up to date).
//
// The addon is optional: SmallMind runs on its wasm kernels without it. So a failed build never
// fails the install: it prints one line saying why (the compiler's output goes to
// build/native/build.log) and exits 0. --strict makes a failure exit 1 (for CI that wants the
// addon); SMALLMIND_SKIP_NATIVE=1 skips the build. Like build-wasm, an output newer than every
// source is left alone; --force rebuilds.
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const nativeDir = path.join(root, 'native');
const outDir = path.join(root, 'build', 'native');
const output = path.join(outDir, 'smallmind.node');
const log = path.join(outDir, 'build.log');
const strict = process.argv.includes('--strict');
const force = process.argv.includes('--force');

function newestSource() {
  let newest = statSync(fileURLToPath(import.meta.url)).mtimeMs;
  const visit = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const file = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        if (entry.name !== 'build') visit(file);
      } else {
        newest = Math.max(newest, statSync(file).mtimeMs);
      }
    }
  };
  visit(nativeDir);
  return newest;
}

/** node-gyp: the one npm runs lifecycle scripts with, else one on PATH, else the copy inside npm. */
function nodeGyp() {
  const fromNpm = process.env.npm_config_node_gyp;
  if (fromNpm && existsSync(fromNpm)) return [process.execPath, fromNpm];
  const bundled = path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  if (existsSync(bundled)) return [process.execPath, bundled];
  return [process.platform === 'win32' ? 'node-gyp.cmd' : 'node-gyp'];
}

/** Node's own headers when they are installed beside it, so node-gyp need not download them. */
function nodedirArgs() {
  if (process.env.npm_config_nodedir) return [`--nodedir=${process.env.npm_config_nodedir}`];
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  return existsSync(path.join(prefix, 'include', 'node', 'node_api.h')) ? [`--nodedir=${prefix}`] : [];
}

function run(command, args) {
  return new Promise((resolve) => {
    let text = '';
    const child = spawn(command, args, { cwd: nativeDir, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (d) => (text += d));
    child.stderr.on('data', (d) => (text += d));
    child.on('error', (err) => resolve({ ok: false, text: `${text}\n${err.message}`, why: `cannot run ${command} (${err.code ?? err.message})` }));
    child.on('exit', (code) => resolve({ ok: code === 0, text, why: `node-gyp exited with code ${code}` }));
  });
}

/** The most telling line of a failed build's output: a compiler error, a missing tool, else gyp's. */
function firstError(text) {
  const lines = text.split('\n').map((l) => l.trim());
  for (const pattern of [/(fatal )?error: /, /No such file|not found|Errno/, /gyp ERR! (find|configure|build)/]) {
    const hit = lines.find((l) => pattern.test(l));
    if (hit) return hit.slice(0, 200);
  }
  return undefined;
}

if (process.env.SMALLMIND_SKIP_NATIVE) {
  console.log('build-native: skipped (SMALLMIND_SKIP_NATIVE is set); SmallMind will use its wasm kernels');
  process.exit(0);
}
function giveUp(why) {
  console.log(`build-native: native addon not built (${why}); SmallMind will use its wasm kernels`);
  process.exit(strict ? 1 : 0);
}

try {
  if (!existsSync(path.join(nativeDir, 'binding.gyp'))) giveUp(`no ${path.relative(root, path.join(nativeDir, 'binding.gyp'))}`);
  mkdirSync(outDir, { recursive: true });
  if (!force && existsSync(output) && statSync(output).mtimeMs > newestSource()) {
    console.log('build-native: nothing (up to date)');
    process.exit(0);
  }
  // no stale addon: if this build fails, the kernels the TS side expects may not be in the old one
  rmSync(output, { force: true });
  const started = Date.now();
  const [command, ...pre] = nodeGyp();
  const jobs = String(Math.max(1, Math.min(os.availableParallelism(), 8)));
  const result = await run(command, [...pre, 'rebuild', '--release', '-j', jobs, ...nodedirArgs()]);
  writeFileSync(log, result.text);
  const built = path.join(nativeDir, 'build', 'Release', 'smallmind.node');
  if (!result.ok || !existsSync(built)) giveUp(`${firstError(result.text) ?? result.why}; full log: ${path.relative(root, log)}`);
  copyFileSync(built, output);
  console.log(`build-native: ${path.relative(root, output)} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
} catch (err) {
  // anything else (a read-only package folder, a missing native/ source): still never fail the install
  giveUp(err.message);
}
