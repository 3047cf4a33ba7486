// Sealed backup and restore benchmark (docs/architecture.md §3, §8; docs/backup-format.md): createBackup and
// restoreBackup of devices holding 1k, 10k and 100k mixed token objects in a sealed store (SQLite,
// sync=full) in a temporary directory — seconds, throughput (blob bytes per second) and peak
// resident memory growth of each — beside the anchor, the full decrypting scan of the same store
// (every record read and decrypted once, nothing else), and the body's sealing (the segmented
// AES-256-GCM stream) beside one-shot AES-256-GCM over the same bytes. Targets: 100k objects
// backed up in ≤ 2 s and restored in ≤ 3 s; a 100k restore grows peak memory by ≤ 64 MiB; peak
// memory of a 100k backup within 64 MiB of a 1k one; sealing ≥ 0.7 × raw GCM. The 100k figures
// are medians of LARGE_ROUNDS rounds (the machine is shared).
//
// Each step runs in a child process (bench/backup_bench_child.ts): backup and restore are
// synchronous, so no timer can sample memory while they run; instead the child reports
// process.resourceUsage().maxRSS at the end and its RSS just before the step (after opening the
// device and a GC). Growth = peak − that baseline. A restore builds the restored device's object
// index as it stages the records, and that index stays resident: the bench also opens the restored
// device in a fresh process (what holding that state costs, and the size of its index's buffers), and
// reports the restore's peak when its last body byte is staged.

import { createCipheriv, randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { AEAD_SEGMENT_BYTES_DEFAULT, AEAD_STREAM_PREFIX_BYTES, SecretBytes, sealStream } from '../src/crypto/index.js';
import { generateAkbkComponents, saveManufacturer, saveOperator } from '../src/factory/ceremony.js';
import { createDevelopmentAuthorities } from '../src/factory/development.js';
import { median, renderMarkdown, type Row, type Section } from './harness.js';

const SIZES = [1_000, 10_000, 100_000] as const;
const LARGE = 100_000;
/** Rounds of backup, restore and their anchors at LARGE objects; the figures are medians. */
const LARGE_ROUNDS = 3;
const CHILD = fileURLToPath(new URL('./backup_bench_child.js', import.meta.url));
const MIB = 1024 * 1024;
const MB = 1e6;
const SEAL_ROUNDS = 15;
const SEAL_WARMUP_ROUNDS = 3;
/** The targets at LARGE objects. */
const BACKUP_TARGET_SECONDS = 2;
const RESTORE_TARGET_SECONDS = 3;
const RESTORE_GROWTH_TARGET_MIB = 64;

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
const growthMiB = (step: Step, peak = 'peakRss'): number => Math.max(0, num(step, peak) - num(step, 'baselineRss')) / MIB;
const label = (n: number): string => (n >= 1000 ? `${n / 1000}k` : String(n));
const verdict = (target: string, met: boolean): string => `${target}: ${met ? 'met' : 'not met'}`;

/** The median round of a figure, over the rounds' steps. */
const med = (steps: readonly Step[], f: (s: Step) => number): number => median(steps.map(f));

interface SizeResult {
  readonly objects: number;
  readonly populateSeconds: number;
  readonly backups: Step[];
  readonly restores: Step[];
  /** The anchor: the full decrypting scan of the source store, and of the restored store. */
  readonly sourceScans: Step[];
  readonly restoredScans: Step[];
  /** The restored device opened in a fresh process (its resident state). */
  readonly opened: Step;
}

/** Copies a closed device (store and secret) to a new name: a fresh restore target per round. */
function copyDevice(dir: string, from: string, to: string): void {
  for (const ext of ['db', 'secret']) copyFileSync(join(dir, `${from}.${ext}`), join(dir, `${to}.${ext}`));
}

/** A source device with `objects` objects and a target device with a little state of its own;
 * `rounds` rounds of backup, restore (into a fresh copy of the target) and the anchors. */
function measureSize(dir: string, objects: number, rounds: number): SizeResult {
  const src = `src-${objects}`;
  const dst = `dst-${objects}`;
  const populated = child(['populate', dir, src, String(objects)]);
  child(['populate', dir, dst, '10']);
  const result: SizeResult = { objects, populateSeconds: num(populated, 'seconds'), backups: [], restores: [], sourceScans: [], restoredScans: [], opened: {} };
  let restored = '';
  for (let r = 0; r < rounds; r++) {
    const blob = join(dir, `${src}-${r}.backup`);
    restored = `${dst}-${r}`;
    copyDevice(dir, dst, restored);
    result.backups.push(child(['backup', dir, src, blob]));
    result.sourceScans.push(child(['scan', dir, src, '-']));
    result.restores.push(child(['restore', dir, restored, blob]));
    result.restoredScans.push(child(['scan', dir, restored, '-']));
    rmSync(blob);
  }
  const opened = child(['open', dir, restored, '-']);
  for (const s of [...result.backups, ...result.restores]) {
    if (num(s, 'objects') !== objects || (s['tokenObjects'] !== undefined && s['tokenObjects'] !== objects)) throw new Error('restore did not bring every object');
  }
  return { ...result, opened };
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

const seconds = (s: Step): number => num(s, 'seconds');

function rowsFor(r: SizeResult): Row[] {
  const n = label(r.objects);
  const large = r.objects === LARGE;
  const mb = num(r.backups[0] ?? {}, 'bytes') / MB;
  const backupS = med(r.backups, seconds);
  const restoreS = med(r.restores, seconds);
  const restoreGrowth = med(r.restores, (s) => growthMiB(s));
  const scan = (steps: Step[]): Pick<Row, 'anchorName' | 'anchorValue'> => ({ anchorName: `full decrypting scan of the same store (${num(steps[0] ?? {}, 'records')} records)`, anchorValue: med(steps, seconds) });
  return [
    { name: `backup, ${n} objects (blob ${mb.toFixed(1)} MB)`, value: backupS, unit: 's', ...scan(r.sourceScans), ...(large ? { target: verdict(`≤ ${BACKUP_TARGET_SECONDS} s`, backupS <= BACKUP_TARGET_SECONDS) } : {}) },
    { name: `backup throughput, ${n}`, value: mb / backupS, unit: 'MB/s' },
    { name: `backup peak RSS growth, ${n}`, value: med(r.backups, (s) => growthMiB(s)), unit: 'MiB' },
    { name: `restore, ${n} objects (checking, staging and indexing, switch)`, value: restoreS, unit: 's', ...scan(r.restoredScans), ...(large ? { target: verdict(`≤ ${RESTORE_TARGET_SECONDS} s`, restoreS <= RESTORE_TARGET_SECONDS) } : {}) },
    { name: `restore throughput, ${n}`, value: mb / restoreS, unit: 'MB/s' },
    { name: `opening the restored device in a fresh process (its object index, what a restore ends with), ${n}`, value: seconds(r.opened), unit: 's', ...scan(r.restoredScans) },
    { name: `object index buffers of the restored device, ${n} (columns, handle table, arena)`, value: num(r.opened, 'indexBytes') / MIB, unit: 'MiB', note: `${(num(r.opened, 'indexBytes') / r.objects).toFixed(0)} B per object` },
    {
      name: `restore peak RSS growth, ${n} (whole step)`, value: restoreGrowth, unit: 'MiB',
      anchorName: 'opening the restored device in a fresh process', anchorValue: growthMiB(r.opened),
      ...(large ? { target: verdict(`≤ ${RESTORE_GROWTH_TARGET_MIB} MiB`, restoreGrowth <= RESTORE_GROWTH_TARGET_MIB) } : {}),
    },
    { name: `restore peak RSS growth, ${n}, up to the last staged record`, value: med(r.restores, (s) => growthMiB(s, 'stagedPeakRss')), unit: 'MiB' },
  ];
}

export async function run(): Promise<Section> {
  const dir = mkdtempSync(join(tmpdir(), 'coffer-backup-bench-'));
  try {
    const authorities = await createDevelopmentAuthorities();
    saveManufacturer(authorities.manufacturer, join(dir, 'factory'));
    saveOperator(authorities.operator, generateAkbkComponents(2), join(dir, 'operator'));
    const results = SIZES.map((n) => measureSize(dir, n, n === LARGE ? LARGE_ROUNDS : 1));
    const rows = results.flatMap(rowsFor);
    const small = results[0];
    const large = results[results.length - 1];
    if (small === undefined || large === undefined) throw new Error('no sizes measured');
    const backupGrowth = (r: SizeResult): number => med(r.backups, (st) => growthMiB(st));
    rows.push({
      name: 'backup peak RSS growth, 100k vs 1k', value: backupGrowth(large), unit: 'MiB',
      anchorName: 'same @1k', anchorValue: backupGrowth(small), target: verdict('≤ 1k figure + 64 MiB', backupGrowth(large) <= backupGrowth(small) + 64),
    });
    // As much plaintext as the 100k backup's blob holds (its header and tags are < 0.1 % of it).
    const plainBytes = num(large.backups[0] ?? {}, 'bytes');
    const seal = sealing(plainBytes);
    rows.push({
      name: `body sealing, sealStream 64 KiB segments (${(plainBytes / MB).toFixed(1)} MB)`, value: seal.stream, unit: 'MiB/s',
      anchorName: 'one-shot AES-256-GCM, same bytes', anchorValue: seal.raw, target: verdict('≥ 0.7 × raw', seal.stream >= 0.7 * seal.raw),
    });
    const populate = results.map((r) => `${label(r.objects)} in ${r.populateSeconds.toFixed(1)} s`).join(', ');
    const spread = (steps: Step[]): string => steps.map((st) => seconds(st).toFixed(2)).join(', ');
    return {
      title: 'Sealed backup and restore',
      rows,
      notes: [
        `Devices populated through a crypto user's session (Session.generateKey/generateKeyPair, one store transaction per key, sync=normal for set-up only): per 10 objects 6 AES-256 keys, 2 256-bit generic secrets, 1 EC P-256 key pair; ${populate}.`,
        'Backup and restore run on a SealedStore with sync=full, 64 KiB segments, to and from a file; restore replaces a target device\'s state (another device of the same manufacturer and operator, a fresh copy each round) and includes building its object index from the staged records.',
        `The 100k figures are medians of ${LARGE_ROUNDS} rounds (backup ${spread(large.backups)} s; restore ${spread(large.restores)} s); 1k and 10k are single rounds.`,
        'Anchor for time: the full decrypting scan of the same store — the source store for a backup, the restored store for a restore — opened in a fresh process, every record read and decrypted once (SealedStore.list), nothing else.',
        'Each step runs in its own child process; peak RSS growth = process.resourceUsage().maxRSS at exit − RSS just before the step (after opening the device and a GC): an upper bound, since a peak while opening the device counts too.',
        'A restore ends holding the restored device\'s object index (built as the records are staged). Anchor for memory: the same restored device opened in a fresh process (peak RSS growth of opening it, from a process with the code loaded). "Up to the last staged record" is the peak when pass 2 has staged the last body byte: checking, staging and indexing, before the switch.',
        'Throughput = blob bytes / seconds.',
      ],
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) process.stdout.write(renderMarkdown([await run()], '# Backup bench (alone)'));
