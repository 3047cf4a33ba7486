// The plain file source (src/hsm/backup/file_source.ts) that the node restores spooled uploads from
// and the CLI reads backups with: exact positioned reads, its own FileSourceError (no caller's code)
// for a path that cannot be opened or is not a regular file, a FIFO refused without waiting, a file
// that shrinks under it refused as truncated, and close that may be called twice.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isCofferError } from '../../../src/errors.js';
import { FileSourceError, fileSource } from '../../../src/hsm/backup/file_source.js';
import { throwsCode } from '../../helpers.js';

const DIR = mkdtempSync(join(tmpdir(), 'coffer-file-source-'));
after(() => rmSync(DIR, { recursive: true, force: true }));

function refusedFor(path: string, reason: string): void {
  assert.throws(() => fileSource(path), (e) => e instanceof FileSourceError && !isCofferError(e) && e.reason === reason, reason);
}

test('reads exactly the bytes asked for, at any offset; close twice is fine', () => {
  const path = join(DIR, 'bytes');
  const bytes = new Uint8Array(70_000).map((_, i) => (i * 7) & 0xff);
  writeFileSync(path, bytes);
  const source = fileSource(path);
  assert.equal(source.length, bytes.length);
  assert.deepEqual(source.read(0, 12), bytes.subarray(0, 12));
  assert.deepEqual(source.read(65_530, 4470), bytes.subarray(65_530));
  assert.deepEqual(source.read(5, 0), new Uint8Array(0));
  assert.throws(() => source.read(69_999, 2), /reads stay inside the source/);
  source.close();
  source.close();
  assert.throws(() => source.read(0, 1), /read before close/);
});

test('a missing file, a directory or a FIFO is a FileSourceError with the reason, not a caller code', () => {
  refusedFor(join(DIR, 'absent'), 'unreadable-file');
  mkdirSync(join(DIR, 'a-directory'));
  refusedFor(join(DIR, 'a-directory'), 'not-a-file');
  assert.equal(spawnSync('mkfifo', [join(DIR, 'a-fifo')]).status, 0);
  refusedFor(join(DIR, 'a-fifo'), 'not-a-file'); // returns at once: no writer is waited for
});

test('a file that shrinks while it is read ends early: COFFER_FORMAT_TRUNCATED', () => {
  const path = join(DIR, 'shrinks');
  writeFileSync(path, new Uint8Array(1000));
  const source = fileSource(path);
  try {
    truncateSync(path, 500);
    throwsCode(() => source.read(400, 200), 'COFFER_FORMAT_TRUNCATED');
  } finally {
    source.close();
  }
});
