// `npm run bench`: every performance figure, each beside its anchor measured in the same run,
// written to docs/bench.md. Sections run one after another so they do not compete for the cores.

import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { renderMarkdown, type Section } from './harness.js';

interface BenchModule {
  run(): Promise<Section>;
}

const MODULES: readonly [string, () => Promise<BenchModule>][] = [
  ['hsm', () => import('./hsm_bench.js')],
  ['mechanisms', () => import('./mechanisms_bench.js')],
  ['crypto', () => import('./crypto_bench.js')],
  ['store', () => import('./store_bench.js')],
  ['backup', () => import('./backup_bench.js')],
  ['wire', () => import('./wire_bench.js')],
  ['node', () => import('./node_bench.js')],
  ['sdk', () => import('./sdk_bench.js')],
  ['metrics', () => import('./metrics_bench.js')],
  ['control', () => import('./control_plane_bench.js')],
  ['journal', () => import('./journal_bench.js')],
  ['journal-cluster', () => import('./journal_cluster_bench.js')],
  ['pkcs11', () => import('./p11_bench.js')],
];

async function main(): Promise<void> {
  const only = process.argv.slice(2);
  const sections: Section[] = [];
  for (const [name, load] of MODULES) {
    if (only.length > 0 && !only.includes(name)) continue;
    const started = Date.now();
    process.stderr.write(`bench ${name} …\n`);
    const section = await (await load()).run();
    sections.push(section);
    process.stderr.write(`bench ${name}: ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
  }
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  const header = [
    '# Benchmarks',
    '',
    `One run of \`npm run bench\` on ${new Date().toISOString().slice(0, 10)}: Node ${process.version}, OpenSSL ${process.versions.openssl}, ${cpus().length} × ${cpu}.`,
    'Each figure is the median of several rounds and sits beside its anchor measured in the same run; compare ratios, not absolute numbers, on this shared machine.',
  ].join('\n');
  const md = renderMarkdown(sections, header);
  if (only.length === 0) writeFileSync(new URL('../../docs/bench.md', import.meta.url), md);
  process.stdout.write(md);
}

await main();
