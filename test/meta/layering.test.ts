// Keeps imports pointing down (docs/architecture.md §10, CONTRIBUTING.md "Layout"): a file may import only from its
// own layer and the layers listed for it here. src/errors.ts and src/assert.ts sit below them all.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const SRC = join(ROOT, 'src');

const ALLOWED: Readonly<Record<string, readonly string[]>> = {
  crypto: [],
  formats: ['crypto'],
  hsm: ['crypto', 'formats'],
  // Offline manufacturer and operator tooling: it provisions devices, the device never imports it.
  factory: ['crypto', 'formats', 'hsm'],
  node: ['crypto', 'formats', 'hsm', 'factory'],
  // The management interface's client: the control plane and the CLI drive nodes with it.
  management: ['crypto', 'formats'],
  storage: ['formats'],
  service: ['crypto', 'formats', 'storage', 'management'],
  client: ['crypto', 'formats'],
  pkcs11: ['crypto', 'formats', 'client'],
  cli: ['crypto', 'formats', 'hsm', 'factory', 'node', 'management', 'storage', 'service', 'client', 'pkcs11'],
};
const ROOT_MODULES = new Set(['errors.ts', 'assert.ts']);

function* tsFiles(dir: string): Generator<string> {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) yield* tsFiles(p);
    else if (p.endsWith('.ts')) yield p;
  }
}

/** Layer of a path under src/: its first folder, or '' for a root module. */
function layerOf(path: string): string {
  const rel = relative(SRC, path).split(/[\\/]/);
  return rel.length === 1 ? '' : (rel[0] ?? '');
}

export function violations(): string[] {
  const found: string[] = [];
  for (const file of tsFiles(SRC)) {
    const layer = layerOf(file);
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)) {
      const target = resolve(dirname(file), (m[1] ?? '').replace(/\.js$/, '.ts'));
      const targetLayer = layerOf(target);
      if (targetLayer === '') {
        if (layer !== '' && !ROOT_MODULES.has(relative(SRC, target))) found.push(`${relative(ROOT, file)} → ${m[1]}`);
        continue;
      }
      if (targetLayer === layer) continue;
      const allowed = ALLOWED[layer];
      if (allowed === undefined || !allowed.includes(targetLayer)) found.push(`${relative(ROOT, file)} (${layer || 'root'}) → ${m[1]}`);
    }
  }
  return found;
}

test('every import points down the layers', () => {
  assert.deepEqual(violations(), []);
});

test('every folder of src/ is a known layer', () => {
  for (const name of readdirSync(SRC)) {
    if (statSync(join(SRC, name)).isDirectory()) assert.ok(name in ALLOWED, `unknown layer src/${name}`);
    else assert.ok(ROOT_MODULES.has(name), `unexpected root module src/${name}`);
  }
});
