// The peers file of `coffer service --peers` (src/service/peer_config.ts): a valid configuration,
// and every malformed entry refused with COFFER_PEER_CONFIG_INVALID naming the entry and field,
// never the secret.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isCofferError } from '../../src/errors.js';
import { PEERS_MAX, parsePeers, readPeersFile } from '../../src/service/peer_config.js';

const SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
const good = { region: 'eu-west-1', endpoint: 'http://10.0.0.5:8223', accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: SECRET };

function refused(config: unknown, detail: Record<string, unknown>): void {
  assert.throws(() => parsePeers(config, 'us-east-1'), (e: unknown) => {
    assert.ok(isCofferError(e, 'COFFER_PEER_CONFIG_INVALID'), String(e));
    for (const [k, v] of Object.entries(detail)) assert.equal(e.detail[k], v, `${JSON.stringify(config).slice(0, 80)}: ${k}`);
    assert.ok(!JSON.stringify(e).includes(SECRET) && !String(e).includes(SECRET), 'no secret in the error');
    return true;
  });
}

test('peers: a valid configuration; endpoints kept as origins', () => {
  const peers = parsePeers({ peers: [good, { ...good, region: 'ap-south-1', endpoint: 'https://peer.example:443/' }] }, 'us-east-1');
  assert.deepEqual(peers.map((p) => [p.region, p.endpoint]), [['eu-west-1', 'http://10.0.0.5:8223'], ['ap-south-1', 'https://peer.example']]);
  assert.deepEqual(parsePeers({ peers: [] }, 'us-east-1'), []);
});

test('peers: each malformed entry refused, naming the entry and field', () => {
  refused([], { field: 'peers' });
  refused({ peers: {} }, { field: 'peers' });
  refused({ peers: [], other: 1 }, { field: 'peers' });
  refused({ peers: Array.from({ length: PEERS_MAX + 1 }, (_, i) => ({ ...good, region: `eu-west-${i}` })) }, { field: 'peers', limit: PEERS_MAX });
  refused({ peers: [null] }, { index: 0 });
  refused({ peers: [{ ...good, extra: true }] }, { index: 0, reason: 'unknown field' });
  for (const field of Object.keys(good)) {
    const entry: Record<string, unknown> = { ...good };
    delete entry[field];
    refused({ peers: [entry] }, { index: 0, field, reason: 'missing' });
  }
  refused({ peers: [{ ...good, region: 'moon-1' }] }, { index: 0, field: 'region' });
  refused({ peers: [{ ...good, region: 'us-east-1' }] }, { index: 0, field: 'region', reason: "this service's own region" });
  refused({ peers: [good, good] }, { index: 1, field: 'region', reason: 'duplicate' });
  refused({ peers: [{ ...good, accessKeyId: 'akia' }] }, { index: 0, field: 'accessKeyId' });
  refused({ peers: [{ ...good, secretAccessKey: 'short' }] }, { index: 0, field: 'secretAccessKey' });
  for (const endpoint of ['ftp://10.0.0.5', 'http://user:pw@10.0.0.5', 'http://10.0.0.5/path', 'http://10.0.0.5/?q=1', 'http://10.0.0.5#f', 'not a url', 42]) {
    refused({ peers: [{ ...good, endpoint }] }, { index: 0, field: 'endpoint' });
  }
});

test('peers file: read whole, refused when unreadable, not JSON or invalid, never quoting it', () => {
  const dir = mkdtempSync(join(tmpdir(), 'coffer-peers-'));
  try {
    const path = join(dir, 'peers.json');
    writeFileSync(path, JSON.stringify({ peers: [good] }), { mode: 0o600 });
    assert.equal(readPeersFile(path, 'us-east-1')[0]?.secretAccessKey, SECRET);
    assert.throws(() => readPeersFile(join(dir, 'missing.json'), 'us-east-1'), (e: unknown) => isCofferError(e, 'COFFER_PEER_CONFIG_INVALID') && e.detail['reason'] === 'file cannot be read');
    writeFileSync(path, `{"peers": [${JSON.stringify(good)}`);
    assert.throws(() => readPeersFile(path, 'us-east-1'), (e: unknown) => isCofferError(e, 'COFFER_PEER_CONFIG_INVALID') && e.detail['reason'] === 'file is not JSON' && !String(e).includes(SECRET));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
