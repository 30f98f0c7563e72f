#!/usr/bin/env node
// Compile the AssemblyScript kernels (assembly/) into two modules from the one source:
//   build/kernels-simd.wasm     SIMD128
//   build/kernels-relaxed.wasm  SIMD128 + relaxed SIMD (fused multiply-add, i8 dot products)
// Both import one shared memory (env.memory, up to 65536 pages = 4 GiB) and have no runtime and
// no static data, so every thread can instantiate them on the same memory.
//
// The two compiles run as parallel child processes (each is mostly single-threaded Binaryen
// optimisation). Outputs newer than every source are left alone; --force rebuilds.
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, statSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const sourceDir = path.join(root, 'assembly');
const buildDir = path.join(root, 'build');
const ascBin = path.join(path.dirname(createRequire(import.meta.url).resolve('assemblyscript/package.json')), 'bin', 'asc.js');

const common = [
  'assembly/index.ts',
  '-O3',
  '--runtime', 'stub',
  '--importMemory',
  '--sharedMemory',
  '--initialMemory', '1',
  '--maximumMemory', '65536',
  '--noExportMemory',
  '--noAssert',
  '--enable', 'simd',
  '--enable', 'threads',
];

const variants = [
  { name: 'simd', args: [] },
  { name: 'relaxed', args: ['--enable', 'relaxed-simd'] },
];

function newestSource() {
  let newest = statSync(fileURLToPath(import.meta.url)).mtimeMs;
  for (const file of readdirSync(sourceDir)) newest = Math.max(newest, statSync(path.join(sourceDir, file)).mtimeMs);
  return newest;
}

function compile(variant, output) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [ascBin, ...common, ...variant.args, '-o', output], { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`asc (${variant.name}) exited with code ${code}`))));
  });
}

const force = process.argv.includes('--force');
mkdirSync(buildDir, { recursive: true });
const sourcesTime = newestSource();
const started = Date.now();
const jobs = [];
for (const variant of variants) {
  const output = path.join(buildDir, `kernels-${variant.name}.wasm`);
  if (!force && existsSync(output) && statSync(output).mtimeMs > sourcesTime) continue;
  jobs.push(compile(variant, output).then(() => output));
}
try {
  const built = await Promise.all(jobs);
  const what = built.length ? built.map((f) => path.relative(root, f)).join(', ') : 'nothing (up to date)';
  console.log(`build-wasm: ${what} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
} catch (err) {
  console.error(`build-wasm: ${err.message}`);
  process.exit(1);
}
