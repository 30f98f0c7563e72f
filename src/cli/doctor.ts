/**
 * `smallmind doctor`: what this machine offers SmallMind and what it will use — Node, the CPU and
 * its vector features, the native addon (built? loaded? which kernel build?), the wasm kernels
 * (relaxed SIMD or not), threads, and the backend `auto` picks. Always exits 0: it reports
 * problems, it does not fail on them.
 */
import fs from 'node:fs';
import os from 'node:os';
import { Command } from 'commander';
import { autoBackend, resolveBackend } from '../backend/index.js';
import { loadNative, type CpuInfo } from '../backend/native/addon.js';
import { chooseVariant, relaxedSupported } from '../backend/wasm/module.js';
import type { CliIO } from './io.js';
import { jsonOption } from './options.js';

type Feature = keyof CpuInfo['features'];
const FEATURES: readonly Feature[] = [
  'avx2', 'fma', 'f16c', 'avx512f', 'avx512bw', 'avx512vl', 'avx512dq', 'avx512_vnni', 'avx_vnni', 'amx_tile', 'amx_int8', 'amx_bf16', 'neon',
  'asimddp', 'fphp',
];

export interface DoctorReport {
  node: string;
  platform: string;
  arch: string;
  cpu: {
    model: string;
    /** Where `features` came from: the addon's cpuid, Linux's /proc/cpuinfo, or nowhere. */
    featureSource: 'cpuid' | '/proc/cpuinfo' | 'unknown';
    features: Partial<Record<Feature, boolean>>;
  };
  native: {
    path: string;
    built: boolean;
    loaded: boolean;
    error: string | null;
    /** Kernel builds this CPU runs, worst to best. */
    builds: string[];
    /** The build the native backend uses (SMALLMIND_NATIVE_BUILD, else the best). */
    build: string | null;
  };
  wasm: { relaxedSimd: boolean; variant: string | null; error: string | null };
  threads: number;
  backend: { auto: string; autoReason: string | null; env: string | null; selected: string | null; error: string | null };
}

/** Linux names the same features in /proc/cpuinfo (arm64 calls NEON asimd; asimddp and fphp are its own names). */
function featuresFromProc(): Partial<Record<Feature, boolean>> | undefined {
  let text: string;
  try {
    text = fs.readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    return undefined;
  }
  const line = text.split('\n').find((l) => /^(flags|Features)\s*:/.test(l));
  if (!line) return undefined;
  const flags = new Set(line.split(':')[1]!.trim().split(/\s+/));
  return Object.fromEntries(FEATURES.map((f) => [f, flags.has(f === 'neon' ? 'asimd' : f)]));
}

export function doctorReport(): DoctorReport {
  const native = loadNative();
  let features = native.cpu?.features as Partial<Record<Feature, boolean>> | undefined;
  let featureSource: DoctorReport['cpu']['featureSource'] = features ? 'cpuid' : 'unknown';
  if (!features) {
    features = featuresFromProc();
    if (features) featureSource = '/proc/cpuinfo';
  }
  const wasm: DoctorReport['wasm'] = { relaxedSimd: false, variant: null, error: null };
  try {
    wasm.relaxedSimd = relaxedSupported();
    wasm.variant = chooseVariant(undefined);
  } catch (err) {
    wasm.error = (err as Error).message;
  }
  const auto = autoBackend();
  const backend: DoctorReport['backend'] = { auto: auto.name, autoReason: auto.reason ?? null, env: process.env['SMALLMIND_BACKEND'] ?? null, selected: null, error: null };
  try {
    backend.selected = resolveBackend(undefined).name;
  } catch (err) {
    backend.error = (err as Error).message;
  }
  const builds = native.builds.map((b) => b.name);
  const wantedBuild = process.env['SMALLMIND_NATIVE_BUILD'];
  return {
    node: process.version,
    platform: process.platform,
    arch: process.arch,
    cpu: { model: native.cpu?.brand || os.cpus()[0]?.model || 'unknown', featureSource, features: features ?? {} },
    native: {
      path: native.path,
      built: native.built,
      loaded: native.loaded,
      error: native.error ?? null,
      builds,
      build: native.loaded ? (wantedBuild && wantedBuild !== 'auto' ? wantedBuild : (native.best ?? null)) : null,
    },
    wasm,
    threads: os.availableParallelism(),
    backend,
  };
}

function formatReport(r: DoctorReport): string {
  const have = FEATURES.filter((f) => r.cpu.features[f]);
  const lack = FEATURES.filter((f) => r.cpu.features[f] === false);
  const native = r.native.loaded
    ? `loaded ${r.native.path}: kernels ${r.native.build} (this CPU runs: ${r.native.builds.join(', ')})`
    : `${r.native.built ? 'failed to load' : 'not built'}: ${r.native.path}${r.native.error && r.native.built ? ` (${r.native.error})` : ''}`;
  const wasm = r.wasm.error
    ? `error: ${r.wasm.error}`
    : `kernels-${r.wasm.variant}.wasm (relaxed SIMD ${r.wasm.relaxedSimd ? 'available' : 'not available: Node >= 22, or node --experimental-wasm-relaxed-simd'})`;
  const env = r.backend.env ? `, SMALLMIND_BACKEND=${r.backend.env} → ${r.backend.selected ?? `error: ${r.backend.error}`}` : '';
  const rows: [string, string][] = [
    ['node', `${r.node} (${r.platform} ${r.arch})`],
    ['cpu', r.cpu.model],
    ['features', r.cpu.featureSource === 'unknown' ? 'unknown' : `${have.join(' ') || 'none of interest'}${lack.length ? `  (not: ${lack.join(' ')})` : ''}  [${r.cpu.featureSource}]`],
    ['native', native],
    ['wasm', wasm],
    ['threads', `${r.threads} (default -t)`],
    ['backend', `auto → ${r.backend.auto}${r.backend.autoReason ? ` (${r.backend.autoReason})` : ''}${env}`],
  ];
  return rows.map(([k, v]) => `${k.padEnd(9)} ${v}\n`).join('');
}

export function doctorCommand(io: CliIO): Command {
  return new Command('doctor')
    .description('report the CPU features, native addon, wasm kernels and the backend SmallMind will use')
    .addOption(jsonOption())
    .action((flags: { json?: boolean }) => {
      const report = doctorReport();
      io.stdout.write(flags.json ? `${JSON.stringify(report)}\n` : formatReport(report));
    });
}
