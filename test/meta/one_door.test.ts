// One door for every change of device state (docs/architecture.md §10 "Where state changes"): no
// module outside src/hsm/state/ (the door) and src/hsm/store/ (the stores behind it) opens a store
// transaction or a staging of its own. The check reads the sources, so a new call site fails here.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const SRC = join(ROOT, 'src');
const DOOR = ['src/hsm/state/', 'src/hsm/store/'];
/** Not device state at all: the control plane's metadata databases (docs/metadata-store.md), whose
 * adapters open their own SQL transactions. */
const NOT_DEVICE_STATE = ['src/storage/metadata_'];

function* tsFiles(dir: string): Generator<string> {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) yield* tsFiles(p);
    else if (p.endsWith('.ts')) yield p;
  }
}

test('only src/hsm/state/ and src/hsm/store/ open store transactions or stagings', () => {
  const found: string[] = [];
  for (const file of tsFiles(SRC)) {
    const rel = relative(ROOT, file);
    if ([...DOOR, ...NOT_DEVICE_STATE].some((d) => rel.startsWith(d))) continue;
    readFileSync(file, 'utf8').split('\n').forEach((line, i) => {
      if (/\.(transaction|stage)\s*\(/.test(line) && !/^\s*(\/\/|\*)/.test(line)) found.push(`${rel}:${i + 1}: ${line.trim()}`);
    });
  }
  assert.deepEqual(found, []);
});

test('the check finds a transaction where one is opened (it can fail)', () => {
  const sample = 'this.#store.transaction((tx) => tx.put(ns, id, value));';
  assert.ok(/\.(transaction|stage)\s*\(/.test(sample));
});
