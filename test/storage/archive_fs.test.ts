// The filesystem archive (src/storage/archive_fs.ts): the conformance suite on fresh directories,
// then what only a directory can show — its layout, what a crash mid-put leaves and how the next
// open cleans it, temporary files of live processes left alone, symbolic links that must not let
// the archive read, replace or delete anything outside its directory, and a vanished directory.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { isCofferError, type ErrorCode } from '../../src/errors.js';
import { openFsArchive } from '../../src/storage/archive_fs.js';
import { archiveConformance } from './archive_conformance.js';

const WRITER = fileURLToPath(new URL('./archive_fs_crash_writer.js', import.meta.url));
const roots: string[] = [];
const freshDirectory = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'coffer-archive-fs-'));
  roots.push(d);
  return join(d, 'archive');
};
process.on('exit', () => { for (const d of roots) rmSync(d, { recursive: true, force: true }); });

async function rejectsWith(p: Promise<unknown>, code: ErrorCode): Promise<void> {
  await assert.rejects(p, (e: unknown) => isCofferError(e, code) || assert.fail(`expected ${code}, got ${String(e)}`));
}

async function readAll(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks).toString();
}

archiveConformance('filesystem', { open: (bounds) => openFsArchive({ directory: freshDirectory(), ...bounds }) });

test('layout: one regular file per object, named by the key with ~ for /, mode 0600; refused puts leave no file', async () => {
  const directory = freshDirectory();
  const a = await openFsArchive({ directory, objectBytesMax: 1000 });
  await a.put('cluster-x/backup-y', new TextEncoder().encode('sealed'));
  await rejectsWith(a.put('cluster-x/backup-y', new Uint8Array(3)), 'COFFER_ARCHIVE_EXISTS');
  await rejectsWith(a.put('cluster-x/big', new Uint8Array(1001)), 'COFFER_ARCHIVE_LIMIT');
  await assert.rejects(a.put('cluster-x/broken', Readable.from((async function* () { yield Buffer.alloc(10); await Promise.resolve(); throw new Error('x'); })())));
  assert.deepEqual(readdirSync(directory), ['cluster-x~backup-y']);
  assert.equal(readFileSync(join(directory, 'cluster-x~backup-y'), 'utf8'), 'sealed');
  assert.equal(statSync(join(directory, 'cluster-x~backup-y')).mode & 0o777, 0o600);
  assert.equal(statSync(directory).mode & 0o777, 0o700);
  await a.close();
});

test('a put killed mid-stream leaves no object; list ignores its temporary file and the next open removes it', async () => {
  const directory = freshDirectory();
  (await openFsArchive({ directory })).close().catch(() => undefined);
  const child = spawn(process.execPath, [WRITER, directory, 'c/crashed'], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d: string) => { out += d; if (out.includes('writing')) child.kill('SIGKILL'); });
  const [code, signal] = (await once(child, 'exit')) as [number | null, string | null];
  assert.equal(signal, 'SIGKILL', `the writer was killed mid-put (exit ${String(code)}, said ${JSON.stringify(out)})`);
  const left = readdirSync(directory);
  assert.equal(left.length, 1, 'the temporary file of the killed put is there');
  assert.match(left[0] ?? '', /^\.put-/);
  assert.ok(statSync(join(directory, left[0] ?? '')).size >= 512 * 1024, 'the killed put had written its body');

  const a = await openFsArchive({ directory });
  assert.deepEqual(readdirSync(directory), [], 'open removed the dead process\'s temporary file');
  assert.equal(await a.head('c/crashed'), undefined);
  assert.deepEqual(await a.list(''), []);
  await a.put('c/crashed', new TextEncoder().encode('whole'));
  assert.equal(await readAll(await a.get('c/crashed')), 'whole');
  await a.close();
});

test('open keeps the temporary files of live processes and of open archives in this process', async () => {
  const directory = freshDirectory();
  const live = await openFsArchive({ directory });
  const parentAlive = `.put-${process.ppid}-0123456789abcdef-0000000000000001`;
  const thisProcessClosed = `.put-${process.pid}-fedcba9876543210-0000000000000002`;
  writeFileSync(join(directory, parentAlive), 'in progress elsewhere');
  writeFileSync(join(directory, thisProcessClosed), 'left by a closed instance');
  writeFileSync(join(directory, '.unrelated'), 'not ours');
  // A put of `live` in progress: its temporary file must survive another open in this process.
  let release: () => void = () => undefined;
  const gate = new Promise<void>((resolve) => { release = resolve; });
  const pending = live.put('c/slow', Readable.from((async function* () { yield Buffer.alloc(100, 1); await gate; yield Buffer.alloc(100, 2); })()));
  let ownTemp: string | undefined;
  for (let i = 0; i < 1000 && ownTemp === undefined; i++) {
    ownTemp = readdirSync(directory).find((n) => n.startsWith(`.put-${process.pid}-`) && n !== thisProcessClosed);
    if (ownTemp === undefined) await new Promise((r) => setImmediate(r));
  }
  assert.ok(ownTemp !== undefined, 'the live put has its temporary file');
  const second = await openFsArchive({ directory });
  const names = readdirSync(directory).sort();
  assert.ok(names.includes(parentAlive), 'a live process\'s temporary file is kept');
  assert.ok(names.includes(ownTemp), 'an open instance\'s temporary file is kept');
  assert.ok(!names.includes(thisProcessClosed), 'a closed instance\'s temporary file is removed');
  assert.ok(names.includes('.unrelated'), 'names that are not temporary files are not touched');
  release();
  assert.deepEqual(await pending, { key: 'c/slow', bytes: 200 });
  assert.deepEqual((await second.list('')).map((o) => o.key), ['c/slow']);
  await live.close();
  await second.close();
});

test('a symbolic link in the directory serves, replaces and deletes nothing outside it', async () => {
  const directory = freshDirectory();
  const a = await openFsArchive({ directory });
  const outside = join(directory, '..', 'outside.txt');
  writeFileSync(outside, 'not the archive\'s');
  symlinkSync(outside, join(directory, 'c~link'));
  symlinkSync(join(directory, '..'), join(directory, 'c~dirlink'));
  await rejectsWith(a.get('c/link'), 'COFFER_ARCHIVE_NOT_FOUND');
  await rejectsWith(a.get('c/dirlink'), 'COFFER_ARCHIVE_NOT_FOUND');
  assert.equal(await a.head('c/link'), undefined);
  assert.deepEqual(await a.list(''), []);
  await rejectsWith(a.delete('c/link'), 'COFFER_ARCHIVE_NOT_FOUND');
  await rejectsWith(a.put('c/link', new TextEncoder().encode('replaced')), 'COFFER_ARCHIVE_EXISTS');
  assert.equal(readFileSync(outside, 'utf8'), 'not the archive\'s');
  assert.ok(readdirSync(directory).includes('c~link'));
  await a.close();
});

test('an archive whose directory is gone, or is a file, is unavailable', async () => {
  const directory = freshDirectory();
  const a = await openFsArchive({ directory });
  rmSync(directory, { recursive: true });
  await rejectsWith(a.put('c/x', new Uint8Array(1)), 'COFFER_ARCHIVE_UNAVAILABLE');
  await rejectsWith(a.list(''), 'COFFER_ARCHIVE_UNAVAILABLE');
  await a.close();
  writeFileSync(directory, 'a file');
  await rejectsWith(openFsArchive({ directory }), 'COFFER_ARCHIVE_UNAVAILABLE');
});
