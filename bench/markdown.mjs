/**
 * The benchmark matrix as markdown: the facts a reader needs to trust the numbers (date, CPU,
 * Node, the peer's versions and CPU features, measured bandwidth, settings), then one row per
 * shape × type × threads. run.mjs prints it and, with --markdown FILE, writes it for pasting into
 * docs/PERFORMANCE.md.
 */

const PEER = 'node-llama-cpp';

/** report: the object run.mjs writes to results.json. */
export function markdownReport(report) {
  return `${headerFacts(report).map((line) => `- ${line}`).join('\n')}\n\n${matrixTable(report)}\n`;
}

function headerFacts({ date, machine, peer, bandwidth, settings, smallmind }) {
  const facts = [
    `Date: ${date}`,
    `CPU: ${machine.cpu}, ${machine.cores} cores available, ${machine.platform}` +
      ` (${machine.cpuFlags.avx512 ? 'AVX-512' : 'no AVX-512'}, ${machine.cpuFlags.amxInt8 ? 'amx_int8 reported' : 'no amx_int8 flag'})`,
    `Node: ${machine.node}; SmallMind backend: ${smallmind.backend ?? 'n/a'}` + (smallmind.commit ? `, commit ${smallmind.commit}` : ''),
  ];
  if (peer) {
    facts.push(`Peer: node-llama-cpp ${peer.version}, llama.cpp ${peer.llamaCpp.repo} ${peer.llamaCpp.release} (${peer.buildType} CPU binary, build: "never", gpu: false)`);
    facts.push(`llama.cpp system info: \`${peer.systemInfo}\``);
    facts.push(`AMX int8 tiles (Q8_0/Q4_0 matmuls): ${amxSentence(machine.cpuFlags.amxInt8, /AMX_INT8 = 1/.test(peer.systemInfo))}`);
  }
  const bw = Object.entries(bandwidth.byThreads)
    .map(([t, b]) => (b ? `${b.gb_s.toFixed(1)} GB/s with ${t} thread${t === '1' ? '' : 's'}` : `n/a with ${t} threads`));
  const buffer = Object.values(bandwidth.byThreads).find(Boolean);
  facts.push(`DRAM read bandwidth (bench/bandwidth.c, ${buffer ? `${buffer.buffer_mib} MiB buffer, best of ${buffer.passes} passes` : bandwidth.note}): ${bw.join(', ')}`);
  facts.push(
    `Settings: ${settings.rounds} alternating round(s) per cell, medians; prompt / generated tokens per shape: ` +
      `${Object.entries(settings.tokens_per_shape).map(([s, t]) => `${s} ${t.p}/${t.n}`).join(', ')}; ` +
      `KV cache f16 (both); peer flash attention ${settings.peer_flash_attention}`,
  );
  facts.push(`Command: \`${settings.command}\``);
  facts.push('Ratios are ours / peer (speed: > 1 means SmallMind is faster; RSS: < 1 means SmallMind uses less). ' +
    '% BW = weight bytes read per token × decode tok/s ÷ the bandwidth for that thread count.');
  return facts;
}

function amxSentence(cpuHasAmx, peerUsesAmx) {
  const cpu = cpuHasAmx ? 'the CPU reports amx_int8' : 'the CPU (as this OS sees it) does not report amx_int8';
  const peer = peerUsesAmx ? 'llama.cpp lists AMX_INT8 = 1, so the peer uses them' : 'llama.cpp\'s system info lacks AMX_INT8, so the peer does not use them';
  return `${cpu}; ${peer}`;
}

const COLUMNS = [
  ['model', 'l'], ['type', 'l'], ['weights MB', 'r'], ['thr', 'r'], ['p / n', 'r'],
  ['prefill ours', 'r'], ['prefill peer', 'r'], ['ratio', 'r'],
  ['decode ours', 'r'], ['decode peer', 'r'], ['ratio', 'r'],
  ['% BW ours', 'r'], ['% BW peer', 'r'],
  ['RSS ours MB', 'r'], ['RSS peer MB', 'r'], ['ratio', 'r'],
];

function matrixTable({ results, bandwidth }) {
  const rows = results.map((r) => matrixRow(r, bandwidth.byThreads[r.threads]));
  const head = `| ${COLUMNS.map(([name]) => name).join(' | ')} |`;
  const rule = `|${COLUMNS.map(([, align]) => (align === 'r' ? '--:' : '---')).join('|')}|`;
  return [head, rule, ...rows.map((cells) => `| ${cells.join(' | ')} |`)].join('\n');
}

function matrixRow(r, bw) {
  const lead = [r.shape, r.type, r.weight_bytes ? (r.weight_bytes / 1e6).toFixed(0) : '', String(r.threads), r.p ? `${r.p} / ${r.n}` : ''];
  if (r.na) return [...lead, r.na, ...Array(COLUMNS.length - lead.length - 1).fill('n/a')];
  const ours = r.smallmind;
  const peer = r[PEER];
  const cell = (s, pick, digits) => (s && !s.na ? pick(s).toFixed(digits) : 'n/a');
  const ratio = (pick) => (ours && peer && !ours.na && !peer.na ? `${(pick(ours) / pick(peer)).toFixed(2)}×` : '');
  const percentBw = (s) => (s && !s.na && bw ? ((r.weight_bytes * s.decode_tok_s) / (bw.gb_s * 1e9) * 100).toFixed(0) : 'n/a');
  const speed = (s, key) => cell(s, (x) => x[key], s && !s.na && s[key] >= 100 ? 0 : 1);
  const cells = [
    speed(ours, 'prefill_tok_s'), speed(peer, 'prefill_tok_s'), ratio((s) => s.prefill_tok_s),
    speed(ours, 'decode_tok_s'), speed(peer, 'decode_tok_s'), ratio((s) => s.decode_tok_s),
    percentBw(ours), percentBw(peer),
    cell(ours, (s) => s.peak_rss_mb, 0), cell(peer, (s) => s.peak_rss_mb, 0), ratio((s) => s.peak_rss_mb),
  ];
  // An engine that could not run says why once, in its first cell.
  if (ours?.na) cells[0] = ours.na;
  if (peer?.na) cells[1] = peer.na;
  return [...lead, ...cells];
}
