// docs/api-coverage.md covers the whole service model: a section per operation with a row for
// every request and response member, and a table for every nested structure a response carries.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLOUDHSMV2_MODEL } from '../../../src/service/api/model.js';

const DOC = readFileSync(resolve(dirname(fileURLToPath(import.meta.url)), '../../../../docs/api-coverage.md'), 'utf8');

/** The text of a `## name` or `### name` section up to the next heading of that level or above. */
function section(name: string, level: 2 | 3): string {
  const start = DOC.search(new RegExp(`^${'#'.repeat(level)} ${name}( |$)`, 'm'));
  assert.ok(start >= 0, `section ${name}`);
  const rest = DOC.slice(DOC.indexOf('\n', start));
  const end = rest.search(level === 2 ? /^#{1,2} /m : /^#{1,3} /m);
  return end < 0 ? rest : rest.slice(0, end);
}

function rowsOf(text: string): string[] {
  return [...text.matchAll(/^\| `([A-Za-z0-9]+)`/gm)].map((m) => m[1] ?? '');
}

test('every operation, with every request and response member, is in the coverage page', () => {
  for (const [name, op] of Object.entries(CLOUDHSMV2_MODEL.operations)) {
    const text = section(name, 2);
    for (const shapeName of [op.input.shape, op.output.shape]) {
      const shape = CLOUDHSMV2_MODEL.shapes[shapeName];
      assert.ok(shape?.type === 'structure');
      const part = text.slice(text.indexOf(`(\`${shapeName}\`)`));
      const members = Object.keys(shape.members);
      assert.deepEqual(rowsOf(part).slice(0, members.length), members, `${name}: ${shapeName}`);
    }
  }
});

test('every nested structure of a response has its table', () => {
  for (const name of ['Cluster', 'Hsm', 'Backup', 'Certificates', 'BackupRetentionPolicy', 'Tag', 'DestinationBackup']) {
    const shape = CLOUDHSMV2_MODEL.shapes[name];
    assert.ok(shape?.type === 'structure');
    assert.deepEqual(rowsOf(section(name, 3)), Object.keys(shape.members), name);
  }
});
