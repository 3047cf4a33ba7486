// The audit log on a served node (src/node/serve.ts, GET /v1/audit in management_routes.ts,
// docs/audit.md): a login failure, a key generation, an export, a destroy and a backup reach the
// log file in the data directory with the right user, handle and outcome; the page the management
// client collects verifies against the roots; the log survives a restart and its next page
// verifies after the first; no password and no key byte is in the file.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManagementClient } from '../../src/management/client.js';
import { createDevelopmentAuthorities, issueManagementClientCertificate, saveDevelopmentAuthorities } from '../../src/factory/development.js';
import { decodeAuditBundle, decodeAuditRecord, type AuditEvent } from '../../src/formats/audit_record.js';
import { verifyAuditBundles } from '../../src/formats/audit_verify.js';
import { pemOf } from '../../src/formats/x509.js';
import { AUDIT_FILE, serveNode } from '../../src/node/serve.js';
import { createLogger } from '../../src/node/log.js';
import { rejectsCode } from '../helpers.js';

const log = createLogger({ level: 'silent' });
const PRECO = 'preco-password-7';
const ADMIN_PW = 'admin-password-77';
const ALICE_PW = 'alice-password-77';
const WRONG = 'wrong-password-77';

test('a served node audits logins, keys and backups to its data directory; the management route serves verifiable pages across a restart', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'coffer-audit-node-'));
  try {
    const authorities = await createDevelopmentAuthorities();
    saveDevelopmentAuthorities(authorities, join(dir, 'authorities'));
    const credential = await issueManagementClientCertificate(authorities.operator, 'audit test');
    const roots = { manufacturerRootPem: pemOf(authorities.manufacturer.rootCertificate), operatorRootPem: pemOf(authorities.operator.rootCertificate) };
    const dataDir = join(dir, 'node');
    const options = { dataDir, development: true, log, authoritiesDir: join(dir, 'authorities'), managementPort: 0 } as const;
    const node = await serveNode(options);
    const hsm = node.hsm;
    await hsm.initialiseUsers(PRECO, 'appliance-credential-777');
    await hsm.activate(PRECO, ADMIN_PW);
    const admin = hsm.openSession();
    await admin.login('admin', ADMIN_PW);
    await admin.createUser('alice', ALICE_PW, 'crypto-user');
    await assert.rejects(hsm.openSession().login('alice', WRONG));
    const alice = hsm.openSession();
    await alice.login('alice', ALICE_PW);
    const key = await alice.generateKey({ keyType: 'AES', bits: 256 }, { label: 'audited', extractable: true, sensitive: false });
    const keyBytes = alice.exportPlaintext(key).use((b) => Buffer.from(b));
    await alice.destroy(key);
    assert.ok(node.management !== undefined);
    const client = new ManagementClient({ host: '127.0.0.1', port: node.management.port, ...credential, ...roots });
    await client.backupToFile(join(dir, 'backup.bin'), 'cluster-abcdefghijk');
    const first = await client.auditPage(0n, 4096);
    await rejectsCode(() => client.auditPage(10_000_000n, 10), 'COFFER_AUDIT_POSITION');
    client.close();

    const bundle = decodeAuditBundle(first);
    const events = bundle.records.map((r) => decodeAuditRecord(r)).flatMap((r) => (r.type === 'event' ? [r.event] : []));
    const one = (p: (e: AuditEvent) => boolean, what: string): void => assert.ok(events.some(p), what);
    one((e) => e.kind === 'login' && e.user === 'alice' && e.outcome === 'failed' && e.code === 'COFFER_AUTH_FAILED', 'the failed login');
    one((e) => e.kind === 'key.generate' && e.user === 'alice' && e.outcome === 'ok' && e.handles.includes(key) && e.session === alice.id, 'the key generation');
    one((e) => e.kind === 'key.export' && e.user === 'alice' && e.handles.includes(key), 'the export');
    one((e) => e.kind === 'key.destroy' && e.user === 'alice' && e.outcome === 'ok' && e.handles.includes(key), 'the destroy');
    one((e) => e.kind === 'backup' && e.outcome === 'ok' && e.user === '', 'the backup, asked by the management interface');
    one((e) => e.kind === 'device.change' && e.detail === 'device.commission', 'the commissioning');
    const checked = verifyAuditBundles({ bundles: [bundle], manufacturerRoot: roots.manufacturerRootPem, operatorRoot: roots.operatorRootPem, atMs: Date.now() });
    assert.equal(checked.ok, true, JSON.stringify(checked.failure));
    assert.equal(checked.firstSeq, 0n);

    await node.close();
    const fileBytes = readFileSync(join(dataDir, AUDIT_FILE));
    for (const secret of [PRECO, ADMIN_PW, ALICE_PW, WRONG]) assert.equal(fileBytes.indexOf(secret), -1, 'no password in the log file');
    assert.equal(fileBytes.indexOf(keyBytes), -1, 'no key bytes in the log file');

    const again = await serveNode(options);
    const s = again.hsm.openSession();
    await rejectsCode(() => s.login('alice', WRONG), 'COFFER_AUTH_FAILED');
    assert.ok(again.management !== undefined);
    const client2 = new ManagementClient({ host: '127.0.0.1', port: again.management.port, ...credential, ...roots });
    const next = checked.lastSeq === undefined ? 0n : checked.lastSeq + 1n;
    const second = decodeAuditBundle(await client2.auditPage(next, 4096));
    client2.close();
    await again.close();
    assert.equal(decodeAuditRecord(second.records[0] as Uint8Array).seq, next, 'the log goes on where it was');
    const both = verifyAuditBundles({ bundles: [bundle, second], manufacturerRoot: roots.manufacturerRootPem, operatorRoot: roots.operatorRootPem, atMs: Date.now() });
    assert.equal(both.ok, true, JSON.stringify(both.failure));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
