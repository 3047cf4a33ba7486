// docs/getting-started.md stays true: its `sh getting-started` block runs as written — the AWS CLI
// (Debian's awscli), OpenSSL and the coffer CLI, against `coffer up` — in a scratch directory, with
// only its two ports swapped for free ones.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { MAIN_JS, freePort } from '../service/fleet/fleet_support.js';

const ROOT = resolve(MAIN_JS, '../../../..');
const dir = mkdtempSync(join(tmpdir(), 'coffer-getting-started-'));
/** The walk starts a region, a cluster and two HSMs: seconds here, minutes on a loaded machine. */
const WALK_TIMEOUT_MS = 600_000;

after(() => rmSync(dir, { recursive: true, force: true }));

function walk(): string {
  const doc = readFileSync(join(ROOT, 'docs', 'getting-started.md'), 'utf8');
  const m = /```sh getting-started\n([\s\S]*?)```/.exec(doc);
  assert.ok(m !== null, 'the doc has its getting-started block');
  return m[1] as string;
}

test('the getting-started walk runs as written: AWS CLI, OpenSSL and the coffer CLI from nothing to a signature and a second HSM', { timeout: WALK_TIMEOUT_MS + 60_000 }, async () => {
  const api = await freePort(['127.0.0.1']);
  const data = await freePort(['127.0.0.2', '127.0.0.3']);
  const script = walk().replaceAll('8223', String(api)).replaceAll('2223', String(data));
  assert.ok(script.includes(`--port ${api}`) && script.includes(`COFFER_DATA_PLANE_PORT=${data}`), 'both ports were swapped');
  symlinkSync(join(ROOT, 'dist'), join(dir, 'dist'));
  // Errors stop the walk; the region is stopped whatever happens.
  const full = `set -euo pipefail\ntrap 'kill -INT %1 2>/dev/null; wait' EXIT\n${script}\n`;
  const env = { ...process.env, AWS_PAGER: '', COFFER_CLUSTER_CONFIG: '' };
  const result = await new Promise<{ code: number | null; out: string }>((done) => {
    const child = spawn('bash', ['-c', full], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), WALK_TIMEOUT_MS);
    child.once('exit', (code) => {
      clearTimeout(timer);
      done({ code, out });
    });
  });
  assert.equal(result.code, 0, `the walk failed:\n${result.out}\n${readFileSync(join(dir, 'up.log'), 'utf8')}`);
  assert.match(result.out, /hsm\.pem: OK/);
  assert.match(result.out, /operator-hw\.pem: OK/);
  assert.match(result.out, /"signature":/);
  assert.match(result.out, /backup-[2-7a-zA-Z]{11,16}\s+READY/);
});
