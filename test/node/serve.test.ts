// serveNode: a data directory with a 0600 device secret and a sealed store; a new device is
// provisioned for development, and a restart reopens the same device.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEVICE_SECRET_FILE, STORE_FILE, serveNode } from '../../src/node/serve.js';
import { createLogger } from '../../src/node/log.js';
import { Connection } from '../../src/client/connection.js';
import { isCofferError } from '../../src/errors.js';

const log = createLogger({ level: 'silent' }); // the log's own tests are test/node/log.test.ts

test('serveNode creates, provisions and serves a node; a restart reopens the same device', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'coffer-serve-'));
  try {
    const first = await serveNode({ dataDir: dir, development: true, log });
    assert.equal(statSync(join(dir, DEVICE_SECRET_FILE)).mode & 0o777, 0o600);
    assert.equal(statSync(join(dir, DEVICE_SECRET_FILE)).size, 32);
    assert.equal(statSync(join(dir, STORE_FILE)).mode & 0o777, 0o600);
    const c = await Connection.connect({ host: '127.0.0.1', port: first.dataPlane.port, ca: first.dataPlane.tls.certificatePem });
    const st = await c.status();
    assert.equal(st.provisioning, 'COMMISSIONED');
    assert.equal(st.activated, false);
    c.close();
    await first.close();

    const second = await serveNode({ dataDir: dir, development: true, log });
    assert.equal(second.hsm.status().serial, st.serial);
    assert.notEqual(second.dataPlane.tls.certificatePem, first.dataPlane.tls.certificatePem); // a fresh TLS key per start
    await second.close();

    writeFileSync(join(dir, DEVICE_SECRET_FILE), new Uint8Array(32)); // another secret: the store refuses it
    await assert.rejects(serveNode({ dataDir: dir, development: true, log }), (e) => isCofferError(e));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
