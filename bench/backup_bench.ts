// Sealed backup and restore benchmark (docs/architecture.md §3, §8; docs/backup-format.md): createBackup and
// restoreBackup of devices holding 1k, 10k and 100k mixed token objects in a sealed store (SQLite,
// sync=full) in a temporary directory — seconds, throughput (blob bytes per second) and peak
// resident memory growth of each — and the body's sealing (the segmented AES-256-GCM stream)
// beside one-shot AES-256-GCM over the same bytes. Issue targets: restore of 100k objects < 10 s;
// peak memory of a 100k backup within 64 MiB of a 1k one; sealing ≥ 0.7 × raw GCM.
//
// Each backup and restore runs in a child process (bench/backup_bench_child.ts): both are
// synchronous, so no timer can sample memory while they run; instead the child reports
// process.resourceUsage().maxRSS at the end and its RSS just before the step (after opening the
// device and a GC). Growth = peak − that baseline. Opening a device loads its object table, so a
// peak reached while opening counts against the step: the growth figures are upper bounds.

import { createCipheriv, randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { AEAD_SEGMENT_BYTES_DEFAULT, AEAD_STREAM_PREFIX_BYTES, SecretBytes, sealStream } from '../src/crypto/index.js';
import { generateAkbkComponents, saveManufacturer, saveOperator } from '../src/factory/ceremony.js';
import { createDevelopmentAuthorities } from '../src/factory/development.js';
import { median, renderMarkdown, type Row, type Section } from './harness.js';

const SIZES = [1_000, 10_000, 100_000] as const;
const CHILD = fileURLToPath(new URL('./backup_bench_child.js', import.meta.url));
const MIB = 1024 * 1024;
const MB = 1e6;
const SEAL_ROUNDS = 15;
const SEAL_WARMUP_ROUNDS = 3;

type Step = Record<string, number>;

/** Runs one step in a fresh node (with --expose-gc, for a settled baseline) and returns its JSON line. */
function child(args: readonly string[]): Step {
  const r = spawnSync(process.execPath, ['--expose-gc', CHILD, ...args], { encoding: 'utf8', maxBuffer: 1024 * 1024 });
  if (r.status !== 0) throw new Error(`backup bench step ${args.join(' ')} failed: ${r.stderr}`);
  const line = r.stdout.trim().split('\n').pop() ?? '';
  return JSON.parse(line) as Step;
}

const num = (step: Step, key: string): number => {
  const v = step[key];
  if (typeof v !== 'number') throw new Error(`bench step lacks ${key}`);
  return v;
};
const growthMiB = (step: Step): number => Math.max(0, num(step, 'peakRss') - num(step, 'baselineRss')) / MIB;
const label = (n: number): string => (n >= 1000 ? `${n / 1000}k` : String(n));

interface SizeResult {
  readonly objects: number;
  readonly populateSeconds: number;
  readonly backup: Step;
  readonly restore: Step;
}

/** A source device with `objects` objects and a target device with a little state of its own. */
function measureSize(dir: string, objects: number): SizeResult {
  const src = `src-${objects}`;
  const dst = `dst-${objects}`;
  const blob = join(dir, `${src}.backup`);
  const populated = child(['populate', dir, src, String(objects)]);
  child(['populate', dir, dst, '10']);
  const backup = child(['backup', dir, src, blob]);
  const restore = child(['restore', dir, dst, blob]);
  if (num(backup, 'objects') !== objects || num(restore, 'tokenObjects') !== objects) throw new Error('restore did not bring every object');
  return { objects, populateSeconds: num(populated, 'seconds'), backup, restore };
}

/** Median MiB/s of sealStream (64 KiB segments) and of one-shot GCM over the same bytes, interleaved. */
function sealing(plainBytes: number): { stream: number; raw: number } {
  const data = randomBytes(plainBytes);
  const key = randomBytes(32);
  const prefix = randomBytes(AEAD_STREAM_PREFIX_BYTES);
  const aad = randomBytes(32);
  const time = (fn: () => void): number => {
    const start = performance.now();
    fn();
    return (performance.now() - start) / 1000;
  };
  const secret = SecretBytes.copyOf(key); // imported into OpenSSL once per call, as the anchor's key is
  const stream = (): void => void sealStream(secret, prefix, aad, data, AEAD_SEGMENT_BYTES_DEFAULT);
  const raw = (): void => {
    const c = createCipheriv('aes-256-gcm', key, randomBytes(12));
    c.setAAD(aad);
    c.update(data);
    c.final();
    c.getAuthTag();
  };
  for (let i = 0; i < SEAL_WARMUP_ROUNDS; i++) {
    stream();
    raw();
  }
  const s: number[] = [];
  const r: number[] = [];
  for (let i = 0; i < SEAL_ROUNDS; i++) {
    if (i % 2 === 0) {
      r.push(time(raw));
      s.push(time(stream));
    } else {
      s.push(time(stream));
      r.push(time(raw));
    }
  }
  return { stream: plainBytes / MIB / median(s), raw: plainBytes / MIB / median(r) };
}

function rowsFor(r: SizeResult): Row[] {
  const n = label(r.objects);
  const mb = num(r.backup, 'bytes') / MB;
  return [
    { name: `backup, ${n} objects (blob ${mb.toFixed(1)} MB)`, value: num(r.backup, 'seconds'), unit: 's' },
    { name: `backup throughput, ${n}`, value: mb / num(r.backup, 'seconds'), unit: 'MB/s' },
    { name: `backup peak RSS growth, ${n}`, value: growthMiB(r.backup), unit: 'MiB' },
    { name: `restore, ${n} objects`, value: num(r.restore, 'seconds'), unit: 's', ...(r.objects === 100_000 ? { target: '< 10 s' } : {}) },
    { name: `restore throughput, ${n}`, value: mb / num(r.restore, 'seconds'), unit: 'MB/s' },
    { name: `restore peak RSS growth, ${n}`, value: growthMiB(r.restore), unit: 'MiB' },
  ];
}

export async function run(): Promise<Section> {
  const dir = mkdtempSync(join(tmpdir(), 'coffer-backup-bench-'));
  try {
    const authorities = await createDevelopmentAuthorities();
    saveManufacturer(authorities.manufacturer, join(dir, 'factory'));
    saveOperator(authorities.operator, generateAkbkComponents(2), join(dir, 'operator'));
    const results = SIZES.map((n) => measureSize(dir, n));
    const rows = results.flatMap(rowsFor);
    const small = results[0];
    const large = results[results.length - 1];
    if (small === undefined || large === undefined) throw new Error('no sizes measured');
    rows.push({
      name: 'backup peak RSS growth, 100k vs 1k', value: growthMiB(large.backup), unit: 'MiB',
      anchorName: 'same @1k', anchorValue: growthMiB(small.backup), target: '≤ 1k figure + 64 MiB',
    });
    // As much plaintext as the 100k backup's blob holds (its header and tags are < 0.1 % of it).
    const plainBytes = num(large.backup, 'bytes');
    const seal = sealing(plainBytes);
    rows.push({
      name: `body sealing, sealStream 64 KiB segments (${(plainBytes / MB).toFixed(1)} MB)`, value: seal.stream, unit: 'MiB/s',
      anchorName: 'one-shot AES-256-GCM, same bytes', anchorValue: seal.raw, target: '≥ 0.7 × raw',
    });
    const populate = results.map((r) => `${label(r.objects)} in ${r.populateSeconds.toFixed(1)} s`).join(', ');
    return {
      title: 'Sealed backup and restore',
      rows,
      notes: [
        `Devices populated through a crypto user's session (Session.generateKey/generateKeyPair, one store transaction per key, sync=normal for set-up only): per 10 objects 6 AES-256 keys, 2 256-bit generic secrets, 1 EC P-256 key pair; ${populate}.`,
        'Backup and restore run on a SealedStore with sync=full, 64 KiB segments, to and from a file; restore replaces a target device\'s state (another device of the same manufacturer and operator) and includes reloading its object table.',
        'Each backup and restore runs in its own child process; peak RSS growth = process.resourceUsage().maxRSS at exit − RSS just before the step (after opening the device and a GC): an upper bound, since a peak while opening the device counts too.',
        'Throughput = blob bytes / seconds.',
      ],
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) process.stdout.write(renderMarkdown([await run()], '# Backup bench (alone)'));
