/**
 * The published package: what `npm pack` puts in the tarball (prebuilt dist/ and wasm kernels,
 * the native sources and the script that builds them at install time, the embedded model; no
 * tests, benchmarks, TypeScript sources or locally built binaries), and that the install-time
 * native build never fails an install. The full round trip (pack, install into a fresh project,
 * run the CLI there) is scripts/check-pack.mjs: it takes a minute, too long for the suite.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const manifest = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));

interface PackResult {
  size: number;
  unpackedSize: number;
  files: { path: string; size: number }[];
}

describe('npm pack', () => {
  let pack: PackResult;
  let files: string[];
  beforeAll(() => {
    // --ignore-scripts: list what the checkout holds now instead of running `prepare` (the full build)
    const r = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    pack = JSON.parse(r.stdout)[0];
    files = pack.files.map((f) => f.path);
  });

  it('ships the built JavaScript, both wasm kernel builds and the embedded model', () => {
    for (const file of ['package.json', 'README.md', 'LICENSE', 'dist/index.js', 'dist/index.d.ts', 'dist/cli/main.js', 'build/kernels-simd.wasm', 'build/kernels-relaxed.wasm']) {
      expect(files).toContain(file);
    }
    expect(files.filter((f) => f.startsWith('models/') && f.endsWith('.gguf')).length).toBeGreaterThan(0);
  });

  it('ships every native source, binding.gyp and the build script, so the install can build the addon', () => {
    const sources = fs.readdirSync(path.join(root, 'native', 'src')).map((f) => `native/src/${f}`);
    expect(sources.length).toBeGreaterThan(0);
    for (const file of ['native/binding.gyp', 'scripts/build-native.mjs', ...sources]) expect(files).toContain(file);
  });

  it('leaves out tests, benchmarks, sources of the build outputs, CI and locally built binaries', () => {
    const excluded = /^(test|bench|src|assembly|\.ci|native\/build|build\/native|node_modules)\//;
    expect(files.filter((f) => excluded.test(f))).toEqual([]);
    expect(files.filter((f) => f.startsWith('scripts/'))).toEqual(['scripts/build-native.mjs']);
    // the embedded model is about 1.2 MB of it
    expect(pack.size).toBeLessThan(4 * 2 ** 20);
    expect(pack.unpackedSize).toBeLessThan(10 * 2 ** 20);
  });

  it('builds the addon at install time with what a registry install has', () => {
    expect(manifest.scripts.install).toBe('node scripts/build-native.mjs');
    // binding.gyp reads node-addon-api's headers: a dependency, not a devDependency
    expect(manifest.dependencies['node-addon-api']).toBeDefined();
    expect(manifest.devDependencies['node-addon-api']).toBeUndefined();
    // the build script itself imports only Node's own modules
    const script = fs.readFileSync(path.join(root, 'scripts', 'build-native.mjs'), 'utf8');
    const imports = [...script.matchAll(/^import .* from '([^']+)';$/gm)].map((m) => m[1]);
    expect(imports.length).toBeGreaterThan(0);
    expect(imports.filter((name) => !name!.startsWith('node:'))).toEqual([]);
  });
});

describe('the install-time native build', () => {
  // a copy of the package layout in a temporary folder: the checkout's own addon is never touched
  let pkg: string;
  beforeAll(() => {
    pkg = fs.mkdtempSync(path.join(os.tmpdir(), 'smallmind-pack-'));
    fs.mkdirSync(path.join(pkg, 'scripts'));
    fs.copyFileSync(path.join(root, 'scripts', 'build-native.mjs'), path.join(pkg, 'scripts', 'build-native.mjs'));
  });
  afterAll(() => fs.rmSync(pkg, { recursive: true, force: true }));

  const build = (...args: string[]) =>
    spawnSync(process.execPath, [path.join(pkg, 'scripts', 'build-native.mjs'), ...args], {
      cwd: pkg,
      encoding: 'utf8',
      // node-addon-api from this checkout, as a registry install has it in its node_modules
      env: { ...process.env, NODE_PATH: path.join(root, 'node_modules'), SMALLMIND_SKIP_NATIVE: '' },
    });
  const addon = () => path.join(pkg, 'build', 'native', 'smallmind.node');

  it('exits 0 with one line saying why when there is nothing to build (1 with --strict)', () => {
    const r = build();
    expect(r.status).toBe(0);
    expect(r.stdout).toBe('build-native: native addon not built (no native/binding.gyp); SmallMind will use its wasm kernels\n');
    expect(build('--strict').status).toBe(1);
  });

  it('exits 0 when the compiler fails, leaving no addon behind', () => {
    fs.mkdirSync(path.join(pkg, 'native', 'src'), { recursive: true });
    fs.copyFileSync(path.join(root, 'native', 'binding.gyp'), path.join(pkg, 'native', 'binding.gyp'));
    for (const file of fs.readdirSync(path.join(root, 'native', 'src'))) {
      fs.writeFileSync(path.join(pkg, 'native', 'src', file), '#error deliberately broken\n');
    }
    fs.mkdirSync(path.dirname(addon()), { recursive: true });
    fs.writeFileSync(addon(), 'a stale addon');
    fs.utimesSync(addon(), 0, 0); // older than the sources: rebuilt, not up to date
    const r = build();
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^build-native: native addon not built \(.+; full log: build\/native\/build\.log\); SmallMind will use its wasm kernels\n$/);
    expect(fs.existsSync(addon())).toBe(false);
  });
});
