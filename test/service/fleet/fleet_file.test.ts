// The fleet file (src/service/fleet/fleet_file.ts): read back as written, replaced atomically with
// no temporary file left and mode 0600, an absent file is an empty fleet, and a file of another
// format, version or size is refused with its typed error.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isCofferError } from '../../../src/errors.js';
import { FLEET_FILE_BYTES_MAX, RecordFields, readFleetFile, writeFleetFile } from '../../../src/service/fleet/fleet_file.js';

const decode = (v: unknown): { id: string; n: number } => {
  const f = new RecordFields(v, 'test-fleet');
  return { id: f.string('id', /^[a-z]+$/), n: f.integer('n', 0, 9) };
};

test('written, replaced and read back; 0600; no temporary file left; absent is empty', () => {
  const dir = mkdtempSync(join(tmpdir(), 'coffer-fleet-file-'));
  try {
    const path = join(dir, 'sub', 'fleet.json');
    assert.deepEqual(readFleetFile(path, 'test-fleet', 1, decode), []);
    writeFleetFile(path, 'test-fleet', 1, [{ id: 'a', n: 1 }]);
    writeFleetFile(path, 'test-fleet', 1, [{ id: 'a', n: 1 }, { id: 'b', n: 2 }]);
    assert.deepEqual(readFleetFile(path, 'test-fleet', 1, decode), [{ id: 'a', n: 1 }, { id: 'b', n: 2 }]);
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.deepEqual(readdirSync(join(dir, 'sub')), ['fleet.json']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('another format, version, shape or size is refused with its typed error', () => {
  const dir = mkdtempSync(join(tmpdir(), 'coffer-fleet-file-'));
  const path = join(dir, 'fleet.json');
  const refused = (code: 'COFFER_FORMAT_BAD_MAGIC' | 'COFFER_FORMAT_UNKNOWN_VERSION' | 'COFFER_FORMAT_LIMIT', content: string): void => {
    writeFileSync(path, content);
    assert.throws(() => readFleetFile(path, 'test-fleet', 1, decode), (e) => isCofferError(e, code), content.slice(0, 60));
  };
  try {
    refused('COFFER_FORMAT_BAD_MAGIC', 'not json');
    refused('COFFER_FORMAT_BAD_MAGIC', JSON.stringify({ format: 'other', version: 1, devices: [] }));
    refused('COFFER_FORMAT_UNKNOWN_VERSION', JSON.stringify({ format: 'test-fleet', version: 2, devices: [] }));
    refused('COFFER_FORMAT_BAD_MAGIC', JSON.stringify({ format: 'test-fleet', version: 1, devices: {} }));
    refused('COFFER_FORMAT_BAD_MAGIC', JSON.stringify({ format: 'test-fleet', version: 1, devices: [{ id: 'A', n: 1 }] }));
    refused('COFFER_FORMAT_BAD_MAGIC', JSON.stringify({ format: 'test-fleet', version: 1, devices: [{ id: 'a', n: 10 }] }));
    refused('COFFER_FORMAT_LIMIT', ' '.repeat(FLEET_FILE_BYTES_MAX + 1));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
